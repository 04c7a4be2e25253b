//! Prometheus metrics, rendered as text at `GET /metrics`.
//!
//! A small registry of atomics owned by each server (no process-global recorder), so
//! several servers in one process — tests, embedders — keep separate counts, and the hot
//! path does only relaxed atomic adds: no locks, no allocation.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::histogram::Histogram;
use crate::session::Reason;

/// Inbound message kinds counted by `cuedeck_messages_total{type}`. Provider adapters'
/// kinds are added here; anything else is counted as `other`.
pub const MESSAGE_KINDS: &[&str] = &[
    "start",
    "transcript",
    "feedback",
    "end",
    "invalid",
    "binary",
    // Provider message kinds.
    "Results",
    "Metadata",
    "SpeechStarted",
    "UtteranceEnd",
    "Begin",
    "Turn",
    "Termination",
    "TranscriptEvent",
    "StreamingRecognizeResponse",
    "segments",
    "status",
    "other",
];

/// Upper bounds (seconds) of the engine latency histogram buckets.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.1,
];

/// Counters and the latency histogram.
#[derive(Debug)]
pub struct Metrics {
    messages: Vec<AtomicU64>,
    decisions: [AtomicU64; 6],
    latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            messages: MESSAGE_KINDS.iter().map(|_| AtomicU64::new(0)).collect(),
            decisions: Default::default(),
            latency: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl Metrics {
    /// Counts one inbound message of `kind`.
    pub fn message(&self, kind: &str) {
        let i = MESSAGE_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(MESSAGE_KINDS.len() - 1);
        if let Some(c) = self.messages.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one card decision.
    pub fn decision(&self, reason: Reason) {
        let i = Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.decisions[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one engine latency (frame decoded → card frame queued).
    pub fn latency(&self, micros: u64) {
        self.latency.record_micros(micros);
    }

    pub fn decisions(&self, reason: Reason) -> u64 {
        let i = Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.decisions[i].load(Ordering::Relaxed)
    }

    pub fn messages(&self, kind: &str) -> u64 {
        MESSAGE_KINDS
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.messages.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Point-in-time values owned elsewhere (gauges and counters of other parts).
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub websockets: u64,
    pub http_connections: u64,
    pub calls_active: u64,
    pub calls_held: u64,
    pub store_queue_depth: u64,
    pub exposures_written: u64,
    pub store_write_failures: u64,
    pub reloads_ok: u64,
    pub reloads_error: u64,
    pub auth_failures: u64,
    pub subscribers_dropped: u64,
    pub frames_oversized: u64,
    pub bad_messages: u64,
    pub provider_ignored: u64,
    pub unmapped_speakers: u64,
    pub store_ok: bool,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Renders the Prometheus text exposition format.
pub fn render(m: &Metrics, s: &Snapshot, store_write: &Histogram) -> String {
    let mut out = String::with_capacity(4096);
    single(
        &mut out,
        "cuedeck_connections",
        "gauge",
        "Open WebSocket connections of every kind.",
        s.websockets,
    );
    single(
        &mut out,
        "cuedeck_http_connections",
        "gauge",
        "Open TCP connections (HTTP and WebSocket).",
        s.http_connections,
    );
    single(
        &mut out,
        "cuedeck_calls_active",
        "gauge",
        "Calls with a live ingest connection.",
        s.calls_active,
    );
    single(
        &mut out,
        "cuedeck_calls_held",
        "gauge",
        "Calls held: live, waiting for an ingest, or in their grace period.",
        s.calls_held,
    );

    family(
        &mut out,
        "cuedeck_messages_total",
        "counter",
        "Inbound messages by type.",
    );
    for (kind, c) in MESSAGE_KINDS.iter().zip(&m.messages) {
        let _ = writeln!(
            out,
            "cuedeck_messages_total{{type=\"{kind}\"}} {}",
            c.load(Ordering::Relaxed)
        );
    }
    family(
        &mut out,
        "cuedeck_decisions_total",
        "counter",
        "Card decisions by reason (shown, control, or why suppressed).",
    );
    for (reason, c) in Reason::ALL.iter().zip(&m.decisions) {
        let _ = writeln!(
            out,
            "cuedeck_decisions_total{{reason=\"{}\"}} {}",
            reason.as_str(),
            c.load(Ordering::Relaxed)
        );
    }

    m.latency.render(
        &mut out,
        "cuedeck_engine_latency_seconds",
        "In-engine time from frame decoded to card frame queued.",
    );
    store_write.render(
        &mut out,
        "cuedeck_store_write_seconds",
        "Time to write one batch of records to the store (successful writes).",
    );

    single(
        &mut out,
        "cuedeck_store_queue_depth",
        "gauge",
        "Records waiting for the store writer.",
        s.store_queue_depth,
    );
    single(
        &mut out,
        "cuedeck_store_up",
        "gauge",
        "1 when the store took the writer's last batch and answered the last check.",
        u64::from(s.store_ok),
    );
    single(
        &mut out,
        "cuedeck_store_write_failures_total",
        "counter",
        "Batch writes that failed and were kept for a retry (every attempt counts).",
        s.store_write_failures,
    );
    single(
        &mut out,
        "cuedeck_exposures_written_total",
        "counter",
        "Exposure rows written to the store.",
        s.exposures_written,
    );
    family(
        &mut out,
        "cuedeck_reloads_total",
        "counter",
        "Card library reloads by result.",
    );
    let _ = writeln!(
        out,
        "cuedeck_reloads_total{{result=\"ok\"}} {}",
        s.reloads_ok
    );
    let _ = writeln!(
        out,
        "cuedeck_reloads_total{{result=\"error\"}} {}",
        s.reloads_error
    );
    single(
        &mut out,
        "cuedeck_auth_failures_total",
        "counter",
        "Requests refused with 401 or 403.",
        s.auth_failures,
    );
    single(
        &mut out,
        "cuedeck_subscribers_dropped_total",
        "counter",
        "Subscribers disconnected for falling behind.",
        s.subscribers_dropped,
    );
    single(
        &mut out,
        "cuedeck_frames_oversized_total",
        "counter",
        "Sockets closed with 1009 for an oversized frame.",
        s.frames_oversized,
    );
    single(
        &mut out,
        "cuedeck_bad_messages_total",
        "counter",
        "Messages answered with an error frame.",
        s.bad_messages,
    );
    single(
        &mut out,
        "cuedeck_provider_messages_ignored_total",
        "counter",
        "Provider messages accepted and ignored (control messages, empty results).",
        s.provider_ignored,
    );
    single(
        &mut out,
        "cuedeck_unmapped_speakers_total",
        "counter",
        "Provider transcripts whose speaker label was not mapped (sent as prospect).",
        s.unmapped_speakers,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.latency(3); // 3 µs
        m.latency(7);
        m.latency(400);
        m.latency(2_000_000); // 2 s: only +Inf
        let text = render(&m, &Snapshot::default(), &Histogram::new(&[1.0]));
        assert!(
            text.contains("cuedeck_engine_latency_seconds_bucket{le=\"0.000005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("cuedeck_engine_latency_seconds_bucket{le=\"0.00001\"} 2\n"));
        assert!(text.contains("cuedeck_engine_latency_seconds_bucket{le=\"0.0005\"} 3\n"));
        assert!(text.contains("cuedeck_engine_latency_seconds_bucket{le=\"0.1\"} 3\n"));
        assert!(text.contains("cuedeck_engine_latency_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("cuedeck_engine_latency_seconds_count 4\n"));
        assert!(text.contains("# TYPE cuedeck_engine_latency_seconds histogram\n"));
    }

    #[test]
    fn labelled_counters() {
        let m = Metrics::default();
        m.message("transcript");
        m.message("transcript");
        m.message("no-such-kind");
        m.decision(Reason::Cooldown);
        let text = render(&m, &Snapshot::default(), &Histogram::new(&[1.0]));
        assert!(text.contains("cuedeck_messages_total{type=\"transcript\"} 2\n"));
        assert!(text.contains("cuedeck_messages_total{type=\"other\"} 1\n"));
        assert!(text.contains("cuedeck_decisions_total{reason=\"cooldown\"} 1\n"));
        assert!(text.contains("cuedeck_decisions_total{reason=\"shown\"} 0\n"));
    }
}
