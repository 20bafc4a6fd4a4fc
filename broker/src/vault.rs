//! Encryption at rest and crypto-shredding.
//!
//! Every payload that has to rest (a parked submission, a dead letter kept for
//! replay) is sealed with AES-256-GCM under a fresh random data key; the data
//! key is sealed under the master key from `[vault] key_file`. The submission
//! id is the associated data, so a sealed payload cannot be moved to another
//! row. Both sealed blobs live in the same row: deleting the row destroys the
//! data key, and with it every copy of the payload in WAL files or backups
//! (which hold only ciphertext). Master-key rotation: a new `key_file`, the
//! old one listed in `previous_key_files` until nothing sealed under it is left.
//!
//! Reads the key files (creating the first one if missing, mode 0600) and
//! refuses one that others may read ([`crate::secret_file`]); holds keys
//! only in memory.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};

use crate::config::VaultConfig;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error(
        "vault: sealed with master key {0}, which is not configured (add it to previous_key_files)"
    )]
    UnknownKey(String),
    #[error("vault: sealed data is damaged or does not belong to this submission")]
    Damaged,
    #[error("vault: the random number generator failed")]
    Random,
    /// The key file may be read by others.
    #[error("{0}")]
    Exposed(String),
}

/// A payload at rest: which master key, the sealed data key, the sealed payload.
/// Each blob is `nonce ‖ ciphertext ‖ tag`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub sealed_key: Vec<u8>,
    pub sealed_payload: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("bytes", &self.sealed_payload.len())
            .finish()
    }
}

struct MasterKey {
    id: String,
    key: RandomizedNonceKey,
}

pub struct Vault {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Vault {
    /// Load the master keys; the current one is created if its file is missing.
    pub fn load(config: &VaultConfig) -> Result<Vault, VaultError> {
        if !config.key_file.exists() {
            create_key_file(&config.key_file)?;
            tracing::info!(key_file = %config.key_file.display(), "created a new vault master key");
        }
        let current = read_key(&config.key_file)?;
        let previous = config
            .previous_key_files
            .iter()
            .map(|p| read_key(p))
            .collect::<Result<_, _>>()?;
        Ok(Vault { current, previous })
    }

    pub fn seal(&self, submission_id: &str, payload: &[u8]) -> Result<Sealed, VaultError> {
        let mut data_key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut data_key).map_err(|_| VaultError::Random)?;
        let key = RandomizedNonceKey::new(&AES_256_GCM, &data_key).map_err(|_| VaultError::Random);
        let sealed_key = seal_with(&self.current.key, submission_id, &data_key);
        data_key.fill(0);
        let key = key?;
        Ok(Sealed {
            key_id: self.current.id.clone(),
            sealed_key: sealed_key?,
            sealed_payload: seal_with(&key, submission_id, payload)?,
        })
    }

    pub fn open(&self, submission_id: &str, sealed: &Sealed) -> Result<Vec<u8>, VaultError> {
        let master = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| VaultError::UnknownKey(sealed.key_id.clone()))?;
        let mut data_key = open_with(&master.key, submission_id, &sealed.sealed_key)?;
        let key = RandomizedNonceKey::new(&AES_256_GCM, &data_key).map_err(|_| VaultError::Damaged);
        data_key.fill(0);
        open_with(&key?, submission_id, &sealed.sealed_payload)
    }

    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }
}

fn seal_with(key: &RandomizedNonceKey, aad: &str, plain: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut in_out = plain.to_vec();
    let nonce = key
        .seal_in_place_append_tag(Aad::from(aad.as_bytes()), &mut in_out)
        .map_err(|_| VaultError::Random)?;
    let mut out = Vec::with_capacity(NONCE_LEN + in_out.len());
    out.extend_from_slice(nonce.as_ref());
    out.extend_from_slice(&in_out);
    Ok(out)
}

fn open_with(key: &RandomizedNonceKey, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
    if sealed.len() < NONCE_LEN {
        return Err(VaultError::Damaged);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Damaged)?;
    let mut in_out = body.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut in_out)
        .map_err(|_| VaultError::Damaged)?;
    Ok(plain.to_vec())
}

