//! The path of one submission, end to end on real parts: RabbitMQ, SQLite or
//! PostgreSQL, the mTLS test authority, and `kurier run` as a process.

use std::time::Duration;

use base64::Engine;
use kurier_e2e::{
    Backend, World, WorldOptions, base64_forms, fresh, json, on_both_backends, sha256_hex,
};

const WAIT: Duration = Duration::from_secs(60);

on_both_backends!(
    every_sample_is_delivered_with_a_receipt_and_an_event,
    every_reason_code_is_a_dead_letter_that_names_no_value,
    canaries_reach_the_authority_and_nothing_else,
    an_unknown_client_or_server_certificate_never_delivers,
);

/// Expected end of a sample, by whether its destination's adapter exists yet.
fn expects_delivery(world: &World, destination: &str) -> bool {
    let adapter = &world
        .config
        .destination(destination)
        .expect("sample destinations are configured")
        .adapter;
    kurier_adapters::find(adapter).is_some()
}

async fn every_sample_is_delivered_with_a_receipt_and_an_event(backend: Backend) {
    let mut world = World::start(WorldOptions::new(backend)).await.unwrap();
    world.start_kurier().unwrap();
    let envelopes: Vec<_> = [
        "hzl-full.json",
        "hzl-minimal.json",
        "wbs-full.json",
        "buergergeld-wba.json",
    ]
    .iter()
    .map(|n| fresh(n))
    .collect();
    for e in &envelopes {
        world.publish_envelope(e).await.unwrap();
    }

    let mut delivered = 0;
    for e in &envelopes {
        let id = e["submission_id"].as_str().unwrap();
        let destination = e["destination"].as_str().unwrap();
        let receipt = world.await_receipt(id, WAIT).await.unwrap();
        assert_eq!(
            receipt.received_sha256,
            sha256_hex(&serde_json::to_vec(e).unwrap())
        );
        if !expects_delivery(&world, destination) {
            assert_eq!(receipt.status, "dead_lettered", "{receipt:?}");
            assert_eq!(receipt.reason_code.as_deref(), Some("transform_failed"));
            continue;
        }
        delivered += 1;
        assert_eq!(receipt.status, "delivered", "{receipt:?}");
        assert_eq!(receipt.attempts, 1);
        assert_eq!(receipt.http_status, Some(201));
        assert_eq!(receipt.portal.as_deref(), e["portal"].as_str());
        let reference = receipt
            .reference
            .clone()
            .expect("the authority gave a reference");
        assert!(reference.starts_with("2026-"), "{reference}");

        let requests = world.authority.requests().await.unwrap();
        let mine: Vec<_> = requests
            .iter()
            .filter(|r| r["idempotency_key"] == id)
            .collect();
        assert_eq!(mine.len(), 1, "exactly one request for {id}");
        let r = mine[0];
        assert_eq!(r["submission_id"], id);
        assert_eq!(r["service"], e["service"]);
        assert_eq!(r["attempt"], "1");
        assert_eq!(r["status"], 201);
        let adapter =
            kurier_adapters::find(&world.config.destination(destination).unwrap().adapter).unwrap();
        assert_eq!(
            r["content_type"],
            format!("application/xml; charset={}", adapter.encoding())
        );
        let body = base64::engine::general_purpose::STANDARD
            .decode(r["body_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            receipt.sent_sha256.as_deref(),
            Some(sha256_hex(&body).as_str())
        );
        assert!(body.starts_with(b"<?xml"), "an XML document was delivered");
    }
    assert!(delivered >= 2, "both hzl samples have an adapter");

    // One receipt event per submission, to its portal, in the contract's shape.
    let events = world.receipt_events(envelopes.len(), WAIT).await.unwrap();
    for e in &envelopes {
        let id = e["submission_id"].as_str().unwrap();
        let (routing_key, event) = events
            .iter()
            .find(|(_, ev)| ev["submission_id"] == id)
            .expect("an event per submission");
        assert_eq!(routing_key, e["portal"].as_str().unwrap());
        let receipt = world.await_receipt(id, WAIT).await.unwrap();
        assert_eq!(event["status"], receipt.status.as_str());
        assert_eq!(event["service"], e["service"]);
        assert_eq!(event["destination"], e["destination"]);
        assert_eq!(event["attempts"], receipt.attempts);
        assert_eq!(event["seq"], 1, "the first event of a submission");
        assert!(event["at"].is_string());
        let keys: Vec<&String> = event.as_object().unwrap().keys().collect();
        if receipt.status == "delivered" {
            assert_eq!(
                event["reference"],
                receipt.reference.clone().unwrap().as_str()
            );
            assert!(event.get("reason").is_none());
        } else {
            assert!(event.get("reference").is_none());
            assert_eq!(event["reason"], "transform_failed");
        }
        for k in keys {
            assert!(
                [
                    "submission_id",
                    "status",
                    "service",
                    "destination",
                    "reference",
                    "attempts",
                    "at",
                    "reason",
                    "seq"
                ]
                .contains(&k.as_str()),
                "unexpected field {k} in a receipt event"
            );
        }
    }

    // The same submission published again is not sent again: its receipt
    // event is repeated and the authority sees no second request.
    world.publish_envelope(&envelopes[0]).await.unwrap();
    let again = world.receipt_events(1, WAIT).await.unwrap();
    assert_eq!(again[0].1["submission_id"], envelopes[0]["submission_id"]);
    assert_eq!(again[0].1["status"], "delivered");
    assert_eq!(again[0].1["seq"], 1, "a repeated event keeps its seq");
    // Also a copy that would now be refused (its form emptied): Kurier
    // validates while the duplicate check is in flight, but the receipt's
    // answer comes first; the copy is no dead letter and sends nothing.
    let mut emptied = envelopes[0].clone();
    emptied["form"] = serde_json::json!({});
    world.publish_envelope(&emptied).await.unwrap();
    let again = world.receipt_events(1, WAIT).await.unwrap();
    assert_eq!(again[0].1["submission_id"], envelopes[0]["submission_id"]);
    assert_eq!(again[0].1["status"], "delivered", "{:?}", again[0].1);
    let id = envelopes[0]["submission_id"].as_str().unwrap();
    let store = world.store().await.unwrap();
    assert!(
        store
            .dead_letters_of(&kurier_e2e::sid(id))
            .await
            .unwrap()
            .is_empty()
    );
    let requests = world.authority.requests().await.unwrap();
    assert_eq!(
        requests
            .iter()
            .filter(|r| r["idempotency_key"] == id)
            .count(),
        1
    );
    assert_eq!(world.queue_ready().await.unwrap(), 0);

    // The CLI reads the same receipts.
    let out = world
        .kurier_cli(&["receipts", "show", id, "--json"])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["status"], "delivered");
    let out = world.kurier_cli(&["receipts", "list", "--json"]).unwrap();
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), envelopes.len());

    // What RabbitMQ confirmed leaves the outbox (on SQLite in bulk, within
    // about half a second): no event waits there once the portal has it.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = store.outbox_after(0, 100).await.unwrap();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} receipt events still in the outbox",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A canary that must never be kept: unique per test run.
