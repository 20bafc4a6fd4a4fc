//! Changes applied without a restart, as nginx and Postfix apply them.
//!
//! - **SIGHUP**: the configuration file is read again and checked; its
//!   destinations (endpoints, adapters, services, transports, retry and
//!   limits) are taken over by [`Routes::reload`](super::route::Routes::reload)
//!   and every destination's certificates are loaded again. Work in flight
//!   is not dropped: an attempt under way finishes on the deliverer it
//!   holds. A file that does not load or check changes nothing (logged);
//!   sections that need a restart (`[amqp]`, `[database]`, `[admin]`,
//!   `[vault]`, `[intake]`, `[policy]`, …) are named in a warning.
//! - **Certificate files** changed on disk are loaded within seconds
//!   ([`certs::Ticks`]).
//!
//! Touches the configuration file, certificate files and the destinations'
//! deliverers.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::delivery::certs::{self, Fingerprint};
use crate::domain::id::DestinationId;
use crate::shutdown::Shutdown;

use super::Pipeline;

/// Watch for SIGHUP and changed certificate files until shutdown.
pub async fn watch(pipeline: Arc<Pipeline>, shutdown: Shutdown) {
    let mut seen: HashMap<DestinationId, Fingerprint> = HashMap::new();
    let mut ticks = certs::Ticks::new();
    for d in pipeline.routes.all() {
        seen.insert(d.id.clone(), certs::fingerprint(&d.config));
    }
    while let Some(hangup) = ticks.next(&shutdown).await {
        if hangup {
            reload_configuration(&pipeline);
        }
        reload_certificates(&pipeline, &mut seen, hangup);
    }
}

/// Read the configuration file again and take over its destinations.
fn reload_configuration(pipeline: &Pipeline) {
    let path = &pipeline.config.source;
    let config = match Config::load(path).and_then(|c| c.check().map(|_| c)) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "SIGHUP: the configuration was not reloaded; the running one stays");
            return;
        }
    };
    let restart = needs_restart(&pipeline.config, &config);
    if !restart.is_empty() {
        tracing::warn!(
            sections = %restart.join(", "),
            "SIGHUP: these sections changed and take effect at the next restart"
        );
    }
    match pipeline.routes.reload(&config) {
        Ok(r) => tracing::info!(
            added = ?r.added,
            changed = ?r.changed,
            removed = ?r.removed,
            kept = r.kept.len(),
            "SIGHUP: destinations reloaded"
        ),
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the destinations were not reloaded; the running ones stay")
        }
    }
}

/// The sections of `new` that differ from `old` and are not reloaded.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut compare = |name: &'static str, same: bool| {
        if !same {
            changed.push(name);
        }
    };
    compare("[amqp]", old.amqp == new.amqp);
    compare("[intake]", old.intake == new.intake);
    compare("[database]", old.database == new.database);
    compare("[admin]", old.admin == new.admin);
    compare("[policy]", old.policy == new.policy);
    compare("[vault]", old.vault == new.vault);
    compare("[dead_letters]", old.dead_letters == new.dead_letters);
    compare("[sender]", old.sender == new.sender);
    compare("[retention]", old.retention == new.retention);
    compare("schemas_dir", old.schemas_dir == new.schemas_dir);
    compare("xsd_dir", old.xsd_dir == new.xsd_dir);
    compare("[[portals]]", old.portals == new.portals);
    changed
}

/// Load a destination's certificates again when its files changed (or,
/// with `all`, whatever changed): new requests use the new material,
/// requests in flight finish on the old connection. A file that does not
/// load (half written, key not matching) is logged and the previous
/// material stays in use until the next change.
fn reload_certificates(
    pipeline: &Pipeline,
    seen: &mut HashMap<DestinationId, Fingerprint>,
    all: bool,
) {
    for route in pipeline.routes.all() {
        let d = &route.config;
        let now = certs::fingerprint(d);
        if !all && seen.get(&d.id) == Some(&now) {
            continue;
        }
        seen.insert(d.id.clone(), now);
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
