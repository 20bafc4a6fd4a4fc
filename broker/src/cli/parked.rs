//! `kurier parked list|show|retry-now|hold|release|purge`: the parked queue,
//! acted on by submission id as Postfix's postqueue/postsuper act on mail.
//! `list` and `show` only look (read-only); the others are audited.

use clap::{ArgGroup, Args, Subcommand};
use kurier::domain::id::DestinationId;
use kurier::operator::ops::{Actor, Backlog, ParkedAction, ParkedInfo, ParkedResult};
use kurier::store::Access;

use super::Global;
use super::duration::with_relative;
use super::exit::Exit;
use super::table::Table;

#[derive(Subcommand)]
pub enum Parked {
    /// Backlog per destination: how many are parked and held, the next
    /// attempt, the last cause; with --each one line per submission (the
    /// ids the other verbs take). Read-only.
    List {
        /// Only this destination id.
        #[arg(long, value_name = "ID")]
        destination: Option<DestinationId>,
        /// One line per parked submission instead of the backlog per destination.
        #[arg(long)]
        each: bool,
        /// With --each: at most this many, soonest first.
        #[arg(long, default_value_t = 1000, requires = "each")]
        limit: i64,
    },
    /// Show one parked submission: ids, service, destination, portal,
    /// attempts, times, last cause, held (metadata only, never the
    /// payload). Read-only.
    Show {
        /// The submission id (UUID).
        id: String,
    },
    /// Make parked submissions due now (the scheduler tries them within a
    /// second). A held submission stays held; an attempt under way finishes.
    #[command(group = ArgGroup::new("which").required(true).args(["ids", "destination"]))]
    RetryNow {
        /// Submission ids (UUID).
        ids: Vec<String>,
        /// Every parked submission of this destination.
        #[arg(long, conflicts_with = "ids", value_name = "ID")]
        destination: Option<DestinationId>,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        why: Option<String>,
    },
    /// Hold parked submissions: the scheduler leaves them alone (they still
    /// expire after max_age_secs) until they are released.
    Hold(ParkedIds),
    /// Release held submissions back to their schedule.
    Release(ParkedIds),
    /// Shred parked submissions: the sealed payload and its key are deleted,
    /// the receipt says dead_lettered (withdrawn_by_operator), a dead letter
    /// keeps metadata only, and the portal gets a receipt event. Cannot be
    /// undone; nothing is sent to the authority afterwards.
    Purge(ParkedIds),
}

/// Parked submissions named by id, for hold, release and purge.
#[derive(Args)]
pub struct ParkedIds {
    /// Submission ids (UUID); `kurier parked list --each` shows them.
    #[arg(required = true)]
    ids: Vec<String>,
    /// Why (recorded in the audit trail), e.g. "applicant withdrew, ticket 4711".
    #[arg(long)]
    why: Option<String>,
}

impl Parked {
    pub async fn run(self, global: &Global) -> anyhow::Result<Exit> {
        let (action, ids, why) = match self {
            Parked::List {
                destination,
                each,
                limit,
            } => {
                let ops = global.ops(Access::ReadOnly).await?;
                let destination = destination.as_ref();
                if each {
                    let rows = ops.parked_each(destination, limit, 0).await?;
                    global.print(rows.as_slice(), print_each)?;
                } else {
                    let backlog = ops.parked(destination).await?;
                    global.print(backlog.as_slice(), print_backlog)?;
                }
                return Ok(Exit::Ok);
            }
            Parked::Show { id } => {
                let parked = global.ops(Access::ReadOnly).await?.parked_show(&id).await?;
                global.print(&parked, print_one)?;
                return Ok(Exit::Ok);
            }
            Parked::RetryNow {
                destination: Some(destination),
                why,
                ..
            } => {
                let ops = global.ops(Access::ReadWrite).await?;
                let results = ops
                    .retry_destination(&destination, &Actor::os_user(), why.as_deref())
                    .await?;
                global.print(results.as_slice(), print_done)?;
                return Ok(Exit::Ok);
            }
            Parked::RetryNow { ids, why, .. } => (ParkedAction::RetryNow, ids, why),
            Parked::Hold(p) => (ParkedAction::Hold, p.ids, p.why),
            Parked::Release(p) => (ParkedAction::Release, p.ids, p.why),
            Parked::Purge(p) => (ParkedAction::Purge, p.ids, p.why),
        };
        let ops = global.ops(Access::ReadWrite).await?;
        let results = ops
            .parked_act(action, &ids, &Actor::os_user(), why.as_deref())
            .await?;
        global.print(results.as_slice(), print_done)?;
        Ok(Exit::Ok)
    }
}

fn print_backlog(backlog: &[Backlog]) {
    let mut table = Table::new([
        "DESTINATION",
        "PARKED",
        "HELD",
        "NEXT ATTEMPT",
        "OLDEST RECEIVED",
        "LAST CAUSE",
    ])
    .numbers(&[1, 2]);
    for b in backlog {
        table.row([
            b.destination.to_string(),
            b.count.to_string(),
            b.held.to_string(),
            b.next_attempt_at.to_string(),
            b.oldest_received_at.to_string(),
            b.last_cause.clone(),
        ]);
    }
    table.print();
}

fn print_each(rows: &[ParkedInfo]) {
    let mut table = Table::new([
        "SUBMISSION",
        "DESTINATION",
        "ATTEMPTS",
        "NEXT ATTEMPT",
        "HELD",
        "LAST CAUSE",
    ])
    .numbers(&[2]);
    for p in rows {
        table.row([
            p.submission_id.to_string(),
            p.destination.to_string(),
            p.attempts.to_string(),
            p.next_attempt_at.to_string(),
            if p.held { "yes" } else { "-" }.into(),
            p.last_cause.clone(),
        ]);
    }
    table.print();
}

fn print_one(p: &ParkedInfo) {
    let mut fields = vec![
        ("submission", p.submission_id.to_string()),
        ("service", p.service.clone()),
        ("destination", p.destination.to_string()),
        ("portal", p.portal.clone()),
        ("attempts", p.attempts.to_string()),
        ("received sha256", p.received_sha256.clone()),
        ("received", with_relative(p.received_at)),
        ("first failure", with_relative(p.first_failure_at)),
        ("last cause", p.last_cause.clone()),
        ("next attempt", with_relative(p.next_attempt_at)),
        (
            "expires",
            format!("{}, then delivery_expired", with_relative(p.expires_at)),
        ),
        (
            "held",
            if p.held {
                "yes (the scheduler leaves it alone; `kurier parked release`)"
            } else {
                "no"
            }
            .into(),
        ),
    ];
    if p.in_flight {
        fields.push(("in flight", "an attempt is under way right now".into()));
    }
    Table::fields(fields).print();
}

fn print_done(results: &[ParkedResult]) {
    if results.is_empty() {
        println!("no parked submission matched; nothing changed");
    }
    for r in results {
        println!("{}", r.message);
    }
}
