//! What start-up checks and builds from the configuration before it touches
//! the database or RabbitMQ. `kurier run` and `kurier check-config` both call
//! [`check`], so the check cannot pass a file that start-up refuses.

use crate::config::{AdminTransport, Config, ConfigError};
use crate::delivery::tls::TlsError;
use crate::operator::admin::tokens;
use crate::pipeline::route::Routes;
use crate::pipeline::validate::{SchemaLoadError, Schemas};
use crate::xsd::{self, XsdError};

/// The configuration checked, and the parts of the pipeline built from it.
pub struct Preflight {
    /// Worth a look, but nothing is wrong (a plain `amqp://` off loopback,
    /// a certificate that expires within 30 days).
    pub warnings: Vec<String>,
    /// Wrong, but in files the running broker reloads (an expired
    /// certificate, a malformed token file): `run` starts and logs them so
    /// the other destinations keep flowing while the file is fixed;
    /// `check-config` fails on them.
    pub reloadable_problems: Vec<String>,
    pub schemas: Schemas,
    pub routes: Routes,
    pub xsd: xsd::Validator,
}

/// Why the configuration cannot start a broker.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Schemas(#[from] SchemaLoadError),
    #[error("building destinations: {0}")]
    Routes(crate::pipeline::route::RouteError),
    #[error(transparent)]
    Xsd(#[from] XsdError),
    #[error("[admin] {0}")]
    Admin(String),
    #[error("[admin] TLS listener: {0}")]
    AdminTls(TlsError),
}

/// Check everything start-up checks, at `now_unix` (certificate expiry):
/// the file's rules, the form schemas, every destination's TLS client (CA,
/// certificate and key read, parsed and matched), every adapter's XSD
/// (compiled), the admin listener's certificate and token file.
pub fn check(config: &Config, now_unix: i64) -> Result<Preflight, PreflightError> {
    let mut warnings = config.check()?;
    let schemas = match &config.schemas_dir {
        Some(dir) => Schemas::load_dir(dir)?,
        None => Schemas::builtin()?,
    };
    let routes = Routes::build(config).map_err(PreflightError::Routes)?;
    let xsd = xsd::Validator::start(config.xsd_dir.as_deref())?;
    if let AdminTransport::Tls { cert, key } =
        config.admin.transport().map_err(PreflightError::Admin)?
    {
        crate::delivery::tls::server_config(&cert, &key).map_err(PreflightError::AdminTls)?;
    }
    let (expiring, mut reloadable_problems) =
        crate::delivery::certs::check_expiry(config, now_unix);
    warnings.extend(expiring);
    if let Some(file) = &config.admin.token_file
        && let Err(problems) = tokens::check_file(file)
    {
        reloadable_problems.push(problems);
    }
    Ok(Preflight {
        warnings,
        reloadable_problems,
        schemas,
        routes,
        xsd,
    })
}
