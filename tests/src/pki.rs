//! Test certificates made with rcgen: one CA for the authority's server
//! certificate and one for Kurier's client certificate, as a real set-up has
//! (the authority's PKI and the relay's PKI are not the same). Also "rogue"
//! material from CAs nobody trusts, for the negative TLS tests.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A CA that can sign leaf certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> anyhow::Result<Ca> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Ca { issuer })
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self) -> anyhow::Result<Leaf> {
        self.leaf(
            "Test-Fachverfahren",
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    pub fn client(&self, name: &str) -> anyhow::Result<Leaf> {
        self.leaf(name, vec![], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(
        &self,
        name: &str,
        sans: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
    ) -> anyhow::Result<Leaf> {
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The files of a local set-up, as `gen-certs` writes them.
pub struct PkiFiles {
    pub authority_ca: PathBuf,
    pub authority_cert: PathBuf,
    pub authority_key: PathBuf,
    pub kurier_ca: PathBuf,
    pub kurier_cert: PathBuf,
    pub kurier_key: PathBuf,
}

/// Generate both PKIs into `dir`.
pub fn write_pki(dir: &Path) -> anyhow::Result<PkiFiles> {
    std::fs::create_dir_all(dir)?;
    let authority_ca = Ca::new("Test-Behoerde CA")?;
    let kurier_ca = Ca::new("Kurier Client CA")?;
    let server = authority_ca.server()?;
    let client = kurier_ca.client("kurier")?;
    let files = PkiFiles {
        authority_ca: dir.join("authority-ca.pem"),
        authority_cert: dir.join("authority.pem"),
        authority_key: dir.join("authority.key"),
        kurier_ca: dir.join("kurier-ca.pem"),
        kurier_cert: dir.join("kurier.pem"),
        kurier_key: dir.join("kurier.key"),
    };
    std::fs::write(&files.authority_ca, authority_ca.pem())?;
    std::fs::write(&files.authority_cert, &server.cert_pem)?;
    write_key(&files.authority_key, &server.key_pem)?;
    std::fs::write(&files.kurier_ca, kurier_ca.pem())?;
    std::fs::write(&files.kurier_cert, &client.cert_pem)?;
    write_key(&files.kurier_key, &client.key_pem)?;
    Ok(files)
}

/// Write a file that holds a secret (a key, a token file) readable by its
/// owner only, from the first byte on: Kurier refuses such files when
/// others may read them.
pub fn write_key(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its mode on open: narrow it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    options.open(path)?.write_all(pem.as_bytes())?;
    Ok(())
}
