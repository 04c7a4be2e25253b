//! Matching one ~90-byte utterance against 1k, 10k and 100k generated trigger phrases:
//! cuedeck's matcher (normalize and match in one pass, then phrase → card lookup) against
//! baselines measured in the same group and on the same input:
//!
//! - `naive`: the same normalization, then a whole-word `contains(" phrase ")` per phrase;
//! - `regex`: the same normalization, then one `\b(?:p1|p2|…)\b` alternation (`find_iter`,
//!   leftmost-first and non-overlapping, so it reports fewer hits than the others: less
//!   work, in its favour);
//! - `regex_raw`: `(?i)\b(?:p1|p2|…)\b` straight on the raw utterance, as one would
//!   write it without a normalizer (punctuation and apostrophes then differ slightly);
//! - `aho_corasick`: the same normalization, then the `aho-corasick` crate (contiguous
//!   NFA) over the space-padded patterns with overlapping iteration — what cuedeck's
//!   matcher used before its word-level trie (identical results);
//! - `daachorse`: the same, with a double-array Aho-Corasick (identical results).
//!
//! Also: library build time per size (YAML → `Library` → `Engine`, and `Matcher::build`
//! alone), the automaton heap sizes, and a per-utterance latency distribution (p50/p99)
//! with the ratios against the baselines, printed as a table at the end. BENCH.md has the
//! commands and the results.
//!
//! `cargo bench --bench matcher` runs everything (about 6 minutes on 2 cores);
//! `cargo bench --bench matcher -- summary` only prints the table.

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use cuedeck::engine::Engine;
use cuedeck::library::Library;
use cuedeck::matcher::{Matcher, normalize_into};

const SIZES: &[(usize, &str)] = &[(1_000, "1k"), (10_000, "10k"), (100_000, "100k")];

/// Per-call scratch buffers, reused as the server reuses them.
#[derive(Default)]
struct Scratch {
    text: String,
    hits: Vec<u32>,
    cards: Vec<u32>,
}

/// One library size with every contender built over it.
struct Fixture {
    phrases: Vec<String>,
    library: Library,
    matcher: Matcher,
    /// Space-padded phrases for the naive scan, and each phrase's card.
    padded: Vec<String>,
    card_of: Vec<u32>,
    regex: Option<regex::Regex>,
    regex_ids: HashMap<String, u32>,
    regex_build: Duration,
    regex_raw: Option<regex::Regex>,
    ac: aho_corasick::AhoCorasick,
    ac_build: Duration,
    daac: daachorse::DoubleArrayAhoCorasick<u32>,
    daac_build: Duration,
}

