//! `kurier-load`: end-to-end throughput and latency of a running Kurier.
//!
//! Publishes `--count` fresh copies of the sample envelopes (taken in turn,
//! new submission id each) to `kurier.submissions` as a portal would, listens
//! on `kurier.receipts` for their receipt events, and prints submissions per
//! second (first publish to last receipt) and publish-to-receipt latency
//! percentiles. Reads the AMQP settings from the Kurier configuration.
//!
//! - `--rate N`: publish at N submissions/s instead of as fast as RabbitMQ
//!   confirms (latency at a given load).
//! - `--pid P`: also the CPU time Kurier (process `P`) spent per submission
//!   (`/proc/P/stat` utime+stime, first publish to last receipt) and its
//!   peak and current RSS (`VmHWM`, `VmRSS`).
//! - `--watch-every S` (with `--pid`): every S seconds a sample of Kurier's
//!   RSS, threads, open descriptors and `kurier_in_flight` (from
//!   `--metrics`), and at the end whether they stayed flat.
//! - `--publish-only`: publish and exit (a backlog for Kurier to start on).
//! - `--figure NAME`: one `FIGURE NAME key=value …` line for scripts.
//!
//! Events of any status count as the submission's answer (so `parked`
//! counts: a run against an authority that answers 503 measures parking).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures_lite::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicPublishOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(about = "Measure Kurier end to end: submissions/s and publish-to-receipt latency")]
struct Args {
    /// Kurier configuration (for the AMQP settings).
    #[arg(long, env = "KURIER_CONFIG", default_value = "kurier.toml")]
    config: PathBuf,
    /// How many submissions to publish.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// The sample envelopes to copy, taken in turn.
    #[arg(long = "sample", num_args = 1.., default_value = "tests/samples/hzl-minimal.json")]
    samples: Vec<PathBuf>,
    /// Publisher confirms awaited in batches of this size.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Publish at this many submissions per second (default: as fast as confirmed).
    #[arg(long)]
    rate: Option<f64>,
    /// Give up waiting for receipts after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Publish and exit without waiting for receipts.
    #[arg(long)]
    publish_only: bool,
    /// Kurier's process id: CPU per submission and RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// With --pid: sample RSS, threads, descriptors and in-flight this often (seconds).
    #[arg(long)]
    watch_every: Option<f64>,
    /// Kurier's admin or probe address for `kurier_in_flight` (host:port, plain HTTP).
    #[arg(long)]
    metrics: Option<String>,
    /// Print a `FIGURE <name> …` line.
    #[arg(long)]
    figure: Option<String>,
}

/// A sample envelope and the routing key a portal publishes it with.
struct Template {
    envelope: serde_json::Value,
    routing_key: String,
}

fn templates(paths: &[PathBuf]) -> anyhow::Result<Vec<Template>> {
    anyhow::ensure!(!paths.is_empty(), "no --sample given");
    paths
        .iter()
        .map(|path| {
            let envelope: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )?;
            envelope["portal"]
                .as_str()
                .with_context(|| format!("{} has no portal", path.display()))?;
            let routing_key = format!(
                "{}.{}",
                envelope["service"].as_str().unwrap_or_default(),
                envelope["destination"].as_str().unwrap_or_default()
            );
            Ok(Template {
                envelope,
                routing_key,
            })
        })
        .collect()
}

/// What `/proc/<pid>` tells about a process right now.
#[derive(Clone, Copy, Default)]
struct ProcSample {
    /// utime + stime, microseconds.
    cpu_us: u64,
    rss_kib: u64,
    hwm_kib: u64,
    threads: u64,
    fds: u64,
}

fn proc_sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is not running"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Ok(ProcSample {
        cpu_us: ticks * 1_000_000 / hz,
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        threads: field("Threads:"),
        fds,
    })
}

/// `kurier_in_flight` from Kurier's plain-HTTP `/metrics` (loopback).
async fn in_flight(address: &str) -> Option<f64> {
    let mut stream = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .ok()?
    .ok()?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut text))
        .await
        .ok()?
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("kurier_in_flight "))
        .and_then(|v| v.trim().parse().ok())
}

/// Samples of a long run and whether they stayed flat.
#[derive(Default)]
struct Watch {
    samples: Vec<ProcSample>,
}

