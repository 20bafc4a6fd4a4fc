//! The SQL of two-stage receipts ([`crate::delivery::answers`], [`crate::pipeline::answers`]): which delivered
//! submissions still await the authority's answer, and the answer committed
//! with its receipt event (outbox) in one transaction.
//!
//! What is awaited is a transport message id kept in `transport_messages`
//! (kept before sending, [`Store::keep_transport_message_id`]) whose receipt
//! says `delivered`: a transport that keeps its message id there and has a
//! report source needs nothing else. Migration 0008 adds the columns.
//! Metadata only: ids, times, the authority's codes.

use serde::Serialize;

use super::{Store, StoreError};
use crate::domain::id::{DestinationId, SubmissionId};
use crate::domain::time::Timestamp;

/// The status of the second receipt event (CONTRACT.md § 3).
pub const ACCEPTED_BY_AUTHORITY: &str = "accepted_by_authority";
pub const REJECTED_BY_AUTHORITY: &str = "rejected_by_authority";

/// Most reason codes an answer carries.
pub const MAX_REASON_CODES: usize = 16;
/// Longest reason code, in characters.
pub const MAX_REASON_CODE_CHARS: usize = 64;

/// A delivered submission whose authority's answer is awaited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Awaiting {
    pub submission_id: SubmissionId,
    pub destination: DestinationId,
    /// `transport_messages.transport`, e.g. `xta2`.
    pub transport: String,
    /// The transport's own id of the message (XTA 2: from createMessageId).
    pub message_id: String,
    /// When the receipt says it was delivered.
    pub delivered_at: Timestamp,
    /// When the report source was last asked; `None`: never.
    pub last_polled_at: Option<Timestamp>,
}

/// What the authority answered, as a transport reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityAnswer {
    pub accepted: bool,
    /// The authority's codes: each `[A-Za-z0-9_.:-]{1,64}`, at most 16
    /// ([`AuthorityAnswer::checked`]); never free text.
    pub reason_codes: Vec<String>,
}

impl AuthorityAnswer {
    pub fn accepted(reason_codes: Vec<String>) -> AuthorityAnswer {
        AuthorityAnswer {
            accepted: true,
            reason_codes,
        }
    }

    pub fn rejected(reason_codes: Vec<String>) -> AuthorityAnswer {
        AuthorityAnswer {
            accepted: false,
            reason_codes,
        }
    }

    /// Is `code` a reason code as the contract allows it?
    pub fn is_code(code: &str) -> bool {
        (1..=MAX_REASON_CODE_CHARS).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    }

    /// The answer with only codes of the allowed form, the first 16 of them,
    /// and how many were left out. An answer is untrusted input: a "code"
    /// that is free text could carry personal data, so it is dropped, never
    /// shortened or kept.
    pub fn checked(mut self) -> (AuthorityAnswer, usize) {
        let given = self.reason_codes.len();
        self.reason_codes.retain(|c| AuthorityAnswer::is_code(c));
        self.reason_codes.dedup();
        self.reason_codes.truncate(MAX_REASON_CODES);
        let dropped = given - self.reason_codes.len();
        (self, dropped)
    }

    /// The status of its receipt event.
    pub fn status(&self) -> &'static str {
        if self.accepted {
            ACCEPTED_BY_AUTHORITY
        } else {
            REJECTED_BY_AUTHORITY
        }
    }
}

/// How many submissions of a destination await an answer, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AwaitingSummary {
    pub destination: DestinationId,
    pub count: i64,
    /// When the oldest of them was delivered.
    pub oldest_delivered_at: Timestamp,
}

/// A submission's message at a transport that reports answers, as the
/// console's search shows it: whether (and what) the authority answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TransportAnswer {
    pub destination: DestinationId,
    pub transport: String,
    /// When the transport message id was kept (just before sending).
    pub created_at: Timestamp,
    pub last_polled_at: Option<Timestamp>,
    /// `None`: no answer yet.
    pub answered_at: Option<Timestamp>,
    pub accepted: Option<bool>,
    /// The authority's codes, space-separated.
    pub reason_codes: Option<String>,
}

