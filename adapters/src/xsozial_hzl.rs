//! The `xsozial-hzl` adapter: renders an `hzl` submission (Hilfe zum
//! Lebensunterhalt, SGB XII) as an XSozial-basis 2.4.0 message
//! `vorgang.transportieren.1000001`, UTF-8, described by
//! `schemas/xml/xsozial-hzl.xsd`. It touches only its arguments and the
//! output buffer.
//!
//! The shape follows the outline of a published XSozial-basis message
//! (`shared/XSOZIAL.md` beside this repository): an unqualified `nachrichtenkopf.g2g`, then
//! `xsb:xsozial` with the case (`xsb:vorgang`: type, application date,
//! persons, third parties) and one `xsb:dokument` per attachment. Persons are
//! written once with a local id and referred to by it: the applicant is `p0`,
//! household member *N* is `p(N+1)`, relatives outside the household are
//! `d0`, `d1`, … A person ref of the form (`applicant`, `household:N`)
//! becomes that id.
//!
//! Where the hzl form carries data the outline does not show, the document
//! extends it in the same style, and always *after* the outline's own
//! elements, so the outline stays a prefix of every element it describes:
//!
//! | where | Kurier extension |
//! |---|---|
//! | `xsb:nameNatuerlichePerson` | `xsb:namensvorsatz`, `xsb:geburtsname` |
//! | `xsb:geburt` | `xsb:geburtsort`, `xsb:geburtsstaat` |
//! | `xsb:allgemein` | `xsb:staatsangehoerigkeit`, `xsb:familienstand` |
//! | `xsb:person` | `xsb:anschrift`, `xsb:kommunikation`, `xsb:identifikationsnummer`, `xsb:antragstellerangaben` (applicant), `xsb:haushaltsmitglied` (members) |
//! | `xsb:dritte` | `xsb:personID`, `xsb:beziehung`, name and birth date before the outline's `xsb:anschrift` |
//! | `xsb:vorgang` | `xsb:antragsdaten`: previous application, legal guardianship, declarations, accommodation, income, other benefits applied for, expenditure, assets, bank account |
//! | `xsb:dokumentRepraesentation` | `xsb:groesse` (bytes), `xsb:sha256` |
//! | `xsb:dokument` | `xsb:dokumenttyp` |
//! | `xsb:xsozial` | `xsb:uebermittlung`: submission id, service, portal, destination, submitted at, applicant ref |
//!
//! Every form field the submission carries appears in the document: strings
//! and amounts verbatim (money as the portal wrote it, e.g. `612.37`),
//! booleans as `true`/`false`, enums as codes:
//!
//! | form field | element | code list (see [`crate::codes`]) |
//! |---|---|---|
//! | `applicant.capacity` | `antragstellerangaben/rolle` | `…:kurier:codeliste:antragstellerrolle` |
//! | `applicant.sex`, `household[].sex` | `allgemein/geschlecht/geschlecht` | `urn:xoev-de:xinneres:codeliste:geschlecht` |
//! | `applicant.nationality`, `household[].nationality` | `allgemein/staatsangehoerigkeit` | `…:kurier:codeliste:staat` |
//! | `applicant.country_of_birth` | `geburt/geburtsstaat` | `…:kurier:codeliste:staat` |
//! | `contact.identification.type` | `identifikationsnummer/art` | `…:kurier:codeliste:identifikationsart` |
//! | `situation.current_situation` | `antragstellerangaben/erwerbssituation` | `…:kurier:codeliste:erwerbssituation` |
//! | `situation.marital_status`, `household[].marital_status` | `allgemein/familienstand` | `…:kurier:codeliste:familienstand` |
//! | `situation.health_insurance` | `antragstellerangaben/krankenversicherung` | `…:kurier:codeliste:krankenversicherung` |
//! | `household[].relationship` | `haushaltsmitglied/beziehung` | `…:kurier:codeliste:beziehung-haushalt` |
//! | `relatives_outside_household[].relationship` | `dritte/beziehung` | `…:kurier:codeliste:beziehung-dritte` |
//! | `accommodation.situation` | `unterkunft/wohnsituation` | `…:kurier:codeliste:wohnsituation` |
//! | `income[].kind` | `einkommen/einkommensart` | `…:kurier:codeliste:einkommensart` |
//! | `income[].interval`, `expenditure[].interval` | `…/turnus` | `…:kurier:codeliste:turnus` |
//! | `expenditure[].kind` | `ausgabe/ausgabenart` | `…:kurier:codeliste:ausgabenart` |
//! | `assets[].kind` | `vermoegen/vermoegensart` | `…:kurier:codeliste:vermoegensart` |
//! | `contact.phone`, `contact.email` | `person/kommunikation/kanal` | `urn:de:xoev:codeliste:erreichbarkeit` (02, 01) |
//!
//! [`leaf`] states this mapping for every JSON pointer, for the tests that
//! look for every value of a submission in its document.
//!
//! Not written, because [`RenderContext`] does not carry it yet: the
//! outline's `dvdvDienstkennung` (the receiving service's WSDL URI); the XSD
//! makes it optional.

