//! # Room `intake`: everything that speaks AMQP with the portals
//!
//! Owns the connection and topology, the consumer that hands each delivery
//! to the pipeline, failover between the nodes of a cluster (`failover`),
//! the outbox relay that publishes receipt events with confirms (`outbox`)
//! and `kurier submit` ([`submit`]). May use `pipeline` and every room below.
//!
//! Intake: the AMQP side of Kurier (CONTRACT.md § 1 and § 3).
//!
//! Declares the topology (topic exchange `kurier.submissions`, quorum queue
//! `kurier.intake` bound with `#`, topic exchange `kurier.receipts`), consumes
//! with manual acks and a bounded prefetch, hands each delivery to the
//! pipeline as its own task, and reconnects with backoff when RabbitMQ goes
//! away. Deliveries in flight on a lost connection cannot be acked any more
//! (lapin's `ack` then returns `false`); RabbitMQ delivers them again and the
//! receipts table makes that harmless.
//!
//! Receipt events go out through the outbox relay (`outbox`) on a
//! connection of its own; this module also publishes envelopes for
//! `kurier submit`. Touches RabbitMQ only.

pub(crate) mod failover;
pub(crate) mod outbox;
pub mod submit;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::BackoffBuilder;
use futures_lite::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio_util::task::TaskTracker;

use crate::config::AmqpConfig;
use crate::intake::failover::Nodes;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("AMQP TLS material: {0}")]
    Tls(String),
    #[error("AMQP: the consumer stream ended (connection or channel closed)")]
    ConsumerEnded,
    #[error("AMQP: RabbitMQ did not confirm the publication (nack)")]
    NotConfirmed,
    #[error(
        "AMQP: message was returned as unroutable (no queue bound to {exchange} for {routing_key})"
    )]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
}

/// Whether the consumer is connected and consuming (for `/readyz`).
static CONSUMING: AtomicBool = AtomicBool::new(false);

pub fn connected() -> bool {
    CONSUMING.load(Ordering::Relaxed)
}

/// Clears [`CONSUMING`] however a session ends.
struct ConsumingGuard;

impl Drop for ConsumingGuard {
    fn drop(&mut self) {
        CONSUMING.store(false, Ordering::Relaxed);
    }
}

/// Where the system keeps its trusted roots (Debian's ca-certificates).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Connect to RabbitMQ: the first node of `[amqp] urls` that answers (or
/// the one `url`). For one-off connections (`kurier submit`, replays).
pub async fn connect(amqp: &AmqpConfig, name: &str) -> Result<Connection, IntakeError> {
    connect_next(amqp, &mut Nodes::new(amqp), name).await
}

/// One round of connection attempts over the nodes, starting after the node
/// last connected to; the error of the last node when none answers (the
/// caller backs off before the next round).
pub async fn connect_next(
    amqp: &AmqpConfig,
    nodes: &mut Nodes,
    name: &str,
) -> Result<Connection, IntakeError> {
    let mut failed = None;
    for (i, url) in nodes.round() {
        match connect_to(amqp, &url, name).await {
            Ok(connection) => {
                if nodes.len() > 1 {
                    tracing::info!(node = %nodes.shown(i), connection = name, "connected to RabbitMQ");
                }
                nodes.connected(i);
                return Ok(connection);
            }
            Err(e) => {
                if nodes.len() > 1 {
                    tracing::warn!(node = %nodes.shown(i), connection = name, error = %e, "RabbitMQ node not reachable; trying the next");
                }
                failed = Some(e);
            }
        }
    }
    Err(failed.expect("a round tries at least one node (Nodes is never empty)"))
}

/// Connect to one node. An `amqps://` URL is always TLS: RabbitMQ's
/// certificate is verified against `[amqp] ca_file` (else the system's
/// roots) and the URL's host name; a client certificate is presented when
/// one is configured. Never plaintext for `amqps://`.
async fn connect_to(amqp: &AmqpConfig, url: &str, name: &str) -> Result<Connection, IntakeError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    if !url.trim_start().starts_with("amqps://") {
        return Ok(Connection::connect(url, properties).await?);
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| IntakeError::Tls(format!("{}: {e}", path.display())))
    };
    let roots = match &amqp.ca_file {
        Some(ca) => read(ca)?,
        None => read(std::path::Path::new(SYSTEM_ROOTS))?,
    };
    let identity = match (&amqp.client_cert_file, &amqp.client_key_file) {
        (Some(cert), Some(key)) => Some(lapin::tcp::OwnedIdentity::PKCS8 {
            pem: read(cert)?,
            key: read(key)?,
        }),
        _ => None,
    };
    let tls = lapin::tcp::OwnedTLSConfig {
        identity,
        cert_chain: Some(String::from_utf8_lossy(&roots).into_owned()),
    };
    let runtime = lapin::runtime::default_runtime()?;
    Ok(Connection::connect_with_config(url, properties, tls, runtime).await?)
}

/// Declare exchanges, the quorum queue and its binding. Idempotent.
pub async fn declare_topology(channel: &Channel, amqp: &AmqpConfig) -> Result<(), IntakeError> {
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for exchange in [&amqp.exchange, &amqp.receipts_exchange] {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                durable_exchange,
                FieldTable::default(),
            )
            .await?;
    }
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            amqp.queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await?;
    channel
        .queue_bind(
            amqp.queue.as_str().into(),
            amqp.exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Publish a persistent message and wait for RabbitMQ's confirm. The channel
/// must be in confirm mode. `mandatory`: an unroutable message is an error.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    message_id: &str,
    body: &[u8],
    mandatory: bool,
) -> Result<(), IntakeError> {
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(message_id.into());
    let confirmation = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await?
        .await?;
    if !confirmation.is_ack() {
        return Err(IntakeError::NotConfirmed);
    }
    if confirmation.take_message().is_some() {
        return Err(IntakeError::Unroutable {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        });
    }
    Ok(())
}

