//! CI smoke check: cuedeck's matcher against the naive baseline (normalize + whole-word
//! `contains` per phrase) at 10,000 generated phrases, on the same corpus as
//! `benches/matcher.rs`. Only the *ratio* is checked (≥ 20×), never an absolute time, so a
//! slow or busy machine does not fail it but a regression that makes matching linear in
//! the number of phrases does. Exits 1 below the threshold.
//!
//! `.ci/run` runs it with `cargo bench --profile dev --bench matcher_ratio`: the debug
//! build reuses `cargo test`'s artifacts (compiles in seconds); the ratio there is far
//! above 20× too (see BENCH.md). Bounded: a fixed number of rounds, about 10 s in debug.

mod common;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cuedeck::library::Library;
use cuedeck::matcher::{Matcher, normalize_into};

const PHRASES: usize = 10_000;
const MIN_RATIO: f64 = 20.0;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let phrases = common::phrases(PHRASES, common::SEED);
    let library = Library::from_sources(
        &[("generated.yaml", &common::library_yaml(&phrases))],
        "<bench>",
    )
    .expect("generated library is valid");
    let matcher = Matcher::build(&library).expect("matcher");
    let padded: Vec<String> = phrases.iter().map(|p| format!(" {p} ")).collect();
    let corpus = common::corpus();

    let mut text = String::new();
    let mut hits = Vec::new();
    let mut cuedeck_round = || {
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..20 {
            for u in &corpus {
                hits.clear();
                matcher.normalize_and_find(black_box(u), &mut text, &mut hits);
                for &p in &hits {
                    n += matcher.targets(p).len();
                }
            }
        }
        black_box(n);
        t.elapsed() / 20
    };
    let mut text2 = String::new();
    let mut naive_round = || {
        let t = Instant::now();
        let mut n = 0;
        for u in &corpus {
            normalize_into(black_box(u), &mut text2);
            n += padded.iter().filter(|p| text2.contains(p.as_str())).count();
        }
        black_box(n);
        t.elapsed()
    };
    // Interleaved rounds, so a burst of load elsewhere hits both sides alike.
    let mut cuedeck = Vec::new();
    let mut naive = Vec::new();
    for _ in 0..9 {
        cuedeck.push(cuedeck_round());
        naive.push(naive_round());
    }
    let (c, n) = (median(cuedeck), median(naive));
    let ratio = n.as_secs_f64() / c.as_secs_f64().max(1e-12);
    let per = |d: Duration| d.as_secs_f64() * 1e9 / corpus.len() as f64;
    println!(
        "matcher ratio at {PHRASES} phrases: cuedeck {:.0} ns/utterance, naive {:.0} ns/utterance, {ratio:.0}x (need >= {MIN_RATIO}x)",
        per(c),
        per(n)
    );
    if ratio >= MIN_RATIO {
        ExitCode::SUCCESS
    } else {
        eprintln!("FAIL: matching is within {MIN_RATIO}x of the naive scan");
        ExitCode::FAILURE
    }
}
