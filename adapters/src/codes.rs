//! The code lists the adapters write: Kurier's own lists for the forms' enums
//! (URIs under `urn:xoev-de:kurier:codeliste:`, all version `1`) and the few
//! public XÖV lists the XSozial-basis outline names. Pure data; the adapters
//! look codes up with [`CodeList::code`], the XSDs in `schemas/xml/`
//! enumerate the same codes, and the golden tests check both agree.
//!
//! A Kurier list is closed: a form value it does not know makes the adapter
//! fail with the field's JSON pointer instead of writing a guess. Changing a
//! code is a breaking change for every receiving authority: add a new code
//! and a new list version instead.
//!
//! | list (`urn:xoev-de:kurier:codeliste:…`) | form value → code |
//! |---|---|
//! | `antragstellerrolle` | `beneficiary` 01 (leistungsberechtigte Person selbst), `legal_representative` 02 (gesetzliche Vertretung), `legal_guardian` 03 (rechtliche Betreuung) |
//! | `erwerbssituation` | `employed` 01, `unemployed` 02, `unable_to_work` 03 (erwerbsunfähig), `retired` 04 (Altersrente), `retired_early` 05 (Erwerbsminderungs-/Frührente), `in_education` 06, `other` 07 |
//! | `familienstand` | `single` 01, `married` 02, `civil_partnership` 03, `separated` 04 (getrennt lebend), `divorced` 05, `widowed` 06 |
//! | `krankenversicherung` | `statutory` 01, `private` 02, `none` 03 |
//! | `beziehung-haushalt` | `spouse` 01, `partner` 02, `child` 03, `grandchild` 04, `parent` 05, `sibling` 06, `other` 07 |
//! | `beziehung-dritte` | `son` 01, `daughter` 02, `parent` 03, `spouse` 04, `other` 05 |
//! | `wohnsituation` | `rented_flat` 01, `owned_home` 02, `shared_flat` 03, `institution` 04, `homeless` 05 |
//! | `einkommensart` (hzl; wbs uses all but 04) | `employment` 01, `self_employment` 02, `pension` 03, `child_benefit` 04, `maintenance` 05, `unemployment_benefit` 06, `other` 07 |
//! | `turnus` | `monthly` 01, `yearly` 02, `once` 03 |
//! | `ausgabenart` | `insurance` 01, `maintenance_paid` 02, `work_related` 03, `other` 04 |
//! | `vermoegensart` | `bank_balance` 01, `savings` 02, `vehicle` 03, `real_estate` 04, `life_insurance` 05, `claim` 06, `gift_given` 07, `other` 08 |
//! | `identifikationsart` | `tax_id` 01 (Steuer-Identifikationsnummer), `pension_insurance_number` 02 (Rentenversicherungsnummer) |
//! | `wbs-antragsart` | `first` 01 (Erstantrag), `renewal` 02 (Verlängerung), `change` 03 (Änderung) |
//! | `wbs-besondere-umstaende` | `severe_disability` 01, `young_household` 02, `child_under_6` 03, `pregnancy` 04, `single_parent` 05, `elderly` 06 |
//! | `leistungsart` | 01 Hilfe zum Lebensunterhalt (SGB XII §§ 27 ff.) — written for the service, not taken from the form |
//! | `staat` | ISO 3166-1 alpha-2 code as given (`DE`, `TR`, `PL`); an open list kept by ISO |
//!
//! Public lists:
//!
//! | list | version | use |
//! |---|---|---|
//! | `urn:xoev-de:xinneres:codeliste:geschlecht` | 1 | `female` w, `male` m, `diverse` d, `unspecified` x |
//! | `urn:de:xoev:codeliste:erreichbarkeit` | 3 | 01 E-Mail, 02 Telefon |
//! | `urn:xoev-de:kosit:codeliste:verzeichnisdienst` | 3 | DVDV |
//! | `urn:xoev-de:d-nrw:codeliste:vorgangscodes` | see [`VORGANGSTYP`] | the case type; **code not verified** against XRepository |
//! | `urn:xoev-de:d-nrw:codeliste:personentyp` | see [`PERSONENTYP`] | applicant / household member; **codes not verified** against XRepository |

use crate::xml::{Code, CodeList, Codes};

const fn code(value: &'static str, code: &'static str, meaning: &'static str) -> Code {
    Code {
        value,
        code,
        meaning,
    }
}

const fn kurier(uri: &'static str, codes: &'static [Code]) -> CodeList {
    CodeList {
        uri,
        version: "1",
        codes: Codes::Closed(codes),
    }
}

/// `applicant.capacity`: in which capacity the applicant files.
pub static ANTRAGSTELLERROLLE: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:antragstellerrolle",
    &[
        code("beneficiary", "01", "leistungsberechtigte Person selbst"),
        code("legal_representative", "02", "gesetzliche Vertretung"),
        code("legal_guardian", "03", "rechtliche Betreuung"),
    ],
);

