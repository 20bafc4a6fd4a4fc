//! Adapters: pure functions that turn one validated submission into the XML
//! document its receiving authority's case-management system ("Fachverfahren")
//! expects.
//!
//! An adapter touches nothing but its arguments and the output buffer: no I/O,
//! no clock, no randomness (the message id and creation time come in through
//! [`RenderContext`]), no logging. That keeps every adapter testable against
//! golden files byte for byte, and keeps payload content out of every log.
//!
//! Every adapter has the same shape (see `adapters/README.md`): which services
//! it accepts, how it renders, which encoding it writes, which XSD in
//! `schemas/xml/` describes its output, and its golden tests. Registering a
//! new adapter is one line in [`REGISTRY`].

use std::fmt;

pub mod codes;
pub mod iso8859_15;
pub mod meta;
pub mod wbs_nrw;
pub mod xfall;
pub mod xml;
pub mod xsozial_hzl;

/// One attachment of a submission, already checked by the broker's policy step
/// (hash verified, size within limits, not an identity document).
#[derive(Clone, Copy)]
pub struct Attachment<'a> {
    pub id: &'a str,
    pub filename: &'a str,
    pub media_type: &'a str,
    pub document_type: &'a str,
    /// Lowercase hex sha256 of the decoded content.
    pub sha256: &'a str,
    /// Size of the decoded content in bytes.
    pub size: u64,
    /// The content as the portal sent it: standard base64.
    pub content_base64: &'a str,
}

impl fmt::Debug for Attachment<'_> {
    // Filenames and contents are personal data: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("id", &self.id)
            .field("document_type", &self.document_type)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A submission whose envelope and form have been validated against their
/// JSON Schemas. `form` is the `form` object of the envelope.
#[derive(Clone, Copy)]
pub struct Submission<'a> {
    pub submission_id: &'a str,
    pub service: &'a str,
    pub destination: &'a str,
    pub portal: &'a str,
    /// RFC 3339, as the portal sent it.
    pub submitted_at: &'a str,
    pub applicant_ref: Option<&'a str>,
    pub form: &'a serde_json::Value,
    pub attachments: &'a [Attachment<'a>],
}

impl fmt::Debug for Submission<'_> {
    // The form is personal data: only identifiers are printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submission")
            .field("submission_id", &self.submission_id)
            .field("service", &self.service)
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

/// A party named in a message header: the receiving authority or the sender.
#[derive(Debug, Clone, Copy)]
pub struct Party<'a> {
    /// Directory id, e.g. a DVDV id such as `bth:020000000000`.
    pub id: &'a str,
    pub name: &'a str,
}

/// What an adapter needs besides the submission: values that change per
/// message and the parties from the destination's configuration.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// A fresh UUID for this message (not the submission id).
    pub message_id: &'a str,
    /// RFC 3339 UTC creation time of the message, e.g. `2026-11-23T10:15:00Z`.
    pub created_at: &'a str,
    /// The receiving authority.
    pub recipient: Party<'a>,
    /// The sender (the relay acting for the portal).
    pub sender: Party<'a>,
}

/// Why an adapter could not render. Every message names adapters, services,
/// JSON pointers and field names only, never a value from the submission.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("adapter {adapter} cannot render service {service}")]
    UnsupportedService {
        adapter: &'static str,
        service: String,
    },
    /// `pointer` is an RFC 6901 JSON pointer rooted at the envelope
    /// (`/form/applicant/sex`, `/attachments/0/filename`). Also used for a
    /// value no code list of the adapter knows, a person ref naming no person,
    /// and a string holding a character XML 1.0 cannot carry.
    #[error("adapter {adapter}: field {pointer} is missing or has an unexpected type")]
    UnexpectedShape {
        adapter: &'static str,
        pointer: String,
    },
    #[error("adapter {adapter}: XML writer failed: {kind}")]
    Writer {
        adapter: &'static str,
        kind: &'static str,
    },
}

/// What an adapter is, as data: its name, services, encoding and XSD.
#[derive(Debug)]
pub struct Profile {
    /// Stable name used in the configuration (`adapter = "…"`).
    pub name: &'static str,
    /// The services (`envelope.service`) this adapter can render; `"*"`
    /// stands for every service (the generic `xfall` container).
    pub services: &'static [&'static str],
    /// The character encoding of the document, as written in the XML
    /// declaration and in the `Content-Type` charset (e.g. `UTF-8`).
    pub encoding: &'static str,
    /// File name of the adapter's XSD below `schemas/xml/`.
    pub xsd: &'static str,
}

/// The interface every authority format implements: a [`Profile`] and its
/// own mapping ([`Adapter::write`]). Everything around the mapping (the
/// service check, the envelope's identifiers checked as XML text, no half
/// document left in `out` on error) is [`Adapter::render`], the same for all.
pub trait Adapter: Send + Sync {
    /// What this adapter is.
    fn profile(&self) -> &'static Profile;

    /// The adapter's mapping: write the whole document for `submission`
    /// into `out`, in the profile's encoding. Called by
    /// [`Adapter::render`] only, after its checks; `out` is cut back if
    /// this fails.
    fn write(
        &self,
        submission: &Submission<'_>,
        context: &RenderContext<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError>;

    /// Stable name used in the configuration (`adapter = "…"`).
    fn name(&self) -> &'static str {
        self.profile().name
    }
    /// The services this adapter can render (`"*"`: every service).
    fn services(&self) -> &'static [&'static str] {
        self.profile().services
    }
    /// The document's character encoding.
    fn encoding(&self) -> &'static str {
        self.profile().encoding
    }
    /// File name of the adapter's XSD below `schemas/xml/`.
    fn xsd(&self) -> &'static str {
        self.profile().xsd
    }

    /// Render `submission` into `out` (appended, in [`Adapter::encoding`]):
    /// refused if the adapter does not take its service or an identifier
    /// of the envelope cannot be XML text; on any error `out` is as before.
    fn render(
        &self,
        submission: &Submission<'_>,
        context: &RenderContext<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        let profile = self.profile();
        if !profile
            .services
            .iter()
            .any(|s| *s == "*" || *s == submission.service)
        {
            return Err(RenderError::UnsupportedService {
                adapter: profile.name,
                service: submission.service.to_owned(),
            });
        }
        xml::check_envelope(profile.name, submission)?;
        xml::append_document(out, |out| self.write(submission, context, out))
    }
}

/// Every adapter Kurier knows. Adding an authority format: write the module,
/// add one line here.
pub static REGISTRY: &[&dyn Adapter] = &[&xsozial_hzl::XsozialHzl, &xfall::Xfall, &wbs_nrw::WbsNrw];

/// Adapter names that are planned but not implemented yet: a route to one of
/// them is accepted by the configuration check and yields `transform_failed`.
pub const PLANNED: &[&str] = &[];

/// Look an adapter up by its configured name.
pub fn find(name: &str) -> Option<&'static dyn Adapter> {
    REGISTRY.iter().copied().find(|a| a.name() == name)
}