impl Watch {
    /// Flat: after the first quarter (warm-up), the second half's peak is at
    /// most 10 % (RSS) or 2 (threads, descriptors) above the first half's.
    fn verdict(&self) -> Option<String> {
        let settled: Vec<&ProcSample> = self.samples.iter().skip(self.samples.len() / 4).collect();
        if settled.len() < 4 {
            return None;
        }
        let (first, second) = settled.split_at(settled.len() / 2);
        let peak = |part: &[&ProcSample], f: fn(&ProcSample) -> u64| {
            part.iter().map(|s| f(s)).max().unwrap_or(0)
        };
        let rss = (peak(first, |s| s.rss_kib), peak(second, |s| s.rss_kib));
        let threads = (peak(first, |s| s.threads), peak(second, |s| s.threads));
        let fds = (peak(first, |s| s.fds), peak(second, |s| s.fds));
        let rss_flat = rss.1 as f64 <= rss.0 as f64 * 1.10;
        let threads_flat = threads.1 <= threads.0 + 2;
        let fds_flat = fds.1 <= fds.0 + 2;
        let yes = |b: bool| if b { "yes" } else { "no" };
        Some(format!(
            "rss_peak_first_half_kib={} rss_peak_second_half_kib={} rss_flat={} threads_peak_first_half={} threads_peak_second_half={} threads_flat={} fds_peak_first_half={} fds_peak_second_half={} fds_flat={} flat={}",
            rss.0,
            rss.1,
            yes(rss_flat),
            threads.0,
            threads.1,
            yes(threads_flat),
            fds.0,
            fds.1,
            yes(fds_flat),
            yes(rss_flat && threads_flat && fds_flat)
        ))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = kurier::config::Config::load(&args.config)?;
    let amqp = &config.amqp;
    let templates = templates(&args.samples)?;

    let connection = kurier::intake::connect(amqp, "kurier-load").await?;
    let channel = kurier::intake::confirm_channel(&connection).await?;
    kurier::intake::declare_topology(&channel, amqp).await?;
    let listen = connection.create_channel().await?;
    // The samples may name several portals: listen for each one's events.
    let mut portals: Vec<String> = templates
        .iter()
        .filter_map(|t| t.envelope["portal"].as_str().map(str::to_owned))
        .collect();
    portals.sort();
    portals.dedup();
    let mut events =
        kurier_e2e::listen_for_events(&listen, &amqp.receipts_exchange, &portals, "load").await?;

    let count = args.count;
    let receiver = tokio::spawn(async move {
        let mut seen: Vec<(String, Instant, String)> = Vec::with_capacity(count);
        while let Some(Ok(delivery)) = events.next().await {
            let at = Instant::now();
            let _ = delivery.ack(BasicAckOptions::default()).await;
            let v: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap_or_default();
            seen.push((
                v["submission_id"].as_str().unwrap_or_default().to_owned(),
                at,
                v["status"].as_str().unwrap_or_default().to_owned(),
            ));
            if seen.len() >= count {
                break;
            }
        }
        seen
    });

    let watcher = match (args.pid, args.watch_every) {
        (Some(pid), Some(every)) => {
            let metrics = args.metrics.clone();
            let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
            let started = Instant::now();
            let handle = tokio::spawn(async move {
                let mut watch = Watch::default();
                let mut tick = tokio::time::interval(Duration::from_secs_f64(every.max(0.1)));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = &mut stop_rx => break,
                    }
                    let Ok(s) = proc_sample(pid) else { break };
                    let flight = match &metrics {
                        Some(m) => in_flight(m).await,
                        None => None,
                    };
                    let t = started.elapsed().as_secs_f64();
                    println!(
                        "FIGURE watch t_s={t:.0} rss_kib={} threads={} fds={} in_flight={}",
                        s.rss_kib,
                        s.threads,
                        s.fds,
                        flight.map_or("NA".to_owned(), |f| format!("{f:.0}"))
                    );
                    watch.samples.push(s);
                }
                watch
            });
            Some((stop_tx, handle))
        }
        _ => None,
    };

    let cpu_before = args.pid.map(proc_sample).transpose()?;
    let mut published: HashMap<String, Instant> = HashMap::with_capacity(count);
    let started = Instant::now();
    let batch = match args.rate {
        // Paced: batches of about 10 ms worth, each sent at its time.
        Some(rate) => ((rate / 100.0).round() as usize).clamp(1, args.batch.max(1)),
        None => args.batch.max(1),
    };
    let mut sent = 0usize;
    while sent < count {
        let n = batch.min(count - sent);
        if let Some(rate) = args.rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate.max(0.001));
            tokio::time::sleep_until(due.into()).await;
        }
        let mut confirms = Vec::with_capacity(n);
        for i in sent..sent + n {
            let template = &templates[i % templates.len()];
            let id = uuid::Uuid::new_v4().to_string();
            let mut e = template.envelope.clone();
            e["submission_id"] = serde_json::Value::String(id.clone());
            let body = serde_json::to_vec(&e)?;
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(id.as_str().into());
            let confirm = channel
                .basic_publish(
                    amqp.exchange.as_str().into(),
                    template.routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await?;
            published.insert(id, Instant::now());
            confirms.push(confirm);
        }
        for c in confirms {
            anyhow::ensure!(c.await?.is_ack(), "RabbitMQ refused a publication");
        }
        sent += n;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    if args.publish_only {
        println!(
            "published:            {count} in {publish_secs:.2} s ({:.0}/s)",
            count as f64 / publish_secs
        );
        if let Some(name) = &args.figure {
            println!(
                "FIGURE {name} published={count} publish_per_s={:.0}",
                count as f64 / publish_secs
            );
        }
        let _ = connection.close(200, "done".into()).await;
        return Ok(());
    }
    let seen = tokio::time::timeout(Duration::from_secs(args.timeout_secs), receiver)
        .await
        .context("timed out waiting for receipt events")??;
    let cpu_after = args.pid.map(proc_sample).transpose()?;
    let watch = match watcher {
        Some((stop, handle)) => {
            let _ = stop.send(());
            handle.await.ok()
        }
        None => None,
    };
    let mut latencies: Vec<f64> = Vec::with_capacity(seen.len());
    let mut last = started;
    let mut delivered = 0usize;
    let mut statuses: HashMap<&str, usize> = HashMap::new();
    for (id, at, status) in &seen {
        if let Some(t0) = published.get(id) {
            latencies.push(at.duration_since(*t0).as_secs_f64() * 1000.0);
            last = last.max(*at);
            delivered += usize::from(status == "delivered");
            *statuses.entry(status.as_str()).or_default() += 1;
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let total = last.duration_since(started).as_secs_f64();
    let per_s = latencies.len() as f64 / total.max(1e-9);
    println!("submissions:          {count}");
    let mut by_status: Vec<String> = statuses.iter().map(|(s, n)| format!("{n} {s}")).collect();
    by_status.sort();
    println!(
        "receipts:             {} ({})",
        latencies.len(),
        by_status.join(", ")
    );
    println!(
        "publish phase:        {publish_secs:.2} s ({:.0}/s)",
        count as f64 / publish_secs
    );
    println!("end to end:           {total:.2} s = {per_s:.0} submissions/s");
    println!(
        "publish→receipt (ms): p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    let mut kurier = String::new();
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let cpu_us =
            after.cpu_us.saturating_sub(before.cpu_us) as f64 / latencies.len().max(1) as f64;
        let cores = after.cpu_us.saturating_sub(before.cpu_us) as f64 / 1e6 / total.max(1e-9);
        println!(
            "kurier:               {cpu_us:.0} µs CPU per submission ({cores:.2} cores), RSS {} KiB now, peak {} KiB, {} threads, {} fds",
            after.rss_kib, after.hwm_kib, after.threads, after.fds
        );
        kurier = format!(
            " cpu_us_per_submission={cpu_us:.0} cores={cores:.2} rss_kib={} rss_peak_kib={} threads={} fds={}",
            after.rss_kib, after.hwm_kib, after.threads, after.fds
        );
    }
    let verdict = watch.as_ref().and_then(Watch::verdict);
    if let Some(v) = &verdict {
        println!("flat:                 {v}");
    }
    if let Some(name) = &args.figure {
        println!(
            "FIGURE {name} submissions={count} receipts={} delivered={delivered} per_s={per_s:.0} publish_per_s={:.0} rate={} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1}{kurier}{}",
            latencies.len(),
            count as f64 / publish_secs,
            args.rate.map_or("max".to_owned(), |r| format!("{r:.0}")),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0),
            verdict.map(|v| format!(" {v}")).unwrap_or_default()
        );
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}
