//! Each configured destination's last hour in twelve five-minute buckets,
//! for the console's charts: deliveries and failures completed, delivery
//! latency (received from RabbitMQ → receipt written; p50 and p95), and the
//! parked backlog.
//!
//! Everything comes from the database ([`crate::store::history`]), so every
//! instance of a cluster draws the same charts and a restart loses nothing.
//! The backlog has no history table: a bucket shows how many of the
//! submissions parked *now* had been parked by its end (by their first
//! failure). Submissions that were parked and have left since are not in
//! it, so earlier buckets are a lower bound; the last one is exact.
//!
//! The bucketing is pure ([`LastHour::from_rows`]) and unit-tested; the one
//! method that reads is [`Ops::last_hour`].

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::domain::id::DestinationId;
use crate::domain::time::{Timestamp, format_time};
use crate::operator::ops::{Ops, OpsError};
use crate::store::history::{CompletedPerMinute, DeliveryTimes, ParkedPerMinute};

/// How many buckets, and how long each is.
pub const BUCKETS: usize = 12;
pub const BUCKET_MINUTES: i64 = 5;
/// At most this many deliveries are read for the latency percentiles (the
/// newest); the counts are exact however many there are.
pub const LATENCY_SAMPLE: i64 = 20_000;

/// One destination's hour; index `i` of each series is bucket `i`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationHour {
    pub destination: DestinationId,
    /// Receipts `delivered`.
    pub delivered: [i64; BUCKETS],
    /// Receipts `rejected` or `dead_lettered`.
    pub failed: [i64; BUCKETS],
    /// Latency percentiles of the deliveries, in milliseconds; `None` for a
    /// bucket without any.
    pub p50_ms: [Option<i64>; BUCKETS],
    pub p95_ms: [Option<i64>; BUCKETS],
    /// Parked (of those parked now) at the end of each bucket.
    pub parked: [i64; BUCKETS],
}

/// Every configured destination's hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastHour {
    /// When each bucket starts (RFC 3339 UTC); the last one is under way.
    pub starts: Vec<String>,
    pub destinations: Vec<DestinationHour>,
    /// The percentiles were drawn from the newest [`LATENCY_SAMPLE`]
    /// deliveries only: there were more.
    pub latency_sampled: bool,
}

/// The first bucket's start: `now` down to five minutes, 55 minutes before.
fn window_start(now: OffsetDateTime) -> OffsetDateTime {
    let minute = i64::from(now.minute());
    let floored = now
        .replace_second(0)
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(now)
        - Duration::minutes(minute % BUCKET_MINUTES);
    floored - Duration::minutes(BUCKET_MINUTES * (BUCKETS as i64 - 1))
}

/// An RFC 3339 time, or a minute `YYYY-MM-DDTHH:MM` (UTC).
fn parse(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{text}:00Z"), &Rfc3339))
        .ok()
}

/// The bucket `at` falls in; times after the window (a clock ahead) count
/// in the last one.
fn bucket(start: OffsetDateTime, at: OffsetDateTime) -> Option<usize> {
    if at < start {
        return None;
    }
    let minutes = (at - start).whole_minutes();
    Some(((minutes / BUCKET_MINUTES) as usize).min(BUCKETS - 1))
}

/// The nearest-rank percentile `p` (0–100) of sorted values.
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

impl LastHour {
    /// Buckets the rows the store read for the window that ends at `now`.
    pub fn from_rows(
        now: OffsetDateTime,
        destinations: &[DestinationId],
        completed: &[CompletedPerMinute],
        deliveries: &[DeliveryTimes],
        parked: &[ParkedPerMinute],
    ) -> LastHour {
        let start = window_start(now);
        let starts = (0..BUCKETS as i64)
            .map(|i| format_time(start + Duration::minutes(i * BUCKET_MINUTES)))
            .collect();
        let destinations = destinations
            .iter()
            .map(|name| {
                let mut hour = DestinationHour {
                    destination: name.clone(),
                    delivered: [0; BUCKETS],
                    failed: [0; BUCKETS],
                    p50_ms: [None; BUCKETS],
                    p95_ms: [None; BUCKETS],
                    parked: [0; BUCKETS],
                };
                for c in completed.iter().filter(|c| &c.destination == name) {
                    let Some(i) = parse(&c.minute).and_then(|m| bucket(start, m)) else {
                        continue;
                    };
                    if c.status == "delivered" {
                        hour.delivered[i] += c.n;
                    } else {
                        hour.failed[i] += c.n;
                    }
                }
                let mut latencies: [Vec<i64>; BUCKETS] = Default::default();
                for d in deliveries.iter().filter(|d| &d.destination == name) {
                    let (received, completed) = (
                        d.received_at.as_offset_date_time(),
                        d.completed_at.as_offset_date_time(),
                    );
                    if let Some(i) = bucket(start, completed) {
                        latencies[i].push((completed - received).whole_milliseconds() as i64);
                    }
                }
                for (i, mut l) in latencies.into_iter().enumerate() {
                    l.sort_unstable();
                    hour.p50_ms[i] = percentile(&l, 50);
                    hour.p95_ms[i] = percentile(&l, 95);
                }
                // Parked in each bucket, then summed up: parked by its end.
                let mut before = 0;
                for p in parked.iter().filter(|p| &p.destination == name) {
                    match parse(&p.minute).and_then(|m| bucket(start, m)) {
                        Some(i) => hour.parked[i] += p.n,
                        None => before += p.n,
                    }
                }
                let mut sum = before;
                for n in &mut hour.parked {
                    sum += *n;
                    *n = sum;
                }
                hour
            })
            .collect();
        LastHour {
            starts,
            destinations,
            latency_sampled: false,
        }
    }
}

