//! The whole per-message path of an ingest connection without sockets: the same
//! `CallDriver` `server::ingest` runs — decode the JSON text frame (native adapter) →
//! resolve the speaker → `Session::on_utterance` → for each decision a display id, the
//! card frame JSON (shown cards) and the exposure row. The streams are partial-heavy: every final line of
//! the bundled demo calls is preceded by growing partials (one per ~2 words), as a
//! speech-to-text engine sends them.
//!
//! Groups (time per call; throughput in messages, so criterion prints messages/s):
//! - `session/stream/*`: a whole demo call, bundled cards;
//! - `session/stream_10k/*`: the same call with 10,000 generated phrases added to the
//!   library (1,000 more cards);
//! - `session/parts/*`: decode alone, a no-hit partial, encode one card frame.
//!
//! A per-message p50/p99 over the stream is printed at the end.

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use cuedeck::driver::{CallDriver, DriverConfig, Output, Reply, SystemHost};
use cuedeck::engine::Engine;
use cuedeck::library::Library;
use cuedeck::protocol::adapters::{Adapter, CallSetup, Format};
use cuedeck::protocol::{self, CardMsg, ServerMsg};
use cuedeck::session::{CallInfo, Session, SessionLimits, Utterance};

/// A demo call as a partial-heavy native stream.
fn partial_stream(jsonl: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in jsonl.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["type"] != "transcript" {
            out.push(line.to_string());
            continue;
        }
        if v["is_final"] != true {
            continue; // partials are regenerated below, uniformly
        }
        let text = v["text"].as_str().unwrap_or_default();
        let words: Vec<&str> = text.split_whitespace().collect();
        let t_end = v["t_ms"].as_u64().unwrap_or(0);
        let steps = words.len().div_ceil(2).max(1);
        for k in 1..=steps {
            let n = (2 * k).min(words.len());
            let mut m = v.clone();
            m["text"] = words[..n].join(" ").into();
            m["is_final"] = (k == steps).into();
            m["t_ms"] = (t_end.saturating_sub(((steps - k) * 300) as u64)).into();
            out.push(m.to_string());
        }
    }
    out
}

/// One ingest connection's per-message work: the live server's [`CallDriver`] on the
/// system clock, as in `server::ingest` (without the socket and the store queue).
struct Conn {
    driver: CallDriver,
    host: SystemHost,
    out: Output,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            driver: CallDriver::new(
                DriverConfig::default(),
                Adapter::new(Format::Native, CallSetup::default()),
            ),
            host: SystemHost::default(),
            out: Output::default(),
        }
    }

    /// Returns the bytes of card frames produced (so nothing is optimized away).
    fn on_text(&mut self, engine: &Engine, text: &str) -> usize {
        self.out.clear();
        let received_ms = self.host.received();
        self.driver.on_text(
            engine,
            text,
            Some(received_ms),
            &mut self.host,
            &mut self.out,
        );
        black_box(&self.out.records);
        self.out
            .replies
            .iter()
            .map(|r| match r {
                Reply::Card { frame, .. } => frame.len(),
                _ => 0,
            })
            .sum()
    }
}

fn run_call(engine: &Engine, frames: &[String]) -> (usize, usize) {
    let mut conn = Conn::new();
    let mut bytes = 0;
    let mut cards = 0;
    for f in frames {
        let b = conn.on_text(engine, black_box(f));
        cards += usize::from(b > 0);
        bytes += b;
    }
    (cards, bytes)
}

fn bundled() -> Library {
    Library::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("battlecards"))
        .expect("bundled cards")
}

/// The bundled cards plus 10,000 generated phrases (1,000 cards).
fn bundled_plus_10k() -> Library {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("battlecards");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("cards dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).expect("card file"),
            )
        })
        .collect();
    files.push((
        "generated.yaml".into(),
        common::library_yaml(&common::phrases(10_000, common::SEED)),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Library::from_sources(&refs, "<bench>").expect("valid library")
}

fn per_message_percentiles(engine: &Engine, frames: &[String], label: &str) {
    let mut samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut rounds = 0;
    while Instant::now() < deadline && rounds < 2_000 {
        let mut conn = Conn::new();
        for f in frames {
            let t = Instant::now();
            black_box(conn.on_text(engine, black_box(f)));
            samples.push(t.elapsed().as_nanos() as f64);
        }
        rounds += 1;
    }
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!(
        "{label:<28} messages {:>7}  p50 {:>7.0} ns  p99 {:>7.0} ns  p99.9 {:>7.0} ns  mean {:>7.0} ns",
        samples.len(),
        common::percentile(&samples, 50.0),
        common::percentile(&samples, 99.0),
        common::percentile(&samples, 99.9),
        mean
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listing = args.iter().any(|a| a == "--list" || a == "--test");
    let new_deal = partial_stream(include_str!("../battlecards/demo/demo-new-deal.jsonl"));
    let renewal = partial_stream(include_str!("../battlecards/demo/demo-renewal.jsonl"));
    let small = Engine::new(bundled()).expect("engine");
    let large = Engine::new(bundled_plus_10k()).expect("engine");
    let (cards, _) = run_call(&small, &new_deal);
    eprintln!(
        "new-deal stream: {} frames, {cards} card frames; renewal: {} frames; cards: {} and {}",
        new_deal.len(),
        renewal.len(),
        small.library().cards().len(),
        large.library().cards().len()
    );

    let mut c = Criterion::default().configure_from_args();
    for (group_name, engine) in [("session/stream", &small), ("session/stream_10k", &large)] {
        let mut group = c.benchmark_group(group_name);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
        for (name, frames) in [("new-deal", &new_deal), ("renewal", &renewal)] {
            group.throughput(Throughput::Elements(frames.len() as u64));
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| run_call(engine, frames))
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("session/parts");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    let partial = r#"{"type":"transcript","segment_id":"s-9","speaker":"prospect","text":"we had a great quarter and the weather has been nice, thanks for","is_final":false,"t_ms":41250}"#;
    group.bench_function("decode_partial", |b| {
        b.iter(|| protocol::decode(black_box(partial)).is_ok())
    });
    group.bench_function("no_hit_partial", |b| {
        let mut conn = Conn::new();
        conn.on_text(&small, &new_deal[0]);
        b.iter(|| conn.on_text(&small, black_box(partial)))
    });
    // One shown decision, encoded as the card frame.
    let mut session = Session::new(CallInfo::default(), SessionLimits::default());
    let mut decisions = Vec::new();
    session.on_utterance(
        &small,
        &Utterance {
            segment_id: Some("s-1"),
            speaker: cuedeck::library::Speaker::Prospect,
            text: "honestly the price is a bit too high for us right now",
            is_final: true,
            t_ms: 1_000,
        },
        &mut decisions,
    );
    let shown = decisions.into_iter().find(|d| d.shown()).expect("a card");
    group.bench_function("encode_card", |b| {
        b.iter(|| ServerMsg::Card(CardMsg::new("01JD0000000000000000000000", &shown, 12)).to_json())
    });
    group.finish();
    c.final_summary();

    if !listing {
        println!();
        per_message_percentiles(&small, &new_deal, "new-deal, bundled cards");
        per_message_percentiles(&small, &renewal, "renewal, bundled cards");
        per_message_percentiles(&large, &new_deal, "new-deal, +10k phrases");
    }
}
