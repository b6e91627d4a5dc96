//! Counters of the kernel route writer, shared (lock-free) between the kernel task and the
//! handle, for metrics: writes, failures, routes put back after someone deleted them,
//! conflicts with other protocols, and a latency histogram of route writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the write-latency histogram's buckets; the last bucket is +Inf.
pub const LATENCY_BUCKETS: [f64; 8] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1];

/// The live counters.
#[derive(Debug, Default)]
pub struct FibStats {
    writes: AtomicU64,
    failures: AtomicU64,
    restored: AtomicU64,
    conflicts: AtomicU64,
    latency_sum_us: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
}

/// One reading of [`FibStats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FibCounters {
    /// Route writes (installs, replacements, blackholes) the kernel accepted.
    pub writes: u64,
    /// Route writes and deletes the kernel refused (other than a conflict).
    pub failures: u64,
    /// Routes of ours put back after someone deleted them.
    pub restored: u64,
    /// Prefixes held now by another protocol's route at our table and metric.
    pub conflicts: u64,
    /// Sum of write latencies, seconds.
    pub latency_sum: f64,
    /// Writes per latency bucket (not cumulative), the last one above every bound.
    pub buckets: Vec<u64>,
}

impl FibStats {
    /// Records one accepted write that took `d`.
    pub fn write(&self, d: Duration) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a failed write or delete.
    pub fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a route put back.
    pub fn restored(&self) {
        self.restored.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the number of prefixes in conflict.
    pub fn set_conflicts(&self, n: usize) {
        self.conflicts.store(n as u64, Ordering::Relaxed);
    }

    /// Reads everything.
    pub fn read(&self) -> FibCounters {
        FibCounters {
            writes: self.writes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            restored: self.restored.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            latency_sum: self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_sums() {
        let s = FibStats::default();
        s.write(Duration::from_micros(50));
        s.write(Duration::from_micros(700));
        s.write(Duration::from_secs(1));
        s.failure();
        s.set_conflicts(2);
        let r = s.read();
        assert_eq!(r.writes, 3);
        assert_eq!(r.failures, 1);
        assert_eq!(r.conflicts, 2);
        assert_eq!(r.buckets[0], 1);
        assert_eq!(r.buckets[3], 1);
        assert_eq!(r.buckets[LATENCY_BUCKETS.len()], 1);
        assert!((r.latency_sum - 1.00075).abs() < 1e-9);
    }
}
