//! The operator console in a real browser (headless Chromium driven by
//! Playwright, tests/browser/console.mjs): sign in, replay a dead letter,
//! see its receipt turn delivered — and never a form value on a page.
//! Needs `chromium` and `npm ci` in tests/browser (deploy/local/test.sh).

use std::path::Path;
use std::time::Duration;

use kurier_e2e::{Backend, World, WorldOptions, fresh, json};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_replays_a_dead_letter_from_the_console_and_sees_it_delivered() {
    let mut world = World::start(WorldOptions::new(Backend::Sqlite))
        .await
        .unwrap();
    world.start_kurier().unwrap();
    world.await_ready(WAIT).await.unwrap();

    // The authority refuses it: a dead letter authority_rejected.
    world
        .authority
        .set_mode(json!({"mode": "reject", "status": 422}))
        .await
        .unwrap();
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
    let receipt = store.receipt(&id).await.unwrap().unwrap();
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
