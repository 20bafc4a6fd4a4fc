//! TLS to the services Kurier depends on. `amqps://` means TLS (CONTRACT.md
//! § 1): Kurier consumes over TLS from RabbitMQ's TLS listener, verified
//! against the configured CA and the host name, and never talks plaintext
//! for an `amqps://` URL. PostgreSQL with `sslmode=verify-full`.
//! deploy/local/services.sh starts both with TLS and exports the URL and CA.

use std::time::Duration;

use kurier_e2e::{Backend, World, WorldOptions, fresh};

const WAIT: Duration = Duration::from_secs(60);

fn amqps_url() -> String {
    std::env::var("KURIER_TEST_AMQPS_URL")
        .expect("KURIER_TEST_AMQPS_URL is not set: run the tests through deploy/local/test.sh")
}

fn amqps_ca() -> String {
    std::env::var("KURIER_TEST_AMQPS_CA")
        .expect("KURIER_TEST_AMQPS_CA is not set: run the tests through deploy/local/test.sh")
}

/// Point this world's Kurier (not the test's own observer connection) at
/// `url`, with `ca` as the CA file.
fn use_amqp(world: &World, url: &str, ca: &str) {
    let text = std::fs::read_to_string(&world.config_path).unwrap();
    let plain = kurier_e2e::amqp_url();
    assert!(text.contains(&plain));
    let text = text.replace(
        &format!("url = \"{plain}\""),
        &format!("url = \"{url}\"\nca_file = \"{ca}\""),
    );
    std::fs::write(&world.config_path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_amqps_submissions_flow_with_tls_verified_against_the_ca() {
    let mut world = World::start(WorldOptions::new(Backend::Sqlite))
        .await
        .unwrap();
    use_amqp(&world, &amqps_url(), &amqps_ca());
    let check = world.kurier_cli(&["check-config"]).unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    world.start_kurier().unwrap();
    let e = fresh("hzl-minimal.json");
    world.publish_envelope(&e).await.unwrap();
    let r = world
        .await_receipt(e["submission_id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(r.status, "delivered");
    // The receipt event went out over TLS too (the outbox relay).
    let events = world.receipt_events(1, WAIT).await.unwrap();
    assert_eq!(events[0].1["status"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_never_falls_back_to_plaintext_nor_trusts_another_ca() {
    // amqps:// against the plaintext port, and amqps:// with a CA that did
    // not sign RabbitMQ's certificate: nothing is consumed either way.
    for case in ["plaintext port", "wrong CA"] {
        let mut world = World::start(WorldOptions::new(Backend::Sqlite))
            .await
            .unwrap();
        let plain = kurier_e2e::amqp_url();
        let (url, ca) = if case == "plaintext port" {
            let port = plain
                .rsplit(':')
                .next()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_owned();
            (
                format!("amqps://guest:guest@localhost:{port}/%2f"),
                amqps_ca(),
            )
        } else {
            (amqps_url(), world.pki.authority_ca.display().to_string())
        };
        use_amqp(&world, &url, &ca);
        world.start_kurier().unwrap();
        let e = fresh("hzl-minimal.json");
        world.publish_envelope(&e).await.unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(
            world.queue_ready().await.unwrap(),
            1,
            "{case}: nothing consumed"
        );
        let store = world.store().await.unwrap();
        assert!(
            store
                .receipt(&kurier_e2e::sid(e["submission_id"].as_str().unwrap()))
                .await
                .unwrap()
                .is_none()
        );
        let ready = world
            .admin_request("GET", "/readyz", false, None)
            .await
            .unwrap();
        assert_eq!(ready.status, 503, "{case}: not ready without AMQP");
        let log = std::fs::read_to_string(world.log_path()).unwrap();
        assert!(
            log.contains("AMQP connection lost or refused"),
            "{case}: {log}"
        );
    }
}

/// PostgreSQL over TLS with `sslmode=verify-full`: the server's certificate
/// must chain to `sslrootcert` and name the host; another CA is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_sslmode_verify_full() {
    let mut world = World::start(WorldOptions::new(Backend::Postgres))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&world.config_path).unwrap();
    let url = world.config.database.url.clone();
    assert!(url.contains("@127.0.0.1:"), "{url}");
    let tls_url = |ca: &str| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={ca}",
            url.replace("@127.0.0.1:", "@localhost:")
        )
    };
    let good = text.replace(
        &url,
        &tls_url(&std::env::var("KURIER_TEST_TLS_CA").unwrap()),
    );
    let wrong = text.replace(
        &url,
        &tls_url(&world.pki.authority_ca.display().to_string()),
    );

    std::fs::write(&world.config_path, &wrong).unwrap();
    let out = world.kurier_cli(&["receipts", "list"]).unwrap();
    assert!(!out.status.success(), "another CA is refused");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("certificate") || err.contains("tls"), "{err}");

    std::fs::write(&world.config_path, &good).unwrap();
    world.start_kurier().unwrap();
    let e = fresh("hzl-minimal.json");
    world.publish_envelope(&e).await.unwrap();
    let r = world
        .await_receipt(e["submission_id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(r.status, "delivered");
    let log = std::fs::read_to_string(world.log_path()).unwrap();
    assert!(!log.contains("connecting to the database"), "{log}");
}
