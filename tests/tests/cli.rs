//! The command line's conventions (CONTRACT.md § 5): global options before
//! or after the verb, the documented exit codes, read-only verbs that never
//! create or migrate a database, `migrate --check`, completions and a man
//! page generated from the parser.

use std::path::Path;
use std::process::{Command, Output};

use kurier::store::Store;
use kurier_e2e::{Backend, World, WorldOptions, on_both_backends, stderr, stdout, workspace_bin};

on_both_backends!(
    read_only_verbs_never_create_or_migrate_a_database,
    migrate_check_lists_applied_pending_and_newer_migrations,
);

/// The verbs that only look. Each must open the database read-only and
/// refuse to run without a migrated one.
const LOOKING: &[&[&str]] = &[
    &["status"],
    &["dead-letters", "list"],
    &["dead-letters", "show", "1"],
    &["parked", "list"],
    &["parked", "list", "--each"],
    &["parked", "show", "6f1d7c1e-0000-4000-8000-000000000001"],
    &["destinations", "list"],
    &["receipts", "list"],
    &["audit", "list"],
];

/// `kurier ARGS` with no KURIER_CONFIG in the environment.
fn kurier(args: &[&str]) -> Output {
    Command::new(workspace_bin("kurier"))
        .args(args)
        .env_remove("KURIER_CONFIG")
        .output()
        .unwrap()
}

fn kurier_with(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    kurier(&all)
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("kurier ended by a signal")
}

/// Whether the database holds any table at all.
async fn tables_in(store: &Store) -> i64 {
    match store {
        Store::Sqlite(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
                .fetch_one(pool)
                .await
                .unwrap()
        }
        Store::Postgres(pool) => sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(pool)
        .await
        .unwrap(),
    }
}

