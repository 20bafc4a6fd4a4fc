//! A rolling upgrade and a rollback, with the previous release's binary
//! (docs/OPERATIONS.md, Upgrades): it migrates and runs, this tree's
//! `kurier migrate` expands the schema under it, it keeps delivering, runs
//! side by side with this tree's `kurier run`, and starts again on the new
//! schema after a rollback of the binary.
//!
//! The previous release's binary is built by deploy/local/upgrade-test.sh
//! (run by deploy/local/test.sh), which passes it in KURIER_PREVIOUS_BIN;
//! that is why these tests are ignored by a plain `cargo test`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kurier_e2e::{Backend, World, WorldOptions, fresh, stderr, stdout};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the previous release's binary: deploy/local/upgrade-test.sh"]
async fn sqlite() {
    the_previous_release_runs_on_the_new_schema(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the previous release's binary: deploy/local/upgrade-test.sh"]
async fn postgres() {
    the_previous_release_runs_on_the_new_schema(Backend::Postgres).await;
}

fn previous_binary() -> PathBuf {
    let bin = std::env::var_os("KURIER_PREVIOUS_BIN").map(PathBuf::from);
    match bin {
        Some(bin) if bin.is_file() => bin,
        _ => panic!(
            "KURIER_PREVIOUS_BIN does not name the previous release's kurier binary: \
             run deploy/local/upgrade-test.sh, which builds it from deploy/previous-release"
        ),
    }
}

/// `binary ARGS` with the world's configuration.
fn cli(world: &World, binary: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary)
        .args(args)
        .env("KURIER_CONFIG", &world.config_path)
        .output()
        .unwrap()
}

/// Start `binary` as the world's instance, wait until it is ready (if it
/// exits first, fail with its exit code and the end of its log) and deliver
/// a sample through it.
async fn start_and_deliver(world: &mut World, binary: &Path, log: &Path, what: &str) {
    world.start_kurier_binary(binary, log).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let process = world.kurier.as_mut().expect("an instance was started");
        if let Some(status) = process.child.try_wait().unwrap() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            panic!(
                "{what}: kurier exited ({status}) instead of starting; the end of its log:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if world.await_ready(Duration::from_secs(1)).await.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not ready within {WAIT:?}; see {}",
            log.display()
        );
    }
    deliver_one(world, what).await;
}

/// Publish a sample submission and wait for its `delivered` receipt.
async fn deliver_one(world: &World, who: &str) {
    let envelope = fresh("hzl-minimal.json");
    let id = envelope["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&envelope).await.unwrap();
    let receipt = world
        .await_receipt(&id, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{who}: {e}; logs in {}", world.dir.path().display()));
    assert_eq!(
        receipt.status,
        "delivered",
        "{who}: {receipt:?}; logs in {}",
        world.dir.path().display()
    );
}

async fn the_previous_release_runs_on_the_new_schema(backend: Backend) {
    let previous = previous_binary();
    let commit = std::env::var("KURIER_PREVIOUS_COMMIT").unwrap_or_default();
    let mut world = World::start(WorldOptions::new(backend)).await.unwrap();
    let old_log = world.dir.path().join("kurier-previous.log");

    // The previous release makes its schema and delivers.
    let out = cli(&world, &previous, &["migrate"]);
    assert!(out.status.success(), "previous migrate: {}", stderr(&out));
    start_and_deliver(
        &mut world,
        &previous,
        &old_log,
        "previous release, its own schema",
    )
    .await;

    // This release has migrations the previous one lacks.
    let out = world.kurier_cli(&["migrate", "--check", "--json"]).unwrap();
    let check: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    assert_eq!(out.status.code(), Some(1), "{check}");
    assert!(
        check["pending"].as_u64() > Some(0),
        "deploy/previous-release ({commit}) has every migration of this tree: \
         it should name the release before the newest migration: {check}"
    );

    // Upgrade step 1: this release migrates while the previous one runs,
    // which keeps delivering on the expanded schema.
    let out = world.kurier_cli(&["migrate"]).unwrap();
    assert!(out.status.success(), "migrate: {}", stderr(&out));
    assert_eq!(
        world
            .kurier_cli(&["migrate", "--check"])
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    deliver_one(&world, "previous release, new schema").await;
    // Its looking verbs read the newer schema too.
    let out = cli(&world, &previous, &["status"]);
    assert!(out.status.success(), "previous status: {}", stderr(&out));

    // Step 2: a new instance joins; old and new consume side by side.
    world.start_extra_instance().unwrap();
    for _ in 0..4 {
        deliver_one(&world, "previous and new side by side").await;
    }

    // Rollback of the binary: the previous release restarts on the new
    // schema (it does not know the newer migrations and leaves them) and
    // delivers alone.
    let mut old = world.kurier.take().unwrap();
    assert_eq!(old.terminate(Duration::from_secs(20)), Some(0));
    for mut new in world.extra_instances.drain(..) {
        assert_eq!(new.terminate(Duration::from_secs(20)), Some(0));
    }
    start_and_deliver(
        &mut world,
        &previous,
        &old_log,
        "previous release after a rollback",
    )
    .await;
    let mut old = world.kurier.take().unwrap();
    assert_eq!(old.terminate(Duration::from_secs(20)), Some(0));

    // And forward again: this release starts on its own schema.
    world.start_kurier().unwrap();
    world.await_ready(WAIT).await.unwrap();
    deliver_one(&world, "this release after the rollback").await;
}
