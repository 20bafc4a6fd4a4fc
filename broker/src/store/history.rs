//! What the console's charts read: receipts completed and submissions
//! parked since a time, per destination, counted per minute in SQL so that
//! a busy hour is a few hundred rows, not one row per submission; and the
//! newest deliveries' two times, for latency percentiles (which SQLite
//! cannot compute).
//!
//! Timestamps are RFC 3339 UTC text of one width
//! ([`crate::domain::time::Timestamp`]), so the minute is its first 16
//! characters (`2026-12-01T10:05`) on both backends.
//!
//! Indexes (checked with `EXPLAIN` on PostgreSQL 15, generic plan of the
//! prepared statement included, and `EXPLAIN QUERY PLAN` on SQLite): both
//! receipt statements are a range scan of `receipts_completed_at` (Index
//! Scan / `SEARCH receipts USING INDEX receipts_completed_at`, backward
//! for the newest first); the parked statement reads the whole `parked`
//! table, as the backlog of `kurier status` already does — it holds the
//! backlog only, and an index on `first_failure_at` would not spare the
//! count of the older rows.

use serde::Serialize;

use super::{Store, StoreError};
use crate::domain::id::DestinationId;
use crate::domain::time::Timestamp;

/// How many receipts of one destination, of one status, completed in one
/// minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CompletedPerMinute {
    /// `''` for receipts without a destination (refused before routing).
    pub destination: DestinationId,
    pub status: String,
    /// `YYYY-MM-DDTHH:MM`, UTC.
    pub minute: String,
    pub n: i64,
}

/// A delivered submission's times: received from RabbitMQ, receipt written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeliveryTimes {
    pub destination: DestinationId,
    pub received_at: Timestamp,
    pub completed_at: Timestamp,
}

/// How many of the submissions parked now were parked (first failed) in one
/// minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ParkedPerMinute {
    pub destination: DestinationId,
    /// `YYYY-MM-DDTHH:MM` (UTC), or `''` for those parked before `since`.
    pub minute: String,
    pub n: i64,
}

impl Store {
    /// Receipts completed at or after `since`, counted per destination,
    /// status and minute.
    pub async fn completed_per_minute(
        &self,
        since: Timestamp,
    ) -> Result<Vec<CompletedPerMinute>, StoreError> {
        const SQL: &str = "SELECT COALESCE(destination, '') AS destination, status, \
             SUBSTR(completed_at, 1, 16) AS minute, COUNT(*) AS n FROM receipts \
             WHERE completed_at_ts >= $1 GROUP BY 1, 2, 3";
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, CompletedPerMinute>(SQL)
            .bind(since.typed())
            .fetch_all(pool)
            .await)?,
        )
    }

    /// The newest `limit` deliveries completed at or after `since`.
    pub async fn delivery_times(
        &self,
        since: Timestamp,
        limit: i64,
    ) -> Result<Vec<DeliveryTimes>, StoreError> {
        const SQL: &str = "SELECT destination, received_at, completed_at FROM receipts \
             WHERE completed_at_ts >= $1 AND status = 'delivered' AND destination IS NOT NULL \
             ORDER BY completed_at_ts DESC LIMIT $2";
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, DeliveryTimes>(SQL)
            .bind(since.typed())
            .bind(limit)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// The submissions parked now, per destination and the minute they were
    /// parked (first failed); those parked before `since` in one row each.
    pub async fn parked_per_minute(
        &self,
        since: Timestamp,
    ) -> Result<Vec<ParkedPerMinute>, StoreError> {
        const SQL: &str = "SELECT destination, CASE WHEN first_failure_at_ts < $1 THEN '' \
             ELSE SUBSTR(first_failure_at, 1, 16) END AS minute, COUNT(*) AS n FROM parked \
             GROUP BY 1, 2";
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, ParkedPerMinute>(SQL)
            .bind(since.typed())
            .fetch_all(pool)
            .await)?,
        )
    }
}