async fn read_only_verbs_never_create_or_migrate_a_database(backend: Backend) {
    let world = World::start(WorldOptions::new(backend)).await.unwrap();
    let config = world.config_path.clone();
    let sqlite_file = world
        .config
        .database
        .url
        .strip_prefix("sqlite://")
        .map(std::path::PathBuf::from);

    // Nothing has run: SQLite has no file, PostgreSQL an empty database.
    for args in LOOKING {
        let out = kurier_with(&config, args);
        assert_eq!(code(&out), 4, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        match &sqlite_file {
            Some(file) => {
                assert!(err.contains(&file.display().to_string()), "{args:?}: {err}");
                assert!(!file.exists(), "{args:?} created {}", file.display());
            }
            None => assert!(
                err.contains("not migrated") && err.contains("kurier migrate"),
                "{args:?}: {err}"
            ),
        }
    }
    // A verb that acts does not create or migrate either.
    let out = kurier_with(&config, &["destinations", "pause", "sozialamt-koeln"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    if let Some(file) = &sqlite_file {
        assert!(!file.exists());
    } else {
        let store = world.store().await.unwrap();
        assert_eq!(tables_in(&store).await, 0, "a looking verb made tables");
        store.close().await;
    }

    // `migrate` makes it; then every looking verb answers (or says the id
    // is not there: exit 1, not 4).
    let out = kurier_with(&config, &["migrate"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for args in LOOKING {
        let out = kurier_with(&config, args);
        let expected = if args.contains(&"show") { 1 } else { 0 };
        assert_eq!(code(&out), expected, "{args:?}: {}", stderr(&out));
    }

    // A schema older than the binary is not migrated by a looking verb: the
    // newest migration stays missing.
    let store = world.store().await.unwrap();
    let newest =
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)";
    let count = "SELECT COUNT(*) FROM _sqlx_migrations";
    let before: i64 = match &store {
        Store::Sqlite(pool) => {
            sqlx::query(newest).execute(pool).await.unwrap();
            sqlx::query_scalar(count).fetch_one(pool).await.unwrap()
        }
        Store::Postgres(pool) => {
            sqlx::query(newest).execute(pool).await.unwrap();
            sqlx::query_scalar(count).fetch_one(pool).await.unwrap()
        }
    };
    for args in LOOKING {
        let out = kurier_with(&config, args);
        assert_eq!(code(&out), 4, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("not migrated"), "{}", stderr(&out));
    }
    let after: i64 = match &store {
        Store::Sqlite(pool) => sqlx::query_scalar(count).fetch_one(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(count).fetch_one(pool).await.unwrap(),
    };
    assert_eq!(before, after, "a looking verb applied a migration");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_options_go_before_or_after_the_verb() {
    let world = World::start(WorldOptions::new(Backend::Sqlite))
        .await
        .unwrap();
    let config = world.config_path.to_str().unwrap();
    assert_eq!(code(&kurier(&["--config", config, "migrate"])), 0);

    let orders: &[&[&str]] = &[
        &["--config", config, "--json", "destinations", "list"],
        &["destinations", "list", "--config", config, "--json"],
        &["--json", "destinations", "--config", config, "list"],
        &["-c", config, "destinations", "list", "--json"],
    ];
    let mut answers = Vec::new();
    for args in orders {
        let out = kurier(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&out)));
        answers.push(listed);
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0][0]["destination"], "sozialamt-koeln");

    // Without --json the same verb prints a table whose lines start with
    // their first cell.
    let out = kurier(&["destinations", "list", "--config", config]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("sozialamt-koeln") && l.contains("active")),
        "{}",
        stdout(&out)
    );
    // KURIER_CONFIG stays the default of --config.
    let out = Command::new(workspace_bin("kurier"))
        .args(["status", "--json"])
        .env("KURIER_CONFIG", config)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // check-config takes --json too.
    let out = kurier(&["check-config", "--json", "--config", config]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checked["ok"], true, "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_are_the_documented_ones() {
    let world = World::start(WorldOptions::new(Backend::Sqlite))
        .await
        .unwrap();
    let config = world.config_path.clone();

    // The table is in --help.
    let help = stdout(&kurier(&["--help"]));
    for line in [
        "0  done",
        "1  failed",
        "2  usage",
        "3  configuration unreadable or invalid",
        "4  no database",
    ] {
        assert!(help.contains(line), "--help lacks {line:?}: {help}");
    }

    // 0: done.
    assert_eq!(code(&kurier_with(&config, &["check-config"])), 0);
    // 4: no database yet (a looking verb never makes one).
    assert_eq!(code(&kurier_with(&config, &["status"])), 4);
    assert_eq!(code(&kurier_with(&config, &["migrate"])), 0);
    assert_eq!(code(&kurier_with(&config, &["status"])), 0);

    // 2: usage; nothing is opened.
    for args in [
        &["no-such-verb"][..],
        &["status", "--no-such-option"][..],
        &["parked", "hold"][..],
        &["dead-letters", "purge", "--older-than", "soon"][..],
        &["dead-letters", "purge", "--older-than", "99999999999d"][..],
        &["dead-letters", "list", "--since", "yesterday"][..],
        &["run", "--json"][..],
    ] {
        let out = kurier_with(&config, args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
    }
    assert!(
        stderr(&kurier_with(
            &config,
            &["dead-letters", "purge", "--older-than", "99999999999d"]
        ))
        .contains("thousand years")
    );

    // 1: the command ran and failed (an id that is not there).
    let out = kurier_with(
        &config,
        &["parked", "hold", "6f1d7c1e-0000-4000-8000-000000000001"],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("is not parked"), "{}", stderr(&out));

    // 3: the configuration cannot be read or is invalid, for every verb but
    // check-config, whose answer "invalid" is 1 (CONTRACT.md § 5).
    let missing = world.dir.path().join("no-such.toml");
    let broken = world.dir.path().join("broken.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&broken, text.replace("[amqp]", "[amqp\n")).unwrap();
    let invalid = world.dir.path().join("invalid.toml");
    assert!(text.contains("prefetch = 32"));
    std::fs::write(&invalid, text.replace("prefetch = 32", "prefetch = 0")).unwrap();
    for file in [&missing, &broken] {
        for args in [&["status"][..], &["run"][..], &["parked", "list"][..]] {
            let out = kurier_with(file, args);
            assert_eq!(code(&out), 3, "{file:?} {args:?}: {}", stderr(&out));
        }
    }
    let out = kurier_with(&invalid, &["run"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("prefetch"), "{}", stderr(&out));
    for file in [&missing, &broken, &invalid] {
        let out = kurier_with(file, &["check-config"]);
        assert_eq!(code(&out), 1, "{file:?}: {}", stderr(&out));
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_parser() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = kurier(&["completions", shell]);
        assert_eq!(code(&out), 0, "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in ["dead-letters", "retry-now", "check-config"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let out = kurier(&["completions", "tcsh"]);
    assert_eq!(code(&out), 2);

    let out = kurier(&["man"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH kurier"),
        "{page}"
    );
    assert!(
        page.contains("Exit codes"),
        "the man page lacks the exit codes"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = kurier(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for page in [
        "kurier.1",
        "kurier-parked-hold.1",
        "kurier-dead-letters-replay.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page} not written");
    }
}

/// Run `sql` on the world's database (the migration bookkeeping is sqlx's).
async fn execute(store: &Store, sql: &str) {
    // Test statements, written here: no input reaches them.
    let sql = || sqlx::AssertSqlSafe(sql.to_owned());
    match store {
        Store::Sqlite(pool) => sqlx::query(sql()).execute(pool).await.map(|_| ()),
        Store::Postgres(pool) => sqlx::query(sql()).execute(pool).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{}: {e}", sql().0));
}

/// `migrate --check --json`: its exit code and its answer.
fn check(config: &Path) -> (i32, serde_json::Value) {
    let out = kurier_with(config, &["migrate", "--check", "--json"]);
    let answer = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (code(&out), answer)
}

fn states(answer: &serde_json::Value) -> Vec<(i64, String)> {
    answer["migrations"]
        .as_array()
        .unwrap_or_else(|| panic!("no migrations in {answer}"))
        .iter()
        .map(|m| {
            (
                m["version"].as_i64().unwrap(),
                m["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn migrate_check_lists_applied_pending_and_newer_migrations(backend: Backend) {
    let mut world = World::start(WorldOptions::new(backend)).await.unwrap();
    let config = world.config_path.clone();

    // No database: 4, and none is made (PostgreSQL: the world made an
    // empty one, so everything is pending: 1).
    let (exit, answer) = check(&config);
    match backend {
        Backend::Sqlite => {
            assert_eq!(exit, 4, "{answer}");
            let file = world.config.database.url.strip_prefix("sqlite://").unwrap();
            assert!(!Path::new(file).exists(), "--check created {file}");
        }
        Backend::Postgres => {
            assert_eq!(exit, 1, "{answer}");
            assert!(
                states(&answer).iter().all(|(_, s)| s == "pending"),
                "{answer}"
            );
        }
    }

    // `migrate` applies them all and names them.
    let out = kurier_with(&config, &["migrate", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let migrated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let applied = migrated["applied"].as_array().unwrap();
    assert!(applied.len() >= 8, "{migrated}");
    let newest = applied.last().unwrap()["version"].as_i64().unwrap();

    // The newest not recorded (its row set aside): 1, the newest pending,
    // nothing applied by the check.
    let store = world.store().await.unwrap();
    execute(
        &store,
        &format!(
            "CREATE TABLE set_aside AS SELECT * FROM _sqlx_migrations WHERE version = {newest}"
        ),
    )
    .await;
    execute(
        &store,
        &format!("DELETE FROM _sqlx_migrations WHERE version = {newest}"),
    )
    .await;
    let (exit, answer) = check(&config);
    assert_eq!(exit, 1, "{answer}");
    let listed = states(&answer);
    assert_eq!(
        listed.last().unwrap(),
        &(newest, "pending".to_owned()),
        "{answer}"
    );
    assert!(
        listed[..listed.len() - 1]
            .iter()
            .all(|(_, s)| s == "applied"),
        "{answer}"
    );
    assert_eq!(answer["pending"], 1, "{answer}");
    assert_eq!(check(&config).0, 1, "the check applied a migration");
    // The table says the same to people, and where to go.
    let out = kurier_with(&config, &["migrate", "--check"]);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{newest:04}")) && l.contains("pending")),
        "{text}"
    );
    assert!(text.contains("kurier migrate"), "{text}");

    // Up to date: 0.
    execute(
        &store,
        "INSERT INTO _sqlx_migrations SELECT * FROM set_aside",
    )
    .await;
    let (exit, answer) = check(&config);
    assert_eq!(
        (exit, answer["up_to_date"].as_bool()),
        (0, Some(true)),
        "{answer}"
    );

    // Newer than the binary (a migration of a later release): still 0,
    // said clearly; `migrate` and `run` leave it and go on.
    let checksum = match backend {
        Backend::Sqlite => "X'00'",
        Backend::Postgres => "decode('00', 'hex')",
    };
    execute(
        &store,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from a later release', TRUE, {checksum}, 0)"
        ),
    )
    .await;
    let (exit, answer) = check(&config);
    assert_eq!(exit, 0, "{answer}");
    assert_eq!(answer["newer_than_binary"], true, "{answer}");
    assert_eq!(
        states(&answer).last().unwrap(),
        &(9999, "newer".to_owned()),
        "{answer}"
    );
    let out = kurier_with(&config, &["migrate", "--check"]);
    assert!(
        stdout(&out).contains("newer than this binary") && stdout(&out).contains("9999"),
        "{}",
        stdout(&out)
    );
    let out = kurier_with(&config, &["migrate"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("newer than this binary"),
        "{}",
        stdout(&out)
    );
    assert_eq!(code(&kurier_with(&config, &["status"])), 0);
    world.start_kurier().unwrap();
    world
        .await_ready(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let log = std::fs::read_to_string(world.log_path()).unwrap();
    assert!(
        log.contains("migrations this binary does not know") && log.contains("9999"),
        "{log}"
    );

    // A migration that failed half-way: 1, named on stderr.
    execute(
        &store,
        "UPDATE _sqlx_migrations SET success = FALSE WHERE version = 9999",
    )
    .await;
    let out = kurier_with(&config, &["migrate", "--check"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stderr(&out).contains("9999"), "{}", stderr(&out));
    store.close().await;
}
