//! The operator's side, end to end: dead letters listed, shown, replayed
//! after fixing the cause and purged, from the CLI and the admin API, with
//! every such action in the audit trail and no payload where it must not be.

use std::time::{Duration, Instant};

use kurier_e2e::{
    Backend, World, WorldOptions, canary, envelope_for, fresh, json, on_both_backends, stderr,
    stdout,
};

const WAIT: Duration = Duration::from_secs(60);

on_both_backends!(
    a_dead_letter_is_replayed_after_the_route_is_fixed_and_every_action_is_audited,
    the_admin_api_needs_a_token_and_serves_what_the_cli_does,
);

/// Poll the receipt until it has `status`.
async fn await_status(world: &World, id: &str, status: &str) -> kurier::store::Receipt {
    let store = world.store().await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Some(r)) = store.receipt(&kurier_e2e::sid(id)).await
            && r.status == status
        {
            store.close().await;
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no {status} receipt for {id}; log: {}",
            world.log_path().display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Restart `kurier run` with `extra` appended to the configuration.
fn restart_with(world: &mut World, extra: &str) {
    if let Some(mut k) = world.kurier.take() {
        assert_eq!(k.terminate(Duration::from_secs(20)), Some(0));
    }
    let mut text = std::fs::read_to_string(&world.config_path).unwrap();
    text.push_str(extra);
    std::fs::write(&world.config_path, text).unwrap();
    world.start_kurier().unwrap();
}

async fn a_dead_letter_is_replayed_after_the_route_is_fixed_and_every_action_is_audited(
    backend: Backend,
) {
    let mut world = World::start(WorldOptions::new(backend)).await.unwrap();
    world.start_kurier().unwrap();
    let canary = canary(&world);
    let envelope = envelope_for(&world, "sozialamt-bonn");
    let id = envelope["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&envelope).await.unwrap();
    let receipt = await_status(&world, &id, "dead_lettered").await;
    assert_eq!(receipt.reason_code.as_deref(), Some("unknown_destination"));

    // Listed with its reason and a kept payload, filterable; never the canary.
    let out = world
        .kurier_cli(&[
            "dead-letters",
            "list",
            "--reason",
            "unknown_destination",
            "--destination",
            "sozialamt-bonn",
            "--since",
            "1h",
            "--json",
        ])
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(&canary));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["submission_id"], id.as_str());
    assert_eq!(listed[0]["payload_kept"], true);
    let number = listed[0]["id"].as_i64().unwrap().to_string();
    let out = world
        .kurier_cli(&[
            "dead-letters",
            "list",
            "--reason",
            "schema_violation",
            "--json",
        ])
        .unwrap();
    let none: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(none.is_empty());
    let out = world
        .kurier_cli(&["dead-letters", "list", "--reason", "no_such_reason"])
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("known codes"), "{}", stderr(&out));

    // `show` by submission id and by number: metadata and reason, no payload.
    for key in [id.as_str(), number.as_str()] {
        for json in [true, false] {
            let mut args = vec!["dead-letters", "show", key];
            if json {
                args.push("--json");
            }
            let out = world.kurier_cli(&args).unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            let text = stdout(&out);
            assert!(text.contains("unknown_destination"), "{text}");
            assert!(!text.contains(&canary), "show printed a form value");
        }
    }

    // The payload needs a reason; without one nothing is shown.
    let out = world
        .kurier_cli(&["dead-letters", "show", &id, "--payload"])
        .unwrap();
    assert!(!out.status.success());
    assert!(!stdout(&out).contains(&canary) && !stderr(&out).contains(&canary));
    let out = world
        .kurier_cli(&["dead-letters", "show", &id, "--payload", "--reason", "  "])
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("needs a reason"), "{}", stderr(&out));
    let out = world
        .kurier_cli(&[
            "dead-letters",
            "show",
            &id,
            "--payload",
            "--reason",
            "ticket 4711: applicant asks",
            "--json",
        ])
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        shown["payload"]["form"]["applicant"]["given_names"],
        canary.as_str()
    );
    let audit = audit_trail(&world);
    let view = audit
        .iter()
        .find(|a| a["action"] == "view_payload")
        .expect("the payload view is audited");
    assert_eq!(view["submission_ids"], id.as_str());
    assert_eq!(view["reason"], "ticket 4711: applicant asks");
    assert_eq!(
        view["operator"],
        kurier::operator::ops::Actor::os_user().0.as_str()
    );
    assert!(view["at"].as_str().is_some_and(|t| !t.is_empty()));

    // Fix the cause: the destination is configured now. Replay sends it
    // again under its own id and it is delivered.
    let bonn = r#"
