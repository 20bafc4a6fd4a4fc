//! Routing: the envelope's `destination` → the configured destination with
//! its adapter, accepted services and delivery client. An unknown destination
//! is a dead letter (`unknown_destination`), never a retry loop.
//!
//! Built at start from the configuration and rebuilt by [`Routes::reload`]
//! (SIGHUP) without a restart: a destination whose configuration is
//! unchanged keeps its deliverer (connections, circuit, limit); a changed one
//! gets a new deliverer for its next attempt while attempts under way finish
//! on the old one (they hold it); a removed one takes no new submissions.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

use crate::config::{Config, DestinationConfig, RetryConfig};
use crate::delivery::Deliverer;
use crate::delivery::tls::TlsError;
use crate::domain::id::DestinationId;
use crate::domain::reason::{Reason, ReasonCode, safe_name};
use crate::store::Store;

pub struct Destination {
    pub id: DestinationId,
    /// The configured adapter name (it may be one not implemented yet).
    pub adapter_name: String,
    pub adapter: Option<&'static dyn kurier_adapters::Adapter>,
    /// Services this destination accepts, if restricted.
    pub services: Option<Vec<String>>,
    pub name: String,
    pub directory_id: String,
    pub deliverer: Deliverer,
    /// What it was built from: a reload keeps the destination while these
    /// are unchanged.
    pub config: DestinationConfig,
    retry: RetryConfig,
}

impl Destination {
    /// Its retry policy: the defaults with its overrides.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    fn build(d: &DestinationConfig, defaults: &RetryConfig) -> Result<Destination, TlsError> {
        let retry = defaults.with_overrides(&d.retry);
        Ok(Destination {
            id: d.id.clone(),
            adapter_name: d.adapter.clone(),
            adapter: kurier_adapters::find(&d.adapter),
            services: d.services.clone(),
            name: d.name.clone().unwrap_or_else(|| d.id.to_string()),
            directory_id: d.directory_id.clone().unwrap_or_else(|| d.id.to_string()),
            deliverer: Deliverer::new(d, retry.clone())?,
            config: d.clone(),
            retry,
        })
    }
}

/// A destination the configuration could not build (its TLS material).
#[derive(Debug, thiserror::Error)]
#[error("destination {destination}: {source}")]
pub struct RouteError {
    pub destination: DestinationId,
    pub source: TlsError,
}

/// What a reload changed, by destination id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    pub added: Vec<DestinationId>,
    pub changed: Vec<DestinationId>,
    pub removed: Vec<DestinationId>,
    pub kept: Vec<DestinationId>,
}

/// The destinations of one configuration, in the file's order.
#[derive(Default)]
struct Table {
    order: Vec<Arc<Destination>>,
    by_id: HashMap<DestinationId, Arc<Destination>>,
}

impl Table {
    fn insert(&mut self, destination: Arc<Destination>) {
        self.by_id
            .insert(destination.id.clone(), Arc::clone(&destination));
        self.order.push(destination);
    }
}

pub struct Routes {
    destinations: ArcSwap<Table>,
    /// The database, for transports that keep state there (XTA 2 message
    /// ids); handed to destinations built later too.
    store: OnceLock<Store>,
}

impl Routes {
    pub fn build(config: &Config) -> Result<Routes, RouteError> {
        let mut destinations = Table::default();
        for d in &config.destinations {
            let destination =
                Destination::build(d, &config.retry).map_err(|source| RouteError {
                    destination: d.id.clone(),
                    source,
                })?;
            destinations.insert(Arc::new(destination));
        }
        Ok(Routes {
            destinations: ArcSwap::from_pointee(destinations),
            store: OnceLock::new(),
        })
    }

    /// Hand the database to the destinations whose transport keeps state
    /// there (XTA 2 message ids), now and after every reload.
    pub fn attach_store(&self, store: &Store) {
        let _ = self.store.set(store.clone());
        for d in &self.destinations.load().order {
            d.deliverer.attach_store(store);
        }
    }

    pub fn route(&self, destination: &DestinationId) -> Result<Arc<Destination>, Reason> {
        self.destinations
            .load()
            .by_id
            .get(destination)
            .cloned()
            .ok_or_else(|| {
                Reason::new(
                    ReasonCode::UnknownDestination,
                    format!(
                        "/destination: no destination {} is configured",
                        safe_name(destination)
                    ),
                )
            })
    }

    /// The destinations configured now, in the file's order.
    pub fn all(&self) -> Vec<Arc<Destination>> {
        self.destinations.load().order.clone()
    }

    /// The ids of the destinations configured now, in the file's order.
    pub fn ids(&self) -> Vec<DestinationId> {
        self.all().iter().map(|d| d.id.clone()).collect()
    }

    /// Take the destinations of `config`: unchanged ones are kept as they
    /// are, changed and new ones built, missing ones dropped. All or
    /// nothing: if one cannot be built, nothing changes.
    pub fn reload(&self, config: &Config) -> Result<Reloaded, RouteError> {
        let old = self.destinations.load_full();
        let mut next = Table::default();
        let mut summary = Reloaded::default();
        for d in &config.destinations {
            let retry = config.retry.with_overrides(&d.retry);
            if let Some(kept) = old.by_id.get(&d.id)
                && kept.config == *d
                && kept.retry == retry
            {
                summary.kept.push(d.id.clone());
                next.insert(Arc::clone(kept));
                continue;
            }
            let built = Destination::build(d, &config.retry).map_err(|source| RouteError {
                destination: d.id.clone(),
                source,
            })?;
            if let Some(store) = self.store.get() {
                built.deliverer.attach_store(store);
            }
            if old.by_id.contains_key(&d.id) {
                summary.changed.push(d.id.clone());
            } else {
                summary.added.push(d.id.clone());
            }
            next.insert(Arc::new(built));
        }
        summary.removed = old
            .by_id
            .keys()
            .filter(|id| !next.by_id.contains_key(*id))
            .cloned()
            .collect();
        summary.removed.sort();
        self.destinations.store(Arc::new(next));
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_or_odd_destination_is_unknown_destination_and_its_name_withheld_if_odd() {
        let config = Config::parse(
            "[amqp]\nurl = \"amqp://x\"\n[[destinations]]\nid = \"sozialamt-koeln\"\n\
             adapter = \"xsozial-hzl\"\nendpoint = \"http://127.0.0.1:8443/a\"\nallow_insecure_http = true\n",
            std::path::Path::new("k.toml"),
        )
        .unwrap();
        crate::delivery::tls::install_crypto_provider();
        let routes = Routes::build(&config).unwrap();
        let known = routes
            .route(&DestinationId::new("sozialamt-koeln"))
            .unwrap();
        assert_eq!(known.id, "sozialamt-koeln");
        for (named, shown) in [
            ("sozialamt-bonn", "sozialamt-bonn"),
            ("Anna Müller", "(name withheld)"),
            ("", "(name withheld)"),
        ] {
            let reason = routes.route(&DestinationId::new(named)).err().unwrap();
            assert_eq!(reason.code, ReasonCode::UnknownDestination);
            assert_eq!(
                reason.detail,
                format!("/destination: no destination {shown} is configured")
            );
        }
    }
}
