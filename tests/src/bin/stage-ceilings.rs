//! `stage-ceilings`: what each stage Kurier depends on sustains alone on this
//! machine, so that Kurier's end-to-end rate can be read against it
//! (`deploy/local/bench.sh`, docs/PERFORMANCE.md).
//!
//! - `rabbitmq`: persistent publish+confirm into a quorum queue, consume+ack
//!   from it, and the per-submission ceiling: the three flows one submission
//!   costs RabbitMQ (consume+ack of the submission, publish+confirm of its
//!   receipt event, consume+ack of the event by the portal) run together,
//!   with the samples' sizes and a real receipt event's size.
//! - `authority`: mTLS requests per second from Kurier's own delivery client
//!   (`kurier::delivery::Deliverer`, one keep-alive pool) at Kurier's
//!   per-destination concurrency.
//! - `database`: receipts committed per second through Kurier's own group
//!   commit (`kurier::store::Recorder`, the receipt, outbox and parked
//!   statements of `store.rs`) with as many submissions waiting on it as
//!   the prefetch lets in, while a relay drains the outbox as Kurier's does.
//!
//! Each prints one `FIGURE <name> key=value …` line per measurement. Bodies
//! are the sample envelopes (synthetic test data); nothing is logged of them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

#[derive(Parser)]
#[command(about = "Measure the ceiling of each stage Kurier depends on, alone")]
struct Cli {
    #[command(subcommand)]
    stage: Stage,
}

#[derive(Subcommand)]
enum Stage {
    /// RabbitMQ: publish+confirm, consume+ack, and one submission's share.
    Rabbitmq(RabbitArgs),
    /// The authority: mTLS requests/s from Kurier's delivery client.
    Authority(AuthorityArgs),
    /// The database: receipts/s through Kurier's group commit.
    Database(DatabaseArgs),
}

#[derive(clap::Args)]
struct RabbitArgs {
    /// Kurier configuration (AMQP URL and prefetch).
    #[arg(long, env = "KURIER_CONFIG", default_value = "kurier.toml")]
    config: PathBuf,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Sample envelopes whose bodies are published, in turn.
    #[arg(long = "sample", num_args = 1.., default_values = [
        "tests/samples/hzl-minimal.json", "tests/samples/hzl-full.json",
        "tests/samples/wbs-full.json", "tests/samples/buergergeld-wba.json"])]
    samples: Vec<PathBuf>,
    /// Publisher confirms awaited in batches of this size (as kurier-load).
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Submissions queued before the per-submission measurement starts.
    #[arg(long, default_value_t = 150_000)]
    prefill: u32,
}

#[derive(clap::Args)]
struct AuthorityArgs {
    /// Kurier configuration (the destination, its certificates and retry settings).
    #[arg(long, env = "KURIER_CONFIG", default_value = "kurier.toml")]
    config: PathBuf,
    /// Destination id (default: the first configured).
    #[arg(long)]
    destination: Option<String>,
    /// Requests in flight (default: the destination's max_in_flight).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds the measurement runs (after one second of warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Bytes of each request body (a rendered document is 2–6 KB).
    #[arg(long, default_value_t = 3072)]
    body_bytes: usize,
}

#[derive(clap::Args)]
struct DatabaseArgs {
    /// sqlite://FILE or postgres://… (migrated here; use a fresh one).
    #[arg(long)]
    url: String,
    /// Seconds the measurement runs (after one second of warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Submissions waiting on the group commit at once (Kurier: the prefetch).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// A label for the FIGURE line (sqlite, postgres).
    #[arg(long, default_value = "db")]
    label: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().stage {
        Stage::Rabbitmq(args) => rabbitmq(args).await,
        Stage::Authority(args) => authority(args).await,
        Stage::Database(args) => database(args).await,
    }
}

/// Counters read at the start and the end of a measurement window.
#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per second over a window, for counters read at its start and end.
fn rate(before: u64, after: u64, window: Duration) -> f64 {
    after.saturating_sub(before) as f64 / window.as_secs_f64().max(1e-9)
}

/// One second of warm-up, then `seconds`: the counters' rates over that window.
async fn window<const N: usize>(counters: [&Counter; N], seconds: f64) -> [f64; N] {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = counters.map(Counter::get);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let elapsed = t0.elapsed();
    let after = counters.map(Counter::get);
    std::array::from_fn(|i| rate(before[i], after[i], elapsed))
}

// ---------------------------------------------------------------- RabbitMQ

const BENCH_EXCHANGE: &str = "kurier.bench.submissions";
const BENCH_QUEUE: &str = "kurier.bench.intake";
const BENCH_RECEIPTS: &str = "kurier.bench.receipts";
const BENCH_PORTAL: &str = "bench-portal";

