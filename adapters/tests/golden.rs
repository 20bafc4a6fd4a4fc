//! Golden tests: every adapter renders the shared samples
//! (`tests/samples/`) and its own edge cases (`adapters/tests/cases/`) with a
//! fixed render context, byte for byte equal to the files under
//! `adapters/tests/golden/<adapter>/`; every golden file is valid against the
//! adapter's XSD; every value of a submission can be found in its document.
//!
//! After an intended change of the output: `UPDATE_GOLDEN=1 cargo test -p
//! kurier-adapters --test golden`, then read the diff of the golden files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use kurier_adapters::{Adapter, Attachment, Party, RenderContext, RenderError, Submission, find};
use quick_xml::XmlVersion;
use quick_xml::events::Event;
use quick_xml::reader::Reader;
use serde_json::Value;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// The render context of every golden file. The names hold characters that
/// need escaping, so the header's escaping is covered too.
const CONTEXT: RenderContext<'static> = RenderContext {
    message_id: "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b",
    created_at: "2026-11-23T10:15:00Z",
    recipient: Party {
        id: "bth:053150000000",
        name: "Stadt Köln – Amt für Soziales, Arbeit & Senioren",
    },
    sender: Party {
        id: "bth:kurier-relay-nrw",
        name: "Kurier <Relay> NRW",
    },
};

/// One input of the golden tests.
struct Case {
    adapter: &'static str,
    /// File stem: the golden file is `golden/<adapter>/<name>.xml`.
    name: String,
    path: PathBuf,
}

fn sample(name: &str) -> PathBuf {
    Path::new(MANIFEST)
        .join("../tests/samples")
        .join(format!("{name}.json"))
}

/// The shared samples and our cases (`cases/<prefix>*.json`) of one adapter.
fn cases_of(adapter: &'static str, samples: &[&str], prefix: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = samples
        .iter()
        .map(|name| Case {
            adapter,
            name: (*name).to_owned(),
            path: sample(name),
        })
        .collect();
    let dir = Path::new(MANIFEST).join("tests/cases");
    let mut own: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("adapters/tests/cases exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    own.sort();
    cases.extend(own.into_iter().map(|path| Case {
        adapter,
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        path,
    }));
    cases
}

fn hzl_cases() -> Vec<Case> {
    cases_of("xsozial-hzl", &["hzl-full", "hzl-minimal"], "hzl-")
}

fn xfall_cases() -> Vec<Case> {
    cases_of(
        "xfall",
        &["buergergeld-wba", "hzl-full", "wbs-full"],
        "xfall-",
    )
}

fn wbs_cases() -> Vec<Case> {
    cases_of("wbs-nrw", &["wbs-full"], "wbs-")
}

fn all_cases() -> Vec<Case> {
    let mut cases = hzl_cases();
    cases.extend(xfall_cases());
    cases.extend(wbs_cases());
    cases
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn attachments(envelope: &Value) -> Vec<Attachment<'_>> {
    let Some(list) = envelope.get("attachments").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|a| {
            let field = |k: &str| a[k].as_str().unwrap_or_else(|| panic!("attachment {k}"));
            let content = field("content");
            let size = base64::engine::general_purpose::STANDARD
                .decode(content)
                .expect("attachment content is base64")
                .len();
            Attachment {
                id: field("id"),
                filename: field("filename"),
                media_type: field("media_type"),
                document_type: field("document_type"),
                sha256: field("sha256"),
                size: size as u64,
                content_base64: content,
            }
        })
        .collect()
}

fn submission<'a>(envelope: &'a Value, attachments: &'a [Attachment<'a>]) -> Submission<'a> {
    let field = |k: &str| {
        envelope[k]
            .as_str()
            .unwrap_or_else(|| panic!("envelope {k}"))
    };
    Submission {
        submission_id: field("submission_id"),
        service: field("service"),
        destination: field("destination"),
        portal: field("portal"),
        submitted_at: field("submitted_at"),
        applicant_ref: envelope.get("applicant_ref").and_then(Value::as_str),
        form: &envelope["form"],
        attachments,
    }
}

fn adapter(name: &str) -> &'static dyn Adapter {
    find(name).unwrap_or_else(|| panic!("adapter {name} is registered"))
}

fn render(adapter_name: &str, envelope: &Value) -> Result<Vec<u8>, RenderError> {
    let attachments = attachments(envelope);
    let submission = submission(envelope, &attachments);
    let mut out = Vec::new();
    adapter(adapter_name).render(&submission, &CONTEXT, &mut out)?;
    Ok(out)
}

