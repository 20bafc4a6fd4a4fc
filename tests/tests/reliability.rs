//! Nothing lost, nothing kept: parking, encryption at rest, erasure,
//! retention, on both databases.

use std::time::{Duration, Instant};

use base64::Engine;
use kurier_e2e::{Backend, World, WorldOptions, fresh, json, on_both_backends};

const WAIT: Duration = Duration::from_secs(60);

on_both_backends!(
    a_parked_submission_is_sealed_then_delivered_and_erased,
    dead_letters_are_purged_after_their_retention_and_the_receipt_stays,
    a_submission_parked_past_its_maximum_age_is_delivery_expired,
    retry_after_is_honoured_between_attempts,
);

async fn a_submission_parked_past_its_maximum_age_is_delivery_expired(backend: Backend) {
    let mut options = WorldOptions::new(backend);
    options.retry = "circuit_open_secs = 1\nmax_age_secs = 3".into();
    options.json_logs = true;
    let mut world = World::start(options).await.unwrap();
    world.authority.fail_all(503).await;
    world.start_kurier().unwrap();
    let e = fresh("hzl-minimal.json");
    let id = e["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&e).await.unwrap();
    let receipt = world.await_receipt(&id, WAIT).await.unwrap();
    assert_eq!(receipt.status, "dead_lettered", "{receipt:?}");
    assert_eq!(receipt.reason_code.as_deref(), Some("delivery_expired"));
    assert!(receipt.completed_at >= receipt.received_at);
    let detail = receipt.reason_detail.unwrap_or_default();
    assert!(
        detail.contains("sozialamt-koeln") && detail.contains("status 503"),
        "{detail}"
    );
    // First `parked` (seq 1, not terminal), then the dead letter (seq 2).
    let events = world.receipt_events(2, WAIT).await.unwrap();
    assert_eq!(events[0].1["status"], "parked");
    assert_eq!(events[0].1["seq"], 1);
    assert!(events[0].1["next_attempt_at"].is_string());
    assert_eq!(events[1].1["reason"], "delivery_expired");
    assert_eq!(events[1].1["seq"], 2);
    let store = world.store().await.unwrap();
    assert!(
        store.parked(None, 10).await.unwrap().is_empty(),
        "no longer parked"
    );
    let dead = world.await_dead_letters(1, WAIT).await.unwrap();
    assert_eq!(dead[0].reason_code, "delivery_expired");

    // The JSON log has the contract's fields at the top level of each line.
    let log = std::fs::read_to_string(world.log_path()).unwrap();
    let finished: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "submission finished")
        .collect();
    assert_eq!(finished.len(), 1, "{log}");
    let line = &finished[0];
    assert_eq!(line["submission_id"], id.as_str());
    assert_eq!(line["destination"], "sozialamt-koeln");
    assert_eq!(line["outcome"], "dead_lettered");
    assert_eq!(line["reason"], "delivery_expired");
}

