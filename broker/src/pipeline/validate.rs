//! Validation of the envelope and of the `form` against JSON Schema 2020-12.
//!
//! Schemas come from `schemas/` (compiled into the binary) or, when the
//! configuration names a `schemas_dir`, from that directory, so an operator
//! can fix a schema and replay without a new build. Reasons name JSON pointers
//! and schema keywords, never instance values: jsonschema's own `Display`
//! quotes the offending value, so it is never used here.

use std::collections::BTreeMap;
use std::path::Path;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::domain::reason::{Reason, ReasonCode, safe_name};

/// At most this many schema errors are named in one reason detail.
const MAX_ERRORS_IN_DETAIL: usize = 5;

const BUILTIN_ENVELOPE: &str = include_str!("../../../schemas/envelope.schema.json");
const BUILTIN_FORMS: &[(&str, &str)] = &[
    (
        "hzl",
        include_str!("../../../schemas/forms/hzl.schema.json"),
    ),
    (
        "wbs",
        include_str!("../../../schemas/forms/wbs.schema.json"),
    ),
    (
        "buergergeld-wba",
        include_str!("../../../schemas/forms/buergergeld-wba.schema.json"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum SchemaLoadError {
    #[error("schema {name}: not valid JSON: {message}")]
    Json { name: String, message: String },
    #[error("schema {name}: not a valid JSON Schema: {message}")]
    Schema { name: String, message: String },
    #[error("schema directory {dir}: {message}")]
    Dir { dir: String, message: String },
}

/// The compiled envelope schema and one compiled form schema per service.
pub struct Schemas {
    envelope: jsonschema::Validator,
    forms: BTreeMap<String, jsonschema::Validator>,
}

fn compile(name: &str, text: &str) -> Result<jsonschema::Validator, SchemaLoadError> {
    let schema: Value = serde_json::from_str(text).map_err(|e| SchemaLoadError::Json {
        name: name.to_owned(),
        message: e.to_string(),
    })?;
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| SchemaLoadError::Schema {
            name: name.to_owned(),
            // Errors here concern our own schema files, not submissions.
            message: e.to_string(),
        })
}

impl Schemas {
    /// The schemas shipped in `schemas/`, compiled into the binary.
    pub fn builtin() -> Result<Schemas, SchemaLoadError> {
        let envelope = compile("envelope.schema.json", BUILTIN_ENVELOPE)?;
        let mut forms = BTreeMap::new();
        for (service, text) in BUILTIN_FORMS {
            forms.insert(
                (*service).to_owned(),
                compile(&format!("forms/{service}.schema.json"), text)?,
            );
        }
        Ok(Schemas { envelope, forms })
    }

    /// Load `envelope.schema.json` and `forms/<service>.schema.json` from `dir`.
    pub fn load_dir(dir: &Path) -> Result<Schemas, SchemaLoadError> {
        let dir_err = |message: String| SchemaLoadError::Dir {
            dir: dir.display().to_string(),
            message,
        };
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| dir_err(format!("{}: {e}", path.display())))
        };
        let envelope = compile(
            "envelope.schema.json",
            &read(&dir.join("envelope.schema.json"))?,
        )?;
        let mut forms = BTreeMap::new();
        let entries =
            std::fs::read_dir(dir.join("forms")).map_err(|e| dir_err(format!("forms/: {e}")))?;
        for entry in entries {
            let path = entry.map_err(|e| dir_err(e.to_string()))?.path();
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            if let Some(service) = file.strip_suffix(".schema.json") {
                forms.insert(service.to_owned(), compile(file, &read(&path)?)?);
            }
        }
        Ok(Schemas { envelope, forms })
    }

    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.forms.keys().map(String::as_str)
    }

    /// The envelope against `envelope.schema.json`: `malformed_envelope`.
    pub fn check_envelope(&self, envelope: &Value) -> Result<(), Reason> {
        check(&self.envelope, envelope, "", ReasonCode::MalformedEnvelope)
    }

    /// The form against its service's schema: `unknown_service` when there is
    /// no schema for the service, `schema_violation` when the form fails it.
    pub fn check_form(&self, service: &str, form: &Value) -> Result<(), Reason> {
        let Some(validator) = self.forms.get(service) else {
            return Err(Reason::new(
                ReasonCode::UnknownService,
                format!("no form schema for service {}", safe_name(service)),
            ));
        };
        check(validator, form, "/form", ReasonCode::SchemaViolation)
    }
}

fn check(
    validator: &jsonschema::Validator,
    instance: &Value,
    prefix: &str,
    code: ReasonCode,
) -> Result<(), Reason> {
    let mut problems = Vec::new();
    let mut total = 0usize;
    for error in validator.iter_errors(instance) {
        total += 1;
        if problems.len() < MAX_ERRORS_IN_DETAIL {
            problems.push(describe(prefix, &error));
        }
    }
    if total == 0 {
        return Ok(());
    }
    let mut detail = problems.join("; ");
    if total > problems.len() {
        detail.push_str(&format!("; and {} more", total - problems.len()));
    }
    Err(Reason::new(code, detail))
}

