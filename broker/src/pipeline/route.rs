//! Routing: the envelope's `destination` → the configured destination with
//! its adapter, accepted services and delivery client. An unknown destination
//! is a dead letter (`unknown_destination`), never a retry loop.
//! Built once at start from the configuration; pure lookups afterwards.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::delivery::Deliverer;
use crate::delivery::tls::TlsError;
use crate::domain::reason::{Reason, ReasonCode, safe_name};

pub struct Destination {
    pub id: String,
    /// The configured adapter name (it may be one not implemented yet).
    pub adapter_name: String,
    pub adapter: Option<&'static dyn kurier_adapters::Adapter>,
    /// Services this destination accepts, if restricted.
    pub services: Option<Vec<String>>,
    pub name: String,
    pub directory_id: String,
    pub deliverer: Deliverer,
}

pub struct Routes {
    destinations: HashMap<String, Arc<Destination>>,
}

impl Routes {
    pub fn build(config: &Config) -> Result<Routes, TlsError> {
        let mut destinations = HashMap::new();
        for d in &config.destinations {
            let retry = config.retry.with_overrides(&d.retry);
            let destination = Destination {
                id: d.id.clone(),
                adapter_name: d.adapter.clone(),
                adapter: kurier_adapters::find(&d.adapter),
                services: d.services.clone(),
                name: d.name.clone().unwrap_or_else(|| d.id.clone()),
                directory_id: d.directory_id.clone().unwrap_or_else(|| d.id.clone()),
                deliverer: Deliverer::new(d, retry)?,
            };
            destinations.insert(d.id.clone(), Arc::new(destination));
        }
        Ok(Routes { destinations })
    }

    /// Hand the database to the destinations whose transport keeps state
    /// there (XTA 2 message ids).
    pub fn attach_store(&self, store: &crate::store::Store) {
        for d in self.destinations.values() {
            d.deliverer.attach_store(store);
        }
    }

    pub fn route(&self, destination: &str) -> Result<Arc<Destination>, Reason> {
        self.destinations.get(destination).cloned().ok_or_else(|| {
            Reason::new(
                ReasonCode::UnknownDestination,
                format!(
                    "/destination: no destination {} is configured",
                    safe_name(destination)
                ),
            )
        })
    }
}