/// A sample's body and the routing key a portal would use for it.
struct Body {
    routing_key: String,
    bytes: Vec<u8>,
}

fn read_samples(paths: &[PathBuf]) -> anyhow::Result<Vec<Body>> {
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not JSON", p.display()))?;
            let routing_key = format!(
                "{}.{}",
                v["service"].as_str().unwrap_or("x"),
                v["destination"].as_str().unwrap_or("x")
            );
            Ok(Body { routing_key, bytes })
        })
        .collect()
}

/// A receipt event as Kurier's relay publishes it (same fields and size).
fn receipt_event() -> Vec<u8> {
    let receipt = bench_receipt(&uuid::Uuid::new_v4().to_string());
    let mut v: serde_json::Value =
        serde_json::from_slice(&kurier::store::events::terminal_event(&receipt))
            .unwrap_or_default();
    v["seq"] = serde_json::Value::from(1);
    serde_json::to_vec(&v).unwrap_or_default()
}

fn persistent(message_id: String) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(message_id.into())
}

/// The bench's exchanges and quorum queue, declared by Kurier's own
/// `declare_topology` under other names (the queue afresh).
async fn declare_bench_topology(
    channel: &Channel,
    amqp: &kurier::config::AmqpConfig,
) -> anyhow::Result<()> {
    channel
        .queue_delete(BENCH_QUEUE.into(), QueueDeleteOptions::default())
        .await?;
    let mut bench = amqp.clone();
    bench.exchange = BENCH_EXCHANGE.into();
    bench.queue = BENCH_QUEUE.into();
    bench.receipts_exchange = BENCH_RECEIPTS.into();
    kurier::intake::declare_topology(channel, &bench).await?;
    Ok(())
}

/// Publish persistent submissions with confirms in batches until `deadline`
/// or `limit` messages; how many were confirmed.
async fn publish_submissions(
    channel: &Channel,
    bodies: &[Body],
    batch: usize,
    deadline: Option<Instant>,
    limit: u64,
) -> anyhow::Result<u64> {
    let mut sent = 0u64;
    while sent < limit && deadline.is_none_or(|d| Instant::now() < d) {
        let mut confirms = Vec::with_capacity(batch);
        for _ in 0..batch.min((limit - sent) as usize).max(1) {
            let body = &bodies[(sent as usize + confirms.len()) % bodies.len()];
            let id = format!("bench-{}", sent as usize + confirms.len());
            confirms.push(
                channel
                    .basic_publish(
                        BENCH_EXCHANGE.into(),
                        body.routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        &body.bytes,
                        persistent(id),
                    )
                    .await?,
            );
        }
        for c in confirms {
            anyhow::ensure!(c.await?.is_ack(), "RabbitMQ refused a publication");
            sent += 1;
        }
    }
    Ok(sent)
}

async fn queue_length(channel: &Channel) -> anyhow::Result<u32> {
    let q = channel
        .queue_declare(
            BENCH_QUEUE.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count())
}

