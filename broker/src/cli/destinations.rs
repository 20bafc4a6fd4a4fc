//! `kurier destinations list|pause|resume`: the configured destinations
//! with their pause and backlog. `list` only looks (read-only).

use clap::Subcommand;
use kurier::domain::id::DestinationId;
use kurier::operator::ops::{Actor, DestinationInfo};
use kurier::store::Access;

use super::Global;
use super::exit::Exit;
use super::table::Table;

#[derive(Subcommand)]
pub enum Destinations {
    /// Configured destinations with their pause and parked backlog. Read-only.
    List,
    /// Pause a destination (an announced maintenance window): its
    /// submissions are parked without an attempt until it is resumed.
    Pause {
        /// The destination id, as in [[destinations]] id.
        destination: DestinationId,
        /// Why (recorded with the pause and in the audit trail).
        #[arg(long)]
        why: Option<String>,
    },
    /// Resume a paused destination: its parked submissions follow their
    /// schedule again (`kurier parked retry-now --destination D` to hurry them).
    Resume {
        /// The destination id.
        destination: DestinationId,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        why: Option<String>,
    },
}

impl Destinations {
    pub async fn run(self, global: &Global) -> anyhow::Result<Exit> {
        let actor = Actor::os_user();
        let result = match self {
            Destinations::List => {
                let rows = global.ops(Access::ReadOnly).await?.destinations().await?;
                global.print(rows.as_slice(), print)?;
                return Ok(Exit::Ok);
            }
            Destinations::Pause { destination, why } => {
                let ops = global.ops(Access::ReadWrite).await?;
                ops.pause(&destination, &actor, why.as_deref()).await?
            }
            Destinations::Resume { destination, why } => {
                let ops = global.ops(Access::ReadWrite).await?;
                ops.resume(&destination, &actor, why.as_deref()).await?
            }
        };
        global.print(&result, |r| println!("{}", r.message))?;
        Ok(Exit::Ok)
    }
}

fn print(rows: &[DestinationInfo]) {
    let mut table = Table::new([
        "DESTINATION",
        "STATE",
        "PARKED",
        "HELD",
        "PAUSED AT",
        "PAUSED BY",
        "REASON",
    ])
    .numbers(&[2, 3]);
    for d in rows {
        let state = match (d.paused, d.configured) {
            (_, false) => "removed",
            (true, _) => "paused",
            (false, _) => "active",
        };
        table.row([
            d.destination.to_string(),
            state.into(),
            d.parked.to_string(),
            d.held.to_string(),
            d.paused_at.map_or_else(|| "-".into(), |t| t.to_string()),
            d.paused_by.clone().unwrap_or_else(|| "-".into()),
            d.pause_reason.clone().unwrap_or_default(),
        ]);
    }
    table.print();
}
