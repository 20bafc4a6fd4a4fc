//! Encryption at rest and crypto-shredding.
//!
//! Every payload that has to rest (a parked submission, a dead letter kept for
//! replay) is sealed with AES-256-GCM under a fresh random data key. The data
//! key is wrapped by the key-encryption key (KEK) of the day's *epoch* (one
//! per UTC day, `key_id` `epoch:2026-12-02`); each epoch's KEK is wrapped by
//! the master key from `[vault] key_file` and kept in the `vault_epochs`
//! table (see [`crate::store::shred`]). The submission id is the associated data of
//! the payload and of its data key, so a sealed payload cannot be moved to
//! another row; the epoch is that of its wrapped KEK.
//!
//! Erasure is twofold. Deleting a row deletes its wrapped data key; and once
//! nothing sealed in an epoch can still be needed, the epoch's KEK itself is
//! destroyed. Only then is every copy of those payloads in WAL files and
//! backups unreadable, even to someone who also holds the master key.
//! Payloads sealed before epochs existed (`key_id` = a master key id, the
//! data key wrapped by the master key itself) still open.
//!
//! The KEKs live in an in-memory cache, so [`Vault::seal`] and
//! [`Vault::open`] stay synchronous; [`crate::store::shred`] fills and trims it.
//! Raw key bytes (master keys, KEKs, data keys) are zeroized after use; the
//! expanded keys live in aws-lc AEAD contexts, whose memory aws-lc cleanses
//! when they are freed (`OPENSSL_free`). Reads the key files (creating the
//! first one if missing, mode 0600) and refuses one that others may read
//! (`crate::secret_file`); holds keys only in memory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;

use aws_lc_rs::aead::{AES_256_GCM, Aad, MAX_TAG_LEN, NONCE_LEN, Nonce, RandomizedNonceKey};
use zeroize::Zeroizing;

use crate::config::VaultConfig;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error(
        "vault: sealed with master key {0}, which is not configured (add it to previous_key_files)"
    )]
    UnknownKey(String),
    #[error(
        "vault: no key for epoch {0} (not in vault_epochs, or not loaded); the database and the vault key must belong to the same installation"
    )]
    UnknownEpoch(String),
    #[error(
        "vault: the key of epoch {0} was destroyed (crypto-shredded); what was sealed in it cannot be opened by anyone"
    )]
    Shredded(String),
    #[error(
        "vault: no epoch key for today is loaded (the scheduler creates it; is the database reachable?)"
    )]
    NoCurrentEpoch,
    #[error("vault: {0:?} is not an epoch (YYYY-MM-DD)")]
    BadEpoch(String),
    #[error("vault: sealed data is damaged or does not belong to this submission")]
    Damaged,
    #[error("vault: the random number generator failed")]
    Random,
    /// The key file may be read by others.
    #[error("{0}")]
    Exposed(String),
}

/// `key_id` prefix of payloads whose data key is wrapped by an epoch's KEK.
pub const EPOCH_KEY_PREFIX: &str = "epoch:";

/// The epoch (UTC day, `YYYY-MM-DD`) of a point in time.
pub fn epoch_of(at: time::OffsetDateTime) -> String {
    epoch_of_date(at.to_offset(time::UtcOffset::UTC).date())
}

/// The epoch of a date.
pub fn epoch_of_date(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The date an epoch names.
pub fn epoch_date(epoch: &str) -> Result<time::Date, VaultError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(epoch, &format).map_err(|_| VaultError::BadEpoch(epoch.to_owned()))
}

/// The `key_id` of payloads sealed in `epoch`.
pub fn epoch_key_id(epoch: &str) -> String {
    format!("{EPOCH_KEY_PREFIX}{epoch}")
}

/// A payload at rest: which key wraps its data key (an epoch, or a master
/// key for payloads sealed before epochs), the sealed data key, the sealed
/// payload. Each blob is `nonce ‖ ciphertext ‖ tag`.
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

impl Sealed {
    /// The epoch whose KEK wraps the data key (`None`: sealed under a
    /// master key, before epochs).
    pub fn epoch(&self) -> Option<&str> {
        self.key_id.strip_prefix(EPOCH_KEY_PREFIX)
    }
}

