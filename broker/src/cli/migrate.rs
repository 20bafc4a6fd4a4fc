//! `kurier migrate`: create the database if needed and apply its
//! migrations; with `run`, the only verb that changes the schema.
//! `kurier migrate --check` only looks: applied and pending migrations, and
//! any the database has that this binary does not know (docs/OPERATIONS.md,
//! *Upgrades*).

use clap::Args;
use kurier::store::schema::{MigrationState, Migrations};
use kurier::store::{Access, Store};

use super::Global;
use super::exit::Exit;
use super::table::Table;

#[derive(Args)]
pub struct Migrate {
    /// Dry run: open the existing database read-only (never create it),
    /// list applied and pending migrations, change nothing. Exit 0 when
    /// nothing is pending, 1 when migrations are pending (or one failed or
    /// was changed), 4 when there is no database.
    #[arg(long)]
    check: bool,
}

impl Migrate {
    pub async fn run(self, global: &Global) -> anyhow::Result<Exit> {
        if self.check {
            return check(global).await;
        }
        let config = global.load()?;
        let store = Store::connect(&config.database).await?;
        let before = store.migrate().await;
        store.close().await;
        let before = before?;
        let database = redact_url(&config.database.url);
        let applied: Vec<_> = before.with(MigrationState::Pending).collect();
        let newer: Vec<_> = before.with(MigrationState::Newer).collect();
        global.print(
            &serde_json::json!({
                "migrated": true,
                "database": database,
                "applied": applied,
                "newer_than_binary": newer,
            }),
            |_| {
                match applied.len() {
                    0 => println!("{database}: nothing to migrate"),
                    _ => println!(
                        "{database}: applied {}",
                        before.names(MigrationState::Pending)
                    ),
                }
                if !newer.is_empty() {
                    println!("{}", newer_note(&before));
                }
            },
        )?;
        Ok(Exit::Ok)
    }
}

/// `migrate --check`: what `migrate` would do, and what it could not.
async fn check(global: &Global) -> anyhow::Result<Exit> {
    let config = global.load()?;
    let (store, database) = Store::open_as_is(&config.database, Access::ReadOnly).await?;
    let migrations = store.migrations().await;
    store.close().await;
    let migrations = migrations?;
    let count = |state| migrations.with(state).count();
    let (pending, newer) = (count(MigrationState::Pending), count(MigrationState::Newer));
    let broken = count(MigrationState::Failed) + count(MigrationState::Changed);
    global.print(
        &serde_json::json!({
            "database": database,
            "binary_version": env!("CARGO_PKG_VERSION"),
            "up_to_date": pending == 0 && broken == 0,
            "pending": pending,
            "newer_than_binary": newer > 0,
            "migrations": migrations.0,
        }),
        |_| {
            let mut table = Table::new(["version", "state", "description"]);
            for m in &migrations.0 {
                table.row([
                    format!("{:04}", m.version),
                    m.state.as_str().to_owned(),
                    m.description.clone(),
                ]);
            }
            table.print();
            match pending {
                0 => println!("{database}: nothing pending"),
                n => println!("{database}: {n} pending; `kurier migrate` applies them"),
            }
            if newer > 0 {
                println!("{}", newer_note(&migrations));
            }
        },
    )?;
    if broken > 0 {
        eprintln!(
            "kurier: {database}: migrations that failed or differ from this binary's: {} {}; \
             sqlx will not migrate this database until an operator repairs _sqlx_migrations",
            migrations.names(MigrationState::Failed),
            migrations.names(MigrationState::Changed),
        );
    }
    Ok(if pending == 0 && broken == 0 {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// What a database newer than this binary means, in one sentence.
fn newer_note(migrations: &Migrations) -> String {
    format!(
        "the database is newer than this binary (kurier {}): {} applied by a newer release. \
         This binary runs on it while every release only expands the schema (a rolling \
         upgrade, or a rollback of the binary: docs/OPERATIONS.md, Upgrades); it never undoes them",
        env!("CARGO_PKG_VERSION"),
        migrations.names(MigrationState::Newer)
    )
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_url_loses_its_password() {
        assert_eq!(
            super::redact_url("postgres://kurier:secret@db.example/kurier"),
            "postgres://…@db.example/kurier"
        );
        assert_eq!(
            super::redact_url("sqlite:///var/lib/kurier.db"),
            "sqlite:///var/lib/kurier.db"
        );
    }
}
