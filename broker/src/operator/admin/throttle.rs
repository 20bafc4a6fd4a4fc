//! Limits on guessing tokens: failed console logins and `/api` requests
//! with a wrong bearer token are counted per client address and in total
//! over a sliding minute. Past the limit the answer is 429 with
//! `Retry-After`, before the token is even looked at. A request without
//! any token is no guess and is not counted.
//!
//! The client address is the TCP peer: behind a reverse proxy every client
//! shares the proxy's address (and the global limit), which errs on the
//! safe side. Holds its counters in memory; touches nothing else.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures per client address within [`WINDOW`].
pub const PER_CLIENT: usize = 5;
/// Failures from all addresses together within [`WINDOW`].
pub const GLOBAL: usize = 50;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; beyond that only the global limit counts.
const MAX_CLIENTS: usize = 10_000;

#[derive(Default)]
struct Failures {
    by_client: HashMap<IpAddr, VecDeque<Instant>>,
    all: VecDeque<Instant>,
}

#[derive(Default)]
pub struct Throttle {
    failures: Mutex<Failures>,
}

fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
}

/// Seconds until the oldest failure leaves the window (at least 1).
fn retry_after(times: &VecDeque<Instant>, now: Instant) -> u64 {
    times
        .front()
        .map(|t| WINDOW.saturating_sub(now.duration_since(*t)).as_secs() + 1)
        .unwrap_or(1)
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        // A poisoned lock only means a panic elsewhere; the counters stay usable.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(seconds)` when `client` (or everyone) has failed too often.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        self.check_at(client, Instant::now())
    }

    /// Count a failed attempt.
    pub fn failed(&self, client: IpAddr) {
        self.failed_at(client, Instant::now());
    }

    fn check_at(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut f = self.lock();
        prune(&mut f.all, now);
        if f.all.len() >= GLOBAL {
            return Err(retry_after(&f.all, now));
        }
        if let Some(times) = f.by_client.get_mut(&client) {
            prune(times, now);
            if times.len() >= PER_CLIENT {
                return Err(retry_after(times, now));
            }
        }
        Ok(())
    }

    fn failed_at(&self, client: IpAddr, now: Instant) {
        let mut f = self.lock();
        f.all.push_back(now);
        if f.by_client.len() >= MAX_CLIENTS && !f.by_client.contains_key(&client) {
            f.by_client.retain(|_, times| {
                prune(times, now);
                !times.is_empty()
            });
        }
        if f.by_client.len() < MAX_CLIENTS || f.by_client.contains_key(&client) {
            f.by_client.entry(client).or_default().push_back(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_a_minute_lock_out_that_client_only_until_the_minute_is_over() {
        let t = Throttle::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..PER_CLIENT {
            assert!(t.check_at(a, start).is_ok());
            t.failed_at(a, start);
        }
        let wait = t.check_at(a, start).unwrap_err();
        assert!((59..=61).contains(&wait), "{wait}");
        assert!(
            t.check_at(b, start).is_ok(),
            "another client is not affected"
        );
        assert!(t.check_at(a, start + WINDOW).is_ok(), "the window slides");
    }

    #[test]
    fn many_clients_together_hit_the_global_limit() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..GLOBAL {
            let client = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            t.failed_at(client, now);
        }
        assert!(t.check_at("10.9.9.9".parse().unwrap(), now).is_err());
    }
}
