//! Scale-out on a RabbitMQ cluster (issue 13): three RabbitMQ nodes, the
//! quorum queue replicated on all three, two Kurier instances on one
//! PostgreSQL database. In the middle of 5,000 submissions the RabbitMQ node
//! that both instances are connected to (and that leads the queue) is killed
//! with `kill -9`, then one of the two instances, which is started again a
//! few seconds later (`KURIER_TEST_CLUSTER_RESTART=0`: not started again).
//! Nothing is lost (every submission has exactly one terminal receipt and
//! event) and the authority accepts none twice.
//!
//! Runs against the cluster of `deploy/local/cluster.sh test`, which sets
//! `KURIER_TEST_CLUSTER_URLS`, `KURIER_TEST_CLUSTER_PID_FILES` and
//! `KURIER_TEST_CLUSTER_CTL`; without them the test says it is skipped and
//! passes (`deploy/local/test.sh` does not start a cluster). The failover
//! past a node that is down runs everywhere, on one node.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kurier_e2e::evidence::{self, EventLog, Expect};
use kurier_e2e::{Backend, World, WorldOptions, fresh};

const SUBMISSIONS: usize = 5_000;
/// Share of the submissions delivered when the kills happen.
const KILL_AT: usize = SUBMISSIONS * 3 / 10;

/// The cluster `deploy/local/cluster.sh` started.
struct Cluster {
    /// One AMQP URL per node, in node order.
    urls: Vec<String>,
    /// The Erlang VM's pid file per node, in the same order.
    pid_files: Vec<PathBuf>,
    /// `rabbitmqctl` with the cluster's cookie (`-n <node>` is added).
    ctl: String,
    /// Node names, in the same order.
    nodes: Vec<String>,
}

fn cluster() -> Option<Cluster> {
    let list = |var: &str| -> Option<Vec<String>> {
        let value = std::env::var(var).ok()?;
        Some(value.split(',').map(|s| s.trim().to_owned()).collect())
    };
    let urls = list("KURIER_TEST_CLUSTER_URLS")?;
    let pid_files = list("KURIER_TEST_CLUSTER_PID_FILES")?
        .into_iter()
        .map(PathBuf::from)
        .collect::<Vec<_>>();
    let nodes = list("KURIER_TEST_CLUSTER_NODES")?;
    let ctl = std::env::var("KURIER_TEST_CLUSTER_CTL").ok()?;
    assert!(
        urls.len() == 3 && pid_files.len() == 3 && nodes.len() == 3,
        "deploy/local/cluster.sh names three nodes"
    );
    Some(Cluster {
        urls,
        pid_files,
        ctl,
        nodes,
    })
}

