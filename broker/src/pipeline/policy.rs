//! Data-protection rules that hold for every service (DESIGN.md step 3).
//!
//! - no copies of identity documents (`personalausweis`, `reisepass`,
//!   `aufenthaltstitel` by default): an authority may not copy or store an
//!   identity card (§ 20 PAuswG) → `forbidden_document`;
//! - at most `max_attachments` attachments and at most
//!   `max_attachment_bytes` per decoded file → `attachment_too_large`;
//! - the declared sha256 matches the decoded bytes → `attachment_hash_mismatch`.
//!
//! Data minimisation needs no code here: the form schemas refuse every field
//! they do not define. Pure: reads the envelope, returns sizes or a reason.

use base64::Engine;

use crate::config::PolicyConfig;
use crate::domain::reason::{Reason, ReasonCode, safe_name};
use crate::pipeline::envelope::Envelope;

pub struct Policy {
    config: PolicyConfig,
}

/// What the policy learned about an accepted attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentFacts {
    pub size: u64,
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Policy {
        Policy { config }
    }

    /// Check every attachment; on success, the decoded size of each in order.
    pub fn check(&self, envelope: &Envelope) -> Result<Vec<AttachmentFacts>, Reason> {
        let attachments = &envelope.attachments;
        if attachments.len() > self.config.max_attachments {
            return Err(Reason::new(
                ReasonCode::AttachmentTooLarge,
                format!(
                    "/attachments: {} attachments, at most {} allowed",
                    attachments.len(),
                    self.config.max_attachments
                ),
            ));
        }
        // Refuse identity documents before looking at any content.
        for (i, a) in attachments.iter().enumerate() {
            if self
                .config
                .forbidden_document_types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&a.document_type))
            {
                return Err(Reason::new(
                    ReasonCode::ForbiddenDocument,
                    format!(
                        "/attachments/{i}/document_type: {} is a copy of an identity document, which may not be transmitted or stored (§ 20 PAuswG)",
                        safe_name(&a.document_type)
                    ),
                ));
            }
        }
        let mut facts = Vec::with_capacity(attachments.len());
        for (i, a) in attachments.iter().enumerate() {
            // Judge the size from the base64 length first, so an oversized
            // file is refused without decoding it.
            let estimated = decoded_len_estimate(&a.content);
            if estimated > self.config.max_attachment_bytes {
                return Err(too_large(i, estimated, self.config.max_attachment_bytes));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(a.content.as_bytes())
                .map_err(|_| {
                    Reason::new(
                        ReasonCode::MalformedEnvelope,
                        format!("/attachments/{i}/content: not valid base64"),
                    )
                })?;
            let size = bytes.len() as u64;
            if size > self.config.max_attachment_bytes {
                return Err(too_large(i, size, self.config.max_attachment_bytes));
            }
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
            if !crate::domain::digest::hex(digest.as_ref()).eq_ignore_ascii_case(&a.sha256) {
                return Err(Reason::new(
                    ReasonCode::AttachmentHashMismatch,
                    format!("/attachments/{i}/sha256: does not match the decoded content"),
                ));
            }
            facts.push(AttachmentFacts { size });
        }
        Ok(facts)
    }
}

fn too_large(i: usize, size: u64, limit: u64) -> Reason {
    Reason::new(
        ReasonCode::AttachmentTooLarge,
        format!("/attachments/{i}/content: {size} bytes decoded, at most {limit} allowed"),
    )
}

/// Decoded length of standard padded base64 text.
fn decoded_len_estimate(b64: &str) -> u64 {
    let len = b64.len() as u64;
    let padding = b64.bytes().rev().take_while(|&b| b == b'=').count() as u64;
    (len / 4 * 3).saturating_sub(padding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::digest::sha256_hex;
    use crate::domain::id::DestinationId;
    use crate::pipeline::envelope::EnvelopeAttachment;
    use serde_json::json;

    fn attachment(document_type: &str, bytes: &[u8]) -> EnvelopeAttachment {
        EnvelopeAttachment {
            id: "att-1".into(),
            filename: "Scan.pdf".into(),
            media_type: "application/pdf".into(),
            document_type: document_type.into(),
            sha256: sha256_hex(bytes),
            content: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    fn envelope(attachments: Vec<EnvelopeAttachment>) -> Envelope {
        Envelope {
            submission_id: crate::domain::id::SubmissionId::from_stored(
                "9b1d2f44-0c6e-4f0a-b3a5-2c7e51d8a903",
            ),
            service: "hzl".into(),
            destination: DestinationId::new("sozialamt-koeln"),
            portal: "sozialplattform".into(),
            submitted_at: "2026-11-21T14:02:11Z".into(),
            applicant_ref: None,
            form: json!({}),
            attachments,
        }
    }

    fn policy() -> Policy {
        Policy::new(PolicyConfig::default())
    }

    #[test]
    fn ordinary_attachments_pass_with_their_sizes() {
        let e = envelope(vec![attachment("mietvertrag", b"%PDF-1.4 hello")]);
        assert_eq!(
            policy().check(&e).unwrap(),
            vec![AttachmentFacts { size: 14 }]
        );
    }

    #[test]
    fn identity_documents_are_forbidden_in_any_case() {
        for t in ["personalausweis", "Reisepass", "aufenthaltstitel"] {
            let e = envelope(vec![attachment("mietvertrag", b"a"), attachment(t, b"id")]);
            let r = policy().check(&e).unwrap_err();
            assert_eq!(r.code, ReasonCode::ForbiddenDocument, "{t}");
            assert!(
                r.detail.starts_with("/attachments/1/document_type"),
                "{}",
                r.detail
            );
        }
    }

    #[test]
    fn a_wrong_hash_is_a_mismatch() {
        let mut a = attachment("kontoauszug", b"statement");
        a.sha256 = sha256_hex(b"something else");
        let r = policy().check(&envelope(vec![a])).unwrap_err();
        assert_eq!(r.code, ReasonCode::AttachmentHashMismatch);
    }

    #[test]
    fn size_and_count_limits_hold_exactly() {
        let p = Policy::new(PolicyConfig {
            max_attachment_bytes: 10,
            max_attachments: 2,
            ..PolicyConfig::default()
        });
        assert!(
            p.check(&envelope(vec![attachment("x", &[7u8; 10])]))
                .is_ok()
        );
        let r = p
            .check(&envelope(vec![attachment("x", &[7u8; 11])]))
            .unwrap_err();
        assert_eq!(r.code, ReasonCode::AttachmentTooLarge);
        assert!(r.detail.contains("at most 10"), "{}", r.detail);
        let three = vec![
            attachment("x", b"1"),
            attachment("x", b"2"),
            attachment("x", b"3"),
        ];
        let r = p.check(&envelope(three)).unwrap_err();
        assert_eq!(r.code, ReasonCode::AttachmentTooLarge);
        assert!(r.detail.contains("3 attachments"), "{}", r.detail);
    }

    #[test]
    fn the_estimate_matches_real_decoding() {
        for n in 0..20usize {
            let data = vec![1u8; n];
            let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
            assert_eq!(decoded_len_estimate(&b64), n as u64);
        }
    }
}