async fn retry_after_is_honoured_between_attempts(backend: Backend) {
    let mut options = WorldOptions::new(backend);
    // Backoff alone would retry after 100-200 ms.
    options.retry = "circuit_open_secs = 30\nmax_attempts_in_place = 2".into();
    let mut world = World::start(options).await.unwrap();
    world
        .authority
        .set_mode(json!({"mode": "fail", "status": 429, "retry_after": 2}))
        .await
        .unwrap();
    world.start_kurier().unwrap();
    let e = fresh("hzl-minimal.json");
    let id = e["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&e).await.unwrap();
    let store = world.store().await.unwrap();
    let deadline = Instant::now() + WAIT;
    while !store
        .is_parked(&kurier_e2e::sid(&id))
        .await
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "not parked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests = world.authority.requests().await.unwrap();
    let at: Vec<u64> = requests
        .iter()
        .filter(|r| r["submission_id"] == id.as_str())
        .map(|r| r["received_at_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(at.len(), 2, "two attempts in place");
    let gap = at[1] - at[0];
    println!("{backend:?}: second attempt {gap} ms after the first (Retry-After: 2)");
    assert!(gap >= 1900, "Retry-After: 2 not honoured, gap {gap} ms");
}

async fn a_parked_submission_is_sealed_then_delivered_and_erased(backend: Backend) {
    let mut world = World::start(WorldOptions::new(backend)).await.unwrap();
    let canary = format!("kanarie{}", world.tag);
    world.authority.fail_all(503).await;
    world.start_kurier().unwrap();

    let mut ids = Vec::new();
    for n in 0..2 {
        let mut e = fresh("hzl-full.json");
        e["form"]["applicant"]["family_name"] = json!(format!("{canary}-{n}"));
        e["form"]["situation"]["medical_notes"] = json!(format!("Notiz {canary}"));
        ids.push(e["submission_id"].as_str().unwrap().to_owned());
        world.publish_envelope(&e).await.unwrap();
    }
    // Parked after the in-place attempts, acked, sealed.
    let store = world.store().await.unwrap();
    let deadline = Instant::now() + WAIT;
    while store.parked(None, 10).await.unwrap_or_default().len() < 2 {
        assert!(Instant::now() < deadline, "not parked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(world.queue_ready().await.unwrap(), 0);
    // At most three attempts in place each; five failed attempts (the
    // threshold) open the circuit, which stops further attempts. An attempt
    // already under way when it opens still counts, hence 5 or 6.
    let parked = store.parked(None, 10).await.unwrap();
    let total: i64 = parked.iter().map(|p| p.attempts).sum();
    assert!((5..=6).contains(&total), "{parked:?}");
    assert!(
        parked.iter().all(|p| (1..=3).contains(&p.attempts)),
        "{parked:?}"
    );
    for p in &parked {
        assert!(
            p.last_cause == "status 503" || p.last_cause == "circuit open",
            "{}",
            p.last_cause
        );
        assert!(p.expires_at > p.received_at);
    }
    world
        .assert_nothing_kept_contains(&canary, "while parked")
        .await;

    // The authority recovers: the scheduler delivers, the parked rows go.
    world
        .authority
        .set_mode(json!({"mode": "accept"}))
        .await
        .unwrap();
    for id in &ids {
        let r = world.await_receipt(id, WAIT).await.unwrap();
        assert_eq!(r.status, "delivered", "{r:?}");
        assert!(r.attempts >= 3, "{r:?}");
    }
    // Each submission: `parked` with seq 1 when first parked, then
    // `delivered` with seq 2.
    let events = world.receipt_events(4, WAIT).await.unwrap();
    for id in &ids {
        let mine: Vec<_> = events
            .iter()
            .filter(|(_, e)| e["submission_id"] == id.as_str())
            .map(|(_, e)| {
                (
                    e["seq"].as_i64().unwrap(),
                    e["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            mine,
            [(1, "parked".to_owned()), (2, "delivered".to_owned())],
            "{id}"
        );
    }
    assert!(store.parked(None, 10).await.unwrap().is_empty(), "erased");

    // Every attempt carried the same Idempotency-Key, attempts counted up.
    let requests = world.authority.requests().await.unwrap();
    for id in &ids {
        let mine: Vec<_> = requests
            .iter()
            .filter(|r| r["submission_id"] == id.as_str())
            .collect();
        assert!(mine.len() >= 3);
        assert!(mine.iter().all(|r| r["idempotency_key"] == id.as_str()));
        let attempts: Vec<u32> = mine
            .iter()
            .map(|r| r["attempt"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(attempts.windows(2).all(|w| w[0] < w[1]), "{attempts:?}");
        assert_eq!(mine.iter().filter(|r| r["status"] == 201).count(), 1);
    }
    let delivered_body = requests.iter().find(|r| r["status"] == 201).unwrap();
    let body = base64::engine::general_purpose::STANDARD
        .decode(delivered_body["body_base64"].as_str().unwrap())
        .unwrap();
    assert!(
        String::from_utf8_lossy(&body).contains(&canary),
        "the authority got the data"
    );

    let kurier = world.kurier.as_mut().unwrap();
    assert_eq!(kurier.terminate(Duration::from_secs(20)), Some(0));
    world
        .assert_nothing_kept_contains(&canary, "after delivery")
        .await;
}

async fn dead_letters_are_purged_after_their_retention_and_the_receipt_stays(backend: Backend) {
    let mut options = WorldOptions::new(backend);
    options.sections = "[dead_letters]\nretention_days = 0".into();
    let mut world = World::start(options).await.unwrap();
    world.start_kurier().unwrap();
    let mut e = fresh("hzl-minimal.json");
    e["destination"] = json!("sozialamt-atlantis");
    let id = e["submission_id"].as_str().unwrap().to_owned();
    world.publish_envelope(&e).await.unwrap();
    let receipt = world.await_receipt(&id, WAIT).await.unwrap();
    assert_eq!(receipt.reason_code.as_deref(), Some("unknown_destination"));
    world.await_dead_letters(1, WAIT).await.unwrap();
    // Purged by the scheduler (it looks every few seconds).
    let store = world.store().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store
        .dead_letters(None, None, None, 10, 0)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the dead letter was not purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let receipt = store
        .receipt(&kurier_e2e::sid(&id))
        .await
        .unwrap()
        .expect("the receipt stays");
    assert_eq!(receipt.status, "dead_lettered");
    let log = std::fs::read_to_string(world.log_path()).unwrap();
    assert!(log.contains("dead letters past their retention purged"));
}
