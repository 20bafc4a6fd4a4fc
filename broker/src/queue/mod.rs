//! The delivery queue: what an attempt's answer means, when the next one is
//! made, and how much each authority is given at once.
//!
//! - [`decision`]: the one pure function from an attempt's outcome, the
//!   submission's history and the destination's policy to a disposition
//!   (receipt, retry in place, park until a time, dead letter); backoff.
//! - [`limit`]: the adaptive concurrency limit of a destination (AIMD).
//! - [`circuit`]: the circuit breaker of a destination, opened by a failure
//!   rate, probed at growing intervals.
//!
//! Pure or in-memory state only: delivery reports outcomes into these, the
//! pipeline and the scheduler carry out their dispositions.

pub mod circuit;
pub mod decision;
pub mod limit;
