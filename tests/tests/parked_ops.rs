//! Parked submissions as an operator's queue (Postfix's postqueue and
//! postsuper): shown, retried now, held and released, purged (shredded), and
//! destinations paused and resumed, from the CLI and the admin API, each
//! action in the audit trail, never a payload in the output.

use std::time::{Duration, Instant};

use kurier::store::Store;
use kurier_e2e::{
    Backend, World, WorldOptions, canary, envelope_for, json, on_both_backends, stderr, stdout,
};

const WAIT: Duration = Duration::from_secs(60);

on_both_backends!(
    a_parked_submission_is_shown_without_its_payload_and_retried_now,
    a_held_submission_is_left_alone_until_it_is_released,
    a_purged_submission_is_shredded_dead_lettered_and_never_sent,
    destinations_are_paused_and_resumed_and_unknown_ids_exit_1,
    the_admin_api_acts_on_the_parked_queue_and_the_destinations,
);

/// A destination whose parked submissions wait an hour between attempts and
/// are parked after one failed attempt: only retry-now brings them back soon.
const PATIENT: &str = r#"
[[destinations]]
id = "sozialamt-geduldig"
adapter = "xsozial-hzl"
endpoint = "{AUTHORITY}/sozialamt-geduldig/antraege"
ca_file = "{CA}"
client_cert_file = "{CERT}"
client_key_file = "{KEY}"

[destinations.retry]
max_attempts_in_place = 1
initial_delay_ms = 3600000
max_delay_ms = 3600000
jitter = false
"#;

/// Run the CLI, which must succeed and print no form value; its JSON output.
fn cli_json(world: &World, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = world.kurier_cli(&args).unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    assert!(
        !stdout(&out).contains(&canary(world)),
        "{args:?} printed a form value"
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&out)))
}

/// Run the CLI, which must fail with exit code 1; its stderr.
fn cli_fails(world: &World, args: &[&str]) -> String {
    let out = world.kurier_cli(args).unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
    stderr(&out)
}

/// Publish an hzl envelope (with the canary as a name) for `destination`.
async fn publish_for(world: &World, destination: &str) -> String {
    let e = envelope_for(world, destination);
    world.publish_envelope(&e).await.unwrap();
    e["submission_id"].as_str().unwrap().to_owned()
}

/// A world whose authority fails (503), with Kurier running and two
/// submissions for `destination` parked.
async fn two_parked(options: WorldOptions, destination: &str) -> (World, Store, String, String) {
    let mut world = World::start(options).await.unwrap();
    world.authority.fail_all(503).await;
    world.start_kurier().unwrap();
    let store = world.store().await.unwrap();
    let first = publish_for(&world, destination).await;
    let second = publish_for(&world, destination).await;
    await_parked(&store, &first).await;
    await_parked(&store, &second).await;
    (world, store, first, second)
}

