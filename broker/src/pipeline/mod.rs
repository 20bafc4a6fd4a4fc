//! # Room `pipeline`: the path of one submission
//!
//! Owns the steps from a received body to a committed outcome: decoding the
//! envelope (`envelope`), `validate`, `policy`, `route`, `render`,
//! then delivery, record and ack (`acks`); the scheduler that brings
//! parked submissions back (`parked`), certificate reloads (`reload`), and
//! the poller of the authority's later answers (`answers`, two-stage
//! receipts).
//! May use every room below it (`delivery`, `store`, `vault`, `queue`,
//! `telemetry`, `config`, `domain`); the AMQP consumer (`intake`) and the
//! operators (`operator`) use it, never the other way round.
//!
//! The path of one submission (DESIGN.md): decode → validate → policy →
//! route → render → deliver → record → announce → ack. The duplicate check
//! (has this submission a receipt, or is it parked?) runs beside validate …
//! render (`prepare`, which touches no database); its answer decides first.
//!
//! Each step lives in the module of its name; this file strings them together
//! and decides how a submission ends here:
//! - **terminal** (delivered, rejected, dead-lettered): the receipt (and dead
//!   letter) is committed together with its receipt event (the outbox), any
//!   parked copy erased in the same transaction, and only then the AMQP
//!   message acked; the outbox relay publishes the event;
//! - **not finished** (a transient failure the decision parks, an open
//!   circuit, a paused destination, shutdown): the payload is sealed and
//!   parked, committed, then acked; the scheduler (`park`) takes it from there.
//!
//! What each attempt's outcome means is decided by
//! [`crate::queue::decision::decide`]; this file only carries it out.
//!
//! A submission whose receipt says delivered is never sent again; one already
//! parked is only acked. The payload is in memory while this runs and at rest
//! only sealed (vault); nothing of it reaches a log line.

pub(crate) mod acks;
pub mod answers;
pub mod envelope;
pub(crate) mod parked;
pub mod policy;
pub(crate) mod reload;
pub(crate) mod render;
pub(crate) mod route;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pipeline::acks::Acks;
use lapin::message::Delivery;

use crate::config::Config;
use crate::delivery::Request;
use crate::domain::digest::sha256_hex;
use crate::domain::id::{DestinationId, SubmissionId};
use crate::domain::reason::{Reason, ReasonCode};
use crate::domain::status::ReceiptStatus;
use crate::domain::time::{Timestamp, now};
use crate::pipeline::validate::Schemas;
use crate::queue::decision::{self, Disposition, History, Run};
use crate::shutdown::Shutdown;
use crate::store::{DeadLetter, Parked, Receipt, Record, Recorder, Store};
use crate::vault::Vault;
use envelope::Envelope;
use policy::Policy;
use route::Routes;

/// Everything a submission's path needs, built once at start.
pub struct Pipeline {
    pub(crate) config: Config,
    pub(crate) schemas: Schemas,
    pub(crate) policy: Policy,
    pub(crate) routes: Routes,
    pub(crate) store: Store,
    pub(crate) recorder: Recorder,
    pub(crate) vault: Arc<Vault>,
    pub(crate) xsd: crate::xsd::Validator,
}

/// The AMQP `message_id`, if it is a submission id (a UUID).
fn message_id(delivery: &Delivery) -> Option<SubmissionId> {
    delivery
        .properties
        .message_id()
        .as_ref()
        .and_then(|m| SubmissionId::parse(m.as_str()))
}

/// What is known about a submission, however broken its envelope.
#[derive(Default, Clone)]
struct Ids {
    submission_id: Option<SubmissionId>,
    service: Option<String>,
    destination: Option<DestinationId>,
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

    /// What the AMQP properties say, for a body that is not read: the
    /// submission id from `message_id`, the portal from `app_id`, service
    /// and destination from the routing key `<service>.<destination>`; each
    /// only if it looks like an identifier.
    fn from_properties(delivery: &Delivery) -> Ids {
        let property = |value: Option<&str>| {
            value
                .filter(|v| envelope::looks_like_identifier(v))
                .map(str::to_owned)
        };
        let (service, destination) = delivery
            .routing_key
            .as_str()
            .split_once('.')
            .map_or((None, None), |(s, d)| {
                (property(Some(s)), property(Some(d)).map(DestinationId::new))
            });
        Ids {
            submission_id: message_id(delivery),
            service,
            destination,
            portal: property(delivery.properties.app_id().as_ref().map(|a| a.as_str())),
            submitted_at: None,
        }
    }

