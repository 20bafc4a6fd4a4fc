//! `kurier receipts show|list`: what happened to each submission, read-only.

use clap::Subcommand;
use kurier::store::{Access, Receipt};

use super::Global;
use super::duration::{Since, parse_since};
use super::exit::Exit;
use super::table::Table;

#[derive(Subcommand)]
pub enum Receipts {
    /// Show the receipt of one submission (exit 1 if it has none yet).
    Show {
        /// The submission id (UUID).
        submission_id: String,
    },
    /// List receipts, newest first.
    List {
        /// Only receipts completed since this RFC 3339 time
        /// (2026-11-23T00:00:00Z) or this long ago (24h, 7d, "1h 30m").
        #[arg(long, value_name = "WHEN", value_parser = parse_since)]
        since: Option<Since>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

impl Receipts {
    pub async fn run(self, global: &Global) -> anyhow::Result<Exit> {
        let ops = global.ops(Access::ReadOnly).await?;
        match self {
            Receipts::Show { submission_id } => match ops.receipt(&submission_id).await? {
                Some(r) => global.print(&r, |r| print(std::slice::from_ref(r)))?,
                None => {
                    eprintln!(
                        "kurier: no receipt for submission {submission_id}; it may still be parked (`kurier parked list --each`) or not yet received"
                    );
                    return Ok(Exit::Failed);
                }
            },
            Receipts::List { since, limit } => {
                let since = since.map(|s| s.0);
                let receipts = ops.receipts(since.as_deref(), limit).await?;
                global.print(receipts.as_slice(), print)?;
            }
        }
        Ok(Exit::Ok)
    }
}

fn print(receipts: &[Receipt]) {
    let mut table = Table::new([
        "SUBMISSION",
        "STATUS",
        "SERVICE",
        "DESTINATION",
        "ATTEMPTS",
        "REFERENCE",
        "REASON",
    ])
    .numbers(&[4]);
    for r in receipts {
        table.row([
            r.submission_id.to_string(),
            r.status.to_string(),
            r.service.clone().unwrap_or_else(|| "-".into()),
            r.destination.as_deref().unwrap_or("-").to_owned(),
            r.attempts.to_string(),
            r.reference.clone().unwrap_or_else(|| "-".into()),
            r.reason_code.clone().unwrap_or_default(),
        ]);
    }
    table.print();
}
