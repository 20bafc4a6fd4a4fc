//! The outbox relay: publishes the receipt events that the pipeline, the
//! scheduler and operators committed to the `outbox` table together with
//! their receipts (CONTRACT.md § 3: events are never lost).
//!
//! Runs on an AMQP connection of its own, apart from the consuming one:
//! RabbitMQ blocks publishing connections during a memory or disk alarm, and
//! acks on the consuming connection must still flow. Publishes a batch, waits
//! for all its confirms together, then deletes what RabbitMQ confirmed;
//! anything not confirmed stays and is published again (portals deduplicate
//! by the AMQP `message_id` `<submission_id>.<seq>`). Reconnects with
//! backoff. Touches the `outbox` table and RabbitMQ.

use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Connection};

use crate::intake;
use crate::intake::failover::Nodes;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;
use crate::store::OutboxEvent;
use crate::store::events::with_seq;

/// Events published and confirmed together.
const BATCH: i64 = 512;
/// How long the relay lets events gather after a commit woke it.
const GATHER: Duration = Duration::from_millis(50);

pub async fn run(pipeline: Arc<Pipeline>, shutdown: Shutdown) {
    let amqp = &pipeline.config.amqp;
    let written = pipeline.recorder.outbox_written();
    let mut link: Option<(Connection, Channel)> = None;
    let mut backoff = new_backoff(amqp.reconnect_max_secs);
    let mut nodes = Nodes::new(amqp);
    loop {
        if link
            .as_ref()
            .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
        {
            if shutdown.is_triggered() {
                break;
            }
            link = match connect(&pipeline, &mut nodes).await {
                Ok(l) => {
                    backoff = new_backoff(amqp.reconnect_max_secs);
                    Some(l)
                }
                Err(e) => {
                    let wait = backoff.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "outbox relay has no AMQP connection; receipt events wait in the outbox");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    continue;
                }
            };
        }
        let Some((_, channel)) = link.as_ref() else {
            continue;
        };
        let exchange = amqp.receipts_exchange.as_str();
        let drained = pipeline
            .store
            .drain_outbox(BATCH, async |events| {
                publish_all(channel, exchange, events).await
            })
            .await;
        match drained {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) if shutdown.is_triggered() => break,
            Ok(_) => {
                tokio::select! {
                    _ = written.notified() => {
                        // Let a few group commits gather: one drain (and, on
                        // SQLite, one delete transaction with its fsync) per
                        // batch of events, not per commit.
                        tokio::time::sleep(GATHER).await;
                    }
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read or clear the outbox");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    if let Some((connection, _)) = link {
        let _ = connection.close(200, "shutdown".into()).await;
    }
}

/// A connection of its own, failing over between the nodes like the
/// consumer's but independently of it.
async fn connect(
    pipeline: &Pipeline,
    nodes: &mut Nodes,
) -> Result<(Connection, Channel), intake::IntakeError> {
    let connection = intake::connect_next(&pipeline.config.amqp, nodes, "kurier-outbox").await?;
    let channel = intake::confirm_channel(&connection).await?;
    Ok((connection, channel))
}

fn new_backoff(max_secs: u64) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(max_secs.max(1)))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Publish every event, then await all confirms; the ids RabbitMQ confirmed.
async fn publish_all(channel: &Channel, exchange: &str, events: Vec<OutboxEvent>) -> Vec<i64> {
    let mut pending = Vec::with_capacity(events.len());
    for event in events {
        let body = with_seq(&event.body, event.seq);
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(format!("{}.{}", event.submission_id, event.seq).into());
        match channel
            .basic_publish(
                exchange.into(),
                event.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await
        {
            Ok(confirm) => pending.push((event.id, confirm)),
            Err(e) => {
                tracing::warn!(error = %e, "receipt event not published; it stays in the outbox");
                break;
            }
        }
    }
    let mut confirmed = Vec::with_capacity(pending.len());
    for (id, confirm) in pending {
        if let Ok(c) = confirm.await
            && c.is_ack()
        {
            confirmed.push(id);
        }
    }
    confirmed
}
