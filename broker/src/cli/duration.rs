//! Durations as people write and read them (humantime): `--older-than 7d`,
//! `--since "1h 30m"`, "next attempt … (in 59m 58s)". A malformed value is a
//! usage error (exit 2) before anything is opened.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// More than a thousand years is a typo, not a retention.
const LONGEST: Duration = Duration::from_secs(1000 * 366 * 86_400);

const UNITS: &str = "write a number and a unit: 45s, 30m, 12h, 7d, 2w, or \"1h 30m\"";

/// An age (`--older-than`): 45s, 30m, 12h, 7d, 2w, "1h 30m".
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let too_long = || format!("longer than a thousand years; {UNITS}");
    match humantime::parse_duration(text.trim()) {
        Ok(age) if age > LONGEST => Err(too_long()),
        Ok(age) => Ok(age),
        Err(humantime::DurationError::NumberOverflow) => Err(too_long()),
        Err(e) => Err(format!("{e}; {UNITS}")),
    }
}

/// `--since`: an RFC 3339 time, or a duration ago; kept as the RFC 3339
/// time it means, the form the library's filters take.
#[derive(Debug, Clone)]
pub struct Since(pub String);

pub fn parse_since(text: &str) -> Result<Since, String> {
    let at = match OffsetDateTime::parse(text.trim(), &Rfc3339) {
        Ok(at) => at,
        Err(_) => {
            let ago = parse_age(text).map_err(|e| {
                format!(
                    "neither an RFC 3339 time such as 2026-11-23T00:00:00Z nor a duration such as 24h or 7d ({e})"
                )
            })?;
            time::Duration::try_from(ago)
                .ok()
                .and_then(|ago| OffsetDateTime::now_utc().checked_sub(ago))
                .ok_or_else(|| "reaches before the year 1".to_owned())?
        }
    };
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map(Since)
        .map_err(|e| e.to_string())
}

/// How far `at` (a stored RFC 3339 time) is from `now`, as "in 59m 58s" or
/// "3h 2m ago", to the second under an hour, the minute under a day, the
/// hour beyond; `None` if `at` is not a time.
pub fn relative(at: &str, now: OffsetDateTime) -> Option<String> {
    let at = OffsetDateTime::parse(at, &Rfc3339).ok()?;
    let (span, future) = if at >= now {
        (at - now, true)
    } else {
        (now - at, false)
    };
    let secs = span.whole_seconds().unsigned_abs();
    let unit = match secs {
        0..3_600 => 1,
        3_600..86_400 => 60,
        _ => 3_600,
    };
    let shown = humantime::format_duration(Duration::from_secs(secs / unit * unit));
    Some(if future {
        format!("in {shown}")
    } else {
        format!("{shown} ago")
    })
}

/// `at` with how far it is from now: "2026-11-23T10:00:00.000000Z (in 59m 58s)".
pub fn with_relative(at: impl std::fmt::Display) -> String {
    let at = at.to_string();
    match relative(&at, OffsetDateTime::now_utc()) {
        Some(r) => format!("{at} ({r})"),
        None => at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_the_forms_people_write() {
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("1h 30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["", "7", "d", "-1d", "yesterday"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
        for huge in ["99999999999d", "18446744073709551615s", "999999w"] {
            let err = parse_age(huge).unwrap_err();
            assert!(err.contains("thousand years"), "{huge}: {err}");
        }
    }

    #[test]
    fn since_is_a_time_or_a_duration_ago() {
        assert_eq!(
            parse_since("2026-11-23T01:00:00+01:00").unwrap().0,
            "2026-11-23T00:00:00Z"
        );
        let hour_ago = parse_since("1h").unwrap().0;
        let hour_ago = OffsetDateTime::parse(&hour_ago, &Rfc3339).unwrap();
        let off = OffsetDateTime::now_utc() - hour_ago - time::Duration::hours(1);
        assert!(off.abs() < time::Duration::seconds(5), "{off}");
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn relative_times_are_rounded_to_what_matters() {
        let now = OffsetDateTime::parse("2026-11-23T10:00:00Z", &Rfc3339).unwrap();
        let rel = |at: &str| relative(at, now).unwrap();
        assert_eq!(rel("2026-11-23T10:59:58.000000Z"), "in 59m 58s");
        assert_eq!(rel("2026-11-23T07:57:30Z"), "2h 2m ago");
        assert_eq!(rel("2026-11-30T09:59:00Z"), "in 6days 23h");
        assert_eq!(relative("soon", now), None);
    }
}