async fn await_parked(store: &Store, id: &str) {
    let deadline = Instant::now() + WAIT;
    while !store.is_parked(&kurier_e2e::sid(id)).await.unwrap_or(false) {
        assert!(Instant::now() < deadline, "{id} was not parked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Requests for `id` the authority has seen.
async fn requests_for(world: &World, id: &str) -> usize {
    let requests = world.authority.requests().await.unwrap();
    requests.iter().filter(|r| r["submission_id"] == id).count()
}

/// The authority recovers: `delivered` is delivered by the scheduler (so it
/// runs), and over four more rounds `left_alone` gets no request. Returns
/// the requests `left_alone` had.
async fn authority_recovers(world: &World, delivered: &str, left_alone: &str, what: &str) -> usize {
    let before = requests_for(world, left_alone).await;
    world
        .authority
        .set_mode(json!({"mode": "accept"}))
        .await
        .unwrap();
    let receipt = world.await_receipt(delivered, WAIT).await.unwrap();
    assert_eq!(receipt.status, "delivered");
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(requests_for(world, left_alone).await, before, "{what}");
    }
    before
}

/// Wait until no attempt for `id` is under way (its lease is released).
async fn await_not_in_flight(world: &World, id: &str) {
    let deadline = Instant::now() + WAIT;
    while cli_json(world, &["parked", "show", id])["in_flight"] == true {
        assert!(Instant::now() < deadline, "{id} stays in flight");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn audit_trail(world: &World) -> Vec<serde_json::Value> {
    let audit = cli_json(world, &["audit", "list"]);
    audit.as_array().unwrap().clone()
}

fn audited<'a>(audit: &'a [serde_json::Value], action: &str) -> &'a serde_json::Value {
    audit
        .iter()
        .find(|a| a["action"] == action)
        .unwrap_or_else(|| panic!("no {action} in the audit trail: {audit:?}"))
}

async fn a_parked_submission_is_shown_without_its_payload_and_retried_now(backend: Backend) {
    let mut options = WorldOptions::new(backend);
    options.extra_config = PATIENT.into();
    let (world, store, first, second) = two_parked(options, "sozialamt-geduldig").await;

    // Show: the metadata of CONTRACT.md, never the payload.
    let shown = cli_json(&world, &["parked", "show", &first]);
    assert_eq!(shown["submission_id"], first.as_str());
    assert_eq!(shown["service"], "hzl");
    assert_eq!(shown["destination"], "sozialamt-geduldig");
    assert_eq!(shown["attempts"], 1);
    assert_eq!(shown["last_cause"], "status 503");
    assert_eq!(shown["held"], false);
    for field in [
        "portal",
        "received_at",
        "first_failure_at",
        "next_attempt_at",
        "expires_at",
    ] {
        assert!(
            shown[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}: {shown}"
        );
    }
    assert!(shown.get("sealed_payload").is_none() && shown.get("form").is_none());
    let text = world.kurier_cli(&["parked", "show", &first]).unwrap();
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(
        stdout(&text).contains("sozialamt-geduldig") && !stdout(&text).contains(&canary(&world))
    );
    // Listed one by one and per destination, with the HELD column.
    let each = cli_json(
        &world,
        &[
            "parked",
            "list",
            "--each",
            "--destination",
            "sozialamt-geduldig",
        ],
    );
    assert_eq!(each.as_array().unwrap().len(), 2, "{each}");
    let backlog = cli_json(&world, &["parked", "list"]);
    let row = backlog
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["destination"] == "sozialamt-geduldig")
        .unwrap()
        .clone();
    assert_eq!(
        (row["count"].clone(), row["held"].clone()),
        (json!(2), json!(0))
    );
    let text = world.kurier_cli(&["parked", "list"]).unwrap();
    assert!(stdout(&text).contains("HELD"), "{}", stdout(&text));

    // The next attempts are an hour away; retry-now brings one back at once.
    world
        .authority
        .set_mode(json!({"mode": "accept"}))
        .await
        .unwrap();
    let done = cli_json(
        &world,
        &["parked", "retry-now", &first, "--why", "authority is back"],
    );
    assert_eq!(done[0]["outcome"], "due_now", "{done}");
    let receipt = world.await_receipt(&first, WAIT).await.unwrap();
    assert_eq!(receipt.status, "delivered");
    assert_eq!(receipt.attempts, 2);
    assert!(
        store.is_parked(&kurier_e2e::sid(&second)).await.unwrap(),
        "only the named one was made due"
    );
    assert_eq!(requests_for(&world, &second).await, 1);

    // And a whole destination.
    let done = cli_json(
        &world,
        &["parked", "retry-now", "--destination", "sozialamt-geduldig"],
    );
    assert_eq!(done.as_array().unwrap().len(), 1, "{done}");
    assert_eq!(
        world.await_receipt(&second, WAIT).await.unwrap().status,
        "delivered"
    );
    let done = cli_json(
        &world,
        &["parked", "retry-now", "--destination", "sozialamt-geduldig"],
    );
    assert_eq!(done, json!([]), "nothing left to retry");

    let audit = audit_trail(&world);
    let retried: Vec<&serde_json::Value> = audit
        .iter()
        .filter(|a| a["action"] == "retry_now")
        .collect();
    assert_eq!(retried.len(), 2, "{audit:?}");
    let by_id = retried
        .iter()
        .find(|a| a["submission_ids"] == first.as_str())
        .unwrap();
    assert_eq!(by_id["reason"], "authority is back");
    assert_eq!(
        by_id["operator"],
        kurier::operator::ops::Actor::os_user().0.as_str()
    );
    assert!(
        retried
            .iter()
            .any(|a| a["submission_ids"] == second.as_str())
    );
    store.close().await;
}

async fn a_held_submission_is_left_alone_until_it_is_released(backend: Backend) {
    let (world, store, held, free) =
        two_parked(WorldOptions::new(backend), "sozialamt-koeln").await;

    let done = cli_json(
        &world,
        &["parked", "hold", &held, "--why", "applicant phoned"],
    );
    assert_eq!(done[0]["outcome"], "held");
    assert_eq!(cli_json(&world, &["parked", "show", &held])["held"], true);
    // Retry-now does not undo a hold.
    cli_json(&world, &["parked", "retry-now", &held]);
    assert_eq!(cli_json(&world, &["parked", "show", &held])["held"], true);
    let backlog = cli_json(
        &world,
        &["parked", "list", "--destination", "sozialamt-koeln"],
    );
    assert_eq!(backlog[0]["held"], 1, "{backlog}");
    let each = cli_json(&world, &["parked", "list", "--each"]);
    let row = each
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["submission_id"] == held.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["held"], true);
    await_not_in_flight(&world, &held).await;
    // The authority is back: the other one is delivered by the scheduler,
    // and a few rounds later the held one still has not been tried.
    let before = authority_recovers(&world, &free, &held, "a held submission was tried").await;
    assert!(store.is_parked(&kurier_e2e::sid(&held)).await.unwrap());
    assert!(
        store
            .receipt(&kurier_e2e::sid(&held))
            .await
            .unwrap()
            .is_none()
    );

    let done = cli_json(&world, &["parked", "release", &held]);
    assert_eq!(done[0]["outcome"], "released");
    let receipt = world.await_receipt(&held, WAIT).await.unwrap();
    assert_eq!(receipt.status, "delivered");
    assert_eq!(requests_for(&world, &held).await, before + 1);

    let audit = audit_trail(&world);
    let hold = audited(&audit, "hold");
    assert_eq!(hold["submission_ids"], held.as_str());
    assert_eq!(hold["reason"], "applicant phoned");
    assert_eq!(audited(&audit, "release")["submission_ids"], held.as_str());
    store.close().await;
}

