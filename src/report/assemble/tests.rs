use super::*;
use crate::report::render;
use crate::report::{VariantDef, parse_date};

fn def(unit: Unit, variants: &[(&str, f64, bool)]) -> ExperimentDef {
    ExperimentDef {
        key: "exp".into(),
        card_id: "card".into(),
        unit,
        variants: variants
            .iter()
            .map(|(id, weight, control)| VariantDef {
                id: id.to_string(),
                weight: *weight,
                control: *control,
            })
            .collect(),
    }
}

fn two_arms() -> ExperimentDef {
    def(Unit::Deal, &[("control", 1.0, true), ("short", 1.0, false)])
}

fn opts(as_of: &str) -> ReportOptions {
    ReportOptions::new(parse_date(as_of).unwrap())
}

fn group(deal: &str, rep: &str, variant: &str, ts: &str) -> ExposureGroupRow {
    ExposureGroupRow {
        deal_id: Some(deal.into()),
        rep_id: Some(rep.into()),
        variant: Some(variant.into()),
        first_ts: ts.into(),
        exposures: 1,
    }
}

fn outcome(deal: &str, outcome: &str, amount: Option<f64>, closed_at: &str) -> OutcomeRow {
    OutcomeRow {
        deal_id: deal.into(),
        outcome: outcome.into(),
        amount,
        currency: Some("USD".into()),
        closed_at: Some(closed_at.into()),
        received_at: "2026-11-01T00:00:00.000Z".into(),
    }
}

/// `n` deals per arm exposed on 2026-06-01; the first `won` of each arm won, the next
/// `lost` lost, the rest are open.
fn data(arms: &[(&str, usize, usize, usize)]) -> (Vec<ExposureGroupRow>, Vec<OutcomeRow>) {
    let mut groups = Vec::new();
    let mut outcomes = Vec::new();
    for (variant, n, won, lost) in arms {
        for i in 0..*n {
            let deal = format!("{variant}-{i}");
            groups.push(group(&deal, "r-1", variant, "2026-06-01T10:00:00.000Z"));
            if i < *won {
                outcomes.push(outcome(
                    &deal,
                    "won",
                    Some(1000.0),
                    "2026-06-20T00:00:00.000Z",
                ));
            } else if i < won + lost {
                outcomes.push(outcome(&deal, "lost", None, "2026-06-20T00:00:00.000Z"));
            }
        }
    }
    (groups, outcomes)
}

