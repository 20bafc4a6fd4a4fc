//! The outbox relay: publishes the receipt events that the pipeline, the
//! scheduler and operators committed to the `outbox` table together with
//! their receipts (CONTRACT.md § 3: events are never lost).
//!
//! Runs on an AMQP connection of its own, apart from the consuming one:
//! RabbitMQ blocks publishing connections during a memory or disk alarm, and
//! acks on the consuming connection must still flow. Publishes a batch as
//! soon as a commit wakes it, waits for all its confirms together, and
//! deletes what RabbitMQ confirmed; anything not confirmed stays and is
//! published again (portals deduplicate by the AMQP `message_id`
//! `<submission_id>.<seq>`). Reconnects with backoff. Touches the `outbox`
//! table and RabbitMQ.
//!
//! How events leave the table depends on the database ([`Taking`]): on
//! PostgreSQL, which several instances may share, rows stay locked while
//! they are published and are deleted in that transaction, and the next
//! batch is taken while earlier ones still await their confirms (at most
//! three, each holding a pooled connection); on SQLite (one
//! writer, ids commit in order) the relay reads on past what it published
//! and deletes confirmed rows in bulk later, so the deletion's commit (an
//! fsync, and SQLite's one write lock, which the group commit of receipts
//! needs) is not paid once per batch of events nor on an event's way to
//! the portal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Connection, PublisherConfirm};

use crate::intake;
use crate::intake::failover::Nodes;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;
use crate::store::events::with_seq;
use crate::store::{OutboxEvent, Store, StoreError};

/// Events published and confirmed together.
const BATCH: i64 = 512;
/// SQLite: confirmed events deleted together once this many are waiting…
const FORGET_BATCH: usize = 2048;
/// …or once the oldest of them has waited this long.
const FORGET_AFTER: Duration = Duration::from_millis(500);

/// PostgreSQL: batches whose confirms (and deletion) may be awaited at once.
/// Each holds a pooled connection for that long; at most a third of them.
const BATCHES_IN_FLIGHT: u32 = 3;

/// How the relay takes events out of the table.
enum Taking {
    /// Locked while published, deleted in the same transaction
    /// ([`crate::store::Store::take_outbox`]). Publishing the next batch does
    /// not wait for the confirms of the one before (a commit's events would
    /// otherwise wait for a whole cycle: confirms, delete, commit), only
    /// for `room`: batches still awaiting theirs run in `confirming`.
    Locked {
        room: Arc<tokio::sync::Semaphore>,
        confirming: tokio::task::JoinSet<()>,
    },
    /// Read on past what was published (`after`); the ids RabbitMQ
    /// confirmed are deleted in bulk (`confirmed`, waiting since `since`).
    Ahead {
        after: i64,
        confirmed: Vec<i64>,
        since: Option<Instant>,
    },
}

impl Taking {
    fn of(store: &Store, db_connections: u32) -> Taking {
        if store.outbox_commits_in_id_order() {
            Taking::Ahead {
                after: 0,
                confirmed: Vec::new(),
                since: None,
            }
        } else {
            let batches = (db_connections / 3).clamp(1, BATCHES_IN_FLIGHT);
            Taking::Locked {
                room: Arc::new(tokio::sync::Semaphore::new(batches as usize)),
                confirming: tokio::task::JoinSet::new(),
            }
        }
    }

