//! Bad input and a hostile peer bring nothing down: bodies far over the
//! message limit among normal traffic, and an authority whose reference is
//! 64 KiB of NUL and escape bytes.

use std::collections::HashSet;
use std::time::Duration;

use kurier_e2e::{Backend, World, WorldOptions, fresh, json, on_both_backends, rss_kib};

const WAIT: Duration = Duration::from_secs(120);

on_both_backends!(
    a_hostile_reference_is_cut_and_the_receipts_around_it_are_committed,
    one_record_the_database_refuses_does_not_fail_its_group_commit,
);

/// A record the database refuses (here by a trigger on one submission id:
/// the receipt's types admit no malformed row any more) fails alone; the
/// records committed in the same group go in.
async fn one_record_the_database_refuses_does_not_fail_its_group_commit(backend: Backend) {
    let world = World::start(WorldOptions::new(backend)).await.unwrap();
    let store = world.store().await.unwrap();
    store.migrate().await.unwrap();
    let recorder = kurier::store::Recorder::spawn(store.clone());
    const REFUSED: &str = "00000000-0000-4000-8000-00000000dead";
    match &store {
        kurier::store::Store::Sqlite(pool) => {
            sqlx::query(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON receipts \
                 WHEN NEW.submission_id = '00000000-0000-4000-8000-00000000dead' \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        kurier::store::Store::Postgres(pool) => {
            sqlx::raw_sql(
                "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN \
                 IF NEW.submission_id = '00000000-0000-4000-8000-00000000dead' THEN \
                 RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER refuse_one BEFORE INSERT ON receipts \
                 FOR EACH ROW EXECUTE FUNCTION refuse_one();",
            )
            .execute(pool)
            .await
            .unwrap();
        }
    }
    let receipt = |id: &str| kurier::store::Receipt {
        submission_id: kurier_e2e::sid(id),
        service: Some("hzl".into()),
        destination: Some(kurier_e2e::did("sozialamt-koeln")),
        portal: Some("sozialplattform".into()),
        status: kurier::domain::status::ReceiptStatus::Delivered,
        reason_code: None,
        reason_detail: None,
        http_status: Some(201),
        reference: Some("2026-HzL-1".into()),
        attempts: 1,
        received_sha256: "00".into(),
        sent_sha256: None,
        submitted_at: None,
        received_at: kurier::domain::time::Timestamp::parse("2026-12-02T00:00:00.000000Z").unwrap(),
        completed_at: kurier::domain::time::Timestamp::parse("2026-12-02T00:00:01.000000Z")
            .unwrap(),
    };
    let good: Vec<_> = (0..20)
        .map(|_| receipt(&uuid::Uuid::new_v4().to_string()))
        .collect();
    let bad = receipt(REFUSED);
    let mut writes = Vec::new();
    for (i, r) in good.iter().enumerate() {
        if i == 10 {
            let recorder = recorder.clone();
            let bad = bad.clone();
            writes.push(tokio::spawn(async move {
                recorder
                    .record(kurier::store::Record::Receipt(bad))
                    .await
                    .is_ok()
            }));
        }
        let recorder = recorder.clone();
        let r = r.clone();
        writes.push(tokio::spawn(async move {
            recorder
                .record(kurier::store::Record::Receipt(r))
                .await
                .is_ok()
        }));
    }
    let mut ok = 0;
    for w in writes {
        ok += usize::from(w.await.unwrap());
    }
    assert_eq!(
        ok,
        good.len(),
        "every good record committed, the bad one alone failed"
    );
    for r in &good {
        assert_eq!(
            store
                .receipt(&kurier_e2e::sid(&r.submission_id))
                .await
                .unwrap()
                .unwrap()
                .status,
            "delivered"
        );
    }
    assert!(
        store
            .receipt(&kurier_e2e::sid(&bad.submission_id))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_dead_lettered_unread_and_the_rest_flows() {
    let mut world = World::start(WorldOptions::new(Backend::Sqlite))
        .await
        .unwrap();
    world.start_kurier().unwrap();
    let pid = world.kurier.as_ref().unwrap().child.id();
    let canary = format!("KANARIE{}", uuid::Uuid::new_v4().simple());

    let normal: Vec<serde_json::Value> = (0..200).map(|_| fresh("hzl-minimal.json")).collect();
    let mut large_ids = Vec::new();
    for (i, chunk) in normal.chunks(50).enumerate() {
        world.publish_many(chunk).await.unwrap();
        // 60 MB that start like an envelope, with a canary: never parsed, never kept.
        let id = uuid::Uuid::new_v4().to_string();
        let mut body =
            format!("{{\"submission_id\":\"{id}\",\"form\":{{\"name\":\"{canary}").into_bytes();
        body.resize(60 * 1024 * 1024, b'A');
        let properties = lapin::BasicProperties::default()
            .with_message_id(id.as_str().into())
            .with_app_id("sozialplattform".into())
            .with_content_type("application/json".into());
        world
            .publish_with("hzl.sozialamt-koeln", properties, &body)
            .await
            .unwrap();
        large_ids.push(id);
        println!("published large body {}", i + 1);
    }

    // Every normal submission is delivered.
    for e in &normal {
        let r = world
            .await_receipt(e["submission_id"].as_str().unwrap(), WAIT)
            .await
            .unwrap();
        assert_eq!(r.status, "delivered", "{r:?}");
    }
    // Each large one is a dead letter `message_too_large` under its message
    // id, told to the portal named by app_id, with nothing of it kept.
    let store = world.store().await.unwrap();
    for id in &large_ids {
        let r = world.await_receipt(id, WAIT).await.unwrap();
        assert_eq!(r.status, "dead_lettered");
        assert_eq!(r.reason_code.as_deref(), Some("message_too_large"));
        assert_eq!(r.portal.as_deref(), Some("sozialplattform"));
        assert_eq!(r.service.as_deref(), Some("hzl"));
        assert_eq!(r.destination.as_deref(), Some("sozialamt-koeln"));
        let detail = r.reason_detail.unwrap_or_default();
        assert!(detail.contains("max_message_bytes"), "{detail}");
        assert!(
            !store.payload_kept(&kurier_e2e::sid(id)).await.unwrap(),
            "nothing of {id} kept"
        );
    }
    let wanted: HashSet<String> = large_ids.iter().cloned().collect();
    world.await_events_for(&wanted, WAIT).await.unwrap();
    assert!(
        world
            .kurier
            .as_mut()
            .unwrap()
            .child
            .try_wait()
            .unwrap()
            .is_none(),
        "Kurier is up"
    );
    world
        .assert_nothing_kept_contains(&canary, "after 60 MB bodies")
        .await;
    let (rss, peak) = rss_kib(pid).unwrap();
    println!(
        "FIGURE large_bodies bodies=4x60MiB normal=200 delivered=200 rss_mib={} peak_rss_mib={}",
        rss / 1024,
        peak / 1024
    );
}

async fn a_hostile_reference_is_cut_and_the_receipts_around_it_are_committed(backend: Backend) {
    let mut options = WorldOptions::new(backend);
    options.extra_config = r#"
[[destinations]]
id = "feindselig"
adapter = "xsozial-hzl"
endpoint = "{AUTHORITY}/hostile-reference"
ca_file = "{CA}"
client_cert_file = "{CERT}"
client_key_file = "{KEY}"
"#
    .into();
    let mut world = World::start(options).await.unwrap();
    world.start_kurier().unwrap();
    let mut envelopes = Vec::new();
    for i in 0..40 {
        let mut e = fresh("hzl-minimal.json");
        if i % 4 == 0 {
            e["destination"] = json!("feindselig");
        }
        envelopes.push(e);
    }
    world.publish_many(&envelopes).await.unwrap();
    for e in &envelopes {
        let r = world
            .await_receipt(e["submission_id"].as_str().unwrap(), WAIT)
            .await
            .unwrap();
        assert_eq!(r.status, "delivered", "{r:?}");
        let reference = r.reference.clone().unwrap();
        if e["destination"] == "feindselig" {
            assert_eq!(reference.chars().count(), 256);
            assert!(
                !reference.chars().any(char::is_control),
                "no control characters kept"
            );
            let detail = r.reason_detail.unwrap_or_default();
            assert!(detail.contains("cut"), "the cut is noted: {detail}");
        } else {
            assert!(reference.len() < 64, "{reference}");
            assert!(r.reason_detail.is_none());
        }
    }
}

/// Destinations named by envelopes are any string a portal sent: they are
/// counted as `unknown` in status and metrics, never listed by name; an
/// operator's absurd duration is a clear error, not a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_envelopes_never_become_labels_and_absurd_durations_are_refused() {
    let mut world = World::start(WorldOptions::new(Backend::Sqlite))
        .await
        .unwrap();
    world.start_kurier().unwrap();
    let mut strangers = Vec::new();
    for i in 0..3 {
        let mut e = fresh("hzl-minimal.json");
        let name = format!("amt-{i}-{}", uuid::Uuid::new_v4().simple());
        e["destination"] = json!(name);
        strangers.push(name);
        world.publish_envelope(&e).await.unwrap();
    }
    world.await_dead_letters(3, WAIT).await.unwrap();
    let out = world.kurier_cli(&["status", "--json"]).unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = status["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["destination"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"sozialamt-koeln") && names.contains(&"unknown"),
        "{names:?}"
    );
    let unknown = status["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == "unknown")
        .unwrap();
    assert_eq!(unknown["dead_letters"], 3);
    // The metrics are refreshed every few seconds.
    let mut metrics = String::new();
    for _ in 0..30 {
        metrics = world
            .admin_request("GET", "/metrics", false, None)
            .await
            .unwrap()
            .body;
        if metrics.contains("destination=\"unknown\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(metrics.contains("destination=\"unknown\""), "{metrics}");
    for name in &strangers {
        assert!(!metrics.contains(name.as_str()), "{name} became a label");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(name.as_str()));
    }
    for huge in ["99999999999d", "18446744073709551615s"] {
        let out = world
            .kurier_cli(&["dead-letters", "purge", "--older-than", huge])
            .unwrap();
        // A malformed value is a usage error (exit 2): nothing is opened.
        assert_eq!(out.status.code(), Some(2), "{huge}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("thousand years"), "{huge}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Receipts are kept for years (the proof of the application date), then
/// Kurier deletes them itself; a younger receipt stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_past_their_retention_are_deleted_by_kurier_itself() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let mut world = World::start(WorldOptions::new(backend)).await.unwrap();
        let store = world.store().await.unwrap();
        store.migrate().await.unwrap();
        let receipt = |completed_at: &str| kurier::store::Receipt {
            submission_id: kurier::domain::id::SubmissionId::random(),
            service: Some("hzl".into()),
            destination: Some(kurier_e2e::did("sozialamt-koeln")),
            portal: None,
            status: kurier::domain::status::ReceiptStatus::Delivered,
            reason_code: None,
            reason_detail: None,
            http_status: Some(201),
            reference: Some("2015-HzL-1".into()),
            attempts: 1,
            received_sha256: "00".into(),
            sent_sha256: None,
            submitted_at: None,
            received_at: kurier::domain::time::Timestamp::parse(completed_at).unwrap(),
            completed_at: kurier::domain::time::Timestamp::parse(completed_at).unwrap(),
        };
        // Eleven years old (the default keeps ten), and one from last year.
        let old = receipt("2015-11-30T10:00:00.000000Z");
        let young = receipt("2025-11-30T10:00:00.000000Z");
        store
            .write(&[
                kurier::store::Record::Receipt(old.clone()),
                kurier::store::Record::Receipt(young.clone()),
            ])
            .await
            .unwrap();
        world.start_kurier().unwrap();
        let mut gone = false;
        for _ in 0..40 {
            if store
                .receipt(&kurier_e2e::sid(&old.submission_id))
                .await
                .unwrap()
                .is_none()
            {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(gone, "{backend:?}: the eleven-year-old receipt was deleted");
        assert!(
            store
                .receipt(&kurier_e2e::sid(&young.submission_id))
                .await
                .unwrap()
                .is_some(),
            "{backend:?}"
        );
    }
}
