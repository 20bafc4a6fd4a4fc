//! The configuration file (TOML, CONTRACT.md § 6): what an operator writes.
//!
//! Every field has a doc comment and a default where one is sane. Parsing
//! reports the file and line of a broken entry; [`Config::check`] goes on to
//! the things TOML cannot see (unknown adapters, plaintext endpoints, missing
//! certificate files). Relative paths are resolved against the directory of
//! the configuration file. Reads files; touches nothing else.

pub mod fit_connect;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::id::DestinationId;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("configuration {path}: {message}")]
    Parse { path: String, message: String },
    #[error("configuration {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub amqp: AmqpConfig,
    /// Limits on what arrives, checked before anything is parsed.
    #[serde(default)]
    pub intake: IntakeConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Default retry policy; a destination may override any of it.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Who Kurier says it is in message headers (`autor` in XSozial).
    #[serde(default)]
    pub sender: SenderConfig,
    /// Encryption at rest of parked submissions and dead letters.
    #[serde(default)]
    pub vault: VaultConfig,
    /// How long dead letters keep their (encrypted) payload for replay.
    #[serde(default)]
    pub dead_letters: DeadLetterConfig,
    /// How long receipts and the audit trail are kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Directory with `envelope.schema.json` and `forms/<service>.schema.json`.
    /// Unset: the schemas compiled into the binary.
    #[serde(default)]
    pub schemas_dir: Option<PathBuf>,
    /// Directory with the adapters' XSDs (`<xsd_dir>/<adapter>.xsd`, e.g.
    /// `xsozial-hzl.xsd`) that every rendered document is checked against
    /// before it is sent. Unset: the XSDs of `schemas/xml/` compiled into
    /// the binary.
    #[serde(default)]
    pub xsd_dir: Option<PathBuf>,
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
    /// Which AMQP users may speak for which portal. When any is configured,
    /// every submission must carry the AMQP `user_id` property (RabbitMQ
    /// checks it against the publishing connection's user) of a user of the
    /// portal its envelope names; others are refused.
    #[serde(default)]
    pub portals: Vec<PortalConfig>,
    /// Seconds that in-flight submissions get to finish after SIGTERM.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Seconds between two rounds of asking the transports that report the
    /// authority's decision later (XTA 2 transport reports) about the
    /// submissions still awaiting it (two-stage receipts, [`crate::delivery::answers`]).
    #[serde(default = "default_report_poll_interval_secs")]
    pub report_poll_interval_secs: u64,
    /// Where the file was read from (for messages and relative paths).
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// AMQP URI of RabbitMQ, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    /// `amqps://` means TLS, always: the server is verified against `ca_file`
    /// (else the system's roots) and the URL's host name. Required unless
    /// `urls` is given; never both.
    #[serde(default)]
    pub url: String,
    /// The nodes of a RabbitMQ cluster, instead of `url`: each connection
    /// (the consumer's, the outbox relay's) tries them in turn, starting
    /// after the node that failed, with the backoff between full rounds
    /// (`crate::intake::failover`). Every URL is checked as `url` is.
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    /// CA certificate(s) (PEM) RabbitMQ's certificate must chain to (`amqps://`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) and its PKCS#8 key for `amqps://`, if RabbitMQ
    /// asks for one.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Topic exchange portals publish to.
    #[serde(default = "default_exchange")]
    pub exchange: String,
    /// Quorum queue Kurier consumes from.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Topic exchange receipt events are published to.
    #[serde(default = "default_receipts_exchange")]
    pub receipts_exchange: String,
    /// Unacknowledged deliveries held at once; bounds memory and concurrency.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Declare exchanges, queue and binding at start (idempotent).
    #[serde(default = "yes")]
    pub declare_topology: bool,
    /// Longest wait between reconnection attempts, in seconds.
    #[serde(default = "default_reconnect_max_secs")]
    pub reconnect_max_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// The envelope's `portal` and the routing key of its receipt events.
    pub id: String,
    /// AMQP users that publish for this portal.
    pub amqp_users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// A body longer than this is dead-lettered `message_too_large` without
    /// being parsed (default 16 MiB: a 7.5 MB attachment in base64 with its
    /// form).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Bytes of message bodies being processed at once; a message waits for
    /// room before it is parsed (default 64 MiB). Bounds memory together with
    /// `max_message_bytes`, whatever the prefetch count.
    #[serde(default = "default_max_bytes_in_flight")]
    pub max_bytes_in_flight: usize,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            max_message_bytes: default_max_message_bytes(),
            max_bytes_in_flight: default_max_bytes_in_flight(),
        }
    }
}

fn default_max_message_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_max_bytes_in_flight() -> usize {
    64 * 1024 * 1024
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://kurier.db` (created on first run) or `postgres://…`.
    #[serde(default = "default_database_url")]
    pub url: String,
    /// Connections in the pool (PostgreSQL; SQLite writes through one).
    #[serde(default = "default_db_connections")]
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: default_database_url(),
            max_connections: default_db_connections(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin HTTP endpoint (`/healthz`, `/readyz`,
    /// `/metrics`, `/api`, the console); `"off"`: none. Plain HTTP only on a
    /// loopback address, else TLS (`tls_cert_file`, `tls_key_file`) or the
    /// explicit `allow_plaintext`.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// The operators' tokens: `name:roles:token` (or `name:token`, read
    /// only) per line. Must not be readable by others.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Certificate chain (PEM) of the admin listener; with `tls_key_file`
    /// it serves HTTPS only.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert_file`. Must not be readable by others.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Serve `/api` and the console over plain HTTP on a non-loopback
    /// address (tokens and personal data in the clear on the network; only
    /// behind a TLS-terminating proxy on a trusted segment). Logged as a
    /// warning.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// A second, plain-HTTP listener with only `/healthz`, `/readyz` and
    /// `/metrics` (no personal data, no tokens) for probes and scrapers.
    #[serde(default)]
    pub probe_listen: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            token_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            allow_plaintext: false,
            probe_listen: None,
        }
    }
}

/// What the admin listener serves on, decided from `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminTransport {
    /// `listen = "off"`.
    Off,
    /// HTTPS with `tls_cert_file` and `tls_key_file`.
    Tls { cert: PathBuf, key: PathBuf },
    /// Plain HTTP; `warning` is set when it is not loopback-only.
    Plain { warning: Option<String> },
}

impl AdminConfig {
    /// Whether `listen` (or `probe_listen`) is set to serve.
    pub fn enabled(listen: &str) -> bool {
        let l = listen.trim();
        !(l.is_empty() || l.eq_ignore_ascii_case("off"))
    }

