//! Every validation error class, asserting file, line, column and message.

use super::*;

fn load(files: &[(&str, &str)]) -> Result<Library, Vec<LoadError>> {
    match Library::from_sources(files, "<test>") {
        Ok(l) => Ok(l),
        Err(LibraryError::Invalid(e)) => Err(e),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn errors(files: &[(&str, &str)]) -> Vec<LoadError> {
    load(files).expect_err("library should be invalid")
}

/// Asserts that some error is at `file:line` and its message contains `needle`.
#[track_caller]
fn has(errors: &[LoadError], file: &str, line: u32, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.at.file == file && e.at.line == line && e.message.contains(needle)),
        "no error at {file}:{line} containing {needle:?}; got:\n{}",
        join_lines(errors)
    );
}

const GOOD: &str = "\
id: price
title: Price objection
category: objection
priority: 90
triggers:
  any: [\"price is too high\", \"too expensive\"]
body: |
  Anchor on value.
";

#[test]
fn a_valid_card_loads_with_defaults() {
    let lib = load(&[("price.yaml", GOOD)]).unwrap();
    let card = lib.card("price").unwrap();
    assert_eq!(card.title, "Price objection");
    assert_eq!(card.category, Category::Objection);
    assert_eq!(card.priority, 90);
    assert_eq!(card.cooldown_seconds, 60);
    assert_eq!(card.max_per_call, 1);
    assert_eq!(card.triggers.speaker, SpeakerFilter::Prospect);
    assert_eq!(card.triggers.scope, Scope::Segment);
    assert_eq!(card.triggers.any[0].normalized, "price is too high");
    assert_eq!(card.origin.to_string(), "price.yaml:1:1");
    assert_eq!(*lib.deck(), Deck::default());
    assert!(lib.version().starts_with("sha256:"));
    assert_eq!(lib.version().len(), "sha256:".len() + 64);
}

#[test]
fn version_changes_with_content_only() {
    let a = load(&[("price.yaml", GOOD)]).unwrap();
    let b = load(&[("price.yaml", GOOD)]).unwrap();
    let c = load(&[("price.yaml", &GOOD.replace("90", "91"))]).unwrap();
    assert_eq!(a.version(), b.version());
    assert_ne!(a.version(), c.version());
}

#[test]
fn unknown_field_names_the_field_and_line() {
    let yaml = GOOD.replace("priority: 90", "priorty: 90");
    let e = errors(&[("price.yaml", &yaml)]);
    has(&e, "price.yaml", 4, "unknown field `priorty`");
    assert_eq!(e[0].at.column, 1);
}

#[test]
fn unknown_nested_field() {
    let yaml = GOOD.replace("  any:", "  speaker: rep\n  anny: [x]\n  any:");
    let e = errors(&[("price.yaml", &yaml)]);
    has(&e, "price.yaml", 7, "unknown field `anny`");
}

#[test]
fn missing_fields_are_reported_where_the_mapping_starts() {
    let yaml = "# a comment\nid: price\ncategory: objection\ntriggers: { any: [x] }\n";
    let e = errors(&[("price.yaml", yaml)]);
    has(&e, "price.yaml", 2, "missing required field `title`");
    has(&e, "price.yaml", 2, "missing required field `body`");
}

#[test]
fn missing_trigger_any_at_triggers_mapping() {
    let yaml = "id: a\ntitle: A\ncategory: other\nbody: b\ntriggers:\n  unless: [x]\n";
    let e = errors(&[("a.yaml", yaml)]);
    has(&e, "a.yaml", 6, "missing required field `any`");
}

#[test]
fn duplicate_key_at_second_occurrence() {
    let yaml = format!("{GOOD}title: Again\n");
    let e = errors(&[("price.yaml", &yaml)]);
    has(
        &e,
        "price.yaml",
        9,
        "duplicate key `title` (first at line 2, column 1)",
    );
}

#[test]
fn duplicate_card_ids_name_both_locations() {
    let other = format!("# second\n{GOOD}");
    let e = errors(&[("a.yaml", GOOD), ("b.yaml", &other)]);
    has(
        &e,
        "b.yaml",
        2,
        "duplicate card id `price` (also defined at a.yaml:1:1)",
    );
}

#[test]
fn bad_types_and_ranges() {
    let yaml = "\
id: Bad_Id
title: 5
category: rant
priority: 5000
cooldown_seconds: -1
max_per_call: 0
triggers:
  any: [x]
  speaker: customer
body: b
";
    let e = errors(&[("a.yaml", yaml)]);
    has(&e, "a.yaml", 1, "\"Bad_Id\" must be 1 to 64 characters");
    has(
        &e,
        "a.yaml",
        2,
        "`title`: expected a string, found an integer",
    );
    has(&e, "a.yaml", 3, "unknown value `rant`");
    has(&e, "a.yaml", 4, "5000 is out of range 0..=1000");
    has(&e, "a.yaml", 5, "-1 is out of range 0..=86400");
    has(&e, "a.yaml", 6, "0 is out of range 1..=100");
    has(&e, "a.yaml", 9, "unknown value `customer`");
    assert_eq!(e.len(), 7, "{}", join_lines(&e));
}

#[test]
fn every_error_in_every_file_is_reported() {
    let bad1 = GOOD.replace("priority: 90", "priority: -5");
    let bad2 = GOOD
        .replace("id: price", "id: other")
        .replace("category: objection", "category: nope");
    let e = errors(&[("a.yaml", &bad1), ("b.yaml", &bad2)]);
    has(&e, "a.yaml", 4, "out of range");
    has(&e, "b.yaml", 3, "unknown value `nope`");
}

#[test]
fn empty_phrase_list_and_empty_phrase() {
    let yaml = GOOD.replace(
        "  any: [\"price is too high\", \"too expensive\"]",
        "  any: []\n  unless: [\"?!\"]",
    );
    let e = errors(&[("price.yaml", &yaml)]);
    has(&e, "price.yaml", 6, "`triggers.any`: empty phrase list");
    has(&e, "price.yaml", 7, "phrase \"?!\" normalizes to nothing");
}

#[test]
fn unknown_vocab_reference() {
    let yaml = GOOD.replace("\"too expensive\"", "\"@pricey\"");
    let vocab = "acme: [acme, ackme]\n";
    let e = errors(&[("price.yaml", &yaml), ("_vocab.yaml", vocab)]);
    has(
        &e,
        "price.yaml",
        6,
        "unknown vocabulary list `@pricey` (known lists: acme)",
    );
}

#[test]
fn vocab_lists_expand() {
    let yaml = GOOD.replace("\"too expensive\"", "\"@pricey\"");
    let vocab = "pricey: [\"costs too much\", \"too pricey\"]\n";
    let lib = load(&[("price.yaml", &yaml), ("_vocab.yaml", vocab)]).unwrap();
    let any: Vec<&str> = lib.cards()[0]
        .triggers
        .any
        .iter()
        .map(|p| p.normalized.as_str())
        .collect();
    assert_eq!(any, ["price is too high", "costs too much", "too pricey"]);
}

const EXPERIMENT: &str = "\
experiment:
  key: price-test
  variants:
    - { id: control, weight: 1, show: false }
    - { id: short, weight: 1, body: \"Short.\" }
    - { id: long, weight: 2 }
";

#[test]
fn experiments_are_parsed() {
    let yaml = format!("{GOOD}{EXPERIMENT}");
    let lib = load(&[("price.yaml", &yaml)]).unwrap();
    let exp = lib.cards()[0].experiment.as_ref().unwrap();
    assert_eq!(exp.key, "price-test");
    assert_eq!(exp.unit, Unit::Deal);
    assert_eq!(exp.variants.len(), 3);
    assert!(!exp.variants[0].show);
    assert_eq!(exp.variants[1].body.as_deref(), Some("Short."));
    assert_eq!(exp.variants[2].weight, 2.0);
}

#[test]
fn experiment_key_defaults_to_card_id() {
    let yaml = format!("{GOOD}{}", EXPERIMENT.replace("  key: price-test\n", ""));
    let lib = load(&[("price.yaml", &yaml)]).unwrap();
    assert_eq!(lib.cards()[0].experiment.as_ref().unwrap().key, "price");
}

#[test]
fn duplicate_variant_ids_and_second_control() {
    let yaml = format!(
        "{GOOD}{}",
        EXPERIMENT
            .replace("id: long", "id: short")
            .replace("weight: 2 }", "weight: 2, show: false }")
    );
    let e = errors(&[("price.yaml", &yaml)]);
    has(
        &e,
        "price.yaml",
        14,
        "duplicate variant id `short` (first at line 13",
    );
    has(&e, "price.yaml", 14, "more than one control variant");
}

#[test]
fn non_positive_weight() {
    let yaml = format!("{GOOD}{}", EXPERIMENT.replace("weight: 2", "weight: 0"));
    let e = errors(&[("price.yaml", &yaml)]);
    has(
        &e,
        "price.yaml",
        14,
        "`variants.weight`: must be greater than 0",
    );
}

#[test]
fn window_scope_needs_window_seconds() {
    let yaml = GOOD.replace("  any:", "  scope: window\n  any:");
    let e = errors(&[("price.yaml", &yaml)]);
    has(&e, "price.yaml", 6, "needs `window_seconds`");
    let yaml = GOOD.replace("  any:", "  scope: window\n  window_seconds: 4000\n  any:");
    let e = errors(&[("price.yaml", &yaml)]);
    has(&e, "price.yaml", 7, "4000 is out of range 1..=3600");
}

#[test]
fn from_must_be_before_to() {
    let yaml = GOOD.replace("  any:", "  from_seconds: 60\n  to_seconds: 30\n  any:");
    let e = errors(&[("price.yaml", &yaml)]);
    has(
        &e,
        "price.yaml",
        7,
        "must be greater than from_seconds (60)",
    );
}

#[test]
fn links_must_be_web_links() {
    let yaml = format!("{GOOD}links:\n  - {{ title: x, url: \"javascript:alert(1)\" }}\n");
    let e = errors(&[("price.yaml", &yaml)]);
    has(&e, "price.yaml", 10, "must start with https:// or http://");
}

#[test]
fn deck_settings_are_checked() {
    let deck = "max_cards_per_call: 0\nmin_gap_seconds: 10\nmax_visibel: 3\n";
    let e = errors(&[("price.yaml", GOOD), ("_deck.yaml", deck)]);
    has(&e, "_deck.yaml", 1, "0 is out of range 1..=1000");
    has(&e, "_deck.yaml", 3, "unknown field `max_visibel`");
    let lib = load(&[
        ("price.yaml", GOOD),
        ("_deck.yaml", "min_gap_seconds: 10\n"),
    ])
    .unwrap();
    assert_eq!(lib.deck().min_gap_seconds, 10);
    assert_eq!(lib.deck().max_cards_per_call, 30);
}

#[test]
fn invalid_yaml_reports_a_location() {
    let e = errors(&[("bad.yaml", "id: [unclosed\ntitle: x\n")]);
    assert_eq!(e.len(), 1);
    assert!(e[0].message.starts_with("invalid YAML"), "{}", e[0]);
    assert!(e[0].at.line >= 1);
}

#[test]
fn a_file_may_hold_a_list_of_cards() {
    let two = format!(
        "- {}\n- {}",
        indent(GOOD),
        indent(&GOOD.replace("id: price", "id: budget"))
    );
    let lib = load(&[("cards.yaml", &two)]).unwrap();
    assert_eq!(lib.cards().len(), 2);
    assert_eq!(lib.cards()[0].id, "budget");
}

fn indent(card: &str) -> String {
    card.lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                format!("  {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn when_and_all_groups() {
    let yaml = GOOD.replace(
        "  any:",
        "  all: [[\"contract\"], [\"cancel\", \"terminate\"], \"notice\"]\n  any:",
    ) + "when:\n  deal_stage: [discovery, evaluation]\n  team: emea\n";
    let lib = load(&[("price.yaml", &yaml)]).unwrap();
    let card = &lib.cards()[0];
    assert_eq!(card.triggers.all.len(), 3);
    assert_eq!(card.triggers.all[1].len(), 2);
    assert_eq!(card.when.conditions.len(), 2);
    assert_eq!(
        card.when.conditions[1],
        ("team".to_string(), vec!["emea".to_string()])
    );
}

#[test]
fn loads_from_a_directory_and_ignores_other_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("price.yaml"), GOOD).unwrap();
    std::fs::write(dir.path().join("notes.md"), "not a card").unwrap();
    std::fs::create_dir(dir.path().join("demo")).unwrap();
    std::fs::write(dir.path().join("demo").join("x.yaml"), "garbage: [").unwrap();
    let lib = Library::load_dir(dir.path()).unwrap();
    assert_eq!(lib.cards().len(), 1);
    let missing = Library::load_dir(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(missing, LibraryError::Io { .. }));
    // As the command line prints it (the whole chain): the path, and the reason once.
    let shown = format!("{:#}", anyhow::Error::new(missing).context("loading cards"));
    assert!(shown.contains("nope"), "{shown}");
    assert_eq!(shown.matches("os error 2").count(), 1, "{shown}");
}

/// A library large enough to be checked on several threads gives the same result as the
/// same cards checked one file at a time: every error, in order, duplicates at their
/// second occurrence.
#[test]
fn a_large_library_checked_in_parallel_reports_like_a_small_one() {
    let card = |i: usize| {
        GOOD.replace("id: price", &format!("id: card-{i:04}"))
            .replace("\"too expensive\"", &format!("\"phrase number {i}\""))
    };
    let mut files: Vec<(String, String)> = (0..400)
        .map(|i| {
            (
                format!("c{i:04}.yaml"),
                format!("{}# {}\n", card(i), "x".repeat(200)),
            )
        })
        .collect();
    files[17].1 = files[17].1.replace("priority: 90", "priority: -5");
    files[250].1 = card(3); // duplicate id of c0003.yaml
    files[399].1 = "id: [unclosed\n".into();
    let total: usize = files.iter().map(|(_, t)| t.len()).sum();
    assert!(
        total > PARALLEL_MIN_BYTES,
        "{total} bytes is not a parallel load"
    );
    let sources: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let e = errors(&sources);
    assert_eq!(e.len(), 3, "{}", join_lines(&e));
    has(&e, "c0017.yaml", 4, "out of range");
    has(
        &e,
        "c0250.yaml",
        1,
        "duplicate card id `card-0003` (also defined at c0003.yaml:1:1)",
    );
    has(&e, "c0399.yaml", 1, "invalid YAML");
    let files: Vec<&str> = e.iter().map(|e| e.at.file.as_str()).collect();
    assert_eq!(files, ["c0017.yaml", "c0250.yaml", "c0399.yaml"]);

    let valid: Vec<(&str, &str)> = sources[..399]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 17 && *i != 250)
        .map(|(_, s)| *s)
        .collect();
    let library = load(&valid).expect("valid");
    assert_eq!(library.cards().len(), 397);
    assert!(library.cards().windows(2).all(|w| w[0].id < w[1].id));
}

