//! The statements behind operators' actions ([`crate::operator::ops`]):
//! dead letters listed, opened, replayed and purged; the parked queue and
//! its actions; destination pauses; the audit trail.
//!
//! Every change writes its audit row in the same transaction, so a change
//! and its record commit together or not at all. What the operator meant,
//! which ids are valid and what to tell them is `ops`' business; here is
//! only SQL, the same text on both backends.

use serde::Serialize;

use super::{DeadLetter, Store, StoreError};
use crate::domain::id::{DestinationId, SubmissionId};
use crate::domain::reason::ReasonCode;
use crate::domain::status::ReceiptStatus;
use crate::domain::time::{Timestamp, now};

/// The audit row written with a change.
pub struct AuditRow<'a> {
    pub operator: &'a str,
    pub action: &'a str,
    /// Space-separated submission ids (or `#<n>` for dead letters without one).
    pub submission_ids: &'a str,
    pub outcome: &'a str,
    /// The operator's reason, if they gave one (blank counts as none).
    pub reason: Option<&'a str>,
}

const INSERT_AUDIT: &str = "INSERT INTO audit (at, operator, action, submission_ids, outcome, reason) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Write `$row` (an [`AuditRow`]) in the transaction `$tx`.
macro_rules! audit_row {
    ($tx:ident, $row:expr) => {{
        let row: &AuditRow<'_> = $row;
        sqlx::query(INSERT_AUDIT)
            .bind(now())
            .bind(row.operator)
            .bind(row.action)
            .bind(row.submission_ids)
            .bind(row.outcome)
            .bind(row.reason.map(str::trim).filter(|w| !w.is_empty()))
            .execute(&mut *$tx)
            .await?
    }};
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub operator: String,
    pub action: String,
    /// Space-separated submission ids (or `#<n>` for dead letters without one).
    pub submission_ids: String,
    pub outcome: String,
    pub reason: Option<String>,
}

/// The parked backlog of one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Backlog {
    pub destination: DestinationId,
    pub count: i64,
    /// How many of them an operator holds (`kurier parked hold`).
    pub held: i64,
    pub next_attempt_at: Timestamp,
    pub oldest_received_at: Timestamp,
    pub last_cause: String,
}

/// One parked submission as operators see it: metadata, never the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ParkedInfo {
    pub submission_id: SubmissionId,
    pub service: String,
    pub destination: DestinationId,
    pub portal: String,
    pub attempts: i64,
    pub received_sha256: String,
    pub received_at: Timestamp,
    pub first_failure_at: Timestamp,
    pub last_cause: String,
    pub next_attempt_at: Timestamp,
    /// When it becomes the dead letter `delivery_expired`.
    pub expires_at: Timestamp,
    /// An operator's hold: the scheduler leaves it alone until released.
    pub held: bool,
    /// An attempt is under way right now (the scheduler holds its lease).
    pub in_flight: bool,
}

/// An operator's pause of a destination.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pause {
    pub destination: DestinationId,
    pub paused_at: Timestamp,
    pub operator: String,
    pub reason: Option<String>,
}

/// A change to parked rows that leaves them parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkedChange {
    /// Due now; a lease that has not run out stays (its attempt is running,
    /// and a second claim would send the submission twice at once).
    DueNow,
    Hold,
    Release,
}

/// How a change to several parked rows ended: all of them changed, or none
/// (the transaction rolled back at the first id that could not be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllOrNone<T> {
    Done(Vec<T>),
    /// This id is not parked (or, for a withdrawal, its attempt is under way).
    NotParked(SubmissionId),
    /// This id's receipt says delivered: it cannot be withdrawn.
    Delivered(SubmissionId),
}

/// What purge takes from a parked row into the receipt, the dead letter and
/// the receipt event.
#[derive(sqlx::FromRow)]
struct Withdrawn {
    submission_id: SubmissionId,
    service: String,
    destination: DestinationId,
    portal: String,
    attempts: i64,
    received_sha256: String,
    received_at: Timestamp,
    events: i64,
}