/// The document as text, decoded from the adapter's encoding.
fn decode(adapter_name: &str, bytes: &[u8]) -> String {
    match adapter(adapter_name).encoding() {
        "UTF-8" => String::from_utf8(bytes.to_vec()).expect("UTF-8 output"),
        "ISO-8859-15" => kurier_adapters::iso8859_15::decode(bytes),
        other => panic!("no decoder for {other}"),
    }
}

fn golden_path(case: &Case) -> PathBuf {
    Path::new(MANIFEST)
        .join("tests/golden")
        .join(case.adapter)
        .join(format!("{}.xml", case.name))
}

#[test]
fn every_case_renders_exactly_its_golden_file() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for case in all_cases() {
        let output = render(case.adapter, &load(&case.path))
            .unwrap_or_else(|e| panic!("{}/{}: {e}", case.adapter, case.name));
        let path = golden_path(&case);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &output).unwrap();
            continue;
        }
        match std::fs::read(&path) {
            Ok(golden) if golden == output => {}
            Ok(golden) => {
                let line = golden
                    .split(|&b| b == b'\n')
                    .zip(output.split(|&b| b == b'\n'))
                    .position(|(a, b)| a != b)
                    .map_or(0, |i| i + 1);
                failures.push(format!(
                    "{} differs from the output (first at line {line})",
                    path.display()
                ));
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nRun with UPDATE_GOLDEN=1 after an intended change and review the diff.",
        failures.join("\n")
    );
}

#[test]
fn every_golden_file_is_valid_against_its_xsd() {
    let schemas = Path::new(MANIFEST).join("../schemas/xml");
    for adapter in kurier_adapters::REGISTRY {
        let dir = Path::new(MANIFEST)
            .join("tests/golden")
            .join(adapter.name());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "xml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no golden files for {}", adapter.name());
        let xsd = schemas.join(adapter.xsd());
        let output = xmllint(&xsd, &files, None);
        assert!(
            output.status.success(),
            "{} against {}:\n{}",
            adapter.name(),
            xsd.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Runs `xmllint --noout --schema XSD` on `files`, or on `stdin` if given.
/// Fails (never skips) when xmllint is not installed.
fn xmllint(xsd: &Path, files: &[PathBuf], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut command = Command::new("xmllint");
    command.arg("--noout").arg("--schema").arg(xsd);
    match stdin {
        Some(_) => command.arg("-").stdin(Stdio::piped()),
        None => command.args(files).stdin(Stdio::null()),
    };
    let mut child = match command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "xmllint is not installed: install Debian's libxml2-utils \
             (apt-get install libxml2-utils); the XSD check must not be skipped"
        ),
        Err(e) => panic!("xmllint: {e}"),
    };
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input).expect("write to xmllint");
    }
    child.wait_with_output().expect("xmllint runs")
}

fn schema(name: &str) -> PathBuf {
    Path::new(MANIFEST).join("../schemas/xml").join(name)
}

#[test]
fn the_hzl_xsd_refuses_what_the_form_would_refuse() {
    let broken: &[(&str, &str, &str)] = &[
        ("unknown sex code", "<code>w</code>", "<code>f</code>"),
        ("short postcode", ">50674<", ">5067<"),
        (
            "dangling person ref",
            "<xsb:personID>p1</xsb:personID>\n          <xsb:einkommensart",
            "<xsb:personID>p9</xsb:personID>\n          <xsb:einkommensart",
        ),
        ("one decimal", ">612.37<", ">612.3<"),
        ("impossible date", ">1961-03-14<", ">1961-02-30<"),
        ("date with time zone", ">1961-03-14<", ">1961-03-14Z<"),
        (
            "wrong list version",
            "familienstand\" listVersionID=\"1\"",
            "familienstand\" listVersionID=\"2\"",
        ),
        (
            "wrong list URI",
            "codeliste:turnus\"",
            "codeliste:intervall\"",
        ),
        (
            "declaration not made",
            "<xsb:belehrungZurKenntnisGenommen>true<",
            "<xsb:belehrungZurKenntnisGenommen>false<",
        ),
        (
            "lowercase IBAN",
            ">DE02370501980001802057<",
            ">de02370501980001802057<",
        ),
        (
            "no application date",
            "<xsb:antragsDatum>2026-11-20</xsb:antragsDatum>",
            "",
        ),
        (
            "no bank account",
            "<xsb:iban>DE02370501980001802057</xsb:iban>",
            "",
        ),
        (
            "empty family name",
            "<xsb:name>Müller-Lüdenscheidt</xsb:name>",
            "<xsb:name></xsb:name>",
        ),
        (
            "qualified header",
            "<nachrichtenkopf.g2g>",
            "<xsb:nachrichtenkopf.g2g>",
        ),
        (
            "wrong standard version",
            "version=\"2.4.0\"",
            "version=\"2.5.0\"",
        ),
        (
            "misplaced base64 padding",
            "<xsb:inhalt>JVBER",
            "<xsb:inhalt>JV=BER",
        ),
        ("wrong hash length", "fe269af4c7d07d3f", "fe269af4c7d07d3"),
    ];
    assert_xsd_refuses("xsozial-hzl", "hzl-full", broken);
}