use crate::codes::{
    ANTRAGSTELLERROLLE, AUSGABENART, BEZIEHUNG_DRITTE, BEZIEHUNG_HAUSHALT, EINKOMMENSART,
    ERREICHBARKEIT, ERWERBSSITUATION, FAMILIENSTAND, GESCHLECHT, IDENTIFIKATIONSART,
    KRANKENVERSICHERUNG, LEISTUNGSART, PERSONENTYP, STAAT, TURNUS, VERMOEGENSART,
    VERZEICHNISDIENST, VORGANGSTYP, WOHNSITUATION,
};
use crate::xml::{CodeList, Leaf, Node, ShortId, XmlWriter, classify, date_part, person_ref};
use crate::{Adapter, Attachment, Party, Profile, RenderContext, RenderError, Submission};

/// The adapter's configured name.
pub const NAME: &str = "xsozial-hzl";

/// The only service this adapter renders.
pub const SERVICE: &str = "hzl";

/// The XSozial-basis 2.4.0 namespace, prefix `xsb`.
pub const NAMESPACE: &str = "https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0";

const ROOT: &str = "xsb:vorgang.transportieren.1000001";

/// Renders `hzl` submissions as XSozial-basis 2.4.0.
#[derive(Debug, Clone, Copy, Default)]
pub struct XsozialHzl;

/// What this adapter is.
pub static PROFILE: Profile = Profile {
    name: NAME,
    services: &[SERVICE],
    encoding: "UTF-8",
    xsd: "xsozial-hzl.xsd",
};

impl Adapter for XsozialHzl {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn write(
        &self,
        submission: &Submission<'_>,
        context: &RenderContext<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        let mut w = XmlWriter::new(out, NAME);
        document(&mut w, submission, context)?;
        w.finish().map(drop)
    }
}

/// Which form fields are coded, and with which list; `*` stands for an array
/// index.
pub const CODED_FIELDS: &[(&str, &CodeList)] = &[
    ("/form/applicant/capacity", &ANTRAGSTELLERROLLE),
    ("/form/applicant/sex", &GESCHLECHT),
    ("/form/applicant/nationality", &STAAT),
    ("/form/applicant/country_of_birth", &STAAT),
    ("/form/contact/identification/type", &IDENTIFIKATIONSART),
    ("/form/situation/current_situation", &ERWERBSSITUATION),
    ("/form/situation/marital_status", &FAMILIENSTAND),
    ("/form/situation/health_insurance", &KRANKENVERSICHERUNG),
    ("/form/household/*/relationship", &BEZIEHUNG_HAUSHALT),
    ("/form/household/*/sex", &GESCHLECHT),
    ("/form/household/*/marital_status", &FAMILIENSTAND),
    ("/form/household/*/nationality", &STAAT),
    (
        "/form/relatives_outside_household/*/relationship",
        &BEZIEHUNG_DRITTE,
    ),
    ("/form/accommodation/situation", &WOHNSITUATION),
    ("/form/income/*/kind", &EINKOMMENSART),
    ("/form/income/*/interval", &TURNUS),
    ("/form/expenditure/*/kind", &AUSGABENART),
    ("/form/expenditure/*/interval", &TURNUS),
    ("/form/assets/*/kind", &VERMOEGENSART),
];

/// Which form fields are person refs.
pub const PERSON_REF_FIELDS: &[&str] = &["/form/income/*/person", "/form/assets/*/owner"];

/// How the string at `pointer` of an hzl envelope is written; see [`Leaf`].
pub fn leaf(pointer: &str) -> Leaf {
    classify(pointer, CODED_FIELDS, PERSON_REF_FIELDS)
}

