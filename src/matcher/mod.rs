//! The phrase automaton: every phrase of every card, found in transcript text.
//!
//! Phrases and transcript text go through the same [`normalize`] (see [`crate::normalize`]),
//! so a phrase occurs in a normalized text (as the padded pattern `" price too high "` would
//! occur in the padded text) exactly when its words occur consecutively: matching is
//! whole-word by construction (`price` never matches inside `priceless`), and every phrase
//! is reported, overlapping ones included (`price` and `price too high` both match `the
//! price too high`).
//!
//! The automaton works on words, not bytes: every word of every phrase gets an id
//! (`vocab`: a small open-addressing table), and the phrases form a trie over word ids
//! (`trie`: root children in a dense array, the rest in sorted arrays). Matching walks the
//! text word by word keeping the trie nodes of the partial matches still alive, oldest
//! first — the same result, in the same order, as a byte-level Aho-Corasick over the padded
//! patterns with overlapping iteration (this module used one; the tests and the bench
//! compare both), but at a fraction of the memory and build time, and faster, because it
//! takes one step per word instead of one per byte. BENCH.md has the measurements.
//!
//! [`Matcher::normalize_and_find`] does both jobs in one pass over the text: each word is
//! looked up as soon as the normalizer completes it. Words are hashed and compared with
//! fixed-size loads (nearly all are at most 8 bytes), and spans of words and single spaces
//! are copied at once, so a ~90-byte utterance costs a few hundred nanoseconds.
//!
//! One automaton holds every distinct phrase of every card; each pattern maps to the
//! `(card, role)` pairs that use it. The matcher is pure and synchronous.

#![warn(missing_docs)]

mod trie;
mod vocab;

use crate::library::Library;
use crate::normalize::normalize_with;
use crate::parallel::Task;
use trie::WordTrie;
use vocab::FastMap;

// Callers normalize text before `find`; the normalizer lives in its own module.
pub use crate::normalize::{normalize, normalize_into};

/// How a card uses a phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// One of the card's `any` phrases: a hit makes the card a candidate.
    Any,
    /// A phrase of the card's `all` group with this index.
    All(u8),
    /// A negative phrase: a hit suppresses the card.
    Unless,
}

/// One use of a pattern: the card (its index in [`Library::cards`]) and the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Index of the card in the library's card list.
    pub card: u32,
    /// Which of the card's trigger lists the phrase is in.
    pub role: Role,
}

/// Identifies one distinct normalized phrase in the automaton.
pub type PatternId = u32;

/// The automaton over every phrase of a library.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The trie over every distinct normalized phrase; its pattern ids index the two
    /// tables below.
    automaton: WordTrie,
    /// Pattern id → the normalized phrase (logged with decisions, kept across reloads).
    phrases: Vec<Box<str>>,
    /// Pattern id → every card and trigger list the phrase appears in (a phrase shared by
    /// cards is matched once).
    targets: Vec<Vec<Target>>,
}

/// The automaton could not be built (only possible for absurdly large libraries).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the phrase automaton: {0}")]
pub struct BuildError(String);

impl Matcher {
    /// Builds one automaton over all phrases of all cards of `library`.
    pub fn build(library: &Library) -> Result<Matcher, BuildError> {
        // The phrase index (ids, cards) and the trie are two independent walks over the same
        // phrase uses, and both number distinct phrases in order of first use: on a large
        // library they run side by side (this is the one step of a reload that would
        // otherwise run on a single core).
        let parallel = library.cards().len() >= PARALLEL_MIN_CARDS
            && std::thread::available_parallelism().map_or(1, usize::from) > 1;
        Self::build_on(library, parallel)
    }