/// `situation.current_situation`.
pub static ERWERBSSITUATION: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:erwerbssituation",
    &[
        code("employed", "01", "erwerbstätig"),
        code("unemployed", "02", "arbeitslos"),
        code("unable_to_work", "03", "erwerbsunfähig"),
        code("retired", "04", "Altersrente"),
        code("retired_early", "05", "Erwerbsminderungs- oder Frührente"),
        code("in_education", "06", "in Schule, Ausbildung oder Studium"),
        code("other", "07", "sonstige"),
    ],
);

/// `situation.marital_status`, `household[].marital_status`,
/// `applicant.marital_status` (wbs).
pub static FAMILIENSTAND: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:familienstand",
    &[
        code("single", "01", "ledig"),
        code("married", "02", "verheiratet"),
        code(
            "civil_partnership",
            "03",
            "eingetragene Lebenspartnerschaft",
        ),
        code("separated", "04", "getrennt lebend"),
        code("divorced", "05", "geschieden"),
        code("widowed", "06", "verwitwet"),
    ],
);

/// `situation.health_insurance`.
pub static KRANKENVERSICHERUNG: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:krankenversicherung",
    &[
        code("statutory", "01", "gesetzlich versichert"),
        code("private", "02", "privat versichert"),
        code("none", "03", "nicht versichert"),
    ],
);

/// `household[].relationship`: relation of a household member to the applicant.
pub static BEZIEHUNG_HAUSHALT: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:beziehung-haushalt",
    &[
        code(
            "spouse",
            "01",
            "Ehegatte, Ehegattin, eingetragene Lebenspartnerschaft",
        ),
        code(
            "partner",
            "02",
            "Partner, Partnerin einer eheähnlichen Gemeinschaft",
        ),
        code("child", "03", "Kind"),
        code("grandchild", "04", "Enkelkind"),
        code("parent", "05", "Elternteil"),
        code("sibling", "06", "Geschwister"),
        code("other", "07", "sonstige Person"),
    ],
);

/// `relatives_outside_household[].relationship`.
pub static BEZIEHUNG_DRITTE: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:beziehung-dritte",
    &[
        code("son", "01", "Sohn"),
        code("daughter", "02", "Tochter"),
        code("parent", "03", "Elternteil"),
        code("spouse", "04", "Ehegatte, Ehegattin"),
        code("other", "05", "sonstige Angehörige"),
    ],
);

/// `accommodation.situation`.
pub static WOHNSITUATION: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:wohnsituation",
    &[
        code("rented_flat", "01", "Mietwohnung"),
        code("owned_home", "02", "Wohneigentum"),
        code("shared_flat", "03", "Wohngemeinschaft"),
        code("institution", "04", "Einrichtung"),
        code("homeless", "05", "ohne Wohnung"),
    ],
);

/// `income[].kind` (hzl) and `annual_income[].kind` (wbs).
pub static EINKOMMENSART: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:einkommensart",
    &[
        code("employment", "01", "nichtselbständige Arbeit"),
        code("self_employment", "02", "selbständige Arbeit"),
        code("pension", "03", "Rente, Pension"),
        code("child_benefit", "04", "Kindergeld"),
        code("maintenance", "05", "Unterhalt"),
        code("unemployment_benefit", "06", "Arbeitslosengeld"),
        code("other", "07", "sonstiges Einkommen"),
    ],
);

/// `income[].interval`, `expenditure[].interval`.
pub static TURNUS: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:turnus",
    &[
        code("monthly", "01", "monatlich"),
        code("yearly", "02", "jährlich"),
        code("once", "03", "einmalig"),
    ],
);

/// `expenditure[].kind`.
pub static AUSGABENART: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:ausgabenart",
    &[
        code("insurance", "01", "Versicherungsbeiträge"),
        code("maintenance_paid", "02", "gezahlter Unterhalt"),
        code("work_related", "03", "Werbungskosten, Arbeitsmittel"),
        code("other", "04", "sonstige Ausgaben"),
    ],
);

/// `assets[].kind`.
pub static VERMOEGENSART: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:vermoegensart",
    &[
        code("bank_balance", "01", "Bankguthaben"),
        code("savings", "02", "Sparguthaben, Wertpapiere"),
        code("vehicle", "03", "Kraftfahrzeug"),
        code("real_estate", "04", "Grundeigentum"),
        code("life_insurance", "05", "Lebensversicherung"),
        code("claim", "06", "Forderung"),
        code("gift_given", "07", "Schenkung an Dritte"),
        code("other", "08", "sonstiges Vermögen"),
    ],
);

/// `contact.identification.type`.
pub static IDENTIFIKATIONSART: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:identifikationsart",
    &[
        code("tax_id", "01", "Steuer-Identifikationsnummer"),
        code(
            "pension_insurance_number",
            "02",
            "Rentenversicherungsnummer",
        ),
    ],
);

