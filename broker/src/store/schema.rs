//! The schema's migrations as this binary and the database each know them:
//! what `kurier migrate --check` lists, and what `run` and `migrate` say
//! when the database is newer than the binary.
//!
//! A database is newer than the binary during a rolling upgrade (the new
//! release migrated it; instances of the previous one still run or
//! restart) and after a rollback of the binary. Every release only expands
//! the schema (docs/OPERATIONS.md, *Upgrades*; `tests/migrations.rs`
//! enforces it), so the previous release still finds every table and
//! column it uses: `run` and `migrate` leave the unknown migrations in place
//! and say so, instead of refusing to start as sqlx does by default.

use std::time::Duration;

use serde::Serialize;

use super::{Store, StoreError};

/// How often [`Store::migrate`] tries a migration that lost a race for its
/// table locks with running instances.
pub const LOCK_RACES: usize = 10;

/// Whether a migration failed only for the locks it could not take:
/// PostgreSQL's `lock_not_available` (its `lock_timeout`) or
/// `deadlock_detected` (it was chosen to give way).
fn lost_a_lock_race(e: &sqlx::migrate::MigrateError) -> bool {
    use sqlx::migrate::MigrateError;
    let (MigrateError::Execute(sqlx::Error::Database(db))
    | MigrateError::ExecuteMigration(sqlx::Error::Database(db), _)) = e
    else {
        return false;
    };
    matches!(db.code().as_deref(), Some("55P03" | "40P01"))
}

/// Where one migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Applied, with the SQL this binary has.
    Applied,
    /// Known to this binary and not applied yet: `kurier migrate` (or
    /// `kurier run`) applies it.
    Pending,
    /// Applied by a newer binary and unknown to this one: a rolling upgrade
    /// under way, or this binary was rolled back.
    Newer,
    /// Applied with other SQL than this binary's (a migration edited after
    /// its release): sqlx refuses to migrate such a database.
    Changed,
    /// Started and did not finish (`success` false): needs an operator
    /// before anything migrates again.
    Failed,
}

impl MigrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Applied => "applied",
            MigrationState::Pending => "pending",
            MigrationState::Newer => "newer",
            MigrationState::Changed => "changed",
            MigrationState::Failed => "failed",
        }
    }
}

/// One migration, by version and description (its file name's words).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Migration {
    pub version: i64,
    pub description: String,
    pub state: MigrationState,
}

/// Every migration this binary has or the database records, by version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Migrations(pub Vec<Migration>);

impl Migrations {
    /// The migrations in one state.
    pub fn with(&self, state: MigrationState) -> impl Iterator<Item = &Migration> {
        self.0.iter().filter(move |m| m.state == state)
    }

    /// `version description, …` of the migrations in one state.
    pub fn names(&self, state: MigrationState) -> String {
        self.with(state)
            .map(|m| format!("{:04} {}", m.version, m.description))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A row of `_sqlx_migrations`.
#[derive(sqlx::FromRow)]
struct Recorded {
    version: i64,
    description: String,
    success: bool,
    checksum: Vec<u8>,
}

impl Store {
    /// The migrations of this binary and of the database, side by side.
    /// Changes nothing (read-only sessions may call it).
    pub async fn migrations(&self) -> Result<Migrations, StoreError> {
        const SQL: &str = "SELECT version, description, success, checksum FROM _sqlx_migrations";
        let recorded: Vec<Recorded> = if self.has_migrations_table().await? {
            on_pool!(self, pool => sqlx::query_as(SQL).fetch_all(pool).await)?
        } else {
            Vec::new()
        };
        let migrator = self.migrator();
        let mut all: Vec<Migration> = migrator
            .iter()
            .map(|known| {
                let row = recorded.iter().find(|r| r.version == known.version);
                let state = match row {
                    None => MigrationState::Pending,
                    Some(r) if !r.success => MigrationState::Failed,
                    Some(r) if *r.checksum != *known.checksum => MigrationState::Changed,
                    Some(_) => MigrationState::Applied,
                };
                Migration {
                    version: known.version,
                    description: known.description.to_string(),
                    state,
                }
            })
            .collect();
        all.extend(
            recorded
                .iter()
                .filter(|r| !migrator.version_exists(r.version))
                .map(|r| Migration {
                    version: r.version,
                    description: r.description.clone(),
                    state: if r.success {
                        MigrationState::Newer
                    } else {
                        MigrationState::Failed
                    },
                }),
        );
        all.sort_by_key(|m| m.version);
        Ok(Migrations(all))
    }

    /// Apply the pending migrations of `migrations/<backend>/`; migrations
    /// the database has and this binary lacks (a newer release's) stay as
    /// they are. Returns where each stood before.
    ///
    /// On PostgreSQL a migration that must lock tables the previous release
    /// is writing (0009) gives up after a short `lock_timeout`, or is the
    /// victim of a deadlock with such a write, rather than holding its
    /// locks while instances wait; it is then tried again, up to
    /// [`LOCK_RACES`] times, each on a connection of its own (sqlx keeps
    /// its advisory lock on a connection whose migration failed).
    pub async fn migrate(&self) -> Result<Migrations, StoreError> {
        let before = self.migrations().await?;
        let mut migrator = self.migrator();
        migrator.set_ignore_missing(true);
        match self {
            Store::Sqlite(pool) => migrator.run(pool).await?,
            Store::Postgres(pool) => {
                use backon::Retryable;
                let attempt = || async {
                    use sqlx::Connection;
                    let mut conn = pool.acquire().await?.detach();
                    let outcome = migrator.run(&mut conn).await;
                    let _ = conn.close().await;
                    outcome
                };
                attempt
                    .retry(
                        backon::ConstantBuilder::new()
                            .with_delay(Duration::from_millis(500))
                            .with_max_times(LOCK_RACES - 1),
                    )
                    .when(lost_a_lock_race)
                    .notify(|_, wait| {
                        tracing::warn!(
                            wait_ms = wait.as_millis() as u64,
                            "a migration could not take its table locks beside running \
                             instances (lock timeout or deadlock); trying again"
                        );
                    })
                    .await?;
            }
        }
        Ok(before)
    }

    /// Whether sqlx's bookkeeping table is there (not in a new database).
    pub(super) async fn has_migrations_table(&self) -> Result<bool, StoreError> {
        Ok(match self {
            Store::Sqlite(pool) => {
                sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
                )
                .fetch_one(pool)
                .await?
            }
            Store::Postgres(pool) => {
                sqlx::query_scalar::<_, bool>("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(pool)
                    .await?
            }
        })
    }
}
