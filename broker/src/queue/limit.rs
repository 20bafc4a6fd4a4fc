//! The adaptive concurrency limit of one destination: how many requests may
//! be in flight to it at once.
//!
//! Additive increase, multiplicative decrease, as TCP and Netflix's
//! `AIMDLimit` do: the limit starts small, doubles per round trip while
//! below its threshold (slow start), then grows by one per round trip while
//! answers are good and the latency stays near its floor; a "slow down"
//! signal (429, 503, a timeout, a server error, or latency that rose well
//! above the floor) cuts it by a quarter, at most once per round trip so one
//! burst of refusals counts once. The configured `max_in_flight` is only the
//! ceiling. In memory, per process; touches nothing else.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// What an answer says about the destination's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered normally (accepted, already accepted, refused).
    Good,
    /// Asked to slow down, or failed: 429/503/timeouts/server errors.
    Overload,
    /// Says nothing about capacity (not attempted).
    Neutral,
}

/// Decrease factor on overload.
const BACKOFF_RATIO: f64 = 0.75;
/// A latency this many times the floor (and at least [`LATENCY_SLACK`] above
/// it) counts as overload.
const LATENCY_TOLERANCE: f64 = 3.0;
const LATENCY_SLACK: Duration = Duration::from_millis(50);

pub struct Limiter {
    ceiling: f64,
    state: Mutex<State>,
    freed: Notify,
}

struct State {
    limit: f64,
    /// Below it the limit grows by one per good answer (slow start).
    threshold: f64,
    in_flight: usize,
    /// The lowest latency seen lately: the authority's unloaded round trip.
    floor: Option<Duration>,
    last_cut: Option<Instant>,
}

impl Limiter {
    pub fn new(initial: usize, ceiling: usize) -> Limiter {
        let ceiling = ceiling.max(1) as f64;
        Limiter {
            ceiling,
            state: Mutex::new(State {
                limit: (initial.max(1) as f64).min(ceiling),
                threshold: ceiling,
                in_flight: 0,
                floor: None,
                last_cut: None,
            }),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the numbers stay usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait until a request may start. The permit frees its place when dropped.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut s = self.lock();
                if (s.in_flight as f64) < s.limit.floor().max(1.0) {
                    s.in_flight += 1;
                    return Permit { limiter: self };
                }
            }
            freed.await;
        }
    }

    /// Learn from one answer that took `latency`.
    pub fn observe(&self, signal: Signal, latency: Duration) {
        let now = Instant::now();
        let mut s = self.lock();
        let before = s.limit;
        match signal {
            Signal::Neutral => return,
            Signal::Good => {
                let floor = match s.floor {
                    Some(f) if latency >= f => {
                        // Drift up slowly so the floor follows a lasting change.
                        f + (latency - f) / 256
                    }
                    _ => latency,
                };
                s.floor = Some(floor);
                let risen = latency.as_secs_f64() > floor.as_secs_f64() * LATENCY_TOLERANCE
                    && latency > floor + LATENCY_SLACK;
                if risen {
                    self.cut(&mut s, now);
                } else if s.in_flight as f64 >= s.limit / 2.0 {
                    // Grow only while the limit is in use: an idle
                    // destination does not earn a limit it never tried.
                    let step = if s.limit < s.threshold {
                        1.0
                    } else {
                        1.0 / s.limit
                    };
                    s.limit = (s.limit + step).min(self.ceiling);
                }
            }
            Signal::Overload => self.cut(&mut s, now),
        }
        if s.limit.floor() > before.floor() {
            drop(s);
            self.freed.notify_waiters();
        }
    }

    fn cut(&self, s: &mut State, now: Instant) {
        let round_trip = s
            .floor
            .unwrap_or(Duration::from_millis(10))
            .max(Duration::from_millis(10));
        if s.last_cut
            .is_some_and(|at| now.duration_since(at) < round_trip)
        {
            return;
        }
        s.last_cut = Some(now);
        s.limit = (s.limit * BACKOFF_RATIO).max(1.0);
        s.threshold = s.limit;
    }

    /// The current limit (whole requests).
    pub fn limit(&self) -> usize {
        self.lock().limit.floor().max(1.0) as usize
    }

    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }
}