fn read_key(path: &Path) -> Result<MasterKey, VaultError> {
    let err = |message: String| VaultError::KeyFile {
        path: path.display().to_string(),
        message,
    };
    crate::secret_file::check("[vault] key file", path).map_err(VaultError::Exposed)?;
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let hex = text.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err("must hold 64 hex characters (32 bytes)".into()));
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| err(e.to_string()))?;
    }
    // The id names the key without revealing it.
    let id = crate::policy::sha256_hex(&bytes)[..16].to_owned();
    let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes).map_err(|_| err("unusable key".into()));
    bytes.fill(0);
    Ok(MasterKey { id, key: key? })
}

/// Write a new random master key (hex) readable by the owner only. Several
/// instances may start at once: the key is written to a temporary file and
/// linked into place, which fails if another instance was first; its key then
/// counts, and nobody ever reads a half-written file.
pub fn create_key_file(path: &Path) -> Result<(), VaultError> {
    let err = |message: String| VaultError::KeyFile {
        path: path.display().to_string(),
        message,
    };
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| VaultError::Random)?;
    let hex = crate::policy::hex(&bytes);
    bytes.fill(0);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let temp = dir.join(format!(".vault-key-{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| {
        use std::io::Write;
        let mut file = options.open(&temp)?;
        file.write_all(format!("{hex}\n").as_bytes())?;
        file.sync_all()
    })();
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(err(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault_in(dir: &Path) -> Vault {
        Vault::load(&VaultConfig {
            key_file: dir.join("k1"),
            previous_key_files: vec![],
        })
        .unwrap()
    }

    #[test]
    fn a_sealed_payload_opens_only_for_its_submission() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault_in(dir.path());
        let sealed = vault.seal("id-1", b"Anna Mueller, 1961-03-14").unwrap();
        assert!(!sealed.sealed_payload.windows(5).any(|w| w == &b"Muell"[..]));
        assert_eq!(
            vault.open("id-1", &sealed).unwrap(),
            b"Anna Mueller, 1961-03-14"
        );
        assert!(matches!(
            vault.open("id-2", &sealed),
            Err(VaultError::Damaged)
        ));
        let mut tampered = sealed.clone();
        let last = tampered.sealed_payload.len() - 1;
        tampered.sealed_payload[last] ^= 1;
        assert!(matches!(
            vault.open("id-1", &tampered),
            Err(VaultError::Damaged)
        ));
    }

    #[test]
    fn rotation_keeps_old_payloads_readable() {
        let dir = tempfile::tempdir().unwrap();
        let old = vault_in(dir.path());
        let sealed = old.seal("id-1", b"payload").unwrap();
        let rotated = Vault::load(&VaultConfig {
            key_file: dir.path().join("k2"),
            previous_key_files: vec![dir.path().join("k1")],
        })
        .unwrap();
        assert_ne!(rotated.current_key_id(), old.current_key_id());
        assert_eq!(rotated.open("id-1", &sealed).unwrap(), b"payload");
        let without_old = Vault::load(&VaultConfig {
            key_file: dir.path().join("k2"),
            previous_key_files: vec![],
        })
        .unwrap();
        assert!(matches!(
            without_old.open("id-1", &sealed),
            Err(VaultError::UnknownKey(_))
        ));
    }

    #[test]
    fn instances_starting_together_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.key");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || create_key_file(&path))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let config = VaultConfig {
            key_file: path.clone(),
            previous_key_files: vec![],
        };
        let a = Vault::load(&config).unwrap();
        let sealed = a.seal("id", b"x").unwrap();
        assert_eq!(
            Vault::load(&config).unwrap().open("id", &sealed).unwrap(),
            b"x"
        );
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
    }

    #[test]
    fn a_bad_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad"), "not hex").unwrap();
        owner_only(&dir.path().join("bad"));
        let err = Vault::load(&VaultConfig {
            key_file: dir.path().join("bad"),
            previous_key_files: vec![],
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("64 hex characters"), "{err}");
    }

    #[cfg(unix)]
    fn owner_only(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_that_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("vault.key");
        create_key_file(&key).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "created owner-only");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Vault::load(&VaultConfig {
            key_file: key.clone(),
            previous_key_files: vec![],
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains(&key.display().to_string()), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
    }
}