/// Open a channel in publisher-confirm mode.
pub async fn confirm_channel(connection: &Connection) -> Result<Channel, IntakeError> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Consume until shutdown, reconnecting whenever the connection is lost.
pub async fn run(pipeline: Arc<Pipeline>, shutdown: Shutdown) {
    let amqp = pipeline.config.amqp.clone();
    let tracker = TaskTracker::new();
    let mut backoff = new_backoff(&amqp);
    let mut nodes = Nodes::new(&amqp);
    let room = Arc::new(BodyRoom::new(&pipeline.config.intake));
    while !shutdown.is_triggered() {
        let session = session(
            &pipeline,
            &amqp,
            &mut nodes,
            &tracker,
            &room,
            &shutdown,
            &mut backoff,
        );
        match session.await {
            Ok(()) => break,
            Err(e) => {
                let wait = backoff
                    .next()
                    .unwrap_or(Duration::from_secs(amqp.reconnect_max_secs));
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "AMQP connection lost or refused; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    // Let in-flight submissions finish or give up (they watch `shutdown`).
    tracker.close();
    let grace = Duration::from_secs(pipeline.config.shutdown_grace_secs);
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            in_flight = tracker.len(),
            "grace period over; unfinished submissions stay unacked and will be delivered again"
        );
    }
}

/// The bytes of message bodies being processed at once (`[intake]
/// max_bytes_in_flight`), counted in KiB. A body larger than
/// `max_message_bytes` only takes that much: it is not parsed, only
/// dead-lettered.
struct BodyRoom {
    kib: Arc<tokio::sync::Semaphore>,
    largest_kib: u32,
}

impl BodyRoom {
    fn new(intake: &crate::config::IntakeConfig) -> BodyRoom {
        let total = u32::try_from(intake.max_bytes_in_flight.div_ceil(1024)).unwrap_or(u32::MAX);
        let largest = u32::try_from(intake.max_message_bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        BodyRoom {
            kib: Arc::new(tokio::sync::Semaphore::new(total.max(1) as usize)),
            largest_kib: largest.clamp(1, total.max(1)),
        }
    }

    async fn take(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.largest_kib);
        Arc::clone(&self.kib).acquire_many_owned(kib).await.ok()
    }
}

fn new_backoff(amqp: &AmqpConfig) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(amqp.reconnect_max_secs.max(1)))
        .with_jitter()
        .without_max_times()
        .build()
}

/// One connection's life: returns `Ok` on shutdown, `Err` when the
/// connection is lost.
async fn session(
    pipeline: &Arc<Pipeline>,
    amqp: &AmqpConfig,
    nodes: &mut Nodes,
    tracker: &TaskTracker,
    room: &Arc<BodyRoom>,
    shutdown: &Shutdown,
    backoff: &mut backon::ExponentialBackoff,
) -> Result<(), IntakeError> {
    let connection = connect_next(amqp, nodes, "kurier").await?;
    let consume_channel = connection.create_channel().await?;
    if amqp.declare_topology {
        declare_topology(&consume_channel, amqp).await?;
    }
    consume_channel
        .basic_qos(amqp.prefetch, BasicQosOptions::default())
        .await?;
    let tag = format!("kurier-{}", uuid::Uuid::new_v4());
    let mut consumer = consume_channel
        .basic_consume(
            amqp.queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %amqp.queue, prefetch = amqp.prefetch, "consuming");
    CONSUMING.store(true, Ordering::Relaxed);
    let _consuming = ConsumingGuard;
    // Acks of this channel, batched (crate::pipeline::acks); the task ends with the session.
    let acks = Arc::new(crate::pipeline::acks::Acks::new(consume_channel.clone()));
    let acking = {
        let acks = Arc::clone(&acks);
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move { acks.run().await }))
    };
    *backoff = new_backoff(amqp);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                // Stop new deliveries; those in flight finish in `run`, then
                // the connection closes and RabbitMQ requeues what is unacked.
                let _ = consume_channel
                    .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                    .await;
                tracker.close();
                let grace = Duration::from_secs(pipeline.config.shutdown_grace_secs);
                let _ = tokio::time::timeout(grace, tracker.wait()).await;
                drop(acking);
                acks.flush(true).await;
                let _ = connection.close(200, "shutdown".into()).await;
                return Ok(());
            }
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    // Wait for room before anything of the body is parsed.
                    let held = room.take(delivery.data.len()).await;
                    let pipeline = Arc::clone(pipeline);
                    let shutdown = shutdown.clone();
                    let acks = Arc::clone(&acks);
                    let tag = delivery.delivery_tag;
                    acks.delivered(tag);
                    tracker.spawn(async move {
                        let _held = held;
                        crate::telemetry::metrics::in_flight(1.0);
                        let acker = delivery.acker.clone();
                        let run = std::panic::AssertUnwindSafe(pipeline.process(delivery, &shutdown, &acks));
                        if futures_lite::FutureExt::catch_unwind(run).await.is_err() {
                            // A bug, not bad input (that is a dead letter):
                            // free the prefetch slot and let the message come
                            // back after a pause, so the flow goes on.
                            tracing::error!("a submission's processing panicked; the message is returned to the queue");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            let _ = acker
                                .nack(lapin::options::BasicNackOptions {
                                    requeue: true,
                                    ..Default::default()
                                })
                                .await;
                            acks.settled(tag);
                        }
                        crate::telemetry::metrics::in_flight(-1.0);
                    });
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(IntakeError::ConsumerEnded),
            },
        }
    }
}
