//! Receipt events: the JSON announced to a submission's portal (CONTRACT.md
//! § 3), built from a receipt or a parked submission and committed to the
//! outbox with it.
//!
//! The event goes to the topic exchange `kurier.receipts` with the portal as
//! routing key, persistent, and is confirmed by RabbitMQ before the intake
//! message is acked. It carries ids, status, reference, attempts and reason
//! code: no personal data. Pure: builds bytes, touches nothing.

use serde::Serialize;

use super::{Parked, Receipt};
use crate::domain::id::{DestinationId, SubmissionId};
use crate::domain::time::Timestamp;

/// The JSON body of a receipt event.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ReceiptEvent<'a> {
    pub submission_id: &'a SubmissionId,
    pub status: &'a str,
    pub service: Option<&'a str>,
    pub destination: Option<&'a DestinationId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<&'a str>,
    pub attempts: i64,
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

impl<'a> ReceiptEvent<'a> {
    pub fn of(receipt: &'a Receipt) -> ReceiptEvent<'a> {
        let delivered = receipt.status == crate::domain::status::ReceiptStatus::Delivered;
        ReceiptEvent {
            submission_id: &receipt.submission_id,
            status: receipt.status.as_str(),
            service: receipt.service.as_deref(),
            destination: receipt.destination.as_ref(),
            reference: receipt.reference.as_deref().filter(|_| delivered),
            attempts: receipt.attempts,
            at: receipt.completed_at,
            reason: receipt.reason_code.as_deref().filter(|_| !delivered),
        }
    }
}

/// The outbox body of a terminal receipt's event. Its `seq` is added when
/// it is published ([`with_seq`]): the database assigns it in the receipt's
/// transaction.
pub fn terminal_event(receipt: &Receipt) -> Vec<u8> {
    // Serialising a struct of strings and integers cannot fail.
    serde_json::to_vec(&ReceiptEvent::of(receipt)).unwrap_or_default()
}

/// The outbox body of the `parked` event, sent once when a submission is
/// first parked (not terminal).
pub fn parked_event(parked: &Parked) -> Vec<u8> {
    let event = serde_json::json!({
        "submission_id": parked.submission_id,
        "status": "parked",
        "service": parked.service,
        "destination": parked.destination,
        "attempts": parked.attempts,
        "at": parked.first_failure_at,
        "next_attempt_at": parked.next_attempt_at,
    });
    serde_json::to_vec(&event).unwrap_or_default()
}

/// The receipt event of the authority's later answer (two-stage receipts,
/// [`super::answers`]): `accepted_by_authority` or `rejected_by_authority`,
/// with the delivered receipt's ids and reference (no `reason`) and the
/// authority's `reason_codes` (codes only, checked before they get here).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct AuthorityEvent<'a> {
    #[serde(flatten)]
    pub receipt: ReceiptEvent<'a>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub reason_codes: &'a [String],
}

/// The outbox body of an [`AuthorityEvent`] (its `seq` is added when it is
/// published, as for every event).
pub fn authority_event(event: &AuthorityEvent<'_>) -> Vec<u8> {
    serde_json::to_vec(event).unwrap_or_default()
}

/// An outbox body with its sequence number: `{…, "seq": n}`.
pub fn with_seq(body: &[u8], seq: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    match body.iter().rposition(|b| *b == b'}') {
        Some(end)
            if body[..end]
                .iter()
                .any(|b| !b.is_ascii_whitespace() && *b != b'{') =>
        {
            out.extend_from_slice(&body[..end]);
            out.extend_from_slice(format!(",\"seq\":{seq}}}").as_bytes());
        }
        _ => out.extend_from_slice(format!("{{\"seq\":{seq}}}").as_bytes()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(status: &str) -> Receipt {
        let status = crate::domain::status::ReceiptStatus::parse(status).expect("a receipt status");
        Receipt {
            submission_id: SubmissionId::from_stored("3f0b6c1e-8a4d-4c1e-9f57-1d2a7b9e0c11"),
            service: Some("hzl".into()),
            destination: Some(DestinationId::new("sozialamt-koeln")),
            portal: Some("sozialplattform".into()),
            status,
            reason_code: (status != "delivered").then(|| "authority_rejected".into()),
            reason_detail: Some("status 422".into()),
            http_status: Some(201),
            reference: Some("2026-HzL-4711".into()),
            attempts: 2,
            received_sha256: "00".into(),
            sent_sha256: None,
            submitted_at: None,
            received_at: crate::domain::time::Timestamp::parse("2026-11-23T10:14:59.000000Z")
                .unwrap(),
            completed_at: crate::domain::time::Timestamp::parse("2026-11-23T10:15:00.000000Z")
                .unwrap(),
        }
    }

    #[test]
    fn a_delivered_event_has_the_reference_and_no_reason() {
        let r = receipt("delivered");
        let json = serde_json::to_value(ReceiptEvent::of(&r)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "submission_id": "3f0b6c1e-8a4d-4c1e-9f57-1d2a7b9e0c11",
                "status": "delivered", "service": "hzl", "destination": "sozialamt-koeln",
                "reference": "2026-HzL-4711", "attempts": 2, "at": "2026-11-23T10:15:00.000000Z"
            })
        );
    }

    #[test]
    fn the_sequence_number_is_added_to_the_event() {
        let r = receipt("delivered");
        let json: serde_json::Value =
            serde_json::from_slice(&with_seq(&terminal_event(&r), 2)).unwrap();
        assert_eq!(json["seq"], 2);
        assert_eq!(json["status"], "delivered");
        assert_eq!(with_seq(b"{}", 1), br#"{"seq":1}"#);
    }

    #[test]
    fn a_rejected_event_has_the_reason_and_no_reference() {
        let r = receipt("rejected");
        let json = serde_json::to_value(ReceiptEvent::of(&r)).unwrap();
        assert_eq!(json["reason"], "authority_rejected");
        assert!(json.get("reference").is_none());
    }
}
