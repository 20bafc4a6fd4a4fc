//! Shared by the adapter targets: the body is an envelope (JSON), rendered
//! by one adapter as `render::write` does, without the schema check: an
//! adapter must answer any shape with `Ok` or a `RenderError`, never a panic.

use base64::Engine as _;
use kurier_adapters::{Attachment, Party, RenderContext, Submission};
use serde_json::Value;

const CONTEXT: RenderContext<'static> = RenderContext {
    message_id: "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b",
    created_at: "2026-11-23T10:15:00Z",
    recipient: Party {
        id: "bth:053150000000",
        name: "Stadt Köln – Amt für Soziales",
    },
    sender: Party {
        id: "bth:kurier-relay-nrw",
        name: "Kurier <Relay> NRW",
    },
};

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

pub fn render(adapter_name: &str, body: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Some(form) = value.get("form") else {
        return;
    };
    let empty = Vec::new();
    let raw = value
        .get("attachments")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let attachments: Vec<Attachment<'_>> = raw
        .iter()
        .map(|a| {
            let content = str_of(a, "content");
            let size = base64::engine::general_purpose::STANDARD
                .decode(content)
                .map_or(0, |b| b.len() as u64);
            Attachment {
                id: str_of(a, "id"),
                filename: str_of(a, "filename"),
                media_type: str_of(a, "media_type"),
                document_type: str_of(a, "document_type"),
                sha256: str_of(a, "sha256"),
                size,
                content_base64: content,
            }
        })
        .collect();
    let adapter = kurier_adapters::find(adapter_name).expect("the adapter is registered");
    let service = str_of(&value, "service");
    // The adapter's own services first (most inputs name one), else as sent.
    let service = if adapter.services().contains(&"*") || adapter.services().contains(&service) {
        service
    } else {
        adapter.services()[0]
    };
    let submission = Submission {
        submission_id: str_of(&value, "submission_id"),
        service,
        destination: str_of(&value, "destination"),
        portal: str_of(&value, "portal"),
        submitted_at: str_of(&value, "submitted_at"),
        applicant_ref: value.get("applicant_ref").and_then(Value::as_str),
        form,
        attachments: &attachments,
    };
    let mut out = Vec::new();
    if let Err(e) = adapter.render(&submission, &CONTEXT, &mut out) {
        // The error is shown to operators: it must name no value.
        let text = e.to_string();
        assert!(!text.contains("CANARY"), "{text}");
    }
}
