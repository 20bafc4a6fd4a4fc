//! Two-stage receipts, the poller: the one task that asks the transports for
//! the authority's answers ([`crate::delivery::answers`]).
//!
//! Each round (every `report_poll_interval_secs`), for each configured
//! destination whose transport has a
//! [`crate::delivery::answers::ReportSource`] and that is
//! neither paused nor behind an open circuit: the submissions delivered
//! there that still await an answer and were not asked about in this round
//! are handed to the source in batches, least recently asked first; the
//! answers it returns are committed with their receipt events
//! ([`crate::store::Store::record_answers`]) and the outbox relay is woken;
//! the others are noted as asked. A source that fails is asked again next
//! round. Several instances may ask about the same submission: the answer is
//! committed once. Logs ids, counts and causes, never a value.

use std::sync::Arc;
use std::time::Duration;

use crate::delivery::answers::{Answers, Awaiting, TransportError};
use crate::domain::id::{DestinationId, SubmissionId};
use crate::domain::time::now;
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;

/// Submissions handed to a source at once.
const BATCH: i64 = 100;

pub async fn run(pipeline: Arc<Pipeline>, shutdown: Shutdown) {
    let interval = Duration::from_secs(pipeline.config.report_poll_interval_secs.max(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => break,
        }
        // A report request may take up to its timeout: shutdown does not
        // wait for it. A commit cut off here rolls back; the next run asks again.
        tokio::select! {
            _ = round(&pipeline, &shutdown) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}

/// One round over every destination.
pub async fn round(pipeline: &Pipeline, shutdown: &Shutdown) {
    let started = now();
    for d in &pipeline.config.destinations {
        if shutdown.is_triggered() {
            return;
        }
        let Ok(destination) = pipeline.routes.route(&d.id) else {
            continue;
        };
        let deliverer = &destination.deliverer;
        let Some(source) = deliverer.report_source() else {
            continue;
        };
        // Not while an operator paused it or it is down: its answers wait.
        if deliverer.blocked_for().is_some() {
            continue;
        }
        loop {
            let awaiting = match pipeline.store.awaiting(&d.id, started, BATCH).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(destination = %d.id, error = %e, "cannot read the submissions awaiting an answer");
                    break;
                }
            };
            if awaiting.is_empty() {
                break;
            }
            let full = awaiting.len() as i64 == BATCH;
            match source.poll(&awaiting).await {
                Ok(answers) => {
                    if commit(pipeline, &d.id, &awaiting, answers).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    log_failure(&d.id, &e, awaiting.len());
                    break;
                }
            }
            if !full || shutdown.is_triggered() {
                break;
            }
        }
    }
}

fn log_failure(destination: &DestinationId, e: &TransportError, asked: usize) {
    tracing::warn!(destination = destination.as_str(), error = %e, asked, "no authority answers this round; asked again at the next");
}

/// Commit what the source answered and note the rest as asked.
async fn commit(
    pipeline: &Pipeline,
    destination: &DestinationId,
    awaiting: &[Awaiting],
    answers: Answers,
) -> Result<(), ()> {
    let at = now();
    // Only answers about what was asked, each with codes of the allowed form.
    let answers: Answers = answers
        .into_iter()
        .filter(|(id, _)| awaiting.iter().any(|a| &a.submission_id == id))
        .map(|(id, answer)| {
            let (answer, dropped) = answer.checked();
            if dropped > 0 {
                tracing::warn!(submission_id = %id, destination = destination.as_str(), dropped, "reason codes not of the form [A-Za-z0-9_.:-]{{1,64}} (or more than 16) left out");
            }
            (id, answer)
        })
        .collect();
    if !answers.is_empty() {
        match pipeline
            .store
            .record_answers(destination, &answers, at)
            .await
        {
            Ok(new) => {
                for (id, answer) in answers.iter().filter(|(id, _)| new.contains(id)) {
                    let codes = answer.reason_codes.join(" ");
                    tracing::info!(submission_id = %id, destination = destination.as_str(), status = answer.status(), reason_codes = %codes, "authority answered");
                    crate::telemetry::metrics::authority_answer(destination, answer.status());
                }
                if !new.is_empty() {
                    pipeline.recorder.outbox_written().notify_one();
                }
            }
            Err(e) => {
                tracing::warn!(destination = destination.as_str(), error = %e, "cannot commit the authority's answers; asked again at the next round");
                return Err(());
            }
        }
    }
    let open: Vec<&SubmissionId> = awaiting
        .iter()
        .map(|a| &a.submission_id)
        .filter(|id| !answers.iter().any(|(a, _)| a == *id))
        .collect();
    if let Err(e) = pipeline.store.polled(destination, &open, at).await {
        tracing::warn!(destination = destination.as_str(), error = %e, "cannot note the submissions asked about");
        return Err(());
    }
    Ok(())
}
