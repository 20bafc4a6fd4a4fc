//! A RabbitMQ restart in the middle of a run loses nothing and creates no
//! second case at the authority. Its own test binary: it restarts the shared
//! RabbitMQ node, and cargo runs test binaries one after another.

use std::process::Command;
use std::time::{Duration, Instant};

use kurier_e2e::{Backend, World, WorldOptions, fresh, json};

const SUBMISSIONS: usize = 300;

fn rabbitmqctl(command: &str) {
    let ctl = std::env::var("KURIER_RABBITMQCTL")
        .expect("KURIER_RABBITMQCTL is set by deploy/local/test.sh");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{ctl} -q {command}"))
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {command} failed");
}

async fn restart_during_a_run(backend: Backend) {
    let mut options = WorldOptions::new(backend);
    options.prefetch = 16;
    let mut world = World::start(options).await.unwrap();
    // A slow authority keeps the run going while RabbitMQ restarts.
    world
        .authority
        .set_mode(json!({"mode": "slow", "delay_ms": 15}))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..SUBMISSIONS {
        let e = fresh("hzl-minimal.json");
        ids.push(e["submission_id"].as_str().unwrap().to_owned());
        world.publish_envelope(&e).await.unwrap();
    }
    world.start_kurier().unwrap();

    // Restart once a part, but not all, is delivered.
    let store = world.store().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = store
            .receipts(None, 100_000)
            .await
            .map(|r| r.len())
            .unwrap_or(0);
        if done >= SUBMISSIONS / 5 {
            assert!(
                done < SUBMISSIONS,
                "the run finished before the restart; slow the authority"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the run does not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rabbitmqctl("stop_app");
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl("start_app");
    rabbitmqctl("await_startup");

    // Every submission ends delivered, each created exactly once.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let receipts = store.receipts(None, 100_000).await.unwrap();
        let delivered = receipts.iter().filter(|r| r.status == "delivered").count();
        if delivered == SUBMISSIONS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{delivered} of {SUBMISSIONS} delivered after the restart; log {}",
            world.log_path().display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &ids {
        let r = store
            .receipt(id)
            .await
            .unwrap()
            .expect("a receipt per submission");
        assert_eq!(r.status, "delivered");
    }
    let stats = world.authority.stats().await.unwrap();
    println!("{backend:?}: authority stats after a RabbitMQ restart: {stats}");
    assert_eq!(stats["distinct_keys_created"], SUBMISSIONS);
    assert_eq!(
        stats["created_per_key_max"], 1,
        "no submission created twice"
    );
    let log = std::fs::read_to_string(world.log_path()).unwrap();
    assert!(log.contains("reconnecting"), "Kurier noticed the restart");
    let kurier = world.kurier.as_mut().unwrap();
    assert_eq!(kurier.terminate(Duration::from_secs(20)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_restart_loses_nothing() {
    // Both backends in one test, one after the other: the restart affects
    // every connection to the node.
    restart_during_a_run(Backend::Sqlite).await;
    restart_during_a_run(Backend::Postgres).await;
}