async fn a_purged_submission_is_shredded_dead_lettered_and_never_sent(backend: Backend) {
    let (mut world, store, purged, kept) =
        two_parked(WorldOptions::new(backend), "sozialamt-koeln").await;
    await_not_in_flight(&world, &purged).await;
    let shown = cli_json(&world, &["parked", "show", &purged]);

    let done = cli_json(
        &world,
        &["parked", "purge", &purged, "--why", "applicant withdrew"],
    );
    assert_eq!(done[0]["outcome"], "purged", "{done}");
    assert!(
        !store.is_parked(&kurier_e2e::sid(&purged)).await.unwrap(),
        "the parked row is gone"
    );

    // The receipt ends it, naming the operator and no value.
    let operator = kurier::operator::ops::Actor::os_user().0;
    let receipt = store
        .receipt(&kurier_e2e::sid(&purged))
        .await
        .unwrap()
        .expect("a receipt");
    assert_eq!(receipt.status, "dead_lettered");
    assert_eq!(
        receipt.reason_code.as_deref(),
        Some("withdrawn_by_operator")
    );
    assert_eq!(
        receipt.reason_detail.as_deref(),
        Some(format!("withdrawn by operator {operator}").as_str())
    );
    // The scheduler may have made one more attempt between show and purge.
    assert!(receipt.attempts >= shown["attempts"].as_i64().unwrap());
    assert_eq!(
        receipt.received_at.to_string(),
        shown["received_at"].as_str().unwrap()
    );
    // The dead letter keeps nothing to replay.
    let dead = cli_json(&world, &["dead-letters", "show", &purged]);
    assert_eq!(dead["reason_code"], "withdrawn_by_operator");
    assert_eq!(dead["payload_kept"], false);
    assert!(
        dead["expires_at"].is_string(),
        "its metadata expires too: {dead}"
    );
    let sealed = sealed_left(&store, &purged).await;
    assert_eq!(sealed, 0, "no sealed payload or key is kept");
    // The portal learns of it: an event in the outbox, its seq on the receipt.
    let (seq, routing_key, body, events) = purge_event(&mut world, &store, &purged).await;
    assert_eq!(routing_key, shown["portal"].as_str().unwrap());
    assert_eq!(events, seq);
    assert!(seq >= 1);
    assert_eq!(body["submission_id"], purged.as_str());
    assert_eq!(body["status"], "dead_lettered");
    assert_eq!(body["reason"], "withdrawn_by_operator");
    assert_eq!(body["destination"], "sozialamt-koeln");
    assert_eq!(body["service"], "hzl");
    assert_eq!(body["seq"], seq);
    assert!(!body.to_string().contains(&canary(&world)));
    // Audited.
    let audit = audit_trail(&world);
    let entry = audited(&audit, "purge_parked");
    assert_eq!(entry["submission_ids"], purged.as_str());
    assert_eq!(entry["reason"], "applicant withdrew");
    assert_eq!(entry["operator"], operator.as_str());
    // Purged twice: not parked any more, exit 1 and nothing changes.
    let err = cli_fails(&world, &["parked", "purge", &purged]);
    assert!(
        err.contains("is not parked") && err.contains("dead_lettered"),
        "{err}"
    );

    // The authority is back: the other one is delivered, the purged one is
    // never sent again.
    authority_recovers(&world, &kept, &purged, "a purged submission was sent").await;
    let receipt = store
        .receipt(&kurier_e2e::sid(&purged))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.status, "dead_lettered");
    store.close().await;
}

