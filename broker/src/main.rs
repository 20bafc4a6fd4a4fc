//! The `kurier` command line (CONTRACT.md § 5): the broker itself and the
//! operator's tools. Errors end here as one clear message and exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use kurier::config::Config;
use kurier::receipt;
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
    /// Run the broker until SIGTERM/SIGINT (in-flight work finishes or stays unacked).
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
    /// Dead letters: submissions that were not delivered, with their reasons.
    DeadLetters {
        #[command(subcommand)]
        command: DeadLettersCommand,
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
        /// Only receipts completed at or after this RFC 3339 time, e.g. 2026-11-23T00:00:00Z.
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
    /// List dead letters, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this reason code, e.g. schema_violation.
        #[arg(long)]
        reason: Option<String>,
        /// Only this destination.
        #[arg(long)]
        destination: Option<String>,
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
                let store = open_store(&config).await?;
                match store.receipt(&submission_id).await? {
                    Some(r) if json => println!("{}", serde_json::to_string_pretty(&r)?),
                    Some(r) => print_receipts(&[r]),
                    None => {
                        eprintln!("no receipt for submission {submission_id}");
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
                let store = open_store(&config).await?;
                let since = since.map(|s| normalise_time(&s)).transpose()?;
                let receipts = store.receipts(since.as_deref(), limit).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&receipts)?);
                } else {
                    print_receipts(&receipts);
                }
            }
        },
        Command::DeadLetters { command } => match command {
            DeadLettersCommand::List {
                config,
                reason,
                destination,
                limit,
                json,
            } => {
                if let Some(r) = &reason
                    && kurier::reason::ReasonCode::parse(r).is_none()
                {
                    anyhow::bail!("unknown reason code {r:?}");
                }
                let store = open_store(&config).await?;
                let rows = store
                    .dead_letters(reason.as_deref(), destination.as_deref(), limit)
                    .await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    println!(
                        "{:<6} {:<36} {:<26} {:<24} {:<28} DETAIL",
                        "ID", "SUBMISSION", "REASON", "DESTINATION", "AT"
                    );
                    for d in rows {
                        println!(
                            "{:<6} {:<36} {:<26} {:<24} {:<28} {}",
                            d.id,
                            d.submission_id.as_deref().unwrap_or("-"),
                            d.reason_code,
                            d.destination.as_deref().unwrap_or("-"),
                            d.created_at,
                            d.reason_detail
                        );
                    }
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

async fn open_store(c: &ConfigArg) -> anyhow::Result<Store> {
    let config = Config::load(&c.config)?;
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    Ok(store)
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

/// Accept any RFC 3339 time and turn it into the stored form (UTC, µs).
fn normalise_time(s: &str) -> anyhow::Result<String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            anyhow::anyhow!("--since {s:?} is not an RFC 3339 time such as 2026-11-23T00:00:00Z")
        })?;
    Ok(receipt::format_time(t))
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}
