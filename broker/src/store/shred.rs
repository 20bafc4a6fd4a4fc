//! Crypto-shredding: the life of the vault's epoch keys.
//!
//! The [`crate::vault`] seals each payload's data key under the KEK of
//! the day's epoch. This module keeps those KEKs where the vault needs them
//! and destroys them when nothing may need them any more:
//!
//! - **ahead**: today's and tomorrow's epochs exist before they are needed.
//!   Creating one is `INSERT … ON CONFLICT DO NOTHING` and then reading the
//!   row that won, so instances sharing PostgreSQL agree on one KEK per day.
//! - **loaded**: at start every live epoch's KEK goes into the vault's cache;
//!   each scheduler round adds the ones other instances created and drops the
//!   ones they destroyed; [`open`] loads a missing one on demand. A parked
//!   submission never becomes unopenable for want of a cached key.
//! - **destroyed**: an epoch's KEK is destroyed (`wrapped_kek` NULL,
//!   `destroyed_at` set, the cached key dropped) once no parked row and no
//!   dead letter uses it and the epoch ended longer ago than anything sealed
//!   in it may be kept ([`longest_keep`]). From then on every copy of those
//!   payloads, in WAL files or backups, is unreadable even with the master
//!   key. The row stays as a tombstone: the epoch is never created again.
//! - **rewrapped**: after a master-key rotation, [`rewrap`] wraps every live
//!   KEK under the current master key, so the previous one can go at once.
//!
//! Touches the database (`vault_epochs`) and the vault's cache.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::domain::id::SubmissionId;
use crate::domain::time::Timestamp;
use crate::store::{Store, StoreError, VaultEpoch};
use crate::vault::{self, Sealed, Vault, VaultError};

#[derive(Debug, thiserror::Error)]
pub enum ShredError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// At start: every live epoch's KEK into the cache; today's and tomorrow's
/// created if missing.
pub async fn start(vault: &Vault, store: &Store) -> Result<(), ShredError> {
    let now = time::OffsetDateTime::now_utc();
    keep_ahead(vault, store, now).await?;
    load_live(vault, store).await?;
    Ok(())
}

/// One round of the scheduler: keep ahead, follow other instances, destroy
/// what may go. Failures are logged; the next round tries again.
pub async fn maintain(vault: &Vault, store: &Store, config: &Config) {
    if let Err(e) = maintain_at(vault, store, config, time::OffsetDateTime::now_utc()).await {
        tracing::warn!(error = %e, "vault epoch maintenance failed");
    }
}

/// [`maintain`] as if it were `now` (tests move the clock, not the data);
/// returns the epochs whose KEK was destroyed.
pub async fn maintain_at(
    vault: &Vault,
    store: &Store,
    config: &Config,
    now: time::OffsetDateTime,
) -> Result<Vec<String>, ShredError> {
    keep_ahead(vault, store, now).await?;
    let live = load_live(vault, store).await?;
    let keep = longest_keep(config);
    let mut destroyed = Vec::new();
    for row in live {
        let Ok(date) = vault::epoch_date(&row.epoch) else {
            continue;
        };
        let Some(end) = date.next_day() else {
            continue;
        };
        // Past the end of the epoch by the longest keep (never, if that
        // overflows the calendar).
        match end.midnight().assume_utc().checked_add(keep) {
            Some(until) if until <= now => {}
            _ => continue,
        }
        if store
            .destroy_epoch(&row.epoch, Timestamp::from(now))
            .await?
        {
            vault.forget(&row.epoch);
            tracing::info!(epoch = %row.epoch, "epoch key destroyed: what was sealed in it is unreadable everywhere");
            destroyed.push(row.epoch);
        }
    }
    Ok(destroyed)
}

/// The longest time anything sealed may be kept, plus a day: the longest
/// `max_age_secs` of a parked submission or the dead-letter retention,
/// whichever is longer. An epoch's KEK outlives the epoch's end by this.
pub fn longest_keep(config: &Config) -> time::Duration {
    let parked = config.longest_max_age_secs();
    let dead_letters = config.dead_letters.retention_days.saturating_mul(86_400);
    let secs = parked.max(dead_letters).saturating_add(86_400);
    time::Duration::try_from(Duration::from_secs(secs)).unwrap_or(time::Duration::MAX)
}

