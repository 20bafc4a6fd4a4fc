//! A RabbitMQ restart in the middle of a run loses nothing and creates no
//! second case at the authority, also while a parked backlog is being
//! delivered (each submission then has exactly one terminal receipt event).
//! Its own test binary: it restarts the shared RabbitMQ node, and cargo runs
//! test binaries one after another; the tests in it take turns ([`NODE`]).

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use kurier_e2e::evidence::{self, EventLog, Expect};
use kurier_e2e::{Backend, World, WorldOptions, fresh, json};

/// The tests of this binary restart the same node: one at a time.
static NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

/// Stop the node's application for 2 s, start it again, wait until it runs.
fn restart_node() {
    rabbitmqctl("stop_app");
    std::thread::sleep(Duration::from_secs(2));
    rabbitmqctl("start_app");
    rabbitmqctl("await_startup");
}

/// Submissions with a `delivered` receipt.
async fn delivered(store: &kurier::store::Store) -> usize {
    store
        .receipts(None, 100_000)
        .await
        .map(|rows| rows.iter().filter(|r| r.status == "delivered").count())
        .unwrap_or(0)
}

/// Count with `count` every `every` until `enough` or `timeout`; the last
/// count and whether it was enough.
async fn poll(
    timeout: Duration,
    every: Duration,
    mut count: impl AsyncFnMut() -> usize,
    enough: impl Fn(usize) -> bool,
) -> (usize, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let n = count().await;
        if enough(n) || Instant::now() >= deadline {
            return (n, enough(n));
        }
        tokio::time::sleep(every).await;
    }
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
    restart_node();

    // Every submission ends delivered, each created exactly once.
    let (n, all) = poll(
        Duration::from_secs(180),
        Duration::from_millis(200),
        async || delivered(&store).await,
        |n| n == SUBMISSIONS,
    )
    .await;
    assert!(
        all,
        "{n} of {SUBMISSIONS} delivered after the restart; log {}",
        world.log_path().display()
    );
    for id in &ids {
        let r = store
            .receipt(&kurier_e2e::sid(id))
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
    let _node = NODE.lock().await;
    // Both backends in one test, one after the other: the restart affects
    // every connection to the node.
    restart_during_a_run(Backend::Sqlite).await;
    restart_during_a_run(Backend::Postgres).await;
}

/// Park a backlog (the authority down), let the parked submissions be
/// delivered again at a rate the authority sets (1.5 s per answer: at 32 in
/// flight the drain takes about 15 s), and restart the RabbitMQ node once the
/// first of them is delivered. With Kurier's delivery defaults.
async fn restart_while_parked_backlog_drains(backend: Backend) {
    const N: usize = 300;
    let b = format!("{backend:?}").to_lowercase();
    let mut world = World::start(WorldOptions::shipped(backend)).await.unwrap();
    let events = EventLog::start(&world).await.unwrap();
    world.authority.fail_all(503).await;
    world.start_kurier().unwrap();
    let mut ids = HashSet::new();
    let envelopes: Vec<serde_json::Value> = (0..N)
        .map(|_| {
            let e = fresh("hzl-minimal.json");
            ids.insert(e["submission_id"].as_str().unwrap().to_owned());
            e
        })
        .collect();
    world.publish_many(&envelopes).await.unwrap();

    // All parked.
    let store = world.store().await.unwrap();
    let (parked, all) = poll(
        Duration::from_secs(180),
        Duration::from_millis(200),
        async || {
            store
                .parked(None, 100_000)
                .await
                .map(|p| p.len())
                .unwrap_or(0)
        },
        |n| n == N,
    )
    .await;
    assert!(
        all,
        "{b}: {parked} of {N} parked; log {}",
        world.log_path().display()
    );

    // The authority is back, slowly; restart once the backlog drains.
    world
        .authority
        .set_mode(json!({"mode": "slow", "delay_ms": 1500}))
        .await
        .unwrap();
    let back = Instant::now();
    let (before_restart, started) = poll(
        Duration::from_secs(180),
        Duration::from_millis(50),
        async || delivered(&store).await,
        |n| n > 0,
    )
    .await;
    assert!(
        started,
        "{b}: no parked submission delivered within 180 s of the authority's return; log {}",
        world.log_path().display()
    );
    let first_after = back.elapsed();
    let when_stopped = delivered(&store).await;
    restart_node();
    let restarted = Instant::now();

    let (after, _) = poll(
        Duration::from_secs(180),
        Duration::from_millis(200),
        async || delivered(&store).await,
        |n| n == N,
    )
    .await;
    let seconds = if after == N {
        format!("{:.1}", restarted.elapsed().as_secs_f64())
    } else {
        "NA".into()
    };
    println!(
        "FIGURE rabbitmq_restart_parked backend={b} delivered={after}/{N} delivered_at_first_check={before_restart} delivered_when_stopped={when_stopped} first_delivery_after_back_seconds={:.1} seconds_after_restart={seconds}",
        first_after.as_secs_f64()
    );
    let missing = events.await_terminal(&ids, Duration::from_secs(60)).await;
    events
        .settle(Duration::from_secs(2), Duration::from_secs(15))
        .await;
    let receipts = evidence::receipts(&world).await;
    let stats = world.authority.stats().await.unwrap();
    let verdict = evidence::check(
        &ids,
        &receipts,
        &events.snapshot(),
        &stats,
        Expect { parked_event: true },
    );
    println!(
        "FIGURE rabbitmq_restart_parked_events backend={b} events={} without_terminal_event={missing} terminal_copies={}",
        verdict.events, verdict.terminal_copies
    );
    for line in verdict.lines() {
        println!("{b}: {line}");
    }
    events.close().await;
    let parked_left = store
        .parked(None, 100_000)
        .await
        .map(|p| p.len())
        .unwrap_or(0);
    store.close().await;
    if let Some(k) = world.kurier.as_mut() {
        k.terminate(Duration::from_secs(20));
    }
    assert_eq!(
        after,
        N,
        "{b}: {after} of {N} delivered within 180 s of the restart; log {}",
        world.log_path().display()
    );
    assert_eq!(parked_left, 0, "{b}: parked rows left");
    assert!(
        when_stopped < N,
        "{b}: the backlog was delivered before RabbitMQ stopped; slow the authority"
    );
    verdict.assert_ok(&format!("restart while the parked backlog drains ({b})"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_the_parked_backlog_drains_sqlite() {
    let _node = NODE.lock().await;
    restart_while_parked_backlog_drains(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_the_parked_backlog_drains_postgres() {
    let _node = NODE.lock().await;
    restart_while_parked_backlog_drains(Backend::Postgres).await;
}
