use super::*;
use crate::report::fixtures::{comparison, variant};
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
        first_ts: self::ts(ts),
        exposures: 1,
    }
}

fn outcome(deal: &str, outcome: &str, amount: Option<f64>, closed_at: &str) -> OutcomeRow {
    OutcomeRow {
        deal_id: deal.into(),
        outcome: outcome.into(),
        amount,
        currency: Some("USD".into()),
        closed_at: Some(ts(closed_at)),
        updated_at: None,
        received_at: ts("2026-11-01T00:00:00.000Z"),
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
    assert_eq!(vs.verdict, Verdict::NotEnoughData);
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
    assert_eq!(short.verdict, Verdict::LeaningBetter, "{short:?}");
    assert!(short.rel_ci_adjusted.is_some());
    let long = r.variants[2].vs_control.as_ref().unwrap();
    assert_eq!(long.verdict, Verdict::NoClearDifference, "{long:?}");
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
    assert_eq!(vs.verdict, Verdict::Better);
    let (groups, outcomes) = data(&[("control", 3000, 900, 2100), ("short", 3000, 600, 2400)]);
    let r = assemble(&two_arms(), &groups, &outcomes, &opts("2026-11-22"));
    assert_eq!(
        r.variants[1].vs_control.as_ref().unwrap().verdict,
        Verdict::Worse
    );
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
        Verdict::SrmWarning
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
        o.closed_at = Some(ts("2026-06-10T00:00:00.000Z"));
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

// The steps one by one.

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn deal(won: bool, amount: Option<f64>, currency: &str) -> DealObs {
    DealObs {
        matured: true,
        closed: true,
        won,
        amount,
        currency: Some(currency.into()),
    }
}

/// One arm of single-deal units: `won` won, `lost` lost, no amounts.
fn arm(won: usize, lost: usize) -> ArmFigures {
    let mut deals: Vec<DealObs> = (0..won).map(|_| deal(true, None, "USD")).collect();
    deals.extend((0..lost).map(|_| deal(false, None, "USD")));
    let units: Vec<UnitObs> = deals.into_iter().map(|d| unit_of(vec![d])).collect();
    arm_figures(Unit::Deal, &units, Metric::Closed, &Revenue::default())
}

fn unit_of(deals: Vec<DealObs>) -> UnitObs {
    UnitObs {
        exposures: 1,
        deals,
    }
}

#[test]
fn exposed_units_keep_the_earliest_exposure_and_drop_late_or_unlabelled_groups() {
    let mut no_variant = group("d-3", "r-1", "a", "2026-06-01T00:00:00.000Z");
    no_variant.variant = None;
    let groups = [
        group("d-1", "r-1", "a", "2026-06-05T00:00:00.000Z"),
        group("d-1", "r-1", "a", "2026-06-02T00:00:00.000Z"),
        group("d-2", "r-2", "b", "2026-06-03T00:00:00.000Z"),
        // On or after the cutoff: not in the report.
        group("d-4", "r-1", "a", "2026-07-01T00:00:00.000Z"),
        no_variant,
    ];
    let cutoff = ts("2026-07-01T00:00:00.000Z");
    let deals = exposed_units(Unit::Deal, &groups, cutoff);
    assert_eq!(deals.keys().copied().collect::<Vec<_>>(), ["d-1", "d-2"]);
    assert_eq!(deals["d-1"].exposures, 2);
    assert_eq!(deals["d-1"].deals["d-1"], ts("2026-06-02T00:00:00.000Z"));

    let reps = exposed_units(Unit::Rep, &groups, cutoff);
    assert_eq!(reps.keys().copied().collect::<Vec<_>>(), ["r-1", "r-2"]);
    assert_eq!(reps["r-1"].deals.len(), 1, "{:?}", reps["r-1"].deals);
    assert_eq!(reps["r-1"].variants.len(), 1);
}

#[test]
fn a_deal_counts_as_closed_only_inside_its_window_and_before_the_cutoff() {
    let first = ts("2026-06-01T10:00:00.000Z");
    let window = Duration::days(30);
    let cutoff = ts("2026-12-01T00:00:00.000Z");
    let at = |closed_at: &str| {
        let o = outcome("d", "won", Some(5.0), closed_at);
        deal_obs(first, Some(&o), window, cutoff)
    };
    let (obs, before) = at("2026-06-20T00:00:00.000Z");
    assert!(obs.closed && obs.won && obs.matured && !before);
    assert_eq!(
        (obs.amount, obs.currency.as_deref()),
        (Some(5.0), Some("USD"))
    );
    // The same day as the first exposure, earlier in it: still counts.
    assert!(at("2026-06-01T08:00:00.000Z").0.closed);
    // After the window: matured, not closed.
    let (late, before) = at("2026-07-15T00:00:00.000Z");
    assert!(!late.closed && late.matured && !before);
    // The day before the first exposure: flagged, not closed.
    let (early, before) = at("2026-05-31T23:00:00.000Z");
    assert!(!early.closed && before);

    // An open deal, and one without an outcome: only maturity counts.
    let open = outcome("d", "open", None, "2026-06-20T00:00:00.000Z");
    assert!(!deal_obs(first, Some(&open), window, cutoff).0.closed);
    let (none, before) = deal_obs(first, None, window, ts("2026-06-15T00:00:00.000Z"));
    assert!(!none.closed && !none.matured && !before);
    // No close time: the time it was received stands in (here after the window).
    let mut undated = outcome("d", "lost", None, "2026-06-20T00:00:00.000Z");
    undated.closed_at = None;
    assert!(!deal_obs(first, Some(&undated), window, cutoff).0.closed);
    assert!(
        deal_obs(first, Some(&undated), Duration::days(365), cutoff)
            .0
            .closed
    );
}

#[test]
fn units_are_sorted_into_the_arm_of_their_one_known_variant() {
    let groups = [
        group("d-1", "r-1", "control", "2026-06-01T00:00:00.000Z"),
        group("d-2", "r-1", "short", "2026-06-01T00:00:00.000Z"),
        group("d-3", "r-1", "control", "2026-06-01T00:00:00.000Z"),
        group("d-3", "r-1", "short", "2026-06-02T00:00:00.000Z"),
        group("d-4", "r-1", "retired", "2026-06-01T00:00:00.000Z"),
    ];
    let outcomes = [outcome("d-1", "won", Some(1.0), "2026-05-01T00:00:00.000Z")];
    let units = exposed_units(Unit::Deal, &groups, ts("2026-12-01T00:00:00.000Z"));
    let cutoff = ts("2026-12-01T00:00:00.000Z");
    let arms = sort_into_arms(&two_arms(), &units, &outcomes, Duration::days(90), cutoff);
    assert_eq!(arms.arms.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
    assert_eq!((arms.multiple, arms.unknown), (1, 1));
    assert_eq!(arms.closed_before_exposure, 1);
}

#[test]
fn revenue_is_capped_once_for_every_arm_and_not_computed_across_currencies() {
    let mut opts = opts("2026-11-22");
    opts.cap_percentile = 0.5;
    let arms = vec![
        vec![unit_of(vec![deal(true, Some(100.0), "USD")])],
        vec![unit_of(vec![
            deal(true, Some(300.0), "USD"),
            deal(true, None, "USD"),
            deal(false, Some(900.0), "EUR"),
        ])],
    ];
    let revenue = pooled_revenue(&arms, &opts);
    assert_eq!(revenue.cap, Some(200.0));
    assert_eq!(revenue.won_without_amount, 1);
    assert!(
        !revenue.mixed_currency(),
        "a lost deal's currency does not count"
    );
    assert_eq!(revenue.capped(&deal(true, Some(300.0), "USD")), 200.0);
    assert_eq!(revenue.capped(&deal(false, Some(300.0), "USD")), 0.0);

    let mixed = vec![vec![unit_of(vec![
        deal(true, Some(1.0), "USD"),
        deal(true, Some(1.0), "EUR"),
    ])]];
    let revenue = pooled_revenue(&mixed, &opts);
    assert!(revenue.mixed_currency());
    assert_eq!(revenue.cap, None);
    let f = arm_figures(Unit::Deal, &mixed[0], Metric::Closed, &revenue);
    assert!(f.revenue.is_none() && f.revenue_per_unit.is_none());
}

#[test]
fn arm_figures_count_the_metrics_denominator() {
    let mut open = deal(false, None, "USD");
    open.closed = false;
    let mut young = open.clone();
    young.matured = false;
    let units = [unit_of(vec![
        deal(true, Some(10.0), "USD"),
        deal(false, None, "USD"),
        open,
        young,
    ])];
    let revenue = Revenue::default();
    let closed = arm_figures(Unit::Deal, &units, Metric::Closed, &revenue);
    assert_eq!((closed.units, closed.deals, closed.closed), (1, 4, 2));
    assert_eq!((closed.won, closed.n, closed.matured), (1, 2, 3));
    assert_eq!(closed.revenue_per_unit, Some(10.0 / 4.0));
    let matured = arm_figures(Unit::Deal, &units, Metric::Matured, &revenue);
    assert_eq!((matured.won, matured.n), (1, 3));
    assert_eq!(matured.revenue_per_unit, Some(10.0 / 3.0));
    // Per rep: one rep, a ratio of its deals.
    let rep = arm_figures(Unit::Rep, &units, Metric::Closed, &revenue);
    assert_eq!((rep.units, rep.n, rep.won), (1, 2, 1));
    assert_eq!(rep.revenue_per_unit, Some(10.0 / 4.0));
}

/// A comparison with only what the verdict reads.
fn vs(enough_data: bool, p_adjusted: Option<f64>, lift: f64, seq_ci: [f64; 2]) -> VsControl {
    VsControl {
        rel_lift: Some(lift),
        p_value: p_adjusted,
        p_adjusted,
        seq_ci: Some(seq_ci),
        enough_data,
        ..comparison()
    }
}

#[test]
fn the_verdict_follows_the_gate_srm_holm_and_the_always_valid_interval() {
    let sig = Some(0.01);
    // (past the gate, SRM, Holm-adjusted p, lift, always-valid interval) → verdict
    let cases = [
        (false, false, sig, 0.2, [0.1, 0.3], Verdict::NotEnoughData),
        (true, true, sig, 0.2, [0.1, 0.3], Verdict::SrmWarning),
        (
            true,
            false,
            Some(0.05),
            0.2,
            [0.1, 0.3],
            Verdict::NoClearDifference,
        ),
        (
            true,
            false,
            None,
            0.2,
            [0.1, 0.3],
            Verdict::NoClearDifference,
        ),
        (true, false, sig, 0.2, [0.1, 0.3], Verdict::Better),
        (true, false, sig, 0.2, [-0.1, 0.3], Verdict::LeaningBetter),
        (true, false, sig, -0.2, [-0.3, -0.1], Verdict::Worse),
        (true, false, sig, -0.2, [-0.3, 0.1], Verdict::LeaningWorse),
    ];
    for (enough, srm, p, lift, seq, expected) in cases {
        let comparison = vs(enough, p, lift, seq);
        assert_eq!(verdict(&comparison, srm, 0.05), expected, "{comparison:?}");
    }
}

#[test]
fn verdicts_are_named_alike_in_json_and_csv() {
    let names = [
        (Verdict::NotEnoughData, "not_enough_data"),
        (Verdict::SrmWarning, "srm_warning"),
        (Verdict::NoClearDifference, "no_clear_difference"),
        (Verdict::LeaningBetter, "leaning_better"),
        (Verdict::LeaningWorse, "leaning_worse"),
        (Verdict::Better, "better"),
        (Verdict::Worse, "worse"),
    ];
    for (v, name) in names {
        assert_eq!(serde_json::to_value(v).unwrap(), name);
        assert_eq!(v.to_string(), name);
    }
}

#[test]
fn holm_adjusts_every_tested_arm_and_widens_intervals_only_for_several() {
    let row = |p: Option<f64>| {
        let tested = VsControl {
            p_value: p,
            p_adjusted: None,
            ..vs(true, None, 0.2, [0.1, 0.3])
        };
        variant("v", Some(tested))
    };
    let adjusted = |rows: &[VariantReport]| -> Vec<(Option<f64>, bool)> {
        rows.iter()
            .map(|r| {
                let vs = r.vs_control.as_ref().unwrap();
                (vs.p_adjusted, vs.rel_ci_adjusted.is_some())
            })
            .collect()
    };
    let mut one = [row(Some(0.01)), row(None)];
    adjust_for_several_arms(&mut one, 0.05);
    assert_eq!(adjusted(&one), [(Some(0.01), false), (None, false)]);
    let mut two = [row(Some(0.01)), row(Some(0.04))];
    adjust_for_several_arms(&mut two, 0.05);
    assert_eq!(adjusted(&two), [(Some(0.02), true), (Some(0.04), true)]);
}

#[test]
fn large_lifts_past_the_gate_are_flagged() {
    let mut rows = [
        variant("control", None),
        variant("big", Some(vs(true, Some(0.01), 0.8, [0.1, 1.5]))),
        variant("small", Some(vs(true, Some(0.01), 0.2, [0.1, 0.3]))),
        variant("early", Some(vs(false, Some(0.01), 0.9, [0.1, 1.5]))),
    ];
    let warnings = give_verdicts(&mut rows, false, 0.05);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("big: a lift of more than 50 %"));
    let verdicts: Vec<_> = rows
        .iter()
        .filter_map(|r| Some(r.vs_control.as_ref()?.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [Verdict::Better, Verdict::Better, Verdict::NotEnoughData]
    );
}

#[test]
fn probability_to_be_best_needs_three_arms_with_data() {
    assert!(probability_best(&[arm(5, 5), arm(6, 4)]).is_none());
    assert!(probability_best(&[arm(5, 5), arm(6, 4), arm(0, 0)]).is_none());
    let p = probability_best(&[arm(5, 95), arm(50, 50), arm(6, 94)]).unwrap();
    assert_eq!(p.len(), 3);
    assert!(p[1] > 0.99, "{p:?}");
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-6, "{p:?}");
}

#[test]
fn data_warnings_come_in_a_fixed_order() {
    let arms = Arms {
        arms: Vec::new(),
        multiple: 2,
        unknown: 3,
        closed_before_exposure: 4,
    };
    let revenue = Revenue {
        cap: None,
        currencies: ["EUR".to_string(), "USD".to_string()].into(),
        won_without_amount: 5,
    };
    let w = data_warnings(Unit::Rep, true, Some(1e-5), &arms, &revenue);
    let starts: Vec<&str> = w.iter().map(|w| &w[..w.len().min(14)]).collect();
    assert_eq!(
        starts,
        [
            "no exposures y",
            "sample ratio m",
            "2 unit(s) saw ",
            "3 unit(s) are ",
            "won amounts ar",
            "5 won deal(s) ",
            "4 deal(s) clos",
            "unit: rep: eff",
        ]
    );
    assert!(w[4].contains("(EUR, USD)"), "{}", w[4]);
    let none = data_warnings(
        Unit::Deal,
        false,
        None,
        &Arms::default(),
        &Revenue::default(),
    );
    assert!(none.is_empty(), "{none:?}");
}

#[test]
fn a_variant_row_has_no_rate_without_a_denominator() {
    let revenue = Revenue::default();
    let v = VariantDef {
        id: "short".into(),
        weight: 2.0,
        control: false,
    };
    let empty = arm_figures(Unit::Deal, &[], Metric::Closed, &revenue);
    let row = variant_row(&v, Unit::Deal, &empty);
    assert_eq!((row.id.as_str(), row.weight, row.units), ("short", 2.0, 0));
    assert!(row.win_rate.is_none() && row.win_rate_ci.is_none() && row.vs_control.is_none());
    let one = arm_figures(
        Unit::Deal,
        &[unit_of(vec![deal(true, Some(4.0), "USD")])],
        Metric::Closed,
        &revenue,
    );
    let row = variant_row(&v, Unit::Deal, &one);
    assert_eq!((row.win_rate, row.revenue_per_unit), (Some(1.0), Some(4.0)));
    assert!(row.win_rate_ci.is_some());
}

#[test]
fn the_comparison_below_the_gate_says_how_many_units_are_missing() {
    let opts = opts("2026-11-22");
    let figures = [arm(10, 30), arm(14, 26)];
    let below = versus_baseline(&figures, 0, 1, &opts);
    assert!(!below.enough_data);
    assert!(below.needed_units_per_arm.is_some_and(|n| n > 0));
    let lift = (14.0 / 40.0 - 0.25) / 0.25;
    assert!((below.rel_lift.unwrap() - lift).abs() < 1e-12);
    assert!(below.p_adjusted.is_none(), "Holm comes later");

    let figures = [arm(60, 180), arm(80, 170)];
    let past = versus_baseline(&figures, 0, 1, &opts);
    assert!(past.enough_data && past.needed_units_per_arm.is_none());
    assert!(
        past.revenue_rel_lift.is_none(),
        "no amounts, no revenue comparison"
    );
}

#[test]
fn csv_cells_starting_with_a_formula_are_escaped() {
    let def = def(
        Unit::Deal,
        &[("control", 1.0, true), ("=HYPERLINK(1)", 1.0, false)],
    );
    let (groups, outcomes) = data(&[("control", 400, 120, 280), ("=HYPERLINK(1)", 400, 80, 320)]);
    let r = assemble(&def, &groups, &outcomes, &opts("2026-11-22"));
    let csv = render::csv(&[r]).unwrap();
    let row = csv.lines().nth(2).unwrap();
    let cells: Vec<&str> = row.split(',').collect();
    assert!(cells.contains(&"'=HYPERLINK(1)"), "{row}");
    assert!(!cells.iter().any(|c| c.starts_with('=')), "{row}");
    // A negative lift is a number, not text.
    assert!(
        cells
            .iter()
            .any(|c| c.starts_with('-') && c.parse::<f64>().is_ok()),
        "{row}"
    );
}
