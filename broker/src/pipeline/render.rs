//! Rendering: the destination's adapter turns the submission into the
//! authority's XML (DESIGN.md step 5).
//!
//! Fails with `transform_failed` when the destination's adapter is not
//! implemented yet, does not render the submission's service, or the
//! destination does not accept the service; the detail names adapter and
//! service only. Pure apart from the clock and a fresh message id.
//!
//! The rendered document is then checked against the adapter's XSD by the
//! [`xsd`](crate::xsd) validator: a document it refuses fails with
//! `output_schema_violation` (adapter, line, element and kind of problem,
//! never a value) and is never sent.

use kurier_adapters::{Adapter, Attachment, Party, RenderContext, Submission};

use crate::config::SenderConfig;
use crate::domain::digest::sha256_hex;
use crate::domain::reason::{Reason, ReasonCode, safe_name};
use crate::pipeline::envelope::Envelope;
use crate::pipeline::policy::AttachmentFacts;
use crate::pipeline::route::Destination;
use crate::xsd::{Refusal, Validator};

/// A document ready to send.
pub struct Rendered {
    pub body: bytes::Bytes,
    pub content_type: String,
    /// sha256 (hex) of exactly the bytes sent, for the receipt.
    pub sha256: String,
}

pub async fn render(
    destination: &Destination,
    envelope: &Envelope,
    facts: &[AttachmentFacts],
    sender: &SenderConfig,
    xsd: &Validator,
) -> Result<Rendered, Reason> {
    let (adapter, out) = write(destination, envelope, facts, sender)?;
    let body = bytes::Bytes::from(out);
    if let Err(refusal) = xsd.validate(adapter.name(), body.clone()).await {
        // The refusal names lines, elements and kinds of problem only.
        let detail = match refusal {
            Refusal::Invalid { .. } => format!(
                "adapter {} wrote a document that its XSD {} refuses: {refusal}",
                adapter.name(),
                adapter.xsd()
            ),
            Refusal::UnknownAdapter | Refusal::Unavailable(_) => format!(
                "adapter {}: the document could not be checked against its XSD {} ({refusal}); it was not sent",
                adapter.name(),
                adapter.xsd()
            ),
        };
        return Err(Reason::new(ReasonCode::OutputSchemaViolation, detail));
    }
    Ok(Rendered {
        sha256: sha256_hex(&body),
        body,
        content_type: format!("application/xml; charset={}", adapter.encoding()),
    })
}

/// The adapter's document, not yet checked.
fn write(
    destination: &Destination,
    envelope: &Envelope,
    facts: &[AttachmentFacts],
    sender: &SenderConfig,
) -> Result<(&'static dyn Adapter, Vec<u8>), Reason> {
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

    let attachments = attachments(envelope, facts);
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
    let created_at = crate::domain::time::now().to_string();
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
    Ok((adapter, out))
}

/// The envelope's attachments as adapters (and transports that upload
/// them, FIT-Connect) take them, with the sizes the policy step decoded.
pub(crate) fn attachments<'a>(
    envelope: &'a Envelope,
    facts: &[AttachmentFacts],
) -> Vec<Attachment<'a>> {
    envelope
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
        .collect()
}
