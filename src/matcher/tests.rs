use super::*;
use crate::library::Library;

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
}