/// Takes the golden file `case` of `adapter` (valid), breaks it in each of the
/// ways given as (what, from, to), and expects the adapter's XSD to refuse
/// every broken copy. The golden file is UTF-8 for this purpose even where
/// the adapter's encoding is not, so the copies say UTF-8.
fn assert_xsd_refuses(adapter_name: &str, case: &str, broken: &[(&str, &str, &str)]) {
    let bytes = std::fs::read(golden_path(&Case {
        adapter: adapter(adapter_name).name(),
        name: case.into(),
        path: PathBuf::new(),
    }))
    .unwrap();
    let golden = decode(adapter_name, &bytes).replacen(
        &format!("encoding=\"{}\"", adapter(adapter_name).encoding()),
        "encoding=\"UTF-8\"",
        1,
    );
    let xsd = schema(adapter(adapter_name).xsd());
    let output = xmllint(&xsd, &[], Some(golden.as_bytes()));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (what, from, to) in broken {
        assert!(
            golden.contains(from),
            "{what}: pattern not in the golden file"
        );
        let document = golden.replacen(from, to, 1);
        let output = xmllint(&xsd, &[], Some(document.as_bytes()));
        assert!(
            !output.status.success(),
            "{}: the XSD accepts a document with {what}",
            adapter_name
        );
    }
}

#[test]
fn the_wbs_xsd_refuses_what_the_form_would_refuse() {
    assert_xsd_refuses(
        "wbs-nrw",
        "wbs-turkish-polish",
        &[
            ("eleven rooms", "<raeume>10</raeume>", "<raeume>11</raeume>"),
            ("no rooms", "<raeume>1</raeume>", "<raeume>0</raeume>"),
            (
                "unknown application kind",
                "<code>02</code>\n    </antragsart>",
                "<code>04</code>\n    </antragsart>",
            ),
            (
                "dangling person ref",
                "<personID>p3</personID>\n      <einkommensart",
                "<personID>p7</personID>\n      <einkommensart",
            ),
            (
                "a circumstance twice",
                "<code>02</code>\n    </besondererUmstand>",
                "<code>01</code>\n    </besondererUmstand>",
            ),
            (
                "unqualified code",
                "<code>TR</code>",
                "<code xmlns=\"\">TR</code>",
            ),
            ("no nationality", "<code>TR</code>", "<code>T</code>"),
            ("money with one decimal", ">9600.00<", ">9600.0<"),
        ],
    );
}

#[test]
fn the_xfall_xsd_refuses_broken_fields() {
    assert_xsd_refuses(
        "xfall",
        "xfall-json-types",
        &[
            ("an unknown type", "typ=\"number\"", "typ=\"integer\""),
            (
                "a pointer outside the form",
                "zeiger=\"/form/bruch\"",
                "zeiger=\"/bruch\"",
            ),
            (
                "a pointer with a bare tilde",
                "zeiger=\"/form/bruch\"",
                "zeiger=\"/form/br~uch\"",
            ),
            (
                "two fields with one pointer",
                "zeiger=\"/form/bruch\"",
                "zeiger=\"/form/ganzzahl\"",
            ),
            (
                "a value and members",
                "<wert>tief</wert>",
                "<wert>tief</wert><feld name=\"x\" zeiger=\"/form/x\" typ=\"null\"/>",
            ),
            (
                "no creation time",
                "<erstellungszeitpunkt>2026-11-23T10:15:00Z</erstellungszeitpunkt>",
                "",
            ),
        ],
    );
}