    /// Publish the next batch; how many events it held.
    async fn next(
        &mut self,
        store: &Store,
        channel: &Channel,
        exchange: &str,
        shutdown: &Shutdown,
    ) -> Result<usize, StoreError> {
        let (after, confirmed, since) = match self {
            Taking::Ahead {
                after,
                confirmed,
                since,
            } => (after, confirmed, since),
            Taking::Locked { room, confirming } => {
                // Reap what has finished (a failed batch's rows were rolled
                // back and are taken again).
                while let Some(ended) = confirming.try_join_next() {
                    log_join_error(ended);
                }
                // All batches await confirms (RabbitMQ blocked publishing?):
                // wait for room, but not past shutdown.
                let slot = tokio::select! {
                    // Room first: after shutdown the relay still drains.
                    biased;
                    slot = Arc::clone(room).acquire_owned() => slot,
                    _ = shutdown.cancelled() => return Ok(0),
                };
                let Ok(slot) = slot else {
                    return Ok(0);
                };
                let Some((taken, events)) = store.take_outbox(BATCH).await? else {
                    return Ok(0);
                };
                let n = events.len();
                let pending = publish(channel, exchange, events).await;
                confirming.spawn(async move {
                    let done = confirmed_of(pending).await;
                    if let Err(e) = taken.forget(&done).await {
                        tracing::warn!(error = %e, "cannot clear published receipt events; they are published again");
                    }
                    drop(slot);
                });
                return Ok(n);
            }
        };
        let events = store.outbox_after(*after, BATCH).await?;
        let taken = events.len();
        let Some(last) = events.last().map(|e| e.id) else {
            return Ok(0);
        };
        let done = confirmed_of(publish(channel, exchange, events).await).await;
        let all_confirmed = done.len() == taken;
        confirmed.extend(done);
        since.get_or_insert_with(Instant::now);
        if all_confirmed {
            *after = last;
        } else {
            // Read again from the oldest event left in the table, once the
            // confirmed ones are gone (the rest is published again).
            *after = 0;
            self.forget(store).await?;
        }
        Ok(taken)
    }

    /// When the confirmed events are due to be deleted (None: none wait).
    fn forget_due(&self) -> Option<Instant> {
        match self {
            Taking::Ahead {
                confirmed, since, ..
            } if confirmed.len() >= FORGET_BATCH => *since,
            Taking::Ahead { since, .. } => since.map(|t| t + FORGET_AFTER),
            Taking::Locked { .. } => None,
        }
    }

    /// Delete the confirmed events now (PostgreSQL: wait for the batches
    /// still awaiting their confirms).
    async fn forget(&mut self, store: &Store) -> Result<(), StoreError> {
        match self {
            Taking::Ahead {
                confirmed, since, ..
            } => {
                store.forget_outbox(confirmed).await?;
                confirmed.clear();
                *since = None;
            }
            Taking::Locked { confirming, .. } => {
                while let Some(ended) = confirming.join_next().await {
                    log_join_error(ended);
                }
            }
        }
        Ok(())
    }
}

pub async fn run(pipeline: Arc<Pipeline>, shutdown: Shutdown) {
    let amqp = &pipeline.config.amqp;
    let written = pipeline.recorder.outbox_written();
    let mut link: Option<(Connection, Channel)> = None;
    let mut backoff = new_backoff(amqp.reconnect_max_secs);
    let mut nodes = Nodes::new(amqp);
    let store = &pipeline.store;
    let mut taking = Taking::of(store, pipeline.config.database.max_connections);
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
        let mut drained = taking.next(store, channel, exchange, &shutdown).await;
        if drained.is_ok() && taking.forget_due().is_some_and(|due| due <= Instant::now()) {
            drained = taking.forget(store).await.and(drained);
        }
        match drained {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) if shutdown.is_triggered() => break,
            Ok(_) => {
                let idle = Instant::now() + Duration::from_secs(1);
                let wake = taking.forget_due().map_or(idle, |due| due.min(idle));
                tokio::select! {
                    _ = written.notified() => {}
                    _ = tokio::time::sleep_until(wake.into()) => {}
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
    if let Err(e) = taking.forget(store).await {
        tracing::warn!(error = %e, "cannot clear confirmed receipt events; they are published again at the next start");
    }
    if let Some((connection, _)) = link {
        let _ = connection.close(200, "shutdown".into()).await;
    }
}

/// A batch's confirming task that panicked (a bug): its rows were rolled
/// back and are published again; say so.
fn log_join_error(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        tracing::error!(error = %e, "a batch of receipt events ended abnormally; its events are published again");
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

/// Publish every event (stopping at the first that cannot be); each
/// published event's id with the confirm to await.
async fn publish(
    channel: &Channel,
    exchange: &str,
    events: Vec<OutboxEvent>,
) -> Vec<(i64, PublisherConfirm)> {
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
    pending
}

/// Await all confirms; the ids RabbitMQ confirmed.
async fn confirmed_of(pending: Vec<(i64, PublisherConfirm)>) -> Vec<i64> {
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
