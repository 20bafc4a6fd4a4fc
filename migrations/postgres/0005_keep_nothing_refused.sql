-- What Kurier must refuse it must not keep in any form (CONTRACT.md § 4):
-- dead letters of these reasons lose the sealed payloads that earlier
-- versions kept, together with their wrapped data keys; their metadata and
-- receipts stay. (SQLite runs with secure_delete, so the freed space is
-- overwritten.)
UPDATE dead_letters
   SET key_id = NULL, sealed_key = NULL, sealed_payload = NULL, expires_at = NULL
 WHERE reason_code IN ('malformed_envelope', 'forbidden_document', 'attachment_too_large',
                       'attachment_hash_mismatch', 'message_too_large');