    /// TLS, plain HTTP or nothing; `Err` names the setting that is wrong.
    /// A listen address counts as loopback when it is a loopback IP
    /// (`127.0.0.0/8`, `::1`) or `localhost`; a host name is not resolved.
    pub fn transport(&self) -> Result<AdminTransport, String> {
        if !AdminConfig::enabled(&self.listen) {
            return Ok(AdminTransport::Off);
        }
        let listen = self.listen.trim();
        let loopback = is_loopback(listen).ok_or_else(|| {
            format!("[admin] listen = {listen:?} is not an address; write host:port, e.g. \"127.0.0.1:9090\"")
        })?;
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => {
                if self.allow_plaintext {
                    return Err("[admin] allow_plaintext = true together with tls_cert_file: choose one (remove allow_plaintext to serve TLS)".into());
                }
                Ok(AdminTransport::Tls {
                    cert: cert.clone(),
                    key: key.clone(),
                })
            }
            (Some(_), None) => Err("[admin] tls_cert_file is set but tls_key_file is not; set both (or neither, on a loopback address)".into()),
            (None, Some(_)) => Err("[admin] tls_key_file is set but tls_cert_file is not; set both (or neither, on a loopback address)".into()),
            (None, None) if loopback => Ok(AdminTransport::Plain { warning: None }),
            (None, None) if self.allow_plaintext => Ok(AdminTransport::Plain {
                warning: Some(format!(
                    "[admin] listen = {listen:?} serves /api and the console over plain HTTP (allow_plaintext = true): tokens and payload views cross the network in the clear; only behind a TLS-terminating proxy on a trusted network"
                )),
            }),
            (None, None) => Err(format!(
                "[admin] listen = {listen:?} is not a loopback address, and /api and the console carry tokens and personal data: set tls_cert_file and tls_key_file (HTTPS), listen on 127.0.0.1, or set allow_plaintext = true explicitly (e.g. behind a TLS-terminating proxy); probes can use a plain probe_listen"
            )),
        }
    }
}

/// `Some(true)` for a loopback `host:port`, `Some(false)` for another one,
/// `None` when it is no `host:port` at all.
fn is_loopback(listen: &str) -> Option<bool> {
    if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
        return Some(addr.ip().is_loopback());
    }
    let (host, port) = listen.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Some(host.eq_ignore_ascii_case("localhost"))
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Largest decoded attachment in bytes (default 7.5 MB = 7 500 000 bytes).
    #[serde(default = "default_max_attachment_bytes")]
    pub max_attachment_bytes: u64,
    /// Most attachments per submission.
    #[serde(default = "default_max_attachments")]
    pub max_attachments: usize,
    /// `document_type`s refused as copies of identity documents (§ 20 PAuswG).
    #[serde(default = "default_forbidden_document_types")]
    pub forbidden_document_types: Vec<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_attachment_bytes: default_max_attachment_bytes(),
            max_attachments: default_max_attachments(),
            forbidden_document_types: default_forbidden_document_types(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Master key: 64 hex characters (32 bytes). Created with mode 0600 on
    /// first start if missing. It wraps the per-submission data keys.
    #[serde(default = "default_key_file")]
    pub key_file: PathBuf,
    /// Earlier master keys, still readable after a rotation.
    #[serde(default)]
    pub previous_key_files: Vec<PathBuf>,
}

impl Default for VaultConfig {
    fn default() -> Self {
        VaultConfig {
            key_file: default_key_file(),
            previous_key_files: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// Days a dead letter (and its encrypted payload, where it may keep one)
    /// is kept for replay; then it is purged (the receipt keeps the metadata).
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            retention_days: default_retention_days(),
        }
    }
}

/// How long Kurier keeps what it knows about submissions (no payload):
/// receipts are the proof of the application date in objection and court
/// proceedings, so they are kept for years.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days a receipt is kept after its submission finished (default ten
    /// years). Never shorter than a copy of a submission could still arrive
    /// (its destination's `max_age_secs` plus the dead-letter retention).
    #[serde(default = "default_receipts_days")]
    pub receipts_days: u64,
    /// Days an audit-trail row is kept (default ten years).
    #[serde(default = "default_audit_days")]
    pub audit_days: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            receipts_days: default_receipts_days(),
            audit_days: default_audit_days(),
        }
    }
}

fn default_receipts_days() -> u64 {
    3650
}
fn default_audit_days() -> u64 {
    3650
}

impl AmqpConfig {
    /// The URLs to connect to: `urls`, or else the one `url`.
    pub fn node_urls(&self) -> Vec<&str> {
        match &self.urls {
            Some(urls) => urls.iter().map(String::as_str).collect(),
            None => vec![self.url.as_str()],
        }
    }

    /// `url` or `urls`, exactly one of them, and not an empty list; the
    /// message names the line (`text` is the file).
    fn one_way_to_rabbitmq(&self, text: &str) -> Result<(), String> {
        let line =
            |key: &str| line_of(text, "amqp", key).map_or(String::new(), |n| format!("line {n}: "));
        match (self.url.is_empty(), &self.urls) {
            (false, Some(_)) => Err(format!(
                "{}[amqp] sets both url and urls; keep one: url for a single node, urls for the nodes of a cluster",
                line("urls")
            )),
            (true, None) => Err(
                "[amqp] url is missing: set url = \"amqp://…\" (or urls = [\"amqp://…\", …] for the nodes of a cluster)".into(),
            ),
            (true, Some(urls)) if urls.is_empty() => Err(format!(
                "{}[amqp] urls is empty: name at least one node",
                line("urls")
            )),
            _ => Ok(()),
        }
    }
}

enum AmqpProblem {
    Error(String),
    Warning(String),
}

/// The AMQP URL's scheme and TLS material: `amqps://` is TLS with its files
/// present; any other scheme is an error; plaintext to a host that is not
/// loopback is a loud warning.
fn amqp_url_problem(amqp: &AmqpConfig, url: &str) -> Option<AmqpProblem> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let host = rest
        .rsplit_once('@')
        .map_or(rest, |(_, h)| h)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']'))
        .map_or_else(
            || host.rsplit_once(':').map_or(host, |(h, _)| h),
            |(h, _)| h,
        );
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "amqps" => {
            for (key, file) in [
                ("ca_file", &amqp.ca_file),
                ("client_cert_file", &amqp.client_cert_file),
                ("client_key_file", &amqp.client_key_file),
            ] {
                if let Some(f) = file
                    && !f.is_file()
                {
                    return Some(AmqpProblem::Error(format!(
                        "{key} {} not found",
                        f.display()
                    )));
                }
            }
            if amqp.client_cert_file.is_some() != amqp.client_key_file.is_some() {
                return Some(AmqpProblem::Error(
                    "client_cert_file and client_key_file go together".into(),
                ));
            }
            None
        }
        "amqp" if loopback => None,
        "amqp" => Some(AmqpProblem::Warning(format!(
            "PLAINTEXT AMQP to {host}: submissions and credentials cross the network unencrypted; use amqps://"
        ))),
        other => Some(AmqpProblem::Error(format!(
            "url scheme {other}:// is not supported; use amqps:// (TLS) or amqp:// (loopback)"
        ))),
    }
}

