//! Text normalization and the phrase automaton.
//!
//! Phrases and transcript text go through the same [`normalize`]: Unicode lowercase,
//! apostrophes removed, every other non-alphanumeric character turned into a space, runs of
//! spaces collapsed, one space of padding at each end. A normalized text is therefore a
//! sequence of words separated by single spaces, and a phrase occurs in it (as the padded
//! pattern `" price too high "` would occur in the padded text) exactly when its words
//! occur consecutively: matching is whole-word by construction (`price` never matches
//! inside `priceless`), and every phrase is reported, overlapping ones included (`price`
//! and `price too high` both match `the price too high`).
//!
//! The automaton works on words, not bytes: every word of every phrase gets an id (a small
//! open-addressing table), and the phrases form a trie over word ids (root children in a
//! dense array, the rest in sorted arrays). Matching walks the text word by word keeping
//! the trie nodes of the partial matches still alive, oldest first — the same result, in
//! the same order, as a byte-level Aho-Corasick over the padded patterns with overlapping
//! iteration (this module used one; the tests and the bench compare both), but at a
//! fraction of the memory and build time, and faster, because it takes one step per word
//! instead of one per byte. BENCH.md has the measurements.
//!
//! [`Matcher::normalize_and_find`] does both jobs in one pass over the text: each word is
//! looked up as soon as the normalizer completes it. Words are hashed and compared with
//! fixed-size loads (nearly all are at most 8 bytes), and spans of words and single spaces
//! are copied at once, so a ~90-byte utterance costs a few hundred nanoseconds.
//!
//! One automaton holds every distinct phrase of every card; each pattern maps to the
//! `(card, role)` pairs that use it. The matcher is pure and synchronous.

use crate::library::Library;
use crate::parallel::Task;

/// Normalizes `text` into `out` (cleared first). The result always starts and ends with a
/// space; text with no letters or digits normalizes to a single space.
pub fn normalize_into(text: &str, out: &mut String) {
    normalize_with(text, out, |_| {});
}

/// [`normalize_into`], calling `on_word` with each output word as soon as it is complete,
/// so that matching can run in the same pass (no second scan for the spaces).
#[inline(always)]
fn normalize_with(text: &str, out: &mut String, mut on_word: impl FnMut(&[u8])) {
    out.clear();
    out.reserve(text.len() + 2);
    out.push(' ');
    let mut word_start = out.len();
    let bytes = text.as_bytes();
    let mut last_was_space = true;
    let mut i = 0;
    // Byte classes for ASCII (a table lookup per byte); other characters are decoded and
    // handled one by one. Transcript text is mostly words and single spaces: such a span is
    // copied with one `push_str` and lowercased in place, instead of word by word.
    while i < bytes.len() {
        match ASCII_CLASS[bytes[i] as usize] {
            KEEP | UPPER => {
                let start = i;
                let mut upper = false;
                loop {
                    match bytes.get(i).map(|&b| ASCII_CLASS[b as usize]) {
                        Some(KEEP) => i += 1,
                        Some(UPPER) => {
                            upper = true;
                            i += 1;
                        }
                        // A single space followed by a word byte stays inside the span.
                        Some(SEPARATOR)
                            if bytes[i] == b' '
                                && bytes.get(i + 1).is_some_and(|&b| {
                                    matches!(ASCII_CLASS[b as usize], KEEP | UPPER)
                                }) =>
                        {
                            i += 1
                        }
                        _ => break,
                    }
                }
                let from = out.len();
                out.push_str(&text[start..i]);
                if upper {
                    out[from..].make_ascii_lowercase();
                }
                // Words completed inside the span; the last one may go on (`don't`).
                let copied = out.as_bytes();
                for (k, &b) in copied.iter().enumerate().skip(from) {
                    if b == b' ' {
                        on_word(&copied[word_start..k]);
                        word_start = k + 1;
                    }
                }
                last_was_space = false;
                continue;
            }
            APOSTROPHE => {}
            SEPARATOR => {
                if !last_was_space {
                    on_word(&out.as_bytes()[word_start..]);
                    out.push(' ');
                    word_start = out.len();
                    last_was_space = true;
                }
            }
            _ => {
                // Not ASCII: `i` is at a character boundary (only ASCII bytes and whole
                // characters are stepped over).
                let Some(c) = text[i..].chars().next() else {
                    break;
                };
                i += c.len_utf8();
                if c == '\u{2019}' {
                    continue;
                }
                if c.is_alphanumeric() {
                    out.extend(c.to_lowercase());
                    last_was_space = false;
                } else if !last_was_space {
                    on_word(&out.as_bytes()[word_start..]);
                    out.push(' ');
                    word_start = out.len();
                    last_was_space = true;
                }
                continue;
            }
        }
        i += 1;
    }
    if !last_was_space {
        on_word(&out.as_bytes()[word_start..]);
        out.push(' ');
    }
}

