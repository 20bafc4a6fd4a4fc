//! Delivery at the rate each authority can take, with Kurier's own delivery
//! defaults (no `[retry]` keys, no `prefetch`: what a new user has):
//!
//! - `fail_first_3`: an authority that answers the first 3 attempts of each
//!   submission 503 with `Retry-After: 1`;
//! - `flaky_20`: one that refuses 20 % of all requests at random (503, no
//!   `Retry-After`), beside a healthy one in the same run;
//! - `capacity`: one that serves 8 requests at a time (50 ms each, 160
//!   requests/s) and refuses the 9th at once with a bare 503. (At 20 ms each
//!   its 400/s would be about Kurier's whole end-to-end rate with the test
//!   harness on 2 cores, and the figure would measure the machine, not the
//!   limiter: see `docs/PERFORMANCE.md`.)
//! - `down_then_back`: one that is down (503, no `Retry-After`) for 30 s and
//!   then healthy;
//! - `kill9_during_flaky`: `kill -9` of Kurier three times while it delivers
//!   to the flaky authority (PostgreSQL), at 1/6, 1/2 and 5/6 delivered.
//!
//! Each asserts correctness only, with generous deadlines: every submission
//! delivered, accepted as new (201) by the authority exactly once, exactly
//! one terminal receipt event that matches the receipt, events numbered
//! (`seq`, message id `<submission_id>.<seq>`). Speed is a benchmark matter:
//! each scenario prints its figures as one line starting with `FIGURE `, and
//! `deploy/local/bench-delivery.sh` compares them with the targets. For
//! figures run the scenarios one at a time:
//!
//! ```sh
//! cargo test --release -p kurier-e2e --test rate -- --nocapture --test-threads=1
//! ```
//!
//! `KURIER_RATE_DEADLINE_SECS` (default 180) bounds each wait for deliveries.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kurier_e2e::evidence::{self, EventLog, Expect, path_stat};
use kurier_e2e::{Backend, World, WorldOptions, fresh, json};

