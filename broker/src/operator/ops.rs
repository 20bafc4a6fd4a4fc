//! Operations: what an operator does with Kurier, in one implementation that
//! both the command line (`kurier dead-letters …`, `main.rs`) and the admin
//! API (`/api/…`, `crate::operator::admin`) call.
//!
//! Postfix's view of a queue: parked and dead-lettered submissions are states
//! an operator lists, filters, replays and purges by id, and every action
//! that touches a payload or removes something lands in the `audit` table
//! (who, what, which submission ids, when, why) in the same transaction.
//!
//! - **Replay** sends a dead letter through the whole pipeline again with the
//!   current configuration, under its own submission id (so the authority
//!   sees the same `Idempotency-Key`): the decrypted original envelope is
//!   published to the intake exchange with publisher confirms. A submission
//!   whose receipt says `delivered` is never replayed.
//! - **Purge** deletes dead letters with their sealed payload and data key
//!   (crypto-shredding); the receipt stays.
//! - **Payload view** needs a reason, is audited before the payload is
//!   returned, and is the only place a payload leaves the vault for a person.
//! - **The parked queue** (Postfix's `postsuper -r/-h/-H/-d`): retry now,
//!   hold, release, and purge, which shreds a parked submission (row, sealed
//!   payload and data key) and ends it as `dead_lettered` /
//!   `withdrawn_by_operator` with a receipt event in the outbox, all in one
//!   transaction.
//! - **Pauses** of destinations (maintenance windows), which the pipeline
//!   reads through [`paused_destinations`].
//!
//! Touches the database through the store's operator statements
//! (`crate::store::operator`: SQL lives there, with the audit row written
//! in each change's transaction), the vault (to open sealed payloads) and,
//! for replay, RabbitMQ. Nothing here logs or returns a payload except
//! [`Ops::show_payload`].

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::{AmqpConfig, Config};
use crate::domain::id::{DestinationId, SubmissionId};
use crate::domain::status::ReceiptStatus;
use crate::domain::time::Timestamp;
use crate::intake;
use crate::store::answers::TransportAnswer;
use crate::store::operator::{AllOrNone, AuditRow, ParkedChange};
pub use crate::store::operator::{AuditEntry, Backlog, ParkedInfo};
use crate::store::{Access, DeadLetter, Receipt, Store, StoreError};
use crate::vault::{Sealed, Vault, VaultError};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no dead letter {0}; list them with `kurier dead-letters list`")]
    NotFound(String),
    #[error(
        "{0:?} is neither a submission id (UUID) nor a dead-letter number; see `kurier dead-letters list`"
    )]
    BadId(String),
    #[error("viewing a payload needs a reason (--reason \"…\"); it is recorded in the audit trail")]
    ReasonRequired,
    #[error(
        "dead letter {0} keeps no payload (purged, past its retention, or an undecodable message); there is nothing to show or replay"
    )]
    NoPayload(String),
    #[error(
        "the vault key file {0} does not exist here; run this on the broker's host with its configuration"
    )]
    NoVault(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is not parked{1}; see `kurier parked list --each`")]
    NotParked(String, String),
    #[error(
        "an attempt to deliver {0} is under way right now; nothing was purged, try again in a few seconds"
    )]
    InFlight(String),
    #[error("{0:?} is not a configured destination; configured: {1}")]
    UnknownDestination(DestinationId, String),
}

impl OpsError {
    /// The HTTP status the admin API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            OpsError::NotFound(_) | OpsError::NotParked(..) | OpsError::UnknownDestination(..) => {
                404
            }
            OpsError::BadId(_) | OpsError::ReasonRequired | OpsError::Invalid(_) => 400,
            OpsError::NoPayload(_) | OpsError::InFlight(_) => 409,
            _ => 500,
        }
    }
}

/// Who does something: an operator name from the admin token file (API) or
/// the OS user (CLI). Recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    /// The audit row of this operator's action.
    fn audit<'a>(
        &'a self,
        action: &'a str,
        submission_ids: &'a str,
        outcome: &'a str,
        why: Option<&'a str>,
    ) -> AuditRow<'a> {
        AuditRow {
            operator: &self.0,
            action,
            submission_ids,
            outcome,
            reason: why,
        }
    }

    /// The OS account running the CLI: the name of the effective user id
    /// (`getpwuid_r(geteuid())`), `uid:<n>` when the account has no name.
    /// Never an environment variable: `USER=someone-else kurier …` must not
    /// change who the audit trail says it was.
    pub fn os_user() -> Actor {
        Actor(os_account())
    }
}

#[cfg(unix)]
fn os_account() -> String {
    use std::ffi::CStr;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: passwd is plain data that getpwuid_r fills in; `buf` is
        // the scratch space its strings point into and outlives their use
        // below; `result` is set to `&mut pwd` or null.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return format!("uid:{uid}");
        }
        // SAFETY: pw_name is a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        return if name.is_empty() {
            format!("uid:{uid}")
        } else {
            name
        };
    }
}

#[cfg(not(unix))]
fn os_account() -> String {
    "unknown".into()
}

/// Filters of a dead-letter listing; `None` means any.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct DeadLetterFilter {
    pub reason: Option<String>,
    pub destination: Option<DestinationId>,
    /// RFC 3339 time or a duration ago (`24h`, `7d`).
    pub since: Option<String>,
    pub limit: Option<i64>,
    /// How many of the matching rows to skip (a page further on).
    pub offset: Option<i64>,
}

