//! TOML text through `Config::parse` and `check`; a configuration that
//! `check` accepts must also be usable: its retry settings are turned into
//! the decision policy, circuit and limiter of every destination, the
//! circuit is driven open, and backoff is computed, as at run time.
#![no_main]

use std::path::Path;
use std::time::Duration;

use kurier::config::Config;
use kurier::queue::circuit::{Admission, Circuit, CircuitConfig, Health};
use kurier::queue::decision::{self, Cause, History, Outcome, Policy, Run};
use kurier::queue::limit::Limiter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    if config.check().is_err() {
        return;
    }
    let mut retries = vec![config.retry.clone()];
    retries.extend(
        config
            .destinations
            .iter()
            .map(|d| config.retry.with_overrides(&d.retry)),
    );
    for retry in retries {
        let _ = (retry.request_timeout(), retry.connect_timeout());
        let _limiter = Limiter::new(retry.initial_in_flight, retry.max_in_flight);
        let circuit = Circuit::new(CircuitConfig::from(&retry));
        // Fail until the circuit opens (bounded: min_requests may be large).
        for _ in 0..retry.circuit_min_requests.min(64) {
            if let Admission::Go { probe } = circuit.admit() {
                circuit.record(Health::Failed, probe);
            }
        }
        let wait = circuit.wait().unwrap_or(Duration::ZERO);
        let _ = circuit.admit();
        let _ = circuit.state();
        let policy = Policy::from(&retry);
        for attempts in [1, 2, 10, 61, u32::MAX] {
            let _ = decision::backoff(&policy, attempts, 0.99);
            let history = History {
                run: Run::InPlace,
                attempts_in_run: attempts,
                attempts_total: attempts,
                age: Duration::from_secs(1),
                room_to_wait: true,
            };
            let outcomes = [
                Outcome::Unavailable(Cause::Timeout),
                Outcome::NotAttempted {
                    why: decision::NotAttempted::CircuitOpen,
                    wait,
                },
            ];
            for outcome in &outcomes {
                let _ = decision::decide(outcome, &history, &policy, 0.99);
            }
        }
    }
});
