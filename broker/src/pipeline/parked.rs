//! The scheduler of parked submissions.
//!
//! Each round it claims the parked submissions that are due, oldest first
//! (leased, so that another scheduler or another Kurier instance does not
//! take them; on PostgreSQL with `FOR UPDATE SKIP LOCKED` and the database's
//! clock), and runs each through the pipeline again with the current
//! configuration. A lease that runs out (a crash mid-attempt) makes the
//! submission due again. Held submissions and paused destinations are left
//! alone. When a destination's circuit closes, its backlog is made due at
//! once and drains at the destination's adaptive rate. A round follows at
//! once while there is more due work, else after a second. Also purges dead
//! letters whose retention is over. Touches the database.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::domain::id::DestinationId;
use crate::domain::time::now;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;

/// How long a claim holds: longer than one attempt can take (a parked
/// submission gets one attempt per run), including the wait for a place
/// under the destination's concurrency limit. After a crash the lease runs
/// out and the submission is due again.
fn lease(pipeline: &Pipeline) -> Duration {
    let longest_attempt_ms = pipeline
        .routes
        .all()
        .iter()
        .map(|d| d.retry().clone())
        .chain(std::iter::once(pipeline.config.retry.clone()))
        .map(|r| r.request_timeout_ms + r.connect_timeout_ms)
        .max()
        .unwrap_or(0);
    Duration::from_millis(longest_attempt_ms) * 2 + Duration::from_secs(30)
}
/// Parked submissions in the scheduler's hands at once.
const BATCH: i64 = 256;

pub async fn run(pipeline: Arc<Pipeline>, shutdown: Shutdown) {
    let tracker = TaskTracker::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(BATCH as usize));
    let mut last_purge: Option<std::time::Instant> = None;
    let lease = lease(&pipeline);
    let mut closings: HashMap<DestinationId, u64> = HashMap::new();
    let mut more_due = false;
    loop {
        let pause = if more_due {
            Duration::from_millis(10)
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => break,
        }
        if last_purge.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
            last_purge = Some(std::time::Instant::now());
            purge(&pipeline).await;
        }
        refresh_pauses(&pipeline).await;
        bring_forward_closed(&pipeline, &mut closings).await;
        // Only claim what can start now: the rest stays due for the next round.
        let free = limit.available_permits() as i64;
        if free == 0 {
            more_due = false;
            continue;
        }
        let due = match pipeline.store.claim_due(lease, free.min(BATCH)).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim parked submissions");
                more_due = false;
                continue;
            }
        };
        more_due = due.len() as i64 == free.min(BATCH);
        for parked in due {
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                break;
            };
            let pipeline = Arc::clone(&pipeline);
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                pipeline.retry_parked(parked, &shutdown).await;
                drop(permit);
            });
        }
    }
    tracker.close();
    let grace = Duration::from_secs(pipeline.config.shutdown_grace_secs);
    let _ = tokio::time::timeout(grace, tracker.wait()).await;
}

/// Retention: dead letters (with their sealed payloads), receipts and audit
/// rows past their configured time go.
async fn purge(pipeline: &Pipeline) {
    match pipeline.store.purge_expired_dead_letters(now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(purged = n, "dead letters past their retention purged"),
        Err(e) => tracing::warn!(error = %e, "purging expired dead letters failed"),
    }
    crate::store::shred::maintain(&pipeline.vault, &pipeline.store, &pipeline.config).await;
    let retention = &pipeline.config.retention;
    let days = |d: u64| Duration::from_secs(d.saturating_mul(86_400));
    let (Some(receipts), Some(audit)) = (
        crate::domain::time::time_before(days(retention.receipts_days)),
        crate::domain::time::time_before(days(retention.audit_days)),
    ) else {
        return;
    };
    match pipeline.store.prune(receipts, audit).await {
        Ok((0, 0)) => {}
        Ok((r, a)) => tracing::info!(
            receipts = r,
            audit = a,
            "receipts and audit rows past their retention deleted"
        ),
        Err(e) => tracing::warn!(error = %e, "pruning receipts and audit rows failed"),
    }
}

/// Tell each destination whether an operator paused it.
async fn refresh_pauses(pipeline: &Pipeline) {
    let paused = match pipeline.store.paused_destinations().await {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read destination pauses");
            return;
        }
    };
    for d in pipeline.routes.all() {
        d.deliverer.set_paused(paused.contains(&d.id));
    }
}

/// A circuit that closed since the last round: its destination's backlog is
/// due now.
async fn bring_forward_closed(pipeline: &Pipeline, seen: &mut HashMap<DestinationId, u64>) {
    for d in pipeline.routes.all() {
        let closings = d.deliverer.circuit.closings();
        let last = seen.entry(d.id.clone()).or_insert(0);
        if closings != *last {
            match pipeline.store.bring_forward(&d.id).await {
                Ok(n) => {
                    *last = closings;
                    tracing::info!(destination = %d.id, parked = n, "circuit closed; the parked backlog is due now");
                }
                Err(e) => {
                    tracing::warn!(destination = %d.id, error = %e, "cannot bring the parked backlog forward")
                }
            }
        }
    }
}