impl Fixture {
    fn new(n: usize) -> Fixture {
        let phrases = common::phrases(n, common::SEED);
        let yaml = common::library_yaml(&phrases);
        let library = Library::from_sources(&[("generated.yaml", &yaml)], "<bench>")
            .expect("generated library is valid");
        let matcher = Matcher::build(&library).expect("matcher");
        assert_eq!(matcher.pattern_count(), n);
        let padded: Vec<String> = phrases.iter().map(|p| format!(" {p} ")).collect();
        let card_of: Vec<u32> = (0..n).map(|i| (i / common::PER_CARD) as u32).collect();

        let started = Instant::now();
        let alternation = phrases
            .iter()
            .map(|p| regex::escape(p))
            .collect::<Vec<_>>()
            .join("|");
        let regex = regex::RegexBuilder::new(&format!(r"\b(?:{alternation})\b"))
            .size_limit(1 << 30)
            .dfa_size_limit(1 << 28)
            .build()
            .map_err(|e| eprintln!("regex at {n} phrases not built: {e}"))
            .ok();
        let regex_build = started.elapsed();
        let regex_raw = regex::RegexBuilder::new(&format!(r"(?i)\b(?:{alternation})\b"))
            .size_limit(1 << 30)
            .dfa_size_limit(1 << 28)
            .build()
            .map_err(|e| eprintln!("regex_raw at {n} phrases not built: {e}"))
            .ok();

        let started = Instant::now();
        let ac = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::Standard)
            .build(&padded)
            .expect("aho-corasick");
        let ac_build = started.elapsed();
        let regex_ids = phrases
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i as u32))
            .collect();

        let started = Instant::now();
        let daac = daachorse::DoubleArrayAhoCorasickBuilder::new()
            .match_kind(daachorse::MatchKind::Standard)
            .build_with_values(padded.iter().zip(0u32..))
            .expect("daachorse");
        let daac_build = started.elapsed();
        Fixture {
            phrases,
            library,
            matcher,
            padded,
            card_of,
            regex,
            regex_ids,
            regex_build,
            regex_raw,
            ac,
            ac_build,
            daac,
            daac_build,
        }
    }

    /// cuedeck: normalize, find every phrase, look up the cards that use each.
    fn cuedeck(&self, u: &str, s: &mut Scratch) -> usize {
        s.hits.clear();
        self.matcher.normalize_and_find(u, &mut s.text, &mut s.hits);
        s.cards.clear();
        for &p in &s.hits {
            s.cards
                .extend(self.matcher.targets(p).iter().map(|t| t.card));
        }
        s.cards.len()
    }

    fn naive(&self, u: &str, s: &mut Scratch) -> usize {
        normalize_into(u, &mut s.text);
        s.cards.clear();
        for (i, p) in self.padded.iter().enumerate() {
            if s.text.contains(p.as_str()) {
                s.cards.push(self.card_of[i]);
            }
        }
        s.cards.len()
    }

    fn regex(&self, u: &str, s: &mut Scratch) -> usize {
        let Some(re) = &self.regex else { return 0 };
        normalize_into(u, &mut s.text);
        s.cards.clear();
        for m in re.find_iter(&s.text) {
            if let Some(&id) = self.regex_ids.get(m.as_str()) {
                s.cards.push(self.card_of[id as usize]);
            }
        }
        s.cards.len()
    }

    fn regex_raw(&self, u: &str, s: &mut Scratch) -> usize {
        let Some(re) = &self.regex_raw else { return 0 };
        s.cards.clear();
        for m in re.find_iter(u) {
            s.text.clear();
            s.text.push_str(m.as_str());
            s.text.make_ascii_lowercase();
            if let Some(&id) = self.regex_ids.get(s.text.as_str()) {
                s.cards.push(self.card_of[id as usize]);
            }
        }
        s.cards.len()
    }

    fn aho_corasick(&self, u: &str, s: &mut Scratch) -> usize {
        normalize_into(u, &mut s.text);
        s.hits.clear();
        for m in self.ac.find_overlapping_iter(&s.text) {
            let id = m.pattern().as_u32();
            if !s.hits.contains(&id) {
                s.hits.push(id);
            }
        }
        s.cards.clear();
        s.cards
            .extend(s.hits.iter().map(|&id| self.card_of[id as usize]));
        s.cards.len()
    }

    fn daachorse(&self, u: &str, s: &mut Scratch) -> usize {
        normalize_into(u, &mut s.text);
        s.hits.clear();
        for m in self.daac.find_overlapping_iter(&s.text) {
            let id = m.value();
            if !s.hits.contains(&id) {
                s.hits.push(id);
            }
        }
        s.cards.clear();
        s.cards
            .extend(s.hits.iter().map(|&id| self.card_of[id as usize]));
        s.cards.len()
    }

    fn run(&self, which: &str, u: &str, s: &mut Scratch) -> usize {
        match which {
            "cuedeck" => self.cuedeck(u, s),
            "naive" => self.naive(u, s),
            "regex" => self.regex(u, s),
            "regex_raw" => self.regex_raw(u, s),
            "aho_corasick" => self.aho_corasick(u, s),
            _ => self.daachorse(u, s),
        }
    }
}

const CONTENDERS: &[&str] = &[
    "cuedeck",
    "naive",
    "regex",
    "regex_raw",
    "aho_corasick",
    "daachorse",
];

/// Every contender but the regexes finds exactly the same cards, in the same order.
fn check_agreement(f: &Fixture, corpus: &[String]) -> [usize; 6] {
    let mut totals = [0; 6];
    for u in corpus {
        let mut sets: Vec<Vec<u32>> = Vec::new();
        let mut ordered: Vec<Vec<u32>> = Vec::new();
        for (i, c) in CONTENDERS.iter().enumerate() {
            let mut s = Scratch::default();
            totals[i] += f.run(c, u, &mut s);
            ordered.push(s.cards.clone());
            let mut cards = s.cards.clone();
            cards.sort_unstable();
            cards.dedup();
            sets.push(cards);
        }
        assert_eq!(sets[0], sets[1], "cuedeck and naive disagree on {u:?}");
        assert_eq!(
            ordered[0], ordered[4],
            "cuedeck and aho-corasick differ on {u:?}"
        );
        assert_eq!(sets[0], sets[5], "cuedeck and daachorse disagree on {u:?}");
        assert!(
            sets[2].iter().all(|c| sets[0].contains(c)),
            "regex found a card cuedeck did not on {u:?}"
        );
    }
    totals
}