/// The codes an XSD enumerates for each fixed listURI.
fn xsd_code_lists(xsd: &str) -> Vec<(String, Vec<String>)> {
    let mut reader = Reader::from_str(xsd);
    // One entry per open xs:complexType: its fixed listURI and enumerations.
    let mut open: Vec<(Option<String>, Vec<String>)> = Vec::new();
    let mut lists = Vec::new();
    loop {
        let event = reader.read_event().expect("well-formed XSD");
        let (start, is_empty) = match &event {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::End(end) => {
                if end.name().as_ref() == "xs:complexType"
                    && let Some((Some(uri), codes)) = open.pop()
                {
                    lists.push((uri, codes));
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let attr = |key: &str| {
            start.try_get_attribute(key).expect("attribute").map(|a| {
                a.normalized_value(XmlVersion::Implicit1_0)
                    .unwrap()
                    .into_owned()
            })
        };
        match start.name().as_ref() {
            "xs:complexType" if !is_empty => open.push((None, Vec::new())),
            "xs:attribute" if attr("name").as_deref() == Some("listURI") => {
                if let (Some(top), Some(fixed)) = (open.last_mut(), attr("fixed")) {
                    top.0 = Some(fixed);
                }
            }
            "xs:enumeration" => {
                if let (Some(top), Some(value)) = (open.last_mut(), attr("value")) {
                    top.1.push(value);
                }
            }
            _ => {}
        }
    }
    lists
}

#[test]
fn the_xsds_enumerate_exactly_the_codes_of_our_code_lists() {
    use kurier_adapters::codes::ALL;
    use kurier_adapters::xml::Codes;
    for adapter in kurier_adapters::REGISTRY {
        let xsd = std::fs::read_to_string(schema(adapter.xsd())).unwrap();
        for (uri, enumerated) in xsd_code_lists(&xsd) {
            let list = ALL
                .iter()
                .find(|l| l.uri == uri)
                .unwrap_or_else(|| panic!("{}: {uri} is not in codes.rs", adapter.xsd()));
            match &list.codes {
                Codes::Closed(codes) => {
                    let ours: Vec<&str> = codes.iter().map(|c| c.code).collect();
                    if uri.starts_with("urn:xoev-de:kurier:") || !enumerated.is_empty() {
                        assert_eq!(enumerated, ours, "{}: codes of {uri}", adapter.xsd());
                    }
                }
                Codes::Iso3166Alpha2 => assert!(enumerated.is_empty(), "{uri}"),
            }
        }
    }
}

/// What a parser reads from a document: the text of every element (entity and
/// character references resolved, indentation-only text left out), every
/// attribute value, and the (listURI, code) pair of every coded value.
#[derive(Default)]
struct Parsed {
    texts: HashSet<String>,
    attributes: HashSet<String>,
    coded: HashSet<(String, String)>,
}

fn parse(xml: &str) -> Parsed {
    let mut reader = Reader::from_str(xml);
    let mut parsed = Parsed::default();
    let mut text = String::new();
    // The listURI (if any) of each open element, to pair a `code` child with
    // its list.
    let mut open: Vec<Option<String>> = Vec::new();
    loop {
        let event = reader.read_event().expect("well-formed XML");
        if matches!(
            event,
            Event::Start(_) | Event::End(_) | Event::Empty(_) | Event::Eof
        ) {
            let current = std::mem::take(&mut text);
            if !current.trim().is_empty() {
                if let Event::End(end) = &event {
                    let parent = open.len().checked_sub(2).and_then(|i| open[i].clone());
                    if let ("code", Some(uri)) = (end.name().as_ref(), parent) {
                        parsed.coded.insert((uri, current.clone()));
                    }
                }
                parsed.texts.insert(current);
            }
        }
        match event {
            Event::Start(start) => open.push(attributes(&start, &mut parsed)),
            Event::Empty(start) => {
                attributes(&start, &mut parsed);
            }
            Event::End(_) => {
                open.pop();
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(c) => text.push_str(&c.into_inner()),
            Event::GeneralRef(r) => match r.resolve_char_ref().expect("character reference") {
                Some(c) => text.push(c),
                None => {
                    let name = r.xml10_content();
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .unwrap_or_else(|| panic!("undeclared entity {name}"));
                    text.push_str(resolved);
                }
            },
            Event::Eof => break,
            _ => {}
        }
    }
    parsed
}

/// Collects the attribute values of a start tag, returns its listURI.
fn attributes(start: &quick_xml::events::BytesStart<'_>, parsed: &mut Parsed) -> Option<String> {
    let mut list = None;
    for attribute in start.attributes() {
        let attribute = attribute.expect("attribute");
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .expect("attribute value")
            .into_owned();
        if attribute.key.as_ref() == "listURI" {
            list = Some(value.clone());
        }
        parsed.attributes.insert(value);
    }
    list
}

/// Every leaf of a JSON value with its JSON pointer.
fn leaves<'v>(value: &'v Value, pointer: &mut String, out: &mut Vec<(String, &'v Value)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                leaves(child, pointer, out);
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{index}"));
                leaves(child, pointer, out);
                pointer.truncate(len);
            }
        }
        leaf => out.push((pointer.clone(), leaf)),
    }
}

fn envelope_leaves(envelope: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    leaves(envelope, &mut String::new(), &mut out);
    out
}

/// Looks for every leaf of every case's envelope in its rendered document:
/// strings verbatim (or as the code / person id `leaf` says), numbers and
/// booleans as JSON writes them, and each attachment's size.
fn assert_every_value_is_found(cases: Vec<Case>, leaf: fn(&str) -> kurier_adapters::xml::Leaf) {
    use kurier_adapters::xml::{Leaf, person_id};
    for case in cases {
        let envelope = load(&case.path);
        let xml = decode(case.adapter, &render(case.adapter, &envelope).unwrap());
        let parsed = parse(&xml);
        let mut missing = Vec::new();
        for (pointer, value) in envelope_leaves(&envelope) {
            let found = match value {
                Value::String(s) => match leaf(&pointer) {
                    Leaf::Verbatim => parsed.texts.contains(s),
                    Leaf::Coded(list) => {
                        let code = list.code(s).unwrap_or_else(|| panic!("{pointer}: no code"));
                        parsed
                            .coded
                            .contains(&(list.uri.to_owned(), code.to_owned()))
                    }
                    Leaf::PersonRef => {
                        let id =
                            person_id(s).unwrap_or_else(|| panic!("{pointer}: not a person ref"));
                        parsed.texts.contains(id.as_str())
                    }
                },
                Value::Bool(b) => parsed.texts.contains(if *b { "true" } else { "false" }),
                Value::Number(n) => parsed.texts.contains(&n.to_string()),
                Value::Null => true,
                Value::Array(_) | Value::Object(_) => unreachable!("leaves are scalars"),
            };
            if !found {
                missing.push(pointer);
            }
        }
        for attachment in attachments(&envelope) {
            if !parsed.texts.contains(&attachment.size.to_string()) {
                missing.push(format!("size of attachment {}", attachment.id));
            }
        }
        assert!(
            missing.is_empty(),
            "{}: not in the document: {missing:?}",
            case.name
        );
    }
}

#[test]
fn every_value_of_an_hzl_submission_is_found_in_its_document() {
    assert_every_value_is_found(hzl_cases(), kurier_adapters::xsozial_hzl::leaf);
}

#[test]
fn every_value_of_a_wbs_submission_is_found_in_its_iso_8859_15_document() {
    assert_every_value_is_found(wbs_cases(), kurier_adapters::wbs_nrw::leaf);
}

#[test]
fn every_value_of_every_hzl_code_list_appears_in_some_case() {
    use kurier_adapters::xml::Codes;
    use kurier_adapters::xml::Leaf;
    use kurier_adapters::xsozial_hzl::{CODED_FIELDS, leaf};
    let mut seen: HashSet<(&str, String)> = HashSet::new();
    for case in hzl_cases() {
        let envelope = load(&case.path);
        for (pointer, value) in envelope_leaves(&envelope) {
            if let (Leaf::Coded(list), Value::String(s)) = (leaf(&pointer), value) {
                seen.insert((list.uri, s.clone()));
            }
        }
    }
    let mut unseen = Vec::new();
    for (_, list) in CODED_FIELDS {
        if let Codes::Closed(codes) = &list.codes {
            for code in *codes {
                if !seen.contains(&(list.uri, code.value.to_owned())) {
                    unseen.push(format!("{} {}", list.uri, code.value));
                }
            }
        }
    }
    unseen.dedup();
    assert!(unseen.is_empty(), "no case uses: {unseen:#?}");
}

/// A minimal valid hzl envelope whose free-text fields are `text`.
fn hzl_with_text(text: &str) -> Value {
    let mut envelope = load(&sample("hzl-minimal"));
    let form = &mut envelope["form"];
    form["applicant"]["given_names"] = Value::from(text);
    form["applicant"]["family_name"] = Value::from(text);
    form["situation"]["medical_notes"] = Value::from(text);
    form["bank_account"]["account_holder"] = Value::from(text);
    envelope
}

#[test]
fn markup_characters_and_the_cdata_end_round_trip_exactly() {
    for text in [
        "]]>",
        "&<>\"'",
        "a]]>b & <c> \"d\" 'e'",
        "]]]]>>",
        "&amp;",
        "\r\n\t x \r",
        "ğł äöüß €",
    ] {
        let xml = decode(
            "xsozial-hzl",
            &render("xsozial-hzl", &hzl_with_text(text)).unwrap(),
        );
        assert!(
            !xml.contains("]]>"),
            "{text:?} left a raw ]]> in the document"
        );
        let parsed = parse(&xml);
        assert!(parsed.texts.contains(text), "{text:?} did not round-trip");
    }
}

#[test]
fn another_service_is_unsupported() {
    let mut envelope = load(&sample("hzl-full"));
    envelope["service"] = Value::from("wbs");
    match render("xsozial-hzl", &envelope) {
        Err(RenderError::UnsupportedService { adapter, service }) => {
            assert_eq!(adapter, "xsozial-hzl");
            assert_eq!(service, "wbs");
        }
        other => panic!("expected UnsupportedService, got {other:?}"),
    }
}

/// Renders `envelope` into a buffer that already holds a byte, expects
/// `UnexpectedShape` at `pointer`, checks that the message and the debug form
/// say nothing but the pointer (in particular none of `values`, the values
/// that caused the error), and that the buffer is left as it was.
fn assert_shape_error(envelope: &Value, pointer: &str, values: &[&str]) {
    let attachments = attachments(envelope);
    let submission = submission(envelope, &attachments);
    let mut out = vec![b'#'];
    let error = adapter("xsozial-hzl")
        .render(&submission, &CONTEXT, &mut out)
        .expect_err("render fails");
    assert_eq!(out, b"#", "a failed render leaves the buffer as it was");
    match &error {
        RenderError::UnexpectedShape {
            adapter,
            pointer: p,
        } => {
            assert_eq!(*adapter, "xsozial-hzl");
            assert_eq!(p, pointer);
        }
        other => panic!("expected UnexpectedShape at {pointer}, got {other:?}"),
    }
    // The whole text is fixed but for the pointer, which names fields only.
    assert_eq!(
        error.to_string(),
        format!("adapter xsozial-hzl: field {pointer} is missing or has an unexpected type")
    );
    assert_eq!(
        format!("{error:?}"),
        format!("UnexpectedShape {{ adapter: \"xsozial-hzl\", pointer: \"{pointer}\" }}")
    );
    let shown = format!("{error} {error:?}");
    for value in values {
        assert!(
            !shown.contains(value),
            "the error quotes a form value: {shown}"
        );
    }
}

#[test]
fn a_missing_or_mistyped_field_is_named_by_its_pointer_and_never_by_its_value() {
    let full = load(&sample("hzl-full"));

    let mut e = full.clone();
    e["form"]["applicant"]
        .as_object_mut()
        .unwrap()
        .remove("family_name");
    assert_shape_error(&e, "/form/applicant/family_name", &[]);

    let mut e = full.clone();
    e["form"].as_object_mut().unwrap().remove("bank_account");
    assert_shape_error(&e, "/form/bank_account", &[]);

    let mut e = full.clone();
    e["form"]["household"][0]["sex"] = Value::from(42);
    assert_shape_error(&e, "/form/household/0/sex", &["42"]);

    let mut e = full.clone();
    e["form"]["applicant"]["sex"] = Value::from("Schrödinger");
    assert_shape_error(&e, "/form/applicant/sex", &["Schrödinger"]);

    let mut e = full.clone();
    e["form"]["income"][1]["person"] = Value::from("household:7");
    assert_shape_error(&e, "/form/income/1/person", &["household:7"]);

    let mut e = full.clone();
    e["form"]["situation"]["medical_notes"] = Value::from("Geheim\u{1}");
    assert_shape_error(&e, "/form/situation/medical_notes", &["Geheim"]);

    let mut e = full.clone();
    e["form"]["assets"] = Value::from("none");
    assert_shape_error(&e, "/form/assets", &["none"]);

    let mut e = full.clone();
    e["form"]["contact"]["identification"]
        .as_object_mut()
        .unwrap()
        .remove("value");
    assert_shape_error(&e, "/form/contact/identification/value", &[]);

    let mut e = full;
    e["attachments"][0]["filename"] = Value::from("Miet\u{b}vertrag.pdf");
    assert_shape_error(&e, "/attachments/0/filename", &["Miet"]);
}

/// One xfall `feld` as a parser reads it: pointer, name, type, value.
type XfallField = (String, String, String, Option<String>);

/// The fields of an xfall document in document order.
fn xfall_fields(xml: &str) -> Vec<XfallField> {
    let mut reader = Reader::from_str(xml);
    let mut fields: Vec<XfallField> = Vec::new();
    let mut in_value: Option<usize> = None;
    let mut value = String::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(start) | Event::Empty(start) if start.name().as_ref() == "feld" => {
                let attr = |key: &str| {
                    start
                        .try_get_attribute(key)
                        .unwrap()
                        .unwrap_or_else(|| panic!("feld without {key}"))
                        .normalized_value(XmlVersion::Implicit1_0)
                        .unwrap()
                        .into_owned()
                };
                fields.push((attr("zeiger"), attr("name"), attr("typ"), None));
            }
            Event::Start(start) if start.name().as_ref() == "wert" => {
                in_value = Some(fields.len() - 1);
                value.clear();
            }
            Event::End(end) if end.name().as_ref() == "wert" => {
                let index = in_value.take().expect("wert inside feld");
                fields[index].3 = Some(std::mem::take(&mut value));
            }
            Event::Text(t) if in_value.is_some() => value.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_value.is_some() => match r.resolve_char_ref().unwrap() {
                Some(c) => value.push(c),
                None => value.push_str(
                    quick_xml::escape::resolve_predefined_entity(&r.xml10_content()).unwrap(),
                ),
            },
            Event::Eof => break,
            _ => {}
        }
    }
    fields
}