fn canary(world: &World) -> String {
    format!("kanarie{}", world.tag)
}

fn attachment(document_type: &str, bytes: &[u8]) -> serde_json::Value {
    json!({
        "id": "att-1",
        "filename": "Nachweis.pdf",
        "media_type": "application/pdf",
        "document_type": document_type,
        "sha256": sha256_hex(bytes),
        "content": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

async fn every_reason_code_is_a_dead_letter_that_names_no_value(backend: Backend) {
    let mut options = WorldOptions::new(backend);
    options.policy = "max_attachment_bytes = 1000\nmax_attachments = 2".into();
    options.extra_config = r#"
[[destinations]]
id = "sozialamt-nur-wbs"
adapter = "xsozial-hzl"
services = ["wbs"]
endpoint = "{AUTHORITY}/nur-wbs"
ca_file = "{CA}"
client_cert_file = "{CERT}"
client_key_file = "{KEY}"

[[destinations]]
id = "sozialamt-ablehnend"
adapter = "xsozial-hzl"
endpoint = "{AUTHORITY}/reject/422"
ca_file = "{CA}"
client_cert_file = "{CERT}"
client_key_file = "{KEY}"
"#
    .into();
    let mut world = World::start(options).await.unwrap();
    let canary = canary(&world);
    world.start_kurier().unwrap();

    // Each case: the envelope (with the canary in a name) and its expected code.
    let with_canary = |mut e: serde_json::Value| {
        e["form"]["applicant"]["given_names"] = json!(format!("{canary} Vorname"));
        e
    };
    let mut cases: Vec<(serde_json::Value, &str)> = Vec::new();
    let mut e = with_canary(fresh("hzl-minimal.json"));
    e.as_object_mut().unwrap().remove("portal");
    cases.push((e, "malformed_envelope"));
    let mut e = with_canary(fresh("hzl-minimal.json"));
    e["service"] = json!("kita-gutschein");
    cases.push((e, "unknown_service"));
    let mut e = with_canary(fresh("hzl-minimal.json"));
    e["destination"] = json!("sozialamt-atlantis");
    cases.push((e, "unknown_destination"));
    let mut e = with_canary(fresh("hzl-minimal.json"));
    e["form"]["applicant"]["shoe_size"] = json!(canary.clone());
    e["form"]["bank_account"]["iban"] = json!(format!("{canary}IBAN"));
    cases.push((e, "schema_violation"));
    let mut e = with_canary(fresh("hzl-minimal.json"));
    e["attachments"] = json!([attachment("personalausweis", canary.as_bytes())]);
    cases.push((e, "forbidden_document"));
    let mut e = with_canary(fresh("hzl-minimal.json"));
    e["attachments"] = json!([attachment("mietvertrag", &[b'x'; 1001])]);
    cases.push((e, "attachment_too_large"));
    let mut e = with_canary(fresh("hzl-minimal.json"));
    let mut a = attachment("mietvertrag", canary.as_bytes());
    a["sha256"] = json!(sha256_hex(b"other content"));
    e["attachments"] = json!([a]);
    cases.push((e, "attachment_hash_mismatch"));
    let mut e = with_canary(fresh("hzl-minimal.json"));
    e["destination"] = json!("sozialamt-nur-wbs");
    cases.push((e, "transform_failed"));
    let mut e = with_canary(fresh("hzl-minimal.json"));
    e["destination"] = json!("sozialamt-ablehnend");
    cases.push((e, "authority_rejected"));

    for (e, _) in &cases {
        world.publish_envelope(e).await.unwrap();
    }
    // Bodies that are no envelope at all: recorded by message id, acked.
    let not_json_id = uuid::Uuid::new_v4().to_string();
    world
        .publish(
            "hzl.sozialamt-koeln",
            &not_json_id,
            format!("{{\"name\": \"{canary}").as_bytes(),
        )
        .await
        .unwrap();
    world
        .publish(
            "hzl.sozialamt-koeln",
            &uuid::Uuid::new_v4().to_string(),
            b"[1, 2, 3]",
        )
        .await
        .unwrap();

    let dead = world
        .await_dead_letters(cases.len() + 2, WAIT)
        .await
        .unwrap();
    assert_eq!(dead.len(), cases.len() + 2);
    for (e, code) in &cases {
        let id = e["submission_id"].as_str().unwrap();
        let receipt = world.await_receipt(id, WAIT).await.unwrap();
        assert_eq!(receipt.reason_code.as_deref(), Some(*code), "{receipt:?}");
        let expected_status = if *code == "authority_rejected" {
            "rejected"
        } else {
            "dead_lettered"
        };
        assert_eq!(receipt.status, expected_status);
        let d = dead
            .iter()
            .find(|d| d.submission_id.as_deref() == Some(id))
            .expect("a dead letter per case");
        assert_eq!(d.reason_code, *code);
        assert!(!d.reason_detail.is_empty());
        assert!(
            !d.reason_detail.contains(&canary),
            "{code}: {}",
            d.reason_detail
        );
        if *code == "authority_rejected" {
            assert_eq!(d.http_status, Some(422));
            assert!(d.reason_detail.contains("422"), "{}", d.reason_detail);
        }
    }
    // What must be refused is not kept in any form; what an operator can
    // make deliverable keeps its sealed payload (CONTRACT.md § 4).
    let store = world.store().await.unwrap();
    for (e, code) in &cases {
        let id = e["submission_id"].as_str().unwrap();
        let kept = store.payload_kept(&kurier_e2e::sid(id)).await.unwrap();
        let may = kurier::domain::reason::ReasonCode::parse(code)
            .unwrap()
            .keeps_payload();
        assert_eq!(kept, may, "{code}: payload kept = {kept}");
    }
    assert!(
        !store
            .payload_kept(&kurier_e2e::sid(&not_json_id))
            .await
            .unwrap()
    );
    let schema = dead
        .iter()
        .find(|d| d.reason_code == "schema_violation")
        .unwrap();
    assert!(
        schema
            .reason_detail
            .contains("/form/applicant: unknown field(s) shoe_size"),
        "{}",
        schema.reason_detail
    );
    assert!(
        schema.reason_detail.contains("/form/bank_account/iban"),
        "{}",
        schema.reason_detail
    );
    let not_json = dead
        .iter()
        .find(|d| d.amqp_message_id.as_deref() == Some(not_json_id.as_str()))
        .expect("the undecodable body is recorded under its message id");
    assert_eq!(not_json.reason_code, "malformed_envelope");
    assert_eq!(
        dead.iter()
            .filter(|d| d.reason_code == "malformed_envelope")
            .count(),
        3
    );

    // Only the case meant for the refusing authority reached an authority.
    let requests = world.authority.requests().await.unwrap();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["status"], 422);

    // Receipt events for every case with a portal; none carries the canary.
    let events = world.receipt_events(cases.len() - 1, WAIT).await.unwrap();
    for (_, event) in &events {
        assert!(!event.to_string().contains(&canary));
        assert!(event["reason"].is_string());
    }
    // Nothing loops: the queue is empty and stays empty.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(world.queue_ready().await.unwrap(), 0);

    let out = world
        .kurier_cli(&[
            "dead-letters",
            "list",
            "--reason",
            "forbidden_document",
            "--json",
        ])
        .unwrap();
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 1);
    let kurier = world.kurier.as_mut().unwrap();
    assert_eq!(
        kurier.terminate(Duration::from_secs(15)),
        Some(0),
        "graceful exit"
    );
}

async fn canaries_reach_the_authority_and_nothing_else(backend: Backend) {
    let mut world = World::start(WorldOptions::new(backend)).await.unwrap();
    let canary = canary(&world);
    world.start_kurier().unwrap();

    let mut hzl = fresh("hzl-full.json");
    hzl["form"]["applicant"]["given_names"] = json!(format!("{canary}-Vorname"));
    hzl["form"]["applicant"]["family_name"] = json!(format!("{canary}-Familienname"));
    hzl["form"]["contact"]["email"] = json!(format!("{canary}@example.org"));
    hzl["form"]["situation"]["medical_notes"] = json!(format!("Notiz {canary} & <Typ 2>"));
    hzl["form"]["assets"][1]["note"] = json!(format!("Geschenk {canary}"));
    hzl["form"]["bank_account"]["account_holder"] = json!(format!("{canary} Kontoinhaber"));
    let document = format!("%PDF-1.4 Mietvertrag von {canary} %%EOF");
    hzl["attachments"] = json!([attachment("mietvertrag", document.as_bytes())]);
    let mut minimal = fresh("hzl-minimal.json");
    minimal["form"]["applicant"]["family_name"] = json!(format!("{canary}-Zwei"));
    // One that fails validation, with the canary in the offending field.
    let mut broken = fresh("hzl-minimal.json");
    broken["form"]["applicant"]["date_of_birth"] = json!(canary.clone());

    for e in [&hzl, &minimal, &broken] {
        world.publish_envelope(e).await.unwrap();
    }
    for e in [&hzl, &minimal] {
        let r = world
            .await_receipt(e["submission_id"].as_str().unwrap(), WAIT)
            .await
            .unwrap();
        assert_eq!(r.status, "delivered");
    }
    let r = world
        .await_receipt(broken["submission_id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(r.reason_code.as_deref(), Some("schema_violation"));
    let events = world.receipt_events(3, WAIT).await.unwrap();

    // The authority has them all.
    let requests = world.authority.requests().await.unwrap();
    let bodies: Vec<String> = requests
        .iter()
        .map(|r| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(r["body_base64"].as_str().unwrap())
                .unwrap();
            String::from_utf8(bytes).unwrap()
        })
        .collect();
    let all = bodies.join("\n");
    for expected in [
        format!("{canary}-Vorname"),
        format!("{canary}-Familienname"),
        format!("{canary}@example.org"),
        format!("Notiz {canary} &amp; &lt;Typ 2&gt;"),
        format!("Geschenk {canary}"),
        format!("{canary}-Zwei"),
        base64::engine::general_purpose::STANDARD.encode(document.as_bytes()),
    ] {
        assert!(
            all.contains(&expected),
            "the authority did not get {expected}"
        );
    }

    // Stop Kurier so that everything it wrote is on disk, then search.
    let kurier = world.kurier.as_mut().unwrap();
    assert_eq!(kurier.terminate(Duration::from_secs(15)), Some(0));
    let mut needles = vec![canary.clone()];
    needles.extend(base64_forms(&canary));
    let kept = world.everything_kept().await.unwrap();
    assert!(kept.len() >= 2, "log and database were searched");
    let log = &kept[0].1;
    assert!(
        String::from_utf8_lossy(log).contains("DEBUG"),
        "the log was written at debug level"
    );
    for (name, bytes) in &kept {
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} found in {name}"
            );
        }
    }
    for (_, event) in &events {
        assert!(!event.to_string().contains(&canary));
    }
}