/// Per-utterance time distribution (ns): every utterance timed in small batches, over as
/// many rounds as fit in `budget`.
fn distribution(f: &Fixture, which: &str, corpus: &[String], budget: Duration) -> Vec<f64> {
    let mut s = Scratch::default();
    // Estimate the mean to size batches (≥ ~5 µs per timed batch) and rounds.
    let started = Instant::now();
    for u in corpus {
        black_box(f.run(which, black_box(u), &mut s));
    }
    let mean_ns = started.elapsed().as_nanos() as f64 / corpus.len() as f64;
    let batch = ((5_000.0 / mean_ns).ceil() as usize).clamp(1, 64);
    let per_round = mean_ns * batch as f64 * corpus.len() as f64;
    let rounds = ((budget.as_nanos() as f64 / per_round) as usize).clamp(3, 500);
    let mut samples = Vec::with_capacity(rounds * corpus.len());
    for _ in 0..rounds {
        for u in corpus {
            let t = Instant::now();
            for _ in 0..batch {
                black_box(f.run(which, black_box(u), &mut s));
            }
            samples.push(t.elapsed().as_nanos() as f64 / batch as f64);
        }
    }
    samples.sort_by(f64::total_cmp);
    samples
}

fn criterion_groups(c: &mut Criterion, fixtures: &[(&str, Fixture)], corpus: &[String]) {
    for (label, f) in fixtures {
        let mut group = c.benchmark_group(format!("match_utterance/{label}"));
        // Time per utterance = reported time / 64 (the corpus size); throughput says so.
        group.throughput(Throughput::Elements(corpus.len() as u64));
        if f.phrases.len() >= 100_000 {
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
        } else {
            group.sample_size(30);
        }
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
        for which in CONTENDERS {
            if (*which == "regex" && f.regex.is_none())
                || (*which == "regex_raw" && f.regex_raw.is_none())
            {
                continue;
            }
            group.bench_function(BenchmarkId::from_parameter(which), |b| {
                let mut s = Scratch::default();
                b.iter(|| {
                    let mut n = 0;
                    for u in corpus {
                        n += f.run(which, black_box(u), &mut s);
                    }
                    n
                })
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("build");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    // What is built is not freed inside the timing: a reload frees the engine it replaces
    // later, on another thread (`server::reload`).
    for (label, f) in fixtures {
        group.bench_function(BenchmarkId::new("matcher", label), |b| {
            b.iter_with_large_drop(|| Matcher::build(&f.library).expect("matcher"))
        });
        let yaml = common::library_yaml(&f.phrases);
        group.bench_function(BenchmarkId::new("yaml_library_engine", label), |b| {
            b.iter_with_large_drop(|| {
                let library =
                    Library::from_sources(&[("generated.yaml", &yaml)], "<bench>").expect("valid");
                Engine::new(library).expect("engine")
            })
        });
        let files = common::library_files(&f.phrases);
        let sources: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        group.bench_function(
            BenchmarkId::new("yaml_library_engine_file_per_card", label),
            |b| {
                b.iter_with_large_drop(|| {
                    let library = Library::from_sources(&sources, "<bench>").expect("valid");
                    Engine::new(library).expect("engine")
                })
            },
        );
    }
    group.finish();
}

fn summary(fixtures: &[(&str, Fixture)], corpus: &[String]) {
    let bytes: usize = corpus.iter().map(String::len).sum();
    println!(
        "\ncorpus: {} utterances, mean {:.0} bytes",
        corpus.len(),
        bytes as f64 / corpus.len() as f64
    );
    println!(
        "\n{:>7} {:>12} {:>11} {:>11} {:>11} {:>10}  hits on corpus (cards)",
        "phrases", "contender", "p50 ns", "p99 ns", "mean ns", "vs cuedeck"
    );
    for (label, f) in fixtures {
        let totals = check_agreement(f, corpus);
        let mut medians = Vec::new();
        for (i, which) in CONTENDERS.iter().enumerate() {
            if (*which == "regex" && f.regex.is_none())
                || (*which == "regex_raw" && f.regex_raw.is_none())
            {
                println!("{label:>7} {which:>12}  (not built)");
                medians.push(f64::NAN);
                continue;
            }
            let budget = Duration::from_millis(if *which == "cuedeck" { 1500 } else { 800 });
            let d = distribution(f, which, corpus, budget);
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            let p50 = common::percentile(&d, 50.0);
            let p99 = common::percentile(&d, 99.0);
            medians.push(p50);
            let ratio = if i == 0 {
                "1.0x".to_string()
            } else {
                format!("{:.1}x", p50 / medians[0])
            };
            println!(
                "{label:>7} {which:>12} {p50:>11.0} {p99:>11.0} {mean:>11.0} {ratio:>10}  {}",
                totals[i]
            );
        }
    }
    println!(
        "\n{:>7} {:>14} {:>14} {:>16} {:>14} {:>12} {:>12} {:>12}",
        "phrases",
        "cuedeck bytes",
        "ac bytes",
        "daachorse bytes",
        "matcher build",
        "regex build",
        "ac build",
        "daac build"
    );
    let mut loads = Vec::new();
    for (label, f) in fixtures {
        let started = Instant::now();
        let m = Matcher::build(&f.library).expect("matcher");
        let build = started.elapsed();
        println!(
            "{label:>7} {:>14} {:>14} {:>16} {:>11.1} ms {:>9.1} ms {:>9.1} ms {:>9.1} ms",
            m.automaton_bytes(),
            f.ac.memory_usage(),
            f.daac.heap_bytes(),
            build.as_secs_f64() * 1e3,
            f.regex_build.as_secs_f64() * 1e3,
            f.ac_build.as_secs_f64() * 1e3,
            f.daac_build.as_secs_f64() * 1e3,
        );
        loads.push((label, yaml_to_engine(f)));
    }
    println!(
        "\n{:>7} {:>22} {:>22}",
        "phrases", "YAML→Engine, one file", "one file per card"
    );
    for (label, (one, per_card)) in loads {
        println!(
            "{label:>7} {:>19.1} ms {:>19.1} ms",
            one.as_secs_f64() * 1e3,
            per_card.as_secs_f64() * 1e3
        );
    }
}

/// Best of three loads of the fixture's library from YAML to a built `Engine`, in one file
/// and in one file per card (freeing the engine is not timed, as in the `build` group).
fn yaml_to_engine(f: &Fixture) -> (Duration, Duration) {
    let yaml = common::library_yaml(&f.phrases);
    let files = common::library_files(&f.phrases);
    let sources: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let best = |sources: &[(&str, &str)]| {
        (0..3)
            .map(|_| {
                let started = Instant::now();
                let library = Library::from_sources(sources, "<bench>").expect("valid");
                let engine = Engine::new(library).expect("engine");
                let took = started.elapsed();
                drop(black_box(engine));
                took
            })
            .min()
            .unwrap_or_default()
    };
    (best(&[("generated.yaml", &yaml)]), best(&sources))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --benches` passes --test (run once, quietly); --list lists.
    let listing = args.iter().any(|a| a == "--list" || a == "--test");
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let corpus = common::corpus();
    let sizes: Vec<(usize, &str)> = if listing {
        vec![SIZES[0]]
    } else {
        SIZES.to_vec()
    };
    let fixtures: Vec<(&str, Fixture)> = sizes
        .iter()
        .map(|&(n, label)| (label, Fixture::new(n)))
        .collect();
    for (label, f) in &fixtures {
        eprintln!(
            "{label}: {} phrases, automaton {} bytes",
            f.matcher.pattern_count(),
            f.matcher.automaton_bytes()
        );
    }
    let only_summary = filter.as_deref() == Some("summary");
    if !only_summary {
        let mut c = Criterion::default().configure_from_args();
        criterion_groups(&mut c, &fixtures, &corpus);
        c.final_summary();
    }
    if !listing && (filter.is_none() || only_summary) {
        summary(&fixtures, &corpus);
    }
}
