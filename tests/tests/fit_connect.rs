//! FIT-Connect transport end to end: Kurier delivers through the
//! Submission API double (`fit-connect-authority`), which decrypts with the
//! destination's private key, validates the metadata against the published
//! schema and checks every hash, on both databases, with real RabbitMQ. Each
//! submission is submitted exactly once, whatever faults, lost answers,
//! key rotations or `kill -9` happen on the way, and the API only ever sees
//! ciphertext.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use kurier::delivery::fit_connect::{Awaiting, EventReader};
use kurier_e2e::{
    Backend, Process, World, WorldOptions, canary, doubles, fresh, json, on_both_backends, pki,
};

const WAIT: Duration = Duration::from_secs(60);
const FIT_DESTINATION: &str = "5a0f0b8e-3c1d-4e55-9a53-6a2f7c0d1e01";
const DESTINATIONS: [(&str, &str, &str); 3] = [
    (
        "sozialamt-koeln-fit",
        "xsozial-hzl",
        "urn:de:fim:leika:leistung:99050012104000",
    ),
    (
        "wohnungsamt-dortmund-fit",
        "wbs-nrw",
        "urn:de:fim:leika:leistung:99095005000000",
    ),
    (
        "jobcenter-kreis-offenbach-fit",
        "xfall",
        "urn:de:fim:leika:leistung:99050012104001",
    ),
];

on_both_backends!(
    all_three_services_are_submitted_once_encrypted_and_valid_and_answered_through_the_event_log,
    faults_and_token_refusals_are_retried_into_one_submission,
    lost_answers_never_make_a_second_submitted_submission,
    a_rotated_key_is_used_for_the_next_submission,
    kill9_of_kurier_mid_run_never_submits_twice,
);

/// The running double.
struct FitServer {
    _process: Process,
    https: String,
    control: String,
    key_ca: PathBuf,
    secret_file: PathBuf,
    /// The CA of the API's TLS certificate.
    ca: PathBuf,
}

impl FitServer {
    fn start(dir: &Path, pki: &pki::PkiFiles) -> anyhow::Result<FitServer> {
        let secret_file = dir.join("fit-client.secret");
        kurier_e2e::pki::write_key(&secret_file, "s3cr3t-client-secret\n")?;
        let key_ca = dir.join("fit-key-ca.pem");
        let mut command = Command::new(kurier_e2e::workspace_bin("fit-connect-authority"));
        command
            .arg("--cert")
            .arg(&pki.authority_cert)
            .arg("--key")
            .arg(&pki.authority_key)
            .args(["--client-id", "kurier-sender"])
            .arg("--client-secret-file")
            .arg(&secret_file)
            .args(["--destination-id", FIT_DESTINATION])
            .arg("--key-ca-out")
            .arg(&key_ca);
        for (_, _, service) in DESTINATIONS {
            command.args(["--service", service]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(
                dir.join("fit-connect-authority.log"),
            )?)
            .spawn()
            .context("starting fit-connect-authority")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let ready: serde_json::Value = serde_json::from_str(&line)
            .context("fit-connect-authority did not print its addresses")?;
        Ok(FitServer {
            https: ready["https"].as_str().unwrap_or_default().to_owned(),
            control: ready["control"].as_str().unwrap_or_default().to_owned(),
            key_ca,
            secret_file,
            ca: pki.authority_ca.clone(),
            _process: Process {
                child,
                name: "fit-connect-authority",
            },
        })
    }

    async fn control(&self, method: &str, path: &str, body: &str) -> anyhow::Result<String> {
        doubles::control_request(&self.control, method, path, Some(body.to_owned())).await
    }

    async fn faults(&self, rules: serde_json::Value) {
        self.control("PUT", "/faults", &rules.to_string())
            .await
            .unwrap();
    }

    async fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&self.control("GET", "/stats", "").await.unwrap()).unwrap()
    }

    /// The `[[destinations]]` entry of a Kurier destination over this double.
    fn destination(&self, id: &str, adapter: &str, service: &str) -> String {
        format!(
            r#"
[[destinations]]
id = "{id}"
adapter = "{adapter}"
transport = "fit-connect"
fit_token_url = "https://{https}/token"
fit_submission_api = "https://{https}"
fit_destination_id = "{FIT_DESTINATION}"
fit_client_id = "kurier-sender"
fit_client_secret_file = "{secret}"
fit_service_identifier = "{service}"
fit_service_name = "Leistung {adapter}"
ca_file = "{ca}"
fit_key_ca_file = "{key_ca}"
"#,
            https = self.https,
            secret = self.secret_file.display(),
            ca = self.ca.display(),
            key_ca = self.key_ca.display(),
        )
    }
}

