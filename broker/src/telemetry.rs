//! Logging set-up: human-readable lines by default, JSON for collectors.
//! Filter with `RUST_LOG` (default `info`). What is logged anywhere in Kurier
//! is ids, destinations, outcomes, reason codes and durations, never payload.

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
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let asks_for_trace = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("trace"));
    if asks_for_trace {
        for target in CAPPED_AT_DEBUG {
            if let Ok(directive) = format!("{target}=debug").parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