/// The receipt fields an answer's event repeats.
#[derive(sqlx::FromRow)]
struct Delivered {
    service: Option<String>,
    destination: Option<DestinationId>,
    reference: Option<String>,
    attempts: i64,
}

/// Delivered, unanswered: the rows the poller asks about.
const AWAITING: &str = "SELECT t.submission_id, t.destination, t.transport, t.message_id, \
     r.completed_at AS delivered_at, t.last_polled_at \
     FROM transport_messages t JOIN receipts r \
     ON r.submission_id = t.submission_id AND r.destination = t.destination \
     WHERE t.destination = $1 AND t.answered_at IS NULL AND r.status = 'delivered' \
     AND (t.last_polled_at_ts IS NULL OR t.last_polled_at_ts < $2) \
     ORDER BY t.last_polled_at_ts NULLS FIRST, r.completed_at_ts LIMIT $3";

/// The answer, once: only while unanswered and delivered. Its `seq` follows
/// every event the submission had (the receipt's own, and earlier answers).
const ANSWER: &str = "UPDATE transport_messages SET answered_at = $3, accepted = $4, \
     reason_codes = $5, answer_seq = 1 + (SELECT MAX(s) FROM (\
     SELECT events AS s FROM receipts WHERE submission_id = $1 \
     UNION ALL SELECT answer_seq FROM transport_messages WHERE submission_id = $1) AS seqs) \
     WHERE submission_id = $1 AND destination = $2 AND answered_at IS NULL \
     AND EXISTS (SELECT 1 FROM receipts WHERE submission_id = $1 AND destination = $2 \
     AND status = 'delivered')";

const DELIVERED: &str = "SELECT service, destination, reference, attempts FROM receipts \
     WHERE submission_id = $1";

/// The answer's receipt event, in the answer's transaction.
const OUTBOX_ANSWER_EVENT: &str = "INSERT INTO outbox (submission_id, seq, routing_key, body, created_at) \
     SELECT t.submission_id, t.answer_seq, r.portal, $3, $4 \
     FROM transport_messages t JOIN receipts r ON r.submission_id = t.submission_id \
     WHERE t.submission_id = $1 AND t.destination = $2 AND r.portal IS NOT NULL";

const POLLED: &str = "UPDATE transport_messages SET last_polled_at = $3 \
     WHERE submission_id = $1 AND destination = $2 AND answered_at IS NULL";

const SUMMARY: &str = "SELECT t.destination, COUNT(*) AS count, \
     MIN(r.completed_at_ts) AS oldest_delivered_at \
     FROM transport_messages t JOIN receipts r \
     ON r.submission_id = t.submission_id AND r.destination = t.destination \
     WHERE t.answered_at IS NULL AND r.status = 'delivered' \
     GROUP BY t.destination ORDER BY t.destination";