/// A world whose three `-fit` destinations (one per adapter) go through the
/// double.
async fn fit_world(backend: Backend) -> (World, FitServer, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("kurier-fit-")
        .tempdir()
        .unwrap();
    let pki = pki::write_pki(&dir.path().join("certs")).unwrap();
    let server = FitServer::start(dir.path(), &pki).unwrap();
    let mut options = WorldOptions::new(backend);
    options.retry = "circuit_open_secs = 1".into();
    // The event log is read every second (two-stage receipts).
    options.top_config = "report_poll_interval_secs = 1".into();
    options.extra_config = DESTINATIONS
        .iter()
        .map(|(id, adapter, service)| server.destination(id, adapter, service))
        .collect();
    let world = World::start(options).await.unwrap();
    (world, server, dir)
}

fn envelope(sample: &str, destination: &str) -> serde_json::Value {
    let mut e = fresh(sample);
    e["destination"] = json!(destination);
    e
}

fn id_of(e: &serde_json::Value) -> String {
    e["submission_id"].as_str().unwrap().to_owned()
}

fn samples() -> [serde_json::Value; 3] {
    [
        envelope("hzl-full.json", DESTINATIONS[0].0),
        envelope("wbs-full.json", DESTINATIONS[1].0),
        envelope("buergergeld-wba.json", DESTINATIONS[2].0),
    ]
}

/// What the double must always say: nothing invalid, nothing in plain text
/// on the wire, one submitted submission per Kurier submission.
async fn assert_strict_and_once(server: &FitServer, submissions: usize) -> serde_json::Value {
    let stats = server.stats().await;
    assert_eq!(stats["invalid"], json!([]), "{stats}");
    assert_eq!(stats["plaintext_on_wire"], 0, "{stats}");
    assert_eq!(stats["submitted"], submissions, "{stats}");
    let per = stats["per_submission"].as_object().unwrap();
    assert_eq!(per.len(), submissions, "{stats}");
    assert!(
        per.values().all(|n| n == 1),
        "a submission submitted twice: {stats}"
    );
    stats
}

async fn all_three_services_are_submitted_once_encrypted_and_valid_and_answered_through_the_event_log(
    backend: Backend,
) {
    let (mut world, server, _dir) = fit_world(backend).await;
    let secret = canary(&world);
    server
        .control("PUT", "/canary", &json!({"value": secret}).to_string())
        .await
        .unwrap();
    world.start_kurier().unwrap();
    let mut envelopes = samples();
    envelopes[0]["form"]["applicant"]["given_names"] = json!(secret);
    for e in &envelopes {
        world.publish_envelope(e).await.unwrap();
    }
    let store = world.store().await.unwrap();
    let mut awaiting = Vec::new();
    for e in &envelopes {
        let id = id_of(e);
        let r = world.await_receipt(&id, WAIT).await.unwrap();
        assert_eq!(r.status, "delivered", "{r:?}");
        assert_eq!(r.attempts, 1, "{r:?}");
        // The reference is the FIT submission id, kept before any upload.
        let kept = store
            .transport_message_id(
                &kurier_e2e::sid(&id),
                &kurier_e2e::did(e["destination"].as_str().unwrap()),
            )
            .await
            .unwrap()
            .unwrap();
        let a = Awaiting::from_kept(&kurier_e2e::sid(&id), &kept).unwrap();
        assert_eq!(r.reference.as_deref(), Some(a.fit_submission_id.as_str()));
        awaiting.push(a);
    }
    let stats = assert_strict_and_once(&server, 3).await;
    assert_eq!(stats["created"], 3, "{stats}");
    assert_eq!(stats["attachments_uploaded"], 4, "{stats}");
    // The canary travelled, inside the encrypted data only.
    assert_eq!(stats["canary_decrypted"], 1, "{stats}");
    let events = world.receipt_events(3, WAIT).await.unwrap();
    assert!(events.iter().all(|(_, e)| e["status"] == "delivered"));
    world
        .assert_nothing_kept_contains(&secret, "after FIT-Connect delivery")
        .await;

    // The authority answers later, in the case's event log: the reader sees
    // nothing yet, then one acceptance and one rejection with codes only.
    let reader = event_reader(&server);
    assert_eq!(reader.poll(&awaiting).await.unwrap(), vec![]);
    let decide = |reference: &str, accept: bool| {
        json!({"sender_reference": reference, "accept": accept, "problems": ["missing-attachment", "hash-mismatch"]}).to_string()
    };
    server
        .control("POST", "/decide", &decide(&awaiting[0].submission_id, true))
        .await
        .unwrap();
    server
        .control(
            "POST",
            "/decide",
            &decide(&awaiting[1].submission_id, false),
        )
        .await
        .unwrap();
    let mut answers = reader.poll(&awaiting).await.unwrap();
    answers.sort();
    let mut expected = vec![
        (awaiting[0].submission_id.clone(), true, vec![]),
        (
            awaiting[1].submission_id.clone(),
            false,
            vec!["missing-attachment".to_owned(), "hash-mismatch".to_owned()],
        ),
    ];
    expected.sort();
    assert_eq!(answers, expected);
    // Kurier's poller makes them the second receipt events (seq 2), the
    // rejection with the authority's codes; the third stays awaiting.
    let mut second = world.receipt_events(2, WAIT).await.unwrap();
    second.sort_by_key(|(_, e)| e["status"].as_str().unwrap_or_default().to_owned());
    let (accepted, rejected) = (&second[0].1, &second[1].1);
    assert_eq!(accepted["status"], "accepted_by_authority", "{second:?}");
    assert_eq!(
        accepted["submission_id"],
        awaiting[0].submission_id.as_str()
    );
    assert_eq!(accepted["seq"], 2, "{accepted}");
    assert_eq!(rejected["status"], "rejected_by_authority", "{second:?}");
    assert_eq!(
        rejected["submission_id"],
        awaiting[1].submission_id.as_str()
    );
    assert_eq!(
        rejected["reason_codes"],
        json!(["missing-attachment", "hash-mismatch"])
    );
    let status = world
        .admin_request("GET", "/api/status", true, None)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["awaiting_answer"], 1, "{status}");
    // An event about another case is not taken for this one.
    let crossed = [Awaiting {
        case_id: awaiting[1].case_id.clone(),
        ..awaiting[0].clone()
    }];
    assert_eq!(reader.poll(&crossed).await.unwrap(), vec![]);
    world
        .kurier
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(20));
    let log = std::fs::read_to_string(world.log_path()).unwrap_or_default();
    assert!(!log.contains(&secret), "the canary is in Kurier's log");
}

