//! A circuit breaker per destination, so that one authority that is down does
//! not hold up the others (invariant 5).
//!
//! Closed: attempts go through. After `threshold` consecutive failed attempts
//! the circuit opens for `open_for`: no attempts, new submissions for the
//! destination are parked at once and their prefetch slots freed. Then it is
//! half-open: exactly one probe may try; success closes it, failure opens it
//! again. In memory, per process; touches nothing else.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Circuit {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probe_started: Option<Instant>,
}

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

impl Circuit {
    pub fn new(threshold: u32, open_for: Duration) -> Circuit {
        Circuit {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the counters stay usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May an attempt be made now? In half-open state only one probe at a
    /// time (a probe that never reports expires after `open_for`).
    pub fn allows(&self) -> bool {
        let now = Instant::now();
        let mut s = self.lock();
        match s.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) => match s.probe_started {
                Some(started) if now.duration_since(started) < self.open_for => false,
                _ => {
                    s.probe_started = Some(now);
                    true
                }
            },
        }
    }

    pub fn success(&self) {
        let mut s = self.lock();
        if s.open_until.is_some() {
            tracing::info!("circuit closed again");
        }
        *s = State::default();
    }

    pub fn failure(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        let probing = s.probe_started.take().is_some();
        if probing || s.consecutive_failures >= self.threshold {
            if s.open_until.is_none_or(|u| u <= now) {
                tracing::warn!(
                    failures = s.consecutive_failures,
                    open_secs = self.open_for.as_secs(),
                    "circuit open: new submissions are parked without an attempt"
                );
            }
            s.open_until = Some(now + self.open_for);
        }
    }

    /// While open: how long until a probe may try.
    pub fn reopens_in(&self) -> Option<Duration> {
        let s = self.lock();
        s.open_until
            .and_then(|u| u.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    pub fn state(&self) -> CircuitState {
        let s = self.lock();
        match s.open_until {
            None => CircuitState::Closed,
            Some(until) if Instant::now() < until => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_lets_one_probe_through() {
        let c = Circuit::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            c.failure();
            assert!(c.allows());
        }
        c.failure();
        assert_eq!(c.state(), CircuitState::Open);
        assert!(!c.allows());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.state(), CircuitState::HalfOpen);
        assert!(c.allows(), "one probe");
        assert!(!c.allows(), "only one probe at a time");
        c.failure();
        assert_eq!(c.state(), CircuitState::Open);
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.allows());
        c.success();
        assert_eq!(c.state(), CircuitState::Closed);
        assert!(c.allows() && c.allows());
    }
}
