//! The `cuedeck` binary, run as a user runs it.

use std::path::Path;

use crate::support::{bundled_cards, cuedeck, text};

fn write_cards(dir: &Path, files: &[(&str, &str)]) {
    for (name, body) in files {
        std::fs::write(dir.join(name), body).expect("write card");
    }
}

const CARD: &str = "\
id: price
title: Price
category: objection
triggers:
  any: [\"too expensive\"]
body: Anchor on value.
examples:
  fire: [\"honestly it is too expensive\"]
  no_fire: [\"it is not expensive\"]
";

#[test]
fn validate_accepts_the_bundled_library() {
    let out = cuedeck(&["validate", "battlecards"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("cards"), "{stdout}");
    assert!(stdout.contains("sha256:"), "{stdout}");
}

#[test]
fn validate_reports_every_error_with_location_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    write_cards(
        dir.path(),
        &[
            (
                "a.yaml",
                &CARD.replace("category: objection", "category: objektion"),
            ),
            ("b.yaml", &CARD.replace("title: Price\n", "")),
            ("c.yaml", &format!("{CARD}priority: 10\npriority: 20\n")),
            ("d.yaml", CARD),
            ("e.yaml", &format!("# same id again\n{CARD}")),
        ],
    );
    let out = cuedeck(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let a = dir.path().join("a.yaml").display().to_string();
    let b = dir.path().join("b.yaml").display().to_string();
    let c = dir.path().join("c.yaml").display().to_string();
    assert!(
        stderr.contains(&format!("{a}:3:11: `category`: unknown value `objektion`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{b}:1:1: card: missing required field `title`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{c}:11:1: duplicate key `priority` (first at line 10"
        )),
        "{stderr}"
    );
    // The duplicate id across files names both places.
    let d = dir.path().join("d.yaml").display().to_string();
    let e = dir.path().join("e.yaml").display().to_string();
    assert!(
        stderr.contains(&format!(
            "{e}:2:1: duplicate card id `price` (also defined at {d}:1:1)"
        )),
        "{stderr}"
    );
    assert!(
        stderr.lines().last().unwrap().starts_with("cuedeck: "),
        "{stderr}"
    );
}

#[test]
fn validate_missing_directory_is_an_io_error() {
    let out = cuedeck(&["validate", "/nonexistent/cards"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("cuedeck: loading cards: cannot read /nonexistent/cards"),
        "{stderr}"
    );
}

#[test]
fn test_passes_on_the_bundled_library() {
    let out = cuedeck(&["test", "battlecards"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains(" 0 failed"));
}

#[test]
fn test_fails_on_a_wrong_example() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = CARD.replace(
        "no_fire: [\"it is not expensive\"]",
        "no_fire: [\"way too expensive\"]",
    );
    write_cards(dir.path(), &[("price.yaml", &wrong)]);
    let out = cuedeck(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("card `price`: example \"way too expensive\" should not fire, but fired on \"too expensive\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 examples: 1 passed, 1 failed"),
        "{stdout}"
    );
}

fn decisions(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn replay_json_prints_the_expected_decisions_of_the_demo_calls() {
    for name in ["demo-renewal", "demo-new-deal"] {
        let file = format!("battlecards/demo/{name}.jsonl");
        let out = cuedeck(&["replay", "--cards", "battlecards", "--json", &file]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let got = decisions(&text(&out.stdout));
        let expected_path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("{name}.decisions.jsonl"));
        let expected = decisions(&std::fs::read_to_string(expected_path).unwrap());
        assert_eq!(got, expected, "{name}");
        // Fields in the documented order.
        let keys = [
            "call_id",
            "t_ms",
            "card_id",
            "variant",
            "shown",
            "reason",
            "phrase",
            "speaker",
            "segment_id",
        ];
        for line in text(&out.stdout).lines() {
            let positions: Vec<usize> = keys
                .iter()
                .map(|k| line.find(&format!("\"{k}\":")).expect("key present"))
                .collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
        }
    }
}

#[test]
fn replay_fires_once_per_segment_and_assigns_the_sticky_variant() {
    let out = cuedeck(&["replay", "--json", "battlecards/demo/demo-new-deal.jsonl"]);
    let got = decisions(&text(&out.stdout));
    // objection-price is seen in two partials and the final of s-8: one decision.
    let price: Vec<_> = got
        .iter()
        .filter(|d| d["card_id"] == "objection-price")
        .collect();
    assert_eq!(price.len(), 1);
    assert_eq!(price[0]["segment_id"], "s-8");
    // Deal d-2004 hashes into the `short` arm of the price experiment.
    assert_eq!(price[0]["variant"], "short");
    // The rep-side compliance card fires on the rep's words.
    let compliance: Vec<_> = got
        .iter()
        .filter(|d| d["card_id"] == "compliance-no-guarantees")
        .collect();
    assert_eq!(compliance.len(), 1);
    assert_eq!(compliance[0]["speaker"], "rep");
}

#[test]
fn replay_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("call.jsonl");
    std::fs::write(
        &file,
        "{\"type\":\"start\",\"call_id\":\"c\"}\n{\"type\":\"transcript\",\"txt\":\"x\"}\n",
    )
    .unwrap();
    let out = cuedeck(&[
        "replay",
        "--cards",
        bundled_cards().to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "cuedeck: replay: {}:2: line 1 column 26: unknown field `txt`",
            file.display()
        )),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = cuedeck(&["replay"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cuedeck(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}
