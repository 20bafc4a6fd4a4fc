//! An authority's answer, written like an HTTP response head:
//! `<status>\n<Name>: <value>\n…\n\n<body>`. It goes through
//! `deliver::classify_answer` and the outcome through `decide`; every header
//! value also through `parse_retry_after` at a few clock readings.
#![no_main]

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use kurier::config::RetryConfig;
use kurier::delivery;
use kurier::queue::decision::{self, History, Policy, Run};
use libfuzzer_sys::fuzz_target;

fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = split_head(data);
    let mut lines = head.split(|&b| b == b'\n');
    let status_line = lines.next().unwrap_or_default();
    let status = std::str::from_utf8(status_line)
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(match status_line {
            [a, b, ..] => u16::from_le_bytes([*a, *b]),
            _ => 200,
        });
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        if let Ok(text) = value.to_str() {
            let epoch = SystemTime::UNIX_EPOCH;
            for now in [
                SystemTime::now(),
                epoch,
                epoch + Duration::from_secs(253_402_300_799),
            ] {
                let _ = decision::parse_retry_after(text, now);
            }
        }
        headers.append(name, value);
    }
    let outcome = deliver::classify_answer(status, &headers, body);
    if let decision::Outcome::Accepted {
        reference: Some(r), ..
    }
    | decision::Outcome::AlreadyAccepted { reference: Some(r) } = &outcome
    {
        assert!(r.chars().count() <= deliver::MAX_REFERENCE_CHARS);
        assert!(!r.chars().any(char::is_control));
    }
    let policy = Policy::from(&RetryConfig::default());
    for (run, attempts) in [(Run::InPlace, 1), (Run::Parked, 40)] {
        let history = History {
            run,
            attempts_in_run: attempts,
            attempts_total: attempts,
            age: Duration::from_secs(60),
            room_to_wait: true,
        };
        let _ = decision::decide(&outcome, &history, &policy, 0.5);
    }
});