#[test]
fn one_large_file_checked_in_parallel_reports_like_many_small_ones() {
    let card = |i: usize| {
        GOOD.replace("id: price", &format!("id: card-{i:04}"))
            .replace("\"too expensive\"", &format!("\"phrase number {i}\""))
    };
    let mut cards: Vec<String> = (0..400).map(card).collect();
    cards[17] = cards[17].replace("priority: 90", "priority: -5");
    cards[250] = card(3);
    let mut text = String::new();
    let mut starts = Vec::new();
    for c in &cards {
        starts.push(text.lines().count() as u32 + 1);
        text.push_str(&format!("- {}\n", indent(c)));
    }
    assert!(text.len() > PARALLEL_MIN_BYTES, "not a parallel load");
    let e = errors(&[("all.yaml", &text)]);
    assert_eq!(e.len(), 2, "{}", join_lines(&e));
    has(&e, "all.yaml", starts[17] + 3, "out of range");
    has(
        &e,
        "all.yaml",
        starts[250],
        &format!(
            "duplicate card id `card-0003` (also defined at all.yaml:{}:3)",
            starts[3]
        ),
    );
}

#[test]
fn phrases_like_no_and_on_are_text() {
    // YAML 1.2: unquoted `no`, `yes`, `on` are strings, so they work as phrases.
    let yaml = GOOD.replace(
        "any: [\"price is too high\", \"too expensive\"]",
        "any: [no, yes, on, \"too expensive\"]",
    );
    let lib = load(&[("price.yaml", &yaml)]).unwrap();
    let phrases: Vec<&str> = lib.card("price").unwrap().triggers.any[..3]
        .iter()
        .map(|p| p.normalized.as_str())
        .collect();
    assert_eq!(phrases, ["no", "yes", "on"]);
}

#[test]
fn cards_in_one_file_can_share_fields_with_a_merge_key() {
    let yaml = "\
- &base
  id: price
  title: Price objection
  category: objection
  priority: 90
  triggers:
    any: [too expensive]
  body: Anchor on value.
- <<: *base
  id: budget
  triggers:
    any: [no budget]
";
    let lib = load(&[("cards.yaml", yaml)]).unwrap();
    let budget = lib.card("budget").unwrap();
    assert_eq!(budget.title, "Price objection");
    assert_eq!(budget.priority, 90);
    assert_eq!(budget.triggers.any[0].normalized, "no budget");
    assert_eq!(budget.origin.to_string(), "cards.yaml:9:3");

    // A merged field that is wrong is reported where it is written.
    let bad = yaml.replace("priority: 90", "priority: high");
    let e = errors(&[("cards.yaml", &bad)]);
    has(&e, "cards.yaml", 5, "`priority`: expected an integer");
}
