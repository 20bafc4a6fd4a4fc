//! # Room `store`: every table
//!
//! Owns the database: receipts and their receipt events (the outbox, built
//! by [`events`]), parked submissions, dead letters, audit, vault epochs,
//! transport message ids; group commit; erasure by crypto-shredding
//! ([`shred`]). May use `vault`, `config` and `domain`, nothing above.
//!
//! The database: receipts and dead letters, on SQLite (embedded default) or
//! PostgreSQL (production, several instances).
//!
//! One SQL text serves both backends (`$n` placeholders work in SQLite too);
//! the `on_pool!` macro runs it against whichever pool is configured, so
//! there is no `Any` driver and no duplicated query. Writes of the pipeline go
//! through the [`Recorder`], which commits them in groups: many submissions
//! share one transaction (and one fsync), so the database is not the ceiling.
//!
//! Holds metadata only: ids, service, destination, portal, status, reason,
//! hashes, reference, attempts, timestamps. Never a payload or a form value.

pub mod events;
pub mod shred;

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot};

use crate::config::DatabaseConfig;
use crate::domain::id::{DestinationId, SubmissionId};
use crate::domain::status::ReceiptStatus;
use crate::domain::time::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database: unsupported URL (use sqlite://FILE or postgres://…)")]
    UnsupportedUrl,
    #[error("database: the receipt writer has stopped")]
    WriterGone,
    #[error("database: group commit failed: {0}")]
    Batch(String),
    #[error(
        "there is no database {0}: `kurier run` or `kurier migrate` creates it; check [database] url if the broker has run"
    )]
    Missing(String),
    #[error(
        "the database {name} is not migrated (migration {have} of {want} applied); `kurier migrate` applies the rest"
    )]
    NotMigrated { name: String, have: i64, want: i64 },
}

/// How an operator's command opens a database that must already be there
/// ([`Store::open_existing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Looks only: SQLite opened read-only, PostgreSQL sessions read-only.
    ReadOnly,
    /// Changes rows (replay, purge, pause, …), never the schema.
    ReadWrite,
}

/// One row of `receipts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Receipt {
    pub submission_id: SubmissionId,
    pub service: Option<String>,
    pub destination: Option<DestinationId>,
    pub portal: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ReceiptStatus,
    pub reason_code: Option<String>,
    pub reason_detail: Option<String>,
    pub http_status: Option<i64>,
    pub reference: Option<String>,
    pub attempts: i64,
    pub received_sha256: String,
    pub sent_sha256: Option<String>,
    pub submitted_at: Option<String>,
    pub received_at: Timestamp,
    pub completed_at: Timestamp,
}

/// One row of `dead_letters`: what the pipeline writes, what operators list
/// (CLI, API, console) and what replay opens. Serialised without the sealed
/// payload; `payload_kept` says whether there is one. Listings read no
/// sealed columns (they stay `None`), but always `payload_kept`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub submission_id: Option<SubmissionId>,
    #[serde(skip)]
    pub amqp_message_id: Option<SubmissionId>,
    pub service: Option<String>,
    pub destination: Option<DestinationId>,
    pub portal: Option<String>,
    pub reason_code: String,
    pub reason_detail: String,
    pub http_status: Option<i64>,
    pub received_sha256: String,
    pub created_at: Timestamp,
    /// The sealed payload, kept for replay until `expires_at` (not listed).
    #[serde(skip)]
    #[sqlx(default)]
    pub key_id: Option<String>,
    #[serde(skip)]
    #[sqlx(default)]
    pub sealed_key: Option<Vec<u8>>,
    #[serde(skip)]
    #[sqlx(default)]
    pub sealed_payload: Option<Vec<u8>>,
    /// Until when the dead letter (and its sealed payload) is kept.
    #[sqlx(default)]
    pub expires_at: Option<Timestamp>,
    /// Whether a sealed payload is kept (replay and payload view possible).
    #[sqlx(default)]
    pub payload_kept: bool,
}

/// A submission as [`Store::seen`] finds it (`Default`: never seen).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Seen {
    pub status: Option<String>,
    pub received_sha256: Option<String>,
    pub parked: bool,
    /// The portal of the receipt or parked row, if there is one.
    pub portal: Option<String>,
}

/// One row of `outbox`: a receipt event waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxEvent {
    pub id: i64,
    pub submission_id: SubmissionId,
    pub seq: i64,
    /// The portal.
    pub routing_key: String,
    /// The event's JSON without `seq` (see `receipt::with_seq`).
    pub body: Vec<u8>,
}

/// Receipt events taken by [`Store::take_outbox`]: their rows stay locked
/// by this open transaction until [`TakenEvents::forget`] (or a drop, which
/// rolls it back and leaves them to be published again).
pub struct TakenEvents {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

impl TakenEvents {
    /// Delete the events RabbitMQ confirmed and commit.
    pub async fn forget(mut self, confirmed: &[i64]) -> Result<(), StoreError> {
        if !confirmed.is_empty() {
            sqlx::query(FORGET_OUTBOX_POSTGRES)
                .bind(confirmed)
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}

/// One row of `parked`: a submission waiting for its next attempt.
#[derive(Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Parked {
    pub submission_id: SubmissionId,
    pub service: String,
    pub destination: DestinationId,
    pub portal: String,
    pub attempts: i64,
    pub received_sha256: String,
    pub received_at: Timestamp,
    pub first_failure_at: Timestamp,
    pub last_cause: String,
    pub next_attempt_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(skip)]
    pub lease_until: Option<Timestamp>,
    #[serde(skip)]
    pub key_id: String,
    #[serde(skip)]
    pub sealed_key: Vec<u8>,
    #[serde(skip)]
    pub sealed_payload: Vec<u8>,
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked")
            .field("submission_id", &self.submission_id)
            .field("destination", &self.destination)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .finish_non_exhaustive()
    }
}

impl Parked {
    pub fn sealed(&self) -> crate::vault::Sealed {
        crate::vault::Sealed {
            key_id: self.key_id.clone(),
            sealed_key: self.sealed_key.clone(),
            sealed_payload: self.sealed_payload.clone(),
        }
    }
}

/// One row of `vault_epochs`: an epoch's KEK, wrapped by a master key
/// (`wrapped_kek` NULL once destroyed).
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VaultEpoch {
    pub epoch: String,
    pub master_key_id: String,
    pub wrapped_kek: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub destroyed_at: Option<Timestamp>,
}

