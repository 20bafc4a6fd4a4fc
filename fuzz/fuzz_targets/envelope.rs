//! An AMQP body decoded as the pipeline's `decode` does: JSON object,
//! envelope schema, typed envelope, then the form against its service's
//! schema. Every input must end in `Ok` or a `Reason`, never a panic; a
//! reason's detail must never quote the submission (checked with a canary).
#![no_main]

use std::sync::LazyLock;

use kurier::pipeline::envelope;
use kurier::pipeline::validate::Schemas;
use libfuzzer_sys::fuzz_target;

static SCHEMAS: LazyLock<Schemas> =
    LazyLock::new(|| Schemas::builtin().expect("the built-in schemas compile"));

fuzz_target!(|body: &[u8]| {
    let value = match envelope::parse_body(body) {
        Ok(v) => v,
        Err(_) => return,
    };
    let _ = envelope::submission_id_hint(&value);
    let _ = envelope::identifier_hint(&value, "portal");
    if let Err(reason) = SCHEMAS.check_envelope(&value) {
        assert!(!reason.detail.contains("CANARY"), "{}", reason.detail);
        return;
    }
    let Ok(env) = envelope::from_value(value) else {
        return;
    };
    if let Err(reason) = SCHEMAS.check_form(&env.service, &env.form) {
        assert!(!reason.detail.contains("CANARY"), "{}", reason.detail);
    }
});
