-- Parked submissions (transient failure, retried by the scheduler) and the
-- payload of dead letters kept for replay. Payloads are sealed (vault.rs):
-- deleting a row destroys its data key. Metadata columns hold no form values.
CREATE TABLE parked (
    submission_id    TEXT PRIMARY KEY NOT NULL,
    service          TEXT NOT NULL,
    destination      TEXT NOT NULL,
    portal           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    received_sha256  TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    first_failure_at TEXT NOT NULL,
    last_cause       TEXT NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    lease_until      TEXT,
    key_id           TEXT NOT NULL,
    sealed_key       BLOB NOT NULL,
    sealed_payload   BLOB NOT NULL
);
CREATE INDEX parked_due ON parked (next_attempt_at);
CREATE INDEX parked_destination ON parked (destination);

ALTER TABLE dead_letters ADD COLUMN key_id TEXT;
ALTER TABLE dead_letters ADD COLUMN sealed_key BLOB;
ALTER TABLE dead_letters ADD COLUMN sealed_payload BLOB;
ALTER TABLE dead_letters ADD COLUMN expires_at TEXT;
CREATE INDEX dead_letters_expires ON dead_letters (expires_at);
