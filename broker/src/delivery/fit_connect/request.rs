//! The bodies of the Submission API calls of one submission: the
//! announcement (`POST /v1/submissions`), the metadata (valid against the
//! published metadata schema 1.0.0, vendored in `schemas/fit-connect/`)
//! and the submit body (`PUT /v1/submissions/{id}`). Pure functions: no I/O,
//! no clock.
//!
//! The data (Fachdaten) is the adapter's XML, unchanged; the envelope's
//! attachments travel as FIT-Connect attachments beside it (the authority's
//! format may carry them inside the XML as well: the adapters stay as
//! they are). Attachment ids are derived from the submission id and the
//! attachment's id, so every retry, parked run or restart announces and
//! uploads the same ids.

use aws_lc_rs::digest;
use serde_json::{Value, json};

/// The metadata schema Kurier writes against.
pub const METADATA_SCHEMA: &str =
    "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json";

/// One attachment, decoded, as it is uploaded and described.
pub struct Attachment<'a> {
    pub id: String,
    pub filename: &'a str,
    pub media_type: &'a str,
    pub content: Vec<u8>,
}

impl std::fmt::Debug for Attachment<'_> {
    // Filenames and contents are personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The FIT attachment id of the envelope attachment `attachment_id` of
/// `submission_id`: a UUID (version 4 layout) from their SHA-256, the same
/// on every attempt.
pub fn attachment_id(submission_id: &str, attachment_id: &str) -> String {
    let d = digest::digest(
        &digest::SHA256,
        format!("kurier fit-connect attachment\n{submission_id}\n{attachment_id}").as_bytes(),
    );
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d.as_ref()[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Lowercase hex SHA-512, as the metadata's `hash.content`.
pub fn sha512_hex(bytes: &[u8]) -> String {
    crate::domain::digest::hex(digest::digest(&digest::SHA512, bytes).as_ref())
}

/// `POST /v1/submissions`.
pub fn announcement(
    destination_id: &str,
    attachments: &[Attachment<'_>],
    service_identifier: &str,
    service_name: &str,
) -> Value {
    json!({
        "destinationId": destination_id,
        "announcedAttachments": attachments.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        "serviceType": {"identifier": service_identifier, "name": service_name},
    })
}

/// The metadata of a submission whose data is `data` (XML with root
/// namespace `schema_uri`).
pub fn metadata(
    data: &[u8],
    schema_uri: &str,
    attachments: &[Attachment<'_>],
    service_identifier: &str,
    service_name: &str,
    sender_reference: &str,
) -> Value {
    json!({
        "$schema": METADATA_SCHEMA,
        "contentStructure": {
            "data": {
                "hash": {"type": "sha512", "content": sha512_hex(data)},
                "submissionSchema": {"schemaUri": schema_uri, "mimeType": "application/xml"},
            },
            "attachments": attachments.iter().map(|a| json!({
                "attachmentId": a.id,
                "hash": {"type": "sha512", "content": sha512_hex(&a.content)},
                "purpose": "attachment",
                "filename": a.filename,
                "mimeType": a.media_type,
            })).collect::<Vec<_>>(),
        },
        "publicServiceType": {"identifier": service_identifier, "name": service_name},
        "additionalReferenceInfo": {"senderReference": sender_reference},
    })
}

/// `PUT /v1/submissions/{id}`.
pub fn submit(encrypted_metadata: &str, encrypted_data: &str) -> Value {
    json!({"encryptedMetadata": encrypted_metadata, "encryptedData": encrypted_data})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> jsonschema::Validator {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/fit-connect/metadata.schema.v1.0.0.json"
        );
        let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap()
    }

    #[test]
    fn the_metadata_is_valid_against_the_published_schema() {
        let a = Attachment {
            id: attachment_id("sub-1", "att-1"),
            filename: "mietvertrag.pdf",
            media_type: "application/pdf",
            content: b"%PDF-1.7".to_vec(),
        };
        let m = metadata(
            b"<a/>",
            "urn:x",
            std::slice::from_ref(&a),
            "urn:de:fim:leika:leistung:99050012104000",
            "Hilfe zum Lebensunterhalt",
            "sub-1",
        );
        let v = schema();
        let errors: Vec<String> = v.iter_errors(&m).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        let hash = sha512_hex(b"<a/>");
        assert_eq!(hash.len(), 128);
        assert_eq!(m["contentStructure"]["data"]["hash"]["content"], hash);
        // The schema is strict where it matters: a wrong hash type fails.
        let mut bad = m.clone();
        bad["contentStructure"]["data"]["hash"]["type"] = json!("sha256");
        assert!(!v.is_valid(&bad));
        let mut bad = m;
        bad["contentStructure"]["attachments"][0]["purpose"] = json!("scan");
        assert!(!v.is_valid(&bad));
    }

    #[test]
    fn attachment_ids_are_stable_uuids() {
        let a = attachment_id("sub-1", "att-1");
        assert_eq!(a, attachment_id("sub-1", "att-1"));
        assert_ne!(a, attachment_id("sub-2", "att-1"));
        assert_ne!(a, attachment_id("sub-1", "att-2"));
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 4);
    }
}