/// What is wrong with a retry policy that TOML's types cannot say.
fn retry_problem(r: &RetryConfig) -> Option<String> {
    let problem = if !(r.multiplier >= 1.0 && r.multiplier <= 100.0) {
        "multiplier must be between 1 and 100"
    } else if r.max_attempts_in_place == 0 {
        "max_attempts_in_place must be at least 1"
    } else if r.max_in_flight == 0 {
        "max_in_flight must be at least 1"
    } else if r.initial_in_flight == 0 || r.initial_in_flight > r.max_in_flight {
        "initial_in_flight must be between 1 and max_in_flight"
    } else if !(r.circuit_failure_rate > 0.0 && r.circuit_failure_rate <= 1.0) {
        "circuit_failure_rate must be above 0 and at most 1"
    } else if r.circuit_probes == 0 || r.circuit_min_requests == 0 {
        "circuit_probes and circuit_min_requests must be at least 1"
    } else if r.circuit_open_secs == 0 {
        "circuit_open_secs must be at least 1"
    } else if r.max_age_secs > 10 * 365 * 86_400 || r.max_delay_ms > 30 * 86_400_000 {
        "max_age_secs is at most ten years and max_delay_ms at most 30 days"
    } else if r.circuit_open_secs > 86_400 || r.circuit_open_max_secs > 86_400 {
        // The circuit adds the open interval to the clock and doubles it:
        // unbounded, the first outage would overflow `Instant` and panic.
        "circuit_open_secs and circuit_open_max_secs are at most one day (86400)"
    } else if r.circuit_window_secs > 86_400
        || r.max_in_place_delay_ms > 3_600_000
        || r.request_timeout_ms > 3_600_000
        || r.connect_timeout_ms > 3_600_000
    {
        "circuit_window_secs is at most a day; max_in_place_delay_ms, request_timeout_ms and connect_timeout_ms at most an hour"
    } else {
        return None;
    };
    Some(problem.to_owned())
}

/// Retry policy. In a destination every key is optional and falls back to
/// the top-level `[retry]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryOverrides {
    pub initial_delay_ms: Option<u64>,
    pub multiplier: Option<f32>,
    pub max_delay_ms: Option<u64>,
    pub jitter: Option<bool>,
    pub request_timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub max_attempts_in_place: Option<u32>,
    pub max_age_secs: Option<u64>,
    pub circuit_failure_threshold: Option<u32>,
    pub circuit_open_secs: Option<u64>,
    pub max_in_flight: Option<usize>,
    pub max_in_place_delay_ms: Option<u64>,
    pub initial_in_flight: Option<usize>,
    pub circuit_failure_rate: Option<f64>,
    pub circuit_min_requests: Option<u32>,
    pub circuit_window_secs: Option<u64>,
    pub circuit_open_max_secs: Option<u64>,
    pub circuit_probes: Option<u32>,
    pub max_waiting_in_place: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay before the second attempt, in milliseconds.
    #[serde(default = "default_initial_delay_ms")]
    pub initial_delay_ms: u64,
    /// Factor by which the delay grows per attempt.
    #[serde(default = "default_multiplier")]
    pub multiplier: f32,
    /// Longest delay between attempts, in milliseconds.
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: u64,
    /// Randomise delays so that many retries do not arrive together.
    #[serde(default = "yes")]
    pub jitter: bool,
    /// Whole-request timeout per attempt, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// TCP+TLS connect timeout per attempt, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Attempts made while the AMQP message is held; then it is parked.
    #[serde(default = "default_max_attempts_in_place")]
    pub max_attempts_in_place: u32,
    /// Age (since receipt) after which a parked submission becomes the dead
    /// letter `delivery_expired`. Default 7 days.
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: u64,
    /// No longer used (the circuit opens on a failure rate, see
    /// `circuit_failure_rate`); accepted so that old files still load.
    #[serde(default = "default_circuit_failure_threshold")]
    pub circuit_failure_threshold: u32,
    /// Seconds an open circuit first waits before probes may try; doubled on
    /// each failed probe round up to `circuit_open_max_secs`.
    #[serde(default = "default_circuit_open_secs")]
    pub circuit_open_secs: u64,
    /// Ceiling of the adaptive concurrency limit: requests in flight to one
    /// destination at once, at most.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// A wait longer than this between attempts parks the submission instead
    /// of holding its AMQP message (keep it well below RabbitMQ's
    /// `consumer_timeout`, 30 min by default).
    #[serde(default = "default_max_in_place_delay_ms")]
    pub max_in_place_delay_ms: u64,
    /// Where the adaptive concurrency limit starts.
    #[serde(default = "default_initial_in_flight")]
    pub initial_in_flight: usize,
    /// Share of failed attempts (connect, TLS, timeout, 5xx without
    /// Retry-After) within `circuit_window_secs` that opens the circuit.
    #[serde(default = "default_circuit_failure_rate")]
    pub circuit_failure_rate: f64,
    /// Attempts within the window before the rate counts.
    #[serde(default = "default_circuit_min_requests")]
    pub circuit_min_requests: u32,
    /// Length of the circuit's sliding window, in seconds.
    #[serde(default = "default_circuit_window_secs")]
    pub circuit_window_secs: u64,
    /// Longest interval between probe rounds of an open circuit, in seconds.
    #[serde(default = "default_circuit_open_max_secs")]
    pub circuit_open_max_secs: u64,
    /// Probes a half-open circuit lets through; that many successes close it.
    #[serde(default = "default_circuit_probes")]
    pub circuit_probes: u32,
    /// Held messages of one destination that may wait for a retry at once
    /// (each holds a prefetch slot); a further failure parks at once.
    #[serde(default = "default_max_waiting_in_place")]
    pub max_waiting_in_place: usize,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_delay_ms: default_initial_delay_ms(),
            multiplier: default_multiplier(),
            max_delay_ms: default_max_delay_ms(),
            jitter: true,
            request_timeout_ms: default_request_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            max_attempts_in_place: default_max_attempts_in_place(),
            max_age_secs: default_max_age_secs(),
            circuit_failure_threshold: default_circuit_failure_threshold(),
            circuit_open_secs: default_circuit_open_secs(),
            max_in_flight: default_max_in_flight(),
            max_in_place_delay_ms: default_max_in_place_delay_ms(),
            initial_in_flight: default_initial_in_flight(),
            circuit_failure_rate: default_circuit_failure_rate(),
            circuit_min_requests: default_circuit_min_requests(),
            circuit_window_secs: default_circuit_window_secs(),
            circuit_open_max_secs: default_circuit_open_max_secs(),
            circuit_probes: default_circuit_probes(),
            max_waiting_in_place: default_max_waiting_in_place(),
        }
    }
}

