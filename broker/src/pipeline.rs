//! The path of one submission (DESIGN.md): decode → validate → policy →
//! route → render → deliver → record receipt → announce → ack.
//!
//! Each step lives in the module of its name; this file only strings them
//! together and decides the end: delivered, rejected or dead-lettered, each
//! recorded durably before the AMQP message is acked. A submission whose
//! receipt already says delivered is never sent again. The payload lives only
//! in memory for the duration of this function: it is not written to the
//! database, a log line or a file, and is dropped once the message is acked.

use std::time::Instant;

use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};

use crate::config::Config;
use crate::deliver::{Outcome, Request};
use crate::envelope::{self, Envelope};
use crate::intake;
use crate::policy::{Policy, sha256_hex};
use crate::reason::{Reason, ReasonCode};
use crate::receipt::{ReceiptEvent, now};
use crate::render;
use crate::route::Routes;
use crate::shutdown::Shutdown;
use crate::store::{DeadLetter, Receipt, Record, Recorder, Store, status};
use crate::validate::Schemas;

/// Everything a submission's path needs, built once at start.
pub struct Pipeline {
    pub config: Config,
    pub schemas: Schemas,
    pub policy: Policy,
    pub routes: Routes,
    pub store: Store,
    pub recorder: Recorder,
}

/// What is known about a submission, however broken its envelope.
#[derive(Default)]
struct Ids {
    submission_id: Option<String>,
    service: Option<String>,
    destination: Option<String>,
    portal: Option<String>,
    submitted_at: Option<String>,
}

impl Ids {
    fn of(envelope: &Envelope) -> Ids {
        Ids {
            submission_id: Some(envelope.submission_id.clone()),
            service: Some(envelope.service.clone()),
            destination: Some(envelope.destination.clone()),
            portal: Some(envelope.portal.clone()),
            submitted_at: Some(envelope.submitted_at.clone()),
        }
    }

    fn hinted(value: &serde_json::Value) -> Ids {
        Ids {
            submission_id: envelope::submission_id_hint(value),
            service: envelope::identifier_hint(value, "service"),
            destination: envelope::identifier_hint(value, "destination"),
            portal: envelope::identifier_hint(value, "portal"),
            submitted_at: None,
        }
    }
}

/// How a submission ends in this process.
// Moved once per submission: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
enum End {
    /// A terminal record to commit, then announce, then ack.
    Terminal(Record),
    /// Nothing finished (shutdown): leave the message unacked.
    Unfinished,
}

impl Pipeline {
    pub async fn process(&self, delivery: Delivery, publisher: &Channel, shutdown: &Shutdown) {
        let started = Instant::now();
        let received_at = now();
        let received_sha256 = sha256_hex(&delivery.data);
        let amqp_message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str())
            .filter(|m| uuid::Uuid::parse_str(m).is_ok())
            .map(str::to_owned);

