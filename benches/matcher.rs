//! Matching one utterance against the bundled library: cuedeck's matcher (normalize +
//! automaton) against a naive baseline (lowercase + whole-word `contains` per phrase),
//! measured in the same group. See BENCH.md for the full method.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use cuedeck::library::Library;
use cuedeck::matcher::{Matcher, normalize, normalize_into};

const UTTERANCES: &[&str] = &[
    "honestly the price is a bit too high for us right now, can you do better",
    "we are also looking at Acme and their quote came in a lot cheaper than yours",
    "I need to run this by my boss and probably finance before we sign anything",
    "how long does implementation usually take for a team of about forty people",
    "sounds good, what are the next steps on your side, can you send the contract",
    "we had a great quarter and the weather has been nice, thanks for asking",
];

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("battlecards");
    let library = Library::load_dir(&dir).expect("bundled cards");
    let matcher = Matcher::build(&library).expect("matcher");
    let phrases: Vec<String> = library
        .cards()
        .iter()
        .flat_map(|c| c.triggers.any.iter().map(|p| format!(" {} ", p.normalized)))
        .collect();

    let mut group = c.benchmark_group("match_utterance_bundled");
    group.bench_function("cuedeck", |b| {
        let mut buf = String::new();
        let mut hits = Vec::new();
        b.iter(|| {
            for u in UTTERANCES {
                normalize_into(black_box(u), &mut buf);
                hits.clear();
                matcher.find(&buf, &mut hits);
                black_box(&hits);
            }
        })
    });
    group.bench_function("naive_contains", |b| {
        b.iter(|| {
            for u in UTTERANCES {
                let text = normalize(black_box(u));
                let n = phrases.iter().filter(|p| text.contains(p.as_str())).count();
                black_box(n);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
