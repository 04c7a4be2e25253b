//! Card eligibility: the pure checks that decide whether a card's triggers and conditions
//! hold on a message (docs/cards.md#matching-rules). The display policy (cooldowns,
//! budgets, gap) is applied afterwards by the session.

#![warn(missing_docs)]

use std::collections::BTreeMap;

use crate::library::{Card, Speaker, When};
use crate::matcher::{Matcher, PatternId, Role};

/// A call's targeting context from its `start` message: each key has one or more values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext(pub BTreeMap<String, Vec<String>>);

impl CallContext {
    /// The values of `key`; empty when the call did not give it.
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }
}

/// Every `when` key must be satisfied: the call has a value for it (absent or empty fails)
/// and one of its values is in the card's list.
pub fn context_allows(when: &When, context: &CallContext) -> bool {
    when.conditions
        .iter()
        .all(|(key, allowed)| context.get(key).iter().any(|v| allowed.contains(v)))
}

/// `from_seconds <= t < to_seconds` on the call clock.
pub fn in_time_range(card: &Card, t_ms: u64) -> bool {
    let t = &card.triggers;
    t.from_seconds
        .is_none_or(|from| t_ms >= u64::from(from) * 1000)
        && t.to_seconds.is_none_or(|to| t_ms < u64::from(to) * 1000)
}

/// Does the card listen to this speaker?
pub fn speaker_allows(card: &Card, speaker: Speaker) -> bool {
    card.triggers.speaker.allows(speaker)
}

/// What a card's `all` and `unless` phrases found in its scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeHits {
    /// Bit `g` set when a phrase of `all` group `g` was found.
    pub all_groups: u64,
    /// An `unless` phrase was found: the card must not fire.
    pub unless: bool,
}

impl ScopeHits {
    /// Adds the hits of `patterns` for card `card_index`; `for_all` and `for_unless` say
    /// which roles these patterns may fill.
    pub fn add(
        &mut self,
        matcher: &Matcher,
        card_index: u32,
        patterns: &[PatternId],
        for_all: bool,
        for_unless: bool,
    ) {
        for &p in patterns {
            for t in matcher.targets(p) {
                if t.card != card_index {
                    continue;
                }
                match t.role {
                    Role::All(g) if for_all => self.all_groups |= 1 << g,
                    Role::Unless if for_unless => self.unless = true,
                    _ => {}
                }
            }
        }
    }

    /// Every `all` group matched and no `unless` phrase was found.
    pub fn holds(&self, card: &Card) -> bool {
        let groups = card.triggers.all.len();
        let needed = if groups >= 64 {
            u64::MAX
        } else {
            (1u64 << groups) - 1
        };
        !self.unless && self.all_groups & needed == needed
    }
}

/// The first `any` phrase of `card_index` among `patterns` (in text order), if any.
pub fn first_any(matcher: &Matcher, card_index: u32, patterns: &[PatternId]) -> Option<PatternId> {
    patterns.iter().copied().find(|&p| {
        matcher
            .targets(p)
            .iter()
            .any(|t| t.card == card_index && t.role == Role::Any)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::Library;
    use crate::matcher::normalize;

    fn card(extra_triggers: &str, when: &str) -> (Library, Matcher) {
        let yaml = format!(
            "id: c\ntitle: C\ncategory: other\nbody: b\ntriggers:\n  any: [price]\n{extra_triggers}{when}"
        );
        let lib = Library::from_sources(&[("c.yaml", &yaml)], "t").unwrap();
        let m = Matcher::build(&lib).unwrap();
        (lib, m)
    }

    fn hits(m: &Matcher, text: &str) -> ScopeHits {
        let mut pats = Vec::new();
        m.find(&normalize(text), &mut pats);
        let mut h = ScopeHits::default();
        h.add(m, 0, &pats, true, true);
        h
    }

    fn ctx(pairs: &[(&str, &[&str])]) -> CallContext {
        CallContext(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn all_groups_are_and_of_ors() {
        let (lib, m) = card("  all: [[contract], [cancel, terminate]]\n", "");
        let c = &lib.cards()[0];
        assert!(hits(&m, "price contract terminate").holds(c));
        assert!(hits(&m, "price contract cancel").holds(c));
        assert!(!hits(&m, "price contract").holds(c));
        assert!(!hits(&m, "price cancel terminate").holds(c));
    }

    #[test]
    fn unless_suppresses() {
        let (lib, m) = card("  unless: [no problem]\n", "");
        let c = &lib.cards()[0];
        assert!(hits(&m, "the price").holds(c));
        assert!(!hits(&m, "the price is no problem").holds(c));
    }

    #[test]
    fn when_keys_must_all_match() {
        let (lib, _) = card(
            "",
            "when:\n  deal_stage: [evaluation, negotiation]\n  competitor: [acme]\n",
        );
        let w = &lib.cards()[0].when;
        assert!(context_allows(
            w,
            &ctx(&[
                ("deal_stage", &["evaluation"]),
                ("competitor", &["globex", "acme"])
            ])
        ));
        assert!(!context_allows(
            w,
            &ctx(&[("deal_stage", &["discovery"]), ("competitor", &["acme"])])
        ));
        // A key the call does not have fails the condition.
        assert!(!context_allows(w, &ctx(&[("deal_stage", &["evaluation"])])));
        assert!(!context_allows(
            w,
            &ctx(&[("deal_stage", &["evaluation"]), ("competitor", &[])])
        ));
        assert!(context_allows(&When::default(), &CallContext::default()));
    }

    #[test]
    fn time_range_is_half_open() {
        let (lib, _) = card("  from_seconds: 10\n  to_seconds: 20\n", "");
        let c = &lib.cards()[0];
        assert!(!in_time_range(c, 9_999));
        assert!(in_time_range(c, 10_000));
        assert!(in_time_range(c, 19_999));
        assert!(!in_time_range(c, 20_000));
    }

    #[test]
    fn speaker_filter() {
        let (lib, _) = card("  speaker: rep\n", "");
        assert!(speaker_allows(&lib.cards()[0], Speaker::Rep));
        assert!(!speaker_allows(&lib.cards()[0], Speaker::Prospect));
        let (lib, _) = card("  speaker: any\n", "");
        assert!(speaker_allows(&lib.cards()[0], Speaker::Rep));
        assert!(speaker_allows(&lib.cards()[0], Speaker::Prospect));
    }
}
