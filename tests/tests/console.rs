//! The operator console in a real browser (headless Chromium driven by
//! Playwright, tests/browser/console.mjs): sign in, find a submission by
//! its id, page through the dead letters with a filter kept, read the last
//! hour's charts, switch the time zone and the automatic refresh, replay a
//! dead letter and see its receipt turn delivered — and never a form value
//! on a page. Needs `chromium` and `npm ci` in tests/browser
//! (deploy/local/test.sh). With `CONSOLE_SCREENSHOT=<path>` the script also
//! writes the README's picture of the console there.

use std::path::Path;
use std::time::Duration;

use kurier::operator::ops::Ops;
use kurier_e2e::{Backend, World, WorldOptions, fresh, json, on_both_backends};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_pages_charts_and_replays_from_the_console() {
    // The hour the charts show: six deliveries, then the authority refuses
    // 51 (one page of dead letters and one more), and two name a
    // destination nobody configured (dead letters the filter leaves out).
    let (world, _) = an_hour(Backend::Sqlite, 6, 51).await;
    let unrouted: Vec<_> = (0..2)
        .map(|_| {
            let mut e = fresh("hzl-minimal.json");
            e["destination"] = json!("nirgendwo");
            e
        })
        .collect();
    publish_and_await(&world, &unrouted, "dead_lettered").await;

    // The authority refuses this one too: the newest dead letter.
    let canary = format!("kanarie{}", world.tag);
    let mut envelope = fresh("hzl-minimal.json");
    envelope["form"]["applicant"]["given_names"] = json!(canary);
    let id = envelope["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&envelope).await.unwrap();
    let receipt = world.await_receipt(&id, WAIT).await.unwrap();
    assert_eq!(receipt.status, "rejected");
    // The cause is fixed at the authority's end.
    world
        .authority
        .set_mode(json!({"mode": "accept"}))
        .await
        .unwrap();

    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in {} (deploy/local/test.sh does)",
        browser_dir.display()
    );
    let profile = world.dir.path().join("chromium-profile");
    let out = tokio::process::Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .current_dir(&browser_dir)
        .env("CONSOLE_URL", format!("http://{}/", world.admin))
        .env("CONSOLE_TOKEN", &world.admin_token)
        .env("SUBMISSION_ID", &id)
        .env("CANARY", &canary)
        .env("USER_DATA_DIR", &profile)
        .env("DESTINATION", "sozialamt-koeln")
        .env(
            "CONSOLE_SCREENSHOT",
            std::env::var("CONSOLE_SCREENSHOT").unwrap_or_default(),
        )
        .output()
        .await
        .expect("node runs (install nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\nlog: {}",
        String::from_utf8_lossy(&out.stderr),
        world.log_path().display()
    );
    assert!(stdout.contains("\"ok\":true"), "{stdout}");

    let store = world.store().await.unwrap();
    let receipt = store.receipt(&kurier_e2e::sid(&id)).await.unwrap().unwrap();
    assert_eq!(receipt.status, "delivered");
    let requests = world.authority.requests().await.unwrap();
    assert!(
        requests
            .iter()
            .filter(|r| r["idempotency_key"] == id.as_str())
            .all(|r| r["submission_id"] == id.as_str())
    );
    store.close().await;
    let out = world.kurier_cli(&["audit", "list", "--json"]).unwrap();
    let audit: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        audit.iter().any(|a| a["action"] == "replay"
            && a["operator"] == "e2e-operator"
            && a["submission_ids"] == id.as_str()),
        "{audit:?}"
    );
}

/// A running world whose authority has accepted `delivered` submissions,
/// then refused `rejected` ones (and refuses from then on); the refused
/// envelopes.
async fn an_hour(
    backend: Backend,
    delivered: usize,
    rejected: usize,
) -> (World, Vec<serde_json::Value>) {
    let mut world = World::start(WorldOptions::new(backend)).await.unwrap();
    world.start_kurier().unwrap();
    world.await_ready(WAIT).await.unwrap();
    let accepted: Vec<_> = (0..delivered).map(|_| fresh("hzl-minimal.json")).collect();
    publish_and_await(&world, &accepted, "delivered").await;
    world
        .authority
        .set_mode(json!({"mode": "reject", "status": 422}))
        .await
        .unwrap();
    let refused: Vec<_> = (0..rejected).map(|_| fresh("hzl-minimal.json")).collect();
    publish_and_await(&world, &refused, "rejected").await;
    (world, refused)
}

/// Publish `envelopes` and wait until each has a receipt of `status`.
async fn publish_and_await(world: &World, envelopes: &[serde_json::Value], status: &str) {
    world.publish_many(envelopes).await.unwrap();
    for e in envelopes {
        let id = e["submission_id"].as_str().unwrap();
        let receipt = world.await_receipt(id, WAIT).await.unwrap();
        assert_eq!(receipt.status.as_str(), status, "{id}");
    }
}

on_both_backends!(the_console_reads_the_same_hour_and_pages_on_both_backends);

/// What the console reads (the charts' SQL, a search, pages with an offset)
/// on SQLite and PostgreSQL alike: three deliveries and a refusal counted
/// in the hour, the newest bucket holding them; a second page of one.
async fn the_console_reads_the_same_hour_and_pages_on_both_backends(backend: Backend) {
    let (world, rejected) = an_hour(backend, 3, 2).await;

    let ops = Ops::new(world.store().await.unwrap(), None, &world.config);
    let hour = ops.last_hour().await.unwrap();
    let koeln = hour
        .destinations
        .iter()
        .find(|d| d.destination == "sozialamt-koeln")
        .expect("a configured destination has its hour");
    assert_eq!(koeln.delivered.iter().sum::<i64>(), 3, "{koeln:?}");
    assert_eq!(koeln.failed.iter().sum::<i64>(), 2, "{koeln:?}");
    assert_eq!(koeln.parked, [0; 12], "{koeln:?}");
    assert!(koeln.p95_ms.iter().flatten().count() >= 1, "{koeln:?}");
    assert!(!hour.latency_sampled);

    let id = rejected[0]["submission_id"].as_str().unwrap();
    let found = ops.lookup(id).await.unwrap();
    assert_eq!(found.receipt.unwrap().status.as_str(), "rejected");
    assert_eq!(found.dead_letters.len(), 1);
    assert!(found.dead_letters[0].sealed_payload.is_none());
    assert!(found.parked.is_none());
    assert!(ops.lookup("not-an-id").await.is_err());

    let page = |offset| kurier::operator::ops::DeadLetterFilter {
        reason: Some("authority_rejected".into()),
        limit: Some(1),
        offset: Some(offset),
        ..Default::default()
    };
    let first = ops.dead_letters(&page(0)).await.unwrap();
    let second = ops.dead_letters(&page(1)).await.unwrap();
    let third = ops.dead_letters(&page(2)).await.unwrap();
    assert_eq!((first.len(), second.len(), third.len()), (1, 1, 0));
    assert!(first[0].id > second[0].id, "newest first, no overlap");
    ops.store().close().await;
}