impl Cluster {
    /// `rabbitmqctl -n <node> <command>`'s output.
    fn ctl(&self, node: usize, command: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{} -n {} -q {command}", self.ctl, self.nodes[node]))
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            out.status.success(),
            "rabbitmqctl {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kill -9` the Erlang VM of a node.
    fn kill9(&self, node: usize) {
        let pid: i32 = std::fs::read_to_string(&self.pid_files[node])
            .expect("the node's pid file")
            .trim()
            .parse()
            .expect("a pid");
        // SAFETY: kill(2) of the RabbitMQ node this test's cluster started.
        let killed = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(killed, 0, "kill -9 {pid} ({})", self.nodes[node]);
    }
}

/// Submissions with any terminal receipt.
async fn finished(store: &kurier::store::Store) -> usize {
    store
        .receipts(None, 100_000)
        .await
        .map(|r| r.len())
        .unwrap_or(0)
}

async fn wait_for(store: &kurier::store::Store, n: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let done = finished(store).await;
        if done >= n || Instant::now() >= deadline {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_node_and_a_kurier_instance_killed_mid_run_lose_nothing() {
    let Some(cluster) = cluster() else {
        println!(
            "SKIPPED: no RabbitMQ cluster (KURIER_TEST_CLUSTER_URLS is not set); run `deploy/local/cluster.sh test`"
        );
        return;
    };
    // Node 2 is the victim. Kurier's list starts with it, so both instances
    // connect there first, and so does the world's topology declaration: the
    // queue's leader is placed on the declaring node (client-local).
    let victim = 1;
    let mut options = WorldOptions::new(Backend::Postgres);
    options.amqp_urls = vec![
        cluster.urls[1].clone(),
        cluster.urls[2].clone(),
        cluster.urls[0].clone(),
    ];
    options.prefetch = 64;
    options.log = "info";
    let mut world = World::start(options).await.unwrap();
    // The portal's view: receipt events on a queue of node 1, which stays up
    // (the event log's queue is a classic queue on the node it is declared on).
    world.config.amqp.urls = Some(cluster.urls.clone());
    let events = EventLog::start(&world).await.unwrap();
    let queue = world.config.amqp.queue.clone();

    let listing = cluster.ctl(0, "list_queues name type members leader");
    let line = listing
        .lines()
        .find(|l| l.starts_with(&format!("{queue}\t")))
        .unwrap_or_else(|| panic!("{queue} not listed: {listing}"));
    println!("queue: {line}");
    for node in &cluster.nodes {
        assert!(
            line.contains(node.as_str()),
            "{queue} has no member on {node}: {line}"
        );
    }
    assert!(line.contains("quorum"), "{line}");

    let mut ids = HashSet::new();
    let envelopes: Vec<serde_json::Value> = (0..SUBMISSIONS)
        .map(|_| {
            let e = fresh("hzl-minimal.json");
            ids.insert(e["submission_id"].as_str().unwrap().to_owned());
            e
        })
        .collect();
    let published = Instant::now();
    world.publish_many(&envelopes).await.unwrap();
    println!(
        "published {SUBMISSIONS} in {:.1} s",
        published.elapsed().as_secs_f64()
    );

    let store = world.store().await.unwrap();
    let started = Instant::now();
    world.start_kurier().unwrap();
    let second_log = world.start_extra_instance().unwrap();

    let at_kill = wait_for(&store, KILL_AT, Duration::from_secs(300)).await;
    assert!(
        at_kill >= KILL_AT,
        "{at_kill} of {SUBMISSIONS} finished after 300 s; log {}",
        world.log_path().display()
    );
    assert!(
        at_kill < SUBMISSIONS,
        "the run ended before the kills; make it longer"
    );
    cluster.kill9(victim);
    let killed_at = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    world.kurier.as_mut().expect("instance 1 runs").kill9();
    let instance_killed_at = finished(&store).await;
    // KURIER_TEST_CLUSTER_RESTART=0: the surviving instance finishes alone.
    let restart = std::env::var("KURIER_TEST_CLUSTER_RESTART").map_or(true, |v| v != "0");
    if restart {
        tokio::time::sleep(Duration::from_secs(3)).await;
        world.start_kurier().unwrap();
    } else {
        world.kurier = None;
    }

    let done = wait_for(&store, SUBMISSIONS, Duration::from_secs(600)).await;
    let seconds = started.elapsed().as_secs_f64();
    let missing = events.await_terminal(&ids, Duration::from_secs(120)).await;
    events
        .settle(Duration::from_secs(3), Duration::from_secs(20))
        .await;
    let receipts = evidence::receipts(&world).await;
    let stats = world.authority.stats().await.unwrap();
    let verdict = evidence::check(
        &ids,
        &receipts,
        &events.snapshot(),
        &stats,
        Expect::default(),
    );
    let delivered = receipts
        .values()
        .filter(|r| r.status == "delivered")
        .count();
    let accepted_twice = stats["created_per_key"].as_object().map_or(0, |keys| {
        keys.values().filter(|n| n.as_u64() > Some(1)).count()
    });
    let lost = ids
        .iter()
        .filter(|id| receipts.get(*id).is_none_or(|r| r.status != "delivered"))
        .count();
    let logs = [world.log_path(), second_log];
    let failovers: usize = logs
        .iter()
        .map(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .matches("connected to RabbitMQ")
                .count()
        })
        .sum();
    println!(
        "FIGURE cluster nodes=3 instances=2 killed_instance_restarted={restart} submissions={SUBMISSIONS} seconds={seconds:.1} delivered={delivered} lost={lost} accepted_twice={accepted_twice} events={} terminal_copies={} without_terminal_event={missing} finished_at_node_kill={at_kill} finished_at_instance_kill={instance_killed_at} node_killed_at_s={:.1} rabbitmq_connections_made={failovers}",
        verdict.events,
        verdict.terminal_copies,
        killed_at.as_secs_f64(),
    );
    println!(
        "FIGURE cluster_rate submissions_per_s={:.0} (2 cores shared by 3 RabbitMQ nodes, PostgreSQL, the authority, 2 Kurier instances and the test: more instances only share the same CPU; not a scale-out figure)",
        done as f64 / seconds
    );
    for line in verdict.lines() {
        println!("{line}");
    }
    println!(
        "queue after the kill: {}",
        cluster
            .ctl(0, "list_queues name members leader online")
            .lines()
            .find(|l| l.starts_with(&format!("{queue}\t")))
            .unwrap_or("(not listed)")
    );
    events.close().await;
    store.close().await;
    // The cluster outlives the test: leave no replicated queue behind.
    cluster.ctl(0, &format!("delete_queue {queue}"));
    if let Some(k) = world.kurier.as_mut() {
        k.terminate(Duration::from_secs(20));
    }
    for k in &mut world.extra_instances {
        k.terminate(Duration::from_secs(20));
    }

    assert_eq!(
        done,
        SUBMISSIONS,
        "finished within 600 s; logs {}",
        world.log_path().display()
    );
    assert_eq!(lost, 0, "lost submissions");
    assert_eq!(accepted_twice, 0, "submissions accepted twice");
    // Both instances connected (consumer and relay each), the survivor again
    // after the node died, and the restarted instance once more.
    assert!(
        failovers >= 4 + 2 + if restart { 2 } else { 0 },
        "fewer connections than failover needs: {failovers}"
    );
    verdict.assert_ok("cluster: a node and an instance killed");
}

/// `[amqp] urls` with a first node that is down: Kurier passes over it (and
/// says so) and delivers through the next. Needs one RabbitMQ node only: the
/// first of the cluster's, else `KURIER_TEST_AMQP_URL` (deploy/local/test.sh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_down_is_passed_over() {
    let up = cluster().map_or_else(kurier_e2e::amqp_url, |c| c.urls[0].clone());
    // A port nothing listens on once the listener is dropped.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut options = WorldOptions::new(Backend::Sqlite);
    options.amqp_urls = vec![format!("amqp://guest:guest@127.0.0.1:{down}/%2f"), up];
    options.log = "info";
    let mut world = World::start(options).await.unwrap();
    let out = world.kurier_cli(&["check-config"]).unwrap();
    assert!(out.status.success(), "{}", kurier_e2e::stderr(&out));
    world.start_kurier().unwrap();
    let e = fresh("hzl-minimal.json");
    world.publish_envelope(&e).await.unwrap();
    let id = e["submission_id"].as_str().unwrap();
    let receipt = world
        .await_receipt(id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(receipt.status, "delivered");
    let log = std::fs::read_to_string(world.log_path()).unwrap();
    assert!(
        log.contains(&format!("amqp://127.0.0.1:{down}/%2f"))
            && log.contains("RabbitMQ node not reachable; trying the next"),
        "Kurier says which node it passed over: {log}"
    );
    assert!(!log.contains("guest:guest"), "no credentials in the log");
    let kurier = world.kurier.as_mut().unwrap();
    assert_eq!(kurier.terminate(Duration::from_secs(20)), Some(0));
}
