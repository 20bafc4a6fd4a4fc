//! The operator's time zone: every time the console shows is written in it,
//! on the server, so the page needs no script and reads the same in any
//! browser. The database keeps UTC; each `<time>` element carries that UTC
//! value in `datetime` and as its tooltip.
//!
//! The zone comes from `?tz=` (an IANA name such as `Europe/Berlin` or
//! `UTC`), which the console also keeps in a cookie, so it outlasts the
//! redirect after an action; without either it is Europe/Berlin, where
//! Kurier's authorities are.

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub(super) const DEFAULT: &str = "Europe/Berlin";

pub(super) struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    /// The zone named `name`, if the tz database knows it. Only names made
    /// of the characters IANA names use are looked up, so a name can go into
    /// a cookie and a link as it is.
    pub fn named(name: &str) -> Option<Zone> {
        let plain = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
        if !plain {
            return None;
        }
        let tz = TimeZone::get(name).ok()?;
        Some(Zone {
            name: name.to_owned(),
            tz,
        })
    }

    /// Europe/Berlin, or UTC should the tz database not know it.
    pub fn default_zone() -> Zone {
        Zone::named(DEFAULT).unwrap_or_else(|| Zone {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `2026-12-01 11:00:00 CET` for an RFC 3339 time; anything else
    /// unchanged (an empty field stays empty).
    pub fn show(&self, utc: &str) -> String {
        self.format(utc, "%Y-%m-%d %H:%M:%S %Z")
    }

    /// The time of day only (`11:05`), for a chart's labels.
    pub fn hh_mm(&self, utc: &str) -> String {
        self.format(utc, "%H:%M")
    }

    fn format(&self, utc: &str, format: &str) -> String {
        match utc.parse::<Timestamp>() {
            Ok(t) => t
                .to_zoned_datetime(self.tz.clone())
                .strftime(format)
                .to_string(),
            Err(_) => utc.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berlin_has_summer_time_and_is_the_default() {
        let zone = Zone::default_zone();
        assert_eq!(zone.name(), "Europe/Berlin");
        assert_eq!(
            zone.show("2026-12-01T10:00:00.000000Z"),
            "2026-12-01 11:00:00 CET"
        );
        assert_eq!(
            zone.show("2026-07-01T10:00:00.000000Z"),
            "2026-07-01 12:00:00 CEST"
        );
        assert_eq!(zone.hh_mm("2026-07-01T10:05:00Z"), "12:05");
    }

    #[test]
    fn other_zones_by_name_and_nothing_else() {
        let utc = Zone::named("UTC").expect("UTC is known");
        assert_eq!(utc.show("2026-12-01T10:00:00Z"), "2026-12-01 10:00:00 UTC");
        let ny = Zone::named("America/New_York").expect("New York is known");
        assert_eq!(ny.hh_mm("2026-12-01T10:00:00Z"), "05:00");
        assert!(Zone::named("Mars/Olympus").is_none());
        assert!(Zone::named("Europe/Berlin; Path=/").is_none());
        assert!(Zone::named("../../etc/passwd").is_none());
        assert!(Zone::named("").is_none());
    }

    #[test]
    fn what_is_not_a_time_is_shown_as_it_is() {
        let zone = Zone::default_zone();
        assert_eq!(zone.show(""), "");
        assert_eq!(zone.show("soon"), "soon");
    }
}
