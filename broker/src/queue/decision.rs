//! The one decision of what an attempt's answer means (DESIGN.md, "Retries
//! and parking"; CONTRACT.md § 2).
//!
//! Delivery reports an [`Outcome`]; [`decide`] turns it, with the
//! submission's [`History`] and the destination's [`Policy`], into a
//! [`Disposition`]: a receipt, a retry after a delay while the AMQP message
//! is held, parking until a time, or a dead letter. Backoff is computed here
//! and nowhere else. Pure: no clock, no randomness (the jitter sample is an
//! argument), no I/O, so every row of the contract's table is a unit test.

use std::fmt;
use std::time::Duration;

use crate::config::RetryConfig;

/// A `Retry-After` longer than this is shortened to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Submissions parked while no attempt may be made (circuit open, paused)
/// are spread over this much time after the destination may be tried again:
/// they are not all rescheduled in the same second, and when the circuit
/// closes the scheduler brings the whole backlog forward anyway.
pub const NOT_ATTEMPTED_SPREAD: Duration = Duration::from_secs(30);

/// Why an authority could not take a submission now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Connect,
    Tls,
    Timeout,
    /// Any other transport failure (connection reset, protocol error).
    Transport,
    /// A server error without `Retry-After` (or a status outside the table).
    Status(u16),
    /// A transient XTA 2 fault (its error code, e.g. 9030; 0: no code given).
    XtaFault(u16),
    /// XTA 2 `lookupService`: the reader does not offer the service. Like
    /// fault 9013 (service not booked), a set-up problem an operator fixes
    /// with the authority; the submissions park meanwhile.
    XtaServiceNotOffered,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Connect => f.write_str("connect error"),
            Cause::Tls => f.write_str("TLS error"),
            Cause::Timeout => f.write_str("timeout"),
            Cause::Transport => f.write_str("transport error"),
            Cause::Status(status) => write!(f, "status {status}"),
            Cause::XtaFault(0) => f.write_str("XTA fault without error code"),
            Cause::XtaFault(code) => write!(f, "XTA fault {code}"),
            Cause::XtaServiceNotOffered => {
                f.write_str("XTA lookupService: the reader does not offer the service")
            }
        }
    }
}

/// Why no attempt was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAttempted {
    /// The destination's circuit is open (a real outage).
    CircuitOpen,
    /// An operator paused the destination (maintenance window).
    Paused,
}

/// What one attempt yielded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200, 201, 202.
    Accepted {
        status: u16,
        reference: Option<String>,
    },
    /// 409: accepted before under this `Idempotency-Key`.
    AlreadyAccepted { reference: Option<String> },
    /// The authority is up but asks Kurier to slow down: 429, 408, 425, or a
    /// 5xx with `Retry-After`. Not an outage: it never opens the circuit.
    Busy {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// The authority is unreachable or failing: counts towards the circuit.
    Unavailable(Cause),
    /// Any other 3xx or 4xx.
    Refused { status: u16 },
    /// No attempt was made; `wait` until one may be.
    NotAttempted { why: NotAttempted, wait: Duration },
}

impl Outcome {
    /// Did a request reach the authority (or try to)?
    pub fn attempted(&self) -> bool {
        !matches!(self, Outcome::NotAttempted { .. })
    }

    /// A short cause for logs and the parked row's `last_cause`.
    pub fn cause(&self) -> String {
        match self {
            Outcome::Accepted { status, .. } => format!("status {status}"),
            Outcome::AlreadyAccepted { .. } => "status 409".into(),
            Outcome::Busy {
                status,
                retry_after: Some(ra),
            } => format!("status {status}, Retry-After {}s", ra.as_secs()),
            Outcome::Busy { status, .. } => format!("status {status}"),
            Outcome::Unavailable(cause) => cause.to_string(),
            Outcome::Refused { status } => format!("status {status}"),
            Outcome::NotAttempted {
                why: NotAttempted::CircuitOpen,
                ..
            } => "circuit open".into(),
            Outcome::NotAttempted {
                why: NotAttempted::Paused,
                ..
            } => "destination paused".into(),
        }
    }
}

/// Classify an HTTP answer per CONTRACT.md § 2 (the reference is read by the
/// caller only when the answer is an acceptance).
pub fn classify(status: u16, retry_after: Option<Duration>, reference: Option<String>) -> Outcome {
    match status {
        200..=202 => Outcome::Accepted { status, reference },
        409 => Outcome::AlreadyAccepted { reference },
        408 | 425 | 429 => Outcome::Busy {
            status,
            retry_after,
        },
        500 | 502 | 503 | 504 if retry_after.is_some() => Outcome::Busy {
            status,
            retry_after,
        },
        500 | 502 | 503 | 504 => Outcome::Unavailable(Cause::Status(status)),
        300..=499 => Outcome::Refused { status },
        // Other 1xx/2xx/5xx answers are outside the contract's table; a
        // server error is the safer reading: try again, never drop.
        _ => Outcome::Unavailable(Cause::Status(status)),
    }
}