impl std::fmt::Debug for VaultEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultEpoch")
            .field("epoch", &self.epoch)
            .field("master_key_id", &self.master_key_id)
            .field("live", &self.wrapped_kek.is_some())
            .field("destroyed_at", &self.destroyed_at)
            .finish()
    }
}

impl VaultEpoch {
    /// The wrapped KEK (`None`: destroyed).
    pub fn wrapped(&self) -> Option<crate::vault::WrappedKek> {
        self.wrapped_kek.as_ref().map(|k| crate::vault::WrappedKek {
            master_key_id: self.master_key_id.clone(),
            wrapped_kek: k.clone(),
        })
    }
}

/// What the pipeline writes at the end of a submission.
// Built and moved once per submission: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Record {
    /// Terminal: delivered (or a receipt only). Erases any parked copy.
    Receipt(Receipt),
    /// Terminal: a dead letter (with its sealed payload) and, when the
    /// submission id is known, its receipt. Erases any parked copy.
    DeadLetter {
        dead_letter: DeadLetter,
        receipt: Option<Receipt>,
        /// A dead letter that must not touch the submission id's receipt (it
        /// belongs to another portal, or the sender is not who it claims):
        /// its event goes to this portal directly, as `(portal, event body)`.
        notify: Option<(String, Vec<u8>)>,
    },
    /// Not finished: park (or re-park) the sealed submission.
    Park(Parked),
    /// A terminal submission came again: repeat its receipt event (same `seq`).
    RepeatEvent(Receipt),
    /// A parked submission's attempt failed again: new schedule.
    Reschedule {
        submission_id: SubmissionId,
        attempts: i64,
        next_attempt_at: Timestamp,
        last_cause: String,
    },
}

#[derive(Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Run `$body` with `$pool` bound to the configured backend's pool.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

/// Run `$body` in a write transaction `$tx` on either backend; commit when it
/// is done, roll back on `?` or an early `return`. Its value is dropped (it
/// differs per backend). SQLite's is `BEGIN IMMEDIATE`: it waits for the
/// write lock instead of failing with SQLITE_BUSY.
macro_rules! in_tx {
    ($store:expr, $tx:ident => $body:expr) => {
        match $store {
            Store::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let _ = $body;
                $tx.commit().await?;
            }
            Store::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let _ = $body;
                $tx.commit().await?;
            }
        }
    };
}

// The statements of operator actions; after the macros they use.
pub(crate) mod operator;

// Two-stage receipts: what awaits the authority's answer, and the answer.
pub mod answers;

// The migrations this binary and the database know: migrate, --check.
pub mod schema;

// The last hour per destination, for the console's charts.
pub mod history;

/// The receipt upsert's text (a macro, so [`write_receipt_postgres`] can
/// build on it with `concat!`).
macro_rules! upsert_receipt_sql {
    () => {
        "INSERT INTO receipts (submission_id, service, destination, portal, status, \
     reason_code, reason_detail, http_status, reference, attempts, received_sha256, sent_sha256, \
     submitted_at, received_at, completed_at, events) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
     COALESCE((SELECT events FROM parked WHERE submission_id = $1), 0) + 1) \
     ON CONFLICT (submission_id) DO UPDATE SET service = excluded.service, \
     destination = excluded.destination, portal = excluded.portal, status = excluded.status, \
     reason_code = excluded.reason_code, reason_detail = excluded.reason_detail, \
     http_status = excluded.http_status, reference = excluded.reference, \
     attempts = excluded.attempts, received_sha256 = excluded.received_sha256, \
     sent_sha256 = excluded.sent_sha256, submitted_at = excluded.submitted_at, \
     received_at = excluded.received_at, completed_at = excluded.completed_at, \
     events = CASE WHEN excluded.events > receipts.events THEN excluded.events \
     ELSE receipts.events + 1 END \
     WHERE receipts.status <> 'delivered'"
    };
}

const UPSERT_RECEIPT: &str = upsert_receipt_sql!();

/// `$query` with the receipt `$r` bound to the upsert's `$1`…`$15`.
macro_rules! bind_receipt {
    ($query:expr, $r:expr) => {
        $query
            .bind(&$r.submission_id)
            .bind(&$r.service)
            .bind(&$r.destination)
            .bind(&$r.portal)
            .bind($r.status.as_str())
            .bind(&$r.reason_code)
            .bind(&$r.reason_detail)
            .bind($r.http_status)
            .bind(&$r.reference)
            .bind($r.attempts)
            .bind(&$r.received_sha256)
            .bind(&$r.sent_sha256)
            .bind(&$r.submitted_at)
            .bind($r.received_at)
            .bind($r.completed_at)
    };
}

/// The receipt event of a terminal receipt, with its sequence number, into
/// the outbox, in the receipt's transaction (only if the receipt now has the
/// status the event tells).
const OUTBOX_RECEIPT_EVENT: &str = "INSERT INTO outbox (submission_id, seq, routing_key, body, created_at) \
     SELECT submission_id, events, portal, $2, $3 FROM receipts \
     WHERE submission_id = $1 AND portal IS NOT NULL AND status = $4";

/// The `parked` event of a submission parked for the first time.
const OUTBOX_PARKED_EVENT: &str = "INSERT INTO outbox (submission_id, seq, routing_key, body, created_at) \
     SELECT submission_id, events, portal, $2, $3 FROM parked WHERE submission_id = $1";

/// The event of a dead letter that has no receipt of its own (seq 1).
const OUTBOX_NOTICE: &str = "INSERT INTO outbox (submission_id, seq, routing_key, body, created_at) \
     VALUES ($1, 1, $2, $3, $4)";

/// Confirmed receipt events out of the outbox, on PostgreSQL (alone, or in
/// the drain's transaction that locked them).
const FORGET_OUTBOX_POSTGRES: &str = "DELETE FROM outbox WHERE id = ANY($1)";

const IS_PARKED: &str = "SELECT COUNT(*) FROM parked WHERE submission_id = $1";

const INSERT_DEAD_LETTER: &str = "INSERT INTO dead_letters (submission_id, amqp_message_id, service, \
     destination, portal, reason_code, reason_detail, http_status, received_sha256, created_at, \
     key_id, sealed_key, sealed_payload, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

const DELETE_PARKED: &str = "DELETE FROM parked WHERE submission_id = $1";

