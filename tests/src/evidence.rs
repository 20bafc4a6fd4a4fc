//! Evidence that every submission was delivered exactly once, for the rate
//! and restart scenarios: the receipt events a portal sees, the authority's
//! count of 201s per `Idempotency-Key`, and the receipts, checked against one
//! another (CONTRACT.md § 2, § 3).
//!
//! The events are observed on a durable queue of this test, bound to the
//! world's receipts exchange, by a consumer that reconnects: they survive a
//! RabbitMQ restart, unlike the harness's exclusive observer queue.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use kurier::config::AmqpConfig;
use kurier::store::Receipt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};

use crate::World;

/// Statuses after which no further event changes the outcome for HTTPS
/// transport (`accepted_by_authority` etc. only follow other transports).
pub const TERMINAL: [&str; 3] = ["delivered", "rejected", "dead_lettered"];

/// One receipt event as the portal got it.
#[derive(Debug, Clone)]
pub struct ObservedEvent {
    pub at: Instant,
    pub message_id: Option<String>,
    pub routing_key: String,
    /// RabbitMQ redelivered it to this observer (our own ack was lost, e.g. in
    /// a restart): not a second publication by Kurier.
    pub redelivered: bool,
    pub body: serde_json::Value,
}

impl ObservedEvent {
    pub fn submission_id(&self) -> &str {
        self.body["submission_id"].as_str().unwrap_or_default()
    }

    pub fn status(&self) -> &str {
        self.body["status"].as_str().unwrap_or_default()
    }

    pub fn seq(&self) -> Option<u64> {
        self.body["seq"].as_u64()
    }

    pub fn is_terminal(&self) -> bool {
        TERMINAL.contains(&self.status())
    }

    /// What makes two copies the same event: its AMQP message id
    /// `<submission_id>.<seq>` when it has one, else its whole body.
    pub fn identity(&self) -> String {
        match (&self.message_id, self.seq()) {
            (Some(m), Some(_)) if m.contains('.') => m.clone(),
            _ => self.body.to_string(),
        }
    }
}

/// Receipt events on a durable queue of this test, consumed in the background.
pub struct EventLog {
    events: Arc<Mutex<Vec<ObservedEvent>>>,
    task: tokio::task::JoinHandle<()>,
    amqp: AmqpConfig,
    queue: String,
}

fn queue_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    // Gone by itself a while after a test that did not clean up.
    arguments.insert("x-expires".into(), AMQPValue::LongInt(900_000));
    arguments
}