#[test]
fn counts_rates_and_comparison_per_arm() {
    let (groups, outcomes) = data(&[("control", 300, 60, 180), ("short", 310, 80, 170)]);
    let r = assemble(&two_arms(), &groups, &outcomes, &opts("2026-11-22"));
    let [c, s] = [&r.variants[0], &r.variants[1]];
    assert_eq!((c.units, c.closed, c.won, c.n), (300, 240, 60, 240));
    assert_eq!((s.units, s.closed, s.won, s.n), (310, 250, 80, 250));
    assert_eq!(c.win_rate, Some(60.0 / 240.0));
    assert_eq!(s.win_rate, Some(80.0 / 250.0));
    assert!(
        c.vs_control.is_none(),
        "the baseline is not compared with itself"
    );
    assert_eq!(r.baseline, "control");
    let ci = c.win_rate_ci.unwrap();
    assert!(ci[0] < 0.25 && 0.25 < ci[1]);
    // Revenue per exposed deal: every won deal is worth 1000 (nothing to cap).
    assert_eq!(r.revenue_cap, Some(1000.0));
    assert_eq!(c.revenue_per_unit, Some(60.0 * 1000.0 / 300.0));
    assert_eq!(r.currency.as_deref(), Some("USD"));

    let vs = s.vs_control.as_ref().unwrap();
    let lift = (80.0 / 250.0 - 0.25) / 0.25;
    assert!((vs.rel_lift.unwrap() - lift).abs() < 1e-12);
    assert!((vs.abs_diff.unwrap() - (80.0 / 250.0 - 0.25)).abs() < 1e-12);
    let [lo, hi] = vs.rel_ci.unwrap();
    assert!(lo < lift && lift < hi);
    let [slo, shi] = vs.seq_ci.unwrap();
    assert!(slo < lo && hi < shi, "the always-valid interval is wider");
    // One treatment arm: Holm leaves the p-value as it is.
    assert_eq!(vs.p_adjusted, vs.p_value);
    assert!(vs.chance_to_win.unwrap() > 0.5);
    let risk = vs.risk.unwrap();
    assert!(risk[0] > risk[1], "keeping control is the costlier mistake");
    assert!(vs.enough_data);
    assert_eq!(vs.needed_units_per_arm, None);
    // The split matches the 1:1 weights.
    assert!(r.srm_p.unwrap() > 0.5 && !r.srm_warning);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn the_gate_withholds_a_verdict_and_says_how_many_more_units_are_needed() {
    let (groups, outcomes) = data(&[("control", 120, 20, 60), ("short", 120, 25, 55)]);
    let r = assemble(&two_arms(), &groups, &outcomes, &opts("2026-11-22"));
    let vs = r.variants[1].vs_control.as_ref().unwrap();
    assert!(!vs.enough_data);
    assert_eq!(vs.verdict, "not_enough_data");
    // From the control rate 0.25 to 0.275 at 80 % power: the sample-size formula, less
    // the 80 closed units each arm already has.
    let required = stats::sample_size_two_proportions(0.25, 0.275, 0.05, 0.8)
        .unwrap()
        .ceil() as u64;
    assert!(required > 4000);
    assert_eq!(vs.needed_units_per_arm, Some(required - 80));
    // The figures are still shown.
    assert!(vs.p_value.is_some() && vs.rel_ci.is_some());
}

#[test]
fn window_and_as_of_decide_what_counts() {
    let def = two_arms();
    let groups = vec![
        group("a", "r", "control", "2026-06-01T10:00:00.000Z"),
        group("b", "r", "control", "2026-06-01T10:00:00.000Z"),
        group("c", "r", "control", "2026-06-01T10:00:00.000Z"),
        group("d", "r", "control", "2026-06-01T10:00:00.000Z"),
        group("e", "r", "short", "2026-09-15T10:00:00.000Z"),
        // Exposed after the as-of day: not in the report at all.
        group("f", "r", "short", "2026-11-23T00:00:00.000Z"),
    ];
    let outcomes = vec![
        // Closed the same day as the exposure (a date without a time): counts.
        outcome("a", "won", Some(10.0), "2026-06-01T00:00:00.000Z"),
        // Closed after the 90-day window: not closed for this experiment.
        outcome("b", "won", Some(10.0), "2026-09-15T00:00:00.000Z"),
        // Closed before the first exposure: not closed, and reported.
        outcome("c", "lost", None, "2026-05-01T00:00:00.000Z"),
        // Closed after the as-of day.
        outcome("d", "lost", None, "2026-11-23T09:00:00.000Z"),
        outcome("e", "won", Some(10.0), "2026-10-01T00:00:00.000Z"),
        outcome("f", "won", Some(10.0), "2026-11-23T10:00:00.000Z"),
    ];
    let r = assemble(&def, &groups, &outcomes, &opts("2026-11-22"));
    let [c, s] = [&r.variants[0], &r.variants[1]];
    assert_eq!((c.units, c.closed, c.won, c.matured), (4, 1, 1, 4));
    assert_eq!((s.units, s.closed, s.won, s.matured), (1, 1, 1, 0));
    assert_eq!(r.closed_before_exposure, 1);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("before their first exposure"))
    );

    // Matured: won within the window among deals exposed at least 90 days ago.
    let mut o = opts("2026-11-22");
    o.metric = Metric::Matured;
    let r = assemble(&def, &groups, &outcomes, &o);
    let [c, s] = [&r.variants[0], &r.variants[1]];
    assert_eq!((c.n, c.won, c.win_rate), (4, 1, Some(0.25)));
    assert_eq!((s.n, s.won, s.win_rate), (0, 0, None));
    // Revenue is per matured deal, so the immature arm has none.
    assert_eq!(s.revenue_per_unit, None);

    // An earlier as-of day sees fewer outcomes.
    let r = assemble(&def, &groups, &outcomes, &opts("2026-09-30"));
    assert_eq!((r.variants[1].closed, r.variants[1].won), (0, 0));
}