type W<'o> = XmlWriter<&'o mut Vec<u8>>;

fn document(
    w: &mut W<'_>,
    s: &Submission<'_>,
    context: &RenderContext<'_>,
) -> Result<(), RenderError> {
    let form = Node::form(NAME, s);
    let household = form.get("household")?;
    let household_len = household.len()?;

    w.declaration("UTF-8")?;
    w.start_with(
        ROOT,
        &[
            ("xmlns:xsb", NAMESPACE),
            ("produkt", "Kurier"),
            ("produkthersteller", "Kurier"),
            ("produktversion", env!("CARGO_PKG_VERSION")),
            ("standard", "XSozial-basis"),
            ("version", "2.4.0"),
        ],
    )?;
    header(w, context)?;

    w.start("xsb:xsozial")?;
    w.start("xsb:identifikationVorgang")?;
    w.text("xsb:vorgangsID", s.submission_id)?;
    w.end("xsb:identifikationVorgang")?;

    w.start("xsb:vorgang")?;
    w.coded(
        "xsb:vorgangsTyp",
        &VORGANGSTYP,
        VORGANGSTYP.fixed_code(NAME, SERVICE)?,
    )?;
    w.text(
        "xsb:antragsDatum",
        date_part(NAME, s.submitted_at, "/submitted_at")?,
    )?;
    applicant(w, &form)?;
    for (index, member) in household.items()?.enumerate() {
        household_member(w, &member, index)?;
    }
    if let Some(relatives) = form.opt("relatives_outside_household")? {
        for (index, relative) in relatives.items()?.enumerate() {
            third_party(w, &relative, index)?;
        }
    }
    case_data(w, &form, household_len)?;
    w.end("xsb:vorgang")?;

    for attachment in s.attachments {
        document_element(w, attachment)?;
    }
    transmission(w, s)?;
    w.end("xsb:xsozial")?;
    w.end(ROOT)
}

fn header(w: &mut W<'_>, context: &RenderContext<'_>) -> Result<(), RenderError> {
    w.start("nachrichtenkopf.g2g")?;
    w.start("identifikation.nachricht")?;
    w.text("nachrichtenUUID", context.message_id)?;
    // The outline shows the message type as a bare code: its list is fixed
    // by the message type itself.
    w.start("nachrichtentyp")?;
    w.text("code", "1000001")?;
    w.end("nachrichtentyp")?;
    w.text("erstellungszeitpunkt", context.created_at)?;
    w.end("identifikation.nachricht")?;
    party(w, "leser", &context.recipient)?;
    party(w, "autor", &context.sender)?;
    w.end("nachrichtenkopf.g2g")
}

fn party(w: &mut W<'_>, element: &str, party: &Party<'_>) -> Result<(), RenderError> {
    w.start(element)?;
    w.coded(
        "verzeichnisdienst",
        &VERZEICHNISDIENST,
        VERZEICHNISDIENST.fixed_code(NAME, "dvdv")?,
    )?;
    w.text("kennung", party.id)?;
    w.text("name", party.name)?;
    w.end(element)
}

/// `xsb:nameNatuerlichePerson` from `given_names`, `family_name` and, where
/// the form has them, `academic_title`, `name_prefix`, `birth_name`.
fn name(w: &mut W<'_>, person: &Node<'_, '_>) -> Result<(), RenderError> {
    w.start("xsb:nameNatuerlichePerson")?;
    w.start("xsb:familienname")?;
    w.text("xsb:name", person.str_at("family_name")?)?;
    w.end("xsb:familienname")?;
    w.start("xsb:vorname")?;
    w.text("xsb:name", person.str_at("given_names")?)?;
    w.end("xsb:vorname")?;
    w.opt_text("xsb:titel", person.opt_str("academic_title")?)?;
    w.opt_text("xsb:namensvorsatz", person.opt_str("name_prefix")?)?;
    if let Some(birth_name) = person.opt_str("birth_name")? {
        w.start("xsb:geburtsname")?;
        w.text("xsb:name", birth_name)?;
        w.end("xsb:geburtsname")?;
    }
    w.end("xsb:nameNatuerlichePerson")
}

