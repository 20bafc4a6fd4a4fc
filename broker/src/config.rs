//! The configuration file (TOML, CONTRACT.md § 6): what an operator writes.
//!
//! Every field has a doc comment and a default where one is sane. Parsing
//! reports the file and line of a broken entry; [`Config::check`] goes on to
//! the things TOML cannot see (unknown adapters, plaintext endpoints, missing
//! certificate files). Relative paths are resolved against the directory of
//! the configuration file. Reads files; touches nothing else.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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

#[derive(Debug, Clone, Deserialize)]
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
    /// Seconds that in-flight submissions get to finish after SIGTERM.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Where the file was read from (for messages and relative paths).
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// AMQP URI of RabbitMQ, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
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

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin HTTP endpoint (`/healthz`, `/readyz`, `/metrics`, `/api`).
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// File holding the bearer token for `/api/*`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            token_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// Days a dead letter keeps its encrypted payload for replay; then it is
    /// purged (the receipt keeps the metadata).
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
    } else {
        return None;
    };
    Some(problem.to_owned())
}

/// Retry policy. In a destination every key is optional and falls back to
/// the top-level `[retry]`.
#[derive(Debug, Clone, Default, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// The receiving authority's id: the envelope's `destination`.
    pub id: String,
    /// Name of the adapter that renders this authority's XML.
    pub adapter: String,
    /// HTTPS URL the document is POSTed to.
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
    500
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

    pub fn destination(&self, id: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.id == id)
    }
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
            let err = Config::parse(&bad, Path::new("k.toml"))
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
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
        let err = Config::parse(&bad, Path::new("k.toml"))
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("sozialamt-koeln"), "{err}");
        assert!(err.contains("circuit_failure_rate"), "{err}");
        let bad = MINIMAL.replace("[amqp]", "[retry]\ninitial_in_flight = 64\n\n[amqp]");
        let err = Config::parse(&bad, Path::new("k.toml"))
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("[retry] initial_in_flight"), "{err}");
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