/// The fields the JSON `value` at `pointer` must produce, in document order.
fn expected_xfall_fields(name: &str, value: &Value, pointer: &str, out: &mut Vec<XfallField>) {
    let wert = match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    out.push((
        pointer.to_owned(),
        name.to_owned(),
        kurier_adapters::xfall::type_name(value).to_owned(),
        wert,
    ));
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                let child = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                expected_xfall_fields(key, &map[key.as_str()], &child, out);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                expected_xfall_fields(&index.to_string(), item, &format!("{pointer}/{index}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn xfall_carries_every_field_with_name_pointer_type_and_value() {
    for case in xfall_cases() {
        let envelope = load(&case.path);
        let xml = decode(case.adapter, &render(case.adapter, &envelope).unwrap());
        let mut expected = Vec::new();
        expected_xfall_fields("form", &envelope["form"], "/form", &mut expected);
        // The form object itself is the `formular` element, not a feld.
        expected.remove(0);
        assert_eq!(xfall_fields(&xml), expected, "{}", case.name);

        let parsed = parse(&xml);
        for (pointer, value) in envelope_leaves(&envelope) {
            if pointer.starts_with("/form/") {
                continue;
            }
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert!(
                parsed.texts.contains(&text),
                "{}: {pointer} not in the document",
                case.name
            );
        }
        for attachment in attachments(&envelope) {
            assert!(parsed.texts.contains(&attachment.size.to_string()));
        }
    }
}

#[test]
fn xfall_renders_every_service() {
    let xfall = adapter("xfall");
    assert_eq!(xfall.services(), ["*"]);
    for service in ["hzl", "wbs", "buergergeld-wba", "ein-neuer-dienst"] {
        let mut envelope = load(&sample("buergergeld-wba"));
        envelope["service"] = Value::from(service);
        let xml = decode("xfall", &render("xfall", &envelope).unwrap());
        assert!(parse(&xml).texts.contains(service));
    }
}

#[test]
fn xfall_names_a_string_xml_cannot_carry_by_its_pointer() {
    let mut envelope = load(&sample("buergergeld-wba"));
    envelope["form"]["applicant"]["family_name"] = Value::from("Be\u{0}cker");
    match render("xfall", &envelope) {
        Err(RenderError::UnexpectedShape { adapter, pointer }) => {
            assert_eq!(adapter, "xfall");
            assert_eq!(pointer, "/form/applicant/family_name");
        }
        other => panic!("expected UnexpectedShape, got {other:?}"),
    }
}

/// The texts of every element called `name`, in document order.
fn texts_of(xml: &str, name: &str) -> Vec<String> {
    let mut reader = Reader::from_str(xml);
    let mut texts = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(start) if start.name().as_ref() == name => current = Some(String::new()),
            Event::End(end) if end.name().as_ref() == name => texts.extend(current.take()),
            Event::Text(t) => {
                if let Some(text) = current.as_mut() {
                    text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(text) = current.as_mut() {
                    match r.resolve_char_ref().unwrap() {
                        Some(c) => text.push(c),
                        None => text.push_str(
                            quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                                .unwrap(),
                        ),
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    texts
}

#[test]
fn wbs_names_survive_iso_8859_15_exactly() {
    for case in wbs_cases() {
        let envelope = load(&case.path);
        let bytes = render(case.adapter, &envelope).unwrap();
        assert!(
            bytes.starts_with(b"<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>"),
            "{}: declaration",
            case.name
        );
        assert!(
            std::str::from_utf8(&bytes).is_err() || bytes.is_ascii(),
            "{}: the bytes are ISO-8859-15, not UTF-8",
            case.name
        );
        let xml = kurier_adapters::iso8859_15::decode(&bytes);
        let form = &envelope["form"];
        let people = std::iter::once(&form["applicant"])
            .chain(form["household"].as_array().unwrap())
            .collect::<Vec<_>>();
        let given: Vec<&str> = people
            .iter()
            .map(|p| p["given_names"].as_str().unwrap())
            .collect();
        let family: Vec<&str> = people
            .iter()
            .map(|p| p["family_name"].as_str().unwrap())
            .collect();
        assert_eq!(texts_of(&xml, "vornamen"), given, "{}", case.name);
        assert_eq!(texts_of(&xml, "familienname"), family, "{}", case.name);
    }
}

#[test]
fn wbs_writes_characters_outside_iso_8859_15_as_references() {
    let envelope = load(&Path::new(MANIFEST).join("tests/cases/wbs-turkish-polish.json"));
    let bytes = render("wbs-nrw", &envelope).unwrap();
    let text = kurier_adapters::iso8859_15::decode(&bytes);
    // ı (305), ğ (287), ł (322), ½ (189, Latin-1 only), 😀 (128512) as references;
    // €, Š, Œ, Ÿ as their ISO-8859-15 bytes; no replacement character anywhere.
    for reference in [
        "Y&#305;ld&#305;r&#305;m",
        "&#287;",
        "&#322;",
        "3&#189;",
        "&#128512;",
    ] {
        assert!(text.contains(reference), "{reference} missing");
    }
    for (byte, c) in [(0xa4u8, '€'), (0xa6, 'Š'), (0xbc, 'Œ'), (0xbe, 'Ÿ')] {
        assert!(bytes.contains(&byte), "{c} is written as byte {byte:#x}");
    }
    let body = text
        .split_once("?>")
        .map(|(_, body)| body)
        .expect("XML declaration");
    assert!(!body.contains('?') && !body.contains('\u{fffd}'));
}

#[test]
fn wbs_refuses_other_services_and_names_missing_fields() {
    let mut envelope = load(&sample("wbs-full"));
    envelope["service"] = Value::from("hzl");
    assert!(matches!(
        render("wbs-nrw", &envelope),
        Err(RenderError::UnsupportedService {
            adapter: "wbs-nrw",
            ..
        })
    ));
    let mut envelope = load(&sample("wbs-full"));
    envelope["form"]["desired_dwelling"]["rooms"] = Value::from("drei");
    match render("wbs-nrw", &envelope) {
        Err(e @ RenderError::UnexpectedShape { .. }) => assert_eq!(
            e.to_string(),
            "adapter wbs-nrw: field /form/desired_dwelling/rooms is missing or has an unexpected type"
        ),
        other => panic!("expected UnexpectedShape, got {other:?}"),
    }
}

#[test]
fn a_document_that_fails_half_way_leaves_the_buffer_as_it_was() {
    // Each adapter fails late in its document (a field near the end), after
    // it has written most of it: what was in `out` before stays, nothing
    // of the half document does.
    let mut hzl = load(&sample("hzl-full"));
    hzl["form"]["bank_account"]
        .as_object_mut()
        .unwrap()
        .remove("iban");
    let mut wbs = load(&sample("wbs-full"));
    wbs["form"]["special_circumstances"] = Value::from(vec!["no_such_code"]);
    let mut xfall = load(&sample("buergergeld-wba"));
    xfall["form"]["zz_last"] = Value::from("Geheim\u{1}");
    for (name, envelope) in [("xsozial-hzl", &hzl), ("wbs-nrw", &wbs), ("xfall", &xfall)] {
        let attachments = attachments(envelope);
        let submission = submission(envelope, &attachments);
        let mut out = b"earlier document".to_vec();
        let result = adapter(name).render(&submission, &CONTEXT, &mut out);
        assert!(result.is_err(), "{name}: the broken envelope renders");
        assert_eq!(out, b"earlier document", "{name}: a half document was left");
    }
}