#[test]
fn units_in_several_variants_or_unknown_variants_are_left_out() {
    let groups = vec![
        group("a", "r", "control", "2026-06-01T10:00:00.000Z"),
        group("a", "r", "short", "2026-06-02T10:00:00.000Z"),
        group("b", "r", "short", "2026-06-01T10:00:00.000Z"),
        group("c", "r", "retired", "2026-06-01T10:00:00.000Z"),
        ExposureGroupRow {
            exposures: 3,
            ..group("d", "r", "short", "2026-06-01T10:00:00.000Z")
        },
    ];
    let r = assemble(&two_arms(), &groups, &[], &opts("2026-11-22"));
    assert_eq!(r.multiple_exposure_units, 1);
    assert_eq!(r.unknown_variant_units, 1);
    assert_eq!(r.variants[0].units, 0);
    assert_eq!(r.variants[1].units, 2);
    assert_eq!(r.variants[1].exposures, 4);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("more than one variant"))
    );
}

#[test]
fn revenue_is_capped_at_one_pooled_percentile_for_every_arm() {
    let (groups, mut outcomes) = data(&[("control", 200, 100, 100), ("short", 200, 100, 100)]);
    // One enormous deal in the treatment arm.
    outcomes
        .iter_mut()
        .find(|o| o.deal_id == "short-0")
        .unwrap()
        .amount = Some(1e9);
    let r = assemble(&two_arms(), &groups, &outcomes, &opts("2026-11-22"));
    let cap = r.revenue_cap.unwrap();
    assert!((1000.0..1e9).contains(&cap), "{cap}");
    let s = &r.variants[1];
    let expected = (99.0 * 1000.0 + cap) / 200.0;
    assert!((s.revenue_per_unit.unwrap() - expected).abs() < 1e-9);

    // Several currencies cannot be added up.
    outcomes
        .iter_mut()
        .find(|o| o.deal_id == "short-1")
        .unwrap()
        .currency = Some("EUR".into());
    let r = assemble(&two_arms(), &groups, &outcomes, &opts("2026-11-22"));
    assert_eq!(r.revenue_cap, None);
    assert_eq!(r.variants[1].revenue_per_unit, None);
    assert!(r.warnings.iter().any(|w| w.contains("several currencies")));
}

#[test]
fn nothing_that_cannot_be_computed_is_nan() {
    let def = def(
        Unit::Deal,
        &[
            ("control", 1.0, true),
            ("short", 1.0, false),
            ("long", 1.0, false),
        ],
    );
    for (groups, outcomes) in [
        (Vec::new(), Vec::new()),
        data(&[("control", 5, 0, 5), ("short", 3, 3, 0)]),
        data(&[("control", 1, 1, 0)]),
    ] {
        let r = assemble(&def, &groups, &outcomes, &opts("2026-11-22"));
        let json = render::json(&r);
        assert!(!json.contains("NaN") && !json.contains("inf"), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["variants"].as_array().unwrap().len(), 3);
        let table = render::table(&r);
        assert!(!table.contains("NaN"), "{table}");
        render::csv(&[r]).unwrap();
    }
    let r = assemble(&def, &[], &[], &opts("2026-11-22"));
    assert_eq!(r.srm_p, None);
    assert!(r.warnings.iter().any(|w| w.contains("no exposures")));
    let vs = r.variants[1].vs_control.as_ref().unwrap();
    assert_eq!(
        (vs.rel_lift, vs.p_value, vs.chance_to_win),
        (None, None, None)
    );
    assert_eq!(
        vs.needed_units_per_arm, None,
        "no baseline rate to plan from"
    );
}

