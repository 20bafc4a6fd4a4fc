//! A group commit of receipts written as one batch (on SQLite three
//! statements for the whole batch, on PostgreSQL one statement per receipt)
//! leaves the database exactly as writing the same receipts one at a time
//! does, and as the cases below say: the receipts, the outbox events with their `seq`, the
//! parked rows erased; a receipt that may not overwrite a delivered one
//! neither changes it nor gets an event; a receipt without a portal gets no
//! event. Both paths run on the same database with their own submission ids
//! and are compared case by case. On PostgreSQL, events taken from the
//! outbox stay locked until they are forgotten (the relay's batches overlap).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kurier::store::{Parked, Receipt, Record, Store};
use kurier_e2e::{Backend, World, WorldOptions, on_both_backends};

on_both_backends!(
    a_batch_of_receipts_is_written_as_one_at_a_time_would_be,
    lookups_gathered_in_one_query_find_what_one_lookup_finds,
);

/// The cases, by name, each a submission of its own.
const CASES: [&str; 6] = [
    "parked_before",
    "already_delivered",
    "delivered_again",
    "without_portal",
    "delivered",
    "rejected",
];

fn receipt(id: &str, status: &str, portal: Option<&str>) -> Receipt {
    Receipt {
        submission_id: kurier_e2e::sid(id),
        service: Some("hzl".into()),
        destination: Some(kurier_e2e::did("sozialamt-koeln")),
        portal: portal.map(Into::into),
        status: kurier::domain::status::ReceiptStatus::parse(status).expect("a receipt status"),
        reason_code: (status != "delivered").then(|| "authority_rejected".into()),
        reason_detail: None,
        http_status: Some(if status == "delivered" { 201 } else { 422 }),
        reference: (status == "delivered").then(|| "2026-HzL-7".into()),
        attempts: 2,
        received_sha256: "ab".into(),
        sent_sha256: Some("cd".into()),
        submitted_at: Some("2026-12-02T00:00:00.000000Z".into()),
        received_at: kurier::domain::time::Timestamp::parse("2026-12-02T00:00:00.100000Z").unwrap(),
        completed_at: kurier::domain::time::Timestamp::parse("2026-12-02T00:00:01.000000Z")
            .unwrap(),
    }
}

fn parked(id: &str) -> Parked {
    Parked {
        submission_id: kurier_e2e::sid(id),
        service: "hzl".into(),
        destination: kurier_e2e::did("sozialamt-koeln"),
        portal: "sozialplattform".into(),
        attempts: 1,
        received_sha256: "ab".into(),
        received_at: kurier::domain::time::Timestamp::parse("2026-12-02T00:00:00.100000Z").unwrap(),
        first_failure_at: kurier::domain::time::Timestamp::parse("2026-12-02T00:00:00.200000Z")
            .unwrap(),
        last_cause: "status 503".into(),
        next_attempt_at: kurier::domain::time::Timestamp::parse("2026-12-02T00:00:00.700000Z")
            .unwrap(),
        expires_at: kurier::domain::time::Timestamp::parse("2026-12-09T00:00:00.100000Z").unwrap(),
        lease_until: None,
        key_id: "k".into(),
        sealed_key: vec![1],
        sealed_payload: vec![2],
    }
}

/// Ids of one run: `<run>-<case>`.
fn ids(run: &str) -> BTreeMap<&'static str, String> {
    CASES
        .iter()
        .map(|case| (*case, format!("{run}-{}-{case}", uuid::Uuid::new_v4())))
        .collect()
}

