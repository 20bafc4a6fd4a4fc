-- Times the database compares get its time type (docs/ARCHITECTURE.md,
-- Times in the database), the expand step: each time column the program
-- compares or orders by gets a typed twin, `<column>_ts timestamptz`,
-- generated from the text column. The text columns stay what both releases
-- write (the previous release binds them as text), so the twin is right for
-- every row, whichever release wrote it; this release compares, orders and
-- indexes the twins. What later releases do is in docs/ARCHITECTURE.md
-- (a twin stays generated until a contract step drops its expression).
--
-- kurier_time reads the one written form, 2026-11-23T10:15:00.000000Z, and
-- refuses any other (a row in another form would compare wrongly), also
-- hour 24 and second 60, which PostgreSQL would carry into the next day or
-- minute and Kurier's parser does not read alike. It is
-- immutable in fact: the form carries its zone (UTC) and its field order is
-- ISO 8601's, so no session setting changes the instant it reads.
-- Adding a stored generated column rewrites the table under an exclusive
-- lock, and instances of the previous release write these tables in their
-- own orders (parked then receipts, receipts then parked, dead_letters then
-- receipts). So all five locks are taken first, each wait giving up after
-- 900 ms: under PostgreSQL's deadlock_timeout (1 s by default), so in a
-- deadlock with such a write the migration gives way before the write
-- could be chosen, and instances do not wait behind a queue of locks;
-- `kurier migrate` tries again (schema.rs, LOCK_RACES).
SET LOCAL lock_timeout = '900ms';
LOCK TABLE receipts, parked, dead_letters, audit, transport_messages IN ACCESS EXCLUSIVE MODE;

CREATE FUNCTION kurier_time(written text) RETURNS timestamptz
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
    IF written !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9][.][0-9]{6}Z$' THEN
        RAISE EXCEPTION 'not a time in Kurier''s written form (2026-11-23T10:15:00.000000Z)'
            USING ERRCODE = 'invalid_datetime_format';
    END IF;
    RETURN replace(written, 'Z', '')::timestamp AT TIME ZONE 'UTC';
END
$$;

ALTER TABLE receipts
    ADD COLUMN completed_at_ts timestamptz GENERATED ALWAYS AS (kurier_time(completed_at)) STORED;
CREATE INDEX receipts_completed_at_ts ON receipts (completed_at_ts);

ALTER TABLE parked
    ADD COLUMN received_at_ts timestamptz GENERATED ALWAYS AS (kurier_time(received_at)) STORED,
    ADD COLUMN first_failure_at_ts timestamptz GENERATED ALWAYS AS (kurier_time(first_failure_at)) STORED,
    ADD COLUMN next_attempt_at_ts timestamptz GENERATED ALWAYS AS (kurier_time(next_attempt_at)) STORED,
    ADD COLUMN lease_until_ts timestamptz GENERATED ALWAYS AS (kurier_time(lease_until)) STORED;
CREATE INDEX parked_due_ts ON parked (next_attempt_at_ts);
CREATE INDEX parked_received_ts ON parked (received_at_ts);

ALTER TABLE dead_letters
    ADD COLUMN created_at_ts timestamptz GENERATED ALWAYS AS (kurier_time(created_at)) STORED,
    ADD COLUMN expires_at_ts timestamptz GENERATED ALWAYS AS (kurier_time(expires_at)) STORED;
CREATE INDEX dead_letters_expires_ts ON dead_letters (expires_at_ts);

ALTER TABLE audit
    ADD COLUMN at_ts timestamptz GENERATED ALWAYS AS (kurier_time(at)) STORED;
CREATE INDEX audit_at_ts ON audit (at_ts);

ALTER TABLE transport_messages
    ADD COLUMN created_at_ts timestamptz GENERATED ALWAYS AS (kurier_time(created_at)) STORED,
    ADD COLUMN last_polled_at_ts timestamptz GENERATED ALWAYS AS (kurier_time(last_polled_at)) STORED;
CREATE INDEX transport_messages_created_at_ts ON transport_messages (created_at_ts);