impl RetryConfig {
    pub fn with_overrides(&self, o: &RetryOverrides) -> RetryConfig {
        RetryConfig {
            initial_delay_ms: o.initial_delay_ms.unwrap_or(self.initial_delay_ms),
            multiplier: o.multiplier.unwrap_or(self.multiplier),
            max_delay_ms: o.max_delay_ms.unwrap_or(self.max_delay_ms),
            jitter: o.jitter.unwrap_or(self.jitter),
            request_timeout_ms: o.request_timeout_ms.unwrap_or(self.request_timeout_ms),
            connect_timeout_ms: o.connect_timeout_ms.unwrap_or(self.connect_timeout_ms),
            max_attempts_in_place: o
                .max_attempts_in_place
                .unwrap_or(self.max_attempts_in_place),
            max_age_secs: o.max_age_secs.unwrap_or(self.max_age_secs),
            circuit_failure_threshold: o
                .circuit_failure_threshold
                .unwrap_or(self.circuit_failure_threshold),
            circuit_open_secs: o.circuit_open_secs.unwrap_or(self.circuit_open_secs),
            max_in_flight: o.max_in_flight.unwrap_or(self.max_in_flight),
            max_in_place_delay_ms: o
                .max_in_place_delay_ms
                .unwrap_or(self.max_in_place_delay_ms),
            initial_in_flight: o.initial_in_flight.unwrap_or(self.initial_in_flight),
            circuit_failure_rate: o.circuit_failure_rate.unwrap_or(self.circuit_failure_rate),
            circuit_min_requests: o.circuit_min_requests.unwrap_or(self.circuit_min_requests),
            circuit_window_secs: o.circuit_window_secs.unwrap_or(self.circuit_window_secs),
            circuit_open_max_secs: o
                .circuit_open_max_secs
                .unwrap_or(self.circuit_open_max_secs),
            circuit_probes: o.circuit_probes.unwrap_or(self.circuit_probes),
            max_waiting_in_place: o.max_waiting_in_place.unwrap_or(self.max_waiting_in_place),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderConfig {
    /// Directory id of the sender, e.g. a DVDV id.
    #[serde(default = "default_sender_id")]
    pub id: String,
    #[serde(default = "default_sender_name")]
    pub name: String,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            id: default_sender_id(),
            name: default_sender_name(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// The receiving authority's id: the envelope's `destination`.
    pub id: DestinationId,
    /// Name of the adapter that renders this authority's XML.
    pub adapter: String,
    /// HTTPS URL the document is POSTed to (not used by `fit-connect`, whose
    /// URLs are `fit_token_url` and `fit_submission_api`).
    #[serde(default)]
    pub endpoint: String,
    /// CA certificate(s) (PEM) the authority's server certificate must chain to.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Kurier's client certificate chain (PEM) presented to this authority.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// The private key (PEM) of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// How documents reach the authority (CONTRACT.md § 6): `https` (the
    /// default), `xta2` (SOAP 1.2, `delivery::xta2`) or `fit-connect`
    /// (Submission API v1, `delivery::fit_connect`).
    #[serde(default)]
    pub transport: Option<String>,
    /// Allow a plain `http://` endpoint. Local development only.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Services this destination accepts; unset: whatever its adapter renders.
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// Display name of the authority (message headers).
    #[serde(default)]
    pub name: Option<String>,
    /// Directory id of the authority, e.g. a DVDV id (message headers).
    #[serde(default)]
    pub directory_id: Option<String>,
    /// Retry policy overrides for this destination.
    #[serde(default)]
    pub retry: RetryOverrides,
    /// XTA 2 (`transport = "xta2"`, CONTRACT.md § 6): Kurier's identifier as
    /// author (sender) in `AuthorIdentifier` and the message metadata.
    #[serde(default)]
    pub xta_author: Option<String>,
    /// XTA 2: the authority's identifier (reader).
    #[serde(default)]
    pub xta_reader: Option<String>,
    /// XTA 2: the service URI (`Qualifier/Service`, lookupService).
    #[serde(default)]
    pub xta_service: Option<String>,
    /// XTA 2: the `type` attribute of the author's and reader's identifiers
    /// (default `xoev`).
    #[serde(default)]
    pub xta_identifier_type: Option<String>,
    /// XTA 2: the business scenario (`Qualifier/BusinessScenario/Undefined`);
    /// default: the service URI.
    #[serde(default)]
    pub xta_business_scenario: Option<String>,
    /// XTA 2: what to ask the XTA server before each message is created
    /// and sent (`["checkAccountActive", "lookupService"]`, either or
    /// both); default none. A positive answer is trusted for
    /// [`crate::delivery::xta2::client::PRECHECK_FRESH`].
    #[serde(default)]
    pub xta_precheck: Vec<XtaPrecheck>,
    /// FIT-Connect (`transport = "fit-connect"`, CONTRACT.md § 6): the OAuth 2
    /// token endpoint (client credentials).
    #[serde(default)]
    pub fit_token_url: Option<String>,
    /// FIT-Connect: the Submission API's base URL (`/v1/...` and
    /// `/.well-known/jwks.json` below it).
    #[serde(default)]
    pub fit_submission_api: Option<String>,
    /// FIT-Connect: the destination's UUID.
    #[serde(default)]
    pub fit_destination_id: Option<String>,
    /// FIT-Connect: the OAuth client id of Kurier's sender client.
    #[serde(default)]
    pub fit_client_id: Option<String>,
    /// FIT-Connect: file holding the client secret (refused if others may read it).
    #[serde(default)]
    pub fit_client_secret_file: Option<PathBuf>,
    /// FIT-Connect: the service (`serviceType.identifier`), e.g. a LeiKa URN.
    #[serde(default)]
    pub fit_service_identifier: Option<String>,
    /// FIT-Connect: the service's name (`serviceType.name`); default: the identifier.
    #[serde(default)]
    pub fit_service_name: Option<String>,
    /// FIT-Connect: CA (PEM) that must have issued the destination's
    /// encryption key (its `x5c` chain); unset: the chain is not checked.
    #[serde(default)]
    pub fit_key_ca_file: Option<PathBuf>,
}

/// An XTA 2 pre-check (`xta_precheck`), spelled as the XTA-WS operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum XtaPrecheck {
    /// Is Kurier's (the author's) account active?
    #[serde(rename = "checkAccountActive")]
    CheckAccountActive,
    /// Does the reader offer `xta_service`?
    #[serde(rename = "lookupService")]
    LookupService,
}

fn default_key_file() -> PathBuf {
    PathBuf::from("vault.key")
}
fn default_retention_days() -> u64 {
    30
}
fn default_max_attempts_in_place() -> u32 {
    3
}
fn default_max_age_secs() -> u64 {
    7 * 24 * 3600
}
fn default_circuit_failure_threshold() -> u32 {
    5
}
fn default_circuit_open_secs() -> u64 {
    2
}
fn default_max_in_place_delay_ms() -> u64 {
    10_000
}
fn default_initial_in_flight() -> usize {
    4
}
fn default_circuit_failure_rate() -> f64 {
    0.5
}
fn default_circuit_min_requests() -> u32 {
    10
}
fn default_circuit_window_secs() -> u64 {
    10
}
fn default_circuit_open_max_secs() -> u64 {
    5
}
fn default_circuit_probes() -> u32 {
    3
}
fn default_max_waiting_in_place() -> usize {
    8
}
fn default_max_in_flight() -> usize {
    32
}
fn default_shutdown_grace_secs() -> u64 {
    30
}
fn default_report_poll_interval_secs() -> u64 {
    60
}
fn yes() -> bool {
    true
}
fn default_exchange() -> String {
    "kurier.submissions".into()
}
fn default_queue() -> String {
    "kurier.intake".into()
}
fn default_receipts_exchange() -> String {
    "kurier.receipts".into()
}
fn default_prefetch() -> u16 {
    64
}
fn default_reconnect_max_secs() -> u64 {
    10
}
fn default_database_url() -> String {
    "sqlite://kurier.db".into()
}
fn default_db_connections() -> u32 {
    8
}
fn default_admin_listen() -> String {
    "127.0.0.1:9090".into()
}
fn default_max_attachment_bytes() -> u64 {
    7_500_000
}
fn default_max_attachments() -> usize {
    20
}
fn default_forbidden_document_types() -> Vec<String> {
    vec![
        "personalausweis".into(),
        "reisepass".into(),
        "aufenthaltstitel".into(),
    ]
}
fn default_initial_delay_ms() -> u64 {
    // Short: the circuit, not the backoff, protects an authority that is
    // down; a refusal here and there is retried soon (rate.rs, flaky_20).
    200
}
fn default_multiplier() -> f32 {
    2.0
}
fn default_max_delay_ms() -> u64 {
    60_000
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_sender_id() -> String {
    "kurier".into()
}
fn default_sender_name() -> String {
    "Kurier Antragsvermittlung".into()
}

impl Config {
    /// Read and parse the file; a syntax or type error names its line.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        config.resolve_paths();
        Ok(config)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: describe_toml_error(text, &e),
        })?;
        config.source = path.to_path_buf();
        config
            .amqp
            .one_way_to_rabbitmq(text)
            .map_err(|message| ConfigError::Parse {
                path: path.display().to_string(),
                message,
            })?;
        Ok(config)
    }

    fn resolve_paths(&mut self) {
        let base = self
            .source
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for d in &mut self.destinations {
            d.ca_file.as_mut().map(resolve);
            d.client_cert_file.as_mut().map(resolve);
            d.client_key_file.as_mut().map(resolve);
        }
        self.admin.token_file.as_mut().map(resolve);
        self.amqp.ca_file.as_mut().map(resolve);
        self.amqp.client_cert_file.as_mut().map(resolve);
        self.amqp.client_key_file.as_mut().map(resolve);
        self.admin.tls_cert_file.as_mut().map(resolve);
        self.admin.tls_key_file.as_mut().map(resolve);
        resolve(&mut self.vault.key_file);
        self.vault.previous_key_files.iter_mut().for_each(resolve);
        self.schemas_dir.as_mut().map(resolve);
        self.xsd_dir.as_mut().map(resolve);
        // A relative SQLite file is relative to the configuration file too,
        // so that `kurier receipts list` finds the broker's database from
        // any working directory.
        if let Some(file) = self.database.url.strip_prefix("sqlite://")
            && !file.starts_with('/')
            && !file.starts_with(':')
        {
            let (file, query) = file
                .split_once('?')
                .map_or((file, None), |(f, q)| (f, Some(q)));
            let mut url = format!("sqlite://{}", base.join(file).display());
            if let Some(q) = query {
                url.push('?');
                url.push_str(q);
            }
            self.database.url = url;
        }
    }

    /// The longest time a submission may stay parked: the largest
    /// `max_age_secs` of `[retry]` and every destination's override.
    pub fn longest_max_age_secs(&self) -> u64 {
        self.destinations
            .iter()
            .map(|d| self.retry.with_overrides(&d.retry).max_age_secs)
            .chain([self.retry.max_age_secs])
            .max()
            .unwrap_or(0)
    }

    /// What TOML cannot check: unique ids, known adapters, secure endpoints,
    /// certificate files present. Certificates are parsed by `tls`.
    pub fn check(&self) -> Result<Vec<String>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: self.source.display().to_string(),
            message,
        };
        let mut warnings = Vec::new();
        if self.amqp.prefetch == 0 {
            return Err(invalid("[amqp] prefetch must be at least 1".into()));
        }
        if !(1..=86_400).contains(&self.report_poll_interval_secs) {
            return Err(invalid(
                "report_poll_interval_secs must be between 1 and 86400 (a day)".into(),
            ));
        }
        let nodes = self.amqp.node_urls();
        for (i, url) in nodes.iter().enumerate() {
            // The single `url` keeps its messages; a list says which node.
            let at = if self.amqp.urls.is_none() {
                "[amqp]".to_owned()
            } else {
                format!("[amqp] urls #{} of {}:", i + 1, nodes.len())
            };
            match amqp_url_problem(&self.amqp, url) {
                Some(AmqpProblem::Error(e)) => return Err(invalid(format!("{at} {e}"))),
                Some(AmqpProblem::Warning(w)) => warnings.push(format!("{at} {w}")),
                None => {}
            }
        }
        if self.intake.max_message_bytes == 0
            || self.intake.max_bytes_in_flight < self.intake.max_message_bytes
        {
            return Err(invalid(
                "[intake] max_message_bytes must be at least 1 and at most max_bytes_in_flight"
                    .into(),
            ));
        }
        let db = &self.database.url;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(invalid(
                "[database] url must start with sqlite:// or postgres://".into(),
            ));
        }
        if let Some(problem) = retry_problem(&self.retry) {
            return Err(invalid(format!("[retry] {problem}")));
        }
        let longest_age_days = self.longest_max_age_secs().div_ceil(86_400);
        let floor = longest_age_days.saturating_add(self.dead_letters.retention_days);
        if self.retention.receipts_days < floor {
            return Err(invalid(format!(
                "[retention] receipts_days = {} is shorter than a copy of a submission could still arrive ({floor} days: the longest max_age_secs plus [dead_letters] retention_days); a receipt must outlive it, or a late copy would be sent again",
                self.retention.receipts_days
            )));
        }
        if self.retention.receipts_days > 100 * 366
            || self.retention.audit_days > 100 * 366
            || self.dead_letters.retention_days > 100 * 366
        {
            return Err(invalid(
                "[retention] and [dead_letters] keep at most a hundred years".into(),
            ));
        }
        let mut users = HashSet::new();
        for (i, p) in self.portals.iter().enumerate() {
            let at = format!("[[portals]] #{} (id = {:?})", i + 1, p.id);
            if p.amqp_users.is_empty() {
                return Err(invalid(format!(
                    "{at}: amqp_users must name at least one user"
                )));
            }
            if let Some(u) = p.amqp_users.iter().find(|u| !users.insert(u.as_str())) {
                return Err(invalid(format!(
                    "{at}: AMQP user {u:?} speaks for two portals"
                )));
            }
        }
        warnings.extend(self.check_admin().map_err(|m| invalid(self.at_line(m)))?);
        for (what, file) in self.secret_files() {
            crate::secret_file::check(&what, &file).map_err(invalid)?;
        }
        let mut seen = HashSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let at = format!("[[destinations]] #{} (id = {:?})", i + 1, d.id);
            if !seen.insert(d.id.as_str()) {
                return Err(invalid(format!("{at}: the id is used twice")));
            }
            if let Some(problem) = retry_problem(&self.retry.with_overrides(&d.retry)) {
                return Err(invalid(format!("{at}: [destinations.retry] {problem}")));
            }
            if kurier_adapters::find(&d.adapter).is_none()
                && !kurier_adapters::PLANNED.contains(&d.adapter.as_str())
            {
                let known: Vec<&str> = kurier_adapters::REGISTRY.iter().map(|a| a.name()).collect();
                return Err(invalid(format!(
                    "{at}: unknown adapter {:?}; known adapters: {}",
                    d.adapter,
                    known.join(", ")
                )));
            }
            if kurier_adapters::PLANNED.contains(&d.adapter.as_str()) {
                warnings.push(format!(
                    "{at}: adapter {:?} is not implemented yet; its submissions become transform_failed",
                    d.adapter
                ));
            }
            if !d.xta_precheck.is_empty() && d.transport.as_deref() != Some("xta2") {
                return Err(invalid(format!(
                    "{at}: xta_precheck applies to transport = \"xta2\" only"
                )));
            }
            match d.transport.as_deref() {
                None | Some("https") => {}
                Some("xta2") => {
                    for (key, value) in [
                        ("xta_author", &d.xta_author),
                        ("xta_reader", &d.xta_reader),
                        ("xta_service", &d.xta_service),
                    ] {
                        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                            return Err(invalid(format!("{at}: transport = \"xta2\" needs {key}")));
                        }
                    }
                }
                Some(fit_connect::TRANSPORT) => {
                    warnings
                        .extend(fit_connect::check(d).map_err(|m| invalid(format!("{at}: {m}")))?);
                    // No `endpoint`, no client certificate: the checks below are https's.
                    continue;
                }
                Some(other) => {
                    return Err(invalid(format!(
                        "{at}: unknown transport {other:?}; known: https, xta2, fit-connect"
                    )));
                }
            }
            if let Some(rest) = d.endpoint.strip_prefix("http://") {
                if !d.allow_insecure_http {
                    return Err(invalid(format!(
                        "{at}: endpoint http://{rest} is plaintext; use https:// (or set allow_insecure_http = true for local development only)"
                    )));
                }
                warnings.push(format!(
                    "{at}: plaintext HTTP delivery allowed (development only)"
                ));
            } else if d.endpoint.starts_with("https://") {
                for (key, value) in [
                    ("ca_file", &d.ca_file),
                    ("client_cert_file", &d.client_cert_file),
                    ("client_key_file", &d.client_key_file),
                ] {
                    match value {
                        None => {
                            return Err(invalid(format!(
                                "{at}: {key} is required for https endpoints"
                            )));
                        }
                        Some(p) if !p.is_file() => {
                            return Err(invalid(format!(
                                "{at}: {key} {} does not exist",
                                p.display()
                            )));
                        }
                        Some(_) => {}
                    }
                }
            } else {
                return Err(invalid(format!("{at}: endpoint must be an https:// URL")));
            }
        }
        if self.destinations.is_empty() {
            warnings.push(
                "no [[destinations]] configured: every submission becomes unknown_destination"
                    .into(),
            );
        }
        Ok(warnings)
    }

    /// The `[admin]` rules: TLS or loopback (or the explicit opt-out), both
    /// TLS files present, a probe listener that is an address of its own.
    fn check_admin(&self) -> Result<Vec<String>, String> {
        let admin = &self.admin;
        let mut warnings = Vec::new();
        match admin.transport()? {
            AdminTransport::Tls { cert, key } => {
                for (key_name, file) in [("tls_cert_file", &cert), ("tls_key_file", &key)] {
                    if !file.is_file() {
                        return Err(format!(
                            "[admin] {key_name} {} does not exist",
                            file.display()
                        ));
                    }
                }
            }
            AdminTransport::Plain { warning } => warnings.extend(warning),
            AdminTransport::Off => {}
        }
        if let Some(probe) = admin.probe_listen.as_deref()
            && AdminConfig::enabled(probe)
        {
            let probe = probe.trim();
            if is_loopback(probe).is_none() {
                return Err(format!(
                    "[admin] probe_listen = {probe:?} is not an address; write host:port, e.g. \"0.0.0.0:9091\""
                ));
            }
            if AdminConfig::enabled(&admin.listen) && probe == admin.listen.trim() {
                return Err(format!(
                    "[admin] probe_listen = {probe:?} is the same address as listen; give the probes a port of their own"
                ));
            }
        }
        if AdminConfig::enabled(&admin.listen) && admin.token_file.is_none() {
            warnings.push(
                "[admin] token_file is not set: /api and the console refuse every request (401)"
                    .into(),
            );
        }
        Ok(warnings)
    }

    /// Every file that holds a secret, with the setting that names it.
    pub fn secret_files(&self) -> Vec<(String, PathBuf)> {
        let mut files = Vec::new();
        files.extend(
            self.admin
                .token_file
                .clone()
                .map(|f| ("[admin] token_file".to_owned(), f)),
        );
        files.extend(
            self.admin
                .tls_key_file
                .clone()
                .map(|f| ("[admin] tls_key_file".to_owned(), f)),
        );
        files.extend(
            self.amqp
                .client_key_file
                .clone()
                .map(|f| ("[amqp] client_key_file".to_owned(), f)),
        );
        files.push(("[vault] key_file".to_owned(), self.vault.key_file.clone()));
        for f in &self.vault.previous_key_files {
            files.push(("[vault] previous_key_files".to_owned(), f.clone()));
        }
        for d in &self.destinations {
            if let Some(f) = &d.fit_client_secret_file {
                files.push(("fit_client_secret_file".to_owned(), f.clone()));
            }
            if let Some(f) = &d.client_key_file {
                files.push((
                    format!("[[destinations]] id = {:?}: client_key_file", d.id),
                    f.clone(),
                ));
            }
        }
        files
    }

    /// Prefix a message about `[section] key` with the line of the file
    /// that sets it (when the file says so literally).
    fn at_line(&self, message: String) -> String {
        let Some(rest) = message.strip_prefix('[') else {
            return message;
        };
        let Some((section, after)) = rest.split_once(']') else {
            return message;
        };
        let key: String = after
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let Ok(text) = std::fs::read_to_string(&self.source) else {
            return message;
        };
        match line_of(&text, section, &key) {
            Some(n) => format!("line {n}: {message}"),
            None => message,
        }
    }

    pub fn destination(&self, id: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.id == id)
    }
}

