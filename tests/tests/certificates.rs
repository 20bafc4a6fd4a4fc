//! Certificates are reloaded without a restart (invariant 7): a client
//! certificate the authority does not trust is replaced on disk, and the
//! parked submission is delivered with the new one by the same process.

use std::time::{Duration, Instant};

use kurier_e2e::{Backend, World, WorldOptions, fresh, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_replaced_on_disk_is_used_without_a_restart() {
    let rogue = kurier_e2e::pki::Ca::new("Rogue CA").unwrap();
    let rogue_client = rogue.client("kurier").unwrap();
    let mut options = WorldOptions::new(Backend::Sqlite);
    options.extra_config = r#"
[[destinations]]
id = "neues-zertifikat"
adapter = "xsozial-hzl"
endpoint = "{AUTHORITY}/sozialamt-koeln/antraege"
ca_file = "{CA}"
client_cert_file = "rotating.pem"
client_key_file = "rotating.key"

[destinations.retry]
circuit_open_secs = 1
"#
    .into();
    let mut world = World::start(options).await.unwrap();
    let cert = world.dir.path().join("rotating.pem");
    let key = world.dir.path().join("rotating.key");
    std::fs::write(&cert, &rogue_client.cert_pem).unwrap();
    kurier_e2e::pki::write_key(&key, &rogue_client.key_pem).unwrap();
    world.start_kurier().unwrap();

    let mut e = fresh("hzl-minimal.json");
    e["destination"] = json!("neues-zertifikat");
    let id = e["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&e).await.unwrap();
    // Refused by the authority's TLS: parked, not delivered.
    let store = world.store().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store
        .is_parked(&kurier_e2e::sid(&id))
        .await
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "not parked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        store
            .receipt(&kurier_e2e::sid(&id))
            .await
            .unwrap()
            .is_none()
    );

    // The renewed certificate (from the CA the authority trusts) arrives.
    std::fs::copy(&world.pki.kurier_key, &key).unwrap();
    std::fs::copy(&world.pki.kurier_cert, &cert).unwrap();
    let receipt = world
        .await_receipt(&id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(receipt.status, "delivered", "{receipt:?}");
    let log = std::fs::read_to_string(world.log_path()).unwrap();
    assert!(log.contains("certificates reloaded"), "no reload logged");
    assert!(
        world
            .kurier
            .as_mut()
            .unwrap()
            .child
            .try_wait()
            .unwrap()
            .is_none(),
        "the same process delivered it"
    );
    store.close().await;
}