/// `xsb:geburt` from `date_of_birth` and, where present, `place_of_birth`,
/// `country_of_birth`.
fn birth(w: &mut W<'_>, person: &Node<'_, '_>) -> Result<(), RenderError> {
    w.start("xsb:geburt")?;
    w.text("xsb:datum", person.str_at("date_of_birth")?)?;
    w.opt_text("xsb:geburtsort", person.opt_str("place_of_birth")?)?;
    if let Some(country) = person.opt("country_of_birth")? {
        w.coded_value("xsb:geburtsstaat", &STAAT, country)?;
    }
    w.end("xsb:geburt")
}

/// `xsb:allgemein`: name, birth, sex, nationality, marital status.
fn general(
    w: &mut W<'_>,
    person: &Node<'_, '_>,
    marital_status: Option<Node<'_, '_>>,
) -> Result<(), RenderError> {
    w.start("xsb:allgemein")?;
    name(w, person)?;
    birth(w, person)?;
    w.start("xsb:geschlecht")?;
    w.coded_value("xsb:geschlecht", &GESCHLECHT, person.get("sex")?)?;
    w.end("xsb:geschlecht")?;
    if let Some(nationality) = person.opt("nationality")? {
        w.coded_value("xsb:staatsangehoerigkeit", &STAAT, nationality)?;
    }
    if let Some(status) = marital_status {
        w.coded_value("xsb:familienstand", &FAMILIENSTAND, status)?;
    }
    w.end("xsb:allgemein")
}

/// `xsb:anschrift` from the address fields of `node`.
fn address(w: &mut W<'_>, node: &Node<'_, '_>) -> Result<(), RenderError> {
    w.start("xsb:anschrift")?;
    w.start("xsb:anschriftInland")?;
    w.start("xsb:gebaeude")?;
    w.text("xsb:postleitzahl", node.str_at("postcode")?)?;
    w.text("xsb:strasse", node.str_at("street")?)?;
    // Verbatim: "12a" or "3-5" are not split into number and part, so
    // nothing the applicant wrote is reinterpreted.
    w.text("xsb:hausnummer", node.str_at("house_number")?)?;
    w.text("xsb:wohnort", node.str_at("town")?)?;
    w.opt_text("xsb:zusatzangaben", node.opt_str("address_suffix")?)?;
    w.end("xsb:gebaeude")?;
    w.end("xsb:anschriftInland")?;
    w.end("xsb:anschrift")
}

fn communication(w: &mut W<'_>, channel: &'static str, id: &str) -> Result<(), RenderError> {
    w.start("xsb:kommunikation")?;
    w.coded(
        "xsb:kanal",
        &ERREICHBARKEIT,
        ERREICHBARKEIT.fixed_code(NAME, channel)?,
    )?;
    w.text("xsb:kennung", id)?;
    w.end("xsb:kommunikation")
}

fn applicant(w: &mut W<'_>, form: &Node<'_, '_>) -> Result<(), RenderError> {
    let person = form.get("applicant")?;
    let contact = form.get("contact")?;
    let situation = form.get("situation")?;

    w.start("xsb:person")?;
    w.text("xsb:personID", "p0")?;
    w.coded(
        "xsb:typ",
        &PERSONENTYP,
        PERSONENTYP.fixed_code(NAME, "applicant")?,
    )?;
    w.boolean("xsb:antragsteller", true)?;
    w.boolean("xsb:schriftgutempfaenger", true)?;
    general(w, &person, Some(situation.get("marital_status")?))?;
    w.start("xsb:beantragteLeistung")?;
    w.text("xsb:id", "l0")?;
    w.coded(
        "xsb:leistungArt",
        &LEISTUNGSART,
        LEISTUNGSART.fixed_code(NAME, SERVICE)?,
    )?;
    w.end("xsb:beantragteLeistung")?;

    address(w, &contact)?;
    if let Some(email) = contact.opt_str("email")? {
        communication(w, "email", email)?;
    }
    if let Some(phone) = contact.opt_str("phone")? {
        communication(w, "phone", phone)?;
    }
    if let Some(identification) = contact.opt("identification")? {
        w.start("xsb:identifikationsnummer")?;
        w.coded_value("xsb:art", &IDENTIFIKATIONSART, identification.get("type")?)?;
        w.text("xsb:wert", identification.str_at("value")?)?;
        w.end("xsb:identifikationsnummer")?;
    }

    w.start("xsb:antragstellerangaben")?;
    w.coded_value("xsb:rolle", &ANTRAGSTELLERROLLE, person.get("capacity")?)?;
    w.boolean(
        "xsb:daueraufenthaltInDeutschland",
        person.bool_at("permanent_residence_in_germany")?,
    )?;
    w.coded_value(
        "xsb:erwerbssituation",
        &ERWERBSSITUATION,
        situation.get("current_situation")?,
    )?;
    w.coded_value(
        "xsb:krankenversicherung",
        &KRANKENVERSICHERUNG,
        situation.get("health_insurance")?,
    )?;
    w.opt_boolean("xsb:schwanger", situation.opt_bool("pregnant")?)?;
    w.opt_boolean(
        "xsb:schwerbehinderung",
        situation.opt_bool("severe_disability")?,
    )?;
    w.opt_text(
        "xsb:gesundheitlicheHinweise",
        situation.opt_str("medical_notes")?,
    )?;
    w.end("xsb:antragstellerangaben")?;
    w.end("xsb:person")
}

