//! The configuration reloaded on SIGHUP without a restart (issue 13 § 6):
//! destinations added, changed and removed are taken over by the running
//! process; an attempt under way when the change comes finishes on the
//! client it started with; a file that does not check changes nothing.
//!
//! SQLite only: a reload reads no table (the database is the same for both
//! backends' runs of every other scenario).

use std::time::{Duration, Instant};

use kurier_e2e::{Backend, World, WorldOptions, fresh, json};

/// The `n`-th log line (counting from 1) that contains `needle`, within 30 s.
async fn await_log(world: &World, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(world.log_path()).unwrap_or_default();
        if log.matches(needle).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {n}. {needle:?} in {}",
            world.log_path().display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hangup(world: &World) {
    let pid = world.kurier.as_ref().expect("kurier runs").child.id();
    // SAFETY: kill(2) with the pid of our own child process.
    unsafe {
        libc::kill(pid as i32, libc::SIGHUP);
    }
}

/// Rewrite the world's configuration file with `edit` and send SIGHUP.
fn edit_and_hangup(world: &World, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(&world.config_path).unwrap();
    std::fs::write(&world.config_path, edit(text)).unwrap();
    hangup(world);
}

/// Submit an hzl application for `destination`; its submission id.
async fn submit(world: &World, destination: &str) -> String {
    let mut e = fresh("hzl-minimal.json");
    e["destination"] = json!(destination);
    world.publish_envelope(&e).await.unwrap();
    e["submission_id"].as_str().unwrap().to_owned()
}

/// The paths the authority was sent `submission_id` on.
async fn paths_of(world: &World, submission_id: &str) -> Vec<String> {
    world
        .authority
        .requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r["idempotency_key"] == submission_id)
        .map(|r| r["path"].as_str().unwrap_or("").to_owned())
        .collect()
}

const ADDED: &str = r#"
[[destinations]]
id = "sozialamt-neu"
adapter = "xsozial-hzl"
endpoint = "{AUTHORITY}/sozialamt-neu/antraege"
ca_file = "{CA}"
client_cert_file = "{CERT}"
client_key_file = "{KEY}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_added_changed_and_removed_are_taken_over_on_sighup() {
    let mut options = WorldOptions::new(Backend::Sqlite);
    // One place, three seconds per request: an attempt is surely under way
    // when the change comes.
    options.extra_config = r#"
[[destinations]]
id = "sozialamt-langsam"
adapter = "xsozial-hzl"
endpoint = "{AUTHORITY}/capacity/1/3000"
ca_file = "{CA}"
client_cert_file = "{CERT}"
client_key_file = "{KEY}"
"#
    .into();
    let mut world = World::start(options).await.unwrap();
    world.start_kurier().unwrap();
    world.await_ready(Duration::from_secs(30)).await.unwrap();

    // A file that does not check changes nothing, and says so.
    let good = std::fs::read_to_string(&world.config_path).unwrap();
    edit_and_hangup(&world, |t| {
        t.replace("adapter = \"wbs-nrw\"", "adapter = \"no-such-adapter\"")
    });
    await_log(&world, "the configuration was not reloaded", 1).await;
    std::fs::write(&world.config_path, &good).unwrap();
    let unchanged = submit(&world, "sozialamt-koeln").await;
    let r = world
        .await_receipt(&unchanged, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(r.status, "delivered", "{r:?}");
    assert_eq!(
        paths_of(&world, &unchanged).await,
        vec!["/sozialamt-koeln/antraege"]
    );

    // An attempt under way when its destination changes.
    let slow = submit(&world, "sozialamt-langsam").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while paths_of(&world, &slow).await.is_empty() {
        // The authority logs a request when it has answered: wait for the
        // slot instead.
        let stats = world.authority.stats().await.unwrap();
        if stats["paths"]["/capacity/1/3000"]["max_in_service"].as_u64() >= Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "the slow attempt never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unknown_before = submit(&world, "sozialamt-neu").await;
    let before = world
        .await_receipt(&unknown_before, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(before.status, "dead_lettered", "{before:?}");
    assert_eq!(before.reason_code.as_deref(), Some("unknown_destination"));

    let authority = format!("https://{}", world.authority.https);
    let added = ADDED
        .replace("{AUTHORITY}", &authority)
        .replace("{CA}", &world.pki.authority_ca.display().to_string())
        .replace("{CERT}", &world.pki.kurier_cert.display().to_string())
        .replace("{KEY}", &world.pki.kurier_key.display().to_string());
    edit_and_hangup(&world, |t| {
        // Changed: a new endpoint. Added: sozialamt-neu. Removed: the
        // Jobcenter (its table goes, the rest of the file stays).
        let t = t
            .replace("/capacity/1/3000", "/sozialamt-langsam/v2")
            .replace("/sozialamt-koeln/antraege", "/sozialamt-koeln/v2");
        let start = t
            .find("[[destinations]]\nid = \"jobcenter-kreis-offenbach\"")
            .unwrap();
        let end = start + t[start..].find("client_key_file").unwrap();
        let end = end + t[end..].find('\n').unwrap();
        format!("{}{}{added}", &t[..start], &t[end..])
    });
    await_log(&world, "SIGHUP: destinations reloaded", 1).await;
    let log = std::fs::read_to_string(world.log_path()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("SIGHUP: destinations reloaded"))
        .unwrap();
    assert!(line.contains("sozialamt-neu"), "{line}");
    assert!(line.contains("jobcenter-kreis-offenbach"), "{line}");

    // The attempt under way finished on its old client: delivered once.
    let r = world
        .await_receipt(&slow, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(r.status, "delivered", "{r:?}");
    assert_eq!(r.attempts, 1, "{r:?}");
    assert_eq!(paths_of(&world, &slow).await, vec!["/capacity/1/3000"]);

    // New submissions follow the new file.
    let added_id = submit(&world, "sozialamt-neu").await;
    let changed_id = submit(&world, "sozialamt-koeln").await;
    let mut removed = fresh("buergergeld-wba.json");
    removed["destination"] = json!("jobcenter-kreis-offenbach");
    let removed_id = removed["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&removed).await.unwrap();
    for id in [&added_id, &changed_id] {
        let r = world
            .await_receipt(id, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(r.status, "delivered", "{r:?}");
    }
    assert_eq!(
        paths_of(&world, &added_id).await,
        vec!["/sozialamt-neu/antraege"]
    );
    assert_eq!(
        paths_of(&world, &changed_id).await,
        vec!["/sozialamt-koeln/v2"]
    );
    let r = world
        .await_receipt(&removed_id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(r.reason_code.as_deref(), Some("unknown_destination"));

    // The admin API knows the running configuration's destinations.
    let status = world
        .admin_request("GET", "/api/status", true, None)
        .await
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = status["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["configured"] == true)
        .map(|d| d["destination"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"sozialamt-neu"), "{status}");
    assert!(!names.contains(&"jobcenter-kreis-offenbach"), "{status}");
}