/// An event reader for the double, as the two-stage receipt poller builds it.
fn event_reader(server: &FitServer) -> EventReader {
    let config: kurier::config::DestinationConfig = serde_json::from_value(json!({
        "id": "sozialamt-koeln-fit",
        "adapter": "xsozial-hzl",
        "transport": "fit-connect",
        "fit_token_url": format!("https://{}/token", server.https),
        "fit_submission_api": format!("https://{}", server.https),
        "fit_destination_id": FIT_DESTINATION,
        "fit_client_id": "kurier-sender",
        "fit_client_secret_file": server.secret_file,
        "fit_service_identifier": DESTINATIONS[0].2,
        "ca_file": server.ca,
    }))
    .unwrap();
    kurier::delivery::tls::install_crypto_provider();
    EventReader::for_destination(&config, &kurier::config::RetryConfig::default())
        .unwrap()
        .unwrap()
}

async fn faults_and_token_refusals_are_retried_into_one_submission(backend: Backend) {
    let (mut world, server, _dir) = fit_world(backend).await;
    server
        .faults(json!([
            {"operation": "token", "status": 401, "times": 1},
            {"operation": "create", "status": 503, "retry_after": 1, "times": 1},
            {"operation": "attachment", "status": 500, "times": 1},
            {"operation": "submit", "status": 502, "times": 1},
        ]))
        .await;
    world.start_kurier().unwrap();
    let e = envelope("wbs-full.json", DESTINATIONS[1].0);
    world.publish_envelope(&e).await.unwrap();
    let r = world.await_receipt(&id_of(&e), WAIT).await.unwrap();
    assert_eq!(r.status, "delivered", "{r:?}");
    assert_eq!(r.attempts, 5, "{r:?}");
    let stats = assert_strict_and_once(&server, 1).await;
    // One announcement (the 503 came before it was made), resumed after the
    // attachment and submit faults.
    assert_eq!(stats["created"], 1, "{stats}");
    assert_eq!(stats["tokens_refused"], 1, "{stats}");
    assert_eq!(stats["faults_answered"], 4, "{stats}");
    world
        .kurier
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(20));
}