        let end = match self.decode(&delivery.data) {
            Err((ids, reason)) => Ok(End::Terminal(dead_letter(
                &ids,
                amqp_message_id,
                &reason,
                None,
                status::DEAD_LETTERED,
                &received_sha256,
                &received_at,
                0,
                None,
            ))),
            Ok(envelope) => {
                self.relay(
                    &envelope,
                    &received_sha256,
                    &received_at,
                    amqp_message_id,
                    shutdown,
                )
                .await
            }
        };
        let record = match end {
            Ok(End::Terminal(record)) => record,
            Ok(End::Unfinished) => {
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "submission interrupted by shutdown; left unacked for redelivery"
                );
                return;
            }
            Err(Skip::Duplicate(existing)) => {
                tracing::info!(
                    submission_id = %existing.submission_id,
                    status = %existing.status,
                    redelivered = delivery.redelivered,
                    "submission already has a terminal receipt; not sent again"
                );
                if self.announce(&existing, publisher).await {
                    ack(&delivery, &existing.submission_id).await;
                }
                return;
            }
            Err(Skip::Retry(why)) => {
                tracing::warn!(error = %why, "cannot finish submission now; returning it to the queue");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return,
                }
                let _ = delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await;
                return;
            }
        };
        self.finish(&delivery, record, publisher, shutdown, started)
            .await;
    }

    /// Body → schema-valid envelope, or the reason why not.
    #[allow(clippy::result_large_err)]
    fn decode(&self, body: &[u8]) -> Result<Envelope, (Ids, Reason)> {
        let value = envelope::parse_body(body).map_err(|r| (Ids::default(), r))?;
        if let Err(reason) = self.schemas.check_envelope(&value) {
            return Err((Ids::hinted(&value), reason));
        }
        let ids = Ids::hinted(&value);
        envelope::from_value(value).map_err(|r| (ids, r))
    }

    /// Steps 2–7 for a decoded envelope.
    async fn relay(
        &self,
        envelope: &Envelope,
        received_sha256: &str,
        received_at: &str,
        amqp_message_id: Option<String>,
        shutdown: &Shutdown,
    ) -> Result<End, Skip> {
        let ids = Ids::of(envelope);
        let id = envelope.submission_id.as_str();
        // Effectively once: never send what is already delivered; a
        // redelivered copy of a finished submission only repeats its receipt.
        match self.store.receipt(id).await {
            Ok(Some(existing))
                if existing.status == status::DELIVERED
                    || existing.received_sha256 == received_sha256 =>
            {
                return Err(Skip::Duplicate(existing));
            }
            Ok(_) => {}
            Err(e) => return Err(Skip::Retry(e.to_string())),
        }
        let fail = |reason: Reason| {
            End::Terminal(dead_letter(
                &ids,
                amqp_message_id.clone(),
                &reason,
                None,
                status::DEAD_LETTERED,
                received_sha256,
                received_at,
                0,
                None,
            ))
        };
        if let Err(reason) = self.schemas.check_form(&envelope.service, &envelope.form) {
            return Ok(fail(reason));
        }
        let facts = match self.policy.check(envelope) {
            Ok(facts) => facts,
            Err(reason) => return Ok(fail(reason)),
        };
        let destination = match self.routes.route(&envelope.destination) {
            Ok(d) => d,
            Err(reason) => return Ok(fail(reason)),
        };
        let rendered = match render::render(&destination, envelope, &facts, &self.config.sender) {
            Ok(r) => r,
            Err(reason) => return Ok(fail(reason)),
        };
        drop(facts);
        let request = Request {
            submission_id: id,
            service: &envelope.service,
            content_type: &rendered.content_type,
            body: rendered.body.clone(),
        };
        let (outcome, attempts) = destination.deliverer.deliver(&request, shutdown).await;
        drop(request);
        let attempts = i64::from(attempts);
        match outcome {
            Outcome::Delivered {
                status: code,
                reference,
            } => Ok(End::Terminal(Record::Receipt(Receipt {
                submission_id: id.to_owned(),
                service: ids.service.clone(),
                destination: ids.destination.clone(),
                portal: ids.portal.clone(),
                status: status::DELIVERED.into(),
                reason_code: None,
                reason_detail: None,
                http_status: Some(i64::from(code)),
                reference,
                attempts,
                received_sha256: received_sha256.to_owned(),
                sent_sha256: Some(rendered.sha256),
                submitted_at: ids.submitted_at.clone(),
                received_at: received_at.to_owned(),
                completed_at: now(),
            }))),
            Outcome::Refused { status: code } => {
                let reason = Reason::new(
                    ReasonCode::AuthorityRejected,
                    format!("authority {} answered HTTP {code}", destination.id),
                );
                Ok(End::Terminal(dead_letter(
                    &ids,
                    amqp_message_id,
                    &reason,
                    Some(i64::from(code)),
                    status::REJECTED,
                    received_sha256,
                    received_at,
                    attempts,
                    Some(rendered.sha256),
                )))
            }
            Outcome::Interrupted(_) | Outcome::Transient(_) => Ok(End::Unfinished),
        }
    }

    /// Commit the record (retrying while the database is unavailable), announce
    /// it to the portal, then ack. Nothing is acked before its record is durable.
    async fn finish(
        &self,
        delivery: &Delivery,
        record: Record,
        publisher: &Channel,
        shutdown: &Shutdown,
        started: Instant,
    ) {
        let mut wait = std::time::Duration::from_millis(100);
        loop {
            match self.recorder.record(record.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot commit receipt; message stays unacked");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    wait = (wait * 2).min(std::time::Duration::from_secs(10));
                }
            }
        }
        let (receipt, dead_letter) = match &record {
            Record::Receipt(r) => (Some(r), None),
            Record::DeadLetter {
                dead_letter,
                receipt,
            } => (receipt.as_ref(), Some(dead_letter)),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match (receipt, dead_letter) {
            (Some(r), _) => tracing::info!(
                submission_id = %r.submission_id,
                service = r.service.as_deref().unwrap_or(""),
                destination = r.destination.as_deref().unwrap_or(""),
                outcome = %r.status,
                reason = r.reason_code.as_deref().unwrap_or(""),
                attempts = r.attempts,
                elapsed_ms,
                "submission finished"
            ),
            (None, Some(d)) => tracing::info!(
                amqp_message_id = d.amqp_message_id.as_deref().unwrap_or(""),
                outcome = status::DEAD_LETTERED,
                reason = %d.reason_code,
                elapsed_ms,
                "undecodable message dead-lettered"
            ),
            (None, None) => {}
        }
        if let Some(receipt) = receipt
            && !self.announce(receipt, publisher).await
        {
            return;
        }
        let id = receipt.map(|r| r.submission_id.as_str()).unwrap_or("");
        ack(delivery, id).await;
    }

    /// Publish the receipt event to the portal (confirmed). `false`: not
    /// published, so the message must stay unacked.
    async fn announce(&self, receipt: &Receipt, publisher: &Channel) -> bool {
        let Some(portal) = receipt.portal.as_deref() else {
            return true;
        };
        let body = match serde_json::to_vec(&ReceiptEvent::of(receipt)) {
            Ok(b) => b,
            Err(_) => return false,
        };
        match intake::publish_confirmed(
            publisher,
            &self.config.amqp.receipts_exchange,
            portal,
            &receipt.submission_id,
            &body,
            false,
        )
        .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(submission_id = %receipt.submission_id, error = %e, "receipt event not published; message stays unacked and will be delivered again");
                false
            }
        }
    }
}

