//! Acknowledgements of one consuming channel, batched.
//!
//! A message is acked only after its outcome is committed (invariant 2); the
//! pipeline reports that with [`Acks::finished`] instead of acking itself.
//! One task per channel then acks, every few milliseconds, the longest run of
//! finished deliveries that no unfinished one interrupts, with one
//! `basic.ack` and `multiple` (submissions finish out of order: nothing
//! unfinished may be covered). A finished delivery behind an unfinished one
//! (a submission retried in place for seconds, or left unacked) is acked
//! alone after [`PATIENCE`], so a slow one never holds the prefetch slots of
//! the others. Each ack was a hop to lapin's I/O thread; now a batch is.
//!
//! [`Ledger`] is the pure bookkeeping (unit-tested); [`Acks`] runs it on the
//! channel. Touches the consuming channel only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lapin::Channel;
use lapin::options::BasicAckOptions;
use tokio::sync::Notify;

/// How long a finished delivery behind an unfinished one waits for the run
/// to close before it is acked alone.
pub const PATIENCE: Duration = Duration::from_millis(20);

/// After a wake-up, let the deliveries finishing at the same moment join.
const GATHER: Duration = Duration::from_millis(1);

/// What to send: one `multiple` ack up to a tag, and single acks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub up_to: Option<u64>,
    pub singles: Vec<u64>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.up_to.is_none() && self.singles.is_empty()
    }
}

/// The delivery tags of one channel: handed out and not finished, finished
/// and not yet acked.
#[derive(Debug, Default)]
pub struct Ledger {
    unfinished: BTreeSet<u64>,
    finished: BTreeMap<u64, Instant>,
}

impl Ledger {
    /// A delivery was handed to the pipeline.
    pub fn delivered(&mut self, tag: u64) {
        self.unfinished.insert(tag);
    }

    /// Its outcome is committed: it may be acked.
    pub fn finished(&mut self, tag: u64, now: Instant) {
        if self.unfinished.remove(&tag) {
            self.finished.insert(tag, now);
        }
    }

    /// Settled otherwise (nacked): neither acked nor in the way.
    pub fn settled(&mut self, tag: u64) {
        self.unfinished.remove(&tag);
    }

    /// What to ack now; taken out of the ledger. `all`: every finished
    /// delivery, however short it has waited (at the end of a session).
    pub fn take(&mut self, now: Instant, patience: Duration, all: bool) -> Plan {
        let mut plan = Plan::default();
        let first_unfinished = self.unfinished.first().copied();
        // The run before the first unfinished delivery: one multiple ack.
        let behind = match first_unfinished {
            Some(gap) => self.finished.split_off(&gap),
            None => BTreeMap::new(),
        };
        let run = std::mem::replace(&mut self.finished, behind);
        plan.up_to = run.keys().next_back().copied();
        // Behind the gap: alone, once they have waited long enough.
        let (ready, waiting): (BTreeMap<u64, Instant>, BTreeMap<u64, Instant>) =
            std::mem::take(&mut self.finished)
                .into_iter()
                .partition(|(_, at)| all || now.duration_since(*at) >= patience);
        self.finished = waiting;
        plan.singles = ready.into_keys().collect();
        plan
    }

    /// Finished deliveries not acked yet.
    pub fn pending(&self) -> usize {
        self.finished.len()
    }
}

/// The acks of one consuming channel.
pub struct Acks {
    channel: Channel,
    ledger: Mutex<Ledger>,
    wake: Notify,
}