/// Open a sealed payload, loading its epoch's KEK from the database if the
/// cache lacks it (an epoch another instance created since the last round).
pub async fn open(
    vault: &Vault,
    store: &Store,
    submission_id: &SubmissionId,
    sealed: &Sealed,
) -> Result<Vec<u8>, VaultError> {
    match vault.open(submission_id, sealed) {
        Err(VaultError::UnknownEpoch(epoch)) => match store.epoch(&epoch).await {
            Ok(Some(row)) => {
                vault.install(&epoch, row.wrapped().as_ref())?;
                vault.open(submission_id, sealed)
            }
            Ok(None) => Err(VaultError::UnknownEpoch(epoch)),
            Err(e) => {
                tracing::warn!(epoch = %epoch, error = %e, "cannot load an epoch key");
                Err(VaultError::UnknownEpoch(epoch))
            }
        },
        other => other,
    }
}

/// What [`rewrap`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rewrapped {
    /// The master key every live epoch should now be wrapped by.
    pub current_key_id: String,
    /// Epochs whose KEK is now wrapped by the current master key.
    pub rewrapped: Vec<String>,
    /// Epochs that already were.
    pub already_current: Vec<String>,
    /// Epochs whose master key is not configured: (epoch, master key id).
    pub unreadable: Vec<(String, String)>,
    /// Payloads sealed before epochs, by the master key that wraps their
    /// data keys: (master key id, payloads). That key must stay until they
    /// are gone (delivered, expired or purged).
    pub sealed_before_epochs: Vec<(String, i64)>,
    /// Master keys other than the current one that something still needs;
    /// empty: `previous_key_files` may be emptied.
    pub still_needed: Vec<String>,
}

/// Wrap every live epoch's KEK under the current master key (after a
/// rotation: the previous master key then unwraps nothing of the epochs).
pub async fn rewrap(vault: &Vault, store: &Store) -> Result<Rewrapped, ShredError> {
    let mut report = Rewrapped {
        current_key_id: vault.current_key_id().to_owned(),
        ..Rewrapped::default()
    };
    for row in store.live_epochs().await? {
        let Some(wrapped) = row.wrapped() else {
            continue;
        };
        match vault.rewrap(&row.epoch, &wrapped) {
            Ok(None) => report.already_current.push(row.epoch),
            Ok(Some(new)) => {
                if store.rewrap_epoch(&row.epoch, &wrapped, &new).await? {
                    report.rewrapped.push(row.epoch);
                }
            }
            Err(VaultError::UnknownKey(key)) => report.unreadable.push((row.epoch, key)),
            Err(e) => return Err(e.into()),
        }
    }
    report.sealed_before_epochs = store.legacy_key_ids().await?;
    let mut needed: Vec<String> = (report.unreadable.iter().map(|(_, k)| k.clone()))
        .chain(report.sealed_before_epochs.iter().map(|(k, _)| k.clone()))
        .filter(|k| *k != report.current_key_id)
        .collect();
    needed.sort();
    needed.dedup();
    report.still_needed = needed;
    Ok(report)
}

/// Today's and tomorrow's epochs: created if missing, into the cache.
async fn keep_ahead(
    vault: &Vault,
    store: &Store,
    now: time::OffsetDateTime,
) -> Result<(), ShredError> {
    for at in [now, now + time::Duration::days(1)] {
        let epoch = vault::epoch_of(at);
        if vault.has_epoch(&epoch) {
            continue;
        }
        let row = match store.epoch(&epoch).await? {
            Some(row) => row,
            None => {
                let wrapped = vault.new_epoch_key(&epoch)?;
                store
                    .create_epoch(&epoch, &wrapped, Timestamp::from(now))
                    .await?
            }
        };
        if row.wrapped_kek.is_none() {
            tracing::error!(epoch = %epoch, "the epoch key of a current day is destroyed; payloads are sealed in the previous day's epoch");
        }
        vault.install(&epoch, row.wrapped().as_ref())?;
    }
    Ok(())
}