/// Where this run of a submission happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// A new message from the intake queue, held unacked while it runs.
    InPlace,
    /// A parked submission picked up by the scheduler: one attempt per run.
    Parked,
}

/// What has happened to the submission so far, this attempt included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    pub run: Run,
    /// Attempts made in this run.
    pub attempts_in_run: u32,
    /// Attempts made over the submission's whole life.
    pub attempts_total: u32,
    /// Time since Kurier first received the submission.
    pub age: Duration,
    /// The destination has room for one more held message waiting for its
    /// next attempt (`max_waiting_in_place`): messages waiting in place hold
    /// prefetch slots, so a destination may only hold a few of them, or it
    /// would slow every other destination down.
    pub room_to_wait: bool,
}

/// The destination's retry policy, from `[retry]` and its overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub initial_delay: Duration,
    pub multiplier: f64,
    pub max_delay: Duration,
    pub jitter: bool,
    pub max_attempts_in_place: u32,
    /// Longest wait while the AMQP message is held; longer waits park.
    pub max_in_place_delay: Duration,
    pub max_age: Duration,
}

impl From<&RetryConfig> for Policy {
    fn from(r: &RetryConfig) -> Policy {
        Policy {
            initial_delay: Duration::from_millis(r.initial_delay_ms),
            multiplier: f64::from(r.multiplier).max(1.0),
            max_delay: Duration::from_millis(r.max_delay_ms),
            jitter: r.jitter,
            max_attempts_in_place: r.max_attempts_in_place.max(1),
            max_in_place_delay: Duration::from_millis(r.max_in_place_delay_ms),
            max_age: Duration::from_secs(r.max_age_secs),
        }
    }
}

/// What to do with the submission now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Receipt `delivered`.
    Delivered {
        status: u16,
        reference: Option<String>,
    },
    /// Dead letter `authority_rejected`, receipt `rejected`.
    Rejected { status: u16 },
    /// Wait, then attempt again while the message is held.
    RetryIn(Duration),
    /// Park (or re-park) it; the next attempt is due after this long.
    ParkFor(Duration),
    /// Dead letter `delivery_expired`: not delivered within the maximum age.
    Expire,
}

/// The decision. `jitter` is a sample from [0, 1).
pub fn decide(outcome: &Outcome, history: &History, policy: &Policy, jitter: f64) -> Disposition {
    let wait = match outcome {
        Outcome::Accepted { status, reference } => {
            return Disposition::Delivered {
                status: *status,
                reference: reference.clone(),
            };
        }
        Outcome::AlreadyAccepted { reference } => {
            return Disposition::Delivered {
                status: 409,
                reference: reference.clone(),
            };
        }
        Outcome::Refused { status } => return Disposition::Rejected { status: *status },
        _ if history.age >= policy.max_age => return Disposition::Expire,
        // The authority said when: that is the delay, not a backoff step.
        Outcome::Busy {
            retry_after: Some(ra),
            ..
        } => (*ra).min(MAX_RETRY_AFTER),
        Outcome::NotAttempted { wait, .. } => {
            *wait + NOT_ATTEMPTED_SPREAD.mul_f64(jitter.clamp(0.0, 1.0))
        }
        Outcome::Busy { .. } | Outcome::Unavailable(_) => {
            backoff(policy, history.attempts_total, jitter)
        }
    };
    // Never park beyond the maximum age: the run after it expires the submission.
    let until_expiry = policy.max_age.saturating_sub(history.age);
    let in_place = history.run == Run::InPlace
        && history.room_to_wait
        && outcome.attempted()
        && history.attempts_in_run < policy.max_attempts_in_place
        && wait <= policy.max_in_place_delay;
    if in_place {
        Disposition::RetryIn(wait)
    } else {
        Disposition::ParkFor(wait.min(until_expiry))
    }
}

/// Exponential backoff after the `attempts`-th failed attempt, capped at the
/// policy's maximum; with jitter, between half and all of it.
pub fn backoff(policy: &Policy, attempts: u32, jitter: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(60) as i32;
    let base = policy.initial_delay.as_secs_f64() * policy.multiplier.powi(exponent);
    let capped = base.min(policy.max_delay.as_secs_f64());
    let factor = if policy.jitter {
        0.5 + 0.5 * jitter.clamp(0.0, 1.0)
    } else {
        1.0
    };
    Duration::try_from_secs_f64(capped * factor).unwrap_or(policy.max_delay)
}

