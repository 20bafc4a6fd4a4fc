//! # Kurier — application transmission broker
//!
//! Online form portals publish submitted benefit applications to RabbitMQ.
//! Kurier takes each one along one path:
//!
//! ```text
//! portal ──AMQP──▶ intake ─▶ decode ─▶ validate ─▶ policy ─▶ route ─▶ render ─▶ deliver ─▶ receipt ─▶ ack
//!                     └──────────┴──────────┴──────────┴─────────┴─────────┴──▶ dead letter (reason code)
//! ```
//!
//! The code lives in rooms, one per concept, listed here lowest first. A
//! room uses only rooms above it in this list (`tests/layers.rs` fails on an
//! import the other way), so each can be read knowing only what precedes it.
//! docs/ARCHITECTURE.md walks one submission through them.
//!
//! - [`domain`]: the vocabulary: reason codes, submission and destination
//!   ids, timestamps, digests. Pure.
//! - `secret_file`, `shutdown`, `xsd`: a secret file's permissions, the
//!   stop signal every task obeys, XSD validation on libxml2's own thread.
//! - [`config`]: the configuration file an operator writes, checked.
//! - [`queue`]: what an attempt's outcome means (retry, park, receipt, dead
//!   letter), each destination's circuit and adaptive concurrency limit. Pure.
//! - [`vault`]: payloads at rest only sealed (AES-256-GCM, a data key per
//!   submission under the day's epoch key).
//! - [`store`]: every table: receipts and their events (the outbox), parked
//!   submissions, dead letters, audit; group commit; erasure by
//!   crypto-shredding ([`store::shred`]).
//! - [`telemetry`]: log set-up, metric recording, W3C trace context.
//! - [`delivery`]: one attempt to hand a document to its authority, over
//!   HTTPS with mutual TLS or XTA 2, reported as an outcome; certificates;
//!   where a transport reports the authority's decision later, its report
//!   source ([`delivery::answers`], two-stage receipts).
//! - [`pipeline`]: the path itself: decode the envelope, validate, policy,
//!   route, render, deliver, record, ack; the scheduler of parked
//!   submissions; certificate reloads; the poller that turns the
//!   authority's later answers into `accepted_by_authority` /
//!   `rejected_by_authority` events.
//! - [`intake`]: the AMQP side: topology, the consumer that feeds the
//!   pipeline, failover between nodes, the outbox relay that publishes
//!   receipt events with confirms.
//! - [`operator`]: what operators see and do: the verbs shared by CLI and
//!   admin API, the console, the state gauges.
//! - [`preflight`]: the configuration checked and the pipeline's parts built
//!   before anything connects; `kurier check-config` runs the same.
//!
//! The guarantees: a submission is acked only after its outcome is
//! committed; a delivered one is never sent again; the payload is never
//! written anywhere readable, and acking erases it. Bad input of any kind
//! ends as a dead letter with a reason code, never a panic or a retry loop.
//! No log line, receipt or reason carries a value from a submission.

// The rooms, lowest first: each may use the ones above it in this list and
// none below (enforced by `tests/layers.rs`; see docs/ARCHITECTURE.md). A
// blank line between them keeps rustfmt from sorting them by name.

// The vocabulary: reason codes, statuses, ids, timestamps, digests.
pub mod domain;

// A secret file's permissions.
pub(crate) mod secret_file;

// The stop signal every task obeys.
pub mod shutdown;

// XSD validation on libxml2's own threads (public for its benchmark,
// benches/xsd.rs).
pub mod xsd;

// The operator's configuration file.
pub mod config;

// What an outcome means; circuits and limits.
pub mod queue;

// Sealing at rest.
pub mod vault;

// Every table and statement.
pub mod store;

// Logs, metric recording, trace context.
pub mod telemetry;

// One attempt to hand a document over.
pub mod delivery;

// The path of one submission.
pub mod pipeline;

// AMQP: consumer, failover, outbox relay.
pub mod intake;

// What operators see and do.
pub mod operator;

// The configuration checked, the parts built.
pub mod preflight;

use std::sync::Arc;

use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;

/// Why `kurier run` could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Preflight(#[from] preflight::PreflightError),
    #[error("connecting to the database: {0}")]
    Database(#[source] store::StoreError),
    #[error(transparent)]
    Migrate(store::StoreError),
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
    #[error("loading the vault's epoch keys: {0}")]
    Epochs(#[from] store::shred::ShredError),
    #[error(transparent)]
    Admin(#[from] operator::admin::AdminError),
}

/// Build everything from the configuration and relay until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), RunError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let preflight::Preflight {
        warnings,
        reloadable_problems,
        schemas,
        routes,
        xsd,
    } = preflight::check(&config, now)?;
    for warning in warnings.iter().chain(&reloadable_problems) {
        tracing::warn!("{warning}");
    }
    let store = store::Store::connect(&config.database)
        .await
        .map_err(RunError::Database)?;
    let migrations = store.migrate().await.map_err(RunError::Migrate)?;
    let newer = migrations.names(store::schema::MigrationState::Newer);
    if !newer.is_empty() {
        // A rolling upgrade under way, or this binary rolled back: every
        // release only expands the schema, so what this one uses is there.
        tracing::warn!(
            newer = %newer,
            "the database has migrations this binary does not know (a newer release applied them); \
             running on that schema, which keeps every table and column this release uses \
             (docs/OPERATIONS.md, Upgrades)"
        );
    }
    let pending = migrations.names(store::schema::MigrationState::Pending);
    if !pending.is_empty() {
        tracing::info!(applied = %pending, "database migrated");
    }
    // XTA 2 destinations keep their message ids in the database.
    routes.attach_store(&store);
    let recorder = store::Recorder::spawn(store.clone());
    let vault = Arc::new(vault::Vault::load(&config.vault)?);
    store::shred::start(&vault, &store).await?;
    let pipeline = Arc::new(Pipeline {
        vault,
        policy: pipeline::policy::Policy::new(config.policy.clone()),
        schemas,
        routes,
        store: store.clone(),
        recorder,
        xsd,
        config,
    });
    tracing::info!(destinations = pipeline.routes.all().len(), "kurier started");
    // Operators: metrics, the admin endpoint (health, /api, console).
    let handle = telemetry::metrics::install();
    let admin =
        operator::admin::start(Arc::clone(&pipeline), handle.clone(), shutdown.clone()).await?;
    let gauges = handle.map(|h| {
        tokio::spawn(operator::gauges::run(
            Arc::clone(&pipeline),
            h,
            shutdown.clone(),
        ))
    });
    let reloader = tokio::spawn(pipeline::reload::watch(
        Arc::clone(&pipeline),
        shutdown.clone(),
    ));
    let scheduler = tokio::spawn(pipeline::parked::run(
        Arc::clone(&pipeline),
        shutdown.clone(),
    ));
    let relay = tokio::spawn(intake::outbox::run(Arc::clone(&pipeline), shutdown.clone()));
    let answers = tokio::spawn(pipeline::answers::run(
        Arc::clone(&pipeline),
        shutdown.clone(),
    ));
    intake::run(Arc::clone(&pipeline), shutdown).await;
    let _ = scheduler.await;
    let _ = answers.await;
    let _ = relay.await;
    for task in admin.into_iter().chain(gauges).chain([reloader]) {
        let _ = task.await;
    }
    store.close().await;
    tracing::info!("kurier stopped");
    Ok(())
}
