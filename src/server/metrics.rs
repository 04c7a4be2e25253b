//! Prometheus metrics, rendered as text at `GET /metrics`.
//!
//! A small registry of atomics owned by each server (no process-global recorder), so
//! several servers in one process — tests, embedders — keep separate counts, and the hot
//! path does only relaxed atomic adds: no locks, no allocation.
//!
//! One table (`FAMILIES`) names every family, its kind and help text, and where its
//! values come from: the counters this registry owns, or the [`Snapshot`] of values other
//! parts own. [`render`] walks it in order.

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
    decisions: [AtomicU64; Reason::ALL.len()],
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
    pub store_dead_letters: u64,
    pub store_spill_bytes: u64,
    pub store_spilled: u64,
    pub reloads_ok: u64,
    pub reloads_error: u64,
    pub auth_failures: u64,
    pub handler_panics: u64,
    pub subscribers_dropped: u64,
    pub frames_oversized: u64,
    pub bad_messages: u64,
    pub provider_ignored: u64,
    pub unmapped_speakers: u64,
    pub store_ok: bool,
}

/// What Prometheus is told a family is (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Reads one value from the snapshot.
type Read = fn(&Snapshot) -> u64;

/// Where a family's series come from.
enum Series {
    /// One unlabelled value, read from the snapshot.
    Value(Read),
    /// One value per label value, read from the snapshot.
    ByLabel(&'static str, &'static [(&'static str, Read)]),
    /// [`Metrics`]' counter per message kind ([`MESSAGE_KINDS`]), labelled `type`.
    Messages,
    /// [`Metrics`]' counter per decision reason ([`Reason::ALL`]), labelled `reason`.
    Decisions,
    /// [`Metrics`]' engine latency histogram.
    EngineLatency,
    /// The store writer's batch latency histogram.
    StoreWrite,
}

/// One metric family: its name, kind and help text, and where its values come from.
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    series: Series,
}

/// Every family `/metrics` exposes, in the order it exposes them. Adding a metric is one
/// row here (and, for a value owned elsewhere, its field in [`Snapshot`]).
static FAMILIES: &[Family] = &[
    Family {
        name: "cuedeck_connections",
        kind: Kind::Gauge,
        help: "Open WebSocket connections of every kind.",
        series: Series::Value(|s| s.websockets),
    },
    Family {
        name: "cuedeck_http_connections",
        kind: Kind::Gauge,
        help: "Open TCP connections (HTTP and WebSocket).",
        series: Series::Value(|s| s.http_connections),
    },
    Family {
        name: "cuedeck_calls_active",
        kind: Kind::Gauge,
        help: "Calls with a live ingest connection.",
        series: Series::Value(|s| s.calls_active),
    },
    Family {
        name: "cuedeck_calls_held",
        kind: Kind::Gauge,
        help: "Calls held: live, waiting for an ingest, or in their grace period.",
        series: Series::Value(|s| s.calls_held),
    },
    Family {
        name: "cuedeck_messages_total",
        kind: Kind::Counter,
        help: "Inbound messages by type.",
        series: Series::Messages,
    },
    Family {
        name: "cuedeck_decisions_total",
        kind: Kind::Counter,
        help: "Card decisions by reason (shown, control, or why suppressed).",
        series: Series::Decisions,
    },
    Family {
        name: "cuedeck_engine_latency_seconds",
        kind: Kind::Histogram,
        help: "In-engine time from frame decoded to card frame queued.",
        series: Series::EngineLatency,
    },
    Family {
        name: "cuedeck_store_write_seconds",
        kind: Kind::Histogram,
        help: "Time to write one batch of records to the store (successful writes).",
        series: Series::StoreWrite,
    },
    Family {
        name: "cuedeck_store_queue_depth",
        kind: Kind::Gauge,
        help: "Records waiting for the store writer.",
        series: Series::Value(|s| s.store_queue_depth),
    },
    Family {
        name: "cuedeck_store_up",
        kind: Kind::Gauge,
        help: "1 when the store took the writer's last batch and answered the last check.",
        series: Series::Value(|s| u64::from(s.store_ok)),
    },
    Family {
        name: "cuedeck_store_write_failures_total",
        kind: Kind::Counter,
        help: "Batch writes that failed and were kept for a retry (every attempt counts).",
        series: Series::Value(|s| s.store_write_failures),
    },
    Family {
        name: "cuedeck_exposures_written_total",
        kind: Kind::Counter,
        help: "Exposure rows written to the store.",
        series: Series::Value(|s| s.exposures_written),
    },
    Family {
        name: "cuedeck_reloads_total",
        kind: Kind::Counter,
        help: "Card library reloads by result.",
        series: Series::ByLabel(
            "result",
            &[("ok", |s| s.reloads_ok), ("error", |s| s.reloads_error)],
        ),
    },
    Family {
        name: "cuedeck_auth_failures_total",
        kind: Kind::Counter,
        help: "Requests refused with 401 or 403.",
        series: Series::Value(|s| s.auth_failures),
    },
    Family {
        name: "cuedeck_handler_panics_total",
        kind: Kind::Counter,
        help: "Requests whose handler panicked, answered with 500.",
        series: Series::Value(|s| s.handler_panics),
    },
    Family {
        name: "cuedeck_subscribers_dropped_total",
        kind: Kind::Counter,
        help: "Subscribers disconnected for falling behind.",
        series: Series::Value(|s| s.subscribers_dropped),
    },
    Family {
        name: "cuedeck_frames_oversized_total",
        kind: Kind::Counter,
        help: "Sockets closed with 1009 for an oversized frame.",
        series: Series::Value(|s| s.frames_oversized),
    },
    Family {
        name: "cuedeck_bad_messages_total",
        kind: Kind::Counter,
        help: "Messages answered with an error frame.",
        series: Series::Value(|s| s.bad_messages),
    },
    Family {
        name: "cuedeck_provider_messages_ignored_total",
        kind: Kind::Counter,
        help: "Provider messages accepted and ignored (control messages, empty results).",
        series: Series::Value(|s| s.provider_ignored),
    },
    Family {
        name: "cuedeck_unmapped_speakers_total",
        kind: Kind::Counter,
        help: "Provider transcripts whose speaker label was not mapped (sent as prospect).",
        series: Series::Value(|s| s.unmapped_speakers),
    },
    Family {
        name: "cuedeck_store_dead_letters_total",
        kind: Kind::Counter,
        help: "Records the store rejected for good (constraint or encoding error), moved aside.",
        series: Series::Value(|s| s.store_dead_letters),
    },
    Family {
        name: "cuedeck_store_spill_bytes",
        kind: Kind::Gauge,
        help: "Bytes waiting in the spill file for the store writer.",
        series: Series::Value(|s| s.store_spill_bytes),
    },
    Family {
        name: "cuedeck_store_spilled_total",
        kind: Kind::Counter,
        help: "Records that went to the spill file because the queue was full.",
        series: Series::Value(|s| s.store_spilled),
    },
];

/// Renders the Prometheus text exposition format: every family of the table, in order.
pub fn render(m: &Metrics, s: &Snapshot, store_write: &Histogram) -> String {
    let mut out = String::with_capacity(4096);
    for f in FAMILIES {
        let name = f.name;
        // Histograms write their own `# HELP` and `# TYPE` lines.
        if f.kind != Kind::Histogram {
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.kind.name());
        }
        match &f.series {
            Series::Value(value) => {
                let _ = writeln!(out, "{name} {}", value(s));
            }
            Series::ByLabel(label, values) => {
                for (v, value) in *values {
                    let _ = writeln!(out, "{name}{{{label}=\"{v}\"}} {}", value(s));
                }
            }
            Series::Messages => {
                for (kind, c) in MESSAGE_KINDS.iter().zip(&m.messages) {
                    let n = c.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{name}{{type=\"{kind}\"}} {n}");
                }
            }
            Series::Decisions => {
                for (reason, c) in Reason::ALL.iter().zip(&m.decisions) {
                    let n = c.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{name}{{reason=\"{}\"}} {n}", reason.as_str());
                }
            }
            Series::EngineLatency => m.latency.render(&mut out, name, f.help),
            Series::StoreWrite => store_write.render(&mut out, name, f.help),
        }
    }
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
    fn the_exposition_is_every_family_in_order() {
        let m = Metrics::default();
        m.message("transcript");
        m.message("Results");
        m.decision(Reason::Cooldown);
        m.latency(30);
        let s = Snapshot {
            websockets: 1,
            http_connections: 2,
            calls_active: 3,
            calls_held: 4,
            store_queue_depth: 5,
            exposures_written: 6,
            store_write_failures: 7,
            store_dead_letters: 16,
            store_spill_bytes: 17,
            store_spilled: 18,
            reloads_ok: 8,
            reloads_error: 9,
            auth_failures: 10,
            handler_panics: 0,
            subscribers_dropped: 11,
            frames_oversized: 12,
            bad_messages: 13,
            provider_ignored: 14,
            unmapped_speakers: 15,
            store_ok: true,
        };
        let store_write = Histogram::new(&[1.0]);
        store_write.record_micros(5);
        assert_eq!(render(&m, &s, &store_write), EXPOSITION);
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

    /// What `/metrics` served before the families became a table (dashboards and alerts
    /// depend on every name, label and help text), then the store's spill and dead-letter
    /// families, added at the end.
    const EXPOSITION: &str = r#"# HELP cuedeck_connections Open WebSocket connections of every kind.
# TYPE cuedeck_connections gauge
cuedeck_connections 1
# HELP cuedeck_http_connections Open TCP connections (HTTP and WebSocket).
# TYPE cuedeck_http_connections gauge
cuedeck_http_connections 2
# HELP cuedeck_calls_active Calls with a live ingest connection.
# TYPE cuedeck_calls_active gauge
cuedeck_calls_active 3
# HELP cuedeck_calls_held Calls held: live, waiting for an ingest, or in their grace period.
# TYPE cuedeck_calls_held gauge
cuedeck_calls_held 4
# HELP cuedeck_messages_total Inbound messages by type.
# TYPE cuedeck_messages_total counter
cuedeck_messages_total{type="start"} 0
cuedeck_messages_total{type="transcript"} 1
cuedeck_messages_total{type="feedback"} 0
cuedeck_messages_total{type="end"} 0
cuedeck_messages_total{type="invalid"} 0
cuedeck_messages_total{type="binary"} 0
cuedeck_messages_total{type="Results"} 1
cuedeck_messages_total{type="Metadata"} 0
cuedeck_messages_total{type="SpeechStarted"} 0
cuedeck_messages_total{type="UtteranceEnd"} 0
cuedeck_messages_total{type="Begin"} 0
cuedeck_messages_total{type="Turn"} 0
cuedeck_messages_total{type="Termination"} 0
cuedeck_messages_total{type="TranscriptEvent"} 0
cuedeck_messages_total{type="StreamingRecognizeResponse"} 0
cuedeck_messages_total{type="segments"} 0
cuedeck_messages_total{type="status"} 0
cuedeck_messages_total{type="other"} 0
# HELP cuedeck_decisions_total Card decisions by reason (shown, control, or why suppressed).
# TYPE cuedeck_decisions_total counter
cuedeck_decisions_total{reason="shown"} 0
cuedeck_decisions_total{reason="control"} 0
cuedeck_decisions_total{reason="cooldown"} 1
cuedeck_decisions_total{reason="max_per_call"} 0
cuedeck_decisions_total{reason="budget"} 0
cuedeck_decisions_total{reason="gap"} 0
# HELP cuedeck_engine_latency_seconds In-engine time from frame decoded to card frame queued.
# TYPE cuedeck_engine_latency_seconds histogram
cuedeck_engine_latency_seconds_bucket{le="0.000005"} 0
cuedeck_engine_latency_seconds_bucket{le="0.00001"} 0
cuedeck_engine_latency_seconds_bucket{le="0.000025"} 0
cuedeck_engine_latency_seconds_bucket{le="0.00005"} 1
cuedeck_engine_latency_seconds_bucket{le="0.0001"} 1
cuedeck_engine_latency_seconds_bucket{le="0.00025"} 1
cuedeck_engine_latency_seconds_bucket{le="0.0005"} 1
cuedeck_engine_latency_seconds_bucket{le="0.001"} 1
cuedeck_engine_latency_seconds_bucket{le="0.0025"} 1
cuedeck_engine_latency_seconds_bucket{le="0.005"} 1
cuedeck_engine_latency_seconds_bucket{le="0.01"} 1
cuedeck_engine_latency_seconds_bucket{le="0.025"} 1
cuedeck_engine_latency_seconds_bucket{le="0.1"} 1
cuedeck_engine_latency_seconds_bucket{le="+Inf"} 1
cuedeck_engine_latency_seconds_sum 0.00003
cuedeck_engine_latency_seconds_count 1
# HELP cuedeck_store_write_seconds Time to write one batch of records to the store (successful writes).
# TYPE cuedeck_store_write_seconds histogram
cuedeck_store_write_seconds_bucket{le="1"} 1
cuedeck_store_write_seconds_bucket{le="+Inf"} 1
cuedeck_store_write_seconds_sum 0.000005
cuedeck_store_write_seconds_count 1
# HELP cuedeck_store_queue_depth Records waiting for the store writer.
# TYPE cuedeck_store_queue_depth gauge
cuedeck_store_queue_depth 5
# HELP cuedeck_store_up 1 when the store took the writer's last batch and answered the last check.
# TYPE cuedeck_store_up gauge
cuedeck_store_up 1
# HELP cuedeck_store_write_failures_total Batch writes that failed and were kept for a retry (every attempt counts).
# TYPE cuedeck_store_write_failures_total counter
cuedeck_store_write_failures_total 7
# HELP cuedeck_exposures_written_total Exposure rows written to the store.
# TYPE cuedeck_exposures_written_total counter
cuedeck_exposures_written_total 6
# HELP cuedeck_reloads_total Card library reloads by result.
# TYPE cuedeck_reloads_total counter
cuedeck_reloads_total{result="ok"} 8
cuedeck_reloads_total{result="error"} 9
# HELP cuedeck_auth_failures_total Requests refused with 401 or 403.
# TYPE cuedeck_auth_failures_total counter
cuedeck_auth_failures_total 10
# HELP cuedeck_handler_panics_total Requests whose handler panicked, answered with 500.
# TYPE cuedeck_handler_panics_total counter
cuedeck_handler_panics_total 0
# HELP cuedeck_subscribers_dropped_total Subscribers disconnected for falling behind.
# TYPE cuedeck_subscribers_dropped_total counter
cuedeck_subscribers_dropped_total 11
# HELP cuedeck_frames_oversized_total Sockets closed with 1009 for an oversized frame.
# TYPE cuedeck_frames_oversized_total counter
cuedeck_frames_oversized_total 12
# HELP cuedeck_bad_messages_total Messages answered with an error frame.
# TYPE cuedeck_bad_messages_total counter
cuedeck_bad_messages_total 13
# HELP cuedeck_provider_messages_ignored_total Provider messages accepted and ignored (control messages, empty results).
# TYPE cuedeck_provider_messages_ignored_total counter
cuedeck_provider_messages_ignored_total 14
# HELP cuedeck_unmapped_speakers_total Provider transcripts whose speaker label was not mapped (sent as prospect).
# TYPE cuedeck_unmapped_speakers_total counter
cuedeck_unmapped_speakers_total 15
# HELP cuedeck_store_dead_letters_total Records the store rejected for good (constraint or encoding error), moved aside.
# TYPE cuedeck_store_dead_letters_total counter
cuedeck_store_dead_letters_total 16
# HELP cuedeck_store_spill_bytes Bytes waiting in the spill file for the store writer.
# TYPE cuedeck_store_spill_bytes gauge
cuedeck_store_spill_bytes 17
# HELP cuedeck_store_spilled_total Records that went to the spill file because the queue was full.
# TYPE cuedeck_store_spilled_total counter
cuedeck_store_spilled_total 18
"#;
}
