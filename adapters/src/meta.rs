//! The blocks Kurier's own formats (`xfall`, `wbs-nrw`) share: the message
//! header, the submission's metadata and one element per attachment. Both
//! formats put their elements in a default namespace, so the same unprefixed
//! names serve both; the standard-based `xsozial-hzl` has its own. Writes
//! into the given writer only.
//!
//! ```text
//! nachricht      nachrichtID, erstellungszeitpunkt, leser, autor (kennung, name)
//! uebermittlung  einreichungsID, dienst, portal, ziel, eingereichtAm, antragstellerReferenz?
//! dokument       dokumentID, dateiname, mimeType, dokumenttyp, groesse, sha256, inhalt
//! ```

use std::io;

use crate::xml::{ShortId, XmlWriter};
use crate::{Attachment, Party, RenderContext, RenderError, Submission};

/// `nachricht`: message id, creation time, recipient and sender.
pub fn message<W: io::Write>(
    w: &mut XmlWriter<W>,
    context: &RenderContext<'_>,
) -> Result<(), RenderError> {
    w.start("nachricht")?;
    w.text("nachrichtID", context.message_id)?;
    w.text("erstellungszeitpunkt", context.created_at)?;
    party(w, "leser", &context.recipient)?;
    party(w, "autor", &context.sender)?;
    w.end("nachricht")
}

fn party<W: io::Write>(
    w: &mut XmlWriter<W>,
    element: &str,
    party: &Party<'_>,
) -> Result<(), RenderError> {
    w.start(element)?;
    w.text("kennung", party.id)?;
    w.text("name", party.name)?;
    w.end(element)
}

/// `uebermittlung`: the submission as Kurier received it.
pub fn transmission<W: io::Write>(
    w: &mut XmlWriter<W>,
    s: &Submission<'_>,
) -> Result<(), RenderError> {
    w.start("uebermittlung")?;
    w.text("einreichungsID", s.submission_id)?;
    w.text("dienst", s.service)?;
    w.text("portal", s.portal)?;
    w.text("ziel", s.destination)?;
    w.text("eingereichtAm", s.submitted_at)?;
    w.opt_text("antragstellerReferenz", s.applicant_ref)?;
    w.end("uebermittlung")
}

/// `dokument`: one attachment, its metadata before its content.
pub fn document<W: io::Write>(
    w: &mut XmlWriter<W>,
    attachment: &Attachment<'_>,
) -> Result<(), RenderError> {
    w.start("dokument")?;
    w.text("dokumentID", attachment.id)?;
    w.text("dateiname", attachment.filename)?;
    w.text("mimeType", attachment.media_type)?;
    w.text("dokumenttyp", attachment.document_type)?;
    w.text("groesse", ShortId::number(attachment.size).as_str())?;
    w.text("sha256", attachment.sha256)?;
    w.text("inhalt", attachment.content_base64)?;
    w.end("dokument")
}
