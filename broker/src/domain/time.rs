//! Timestamps as Kurier writes them: RFC 3339 UTC with microseconds, the
//! form every table and receipt event holds (it sorts as text in both
//! databases). Pure; touches nothing.

/// Now, as RFC 3339 UTC with microseconds (sorts as text in both databases).
pub fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// Now plus `wait`, formatted; a wait beyond the calendar saturates at
/// its end instead of panicking.
pub fn time_after(wait: std::time::Duration) -> String {
    let now = time::OffsetDateTime::now_utc();
    format_time(
        time::Duration::try_from(wait)
            .ok()
            .and_then(|w| now.checked_add(w))
            .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc()),
    )
}

/// Now minus `ago`, formatted; `None` if that is before the calendar starts.
pub fn time_before(ago: std::time::Duration) -> Option<String> {
    let ago = time::Duration::try_from(ago).ok()?;
    time::OffsetDateTime::now_utc()
        .checked_sub(ago)
        .map(format_time)
}

/// `t` in UTC, in the one form Kurier writes.
pub fn format_time(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".into())
}
