-- Times the database compares get its time type (docs/ARCHITECTURE.md,
-- Times in the database), the expand step: each time column the program
-- compares or orders by gets a twin, `<column>_ts`, which the statements
-- both backends share compare, order and index. On PostgreSQL the twin is a
-- `timestamptz`; SQLite has no time type: its time storage is ISO 8601
-- text, which the written form (fixed-width UTC,
-- 2026-11-23T10:15:00.000000Z) is, ordered as the instants are. So here
-- the twin is the text column itself, a virtual generated column that costs
-- no storage; the indexes on the twins replace those on the text columns
-- for this release (those stay for the release before).
ALTER TABLE receipts ADD COLUMN completed_at_ts TEXT GENERATED ALWAYS AS (completed_at) VIRTUAL;
CREATE INDEX receipts_completed_at_ts ON receipts (completed_at_ts);

ALTER TABLE parked ADD COLUMN received_at_ts TEXT GENERATED ALWAYS AS (received_at) VIRTUAL;
ALTER TABLE parked ADD COLUMN first_failure_at_ts TEXT GENERATED ALWAYS AS (first_failure_at) VIRTUAL;
ALTER TABLE parked ADD COLUMN next_attempt_at_ts TEXT GENERATED ALWAYS AS (next_attempt_at) VIRTUAL;
ALTER TABLE parked ADD COLUMN lease_until_ts TEXT GENERATED ALWAYS AS (lease_until) VIRTUAL;
CREATE INDEX parked_due_ts ON parked (next_attempt_at_ts);
CREATE INDEX parked_received_ts ON parked (received_at_ts);

ALTER TABLE dead_letters ADD COLUMN created_at_ts TEXT GENERATED ALWAYS AS (created_at) VIRTUAL;
ALTER TABLE dead_letters ADD COLUMN expires_at_ts TEXT GENERATED ALWAYS AS (expires_at) VIRTUAL;
CREATE INDEX dead_letters_expires_ts ON dead_letters (expires_at_ts);

ALTER TABLE audit ADD COLUMN at_ts TEXT GENERATED ALWAYS AS (at) VIRTUAL;
CREATE INDEX audit_at_ts ON audit (at_ts);

ALTER TABLE transport_messages ADD COLUMN created_at_ts TEXT GENERATED ALWAYS AS (created_at) VIRTUAL;
ALTER TABLE transport_messages ADD COLUMN last_polled_at_ts TEXT GENERATED ALWAYS AS (last_polled_at) VIRTUAL;
CREATE INDEX transport_messages_created_at_ts ON transport_messages (created_at_ts);
