//! Scripted tests: messages in, decisions out, one test per rule of docs/cards.md
//! (sections "Matching rules" and "Display policy").

use super::*;
use crate::library::Library;

fn engine(cards: &str, deck: &str) -> Engine {
    let mut files = vec![("cards.yaml", cards)];
    if !deck.is_empty() {
        files.push(("_deck.yaml", deck));
    }
    Engine::new(Library::from_sources(&files, "t").expect("valid library")).unwrap()
}

/// One scripted message: `(segment, speaker, text, is_final, t_ms)`; segment "" = implicit.
type Msg<'a> = (&'a str, &'a str, &'a str, bool, u64);

fn info(deal: Option<&str>, context: &[(&str, &[&str])]) -> CallInfo {
    CallInfo {
        call_id: "c-1".into(),
        deal_id: deal.map(str::to_string),
        rep_id: Some("r-1".into()),
        context: CallContext(
            context
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        ),
    }
}

/// Runs a script and renders each decision as `"t card reason segment phrase"`.
fn run_with(e: &Engine, info: CallInfo, script: &[Msg<'_>]) -> Vec<String> {
    let mut s = Session::new(info, SessionLimits::default());
    let mut out = Vec::new();
    for &(seg, speaker, text, is_final, t_ms) in script {
        let speaker = match speaker {
            "rep" => Speaker::Rep,
            _ => Speaker::Prospect,
        };
        let u = Utterance {
            segment_id: (!seg.is_empty()).then_some(seg),
            speaker,
            text,
            is_final,
            t_ms,
        };
        s.on_utterance(e, &u, &mut out);
    }
    out.iter()
        .map(|d| {
            let variant = d
                .variant_id()
                .map(|v| format!(" [{v}]"))
                .unwrap_or_default();
            format!(
                "{} {} {}{} {} {}",
                d.t_ms,
                d.card.id,
                d.reason.as_str(),
                variant,
                d.segment_id,
                d.phrase
            )
        })
        .collect()
}

fn run(e: &Engine, script: &[Msg<'_>]) -> Vec<String> {
    run_with(e, info(Some("d-1"), &[]), script)
}

fn card(id: &str, priority: u32, extra: &str) -> String {
    format!(
        "- id: {id}\n  title: {id}\n  category: objection\n  priority: {priority}\n  body: b\n  cooldown_seconds: 0\n  max_per_call: 100\n{extra}"
    )
}

const PRICE: &str = "  triggers: { any: [price, too expensive] }\n";

#[test]
fn partial_then_final_gives_one_card() {
    let e = engine(&card("price", 50, PRICE), "");
    let got = run(
        &e,
        &[
            ("s1", "prospect", "the price", false, 1000),
            ("s1", "prospect", "the price is too", false, 1200),
            ("s1", "prospect", "the price is too high", true, 1500),
        ],
    );
    assert_eq!(got, ["1000 price shown s1 price"]);
}

#[test]
fn decided_at_the_first_partial_that_holds() {
    let cards = card(
        "cancel",
        50,
        "  triggers: { any: [contract], all: [[cancel, terminate]] }\n",
    );
    let e = engine(&cards, "");
    let got = run(
        &e,
        &[
            ("s1", "prospect", "our contract", false, 1000),
            ("s1", "prospect", "our contract we want to", false, 1100),
            (
                "s1",
                "prospect",
                "our contract we want to cancel",
                false,
                1200,
            ),
            (
                "s1",
                "prospect",
                "our contract we want to cancel it",
                true,
                1300,
            ),
        ],
    );
    assert_eq!(got, ["1200 cancel shown s1 contract"]);
}

#[test]
fn a_new_segment_can_decide_again() {
    let e = engine(&card("price", 50, PRICE), "");
    let got = run(
        &e,
        &[
            ("s1", "prospect", "price", true, 1000),
            ("s2", "prospect", "still the price", true, 2000),
        ],
    );
    assert_eq!(
        got,
        ["1000 price shown s1 price", "2000 price shown s2 price"]
    );
}

#[test]
fn messages_after_the_final_are_ignored() {
    let e = engine(&card("price", 50, PRICE), "");
    let got = run(
        &e,
        &[
            ("s1", "prospect", "hello", true, 1000),
            ("s1", "prospect", "hello price", true, 1100),
        ],
    );
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn speaker_filter_applies() {
    let rep = card(
        "guarantee",
        50,
        "  triggers: { any: [guarantee], speaker: rep }\n",
    );
    let anyone = card("acme", 50, "  triggers: { any: [acme], speaker: any }\n");
    let e = engine(&format!("{}{rep}{anyone}", card("price", 50, PRICE)), "");
    let got = run(
        &e,
        &[
            ("s1", "rep", "i guarantee the price for acme", true, 1000),
            (
                "s2",
                "prospect",
                "a guarantee on the price vs acme",
                true,
                2000,
            ),
        ],
    );
    assert_eq!(
        got,
        [
            "1000 acme shown s1 acme",
            "1000 guarantee shown s1 guarantee",
            "2000 acme shown s2 acme",
            "2000 price shown s2 price",
        ]
    );
}

#[test]
fn unless_suppresses_within_the_segment_seen_so_far() {
    let e = engine(
        &card(
            "acme",
            50,
            "  triggers: { any: [acme], unless: [acme mobile] }\n",
        ),
        "",
    );
    let got = run(
        &e,
        &[
            ("s1", "prospect", "we use acme mobile", false, 1000),
            // The ASR revises the words away, but `acme mobile` was heard in this segment.
            ("s1", "prospect", "we use acme", true, 1100),
            ("s2", "prospect", "we also looked at acme", true, 2000),
        ],
    );
    assert_eq!(got, ["2000 acme shown s2 acme"]);
}

#[test]
fn all_groups_need_every_group_in_the_segment() {
    let e = engine(
        &card(
            "cancel",
            50,
            "  triggers: { any: [contract], all: [[cancel, terminate], [notice]] }\n",
        ),
        "",
    );
    let got = run(
        &e,
        &[
            ("s1", "prospect", "we want to cancel", true, 1000),
            ("s2", "prospect", "the contract notice period", true, 2000),
            (
                "s3",
                "prospect",
                "terminate the contract with notice",
                true,
                3000,
            ),
        ],
    );
    assert_eq!(got, ["3000 cancel shown s3 contract"]);
}

#[test]
fn window_scope_looks_back_over_the_speakers_recent_segments() {
    let e = engine(
        &card(
            "cancel",
            50,
            "  triggers: { any: [contract], all: [[cancel]], unless: [never mind], scope: window, window_seconds: 30 }\n",
        ),
        "",
    );
    let got = run(
        &e,
        &[
            ("s1", "prospect", "we might cancel", true, 1000),
            ("s2", "rep", "the contract says", true, 5000),
            ("s3", "prospect", "about the contract", true, 10_000),
            // Outside the window: the `cancel` at 1 s is more than 30 s ago.
            ("s4", "prospect", "the contract again", true, 40_000),
            ("s5", "prospect", "i will cancel", true, 50_000),
            ("s6", "prospect", "never mind", true, 51_000),
            ("s7", "prospect", "that contract", true, 52_000),
        ],
    );
    assert_eq!(got, ["10000 cancel shown s3 contract"]);
}

#[test]
fn window_scope_ignores_other_speakers() {
    let e = engine(
        &card(
            "cancel",
            50,
            "  triggers: { any: [contract], all: [[cancel]], scope: window, window_seconds: 30 }\n",
        ),
        "",
    );
    let got = run(
        &e,
        &[
            ("s1", "rep", "you can cancel anytime", true, 1000),
            ("s2", "prospect", "about the contract", true, 2000),
        ],
    );
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn time_range_uses_the_call_clock() {
    let e = engine(
        &card(
            "early",
            50,
            "  triggers: { any: [price], from_seconds: 10, to_seconds: 20 }\n",
        ),
        "",
    );
    let got = run(
        &e,
        &[
            ("s1", "prospect", "price", true, 9_000),
            ("s2", "prospect", "price", true, 15_000),
            ("s3", "prospect", "price", true, 20_000),
        ],
    );
    assert_eq!(got, ["15000 early shown s2 price"]);
}

#[test]
fn when_context_must_match() {
    let e = engine(
        &card(
            "nego",
            50,
            "  triggers: { any: [discount] }\n  when: { deal_stage: [negotiation] }\n",
        ),
        "",
    );
    let script: &[Msg<'_>] = &[("s1", "prospect", "any discount", true, 1000)];
    assert!(run_with(&e, info(None, &[]), script).is_empty());
    assert!(run_with(&e, info(None, &[("deal_stage", &["discovery"])]), script).is_empty());
    assert_eq!(
        run_with(&e, info(None, &[("deal_stage", &["negotiation"])]), script),
        ["1000 nego shown s1 discount"]
    );
}

#[test]
fn cooldown_then_max_per_call() {
    let e = engine(
        "- id: price\n  title: P\n  category: objection\n  body: b\n  cooldown_seconds: 10\n  max_per_call: 2\n  triggers: { any: [price] }\n",
        "",
    );
    let got = run(
        &e,
        &[
            ("s1", "prospect", "price", true, 1000),
            ("s2", "prospect", "price", true, 5000),
            ("s3", "prospect", "price", true, 11_000),
            ("s4", "prospect", "price", true, 30_000),
        ],
    );
    assert_eq!(
        got,
        [
            "1000 price shown s1 price",
            "5000 price cooldown s2 price",
            "11000 price shown s3 price",
            "30000 price max_per_call s4 price",
        ]
    );
}

#[test]
fn deck_budget_caps_cards_per_call() {
    let cards = format!(
        "{}{}",
        card("a", 50, "  triggers: { any: [alpha] }\n"),
        card("b", 50, "  triggers: { any: [beta] }\n")
    );
    let e = engine(&cards, "max_cards_per_call: 2\n");
    let got = run(
        &e,
        &[
            ("s1", "prospect", "alpha", true, 1000),
            ("s2", "prospect", "beta", true, 2000),
            ("s3", "prospect", "alpha", true, 3000),
        ],
    );
    assert_eq!(
        got,
        [
            "1000 a shown s1 alpha",
            "2000 b shown s2 beta",
            "3000 a budget s3 alpha"
        ]
    );
}

#[test]
fn min_gap_with_preemption_by_higher_priority() {
    let cards = format!(
        "{}{}{}",
        card("low", 10, "  triggers: { any: [alpha] }\n"),
        card("mid", 50, "  triggers: { any: [beta] }\n"),
        card("high", 90, "  triggers: { any: [gamma] }\n")
    );
    let e = engine(&cards, "min_gap_seconds: 10\n");
    let got = run(
        &e,
        &[
            ("s1", "prospect", "beta", true, 1000),
            ("s2", "prospect", "alpha", true, 2000),
            ("s3", "prospect", "beta", true, 3000),
            ("s4", "prospect", "gamma", true, 4000),
            ("s5", "prospect", "alpha", true, 20_000),
        ],
    );
    assert_eq!(
        got,
        [
            "1000 mid shown s1 beta",
            "2000 low gap s2 alpha",
            // Equal priority does not pre-empt.
            "3000 mid gap s3 beta",
            "4000 high shown s4 gamma",
            "20000 low shown s5 alpha",
        ]
    );
}

#[test]
fn priority_order_and_id_tie_break_on_one_message() {
    let cards = format!(
        "{}{}{}",
        card("b-card", 50, "  triggers: { any: [price] }\n"),
        card("a-card", 50, "  triggers: { any: [price] }\n"),
        card("top", 90, "  triggers: { any: [price] }\n")
    );
    let e = engine(&cards, "min_gap_seconds: 5\n");
    let got = run(&e, &[("s1", "prospect", "price", true, 1000)]);
    assert_eq!(
        got,
        [
            "1000 top shown s1 price",
            "1000 a-card gap s1 price",
            "1000 b-card gap s1 price",
        ]
    );
}

#[test]
fn implicit_segments_split_on_final_and_speaker_change() {
    let e = engine(&card("price", 50, PRICE), "");
    let got = run(
        &e,
        &[
            ("", "prospect", "the price", false, 1000),
            ("", "prospect", "the price is high", true, 1200),
            ("", "prospect", "price again", false, 2000),
            ("", "rep", "ok", false, 2500),
            ("", "prospect", "and the price", false, 3000),
            ("", "prospect", "and the price too", false, 3100),
        ],
    );
    assert_eq!(
        got,
        [
            "1000 price shown auto-1 price",
            "2000 price shown auto-2 price",
            "3000 price shown auto-4 price",
        ]
    );
}

#[test]
fn suppressed_decisions_are_final_for_the_segment() {
    let e = engine(
        "- id: price\n  title: P\n  category: objection\n  body: b\n  cooldown_seconds: 60\n  triggers: { any: [price, expensive] }\n",
        "",
    );
    let got = run(
        &e,
        &[
            ("s1", "prospect", "price", true, 1000),
            ("s2", "prospect", "price", false, 2000),
            ("s2", "prospect", "price is expensive", true, 2100),
        ],
    );
    assert_eq!(
        got,
        ["1000 price shown s1 price", "2000 price cooldown s2 price"]
    );
}

const EXPERIMENT_CARD: &str = "\
- id: price
  title: Base title
  category: objection
  body: Base body
  cooldown_seconds: 0
  max_per_call: 10
  triggers: { any: [price] }
  experiment:
    key: exp-1
    variants:
      - { id: control, show: false }
      - { id: short, body: Short body }
";

#[test]
fn experiment_arms_are_sticky_and_control_shows_nothing() {
    let e = engine(EXPERIMENT_CARD, "max_cards_per_call: 1\n");
    let lib = e.library();
    let exp = lib.cards()[0].experiment.as_ref().unwrap();
    // Find one deal in each arm.
    let deal_in = |arm: usize| {
        (0..1000)
            .map(|i| format!("deal-{i}"))
            .find(|d| crate::experiment::assign(exp, d) == arm)
            .unwrap()
    };
    let control = deal_in(0);
    let short = deal_in(1);
    let script: &[Msg<'_>] = &[
        ("s1", "prospect", "price", true, 1000),
        ("s2", "prospect", "price", true, 2000),
    ];
    // Control decides and logs, counts against nothing deck-wide: the budget of 1 is not used.
    assert_eq!(
        run_with(&e, info(Some(&control), &[]), script),
        [
            "1000 price control [control] s1 price",
            "2000 price control [control] s2 price"
        ]
    );
    assert_eq!(
        run_with(&e, info(Some(&short), &[]), script),
        [
            "1000 price shown [short] s1 price",
            "2000 price budget [short] s2 price"
        ]
    );
    // Without the unit id the call is not enrolled: base content, no arm.
    assert_eq!(
        run_with(&e, info(None, &[]), script),
        ["1000 price shown s1 price", "2000 price budget s2 price"]
    );
}

#[test]
fn variant_content_overrides_and_inherits() {
    let e = engine(EXPERIMENT_CARD, "");
    let exp = e.library().cards()[0].experiment.clone().unwrap();
    let deal = (0..1000)
        .map(|i| format!("deal-{i}"))
        .find(|d| crate::experiment::assign(&exp, d) == 1)
        .unwrap();
    let mut s = Session::new(info(Some(&deal), &[]), SessionLimits::default());
    let mut out = Vec::new();
    let u = Utterance {
        segment_id: None,
        speaker: Speaker::Prospect,
        text: "price",
        is_final: true,
        t_ms: 0,
    };
    s.on_utterance(&e, &u, &mut out);
    assert_eq!(out[0].body(), "Short body");
    assert_eq!(out[0].title(), "Base title");
    assert_eq!(out[0].experiment_key(), Some("exp-1"));
}

#[test]
fn state_survives_a_reload_and_uses_the_new_library() {
    let old = engine(&card("price", 50, PRICE), "max_cards_per_call: 2\n");
    let new_cards = format!(
        "{}{}",
        card("price", 50, PRICE),
        card("budget", 50, "  triggers: { any: [budget] }\n")
    );
    let new = engine(&new_cards, "max_cards_per_call: 2\n");
    let mut s = Session::new(info(None, &[]), SessionLimits::default());
    let mut out = Vec::new();
    let msg = |seg, text, t_ms| Utterance {
        segment_id: Some(seg),
        speaker: Speaker::Prospect,
        text,
        is_final: false,
        t_ms,
    };
    s.on_utterance(&old, &msg("s1", "the price", 1000), &mut out);
    // Same segment continues after the swap: `price` is not decided twice.
    s.on_utterance(&new, &msg("s1", "the price and budget", 1100), &mut out);
    s.on_utterance(&new, &msg("s2", "price", 2000), &mut out);
    let got: Vec<String> = out
        .iter()
        .map(|d| format!("{} {}", d.card.id, d.reason.as_str()))
        .collect();
    assert_eq!(got, ["price shown", "budget shown", "price budget"]);
}

#[test]
fn per_call_memory_is_bounded() {
    let e = engine(
        &card(
            "w",
            50,
            "  triggers: { any: [zzz], scope: window, window_seconds: 3600 }\n",
        ),
        "",
    );
    let limits = SessionLimits {
        max_transcript_bytes: 4096,
        max_segments: 50,
        max_open_segments: 4,
    };
    let mut s = Session::new(info(None, &[]), limits);
    let mut out = Vec::new();
    let text = "word ".repeat(100);
    for i in 0..1000u64 {
        let id = format!("s{i}");
        s.on_utterance(
            &e,
            &Utterance {
                segment_id: Some(&id),
                speaker: Speaker::Prospect,
                text: &text,
                is_final: i % 2 == 0,
                t_ms: i,
            },
            &mut out,
        );
        assert!(s.transcript_bytes() <= 4096 + text.len() + 2);
        assert!(s.segments.len() <= 50);
        assert!(s.segments.iter().filter(|x| !x.is_final).count() <= 4);
    }
}

mod reload_props {
    use super::*;
    use proptest::prelude::*;

    const WORDS: &[&str] = &[
        "price", "too", "high", "acme", "contract", "cancel", "hello", "budget",
    ];

    fn library_engine() -> Engine {
        let cards = format!(
            "{}{}{}",
            card(
                "price",
                50,
                "  triggers: { any: [price too high, budget] }\n"
            ),
            card(
                "acme",
                60,
                "  triggers: { any: [acme], unless: [hello acme] }\n"
            ),
            card(
                "cancel",
                40,
                "  triggers: { any: [contract], all: [[cancel]], scope: window, window_seconds: 20 }\n"
            )
        );
        engine(&cards, "min_gap_seconds: 2\nmax_cards_per_call: 8\n")
    }

    /// Segments of 1..5 messages (partials the ASR may revise, then a final), each a list
    /// of 1..6 words.
    fn script() -> impl Strategy<Value = Vec<Vec<Vec<usize>>>> {
        let message = proptest::collection::vec(0..WORDS.len(), 1..6);
        proptest::collection::vec(proptest::collection::vec(message, 1..5), 1..12)
    }

    fn run(script: &[Vec<Vec<usize>>], engines: &[&Engine], swaps: &[bool]) -> Vec<String> {
        let mut s = Session::new(info(Some("d-1"), &[]), SessionLimits::default());
        let mut out = Vec::new();
        let mut step = 0usize;
        let mut current = 0usize;
        for (i, messages) in script.iter().enumerate() {
            let seg = format!("s{i}");
            for (n, words) in messages.iter().enumerate() {
                let text: Vec<&str> = words.iter().map(|&w| WORDS[w]).collect();
                if swaps.get(step).copied().unwrap_or(false) {
                    current = (current + 1) % engines.len();
                }
                step += 1;
                let u = Utterance {
                    segment_id: Some(&seg),
                    speaker: Speaker::Prospect,
                    text: &text.join(" "),
                    is_final: n + 1 == messages.len(),
                    t_ms: (i as u64) * 3000 + n as u64 * 100,
                };
                s.on_utterance(engines[current], &u, &mut out);
            }
        }
        out.iter()
            .map(|d| {
                format!(
                    "{} {} {} {}",
                    d.t_ms,
                    d.card.id,
                    d.reason.as_str(),
                    d.segment_id
                )
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Swapping in a freshly built engine for the same library at any points of a call
        /// loses and duplicates no decision.
        #[test]
        fn swaps_lose_and_duplicate_nothing(
            script in script(),
            swaps in proptest::collection::vec(any::<bool>(), 0..80),
        ) {
            let a = library_engine();
            let b = library_engine();
            prop_assert_ne!(a.generation(), b.generation());
            let steady = run(&script, &[&a], &[]);
            let swapped = run(&script, &[&a, &b], &swaps);
            prop_assert_eq!(steady, swapped);
        }
    }
}

#[test]
fn a_resumed_call_takes_the_new_deal_and_rep_and_keeps_its_cooldowns() {
    let e = engine(EXPERIMENT_CARD, "");
    let exp = e.library().cards()[0].experiment.clone().unwrap();
    let deal_in = |arm: usize| {
        (0..1000)
            .map(|i| format!("deal-{i}"))
            .find(|d| crate::experiment::assign(&exp, d) == arm)
            .unwrap()
    };
    let mut s = Session::new(info(None, &[]), SessionLimits::default());
    let mut out = Vec::new();
    let said = |seg: &'static str, t_ms: u64| Utterance {
        segment_id: Some(seg),
        speaker: Speaker::Prospect,
        text: "price",
        is_final: true,
        t_ms,
    };
    s.on_utterance(&e, &said("s1", 1_000), &mut out);
    assert_eq!(out[0].variant_id(), None, "no deal yet: not enrolled");
    // The bridge reconnects with the deal id it now knows.
    s.update_info(info(Some(&deal_in(1)), &[("stage", &["late"])]));
    assert_eq!(s.info().deal_id.as_deref(), Some(deal_in(1).as_str()));
    assert_eq!(s.info().context.get("stage"), ["late"]);
    s.on_utterance(&e, &said("s2", 400_000), &mut out);
    assert_eq!(out[1].variant_id(), Some("short"), "enrolled from then on");
    // Another deal on the same call: the arm follows the deal, not the call.
    s.update_info(info(Some(&deal_in(0)), &[]));
    s.on_utterance(&e, &said("s3", 800_000), &mut out);
    assert_eq!(out[2].variant_id(), Some("control"));
}