impl Ops {
    /// Each configured destination's last hour.
    pub async fn last_hour(&self) -> Result<LastHour, OpsError> {
        let now = OffsetDateTime::now_utc();
        let since = Timestamp::from(window_start(now));
        let store = self.store();
        let completed = store.completed_per_minute(since).await?;
        let deliveries = store.delivery_times(since, LATENCY_SAMPLE).await?;
        let parked = store.parked_per_minute(since).await?;
        // Only configured destinations: what envelopes named otherwise is
        // any string a portal sent, and the page would grow with it.
        let mut hour =
            LastHour::from_rows(now, &self.configured(), &completed, &deliveries, &parked);
        hour.latency_sampled = deliveries.len() as i64 >= LATENCY_SAMPLE;
        Ok(hour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> OffsetDateTime {
        parse(text).expect("a test time")
    }

    fn delivery(destination: &str, received_at: &str, completed_at: &str) -> DeliveryTimes {
        let time = |text| crate::domain::time::Timestamp::parse(text).expect("a test time");
        DeliveryTimes {
            destination: DestinationId::new(destination),
            received_at: time(received_at),
            completed_at: time(completed_at),
        }
    }

    #[test]
    fn the_window_ends_with_the_bucket_under_way() {
        let start = window_start(at("2026-12-01T10:07:31.5Z"));
        assert_eq!(format_time(start), "2026-12-01T09:10:00.000000Z");
        assert_eq!(bucket(start, at("2026-12-01T10:09:59Z")), Some(11));
        assert_eq!(bucket(start, at("2026-12-01T09:09:59Z")), None);
        assert_eq!(bucket(start, at("2026-12-01T09:14:00Z")), Some(0));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), Some(50));
        assert_eq!(percentile(&values, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn rows_fall_into_their_destinations_buckets_and_the_backlog_adds_up() {
        let now = at("2026-12-01T10:07:00Z");
        let completed = |destination: &str, status: &str, minute: &str, n| CompletedPerMinute {
            destination: DestinationId::new(destination),
            status: status.into(),
            minute: minute.into(),
            n,
        };
        let parked = |minute: &str, n| ParkedPerMinute {
            destination: DestinationId::new("a"),
            minute: minute.into(),
            n,
        };
        let hour = LastHour::from_rows(
            now,
            &[DestinationId::new("a")],
            &[
                completed("a", "delivered", "2026-12-01T10:06", 3),
                completed("a", "rejected", "2026-12-01T10:05", 1),
                completed("a", "dead_lettered", "2026-12-01T09:10", 2),
                completed("b", "delivered", "2026-12-01T10:06", 9),
            ],
            &[
                delivery(
                    "a",
                    "2026-12-01T10:06:00.000000Z",
                    "2026-12-01T10:06:00.250000Z",
                ),
                delivery(
                    "a",
                    "2026-12-01T10:05:00.000000Z",
                    "2026-12-01T10:06:02.000000Z",
                ),
            ],
            &[
                parked("", 4),
                parked("2026-12-01T09:12", 1),
                parked("2026-12-01T10:01", 2),
            ],
        );
        assert_eq!(hour.starts.len(), BUCKETS);
        assert_eq!(hour.starts[11], "2026-12-01T10:05:00.000000Z");
        assert_eq!(hour.destinations.len(), 1);
        let a = &hour.destinations[0];
        assert_eq!(a.delivered[11], 3);
        assert_eq!(a.failed[11], 1);
        assert_eq!(a.failed[0], 2);
        assert_eq!(a.delivered.iter().sum::<i64>(), 3, "b's are not a's");
        assert_eq!(a.p50_ms[11], Some(250));
        assert_eq!(a.p95_ms[11], Some(62_000));
        assert_eq!(a.p50_ms[10], None);
        assert_eq!(a.parked[0], 5);
        assert_eq!(a.parked[9], 5);
        assert_eq!(a.parked[10], 7);
        assert_eq!(a.parked[11], 7);
    }
}