async fn lost_answers_never_make_a_second_submitted_submission(backend: Backend) {
    let (mut world, server, _dir) = fit_world(backend).await;
    // a: the API creates the submission but the answer is lost — Kurier
    // never learns its id, announces a new one, and the first is never
    // submitted (the API deletes it; the authority never sees it).
    // b: the API takes the submit but the answer is lost — Kurier resumes
    // the kept submission and hears 409: already delivered.
    server
        .faults(json!([{"operation": "create", "status": 500, "times": 1, "take": true}]))
        .await;
    world.start_kurier().unwrap();
    let a = envelope("hzl-full.json", DESTINATIONS[0].0);
    world.publish_envelope(&a).await.unwrap();
    let ra = world.await_receipt(&id_of(&a), WAIT).await.unwrap();
    assert_eq!(ra.status, "delivered", "{ra:?}");
    let stats = assert_strict_and_once(&server, 1).await;
    assert_eq!(stats["created"], 2, "one announcement abandoned: {stats}");
    server
        .faults(json!([{"operation": "submit", "status": 500, "times": 1, "take": true}]))
        .await;
    let b = envelope("buergergeld-wba.json", DESTINATIONS[2].0);
    world.publish_envelope(&b).await.unwrap();
    let rb = world.await_receipt(&id_of(&b), WAIT).await.unwrap();
    assert_eq!(rb.status, "delivered", "{rb:?}");
    assert_eq!(
        rb.http_status,
        Some(409),
        "delivered as already accepted: {rb:?}"
    );
    let stats = assert_strict_and_once(&server, 2).await;
    assert_eq!(stats["created"], 3, "b was announced once: {stats}");
    assert_eq!(stats["duplicates_refused"], 1, "{stats}");
    // b's attachments were uploaded once: the retry knew they were there.
    assert_eq!(stats["attachments_uploaded"], 1 + 2, "{stats}");
    world
        .kurier
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(20));
}

async fn a_rotated_key_is_used_for_the_next_submission(backend: Backend) {
    let (mut world, server, _dir) = fit_world(backend).await;
    world.start_kurier().unwrap();
    let first = envelope("hzl-minimal.json", DESTINATIONS[0].0);
    world.publish_envelope(&first).await.unwrap();
    assert_eq!(
        world
            .await_receipt(&id_of(&first), WAIT)
            .await
            .unwrap()
            .status,
        "delivered"
    );
    server.control("POST", "/rotate-key", "").await.unwrap();
    let second = envelope("hzl-minimal.json", DESTINATIONS[0].0);
    world.publish_envelope(&second).await.unwrap();
    assert_eq!(
        world
            .await_receipt(&id_of(&second), WAIT)
            .await
            .unwrap()
            .status,
        "delivered"
    );
    let stats = assert_strict_and_once(&server, 2).await;
    assert_eq!(
        stats["keys_used"],
        json!({"encryption-key-1": 1, "encryption-key-2": 1}),
        "{stats}"
    );
    world
        .kurier
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(20));
}

async fn kill9_of_kurier_mid_run_never_submits_twice(backend: Backend) {
    let (mut world, server, _dir) = fit_world(backend).await;
    // Slow answers: kills land between announcement, uploads, submit and
    // the receipt's commit.
    server
        .control("PUT", "/delay", r#"{"ms": 30}"#)
        .await
        .unwrap();
    let n = 45;
    let envelopes: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let (sample, dest) = [
                ("hzl-full.json", DESTINATIONS[0].0),
                ("wbs-full.json", DESTINATIONS[1].0),
                ("buergergeld-wba.json", DESTINATIONS[2].0),
            ][i % 3];
            envelope(sample, dest)
        })
        .collect();
    world.publish_many(&envelopes).await.unwrap();
    world.start_kurier().unwrap();
    for k in 0..3 {
        tokio::time::sleep(Duration::from_millis(500 + 300 * k)).await;
        world.kurier.as_mut().unwrap().kill9();
        world.start_kurier().unwrap();
    }
    let store = world.store().await.unwrap();
    let ids: Vec<String> = envelopes.iter().map(id_of).collect();
    doubles::await_all_delivered(&store, &ids, Duration::from_secs(240)).await;
    let stats = assert_strict_and_once(&server, n).await;
    println!(
        "{backend:?}: 3 kills, {n} submissions, each submitted once; {} announced, {} submits answered 409",
        stats["created"], stats["duplicates_refused"]
    );
    world
        .kurier
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(20));
}

/// Throughput over FIT-Connect on this machine (`--release --ignored`):
/// prints a FIGURE line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --release -p kurier-e2e --test fit_connect -- --ignored --nocapture"]
async fn figure_submissions_per_second_over_fit_connect() {
    let (mut world, server, _dir) = fit_world(Backend::Sqlite).await;
    let n = 300;
    let envelopes: Vec<serde_json::Value> = (0..n)
        .map(|_| envelope("hzl-minimal.json", DESTINATIONS[0].0))
        .collect();
    world.publish_many(&envelopes).await.unwrap();
    world.start_kurier().unwrap();
    let store = world.store().await.unwrap();
    let rate = doubles::receipt_rate(&store, n, Duration::from_secs(600)).await;
    assert_strict_and_once(&server, n).await;
    println!(
        "FIGURE fit-connect submissions/s = {rate:.0} ({n} hzl submissions, SQLite; per submission: token (cached), destination and key lookup, announce, RSA-4096 OAEP + AES-256-GCM JWEs, submit; the double decrypts and schema-validates each; same 2-core machine)"
    );
    world
        .kurier
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(20));
}