/// Why a submission is not finished by this delivery.
#[allow(clippy::large_enum_variant)]
enum Skip {
    /// A terminal receipt exists already.
    Duplicate(Receipt),
    /// A passing failure (database unreachable): requeue after a pause.
    Retry(String),
}

async fn ack(delivery: &Delivery, submission_id: &str) {
    match delivery.acker.ack(BasicAckOptions::default()).await {
        Ok(true) => {}
        // lapin: after a reconnect the old delivery tag is void. RabbitMQ
        // delivers the message again; its receipt makes that a no-op.
        Ok(false) | Err(_) => tracing::warn!(
            submission_id,
            "ack not possible on this connection; the message will be delivered again and recognised by its receipt"
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn dead_letter(
    ids: &Ids,
    amqp_message_id: Option<String>,
    reason: &Reason,
    http_status: Option<i64>,
    receipt_status: &str,
    received_sha256: &str,
    received_at: &str,
    attempts: i64,
    sent_sha256: Option<String>,
) -> Record {
    let created_at = now();
    let receipt = ids.submission_id.as_ref().map(|id| Receipt {
        submission_id: id.clone(),
        service: ids.service.clone(),
        destination: ids.destination.clone(),
        portal: ids.portal.clone(),
        status: receipt_status.to_owned(),
        reason_code: Some(reason.code.as_str().to_owned()),
        reason_detail: Some(reason.detail.clone()),
        http_status,
        reference: None,
        attempts,
        received_sha256: received_sha256.to_owned(),
        sent_sha256,
        submitted_at: ids.submitted_at.clone(),
        received_at: received_at.to_owned(),
        completed_at: created_at.clone(),
    });
    Record::DeadLetter {
        dead_letter: DeadLetter {
            id: 0,
            submission_id: ids.submission_id.clone(),
            amqp_message_id,
            service: ids.service.clone(),
            destination: ids.destination.clone(),
            portal: ids.portal.clone(),
            reason_code: reason.code.as_str().to_owned(),
            reason_detail: reason.detail.clone(),
            http_status,
            received_sha256: received_sha256.to_owned(),
            created_at,
        },
        receipt,
    }
}
