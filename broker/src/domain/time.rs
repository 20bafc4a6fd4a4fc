//! Timestamps as Kurier keeps them: an instant in UTC to the microsecond
//! ([`Timestamp`]), compared and computed on in Rust, written as RFC 3339
//! with exactly six fractional digits and `Z`
//! (`2026-11-23T10:15:00.000000Z`). Pure; touches nothing.
//!
//! The written form is the one every table and receipt event has always
//! held, so JSON (serde) and columns (sqlx) are byte for byte what they
//! were, and a release that still binds these times as text runs side by
//! side with this one on the same database. The database compares typed
//! twins of those columns, bound as [`TypedTimestamp`]: `timestamptz` on
//! PostgreSQL; on SQLite, which has no time type, the fixed-width UTC text,
//! which orders as the instants do (docs/ARCHITECTURE.md, *Times in the
//! database*).
//!
//! Built on `time::OffsetDateTime`, the crate's calendar elsewhere (vault
//! epochs, the CLI's durations, certificate dates): its range reaches
//! 9999-12-31T23:59:59.999999Z, the far end a saturated "after" has always
//! been written as, which `jiff::Timestamp` (kept for the console's time
//! zones) could not read back.

use std::fmt;
use std::time::Duration;

use time::{OffsetDateTime, UtcOffset};

/// An instant, in UTC, to the microsecond.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// A time that is not RFC 3339 (from a row, a request, a file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 time such as 2026-11-23T10:15:00Z")]
pub struct BadTimestamp;

impl Timestamp {
    /// The last instant Kurier writes: what "after" saturates at.
    pub const MAX: Timestamp = Timestamp(time::macros::datetime!(9999-12-31 23:59:59.999999 UTC));

    /// The first instant the written form holds: what "since the start"
    /// is compared with (a range an index can serve, unlike `$1 IS NULL OR`).
    pub const MIN: Timestamp = Timestamp(time::macros::datetime!(0001-01-01 00:00:00 UTC));

    /// Now.
    pub fn now() -> Timestamp {
        Timestamp::from(OffsetDateTime::now_utc())
    }

    /// `text` as RFC 3339, any offset, brought to UTC and to the microsecond.
    pub fn parse(text: &str) -> Result<Timestamp, BadTimestamp> {
        OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .map(Timestamp::from)
            .map_err(|_| BadTimestamp)
    }

    /// `wait` after this; an instant beyond the calendar saturates at its
    /// end ([`Timestamp::MAX`]) instead of panicking.
    pub fn after(self, wait: Duration) -> Timestamp {
        time::Duration::try_from(wait)
            .ok()
            .and_then(|w| self.0.checked_add(w))
            .map_or(Timestamp::MAX, Timestamp::from)
    }

    /// `ago` before this; `None` if that is before the calendar starts.
    pub fn before(self, ago: Duration) -> Option<Timestamp> {
        let ago = time::Duration::try_from(ago).ok()?;
        self.0.checked_sub(ago).map(Timestamp::from)
    }

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::try_from(self.0 - earlier.0).unwrap_or(Duration::ZERO)
    }

    /// Seconds since 1970-01-01T00:00:00Z.
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// The instant as `time` sees it (in UTC).
    pub fn as_offset_date_time(self) -> OffsetDateTime {
        self.0
    }
}

/// Any instant, brought to UTC and cut to the microsecond (the written
/// form's precision, so a time read back equals the one written).
impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Timestamp {
        let t = t.to_offset(UtcOffset::UTC);
        let micros = t.microsecond();
        Timestamp(t.replace_microsecond(micros).unwrap_or(t))
    }
}

/// The one written form: `2026-11-23T10:15:00.000000Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl std::str::FromStr for Timestamp {
    type Err = BadTimestamp;

    fn from_str(text: &str) -> Result<Timestamp, BadTimestamp> {
        Timestamp::parse(text)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

// In the database a timestamp is written as its written form, as text, on
// both backends: the release before this one binds these columns as text and
// runs on the same database during an upgrade. The times the database
// compares have a typed twin column (`…_ts`, migration 0009): `timestamptz`
// on PostgreSQL, generated from the text; on SQLite, which has no time type,
// the text itself. A statement compares and orders by the twins, binding
// [`Timestamp::typed`]; it reads either column back into a `Timestamp`
// (docs/ARCHITECTURE.md, *Times in the database*).

impl sqlx::Type<sqlx::Sqlite> for Timestamp {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }

    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
    }
}

