//! Exit codes: stable, documented in `kurier --help` and the README, tested
//! in tests/tests/cli.rs. Scripts and service managers act on them (e.g.
//! systemd `RestartPreventExitStatus=3`: a broken configuration does not
//! fix itself by restarting).

use kurier::config::ConfigError;
use kurier::operator::ops::OpsError;
use kurier::preflight::PreflightError;
use kurier::store::StoreError;

/// What a finished `kurier` command tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// The command ran and failed: a database or RabbitMQ it could not
    /// reach, an id that is not there, a replay that did not go out; and
    /// `check-config`'s answer "invalid" (CONTRACT.md § 5).
    Failed = 1,
    /// The command line is wrong (clap's own code): unknown verb or option,
    /// missing or malformed argument. Nothing was done.
    Usage = 2,
    /// The configuration cannot be read or would not start the broker
    /// (every verb but `check-config`, which answers 1). Nothing was done.
    Config = 3,
    /// There is no database, or it is not migrated to this version: a verb
    /// other than `run` and `migrate` never creates or migrates one.
    NoDatabase = 4,
}

/// The table in `kurier --help` (and, in the same words, the README).
pub const HELP: &str = "\
Exit codes:
  0  done
  1  failed: the command ran and did not succeed (database or RabbitMQ not
     reachable, an id that is not there, a replay that did not go out);
     check-config: the configuration is invalid
  2  usage: unknown verb or option, missing or malformed argument
  3  configuration unreadable or invalid (every verb but check-config)
  4  no database, or not migrated: only `run` and `migrate` create or
     migrate it (`kurier migrate`)

Examples:
  kurier --config /etc/kurier/kurier.toml check-config
  kurier status --json
  kurier dead-letters list --since 1h
  kurier completions bash > /etc/bash_completion.d/kurier";

impl Exit {
    /// The code for an error that ended a command.
    pub fn of(error: &anyhow::Error) -> Exit {
        if let Some(run) = error.downcast_ref::<kurier::RunError>() {
            return match run {
                kurier::RunError::Preflight(_) => Exit::Config,
                _ => Exit::Failed,
            };
        }
        if error.downcast_ref::<ConfigError>().is_some()
            || error.downcast_ref::<PreflightError>().is_some()
        {
            return Exit::Config;
        }
        let store =
            error
                .downcast_ref::<StoreError>()
                .or_else(|| match error.downcast_ref::<OpsError>() {
                    Some(OpsError::Store(e)) => Some(e),
                    _ => None,
                });
        match store {
            Some(StoreError::Missing(_) | StoreError::NotMigrated { .. }) => Exit::NoDatabase,
            _ => Exit::Failed,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}
