//! A circuit breaker per destination, for real outages only (invariant 5:
//! one authority that is down does not hold up the others).
//!
//! Closed: attempts go through, and their results are counted in a sliding
//! window of one-second buckets. When at least `min_requests` results fall in
//! the window and the share of failures (connect, TLS, timeout, a server
//! error without `Retry-After`) reaches `failure_rate`, it opens: no
//! attempts, new submissions for the destination are parked at once. After
//! the open interval it is half-open: up to `probes` attempts may try; that
//! many successes close it, one failure opens it again with the interval
//! doubled (capped at `open_max`). A busy answer (429, 503 with
//! `Retry-After`) shows the authority is there: it never counts as a failure.
//! Nor does a 503 without `Retry-After` while the authority has been
//! answering within the last [`ALIVE_WITHIN`]: an authority that serves a
//! few requests at a time refuses the one too many that way, and that is
//! the concurrency limit's business, not an outage. A 503 from an authority
//! that has not answered lately counts as a failure.
//! In memory, per process; touches nothing else.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::RetryConfig;

/// What a result says about the destination being there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It answered (whatever it said).
    Answered,
    /// It could not be reached or failed.
    Failed,
    /// It answered 503 without `Retry-After`: [`Health::Answered`] if it
    /// answered anything else within [`ALIVE_WITHIN`], else a failure.
    Overloaded,
}

/// How recent another answer must be for a 503 to mean "busy", not "down".
pub const ALIVE_WITHIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// May an attempt be made now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes; `probe`: it tests a half-open circuit, report its result.
    Go { probe: bool },
    /// No; try again after this long.
    Wait(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CircuitConfig {
    pub failure_rate: f64,
    pub min_requests: u32,
    pub window: Duration,
    pub open_initial: Duration,
    pub open_max: Duration,
    pub probes: u32,
}

impl From<&RetryConfig> for CircuitConfig {
    fn from(r: &RetryConfig) -> CircuitConfig {
        CircuitConfig {
            failure_rate: r.circuit_failure_rate.clamp(0.01, 1.0),
            min_requests: r.circuit_min_requests.max(1),
            window: Duration::from_secs(r.circuit_window_secs.max(1)),
            open_initial: Duration::from_secs(r.circuit_open_secs.max(1)),
            open_max: Duration::from_secs(r.circuit_open_max_secs.max(r.circuit_open_secs).max(1)),
            probes: r.circuit_probes.max(1),
        }
    }
}

pub struct Circuit {
    config: CircuitConfig,
    state: Mutex<State>,
    /// Counts the times the circuit closed after being open: the scheduler
    /// watches it to bring the destination's parked backlog forward.
    closings: AtomicU64,
}

struct State {
    phase: Phase,
    /// (second since `epoch`, answered, failed), oldest first.
    window: VecDeque<(u64, u32, u32)>,
    epoch: Instant,
    /// The interval of the next opening.
    open_for: Duration,
    /// When the authority last answered (anything but a bare 503).
    last_answered: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        admitted: u32,
        answered: u32,
        since: Instant,
    },
}