/// Run `$body` with `$pool` bound to the world's pool, whichever backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

/// Dead-letter rows of `id` that still hold a key or a sealed payload.
async fn sealed_left(store: &Store, id: &str) -> i64 {
    const SQL: &str = "SELECT COUNT(*) FROM dead_letters WHERE submission_id = $1 \
         AND (key_id IS NOT NULL OR sealed_key IS NOT NULL OR sealed_payload IS NOT NULL)";
    let (n,): (i64,) =
        on_pool!(store, pool => sqlx::query_as(SQL).bind(id).fetch_one(pool).await.unwrap());
    n
}

/// The purge's receipt event as the portal gets it (the outbox relay
/// publishes it, then deletes its row): seq, routing key, JSON body, and the
/// receipt's `events`.
async fn purge_event(
    world: &mut World,
    store: &Store,
    id: &str,
) -> (i64, String, serde_json::Value, i64) {
    const EVENTS: &str = "SELECT events FROM receipts WHERE submission_id = $1";
    let (events,): (i64,) =
        on_pool!(store, pool => sqlx::query_as(EVENTS).bind(id).fetch_one(pool).await.unwrap());
    for _ in 0..20 {
        let got = world
            .receipt_events(1, Duration::from_secs(30))
            .await
            .unwrap();
        let (routing_key, body) = got.into_iter().next().unwrap();
        if body["submission_id"] == id && body["status"] == "dead_lettered" {
            return (body["seq"].as_i64().unwrap(), routing_key, body, events);
        }
    }
    panic!("no receipt event for the purge of {id}")
}