const UPSERT_PARKED: &str = "INSERT INTO parked (submission_id, service, destination, portal, attempts, \
     received_sha256, received_at, first_failure_at, last_cause, next_attempt_at, expires_at, \
     lease_until, key_id, sealed_key, sealed_payload, events) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12, $13, $14, \
     COALESCE((SELECT events FROM receipts WHERE submission_id = $1), 0) + 1) \
     ON CONFLICT (submission_id) DO UPDATE SET attempts = excluded.attempts, \
     last_cause = excluded.last_cause, next_attempt_at = excluded.next_attempt_at, lease_until = NULL";

const RESCHEDULE_PARKED: &str = "UPDATE parked SET attempts = $2, next_attempt_at = $3, last_cause = $4, \
     lease_until = NULL WHERE submission_id = $1";

/// The receipt event of receipt `$r` into the outbox (in `write_records!`).
macro_rules! outbox_receipt_event {
    ($conn:expr, $r:expr) => {
        sqlx::query(OUTBOX_RECEIPT_EVENT)
            .bind(&$r.submission_id)
            .bind(crate::store::events::terminal_event($r))
            .bind(&$r.completed_at)
            .bind($r.status.as_str())
            .execute(&mut *$conn)
            .await?
    };
}

/// A group commit of receipts only (the common case under load), with
/// distinct submission ids, on SQLite: three statements for the whole batch
/// instead of three per receipt, each one round trip to the connection's
/// worker thread. The same effect as [`write_records!`] for each.
/// Not kept as prepared statements: their text differs with the batch size,
/// and caching each on every connection grew the RSS by 30 MiB.
/// (SQLite only: on PostgreSQL batched statements were slower.)
async fn write_receipt_batch(
    conn: &mut sqlx::SqliteConnection,
    receipts: &[&Receipt],
) -> Result<(), StoreError> {
    let (head, rest) = UPSERT_RECEIPT
        .split_once(" VALUES ")
        .expect("UPSERT_RECEIPT has VALUES");
    let (_, on_conflict) = rest
        .split_once(" ON CONFLICT ")
        .expect("UPSERT_RECEIPT has ON CONFLICT");
    let mut upsert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!("{head} "));
    upsert.push_values(receipts.iter(), |mut row, r| {
        row.push_bind(&r.submission_id)
            .push_bind(&r.service)
            .push_bind(&r.destination)
            .push_bind(&r.portal)
            .push_bind(r.status.as_str())
            .push_bind(&r.reason_code)
            .push_bind(&r.reason_detail)
            .push_bind(r.http_status)
            .push_bind(&r.reference)
            .push_bind(r.attempts)
            .push_bind(&r.received_sha256)
            .push_bind(&r.sent_sha256)
            .push_bind(&r.submitted_at)
            .push_bind(r.received_at)
            .push_bind(r.completed_at)
            .push("COALESCE((SELECT events FROM parked WHERE submission_id = ")
            .push_bind_unseparated(&r.submission_id)
            .push_unseparated("), 0) + 1");
    });
    upsert.push(format!(" ON CONFLICT {on_conflict}"));
    upsert.build().persistent(false).execute(&mut *conn).await?;

    let mut events =
        sqlx::QueryBuilder::<sqlx::Sqlite>::new("WITH v (id, body, created_at, status) AS (");
    events.push_values(receipts.iter(), |mut row, r| {
        row.push_bind(&r.submission_id)
            .push_bind(crate::store::events::terminal_event(r))
            .push_bind(r.completed_at)
            .push_bind(r.status.as_str());
    });
    events.push(
        ") INSERT INTO outbox (submission_id, seq, routing_key, body, created_at) \
         SELECT r.submission_id, r.events, r.portal, v.body, v.created_at \
         FROM v JOIN receipts r ON r.submission_id = v.id \
         WHERE r.portal IS NOT NULL AND r.status = v.status",
    );
    events.build().persistent(false).execute(&mut *conn).await?;

    let mut unpark =
        sqlx::QueryBuilder::<sqlx::Sqlite>::new("DELETE FROM parked WHERE submission_id IN (");
    let mut ids = unpark.separated(", ");
    for r in receipts {
        ids.push_bind(&r.submission_id);
    }
    unpark.push(")");
    unpark.build().persistent(false).execute(&mut *conn).await?;
    Ok(())
}

