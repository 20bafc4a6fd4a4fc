//! Render throughput of every adapter: renders per second (`thrpt` in
//! elem/s) and output megabytes per second (`thrpt` in MiB/s), for the shared
//! samples, an hzl submission with a 4 MiB attachment and the wbs case whose
//! names need character references.
//!
//! `cargo bench -p kurier-adapters` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::path::Path;

use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kurier_adapters::{Attachment, Party, RenderContext, Submission, find};
use serde_json::Value;

const CONTEXT: RenderContext<'static> = RenderContext {
    message_id: "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b",
    created_at: "2026-11-23T10:15:00Z",
    recipient: Party {
        id: "bth:053150000000",
        name: "Stadt Köln",
    },
    sender: Party {
        id: "bth:kurier-relay-nrw",
        name: "Kurier",
    },
};

fn load(relative: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

/// `envelope` with one more attachment of `size` bytes.
fn with_attachment(mut envelope: Value, size: usize) -> Value {
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let attachment = serde_json::json!({
        "id": "att-big",
        "filename": "Kontoauszüge 2026.pdf",
        "media_type": "application/pdf",
        "document_type": "kontoauszug",
        "sha256": "0".repeat(64),
        "content": base64::engine::general_purpose::STANDARD.encode(content),
    });
    match envelope["attachments"].as_array_mut() {
        Some(list) => list.push(attachment),
        None => envelope["attachments"] = Value::Array(vec![attachment]),
    }
    envelope
}

fn attachments(envelope: &Value) -> Vec<Attachment<'_>> {
    envelope["attachments"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    let field = |k: &str| a[k].as_str().expect("attachment field");
                    let content = field("content");
                    Attachment {
                        id: field("id"),
                        filename: field("filename"),
                        media_type: field("media_type"),
                        document_type: field("document_type"),
                        sha256: field("sha256"),
                        size: (content.len() / 4 * 3) as u64,
                        content_base64: content,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn bench(c: &mut Criterion, adapter_name: &str, label: &str, envelope: &Value) {
    let adapter = find(adapter_name).expect("registered adapter");
    let attachments = attachments(envelope);
    let field = |k: &str| envelope[k].as_str().expect("envelope field");
    let submission = Submission {
        submission_id: field("submission_id"),
        service: field("service"),
        destination: field("destination"),
        portal: field("portal"),
        submitted_at: field("submitted_at"),
        applicant_ref: envelope["applicant_ref"].as_str(),
        form: &envelope["form"],
        attachments: &attachments,
    };
    let mut out = Vec::new();
    adapter
        .render(&submission, &CONTEXT, &mut out)
        .expect("renders");
    let bytes = out.len() as u64;

    let mut group = c.benchmark_group(format!("{adapter_name}/{label}"));
    group.throughput(Throughput::Elements(1));
    group.bench_function("renders", |b| {
        b.iter(|| {
            out.clear();
            adapter
                .render(black_box(&submission), &CONTEXT, &mut out)
                .expect("renders");
            black_box(out.len())
        })
    });
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("output bytes", |b| {
        b.iter(|| {
            out.clear();
            adapter
                .render(black_box(&submission), &CONTEXT, &mut out)
                .expect("renders");
            black_box(out.len())
        })
    });
    group.finish();
}

fn render(c: &mut Criterion) {
    let hzl = load("../tests/samples/hzl-full.json");
    bench(c, "xsozial-hzl", "hzl-full", &hzl);
    bench(
        c,
        "xsozial-hzl",
        "hzl-full+4MiB",
        &with_attachment(hzl.clone(), 4 << 20),
    );
    bench(
        c,
        "xfall",
        "buergergeld-wba",
        &load("../tests/samples/buergergeld-wba.json"),
    );
    bench(c, "xfall", "hzl-full", &hzl);
    bench(
        c,
        "wbs-nrw",
        "wbs-full",
        &load("../tests/samples/wbs-full.json"),
    );
    bench(
        c,
        "wbs-nrw",
        "wbs-turkish-polish",
        &load("tests/cases/wbs-turkish-polish.json"),
    );
    bench(
        c,
        "wbs-nrw",
        "wbs-full+4MiB",
        &with_attachment(load("../tests/samples/wbs-full.json"), 4 << 20),
    );
}

criterion_group!(benches, render);
criterion_main!(benches);
