//! Crash safety and resource bounds: kill -9 of Kurier at random moments, a
//! PostgreSQL restart, two instances on one queue, memory under a backlog
//! with an authority down. One test that runs the scenarios one after the
//! other, in its own binary: it restarts the shared PostgreSQL server.
//!
//! Sizes for CI; longer runs: KURIER_FAULT_SUBMISSIONS (default 1000),
//! KURIER_FAULT_KILLS (default 5), KURIER_MEMORY_SUBMISSIONS (default 5000;
//! the figure is 100000), KURIER_FAULT_ONLY=kill,postgres,instances,memory
//! to run a selection, KURIER_FAULT_SEED to repeat a kill schedule.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kurier_e2e::{Backend, World, WorldOptions, fresh, json, rss_kib, service_command};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator; the seed is printed so a run can be repeated.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn options(backend: Backend) -> WorldOptions {
    let mut o = WorldOptions::new(backend);
    o.log = "info";
    // A lease that runs out soon after a kill (one attempt: 5 s + 2 s + 30 s).
    o.retry = "circuit_open_secs = 1\nrequest_timeout_ms = 5000\nconnect_timeout_ms = 2000".into();
    o
}

/// `n` fresh submissions.
fn submissions(n: usize) -> (Vec<serde_json::Value>, HashSet<String>) {
    let mut ids = HashSet::new();
    let envelopes = (0..n)
        .map(|_| {
            let e = fresh("hzl-minimal.json");
            ids.insert(e["submission_id"].as_str().unwrap().to_owned());
            e
        })
        .collect();
    (envelopes, ids)
}

async fn delivered_count(world: &World) -> usize {
    match world.store().await {
        Ok(store) => {
            let n = store
                .receipts(None, 1_000_000)
                .await
                .map(|r| r.iter().filter(|r| r.status == "delivered").count())
                .unwrap_or(0);
            store.close().await;
            n
        }
        Err(_) => 0,
    }
}

async fn await_all_delivered(world: &World, ids: &HashSet<String>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let n = delivered_count(world).await;
        if n == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of {} delivered; log {}",
            ids.len(),
            world.log_path().display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let store = world.store().await.unwrap();
    for id in ids {
        let r = store
            .receipt(&kurier_e2e::sid(id))
            .await
            .unwrap()
            .expect("a receipt for every submission");
        assert_eq!(r.status, "delivered", "{r:?}");
    }
    assert!(
        store.parked(None, 10).await.unwrap().is_empty(),
        "nothing left parked"
    );
    store.close().await;
}

/// Every submission created exactly once at the authority.
async fn assert_created_once(world: &World, n: usize, label: &str) -> serde_json::Value {
    let stats = world.authority.stats().await.unwrap();
    println!("{label}: authority {stats}");
    assert_eq!(stats["distinct_keys_created"], n, "{label}");
    assert_eq!(
        stats["created_per_key_max"], 1,
        "{label}: a submission was created twice"
    );
    stats
}

async fn kill9_at_random_moments(backend: Backend, n: usize, kills: usize, rng: &mut Lcg) {
    let mut world = World::start(options(backend)).await.unwrap();
    world
        .authority
        .set_mode(json!({"mode": "slow", "delay_ms": 3}))
        .await
        .unwrap();
    let (envelopes, ids) = submissions(n);
    world.publish_many(&envelopes).await.unwrap();
    world.start_kurier().unwrap();
    for k in 0..kills {
        tokio::time::sleep(Duration::from_millis(300 + rng.next(1200))).await;
        // Once, the authority is down for a moment: submissions are parked
        // and the scheduler delivers them, across the kills that follow.
        if k == 1 {
            world.authority.fail_all(503).await;
        }
        if k == 2 {
            world
                .authority
                .set_mode(json!({"mode": "slow", "delay_ms": 3}))
                .await
                .unwrap();
        }
        let done = delivered_count(&world).await;
        world.kurier.as_mut().unwrap().kill9();
        println!("{backend:?}: kill -9 #{} after {done} delivered", k + 1);
        world.start_kurier().unwrap();
    }
    await_all_delivered(&world, &ids, Duration::from_secs(240)).await;
    assert_eq!(world.queue_ready().await.unwrap(), 0);
    let stats = assert_created_once(&world, n, &format!("{backend:?} after {kills} kills")).await;
    let resent = stats["requests"].as_u64().unwrap_or(0) as usize - n;
    println!(
        "{backend:?}: {kills} kills survived, {n} submissions checked, 0 created twice, \
         {resent} requests beyond one per submission (in-place retries, parking, and re-sends after a kill answered 409: {})",
        stats["conflicts"]
    );
    world
        .kurier
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(20));
}