#[test]
fn three_arms_get_holm_and_probability_to_be_best() {
    let def = def(
        Unit::Deal,
        &[
            ("control", 1.0, true),
            ("short", 1.0, false),
            ("long", 1.0, false),
        ],
    );
    let (groups, outcomes) = data(&[
        ("control", 400, 80, 320),
        ("short", 400, 120, 280),
        ("long", 400, 90, 310),
    ]);
    let r = assemble(&def, &groups, &outcomes, &opts("2026-11-22"));
    let best: Vec<f64> = r.variants.iter().map(|v| v.prob_best.unwrap()).collect();
    assert!((best.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(best[1] > best[2] && best[2] > best[0], "{best:?}");
    let p: Vec<f64> = r.variants[1..]
        .iter()
        .map(|v| v.vs_control.as_ref().unwrap().p_value.unwrap())
        .collect();
    let adjusted: Vec<f64> = r.variants[1..]
        .iter()
        .map(|v| v.vs_control.as_ref().unwrap().p_adjusted.unwrap())
        .collect();
    assert_eq!(adjusted, stats::holm(&p));
    assert!(adjusted[0] >= p[0] && adjusted[1] >= p[1]);
    let short = r.variants[1].vs_control.as_ref().unwrap();
    // Significant at a fixed horizon, but the always-valid interval still holds 0.
    assert!(short.p_adjusted.unwrap() < 0.05);
    assert!(short.seq_ci.unwrap()[0] < 0.0);
    assert_eq!(short.verdict, "leaning_better", "{short:?}");
    assert!(short.rel_ci_adjusted.is_some());
    let long = r.variants[2].vs_control.as_ref().unwrap();
    assert_eq!(long.verdict, "no_clear_difference", "{long:?}");
    // Tables and CSV carry every arm.
    let table = render::table(&r);
    assert!(
        table.contains("P(best)") && table.contains("control (baseline)"),
        "{table}"
    );
    let csv = render::csv(&[r]).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
}

#[test]
fn a_clear_winner_is_better_even_in_the_always_valid_interval() {
    let (groups, outcomes) = data(&[("control", 3000, 600, 2400), ("short", 3000, 900, 2100)]);
    let r = assemble(&two_arms(), &groups, &outcomes, &opts("2026-11-22"));
    let vs = r.variants[1].vs_control.as_ref().unwrap();
    assert!(vs.seq_ci.unwrap()[0] > 0.0);
    assert_eq!(vs.verdict, "better");
    let (groups, outcomes) = data(&[("control", 3000, 900, 2100), ("short", 3000, 600, 2400)]);
    let r = assemble(&two_arms(), &groups, &outcomes, &opts("2026-11-22"));
    assert_eq!(r.variants[1].vs_control.as_ref().unwrap().verdict, "worse");
}

#[test]
fn a_split_off_the_weights_is_flagged() {
    let (groups, outcomes) = data(&[("control", 1000, 200, 600), ("short", 1200, 240, 720)]);
    let r = assemble(&two_arms(), &groups, &outcomes, &opts("2026-11-22"));
    // docs/statistics.md#test-vectors (SRM): 1000 vs 1200 at 1:1 is p = 0.000020079.
    assert!((r.srm_p.unwrap() - 0.000020079).abs() < 1e-9);
    assert!(r.srm_warning);
    assert_eq!(
        r.variants[1].vs_control.as_ref().unwrap().verdict,
        "srm_warning"
    );
    assert!(render::table(&r).contains("MISMATCH"));
}

#[test]
fn rep_experiments_are_analysed_per_rep() {
    let def = def(Unit::Rep, &[("control", 1.0, true), ("short", 1.0, false)]);
    let mut groups = Vec::new();
    let mut outcomes = Vec::new();
    for rep in 0..20 {
        let variant = if rep % 2 == 0 { "control" } else { "short" };
        for d in 0..10 {
            let deal = format!("d-{rep}-{d}");
            groups.push(group(
                &deal,
                &format!("r-{rep}"),
                variant,
                "2026-06-01T10:00:00.000Z",
            ));
            let won = d < 2 + rep % 3;
            outcomes.push(outcome(
                &deal,
                if won { "won" } else { "lost" },
                Some(100.0),
                "2026-06-10",
            ));
        }
    }
    for o in &mut outcomes {
        o.closed_at = Some("2026-06-10T00:00:00.000Z".into());
    }
    let r = assemble(&def, &groups, &outcomes, &opts("2026-11-22"));
    let c = &r.variants[0];
    assert_eq!((c.units, c.deals, c.closed), (10, 100, 100));
    let won: u64 = (0..20).step_by(2).map(|rep| 2 + rep % 3).sum();
    assert_eq!(c.won, won);
    assert_eq!(c.win_rate, Some(won as f64 / 100.0));
    assert!(r.variants[1].vs_control.as_ref().unwrap().rel_ci.is_some());
    assert!(r.warnings.iter().any(|w| w.contains("unit: rep")));
}