async fn destinations_are_paused_and_resumed_and_unknown_ids_exit_1(backend: Backend) {
    // The CLI alone: no broker runs, `kurier migrate` made the database
    // (no other verb creates one: tests/tests/cli.rs).
    let world = World::start(WorldOptions::new(backend)).await.unwrap();
    let out = world.kurier_cli(&["migrate"]).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let operator = kurier::operator::ops::Actor::os_user().0;
    let listed = cli_json(&world, &["destinations", "list"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "sozialamt-koeln",
            "wohnungsamt-dortmund",
            "jobcenter-kreis-offenbach"
        ]
    );
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["paused"] == false && d["parked"] == 0)
    );

    let done = cli_json(
        &world,
        &[
            "destinations",
            "pause",
            "sozialamt-koeln",
            "--why",
            "maintenance 22-24h",
        ],
    );
    assert_eq!(done["outcome"], "paused");
    let again = cli_json(&world, &["destinations", "pause", "sozialamt-koeln"]);
    assert_eq!(again["outcome"], "already_paused");
    let listed = cli_json(&world, &["destinations", "list"]);
    let koeln = &listed[0];
    assert_eq!(koeln["paused"], true);
    assert_eq!(koeln["paused_by"], operator.as_str());
    assert_eq!(koeln["pause_reason"], "maintenance 22-24h");
    assert_eq!(listed[1]["paused"], false);
    let text = world.kurier_cli(&["destinations", "list"]).unwrap();
    assert!(
        stdout(&text)
            .lines()
            .any(|l| l.starts_with("sozialamt-koeln") && l.contains("paused"))
    );
    // What the pipeline asks.
    let store = world.store().await.unwrap();
    let paused = kurier::operator::ops::paused_destinations(&store)
        .await
        .unwrap();
    assert_eq!(paused, ["sozialamt-koeln"]);

    let err = cli_fails(&world, &["destinations", "pause", "sozialamt-atlantis"]);
    assert!(
        err.contains("not a configured destination") && err.contains("sozialamt-koeln"),
        "{err}"
    );
    let err = cli_fails(&world, &["destinations", "resume", "sozialamt-atlantis"]);
    assert!(err.contains("not a configured destination"), "{err}");

    let done = cli_json(
        &world,
        &[
            "destinations",
            "resume",
            "sozialamt-koeln",
            "--why",
            "window over",
        ],
    );
    assert_eq!(done["outcome"], "resumed");
    assert!(
        kurier::operator::ops::paused_destinations(&store)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        cli_json(&world, &["destinations", "list"])[0]["paused"],
        false
    );

    let audit = audit_trail(&world);
    let pause = audited(&audit, "pause_destination");
    assert!(
        pause["outcome"]
            .as_str()
            .unwrap()
            .contains("sozialamt-koeln"),
        "{pause}"
    );
    assert_eq!(pause["operator"], operator.as_str());
    let resume = audited(&audit, "resume_destination");
    assert_eq!(resume["reason"], "window over");
    assert!(
        resume["outcome"].as_str().unwrap().contains("resumed"),
        "{resume}"
    );

    // Unknown ids: exit 1, a clear message, nothing changed or audited.
    let unknown = uuid::Uuid::new_v4().to_string();
    let actions = audit.len();
    for verb in ["show", "retry-now", "hold", "release", "purge"] {
        let err = cli_fails(&world, &["parked", verb, &unknown]);
        assert!(
            err.contains(&unknown) && err.contains("is not parked"),
            "{verb}: {err}"
        );
    }
    let err = cli_fails(&world, &["parked", "hold", "not-a-submission"]);
    assert!(err.contains("not a submission id"), "{err}");
    let err = cli_fails(
        &world,
        &["parked", "retry-now", "--destination", "sozialamt-atlantis"],
    );
    assert!(err.contains("not a configured destination"), "{err}");
    assert_eq!(
        audit_trail(&world).len(),
        actions,
        "failed commands are not audited"
    );
    store.close().await;
}

