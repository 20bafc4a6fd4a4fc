//! The scheduler of parked submissions.
//!
//! Once a second it claims the parked submissions that are due (leased, so
//! that another scheduler or another Kurier instance does not take them; on
//! PostgreSQL with `FOR UPDATE SKIP LOCKED`), and runs each through the
//! pipeline again with the current configuration. A lease that runs out
//! (a crash mid-attempt) makes the submission due again. Also purges dead
//! letters whose retention is over. Touches the database and, for receipt
//! events, RabbitMQ.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::intake;
use crate::pipeline::Pipeline;
use crate::receipt::{format_time, now};
use crate::shutdown::Shutdown;

/// How long a claim holds: longer than one attempt can take (a parked
/// submission gets one attempt per run). After a crash the lease runs out and
/// the submission is due again.
fn lease(pipeline: &Pipeline) -> Duration {
    let config = &pipeline.config;
    let longest_attempt_ms = config
        .destinations
        .iter()
        .map(|d| config.retry.with_overrides(&d.retry))
        .chain(std::iter::once(config.retry.clone()))
        .map(|r| r.request_timeout_ms + r.connect_timeout_ms)
        .max()
        .unwrap_or(0);
    Duration::from_millis(longest_attempt_ms) + Duration::from_secs(30)
}
/// Parked submissions claimed per round.
const BATCH: i64 = 64;

pub async fn run(pipeline: Arc<Pipeline>, shutdown: Shutdown) {
    let tracker = TaskTracker::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(BATCH as usize));
    let mut publisher: Option<(lapin::Connection, lapin::Channel)> = None;
    let mut rounds: u64 = 0;
    let lease = lease(&pipeline);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => break,
        }
        rounds += 1;
        if rounds % 5 == 1 {
            match pipeline.store.purge_expired_dead_letters(&now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "dead letters past their retention purged"),
                Err(e) => tracing::warn!(error = %e, "purging expired dead letters failed"),
            }
        }
        // Only claim what can start now: the rest stays due for the next round.
        let free = limit.available_permits() as i64;
        if free == 0 {
            continue;
        }
        let lease_until = format_time(time::OffsetDateTime::now_utc() + lease);
        let due = match pipeline
            .store
            .claim_due(&now(), &lease_until, free.min(BATCH))
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim parked submissions");
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        if publisher
            .as_ref()
            .is_none_or(|(c, _)| !c.status().connected())
        {
            publisher = match intake::connect(&pipeline.config.amqp, "kurier-scheduler").await {
                Ok(c) => match intake::confirm_channel(&c).await {
                    Ok(ch) => Some((c, ch)),
                    Err(_) => None,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler has no AMQP connection; receipt events of retried submissions are not published");
                    None
                }
            };
        }
        for parked in due {
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                break;
            };
            let pipeline = Arc::clone(&pipeline);
            let channel = publisher.as_ref().map(|(_, ch)| ch.clone());
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                pipeline
                    .retry_parked(parked, channel.as_ref(), &shutdown)
                    .await;
                drop(permit);
            });
        }
    }
    tracker.close();
    let grace = Duration::from_secs(pipeline.config.shutdown_grace_secs);
    let _ = tokio::time::timeout(grace, tracker.wait()).await;
    if let Some((connection, _)) = publisher {
        let _ = connection.close(200, "shutdown".into()).await;
    }
}