    fn build_on(library: &Library, parallel: bool) -> Result<Matcher, BuildError> {
        let trie_of = || WordTrie::build(phrase_uses(library).map(|(_, phrase, _)| phrase));
        let ((phrases, targets), automaton) = if parallel {
            std::thread::scope(|scope| {
                let trie = Task::spawn(scope, trie_of);
                (index_phrases(library), trie.join())
            })
        } else {
            (index_phrases(library), trie_of())
        };
        let automaton = automaton?;
        if automaton.patterns() != phrases.len() {
            return Err(BuildError(format!(
                "the trie numbered {} phrases, the index {}",
                automaton.patterns(),
                phrases.len()
            )));
        }
        Ok(Matcher {
            automaton,
            phrases,
            targets,
        })
    }

    /// Appends the distinct patterns found in `normalized` (the output of [`normalize`]) to
    /// `out`, in the order their first occurrence ends in the text (longest first among
    /// those ending at the same word). Allocates nothing beyond `out`'s growth.
    pub fn find(&self, normalized: &str, out: &mut Vec<PatternId>) {
        self.automaton.with_walk(|walk| {
            for word in normalized.as_bytes().split(|&b| b == b' ') {
                if !word.is_empty() {
                    walk.step(word, out);
                }
            }
        });
    }

    /// [`normalize_into`] `text` into `normalized`, and [`find`](Matcher::find) in it: the
    /// same result, in one pass over the text (each word is looked up as soon as it is
    /// complete).
    pub fn normalize_and_find(
        &self,
        text: &str,
        normalized: &mut String,
        out: &mut Vec<PatternId>,
    ) {
        self.automaton.with_walk(|walk| {
            normalize_with(text, normalized, |word| walk.step(word, out));
        });
    }

    /// The normalized phrase of a pattern, without padding (`"price too high"`).
    pub fn phrase(&self, id: PatternId) -> &str {
        self.phrases.get(id as usize).map_or("", |p| p)
    }

    /// The pattern of a normalized phrase (no padding), if the library has it.
    pub fn lookup(&self, phrase: &str) -> Option<PatternId> {
        self.automaton.pattern_of(phrase)
    }

    /// Which cards use a pattern, and how.
    pub fn targets(&self, id: PatternId) -> &[Target] {
        self.targets.get(id as usize).map_or(&[], |t| t)
    }

    /// Number of distinct phrases in the automaton.
    pub fn pattern_count(&self) -> usize {
        self.phrases.len()
    }

    /// Heap bytes used by the automaton itself (word table and trie).
    pub fn automaton_bytes(&self) -> usize {
        self.automaton.heap_bytes()
    }
}

/// From this many cards on, [`Matcher::build`] indexes and builds the trie on two threads.
const PARALLEL_MIN_CARDS: usize = 256;

/// Every use of a phrase by a card, in card order: `(card index, normalized phrase, role)`.
fn phrase_uses(library: &Library) -> impl Iterator<Item = (u32, &str, Role)> {
    library.cards().iter().enumerate().flat_map(|(ci, card)| {
        let ci = ci as u32;
        let t = &card.triggers;
        t.any
            .iter()
            .map(move |p| (ci, p.normalized.as_str(), Role::Any))
            .chain(t.all.iter().enumerate().flat_map(move |(g, group)| {
                group
                    .iter()
                    .map(move |p| (ci, p.normalized.as_str(), Role::All(g as u8)))
            }))
            .chain(
                t.unless
                    .iter()
                    .map(move |p| (ci, p.normalized.as_str(), Role::Unless)),
            )
    })
}

/// The distinct phrases, numbered in order of first use, and which cards use each, how.
fn index_phrases(library: &Library) -> (Vec<Box<str>>, Vec<Vec<Target>>) {
    let mut index: FastMap<&str, PatternId> = Default::default();
    let mut phrases: Vec<Box<str>> = Vec::new();
    let mut targets: Vec<Vec<Target>> = Vec::new();
    for (card, key, role) in phrase_uses(library) {
        let id = *index.entry(key).or_insert_with(|| {
            phrases.push(key.into());
            targets.push(Vec::new());
            (phrases.len() - 1) as PatternId
        });
        let target = Target { card, role };
        let list = &mut targets[id as usize];
        if !list.contains(&target) {
            list.push(target);
        }
    }
    (phrases, targets)
}

#[cfg(test)]
mod tests;
