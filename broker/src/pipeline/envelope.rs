//! The envelope a portal publishes (CONTRACT.md § 1), decoded from an AMQP body.
//!
//! Decoding happens in two steps so that every failure has a precise reason:
//! the body must be a JSON object (else `malformed_envelope`), it must satisfy
//! `schemas/envelope.schema.json` (checked in `validate`), and only then is it
//! turned into the typed [`Envelope`]. These types hold personal data: their
//! `Debug` prints identifiers only.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::domain::id::{DestinationId, SubmissionId};
use crate::domain::reason::{Reason, ReasonCode};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub submission_id: SubmissionId,
    pub service: String,
    pub destination: DestinationId,
    pub portal: String,
    pub submitted_at: String,
    #[serde(default)]
    pub applicant_ref: Option<String>,
    pub form: Value,
    #[serde(default)]
    pub attachments: Vec<EnvelopeAttachment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeAttachment {
    pub id: String,
    pub filename: String,
    pub media_type: String,
    pub document_type: String,
    pub sha256: String,
    pub content: String,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("submission_id", &self.submission_id)
            .field("service", &self.service)
            .field("destination", &self.destination)
            .field("portal", &self.portal)
            .field("attachments", &self.attachments.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for EnvelopeAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeAttachment")
            .field("id", &"(withheld)")
            .finish_non_exhaustive()
    }
}

/// Parse an AMQP body into a JSON object. Anything else is `malformed_envelope`.
pub fn parse_body(body: &[u8]) -> Result<Value, Reason> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        // serde_json's message quotes no input, but its category and position
        // are all an operator needs.
        Reason::new(
            ReasonCode::MalformedEnvelope,
            format!(
                "body is not JSON ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        )
    })?;
    if !value.is_object() {
        return Err(Reason::new(
            ReasonCode::MalformedEnvelope,
            "body is JSON but not an object",
        ));
    }
    Ok(value)
}

/// The submission id of a body that may be invalid otherwise, when it is a
/// well-formed UUID: lets a dead letter of a broken envelope still be matched
/// to its submission.
pub fn submission_id_hint(value: &Value) -> Option<SubmissionId> {
    SubmissionId::parse(value.get("submission_id")?.as_str()?)
}

/// Best-effort string field of a (possibly invalid) envelope, if it looks like
/// an identifier (used for portal and destination of dead letters).
pub fn identifier_hint(value: &Value, field: &str) -> Option<String> {
    value
        .get(field)?
        .as_str()
        .filter(|s| looks_like_identifier(s))
        .map(str::to_owned)
}

/// Short, lowercase ASCII letters, digits, `-`, `_` and `.`: an id, never a
/// person's data (service, destination and portal ids; AMQP properties).
pub fn looks_like_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// Turn a schema-valid envelope value into the typed envelope.
pub fn from_value(value: Value) -> Result<Envelope, Reason> {
    serde_json::from_value(value).map_err(|_| {
        Reason::new(
            ReasonCode::MalformedEnvelope,
            "envelope does not match the envelope schema's types",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_json_is_malformed_and_the_reason_quotes_nothing() {
        let err = parse_body(b"{\"name\": \"Canary Geheim").unwrap_err();
        assert_eq!(err.code, ReasonCode::MalformedEnvelope);
        assert!(!err.detail.contains("Canary"), "{}", err.detail);
    }

    #[test]
    fn json_that_is_not_an_object_is_malformed() {
        assert_eq!(
            parse_body(b"[1,2]").unwrap_err().code,
            ReasonCode::MalformedEnvelope
        );
    }

    #[test]
    fn hints_only_accept_identifiers() {
        let v: Value = serde_json::json!({
            "submission_id": "3F0B6C1E-8A4D-4C1E-9F57-1D2A7B9E0C11",
            "portal": "Anna Müller",
            "destination": "sozialamt-koeln"
        });
        assert_eq!(
            submission_id_hint(&v).as_deref(),
            Some("3F0B6C1E-8A4D-4C1E-9F57-1D2A7B9E0C11")
        );
        assert_eq!(identifier_hint(&v, "portal"), None);
        assert_eq!(
            identifier_hint(&v, "destination").as_deref(),
            Some("sozialamt-koeln")
        );
    }
}