fn deadline() -> Duration {
    Duration::from_secs(
        std::env::var("KURIER_RATE_DEADLINE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(180),
    )
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// A `[[destinations]]` table on a path of the test authority.
fn destination(id: &str, path: &str) -> String {
    format!(
        "\n[[destinations]]\nid = \"{id}\"\nadapter = \"xsozial-hzl\"\nendpoint = \"{{AUTHORITY}}{path}\"\nca_file = \"{{CA}}\"\nclient_cert_file = \"{{CERT}}\"\nclient_key_file = \"{{KEY}}\"\n"
    )
}

/// `n` fresh submissions for a destination.
fn submissions(destination: &str, n: usize) -> (Vec<serde_json::Value>, HashSet<String>) {
    let mut ids = HashSet::new();
    let envelopes = (0..n)
        .map(|_| {
            let mut e = fresh("hzl-minimal.json");
            e["destination"] = json!(destination);
            ids.insert(e["submission_id"].as_str().unwrap().to_owned());
            e
        })
        .collect();
    (envelopes, ids)
}

/// A world with Kurier's delivery defaults and the given destinations, its
/// event log, and Kurier running and ready.
async fn world_with(backend: Backend, destinations: &[(&str, &str)]) -> (World, EventLog) {
    let mut options = WorldOptions::shipped(backend);
    options.extra_config = destinations
        .iter()
        .map(|(id, path)| destination(id, path))
        .collect();
    let mut world = World::start(options).await.unwrap();
    let events = EventLog::start(&world).await.unwrap();
    world.start_kurier().unwrap();
    world.await_ready(Duration::from_secs(60)).await.unwrap();
    (world, events)
}

/// When each submission got its receipt (any status), measured from `t0`;
/// returns when all have one or at the deadline.
async fn await_receipts(
    world: &World,
    ids: &HashSet<String>,
    t0: Instant,
    timeout: Duration,
) -> HashMap<String, Duration> {
    let mut done: HashMap<String, Duration> = HashMap::new();
    let deadline = Instant::now() + timeout;
    let mut store = None;
    while done.len() < ids.len() && Instant::now() < deadline {
        if store.is_none() {
            store = world.store().await.ok();
        }
        // An error: the tables appear once Kurier has migrated.
        if let Some(s) = &store
            && let Ok(rows) = s.receipts(None, 10_000_000).await
        {
            let at = t0.elapsed();
            for r in rows {
                if ids.contains(r.submission_id.as_str()) {
                    done.entry(r.submission_id.to_string()).or_insert(at);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(s) = store {
        s.close().await;
    }
    done
}

/// Seconds to the last receipt, or `NA` when not all arrived.
fn seconds_to_last(done: &HashMap<String, Duration>, ids: &HashSet<String>) -> String {
    if done.len() < ids.len() {
        return "NA".into();
    }
    done.values()
        .max()
        .map(|d| format!("{:.1}", d.as_secs_f64()))
        .unwrap_or_else(|| "NA".into())
}

fn per_delivery(requests: u64, delivered: usize) -> String {
    if delivered == 0 {
        return "NA".into();
    }
    format!("{:.2}", requests as f64 / delivered as f64)
}

fn delivered_of(
    receipts: &HashMap<String, kurier::store::Receipt>,
    ids: &HashSet<String>,
) -> usize {
    ids.iter()
        .filter(|id| receipts.get(*id).is_some_and(|r| r.status == "delivered"))
        .count()
}

/// What a scenario measured once its receipts arrived (or the deadline).
struct Measured {
    /// When each submission got its receipt, from the scenario's start.
    done: HashMap<String, Duration>,
    receipts: HashMap<String, kurier::store::Receipt>,
    stats: serde_json::Value,
}

impl Measured {
    /// Wait for the receipts of `ids` (from `t0`), then read receipts and
    /// the authority's stats.
    async fn after(world: &World, ids: &HashSet<String>, t0: Instant) -> Measured {
        let done = await_receipts(world, ids, t0, deadline()).await;
        Measured {
            done,
            receipts: evidence::receipts(world).await,
            stats: world.authority.stats().await.unwrap(),
        }
    }

    fn delivered(&self, ids: &HashSet<String>) -> usize {
        delivered_of(&self.receipts, ids)
    }

    /// Seconds to the last receipt of `ids`, or `NA`.
    fn seconds(&self, ids: &HashSet<String>) -> String {
        let mine: HashMap<String, Duration> = self
            .done
            .iter()
            .filter(|(id, _)| ids.contains(*id))
            .map(|(id, d)| (id.clone(), *d))
            .collect();
        seconds_to_last(&mine, ids)
    }

    fn stat(&self, path: &str, field: &str) -> u64 {
        path_stat(&self.stats, path, field)
    }

    /// Requests on `path` per delivered submission of `ids`.
    fn per_delivery(&self, path: &str, ids: &HashSet<String>) -> String {
        per_delivery(self.stat(path, "requests"), self.delivered(ids))
    }
}

/// Wait for the events of `ids`, check the exactly-once evidence, print the
/// problems, the events figure and the delivery gauges, stop Kurier, and
/// assert: all `ids` delivered, the evidence sound.
async fn conclude(
    mut world: World,
    events: EventLog,
    ids: &HashSet<String>,
    delivered: usize,
    label: &str,
) {
    let missing = events.await_terminal(ids, Duration::from_secs(30)).await;
    events
        .settle(Duration::from_secs(1), Duration::from_secs(10))
        .await;
    let receipts = evidence::receipts(&world).await;
    let stats = world.authority.stats().await.unwrap();
    let verdict = evidence::check(
        ids,
        &receipts,
        &events.snapshot(),
        &stats,
        Expect::default(),
    );
    println!(
        "FIGURE {label}_events submissions={} events={} without_terminal_event={missing} terminal_copies={} accepted_twice={}",
        ids.len(),
        verdict.events,
        verdict.terminal_copies,
        stats["accepted_twice"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0)
    );
    for line in verdict.lines() {
        println!("{label}: {line}");
    }
    // The delivery gauges as they ended (the concurrency limit per
    // destination, once Kurier exports one).
    if let Ok(metrics) = world.admin_request("GET", "/metrics", false, None).await {
        for line in metrics.body.lines().filter(|l| {
            !l.starts_with('#')
                && (l.contains("limit") || l.contains("circuit") || l.contains("in_flight"))
        }) {
            println!("{label}: metric {line}");
        }
    }
    if let Some(k) = world.kurier.as_mut() {
        k.terminate(Duration::from_secs(20));
    }
    events.close().await;
    assert_eq!(
        delivered,
        ids.len(),
        "{label}: {delivered} of {} delivered within {:?}; log {}",
        ids.len(),
        deadline(),
        world.log_path().display()
    );
    verdict.assert_ok(label);
}

// ---------------------------------------------------------------------------

async fn fail_first_3(backend: Backend) {
    const N: usize = 30;
    let b = backend_name(backend);
    let (world, events) = world_with(backend, &[("fail-first-3", "/fail/3")]).await;
    let (envelopes, ids) = submissions("fail-first-3", N);
    let t0 = Instant::now();
    world.publish_many(&envelopes).await.unwrap();
    let m = Measured::after(&world, &ids, t0).await;
    let delivered = m.delivered(&ids);
    println!(
        "FIGURE fail_first_3 backend={b} delivered={delivered}/{N} seconds={} requests_per_delivery={} requests={}",
        m.seconds(&ids),
        m.per_delivery("/fail/3", &ids),
        m.stat("/fail/3", "requests")
    );
    conclude(world, events, &ids, delivered, &format!("fail_first_3_{b}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_first_3_sqlite() {
    fail_first_3(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_first_3_postgres() {
    fail_first_3(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_20_beside_a_healthy_authority() {
    const N: usize = 300;
    let (world, events) = world_with(
        Backend::Sqlite,
        &[("flaky-20", "/flaky/20"), ("healthy", "/healthy")],
    )
    .await;
    let (flaky_envelopes, flaky) = submissions("flaky-20", N);
    let (healthy_envelopes, healthy) = submissions("healthy", N);
    // Interleaved, as portals would publish them.
    let envelopes: Vec<serde_json::Value> = flaky_envelopes
        .into_iter()
        .zip(healthy_envelopes)
        .flat_map(|(a, b)| [a, b])
        .collect();
    let all: HashSet<String> = flaky.union(&healthy).cloned().collect();
    let t0 = Instant::now();
    world.publish_many(&envelopes).await.unwrap();
    let m = Measured::after(&world, &all, t0).await;
    println!(
        "FIGURE flaky_20 delivered={}/{N} seconds={} requests_per_delivery={} healthy_delivered={}/{N} healthy_seconds={} healthy_requests_per_delivery={}",
        m.delivered(&flaky),
        m.seconds(&flaky),
        m.per_delivery("/flaky/20", &flaky),
        m.delivered(&healthy),
        m.seconds(&healthy),
        m.per_delivery("/healthy", &healthy),
    );
    let delivered = m.delivered(&all);
    conclude(world, events, &all, delivered, "flaky_20").await;
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_8_at_50ms() {
    const N: usize = 1000;
    const PATH: &str = "/capacity/8/50";
    let (world, events) = world_with(Backend::Sqlite, &[("capacity-8", PATH)]).await;
    let (envelopes, ids) = submissions("capacity-8", N);
    let t0 = Instant::now();
    world.publish_many(&envelopes).await.unwrap();
    let m = Measured::after(&world, &ids, t0).await;
    let (requests, served, refused) = (
        m.stat(PATH, "requests"),
        m.stat(PATH, "served"),
        m.stat(PATH, "refused"),
    );
    let elapsed = m.done.values().max().copied().unwrap_or_default();
    let utilisation = if elapsed.is_zero() {
        0.0
    } else {
        served as f64 * 0.050 / (8.0 * elapsed.as_secs_f64())
    };
    let refused_share = if requests == 0 {
        0.0
    } else {
        refused as f64 / requests as f64
    };
    let delivered = m.delivered(&ids);
    println!(
        "FIGURE capacity delivered={delivered}/{N} seconds={} utilisation={utilisation:.2} refused_share={refused_share:.2} requests={requests} served={served} refused={refused} max_in_service={} max_in_flight={} requests_per_delivery={}",
        m.seconds(&ids),
        m.stat(PATH, "max_in_service"),
        m.stat(PATH, "max_in_flight"),
        m.per_delivery(PATH, &ids),
    );
    conclude(world, events, &ids, delivered, "capacity").await;
}

// ---------------------------------------------------------------------------

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_30s_then_back() {
    const N: usize = 200;
    const PATH: &str = "/down-then-back";
    let (world, events) = world_with(Backend::Sqlite, &[("down-then-back", PATH)]).await;
    world.authority.fail_all(503).await;
    let (envelopes, ids) = submissions("down-then-back", N);
    let down_at = epoch_ms();
    let t_down = Instant::now();
    world.publish_many(&envelopes).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(t_down.elapsed())).await;
    // The last 20 s of the outage: the circuit had 10 s to open.
    let log = world.authority.request_log().await.unwrap();
    let window = (down_at + 10_000)..(down_at + 30_000);
    let in_window = log
        .iter()
        .filter(|r| r["path"] == PATH)
        .filter(|r| window.contains(&r["received_at_ms"].as_u64().unwrap_or(0)))
        .count();
    let during_outage = log.iter().filter(|r| r["path"] == PATH).count();
    world
        .authority
        .set_mode(json!({"mode": "accept"}))
        .await
        .unwrap();
    let m = Measured::after(&world, &ids, Instant::now()).await;
    let parked_seen = events
        .snapshot()
        .iter()
        .filter(|e| e.status() == "parked")
        .map(|e| e.submission_id().to_owned())
        .collect::<HashSet<_>>()
        .len();
    let delivered = m.delivered(&ids);
    println!(
        "FIGURE down delivered={delivered}/{N} requests_per_second_down={:.2} requests_during_outage={during_outage} seconds_after_back={} requests_per_delivery={} parked_events={parked_seen}",
        in_window as f64 / 20.0,
        m.seconds(&ids),
        m.per_delivery(PATH, &ids),
    );
    conclude(world, events, &ids, delivered, "down").await;
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_flaky_postgres() {
    const N: usize = 600;
    // Killed when these shares are delivered: always in the middle of work.
    const KILL_AT: [usize; 3] = [N / 6, N / 2, N * 5 / 6];
    let (mut world, events) = world_with(Backend::Postgres, &[("flaky-20", "/flaky/20")]).await;
    let (envelopes, ids) = submissions("flaky-20", N);
    let t0 = Instant::now();
    world.publish_many(&envelopes).await.unwrap();
    let mut delivered_at_kill = Vec::new();
    let store = world.store().await.unwrap();
    for threshold in KILL_AT {
        let until = Instant::now() + deadline();
        let so_far = loop {
            let n = store
                .receipts(None, 1_000_000)
                .await
                .map(|r| r.iter().filter(|r| r.status == "delivered").count())
                .unwrap_or(0);
            if n >= threshold || Instant::now() >= until {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        world.kurier.as_mut().unwrap().kill9();
        delivered_at_kill.push(so_far);
        world.start_kurier().unwrap();
    }
    store.close().await;
    let m = Measured::after(&world, &ids, t0).await;
    let delivered = m.delivered(&ids);
    println!(
        "FIGURE kill9_flaky backend=postgres delivered={delivered}/{N} kills={} delivered_at_kills={} seconds={} requests_per_delivery={} conflicts={}",
        KILL_AT.len(),
        delivered_at_kill
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(","),
        m.seconds(&ids),
        m.per_delivery("/flaky/20", &ids),
        m.stat("/flaky/20", "conflicts"),
    );
    conclude(world, events, &ids, delivered, "kill9_flaky").await;
    assert!(
        delivered_at_kill.iter().all(|n| *n < N),
        "a kill came after the last delivery ({delivered_at_kill:?}): nothing was interrupted"
    );
}