async fn declare(channel: &lapin::Channel, amqp: &AmqpConfig, queue: &str) -> anyhow::Result<()> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            queue_arguments(),
        )
        .await?;
    channel
        .queue_bind(
            queue.into(),
            amqp.receipts_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

async fn consume(
    amqp: &AmqpConfig,
    queue: &str,
    events: &Mutex<Vec<ObservedEvent>>,
) -> anyhow::Result<()> {
    let connection = kurier::intake::connect(amqp, "e2e-event-log").await?;
    let channel = connection.create_channel().await?;
    declare(&channel, amqp, queue).await?;
    channel.basic_qos(500, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "e2e-event-log".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(1), consumer.next()).await;
        let delivery = match next {
            Err(_) if connection.status().connected() => continue,
            Err(_) => anyhow::bail!("connection lost"),
            Ok(None) => anyhow::bail!("consumer ended"),
            Ok(Some(d)) => d?,
        };
        let event = ObservedEvent {
            at: Instant::now(),
            message_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.as_str().to_owned()),
            routing_key: delivery.routing_key.to_string(),
            redelivered: delivery.redelivered,
            body: serde_json::from_slice(&delivery.data).unwrap_or(serde_json::Value::Null),
        };
        if let Ok(mut e) = events.lock() {
            e.push(event);
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
}

impl EventLog {
    /// Declare the queue (before anything is published) and start consuming.
    pub async fn start(world: &World) -> anyhow::Result<EventLog> {
        let amqp = world.config.amqp.clone();
        let queue = format!("e2e.event-log.{}", world.tag);
        let connection = kurier::intake::connect(&amqp, "e2e-event-log-setup").await?;
        let channel = connection.create_channel().await?;
        declare(&channel, &amqp, &queue).await?;
        let _ = connection.close(200, "ok".into()).await;
        let events: Arc<Mutex<Vec<ObservedEvent>>> = Arc::default();
        let task = tokio::spawn({
            let (amqp, queue, events) = (amqp.clone(), queue.clone(), Arc::clone(&events));
            async move {
                loop {
                    // Ends with an error only: reconnect (a RabbitMQ restart).
                    let _ = consume(&amqp, &queue, &events).await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
        Ok(EventLog {
            events,
            task,
            amqp,
            queue,
        })
    }

    pub fn snapshot(&self) -> Vec<ObservedEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Wait until every id has a terminal event (or the timeout); returns the
    /// ids still without one.
    pub async fn await_terminal(&self, ids: &HashSet<String>, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let seen: HashSet<String> = self
                .snapshot()
                .iter()
                .filter(|e| e.is_terminal())
                .map(|e| e.submission_id().to_owned())
                .collect();
            let missing = ids.iter().filter(|id| !seen.contains(*id)).count();
            if missing == 0 || Instant::now() >= deadline {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until no event arrived for `quiet` (late copies, at most `limit`).
    pub async fn settle(&self, quiet: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut count = self.snapshot().len();
        let mut since = Instant::now();
        while Instant::now() < deadline && since.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.snapshot().len();
            if now != count {
                count = now;
                since = Instant::now();
            }
        }
    }

    /// Stop consuming and delete the queue.
    pub async fn close(self) {
        self.task.abort();
        if let Ok(connection) = kurier::intake::connect(&self.amqp, "e2e-event-log-close").await {
            if let Ok(channel) = connection.create_channel().await {
                let _ = channel
                    .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            let _ = connection.close(200, "ok".into()).await;
        }
    }
}

/// What to check beyond the common rules.
#[derive(Default, Clone, Copy)]
pub struct Expect {
    /// Every submission was parked before it was delivered: it must have had
    /// a `parked` event (CONTRACT.md § 3) before its terminal one.
    pub parked_event: bool,
}

/// The outcome of [`check`]: violated rules (rule → count, first example)
/// and figures.
#[derive(Debug, Default)]
pub struct Verdict {
    pub problems: BTreeMap<&'static str, (usize, String)>,
    /// Copies of terminal events beyond the first (same event published
    /// again, which the portal recognises by its message id).
    pub terminal_copies: usize,
    pub events: usize,
}

impl Verdict {
    fn problem(&mut self, rule: &'static str, example: String) {
        let entry = self.problems.entry(rule).or_insert((0, example));
        entry.0 += 1;
    }

    /// One line per violated rule.
    pub fn lines(&self) -> Vec<String> {
        self.problems
            .iter()
            .map(|(rule, (n, example))| format!("{rule}: {n} submissions, e.g. {example}"))
            .collect()
    }

    pub fn assert_ok(&self, label: &str) {
        assert!(
            self.problems.is_empty(),
            "{label}: exactly-once evidence violated:\n{}",
            self.lines().join("\n")
        );
    }
}

/// Receipts by submission id.
pub async fn receipts(world: &World) -> HashMap<String, Receipt> {
    match world.store().await {
        Ok(store) => {
            let rows = store.receipts(None, 10_000_000).await.unwrap_or_default();
            store.close().await;
            rows.into_iter()
                .map(|r| (r.submission_id.to_string(), r))
                .collect()
        }
        Err(_) => HashMap::new(),
    }
}

/// Check that each of `ids` was delivered exactly once: a `delivered`
/// receipt; accepted as new by the authority exactly once (`stats` from
/// `GET /stats`); exactly one distinct terminal event, `delivered`, matching
/// the receipt's reference and attempts; every event numbered (`seq` 1, 2, … without gaps,
/// message id `<submission_id>.<seq>`), the terminal one last.
pub fn check(
    ids: &HashSet<String>,
    receipts: &HashMap<String, Receipt>,
    events: &[ObservedEvent],
    stats: &serde_json::Value,
    expect: Expect,
) -> Verdict {
    let mut v = Verdict {
        events: events.len(),
        ..Verdict::default()
    };
    let mut by_id: HashMap<&str, Vec<&ObservedEvent>> = HashMap::new();
    for e in events {
        by_id.entry(e.submission_id()).or_default().push(e);
    }
    let created = &stats["created_per_key"];
    for id in ids {
        let receipt = receipts.get(id);
        match receipt {
            None => v.problem("no receipt", id.clone()),
            Some(r) if r.status != "delivered" => v.problem(
                "receipt not delivered",
                format!("{id}: {} {:?}", r.status, r.reason_code),
            ),
            Some(_) => {}
        }
        match created[id.as_str()].as_u64().unwrap_or(0) {
            1 => {}
            0 => v.problem("never accepted (201) by the authority", id.clone()),
            n => v.problem("accepted (201) more than once", format!("{id}: {n} times")),
        }

        let mine = by_id.get(id.as_str()).cloned().unwrap_or_default();
        let mut distinct: HashMap<String, &ObservedEvent> = HashMap::new();
        for e in &mine {
            distinct.entry(e.identity()).or_insert(e);
        }
        let terminal: Vec<&ObservedEvent> = distinct
            .values()
            .filter(|e| e.is_terminal())
            .copied()
            .collect();
        v.terminal_copies += mine
            .iter()
            .filter(|e| e.is_terminal() && !e.redelivered)
            .count()
            .saturating_sub(terminal.len());
        match terminal.as_slice() {
            [] => v.problem("no terminal receipt event", id.clone()),
            [t] => {
                if t.status() != "delivered" {
                    v.problem(
                        "terminal event not delivered",
                        format!("{id}: {}", t.status()),
                    );
                }
                if let Some(r) = receipt
                    && t.body["reference"].as_str() != r.reference.as_deref()
                {
                    v.problem(
                        "event reference differs from the receipt",
                        format!("{id}: {} vs {:?}", t.body["reference"], r.reference),
                    );
                }
                if let Some(r) = receipt
                    && t.body["attempts"].as_i64() != Some(r.attempts)
                {
                    v.problem(
                        "event attempts differ from the receipt",
                        format!("{id}: {} vs {}", t.body["attempts"], r.attempts),
                    );
                }
            }
            more => v.problem(
                "several different terminal events",
                format!(
                    "{id}: {}",
                    more.iter()
                        .map(|e| e.body.to_string())
                        .collect::<Vec<_>>()
                        .join(" / ")
                ),
            ),
        }
        // Numbering (CONTRACT.md § 3).
        let mut seqs: Vec<u64> = Vec::new();
        for e in distinct.values() {
            match e.seq() {
                None => {
                    v.problem("event without seq", format!("{id}: {}", e.body));
                    continue;
                }
                Some(seq) => {
                    seqs.push(seq);
                    let want = format!("{id}.{seq}");
                    if e.message_id.as_deref() != Some(want.as_str()) {
                        v.problem(
                            "event message_id is not <submission_id>.<seq>",
                            format!("{id}: {:?}", e.message_id),
                        );
                    }
                }
            }
        }
        seqs.sort_unstable();
        if !seqs.is_empty() && seqs != (1..=seqs.len() as u64).collect::<Vec<_>>() {
            v.problem(
                "event seqs are not 1, 2, … without gaps or repeats",
                format!("{id}: {seqs:?}"),
            );
        }
        if let [t] = terminal.as_slice()
            && let Some(last) = t.seq()
            && seqs.iter().any(|s| *s > last)
        {
            v.problem(
                "an event follows the terminal one",
                format!("{id}: {seqs:?}"),
            );
        }
        let parked: Vec<&&ObservedEvent> = distinct
            .values()
            .filter(|e| e.status() == "parked")
            .collect();
        if parked.len() > 1 {
            v.problem(
                "more than one parked event",
                format!("{id}: {}", parked.len()),
            );
        }
        if expect.parked_event && parked.is_empty() {
            v.problem("parked but no parked event", id.clone());
        }
    }
    v
}

/// A request counter of one path from `GET /stats`.
pub fn path_stat(stats: &serde_json::Value, path: &str, field: &str) -> u64 {
    stats["paths"][path][field].as_u64().unwrap_or(0)
}