/// `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 § 10.2.3),
/// relative to `now`. A date in the past is zero.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A jitter sample from [0, 1) (the one impure helper, used by callers).
pub fn jitter_sample() -> f64 {
    let mut bytes = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    f64::from(u16::from_le_bytes(bytes)) / 65536.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            initial_delay: Duration::from_millis(500),
            multiplier: 2.0,
            max_delay: Duration::from_secs(60),
            jitter: false,
            max_attempts_in_place: 3,
            max_in_place_delay: Duration::from_secs(10),
            max_age: Duration::from_secs(7 * 86400),
        }
    }

    fn new_message(attempts: u32) -> History {
        History {
            run: Run::InPlace,
            attempts_in_run: attempts,
            attempts_total: attempts,
            age: Duration::from_secs(1),
            room_to_wait: true,
        }
    }

    fn parked(total: u32, age: Duration) -> History {
        History {
            run: Run::Parked,
            attempts_in_run: 1,
            attempts_total: total,
            age,
            room_to_wait: true,
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// CONTRACT.md § 2, row by row: status → disposition of a first attempt.
    #[test]
    fn the_contracts_answer_table() {
        let reference = Some("2026-HzL-4711".to_string());
        let rows: Vec<(u16, Option<Duration>, Disposition)> = vec![
            (
                200,
                None,
                Disposition::Delivered {
                    status: 200,
                    reference: reference.clone(),
                },
            ),
            (
                201,
                None,
                Disposition::Delivered {
                    status: 201,
                    reference: reference.clone(),
                },
            ),
            (
                202,
                None,
                Disposition::Delivered {
                    status: 202,
                    reference: reference.clone(),
                },
            ),
            (
                409,
                None,
                Disposition::Delivered {
                    status: 409,
                    reference: reference.clone(),
                },
            ),
            (408, None, Disposition::RetryIn(Duration::from_millis(500))),
            (425, None, Disposition::RetryIn(Duration::from_millis(500))),
            (429, None, Disposition::RetryIn(Duration::from_millis(500))),
            (429, Some(S(2)), Disposition::RetryIn(S(2))),
            (500, None, Disposition::RetryIn(Duration::from_millis(500))),
            (502, None, Disposition::RetryIn(Duration::from_millis(500))),
            (503, None, Disposition::RetryIn(Duration::from_millis(500))),
            (503, Some(S(1)), Disposition::RetryIn(S(1))),
            (504, None, Disposition::RetryIn(Duration::from_millis(500))),
            (301, None, Disposition::Rejected { status: 301 }),
            (302, None, Disposition::Rejected { status: 302 }),
            (400, None, Disposition::Rejected { status: 400 }),
            (401, None, Disposition::Rejected { status: 401 }),
            (403, None, Disposition::Rejected { status: 403 }),
            (404, None, Disposition::Rejected { status: 404 }),
            (413, None, Disposition::Rejected { status: 413 }),
            (422, None, Disposition::Rejected { status: 422 }),
            // Outside the table: a server error is retried, never dropped.
            (501, None, Disposition::RetryIn(Duration::from_millis(500))),
            (204, None, Disposition::RetryIn(Duration::from_millis(500))),
        ];
        for (status, retry_after, expected) in rows {
            let outcome = classify(status, retry_after, reference.clone());
            assert_eq!(
                decide(&outcome, &new_message(1), &policy(), 0.0),
                expected,
                "status {status}, Retry-After {retry_after:?}"
            );
        }
    }

    #[test]
    fn transport_failures_are_unavailable_and_retried() {
        for cause in [Cause::Connect, Cause::Tls, Cause::Timeout, Cause::Transport] {
            assert_eq!(
                decide(
                    &Outcome::Unavailable(cause),
                    &new_message(2),
                    &policy(),
                    0.0
                ),
                Disposition::RetryIn(S(1)),
                "{cause}"
            );
        }
    }

    #[test]
    fn retry_after_makes_busy_not_unavailable() {
        assert!(matches!(
            classify(503, Some(S(1)), None),
            Outcome::Busy { .. }
        ));
        assert!(matches!(
            classify(503, None, None),
            Outcome::Unavailable(Cause::Status(503))
        ));
        assert!(matches!(classify(429, None, None), Outcome::Busy { .. }));
    }

    #[test]
    fn backoff_grows_exponentially_to_its_cap_and_jitter_keeps_half_to_all() {
        let p = policy();
        let steps: Vec<u64> = (1..=10)
            .map(|n| backoff(&p, n, 0.0).as_millis() as u64)
            .collect();
        assert_eq!(
            steps,
            [
                500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000
            ]
        );
        let jittered = Policy { jitter: true, ..p };
        assert_eq!(backoff(&jittered, 3, 0.0), S(1));
        assert_eq!(backoff(&jittered, 3, 0.999_999).as_millis(), 1999);
        assert_eq!(backoff(&jittered, u32::MAX, 1.0), S(60));
    }

    #[test]
    fn after_the_attempts_in_place_the_submission_is_parked() {
        let busy = Outcome::Unavailable(Cause::Status(503));
        assert_eq!(
            decide(&busy, &new_message(3), &policy(), 0.0),
            Disposition::ParkFor(S(2))
        );
    }

    #[test]
    fn a_destination_whose_waiting_room_is_full_parks_at_once() {
        let full = History {
            room_to_wait: false,
            ..new_message(1)
        };
        assert_eq!(
            decide(&Outcome::Unavailable(Cause::Timeout), &full, &policy(), 0.0),
            Disposition::ParkFor(Duration::from_millis(500))
        );
        assert_eq!(
            decide(&classify(503, Some(S(1)), None), &full, &policy(), 0.0),
            Disposition::ParkFor(S(1))
        );
    }

    #[test]
    fn a_retry_after_longer_than_the_message_may_be_held_parks_at_once() {
        let busy = classify(503, Some(S(120)), None);
        assert_eq!(
            decide(&busy, &new_message(1), &policy(), 0.0),
            Disposition::ParkFor(S(120))
        );
        let huge = classify(429, Some(S(86400)), None);
        assert_eq!(
            decide(&huge, &new_message(1), &policy(), 0.0),
            Disposition::ParkFor(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn a_parked_run_makes_one_attempt_then_parks_again() {
        let busy = Outcome::Unavailable(Cause::Timeout);
        assert_eq!(
            decide(&busy, &parked(5, S(60)), &policy(), 0.0),
            Disposition::ParkFor(S(8))
        );
        let ra = classify(503, Some(S(1)), None);
        assert_eq!(
            decide(&ra, &parked(5, S(60)), &policy(), 0.0),
            Disposition::ParkFor(S(1))
        );
    }

    #[test]
    fn not_attempted_parks_until_the_circuit_may_try_again() {
        let open = Outcome::NotAttempted {
            why: NotAttempted::CircuitOpen,
            wait: S(3),
        };
        assert_eq!(
            decide(&open, &new_message(0), &policy(), 0.0),
            Disposition::ParkFor(S(3))
        );
        assert_eq!(
            decide(&open, &new_message(0), &policy(), 0.5),
            Disposition::ParkFor(S(18))
        );
        let paused = Outcome::NotAttempted {
            why: NotAttempted::Paused,
            wait: S(5),
        };
        assert_eq!(
            decide(&paused, &parked(2, S(9)), &policy(), 0.0),
            Disposition::ParkFor(S(5))
        );
    }

    #[test]
    fn at_the_maximum_age_a_failure_expires_but_an_acceptance_still_delivers() {
        let old = parked(40, S(7 * 86400));
        for outcome in [
            Outcome::Unavailable(Cause::Connect),
            classify(503, Some(S(1)), None),
            Outcome::NotAttempted {
                why: NotAttempted::CircuitOpen,
                wait: S(2),
            },
        ] {
            assert_eq!(
                decide(&outcome, &old, &policy(), 0.0),
                Disposition::Expire,
                "{outcome:?}"
            );
        }
        assert_eq!(
            decide(&classify(201, None, None), &old, &policy(), 0.0),
            Disposition::Delivered {
                status: 201,
                reference: None
            }
        );
        assert_eq!(
            decide(&classify(422, None, None), &old, &policy(), 0.0),
            Disposition::Rejected { status: 422 }
        );
    }

    #[test]
    fn parking_never_reaches_past_the_maximum_age() {
        let nearly = parked(40, S(7 * 86400 - 10));
        assert_eq!(
            decide(
                &Outcome::Unavailable(Cause::Connect),
                &nearly,
                &policy(),
                0.0
            ),
            Disposition::ParkFor(S(10))
        );
    }

    #[test]
    fn retry_after_as_seconds_and_as_http_date() {
        let now = std::time::UNIX_EPOCH + S(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after(" 7 ", now), Some(S(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(S(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
