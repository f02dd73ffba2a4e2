//! Wake latency: how long a task waits between becoming runnable and
//! being polled (docs/design.md §6). Each shard counts its own polls in
//! a [`Tally`], with no atomics on the way, and adds it to its
//! [`Histogram`] once a pass, where `/metrics` reads it.
//!
//! The scheduler stamps a wake with a clock it already read rather than
//! reading it again per wake: the end of the poll before (a wake during a
//! pass), or the end of the wait for events (a wake the reactor or another
//! thread made). A figure may then be long by the part of the waking poll
//! that came before the wake, never short.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The buckets' upper bounds, in microseconds; a last bucket takes the rest.
pub const BOUNDS_MICROS: [u64; 12] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 250_000,
];

/// How many buckets there are: one per bound, and the rest.
const BUCKETS: usize = BOUNDS_MICROS.len() + 1;

/// Wake latencies by bucket (not cumulative), readable from any thread.
#[derive(Default)]
pub(crate) struct Histogram {
    /// Polls per bucket.
    counts: [AtomicU64; BUCKETS],
    /// The latencies' sum, in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Adds `tally` and empties it.
    pub(crate) fn absorb(&self, tally: &mut Tally) {
        if tally.total == 0 {
            return;
        }
        for (count, n) in self.counts.iter().zip(&mut tally.counts) {
            if *n != 0 {
                count.fetch_add(std::mem::take(n), Ordering::Relaxed);
            }
        }
        self.sum_nanos
            .fetch_add(std::mem::take(&mut tally.sum_nanos), Ordering::Relaxed);
        tally.total = 0;
    }

    /// Adds what it holds to `into`.
    pub(crate) fn read_into(&self, into: &mut Latencies) {
        for (total, count) in into.counts.iter_mut().zip(&self.counts) {
            *total += count.load(Ordering::Relaxed);
        }
        into.sum += Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed));
    }
}

/// One shard's latencies since its last [`Histogram::absorb`].
#[derive(Default)]
pub(crate) struct Tally {
    /// Polls per bucket.
    counts: [u64; BUCKETS],
    /// The latencies' sum, in nanoseconds.
    sum_nanos: u64,
    /// Polls counted.
    total: u64,
}

impl Tally {
    /// Counts one poll that began `latency` after its task was woken.
    pub(crate) fn record(&mut self, latency: Duration) {
        let nanos = latency.as_nanos();
        let bucket = BOUNDS_MICROS
            .iter()
            .position(|&b| nanos <= u128::from(b) * 1000)
            .unwrap_or(BOUNDS_MICROS.len());
        self.counts[bucket] += 1;
        self.sum_nanos = self
            .sum_nanos
            .saturating_add(latency.as_nanos().try_into().unwrap_or(u64::MAX));
        self.total += 1;
    }
}

/// Wake latencies of the whole host, as read (see
/// [`StatsHandle::wake_latencies`](crate::StatsHandle::wake_latencies)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latencies {
    /// Polls per bucket: `counts[i]` took at most `BOUNDS_MICROS[i]` µs
    /// (and more than the bound before); the last took longer than all.
    pub counts: [u64; BUCKETS],
    /// The latencies' sum.
    pub sum: Duration,
}

impl Latencies {
    /// Polls counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_lands_in_its_buckets_and_empties_into_the_histogram() {
        let mut tally = Tally::default();
        for micros in [0, 10, 11, 300, 1_000_000] {
            tally.record(Duration::from_micros(micros));
        }
        let histogram = Histogram::default();
        histogram.absorb(&mut tally);
        histogram.absorb(&mut tally);
        let mut read = Latencies::default();
        histogram.read_into(&mut read);
        let mut expected = [0; BUCKETS];
        expected[0] = 2; // 0 and 10 µs: at most 10
        expected[1] = 1; // 11 µs
        expected[5] = 1; // 300 µs: at most 500
        expected[BUCKETS - 1] = 1; // a second: past every bound
        assert_eq!(read.counts, expected);
        assert_eq!(read.sum, Duration::from_micros(1_000_321));
        assert_eq!(read.total(), 5);
    }
}
