//! A lock-free histogram of durations, rendered in the Prometheus text format.
//!
//! Recording is a few relaxed atomic adds (no lock, no allocation), so it can sit on the
//! per-message path; the buckets are fixed when it is created.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of durations per bucket (upper bounds in seconds), their number and their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these bucket upper bounds (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records one duration in microseconds.
    pub fn record_micros(&self, micros: u64) {
        let seconds = micros as f64 / 1e6;
        if let Some(i) = self.bounds.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(micros.saturating_mul(1000), Ordering::Relaxed);
    }

    /// Durations recorded so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends `# HELP`, `# TYPE` and the cumulative `_bucket`, `_sum` and `_count` series.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, b) in self.bounds.iter().zip(&self.buckets) {
            cumulative += b.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_overflow_counts_only_in_inf() {
        let h = Histogram::new(&[0.001, 0.01]);
        for micros in [500, 1_000, 5_000, 20_000] {
            h.record_micros(micros);
        }
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "Test.");
        assert_eq!(
            out,
            "# HELP x_seconds Test.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{le=\"0.001\"} 2\nx_seconds_bucket{le=\"0.01\"} 3\n\
             x_seconds_bucket{le=\"+Inf\"} 4\nx_seconds_sum 0.0265\nx_seconds_count 4\n"
        );
    }
}
