-- The delivery queue as operators and the outbox need it (issue 9):
-- * outbox: receipt events committed in the same transaction as their
--   receipt (or first parking), published with confirms by a relay and then
--   deleted. The body is the event's JSON: ids, statuses, codes; no form value.
-- * events: the last receipt-event sequence number given to a submission
--   (per-event `seq`, CONTRACT.md § 3), on the parked row while it waits and
--   on the receipt once it is terminal.
-- * held: an operator's hold; the scheduler leaves held rows alone.
-- * destination_pauses: an announced maintenance window; submissions for a
--   paused destination are parked without an attempt.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    routing_key   TEXT NOT NULL,
    body          BLOB NOT NULL,
    created_at    TEXT NOT NULL
);

ALTER TABLE receipts ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE parked ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE parked ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
CREATE INDEX parked_received ON parked (received_at);

CREATE TABLE destination_pauses (
    destination TEXT PRIMARY KEY NOT NULL,
    paused_at   TEXT NOT NULL,
    operator    TEXT NOT NULL,
    reason      TEXT
);
