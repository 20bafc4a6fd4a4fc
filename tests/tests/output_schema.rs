//! Output validation, end to end: a document its adapter's XSD refuses is the
//! dead letter `output_schema_violation`, names the adapter and the element
//! but no value, and never reaches the authority.

use std::time::Duration;

use kurier_e2e::{Backend, World, WorldOptions, fresh, json, on_both_backends};

const WAIT: Duration = Duration::from_secs(60);

on_both_backends!(a_document_its_xsd_refuses_is_dead_lettered_and_never_sent);

/// The postcode type of the xsozial-hzl XSD, and a stricter one that no
/// German postcode satisfies.
const POSTCODE_TYPE: &str = r#"<xs:simpleType name="Postleitzahl">
    <xs:restriction base="xs:string"><xs:pattern value="[0-9]{5}"/></xs:restriction>"#;
const STRICTER_POSTCODE_TYPE: &str = r#"<xs:simpleType name="Postleitzahl">
    <xs:restriction base="xs:string"><xs:pattern value="[0-9]{6}"/></xs:restriction>"#;

/// A copy of `schemas/xml/` whose xsozial-hzl XSD wants six-digit postcodes.
fn stricter_xsd_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("kurier-xsd-")
        .tempdir()
        .unwrap();
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/xml");
    for entry in std::fs::read_dir(&schemas).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "xsd") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let hzl = dir.path().join("xsozial-hzl.xsd");
    let text = std::fs::read_to_string(&hzl).unwrap();
    assert_eq!(
        text.matches(POSTCODE_TYPE).count(),
        1,
        "the xsozial-hzl XSD types postcodes as five digits"
    );
    std::fs::write(&hzl, text.replace(POSTCODE_TYPE, STRICTER_POSTCODE_TYPE)).unwrap();
    dir
}

async fn a_document_its_xsd_refuses_is_dead_lettered_and_never_sent(backend: Backend) {
    let xsd_dir = stricter_xsd_dir();
    let mut options = WorldOptions::new(backend);
    options.top_config = format!("xsd_dir = \"{}\"", xsd_dir.path().display());
    let mut world = World::start(options).await.unwrap();
    let canary = format!("kanarie{}", world.tag);
    world.start_kurier().unwrap();

    // A valid submission whose document the stricter XSD refuses (postcode
    // 51063), with the canary in the family name.
    let mut hzl = fresh("hzl-minimal.json");
    hzl["form"]["applicant"]["family_name"] = json!(format!("{canary}-Familienname"));
    assert_eq!(hzl["form"]["contact"]["postcode"], "51063");
    // Another adapter's XSD from the same directory still lets its
    // (ISO-8859-15) document through.
    let wbs = fresh("wbs-full.json");
    world.publish_envelope(&hzl).await.unwrap();
    world.publish_envelope(&wbs).await.unwrap();

    let hzl_id = hzl["submission_id"].as_str().unwrap();
    let receipt = world.await_receipt(hzl_id, WAIT).await.unwrap();
    assert_eq!(receipt.status, "dead_lettered", "{receipt:?}");
    assert_eq!(
        receipt.reason_code.as_deref(),
        Some("output_schema_violation")
    );
    assert_eq!(receipt.sent_sha256, None, "nothing was sent");
    let wbs_receipt = world
        .await_receipt(wbs["submission_id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(wbs_receipt.status, "delivered", "{wbs_receipt:?}");

    let dead_letters = world.await_dead_letters(1, WAIT).await.unwrap();
    assert_eq!(dead_letters.len(), 1);
    let dead_letter = &dead_letters[0];
    assert_eq!(dead_letter.submission_id.as_deref(), Some(hzl_id));
    assert_eq!(dead_letter.reason_code, "output_schema_violation");
    assert_eq!(dead_letter.destination.as_deref(), Some("sozialamt-koeln"));
    let detail = &dead_letter.reason_detail;
    assert_eq!(receipt.reason_detail.as_deref(), Some(detail.as_str()));
    assert!(detail.contains("xsozial-hzl"), "{detail}");
    assert!(detail.contains("element postleitzahl"), "{detail}");
    assert!(detail.contains("pattern"), "{detail}");
    for value in [
        "51063",
        "Familienname",
        &canary,
        "Kemal",
        "Keupstra",
        "Köln",
    ] {
        assert!(!detail.contains(value), "{value} in {detail}");
    }

    // The authority got the wbs document only.
    let requests = world.authority.requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r["idempotency_key"] != hzl_id),
        "the refused document reached the authority"
    );
    assert_eq!(requests.len(), 1, "{requests:?}");

    // The portal hears why, without a value.
    let events = world.receipt_events(2, WAIT).await.unwrap();
    let (_, event) = events
        .iter()
        .find(|(_, e)| e["submission_id"] == hzl_id)
        .expect("a receipt event for the refused submission");
    assert_eq!(event["status"], "dead_lettered");
    assert_eq!(event["reason"], "output_schema_violation");
    assert!(!event.to_string().contains(&canary));

    // Nothing Kurier keeps holds the canary in the clear: not the log, not
    // the database (the dead letter's payload is sealed).
    let kurier = world.kurier.as_mut().unwrap();
    assert_eq!(kurier.terminate(Duration::from_secs(15)), Some(0));
    for (name, bytes) in world.everything_kept().await.unwrap() {
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "the canary is in {name}"
        );
    }
}

/// A broken `xsd_dir` is named by `kurier check-config`, before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_compiles_the_xsds_of_xsd_dir() {
    let xsd_dir = stricter_xsd_dir();
    std::fs::write(xsd_dir.path().join("wbs-nrw.xsd"), "<xs:schema").unwrap();
    let mut options = WorldOptions::new(Backend::Sqlite);
    options.top_config = format!("xsd_dir = \"{}\"", xsd_dir.path().display());
    let world = World::start(options).await.unwrap();
    let output = world.kurier_cli(&["check-config"]).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("wbs-nrw"), "{stderr}");
    assert!(stderr.contains("does not compile"), "{stderr}");

    std::fs::remove_file(xsd_dir.path().join("wbs-nrw.xsd")).unwrap();
    let output = world.kurier_cli(&["check-config"]).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("cannot read"), "{stderr}");

    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/xml/wbs-nrw.xsd"),
        xsd_dir.path().join("wbs-nrw.xsd"),
    )
    .unwrap();
    let output = world.kurier_cli(&["check-config"]).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
