-- What Kurier must refuse it must not keep in any form (CONTRACT.md § 4):
-- dead letters of these reasons lose the sealed payloads that earlier
-- versions kept, together with their wrapped data keys; their metadata and
-- receipts stay (SQLite runs with secure_delete, so the freed space is
-- overwritten). Every dead letter now has a retention; the ones that had
-- none (they kept nothing) are purged at the first scheduler run after this
-- upgrade, their receipts stay.
UPDATE dead_letters
   SET key_id = NULL, sealed_key = NULL, sealed_payload = NULL
 WHERE reason_code IN ('malformed_envelope', 'forbidden_document', 'attachment_too_large',
                       'attachment_hash_mismatch', 'message_too_large');
UPDATE dead_letters
   SET expires_at = created_at
 WHERE expires_at IS NULL;