/// A place in flight; freed on drop, also when the request's task panics.
pub struct Permit<'a> {
    limiter: &'a Limiter,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        {
            let mut s = self.limiter.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.limiter.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Run `n` answers with `signal`, each while `busy` requests are in flight.
    async fn answers(l: &Limiter, n: usize, busy: usize, signal: Signal, latency: Duration) {
        for _ in 0..n {
            let mut permits = Vec::new();
            for _ in 0..busy.min(l.limit()) {
                permits.push(l.acquire().await);
            }
            l.observe(signal, latency);
            drop(permits);
        }
    }

    #[tokio::test]
    async fn grows_while_answers_are_good_and_the_limit_is_used_up_to_the_ceiling() {
        let l = Limiter::new(4, 32);
        answers(&l, 20, 64, Signal::Good, MS(5)).await;
        assert_eq!(l.limit(), 24, "slow start: one per good answer");
        answers(&l, 200, 64, Signal::Good, MS(5)).await;
        assert_eq!(l.limit(), 32, "the ceiling holds");
    }

    #[tokio::test]
    async fn an_idle_destination_does_not_grow() {
        let l = Limiter::new(4, 32);
        answers(&l, 100, 1, Signal::Good, MS(5)).await;
        assert_eq!(l.limit(), 4);
    }

    #[tokio::test]
    async fn overload_cuts_by_a_quarter_once_per_round_trip() {
        let l = Limiter::new(16, 32);
        l.observe(Signal::Good, MS(20));
        l.observe(Signal::Overload, MS(20));
        assert_eq!(l.limit(), 12);
        l.observe(Signal::Overload, MS(20));
        l.observe(Signal::Overload, MS(20));
        assert_eq!(l.limit(), 12, "a burst of refusals counts once");
        std::thread::sleep(MS(25));
        l.observe(Signal::Overload, MS(20));
        assert_eq!(l.limit(), 9);
        for _ in 0..20 {
            std::thread::sleep(MS(25));
            l.observe(Signal::Overload, MS(20));
        }
        assert_eq!(l.limit(), 1, "never below one");
    }

    #[tokio::test]
    async fn after_a_cut_growth_is_additive() {
        let l = Limiter::new(16, 32);
        l.observe(Signal::Overload, MS(5));
        assert_eq!(l.limit(), 12);
        answers(&l, 12, 64, Signal::Good, MS(5)).await;
        assert_eq!(
            l.limit(),
            12,
            "about one per round trip of 12 answers: {}",
            l.limit()
        );
        answers(&l, 14, 64, Signal::Good, MS(5)).await;
        assert_eq!(l.limit(), 14, "two round trips of answers: two more");
    }

    #[tokio::test]
    async fn latency_well_above_the_floor_cuts() {
        let l = Limiter::new(16, 32);
        l.observe(Signal::Good, MS(20));
        l.observe(Signal::Good, MS(40));
        assert_eq!(l.limit(), 16, "twice the floor is still fine");
        l.observe(Signal::Good, MS(200));
        assert_eq!(l.limit(), 12);
    }

    #[tokio::test]
    async fn acquire_waits_for_a_free_place_and_a_dropped_permit_frees_it() {
        let l = std::sync::Arc::new(Limiter::new(2, 2));
        let a = l.acquire().await;
        let _b = l.acquire().await;
        assert_eq!(l.in_flight(), 2);
        let waiter = {
            let l = std::sync::Arc::clone(&l);
            tokio::spawn(async move {
                let _c = l.acquire().await;
            })
        };
        tokio::time::sleep(MS(20)).await;
        assert!(!waiter.is_finished(), "a third request waits");
        drop(a);
        tokio::time::timeout(MS(1000), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(l.in_flight(), 1);
    }
}
