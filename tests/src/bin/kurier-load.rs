//! `kurier-load`: end-to-end throughput and latency of a running Kurier.
//!
//! Publishes `--count` fresh copies of a sample envelope (new submission id
//! each) to `kurier.submissions` as a portal would, listens on
//! `kurier.receipts` for their receipt events, and prints submissions per
//! second (first publish to last receipt) and publish-to-receipt latency
//! percentiles. Reads the AMQP settings from the Kurier configuration.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures_lite::StreamExt;
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;

#[derive(Parser)]
#[command(about = "Measure Kurier end to end: submissions/s and publish-to-receipt latency")]
struct Args {
    /// Kurier configuration (for the AMQP settings).
    #[arg(long, env = "KURIER_CONFIG", default_value = "kurier.toml")]
    config: PathBuf,
    /// How many submissions to publish.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// The sample envelope to copy.
    #[arg(long, default_value = "tests/samples/hzl-minimal.json")]
    sample: PathBuf,
    /// Publisher confirms awaited in batches of this size.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Give up waiting for receipts after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = kurier::config::Config::load(&args.config)?;
    let amqp = &config.amqp;
    let template: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&args.sample)
            .with_context(|| format!("reading {}", args.sample.display()))?,
    )?;
    let portal = template["portal"]
        .as_str()
        .context("sample has no portal")?
        .to_owned();
    let routing_key = format!(
        "{}.{}",
        template["service"].as_str().unwrap_or_default(),
        template["destination"].as_str().unwrap_or_default()
    );

    let connection = kurier::intake::connect(amqp, "kurier-load").await?;
    let channel = kurier::intake::confirm_channel(&connection).await?;
    kurier::intake::declare_topology(&channel, amqp).await?;
    let listen = connection.create_channel().await?;
    let queue = listen
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    listen
        .queue_bind(
            queue.name().clone(),
            amqp.receipts_exchange.as_str().into(),
            portal.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut events = listen
        .basic_consume(
            queue.name().clone(),
            "load".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    // Bodies are prepared before the clock starts.
    let bodies: Vec<(String, Vec<u8>)> = (0..args.count)
        .map(|_| {
            let id = uuid::Uuid::new_v4().to_string();
            let mut e = template.clone();
            e["submission_id"] = serde_json::Value::String(id.clone());
            (id, serde_json::to_vec(&e).unwrap_or_default())
        })
        .collect();
    let mut published: HashMap<String, Instant> = HashMap::with_capacity(args.count);
    let started = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut seen: Vec<(String, Instant, String)> = Vec::new();
        while let Some(Ok(delivery)) = events.next().await {
            let at = Instant::now();
            let _ = delivery.ack(BasicAckOptions::default()).await;
            let v: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap_or_default();
            seen.push((
                v["submission_id"].as_str().unwrap_or_default().to_owned(),
                at,
                v["status"].as_str().unwrap_or_default().to_owned(),
            ));
            if seen.len() >= args.count {
                break;
            }
        }
        seen
    });
    for chunk in bodies.chunks(args.batch.max(1)) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for (id, body) in chunk {
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(id.as_str().into());
            let confirm = channel
                .basic_publish(
                    amqp.exchange.as_str().into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    body,
                    props,
                )
                .await?;
            published.insert(id.clone(), Instant::now());
            confirms.push(confirm);
        }
        for c in confirms {
            anyhow::ensure!(c.await?.is_ack(), "RabbitMQ refused a publication");
        }
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let seen = tokio::time::timeout(Duration::from_secs(args.timeout_secs), receiver)
        .await
        .context("timed out waiting for receipt events")??;
    let mut latencies: Vec<f64> = Vec::with_capacity(seen.len());
    let mut last = started;
    let mut delivered = 0usize;
    for (id, at, status) in &seen {
        if let Some(t0) = published.get(id) {
            latencies.push(at.duration_since(*t0).as_secs_f64() * 1000.0);
            last = last.max(*at);
            delivered += usize::from(status == "delivered");
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
    println!("submissions:          {}", args.count);
    println!(
        "receipts:             {} ({} delivered)",
        latencies.len(),
        delivered
    );
    println!(
        "publish phase:        {publish_secs:.2} s ({:.0}/s)",
        args.count as f64 / publish_secs
    );
    println!(
        "end to end:           {total:.2} s = {:.0} submissions/s",
        latencies.len() as f64 / total
    );
    println!(
        "publish→receipt (ms): p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}