impl Circuit {
    pub fn new(config: CircuitConfig) -> Circuit {
        Circuit {
            state: Mutex::new(State {
                phase: Phase::Closed,
                window: VecDeque::new(),
                epoch: Instant::now(),
                open_for: config.open_initial,
                last_answered: None,
            }),
            config,
            closings: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the counters stay usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May an attempt be made now? A half-open circuit admits `probes`
    /// attempts; the others wait for the round's verdict.
    pub fn admit(&self) -> Admission {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Admission {
        let mut s = self.lock();
        match s.phase {
            Phase::Closed => Admission::Go { probe: false },
            Phase::Open { until } if now < until => Admission::Wait(until - now),
            Phase::Open { .. } => {
                s.phase = Phase::HalfOpen {
                    admitted: 1,
                    answered: 0,
                    since: now,
                };
                Admission::Go { probe: true }
            }
            Phase::HalfOpen {
                admitted,
                answered,
                since,
            } => {
                // Probes that never reported (their task ended) are given up
                // after a generous while, so the circuit cannot stick.
                let stale = now.duration_since(since) > s.open_for * 2 + Duration::from_secs(60);
                if admitted < self.config.probes || stale {
                    s.phase = Phase::HalfOpen {
                        admitted: if stale { 1 } else { admitted + 1 },
                        answered: if stale { 0 } else { answered },
                        since: if stale { now } else { since },
                    };
                    Admission::Go { probe: true }
                } else {
                    Admission::Wait(s.open_for)
                }
            }
        }
    }

    /// Without admitting anything: how long until an attempt may be made
    /// (`None`: it may be made now, or a probe may be).
    pub fn wait(&self) -> Option<Duration> {
        let now = Instant::now();
        match self.lock().phase {
            Phase::Open { until } if now < until => Some(until - now),
            _ => None,
        }
    }

    /// Report an attempt's result (`probe` as [`Admission::Go`] said).
    pub fn record(&self, health: Health, probe: bool) {
        self.record_at(health, probe, Instant::now());
    }

    fn record_at(&self, health: Health, probe: bool, now: Instant) {
        let mut s = self.lock();
        let health = match health {
            Health::Answered => {
                s.last_answered = Some(now);
                Health::Answered
            }
            Health::Overloaded
                if s.last_answered
                    .is_some_and(|at| now.saturating_duration_since(at) <= ALIVE_WITHIN) =>
            {
                Health::Answered
            }
            Health::Overloaded | Health::Failed => Health::Failed,
        };
        match (s.phase, probe) {
            (
                Phase::HalfOpen {
                    admitted,
                    answered,
                    since,
                },
                true,
            ) => match health {
                Health::Failed => self.open(&mut s, now, true),
                Health::Answered if answered + 1 >= self.config.probes => {
                    s.phase = Phase::Closed;
                    s.window.clear();
                    s.open_for = self.config.open_initial;
                    self.closings.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("circuit closed: the authority answers again");
                }
                Health::Answered | Health::Overloaded => {
                    s.phase = Phase::HalfOpen {
                        admitted,
                        answered: answered + 1,
                        since,
                    };
                }
            },
            (Phase::Closed, _) => {
                let second = now.duration_since(s.epoch).as_secs();
                let window = self.config.window.as_secs();
                while s
                    .window
                    .front()
                    .is_some_and(|(at, _, _)| at + window <= second)
                {
                    s.window.pop_front();
                }
                if s.window.back().is_none_or(|(at, _, _)| *at != second) {
                    s.window.push_back((second, 0, 0));
                }
                if let Some(bucket) = s.window.back_mut() {
                    match health {
                        Health::Answered | Health::Overloaded => bucket.1 += 1,
                        Health::Failed => bucket.2 += 1,
                    }
                }
                let (answered, failed) = s.window.iter().fold((0u64, 0u64), |(a, f), b| {
                    (a + u64::from(b.1), f + u64::from(b.2))
                });
                let total = answered + failed;
                if total >= u64::from(self.config.min_requests)
                    && failed as f64 >= self.config.failure_rate * total as f64
                {
                    self.open(&mut s, now, false);
                }
            }
            // Results of attempts that started before the circuit opened say
            // nothing new.
            _ => {}
        }
    }

    fn open(&self, s: &mut State, now: Instant, probe_failed: bool) {
        let open_for = s.open_for;
        s.phase = Phase::Open {
            until: now + open_for,
        };
        s.window.clear();
        if probe_failed {
            tracing::debug!(
                open_ms = open_for.as_millis() as u64,
                "probe failed; circuit open again"
            );
        } else {
            tracing::warn!(
                open_ms = open_for.as_millis() as u64,
                "circuit open: the authority fails; new submissions are parked without an attempt"
            );
        }
        s.open_for = (open_for * 2).min(self.config.open_max);
    }

    pub fn state(&self) -> CircuitState {
        let now = Instant::now();
        match self.lock().phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { until } if now < until => CircuitState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// How often the circuit has closed after being open.
    pub fn closings(&self) -> u64 {
        self.closings.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn circuit() -> Circuit {
        Circuit::new(CircuitConfig {
            failure_rate: 0.5,
            min_requests: 10,
            window: S(10),
            open_initial: S(2),
            open_max: S(5),
            probes: 3,
        })
    }

    fn record_many(c: &Circuit, at: Instant, answered: u32, failed: u32) {
        for _ in 0..answered {
            c.record_at(Health::Answered, false, at);
        }
        for _ in 0..failed {
            c.record_at(Health::Failed, false, at);
        }
    }

    #[test]
    fn a_failure_share_below_the_rate_keeps_it_closed() {
        let c = circuit();
        let t = Instant::now();
        record_many(&c, t, 60, 40);
        assert_eq!(c.admit_at(t), Admission::Go { probe: false });
    }

    #[test]
    fn few_results_never_open_it() {
        let c = circuit();
        let t = Instant::now();
        record_many(&c, t, 0, 9);
        assert_eq!(c.admit_at(t), Admission::Go { probe: false });
        c.record_at(Health::Failed, false, t);
        assert_eq!(c.admit_at(t), Admission::Wait(S(2)));
    }

    #[test]
    fn old_results_leave_the_window() {
        let c = circuit();
        let t = Instant::now();
        record_many(&c, t, 0, 9);
        record_many(&c, t + S(11), 1, 1);
        assert_eq!(c.admit_at(t + S(11)), Admission::Go { probe: false });
    }

    #[test]
    fn half_open_admits_several_probes_and_their_successes_close_it() {
        let c = circuit();
        let t = Instant::now();
        record_many(&c, t, 0, 10);
        let later = t + S(2);
        for _ in 0..3 {
            assert_eq!(c.admit_at(later), Admission::Go { probe: true });
        }
        assert!(
            matches!(c.admit_at(later), Admission::Wait(_)),
            "only three probes"
        );
        for _ in 0..3 {
            c.record_at(Health::Answered, true, later);
        }
        assert_eq!(c.admit_at(later), Admission::Go { probe: false });
        assert_eq!(c.closings(), 1);
    }

    #[test]
    fn a_failed_probe_reopens_with_a_growing_capped_interval() {
        let c = circuit();
        let mut t = Instant::now();
        record_many(&c, t, 0, 10);
        let mut intervals = Vec::new();
        for _ in 0..4 {
            let Admission::Wait(wait) = c.admit_at(t) else {
                panic!("open")
            };
            intervals.push(wait.as_secs());
            t += wait;
            assert_eq!(c.admit_at(t), Admission::Go { probe: true });
            c.record_at(Health::Failed, true, t);
        }
        assert_eq!(intervals, [2, 4, 5, 5]);
        assert_eq!(c.closings(), 0);
    }

    #[test]
    fn a_bare_503_beside_recent_answers_is_busy_not_an_outage() {
        let c = circuit();
        let t = Instant::now();
        // An authority serving a few at a time: it accepts some and refuses
        // the rest with 503, far more than the failure rate.
        for i in 0..40u64 {
            let at = t + Duration::from_millis(i * 20);
            c.record_at(Health::Answered, false, at);
            for _ in 0..3 {
                c.record_at(Health::Overloaded, false, at);
            }
        }
        assert_eq!(
            c.admit_at(t + S(1)),
            Admission::Go { probe: false },
            "75 % refusals beside answers do not open it"
        );
    }

    #[test]
    fn bare_503s_without_a_recent_answer_open_it() {
        let c = circuit();
        let t = Instant::now();
        c.record_at(Health::Answered, false, t);
        // Just after the answer: busy. From `ALIVE_WITHIN` on: down.
        for _ in 0..20 {
            c.record_at(Health::Overloaded, false, t + Duration::from_millis(500));
        }
        assert_eq!(c.admit_at(t + S(1)), Admission::Go { probe: false });
        for _ in 0..21 {
            c.record_at(Health::Overloaded, false, t + S(2));
        }
        assert_eq!(c.admit_at(t + S(2)), Admission::Wait(S(2)));
        // A half-open probe answered 503 fails, however the window looked.
        let later = t + S(4);
        assert_eq!(c.admit_at(later), Admission::Go { probe: true });
        c.record_at(Health::Overloaded, true, later);
        assert!(matches!(c.admit_at(later), Admission::Wait(_)));
    }

    #[test]
    fn never_answered_and_503_is_down() {
        let c = circuit();
        let t = Instant::now();
        for _ in 0..10 {
            c.record_at(Health::Overloaded, false, t);
        }
        assert_eq!(c.admit_at(t), Admission::Wait(S(2)));
    }

    #[test]
    fn after_closing_the_interval_starts_small_again() {
        let c = circuit();
        let t = Instant::now();
        record_many(&c, t, 0, 10);
        let t = t + S(2);
        c.admit_at(t);
        c.record_at(Health::Failed, true, t);
        let t = t + S(4);
        for _ in 0..3 {
            c.admit_at(t);
            c.record_at(Health::Answered, true, t);
        }
        record_many(&c, t, 0, 10);
        assert_eq!(c.admit_at(t), Admission::Wait(S(2)));
    }
}
