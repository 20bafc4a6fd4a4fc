//! Crypto-shredding that holds (invariant 3): an epoch's key is destroyed
//! once nothing sealed in it remains and it is older than anything may be
//! kept; after that a copy of its payloads (a backup, a WAL remnant) opens
//! for nobody, not even with the master key. A parked submission keeps its
//! epoch's key alive, and still delivers after Kurier restarts (the cache of
//! epoch keys is rebuilt from the database). On both databases.

use std::time::{Duration, Instant};

use kurier::store::{Parked, Record};
use kurier::vault::{Vault, VaultError};
use kurier_e2e::{Backend, World, WorldOptions, canary, envelope_for, json, on_both_backends};

const WAIT: Duration = Duration::from_secs(60);

on_both_backends!(an_old_epoch_key_is_destroyed_once_nothing_sealed_in_it_remains,);

/// A parked row for `body`, sealed in `epoch`, due now, as an older Kurier
/// would have left it.
fn parked_in_epoch(vault: &Vault, epoch: &str, body: &[u8], id: &str) -> Parked {
    let sealed = vault.seal_in_epoch(epoch, id, body).unwrap();
    let now = kurier::domain::time::now();
    Parked {
        submission_id: kurier_e2e::sid(id),
        service: "hzl".into(),
        destination: kurier_e2e::did("sozialamt-koeln"),
        portal: "portal-nrw".into(),
        attempts: 3,
        received_sha256: kurier::domain::digest::sha256_hex(body),
        received_at: now,
        first_failure_at: now,
        last_cause: "status 503".into(),
        next_attempt_at: now,
        expires_at: kurier::domain::time::time_after(Duration::from_secs(86_400)),
        lease_until: None,
        key_id: sealed.key_id,
        sealed_key: sealed.sealed_key,
        sealed_payload: sealed.sealed_payload,
    }
}

async fn an_old_epoch_key_is_destroyed_once_nothing_sealed_in_it_remains(backend: Backend) {
    let mut world = World::start(WorldOptions::new(backend)).await.unwrap();
    let canary = canary(&world);
    let store = world.store().await.unwrap();
    store.migrate().await.unwrap();

    // An epoch of 400 days ago (far past max_age_secs and the dead-letter
    // retention) with one submission still parked in it.
    let old = kurier::domain::time::time_before(Duration::from_secs(400 * 86_400))
        .unwrap()
        .to_string()[..10]
        .to_owned();
    let vault = Vault::load(&world.config.vault).unwrap();
    let row = store
        .create_epoch(
            &old,
            &vault.new_epoch_key(&old).unwrap(),
            kurier::domain::time::now(),
        )
        .await
        .unwrap();
    vault.install(&old, row.wrapped().as_ref()).unwrap();
    let e = envelope_for(&world, "sozialamt-koeln");
    let old_id = e["submission_id"].as_str().unwrap().to_owned();
    let body = serde_json::to_vec(&e).unwrap();
    let parked = parked_in_epoch(&vault, &old, &body, &old_id);
    // What a backup taken now holds of it.
    let backup = parked.sealed();
    store.write(&[Record::Park(parked)]).await.unwrap();

    // The authority is down: the old submission stays parked, a new one
    // is parked under today's epoch.
    world.authority.fail_all(503).await;
    world.start_kurier().unwrap();
    world.await_ready(WAIT).await.unwrap();
    let e = envelope_for(&world, "sozialamt-koeln");
    let new_id = e["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&e).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while !store.is_parked(&kurier_e2e::sid(&new_id)).await.unwrap() {
        assert!(Instant::now() < deadline, "not parked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let parked = store.parked(None, 10).await.unwrap();
    let new = parked.iter().find(|p| p.submission_id == new_id).unwrap();
    assert!(new.key_id.starts_with("epoch:"), "{}", new.key_id);
    assert_ne!(new.key_id, format!("epoch:{old}"));
    // Several scheduler rounds (every 5 s): the old epoch's key stays, a
    // parked submission still needs it.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let row = store.epoch(&old).await.unwrap().unwrap();
    assert!(
        row.wrapped_kek.is_some() && row.destroyed_at.is_none(),
        "{row:?}"
    );
    assert!(store.is_parked(&kurier_e2e::sid(&old_id)).await.unwrap());
    let live = store.live_epochs().await.unwrap();
    assert!(live.len() >= 3, "old, today and tomorrow: {live:?}");

    // Restart with the authority back: the cache of epoch keys is rebuilt
    // and both parked submissions are delivered.
    world.kurier.as_mut().unwrap().terminate(WAIT);
    world
        .authority
        .set_mode(json!({"mode": "ok"}))
        .await
        .unwrap();
    world.start_kurier().unwrap();
    for id in [&old_id, &new_id] {
        let receipt = world.await_receipt(id, WAIT).await.unwrap();
        assert_eq!(receipt.status, "delivered", "{receipt:?}");
    }
    let requests = world.authority.requests().await.unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r["submission_id"] == old_id.as_str()),
        "the submission sealed 400 days ago reached the authority"
    );

    // Nothing uses the old epoch any more: the scheduler destroys its key.
    let deadline = Instant::now() + WAIT;
    let row = loop {
        let row = store.epoch(&old).await.unwrap().unwrap();
        if row.destroyed_at.is_some() {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "old epoch not destroyed: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(row.wrapped_kek, None, "the row holds no key");
    // Today's epoch, of a submission delivered minutes ago, stays: it may
    // still seal and hold others.
    let today = &new.key_id["epoch:".len()..];
    assert!(
        store
            .epoch(today)
            .await
            .unwrap()
            .unwrap()
            .wrapped_kek
            .is_some()
    );

    // The backup copy opens for nobody: not with the master key and the
    // database as they are now.
    let restored = Vault::load(&world.config.vault).unwrap();
    kurier::store::shred::start(&restored, &store)
        .await
        .unwrap();
    let err = kurier::store::shred::open(&restored, &store, &kurier_e2e::sid(&old_id), &backup)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VaultError::Shredded(e) if *e == old),
        "{err}"
    );
    world
        .assert_nothing_kept_contains(&canary, "after delivery and shredding")
        .await;
}
