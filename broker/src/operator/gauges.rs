//! The state gauges of [`crate::telemetry::metrics`] (parked and dead letters
//! per destination, limits, pauses, circuits, certificate expiry), refreshed
//! on a timer, and the exporter's upkeep. Reads the database (through
//! [`Ops`]), the destinations' live state and certificate files.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::operator::ops::Ops;
use crate::pipeline::Pipeline;
use crate::queue::circuit::CircuitState;
use crate::shutdown::Shutdown;

/// Refresh the state gauges and run the exporter's upkeep until shutdown.
pub async fn run(pipeline: Arc<Pipeline>, handle: PrometheusHandle, shutdown: Shutdown) {
    let ops = Ops::new(pipeline.store.clone(), None, &pipeline.config).with_destinations({
        let pipeline = Arc::clone(&pipeline);
        move || pipeline.routes.ids()
    });
    let mut tick: u64 = 0;
    loop {
        refresh(&pipeline, &ops, tick.is_multiple_of(12)).await;
        handle.run_upkeep();
        tick += 1;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn refresh(pipeline: &Pipeline, ops: &Ops, certificates: bool) {
    match ops.status().await {
        Ok(status) => {
            for d in status.destinations {
                metrics::gauge!("kurier_parked", "destination" => d.destination.to_string())
                    .set(d.parked as f64);
                metrics::gauge!("kurier_dead_letters_waiting", "destination" => d.destination.to_string())
                    .set(d.dead_letters as f64);
                let oldest = d
                    .oldest_awaiting_delivered_at
                    .map(|at| crate::domain::time::now().since(at).as_secs_f64())
                    .unwrap_or(0.0);
                metrics::gauge!("kurier_awaiting_authority_answer", "destination" => d.destination.to_string())
                    .set(d.awaiting_answer as f64);
                metrics::gauge!("kurier_awaiting_authority_answer_oldest_seconds", "destination" => String::from(d.destination))
                    .set(oldest);
            }
        }
        Err(e) => tracing::debug!(error = %e, "metrics: cannot read the backlog"),
    }
    let destinations = pipeline.routes.all();
    for route in &destinations {
        let d = &route.config;
        metrics::gauge!("kurier_delivery_limit", "destination" => d.id.to_string())
            .set(route.deliverer.limiter.limit() as f64);
        metrics::gauge!("kurier_delivery_in_flight", "destination" => d.id.to_string())
            .set(route.deliverer.limiter.in_flight() as f64);
        let paused = if route.deliverer.is_paused() {
            1.0
        } else {
            0.0
        };
        metrics::gauge!("kurier_destination_paused", "destination" => d.id.to_string()).set(paused);
        let open = route.deliverer.circuit.state() != CircuitState::Closed;
        metrics::gauge!("kurier_circuit_open", "destination" => d.id.to_string()).set(if open {
            1.0
        } else {
            0.0
        });
    }
    if certificates {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for d in destinations.iter().map(|route| &route.config) {
            for (kind, file) in [("client", &d.client_cert_file), ("ca", &d.ca_file)] {
                if let Some(path) = file
                    && let Ok(not_after) = crate::delivery::certs::earliest_expiry(path)
                {
                    metrics::gauge!(
                        "kurier_certificate_expiry_timestamp_seconds",
                        "destination" => d.id.to_string(),
                        "kind" => kind
                    )
                    .set(not_after as f64);
                    metrics::gauge!(
                        "kurier_certificate_expiry_seconds",
                        "destination" => d.id.to_string(),
                        "kind" => kind
                    )
                    .set((not_after - now) as f64);
                }
            }
        }
    }
}
