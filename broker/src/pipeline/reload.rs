//! Certificates reloaded without a restart: each destination's files are
//! watched ([`certs::Ticks`]) and its deliverer's TLS material swapped when
//! they change. Touches the destinations' deliverers and certificate files.

use crate::delivery::certs::{self, Fingerprint};

/// Reload a destination's certificates when its files change (checked every
/// few seconds) and all of them on SIGHUP, without a restart: new requests
/// use the new material, requests in flight finish on the old connection.
/// A file that does not load (half written, key not matching) is logged and
/// the previous material stays in use until the next change.
pub async fn watch(pipeline: std::sync::Arc<super::Pipeline>, shutdown: crate::shutdown::Shutdown) {
    let destinations = &pipeline.config.destinations;
    let mut seen: Vec<Fingerprint> = destinations.iter().map(certs::fingerprint).collect();
    let mut ticks = certs::Ticks::new();
    while let Some(all) = ticks.next(&shutdown).await {
        if all {
            tracing::info!("SIGHUP: reloading every destination's certificates");
        }
        for (d, previous) in destinations.iter().zip(seen.iter_mut()) {
            let now = certs::fingerprint(d);
            if !all && now == *previous {
                continue;
            }
            *previous = now;
            let Ok(route) = pipeline.routes.route(&d.id) else {
                continue;
            };
            match route.deliverer.reload(d) {
                Ok(()) => tracing::info!(destination = %d.id, "certificates reloaded"),
                Err(e) => tracing::error!(
                    destination = %d.id,
                    error = %e,
                    "certificates not reloaded; the previous ones stay in use until the files are fixed"
                ),
            }
        }
    }
}
