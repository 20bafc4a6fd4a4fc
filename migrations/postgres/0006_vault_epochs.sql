-- Key-encryption keys by epoch (crypto-shredding that holds, vault.rs and
-- shred.rs): one random 256-bit KEK per UTC day wraps the data keys of the
-- payloads sealed that day; the KEK itself is stored wrapped by the master
-- key named by master_key_id. Once nothing sealed in an epoch may still be
-- kept, wrapped_kek is set to NULL and destroyed_at set: every copy of those
-- payloads (WAL, backups) is then unreadable, even with the master key. The
-- row stays as a tombstone, so a destroyed epoch is never created again.
-- Payloads sealed earlier keep key_id = the master key id and still open.
CREATE TABLE vault_epochs (
    epoch         TEXT PRIMARY KEY NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped_kek   BYTEA,
    created_at    TEXT NOT NULL,
    destroyed_at  TEXT
);

-- Whether an epoch is still in use is asked of parked rows and dead letters.
CREATE INDEX parked_key_id ON parked (key_id);
CREATE INDEX dead_letters_key_id ON dead_letters (key_id);