/// A receipt on PostgreSQL in one statement, one round trip instead of
/// three: the upsert, its event and the unparking of [`write_records!`] as
/// data-modifying `WITH` parts. All parts see the tables as they were
/// before the statement, so the event's `seq` is the upserted row's
/// (`RETURNING`), or, where the upsert changed nothing (the receipt was
/// delivered already), the stored row's, exactly as the three statements
/// in turn; the parked row the upsert counts `events` from is deleted by
/// the same statement.
async fn write_receipt_postgres(
    conn: &mut sqlx::PgConnection,
    r: &Receipt,
) -> Result<(), StoreError> {
    const SQL: &str = concat!(
        "WITH upserted AS (",
        upsert_receipt_sql!(),
        " RETURNING submission_id, events, portal, status), ",
        "now_stored AS (SELECT submission_id, events, portal, status FROM upserted \
         UNION ALL SELECT submission_id, events, portal, status FROM receipts \
         WHERE submission_id = $1 AND NOT EXISTS (SELECT 1 FROM upserted)), ",
        "event AS (INSERT INTO outbox (submission_id, seq, routing_key, body, created_at) \
         SELECT submission_id, events, portal, $16, $15 FROM now_stored \
         WHERE portal IS NOT NULL AND status = $5) ",
        "DELETE FROM parked WHERE submission_id = $1"
    );
    bind_receipt!(sqlx::query(SQL), r)
        .bind(crate::store::events::terminal_event(r))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The receipts of `records` if they are all receipts of distinct
/// submissions (then [`write_receipt_batch`] may write them).
fn receipts_only(records: &[Record]) -> Option<Vec<&Receipt>> {
    if records.len() < 2 {
        return None;
    }
    let mut ids = std::collections::HashSet::with_capacity(records.len());
    records
        .iter()
        .map(|record| match record {
            Record::Receipt(r) if ids.insert(r.submission_id.as_str()) => Some(r),
            _ => None,
        })
        .collect()
}

/// The statements of [`Store::write`], the same for both backends.
macro_rules! write_records {
    ($conn:expr, $records:expr) => {
        for record in $records {
            let (dead_letter, receipt) = match record {
                Record::Receipt(r) => (None, Some(r)),
                Record::DeadLetter {
                    dead_letter,
                    receipt,
                    notify,
                } => {
                    if let Some((portal, body)) = notify {
                        sqlx::query(OUTBOX_NOTICE)
                            .bind(&dead_letter.submission_id)
                            .bind(portal)
                            .bind(body)
                            .bind(&dead_letter.created_at)
                            .execute(&mut *$conn)
                            .await?;
                    }
                    (Some(dead_letter), receipt.as_ref())
                }
                Record::Park(p) => {
                    let (already,): (i64,) = sqlx::query_as(IS_PARKED)
                        .bind(&p.submission_id)
                        .fetch_one(&mut *$conn)
                        .await?;
                    sqlx::query(UPSERT_PARKED)
                        .bind(&p.submission_id)
                        .bind(&p.service)
                        .bind(&p.destination)
                        .bind(&p.portal)
                        .bind(p.attempts)
                        .bind(&p.received_sha256)
                        .bind(&p.received_at)
                        .bind(&p.first_failure_at)
                        .bind(&p.last_cause)
                        .bind(&p.next_attempt_at)
                        .bind(&p.expires_at)
                        .bind(&p.key_id)
                        .bind(&p.sealed_key)
                        .bind(&p.sealed_payload)
                        .execute(&mut *$conn)
                        .await?;
                    if already == 0 {
                        sqlx::query(OUTBOX_PARKED_EVENT)
                            .bind(&p.submission_id)
                            .bind(crate::store::events::parked_event(p))
                            .bind(&p.first_failure_at)
                            .execute(&mut *$conn)
                            .await?;
                    }
                    continue;
                }
                Record::RepeatEvent(r) => {
                    outbox_receipt_event!($conn, r);
                    continue;
                }
                Record::Reschedule {
                    submission_id,
                    attempts,
                    next_attempt_at,
                    last_cause,
                } => {
                    sqlx::query(RESCHEDULE_PARKED)
                        .bind(submission_id)
                        .bind(*attempts)
                        .bind(next_attempt_at)
                        .bind(last_cause)
                        .execute(&mut *$conn)
                        .await?;
                    continue;
                }
            };
            if let Some(d) = dead_letter {
                sqlx::query(INSERT_DEAD_LETTER)
                    .bind(&d.submission_id)
                    .bind(&d.amqp_message_id)
                    .bind(&d.service)
                    .bind(&d.destination)
                    .bind(&d.portal)
                    .bind(&d.reason_code)
                    .bind(&d.reason_detail)
                    .bind(d.http_status)
                    .bind(&d.received_sha256)
                    .bind(&d.created_at)
                    .bind(&d.key_id)
                    .bind(&d.sealed_key)
                    .bind(&d.sealed_payload)
                    .bind(&d.expires_at)
                    .execute(&mut *$conn)
                    .await?;
                // A known submission id always comes with a receipt, which
                // erases the parked copy below (after its event's `seq` is read).
            }
            if let Some(r) = receipt {
                bind_receipt!(sqlx::query(UPSERT_RECEIPT), r)
                    .execute(&mut *$conn)
                    .await?;
                outbox_receipt_event!($conn, r);
                sqlx::query(DELETE_PARKED)
                    .bind(&r.submission_id)
                    .execute(&mut *$conn)
                    .await?;
            }
        }
    };
}

/// The SQLite settings every connection of Kurier's uses.
fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit survives power loss, not only a crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        // Deleted rows are overwritten, not merely unlinked.
        .pragma("secure_delete", "ON"))
}

impl Store {
    /// Connect, creating an SQLite file that is not there yet (`run`, `migrate`).
    pub async fn connect(config: &DatabaseConfig) -> Result<Store, StoreError> {
        let url = config.url.as_str();
        if url.starts_with("sqlite:") {
            let options = sqlite_options(url)?.create_if_missing(true);
            Store::connect_sqlite(config, options).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::connect_postgres(config, PgConnectOptions::from_str(url)?).await
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// Open the database that `run` or `migrate` made, for an operator's
    /// command: never create it, never migrate it (a rolling upgrade decides
    /// when the schema changes, not a `kurier status`), and refuse one whose
    /// schema is older than this binary's, naming the database. One that is
    /// newer (a rolling upgrade, a rollback) is used as it is.
    pub async fn open_existing(
        config: &DatabaseConfig,
        access: Access,
    ) -> Result<Store, StoreError> {
        let (store, name) = Store::open_as_is(config, access).await?;
        let want = store
            .migrator()
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let have = store.schema_version().await?;
        if have < want {
            store.close().await;
            return Err(StoreError::NotMigrated { name, have, want });
        }
        Ok(store)
    }

    /// Open the database that is there, whatever its schema, with its name
    /// for messages (`kurier migrate --check`); never create it.
    pub async fn open_as_is(
        config: &DatabaseConfig,
        access: Access,
    ) -> Result<(Store, String), StoreError> {
        let url = config.url.as_str();
        let read_only = access == Access::ReadOnly;
        if url.starts_with("sqlite:") {
            let options = sqlite_options(url)?.read_only(read_only);
            let name = options.get_filename().display().to_string();
            if !options.get_filename().exists() {
                return Err(StoreError::Missing(name));
            }
            Ok((Store::connect_sqlite(config, options).await?, name))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut options = PgConnectOptions::from_str(url)?;
            if read_only {
                options = options.options([("default_transaction_read_only", "on")]);
            }
            let name = format!(
                "{:?} on {}:{}",
                options.get_database().unwrap_or(options.get_username()),
                options.get_host(),
                options.get_port()
            );
            match Store::connect_postgres(config, options).await {
                Ok(store) => Ok((store, name)),
                // invalid_catalog_name: the database itself does not exist.
                Err(StoreError::Sql(sqlx::Error::Database(e)))
                    if e.code().as_deref() == Some("3D000") =>
                {
                    Err(StoreError::Missing(name))
                }
                Err(e) => Err(e),
            }
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    async fn connect_sqlite(
        config: &DatabaseConfig,
        options: SqliteConnectOptions,
    ) -> Result<Store, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections.clamp(1, 8))
            .connect_with(options)
            .await?;
        Ok(Store::Sqlite(pool))
    }

    async fn connect_postgres(
        config: &DatabaseConfig,
        options: PgConnectOptions,
    ) -> Result<Store, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Store::Postgres(pool))
    }

