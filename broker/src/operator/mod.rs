//! What operators see and do, from the command line and over HTTP.
//!
//! - [`ops`]: the one implementation of every operator verb (status, dead
//!   letters listed, replayed and purged, parked backlog, receipts, audit),
//!   used by the CLI and by the admin API alike; each action is audited.
//! - `admin`: the admin HTTP endpoint (health, readiness, metrics, `/api`)
//!   with tokens, roles and TLS off loopback; `console` is its HTML face.
//! - `gauges`: the state gauges of the metrics, refreshed on a timer.
//! - [`history`]: each destination's last hour in buckets, for the
//!   console's charts.
//!
//! May touch everything below it (the pipeline's live state, the store, the
//! vault, intake for replays); nothing below touches it.

pub(crate) mod admin;
pub(crate) mod console;
pub(crate) mod gauges;
pub mod history;
pub mod ops;
