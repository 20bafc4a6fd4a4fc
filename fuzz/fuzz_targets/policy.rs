//! A decoded envelope through the data-protection policy, with the default
//! limits and with tiny ones (so size and count limits are reached).
#![no_main]

use kurier::config::PolicyConfig;
use kurier::pipeline::envelope;
use kurier::pipeline::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(value) = envelope::parse_body(body) else {
        return;
    };
    // The schema is skipped on purpose: the policy must hold for any typed
    // envelope, and the fuzzer reaches it far more often this way.
    let Ok(env) = envelope::from_value(value) else {
        return;
    };
    for config in [
        PolicyConfig::default(),
        PolicyConfig {
            max_attachments: 2,
            max_attachment_bytes: 16,
            ..PolicyConfig::default()
        },
    ] {
        if let Ok(facts) = Policy::new(config).check(&env) {
            assert_eq!(facts.len(), env.attachments.len());
        }
    }
});
