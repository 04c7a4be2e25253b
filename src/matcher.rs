//! Text normalization and the phrase automaton.
//!
//! Phrases and transcript text go through the same [`normalize`]: Unicode lowercase,
//! apostrophes removed, every other non-alphanumeric character turned into a space, runs of
//! spaces collapsed, one space of padding at each end. Patterns are stored padded too
//! (`" price "`), so an Aho-Corasick hit is a whole-word hit by construction: `" price "`
//! cannot occur inside `" priceless "`. Overlapping iteration reports every phrase, so
//! `" price "` and `" price too high "` both match `" the price too high "`.
//!
//! One automaton holds every distinct phrase of every card; each pattern maps to the
//! `(card, role)` pairs that use it. The matcher is pure and synchronous.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::library::Library;

/// Normalizes `text` into `out` (cleared first). The result always starts and ends with a
/// space; text with no letters or digits normalizes to a single space.
pub fn normalize_into(text: &str, out: &mut String) {
    out.clear();
    out.reserve(text.len() + 2);
    out.push(' ');
    let mut last_was_space = true;
    for c in text.chars() {
        if c == '\'' || c == '\u{2019}' {
            continue;
        }
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
                last_was_space = false;
                continue;
            }
        } else if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            last_was_space = false;
            continue;
        }
        if !last_was_space {
            out.push(' ');
            last_was_space = true;
        }
    }
    if !last_was_space {
        out.push(' ');
    }
}

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
    automaton: AhoCorasick,
    phrases: Vec<Box<str>>,
    targets: Vec<Vec<Target>>,
    by_phrase: std::collections::HashMap<Box<str>, PatternId>,
}

/// The automaton could not be built (only possible for absurdly large libraries).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the phrase automaton: {0}")]
pub struct BuildError(#[from] aho_corasick::BuildError);

impl Matcher {
    /// Builds one automaton over all phrases of all cards of `library`.
    pub fn build(library: &Library) -> Result<Matcher, BuildError> {
        let mut index: std::collections::HashMap<&str, PatternId> = Default::default();
        let mut patterns: Vec<String> = Vec::new();
        let mut phrases: Vec<Box<str>> = Vec::new();
        let mut targets: Vec<Vec<Target>> = Vec::new();
        for (ci, card) in library.cards().iter().enumerate() {
            let t = &card.triggers;
            let uses =
                t.any
                    .iter()
                    .map(|p| (p, Role::Any))
                    .chain(
                        t.all.iter().enumerate().flat_map(|(g, group)| {
                            group.iter().map(move |p| (p, Role::All(g as u8)))
                        }),
                    )
                    .chain(t.unless.iter().map(|p| (p, Role::Unless)));
            for (phrase, role) in uses {
                let key = phrase.normalized.as_str();
                let id = match index.get(key) {
                    Some(&id) => id,
                    None => {
                        let id = patterns.len() as PatternId;
                        patterns.push(format!(" {key} "));
                        phrases.push(key.into());
                        targets.push(Vec::new());
                        index.insert(key, id);
                        id
                    }
                };
                let target = Target {
                    card: ci as u32,
                    role,
                };
                let list = &mut targets[id as usize];
                if !list.contains(&target) {
                    list.push(target);
                }
            }
        }
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(&patterns)?;
        let by_phrase = phrases
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i as PatternId))
            .collect();
        Ok(Matcher {
            automaton,
            phrases,
            targets,
            by_phrase,
        })
    }

    /// Appends the distinct patterns found in `normalized` (the output of [`normalize`]) to
    /// `out`, in the order their first occurrence ends in the text.
    pub fn find(&self, normalized: &str, out: &mut Vec<PatternId>) {
        for m in self.automaton.find_overlapping_iter(normalized) {
            let id = m.pattern().as_u32();
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }

    /// The normalized phrase of a pattern, without padding (`"price too high"`).
    pub fn phrase(&self, id: PatternId) -> &str {
        self.phrases.get(id as usize).map_or("", |p| p)
    }

    /// The pattern of a normalized phrase (no padding), if the library has it.
    pub fn lookup(&self, phrase: &str) -> Option<PatternId> {
        self.by_phrase.get(phrase).copied()
    }

    /// Which cards use a pattern, and how.
    pub fn targets(&self, id: PatternId) -> &[Target] {
        self.targets.get(id as usize).map_or(&[], |t| t)
    }

    /// Number of distinct phrases in the automaton.
    pub fn pattern_count(&self) -> usize {
        self.phrases.len()
    }

    /// Heap bytes used by the automaton itself.
    pub fn automaton_bytes(&self) -> usize {
        self.automaton.memory_usage()
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

        fn library_with(phrase: &str) -> Library {
            let yaml = format!(
                "id: p\ntitle: P\ncategory: other\ntriggers: {{ any: [\"{phrase}\"] }}\nbody: b\n"
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
                let m = Matcher::build(&library_with(&phrase)).unwrap();
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
                let m = Matcher::build(&library_with(&phrase)).unwrap();
                let glued = if left { format!("{glue}{phrase}") } else { format!("{phrase}{glue}") };
                let mut words = filler.clone();
                words.push(glued);
                words.extend(filler.iter().cloned());
                let text = words.join(" ");
                let mut out = Vec::new();
                m.find(&normalize(&text), &mut out);
                prop_assert!(out.is_empty(), "{:?} found in {:?}", phrase, text);
            }
        }
    }
}