    /// The migrations of `migrations/<backend>/` (embedded at build time).
    pub(super) fn migrator(&self) -> sqlx::migrate::Migrator {
        match self {
            Store::Sqlite(_) => sqlx::migrate!("../migrations/sqlite"),
            Store::Postgres(_) => sqlx::migrate!("../migrations/postgres"),
        }
    }

    /// The newest migration applied; 0 for a database without Kurier's schema.
    async fn schema_version(&self) -> Result<i64, StoreError> {
        let has_table = self.has_migrations_table().await?;
        if !has_table {
            return Ok(0);
        }
        let version = on_pool!(self, pool => sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success"
        )
        .fetch_one(pool)
        .await)?;
        Ok(version.unwrap_or(0))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    pub async fn receipt(
        &self,
        submission_id: &SubmissionId,
    ) -> Result<Option<Receipt>, StoreError> {
        const SQL: &str = "SELECT submission_id, service, destination, portal, status, reason_code, \
             reason_detail, http_status, reference, attempts, received_sha256, sent_sha256, submitted_at, \
             received_at, completed_at FROM receipts WHERE submission_id = $1";
        let row = on_pool!(self, pool => sqlx::query_as::<_, Receipt>(SQL)
            .bind(submission_id)
            .fetch_optional(pool)
            .await)?;
        Ok(row)
    }

