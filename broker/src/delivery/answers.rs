//! Two-stage receipts, the transports' side: after `delivered` (the
//! transport took the submission), the authority's decision where the
//! transport reports it later, as a second receipt event
//! `accepted_by_authority` or `rejected_by_authority` with the authority's
//! reason codes (CONTRACT.md § 3).
//!
//! A transport plugs in with a [`ReportSource`]: given the submissions that
//! still await an answer at one destination ([`Awaiting`]), it returns the
//! answers it has ([`AuthorityAnswer`]); one without an answer yet is simply
//! left out. [`crate::delivery::Deliverer::report_source`] hands out the
//! destination's source (XTA 2: [`crate::delivery::xta2::report`]). The
//! poller ([`crate::pipeline::answers`], one task started by
//! [`crate::run`]) asks every source each `report_poll_interval_secs` and
//! commits each new answer with its event in the outbox, in one transaction
//! ([`crate::store::Store::record_answers`]); the outbox relay publishes it
//! with confirms. The same answer seen twice gives one event.
//!
//! What is awaited: a transport message id kept in `transport_messages`
//! ([`crate::store::Store::keep_transport_message_id`], before sending)
//! whose receipt says `delivered`. Nothing of the payload is kept for it.
//! Operators see the count and the oldest per destination (`kurier status`,
//! `GET /api/status`, the gauge `kurier_awaiting_authority_answer`).

use std::future::Future;
use std::pin::Pin;

use crate::domain::id::SubmissionId;
use crate::queue::decision::Cause;
pub use crate::store::answers::{
    ACCEPTED_BY_AUTHORITY, AuthorityAnswer, Awaiting, AwaitingSummary, REJECTED_BY_AUTHORITY,
};

/// Why a report source had no answers this time; the poller asks again at
/// the next interval, nothing else changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The server could not be reached, failed, or answered a transient
    /// fault (as the send path would retry).
    #[error("report source unavailable: {0}")]
    Unavailable(Cause),
    /// The answer could not be used (not the expected format, a bad
    /// signature). The text names the problem, never a value.
    #[error("report source answered something unusable: {0}")]
    Invalid(&'static str),
}

/// The answers a source found: (submission id, answer) for the submissions
/// of `awaiting` that have one.
pub type Answers = Vec<(SubmissionId, AuthorityAnswer)>;

/// What [`ReportSource::poll`] returns.
pub type PollFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Answers, TransportError>> + Send + 'a>>;

/// A transport's source of the authority's later answers for one
/// destination.
pub trait ReportSource: Send + Sync {
    /// The answers known now for some of `awaiting` (all of one
    /// destination). A submission still open is left out; one the source
    /// does not know is left out too (and logged by the source, by id).
    /// Codes that are not of the contract's form are dropped by the poller.
    fn poll<'a>(&'a self, awaiting: &'a [Awaiting]) -> PollFuture<'a>;
}