async fn rabbitmq(args: RabbitArgs) -> anyhow::Result<()> {
    let config = kurier::config::Config::load(&args.config)?;
    let amqp = &config.amqp;
    let bodies = read_samples(&args.samples)?;
    anyhow::ensure!(!bodies.is_empty(), "no --sample given");
    let mean_bytes = bodies.iter().map(|b| b.bytes.len()).sum::<usize>() / bodies.len();
    let event = receipt_event();
    let seconds = args.seconds;

    let portal_conn = kurier::intake::connect(amqp, "ceiling-portal").await?;
    let portal = kurier::intake::confirm_channel(&portal_conn).await?;
    declare_bench_topology(&portal, amqp).await?;

    // 1. A portal publishing persistent submissions with confirms.
    let started = Instant::now();
    let published = publish_submissions(
        &portal,
        &bodies,
        args.batch,
        Some(started + Duration::from_secs_f64(seconds)),
        u64::MAX,
    )
    .await?;
    let publish_rate = published as f64 / started.elapsed().as_secs_f64();
    println!(
        "FIGURE ceiling_rabbitmq_publish msgs_per_s={publish_rate:.0} messages={published} bytes={mean_bytes} confirm_batch={}",
        args.batch
    );

    // 2. A consumer with Kurier's prefetch, acking each message.
    let kurier_conn = kurier::intake::connect(amqp, "ceiling-intake").await?;
    let consumed = {
        let channel = kurier_conn.create_channel().await?;
        channel
            .basic_qos(amqp.prefetch, BasicQosOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                BENCH_QUEUE.into(),
                "ceiling-consume".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(seconds);
        let mut n = 0u64;
        while n < published {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, consumer.next()).await {
                Ok(Some(Ok(delivery))) => {
                    delivery.ack(BasicAckOptions::default()).await?;
                    n += 1;
                }
                _ => break,
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let _ = channel.close(200, "done".into()).await;
        (n, secs)
    };
    println!(
        "FIGURE ceiling_rabbitmq_consume msgs_per_s={:.0} messages={} prefetch={}",
        consumed.0 as f64 / consumed.1,
        consumed.0,
        amqp.prefetch
    );

    // 3. One submission's share: consume+ack the submission, publish+confirm
    // its receipt event (a connection of its own, as Kurier's relay), and the
    // portal's consume+ack of the event, all at once.
    let queued = queue_length(&portal).await?;
    if queued < args.prefill {
        publish_submissions(
            &portal,
            &bodies,
            args.batch,
            None,
            u64::from(args.prefill - queued),
        )
        .await?;
    }
    let acked = Arc::new(Counter::default());
    let confirmed = Arc::new(Counter::default());
    let received = Arc::new(Counter::default());
    let mut tasks = Vec::new();

    let mut portal_events = kurier_e2e::listen_for_events(
        &portal,
        BENCH_RECEIPTS,
        &[BENCH_PORTAL.to_owned()],
        "ceiling-portal",
    )
    .await?;
    let r = Arc::clone(&received);
    tasks.push(tokio::spawn(async move {
        while let Some(Ok(delivery)) = portal_events.next().await {
            if delivery.ack(BasicAckOptions::default()).await.is_err() {
                break;
            }
            r.add(1);
        }
    }));

    let (done, mut finished) = tokio::sync::mpsc::channel::<()>(4096);
    let relay_conn = kurier::intake::connect(amqp, "ceiling-relay").await?;
    let relay = kurier::intake::confirm_channel(&relay_conn).await?;
    let c = Arc::clone(&confirmed);
    tasks.push(tokio::spawn(async move {
        let mut batch = Vec::with_capacity(512);
        let mut id = 0u64;
        while finished.recv_many(&mut batch, 512).await > 0 {
            let mut confirms = Vec::with_capacity(batch.len());
            for _ in batch.drain(..) {
                id += 1;
                match relay
                    .basic_publish(
                        BENCH_RECEIPTS.into(),
                        BENCH_PORTAL.into(),
                        BasicPublishOptions::default(),
                        &event,
                        persistent(format!("event-{id}.1")),
                    )
                    .await
                {
                    Ok(confirm) => confirms.push(confirm),
                    Err(_) => return,
                }
            }
            for confirm in confirms {
                if !confirm.await.is_ok_and(|c| c.is_ack()) {
                    return;
                }
                c.add(1);
            }
        }
    }));

    let intake = kurier_conn.create_channel().await?;
    intake
        .basic_qos(amqp.prefetch, BasicQosOptions::default())
        .await?;
    let mut submissions = intake
        .basic_consume(
            BENCH_QUEUE.into(),
            "ceiling-intake".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let a = Arc::clone(&acked);
    tasks.push(tokio::spawn(async move {
        while let Some(Ok(delivery)) = submissions.next().await {
            if delivery.ack(BasicAckOptions::default()).await.is_err()
                || done.send(()).await.is_err()
            {
                break;
            }
            a.add(1);
        }
    }));

    let [acked_rate, confirmed_rate, received_rate] =
        window([&*acked, &*confirmed, &*received], seconds).await;
    for task in &tasks {
        task.abort();
    }
    let left = queue_length(&portal).await.unwrap_or(0);
    anyhow::ensure!(
        left > 0,
        "the queue ran empty during the per-submission measurement: raise --prefill"
    );
    println!(
        "FIGURE ceiling_rabbitmq_per_submission submissions_per_s={received_rate:.0} intake_acked_per_s={acked_rate:.0} events_confirmed_per_s={confirmed_rate:.0} events_consumed_per_s={received_rate:.0} event_bytes={} submission_bytes={mean_bytes}",
        receipt_event().len()
    );

    let _ = portal
        .queue_delete(BENCH_QUEUE.into(), QueueDeleteOptions::default())
        .await;
    for conn in [&relay_conn, &kurier_conn, &portal_conn] {
        let _ = conn.close(200, "done".into()).await;
    }
    Ok(())
}

// --------------------------------------------------------------- Authority

async fn authority(args: AuthorityArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = kurier::config::Config::load(&args.config)?;
    let destination = match &args.destination {
        Some(id) => config.destinations.iter().find(|d| &d.id == id),
        None => config.destinations.first(),
    }
    .context("no such destination in the configuration")?;
    let mut retry = config.retry.with_overrides(&destination.retry);
    let concurrency = args.concurrency.unwrap_or(retry.max_in_flight).max(1);
    // The limiter held open at the ceiling: this measures the authority, not
    // how fast the limiter finds it.
    retry.initial_in_flight = concurrency;
    retry.max_in_flight = concurrency;
    let deliverer = Arc::new(kurier::delivery::Deliverer::new(destination, retry)?);
    let mut body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><bench>".to_vec();
    body.resize(args.body_bytes.saturating_sub(8).max(body.len()), b'x');
    body.extend_from_slice(b"</bench>");
    let body = hyper::body::Bytes::from(body);

    let accepted = Arc::new(Counter::default());
    let other = Arc::new(Counter::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (d, body, ok, bad, stop) = (
            Arc::clone(&deliverer),
            body.clone(),
            Arc::clone(&accepted),
            Arc::clone(&other),
            Arc::clone(&stop),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let id = kurier::domain::id::SubmissionId::random();
                let request = kurier::delivery::Request {
                    submission_id: &id,
                    service: "hzl",
                    content_type: "application/xml; charset=UTF-8",
                    body: body.clone(),
                    traceparent: None,
                    attachments: &[],
                };
                let t0 = Instant::now();
                match d.attempt(&request, 1).await {
                    kurier::queue::decision::Outcome::Accepted { .. }
                    | kurier::queue::decision::Outcome::AlreadyAccepted { .. } => {
                        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                        ok.add(1);
                    }
                    _ => bad.add(1),
                }
            }
            latencies
        }));
    }
    let [rate_ok, rate_other] = window([&*accepted, &*other], args.seconds).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap_or_default());
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "FIGURE ceiling_authority requests_per_s={rate_ok:.0} failed_per_s={rate_other:.0} concurrency={concurrency} body_bytes={} p50_ms={:.2} p99_ms={:.2} destination={}",
        body.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        destination.id
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------- Database