async fn postgres_restart_during_a_run(n: usize) {
    let mut world = World::start(options(Backend::Postgres)).await.unwrap();
    world
        .authority
        .set_mode(json!({"mode": "slow", "delay_ms": 10}))
        .await
        .unwrap();
    let (envelopes, ids) = submissions(n);
    world.publish_many(&envelopes).await.unwrap();
    world.start_kurier().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered_count(&world).await < n / 5 {
        assert!(Instant::now() < deadline, "the run does not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        delivered_count(&world).await < n,
        "the run finished before the restart"
    );
    // Down for longer than the pool's acquire timeout (10 s), so that Kurier
    // really meets a missing database, not only a reconnect.
    service_command("KURIER_PG_CTL", "stop -m fast");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let services = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/services.sh");
    let started = std::process::Command::new("bash")
        .args([services, "--postgres"])
        .status()
        .expect("services.sh runs");
    assert!(started.success(), "PostgreSQL did not start again");
    println!("PostgreSQL was down for 12 s during the run");
    await_all_delivered(&world, &ids, Duration::from_secs(240)).await;
    assert_created_once(&world, n, "PostgreSQL restart").await;
    let log = std::fs::read_to_string(world.log_path()).unwrap();
    assert!(
        log.contains("cannot commit")
            || log.contains("cannot check the receipts")
            || log.contains("cannot claim"),
        "Kurier saw the database go away"
    );
    world
        .kurier
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(20));
}

async fn two_instances_share_the_work(n: usize) {
    let mut o = options(Backend::Postgres);
    o.prefetch = 8;
    let mut world = World::start(o).await.unwrap();
    world
        .authority
        .set_mode(json!({"mode": "slow", "delay_ms": 10}))
        .await
        .unwrap();
    world.start_kurier().unwrap();
    let second_log = world.start_extra_instance().unwrap();
    // Both consume before the work arrives: RabbitMQ shares it out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (envelopes, ids) = submissions(n);
    world.publish_many(&envelopes).await.unwrap();
    await_all_delivered(&world, &ids, Duration::from_secs(240)).await;
    assert_created_once(&world, n, "two instances").await;
    let first = std::fs::read_to_string(world.log_path()).unwrap();
    let second = std::fs::read_to_string(&second_log).unwrap();
    let count = |log: &str| {
        log.lines()
            .filter(|l| l.contains("submission finished"))
            .count()
    };
    println!(
        "two instances: {} and {} submissions finished",
        count(&first),
        count(&second)
    );
    let tail: Vec<&str> = second.lines().rev().take(15).collect();
    assert!(
        count(&first) > 0 && count(&second) > 0,
        "both instances worked; the second instance's log ends:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(count(&first) + count(&second) >= n);
}

async fn memory_stays_bounded_with_an_authority_down(n: usize) {
    let mut o = options(Backend::Sqlite);
    o.log = "warn";
    let mut world = World::start(o).await.unwrap();
    world.authority.fail_all(503).await;
    let (envelopes, _) = submissions(n);
    for chunk in envelopes.chunks(10_000) {
        world.publish_many(chunk).await.unwrap();
    }
    world.start_kurier().unwrap();
    let pid = world.kurier.as_ref().unwrap().child.id();
    let store = world.store().await.unwrap();
    let mut samples: Vec<(usize, u64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let parked = store
            .parked(None, 1_000_000)
            .await
            .map(|p| p.len())
            .unwrap_or(0);
        if let Some((rss, _)) = rss_kib(pid) {
            samples.push((parked, rss));
        }
        if parked == n {
            break;
        }
        assert!(Instant::now() < deadline, "{parked} of {n} parked");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, peak) = rss_kib(pid).unwrap();
    let quarter = samples
        .iter()
        .find(|(p, _)| *p >= n / 4)
        .map(|(_, r)| *r)
        .unwrap_or(0);
    let last = samples.last().map(|(_, r)| *r).unwrap_or(0);
    println!(
        "memory with {n} submissions waiting and the authority down: RSS {} MiB at 25 %, {} MiB at the end, peak {} MiB",
        quarter / 1024,
        last / 1024,
        peak / 1024
    );
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    assert!(
        last < quarter + 48 * 1024,
        "RSS grew from {quarter} KiB to {last} KiB while the backlog was parked"
    );
    world
        .kurier
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_created_twice_under_faults() {
    let n = env_number("KURIER_FAULT_SUBMISSIONS", 1000);
    let kills = env_number("KURIER_FAULT_KILLS", 5);
    let seed = std::env::var("KURIER_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("fault schedule seed {seed} (KURIER_FAULT_SEED to repeat)");
    let mut rng = Lcg(seed);
    // KURIER_FAULT_ONLY=kill,postgres,instances,memory runs a selection.
    let only = std::env::var("KURIER_FAULT_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|s| s.trim() == name);
    if run("kill") {
        kill9_at_random_moments(Backend::Sqlite, n, kills, &mut rng).await;
        kill9_at_random_moments(Backend::Postgres, n, kills, &mut rng).await;
    }
    if run("postgres") {
        postgres_restart_during_a_run(n / 2).await;
    }
    if run("instances") {
        two_instances_share_the_work(n).await;
    }
    if run("memory") {
        let m = env_number("KURIER_MEMORY_SUBMISSIONS", 5000);
        memory_stays_bounded_with_an_authority_down(m).await;
    }
}
