//! The `kurier` command line (CONTRACT.md § 5): the broker itself and the
//! operator's tools. Errors end here as one clear message and exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use kurier::config::Config;
use kurier::ops::{Actor, DeadLetterFilter, DeadLetterInfo, Ops, ParkedAction, ParkedInfo};
use kurier::shutdown::Shutdown;
use kurier::store::Store;
use kurier::telemetry::{self, LogFormat};

/// Kurier relays benefit applications from form portals (RabbitMQ) to the
/// case-management systems of the receiving authorities (HTTPS with mutual
/// TLS), records a receipt for each, and keeps no payload afterwards.
#[derive(Parser)]
#[command(name = "kurier", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr: `text` for people, `json` for collectors.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// Configuration file (TOML). See deploy/kurier.example.toml.
    #[arg(
        long,
        short = 'c',
        env = "KURIER_CONFIG",
        default_value = "kurier.toml"
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker until SIGTERM/SIGINT (in-flight work finishes or is parked; nothing unfinished is acked).
    Run(ConfigArg),
    /// Check the configuration, certificates and routes; exit 0 or name what is wrong.
    CheckConfig(ConfigArg),
    /// Apply the database migrations (also done by `run` at start).
    Migrate(ConfigArg),
    /// Publish envelope files as a portal would (for tests and demos).
    Submit {
        #[command(flatten)]
        config: ConfigArg,
        /// Publish the files as they are with this routing key, even if they
        /// are not envelopes (to see how Kurier dead-letters bad input).
        #[arg(long)]
        routing_key: Option<String>,
        /// Envelope files (JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Receipts: what happened to each submission (metadata only).
    Receipts {
        #[command(subcommand)]
        command: ReceiptsCommand,
    },
    /// Dead letters: submissions that were not delivered, with their reasons;
    /// list, show, replay after fixing the cause, purge.
    DeadLetters {
        #[command(subcommand)]
        command: DeadLettersCommand,
    },
    /// Parked submissions: transient failures waiting for their next attempt.
    /// An operator's queue: list, show, retry now, hold, release, purge.
    Parked {
        #[command(subcommand)]
        command: ParkedCommand,
    },
    /// Destinations: list them with pause state and backlog; pause one for a
    /// maintenance window and resume it.
    Destinations {
        #[command(subcommand)]
        command: DestinationsCommand,
    },
    /// Parked and dead letters per destination, as the database knows them
    /// (circuit states: the admin API's /api/status of the running broker).
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The audit trail of operator actions.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The vault's keys: master-key rotation (docs/OPERATIONS.md).
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Wrap every live epoch key under the current master key (`key_file`),
    /// after a rotation: then the previous master key (`previous_key_files`)
    /// can be removed, unless payloads sealed before epochs still need it
    /// (they are named).
    Rewrap {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ReceiptsCommand {
    /// Show the receipt of one submission.
    Show {
        #[command(flatten)]
        config: ConfigArg,
        submission_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List receipts, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only receipts completed since this RFC 3339 time (2026-11-23T00:00:00Z) or this long ago (24h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DeadLettersCommand {
    /// List dead letters, newest first (metadata and reason, never a payload).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this reason code, e.g. schema_violation or unknown_destination.
        #[arg(long)]
        reason: Option<String>,
        /// Only this destination id.
        #[arg(long)]
        destination: Option<String>,
        /// Only dead letters since this RFC 3339 time or this long ago (24h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter: metadata and reason; with --payload also the
    /// decrypted envelope (needs --reason, recorded in the audit trail).
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// The submission id (UUID) or the dead-letter number from `list`.
        id: String,
        /// Also decrypt and print the payload (personal data!).
        #[arg(long, requires = "reason")]
        payload: bool,
        /// Why you need to see the payload; recorded with your user name.
        #[arg(long)]
        reason: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send dead letters through the whole pipeline again with the current
    /// configuration, under their own submission ids (same Idempotency-Key).
    /// Fix the cause first (route, certificate, authority). A submission
    /// whose receipt says delivered is never sent again.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["ids", "all"]))]
    Replay {
        #[command(flatten)]
        config: ConfigArg,
        /// Submission ids (UUID) or dead-letter numbers.
        ids: Vec<String>,
        /// Every dead letter that keeps its payload (narrow with --reason, --destination, --since).
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// With --all: only this reason code.
        #[arg(long, requires = "all")]
        reason: Option<String>,
        /// With --all: only this destination id.
        #[arg(long, requires = "all")]
        destination: Option<String>,
        /// With --all: only dead letters since this RFC 3339 time or this long ago.
        #[arg(long, requires = "all")]
        since: Option<String>,
        /// Why (recorded in the audit trail), e.g. a ticket number.
        #[arg(long)]
        why: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete dead letters with their encrypted payload (the receipts stay).
    #[command(group = clap::ArgGroup::new("which").required(true).args(["ids", "older_than"]))]
    Purge {
        #[command(flatten)]
        config: ConfigArg,
        /// Submission ids (UUID) or dead-letter numbers.
        ids: Vec<String>,
        /// Every dead letter older than this, e.g. 7d, 12h, 30m.
        #[arg(long, conflicts_with = "ids")]
        older_than: Option<String>,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        why: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ParkedCommand {
    /// Backlog per destination: how many are parked and held, the next
    /// attempt, the last cause; with --each one line per submission (the
    /// ids the other verbs take).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this destination id.
        #[arg(long)]
        destination: Option<String>,
        /// One line per parked submission instead of the backlog per destination.
        #[arg(long)]
        each: bool,
        /// With --each: at most this many, soonest first.
        #[arg(long, default_value_t = 1000, requires = "each")]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one parked submission: ids, service, destination, portal,
    /// attempts, times, last cause, held (metadata only, never the payload).
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// The submission id (UUID).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make parked submissions due now (the scheduler tries them within a
    /// second). A held submission stays held; an attempt under way finishes.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["ids", "destination"]))]
    RetryNow {
        #[command(flatten)]
        config: ConfigArg,
        /// Submission ids (UUID).
        ids: Vec<String>,
        /// Every parked submission of this destination.
        #[arg(long, conflicts_with = "ids")]
        destination: Option<String>,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        why: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
struct ParkedIds {
    #[command(flatten)]
    config: ConfigArg,
    /// Submission ids (UUID); `kurier parked list --each` shows them.
    #[arg(required = true)]
    ids: Vec<String>,
    /// Why (recorded in the audit trail), e.g. "applicant withdrew, ticket 4711".
    #[arg(long)]
    why: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum DestinationsCommand {
    /// Configured destinations with their pause and parked backlog.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause a destination (an announced maintenance window): its
    /// submissions are parked without an attempt until it is resumed.
    Pause {
        #[command(flatten)]
        config: ConfigArg,
        /// The destination id, as in [[destinations]] id.
        destination: String,
        /// Why (recorded with the pause and in the audit trail).
        #[arg(long)]
        why: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused destination: its parked submissions follow their
    /// schedule again (`kurier parked retry-now --destination D` to hurry them).
    Resume {
        #[command(flatten)]
        config: ConfigArg,
        /// The destination id.
        destination: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        why: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Operator actions (replay, purge, payload view), newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    kurier::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kurier: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kurier: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(c) => {
            let config = Config::load(&c.config)?;
            let shutdown = Shutdown::new();
            shutdown.listen_for_signals();
            kurier::run(config, shutdown).await?;
        }
        Command::CheckConfig(c) => {
            let config = Config::load(&c.config)?;
            let warnings = config.check()?;
            match &config.schemas_dir {
                Some(dir) => kurier::validate::Schemas::load_dir(dir).map(|_| ())?,
                None => kurier::validate::Schemas::builtin().map(|_| ())?,
            }
            // Compiles every adapter's XSD (built in or from xsd_dir).
            kurier::xsd::Validator::start(config.xsd_dir.as_deref())?;
            // Builds every destination's TLS client: reads and parses CA,
            // certificate and key, and checks that key and certificate match.
            kurier::route::Routes::build(&config)?;
            // The admin listener: its certificate and key load and match;
            // the token file is well formed (and not readable by others).
            if let kurier::config::AdminTransport::Tls { cert, key } =
                config.admin.transport().map_err(anyhow::Error::msg)?
            {
                kurier::tls::server_config(&cert, &key)?;
            }
            if let Some(file) = &config.admin.token_file {
                kurier::admin::tokens::check_file(file).map_err(anyhow::Error::msg)?;
            }
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let (expiring, expired) = kurier::certs::check_expiry(&config, now);
            if !expired.is_empty() {
                anyhow::bail!("{}", expired.join("\n"));
            }
            let warnings: Vec<String> = warnings.into_iter().chain(expiring).collect();
            for w in &warnings {
                println!("warning: {w}");
            }
            println!(
                "{}: OK ({} destinations)",
                c.config.display(),
                config.destinations.len()
            );
        }
        Command::Migrate(c) => {
            let config = Config::load(&c.config)?;
            let store = Store::connect(&config.database).await?;
            store.migrate().await?;
            println!("migrations applied to {}", redact_url(&config.database.url));
        }
        Command::Submit {
            config,
            routing_key,
            files,
        } => {
            let config = Config::load(&config.config)?;
            let ids = kurier::submit::submit(&config.amqp, &files, routing_key.as_deref()).await?;
            for id in ids {
                println!("published {id}");
            }
        }
        Command::Receipts { command } => match command {
            ReceiptsCommand::Show {
                config,
                submission_id,
                json,
            } => {
                let ops = open_ops(&config).await?;
                match ops.receipt(&submission_id).await? {
                    Some(r) if json => print_json(&r)?,
                    Some(r) => print_receipts(&[r]),
                    None => {
                        eprintln!(
                            "no receipt for submission {submission_id}; it may still be parked (`kurier parked list`) or not yet received"
                        );
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
            ReceiptsCommand::List {
                config,
                since,
                limit,
                json,
            } => {
                let ops = open_ops(&config).await?;
                let receipts = ops.receipts(since.as_deref(), limit).await?;
                if json {
                    print_json(&receipts)?;
                } else {
                    print_receipts(&receipts);
                }
            }
        },
        Command::DeadLetters { command } => return dead_letters(command).await,
        Command::Parked { command } => return parked(command).await,
        Command::Destinations { command } => return destinations(command).await,
        Command::Status { config, json } => {
            let ops = open_ops(&config).await?;
            let status = ops.status().await?;
            if json {
                print_json(&status)?;
            } else {
                println!(
                    "{:<28} {:>7} {:>12} {:<28} LAST CAUSE",
                    "DESTINATION", "PARKED", "DEAD LETTERS", "NEXT ATTEMPT"
                );
                for d in &status.destinations {
                    let name = if d.destination.is_empty() {
                        "(none)".to_owned()
                    } else if d.configured {
                        d.destination.clone()
                    } else {
                        format!("{} (not configured)", d.destination)
                    };
                    println!(
                        "{:<28} {:>7} {:>12} {:<28} {}",
                        name,
                        d.parked,
                        d.dead_letters,
                        d.next_attempt_at.as_deref().unwrap_or("-"),
                        d.last_cause.as_deref().unwrap_or("")
                    );
                }
                println!(
                    "total: {} parked, {} dead letters (circuit states: GET /api/status on the admin port)",
                    status.parked, status.dead_letters
                );
            }
        }
        Command::Vault {
            command: VaultCommand::Rewrap { config, json },
        } => {
            let config = Config::load(&config.config)?;
            // Never create a master key here: a key nobody else has would
            // make every epoch unreadable to the running brokers.
            if !config.vault.key_file.exists() {
                anyhow::bail!(
                    "the vault key file {} does not exist; rewrap wraps under the current master key, which must be there (a rotation creates the new key first: docs/OPERATIONS.md)",
                    config.vault.key_file.display()
                );
            }
            let store = Store::connect(&config.database).await?;
            store.migrate().await?;
            let vault = kurier::vault::Vault::load(&config.vault)?;
            let report = kurier::shred::rewrap(&vault, &store).await?;
            store.close().await;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "current master key {}: {} epoch keys rewrapped, {} already under it",
                    report.current_key_id,
                    report.rewrapped.len(),
                    report.already_current.len()
                );
                for (epoch, key) in &report.unreadable {
                    println!(
                        "epoch {epoch}: wrapped by master key {key}, which is not configured; add its file to previous_key_files and run this again"
                    );
                }
                for (key, n) in &report.sealed_before_epochs {
                    if *key != report.current_key_id {
                        println!(
                            "master key {key}: still wraps {n} payloads sealed before epochs; keep it in previous_key_files until they are delivered, expired or purged"
                        );
                    }
                }
            }
            if report.still_needed.is_empty() && !json {
                println!(
                    "no previous master key is needed any more: previous_key_files may be emptied (restart the brokers after)"
                );
            }
        }
        Command::Audit {
            command:
                AuditCommand::List {
                    config,
                    limit,
                    json,
                },
        } => {
            let ops = open_ops(&config).await?;
            let entries = ops.audit_list(limit).await?;
            if json {
                print_json(&entries)?;
            } else {
                println!(
                    "{:<6} {:<28} {:<16} {:<13} {:<38} {:<24} REASON",
                    "ID", "AT", "OPERATOR", "ACTION", "SUBMISSIONS", "OUTCOME"
                );
                for e in entries {
                    println!(
                        "{:<6} {:<28} {:<16} {:<13} {:<38} {:<24} {}",
                        e.id,
                        e.at,
                        e.operator,
                        e.action,
                        e.submission_ids,
                        e.outcome,
                        e.reason.as_deref().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn open_ops(c: &ConfigArg) -> anyhow::Result<Ops> {
    let config = Config::load(&c.config)?;
    Ok(Ops::open(&config).await?)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn dead_letters(command: DeadLettersCommand) -> anyhow::Result<ExitCode> {
    let actor = Actor::os_user();
    match command {
        DeadLettersCommand::List {
            config,
            reason,
            destination,
            since,
            limit,
            json,
        } => {
            let ops = open_ops(&config).await?;
            let rows = ops
                .dead_letters(&DeadLetterFilter {
                    reason,
                    destination,
                    since,
                    limit: Some(limit),
                })
                .await?;
            if json {
                print_json(&rows)?;
            } else {
                print_dead_letters(&rows);
            }
        }
        DeadLettersCommand::Show {
            config,
            id,
            payload,
            reason,
            json,
        } => {
            let ops = open_ops(&config).await?;
            if payload {
                let why = reason.unwrap_or_default();
                let (info, payload) = ops.show_payload(&id, &actor, &why).await?;
                if json {
                    print_json(&serde_json::json!({"dead_letter": info, "payload": payload}))?;
                } else {
                    print_dead_letter(&info);
                    println!("payload (view recorded in the audit trail):");
                    print_json(&payload)?;
                }
            } else {
                let info = ops.show(&id).await?;
                if json {
                    print_json(&info)?;
                } else {
                    print_dead_letter(&info);
                }
            }
        }
        DeadLettersCommand::Replay {
            config,
            ids,
            all,
            reason,
            destination,
            since,
            why,
            json,
        } => {
            let ops = open_ops(&config).await?;
            let results = if all {
                let filter = DeadLetterFilter {
                    reason,
                    destination,
                    since,
                    limit: Some(100_000),
                };
                ops.replay_matching(&filter, &actor, why.as_deref()).await?
            } else {
                ops.replay_ids(&ids, &actor, why.as_deref()).await?
            };
            let failed = results.iter().any(|r| r.outcome == "failed");
            if json {
                print_json(&results)?;
            } else if results.is_empty() {
                println!("no dead letter matched; nothing was replayed");
            } else {
                for r in &results {
                    let id = r.dead_letter_id.map_or("-".into(), |n| format!("#{n}"));
                    println!("{id} {}: {}", r.outcome, r.message);
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        DeadLettersCommand::Purge {
            config,
            ids,
            older_than,
            why,
            json,
        } => {
            let ops = open_ops(&config).await?;
            let result = match older_than {
                Some(age) => {
                    let age = kurier::ops::parse_duration(&age)?;
                    ops.purge_older_than(age, &actor, why.as_deref()).await?
                }
                None => ops.purge_ids(&ids, &actor, why.as_deref()).await?,
            };
            if json {
                print_json(&result)?;
            } else {
                println!(
                    "{} dead letters purged (payloads and keys destroyed; receipts kept): {}",
                    result.dead_letter_ids.len(),
                    result.submission_ids.join(" ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn parked(command: ParkedCommand) -> anyhow::Result<ExitCode> {
    let actor = Actor::os_user();
    let (json, results) = match command {
        ParkedCommand::List {
            config,
            destination,
            each,
            limit,
            json,
        } => {
            let ops = open_ops(&config).await?;
            if each {
                let rows = ops.parked_each(destination.as_deref(), limit).await?;
                if json {
                    print_json(&rows)?;
                } else {
                    print_parked_each(&rows);
                }
            } else {
                let backlog = ops.parked(destination.as_deref()).await?;
                if json {
                    print_json(&backlog)?;
                } else {
                    println!(
                        "{:<28} {:>7} {:>5} {:<28} {:<28} LAST CAUSE",
                        "DESTINATION", "PARKED", "HELD", "NEXT ATTEMPT", "OLDEST RECEIVED"
                    );
                    for b in backlog {
                        println!(
                            "{:<28} {:>7} {:>5} {:<28} {:<28} {}",
                            b.destination,
                            b.count,
                            b.held,
                            b.next_attempt_at,
                            b.oldest_received_at,
                            b.last_cause
                        );
                    }
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        ParkedCommand::Show { config, id, json } => {
            let p = open_ops(&config).await?.parked_show(&id).await?;
            if json {
                print_json(&p)?;
            } else {
                print_parked(&p);
            }
            return Ok(ExitCode::SUCCESS);
        }
        ParkedCommand::RetryNow {
            config,
            ids,
            destination,
            why,
            json,
        } => {
            let ops = open_ops(&config).await?;
            let why = why.as_deref();
            let results = match destination {
                Some(d) => ops.retry_destination(&d, &actor, why).await?,
                None => {
                    ops.parked_act(ParkedAction::RetryNow, &ids, &actor, why)
                        .await?
                }
            };
            (json, results)
        }
        ParkedCommand::Hold(a) => a.act(ParkedAction::Hold, &actor).await?,
        ParkedCommand::Release(a) => a.act(ParkedAction::Release, &actor).await?,
        ParkedCommand::Purge(a) => a.act(ParkedAction::Purge, &actor).await?,
    };
    if json {
        print_json(&results)?;
    } else if results.is_empty() {
        println!("no parked submission matched; nothing changed");
    } else {
        for r in &results {
            println!("{}", r.message);
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl ParkedIds {
    /// Do `act` to the named submissions; whether to print JSON, and what was done.
    async fn act(
        self,
        act: ParkedAction,
        actor: &Actor,
    ) -> anyhow::Result<(bool, Vec<kurier::ops::ParkedResult>)> {
        let ops = open_ops(&self.config).await?;
        let results = ops
            .parked_act(act, &self.ids, actor, self.why.as_deref())
            .await?;
        Ok((self.json, results))
    }
}

async fn destinations(command: DestinationsCommand) -> anyhow::Result<ExitCode> {
    let actor = Actor::os_user();
    let (result, json) = match command {
        DestinationsCommand::List { config, json } => {
            let rows = open_ops(&config).await?.destinations().await?;
            if json {
                print_json(&rows)?;
            } else {
                println!(
                    "{:<28} {:<8} {:>7} {:>5} {:<28} {:<16} REASON",
                    "DESTINATION", "STATE", "PARKED", "HELD", "PAUSED AT", "PAUSED BY"
                );
                for d in rows {
                    let state = match (d.paused, d.configured) {
                        (_, false) => "removed",
                        (true, _) => "paused",
                        (false, _) => "active",
                    };
                    println!(
                        "{:<28} {:<8} {:>7} {:>5} {:<28} {:<16} {}",
                        d.destination,
                        state,
                        d.parked,
                        d.held,
                        d.paused_at.as_deref().unwrap_or("-"),
                        d.paused_by.as_deref().unwrap_or("-"),
                        d.pause_reason.as_deref().unwrap_or("")
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        DestinationsCommand::Pause {
            config,
            destination,
            why,
            json,
        } => {
            let ops = open_ops(&config).await?;
            (ops.pause(&destination, &actor, why.as_deref()).await?, json)
        }
        DestinationsCommand::Resume {
            config,
            destination,
            why,
            json,
        } => {
            let ops = open_ops(&config).await?;
            (
                ops.resume(&destination, &actor, why.as_deref()).await?,
                json,
            )
        }
    };
    if json {
        print_json(&result)?;
    } else {
        println!("{}", result.message);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_parked_each(rows: &[ParkedInfo]) {
    println!(
        "{:<36} {:<24} {:>8} {:<28} {:<4} LAST CAUSE",
        "SUBMISSION", "DESTINATION", "ATTEMPTS", "NEXT ATTEMPT", "HELD"
    );
    for p in rows {
        println!(
            "{:<36} {:<24} {:>8} {:<28} {:<4} {}",
            p.submission_id,
            p.destination,
            p.attempts,
            p.next_attempt_at,
            if p.held { "yes" } else { "-" },
            p.last_cause
        );
    }
}

fn print_parked(p: &ParkedInfo) {
    println!("submission       {}", p.submission_id);
    println!("service          {}", p.service);
    println!("destination      {}", p.destination);
    println!("portal           {}", p.portal);
    println!("attempts         {}", p.attempts);
    println!("received sha256  {}", p.received_sha256);
    println!("received         {}", p.received_at);
    println!("first failure    {}", p.first_failure_at);
    println!("last cause       {}", p.last_cause);
    println!("next attempt     {}", p.next_attempt_at);
    println!("expires          {} (then delivery_expired)", p.expires_at);
    println!(
        "held             {}",
        if p.held {
            "yes (the scheduler leaves it alone; `kurier parked release`)"
        } else {
            "no"
        }
    );
    if p.in_flight {
        println!("in flight        an attempt is under way right now");
    }
}

fn print_dead_letters(rows: &[DeadLetterInfo]) {
    println!(
        "{:<6} {:<36} {:<26} {:<24} {:<28} {:<7} DETAIL",
        "ID", "SUBMISSION", "REASON", "DESTINATION", "AT", "PAYLOAD"
    );
    for d in rows {
        println!(
            "{:<6} {:<36} {:<26} {:<24} {:<28} {:<7} {}",
            d.id,
            d.submission_id.as_deref().unwrap_or("-"),
            d.reason_code,
            d.destination.as_deref().unwrap_or("-"),
            d.created_at,
            if d.payload_kept { "kept" } else { "-" },
            d.reason_detail
        );
    }
}

fn print_dead_letter(d: &DeadLetterInfo) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("dead letter    #{}", d.id);
    println!("submission     {}", opt(&d.submission_id));
    println!("service        {}", opt(&d.service));
    println!("destination    {}", opt(&d.destination));
    println!("portal         {}", opt(&d.portal));
    println!("reason         {}", d.reason_code);
    println!("detail         {}", d.reason_detail);
    if let Some(s) = d.http_status {
        println!("http status    {s}");
    }
    println!("received sha256 {}", d.received_sha256);
    println!("created        {}", d.created_at);
    match (&d.expires_at, d.payload_kept) {
        (Some(until), true) => println!("payload        kept (sealed) until {until}; replayable"),
        _ => println!("payload        not kept; cannot be replayed"),
    }
}

fn print_receipts(receipts: &[kurier::store::Receipt]) {
    println!(
        "{:<36} {:<14} {:<16} {:<24} {:<8} {:<22} REASON",
        "SUBMISSION", "STATUS", "SERVICE", "DESTINATION", "ATTEMPTS", "REFERENCE"
    );
    for r in receipts {
        println!(
            "{:<36} {:<14} {:<16} {:<24} {:<8} {:<22} {}",
            r.submission_id,
            r.status,
            r.service.as_deref().unwrap_or("-"),
            r.destination.as_deref().unwrap_or("-"),
            r.attempts,
            r.reference.as_deref().unwrap_or("-"),
            r.reason_code.as_deref().unwrap_or("")
        );
    }
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}
