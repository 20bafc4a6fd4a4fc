//! XSD validation cost per document: what a `kurier-xsd` thread spends on
//! each rendered document before it may leave (`xsd::Validator` with one
//! validator thread, awaited from a current-thread runtime as the pipeline
//! awaits it). Documents: the adapters' golden files (a minimal and a full
//! hzl application, the largest household, a wbs application in
//! ISO-8859-15, a Bürgergeld case in XFall) and the full hzl application
//! with a 4 MiB attachment.
//!
//! `cargo bench -p kurier --bench xsd` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kurier::xsd::Validator;

fn golden(adapter: &str, file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters/tests/golden")
        .join(adapter)
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `document` (hzl-full.xml) with its first attachment's content replaced
/// by `size` bytes in base64.
fn with_attachment(document: &[u8], size: usize) -> Vec<u8> {
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(content);
    let text = std::str::from_utf8(document).expect("UTF-8 golden file");
    let open = "<xsb:inhalt>";
    let start = text.find(open).expect("hzl-full.xml has an attachment") + open.len();
    let end = start + text[start..].find("</xsb:inhalt>").expect("closed");
    format!("{}{}{}", &text[..start], encoded, &text[end..]).into_bytes()
}

fn validation(c: &mut Criterion) {
    let validator = Validator::start_with(None, 1).expect("the built-in XSDs compile");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let full = golden("xsozial-hzl", "hzl-full.xml");
    let documents = [
        (
            "xsozial-hzl",
            "hzl-minimal",
            golden("xsozial-hzl", "hzl-minimal.xml"),
        ),
        ("xsozial-hzl", "hzl-full", full.clone()),
        (
            "xsozial-hzl",
            "hzl-max-household",
            golden("xsozial-hzl", "hzl-max-household.xml"),
        ),
        (
            "wbs-nrw",
            "wbs-turkish-polish",
            golden("wbs-nrw", "wbs-turkish-polish.xml"),
        ),
        (
            "xfall",
            "buergergeld-wba",
            golden("xfall", "buergergeld-wba.xml"),
        ),
        (
            "xsozial-hzl",
            "hzl-4mib-attachment",
            with_attachment(&full, 4 << 20),
        ),
    ];
    let mut group = c.benchmark_group("xsd");
    for (adapter, name, document) in documents {
        let document = Bytes::from(document);
        // A figure for a refused document would measure the wrong thing.
        runtime
            .block_on(validator.validate(adapter, document.clone()))
            .unwrap_or_else(|refusal| panic!("{name}: {refusal}"));
        group.throughput(Throughput::Bytes(document.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(validator.validate(adapter, black_box(document.clone())))
                    .expect("valid")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
