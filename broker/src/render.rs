//! Rendering: the destination's adapter turns the submission into the
//! authority's XML (DESIGN.md step 5).
//!
//! Fails with `transform_failed` when the destination's adapter is not
//! implemented yet, does not render the submission's service, or the
//! destination does not accept the service; the detail names adapter and
//! service only. Pure apart from the clock and a fresh message id.

use kurier_adapters::{Attachment, Party, RenderContext, Submission};

use crate::config::SenderConfig;
use crate::envelope::Envelope;
use crate::policy::{AttachmentFacts, sha256_hex};
use crate::reason::{Reason, ReasonCode, safe_name};
use crate::route::Destination;

/// A document ready to send.
pub struct Rendered {
    pub body: bytes::Bytes,
    pub content_type: String,
    /// sha256 (hex) of exactly the bytes sent, for the receipt.
    pub sha256: String,
}

pub fn render(
    destination: &Destination,
    envelope: &Envelope,
    facts: &[AttachmentFacts],
    sender: &SenderConfig,
) -> Result<Rendered, Reason> {
    let service = envelope.service.as_str();
    let transform_failed = |detail: String| Reason::new(ReasonCode::TransformFailed, detail);
    if let Some(services) = &destination.services
        && !services.iter().any(|s| s == service)
    {
        return Err(transform_failed(format!(
            "destination {} accepts services {}, not {}",
            destination.id,
            services.join(", "),
            safe_name(service)
        )));
    }
    let Some(adapter) = destination.adapter else {
        return Err(transform_failed(format!(
            "adapter {} of destination {} is not implemented yet (service {})",
            destination.adapter_name,
            destination.id,
            safe_name(service)
        )));
    };
    if !adapter
        .services()
        .iter()
        .any(|s| *s == service || *s == "*")
    {
        return Err(transform_failed(format!(
            "adapter {} cannot render service {}",
            adapter.name(),
            safe_name(service)
        )));
    }

    let attachments: Vec<Attachment<'_>> = envelope
        .attachments
        .iter()
        .zip(facts)
        .map(|(a, f)| Attachment {
            id: &a.id,
            filename: &a.filename,
            media_type: &a.media_type,
            document_type: &a.document_type,
            sha256: &a.sha256,
            size: f.size,
            content_base64: &a.content,
        })
        .collect();
    let submission = Submission {
        submission_id: &envelope.submission_id,
        service,
        destination: &envelope.destination,
        portal: &envelope.portal,
        submitted_at: &envelope.submitted_at,
        applicant_ref: envelope.applicant_ref.as_deref(),
        form: &envelope.form,
        attachments: &attachments,
    };
    let message_id = uuid::Uuid::new_v4().to_string();
    let created_at = crate::receipt::now();
    let context = RenderContext {
        message_id: &message_id,
        created_at: &created_at,
        recipient: Party {
            id: &destination.directory_id,
            name: &destination.name,
        },
        sender: Party {
            id: &sender.id,
            name: &sender.name,
        },
    };
    let base64_total: usize = envelope.attachments.iter().map(|a| a.content.len()).sum();
    let mut out = Vec::with_capacity(16 * 1024 + base64_total);
    adapter
        .render(&submission, &context, &mut out)
        // RenderError's Display names adapter, service and pointers only.
        .map_err(|e| transform_failed(e.to_string()))?;
    Ok(Rendered {
        sha256: sha256_hex(&out),
        body: bytes::Bytes::from(out),
        content_type: format!("application/xml; charset={}", adapter.encoding()),
    })
}