    /// Fill what the body did not say from the AMQP properties.
    fn or_properties(self, delivery: &Delivery) -> Ids {
        let p = Ids::from_properties(delivery);
        Ids {
            submission_id: self.submission_id.or(p.submission_id),
            service: self.service.or(p.service),
            destination: self.destination.or(p.destination),
            portal: self.portal.or(p.portal),
            submitted_at: self.submitted_at,
        }
    }

    fn hinted(value: &serde_json::Value) -> Ids {
        Ids {
            submission_id: envelope::submission_id_hint(value),
            service: envelope::identifier_hint(value, "service"),
            destination: envelope::identifier_hint(value, "destination").map(DestinationId::new),
            portal: envelope::identifier_hint(value, "portal"),
            submitted_at: None,
        }
    }
}

/// The received message, as far as the pipeline needs it.
struct Received<'a> {
    body: &'a [u8],
    sha256: String,
    at: Timestamp,
    amqp_message_id: Option<SubmissionId>,
    /// Attempts made before this run (parked submissions).
    prior_attempts: i64,
    /// A held AMQP message, or a parked submission's scheduled run.
    run: Run,
    /// Why the last attempt before this run failed (parked submissions).
    last_cause: Option<String>,
    /// The portal's trace context (held messages only; not kept when parked).
    traceparent: Option<String>,
}

impl Received<'_> {
    fn age(&self) -> Duration {
        now().since(self.at)
    }
}

/// A submission validated, routed and rendered: ready to send.
struct Ready {
    destination: Arc<route::Destination>,
    facts: Vec<policy::AttachmentFacts>,
    rendered: render::Rendered,
}

/// How one run of the path ends.
// Built and moved once per submission: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// A terminal record.
    Done(Record),
    /// Not finished: park (or re-schedule) with the attempts made so far,
    /// next attempt after `wait`.
    NotFinished {
        attempts: i64,
        cause: String,
        wait: Duration,
    },
}