/// Declares an outcome enum whose JSON and text form is the snake_case name
/// of each variant (the API's and the CLI's stable words).
macro_rules! outcome_words {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

outcome_words!(
    /// What replay did with one dead letter.
    ReplayOutcome {
        Replayed => "replayed",
        AlreadyDelivered => "already_delivered",
        NoPayload => "no_payload",
        Failed => "failed",
    }
);

outcome_words!(
    /// What an operator's action did with one parked submission.
    ParkedOutcome {
        DueNow => "due_now",
        Held => "held",
        Released => "released",
        Purged => "purged",
    }
);

outcome_words!(
    /// What pause or resume did with a destination.
    PauseOutcome {
        Paused => "paused",
        AlreadyPaused => "already_paused",
        Resumed => "resumed",
        NotPaused => "not_paused",
    }
);

/// What replay did with one dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayResult {
    /// `None` when the submission has no dead letter any more.
    pub dead_letter_id: Option<i64>,
    pub submission_id: Option<SubmissionId>,
    pub outcome: ReplayOutcome,
    pub message: String,
}

/// What purge removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeResult {
    pub dead_letter_ids: Vec<i64>,
    pub submission_ids: Vec<String>,
}

/// Parked and dead letters of one destination, and (from the running broker
/// only) its circuit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationStatus {
    /// `unknown` for the sum of every destination not configured.
    pub destination: DestinationId,
    pub configured: bool,
    pub parked: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_cause: Option<String>,
    pub dead_letters: i64,
    /// `closed`, `open`, `half_open`; `None` when not known (CLI).
    pub circuit: Option<String>,
    /// Delivered submissions whose authority's answer (two-stage receipts,
    /// [`crate::delivery::answers`]) has not come yet, and when the oldest of them was
    /// delivered (FIT-Connect rejects automatically after 14 days).
    pub awaiting_answer: i64,
    pub oldest_awaiting_delivered_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub parked: i64,
    pub dead_letters: i64,
    pub awaiting_answer: i64,
    pub destinations: Vec<DestinationStatus>,
}

/// One submission as [`Ops::lookup`] finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lookup {
    pub submission_id: SubmissionId,
    pub receipt: Option<Receipt>,
    pub parked: Option<ParkedInfo>,
    /// Newest first, never with a payload.
    pub dead_letters: Vec<DeadLetter>,
    pub answers: Vec<TransportAnswer>,
}

impl Lookup {
    /// Nothing is recorded of it.
    pub fn is_unknown(&self) -> bool {
        self.receipt.is_none()
            && self.parked.is_none()
            && self.dead_letters.is_empty()
            && self.answers.is_empty()
    }
}

/// The audit actions.
pub mod action {
    pub const REPLAY: &str = "replay";
    pub const PURGE: &str = "purge";
    pub const VIEW_PAYLOAD: &str = "view_payload";
    pub const RETRY_NOW: &str = "retry_now";
    pub const HOLD: &str = "hold";
    pub const RELEASE: &str = "release";
    pub const PURGE_PARKED: &str = "purge_parked";
    pub const PAUSE_DESTINATION: &str = "pause_destination";
    pub const RESUME_DESTINATION: &str = "resume_destination";
}

/// The operations, over one database, vault and RabbitMQ.
#[derive(Clone)]
pub struct Ops {
    store: Store,
    vault: Option<Arc<Vault>>,
    amqp: AmqpConfig,
    /// The destinations configured now: those of the file (CLI), or the
    /// running broker's, which a reload (SIGHUP) changes (admin API).
    configured: Arc<dyn Fn() -> Vec<DestinationId> + Send + Sync>,
    vault_key_file: String,
    /// `[dead_letters] retention_days`: every dead letter expires.
    dead_letter_retention: std::time::Duration,
}

impl Ops {
    /// `vault`: `None` when the key file is not here (payload view and replay
    /// then say so).
    pub fn new(store: Store, vault: Option<Arc<Vault>>, config: &Config) -> Ops {
        Ops {
            store,
            vault,
            amqp: config.amqp.clone(),
            configured: {
                let ids: Vec<DestinationId> =
                    config.destinations.iter().map(|d| d.id.clone()).collect();
                Arc::new(move || ids.clone())
            },
            vault_key_file: config.vault.key_file.display().to_string(),
            dead_letter_retention: std::time::Duration::from_secs(
                config.dead_letters.retention_days.saturating_mul(86_400),
            ),
        }
    }

    /// For the CLI: connect, migrate, and load the vault if its key exists
    /// (never create one: a new key opens nothing).
    pub async fn open(config: &Config) -> Result<Ops, OpsError> {
        let store = Store::connect(&config.database).await?;
        store.migrate().await?;
        Ops::with_vault_if_there(store, config)
    }

    /// For the CLI's operator commands: the database that `run` or `migrate`
    /// made, never created or migrated here. Read-only access loads no vault
    /// (nothing read-only needs a key); read-write loads it if its key exists.
    pub async fn open_existing(config: &Config, access: Access) -> Result<Ops, OpsError> {
        let store = Store::open_existing(&config.database, access).await?;
        match access {
            Access::ReadOnly => Ok(Ops::new(store, None, config)),
            Access::ReadWrite => Ops::with_vault_if_there(store, config),
        }
    }

    fn with_vault_if_there(store: Store, config: &Config) -> Result<Ops, OpsError> {
        let vault = if config.vault.key_file.exists() {
            Some(Arc::new(Vault::load(&config.vault)?))
        } else {
            None
        };
        Ok(Ops::new(store, vault, config))
    }

