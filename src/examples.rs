//! `cuedeck test`: runs every card's `examples` against the card's triggers alone.
//!
//! Each example is one final segment spoken by the card's speaker (the prospect for
//! `speaker: any`); `when`, the time range, cooldowns and the deck policy do not apply.

use std::fmt;

use crate::engine::Engine;
use crate::library::{Card, Location};
use crate::matcher::{PatternId, normalize};
use crate::rules::{self, ScopeHits};

/// What happened when one example was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The card fired on this phrase.
    Fired { phrase: String },
    /// No `any` phrase was found.
    NoTrigger,
    /// An `any` phrase matched but these `all` groups (0-based) found nothing.
    MissingGroups { phrase: String, groups: Vec<usize> },
    /// An `unless` phrase suppressed the card.
    Suppressed { phrase: String, unless: String },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Fired { phrase } => write!(f, "fired on {phrase:?}"),
            Outcome::NoTrigger => write!(f, "no trigger phrase matched"),
            Outcome::MissingGroups { phrase, groups } => {
                let groups: Vec<String> = groups.iter().map(|g| (g + 1).to_string()).collect();
                write!(
                    f,
                    "{phrase:?} matched but `all` group(s) {} found nothing",
                    groups.join(", ")
                )
            }
            Outcome::Suppressed { phrase, unless } => {
                write!(
                    f,
                    "{phrase:?} matched but `unless` phrase {unless:?} suppressed it"
                )
            }
        }
    }
}

/// An example that did not behave as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub card_id: String,
    pub example: String,
    pub origin: Location,
    pub expected_fire: bool,
    pub outcome: Outcome,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expected = if self.expected_fire {
            "fire"
        } else {
            "not fire"
        };
        write!(
            f,
            "{}: card `{}`: example {:?} should {expected}, but {}",
            self.origin, self.card_id, self.example, self.outcome
        )
    }
}

/// The result of running every example.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub cards: usize,
    pub examples: usize,
    pub failures: Vec<Failure>,
}

/// Tries `text` as one final segment against card `index` of the engine's library.
fn try_example(engine: &Engine, index: usize, text: &str) -> Outcome {
    let matcher = engine.matcher();
    let Some(card) = engine.library().cards().get(index) else {
        return Outcome::NoTrigger;
    };
    let ci = index as u32;
    let mut patterns: Vec<PatternId> = Vec::new();
    matcher.find(&normalize(text), &mut patterns);
    let Some(any) = rules::first_any(matcher, ci, &patterns) else {
        return Outcome::NoTrigger;
    };
    let phrase = matcher.phrase(any).to_string();
    let mut hits = ScopeHits::default();
    hits.add(matcher, ci, &patterns, true, true);
    if hits.unless {
        let unless = find_unless(card, matcher, &patterns);
        return Outcome::Suppressed { phrase, unless };
    }
    if !hits.holds(card) {
        let groups = (0..card.triggers.all.len())
            .filter(|g| hits.all_groups & (1 << g) == 0)
            .collect();
        return Outcome::MissingGroups { phrase, groups };
    }
    Outcome::Fired { phrase }
}

fn find_unless(card: &Card, matcher: &crate::matcher::Matcher, patterns: &[PatternId]) -> String {
    patterns
        .iter()
        .map(|&p| matcher.phrase(p))
        .find(|p| card.triggers.unless.iter().any(|u| u.normalized == *p))
        .unwrap_or_default()
        .to_string()
}

/// Runs every example of every card.
pub fn run(engine: &Engine) -> Report {
    let mut report = Report::default();
    for (index, card) in engine.library().cards().iter().enumerate() {
        report.cards += 1;
        let cases = card
            .examples
            .fire
            .iter()
            .map(|e| (e, true))
            .chain(card.examples.no_fire.iter().map(|e| (e, false)));
        for ((example, origin), expected_fire) in cases {
            report.examples += 1;
            let outcome = try_example(engine, index, example);
            let fired = matches!(outcome, Outcome::Fired { .. });
            if fired != expected_fire {
                report.failures.push(Failure {
                    card_id: card.id.clone(),
                    example: example.clone(),
                    origin: origin.clone(),
                    expected_fire,
                    outcome,
                });
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::Library;

    fn engine(yaml: &str) -> Engine {
        Engine::new(Library::from_sources(&[("c.yaml", yaml)], "t").unwrap()).unwrap()
    }

    const CARD: &str = "\
id: cancel
title: Cancel
category: objection
body: b
triggers:
  any: [contract]
  all: [[cancel, terminate]]
  unless: [no contract]
examples:
  fire: [\"we want to cancel the contract\"]
  no_fire: [\"what contract\", \"there is no contract to cancel\"]
";

    #[test]
    fn passing_examples_report_no_failures() {
        let r = run(&engine(CARD));
        assert_eq!((r.cards, r.examples), (1, 3));
        assert!(r.failures.is_empty(), "{:?}", r.failures);
    }

    #[test]
    fn failures_say_why() {
        let yaml = CARD.replace(
            "fire: [\"we want to cancel the contract\"]",
            "fire: [\"the contract\", \"cancel now\", \"no contract to cancel\"]",
        );
        let r = run(&engine(&yaml));
        let why: Vec<String> = r.failures.iter().map(|f| f.to_string()).collect();
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why[0].contains("card `cancel`: example \"the contract\" should fire, but \"contract\" matched but `all` group(s) 1 found nothing"), "{}", why[0]);
        assert!(why[1].contains("no trigger phrase matched"), "{}", why[1]);
        assert!(
            why[2].contains("`unless` phrase \"no contract\" suppressed it"),
            "{}",
            why[2]
        );
        assert!(why[0].starts_with("c.yaml:10:"), "{}", why[0]);
    }

    #[test]
    fn no_fire_that_fires_is_a_failure() {
        let yaml = CARD.replace(
            "no_fire: [\"what contract\"",
            "no_fire: [\"cancel the contract\"",
        );
        let r = run(&engine(&yaml));
        assert_eq!(r.failures.len(), 1);
        assert!(
            r.failures[0]
                .to_string()
                .contains("should not fire, but fired on \"contract\"")
        );
    }
}