/// A delivered receipt with the sizes and shapes of a real one.
fn bench_receipt(submission_id: &str) -> kurier::store::Receipt {
    let now = kurier::domain::time::Timestamp::parse("2026-12-02T10:00:00.123456Z")
        .expect("a fixed time");
    kurier::store::Receipt {
        submission_id: kurier::domain::id::SubmissionId::from_stored(submission_id),
        service: Some("hzl".into()),
        destination: Some(kurier_e2e::did("sozialamt-koeln")),
        portal: Some("sozialplattform".into()),
        status: kurier::domain::status::ReceiptStatus::Delivered,
        reason_code: None,
        reason_detail: None,
        http_status: Some(201),
        reference: Some("2026-hzl-123456".into()),
        attempts: 1,
        received_sha256: "ab".repeat(32),
        sent_sha256: Some("cd".repeat(32)),
        submitted_at: Some(now.to_string()),
        received_at: now,
        completed_at: now,
    }
}

async fn database(args: DatabaseArgs) -> anyhow::Result<()> {
    let store = kurier::store::Store::connect(&kurier::config::DatabaseConfig {
        url: args.url.clone(),
        max_connections: 8,
    })
    .await?;
    store.migrate().await?;
    let recorder = kurier::store::Recorder::spawn(store.clone());
    let committed = Arc::new(Counter::default());
    let relayed = Arc::new(Counter::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (recorder, committed, stop) =
            (recorder.clone(), Arc::clone(&committed), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let id = uuid::Uuid::new_v4().to_string();
                let record = kurier::store::Record::Receipt(bench_receipt(&id));
                if recorder.record(record).await.is_err() {
                    break;
                }
                committed.add(1);
            }
        }));
    }
    // The relay's side of the database: read the outbox after each commit
    // (gathering 50 ms, as outbox.rs does) and delete what was "published".
    let wake = recorder.outbox_written();
    let (relay_store, relay_count, relay_stop) =
        (store.clone(), Arc::clone(&relayed), Arc::clone(&stop));
    tasks.push(tokio::spawn(async move {
        while !relay_stop.load(Ordering::Relaxed) {
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            loop {
                let taken = relay_store
                    .drain_outbox(512, async |events| events.iter().map(|e| e.id).collect())
                    .await
                    .unwrap_or(0);
                relay_count.add(taken as u64);
                if taken < 512 {
                    break;
                }
            }
        }
    }));
    let [commit_rate, relay_rate] = window([&*committed, &*relayed], args.seconds).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    println!(
        "FIGURE ceiling_database backend={} receipts_per_s={commit_rate:.0} outbox_drained_per_s={relay_rate:.0} waiting={}",
        args.label, args.concurrency
    );
    store.close().await;
    Ok(())
}