    /// Take the configured destinations from `now` (the running broker's
    /// routes) instead of the file's.
    pub fn with_destinations(
        mut self,
        now: impl Fn() -> Vec<DestinationId> + Send + Sync + 'static,
    ) -> Ops {
        self.configured = Arc::new(now);
        self
    }

    pub(crate) fn configured(&self) -> Vec<DestinationId> {
        (self.configured)()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn vault(&self) -> Result<&Vault, OpsError> {
        self.vault
            .as_deref()
            .ok_or_else(|| OpsError::NoVault(self.vault_key_file.clone()))
    }

    /// Dead letters, newest first (without their sealed payloads).
    pub async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<DeadLetter>, OpsError> {
        if let Some(r) = &filter.reason
            && crate::domain::reason::ReasonCode::parse(r).is_none()
        {
            let known: Vec<&str> = crate::domain::reason::ReasonCode::ALL
                .iter()
                .map(|c| c.as_str())
                .collect();
            return Err(OpsError::Invalid(format!(
                "unknown reason code {r:?}; known codes: {}",
                known.join(", ")
            )));
        }
        let since = filter.since.as_deref().map(parse_since).transpose()?;
        Ok(self
            .store
            .dead_letters(
                filter.reason.as_deref(),
                filter.destination.as_ref(),
                since,
                filter.limit.unwrap_or(1000).clamp(1, 100_000),
                filter.offset.unwrap_or(0).max(0),
            )
            .await?)
    }

    /// The dead letters `id` names: a number names one row, a submission id
    /// all rows of that submission (newest first).
    async fn resolve(&self, id: &str) -> Result<Vec<DeadLetter>, OpsError> {
        let id = id.trim();
        let rows = if let Ok(n) = id.parse::<i64>() {
            self.store.dead_letter(n).await?.into_iter().collect()
        } else if let Some(sid) = SubmissionId::canonical(id) {
            self.store.dead_letters_of(&sid).await?
        } else {
            return Err(OpsError::BadId(id.to_owned()));
        };
        if rows.is_empty() {
            return Err(OpsError::NotFound(id.to_owned()));
        }
        Ok(rows)
    }

    /// One dead letter: metadata and reason only.
    pub async fn show(&self, id: &str) -> Result<DeadLetter, OpsError> {
        Ok(without_payload(self.resolve(id).await?.remove(0)))
    }

    /// One dead letter with its decrypted payload. Needs a reason; the view
    /// is in the audit trail before the payload is returned.
    pub async fn show_payload(
        &self,
        id: &str,
        actor: &Actor,
        why: &str,
    ) -> Result<(DeadLetter, serde_json::Value), OpsError> {
        let why = why.trim();
        if why.is_empty() {
            return Err(OpsError::ReasonRequired);
        }
        let newest = self.resolve(id).await?.remove(0);
        let (submission_id, sealed) = sealed_of(&newest)?;
        let body =
            crate::store::shred::open(self.vault()?, &self.store, &submission_id, &sealed).await?;
        self.audit(
            actor,
            action::VIEW_PAYLOAD,
            std::slice::from_ref(&submission_id),
            "shown",
            Some(why),
        )
        .await?;
        // The body was a JSON envelope when it was sealed (undecodable bodies
        // are not kept); show it as text otherwise.
        let payload = serde_json::from_slice(&body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
        Ok((without_payload(newest), payload))
    }

    /// Replay the dead letters `ids` (numbers or submission ids).
    pub async fn replay_ids(
        &self,
        ids: &[String],
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<Vec<ReplayResult>, OpsError> {
        let mut rows = Vec::new();
        let mut delivered = Vec::new();
        for id in ids {
            match self.resolve(id).await {
                // A submission id names its newest dead letter.
                Ok(mut found) => rows.push(found.remove(0)),
                // Replayed before (or delivered otherwise): say so, send nothing.
                Err(OpsError::NotFound(_)) if self.delivered(id).await? => {
                    if let Some(id) = SubmissionId::parse(id.trim()) {
                        delivered.push(id);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let mut results = Vec::new();
        for submission_id in delivered {
            self.audit(
                actor,
                action::REPLAY,
                std::slice::from_ref(&submission_id),
                "already delivered; nothing sent",
                why,
            )
            .await?;
            results.push(ReplayResult {
                dead_letter_id: None,
                message: format!("{submission_id} is already delivered; nothing was sent"),
                submission_id: Some(submission_id),
                outcome: ReplayOutcome::AlreadyDelivered,
            });
        }
        results.extend(self.replay_rows(rows, actor, why).await?);
        Ok(results)
    }

    /// Replay every dead letter matching `filter` that keeps a payload.
    pub async fn replay_matching(
        &self,
        filter: &DeadLetterFilter,
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<Vec<ReplayResult>, OpsError> {
        let mut rows = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for d in self.dead_letters(filter).await? {
            if !d.payload_kept {
                continue;
            }
            // The newest dead letter of a submission is the one replayed.
            if let Some(sid) = &d.submission_id
                && !seen.insert(sid.clone())
            {
                continue;
            }
            rows.extend(self.resolve(&d.id.to_string()).await?);
        }
        self.replay_rows(rows, actor, why).await
    }

    async fn replay_rows(
        &self,
        rows: Vec<DeadLetter>,
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<Vec<ReplayResult>, OpsError> {
        let mut channel: Option<(lapin::Connection, lapin::Channel)> = None;
        let mut results = Vec::with_capacity(rows.len());
        for row in rows {
            results.push(self.replay_one(row, &mut channel, actor, why).await?);
        }
        if let Some((connection, _)) = channel {
            let _ = connection.close(200, "done".into()).await;
        }
        Ok(results)
    }

    /// Replay one dead letter. Order matters (nothing lost, effectively once):
    /// 1. a `delivered` receipt means nothing is sent;
    /// 2. the receipt is deleted, so the pipeline does not take the
    ///    republished message for a duplicate (a receipt deleted only after
    ///    the publish would race with the broker consuming it);
    /// 3. the envelope is published and confirmed; if that fails the
    ///    receipt is restored and nothing else changed;
    /// 4. the dead letter (sealed payload and key) is deleted and the audit
    ///    row written in one transaction.
    async fn replay_one(
        &self,
        row: DeadLetter,
        channel: &mut Option<(lapin::Connection, lapin::Channel)>,
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<ReplayResult, OpsError> {
        let result = |outcome: ReplayOutcome, message: String| ReplayResult {
            dead_letter_id: Some(row.id),
            submission_id: row.submission_id.clone(),
            outcome,
            message,
        };
        let (submission_id, sealed) = match sealed_of(&row) {
            Ok(s) => s,
            Err(e) => return Ok(result(ReplayOutcome::NoPayload, e.to_string())),
        };
        let receipt = self.store.receipt(&submission_id).await?;
        if receipt
            .as_ref()
            .is_some_and(|r| r.status == ReceiptStatus::Delivered)
        {
            let message = format!("{submission_id} is already delivered; nothing was sent");
            self.audit(
                actor,
                action::REPLAY,
                std::slice::from_ref(&submission_id),
                "already delivered; nothing sent",
                why,
            )
            .await?;
            return Ok(result(ReplayOutcome::AlreadyDelivered, message));
        }
        let body =
            crate::store::shred::open(self.vault()?, &self.store, &submission_id, &sealed).await?;
        let routing_key = crate::intake::submit::addressing(&body)
            .map(|(key, _)| key)
            .unwrap_or_else(|| {
                format!(
                    "{}.{}",
                    row.service.as_deref().unwrap_or("unknown"),
                    row.destination.as_deref().unwrap_or("unknown")
                )
            });
        self.store.forget_received(&submission_id).await?;
        if let Err(e) = self
            .publish(channel, &routing_key, &submission_id, &body)
            .await
        {
            drop(body);
            if let Some(r) = receipt {
                // Put the receipt back as it was: the dead letter is untouched.
                self.store
                    .restore_received(&submission_id, &r.received_sha256)
                    .await?;
            }
            return Ok(result(
                ReplayOutcome::Failed,
                format!(
                    "publishing to RabbitMQ failed ({e}); nothing changed, try again when RabbitMQ is reachable"
                ),
            ));
        }
        drop(body);
        let audit = actor.audit(action::REPLAY, &submission_id, "replayed", why);
        self.store.delete_dead_letters(&[row.id], &audit).await?;
        tracing::info!(submission_id = %submission_id, operator = %actor.0, "dead letter replayed");
        Ok(result(
            ReplayOutcome::Replayed,
            format!("{submission_id} was published again and runs through the pipeline"),
        ))
    }

    async fn publish(
        &self,
        channel: &mut Option<(lapin::Connection, lapin::Channel)>,
        routing_key: &str,
        submission_id: &str,
        body: &[u8],
    ) -> Result<(), intake::IntakeError> {
        if channel
            .as_ref()
            .is_none_or(|(c, _)| !c.status().connected())
        {
            let connection = intake::connect(&self.amqp, "kurier-replay").await?;
            let ch = intake::confirm_channel(&connection).await?;
            *channel = Some((connection, ch));
        }
        let Some((_, ch)) = channel.as_ref() else {
            return Err(intake::IntakeError::ConsumerEnded);
        };
        intake::publish_confirmed(
            ch,
            &self.amqp.exchange,
            routing_key,
            submission_id,
            body,
            true,
        )
        .await
    }

    /// Purge the dead letters `ids` (numbers or submission ids): the sealed
    /// payload and its key go with the row; receipts stay.
    pub async fn purge_ids(
        &self,
        ids: &[String],
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<PurgeResult, OpsError> {
        let mut rows = Vec::new();
        for id in ids {
            rows.extend(self.resolve(id).await?);
        }
        self.purge_rows(
            rows.iter().map(|r| (r.id, r.submission_id.clone())),
            actor,
            why,
        )
        .await
    }

    /// Purge dead letters created longer than `age` ago.
    pub async fn purge_older_than(
        &self,
        age: Duration,
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<PurgeResult, OpsError> {
        let cutoff = crate::domain::time::time_before(age).ok_or_else(|| {
            OpsError::Invalid("that age reaches before the year 1; nothing would match".into())
        })?;
        let rows = self.store.dead_letters_before(cutoff).await?;
        self.purge_rows(rows.into_iter(), actor, why).await
    }

    async fn purge_rows(
        &self,
        rows: impl Iterator<Item = (i64, Option<SubmissionId>)>,
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<PurgeResult, OpsError> {
        let mut result = PurgeResult {
            dead_letter_ids: Vec::new(),
            submission_ids: Vec::new(),
        };
        for (id, sid) in rows {
            if !result.dead_letter_ids.contains(&id) {
                result.dead_letter_ids.push(id);
                result
                    .submission_ids
                    .push(sid.map_or_else(|| format!("#{id}"), String::from));
            }
        }
        if result.dead_letter_ids.is_empty() {
            return Ok(result);
        }
        let ids = result.submission_ids.join(" ");
        let outcome = format!("{} dead letters purged", result.dead_letter_ids.len());
        let audit = actor.audit(action::PURGE, &ids, &outcome, why);
        self.store
            .delete_dead_letters(&result.dead_letter_ids, &audit)
            .await?;
        tracing::info!(purged = result.dead_letter_ids.len(), operator = %actor.0, "dead letters purged");
        Ok(result)
    }

    /// Parked backlog per destination.
    pub async fn parked(
        &self,
        destination: Option<&DestinationId>,
    ) -> Result<Vec<Backlog>, OpsError> {
        Ok(self.store.parked_backlog(destination).await?)
    }

    /// Everything known of one submission, metadata only: its receipt, its
    /// parked row, its dead letters (without their sealed payloads) and
    /// what a reporting transport says of the authority's answer. Nothing
    /// known is not an error: the submission may not have arrived yet.
    pub async fn lookup(&self, id: &str) -> Result<Lookup, OpsError> {
        let id = submission_id(id)?;
        let store = &self.store;
        Ok(Lookup {
            receipt: store.receipt(&id).await?,
            parked: store.parked_one(&id).await?,
            dead_letters: store
                .dead_letters_of(&id)
                .await?
                .into_iter()
                .map(without_payload)
                .collect(),
            answers: store.transport_answers(&id).await?,
            submission_id: id,
        })
    }

    pub async fn receipt(&self, submission_id: &str) -> Result<Option<Receipt>, OpsError> {
        // As written: a portal's id is stored in the case it was sent in.
        match SubmissionId::parse(submission_id.trim()) {
            Some(id) => Ok(self.store.receipt(&id).await?),
            None => Ok(None),
        }
    }

    /// Receipts completed since `since` (RFC 3339 or a duration ago), newest first.
    pub async fn receipts(
        &self,
        since: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Receipt>, OpsError> {
        let since = since.map(parse_since).transpose()?;
        Ok(self.store.receipts(since, limit.clamp(1, 100_000)).await?)
    }

    /// Parked and dead letters per destination, as the database knows them.
    pub async fn status(&self) -> Result<Status, OpsError> {
        let dead = self.store.dead_letter_counts().await?;
        let parked = self.parked(None).await?;
        let awaiting = self.store.awaiting_summary().await?;
        // Only configured destinations are listed by name: what envelopes
        // named otherwise (any string a portal sent) is summed as `unknown`,
        // so neither the console nor the metrics grow with it.
        let configured = self.configured();
        let mut destinations: Vec<DestinationStatus> = configured
            .iter()
            .map(|name| {
                let backlog = parked.iter().find(|b| &b.destination == name);
                let answers = awaiting.iter().find(|a| &a.destination == name);
                DestinationStatus {
                    awaiting_answer: answers.map_or(0, |a| a.count),
                    oldest_awaiting_delivered_at: answers.map(|a| a.oldest_delivered_at),
                    configured: true,
                    parked: backlog.map_or(0, |b| b.count),
                    next_attempt_at: backlog.map(|b| b.next_attempt_at),
                    last_cause: backlog.map(|b| b.last_cause.clone()),
                    dead_letters: dead.iter().find(|(d, _)| d == name).map_or(0, |(_, n)| *n),
                    circuit: None,
                    destination: name.clone(),
                }
            })
            .collect();
        let unknown_parked: i64 = parked
            .iter()
            .filter(|b| !configured.contains(&b.destination))
            .map(|b| b.count)
            .sum();
        let unknown_dead: i64 = dead
            .iter()
            .filter(|(d, _)| !configured.contains(d))
            .map(|(_, n)| *n)
            .sum();
        let unknown_awaiting: i64 = awaiting
            .iter()
            .filter(|a| !configured.contains(&a.destination))
            .map(|a| a.count)
            .sum();
        if unknown_parked + unknown_dead + unknown_awaiting > 0 {
            destinations.push(DestinationStatus {
                awaiting_answer: unknown_awaiting,
                oldest_awaiting_delivered_at: None,
                configured: false,
                parked: unknown_parked,
                next_attempt_at: None,
                last_cause: None,
                dead_letters: unknown_dead,
                circuit: None,
                destination: DestinationId::new("unknown"),
            });
        }
        Ok(Status {
            parked: destinations.iter().map(|d| d.parked).sum(),
            dead_letters: destinations.iter().map(|d| d.dead_letters).sum(),
            awaiting_answer: destinations.iter().map(|d| d.awaiting_answer).sum(),
            destinations,
        })
    }

    /// The audit trail, newest first.
    pub async fn audit_list(&self, limit: i64) -> Result<Vec<AuditEntry>, OpsError> {
        Ok(self.store.audit_trail(limit.clamp(1, 100_000)).await?)
    }

    /// Audit an action that changed no row.
    async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        submission_ids: &[SubmissionId],
        outcome: &str,
        why: Option<&str>,
    ) -> Result<(), OpsError> {
        let ids = submission_ids.join(" ");
        Ok(self
            .store
            .audit(&actor.audit(action, &ids, outcome, why))
            .await?)
    }
}

/// What an operator does to parked submissions (Postfix: `postsuper -r`,
/// `-h`, `-H`, `-d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkedAction {
    /// Due now, a stale lease cleared; a hold stays.
    RetryNow,
    /// The scheduler leaves it alone until released.
    Hold,
    /// Back to its schedule.
    Release,
    /// Shred: it ends as the dead letter `withdrawn_by_operator`.
    Purge,
}

impl ParkedAction {
    pub const ALL: [ParkedAction; 4] = [
        ParkedAction::RetryNow,
        ParkedAction::Hold,
        ParkedAction::Release,
        ParkedAction::Purge,
    ];

    /// The word of the CLI, the API path and the console's buttons.
    pub fn verb(self) -> &'static str {
        match self {
            ParkedAction::RetryNow => "retry-now",
            ParkedAction::Hold => "hold",
            ParkedAction::Release => "release",
            ParkedAction::Purge => "purge",
        }
    }

    pub fn from_verb(verb: &str) -> Option<ParkedAction> {
        ParkedAction::ALL.into_iter().find(|a| a.verb() == verb)
    }

    fn audit_action(self) -> &'static str {
        match self {
            ParkedAction::RetryNow => action::RETRY_NOW,
            ParkedAction::Hold => action::HOLD,
            ParkedAction::Release => action::RELEASE,
            ParkedAction::Purge => action::PURGE_PARKED,
        }
    }

    fn outcome(self) -> ParkedOutcome {
        match self {
            ParkedAction::RetryNow => ParkedOutcome::DueNow,
            ParkedAction::Hold => ParkedOutcome::Held,
            ParkedAction::Release => ParkedOutcome::Released,
            ParkedAction::Purge => ParkedOutcome::Purged,
        }
    }

    fn message(self, id: &str, held: bool, in_flight: bool) -> String {
        let mut text = match self {
            ParkedAction::RetryNow if held => {
                format!("{id} is due now but stays held; release it to let the scheduler try")
            }
            ParkedAction::RetryNow => format!("{id} is due now; the scheduler tries it next"),
            ParkedAction::Hold => format!("{id} is held; the scheduler leaves it alone"),
            ParkedAction::Release => format!("{id} is released to its schedule"),
            ParkedAction::Purge => format!(
                "{id} is purged: payload and key destroyed, receipt dead_lettered (withdrawn_by_operator)"
            ),
        };
        if in_flight {
            text.push_str(" (an attempt is under way right now and finishes first)");
        }
        text
    }

    fn result(self, id: &SubmissionId, held: bool, in_flight: bool) -> ParkedResult {
        ParkedResult {
            submission_id: id.clone(),
            outcome: self.outcome(),
            held,
            in_flight,
            message: self.message(id, held, in_flight),
        }
    }
}

/// What an action did with one parked submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkedResult {
    pub submission_id: SubmissionId,
    pub outcome: ParkedOutcome,
    pub held: bool,
    pub in_flight: bool,
    pub message: String,
}

/// A configured destination as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationInfo {
    pub destination: DestinationId,
    /// `false` for a pause left over from a destination no longer configured.
    pub configured: bool,
    pub paused: bool,
    pub paused_at: Option<Timestamp>,
    pub paused_by: Option<String>,
    pub pause_reason: Option<String>,
    pub parked: i64,
    pub held: i64,
}

/// What pause or resume did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PauseResult {
    pub destination: DestinationId,
    pub outcome: PauseOutcome,
    pub message: String,
}

/// The destinations paused by an operator (`kurier destinations pause`):
/// submissions for them are parked without an attempt.
pub async fn paused_destinations(store: &Store) -> Result<Vec<DestinationId>, OpsError> {
    Ok(store.paused_destinations().await?)
}

/// The parked queue (Postfix's `postqueue`/`postsuper`) and the pauses of
/// destinations. Every change is audited in its own transaction; a command
/// naming an id that is not parked changes nothing.
impl Ops {
    /// Parked submissions one by one, soonest first; `limit` of them after
    /// the first `offset`.
    pub async fn parked_each(
        &self,
        destination: Option<&DestinationId>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ParkedInfo>, OpsError> {
        Ok(self
            .store
            .parked_each(destination, limit.clamp(1, 100_000), offset.max(0))
            .await?)
    }

    /// One parked submission: metadata only.
    pub async fn parked_show(&self, id: &str) -> Result<ParkedInfo, OpsError> {
        let id = submission_id(id)?;
        match self.store.parked_one(&id).await? {
            Some(row) => Ok(row),
            None => Err(self.not_parked(&id).await),
        }
    }

    /// The parked submissions of `destination` (configured or with parked
    /// rows left over).
    async fn parked_ids_of(
        &self,
        destination: &DestinationId,
    ) -> Result<Vec<SubmissionId>, OpsError> {
        let ids = self.store.parked_ids_of(destination).await?;
        if ids.is_empty() && !self.configured().iter().any(|d| d == destination) {
            return Err(self.unknown_destination(destination));
        }
        Ok(ids)
    }

    /// Make every parked submission of `destination` due now.
    pub async fn retry_destination(
        &self,
        destination: &DestinationId,
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<Vec<ParkedResult>, OpsError> {
        let ids = self.parked_ids_of(&operator_argument(destination)).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.parked_change(ParkedAction::RetryNow, ids, actor, why)
            .await
    }

    /// Retry now, hold, release or purge the parked submissions `ids`, in
    /// one transaction with its audit row; an id that is not parked changes
    /// nothing.
    pub async fn parked_act(
        &self,
        act: ParkedAction,
        ids: &[String],
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<Vec<ParkedResult>, OpsError> {
        self.parked_change(act, submission_ids(ids)?, actor, why)
            .await
    }

    /// [`Ops::parked_act`] on checked ids (as stored: a destination's
    /// parked rows are acted on by the ids they were parked under).
    async fn parked_change(
        &self,
        act: ParkedAction,
        ids: Vec<SubmissionId>,
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<Vec<ParkedResult>, OpsError> {
        let change = match act {
            ParkedAction::RetryNow => ParkedChange::DueNow,
            ParkedAction::Hold => ParkedChange::Hold,
            ParkedAction::Release => ParkedChange::Release,
            ParkedAction::Purge => return self.purge_parked(ids, actor, why).await,
        };
        // All or none: the audit row counts them all.
        let outcome = format!("{} {}", ids.len(), act.outcome());
        let joined = ids.join(" ");
        let audit = actor.audit(act.audit_action(), &joined, &outcome, why);
        let changed = match self.store.change_parked(change, &ids, &audit).await? {
            AllOrNone::Done(changed) => changed,
            AllOrNone::NotParked(id) | AllOrNone::Delivered(id) => {
                return Err(self.not_parked(&id).await);
            }
        };
        tracing::info!(action = act.audit_action(), submissions = changed.len(), operator = %actor.0, "parked submissions changed");
        Ok(changed
            .into_iter()
            .map(|(id, held, in_flight)| act.result(&id, held, in_flight))
            .collect())
    }

    /// Purge (shred) the parked submissions `ids`, all in one transaction:
    /// the parked row goes with its sealed payload and data key; the
    /// receipt says `dead_lettered` / `withdrawn_by_operator`; a dead letter
    /// keeps metadata only; the portal's receipt event waits in the outbox.
    /// An id that is not parked, or whose attempt is under way, changes
    /// nothing.
    async fn purge_parked(
        &self,
        ids: Vec<SubmissionId>,
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<Vec<ParkedResult>, OpsError> {
        // The operator's name only: the detail never carries submission values.
        let detail = format!("withdrawn by operator {}", actor.0);
        let outcome = format!("{} purged", ids.len());
        let joined = ids.join(" ");
        let audit = actor.audit(action::PURGE_PARKED, &joined, &outcome, why);
        let expires_at = crate::domain::time::time_after(self.dead_letter_retention);
        match self
            .store
            .withdraw_parked(&ids, &detail, expires_at, &audit)
            .await?
        {
            AllOrNone::Done(withdrawn) => {
                tracing::info!(purged = withdrawn.len(), operator = %actor.0, "parked submissions purged");
                Ok(withdrawn
                    .iter()
                    .map(|id| ParkedAction::Purge.result(id, false, false))
                    .collect())
            }
            AllOrNone::Delivered(id) => Err(OpsError::Invalid(format!(
                "{id} is already delivered; nothing was purged"
            ))),
            AllOrNone::NotParked(id) => Err(match self.parked_show(&id).await {
                Ok(p) if p.in_flight => OpsError::InFlight(id.to_string()),
                _ => self.not_parked(&id).await,
            }),
        }
    }

    /// Configured destinations (and pauses left over from removed ones) with
    /// their pause and parked backlog.
    pub async fn destinations(&self) -> Result<Vec<DestinationInfo>, OpsError> {
        let pauses = self.store.pauses().await?;
        let backlog = self.parked(None).await?;
        let configured = self.configured();
        let mut names = configured.clone();
        for p in &pauses {
            if !names.contains(&p.destination) {
                names.push(p.destination.clone());
            }
        }
        Ok(names
            .into_iter()
            .map(|name| {
                let pause = pauses.iter().find(|p| p.destination == name);
                let b = backlog.iter().find(|b| b.destination == name);
                DestinationInfo {
                    configured: configured.contains(&name),
                    paused: pause.is_some(),
                    paused_at: pause.map(|p| p.paused_at),
                    paused_by: pause.map(|p| p.operator.clone()),
                    pause_reason: pause.and_then(|p| p.reason.clone()),
                    parked: b.map_or(0, |b| b.count),
                    held: b.map_or(0, |b| b.held),
                    destination: name,
                }
            })
            .collect())
    }

    /// Pause a configured destination: its submissions are parked without
    /// an attempt until it is resumed.
    pub async fn pause(
        &self,
        destination: &DestinationId,
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<PauseResult, OpsError> {
        self.set_paused(destination, true, actor, why).await
    }

    /// Resume a paused destination: its parked submissions follow their
    /// schedule again. A pause left over from a destination no longer
    /// configured can be resumed too.
    pub async fn resume(
        &self,
        destination: &DestinationId,
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<PauseResult, OpsError> {
        self.set_paused(destination, false, actor, why).await
    }

    async fn set_paused(
        &self,
        destination: &DestinationId,
        pause: bool,
        actor: &Actor,
        why: Option<&str>,
    ) -> Result<PauseResult, OpsError> {
        let destination = &operator_argument(destination);
        let configured = self.configured().iter().any(|d| d == destination);
        if pause && !configured {
            return Err(self.unknown_destination(destination));
        }
        let (action, done, not_done) = if pause {
            (
                action::PAUSE_DESTINATION,
                PauseOutcome::Paused,
                PauseOutcome::AlreadyPaused,
            )
        } else {
            (
                action::RESUME_DESTINATION,
                PauseOutcome::Resumed,
                PauseOutcome::NotPaused,
            )
        };
        let done_text = format!("{destination} {done}");
        let not_done_text = format!("{destination} {not_done}");
        let if_changed = actor.audit(action, "", &done_text, why);
        let if_not = actor.audit(action, "", &not_done_text, why);
        // Nothing to resume and not configured: a name nobody knows.
        let if_not = configured.then_some(&if_not);
        let Some(changed) = self
            .store
            .set_paused(destination, pause, &if_changed, if_not)
            .await?
        else {
            return Err(self.unknown_destination(destination));
        };
        let message = match (pause, changed) {
            (true, true) => format!(
                "{destination} is paused: its submissions are parked without an attempt until `kurier destinations resume {destination}`"
            ),
            (true, false) => format!("{destination} was already paused"),
            (false, true) => format!(
                "{destination} is resumed: its parked submissions follow their schedule again"
            ),
            (false, false) => format!("{destination} was not paused"),
        };
        let outcome = if changed { done } else { not_done };
        tracing::info!(destination = destination.as_str(), outcome = outcome.as_str(), operator = %actor.0, "destination pause");
        Ok(PauseResult {
            destination: destination.clone(),
            outcome,
            message,
        })
    }

    fn unknown_destination(&self, destination: &DestinationId) -> OpsError {
        OpsError::UnknownDestination(destination.clone(), self.configured().join(", "))
    }

    /// Why `id` is not parked, as far as its receipt tells.
    async fn not_parked(&self, id: &SubmissionId) -> OpsError {
        let hint = match self.store.receipt(id).await {
            Ok(Some(r)) => format!(" (its receipt says {})", r.status),
            _ => String::new(),
        };
        OpsError::NotParked(id.to_string(), hint)
    }

    /// Whether `id` (an operator's argument) names a delivered submission.
    async fn delivered(&self, id: &str) -> Result<bool, OpsError> {
        Ok(self
            .receipt(id)
            .await?
            .is_some_and(|r| r.status == ReceiptStatus::Delivered))
    }
}

/// A submission id (UUID) in its stored form.
fn submission_id(id: &str) -> Result<SubmissionId, OpsError> {
    SubmissionId::canonical(id).ok_or_else(|| {
        OpsError::Invalid(format!(
            "{:?} is not a submission id (UUID); see `kurier parked list --each`",
            id.trim()
        ))
    })
}

/// A destination an operator named to act on (pause, resume, retry all),
/// without surrounding white space, as these verbs have always read it.
fn operator_argument(destination: &DestinationId) -> DestinationId {
    DestinationId::new(destination.trim())
}

/// Submission ids, checked and without repeats.
fn submission_ids(ids: &[String]) -> Result<Vec<SubmissionId>, OpsError> {
    if ids.is_empty() {
        return Err(OpsError::Invalid("name at least one submission id".into()));
    }
    let mut out: Vec<SubmissionId> = Vec::with_capacity(ids.len());
    for id in ids {
        let id = submission_id(id)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// A dead letter as operators see it: metadata and reason, never a payload.
fn without_payload(d: DeadLetter) -> DeadLetter {
    DeadLetter {
        key_id: None,
        sealed_key: None,
        sealed_payload: None,
        ..d
    }
}

fn sealed_of(d: &DeadLetter) -> Result<(SubmissionId, Sealed), OpsError> {
    match (
        &d.submission_id,
        &d.key_id,
        &d.sealed_key,
        &d.sealed_payload,
    ) {
        (Some(sid), Some(key_id), Some(key), Some(payload)) => Ok((
            sid.clone(),
            Sealed {
                key_id: key_id.clone(),
                sealed_key: key.clone(),
                sealed_payload: payload.clone(),
            },
        )),
        _ => Err(OpsError::NoPayload(d.id.to_string())),
    }
}

/// `7d`, `12h`, `30m`, `45s`, `2w` → a duration.
pub fn parse_duration(text: &str) -> Result<Duration, OpsError> {
    let t = text.trim();
    let bad = || {
        OpsError::Invalid(format!(
            "{text:?} is not a duration; write a number and a unit: 45s, 30m, 12h, 7d, 2w"
        ))
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    // More than a thousand years is a typo, not a retention.
    const MAX_SECS: u64 = 1000 * 366 * 86_400;
    match n.checked_mul(secs) {
        Some(total) if total <= MAX_SECS => Ok(Duration::from_secs(total)),
        _ => Err(OpsError::Invalid(format!(
            "{text:?} is longer than a thousand years; write a shorter duration"
        ))),
    }
}

/// An RFC 3339 time or a duration ago → the stored time form (UTC, µs).
pub fn parse_since(text: &str) -> Result<Timestamp, OpsError> {
    if let Ok(t) = Timestamp::parse(text) {
        return Ok(t);
    }
    match parse_duration(text) {
        Ok(ago) => crate::domain::time::time_before(ago)
            .ok_or_else(|| OpsError::Invalid(format!("{text:?} reaches before the year 1"))),
        Err(_) => Err(OpsError::Invalid(format!(
            "{text:?} is neither an RFC 3339 time such as 2026-11-23T00:00:00Z nor a duration such as 24h or 7d"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::now;

    #[test]
    fn durations_have_a_number_and_a_unit() {
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        for bad in ["", "7", "d", "7y", "-1d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        // Overflow is a clear error, not a panic.
        for huge in ["99999999999d", "18446744073709551615s", "999999w"] {
            let err = parse_duration(huge).unwrap_err().to_string();
            assert!(err.contains("thousand years"), "{huge}: {err}");
            assert!(parse_since(huge).is_err(), "{huge}");
        }
    }

    #[test]
    fn since_takes_a_time_or_a_duration_ago() {
        assert_eq!(
            parse_since("2026-11-23T01:00:00+01:00")
                .unwrap()
                .to_string(),
            "2026-11-23T00:00:00.000000Z"
        );
        assert!(parse_since("24h").unwrap() < now());
        assert!(parse_since("yesterday").is_err());
    }
}