/// The columns of [`ParkedInfo`]; `$1` is now, typed.
macro_rules! select_parked_info {
    () => {
        "SELECT submission_id, service, destination, portal, attempts, received_sha256, \
         received_at, first_failure_at, last_cause, next_attempt_at, expires_at, held, \
         (lease_until_ts IS NOT NULL AND lease_until_ts > $1) AS in_flight FROM parked "
    };
}

/// The columns of a whole dead letter, sealed payload included.
macro_rules! select_dead_letter {
    () => {
        "SELECT id, submission_id, amqp_message_id, service, destination, portal, reason_code, \
         reason_detail, http_status, received_sha256, created_at, key_id, sealed_key, \
         sealed_payload, expires_at, (sealed_payload IS NOT NULL) AS payload_kept \
         FROM dead_letters "
    };
}

impl Store {
    /// Dead letters, newest first, filtered by reason, destination and
    /// creation time (RFC 3339 UTC); without their sealed payloads. `limit`
    /// rows after skipping `offset` (a page of the console).
    pub async fn dead_letters(
        &self,
        reason: Option<&str>,
        destination: Option<&DestinationId>,
        since: Option<Timestamp>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        const SQL: &str = "SELECT id, submission_id, amqp_message_id, service, destination, portal, \
             reason_code, reason_detail, http_status, received_sha256, created_at, expires_at, \
             (sealed_payload IS NOT NULL) AS payload_kept FROM dead_letters \
             WHERE ($1 IS NULL OR reason_code = $1) AND ($2 IS NULL OR destination = $2) \
             AND ($3 IS NULL OR created_at_ts >= $3) ORDER BY id DESC LIMIT $4 OFFSET $5";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, DeadLetter>(SQL)
            .bind(reason)
            .bind(destination)
            .bind(since.map(Timestamp::typed))
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await)?)
    }

    /// The dead letter numbered `id`, sealed payload included.
    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        const SQL: &str = concat!(select_dead_letter!(), "WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, DeadLetter>(SQL)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Every dead letter of a submission, newest first, sealed payloads
    /// included.
    pub async fn dead_letters_of(
        &self,
        submission_id: &SubmissionId,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        const SQL: &str = concat!(
            select_dead_letter!(),
            "WHERE submission_id = $1 ORDER BY id DESC"
        );
        Ok(on_pool!(self, pool => sqlx::query_as::<_, DeadLetter>(SQL)
            .bind(submission_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Number and submission id of the dead letters created before `cutoff`.
    pub async fn dead_letters_before(
        &self,
        cutoff: Timestamp,
    ) -> Result<Vec<(i64, Option<SubmissionId>)>, StoreError> {
        const SQL: &str = "SELECT id, submission_id FROM dead_letters WHERE created_at_ts < $1";
        Ok(on_pool!(self, pool => sqlx::query_as(SQL).bind(cutoff.typed()).fetch_all(pool).await)?)
    }

    /// Dead letters per destination (`''`: none named).
    pub async fn dead_letter_counts(&self) -> Result<Vec<(DestinationId, i64)>, StoreError> {
        const SQL: &str = "SELECT COALESCE(destination, '') AS destination, COUNT(*) AS n \
             FROM dead_letters GROUP BY COALESCE(destination, '') ORDER BY 1";
        Ok(on_pool!(self, pool => sqlx::query_as(SQL).fetch_all(pool).await)?)
    }

    /// Before a replay: the receipt (unless delivered) no longer matches the
    /// received body, or the pipeline would take the replay for a duplicate.
    /// Its event count goes on: the replay's event gets the next `seq`.
    pub async fn forget_received(&self, submission_id: &SubmissionId) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE receipts SET received_sha256 = '' \
             WHERE submission_id = $1 AND status <> 'delivered'";
        in_tx!(self, tx => sqlx::query(SQL).bind(submission_id).execute(&mut *tx).await?);
        Ok(())
    }

    /// A replay that could not be published: the receipt as it was.
    pub async fn restore_received(
        &self,
        submission_id: &SubmissionId,
        received_sha256: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE receipts SET received_sha256 = $2 WHERE submission_id = $1";
        in_tx!(self, tx => sqlx::query(SQL)
            .bind(submission_id)
            .bind(received_sha256)
            .execute(&mut *tx)
            .await?);
        Ok(())
    }

    /// Delete the dead letters `ids` (sealed payload and key go with the
    /// row) with their audit row.
    pub async fn delete_dead_letters(
        &self,
        ids: &[i64],
        audit: &AuditRow<'_>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM dead_letters WHERE id = $1";
        in_tx!(self, tx => {
            for id in ids {
                sqlx::query(SQL).bind(*id).execute(&mut *tx).await?;
            }
            audit_row!(tx, audit)
        });
        Ok(())
    }

    /// Parked backlog per destination (one, or all).
    pub async fn parked_backlog(
        &self,
        destination: Option<&DestinationId>,
    ) -> Result<Vec<Backlog>, StoreError> {
        const SQL: &str = "SELECT destination, COUNT(*) AS count, \
             SUM(CASE WHEN held THEN 1 ELSE 0 END) AS held, MIN(next_attempt_at_ts) AS next_attempt_at, \
             MIN(received_at_ts) AS oldest_received_at, \
             (SELECT p2.last_cause FROM parked p2 WHERE p2.destination = p.destination \
              ORDER BY p2.next_attempt_at_ts DESC LIMIT 1) AS last_cause \
             FROM parked p WHERE ($1 IS NULL OR destination = $1) \
             GROUP BY destination ORDER BY destination";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, Backlog>(SQL)
            .bind(destination)
            .fetch_all(pool)
            .await)?)
    }

    /// Parked submissions one by one, soonest first: `limit` rows after
    /// skipping `offset`. Ties are ordered by submission id, so pages do
    /// not overlap.
    pub async fn parked_each(
        &self,
        destination: Option<&DestinationId>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ParkedInfo>, StoreError> {
        const SQL: &str = concat!(
            select_parked_info!(),
            "WHERE ($2 IS NULL OR destination = $2) ORDER BY next_attempt_at_ts, submission_id \
             LIMIT $3 OFFSET $4"
        );
        Ok(on_pool!(self, pool => sqlx::query_as::<_, ParkedInfo>(SQL)
            .bind(now().typed())
            .bind(destination)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await)?)
    }

    /// One parked submission, if it is parked.
    pub async fn parked_one(
        &self,
        submission_id: &SubmissionId,
    ) -> Result<Option<ParkedInfo>, StoreError> {
        const SQL: &str = concat!(select_parked_info!(), "WHERE submission_id = $2");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, ParkedInfo>(SQL)
            .bind(now().typed())
            .bind(submission_id)
            .fetch_optional(pool)
            .await)?)
    }

    /// The parked submissions of `destination`, soonest first.
    pub async fn parked_ids_of(
        &self,
        destination: &DestinationId,
    ) -> Result<Vec<SubmissionId>, StoreError> {
        const SQL: &str =
            "SELECT submission_id FROM parked WHERE destination = $1 ORDER BY next_attempt_at_ts";
        let rows: Vec<(SubmissionId,)> = on_pool!(self, pool => sqlx::query_as(SQL)
            .bind(destination)
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Change the parked rows `ids` (all or none) and write the audit row.
    /// Each changed row gives `(submission id, held, in flight)`.
    pub async fn change_parked(
        &self,
        change: ParkedChange,
        ids: &[SubmissionId],
        audit: &AuditRow<'_>,
    ) -> Result<AllOrNone<(SubmissionId, bool, bool)>, StoreError> {
        // `$1` the submission id, `$2` now (typed), `$3` now as written;
        // they return `held` and whether an attempt is under way.
        let sql = match change {
            ParkedChange::DueNow => {
                "UPDATE parked SET next_attempt_at = $3, \
                 lease_until = CASE WHEN lease_until_ts > $2 THEN lease_until ELSE NULL END \
                 WHERE submission_id = $1 RETURNING held, (lease_until IS NOT NULL) AS in_flight"
            }
            ParkedChange::Hold => {
                "UPDATE parked SET held = TRUE WHERE submission_id = $1 \
                 RETURNING held, (lease_until_ts IS NOT NULL AND lease_until_ts > $2) AS in_flight"
            }
            ParkedChange::Release => {
                "UPDATE parked SET held = FALSE WHERE submission_id = $1 \
                 RETURNING held, (lease_until_ts IS NOT NULL AND lease_until_ts > $2) AS in_flight"
            }
        };
        let at = now();
        let mut changed = Vec::with_capacity(ids.len());
        in_tx!(self, tx => {
            for id in ids {
                let query = sqlx::query_as(sql).bind(id).bind(at.typed());
                // Only `due-now` writes the time.
                let query = if change == ParkedChange::DueNow { query.bind(at) } else { query };
                let row: Option<(bool, bool)> = query
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((held, in_flight)) = row else {
                    // Dropping the transaction rolls back what was changed.
                    return Ok(AllOrNone::NotParked(id.clone()));
                };
                changed.push((id.clone(), held, in_flight));
            }
            audit_row!(tx, audit)
        });
        Ok(AllOrNone::Done(changed))
    }

    /// Withdraw (shred) the parked submissions `ids`, all or none, in one
    /// transaction: the parked row goes with its sealed payload and data
    /// key; the receipt says `dead_lettered` / `withdrawn_by_operator` with
    /// `detail`; a dead letter keeps metadata only, until
    /// `dead_letter_expires_at`; the portal's receipt event waits in the
    /// outbox; the audit row is written. A row whose attempt is under way is
    /// not parked for this purpose.
    pub async fn withdraw_parked(
        &self,
        ids: &[SubmissionId],
        detail: &str,
        dead_letter_expires_at: Timestamp,
        audit: &AuditRow<'_>,
    ) -> Result<AllOrNone<SubmissionId>, StoreError> {
        const DELETE: &str = "DELETE FROM parked WHERE submission_id = $1 \
             AND (lease_until_ts IS NULL OR lease_until_ts <= $2) \
             RETURNING submission_id, service, destination, portal, attempts, received_sha256, \
             received_at, events";
        const UPSERT_RECEIPT: &str = "INSERT INTO receipts (submission_id, service, destination, \
             portal, status, reason_code, reason_detail, attempts, received_sha256, received_at, \
             completed_at, events) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (submission_id) DO UPDATE SET service = excluded.service, \
             destination = excluded.destination, portal = excluded.portal, status = excluded.status, \
             reason_code = excluded.reason_code, reason_detail = excluded.reason_detail, \
             http_status = NULL, reference = NULL, attempts = excluded.attempts, \
             received_sha256 = excluded.received_sha256, sent_sha256 = NULL, \
             received_at = excluded.received_at, completed_at = excluded.completed_at, \
             events = excluded.events WHERE receipts.status <> 'delivered'";
        // Metadata only: no key, no sealed payload, nothing to replay.
        const INSERT_DEAD_LETTER: &str = "INSERT INTO dead_letters (submission_id, service, \
             destination, portal, reason_code, reason_detail, received_sha256, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        const INSERT_OUTBOX: &str = "INSERT INTO outbox (submission_id, seq, routing_key, body, \
             created_at) VALUES ($1, $2, $3, $4, $5)";
        let at = now();
        let code = ReasonCode::WithdrawnByOperator.as_str();
        let mut withdrawn = Vec::with_capacity(ids.len());
        in_tx!(self, tx => {
            for id in ids {
                let row: Option<Withdrawn> = sqlx::query_as(DELETE)
                    .bind(id)
                    .bind(at.typed())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(w) = row else {
                    // Rolls back the ones withdrawn before it: all or none.
                    return Ok(AllOrNone::NotParked(id.clone()));
                };
                let seq = w.events + 1;
                let event = serde_json::json!({
                    "submission_id": w.submission_id,
                    "status": ReceiptStatus::DeadLettered,
                    "service": w.service,
                    "destination": w.destination,
                    "attempts": w.attempts,
                    "at": at,
                    "reason": code,
                    "seq": seq,
                });
                let written = sqlx::query(UPSERT_RECEIPT)
                    .bind(id)
                    .bind(&w.service)
                    .bind(&w.destination)
                    .bind(&w.portal)
                    .bind(ReceiptStatus::DeadLettered.as_str())
                    .bind(code)
                    .bind(detail)
                    .bind(w.attempts)
                    .bind(&w.received_sha256)
                    .bind(w.received_at)
                    .bind(at)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                if written.rows_affected() == 0 {
                    return Ok(AllOrNone::Delivered(id.clone()));
                }
                sqlx::query(INSERT_DEAD_LETTER)
                    .bind(id)
                    .bind(&w.service)
                    .bind(&w.destination)
                    .bind(&w.portal)
                    .bind(code)
                    .bind(detail)
                    .bind(&w.received_sha256)
                    .bind(at)
                    .bind(dead_letter_expires_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(INSERT_OUTBOX)
                    .bind(id)
                    .bind(seq)
                    .bind(&w.portal)
                    .bind(event.to_string().into_bytes())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                withdrawn.push(id.clone());
            }
            audit_row!(tx, audit)
        });
        Ok(AllOrNone::Done(withdrawn))
    }

    /// Every pause, by destination.
    pub async fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        const SQL: &str = "SELECT destination, paused_at, operator, reason \
             FROM destination_pauses ORDER BY destination";
        Ok(on_pool!(self, pool => sqlx::query_as(SQL).fetch_all(pool).await)?)
    }

    /// Pause (`pause`) or resume a destination. A resumed destination's
    /// backlog is due now (held rows excepted). Returns whether anything
    /// changed, with the audit row `if_changed` or `if_not` written; `None`
    /// if nothing changed and `if_not` is `None` (nothing is written).
    pub async fn set_paused(
        &self,
        destination: &DestinationId,
        pause: bool,
        if_changed: &AuditRow<'_>,
        if_not: Option<&AuditRow<'_>>,
    ) -> Result<Option<bool>, StoreError> {
        const PAUSE: &str = "INSERT INTO destination_pauses (destination, paused_at, operator, reason) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (destination) DO NOTHING";
        const RESUME: &str = "DELETE FROM destination_pauses WHERE destination = $1";
        const DUE_NOW: &str = "UPDATE parked SET next_attempt_at = $2 \
             WHERE destination = $1 AND NOT held";
        let changed;
        in_tx!(self, tx => {
            let query = if pause {
                sqlx::query(PAUSE)
                    .bind(destination)
                    .bind(now())
                    .bind(if_changed.operator)
                    .bind(if_changed.reason.map(str::trim).filter(|w| !w.is_empty()))
            } else {
                sqlx::query(RESUME).bind(destination)
            };
            changed = query.execute(&mut *tx).await?.rows_affected() > 0;
            if changed && !pause {
                sqlx::query(DUE_NOW)
                    .bind(destination)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
            }
            let row = if changed { Some(if_changed) } else { if_not };
            let Some(row) = row else {
                return Ok(None);
            };
            audit_row!(tx, row)
        });
        Ok(Some(changed))
    }

    /// Write an audit row for an action that changed no row (a payload
    /// view, a replay of what was delivered already).
    pub async fn audit(&self, row: &AuditRow<'_>) -> Result<(), StoreError> {
        in_tx!(self, tx => audit_row!(tx, row));
        Ok(())
    }

    /// The audit trail, newest first.
    pub async fn audit_trail(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        const SQL: &str = "SELECT id, at, operator, action, submission_ids, outcome, reason \
             FROM audit ORDER BY id DESC LIMIT $1";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, AuditEntry>(SQL)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }
}
