//! `kurier audit list`: the audit trail of operator actions, read-only.

use clap::Subcommand;
use kurier::operator::ops::AuditEntry;
use kurier::store::Access;

use super::Global;
use super::exit::Exit;
use super::table::Table;

#[derive(Subcommand)]
pub enum Audit {
    /// Operator actions (replay, purge, payload view, parked-queue actions,
    /// pauses), newest first: who, when, which ids, why.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

impl Audit {
    pub async fn run(self, global: &Global) -> anyhow::Result<Exit> {
        let Audit::List { limit } = self;
        let entries = global
            .ops(Access::ReadOnly)
            .await?
            .audit_list(limit)
            .await?;
        global.print(entries.as_slice(), print)?;
        Ok(Exit::Ok)
    }
}

fn print(entries: &[AuditEntry]) {
    let mut table = Table::new([
        "ID",
        "AT",
        "OPERATOR",
        "ACTION",
        "SUBMISSIONS",
        "OUTCOME",
        "REASON",
    ])
    .numbers(&[0]);
    for e in entries {
        table.row([
            e.id.to_string(),
            e.at.to_string(),
            e.operator.clone(),
            e.action.to_string(),
            e.submission_ids.clone(),
            e.outcome.to_string(),
            e.reason.clone().unwrap_or_default(),
        ]);
    }
    table.print();
}