    /// Receipts completed at or after `since` (RFC 3339 UTC), newest first.
    pub async fn receipts(
        &self,
        since: Option<Timestamp>,
        limit: i64,
    ) -> Result<Vec<Receipt>, StoreError> {
        const SQL: &str = "SELECT submission_id, service, destination, portal, status, reason_code, \
             reason_detail, http_status, reference, attempts, received_sha256, sent_sha256, submitted_at, \
             received_at, completed_at FROM receipts WHERE completed_at_ts >= $1 \
             ORDER BY completed_at_ts DESC LIMIT $2";
        let rows = on_pool!(self, pool => sqlx::query_as::<_, Receipt>(SQL)
            .bind(since.unwrap_or(Timestamp::MIN).typed())
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        Ok(rows)
    }

    /// What the pipeline must know of a submission before it runs it: its
    /// receipt's status and received hash (if any) and whether it is parked,
    /// in one round trip. The same SQL on both backends.
    pub async fn seen(&self, submission_id: &SubmissionId) -> Result<Seen, StoreError> {
        const SQL: &str = "SELECT \
             (SELECT status FROM receipts WHERE submission_id = $1) AS status, \
             (SELECT received_sha256 FROM receipts WHERE submission_id = $1) AS received_sha256, \
             EXISTS (SELECT 1 FROM parked WHERE submission_id = $1) AS parked, \
             COALESCE((SELECT portal FROM receipts WHERE submission_id = $1), \
                      (SELECT portal FROM parked WHERE submission_id = $1)) AS portal";
        let seen = on_pool!(self, pool => sqlx::query_as::<_, Seen>(SQL)
            .bind(submission_id)
            .fetch_one(pool)
            .await)?;
        Ok(seen)
    }

    /// Is the submission parked (durably held for a later attempt)?
    /// [`Store::seen`] for several submissions in one query (what
    /// [`Recorder::seen`] gathers): by submission id.
    pub async fn seen_many(
        &self,
        submission_ids: &[SubmissionId],
    ) -> Result<std::collections::HashMap<SubmissionId, Seen>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            submission_id: SubmissionId,
            #[sqlx(flatten)]
            seen: Seen,
        }
        let rows: Vec<Row> = match self {
            Store::Sqlite(pool) => {
                const SQL: &str = "SELECT q.id AS submission_id, r.status, r.received_sha256, \
                     (p.submission_id IS NOT NULL) AS parked, COALESCE(r.portal, p.portal) AS portal \
                     FROM (SELECT value AS id FROM json_each($1)) q \
                     LEFT JOIN receipts r ON r.submission_id = q.id \
                     LEFT JOIN parked p ON p.submission_id = q.id";
                let ids = serde_json::to_string(submission_ids).unwrap_or_else(|_| "[]".into());
                sqlx::query_as(SQL).bind(ids).fetch_all(pool).await?
            }
            Store::Postgres(pool) => {
                const SQL: &str = "SELECT q.id AS submission_id, r.status, r.received_sha256, \
                     (p.submission_id IS NOT NULL) AS parked, COALESCE(r.portal, p.portal) AS portal \
                     FROM unnest($1::text[]) AS q(id) \
                     LEFT JOIN receipts r ON r.submission_id = q.id \
                     LEFT JOIN parked p ON p.submission_id = q.id";
                sqlx::query_as(SQL)
                    .bind(submission_ids)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|r| (r.submission_id, r.seen))
            .collect())
    }

    pub async fn is_parked(&self, submission_id: &SubmissionId) -> Result<bool, StoreError> {
        let (n,): (i64,) = on_pool!(self, pool => sqlx::query_as(IS_PARKED)
            .bind(submission_id)
            .fetch_one(pool)
            .await)?;
        Ok(n > 0)
    }

    /// Claim up to `limit` due parked submissions, oldest first: they are
    /// leased for `lease` so no other scheduler (or instance) takes them.
    /// Held submissions and paused destinations are left alone. On
    /// PostgreSQL "due" and the lease are measured by the database's clock
    /// (instances may disagree about the time), and several instances share
    /// the work with `SKIP LOCKED`; SQLite serves one machine.
    pub async fn claim_due(&self, lease: Duration, limit: i64) -> Result<Vec<Parked>, StoreError> {
        const SQLITE: &str = "UPDATE parked SET lease_until = $1 WHERE submission_id IN \
             (SELECT submission_id FROM parked WHERE next_attempt_at_ts <= $2 \
             AND (lease_until_ts IS NULL OR lease_until_ts < $2) AND NOT held \
             AND destination NOT IN (SELECT destination FROM destination_pauses) \
             ORDER BY received_at_ts LIMIT $3) \
             RETURNING submission_id, service, destination, portal, attempts, received_sha256, \
             received_at, first_failure_at, last_cause, next_attempt_at, expires_at, lease_until, \
             key_id, sealed_key, sealed_payload";
        const POSTGRES: &str = "WITH clock AS (SELECT now() AS now, \
             to_char((now() + make_interval(secs => $1)) AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS lease_until) \
             UPDATE parked SET lease_until = (SELECT lease_until FROM clock) WHERE submission_id IN \
             (SELECT submission_id FROM parked, clock WHERE next_attempt_at_ts <= clock.now \
             AND (parked.lease_until_ts IS NULL OR parked.lease_until_ts < clock.now) AND NOT held \
             AND destination NOT IN (SELECT destination FROM destination_pauses) \
             ORDER BY received_at_ts LIMIT $2 FOR UPDATE OF parked SKIP LOCKED) \
             RETURNING submission_id, service, destination, portal, attempts, received_sha256, \
             received_at, first_failure_at, last_cause, next_attempt_at, expires_at, lease_until, \
             key_id, sealed_key, sealed_payload";
        let rows = match self {
            Store::Sqlite(pool) => {
                let now = Timestamp::now();
                sqlx::query_as::<_, Parked>(SQLITE)
                    .bind(now.after(lease))
                    .bind(now.typed())
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
            Store::Postgres(pool) => {
                sqlx::query_as::<_, Parked>(POSTGRES)
                    .bind(lease.as_secs_f64())
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows)
    }

    /// A destination's circuit closed: its parked backlog is due now (it is
    /// then claimed oldest first).
    pub async fn bring_forward(&self, destination: &DestinationId) -> Result<u64, StoreError> {
        const SQL: &str = "UPDATE parked SET next_attempt_at = $2 \
             WHERE destination = $1 AND next_attempt_at_ts > $3 AND NOT held";
        let now = crate::domain::time::now();
        let done = on_pool!(self, pool => sqlx::query(SQL)
            .bind(destination)
            .bind(now)
            .bind(now.typed())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// Destinations an operator paused.
    pub async fn paused_destinations(&self) -> Result<Vec<DestinationId>, StoreError> {
        const SQL: &str = "SELECT destination FROM destination_pauses ORDER BY destination";
        let rows: Vec<(DestinationId,)> =
            on_pool!(self, pool => sqlx::query_as(SQL).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|(d,)| d).collect())
    }

    /// Up to `limit` receipt events with an id above `after`, oldest first,
    /// without taking them: the SQLite relay reads ahead of what it has
    /// published and deletes confirmed events later ([`Store::forget_outbox`]).
    /// Only where ids are committed in id order (SQLite: one writer at a
    /// time, `AUTOINCREMENT`); on PostgreSQL a smaller id can commit after a
    /// larger one, so it drains with [`Store::drain_outbox`].
    pub async fn outbox_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        const SQL: &str = "SELECT id, submission_id, seq, routing_key, body FROM outbox \
             WHERE id > $1 ORDER BY id LIMIT $2";
        let rows = on_pool!(self, pool => sqlx::query_as::<_, OutboxEvent>(SQL)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        Ok(rows)
    }

    /// Delete the receipt events RabbitMQ confirmed (one transaction).
    pub async fn forget_outbox(&self, ids: &[i64]) -> Result<(), StoreError> {
        const SQLITE: &str = "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each($1))";
        if ids.is_empty() {
            return Ok(());
        }
        match self {
            Store::Sqlite(pool) => {
                let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query(SQLITE).bind(ids).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Store::Postgres(pool) => {
                sqlx::query(FORGET_OUTBOX_POSTGRES)
                    .bind(ids)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Whether receipt events may be read ahead of their deletion
    /// ([`Store::outbox_after`]): ids commit in id order.
    pub fn outbox_commits_in_id_order(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }

    /// Take up to `limit` receipt events from the outbox, oldest first, hand
    /// them to `publish`, and delete the ones it returns (confirmed by
    /// RabbitMQ). On PostgreSQL the rows stay locked (`SKIP LOCKED`) while
    /// they are published, so two instances never publish the same event.
    pub async fn drain_outbox<F>(&self, limit: i64, publish: F) -> Result<usize, StoreError>
    where
        F: AsyncFnOnce(Vec<OutboxEvent>) -> Vec<i64>,
    {
        const SELECT: &str = "SELECT id, submission_id, seq, routing_key, body FROM outbox \
             ORDER BY id LIMIT $1";
        match self {
            Store::Sqlite(pool) => {
                let rows = sqlx::query_as::<_, OutboxEvent>(SELECT)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                let taken = rows.len();
                if taken == 0 {
                    return Ok(0);
                }
                let done = publish(rows).await;
                self.forget_outbox(&done).await?;
                Ok(taken)
            }
            Store::Postgres(_) => {
                let Some((taken, rows)) = self.take_outbox(limit).await? else {
                    return Ok(0);
                };
                let n = rows.len();
                let done = publish(rows).await;
                taken.forget(&done).await?;
                Ok(n)
            }
        }
    }

    /// PostgreSQL: take up to `limit` receipt events, oldest first, locked
    /// (`FOR UPDATE SKIP LOCKED`) in a transaction that stays open until
    /// [`TakenEvents::forget`] deletes the confirmed ones and commits (or the
    /// value is dropped: rolled back, all of them published again later).
    /// While one batch waits for its confirms, the next can be taken: the
    /// locks keep every relay, of this instance or another, off its rows.
    /// None when no event waits; on SQLite always None (it reads ahead,
    /// [`Store::outbox_after`]).
    pub async fn take_outbox(
        &self,
        limit: i64,
    ) -> Result<Option<(TakenEvents, Vec<OutboxEvent>)>, StoreError> {
        const SELECT_LOCKED: &str = "SELECT id, submission_id, seq, routing_key, body FROM outbox \
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";
        let Store::Postgres(pool) = self else {
            return Ok(None);
        };
        let mut tx = pool.begin().await?;
        let rows = sqlx::query_as::<_, OutboxEvent>(SELECT_LOCKED)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some((TakenEvents { tx }, rows)))
    }

    /// Does anything of the submission's payload remain, sealed or not (a
    /// parked row, or a dead letter with a sealed payload)?
    pub async fn payload_kept(&self, submission_id: &SubmissionId) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT \
             (SELECT COUNT(*) FROM parked WHERE submission_id = $1) + \
             (SELECT COUNT(*) FROM dead_letters WHERE submission_id = $1 \
              AND (sealed_payload IS NOT NULL OR sealed_key IS NOT NULL))";
        let (n,): (i64,) =
            on_pool!(self, pool => sqlx::query_as(SQL).bind(submission_id).fetch_one(pool).await)?;
        Ok(n > 0)
    }

    /// The transport's message id kept for a submission at a destination
    /// (XTA 2: from createMessageId), if there is one.
    pub async fn transport_message_id(
        &self,
        submission_id: &SubmissionId,
        destination: &DestinationId,
    ) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT message_id FROM transport_messages \
             WHERE submission_id = $1 AND destination = $2";
        let row: Option<(String,)> = on_pool!(self, pool => sqlx::query_as(SQL)
            .bind(submission_id)
            .bind(destination)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|(id,)| id))
    }

    /// Keep `message_id` for the submission unless one is kept already, and
    /// return the one that is kept: when two runs race, both send under the
    /// first id stored.
    pub async fn keep_transport_message_id(
        &self,
        submission_id: &SubmissionId,
        destination: &DestinationId,
        transport: &str,
        message_id: &str,
        at: Timestamp,
    ) -> Result<String, StoreError> {
        const SQL: &str = "INSERT INTO transport_messages \
             (submission_id, destination, transport, message_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (submission_id, destination) DO NOTHING";
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(submission_id)
            .bind(destination)
            .bind(transport)
            .bind(message_id)
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        self.transport_message_id(submission_id, destination)
            .await?
            .ok_or(StoreError::Sql(sqlx::Error::RowNotFound))
    }

    /// Receipt events waiting in the outbox.
    pub async fn outbox_len(&self) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM outbox";
        let (n,): (i64,) = on_pool!(self, pool => sqlx::query_as(SQL).fetch_one(pool).await)?;
        Ok(n)
    }

    /// Parked submissions, soonest first (metadata; payloads stay sealed).
    pub async fn parked(
        &self,
        destination: Option<&DestinationId>,
        limit: i64,
    ) -> Result<Vec<Parked>, StoreError> {
        const SQL: &str = const_sql_parked();
        let rows = on_pool!(self, pool => sqlx::query_as::<_, Parked>(SQL)
            .bind(destination)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        Ok(rows)
    }

    /// Delete dead letters whose retention is over; the receipts stay.
    pub async fn purge_expired_dead_letters(&self, now: Timestamp) -> Result<u64, StoreError> {
        const SQL: &str =
            "DELETE FROM dead_letters WHERE expires_at_ts IS NOT NULL AND expires_at_ts < $1";
        let done = on_pool!(self, pool => sqlx::query(SQL).bind(now.typed()).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// Delete receipts of submissions finished before `cutoff`, and audit
    /// rows written before `audit_cutoff` (retention; receipts of parked
    /// submissions do not exist, so none is touched).
    pub async fn prune(
        &self,
        cutoff: Timestamp,
        audit_cutoff: Timestamp,
    ) -> Result<(u64, u64), StoreError> {
        const RECEIPTS: &str = "DELETE FROM receipts WHERE completed_at_ts < $1";
        const AUDIT: &str = "DELETE FROM audit WHERE at_ts < $1";
        let receipts = on_pool!(self, pool => sqlx::query(RECEIPTS).bind(cutoff.typed()).execute(pool).await.map(|r| r.rows_affected()))?;
        let audit = on_pool!(self, pool => sqlx::query(AUDIT).bind(audit_cutoff.typed()).execute(pool).await.map(|r| r.rows_affected()))?;
        // Transport message ids go with the receipts' retention.
        const TRANSPORT_IDS: &str = "DELETE FROM transport_messages WHERE created_at_ts < $1";
        on_pool!(self, pool => sqlx::query(TRANSPORT_IDS).bind(cutoff.typed()).execute(pool).await.map(|_| ()))?;
        Ok((receipts, audit))
    }

    /// Create the row of `epoch` unless it exists (several instances may
    /// race: the first insert wins), and return the row that won.
    pub async fn create_epoch(
        &self,
        epoch: &str,
        wrapped: &crate::vault::WrappedKek,
        created_at: Timestamp,
    ) -> Result<VaultEpoch, StoreError> {
        const INSERT: &str = "INSERT INTO vault_epochs (epoch, master_key_id, wrapped_kek, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (epoch) DO NOTHING";
        on_pool!(self, pool => sqlx::query(INSERT)
            .bind(epoch)
            .bind(&wrapped.master_key_id)
            .bind(&wrapped.wrapped_kek)
            .bind(created_at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        // Rows are never deleted: the winner is there.
        self.epoch(epoch)
            .await?
            .ok_or(StoreError::Sql(sqlx::Error::RowNotFound))
    }

    /// One row of `vault_epochs`.
    pub async fn epoch(&self, epoch: &str) -> Result<Option<VaultEpoch>, StoreError> {
        const SQL: &str = "SELECT epoch, master_key_id, wrapped_kek, created_at, destroyed_at \
             FROM vault_epochs WHERE epoch = $1";
        let row = on_pool!(self, pool => sqlx::query_as::<_, VaultEpoch>(SQL)
            .bind(epoch)
            .fetch_optional(pool)
            .await)?;
        Ok(row)
    }

    /// The epochs whose KEK is not destroyed, oldest first.
    pub async fn live_epochs(&self) -> Result<Vec<VaultEpoch>, StoreError> {
        const SQL: &str = "SELECT epoch, master_key_id, wrapped_kek, created_at, destroyed_at \
             FROM vault_epochs WHERE wrapped_kek IS NOT NULL ORDER BY epoch";
        let rows = on_pool!(self, pool => sqlx::query_as::<_, VaultEpoch>(SQL)
            .fetch_all(pool)
            .await)?;
        Ok(rows)
    }

    /// Destroy the KEK of `epoch` unless a parked row or a dead letter
    /// still uses it (checked in the same statement, so a row written
    /// meanwhile keeps the key). True if it was destroyed now.
    pub async fn destroy_epoch(&self, epoch: &str, at: Timestamp) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE vault_epochs SET wrapped_kek = NULL, destroyed_at = $2 \
             WHERE epoch = $1 AND wrapped_kek IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM parked WHERE key_id = $3) \
             AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE key_id = $3)";
        let key_id = crate::vault::epoch_key_id(epoch);
        let done = on_pool!(self, pool => sqlx::query(SQL)
            .bind(epoch)
            .bind(at)
            .bind(&key_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Replace the wrapping of a live epoch's KEK (master-key rotation),
    /// unless another instance changed or destroyed it meanwhile.
    pub async fn rewrap_epoch(
        &self,
        epoch: &str,
        was: &crate::vault::WrappedKek,
        now: &crate::vault::WrappedKek,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE vault_epochs SET master_key_id = $3, wrapped_kek = $4 \
             WHERE epoch = $1 AND master_key_id = $2 AND wrapped_kek IS NOT NULL";
        let done = on_pool!(self, pool => sqlx::query(SQL)
            .bind(epoch)
            .bind(&was.master_key_id)
            .bind(&now.master_key_id)
            .bind(&now.wrapped_kek)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Key ids of payloads sealed before epochs (master key ids) with how
    /// many payloads each still wraps.
    pub async fn legacy_key_ids(&self) -> Result<Vec<(String, i64)>, StoreError> {
        const SQL: &str = "SELECT key_id, COUNT(*) FROM (\
             SELECT key_id FROM parked WHERE key_id NOT LIKE 'epoch:%' \
             UNION ALL SELECT key_id FROM dead_letters WHERE key_id IS NOT NULL \
             AND sealed_key IS NOT NULL AND key_id NOT LIKE 'epoch:%') AS k \
             GROUP BY key_id ORDER BY key_id";
        let rows: Vec<(String, i64)> =
            on_pool!(self, pool => sqlx::query_as(SQL).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Write `records` in one transaction.
    pub async fn write(&self, records: &[Record]) -> Result<(), StoreError> {
        match self {
            // BEGIN IMMEDIATE takes the write lock at once; a deferred
            // transaction would fail with SQLITE_BUSY instead of waiting.
            Store::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                match receipts_only(records) {
                    Some(receipts) => write_receipt_batch(&mut tx, &receipts).await?,
                    None => write_records!(&mut *tx, records),
                }
                tx.commit().await?;
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // One statement (receipts) or one statement set (the rest)
                // per record: the batched statements (VALUES or UNNEST,
                // with or without LATERAL) measured at half the rate of
                // per-record ones on PostgreSQL (docs/PERFORMANCE.md).
                for record in records {
                    match record {
                        Record::Receipt(r) => write_receipt_postgres(&mut tx, r).await?,
                        other => write_records!(&mut *tx, std::slice::from_ref(other)),
                    }
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

const fn const_sql_parked() -> &'static str {
    "SELECT submission_id, service, destination, portal, attempts, received_sha256, received_at, \
     first_failure_at, last_cause, next_attempt_at, expires_at, lease_until, key_id, sealed_key, \
     sealed_payload FROM parked WHERE ($1 IS NULL OR destination = $1) \
     ORDER BY next_attempt_at_ts LIMIT $2"
}

/// Most records committed in one transaction.
const MAX_BATCH: usize = 256;

type Pending = (Record, oneshot::Sender<Result<(), String>>);

/// Group commit: records from many concurrent submissions are written in one
/// transaction; each caller learns when its own record is durable. Every
/// commit wakes the outbox relay (receipt events ride in the same
/// transactions).
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Pending>,
    outbox_written: std::sync::Arc<tokio::sync::Notify>,
    lookups: mpsc::Sender<Lookup>,
}

/// A submission id whose [`Seen`] is wanted, and where to send it.
type Lookup = (SubmissionId, oneshot::Sender<Result<Seen, String>>);

impl Recorder {
    pub fn spawn(store: Store) -> Recorder {
        let lookup_store = store.clone();
        let (tx, mut rx) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        let outbox_written = std::sync::Arc::new(tokio::sync::Notify::new());
        let wake = std::sync::Arc::clone(&outbox_written);
        tokio::spawn(async move {
            let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let records: Vec<Record> = batch.iter().map(|(r, _)| r.clone()).collect();
                match store.write(&records).await {
                    Ok(()) => {
                        wake.notify_one();
                        for (_, done) in batch.drain(..) {
                            let _ = done.send(Ok(()));
                        }
                    }
                    // One bad record (say, a value the database refuses)
                    // must not fail the others: each alone, so only it fails.
                    Err(e) if records.len() > 1 => {
                        tracing::warn!(error = %e, records = records.len(), "group commit failed; committing its records one by one");
                        for (record, done) in batch.drain(..) {
                            let result = store
                                .write(std::slice::from_ref(&record))
                                .await
                                .map_err(|e| e.to_string());
                            if let Err(e) = &result {
                                tracing::error!(error = %e, "receipt commit failed");
                            }
                            let _ = done.send(result);
                        }
                        wake.notify_one();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "receipt commit failed");
                        let e = e.to_string();
                        for (_, done) in batch.drain(..) {
                            let _ = done.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        let (lookups, mut asked) = mpsc::channel::<Lookup>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch: Vec<Lookup> = Vec::with_capacity(MAX_BATCH);
            while asked.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let ids: Vec<SubmissionId> = batch.iter().map(|(id, _)| id.clone()).collect();
                match lookup_store.seen_many(&ids).await {
                    Ok(mut found) => {
                        for (id, answer) in batch.drain(..) {
                            let seen = found.remove(&id).unwrap_or_default();
                            let _ = answer.send(Ok(seen));
                        }
                    }
                    Err(e) => {
                        let e = e.to_string();
                        for (_, answer) in batch.drain(..) {
                            let _ = answer.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        Recorder {
            tx,
            outbox_written,
            lookups,
        }
    }

    /// [`Store::seen`], gathered with the other lookups waiting at the same
    /// moment into one query (one round trip for all of them).
    pub async fn seen(&self, submission_id: &SubmissionId) -> Result<Seen, StoreError> {
        let (answer, found) = oneshot::channel();
        self.lookups
            .send((submission_id.to_owned(), answer))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        found
            .await
            .map_err(|_| StoreError::WriterGone)?
            .map_err(StoreError::Batch)
    }

    /// Notified after each commit: the outbox may hold new events.
    pub fn outbox_written(&self) -> std::sync::Arc<tokio::sync::Notify> {
        std::sync::Arc::clone(&self.outbox_written)
    }

    /// Resolves once `record` is committed.
    pub async fn record(&self, record: Record) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        self.tx
            .send((record, done))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        committed
            .await
            .map_err(|_| StoreError::WriterGone)?
            .map_err(StoreError::Batch)
    }
}
