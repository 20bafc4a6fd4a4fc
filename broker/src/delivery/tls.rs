//! TLS material of a destination: the CA that the authority's server
//! certificate must chain to, and Kurier's client certificate and key.
//!
//! Builds one rustls `ClientConfig` per destination (TLS 1.2 and 1.3 only,
//! aws-lc-rs as the one crypto provider, server name verified by webpki).
//! Also the admin listener's server configuration. Reads the PEM files named
//! in the configuration and refuses private keys that others may read;
//! touches nothing else.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {message}")]
    File {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("certificate {cert} and key {key} do not belong together or are unusable: {message}")]
    KeyPair {
        cert: String,
        key: String,
        message: String,
    },
    #[error("TLS set-up failed: {0}")]
    Setup(String),
    /// A key file that others may read.
    #[error("{0}")]
    Exposed(String),
}

/// The process-wide crypto provider. Installed once at start; every rustls
/// user in the tree (reqwest, sqlx) then agrees on it.
pub fn install_crypto_provider() {
    // Err means another part already installed one: that is the same provider,
    // since the tree contains only aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::File {
        what,
        path: path.display().to_string(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("contains no PEM certificate".into()));
    }
    Ok(certs)
}

/// A private key (PEM) that only its owner may read: one that others can
/// read is refused (`crate::secret_file`).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    load_private_key("client_key_file", path)
}

pub fn load_private_key(
    what: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    crate::secret_file::check(what, path).map_err(TlsError::Exposed)?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        what,
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// rustls server configuration of the admin listener (TLS 1.2 and 1.3, no
/// client certificates: operators authenticate with their bearer token).
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let chain = load_certs("[admin] tls_cert_file", cert_file)?;
    let key = load_private_key("[admin] tls_key_file", key_file)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::KeyPair {
            cert: cert_file.display().to_string(),
            key: key_file.display().to_string(),
            message: e.to_string(),
        })?;
    // The admin endpoint speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// rustls client configuration for one destination.
pub fn client_config(
    ca_file: &Path,
    client_cert_file: &Path,
    client_key_file: &Path,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs("ca_file", ca_file)? {
        roots.add(cert).map_err(|e| TlsError::File {
            what: "ca_file",
            path: ca_file.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let chain = load_certs("client_cert_file", client_cert_file)?;
    let key = load_key(client_key_file)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| TlsError::KeyPair {
            cert: client_cert_file.display().to_string(),
            key: client_key_file.display().to_string(),
            message: e.to_string(),
        })?;
    // With a preconfigured TLS config reqwest does not set ALPN itself.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
