//! Certificates over time: when those in a PEM file expire, for `kurier
//! check-config` (warn within 30 days, fail when expired) and the
//! `kurier_certificate_expiry_timestamp_seconds` gauge (destinations; `check-config`
//! also the admin listener's certificate); and the file fingerprints and ticks by
//! which `pipeline::reload` swaps a destination's TLS material on SIGHUP or
//! when its files change (the admin listener's: `operator::admin::listener`). Reads certificate and key files only.

use std::path::Path;

use crate::config::Config;

/// Warn this long before a certificate expires.
pub const WARN_BEFORE_SECS: i64 = 30 * 86_400;

/// The earliest `notAfter` (Unix seconds) of the certificates in a PEM file.
pub fn earliest_expiry(path: &Path) -> Result<i64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut earliest: Option<i64> = None;
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let pem = pem.map_err(|e| format!("{}: not PEM: {e}", path.display()))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let cert = pem
            .parse_x509()
            .map_err(|e| format!("{}: not an X.509 certificate: {e}", path.display()))?;
        let not_after = cert.validity().not_after.timestamp();
        earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
    }
    earliest.ok_or_else(|| format!("{}: contains no certificate", path.display()))
}

/// Expiry of every destination's client certificate and CA: warnings for
/// those expiring within 30 days, errors for expired or unreadable ones.
pub fn check_expiry(config: &Config, now_unix: i64) -> (Vec<String>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for d in &config.destinations {
        for (key, file) in [
            ("client_cert_file", &d.client_cert_file),
            ("ca_file", &d.ca_file),
        ] {
            if let Some(path) = file {
                files.push((format!("destination {:?}", d.id), key, path));
            }
        }
    }
    if let Some(path) = &config.admin.tls_cert_file {
        files.push(("[admin]".to_owned(), "tls_cert_file", path));
    }
    for (owner, key, path) in files {
        let at = format!("{owner}: {key} {}", path.display());
        match earliest_expiry(path) {
            Err(e) => errors.push(format!("{owner}: {e}")),
            Ok(not_after) if not_after <= now_unix => errors.push(format!(
                "{at} expired on {}; install a renewed certificate (Kurier reloads it without a restart)",
                date(not_after)
            )),
            Ok(not_after) if not_after - now_unix < WARN_BEFORE_SECS => warnings.push(format!(
                "{at} expires on {} (in {} days); renew it soon",
                date(not_after),
                (not_after - now_unix) / 86_400
            )),
            Ok(_) => {}
        }
    }
    (warnings, errors)
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(crate::domain::time::format_time)
        .unwrap_or_else(|_| unix.to_string())
}

/// What identifies a version of a file: modification time and length.
pub(crate) type Fingerprint = Vec<Option<(std::time::SystemTime, u64)>>;

pub(crate) fn fingerprint(d: &crate::config::DestinationConfig) -> Fingerprint {
    files_fingerprint([&d.ca_file, &d.client_cert_file, &d.client_key_file].map(Option::as_deref))
}

/// The fingerprint of some files (a missing one counts as `None`).
pub fn files_fingerprint<'a>(files: impl IntoIterator<Item = Option<&'a Path>>) -> Fingerprint {
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(f?).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

/// When to look at certificate files again: every 2 s, and at once on
/// SIGHUP (then everything is reloaded, changed or not).
pub struct Ticks {
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Ticks {
    pub fn new() -> Ticks {
        Ticks {
            #[cfg(unix)]
            hangup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    /// `Some(false)`: look for changed files; `Some(true)`: SIGHUP, reload
    /// all; `None`: shutdown.
    pub async fn next(&mut self, shutdown: &crate::shutdown::Shutdown) -> Option<bool> {
        #[cfg(unix)]
        let signalled = async {
            match self.hangup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<()>();
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(2)) => Some(false),
            () = signalled => Some(true),
            () = shutdown.cancelled() => None,
        }
    }
}

impl Default for Ticks {
    fn default() -> Self {
        Ticks::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn cert_expiring(dir: &Path, name: &str, not_after: time::OffsetDateTime) -> PathBuf {
        let mut params = rcgen::CertificateParams::new(vec!["kurier".into()]).unwrap();
        params.not_before = not_after - time::Duration::days(400);
        params.not_after = not_after;
        let key = rcgen::KeyPair::generate().unwrap();
        let path = dir.join(name);
        std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
        path
    }

    fn config_with(client: &Path, ca: &Path) -> Config {
        let text = format!(
            "[amqp]\nurl = \"amqp://x\"\n[[destinations]]\nid = \"amt\"\nadapter = \"xsozial-hzl\"\n\
             endpoint = \"https://amt.example/\"\nca_file = \"{}\"\nclient_cert_file = \"{}\"\n\
             client_key_file = \"k\"\n",
            ca.display(),
            client.display()
        );
        Config::parse(&text, Path::new("k.toml")).unwrap()
    }

    #[test]
    fn expired_certificates_fail_and_expiring_ones_warn() {
        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc();
        let fine = cert_expiring(dir.path(), "fine.pem", now + time::Duration::days(300));
        let soon = cert_expiring(dir.path(), "soon.pem", now + time::Duration::days(10));
        let gone = cert_expiring(dir.path(), "gone.pem", now - time::Duration::days(1));
        let unix = now.unix_timestamp();

        let (warnings, errors) = check_expiry(&config_with(&fine, &fine), unix);
        assert!(warnings.is_empty() && errors.is_empty());

        let (warnings, errors) = check_expiry(&config_with(&soon, &fine), unix);
        assert!(errors.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("client_cert_file") && warnings[0].contains("renew"));

        let (_, errors) = check_expiry(&config_with(&fine, &gone), unix);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("ca_file") && errors[0].contains("expired"));
    }
}
