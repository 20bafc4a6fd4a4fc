//! Dead-letter reasons: the stable codes of CONTRACT.md § 4 and a detail text.
//!
//! A reason is what an operator and a portal see about a submission that was
//! not delivered. The detail names JSON pointers, field names, limits and
//! status codes — never a value from the submission. Every constructor here
//! takes only such things, so a value cannot slip in by accident.

use std::fmt;

/// The stable reason codes. Their string forms are part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    MalformedEnvelope,
    UnknownService,
    UnknownDestination,
    SchemaViolation,
    ForbiddenDocument,
    AttachmentTooLarge,
    AttachmentHashMismatch,
    TransformFailed,
    OutputSchemaViolation,
    AuthorityRejected,
    DeliveryExpired,
    MessageTooLarge,
    /// An operator purged a parked submission (`kurier parked purge`).
    WithdrawnByOperator,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 13] = [
        ReasonCode::MalformedEnvelope,
        ReasonCode::UnknownService,
        ReasonCode::UnknownDestination,
        ReasonCode::SchemaViolation,
        ReasonCode::ForbiddenDocument,
        ReasonCode::AttachmentTooLarge,
        ReasonCode::AttachmentHashMismatch,
        ReasonCode::TransformFailed,
        ReasonCode::OutputSchemaViolation,
        ReasonCode::AuthorityRejected,
        ReasonCode::DeliveryExpired,
        ReasonCode::MessageTooLarge,
        ReasonCode::WithdrawnByOperator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::MalformedEnvelope => "malformed_envelope",
            ReasonCode::UnknownService => "unknown_service",
            ReasonCode::UnknownDestination => "unknown_destination",
            ReasonCode::SchemaViolation => "schema_violation",
            ReasonCode::ForbiddenDocument => "forbidden_document",
            ReasonCode::AttachmentTooLarge => "attachment_too_large",
            ReasonCode::AttachmentHashMismatch => "attachment_hash_mismatch",
            ReasonCode::TransformFailed => "transform_failed",
            ReasonCode::OutputSchemaViolation => "output_schema_violation",
            ReasonCode::AuthorityRejected => "authority_rejected",
            ReasonCode::DeliveryExpired => "delivery_expired",
            ReasonCode::MessageTooLarge => "message_too_large",
            ReasonCode::WithdrawnByOperator => "withdrawn_by_operator",
        }
    }

    /// May a dead letter of this reason keep the submission's payload
    /// (sealed, for replay)? Only where an operator can make it deliverable
    /// (a route or schema added late, an authority fixed). What Kurier must
    /// refuse (an identity card copy, § 20 PAuswG; oversized or corrupt
    /// input) it must not keep in any form (CONTRACT.md § 4).
    pub fn keeps_payload(self) -> bool {
        match self {
            ReasonCode::UnknownService
            | ReasonCode::UnknownDestination
            | ReasonCode::SchemaViolation
            | ReasonCode::TransformFailed
            | ReasonCode::OutputSchemaViolation
            | ReasonCode::AuthorityRejected
            | ReasonCode::DeliveryExpired => true,
            ReasonCode::MalformedEnvelope
            | ReasonCode::ForbiddenDocument
            | ReasonCode::AttachmentTooLarge
            | ReasonCode::AttachmentHashMismatch
            | ReasonCode::MessageTooLarge
            // Purged by an operator: shredded.
            | ReasonCode::WithdrawnByOperator => false,
        }
    }

    pub fn parse(code: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason code and its detail text (free of submission values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: ReasonCode,
    pub detail: String,
}

impl Reason {
    pub fn new(code: ReasonCode, detail: impl Into<String>) -> Self {
        Reason {
            code,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

/// A name taken from the input (a property name, a document type) is shown in
/// a detail only when it looks like a field name; anything else could be data
/// a portal put in the wrong place, so it is replaced by a placeholder.
pub fn safe_name(name: &str) -> &str {
    let looks_like_field = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if looks_like_field {
        name
    } else {
        "(name withheld)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_the_contract() {
        let contract = [
            "malformed_envelope",
            "unknown_service",
            "unknown_destination",
            "schema_violation",
            "forbidden_document",
            "attachment_too_large",
            "attachment_hash_mismatch",
            "transform_failed",
            "output_schema_violation",
            "authority_rejected",
            "delivery_expired",
            "message_too_large",
            "withdrawn_by_operator",
        ];
        let ours: Vec<&str> = ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(ours, contract);
        for code in ReasonCode::ALL {
            assert_eq!(ReasonCode::parse(code.as_str()), Some(code));
        }
    }

    #[test]
    fn what_must_be_refused_is_never_kept() {
        let keep_nothing: Vec<&str> = ReasonCode::ALL
            .iter()
            .filter(|c| !c.keeps_payload())
            .map(|c| c.as_str())
            .collect();
        // CONTRACT.md § 4, "What is kept".
        assert_eq!(
            keep_nothing,
            [
                "malformed_envelope",
                "forbidden_document",
                "attachment_too_large",
                "attachment_hash_mismatch",
                "message_too_large",
                "withdrawn_by_operator"
            ]
        );
    }

    #[test]
    fn names_that_do_not_look_like_fields_are_withheld() {
        assert_eq!(safe_name("household"), "household");
        assert_eq!(safe_name("Anna Müller"), "(name withheld)");
        assert_eq!(safe_name(""), "(name withheld)");
    }
}
