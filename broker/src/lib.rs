//! # Kurier — application transmission broker
//!
//! Online form portals publish submitted benefit applications to RabbitMQ.
//! Kurier takes each one along one path, every step in a module of its name:
//!
//! ```text
//! portal ──AMQP──▶ intake ─▶ validate ─▶ policy ─▶ route ─▶ render ─▶ deliver ─▶ receipt ─▶ ack
//!                     └──────────┴──────────┴─────────┴─────────┴──▶ dead letter (reason code)
//! ```
//!
//! - [`intake`]: consumes `kurier.intake` with manual acks and a bounded
//!   prefetch, reconnects when RabbitMQ goes away, publishes receipt events.
//! - [`envelope`], [`validate`]: the body must be the contract's envelope and
//!   the form must satisfy its service's JSON Schema; reasons name JSON
//!   pointers, never values.
//! - [`policy`]: attachment hashes, sizes and counts; no identity documents.
//! - [`route`]: the envelope's destination → a configured destination.
//! - [`render`]: the destination's adapter (crate `kurier-adapters`) writes
//!   the authority's XML.
//! - [`xsd`]: the rendered document must satisfy its adapter's XSD
//!   (libxml2, on a thread of its own), or it is never sent.
//! - [`deliver`]: HTTPS with mutual TLS ([`tls`]), or XTA 2 SOAP ([`xta2`])
//!   for destinations with `transport = "xta2"`, one attempt at a time
//!   through the destination's circuit and adaptive concurrency limit;
//!   [`queue`] decides what each outcome means (retry in place, park,
//!   receipt, dead letter).
//! - [`store`], [`receipt`]: the receipt and its receipt event (the outbox)
//!   are committed together (group commit), and only then is the message
//!   acked; [`outbox`] publishes the events with confirms on a connection of
//!   its own. The payload was never written anywhere: acking erases it.
//! - [`acks`]: a message is acked only after its outcome is committed,
//!   batched per channel (`multiple` over runs of finished deliveries).
//! - [`failover`]: `[amqp] urls` — the consumer and the outbox relay
//!   reconnect to the next node of a cluster when one goes away.
//! - [`trace`]: a portal's W3C `traceparent` goes on to the authority.
//! - [`pipeline`] strings the steps together; [`shutdown`] stops them.
//! - Transient failures that outlast the in-place attempts, and submissions
//!   for a destination whose circuit is open or that an operator paused, are sealed by the [`vault`]
//!   (AES-256-GCM, a data key per submission, wrapped by the key of the
//!   day's epoch) and parked; [`park`] retries them until delivered or
//!   expired (`delivery_expired`). Erasure is the deletion of the row with
//!   its data key, and then [`shred`] destroys the epoch's key, so that
//!   copies in WAL files and backups become unreadable too.
//!
//! [`preflight`] checks the configuration and builds the pipeline's parts
//! before anything connects; `kurier check-config` runs the same check.
//!
//! Operators work through [`ops`] (one implementation for the CLI and the
//! [`admin`] HTTP API with its [`console`]): dead letters listed, replayed
//! and purged, parked backlog, receipts, the audit trail; [`metrics`] for
//! Prometheus. Operator tokens carry roles; `/api` and the console are
//! served with TLS off loopback; files that hold secrets are refused when
//! others may read them ([`secret_file`]).
//!
//! Bad input of any kind ends as a dead letter with a [`reason`] code, never
//! a panic or a retry loop. No log line, receipt or reason carries a value
//! from a submission.

pub mod acks;
pub mod admin;
pub mod certs;
pub mod config;
pub mod console;
pub mod deliver;
pub mod envelope;
pub mod failover;
pub mod intake;
pub mod metrics;
pub mod ops;
pub mod outbox;
pub mod park;
pub mod pipeline;
pub mod policy;
pub mod preflight;
pub mod queue;
pub mod reason;
pub mod receipt;
pub mod render;
pub mod route;
pub mod secret_file;
pub mod shred;
pub mod shutdown;
pub mod store;
pub mod submit;
pub mod telemetry;
pub mod tls;
pub mod trace;
pub mod validate;
pub mod vault;
pub mod xsd;
pub mod xta2;

use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;

/// Build everything from the configuration and relay until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
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
        .context("connecting to the database")?;
    store.migrate().await?;
    // XTA 2 destinations keep their message ids in the database.
    routes.attach_store(&store);
    let recorder = store::Recorder::spawn(store.clone());
    let vault = Arc::new(vault::Vault::load(&config.vault)?);
    shred::start(&vault, &store)
        .await
        .context("loading the vault's epoch keys")?;
    let pipeline = Arc::new(Pipeline {
        vault,
        policy: policy::Policy::new(config.policy.clone()),
        schemas,
        routes,
        store: store.clone(),
        recorder,
        xsd,
        config,
    });
    tracing::info!(
        destinations = pipeline.config.destinations.len(),
        "kurier started"
    );
    // Operators: metrics, the admin endpoint (health, /api, console).
    let handle = metrics::install();
    let admin = admin::start(Arc::clone(&pipeline), handle.clone(), shutdown.clone()).await?;
    let gauges =
        handle.map(|h| tokio::spawn(metrics::run(Arc::clone(&pipeline), h, shutdown.clone())));
    let reloader = tokio::spawn(certs::watch(Arc::clone(&pipeline), shutdown.clone()));
    let scheduler = tokio::spawn(park::run(Arc::clone(&pipeline), shutdown.clone()));
    let relay = tokio::spawn(outbox::run(Arc::clone(&pipeline), shutdown.clone()));
    intake::run(Arc::clone(&pipeline), shutdown).await;
    let _ = scheduler.await;
    let _ = relay.await;
    for task in admin.into_iter().chain(gauges).chain([reloader]) {
        let _ = task.await;
    }
    store.close().await;
    tracing::info!("kurier stopped");
    Ok(())
}
