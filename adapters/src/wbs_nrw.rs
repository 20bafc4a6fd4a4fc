//! The `wbs-nrw` adapter: renders a `wbs` submission (Wohnberechtigungsschein,
//! North Rhine-Westphalia) for housing offices whose systems read
//! ISO-8859-15. Kurier's own format, default namespace [`NAMESPACE`],
//! described by `schemas/xml/wbs-nrw.xsd`. It touches only its arguments and
//! the output buffer.
//!
//! The document is written in ISO-8859-15 and says so in its declaration.
//! Every character the charset lacks (Turkish ğ ı ş, Polish ł ą ę ś ż, the
//! Latin-1 characters ¤ ¦ ¨ ´ ¸ ¼ ½ ¾ that ISO-8859-15 replaced, emoji) is
//! written as a numeric character reference `&#NNN;`, never as `?` and never
//! dropped: a parser reads back exactly the names the applicant typed (see
//! [`crate::iso8859_15`]).
//!
//! ```text
//! antrag.wohnberechtigungsschein @version="1" @produkt @produktversion
//!   nachricht, uebermittlung              (see crate::meta)
//!   antrag
//!     antragsart                          coded
//!     antragsdatum                        date part of submitted_at
//!     antragsteller                       personID p0, familienname, vornamen, geburtsdatum,
//!                                         geschlecht, staatsangehoerigkeit, familienstand?,
//!                                         anschrift, kommunikation*
//!     haushaltsmitglied*                  personID p1…, beziehung, familienname, vornamen,
//!                                         geburtsdatum, geschlecht
//!     jahreseinkommen*                    personID (ref), einkommensart, bruttoBetrag
//!     besondererUmstand*                  coded
//!     gewuenschteWohnung                  raeume, wohnflaeche
//!     aktuelleWohnung?                    raeume, wohnflaeche, kaltmiete
//!   dokument*                             (see crate::meta)
//! ```
//!
//! | form field | code list (see [`crate::codes`]) |
//! |---|---|
//! | `application_kind` | `…:kurier:codeliste:wbs-antragsart` |
//! | `applicant.sex`, `household[].sex` | `urn:xoev-de:xinneres:codeliste:geschlecht` |
//! | `applicant.nationality` | `…:kurier:codeliste:staat` |
//! | `applicant.marital_status` | `…:kurier:codeliste:familienstand` |
//! | `household[].relationship` | `…:kurier:codeliste:beziehung-haushalt` |
//! | `annual_income[].kind` | `…:kurier:codeliste:einkommensart` |
//! | `special_circumstances[]` | `…:kurier:codeliste:wbs-besondere-umstaende` |
//! | `contact.phone`, `contact.email` | `urn:de:xoev:codeliste:erreichbarkeit` (02, 01) |
//!
//! Person refs (`annual_income[].person`) become local ids as in
//! `xsozial-hzl`: `applicant` is `p0`, `household:N` is `p(N+1)`. Amounts and
//! areas are written verbatim, room counts as integers.

use crate::codes::{
    BEZIEHUNG_HAUSHALT, EINKOMMENSART, ERREICHBARKEIT, FAMILIENSTAND, GESCHLECHT, STAAT,
    WBS_ANTRAGSART, WBS_BESONDERE_UMSTAENDE,
};
use crate::iso8859_15::Sink;
use crate::meta;
use crate::xml::{
    CodeList, Leaf, Node, ShortId, XmlWriter, classify, date_part, io_error, person_ref,
};
use crate::{Adapter, Profile, RenderContext, RenderError, Submission};

/// The adapter's configured name.
pub const NAME: &str = "wbs-nrw";

/// The only service this adapter renders.
pub const SERVICE: &str = "wbs";

/// The document's encoding, as declared.
pub const ENCODING: &str = "ISO-8859-15";

/// Kurier's namespace for WBS applications, used as the default namespace.
pub const NAMESPACE: &str = "urn:xoev-de:kurier:schemata:wbs-nrw:1";

/// Renders `wbs` submissions for NRW housing offices, in ISO-8859-15.
#[derive(Debug, Clone, Copy, Default)]
pub struct WbsNrw;

/// What this adapter is.
pub static PROFILE: Profile = Profile {
    name: NAME,
    services: &[SERVICE],
    encoding: ENCODING,
    xsd: "wbs-nrw.xsd",
};

impl Adapter for WbsNrw {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn write(
        &self,
        submission: &Submission<'_>,
        context: &RenderContext<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        let mut w = XmlWriter::new(Sink::new(out), NAME);
        document(&mut w, submission, context)?;
        w.finish()?.finish().map_err(|e| io_error(NAME, &e))
    }
}

/// Which form fields are coded, and with which list; `*` stands for an array
/// index.
pub const CODED_FIELDS: &[(&str, &CodeList)] = &[
    ("/form/application_kind", &WBS_ANTRAGSART),
    ("/form/applicant/sex", &GESCHLECHT),
    ("/form/applicant/nationality", &STAAT),
    ("/form/applicant/marital_status", &FAMILIENSTAND),
    ("/form/household/*/relationship", &BEZIEHUNG_HAUSHALT),
    ("/form/household/*/sex", &GESCHLECHT),
    ("/form/annual_income/*/kind", &EINKOMMENSART),
    ("/form/special_circumstances/*", &WBS_BESONDERE_UMSTAENDE),
];

