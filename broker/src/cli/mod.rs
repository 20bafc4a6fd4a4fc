//! The `kurier` command line (CONTRACT.md § 5): the broker itself and the
//! operator's tools, one file per verb group. Every verb reads the library
//! (`kurier::operator::ops` for the operator's verbs, the same code the admin API
//! calls); this folder only parses, opens and prints.
//!
//! What the verbs share lives here: the global options, how a verb opens the
//! database (only `run` and `migrate` create or migrate it), JSON output.
//! [`exit`] says what each exit code means; [`table`] prints every table.

mod audit;
mod check_config;
mod completions;
mod dead_letters;
mod destinations;
mod duration;
pub mod exit;
mod man;
mod migrate;
mod parked;
mod receipts;
mod run;
mod status;
mod submit;
mod table;
mod vault;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kurier::config::{Config, ConfigError};
use kurier::operator::ops::Ops;
use kurier::store::Access;
use kurier::telemetry::LogFormat;

use exit::Exit;

/// Kurier relays benefit applications from form portals (RabbitMQ) to the
/// case-management systems of the receiving authorities (HTTPS with mutual
/// TLS), records a receipt for each, and keeps no payload afterwards.
#[derive(Parser)]
#[command(
    name = "kurier",
    version,
    about,
    long_about = "Kurier relays benefit applications from form portals (RabbitMQ) to the \
case-management systems of the receiving authorities (HTTPS with mutual TLS), records a \
receipt for each, and keeps no payload afterwards.\n\n\
`kurier run` is the broker; the other verbs are the operator's tools. They read the \
configuration (--config or KURIER_CONFIG) and the database and vault key it names; \
global options go before or after the verb. Only `run` and `migrate` create or migrate \
the database: every other verb opens the one that is there (the looking ones read-only) \
and says so if there is none. No verb prints a payload, except `dead-letters show \
--payload`, which needs a reason and is audited.",
    after_help = exit::HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every verb takes, before or after it (`kurier --config F status`
/// and `kurier status --config F` are the same).
#[derive(Args)]
pub struct Global {
    /// Configuration file (TOML); relative paths in it are relative to it.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "KURIER_CONFIG",
        default_value = "kurier.toml",
        value_name = "FILE"
    )]
    pub config: PathBuf,
    /// Print JSON for scripts instead of tables and sentences.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format on stderr: `text` for people, `json` for collectors.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the broker until SIGTERM/SIGINT (in-flight work finishes or is
    /// parked; nothing unfinished is acked).
    #[command(
        long_about = "Run the broker until SIGTERM/SIGINT: consume kurier.intake, deliver, \
record receipts, publish receipt events, retry parked submissions, serve [admin] listen. \
Checks the configuration first exactly as `check-config` does (exit 3 if it is invalid), \
then creates and migrates the database as needed. On SIGTERM in-flight work finishes or is \
parked within shutdown_grace_secs; nothing unfinished is acked."
    )]
    Run,
    /// Check the configuration, certificates, routes and XSDs; exit 0 or
    /// name what is wrong and exit 1.
    #[command(
        long_about = "Check the configuration as `run` does at start, without connecting \
to anything: the file (a syntax error or unknown key names its line), the routes, every \
destination's CA, certificate and key (read, parsed, matched), every adapter's XSD \
(compiled), the admin listener's TLS files and token file, and files holding secrets that \
others may read. Certificates that expired fail; those expiring within 30 days are warnings. \
Exit 0 when the broker would start, else 1 with the reason (CONTRACT.md § 5)."
    )]
    CheckConfig,
    /// Create the database if needed and apply its migrations (`run` does
    /// this at start too); `--check` only lists them.
    #[command(
        long_about = "Create the database if needed and apply its pending migrations (`run` \
does this at start too). Migrations the database has and this binary does not know (a newer \
release applied them: a rolling upgrade, or this binary was rolled back) stay as they are and \
are named. With --check, a dry run: open the existing database read-only, never create it, list \
every migration (applied, pending, newer than this binary, failed, changed) and change nothing; \
exit 0 when nothing is pending, 1 when migrations are pending (or one failed or was changed), \
4 when there is no database (docs/OPERATIONS.md, Upgrades)."
    )]
    Migrate(migrate::Migrate),
    /// Publish envelope files as a portal would (for tests and demos).
    Submit(submit::Submit),
    /// Receipts: what happened to each submission (metadata only).
    #[command(subcommand)]
    Receipts(receipts::Receipts),
    /// Dead letters: submissions that were not delivered, with their
    /// reasons; list, show, replay after fixing the cause, purge.
    #[command(subcommand)]
    DeadLetters(dead_letters::DeadLetters),
    /// Parked submissions: transient failures waiting for their next
    /// attempt. An operator's queue: list, show, retry now, hold, release,
    /// purge.
    #[command(subcommand)]
    Parked(parked::Parked),
    /// Destinations: list them with pause state and backlog; pause one for
    /// a maintenance window and resume it.
    #[command(subcommand)]
    Destinations(destinations::Destinations),
    /// Parked and dead letters per destination, as the database knows them
    /// (read-only; circuit states: GET /api/status of the running broker).
    Status,
    /// The audit trail of operator actions.
    #[command(subcommand)]
    Audit(audit::Audit),
    /// The vault's keys: master-key rotation (docs/OPERATIONS.md).
    #[command(subcommand)]
    Vault(vault::Vault),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Completions),
    /// Print the man page (roff), or write one per verb into a directory.
    Man(man::Man),
}