/// The 1-based line that sets `key` in table `[section]`, if written so.
fn line_of(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[') {
            current = name
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            continue;
        }
        if current == section
            && let Some(rest) = line.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return Some(i + 1);
        }
    }
    None
}

/// toml's message already names line and column; keep it and add the line's text.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
            format!("line {line_no}: {message}\n    {line}")
        }
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"

[[destinations]]
id = "sozialamt-koeln"
adapter = "xsozial-hzl"
endpoint = "http://127.0.0.1:8443/antraege"
allow_insecure_http = true
"#;

    /// Why `check` refuses the file `text` (which must parse).
    fn refused(text: &str) -> String {
        Config::parse(text, Path::new("k.toml"))
            .unwrap()
            .check()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_are_the_contract_names() {
        let c = Config::parse(MINIMAL, Path::new("k.toml")).unwrap();
        assert_eq!(c.amqp.exchange, "kurier.submissions");
        assert_eq!(c.amqp.queue, "kurier.intake");
        assert_eq!(c.amqp.receipts_exchange, "kurier.receipts");
        assert_eq!(c.database.url, "sqlite://kurier.db");
        assert_eq!(c.policy.max_attachments, 20);
        assert_eq!(c.policy.max_attachment_bytes, 7_500_000);
        assert!(c.check().unwrap().iter().any(|w| w.contains("plaintext")));
    }

    /// The configuration asks no shape of a destination's id (so neither
    /// does `DestinationId`), only that no two destinations share one.
    #[test]
    fn a_destination_id_may_be_any_text_but_not_used_twice() {
        for id in ["Sozialamt Köln", "amt/1", ""] {
            let file = MINIMAL.replace("\"sozialamt-koeln\"", &format!("{id:?}"));
            let c = Config::parse(&file, Path::new("k.toml")).unwrap();
            assert!(c.check().is_ok(), "{id:?}");
            assert_eq!(c.destinations[0].id, id);
        }
        let twice = format!(
            "{MINIMAL}{}",
            &MINIMAL[MINIMAL.find("[[destinations]]").unwrap()..]
        );
        let err = refused(&twice);
        assert!(
            err.contains("[[destinations]] #2 (id = \"sozialamt-koeln\"): the id is used twice"),
            "{err}"
        );
    }

    /// Found by the fuzz target `config`: `check` accepted a circuit interval
    /// of 2^63-1 seconds, and the destination's first outage then panicked
    /// adding it to the clock in `Circuit::open` ("overflow when adding
    /// duration to instant").
    #[test]
    fn circuit_intervals_beyond_a_day_are_refused_not_a_panic_at_the_first_outage() {
        for key in ["circuit_open_secs", "circuit_open_max_secs"] {
            let bad = MINIMAL.replace(
                "[amqp]",
                &format!("[retry]\n{key} = 9223372036854775807\n\n[amqp]"),
            );
            let err = refused(&bad);
            assert!(err.contains(key), "{err}");
        }
        let ok = MINIMAL.replace("[amqp]", "[retry]\ncircuit_open_max_secs = 86400\n\n[amqp]");
        assert!(
            Config::parse(&ok, Path::new("k.toml"))
                .unwrap()
                .check()
                .is_ok()
        );
    }

    #[test]
    fn an_impossible_retry_policy_names_its_key_and_destination() {
        let bad = format!("{MINIMAL}\n[destinations.retry]\ncircuit_failure_rate = 1.5\n");
        let err = refused(&bad);
        assert!(err.contains("sozialamt-koeln"), "{err}");
        assert!(err.contains("circuit_failure_rate"), "{err}");
        let bad = MINIMAL.replace("[amqp]", "[retry]\ninitial_in_flight = 64\n\n[amqp]");
        let err = refused(&bad);
        assert!(err.contains("[retry] initial_in_flight"), "{err}");
    }

    #[test]
    fn receipts_must_outlive_every_copy_that_could_still_arrive() {
        let text = MINIMAL.replace(
            "[amqp]",
            "[retention]\nreceipts_days = 30\n\n[retry]\nmax_age_secs = 864000\n\n[amqp]",
        );
        let err = refused(&text);
        assert!(err.contains("[retention] receipts_days = 30"), "{err}");
        assert!(err.contains("40 days"), "{err}");
    }

    #[test]
    fn amqp_schemes_are_checked() {
        let with_url = |url: &str| MINIMAL.replace("amqp://guest:guest@127.0.0.1:5672/%2f", url);
        let check = |url: &str| {
            Config::parse(&with_url(url), Path::new("k.toml"))
                .unwrap()
                .check()
        };
        let err = check("http://rabbit:5672/").unwrap_err().to_string();
        assert!(err.contains("http:// is not supported"), "{err}");
        let warnings = check("amqp://kurier:x@rabbit.example:5672/%2f").unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("PLAINTEXT AMQP to rabbit.example")),
            "{warnings:?}"
        );
        for quiet in [
            "amqp://guest:guest@localhost:5672/%2f",
            "amqp://[::1]:5672/%2f",
        ] {
            let warnings = check(quiet).unwrap();
            assert!(
                !warnings.iter().any(|w| w.contains("PLAINTEXT")),
                "{quiet}: {warnings:?}"
            );
        }
        let text = with_url("amqps://rabbit.example:5671/%2f")
            .replace("[amqp]", "[amqp]\nca_file = \"/nonexistent/ca.pem\"");
        let err = refused(&text);
        assert!(
            err.contains("ca_file /nonexistent/ca.pem not found"),
            "{err}"
        );
    }

    #[test]
    fn a_cluster_is_a_list_of_urls_each_checked() {
        let url = "url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"";
        let with = |amqp: &str| MINIMAL.replace(url, amqp);
        let parse = |text: &str| Config::parse(text, Path::new("k.toml"));

        let cluster = parse(&with(
            "urls = [\"amqp://127.0.0.1:5782/%2f\", \"amqp://127.0.0.1:5783/%2f\"]",
        ))
        .unwrap();
        assert_eq!(cluster.amqp.node_urls().len(), 2);
        assert!(cluster.check().is_ok());
        // The single url as before.
        let single = parse(MINIMAL).unwrap();
        assert_eq!(
            single.amqp.node_urls(),
            ["amqp://guest:guest@127.0.0.1:5672/%2f"]
        );

        let both = with(&format!("{url}\nurls = [\"amqp://127.0.0.1:5783/%2f\"]"));
        let err = parse(&both).unwrap_err().to_string();
        let line = line_of(&both, "amqp", "urls").unwrap();
        assert!(
            err.contains(&format!("line {line}: [amqp] sets both url and urls")),
            "{err}"
        );
        let err = parse(&with("urls = []")).unwrap_err().to_string();
        assert!(err.contains("urls is empty"), "{err}");
        let err = parse(&with("prefetch = 8")).unwrap_err().to_string();
        assert!(err.contains("[amqp] url is missing"), "{err}");

        // Every node is checked, and the message says which.
        let err = parse(&with(
            "urls = [\"amqp://127.0.0.1:5782/%2f\", \"http://127.0.0.1:5783/\"]",
        ))
        .unwrap()
        .check()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("[amqp] urls #2 of 2: url scheme http:// is not supported"),
            "{err}"
        );
        let warnings = parse(&with(
            "urls = [\"amqps://rabbit-1.example/%2f\", \"amqp://k:x@rabbit-2.example/%2f\"]",
        ))
        .unwrap()
        .check()
        .unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("urls #2 of 2: PLAINTEXT AMQP to rabbit-2.example")),
            "{warnings:?}"
        );
    }

    #[test]
    fn the_contracts_transport_key_is_accepted_for_https_and_xta2() {
        let with = |t: &str| {
            let text = MINIMAL.replace(
                "allow_insecure_http = true",
                &format!("allow_insecure_http = true\ntransport = \"{t}\""),
            );
            Config::parse(&text, Path::new("k.toml")).unwrap().check()
        };
        assert!(with("https").is_ok());
        let err = with("fit-connect").unwrap_err().to_string();
        assert!(err.contains("needs fit_token_url"), "{err}");
        let err = with("xta2").unwrap_err().to_string();
        assert!(err.contains("needs xta_author"), "{err}");
        assert!(
            with("xta2\"\nxta_author = \"a\"\nxta_reader = \"r\"\nxta_service = \"urn:s").is_ok()
        );
        let err = with("smtp").unwrap_err().to_string();
        assert!(err.contains("unknown transport"), "{err}");
    }

    #[test]
    fn xta_precheck_names_the_operations_and_a_wrong_one_names_its_line() {
        let xta2 = MINIMAL.replace(
            "allow_insecure_http = true",
            "allow_insecure_http = true\ntransport = \"xta2\"\nxta_author = \"a\"\nxta_reader = \"r\"\nxta_service = \"urn:s\"",
        );
        let c = Config::parse(&xta2, Path::new("k.toml")).unwrap();
        assert_eq!(c.destinations[0].xta_precheck, vec![], "off by default");
        let with = |value: &str| {
            Config::parse(
                &format!("{xta2}xta_precheck = {value}\n"),
                Path::new("k.toml"),
            )
        };
        let both = with(r#"["checkAccountActive", "lookupService"]"#).unwrap();
        assert_eq!(
            both.destinations[0].xta_precheck,
            vec![XtaPrecheck::CheckAccountActive, XtaPrecheck::LookupService]
        );
        assert!(both.check().is_ok());
        let err = with(r#"["checkAccountActive", "lookup"]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 14"), "{err}");
        assert!(
            err.contains("lookup") && err.contains("lookupService"),
            "{err}"
        );
        let err = with("true").unwrap_err().to_string();
        assert!(err.contains("line 14"), "{err}");
        // On an https destination it would never run: refused.
        let https = Config::parse(
            &format!("{MINIMAL}xta_precheck = [\"lookupService\"]\n"),
            Path::new("k.toml"),
        )
        .unwrap();
        let err = https.check().unwrap_err().to_string();
        assert!(
            err.contains("xta_precheck applies to transport = \"xta2\" only"),
            "{err}"
        );
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let broken = MINIMAL.replace("adapter = \"xsozial-hzl\"", "adapter = xsozial-hzl");
        let err = Config::parse(&broken, Path::new("k.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 7"), "{err}");
        assert!(err.contains("adapter = xsozial-hzl"), "{err}");
    }

    #[test]
    fn an_unknown_key_names_the_line() {
        let broken = MINIMAL.replace("allow_insecure_http", "allow_insecure_htttp");
        let err = Config::parse(&broken, Path::new("k.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 9"), "{err}");
        assert!(err.contains("allow_insecure_htttp"), "{err}");
    }

    #[test]
    fn plaintext_endpoints_are_refused_unless_allowed() {
        let plain = MINIMAL.replace("allow_insecure_http = true", "");
        let c = Config::parse(&plain, Path::new("k.toml")).unwrap();
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("plaintext"), "{err}");
    }

    #[test]
    fn the_shipped_configurations_parse() {
        for file in [
            "deploy/kurier.example.toml",
            "deploy/local/kurier.local.toml",
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let c = Config::parse(&text, &path).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(!c.destinations.is_empty(), "{file}");
            for d in &c.destinations {
                assert!(
                    kurier_adapters::find(&d.adapter).is_some(),
                    "{file}: adapter {}",
                    d.adapter
                );
            }
        }
    }

    fn admin(keys: &str) -> AdminConfig {
        let text = MINIMAL.replace("[amqp]", &format!("[admin]\n{keys}\n\n[amqp]"));
        Config::parse(&text, Path::new("k.toml")).unwrap().admin
    }

    #[test]
    fn plain_http_is_for_loopback_only_unless_the_operator_opts_out() {
        for listen in [
            "127.0.0.1:9090",
            "127.0.0.2:9090",
            "[::1]:9090",
            "localhost:9090",
        ] {
            let a = admin(&format!("listen = {listen:?}"));
            assert_eq!(
                a.transport(),
                Ok(AdminTransport::Plain { warning: None }),
                "{listen}"
            );
        }
        for listen in [
            "0.0.0.0:9090",
            "10.1.2.3:9090",
            "[::]:9090",
            "kurier.intern:9090",
        ] {
            let err = admin(&format!("listen = {listen:?}"))
                .transport()
                .unwrap_err();
            assert!(
                err.contains("not a loopback address") && err.contains("tls_cert_file"),
                "{err}"
            );
            let opted_out = admin(&format!("listen = {listen:?}\nallow_plaintext = true"));
            assert!(matches!(
                opted_out.transport(),
                Ok(AdminTransport::Plain { warning: Some(_) })
            ));
        }
        let tls =
            admin("listen = \"0.0.0.0:9090\"\ntls_cert_file = \"a.pem\"\ntls_key_file = \"a.key\"");
        assert!(matches!(tls.transport(), Ok(AdminTransport::Tls { .. })));
        let half = admin("listen = \"127.0.0.1:9090\"\ntls_cert_file = \"a.pem\"");
        assert!(half.transport().unwrap_err().contains("tls_key_file"));
        assert_eq!(
            admin("listen = \"off\"").transport(),
            Ok(AdminTransport::Off)
        );
        assert!(admin("listen = \"9090\"").transport().is_err());
    }

    #[test]
    fn an_admin_problem_names_its_line() {
        let text = MINIMAL.replace("[amqp]", "[admin]\nlisten = \"0.0.0.0:9090\"\n\n[amqp]");
        assert_eq!(line_of(&text, "admin", "listen"), Some(3));
        assert_eq!(line_of(&text, "amqp", "listen"), None);
    }

    #[test]
    fn unknown_adapters_are_refused() {
        let c = Config::parse(
            &MINIMAL.replace("xsozial-hzl", "xsozial-kita"),
            Path::new("k.toml"),
        )
        .unwrap();
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("unknown adapter"), "{err}");
    }
}