impl sqlx::Type<sqlx::Postgres> for Timestamp {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    /// The text column or its `timestamptz` twin.
    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            || <OffsetDateTime as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for Timestamp
where
    Timestamp: sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        self.to_string().encode(buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for Timestamp {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&'r str as sqlx::Decode<'r, sqlx::Sqlite>>::decode(value)?;
        Ok(Timestamp::parse(text)?)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Timestamp {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        use sqlx::ValueRef;
        let typed = <OffsetDateTime as sqlx::Type<sqlx::Postgres>>::compatible(&value.type_info());
        if typed {
            let t = <OffsetDateTime as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
            return Ok(Timestamp::from(t));
        }
        let text = <&'r str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
        Ok(Timestamp::parse(text)?)
    }
}

/// A timestamp bound as the database's time type, to compare with a typed
/// twin column (`next_attempt_at_ts <= $1`): `timestamptz` on PostgreSQL;
/// the written text on SQLite, whose twins are that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypedTimestamp(Timestamp);

impl Timestamp {
    /// This instant bound as the database's time type ([`TypedTimestamp`]).
    pub fn typed(self) -> TypedTimestamp {
        TypedTimestamp(self)
    }
}

impl sqlx::Type<sqlx::Sqlite> for TypedTimestamp {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for TypedTimestamp {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Sqlite as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <Timestamp as sqlx::Encode<'q, sqlx::Sqlite>>::encode_by_ref(&self.0, buf)
    }
}

impl sqlx::Type<sqlx::Postgres> for TypedTimestamp {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <OffsetDateTime as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Postgres> for TypedTimestamp {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <OffsetDateTime as sqlx::Encode<'q, sqlx::Postgres>>::encode_by_ref(&self.0.0, buf)
    }
}

/// Now.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Now plus `wait`; saturates at [`Timestamp::MAX`].
pub fn time_after(wait: Duration) -> Timestamp {
    Timestamp::now().after(wait)
}

/// Now minus `ago`; `None` if that is before the calendar starts.
pub fn time_before(ago: Duration) -> Option<Timestamp> {
    Timestamp::now().before(ago)
}

/// `t` in UTC, in the one form Kurier writes.
pub fn format_time(t: OffsetDateTime) -> String {
    Timestamp::from(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_in_the_one_fixed_width_form_and_read_back_equal() {
        let t = Timestamp::parse("2026-11-23T11:15:00.1234567+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-23T10:15:00.123456Z");
        assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-23T10:15:00.123456Z\""
        );
        let back: Timestamp = serde_json::from_str("\"2026-11-23T10:15:00.123456Z\"").unwrap();
        assert_eq!(back, t);
        assert_eq!(
            Timestamp::parse("0001-01-01T00:00:00Z")
                .unwrap()
                .to_string(),
            "0001-01-01T00:00:00.000000Z"
        );
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn the_far_end_is_written_and_read_as_before() {
        let end = Timestamp::now().after(Duration::MAX);
        assert_eq!(end, Timestamp::MAX);
        assert_eq!(end.to_string(), "9999-12-31T23:59:59.999999Z");
        assert_eq!(Timestamp::parse(&end.to_string()), Ok(end));
        assert!(Timestamp::now().before(Duration::MAX).is_none());
    }

    #[test]
    fn instants_compare_as_instants_and_so_does_their_text() {
        let a = Timestamp::parse("2026-11-23T10:15:00+02:00").unwrap();
        let b = Timestamp::parse("2026-11-23T09:00:00Z").unwrap();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        assert_eq!(b.since(a), Duration::from_secs(2700));
        assert_eq!(a.since(b), Duration::ZERO);
        assert_eq!(a.after(Duration::from_secs(2700)), b);
    }
}