impl Acks {
    pub fn new(channel: Channel) -> Acks {
        Acks {
            channel,
            ledger: Mutex::new(Ledger::default()),
            wake: Notify::new(),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A poisoned lock only means a panic elsewhere; the sets stay usable.
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn delivered(&self, tag: u64) {
        self.ledger().delivered(tag);
    }

    /// The delivery's outcome is committed; it is acked within milliseconds.
    pub fn finished(&self, tag: u64) {
        self.ledger().finished(tag, Instant::now());
        self.wake.notify_one();
    }

    pub fn settled(&self, tag: u64) {
        self.ledger().settled(tag);
    }

    /// Ack what is due until the task is dropped (the session's end).
    pub async fn run(&self) {
        loop {
            let pending = self.ledger().pending() > 0;
            if pending {
                // Something waits behind an unfinished delivery.
                let _ = tokio::time::timeout(PATIENCE, self.wake.notified()).await;
            } else {
                self.wake.notified().await;
            }
            tokio::time::sleep(GATHER).await;
            self.flush(false).await;
        }
    }

    /// Send the acks that are due (`all`: every finished delivery).
    pub async fn flush(&self, all: bool) {
        let plan = self.ledger().take(Instant::now(), PATIENCE, all);
        if plan.is_empty() {
            return;
        }
        let mut lost = 0usize;
        if let Some(tag) = plan.up_to
            && self
                .channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await
                .is_err()
        {
            lost += 1;
        }
        for tag in plan.singles {
            if self
                .channel
                .basic_ack(tag, BasicAckOptions { multiple: false })
                .await
                .is_err()
            {
                lost += 1;
            }
        }
        if lost > 0 {
            // lapin: the channel is gone; RabbitMQ delivers those messages
            // again and their receipts make that a no-op.
            tracing::warn!(
                acks = lost,
                "acks not possible on this connection; the messages will be delivered again and recognised"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn ledger(delivered: std::ops::RangeInclusive<u64>) -> Ledger {
        let mut l = Ledger::default();
        for tag in delivered {
            l.delivered(tag);
        }
        l
    }

    #[test]
    fn a_run_of_finished_deliveries_is_one_multiple_ack() {
        let t = Instant::now();
        let mut l = ledger(1..=5);
        for tag in [3, 1, 2] {
            l.finished(tag, t);
        }
        assert_eq!(
            l.take(t, PATIENCE, false),
            Plan {
                up_to: Some(3),
                singles: vec![]
            }
        );
        assert!(l.take(t, PATIENCE, false).is_empty(), "taken once");
    }

    #[test]
    fn nothing_unfinished_is_covered_and_those_behind_it_wait_then_go_alone() {
        let t = Instant::now();
        let mut l = ledger(1..=6);
        for tag in [1, 2, 4, 6] {
            l.finished(tag, t);
        }
        // 3 and 5 are unfinished: the run is 1..=2; 4 and 6 wait.
        assert_eq!(
            l.take(t, PATIENCE, false),
            Plan {
                up_to: Some(2),
                singles: vec![]
            }
        );
        assert!(l.take(t + MS(5), PATIENCE, false).is_empty());
        assert_eq!(
            l.take(t + PATIENCE, PATIENCE, false),
            Plan {
                up_to: None,
                singles: vec![4, 6]
            }
        );
        // 3 finishes: it is the run now, alone.
        l.finished(3, t + MS(30));
        assert_eq!(l.take(t + MS(30), PATIENCE, false).up_to, Some(3));
        assert_eq!(l.pending(), 0);
    }

    #[test]
    fn a_nacked_delivery_is_out_of_the_way_and_never_acked() {
        let t = Instant::now();
        let mut l = ledger(1..=3);
        l.settled(2);
        l.finished(1, t);
        l.finished(3, t);
        let plan = l.take(t, PATIENCE, false);
        assert_eq!(
            plan.up_to,
            Some(3),
            "multiple over a nacked tag is harmless"
        );
        // A tag finished twice, or never handed out, is not acked.
        l.finished(3, t);
        l.finished(9, t);
        assert!(l.take(t + PATIENCE, PATIENCE, false).is_empty());
    }

    #[test]
    fn at_the_end_everything_finished_goes() {
        let t = Instant::now();
        let mut l = ledger(1..=4);
        l.finished(2, t);
        l.finished(4, t);
        assert_eq!(
            l.take(t, PATIENCE, true),
            Plan {
                up_to: None,
                singles: vec![2, 4]
            }
        );
    }
}
