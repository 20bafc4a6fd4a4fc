-- Receipts and dead letters: metadata only, never payload or form values.
CREATE TABLE receipts (
    submission_id   TEXT PRIMARY KEY NOT NULL,
    service         TEXT,
    destination     TEXT,
    portal          TEXT,
    status          TEXT NOT NULL CHECK (status IN ('delivered', 'rejected', 'dead_lettered')),
    reason_code     TEXT,
    reason_detail   TEXT,
    http_status     INTEGER,
    reference       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    received_sha256 TEXT NOT NULL,
    sent_sha256     TEXT,
    submitted_at    TEXT,
    received_at     TEXT NOT NULL,
    completed_at    TEXT NOT NULL
);
CREATE INDEX receipts_completed_at ON receipts (completed_at);

CREATE TABLE dead_letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id   TEXT,
    amqp_message_id TEXT,
    service         TEXT,
    destination     TEXT,
    portal          TEXT,
    reason_code     TEXT NOT NULL,
    reason_detail   TEXT NOT NULL,
    http_status     INTEGER,
    received_sha256 TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX dead_letters_submission ON dead_letters (submission_id);
CREATE INDEX dead_letters_reason ON dead_letters (reason_code, destination);