async fn the_admin_api_acts_on_the_parked_queue_and_the_destinations(backend: Backend) {
    let (world, store, first, second) =
        two_parked(WorldOptions::new(backend), "sozialamt-koeln").await;
    world.await_ready(WAIT).await.unwrap();
    let canary = canary(&world);
    let api = |method: &'static str, path: String, body: Option<serde_json::Value>| {
        let world = &world;
        async move {
            let body = body.map(|b| b.to_string());
            world
                .admin_request(method, &path, true, body.as_deref())
                .await
                .unwrap()
        }
    };

    let denied = world
        .admin_request(
            "POST",
            "/api/parked/hold",
            false,
            Some(&json!({"ids": [first]}).to_string()),
        )
        .await
        .unwrap();
    assert_eq!(denied.status, 401);

    let each = api("GET", "/api/parked?each=true".into(), None).await;
    assert_eq!(each.status, 200, "{}", each.body);
    assert_eq!(each.json().unwrap().as_array().unwrap().len(), 2);
    let shown = api("GET", format!("/api/parked/{first}"), None).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(!shown.body.contains(&canary));
    assert_eq!(shown.json().unwrap()["destination"], "sozialamt-koeln");
    let missing = api("GET", format!("/api/parked/{}", uuid::Uuid::new_v4()), None).await;
    assert_eq!(missing.status, 404, "{}", missing.body);

    let held = api(
        "POST",
        "/api/parked/hold".into(),
        Some(json!({"ids": [first], "why": "ticket 7"})),
    )
    .await;
    assert_eq!(held.status, 200, "{}", held.body);
    let shown = api("GET", format!("/api/parked/{first}"), None).await;
    assert_eq!(shown.json().unwrap()["held"], true);
    let released = api(
        "POST",
        "/api/parked/release".into(),
        Some(json!({"ids": [first]})),
    )
    .await;
    assert_eq!(released.status, 200, "{}", released.body);
    let shown = api("GET", format!("/api/parked/{first}"), None).await;
    assert_eq!(shown.json().unwrap()["held"], false);
    let retried = api(
        "POST",
        "/api/parked/retry-now".into(),
        Some(json!({"destination": "sozialamt-koeln"})),
    )
    .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.json().unwrap().as_array().unwrap().len(), 2);
    let neither = api("POST", "/api/parked/retry-now".into(), Some(json!({}))).await;
    assert_eq!(neither.status, 400, "{}", neither.body);
    let unknown = api(
        "POST",
        "/api/parked/hold".into(),
        Some(json!({"ids": [uuid::Uuid::new_v4()]})),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // Purge waits for an attempt under way; the scheduler keeps trying.
    let deadline = Instant::now() + WAIT;
    let purged = loop {
        let a = api(
            "POST",
            "/api/parked/purge".into(),
            Some(json!({"ids": [second], "why": "withdrawn"})),
        )
        .await;
        if a.status != 409 || Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(purged.status, 200, "{}", purged.body);
    assert_eq!(
        api("GET", format!("/api/parked/{second}"), None)
            .await
            .status,
        404
    );
    let receipt = api("GET", format!("/api/receipts/{second}"), None)
        .await
        .json()
        .unwrap();
    assert_eq!(receipt["reason_code"], "withdrawn_by_operator");

    let destinations = api("GET", "/api/destinations".into(), None).await;
    assert_eq!(destinations.status, 200, "{}", destinations.body);
    let koeln = destinations.json().unwrap()[0].clone();
    assert_eq!(
        (koeln["destination"].clone(), koeln["paused"].clone()),
        (json!("sozialamt-koeln"), json!(false))
    );
    let paused = api(
        "POST",
        "/api/destinations/wohnungsamt-dortmund/pause".into(),
        Some(json!({"why": "window"})),
    )
    .await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(paused.json().unwrap()["outcome"], "paused");
    let listed = api("GET", "/api/destinations".into(), None)
        .await
        .json()
        .unwrap();
    assert_eq!(listed[1]["paused"], true);
    assert_eq!(listed[1]["paused_by"], "e2e-operator");
    let nowhere = api("POST", "/api/destinations/nowhere/pause".into(), None).await;
    assert_eq!(nowhere.status, 404, "{}", nowhere.body);
    let resumed = api(
        "POST",
        "/api/destinations/wohnungsamt-dortmund/resume".into(),
        None,
    )
    .await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(resumed.json().unwrap()["outcome"], "resumed");

    let audit = api("GET", "/api/audit".into(), None).await.json().unwrap();
    let audit = audit.as_array().unwrap();
    let actions: Vec<&str> = audit.iter().filter_map(|a| a["action"].as_str()).collect();
    for action in [
        "hold",
        "release",
        "retry_now",
        "purge_parked",
        "pause_destination",
        "resume_destination",
    ] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
    assert!(
        audit.iter().all(|a| a["operator"] == "e2e-operator"),
        "{audit:?}"
    );
    assert_eq!(audited(audit, "hold")["reason"], "ticket 7");
    store.close().await;
}