fn household_member(w: &mut W<'_>, member: &Node<'_, '_>, index: usize) -> Result<(), RenderError> {
    w.start("xsb:person")?;
    w.text("xsb:personID", ShortId::new("p", index as u64 + 1).as_str())?;
    w.coded(
        "xsb:typ",
        &PERSONENTYP,
        PERSONENTYP.fixed_code(NAME, "household")?,
    )?;
    w.boolean("xsb:antragsteller", false)?;
    w.boolean("xsb:schriftgutempfaenger", false)?;
    general(w, member, member.opt("marital_status")?)?;

    w.start("xsb:haushaltsmitglied")?;
    w.coded_value(
        "xsb:beziehung",
        &BEZIEHUNG_HAUSHALT,
        member.get("relationship")?,
    )?;
    let flags = [
        ("xsb:pflegekind", "foster_child"),
        ("xsb:dauerhaftImHaushalt", "permanent_member"),
        ("xsb:erwerbsfaehig", "able_to_work"),
        ("xsb:schwanger", "pregnant"),
        ("xsb:asylbewerberleistungen", "asylum_seeker_benefits"),
        ("xsb:schulpflichtig", "compulsory_schooling"),
        ("xsb:besondererMedizinischerBedarf", "special_medical_needs"),
    ];
    for (element, field) in flags {
        w.opt_boolean(element, member.opt_bool(field)?)?;
    }
    if let Some(benefits) = member.opt("receives_other_benefits")? {
        for benefit in benefits.items()? {
            w.text("xsb:bezogeneLeistung", benefit.str()?)?;
        }
    }
    w.end("xsb:haushaltsmitglied")?;
    w.end("xsb:person")
}

fn third_party(w: &mut W<'_>, relative: &Node<'_, '_>, index: usize) -> Result<(), RenderError> {
    w.start("xsb:dritte")?;
    w.text("xsb:personID", ShortId::new("d", index as u64).as_str())?;
    w.coded_value(
        "xsb:beziehung",
        &BEZIEHUNG_DRITTE,
        relative.get("relationship")?,
    )?;
    name(w, relative)?;
    w.start("xsb:geburt")?;
    w.text("xsb:datum", relative.str_at("date_of_birth")?)?;
    w.end("xsb:geburt")?;
    address(w, relative)?;
    w.end("xsb:dritte")
}

