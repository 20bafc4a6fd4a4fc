//! Prometheus metrics, served as text by the admin endpoint (`GET /metrics`).
//!
//! Counters and histograms are recorded where things happen, with one-line
//! calls: [`finished`] from the pipeline's end of a submission,
//! [`delivery`] from each delivery attempt, [`in_flight`] from intake.
//! Gauges that describe state (parked and dead letters per destination,
//! circuits, certificate expiry) are refreshed by `operator::gauges` on a timer, which
//! also runs the exporter's upkeep.
//!
//! Labels are destination ids, outcomes, reason codes and certificate kinds,
//! never a value from a submission. Records only; reads nothing.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `kurier_build_info` | gauge (1) | version |
//! | `kurier_submissions_total` | counter, once per submission at its end | service, destination, outcome=delivered\|rejected\|dead_lettered |
//! | `kurier_parkings_total` | counter | destination |
//! | `kurier_dead_letters_total` | counter | reason |
//! | `kurier_publish_to_receipt_seconds` | histogram | |
//! | `kurier_delivery_duration_seconds` | histogram, the request alone (no waiting for a place) | destination, outcome |
//! | `kurier_delivery_limit` | gauge | destination (adaptive concurrency limit) |
//! | `kurier_delivery_in_flight` | gauge | destination |
//! | `kurier_destination_paused` | gauge (0/1) | destination |
//! | `kurier_in_flight` | gauge | |
//! | `kurier_parked` | gauge, database-wide | destination |
//! | `kurier_dead_letters_waiting` | gauge, database-wide | destination |
//! | `kurier_awaiting_authority_answer` | gauge, database-wide: delivered, the authority's answer not in yet | destination |
//! | `kurier_awaiting_authority_answer_oldest_seconds` | gauge, database-wide: age of the oldest of them (0: none) | destination |
//! | `kurier_authority_answers_total` | counter | destination, status=accepted_by_authority\|rejected_by_authority |
//! | `kurier_circuit_open` | gauge (0/1) | destination |
//! | `kurier_certificate_expiry_timestamp_seconds` | gauge, Unix time | destination, kind=client\|ca |
//! | `kurier_certificate_expiry_seconds` | gauge, seconds left (deprecated: kept for one release) | destination, kind |
//!
//! The database-wide gauges (`kurier_parked`, `kurier_dead_letters_waiting`)
//! are the same number on every instance of a cluster: aggregate them with
//! `max`, not `sum` (the shipped alert rules and dashboard do).

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::domain::id::DestinationId;
use crate::domain::time::Timestamp;
use crate::store::Record;

/// Seconds: from 5 ms (a delivery on loopback) to an hour (a parked retry).
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

/// Install the process-wide recorder. `None` if one is installed already
/// (then the metrics go there).
pub fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new().set_buckets(BUCKETS).ok()?;
    match builder.install_recorder() {
        Ok(handle) => {
            describe();
            Some(handle)
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            None
        }
    }
}

fn describe() {
    metrics::describe_gauge!("kurier_build_info", "1, labelled with the running version");
    metrics::gauge!("kurier_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::describe_counter!(
        "kurier_submissions_total",
        "Submissions that ended, once each: delivered, rejected or dead_lettered, by service and destination"
    );
    metrics::describe_counter!(
        "kurier_parkings_total",
        "Times a submission was parked for a later attempt"
    );
    metrics::describe_counter!("kurier_dead_letters_total", "Dead letters by reason code");
    metrics::describe_histogram!(
        "kurier_publish_to_receipt_seconds",
        "From the envelope's submitted_at to the terminal receipt"
    );
    metrics::describe_histogram!(
        "kurier_delivery_duration_seconds",
        "Duration of one delivery attempt: the request and its answer, without waiting for a place"
    );
    metrics::describe_gauge!("kurier_in_flight", "Submissions being processed now");
    metrics::describe_gauge!(
        "kurier_delivery_limit",
        "Adaptive concurrency limit of the destination (max_in_flight is its ceiling)"
    );
    metrics::describe_gauge!(
        "kurier_delivery_in_flight",
        "Requests in flight to the destination"
    );
    metrics::describe_gauge!(
        "kurier_destination_paused",
        "1 while an operator paused the destination"
    );
    metrics::describe_gauge!("kurier_parked", "Parked submissions per destination");
    metrics::describe_gauge!(
        "kurier_dead_letters_waiting",
        "Dead letters kept per destination (database-wide: the same on every instance)"
    );
    metrics::describe_gauge!(
        "kurier_awaiting_authority_answer",
        "Delivered submissions whose authority's answer (accepted or rejected) has not come yet (database-wide)"
    );
    metrics::describe_gauge!(
        "kurier_awaiting_authority_answer_oldest_seconds",
        "Seconds since the oldest submission awaiting the authority's answer was delivered (database-wide)"
    );
    metrics::describe_counter!(
        "kurier_authority_answers_total",
        "Authority answers committed, by destination and status"
    );
    metrics::describe_gauge!(
        "kurier_circuit_open",
        "1 while the destination's circuit is open or half-open"
    );
    metrics::describe_gauge!(
        "kurier_certificate_expiry_timestamp_seconds",
        "Unix time at which the earliest certificate in the file expires"
    );
    metrics::describe_gauge!(
        "kurier_certificate_expiry_seconds",
        "Deprecated (use kurier_certificate_expiry_timestamp_seconds): seconds left at the last refresh"
    );
}