async fn an_unknown_client_or_server_certificate_never_delivers(backend: Backend) {
    // Material from a CA that neither side trusts.
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue = kurier_e2e::pki::Ca::new("Rogue CA").unwrap();
    let rogue_client = rogue.client("kurier").unwrap();
    let rogue_ca = rogue_dir.path().join("rogue-ca.pem");
    let rogue_cert = rogue_dir.path().join("rogue.pem");
    let rogue_key = rogue_dir.path().join("rogue.key");
    std::fs::write(&rogue_ca, rogue.pem()).unwrap();
    std::fs::write(&rogue_cert, &rogue_client.cert_pem).unwrap();
    kurier_e2e::pki::write_key(&rogue_key, &rogue_client.key_pem).unwrap();

    let mut options = WorldOptions::new(backend);
    options.extra_config = format!(
        r#"
[[destinations]]
id = "fremdes-client-zertifikat"
adapter = "xsozial-hzl"
endpoint = "{{AUTHORITY}}/a"
ca_file = "{{CA}}"
client_cert_file = "{cert}"
client_key_file = "{key}"

[[destinations]]
id = "unbekannter-server"
adapter = "xsozial-hzl"
endpoint = "{{AUTHORITY}}/b"
ca_file = "{ca}"
client_cert_file = "{{CERT}}"
client_key_file = "{{KEY}}"
"#,
        cert = rogue_cert.display(),
        key = rogue_key.display(),
        ca = rogue_ca.display(),
    );
    let mut world = World::start(options).await.unwrap();
    world.start_kurier().unwrap();
    let mut ids = Vec::new();
    for destination in ["fremdes-client-zertifikat", "unbekannter-server"] {
        let mut e = fresh("hzl-minimal.json");
        e["destination"] = json!(destination);
        ids.push(e["submission_id"].as_str().unwrap().to_owned());
        world.publish_envelope(&e).await.unwrap();
    }
    // Give Kurier time for several attempts each.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        world.authority.requests().await.unwrap().is_empty(),
        "nothing reached the authority"
    );
    let log = std::fs::read_to_string(world.log_path()).unwrap();
    // An untrusted server certificate fails our side of the handshake; a
    // client certificate the authority does not trust shows (in TLS 1.3) as a
    // connection the server closes. Both are retried, neither delivered.
    let failures = |destination: &str, cause: &str| {
        log.lines()
            .filter(|l| {
                l.contains("delivery attempt failed")
                    && l.contains(destination)
                    && l.contains(cause)
            })
            .count()
    };
    assert!(failures("unbekannter-server", "TLS error") >= 2, "{log}");
    assert!(failures("fremdes-client-zertifikat", "") >= 2, "{log}");
    let store = world.store().await.unwrap();
    for id in &ids {
        assert!(
            store.receipt(&kurier_e2e::sid(id)).await.unwrap().is_none(),
            "no receipt: not finished"
        );
        assert!(
            store.is_parked(&kurier_e2e::sid(id)).await.unwrap(),
            "parked for later attempts"
        );
    }
    // Shutdown acks nothing unfinished: both are parked, sealed, not lost.
    let kurier = world.kurier.as_mut().unwrap();
    assert_eq!(kurier.terminate(Duration::from_secs(20)), Some(0));
    assert_eq!(world.queue_ready().await.unwrap(), 0);
    let parked = store.parked(None, 10).await.unwrap();
    assert_eq!(parked.len(), 2);
    for p in &parked {
        assert!(p.attempts >= 2, "{p:?}");
        assert!(!p.sealed_payload.is_empty());
    }
}