[[destinations]]
id = "sozialamt-bonn"
adapter = "xsozial-hzl"
endpoint = "{AUTHORITY}/sozialamt-bonn/antraege"
ca_file = "{CA}"
client_cert_file = "{CERT}"
client_key_file = "{KEY}"
"#
    .replace("{AUTHORITY}", &format!("https://{}", world.authority.https))
    .replace("{CA}", &world.pki.authority_ca.display().to_string())
    .replace("{CERT}", &world.pki.kurier_cert.display().to_string())
    .replace("{KEY}", &world.pki.kurier_key.display().to_string());
    restart_with(&mut world, &bonn);
    let out = world
        .kurier_cli(&["dead-letters", "replay", &id, "--why", "route added"])
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("replayed"), "{}", stdout(&out));
    let delivered = await_status(&world, &id, "delivered").await;
    assert_eq!(delivered.submission_id, id);
    assert_eq!(delivered.destination.as_deref(), Some("sozialamt-bonn"));
    let requests = world.authority.requests().await.unwrap();
    let mine: Vec<_> = requests
        .iter()
        .filter(|r| r["idempotency_key"] == id.as_str())
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "one request with Idempotency-Key = the submission id"
    );
    // The dead letter and its sealed payload are gone.
    let store = world.store().await.unwrap();
    let left = store.dead_letters(None, None, None, 100, 0).await.unwrap();
    assert!(left.iter().all(|d| d.submission_id.as_deref() != Some(&id)));

    // Replaying again does nothing and says so.
    let out = world
        .kurier_cli(&["dead-letters", "replay", &id, "--json"])
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let again: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again[0]["outcome"], "already_delivered");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = world.authority.requests().await.unwrap();
    assert_eq!(
        requests
            .iter()
            .filter(|r| r["idempotency_key"] == id.as_str())
            .count(),
        1,
        "nothing sent again"
    );

    // Purge: the dead letter with its payload goes, the receipt stays.
    let other = envelope_for(&world, "sozialamt-nirgendwo");
    let other_id = other["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&other).await.unwrap();
    await_status(&world, &other_id, "dead_lettered").await;
    let out = world
        .kurier_cli(&["dead-letters", "purge", "--older-than", "1d"])
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("0 dead letters purged"),
        "{}",
        stdout(&out)
    );
    let out = world
        .kurier_cli(&[
            "dead-letters",
            "purge",
            &other_id,
            "--why",
            "applicant withdrew",
        ])
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let left = store.dead_letters(None, None, None, 100, 0).await.unwrap();
    assert!(
        left.iter()
            .all(|d| d.submission_id.as_deref() != Some(&other_id))
    );
    let kept = store
        .receipt(&kurier_e2e::sid(&other_id))
        .await
        .unwrap()
        .expect("receipt kept");
    assert_eq!(kept.status, "dead_lettered");
    let out = world
        .kurier_cli(&["dead-letters", "show", &other_id])
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no dead letter"), "{}", stderr(&out));

    let audit = audit_trail(&world);
    let actions: Vec<&str> = audit.iter().filter_map(|a| a["action"].as_str()).collect();
    assert!(
        actions.contains(&"replay") && actions.contains(&"purge"),
        "{actions:?}"
    );
    let replay = audit
        .iter()
        .find(|a| a["action"] == "replay" && a["outcome"] == "replayed")
        .unwrap();
    assert_eq!(replay["submission_ids"], id.as_str());
    assert_eq!(replay["reason"], "route added");
    let purge = audit
        .iter()
        .find(|a| a["action"] == "purge" && a["submission_ids"] == other_id.as_str())
        .unwrap();
    assert_eq!(purge["reason"], "applicant withdrew");

    // Status and parked backlog answer; nothing of the payload anywhere.
    for args in [
        &["status", "--json"][..],
        &["parked", "list", "--json"][..],
        &["audit", "list"][..],
        &["dead-letters", "list"][..],
    ] {
        let out = world.kurier_cli(args).unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(!stdout(&out).contains(&canary), "{args:?}");
    }
    let status: serde_json::Value =
        serde_json::from_slice(&world.kurier_cli(&["status", "--json"]).unwrap().stdout).unwrap();
    assert_eq!(status["dead_letters"], 0);
    for (name, bytes) in world.everything_kept().await.unwrap() {
        if name == "kurier.log" {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&canary),
                "the canary is in {name}"
            );
        }
    }
    store.close().await;
}