struct MasterKey {
    id: String,
    key: RandomizedNonceKey,
}

/// An epoch's KEK as the cache holds it.
enum EpochKey {
    Live(RandomizedNonceKey),
    /// Destroyed in the database: remembered so that `open` says so.
    Destroyed,
}

/// An epoch's KEK wrapped by a master key, as `vault_epochs` stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKek {
    pub master_key_id: String,
    pub wrapped_kek: Vec<u8>,
}

impl std::fmt::Debug for WrappedKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedKek")
            .field("master_key_id", &self.master_key_id)
            .finish_non_exhaustive()
    }
}

pub struct Vault {
    current: MasterKey,
    previous: Vec<MasterKey>,
    epochs: RwLock<BTreeMap<String, EpochKey>>,
}

impl Vault {
    /// Load the master keys; the current one is created if its file is
    /// missing. No epoch key is loaded yet ([`crate::store::shred::start`]).
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
        Ok(Vault {
            current,
            previous,
            epochs: RwLock::new(BTreeMap::new()),
        })
    }

    /// Seal under today's epoch (UTC). Right after midnight, before the
    /// scheduler has loaded today's key, yesterday's serves: it is
    /// destroyed only days after its end.
    pub fn seal(&self, submission_id: &str, payload: &[u8]) -> Result<Sealed, VaultError> {
        let now = time::OffsetDateTime::now_utc();
        let today = epoch_of(now);
        let yesterday = epoch_of(now - time::Duration::days(1));
        let epochs = self.read_epochs();
        for epoch in [&today, &yesterday] {
            if let Some(EpochKey::Live(kek)) = epochs.get(epoch.as_str()) {
                return seal_under(kek, epoch_key_id(epoch), submission_id, payload);
            }
        }
        Err(VaultError::NoCurrentEpoch)
    }

    /// Seal under a given epoch's KEK (which must be loaded). [`Vault::seal`]
    /// picks today's; tests use this to make payloads of days long past.
    pub fn seal_in_epoch(
        &self,
        epoch: &str,
        submission_id: &str,
        payload: &[u8],
    ) -> Result<Sealed, VaultError> {
        match self.read_epochs().get(epoch) {
            Some(EpochKey::Live(kek)) => {
                seal_under(kek, epoch_key_id(epoch), submission_id, payload)
            }
            Some(EpochKey::Destroyed) => Err(VaultError::Shredded(epoch.to_owned())),
            None => Err(VaultError::UnknownEpoch(epoch.to_owned())),
        }
    }

    pub fn open(&self, submission_id: &str, sealed: &Sealed) -> Result<Vec<u8>, VaultError> {
        let data_key = match sealed.epoch() {
            Some(epoch) => match self.read_epochs().get(epoch) {
                Some(EpochKey::Live(kek)) => {
                    Zeroizing::new(open_with(kek, submission_id, &sealed.sealed_key)?)
                }
                Some(EpochKey::Destroyed) => return Err(VaultError::Shredded(epoch.to_owned())),
                None => return Err(VaultError::UnknownEpoch(epoch.to_owned())),
            },
            // Sealed before epochs: the master key wraps the data key.
            None => {
                let master = self
                    .master(&sealed.key_id)
                    .ok_or_else(|| VaultError::UnknownKey(sealed.key_id.clone()))?;
                Zeroizing::new(open_with(&master.key, submission_id, &sealed.sealed_key)?)
            }
        };
        let key =
            RandomizedNonceKey::new(&AES_256_GCM, &data_key).map_err(|_| VaultError::Damaged)?;
        drop(data_key);
        open_with(&key, submission_id, &sealed.sealed_payload)
    }

    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// A new random KEK for `epoch`, wrapped by the current master key (to
    /// be stored; [`Vault::install`] the row that ends up in the database).
    pub fn new_epoch_key(&self, epoch: &str) -> Result<WrappedKek, VaultError> {
        epoch_date(epoch)?;
        let mut kek = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(kek.as_mut()).map_err(|_| VaultError::Random)?;
        Ok(WrappedKek {
            master_key_id: self.current.id.clone(),
            wrapped_kek: seal_with(&self.current.key, &kek_aad(epoch), kek.as_ref())?,
        })
    }

    /// Put an epoch's KEK, as stored, into the cache (`None`: destroyed).
    pub fn install(&self, epoch: &str, wrapped: Option<&WrappedKek>) -> Result<(), VaultError> {
        let key = match wrapped {
            Some(w) => EpochKey::Live(self.unwrap_kek(epoch, w)?),
            None => EpochKey::Destroyed,
        };
        self.write_epochs().insert(epoch.to_owned(), key);
        Ok(())
    }

    /// Drop an epoch's KEK from the cache for good (it was destroyed); the
    /// memory of the key is cleansed as it is freed.
    pub fn forget(&self, epoch: &str) {
        self.write_epochs()
            .insert(epoch.to_owned(), EpochKey::Destroyed);
    }

    /// Is the epoch's KEK in the cache (live)?
    pub fn has_epoch(&self, epoch: &str) -> bool {
        matches!(self.read_epochs().get(epoch), Some(EpochKey::Live(_)))
    }

    /// The epochs whose KEK is in the cache, oldest first.
    pub fn live_epochs(&self) -> Vec<String> {
        self.read_epochs()
            .iter()
            .filter(|(_, k)| matches!(k, EpochKey::Live(_)))
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// The KEK of `epoch` wrapped by the current master key, if `wrapped`
    /// uses another one (`None`: nothing to do).
    pub fn rewrap(
        &self,
        epoch: &str,
        wrapped: &WrappedKek,
    ) -> Result<Option<WrappedKek>, VaultError> {
        if wrapped.master_key_id == self.current.id {
            return Ok(None);
        }
        let kek = self.unwrap_kek_bytes(epoch, wrapped)?;
        Ok(Some(WrappedKek {
            master_key_id: self.current.id.clone(),
            wrapped_kek: seal_with(&self.current.key, &kek_aad(epoch), &kek)?,
        }))
    }

    fn unwrap_kek(
        &self,
        epoch: &str,
        wrapped: &WrappedKek,
    ) -> Result<RandomizedNonceKey, VaultError> {
        let kek = self.unwrap_kek_bytes(epoch, wrapped)?;
        RandomizedNonceKey::new(&AES_256_GCM, &kek).map_err(|_| VaultError::Damaged)
    }

    fn unwrap_kek_bytes(
        &self,
        epoch: &str,
        wrapped: &WrappedKek,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let master = self
            .master(&wrapped.master_key_id)
            .ok_or_else(|| VaultError::UnknownKey(wrapped.master_key_id.clone()))?;
        Ok(Zeroizing::new(open_with(
            &master.key,
            &kek_aad(epoch),
            &wrapped.wrapped_kek,
        )?))
    }

    fn master(&self, id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }

    // A panic while the lock was held cannot leave the map half-changed
    // (every change is one insert), so a poisoned lock is still good.
    fn read_epochs(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, EpochKey>> {
        self.epochs.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_epochs(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, EpochKey>> {
        self.epochs.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The associated data of a wrapped KEK: a KEK cannot be moved to another
/// epoch's row.
fn kek_aad(epoch: &str) -> String {
    format!("kurier-kek:{epoch}")
}

/// A fresh data key seals the payload; `kek` wraps the data key.
fn seal_under(
    kek: &RandomizedNonceKey,
    key_id: String,
    submission_id: &str,
    payload: &[u8],
) -> Result<Sealed, VaultError> {
    let mut data_key = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(data_key.as_mut()).map_err(|_| VaultError::Random)?;
    let key =
        RandomizedNonceKey::new(&AES_256_GCM, data_key.as_ref()).map_err(|_| VaultError::Random)?;
    let sealed_key = seal_with(kek, submission_id, data_key.as_ref())?;
    drop(data_key);
    Ok(Sealed {
        key_id,
        sealed_key,
        sealed_payload: seal_with(&key, submission_id, payload)?,
    })
}

/// `nonce ‖ ciphertext ‖ tag`, encrypted in its final buffer: no copy of
/// the plaintext is left in a freed allocation.
fn seal_with(key: &RandomizedNonceKey, aad: &str, plain: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut out = vec![0u8; NONCE_LEN + plain.len() + MAX_TAG_LEN];
    let body = NONCE_LEN..NONCE_LEN + plain.len();
    out[body.clone()].copy_from_slice(plain);
    let (nonce, tag) = key
        .seal_in_place_separate_tag(Aad::from(aad.as_bytes()), &mut out[body.clone()])
        .map_err(|_| VaultError::Random)?;
    let tag = tag.as_ref();
    out[..NONCE_LEN].copy_from_slice(nonce.as_ref());
    out.truncate(body.end + tag.len());
    out[body.end..].copy_from_slice(tag);
    Ok(out)
}

fn open_with(key: &RandomizedNonceKey, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
    if sealed.len() < NONCE_LEN {
        return Err(VaultError::Damaged);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Damaged)?;
    let mut in_out = body.to_vec();
    let len = key
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut in_out)
        .map_err(|_| VaultError::Damaged)?
        .len();
    // In place, no copy: a caller that holds a key zeroizes this buffer.
    in_out.truncate(len);
    Ok(in_out)
}

fn read_key(path: &Path) -> Result<MasterKey, VaultError> {
    let err = |message: String| VaultError::KeyFile {
        path: path.display().to_string(),
        message,
    };
    crate::secret_file::check("[vault] key file", path).map_err(VaultError::Exposed)?;
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
    let hex = text.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err("must hold 64 hex characters (32 bytes)".into()));
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| err(e.to_string()))?;
    }
    // The id names the key without revealing it.
    let id = crate::domain::digest::sha256_hex(bytes.as_ref())[..16].to_owned();
    let key = RandomizedNonceKey::new(&AES_256_GCM, bytes.as_ref())
        .map_err(|_| err("unusable key".into()));
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
    let mut bytes = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| VaultError::Random)?;
    let hex = Zeroizing::new(crate::domain::digest::hex(bytes.as_ref()));
    let mut line = Zeroizing::new(String::with_capacity(hex.len() + 1));
    line.push_str(&hex);
    line.push('\n');
    drop(bytes);
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
        file.write_all(line.as_bytes())?;
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
        let vault = Vault::load(&VaultConfig {
            key_file: dir.join("k1"),
            previous_key_files: vec![],
        })
        .unwrap();
        with_today(&vault);
        vault
    }

    /// Today's epoch created and loaded, as `shred::start` does; returns
    /// its row as the database would hold it.
    fn with_today(vault: &Vault) -> WrappedKek {
        let epoch = epoch_of(time::OffsetDateTime::now_utc());
        let wrapped = vault.new_epoch_key(&epoch).unwrap();
        vault.install(&epoch, Some(&wrapped)).unwrap();
        wrapped
    }

    /// What `seal` did before epochs: the master key wraps the data key.
    fn seal_before_epochs(vault: &Vault, id: &str, payload: &[u8]) -> Sealed {
        seal_under(&vault.current.key, vault.current.id.clone(), id, payload).unwrap()
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
    fn a_payload_is_sealed_under_todays_epoch_key_and_opens_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault_in(dir.path());
        let today = epoch_of(time::OffsetDateTime::now_utc());
        let sealed = vault.seal("id-1", b"payload").unwrap();
        assert_eq!(sealed.key_id, format!("epoch:{today}"));
        assert_eq!(sealed.epoch(), Some(today.as_str()));
        assert_eq!(vault.open("id-1", &sealed).unwrap(), b"payload");
        // Another instance with the same master key and the same stored
        // epoch row opens it too.
        let row = vault.new_epoch_key("2026-01-01").unwrap();
        vault.install("2026-01-01", Some(&row)).unwrap();
        let old = vault.seal_in_epoch("2026-01-01", "id-2", b"old").unwrap();
        let other = Vault::load(&VaultConfig {
            key_file: dir.path().join("k1"),
            previous_key_files: vec![],
        })
        .unwrap();
        other.install("2026-01-01", Some(&row)).unwrap();
        assert_eq!(other.open("id-2", &old).unwrap(), b"old");
    }

    #[test]
    fn a_payload_sealed_before_epochs_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault_in(dir.path());
        let sealed = seal_before_epochs(&vault, "id-1", b"sealed in 2025");
        assert_eq!(sealed.key_id, vault.current_key_id());
        assert_eq!(sealed.epoch(), None);
        assert_eq!(vault.open("id-1", &sealed).unwrap(), b"sealed in 2025");
    }

    #[test]
    fn an_unknown_or_destroyed_epoch_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault_in(dir.path());
        let sealed = vault.seal("id-1", b"payload").unwrap();
        let today = epoch_of(time::OffsetDateTime::now_utc());
        // Same master key, but the epoch key is not loaded.
        let fresh = Vault::load(&VaultConfig {
            key_file: dir.path().join("k1"),
            previous_key_files: vec![],
        })
        .unwrap();
        let err = fresh.open("id-1", &sealed).unwrap_err();
        assert!(
            matches!(&err, VaultError::UnknownEpoch(e) if *e == today),
            "{err}"
        );
        assert!(err.to_string().contains(&today), "{err}");
        assert!(matches!(
            fresh.seal("id-1", b"x"),
            Err(VaultError::NoCurrentEpoch)
        ));
        // Destroyed: the master key alone opens nothing.
        vault.forget(&today);
        let err = vault.open("id-1", &sealed).unwrap_err();
        assert!(
            matches!(&err, VaultError::Shredded(e) if *e == today),
            "{err}"
        );
        assert!(err.to_string().contains("destroyed"), "{err}");
        assert!(!vault.has_epoch(&today));
        assert!(vault.live_epochs().is_empty());
    }

    #[test]
    fn an_epoch_key_belongs_to_its_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault_in(dir.path());
        let row = vault.new_epoch_key("2026-12-01").unwrap();
        assert!(matches!(
            vault.install("2026-12-02", Some(&row)),
            Err(VaultError::Damaged)
        ));
        assert!(matches!(
            vault.new_epoch_key("yesterday"),
            Err(VaultError::BadEpoch(_))
        ));
        let at = time::macros::datetime!(2026-12-02 23:59:59 UTC);
        assert_eq!(epoch_of(at), "2026-12-02");
        assert_eq!(
            epoch_date("2026-12-02").unwrap(),
            time::macros::date!(2026 - 12 - 02)
        );
    }

    #[test]
    fn rotation_keeps_old_payloads_readable_and_rewrap_frees_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let old = vault_in(dir.path());
        let epoch = epoch_of(time::OffsetDateTime::now_utc());
        let row = old.new_epoch_key(&epoch).unwrap();
        old.install(&epoch, Some(&row)).unwrap();
        let sealed = old.seal("id-1", b"payload").unwrap();
        let legacy = seal_before_epochs(&old, "id-2", b"legacy");
        let rotated = Vault::load(&VaultConfig {
            key_file: dir.path().join("k2"),
            previous_key_files: vec![dir.path().join("k1")],
        })
        .unwrap();
        assert_ne!(rotated.current_key_id(), old.current_key_id());
        rotated.install(&epoch, Some(&row)).unwrap();
        assert_eq!(rotated.open("id-1", &sealed).unwrap(), b"payload");
        assert_eq!(rotated.open("id-2", &legacy).unwrap(), b"legacy");
        let rewrapped = rotated.rewrap(&epoch, &row).unwrap().unwrap();
        assert_eq!(rewrapped.master_key_id, rotated.current_key_id());
        assert_eq!(rotated.rewrap(&epoch, &rewrapped).unwrap(), None);

        let without_old = Vault::load(&VaultConfig {
            key_file: dir.path().join("k2"),
            previous_key_files: vec![],
        })
        .unwrap();
        assert!(matches!(
            without_old.install(&epoch, Some(&row)),
            Err(VaultError::UnknownKey(_))
        ));
        without_old.install(&epoch, Some(&rewrapped)).unwrap();
        assert_eq!(without_old.open("id-1", &sealed).unwrap(), b"payload");
        assert!(matches!(
            without_old.open("id-2", &legacy),
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
        let row = with_today(&a);
        let sealed = a.seal("id", b"x").unwrap();
        let b = Vault::load(&config).unwrap();
        b.install(sealed.epoch().unwrap(), Some(&row)).unwrap();
        assert_eq!(b.open("id", &sealed).unwrap(), b"x");
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