/// What came before the receipts (the same for both runs), then the
/// receipts themselves.
async fn prepare(store: &Store, ids: &BTreeMap<&'static str, String>) -> Vec<Record> {
    store
        .write(&[Record::Park(parked(&ids["parked_before"]))])
        .await
        .unwrap();
    for case in ["already_delivered", "delivered_again"] {
        store
            .write(&[Record::Receipt(receipt(
                &ids[case],
                "delivered",
                Some("sozialplattform"),
            ))])
            .await
            .unwrap();
    }
    vec![
        Record::Receipt(receipt(
            &ids["parked_before"],
            "delivered",
            Some("sozialplattform"),
        )),
        // May not overwrite the delivered receipt.
        Record::Receipt(receipt(
            &ids["already_delivered"],
            "rejected",
            Some("sozialplattform"),
        )),
        // Delivered again (two instances raced): the receipt stays, its
        // event is told again with the same seq (the portal drops the copy).
        Record::Receipt(receipt(
            &ids["delivered_again"],
            "delivered",
            Some("sozialplattform"),
        )),
        Record::Receipt(receipt(&ids["without_portal"], "delivered", None)),
        Record::Receipt(receipt(
            &ids["delivered"],
            "delivered",
            Some("sozialplattform"),
        )),
        Record::Receipt(receipt(&ids["rejected"], "rejected", Some("portal-b"))),
    ]
}

/// Everything the database holds about one case, with the id taken out.
async fn state(store: &Store, id: &str, outbox: &[kurier::store::OutboxEvent]) -> String {
    let receipt = store
        .receipt(&kurier_e2e::sid(id))
        .await
        .unwrap()
        .map(|mut r| {
            r.submission_id = kurier_e2e::sid("");
            r
        });
    let parked = store.is_parked(&kurier_e2e::sid(id)).await.unwrap();
    let events: Vec<(i64, String, serde_json::Value)> = outbox
        .iter()
        .filter(|e| e.submission_id == id)
        .map(|e| {
            let mut body: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
            body["submission_id"] = serde_json::Value::Null;
            (e.seq, e.routing_key.clone(), body)
        })
        .collect();
    format!("receipt {receipt:?}\nparked {parked}\nevents {events:?}")
}

async fn a_batch_of_receipts_is_written_as_one_at_a_time_would_be(backend: Backend) {
    let world = World::start(WorldOptions::new(backend)).await.unwrap();
    let store = world.store().await.unwrap();
    store.migrate().await.unwrap();

    let one_by_one = ids("single");
    for record in prepare(&store, &one_by_one).await {
        store.write(std::slice::from_ref(&record)).await.unwrap();
    }
    let batched = ids("batch");
    let records = prepare(&store, &batched).await;
    store.write(&records).await.unwrap();

    let taken = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&taken);
    store
        .drain_outbox(1000, async move |rows| {
            sink.lock().unwrap().extend(rows);
            Vec::new()
        })
        .await
        .unwrap();
    let outbox: Vec<_> = std::mem::take(&mut *taken.lock().unwrap());
    for case in CASES {
        let single = state(&store, &one_by_one[case], &outbox).await;
        let batch = state(&store, &batched[case], &outbox).await;
        assert_eq!(batch, single, "case {case}");
    }
    // The cases say what they should: not only equal, but right.
    let seqs = |id: &str| -> Vec<i64> {
        outbox
            .iter()
            .filter(|e| e.submission_id == id)
            .map(|e| e.seq)
            .collect()
    };
    assert_eq!(
        seqs(&batched["parked_before"]),
        [1, 2],
        "parked event, then the receipt's"
    );
    assert!(
        !store
            .is_parked(&kurier_e2e::sid(&batched["parked_before"]))
            .await
            .unwrap()
    );
    assert_eq!(seqs(&batched["already_delivered"]), [1], "no second event");
    assert_eq!(seqs(&batched["delivered_again"]), [1, 1], "the event again");
    assert_eq!(
        store
            .receipt(&kurier_e2e::sid(&batched["already_delivered"]))
            .await
            .unwrap()
            .unwrap()
            .status,
        "delivered"
    );
    assert!(seqs(&batched["without_portal"]).is_empty());
    assert_eq!(seqs(&batched["delivered"]), [1]);
    assert_eq!(seqs(&batched["rejected"]), [1]);
}