fn audit_trail(world: &World) -> Vec<serde_json::Value> {
    let out = world.kurier_cli(&["audit", "list", "--json"]).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn the_admin_api_needs_a_token_and_serves_what_the_cli_does(backend: Backend) {
    let mut world = World::start(WorldOptions::new(backend)).await.unwrap();
    world.start_kurier().unwrap();
    world.await_ready(WAIT).await.unwrap();
    let canary = canary(&world);

    let health = world
        .admin_request("GET", "/healthz", false, None)
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    let ready = world
        .admin_request("GET", "/readyz", false, None)
        .await
        .unwrap();
    assert_eq!(ready.status, 200);

    // /api without a token, with a wrong one, with the right one.
    let none = world
        .admin_request("GET", "/api/dead-letters", false, None)
        .await
        .unwrap();
    assert_eq!(none.status, 401);
    let wrong = kurier_e2e::http(
        &world.admin,
        "GET",
        "/api/dead-letters",
        &[("Authorization", "Bearer not-the-token")],
        None,
    )
    .await
    .unwrap();
    assert_eq!(wrong.status, 401);
    let ok = world
        .admin_request("GET", "/api/dead-letters", true, None)
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json().unwrap(), json!([]));

    // A delivery and a dead letter, seen through the API.
    let good = fresh("hzl-minimal.json");
    let good_id = good["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&good).await.unwrap();
    await_status(&world, &good_id, "delivered").await;
    let bad = envelope_for(&world, "sozialamt-bonn");
    let bad_id = bad["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&bad).await.unwrap();
    await_status(&world, &bad_id, "dead_lettered").await;

    let receipt = world
        .admin_request("GET", &format!("/api/receipts/{good_id}"), true, None)
        .await
        .unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    assert_eq!(receipt.json().unwrap()["status"], "delivered");
    let listed = world
        .admin_request(
            "GET",
            "/api/dead-letters?reason=unknown_destination",
            true,
            None,
        )
        .await
        .unwrap();
    assert_eq!(listed.json().unwrap()[0]["submission_id"], bad_id.as_str());
    let shown = world
        .admin_request("GET", &format!("/api/dead-letters/{bad_id}"), true, None)
        .await
        .unwrap();
    assert_eq!(shown.status, 200);
    assert!(!shown.body.contains(&canary));
    let no_reason = world
        .admin_request(
            "POST",
            &format!("/api/dead-letters/{bad_id}/payload"),
            true,
            Some(r#"{"reason": ""}"#),
        )
        .await
        .unwrap();
    assert_eq!(no_reason.status, 400);
    assert!(!no_reason.body.contains(&canary));
    let payload = world
        .admin_request(
            "POST",
            &format!("/api/dead-letters/{bad_id}/payload"),
            true,
            Some(r#"{"reason": "ticket 99"}"#),
        )
        .await
        .unwrap();
    assert_eq!(payload.status, 200, "{}", payload.body);
    assert!(payload.body.contains(&canary));
    let status = world
        .admin_request("GET", "/api/status", true, None)
        .await
        .unwrap();
    let status = status.json().unwrap();
    let koeln = status["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == "sozialamt-koeln")
        .unwrap()
        .clone();
    assert_eq!(koeln["circuit"], "closed");
    let purged = world
        .admin_request(
            "POST",
            "/api/dead-letters/purge",
            true,
            Some(&json!({"ids": [bad_id], "why": "test"}).to_string()),
        )
        .await
        .unwrap();
    assert_eq!(purged.status, 200, "{}", purged.body);
    let audit = world
        .admin_request("GET", "/api/audit", true, None)
        .await
        .unwrap()
        .json()
        .unwrap();
    let operators: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["operator"].as_str())
        .collect();
    assert!(
        operators.iter().all(|o| *o == "e2e-operator"),
        "{operators:?}"
    );
    assert_eq!(operators.len(), 2, "payload view and purge");

    // Metrics: the delivery is counted.
    let metrics = world
        .admin_request("GET", "/metrics", false, None)
        .await
        .unwrap();
    assert_eq!(metrics.status, 200);
    let line = metrics
        .body
        .lines()
        .find(|l| {
            l.starts_with("kurier_submissions_total{")
                && l.contains("destination=\"sozialamt-koeln\"")
                && l.contains("service=\"hzl\"")
                && l.contains("outcome=\"delivered\"")
        })
        .unwrap_or_else(|| panic!("no delivered counter in\n{}", metrics.body));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value >= 1.0, "{line}");
    assert!(metrics.body.contains("kurier_dead_letters_total{"));
    assert!(metrics.body.contains("kurier_circuit_open{"));
    assert!(
        metrics.body.contains(&format!(
            "kurier_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "build info in\n{}",
        metrics.body
    );
    assert!(!metrics.body.contains(&canary));
}
