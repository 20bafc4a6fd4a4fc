//! `kurier status`: parked and dead letters per destination, read-only.

use kurier::operator::ops::Status;
use kurier::store::Access;

use super::Global;
use super::exit::Exit;
use super::table::Table;

pub async fn run(global: &Global) -> anyhow::Result<Exit> {
    let status = global.ops(Access::ReadOnly).await?.status().await?;
    global.print(&status, print)?;
    Ok(Exit::Ok)
}

fn print(status: &Status) {
    let mut table = Table::new([
        "DESTINATION",
        "PARKED",
        "DEAD LETTERS",
        "NEXT ATTEMPT",
        "LAST CAUSE",
        "AWAITING ANSWER",
        "OLDEST DELIVERED",
    ])
    .numbers(&[1, 2, 5]);
    for d in &status.destinations {
        let name = if d.destination.is_empty() {
            "(none)".to_owned()
        } else if d.configured {
            d.destination.to_string()
        } else {
            format!("{} (not configured)", d.destination)
        };
        table.row([
            name,
            d.parked.to_string(),
            d.dead_letters.to_string(),
            d.next_attempt_at
                .map_or_else(|| "-".into(), |t| t.to_string()),
            d.last_cause.clone().unwrap_or_default(),
            d.awaiting_answer.to_string(),
            d.oldest_awaiting_delivered_at
                .map_or_else(|| "-".into(), |t| t.to_string()),
        ]);
    }
    table.print();
    println!(
        "total: {} parked, {} dead letters, {} awaiting the authority's answer (circuit states: GET /api/status on the admin port)",
        status.parked, status.dead_letters, status.awaiting_answer
    );
}