/// `Store::seen_many` (what the pipeline's gathered duplicate check uses)
/// answers as `Store::seen` does for each id: receipts, parked rows, their
/// portals, unknown ids, an id asked twice.
async fn lookups_gathered_in_one_query_find_what_one_lookup_finds(backend: Backend) {
    let world = World::start(WorldOptions::new(backend)).await.unwrap();
    let store = world.store().await.unwrap();
    store.migrate().await.unwrap();
    let known = ids("seen");
    let records = prepare(&store, &known).await;
    // Half of them written: the others are not known yet.
    store.write(&records[..2]).await.unwrap();
    let mut asked: Vec<String> = known.values().cloned().collect();
    asked.push("never-seen".into());
    asked.push(known["delivered"].clone());
    let asked: Vec<_> = asked.iter().map(kurier_e2e::sid).collect();
    let found = store.seen_many(&asked).await.unwrap();
    for id in &asked {
        let one = store.seen(&kurier_e2e::sid(id)).await.unwrap();
        let many = found.get(id).cloned().unwrap_or_default();
        assert_eq!(many, one, "{id}");
    }
    assert_eq!(
        found[known["parked_before"].as_str()].status.as_deref(),
        Some("delivered")
    );
    assert!(found[known["already_delivered"].as_str()].portal.is_some());
    let recorder = kurier::store::Recorder::spawn(store.clone());
    let later = ids("seen-parked");
    store
        .write(&[Record::Park(parked(&later["parked_before"]))])
        .await
        .unwrap();
    let seen = recorder
        .seen(&kurier_e2e::sid(&later["parked_before"]))
        .await
        .unwrap();
    assert!(seen.parked && seen.status.is_none(), "{seen:?}");
}

/// PostgreSQL's outbox relay takes the next batch while the one before still
/// awaits its confirms: taken events stay locked until `forget`, so a second
/// take (this relay's next batch, or another instance's) skips them; only
/// the confirmed ones are deleted; what a dropped (failed) batch held is
/// taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_receipt_events_are_skipped_until_forgotten() {
    let world = World::start(WorldOptions::new(Backend::Postgres))
        .await
        .unwrap();
    let store = world.store().await.unwrap();
    store.migrate().await.unwrap();
    let known = ids("taken");
    store.write(&prepare(&store, &known).await).await.unwrap();
    let all = store.outbox_after(0, 1000).await.unwrap();
    assert!(all.len() >= 4, "{} events", all.len());

    // Each batch holds a connection; a second pool plays another instance.
    let other = world.store().await.unwrap();
    let (first, first_events) = store.take_outbox(2).await.unwrap().unwrap();
    let (second, second_events) = other.take_outbox(1000).await.unwrap().unwrap();
    let first_ids: Vec<i64> = first_events.iter().map(|e| e.id).collect();
    let second_ids: Vec<i64> = second_events.iter().map(|e| e.id).collect();
    assert_eq!(first_ids, all[..2].iter().map(|e| e.id).collect::<Vec<_>>());
    assert_eq!(
        second_ids,
        all[2..].iter().map(|e| e.id).collect::<Vec<_>>()
    );
    assert!(
        store.take_outbox(1000).await.unwrap().is_none(),
        "all locked"
    );

    // The second batch: one event confirmed, the others not.
    second.forget(&second_ids[..1]).await.unwrap();
    // The first batch failed (dropped: rolled back).
    drop(first);
    let (third, third_events) = store.take_outbox(1000).await.unwrap().unwrap();
    let mut expected: Vec<i64> = first_ids.clone();
    expected.extend(&second_ids[1..]);
    assert_eq!(
        third_events.iter().map(|e| e.id).collect::<Vec<_>>(),
        expected,
        "the unconfirmed and the dropped ones, in order"
    );
    third.forget(&expected).await.unwrap();
    assert!(store.outbox_after(0, 1000).await.unwrap().is_empty());
}
