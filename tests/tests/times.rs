//! Times in the database (docs/ARCHITECTURE.md, *Times in the database*):
//! every time column the statements compare or order by has its typed twin
//! `<column>_ts` (on PostgreSQL a `timestamptz`, on SQLite, which has no
//! time type, the written text itself); a twin holds the instant its text
//! column says, to the microsecond, up to the far end a saturated time is
//! written as; PostgreSQL refuses a time written in any other form (it
//! would compare wrongly); a `timestamptz` read back (`MIN` over a twin) is
//! the instant that was written. On PostgreSQL, migration 0009 (which
//! rewrites five tables under exclusive locks) gives way to a write of the
//! previous release that holds one of them and wants another, and is tried
//! again: neither deadlocks, both finish.

use std::time::{Duration, Instant};

use kurier::domain::time::Timestamp;
use kurier::store::{Parked, Record, Store};
use kurier_e2e::{Backend, World, WorldOptions, on_both_backends};

on_both_backends!(
    every_compared_time_has_its_typed_twin,
    a_twin_holds_the_instant_written,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_twins_migration_gives_way_to_the_previous_releases_writes() {
    let world = World::start(WorldOptions::new(Backend::Postgres))
        .await
        .unwrap();
    let store = world.store().await.unwrap();
    store.migrate().await.unwrap();
    let Store::Postgres(pool) = &store else {
        unreachable!("a PostgreSQL world")
    };
    // Back to the schema before 0009, as a database of the previous
    // release is.
    for undo in [
        "ALTER TABLE receipts DROP COLUMN completed_at_ts",
        "ALTER TABLE parked DROP COLUMN received_at_ts, DROP COLUMN first_failure_at_ts, \
         DROP COLUMN next_attempt_at_ts, DROP COLUMN lease_until_ts",
        "ALTER TABLE dead_letters DROP COLUMN created_at_ts, DROP COLUMN expires_at_ts",
        "ALTER TABLE audit DROP COLUMN at_ts",
        "ALTER TABLE transport_messages DROP COLUMN created_at_ts, DROP COLUMN last_polled_at_ts",
        "DROP FUNCTION kurier_time(text)",
        "DELETE FROM _sqlx_migrations WHERE version = 9",
    ] {
        sqlx::query(undo).execute(pool).await.unwrap();
    }

    // A transaction in the previous release's order: a dead letter, then
    // (the migration waiting by then) its receipt, 3 s later.
    let id = uuid::Uuid::new_v4().to_string();
    let (holding, held) = tokio::sync::oneshot::channel();
    let writer = {
        let (pool, id) = (pool.clone(), id.clone());
        tokio::spawn(async move {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO dead_letters (submission_id, reason_code, reason_detail, \
                 received_sha256, created_at) VALUES ($1, 'authority_rejected', '', 'ab', \
                 '2026-12-03T09:00:00.000000Z')",
            )
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            let _ = holding.send(());
            tokio::time::sleep(Duration::from_secs(3)).await;
            sqlx::query(
                "INSERT INTO receipts (submission_id, status, received_sha256, received_at, \
                 completed_at) VALUES ($1, 'rejected', 'ab', '2026-12-03T08:59:59.000000Z', \
                 '2026-12-03T09:00:00.000000Z')",
            )
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
    };
    held.await.expect("the writer holds its dead letter");
    let started = Instant::now();
    let migrated = tokio::time::timeout(Duration::from_secs(60), store.migrate())
        .await
        .expect("the migration hangs");
    let waited = started.elapsed();
    let written = writer.await.unwrap();
    assert!(
        written.is_ok(),
        "the previous release's write failed: {written:?}"
    );
    assert!(migrated.is_ok(), "the migration failed: {migrated:?}");
    // It waited for the writer (about 3 s), longer than one attempt may
    // wait for a lock (900 ms): it gave way and tried again.
    assert!(
        waited >= Duration::from_secs(2),
        "the migration did not wait for the writer ({waited:?}): no race was run"
    );

    // Both are there: the row, and its twin.
    let (twin_ok,): (bool,) = sqlx::query_as(
        "SELECT completed_at_ts = '2026-12-03T09:00:00Z'::timestamptz FROM receipts \
         WHERE submission_id = $1",
    )
    .bind(&id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(twin_ok);
}

/// The twins migration 0009 makes, by table: the times `store/` compares.
const TWINS: [(&str, &[&str]); 5] = [
    ("receipts", &["completed_at"]),
    (
        "parked",
        &[
            "received_at",
            "first_failure_at",
            "next_attempt_at",
            "lease_until",
        ],
    ),
    ("dead_letters", &["created_at", "expires_at"]),
    ("audit", &["at"]),
    ("transport_messages", &["created_at", "last_polled_at"]),
];

/// `(column, declared type)` of a table.
async fn columns(store: &Store, table: &str) -> Vec<(String, String)> {
    match store {
        Store::Sqlite(pool) => {
            // table_xinfo lists generated columns too.
            sqlx::query_as("SELECT name, type FROM pragma_table_xinfo($1)")
                .bind(table)
                .fetch_all(pool)
                .await
                .unwrap()
        }
        Store::Postgres(pool) => sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(table)
        .fetch_all(pool)
        .await
        .unwrap(),
    }
}

async fn every_compared_time_has_its_typed_twin(backend: Backend) {
    let world = World::start(WorldOptions::new(backend)).await.unwrap();
    let store = world.store().await.unwrap();
    store.migrate().await.unwrap();
    for (table, times) in TWINS {
        let columns = columns(&store, table).await;
        let type_of = |name: &str| {
            columns
                .iter()
                .find(|(column, _)| column == name)
                .map(|(_, ty)| ty.to_lowercase())
        };
        for time in times {
            assert_eq!(
                type_of(time).as_deref(),
                Some("text"),
                "{table}.{time}: {columns:?}"
            );
            let twin = format!("{time}_ts");
            let want = match backend {
                Backend::Sqlite => "text",
                Backend::Postgres => "timestamp with time zone",
            };
            assert_eq!(
                type_of(&twin).as_deref(),
                Some(want),
                "{table}.{twin}: {columns:?}"
            );
        }
    }
}

fn parked(id: &str, next_attempt_at: Timestamp) -> Parked {
    let at = |text| Timestamp::parse(text).unwrap();
    Parked {
        submission_id: kurier_e2e::sid(id),
        service: "hzl".into(),
        destination: kurier_e2e::did(format!("times-{id}")),
        portal: "sozialplattform".into(),
        attempts: 1,
        received_sha256: "ab".into(),
        received_at: at("2026-12-03T08:00:00.000001Z"),
        first_failure_at: at("2026-12-03T08:00:00.250000Z"),
        last_cause: "status 503".into(),
        next_attempt_at,
        expires_at: at("2026-12-10T08:00:00.000000Z"),
        lease_until: None,
        key_id: "k".into(),
        sealed_key: vec![1],
        sealed_payload: vec![2],
    }
}

async fn a_twin_holds_the_instant_written(backend: Backend) {
    let world = World::start(WorldOptions::new(backend)).await.unwrap();
    let store = world.store().await.unwrap();
    store.migrate().await.unwrap();
    let cases = [
        Timestamp::parse("2026-12-03T08:15:30.123456Z").unwrap(),
        // An offset is brought to UTC when the time is made, not in the
        // database: the row holds 07:15:30 UTC.
        Timestamp::parse("2026-12-03T08:15:30.5+01:00").unwrap(),
        Timestamp::MAX,
    ];
    for (n, next_attempt_at) in cases.into_iter().enumerate() {
        let id = format!("{}-{n}", uuid::Uuid::new_v4());
        store
            .write(&[Record::Park(parked(&id, next_attempt_at))])
            .await
            .unwrap();

        // The twin says the same instant as the text, by the database's
        // own reading of it.
        let (text, same): (String, bool) = match &store {
            Store::Sqlite(pool) => sqlx::query_as(
                "SELECT next_attempt_at, next_attempt_at_ts = next_attempt_at \
                 FROM parked WHERE submission_id = $1",
            )
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap(),
            Store::Postgres(pool) => sqlx::query_as(
                "SELECT next_attempt_at, \
                 next_attempt_at_ts = (next_attempt_at::timestamp AT TIME ZONE 'UTC') \
                 FROM parked WHERE submission_id = $1",
            )
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap(),
        };
        assert_eq!(text, next_attempt_at.to_string());
        assert!(same, "{text}: the twin is another instant");

        // Read back from the twin (PostgreSQL: a timestamptz) it is the
        // instant written, to the microsecond.
        let destination = kurier_e2e::did(format!("times-{id}"));
        let backlog = store.parked_backlog(Some(&destination)).await.unwrap();
        assert_eq!(backlog.len(), 1, "{backlog:?}");
        assert_eq!(backlog[0].next_attempt_at, next_attempt_at);
        assert_eq!(
            backlog[0].oldest_received_at,
            Timestamp::parse("2026-12-03T08:00:00.000001Z").unwrap()
        );

        // PostgreSQL refuses a time in any other form, even one that names
        // the same instant: its twin could not be trusted to compare.
        if let Store::Postgres(pool) = &store {
            for other in [
                "2026-12-03 08:15:30.123456+00",
                "2026-12-03T08:15:30Z",
                "2026-12-03T09:15:30.123456+01:00",
                // PostgreSQL would read these as the next day and the next
                // minute; Kurier's parser refuses the one, cuts the other.
                "2026-12-03T24:00:00.000000Z",
                "2016-12-31T23:59:60.000000Z",
                "tomorrow",
            ] {
                let refused =
                    sqlx::query("UPDATE parked SET next_attempt_at = $1 WHERE submission_id = $2")
                        .bind(other)
                        .bind(&id)
                        .execute(pool)
                        .await
                        .expect_err(other);
                assert!(
                    refused.to_string().contains("written form"),
                    "{other}: {refused}"
                );
            }
            let kept = store.parked_backlog(Some(&destination)).await.unwrap();
            assert_eq!(kept[0].next_attempt_at, next_attempt_at);
        }
    }
}