const SEPARATOR: u8 = 0;
const KEEP: u8 = 1;
const UPPER: u8 = 2;
const APOSTROPHE: u8 = 3;
const NON_ASCII: u8 = 4;

/// What [`normalize_into`] does with each byte value.
static ASCII_CLASS: [u8; 256] = {
    let mut t = [SEPARATOR; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c >= 0x80 {
            NON_ASCII
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            KEEP
        } else if c.is_ascii_uppercase() {
            UPPER
        } else if c == b'\'' {
            APOSTROPHE
        } else {
            SEPARATOR
        };
        b += 1;
    }
    t
};

/// Normalizes `text` into a new string; see [`normalize_into`].
pub fn normalize(text: &str) -> String {
    let mut out = String::new();
    normalize_into(text, &mut out);
    out
}

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
    pub card: u32,
    pub role: Role,
}

/// Identifies one distinct normalized phrase in the automaton.
pub type PatternId = u32;

/// The automaton over every phrase of a library.
#[derive(Debug, Clone)]
pub struct Matcher {
    automaton: WordTrie,
    phrases: Vec<Box<str>>,
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
        if automaton.patterns != phrases.len() {
            return Err(BuildError(format!(
                "the trie numbered {} phrases, the index {}",
                automaton.patterns,
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

/// Hash maps for building: their keys are the library's own phrases and words, not
/// client input, so a fast multiply-rotate hash replaces SipHash (about a third of the
/// build time at 100k phrases went to hashing).
type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

#[derive(Default)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            self.write_u64(pack_short(chunk).unwrap_or(0));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply leaves its entropy in the high bits; the table indexes by the low.
        self.0.rotate_left(26)
    }
}

const NO_NODE: u32 = u32::MAX;
const NO_PATTERN: u32 = u32::MAX;
/// Partial matches tracked on the stack; deeper libraries use a heap buffer per call.
const ACTIVE_ON_STACK: usize = 64;

/// Every word of every phrase → a dense id. Open addressing with linear probing at a load
/// factor of at most 1/2; keys live in one arena.
#[derive(Debug, Clone)]
struct Vocab {
    /// Word id + 1 per slot; 0 is empty.
    slots: Vec<u32>,
    hashes: Vec<u64>,
    /// Word id → start of its bytes in `arena`; one more entry than words.
    starts: Vec<u32>,
    arena: Vec<u8>,
}

impl Vocab {
    fn new(words: &[&str]) -> Vocab {
        let cap = (words.len() * 2).next_power_of_two().max(16);
        let mut v = Vocab {
            slots: vec![0; cap],
            hashes: Vec::with_capacity(words.len()),
            starts: Vec::with_capacity(words.len() + 1),
            arena: Vec::new(),
        };
        v.starts.push(0);
        for (id, w) in words.iter().enumerate() {
            let h = hash_word(w.as_bytes());
            v.hashes.push(h);
            v.arena.extend_from_slice(w.as_bytes());
            v.starts.push(v.arena.len() as u32);
            let mask = cap - 1;
            let mut i = (h >> 32) as usize & mask;
            while v.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            v.slots[i] = id as u32 + 1;
        }
        v
    }

    #[inline(always)]
    fn get(&self, word: &[u8]) -> Option<u32> {
        let h = hash_word(word);
        let mask = self.slots.len() - 1;
        let mut i = (h >> 32) as usize & mask;
        loop {
            let id = self.slots[i].checked_sub(1)? as usize;
            if self.hashes[id] == h
                && same_word(
                    &self.arena[self.starts[id] as usize..self.starts[id + 1] as usize],
                    word,
                )
            {
                return Some(id as u32);
            }
            i = (i + 1) & mask;
        }
    }

    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4
            + self.hashes.capacity() * 8
            + self.starts.capacity() * 4
            + self.arena.capacity()
    }
}

/// A fast non-cryptographic hash of a word (the keys are the library's own words, so
/// flooding is not a concern). Words of up to 8 bytes — nearly all — are read with
/// fixed-size loads (no `memcpy` call for a variable-length tail); longer ones 8 bytes at
/// a time.
#[inline(always)]
fn hash_word(w: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (w.len() as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
    if let Some(packed) = pack_short(w) {
        h ^= packed;
    } else {
        for c in w.chunks(8) {
            h = (h ^ pack_short(c).unwrap_or(0))
                .wrapping_mul(K)
                .rotate_left(29);
        }
    }
    let h = h.wrapping_mul(K);
    h ^ (h >> 29)
}

/// The bytes of a word of at most 8 bytes in one `u64`: together with the length it
/// determines the word (lengths 4–8: the first and the last four bytes, overlapping;
/// 1–3: first, middle and last byte). `None` for longer words.
#[inline(always)]
fn pack_short(w: &[u8]) -> Option<u64> {
    let n = w.len();
    match (w.first_chunk::<4>(), w.last_chunk::<4>()) {
        _ if n > 8 => None,
        (Some(a), Some(b)) => {
            Some(u64::from(u32::from_le_bytes(*a)) | u64::from(u32::from_le_bytes(*b)) << 32)
        }
        _ => match (w.first(), w.get(n / 2), w.last()) {
            (Some(&a), Some(&m), Some(&z)) => {
                Some(u64::from(a) | u64::from(m) << 8 | u64::from(z) << 16)
            }
            _ => Some(0),
        },
    }
}

/// Word equality without a `memcmp` call for short words.
#[inline(always)]
fn same_word(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && match (pack_short(a), pack_short(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        }
}

/// The phrases as a trie over word ids. Node 0 is the root; its children are a dense
/// array indexed by word id, every other node's children a sorted run of `(word, node)`.
#[derive(Debug, Clone)]
struct WordTrie {
    vocab: Vocab,
    root: Vec<u32>,
    /// Node `n`'s children are `edge_word/edge_node[offsets[n]..offsets[n + 1]]`.
    offsets: Vec<u32>,
    edge_word: Vec<u32>,
    edge_node: Vec<u32>,
    /// Node → the pattern ending there, or `NO_PATTERN`.
    pattern: Vec<u32>,
    /// Number of distinct phrases.
    patterns: usize,
    /// Words in the longest phrase: the most partial matches alive at once.
    max_depth: usize,
}

impl WordTrie {
    /// The trie of `phrases`, repeats allowed: a phrase's pattern id is the number of
    /// distinct phrases before its first occurrence (as [`index_phrases`] numbers them).
    fn build<'p>(phrases: impl Iterator<Item = &'p str>) -> Result<WordTrie, BuildError> {
        let mut word_ids: FastMap<&str, u32> = Default::default();
        let mut words: Vec<&str> = Vec::new();
        let mut children: FastMap<(u32, u32), u32> = Default::default();
        let mut pattern = vec![NO_PATTERN];
        let mut patterns = 0;
        let mut max_depth = 0;
        for phrase in phrases {
            let mut node = 0u32;
            let mut depth = 0;
            for w in phrase.split(' ') {
                let wid = *word_ids.entry(w).or_insert_with(|| {
                    words.push(w);
                    words.len() as u32 - 1
                });
                let fresh = u32::try_from(pattern.len())
                    .ok()
                    .filter(|&n| n != NO_NODE)
                    .ok_or_else(|| BuildError("more than 4 billion trie nodes".into()))?;
                node = *children.entry((node, wid)).or_insert_with(|| {
                    pattern.push(NO_PATTERN);
                    fresh
                });
                depth += 1;
            }
            max_depth = max_depth.max(depth);
            if pattern[node as usize] == NO_PATTERN {
                pattern[node as usize] = patterns;
                patterns += 1;
            }
        }
        let mut edges: Vec<(u32, u32, u32)> =
            children.into_iter().map(|((p, w), c)| (p, w, c)).collect();
        edges.sort_unstable();
        let mut root = vec![NO_NODE; words.len()];
        let mut offsets = vec![0u32; pattern.len() + 1];
        for &(parent, word, child) in &edges {
            if parent == 0 {
                root[word as usize] = child;
            }
            offsets[parent as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        Ok(WordTrie {
            vocab: Vocab::new(&words),
            root,
            offsets,
            edge_word: edges.iter().map(|e| e.1).collect(),
            edge_node: edges.iter().map(|e| e.2).collect(),
            pattern,
            patterns: patterns as usize,
            max_depth,
        })
    }

    /// The pattern of exactly `phrase` (words separated by single spaces): the trie is
    /// the index, so follow its words to where a pattern ends.
    fn pattern_of(&self, phrase: &str) -> Option<PatternId> {
        let mut node = 0;
        for word in phrase.split(' ') {
            node = self.child(node, self.vocab.get(word.as_bytes())?);
            if node == NO_NODE {
                return None;
            }
        }
        self.pattern
            .get(node as usize)
            .copied()
            .filter(|&p| p != NO_PATTERN)
    }

    #[inline]
    fn child(&self, node: u32, word: u32) -> u32 {
        if node == 0 {
            return self.root[word as usize];
        }
        let (a, b) = (
            self.offsets[node as usize] as usize,
            self.offsets[node as usize + 1] as usize,
        );
        match self.edge_word[a..b].binary_search(&word) {
            Ok(i) => self.edge_node[a + i],
            Err(_) => NO_NODE,
        }
    }

    /// Runs `f` with a fresh walk over this trie (its partial-match buffer on the stack
    /// unless the library has phrases of more than `ACTIVE_ON_STACK` words).
    #[inline(always)]
    fn with_walk<R>(&self, f: impl FnOnce(&mut Walk<'_>) -> R) -> R {
        let mut stack = [0u32; ACTIVE_ON_STACK];
        let mut heap = Vec::new();
        let active: &mut [u32] = if self.max_depth <= ACTIVE_ON_STACK {
            &mut stack
        } else {
            heap.resize(self.max_depth, 0);
            &mut heap
        };
        f(&mut Walk {
            trie: self,
            active,
            alive: 0,
        })
    }

    fn heap_bytes(&self) -> usize {
        self.vocab.heap_bytes()
            + (self.root.capacity()
                + self.offsets.capacity()
                + self.edge_word.capacity()
                + self.edge_node.capacity()
                + self.pattern.capacity())
                * 4
    }
}

/// Matching in progress: the trie nodes of the partial matches ending at the previous
/// word, oldest (longest) first; at most `max_depth` of them.
struct Walk<'a> {
    trie: &'a WordTrie,
    active: &'a mut [u32],
    alive: usize,
}

impl Walk<'_> {
    /// Advances over the next word of the text; appends the patterns that end here.
    #[inline(always)]
    fn step(&mut self, word: &[u8], out: &mut Vec<PatternId>) {
        let trie = self.trie;
        let Some(word) = trie.vocab.get(word) else {
            self.alive = 0; // a word no phrase has: every partial match ends here
            return;
        };
        let active = &mut *self.active;
        let mut kept = 0;
        for j in 0..self.alive {
            let next = trie.child(active[j], word);
            if next != NO_NODE {
                active[kept] = next;
                kept += 1;
            }
        }
        let next = trie.root[word as usize];
        if next != NO_NODE && kept < active.len() {
            active[kept] = next;
            kept += 1;
        }
        self.alive = kept;
        for &node in &active[..kept] {
            let p = trie.pattern[node as usize];
            if p != NO_PATTERN && !out.contains(&p) {
                out.push(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::Library;

    macro_rules! norm {
        ($name:ident, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(normalize($input), $expected);
            }
        };
    }

    norm!(lowercases, "The PRICE Is", " the price is ");
    norm!(apostrophes_removed, "don't won’t", " dont wont ");
    norm!(possessive_glues, "Acme's deal", " acmes deal ");
    norm!(punctuation_is_space, "price,too-high!!", " price too high ");
    norm!(runs_collapse, "  a \t\n b  ", " a b ");
    norm!(unicode_lowercase, "CAFÉ Café", " café café ");
    norm!(digits_kept, "10k seats, $5/user", " 10k seats 5 user ");
    norm!(nothing_left, "?!  ...", " ");
    norm!(empty, "", " ");
    norm!(lone_apostrophe, "it ' x 'y", " it x y ");
    norm!(mixed_case_span, "We NEED to Think", " we need to think ");
    norm!(space_before_non_ascii, "a é", " a é ");
    norm!(non_latin_letters, "Цена ВЫСОКАЯ", " цена высокая ");

    fn lib(yaml: &str) -> Library {
        Library::from_sources(&[("cards.yaml", yaml)], "<test>").expect("valid test library")
    }

    fn hits(m: &Matcher, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        m.find(&normalize(text), &mut out);
        let mut v: Vec<String> = out.iter().map(|&id| m.phrase(id).to_string()).collect();
        v.sort();
        v
    }

    const TWO_CARDS: &str = r#"
- id: price
  title: Price
  category: objection
  triggers: { any: ["price", "price too high", "too expensive", "café"] }
  body: b
- id: budget
  title: Budget
  category: objection
  triggers: { any: ["budget", "price"], unless: ["no problem"] }
  body: b
"#;

    #[test]
    fn built_on_two_threads_or_one_the_matcher_is_the_same() {
        // Cards sharing phrases in every role, repeats within a card, phrases that are
        // prefixes of others: the two walks must number them alike.
        let mut yaml = String::new();
        for i in 0..300 {
            yaml.push_str(&format!(
                "- id: c{i}\n  title: t\n  category: objection\n  body: b\n  triggers:\n    \
                 any: [\"w{a} w{b}\", \"w{a}\", \"w{b} w{a} w{c}\", \"w{a} w{b}\"]\n    \
                 all: [[\"w{c}\", \"w{a}\"]]\n    unless: [\"w{b}\"]\n",
                a = i % 17,
                b = i % 5,
                c = (i * 7) % 23
            ));
        }
        let library = lib(&yaml);
        let one = Matcher::build_on(&library, false).unwrap();
        let two = Matcher::build_on(&library, true).unwrap();
        assert!(one.pattern_count() > 50, "{}", one.pattern_count());
        assert_eq!(one.pattern_count(), two.pattern_count());
        for id in 0..one.pattern_count() as PatternId {
            assert_eq!(one.phrase(id), two.phrase(id));
            assert_eq!(one.targets(id), two.targets(id));
            assert_eq!(two.lookup(two.phrase(id)), Some(id));
        }
        for text in ["w1 w2 w3 w4 w5", "w16 w0 w3 w11", "w4 w4 w4"] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            one.find(&normalize(text), &mut a);
            two.find(&normalize(text), &mut b);
            assert_eq!(a, b, "{text}");
        }
    }

    #[test]
    fn lookup_finds_exactly_the_library_phrases() {
        let m = Matcher::build(&lib(TWO_CARDS)).unwrap();
        for id in 0..m.pattern_count() as PatternId {
            assert_eq!(m.lookup(m.phrase(id)), Some(id), "{:?}", m.phrase(id));
        }
        // A prefix of a phrase, a phrase plus a word, unknown words: not phrases.
        for text in ["too", "price too", "price too high now", "cheap", "", "no"] {
            assert_eq!(m.lookup(text), None, "{text:?}");
        }
    }

    macro_rules! t {
        ($name:ident, $text:expr, [$($p:expr),*]) => {
            #[test]
            fn $name() {
                let m = Matcher::build(&lib(TWO_CARDS)).unwrap();
                let mut expected: Vec<String> = vec![$($p.to_string()),*];
                expected.sort();
                assert_eq!(hits(&m, $text), expected, "text: {:?}", $text);
            }
        };
    }

    t!(whole_word, "the price is", ["price"]);
    t!(not_inside_a_word, "it is priceless", []);
    t!(not_a_plural, "our prices went up", []);
    t!(case_insensitive, "The PRICE is", ["price"]);
    t!(
        overlapping_phrases,
        "the price too high",
        ["price", "price too high"]
    );
    t!(
        punctuation_between_words,
        "Price... too HIGH!",
        ["price", "price too high"]
    );
    t!(unicode_case, "a CAFÉ nearby", ["café"]);
    t!(at_text_edges, "price", ["price"]);
    t!(repeated_phrase_once, "price price price", ["price"]);
    t!(
        negative_phrase_found,
        "budget is no problem",
        ["budget", "no problem"]
    );
    t!(apostrophe_in_text, "it's too expensive", ["too expensive"]);

    #[test]
    fn word_equality_is_exact_for_every_length() {
        // Every word over a 3-letter alphabet up to 9 bytes against every other of the
        // same length: the packed comparison must agree with byte equality.
        let mut words: Vec<Vec<u8>> = vec![Vec::new()];
        let mut frontier = words.clone();
        for _ in 0..9 {
            let next: Vec<Vec<u8>> = frontier
                .iter()
                .flat_map(|w| {
                    b"abc".iter().map(move |&c| {
                        let mut w = w.clone();
                        w.push(c);
                        w
                    })
                })
                .collect();
            words.extend(next.iter().cloned());
            frontier = next;
        }
        let short: Vec<&Vec<u8>> = words.iter().filter(|w| w.len() <= 6).collect();
        for a in &short {
            for b in &short {
                assert_eq!(same_word(a, b), a == b, "{a:?} {b:?}");
            }
        }
        // Longer words: each against a sample, and hash collisions stay rare.
        let mut hashes: Vec<u64> = words.iter().map(|w| hash_word(w)).collect();
        for a in words.iter().filter(|w| w.len() >= 7).step_by(37) {
            for b in words.iter().filter(|w| w.len() == a.len()) {
                assert_eq!(same_word(a, b), a == b, "{a:?} {b:?}");
            }
        }
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(
            hashes.len(),
            words.len(),
            "a hash collision among {} words",
            words.len()
        );
    }

    #[test]
    fn shared_phrase_targets_both_cards() {
        let library = lib(TWO_CARDS);
        let m = Matcher::build(&library).unwrap();
        let mut out = Vec::new();
        m.find(&normalize("price"), &mut out);
        assert_eq!(out.len(), 1);
        let cards: Vec<&str> = m
            .targets(out[0])
            .iter()
            .map(|t| library.cards()[t.card as usize].id.as_str())
            .collect();
        assert_eq!(cards, ["budget", "price"]);
        assert_eq!(m.pattern_count(), 6);
    }

    #[test]
    fn roles_are_recorded() {
        let library = lib(TWO_CARDS);
        let m = Matcher::build(&library).unwrap();
        let mut out = Vec::new();
        m.find(&normalize("no problem"), &mut out);
        assert_eq!(m.targets(out[0])[0].role, Role::Unless);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// One card whose `any` list is `phrases`.
        fn library_with<S: AsRef<str>>(phrases: &[S]) -> Library {
            let quoted: Vec<String> = phrases
                .iter()
                .map(|p| format!("\"{}\"", p.as_ref()))
                .collect();
            let yaml = format!(
                "id: p\ntitle: P\ncategory: other\ntriggers: {{ any: [{}] }}\nbody: b\n",
                quoted.join(", ")
            );
            lib(&yaml)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            /// A phrase planted anywhere among random words is always found.
            #[test]
            fn planted_phrase_is_found(
                phrase in "[a-z]{1,8}( [a-z]{1,8}){0,2}",
                before in proptest::collection::vec("[a-z]{1,8}", 0..6),
                after in proptest::collection::vec("[a-z]{1,8}", 0..6),
                sep in "[ ,.!?;-]{1,3}",
            ) {
                let m = Matcher::build(&library_with(&[&phrase])).unwrap();
                let mut words = before.clone();
                words.push(phrase.to_uppercase());
                words.extend(after.iter().cloned());
                let text = words.join(&sep);
                let mut out = Vec::new();
                m.find(&normalize(&text), &mut out);
                prop_assert_eq!(out.len(), 1, "{:?} not found in {:?}", phrase, text);
            }

            /// A phrase glued to a letter on either side is never found (unless the text
            /// contains it elsewhere, which the generator rules out by using digits only).
            #[test]
            fn glued_phrase_is_not_found(
                phrase in "[a-z]{1,8}( [a-z]{1,8}){0,2}",
                glue in "[a-z]",
                left in any::<bool>(),
                filler in proptest::collection::vec("[0-9]{1,4}", 0..4),
            ) {
                let m = Matcher::build(&library_with(&[&phrase])).unwrap();
                let glued = if left { format!("{glue}{phrase}") } else { format!("{phrase}{glue}") };
                let mut words = filler.clone();
                words.push(glued);
                words.extend(filler.iter().cloned());
                let text = words.join(" ");
                let mut out = Vec::new();
                m.find(&normalize(&text), &mut out);
                prop_assert!(out.is_empty(), "{:?} found in {:?}", phrase, text);
            }

            /// The byte-table normalization equals the plain `chars()` definition.
            #[test]
            fn normalize_matches_reference(text in "(\\PC|[ 'A-Za-z0-9’,.!?-]){0,40}") {
                prop_assert_eq!(normalize(&text), reference_normalize(&text));
            }

            /// The word trie reports exactly what a byte-level Aho-Corasick over the padded
            /// patterns reports with overlapping iteration, in the same order.
            #[test]
            fn word_trie_equals_aho_corasick(
                phrases in proptest::collection::vec("[a-d]{1,2}( [a-d]{1,2}){0,3}", 1..12),
                text in proptest::collection::vec("[a-d]{1,2}|[A-D]|[,.!?]", 0..30),
            ) {
                let m = Matcher::build(&library_with(&phrases)).unwrap();
                let patterns: Vec<String> =
                    (0..m.pattern_count()).map(|i| format!(" {} ", m.phrase(i as u32))).collect();
                let ac = aho_corasick::AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::Standard)
                    .build(&patterns)
                    .unwrap();
                let normalized = normalize(&text.join(" "));
                let mut expected: Vec<PatternId> = Vec::new();
                for hit in ac.find_overlapping_iter(&normalized) {
                    let id = hit.pattern().as_u32();
                    if !expected.contains(&id) {
                        expected.push(id);
                    }
                }
                let mut out = Vec::new();
                m.find(&normalized, &mut out);
                prop_assert_eq!(out, expected, "text {:?}", normalized);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            /// The one-pass `normalize_and_find` gives the same text and the same patterns,
            /// in the same order, as `normalize_into` followed by `find`.
            #[test]
            fn one_pass_equals_two_passes(
                phrases in proptest::collection::vec("[a-dé]{1,2}( [a-dé]{1,2}){0,3}", 1..12),
                text in proptest::collection::vec("[a-dé]{1,2}|[A-DÉ]|[,.!?' ’]|\\PC", 0..30),
            ) {
                let m = Matcher::build(&library_with(&phrases)).unwrap();
                let text = text.concat();
                let two_pass_text = normalize(&text);
                let mut two_pass = Vec::new();
                m.find(&two_pass_text, &mut two_pass);
                let mut one_pass_text = String::from("stale");
                let mut one_pass = Vec::new();
                m.normalize_and_find(&text, &mut one_pass_text, &mut one_pass);
                prop_assert_eq!(one_pass_text, two_pass_text);
                prop_assert_eq!(one_pass, two_pass, "text {:?}", text);
            }
        }

        /// The definition `normalize_into` is optimized from.
        fn reference_normalize(text: &str) -> String {
            let mut out = String::from(" ");
            let mut last_was_space = true;
            for c in text.chars() {
                if c == '\'' || c == '\u{2019}' {
                    continue;
                }
                if c.is_alphanumeric() {
                    out.extend(c.to_lowercase());
                    last_was_space = false;
                } else if !last_was_space {
                    out.push(' ');
                    last_was_space = true;
                }
            }
            if !last_was_space {
                out.push(' ');
            }
            out
        }
    }
}