/// Every live epoch's KEK into the cache, and out of it every epoch that
/// is no longer live (destroyed, perhaps by another instance). An epoch
/// whose master key is missing is named in the log and skipped: the rest
/// still opens. Returns the live rows.
async fn load_live(vault: &Vault, store: &Store) -> Result<Vec<VaultEpoch>, ShredError> {
    let rows = store.live_epochs().await?;
    for row in &rows {
        if vault.has_epoch(&row.epoch) {
            continue;
        }
        if let Err(e) = vault.install(&row.epoch, row.wrapped().as_ref()) {
            tracing::error!(epoch = %row.epoch, error = %e, "cannot load an epoch key");
        }
    }
    // A cached epoch missing from the list may have been created after it
    // was read: only the row itself says that it is destroyed.
    let live: HashSet<&str> = rows.iter().map(|r| r.epoch.as_str()).collect();
    for epoch in vault.live_epochs() {
        if !live.contains(epoch.as_str())
            && let Some(row) = store.epoch(&epoch).await?
            && row.wrapped_kek.is_none()
        {
            vault.forget(&epoch);
            tracing::info!(epoch = %epoch, "epoch key destroyed by another instance; dropped");
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatabaseConfig, VaultConfig};
    use crate::domain::id::DestinationId;
    use crate::store::{Parked, Record};

    const CONFIG: &str = r#"
[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"

[retry]
max_age_secs = 86400

[dead_letters]
retention_days = 2

[[destinations]]
id = "sozialamt-koeln"
adapter = "xsozial-hzl"
endpoint = "http://127.0.0.1:8443/antraege"
allow_insecure_http = true
"#;

    async fn setup(dir: &std::path::Path) -> (Store, Config) {
        let store = Store::connect(&DatabaseConfig {
            url: format!("sqlite://{}/k.db", dir.display()),
            max_connections: 2,
        })
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let config = Config::parse(CONFIG, std::path::Path::new("k.toml")).unwrap();
        (store, config)
    }

    fn vault(dir: &std::path::Path) -> Vault {
        Vault::load(&VaultConfig {
            key_file: dir.join("vault.key"),
            previous_key_files: vec![],
        })
        .unwrap()
    }

    fn parked(id: &str, sealed: Sealed) -> Parked {
        let now = crate::domain::time::now();
        Parked {
            submission_id: SubmissionId::from_stored(id),
            service: "hzl".into(),
            destination: DestinationId::new("sozialamt-koeln"),
            portal: "p".into(),
            attempts: 1,
            received_sha256: "0".into(),
            received_at: now,
            first_failure_at: now,
            last_cause: "status 503".into(),
            next_attempt_at: now,
            expires_at: now,
            lease_until: None,
            key_id: sealed.key_id,
            sealed_key: sealed.sealed_key,
            sealed_payload: sealed.sealed_payload,
        }
    }

    #[tokio::test]
    async fn instances_agree_on_one_key_per_day_created_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = setup(dir.path()).await;
        let (a, b) = (vault(dir.path()), vault(dir.path()));
        let (x, y) = tokio::join!(start(&a, &store), start(&b, &store));
        x.unwrap();
        y.unwrap();
        let now = time::OffsetDateTime::now_utc();
        let live: Vec<String> = store
            .live_epochs()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.epoch)
            .collect();
        assert_eq!(
            live,
            [
                vault::epoch_of(now),
                vault::epoch_of(now + time::Duration::days(1))
            ]
        );
        let sealed = a.seal("id-1", b"payload").unwrap();
        assert_eq!(b.open("id-1", &sealed).unwrap(), b"payload");
    }

    #[tokio::test]
    async fn an_epoch_key_is_destroyed_only_when_unused_and_old_enough() {
        let dir = tempfile::tempdir().unwrap();
        let (store, config) = setup(dir.path()).await;
        // One day of max_age, two of dead-letter retention, one of margin.
        assert_eq!(longest_keep(&config), time::Duration::days(3));
        let vault = vault(dir.path());
        start(&vault, &store).await.unwrap();
        let today = vault::epoch_of(time::OffsetDateTime::now_utc());
        let sealed = vault.seal("id-1", b"payload").unwrap();
        store
            .write(&[Record::Park(parked("id-1", sealed.clone()))])
            .await
            .unwrap();
        let end_of_today = time::OffsetDateTime::now_utc()
            .date()
            .next_day()
            .unwrap()
            .midnight()
            .assume_utc();
        let late = end_of_today + time::Duration::days(3);
        // In use: kept, however old.
        assert!(
            maintain_at(&vault, &store, &config, late)
                .await
                .unwrap()
                .is_empty()
        );
        store
            .write(&[Record::Receipt(crate::store::Receipt {
                submission_id: SubmissionId::from_stored("id-1"),
                service: None,
                destination: None,
                portal: None,
                status: crate::domain::status::ReceiptStatus::Delivered,
                reason_code: None,
                reason_detail: None,
                http_status: Some(200),
                reference: None,
                attempts: 1,
                received_sha256: "0".into(),
                sent_sha256: None,
                submitted_at: None,
                received_at: crate::domain::time::now(),
                completed_at: crate::domain::time::now(),
            })])
            .await
            .unwrap();
        // Unused, but not old enough yet.
        let early = late - time::Duration::seconds(1);
        assert!(
            maintain_at(&vault, &store, &config, early)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(vault.has_epoch(&today));
        // Unused and old enough: destroyed in the database and the cache.
        let destroyed = maintain_at(&vault, &store, &config, late).await.unwrap();
        assert!(destroyed.contains(&today), "{destroyed:?}");
        let row = store.epoch(&today).await.unwrap().unwrap();
        assert!(row.wrapped_kek.is_none() && row.destroyed_at.is_some());
        assert!(matches!(
            open(&vault, &store, &SubmissionId::from_stored("id-1"), &sealed).await,
            Err(VaultError::Shredded(_))
        ));
        // Another instance learns it from the database, not from its cache.
        let other = self::vault(dir.path());
        assert!(matches!(
            open(&other, &store, &SubmissionId::from_stored("id-1"), &sealed).await,
            Err(VaultError::Shredded(_))
        ));
    }

    #[tokio::test]
    async fn an_epoch_missing_from_the_cache_is_loaded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = setup(dir.path()).await;
        let a = vault(dir.path());
        start(&a, &store).await.unwrap();
        let sealed = a.seal("id-1", b"payload").unwrap();
        let b = vault(dir.path());
        assert!(matches!(
            b.open("id-1", &sealed),
            Err(VaultError::UnknownEpoch(_))
        ));
        assert_eq!(
            open(&b, &store, &SubmissionId::from_stored("id-1"), &sealed)
                .await
                .unwrap(),
            b"payload"
        );
    }

    #[tokio::test]
    async fn rewrap_moves_every_live_epoch_to_the_current_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = setup(dir.path()).await;
        let old = vault(dir.path());
        start(&old, &store).await.unwrap();
        let sealed = old.seal("id-1", b"payload").unwrap();
        let rotated = Vault::load(&VaultConfig {
            key_file: dir.path().join("vault-2.key"),
            previous_key_files: vec![dir.path().join("vault.key")],
        })
        .unwrap();
        let report = rewrap(&rotated, &store).await.unwrap();
        assert_eq!(report.rewrapped.len(), 2, "{report:?}");
        assert!(report.still_needed.is_empty(), "{report:?}");
        let without_old = Vault::load(&VaultConfig {
            key_file: dir.path().join("vault-2.key"),
            previous_key_files: vec![],
        })
        .unwrap();
        start(&without_old, &store).await.unwrap();
        assert_eq!(without_old.open("id-1", &sealed).unwrap(), b"payload");
        let again = rewrap(&without_old, &store).await.unwrap();
        assert!(again.rewrapped.is_empty() && again.already_current.len() == 2);
    }
}