/// Run the verb; `Ok` carries the exit code of a verb that ran and had
/// something to say with it (a replay that failed, an unknown receipt).
pub async fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    let global = &cli.global;
    match cli.command {
        Command::Run => run::run(global).await,
        Command::CheckConfig => check_config::run(global),
        Command::Migrate(verb) => verb.run(global).await,
        Command::Submit(submit) => submit.run(global).await,
        Command::Receipts(verb) => verb.run(global).await,
        Command::DeadLetters(verb) => verb.run(global).await,
        Command::Parked(verb) => verb.run(global).await,
        Command::Destinations(verb) => verb.run(global).await,
        Command::Status => status::run(global).await,
        Command::Audit(verb) => verb.run(global).await,
        Command::Vault(verb) => verb.run(global).await,
        Command::Completions(verb) => verb.run(),
        Command::Man(verb) => verb.run(),
    }
}

impl Global {
    /// The configuration file, parsed and its paths resolved.
    fn load(&self) -> Result<Config, ConfigError> {
        Config::load(&self.config)
    }

    /// The operations over the database that `run` or `migrate` made:
    /// `ReadOnly` for verbs that look, `ReadWrite` for verbs that act.
    async fn ops(&self, access: Access) -> anyhow::Result<Ops> {
        let config = self.load()?;
        Ok(Ops::open_existing(&config, access).await?)
    }

    /// Print `value` as JSON if `--json` was given, else call `human`.
    fn print<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
        human: impl FnOnce(&T),
    ) -> anyhow::Result<()> {
        if self.json {
            print_json(value)?;
        } else {
            human(value);
        }
        Ok(())
    }
}

fn print_json(value: &(impl serde::Serialize + ?Sized)) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;
    use super::exit::Exit;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// `kurier --help` and the README's table must not drift apart.
    #[test]
    fn the_readme_documents_every_exit_code() {
        let readme = include_str!("../../../README.md");
        for exit in [
            Exit::Ok,
            Exit::Failed,
            Exit::Usage,
            Exit::Config,
            Exit::NoDatabase,
        ] {
            let code = exit as u8;
            assert!(
                readme.contains(&format!("\n| `{code}` | ")),
                "README.md lacks exit code {code}"
            );
            assert!(
                super::exit::HELP.contains(&format!("\n  {code}  ")),
                "--help lacks exit code {code}"
            );
        }
    }
}
