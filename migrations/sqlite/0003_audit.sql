-- The audit trail of operator actions (replay, purge, payload view): who,
-- what, which submissions, when and why. Ids and reason texts only, never a
-- payload or a form value.
CREATE TABLE audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             TEXT NOT NULL,
    operator       TEXT NOT NULL,
    action         TEXT NOT NULL,
    submission_ids TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    reason         TEXT
);
CREATE INDEX audit_at ON audit (at);
