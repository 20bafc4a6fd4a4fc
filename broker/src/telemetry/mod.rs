//! # Room `telemetry`: logs, metrics, trace context
//!
//! Owns the log set-up (this file), the recording of metrics
//! (`metrics`: names, help texts, one-line calls) and the W3C trace
//! context carried from portal to authority (`trace`). May use `store`
//! (the record a submission ended with) and rooms below.
//!
//! Logging set-up: human-readable lines by default, JSON for collectors.
//! Filter with `RUST_LOG` (default `info`). What is logged anywhere in Kurier
//! is ids, destinations, outcomes, reason codes and durations, never payload.

pub(crate) mod metrics;
pub(crate) mod trace;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Crates that may log frames or bodies at trace level (and so payload):
/// capped at debug whatever `RUST_LOG` asks. The canary test runs at debug.
const CAPPED_AT_DEBUG: &[&str] = &[
    "lapin",
    "amq_protocol",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "sqlx",
    "tokio_rustls",
];

pub fn init(format: LogFormat) {
    let filter = capped_filter(std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// `RUST_LOG` (default `info`) with the crates of [`CAPPED_AT_DEBUG`] capped
/// at debug whenever the filter could let trace through: whatever the
/// spelling (`TRACE`, `lapin=trace`, a span filter), frames never reach a log.
fn capped_filter(spec: Option<&str>) -> EnvFilter {
    let mut filter = spec
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let asks_for_trace = filter
        .max_level_hint()
        .is_none_or(|level| level >= tracing_subscriber::filter::LevelFilter::TRACE);
    if asks_for_trace {
        for target in CAPPED_AT_DEBUG {
            if let Ok(directive) = format!("{target}=debug").parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_is_capped_for_frame_logging_crates_however_it_is_spelled() {
        for spec in [
            "trace",
            "TRACE",
            "Trace",
            "kurier=info,lapin=TRACE",
            "[span]=trace",
        ] {
            let filter = capped_filter(Some(spec)).to_string();
            assert!(filter.contains("lapin=debug"), "{spec}: {filter}");
            assert!(filter.contains("hyper=debug"), "{spec}: {filter}");
        }
        for spec in ["info", "debug", "warn,kurier=debug"] {
            let filter = capped_filter(Some(spec)).to_string();
            assert!(!filter.contains("lapin=debug"), "{spec}: {filter}");
        }
    }
}