/// `application_kind` (wbs).
pub static WBS_ANTRAGSART: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:wbs-antragsart",
    &[
        code("first", "01", "Erstantrag"),
        code("renewal", "02", "Verlängerung"),
        code("change", "03", "Änderung"),
    ],
);

/// `special_circumstances[]` (wbs): circumstances that raise the income
/// limits or the priority of an application.
pub static WBS_BESONDERE_UMSTAENDE: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:wbs-besondere-umstaende",
    &[
        code("severe_disability", "01", "Schwerbehinderung"),
        code("young_household", "02", "junger Haushalt, junges Ehepaar"),
        code("child_under_6", "03", "Kind unter 6 Jahren"),
        code("pregnancy", "04", "Schwangerschaft"),
        code("single_parent", "05", "alleinerziehend"),
        code("elderly", "06", "ältere Menschen"),
    ],
);

/// The benefit applied for; keyed by service, not by a form field.
pub static LEISTUNGSART: CodeList = kurier(
    "urn:xoev-de:kurier:codeliste:leistungsart",
    &[code(
        "hzl",
        "01",
        "Hilfe zum Lebensunterhalt (SGB XII §§ 27 ff.)",
    )],
);

/// Countries: `nationality`, `country_of_birth`.
pub static STAAT: CodeList = CodeList {
    uri: "urn:xoev-de:kurier:codeliste:staat",
    version: "1",
    codes: Codes::Iso3166Alpha2,
};

/// Sex, as in XInneres.
pub static GESCHLECHT: CodeList = CodeList {
    uri: "urn:xoev-de:xinneres:codeliste:geschlecht",
    version: "1",
    codes: Codes::Closed(&[
        code("female", "w", "weiblich"),
        code("male", "m", "männlich"),
        code("diverse", "d", "divers"),
        code("unspecified", "x", "ohne Angabe im Geburtenregister"),
    ]),
};

/// Communication channels (XÖV Erreichbarkeit); the values are Kurier's names
/// for the contact fields.
pub static ERREICHBARKEIT: CodeList = CodeList {
    uri: "urn:de:xoev:codeliste:erreichbarkeit",
    version: "3",
    codes: Codes::Closed(&[
        code("email", "01", "E-Mail"),
        code("phone", "02", "Telefon"),
    ]),
};

/// Directory services (KoSIT); Kurier's parties are DVDV entries.
pub static VERZEICHNISDIENST: CodeList = CodeList {
    uri: "urn:xoev-de:kosit:codeliste:verzeichnisdienst",
    version: "3",
    codes: Codes::Closed(&[code(
        "dvdv",
        "DVDV",
        "Deutsches Verwaltungsdiensteverzeichnis",
    )]),
};

/// The case type of XSozial-basis. The URI is the one of the published
/// message; the version and the code are Kurier's assumption and must be
/// checked against the list on XRepository before production use.
pub static VORGANGSTYP: CodeList = CodeList {
    uri: "urn:xoev-de:d-nrw:codeliste:vorgangscodes",
    version: "1",
    codes: Codes::Closed(&[code(
        "hzl",
        "hzl.antrag",
        "Antrag auf Hilfe zum Lebensunterhalt",
    )]),
};

/// The person type of XSozial-basis. The URI is the one of the published
/// message; version and codes are Kurier's assumption (see [`VORGANGSTYP`]).
pub static PERSONENTYP: CodeList = CodeList {
    uri: "urn:xoev-de:d-nrw:codeliste:personentyp",
    version: "1",
    codes: Codes::Closed(&[
        code("applicant", "antragsteller", "antragstellende Person"),
        code("household", "haushaltsmitglied", "Mitglied des Haushalts"),
    ]),
};

/// Every list above, for tests and documentation.
pub static ALL: &[&CodeList] = &[
    &ANTRAGSTELLERROLLE,
    &ERWERBSSITUATION,
    &FAMILIENSTAND,
    &KRANKENVERSICHERUNG,
    &BEZIEHUNG_HAUSHALT,
    &BEZIEHUNG_DRITTE,
    &WOHNSITUATION,
    &EINKOMMENSART,
    &TURNUS,
    &AUSGABENART,
    &VERMOEGENSART,
    &IDENTIFIKATIONSART,
    &WBS_ANTRAGSART,
    &WBS_BESONDERE_UMSTAENDE,
    &LEISTUNGSART,
    &STAAT,
    &GESCHLECHT,
    &ERREICHBARKEIT,
    &VERZEICHNISDIENST,
    &VORGANGSTYP,
    &PERSONENTYP,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_lists_have_unique_values_and_codes() {
        for list in ALL {
            if let Codes::Closed(codes) = &list.codes {
                for (i, a) in codes.iter().enumerate() {
                    for b in &codes[i + 1..] {
                        assert_ne!(a.value, b.value, "{}", list.uri);
                        assert_ne!(a.code, b.code, "{}", list.uri);
                    }
                }
            }
        }
    }
}