/// One schema error as "pointer: what is wrong", without the instance value.
fn describe(prefix: &str, error: &jsonschema::ValidationError<'_>) -> String {
    let pointer = format!("{prefix}{}", error.instance_path().as_str());
    let pointer = if pointer.is_empty() { "/" } else { &pointer };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let names: Vec<&str> = unexpected.iter().map(|n| safe_name(n)).collect();
            format!("{pointer}: unknown field(s) {}", names.join(", "))
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().map(safe_name).unwrap_or("(unnamed)");
            format!("{pointer}: required field {name} is missing")
        }
        ValidationErrorKind::Type { .. } => format!("{pointer}: wrong type"),
        ValidationErrorKind::Enum { .. } => format!("{pointer}: not one of the allowed values"),
        ValidationErrorKind::Constant { .. } => {
            format!("{pointer}: must have the one allowed value")
        }
        ValidationErrorKind::Pattern { .. } => format!("{pointer}: does not match its pattern"),
        ValidationErrorKind::Format { format } => {
            format!("{pointer}: not a valid {}", safe_name(format))
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("{pointer}: longer than {limit} characters")
        }
        ValidationErrorKind::MinLength { limit } => {
            format!("{pointer}: shorter than {limit} characters")
        }
        ValidationErrorKind::MaxItems { limit } => format!("{pointer}: more than {limit} items"),
        ValidationErrorKind::MinItems { limit } => format!("{pointer}: fewer than {limit} items"),
        other => format!("{pointer}: fails {}", other.keyword()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(name: &str) -> Value {
        let path = format!("{}/../tests/samples/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("samples are part of the repository");
        serde_json::from_str(&text).expect("samples are JSON")
    }

    const SAMPLES: [&str; 4] = [
        "hzl-full.json",
        "hzl-minimal.json",
        "wbs-full.json",
        "buergergeld-wba.json",
    ];

    #[test]
    fn every_sample_is_valid() {
        let schemas = Schemas::builtin().unwrap();
        for name in SAMPLES {
            let envelope = sample(name);
            schemas
                .check_envelope(&envelope)
                .unwrap_or_else(|r| panic!("{name}: {r}"));
            let service = envelope["service"].as_str().unwrap();
            schemas
                .check_form(service, &envelope["form"])
                .unwrap_or_else(|r| panic!("{name}: {r}"));
        }
    }

    #[test]
    fn the_schema_directory_loads_the_same_services() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        let from_dir = Schemas::load_dir(&dir).unwrap();
        let builtin = Schemas::builtin().unwrap();
        assert_eq!(
            from_dir.services().collect::<Vec<_>>(),
            builtin.services().collect::<Vec<_>>()
        );
    }

    #[test]
    fn an_unknown_field_is_a_schema_violation_naming_its_pointer() {
        let schemas = Schemas::builtin().unwrap();
        let mut envelope = sample("wbs-full.json");
        envelope["form"]["household"][1]["shoe_size"] = json!("42");
        let reason = schemas.check_form("wbs", &envelope["form"]).unwrap_err();
        assert_eq!(reason.code, ReasonCode::SchemaViolation);
        assert!(
            reason
                .detail
                .contains("/form/household/1: unknown field(s) shoe_size"),
            "{}",
            reason.detail
        );
    }

    #[test]
    fn a_wrong_value_is_named_by_pointer_and_never_quoted() {
        let schemas = Schemas::builtin().unwrap();
        let mut envelope = sample("hzl-full.json");
        envelope["form"]["bank_account"]["iban"] = json!("CANARY-IBAN-7731");
        envelope["form"]["applicant"]["sex"] = json!("CANARY-SEX");
        envelope["form"]["declarations"]["changes_will_be_reported"] = json!(false);
        let reason = schemas.check_form("hzl", &envelope["form"]).unwrap_err();
        assert_eq!(reason.code, ReasonCode::SchemaViolation);
        assert!(
            reason.detail.contains("/form/bank_account/iban"),
            "{}",
            reason.detail
        );
        assert!(
            reason.detail.contains("/form/applicant/sex"),
            "{}",
            reason.detail
        );
        assert!(
            reason
                .detail
                .contains("/form/declarations/changes_will_be_reported"),
            "{}",
            reason.detail
        );
        assert!(!reason.detail.contains("CANARY"), "{}", reason.detail);
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let schemas = Schemas::builtin().unwrap();
        let mut envelope = sample("buergergeld-wba.json");
        envelope["form"]
            .as_object_mut()
            .unwrap()
            .remove("bg_number");
        let reason = schemas
            .check_form("buergergeld-wba", &envelope["form"])
            .unwrap_err();
        assert!(
            reason
                .detail
                .contains("required field bg_number is missing"),
            "{}",
            reason.detail
        );
    }

    #[test]
    fn an_envelope_without_portal_is_malformed_and_a_new_service_unknown() {
        let schemas = Schemas::builtin().unwrap();
        let mut envelope = sample("hzl-minimal.json");
        envelope.as_object_mut().unwrap().remove("portal");
        let reason = schemas.check_envelope(&envelope).unwrap_err();
        assert_eq!(reason.code, ReasonCode::MalformedEnvelope);
        assert!(reason.detail.contains("portal"), "{}", reason.detail);

        let reason = schemas
            .check_form("kita-gutschein", &json!({}))
            .unwrap_err();
        assert_eq!(reason.code, ReasonCode::UnknownService);
    }
}