impl Pipeline {
    /// A delivery from the intake queue.
    /// Carry one message from intake to its outcome; report it to `acks`
    /// once the outcome is committed (a message the database could not take
    /// is left unacked).
    pub async fn process(&self, delivery: Delivery, shutdown: &Shutdown, acks: &Acks) {
        let started = Instant::now();
        let received = Received {
            body: &delivery.data,
            sha256: sha256_hex(&delivery.data),
            at: now(),
            amqp_message_id: message_id(&delivery),
            prior_attempts: 0,
            run: Run::InPlace,
            last_cause: None,
            traceparent: crate::telemetry::trace::traceparent(&delivery.properties),
        };
        let limit = self.config.intake.max_message_bytes;
        if received.body.len() > limit {
            let reason = Reason::new(
                ReasonCode::MessageTooLarge,
                format!(
                    "the message body has {} bytes, more than [intake] max_message_bytes = {limit}; it was not read",
                    received.body.len()
                ),
            );
            let ids = Ids::from_properties(&delivery);
            self.dead_letter_unread(&delivery, acks, &ids, &received, &reason, shutdown, started)
                .await;
            return;
        }
        let envelope = match self.decode(received.body) {
            Ok(e) => e,
            Err((ids, reason)) => {
                let ids = ids.or_properties(&delivery);
                self.dead_letter_unread(
                    &delivery, acks, &ids, &received, &reason, shutdown, started,
                )
                .await;
                return;
            }
        };
        // Portals kept apart: the envelope's portal must be the publisher's.
        if let Err(reason) = self.check_portal(&envelope, &delivery) {
            let true_portal = self.portal_of(&delivery);
            let record = self.refusal(&envelope, &received, &reason, true_portal);
            self.finish(&delivery, acks, record, shutdown, started)
                .await;
            return;
        }
        // Effectively once: what is finished or parked is not run again.
        // While the database cannot say, the message is held (not returned:
        // each return counts towards a quorum queue's delivery limit).
        // Validation and rendering need no answer from the database: they run
        // while the duplicate check is in flight (one wait instead of two in
        // a row), and their result is used only once it has said "new".
        let mut held = false;
        let check = async {
            let mut wait = Duration::from_millis(200);
            loop {
                match self.already_handled(&envelope, &received.sha256).await {
                    Ok(handled) => break Some(handled),
                    Err(why) => {
                        held = true;
                        tracing::warn!(submission_id = %envelope.submission_id, error = %why, retry_in_ms = wait.as_millis() as u64, "cannot check the receipts; the message is held");
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.cancelled() => break None,
                        }
                        wait = (wait * 2).min(Duration::from_secs(10));
                    }
                }
            }
        };
        let (handled, prepared) = tokio::join!(check, self.prepare(&envelope));
        let Some(handled) = handled else { return };
        match handled {
            Handled::No => {}
            Handled::Terminal(existing) => {
                tracing::info!(
                    submission_id = %existing.submission_id,
                    status = %existing.status,
                    redelivered = delivery.redelivered,
                    "submission already has a terminal receipt; not sent again, its event is repeated"
                );
                let record = Record::RepeatEvent(*existing);
                self.finish(&delivery, acks, record, shutdown, started)
                    .await;
                return;
            }
            Handled::Parked => {
                tracing::info!(submission_id = %envelope.submission_id, "submission is already parked; acked");
                acks.finished(delivery.delivery_tag);
                return;
            }
            Handled::OtherPortal => {
                // The id is another portal's: neither silence that portal's
                // submission nor answer for it; tell this one.
                let reason = Reason::new(
                    ReasonCode::MalformedEnvelope,
                    "/submission_id: already used by a submission of another portal",
                );
                let portal = Some(envelope.portal.clone());
                let record = self.refusal(&envelope, &received, &reason, portal);
                self.finish(&delivery, acks, record, shutdown, started)
                    .await;
                return;
            }
        }
        // Held while the database was away: the destination may have been
        // reloaded and the document's time is old; prepare it afresh.
        let prepared = if held {
            self.prepare(&envelope).await
        } else {
            prepared
        };
        let step = self
            .send_prepared(&envelope, &received, prepared, shutdown)
            .await;
        let record = match step {
            Step::Done(record) => record,
            Step::NotFinished {
                attempts,
                cause,
                wait,
            } => match self.park(&envelope, &received, attempts, &cause, wait) {
                Ok(record) => record,
                Err(e) => {
                    tracing::error!(submission_id = %envelope.submission_id, error = %e, "cannot seal the submission for parking; left unacked");
                    return;
                }
            },
        };
        self.finish(&delivery, acks, record, shutdown, started)
            .await;
    }

    /// A message whose envelope was not read (too large, or undecodable):
    /// dead letter, committed, acked.
    #[allow(clippy::too_many_arguments)]
    async fn dead_letter_unread(
        &self,
        delivery: &Delivery,
        acks: &Acks,
        ids: &Ids,
        received: &Received<'_>,
        reason: &Reason,
        shutdown: &Shutdown,
        started: Instant,
    ) {
        let record = self.dead_letter(
            ids,
            received,
            reason,
            None,
            ReceiptStatus::DeadLettered,
            0,
            None,
        );
        self.finish(delivery, acks, record, shutdown, started).await;
    }

    /// A parked submission whose time has come (called by the scheduler).
    pub async fn retry_parked(&self, parked: Parked, shutdown: &Shutdown) {
        let started = Instant::now();
        let id = parked.submission_id.clone();
        // Paused, or the circuit open: no attempt, and no need to decrypt or
        // render; come back when one may be made (unless it has expired).
        if let Ok(destination) = self.routes.route(&parked.destination)
            && let Some((why, wait)) = destination.deliverer.blocked_for()
            && now() < parked.expires_at
        {
            let outcome = decision::Outcome::NotAttempted { why, wait };
            let history = History {
                run: Run::Parked,
                attempts_in_run: 0,
                attempts_total: u32::try_from(parked.attempts).unwrap_or(u32::MAX),
                age: Duration::ZERO,
                room_to_wait: false,
            };
            let policy = &destination.deliverer.policy;
            let Disposition::ParkFor(wait) =
                decision::decide(&outcome, &history, policy, decision::jitter_sample())
            else {
                return;
            };
            let record = Record::Reschedule {
                submission_id: id.clone(),
                attempts: parked.attempts,
                next_attempt_at: crate::domain::time::time_after(wait),
                last_cause: outcome.cause(),
            };
            if let Err(e) = self.recorder.record(record).await {
                tracing::warn!(submission_id = %id, error = %e, "cannot reschedule a parked submission");
            }
            return;
        }
        let body = match crate::store::shred::open(&self.vault, &self.store, &id, &parked.sealed())
            .await
        {
            Ok(b) => b,
            Err(e) => {
                // Leave it parked: a missing previous master key can be added.
                tracing::error!(submission_id = %id, error = %e, "cannot open a parked submission");
                return;
            }
        };
        let received = Received {
            body: &body,
            sha256: parked.received_sha256.clone(),
            at: parked.received_at,
            amqp_message_id: None,
            prior_attempts: parked.attempts,
            run: Run::Parked,
            last_cause: Some(parked.last_cause.clone()),
            traceparent: None,
        };
        let record = match self.decode(&body) {
            Err((ids, reason)) => self.dead_letter(
                &ids,
                &received,
                &reason,
                None,
                ReceiptStatus::DeadLettered,
                parked.attempts,
                None,
            ),
            Ok(envelope) => match self.relay(&envelope, &received, shutdown).await {
                Step::Done(record) => record,
                Step::NotFinished {
                    attempts,
                    cause,
                    wait,
                } => Record::Reschedule {
                    submission_id: id.clone(),
                    attempts,
                    next_attempt_at: crate::domain::time::time_after(wait),
                    last_cause: cause,
                },
            },
        };
        drop(body);
        if let Err(e) = self.recorder.record(record.clone()).await {
            // The lease runs out and the scheduler tries again.
            tracing::error!(submission_id = %id, error = %e, "cannot record the outcome of a parked submission");
            return;
        }
        self.log_end(&record, started);
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

    async fn already_handled(
        &self,
        envelope: &Envelope,
        received_sha256: &str,
    ) -> Result<Handled, String> {
        let id = &envelope.submission_id;
        // One round trip on the happy path; the whole receipt is read only
        // for a duplicate, whose event is repeated.
        let seen = self.recorder.seen(id).await.map_err(|e| e.to_string())?;
        // Another portal's submission id: neither a duplicate nor new.
        if seen.portal.as_deref().is_some_and(|p| p != envelope.portal) {
            return Ok(Handled::OtherPortal);
        }
        let terminal = seen.status.as_deref() == Some(ReceiptStatus::Delivered.as_str())
            || seen.received_sha256.as_deref() == Some(received_sha256);
        if terminal {
            return match self.store.receipt(id).await {
                Ok(Some(existing)) => Ok(Handled::Terminal(Box::new(existing))),
                Ok(None) => Err("the receipt vanished while it was read".into()),
                Err(e) => Err(e.to_string()),
            };
        }
        Ok(if seen.parked {
            Handled::Parked
        } else {
            Handled::No
        })
    }

    /// With `[[portals]]` configured, the AMQP `user_id` that published the
    /// message (RabbitMQ vouches for it) must be a user of the envelope's
    /// portal.
    fn check_portal(&self, envelope: &Envelope, delivery: &Delivery) -> Result<(), Reason> {
        if self.config.portals.is_empty() {
            return Ok(());
        }
        match self.portal_of(delivery) {
            Some(p) if p == envelope.portal => Ok(()),
            Some(_) => Err(Reason::new(
                ReasonCode::MalformedEnvelope,
                "/portal: not the portal of the AMQP user that published the submission",
            )),
            None => Err(Reason::new(
                ReasonCode::MalformedEnvelope,
                "the AMQP user_id property is missing or names no configured portal's user",
            )),
        }
    }

    /// The configured portal whose AMQP user published `delivery`.
    fn portal_of(&self, delivery: &Delivery) -> Option<String> {
        let user = delivery.properties.user_id().as_ref()?.as_str().to_owned();
        self.config
            .portals
            .iter()
            .find(|p| p.amqp_users.contains(&user))
            .map(|p| p.id.clone())
    }

    /// A dead letter that leaves the submission id's receipt alone (it may
    /// be another portal's): metadata only, its event to `portal` if known.
    fn refusal(
        &self,
        envelope: &Envelope,
        received: &Received<'_>,
        reason: &Reason,
        portal: Option<String>,
    ) -> Record {
        let mut ids = Ids::of(envelope);
        ids.portal = portal.clone();
        let record = self.dead_letter(
            &ids,
            received,
            reason,
            None,
            ReceiptStatus::DeadLettered,
            0,
            None,
        );
        let Record::DeadLetter {
            dead_letter,
            receipt: Some(receipt),
            ..
        } = record
        else {
            return record;
        };
        let notify = portal.map(|p| (p, crate::store::events::terminal_event(&receipt)));
        Record::DeadLetter {
            dead_letter,
            receipt: None,
            notify,
        }
    }

    /// Validate, apply the policy, route, render, deliver.
    async fn relay(
        &self,
        envelope: &Envelope,
        received: &Received<'_>,
        shutdown: &Shutdown,
    ) -> Step {
        let prepared = self.prepare(envelope).await;
        self.send_prepared(envelope, received, prepared, shutdown)
            .await
    }

    /// Deliver what `prepare` made ready, or dead-letter the submission
    /// with the reason it could not be.
    async fn send_prepared(
        &self,
        envelope: &Envelope,
        received: &Received<'_>,
        prepared: Result<Ready, Reason>,
        shutdown: &Shutdown,
    ) -> Step {
        match prepared {
            Ok(ready) => self.deliver(envelope, received, ready, shutdown).await,
            Err(reason) => Step::Done(self.dead_letter(
                &Ids::of(envelope),
                received,
                &reason,
                None,
                ReceiptStatus::DeadLettered,
                received.prior_attempts,
                None,
            )),
        }
    }

    /// Validate, apply the policy, route, render (and check against the
    /// XSD): everything before sending, none of it touching the database or
    /// the payload's keys; the reason of the first step that fails.
    async fn prepare(&self, envelope: &Envelope) -> Result<Ready, Reason> {
        self.schemas.check_form(&envelope.service, &envelope.form)?;
        let facts = self.policy.check(envelope)?;
        let destination = self.routes.route(&envelope.destination)?;
        let rendered = render::render(
            &destination,
            envelope,
            &facts,
            &self.config.sender,
            &self.xsd,
        )
        .await?;
        Ok(Ready {
            destination,
            facts,
            rendered,
        })
    }

    /// Send a prepared submission, retrying in place as the decision says.
    async fn deliver(
        &self,
        envelope: &Envelope,
        received: &Received<'_>,
        ready: Ready,
        shutdown: &Shutdown,
    ) -> Step {
        let Ready {
            destination,
            facts,
            rendered,
        } = ready;
        let ids = Ids::of(envelope);
        let prior = received.prior_attempts;
        let attachments = render::attachments(envelope, &facts);
        drop(facts);
        let request = Request {
            submission_id: &envelope.submission_id,
            service: &envelope.service,
            content_type: &rendered.content_type,
            body: rendered.body.clone(),
            traceparent: received.traceparent.as_deref(),
            attachments: &attachments,
        };
        let deliverer = &destination.deliverer;
        let prior_u32 = u32::try_from(prior).unwrap_or(u32::MAX);
        let mut made: u32 = 0;
        loop {
            let number = prior_u32.saturating_add(made).saturating_add(1);
            let started = Instant::now();
            let outcome = deliverer.attempt(&request, number).await;
            if outcome.attempted() {
                made += 1;
            }
            let history = History {
                run: received.run,
                attempts_in_run: made,
                attempts_total: prior_u32.saturating_add(made),
                age: received.age(),
                room_to_wait: deliverer.room_to_wait(),
            };
            let attempts = prior + i64::from(made);
            let disposition = decision::decide(
                &outcome,
                &history,
                &deliverer.policy,
                decision::jitter_sample(),
            );
            let wait = match &disposition {
                Disposition::RetryIn(wait) | Disposition::ParkFor(wait) => Some(*wait),
                _ => None,
            };
            if let Some(wait) = wait
                && outcome.attempted()
            {
                tracing::warn!(
                    submission_id = %envelope.submission_id,
                    destination = %destination.id,
                    attempt = number,
                    cause = %outcome.cause(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    retry_in_ms = wait.as_millis() as u64,
                    parked = matches!(disposition, Disposition::ParkFor(_)),
                    "delivery attempt failed"
                );
            }
            match disposition {
                Disposition::Delivered {
                    status: code,
                    reference,
                } => {
                    return Step::Done(Record::Receipt(Receipt {
                        submission_id: envelope.submission_id.clone(),
                        service: ids.service.clone(),
                        destination: ids.destination.clone(),
                        portal: ids.portal.clone(),
                        status: ReceiptStatus::Delivered,
                        reason_code: None,
                        reason_detail: reference
                            .as_deref()
                            .filter(|r| crate::delivery::reference_was_cut(r))
                            .map(|_| {
                                format!(
                                    "the authority's reference was cut to {} characters or had control characters replaced",
                                    crate::delivery::MAX_REFERENCE_CHARS
                                )
                            }),
                        http_status: Some(i64::from(code)),
                        reference,
                        attempts,
                        received_sha256: received.sha256.clone(),
                        sent_sha256: Some(rendered.sha256),
                        submitted_at: ids.submitted_at.clone(),
                        received_at: received.at,
                        completed_at: now(),
                    }));
                }
                Disposition::Rejected { status: code } => {
                    let reason = Reason::new(
                        ReasonCode::AuthorityRejected,
                        format!(
                            "authority {} answered {}",
                            destination.id,
                            deliverer.refusal(code)
                        ),
                    );
                    return Step::Done(self.dead_letter(
                        &ids,
                        received,
                        &reason,
                        Some(i64::from(code)),
                        ReceiptStatus::Rejected,
                        attempts,
                        Some(rendered.sha256),
                    ));
                }
                Disposition::Expire => {
                    let cause = match (&outcome, &received.last_cause) {
                        (decision::Outcome::NotAttempted { .. }, Some(last)) => last.clone(),
                        _ => outcome.cause(),
                    };
                    let reason = Reason::new(
                        ReasonCode::DeliveryExpired,
                        format!(
                            "not delivered to {} within its maximum age of {} s ({attempts} attempts, last cause {})",
                            destination.id,
                            deliverer.policy.max_age.as_secs(),
                            cause
                        ),
                    );
                    return Step::Done(self.dead_letter(
                        &ids,
                        received,
                        &reason,
                        None,
                        ReceiptStatus::DeadLettered,
                        attempts,
                        None,
                    ));
                }
                Disposition::ParkFor(wait) => {
                    return Step::NotFinished {
                        attempts,
                        cause: outcome.cause(),
                        wait,
                    };
                }
                Disposition::RetryIn(wait) => {
                    let _waiting = deliverer.waiting();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => {
                            return Step::NotFinished {
                                attempts,
                                cause: outcome.cause(),
                                wait,
                            };
                        }
                    }
                }
            }
        }
    }

    /// Seal the received body and park it for the scheduler.
    fn park(
        &self,
        envelope: &Envelope,
        received: &Received<'_>,
        attempts: i64,
        cause: &str,
        wait: Duration,
    ) -> Result<Record, crate::vault::VaultError> {
        let sealed = self.vault.seal(&envelope.submission_id, received.body)?;
        let max_age_secs = self
            .routes
            .route(&envelope.destination)
            .map_or(self.config.retry.max_age_secs, |d| {
                d.deliverer.retry.max_age_secs
            });
        let expires = received.at.after(Duration::from_secs(max_age_secs));
        Ok(Record::Park(Parked {
            submission_id: envelope.submission_id.clone(),
            service: envelope.service.clone(),
            destination: envelope.destination.clone(),
            portal: envelope.portal.clone(),
            attempts,
            received_sha256: received.sha256.clone(),
            received_at: received.at,
            first_failure_at: now(),
            last_cause: cause.to_owned(),
            next_attempt_at: crate::domain::time::time_after(wait),
            expires_at: expires,
            lease_until: None,
            key_id: sealed.key_id,
            sealed_key: sealed.sealed_key,
            sealed_payload: sealed.sealed_payload,
        }))
    }

    /// Commit the record with its receipt event (retrying while the
    /// database is unavailable), then ack. Nothing is acked before its record
    /// is durable; the outbox relay publishes the event.
    async fn finish(
        &self,
        delivery: &Delivery,
        acks: &Acks,
        record: Record,
        shutdown: &Shutdown,
        started: Instant,
    ) {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.recorder.record(record.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot commit; message stays unacked");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
        self.log_end(&record, started);
        acks.finished(delivery.delivery_tag);
    }

    fn log_end(&self, record: &Record, started: Instant) {
        crate::telemetry::metrics::finished(
            record,
            |d| self.routes.route(d).is_ok(),
            |s| self.schemas.services().any(|known| known == s),
        );
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match record {
            Record::Receipt(r)
            | Record::DeadLetter {
                receipt: Some(r), ..
            } => tracing::info!(
                submission_id = %r.submission_id,
                service = r.service.as_deref().unwrap_or(""),
                destination = r.destination.as_deref().unwrap_or(""),
                outcome = %r.status,
                reason = r.reason_code.as_deref().unwrap_or(""),
                attempts = r.attempts,
                elapsed_ms,
                "submission finished"
            ),
            Record::DeadLetter {
                dead_letter,
                receipt: None,
                notify: Some(_),
            } => tracing::warn!(
                submission_id = dead_letter.submission_id.as_deref().unwrap_or(""),
                portal = dead_letter.portal.as_deref().unwrap_or(""),
                outcome = ReceiptStatus::DeadLettered.as_str(),
                reason = %dead_letter.reason_code,
                elapsed_ms,
                "submission refused: its portal is not the publisher's, or its id is another portal's"
            ),
            Record::DeadLetter {
                dead_letter,
                receipt: None,
                ..
            } => tracing::info!(
                amqp_message_id = dead_letter.amqp_message_id.as_deref().unwrap_or(""),
                outcome = ReceiptStatus::DeadLettered.as_str(),
                reason = %dead_letter.reason_code,
                elapsed_ms,
                "undecodable message dead-lettered"
            ),
            Record::Park(p) => tracing::info!(
                submission_id = %p.submission_id,
                destination = %p.destination,
                outcome = "parked",
                attempts = p.attempts,
                cause = %p.last_cause,
                next_attempt_at = %p.next_attempt_at,
                elapsed_ms,
                "submission parked"
            ),
            Record::RepeatEvent(r) => tracing::debug!(
                submission_id = %r.submission_id,
                outcome = %r.status,
                elapsed_ms,
                "receipt event repeated"
            ),
            Record::Reschedule {
                submission_id,
                attempts,
                next_attempt_at,
                last_cause,
            } => tracing::info!(
                submission_id = %submission_id,
                outcome = "parked",
                attempts,
                cause = %last_cause,
                next_attempt_at = %next_attempt_at,
                elapsed_ms,
                "parked submission rescheduled"
            ),
        }
    }

    /// A dead-letter record. Its payload is sealed for replay only when the
    /// reason allows keeping it ([`ReasonCode::keeps_payload`]) and the
    /// submission id is known; otherwise metadata is all that remains.
    #[allow(clippy::too_many_arguments)]
    fn dead_letter(
        &self,
        ids: &Ids,
        received: &Received<'_>,
        reason: &Reason,
        http_status: Option<i64>,
        receipt_status: ReceiptStatus,
        attempts: i64,
        sent_sha256: Option<String>,
    ) -> Record {
        let created_at = now();
        let keep = reason.code.keeps_payload();
        let sealed = ids.submission_id.as_ref().filter(|_| keep).and_then(|id| match self.vault.seal(id, received.body) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(submission_id = %id, error = %e, "cannot seal a dead letter's payload; it is not kept");
                None
            }
        });
        let retention = Duration::from_secs(
            self.config
                .dead_letters
                .retention_days
                .saturating_mul(86_400),
        );
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
            received_sha256: received.sha256.clone(),
            sent_sha256,
            submitted_at: ids.submitted_at.clone(),
            received_at: received.at,
            completed_at: created_at,
        });
        Record::DeadLetter {
            dead_letter: DeadLetter {
                id: 0,
                submission_id: ids.submission_id.clone(),
                amqp_message_id: received.amqp_message_id.clone(),
                service: ids.service.clone(),
                destination: ids.destination.clone(),
                portal: ids.portal.clone(),
                reason_code: reason.code.as_str().to_owned(),
                reason_detail: reason.detail.clone(),
                http_status,
                received_sha256: received.sha256.clone(),
                created_at,
                // Every dead letter goes after its retention, payload or not.
                expires_at: Some(created_at.after(retention)),
                payload_kept: sealed.is_some(),
                key_id: sealed.as_ref().map(|s| s.key_id.clone()),
                sealed_key: sealed.as_ref().map(|s| s.sealed_key.clone()),
                sealed_payload: sealed.map(|s| s.sealed_payload),
            },
            receipt,
            notify: None,
        }
    }
}

enum Handled {
    No,
    Terminal(Box<Receipt>),
    Parked,
    /// The submission id belongs to another portal's submission.
    OtherPortal,
}
