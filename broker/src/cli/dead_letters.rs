//! `kurier dead-letters list|show|replay|purge`: submissions that were not
//! delivered. `list` and `show` only look (read-only); `show --payload`,
//! `replay` and `purge` act and are audited.

use std::time::Duration;

use clap::{ArgGroup, Subcommand};
use kurier::domain::id::DestinationId;
use kurier::operator::ops::{Actor, DeadLetterFilter, ReplayOutcome, ReplayResult};
use kurier::store::Access;
use kurier::store::DeadLetter;

use super::Global;
use super::duration::{Since, parse_age, parse_since, with_relative};
use super::exit::Exit;
use super::table::Table;

#[derive(Subcommand)]
pub enum DeadLetters {
    /// List dead letters, newest first (metadata and reason, never a
    /// payload). Read-only.
    List {
        /// Only this reason code, e.g. schema_violation or unknown_destination.
        #[arg(long, value_name = "CODE")]
        reason: Option<String>,
        /// Only this destination id.
        #[arg(long, value_name = "ID")]
        destination: Option<DestinationId>,
        /// Only dead letters since this RFC 3339 time or this long ago
        /// (24h, 7d, "1h 30m").
        #[arg(long, value_name = "WHEN", value_parser = parse_since)]
        since: Option<Since>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Show one dead letter: metadata and reason (read-only); with
    /// --payload also the decrypted envelope (needs --reason, recorded in
    /// the audit trail first).
    Show {
        /// The submission id (UUID) or the dead-letter number from `list`.
        id: String,
        /// Also decrypt and print the payload (personal data!).
        #[arg(long, requires = "reason")]
        payload: bool,
        /// Why you need to see the payload; recorded with your user name.
        #[arg(long, value_name = "WHY")]
        reason: Option<String>,
    },
    /// Send dead letters through the whole pipeline again with the current
    /// configuration, under their own submission ids (same Idempotency-Key).
    /// Fix the cause first (route, certificate, authority). A submission
    /// whose receipt says delivered is never sent again. Exit 1 if any
    /// replay did not go out.
    #[command(group = ArgGroup::new("which").required(true).args(["ids", "all"]))]
    Replay {
        /// Submission ids (UUID) or dead-letter numbers.
        ids: Vec<String>,
        /// Every dead letter that keeps its payload (narrow with --reason,
        /// --destination, --since).
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// With --all: only this reason code.
        #[arg(long, requires = "all", value_name = "CODE")]
        reason: Option<String>,
        /// With --all: only this destination id.
        #[arg(long, requires = "all", value_name = "ID")]
        destination: Option<DestinationId>,
        /// With --all: only dead letters since this RFC 3339 time or this
        /// long ago.
        #[arg(long, requires = "all", value_name = "WHEN", value_parser = parse_since)]
        since: Option<Since>,
        /// Why (recorded in the audit trail), e.g. a ticket number.
        #[arg(long)]
        why: Option<String>,
    },
    /// Delete dead letters with their encrypted payload and its key (the
    /// receipts stay).
    #[command(group = ArgGroup::new("which").required(true).args(["ids", "older_than"]))]
    Purge {
        /// Submission ids (UUID) or dead-letter numbers.
        ids: Vec<String>,
        /// Every dead letter older than this: 30m, 12h, 7d, 2w, "1h 30m".
        #[arg(long, conflicts_with = "ids", value_name = "AGE", value_parser = parse_age)]
        older_than: Option<Duration>,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        why: Option<String>,
    },
}

impl DeadLetters {
    pub async fn run(self, global: &Global) -> anyhow::Result<Exit> {
        let actor = Actor::os_user();
        match self {
            DeadLetters::List {
                reason,
                destination,
                since,
                limit,
            } => {
                let ops = global.ops(Access::ReadOnly).await?;
                let filter = DeadLetterFilter {
                    reason,
                    destination,
                    since: since.map(|s| s.0),
                    limit: Some(limit),
                    offset: None,
                };
                let rows = ops.dead_letters(&filter).await?;
                global.print(rows.as_slice(), print_list)?;
            }
            DeadLetters::Show {
                id, payload: false, ..
            } => {
                let info = global.ops(Access::ReadOnly).await?.show(&id).await?;
                global.print(&info, print_one)?;
            }
            DeadLetters::Show {
                id,
                payload: true,
                reason,
            } => {
                let ops = global.ops(Access::ReadWrite).await?;
                let why = reason.unwrap_or_default();
                let (info, payload) = ops.show_payload(&id, &actor, &why).await?;
                global.print(
                    &serde_json::json!({"dead_letter": info, "payload": payload}),
                    |_| {
                        print_one(&info);
                        println!("payload (view recorded in the audit trail):");
                        println!("{payload:#}");
                    },
                )?;
            }
            DeadLetters::Replay {
                ids,
                all,
                reason,
                destination,
                since,
                why,
            } => {
                let ops = global.ops(Access::ReadWrite).await?;
                let results = if all {
                    let filter = DeadLetterFilter {
                        reason,
                        destination,
                        since: since.map(|s| s.0),
                        limit: Some(100_000),
                        offset: None,
                    };
                    ops.replay_matching(&filter, &actor, why.as_deref()).await?
                } else {
                    ops.replay_ids(&ids, &actor, why.as_deref()).await?
                };
                global.print(results.as_slice(), print_replayed)?;
                if results.iter().any(|r| r.outcome == ReplayOutcome::Failed) {
                    return Ok(Exit::Failed);
                }
            }
            DeadLetters::Purge {
                ids,
                older_than,
                why,
            } => {
                let ops = global.ops(Access::ReadWrite).await?;
                let result = match older_than {
                    Some(age) => ops.purge_older_than(age, &actor, why.as_deref()).await?,
                    None => ops.purge_ids(&ids, &actor, why.as_deref()).await?,
                };
                global.print(&result, |r| {
                    println!(
                        "{} dead letters purged (payloads and keys destroyed; receipts kept): {}",
                        r.dead_letter_ids.len(),
                        r.submission_ids.join(" ")
                    );
                })?;
            }
        }
        Ok(Exit::Ok)
    }
}

fn print_list(rows: &[DeadLetter]) {
    let mut table = Table::new([
        "ID",
        "SUBMISSION",
        "REASON",
        "DESTINATION",
        "AT",
        "PAYLOAD",
        "DETAIL",
    ])
    .numbers(&[0]);
    for d in rows {
        table.row([
            d.id.to_string(),
            d.submission_id.as_deref().unwrap_or("-").to_owned(),
            d.reason_code.to_string(),
            d.destination.as_deref().unwrap_or("-").to_owned(),
            d.created_at.to_string(),
            if d.payload_kept { "kept" } else { "none" }.into(),
            d.reason_detail.clone(),
        ]);
    }
    table.print();
}

fn print_one(d: &DeadLetter) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut fields = vec![
        ("dead letter", format!("#{}", d.id)),
        (
            "submission",
            d.submission_id.as_deref().unwrap_or("-").to_owned(),
        ),
        ("service", opt(&d.service)),
        (
            "destination",
            d.destination.as_deref().unwrap_or("-").to_owned(),
        ),
        ("portal", opt(&d.portal)),
        ("reason", d.reason_code.to_string()),
        ("detail", d.reason_detail.clone()),
    ];
    if let Some(s) = d.http_status {
        fields.push(("http status", s.to_string()));
    }
    fields.push(("received sha256", d.received_sha256.clone()));
    fields.push(("created", with_relative(d.created_at)));
    fields.push((
        "payload",
        match (&d.expires_at, d.payload_kept) {
            (Some(until), true) => {
                format!("kept (sealed) until {}; replayable", with_relative(until))
            }
            _ => "not kept; cannot be replayed".into(),
        },
    ));
    Table::fields(fields).print();
}

fn print_replayed(results: &[ReplayResult]) {
    if results.is_empty() {
        println!("no dead letter matched; nothing was replayed");
    }
    for r in results {
        let id = r.dead_letter_id.map_or("-".into(), |n| format!("#{n}"));
        println!("{id} {}: {}", r.outcome, r.message);
    }
}