impl Store {
    /// Up to `limit` submissions delivered at `destination` that await the
    /// authority's answer and were not asked about since `polled_before`,
    /// least recently asked first.
    pub async fn awaiting(
        &self,
        destination: &DestinationId,
        polled_before: Timestamp,
        limit: i64,
    ) -> Result<Vec<Awaiting>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, Awaiting>(AWAITING)
            .bind(destination)
            .bind(polled_before.typed())
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        Ok(rows)
    }

    /// Note that the report source was asked about `submission_ids` at `at`
    /// and had no answer yet.
    pub async fn polled(
        &self,
        destination: &DestinationId,
        submission_ids: &[&SubmissionId],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            for id in submission_ids {
                sqlx::query(POLLED)
                    .bind(id)
                    .bind(destination)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(())
    }

    /// Commit the authority's answers for submissions of `destination`, each
    /// with its receipt event in the outbox, all in one transaction. An
    /// answer already recorded (the same report seen again, another
    /// instance faster) or for a submission not delivered there changes
    /// nothing. The answers must be [`AuthorityAnswer::checked`]. Returns the
    /// submission ids whose answer is new.
    pub async fn record_answers(
        &self,
        destination: &DestinationId,
        answers: &[(SubmissionId, AuthorityAnswer)],
        at: Timestamp,
    ) -> Result<Vec<SubmissionId>, StoreError> {
        let mut new = Vec::new();
        in_tx!(self, tx => {
            for (id, answer) in answers {
                let codes = answer.reason_codes.join(" ");
                let done = sqlx::query(ANSWER)
                    .bind(id)
                    .bind(destination)
                    .bind(at)
                    .bind(answer.accepted)
                    .bind(&codes)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    continue;
                }
                let d: Delivered = sqlx::query_as(DELIVERED)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let body = super::events::authority_event(&super::events::AuthorityEvent {
                    receipt: super::events::ReceiptEvent {
                        submission_id: id,
                        status: answer.status(),
                        service: d.service.as_deref(),
                        destination: d.destination.as_ref(),
                        reference: d.reference.as_deref(),
                        attempts: d.attempts,
                        at,
                        reason: None,
                    },
                    reason_codes: &answer.reason_codes,
                });
                sqlx::query(OUTBOX_ANSWER_EVENT)
                    .bind(id)
                    .bind(destination)
                    .bind(body)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                new.push(id.clone());
            }
        });
        Ok(new)
    }

    /// Per destination: how many delivered submissions await the
    /// authority's answer, and when the oldest was delivered.
    pub async fn awaiting_summary(&self) -> Result<Vec<AwaitingSummary>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, AwaitingSummary>(SUMMARY)
            .fetch_all(pool)
            .await)?;
        Ok(rows)
    }

    /// Every transport message of a submission with its answer, if any.
    pub async fn transport_answers(
        &self,
        submission_id: &SubmissionId,
    ) -> Result<Vec<TransportAnswer>, StoreError> {
        const SQL: &str = "SELECT destination, transport, created_at, last_polled_at, answered_at, \
             accepted, reason_codes FROM transport_messages WHERE submission_id = $1 \
             ORDER BY destination";
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, TransportAnswer>(SQL)
            .bind(submission_id)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// The recorded answer of a submission at a destination, if any:
    /// (accepted, reason codes, seq of its event).
    pub async fn authority_answer(
        &self,
        submission_id: &SubmissionId,
        destination: &DestinationId,
    ) -> Result<Option<(bool, Vec<String>, i64)>, StoreError> {
        const SQL: &str = "SELECT accepted, reason_codes, answer_seq FROM transport_messages \
             WHERE submission_id = $1 AND destination = $2 AND answered_at IS NOT NULL";
        let row: Option<(bool, Option<String>, i64)> = on_pool!(self, pool => sqlx::query_as(SQL)
            .bind(submission_id)
            .bind(destination)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|(accepted, codes, seq)| {
            let codes = codes
                .unwrap_or_default()
                .split(' ')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            (accepted, codes, seq)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_codes_of_the_allowed_form_are_kept_at_most_sixteen() {
        let (a, dropped) = AuthorityAnswer::rejected(vec![
            "9032".into(),
            "urn:de:xta:9033".into(),
            "Frau Müller".into(),
            "has space".into(),
            String::new(),
            "x".repeat(65),
            "A_b.c-d:1".into(),
        ])
        .checked();
        assert_eq!(a.reason_codes, ["9032", "urn:de:xta:9033", "A_b.c-d:1"]);
        assert_eq!(dropped, 4);
        assert!(AuthorityAnswer::is_code(&"x".repeat(64)));
        let many: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let (a, dropped) = AuthorityAnswer::accepted(many).checked();
        assert_eq!(a.reason_codes.len(), MAX_REASON_CODES);
        assert_eq!(dropped, 4);
        assert_eq!(a.status(), ACCEPTED_BY_AUTHORITY);
    }
}