/// `xsb:antragsdaten`: everything about the case that is not a person.
fn case_data(w: &mut W<'_>, form: &Node<'_, '_>, household_len: usize) -> Result<(), RenderError> {
    w.start("xsb:antragsdaten")?;
    w.boolean(
        "xsb:fruehererSozialhilfeantrag",
        form.bool_at("previous_social_welfare_application")?,
    )?;
    w.boolean(
        "xsb:rechtlicheBetreuung",
        form.bool_at("legal_guardianship")?,
    )?;

    let declarations = form.get("declarations")?;
    w.start("xsb:erklaerungen")?;
    w.boolean(
        "xsb:belehrungZurKenntnisGenommen",
        declarations.bool_at("legal_instructions_acknowledged")?,
    )?;
    w.boolean(
        "xsb:aenderungenWerdenMitgeteilt",
        declarations.bool_at("changes_will_be_reported")?,
    )?;
    w.end("xsb:erklaerungen")?;

    let accommodation = form.get("accommodation")?;
    w.start("xsb:unterkunft")?;
    w.coded_value(
        "xsb:wohnsituation",
        &WOHNSITUATION,
        accommodation.get("situation")?,
    )?;
    w.opt_text("xsb:wohnflaeche", accommodation.opt_str("size_m2")?)?;
    w.opt_text("xsb:kaltmiete", accommodation.opt_str("rent_cold_eur")?)?;
    w.opt_text("xsb:heizkosten", accommodation.opt_str("heating_eur")?)?;
    w.opt_text(
        "xsb:nebenkosten",
        accommodation.opt_str("service_charges_eur")?,
    )?;
    w.end("xsb:unterkunft")?;

    for income in form.get("income")?.items()? {
        w.start("xsb:einkommen")?;
        w.text(
            "xsb:personID",
            person_ref(&income.get("person")?, household_len)?.as_str(),
        )?;
        w.coded_value("xsb:einkommensart", &EINKOMMENSART, income.get("kind")?)?;
        w.text("xsb:betrag", income.str_at("amount_eur")?)?;
        w.coded_value("xsb:turnus", &TURNUS, income.get("interval")?)?;
        w.end("xsb:einkommen")?;
    }
    if let Some(benefits) = form.opt("other_benefits_applied_for")? {
        for benefit in benefits.items()? {
            w.text("xsb:weitereBeantragteLeistung", benefit.str()?)?;
        }
    }
    for expenditure in form.get("expenditure")?.items()? {
        w.start("xsb:ausgabe")?;
        w.coded_value("xsb:ausgabenart", &AUSGABENART, expenditure.get("kind")?)?;
        w.text("xsb:betrag", expenditure.str_at("amount_eur")?)?;
        w.coded_value("xsb:turnus", &TURNUS, expenditure.get("interval")?)?;
        w.end("xsb:ausgabe")?;
    }
    for asset in form.get("assets")?.items()? {
        w.start("xsb:vermoegen")?;
        w.text(
            "xsb:personID",
            person_ref(&asset.get("owner")?, household_len)?.as_str(),
        )?;
        w.coded_value("xsb:vermoegensart", &VERMOEGENSART, asset.get("kind")?)?;
        w.text("xsb:wert", asset.str_at("value_eur")?)?;
        w.opt_text("xsb:bemerkung", asset.opt_str("note")?)?;
        w.end("xsb:vermoegen")?;
    }

    let account = form.get("bank_account")?;
    w.start("xsb:bankverbindung")?;
    w.text("xsb:kontoinhaber", account.str_at("account_holder")?)?;
    w.text("xsb:iban", account.str_at("iban")?)?;
    w.end("xsb:bankverbindung")?;
    w.end("xsb:antragsdaten")
}

fn document_element(w: &mut W<'_>, attachment: &Attachment<'_>) -> Result<(), RenderError> {
    w.start("xsb:dokument")?;
    w.text("xsb:dokumentID", attachment.id)?;
    w.text("xsb:name", attachment.filename)?;
    w.start("xsb:dokumentRepraesentation")?;
    w.text("xsb:dokumentRepraesentationID", attachment.id)?;
    w.text("xsb:mimeType", attachment.media_type)?;
    w.text("xsb:inhalt", attachment.content_base64)?;
    w.text("xsb:groesse", ShortId::number(attachment.size).as_str())?;
    w.text("xsb:sha256", attachment.sha256)?;
    w.end("xsb:dokumentRepraesentation")?;
    w.text("xsb:dokumenttyp", attachment.document_type)?;
    w.end("xsb:dokument")
}

fn transmission(w: &mut W<'_>, s: &Submission<'_>) -> Result<(), RenderError> {
    w.start("xsb:uebermittlung")?;
    w.text("xsb:einreichungsID", s.submission_id)?;
    w.text("xsb:dienst", s.service)?;
    w.text("xsb:portal", s.portal)?;
    w.text("xsb:ziel", s.destination)?;
    w.text("xsb:eingereichtAm", s.submitted_at)?;
    w.opt_text("xsb:antragstellerReferenz", s.applicant_ref)?;
    w.end("xsb:uebermittlung")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_classified_by_pointer() {
        assert!(matches!(leaf("/form/household/3/sex"), Leaf::Coded(l) if l.uri == GESCHLECHT.uri));
        assert!(matches!(leaf("/form/income/0/person"), Leaf::PersonRef));
        assert!(matches!(leaf("/form/household/x/sex"), Leaf::Verbatim));
        assert!(matches!(leaf("/form/household/0/sex/1"), Leaf::Verbatim));
        assert!(matches!(
            leaf("/form/applicant/given_names"),
            Leaf::Verbatim
        ));
    }
}