/// Which form fields are person refs.
pub const PERSON_REF_FIELDS: &[&str] = &["/form/annual_income/*/person"];

/// How the string at `pointer` of a wbs envelope is written; see [`Leaf`].
pub fn leaf(pointer: &str) -> Leaf {
    classify(pointer, CODED_FIELDS, PERSON_REF_FIELDS)
}

type W<'o> = XmlWriter<Sink<'o>>;

fn document(
    w: &mut W<'_>,
    s: &Submission<'_>,
    context: &RenderContext<'_>,
) -> Result<(), RenderError> {
    let form = Node::form(NAME, s);
    let household = form.get("household")?;
    let household_len = household.len()?;

    w.declaration(ENCODING)?;
    w.start_with(
        "antrag.wohnberechtigungsschein",
        &[
            ("xmlns", NAMESPACE),
            ("version", "1"),
            ("produkt", "Kurier"),
            ("produktversion", env!("CARGO_PKG_VERSION")),
        ],
    )?;
    meta::message(w, context)?;
    meta::transmission(w, s)?;

    w.start("antrag")?;
    w.coded_value("antragsart", &WBS_ANTRAGSART, form.get("application_kind")?)?;
    w.text(
        "antragsdatum",
        date_part(NAME, s.submitted_at, "/submitted_at")?,
    )?;
    applicant(w, &form)?;
    for (index, member) in household.items()?.enumerate() {
        w.start("haushaltsmitglied")?;
        w.text("personID", ShortId::new("p", index as u64 + 1).as_str())?;
        w.coded_value(
            "beziehung",
            &BEZIEHUNG_HAUSHALT,
            member.get("relationship")?,
        )?;
        person(w, &member)?;
        w.end("haushaltsmitglied")?;
    }
    for income in form.get("annual_income")?.items()? {
        w.start("jahreseinkommen")?;
        w.text(
            "personID",
            person_ref(&income.get("person")?, household_len)?.as_str(),
        )?;
        w.coded_value("einkommensart", &EINKOMMENSART, income.get("kind")?)?;
        w.text("bruttoBetrag", income.str_at("gross_eur")?)?;
        w.end("jahreseinkommen")?;
    }
    if let Some(circumstances) = form.opt("special_circumstances")? {
        for circumstance in circumstances.items()? {
            w.coded_value("besondererUmstand", &WBS_BESONDERE_UMSTAENDE, circumstance)?;
        }
    }
    dwelling(w, "gewuenschteWohnung", &form.get("desired_dwelling")?)?;
    if let Some(current) = form.opt("current_dwelling")? {
        dwelling(w, "aktuelleWohnung", &current)?;
    }
    w.end("antrag")?;

    for attachment in s.attachments {
        meta::document(w, attachment)?;
    }
    w.end("antrag.wohnberechtigungsschein")
}

/// Name, birth date and sex, shared by the applicant and household members.
fn person(w: &mut W<'_>, person: &Node<'_, '_>) -> Result<(), RenderError> {
    w.text("familienname", person.str_at("family_name")?)?;
    w.text("vornamen", person.str_at("given_names")?)?;
    w.text("geburtsdatum", person.str_at("date_of_birth")?)?;
    w.coded_value("geschlecht", &GESCHLECHT, person.get("sex")?)
}

fn applicant(w: &mut W<'_>, form: &Node<'_, '_>) -> Result<(), RenderError> {
    let applicant = form.get("applicant")?;
    let contact = form.get("contact")?;
    w.start("antragsteller")?;
    w.text("personID", "p0")?;
    person(w, &applicant)?;
    w.coded_value(
        "staatsangehoerigkeit",
        &STAAT,
        applicant.get("nationality")?,
    )?;
    if let Some(status) = applicant.opt("marital_status")? {
        w.coded_value("familienstand", &FAMILIENSTAND, status)?;
    }
    w.start("anschrift")?;
    w.text("strasse", contact.str_at("street")?)?;
    w.text("hausnummer", contact.str_at("house_number")?)?;
    w.opt_text("zusatz", contact.opt_str("address_suffix")?)?;
    w.text("postleitzahl", contact.str_at("postcode")?)?;
    w.text("ort", contact.str_at("town")?)?;
    w.end("anschrift")?;
    for channel in ["email", "phone"] {
        if let Some(id) = contact.opt_str(channel)? {
            w.start("kommunikation")?;
            w.coded(
                "kanal",
                &ERREICHBARKEIT,
                ERREICHBARKEIT.fixed_code(NAME, channel)?,
            )?;
            w.text("kennung", id)?;
            w.end("kommunikation")?;
        }
    }
    w.end("antragsteller")
}

fn dwelling(w: &mut W<'_>, element: &str, dwelling: &Node<'_, '_>) -> Result<(), RenderError> {
    w.start(element)?;
    w.text(
        "raeume",
        ShortId::number(dwelling.get("rooms")?.u64()?).as_str(),
    )?;
    w.text("wohnflaeche", dwelling.str_at("size_m2")?)?;
    w.opt_text("kaltmiete", dwelling.opt_str("rent_cold_eur")?)?;
    w.end(element)
}