/// The authority's answer to a delivered submission was committed
/// (two-stage receipts).
pub fn authority_answer(destination: &DestinationId, status: &'static str) {
    metrics::counter!("kurier_authority_answers_total", "destination" => destination.to_string(), "status" => status)
        .increment(1);
}

/// A run of the pipeline ended with `record` (called from `Pipeline::log_end`).
/// Counts a submission once, when it ends (delivered, rejected, dead
/// lettered); a parking is counted apart; a rescheduled or repeated run is
/// not counted. Labels are only ever configured destinations and known
/// services (`configured`, `known_service`): what portals send is counted as
/// `unknown`, so it cannot grow the number of series.
pub fn finished(
    record: &Record,
    configured: impl Fn(&DestinationId) -> bool,
    known_service: impl Fn(&str) -> bool,
) {
    let service_label = |value: Option<&str>| match value {
        Some(v) if known_service(v) => v.to_owned(),
        _ => "unknown".to_owned(),
    };
    let destination_label = |value: Option<&DestinationId>| match value {
        Some(v) if configured(v) => v.to_string(),
        _ => "unknown".to_owned(),
    };
    let (service, destination, outcome) = match record {
        Record::Receipt(r)
        | Record::DeadLetter {
            receipt: Some(r), ..
        } => {
            if let Some(secs) = r
                .submitted_at
                .as_deref()
                .and_then(|s| seconds_between(s, r.completed_at))
            {
                metrics::histogram!("kurier_publish_to_receipt_seconds").record(secs);
            }
            (r.service.as_deref(), r.destination.as_ref(), r.status)
        }
        Record::DeadLetter {
            dead_letter,
            receipt: None,
            ..
        } => (
            dead_letter.service.as_deref(),
            dead_letter.destination.as_ref(),
            crate::domain::status::ReceiptStatus::DeadLettered,
        ),
        Record::Park(p) => {
            metrics::counter!(
                "kurier_parkings_total",
                "destination" => destination_label(Some(&p.destination))
            )
            .increment(1);
            return;
        }
        Record::Reschedule { .. } | Record::RepeatEvent(_) => return,
    };
    if let Record::DeadLetter { dead_letter, .. } = record {
        metrics::counter!("kurier_dead_letters_total", "reason" => dead_letter.reason_code.clone())
            .increment(1);
    }
    metrics::counter!(
        "kurier_submissions_total",
        "service" => service_label(service),
        "destination" => destination_label(destination),
        "outcome" => outcome.as_str()
    )
    .increment(1);
}

/// One delivery attempt to `destination` took `elapsed` (the request alone,
/// not the wait for a place under the limit) and ended as `outcome`.
pub fn delivery(destination: &DestinationId, outcome: &'static str, elapsed: Duration) {
    metrics::histogram!(
        "kurier_delivery_duration_seconds",
        "destination" => destination.to_string(),
        "outcome" => outcome
    )
    .record(elapsed.as_secs_f64());
}

/// A submission started (`+1`) or ended (`-1`).
pub fn in_flight(delta: f64) {
    metrics::gauge!("kurier_in_flight").increment(delta);
}

/// Seconds from `from` (RFC 3339, as a portal wrote it) to `to`; `None`
/// if unreadable or negative.
pub fn seconds_between(from: &str, to: Timestamp) -> Option<f64> {
    let from = Timestamp::parse(from).ok()?;
    (from <= to).then(|| to.since(from).as_secs_f64())
}
