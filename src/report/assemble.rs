//! One experiment's report from its definition, its exposures (grouped per unit and
//! variant) and the latest outcome of its deals. Pure: the store reads happen in
//! [`super::build`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use time::{Duration, OffsetDateTime};

use super::stats::{self, Moments, RatioSums, Scale};
use super::{ExperimentDef, Metric, Report, ReportOptions, VariantReport, VsControl};
use crate::library::Unit;
use crate::outcomes::parse_timestamp;
use crate::store::{ExposureGroupRow, OutcomeRow};

/// SRM p-values below this are flagged (GrowthBook, Eppo).
pub const SRM_THRESHOLD: f64 = 0.001;

/// A relative lift above this with enough data is suspicious (docs/statistics.md#warnings).
const SUSPICIOUS_LIFT: f64 = 0.5;

/// What one deal contributed.
#[derive(Debug, Clone)]
struct DealObs {
    matured: bool,
    closed: bool,
    won: bool,
    amount: Option<f64>,
    currency: Option<String>,
}

/// One unit (deal or rep) of one arm.
#[derive(Debug, Default)]
struct UnitObs {
    exposures: u64,
    deals: Vec<DealObs>,
}

/// Everything accumulated while reading the exposures.
#[derive(Default)]
struct UnitAcc<'a> {
    variants: BTreeSet<&'a str>,
    exposures: u64,
    /// Deal id → its first exposure (for `unit: deal`, the unit itself).
    deals: BTreeMap<&'a str, &'a str>,
}

/// Per-arm figures before the comparisons.
struct ArmFigures {
    units: u64,
    exposures: u64,
    deals: u64,
    matured: u64,
    closed: u64,
    won: u64,
    n: u64,
    win: Option<Moments>,
    revenue: Option<Moments>,
    revenue_per_unit: Option<f64>,
}

/// Builds the report. `groups` are the experiment's exposures before the cutoff grouped by
/// (deal, rep, variant); `outcomes` the latest outcome of its deals.
pub fn assemble(
    def: &ExperimentDef,
    groups: &[ExposureGroupRow],
    outcomes: &[OutcomeRow],
    opts: &ReportOptions,
) -> Report {
    let cutoff_text = opts.cutoff();
    let cutoff = parse_timestamp(&cutoff_text).unwrap_or_else(OffsetDateTime::now_utc);
    let window = Duration::days(i64::from(opts.window_days));
    let mut warnings = Vec::new();

    // Units and the variants they saw.
    let mut units: BTreeMap<&str, UnitAcc<'_>> = BTreeMap::new();
    for g in groups {
        if *g.first_ts >= *cutoff_text {
            continue;
        }
        let (Some(variant), Some(unit_id)) = (
            g.variant.as_deref(),
            match def.unit {
                Unit::Deal => g.deal_id.as_deref(),
                Unit::Rep => g.rep_id.as_deref(),
            },
        ) else {
            continue;
        };
        let acc = units.entry(unit_id).or_default();
        acc.variants.insert(variant);
        acc.exposures += u64::try_from(g.exposures).unwrap_or(0);
        if let Some(deal) = g.deal_id.as_deref() {
            let first = acc.deals.entry(deal).or_insert(g.first_ts.as_str());
            if *g.first_ts < **first {
                *first = g.first_ts.as_str();
            }
        }
    }

    let latest: HashMap<&str, &OutcomeRow> =
        outcomes.iter().map(|o| (o.deal_id.as_str(), o)).collect();
    let mut multiple = 0u64;
    let mut unknown = 0u64;
    let mut closed_before_exposure = 0u64;
    let mut arms: Vec<Vec<UnitObs>> = def.variants.iter().map(|_| Vec::new()).collect();
    for acc in units.values() {
        if acc.variants.len() > 1 {
            multiple += 1;
            continue;
        }
        let Some(idx) = acc
            .variants
            .first()
            .and_then(|v| def.variants.iter().position(|d| d.id == *v))
        else {
            unknown += 1;
            continue;
        };
        let deals = acc
            .deals
            .iter()
            .filter_map(|(deal, first)| {
                let first = parse_timestamp(first)?;
                let matured = first + window <= cutoff;
                let mut obs = DealObs {
                    matured,
                    closed: false,
                    won: false,
                    amount: None,
                    currency: None,
                };
                if let Some(o) = latest.get(deal) {
                    let decided = matches!(o.outcome.as_str(), "won" | "lost");
                    let closed_at = o
                        .closed_at
                        .as_deref()
                        .and_then(parse_timestamp)
                        .or_else(|| parse_timestamp(&o.received_at));
                    if let (true, Some(at)) = (decided, closed_at) {
                        if at.date() < first.date() {
                            closed_before_exposure += 1;
                        } else if at < cutoff && at <= first + window {
                            obs.closed = true;
                            obs.won = o.outcome == "won";
                            obs.amount = o.amount;
                            obs.currency = o.currency.as_ref().map(|c| c.to_ascii_uppercase());
                        }
                    }
                }
                Some(obs)
            })
            .collect();
        arms[idx].push(UnitObs {
            exposures: acc.exposures,
            deals,
        });
    }

    // The deals that count for revenue: every exposed one, or the matured ones.
    let in_revenue = |d: &DealObs| opts.metric == Metric::Closed || d.matured;
    // A win counts if the deal is in the metric's denominator.
    let in_metric = |d: &DealObs| match opts.metric {
        Metric::Closed => d.closed,
        Metric::Matured => d.matured,
    };

    // One revenue cap for every arm: a percentile of the pooled won amounts.
    let mut won_amounts = Vec::new();
    let mut currencies = BTreeSet::new();
    let mut won_without_amount = 0u64;
    for d in arms.iter().flatten().flat_map(|u| &u.deals) {
        if d.won && in_revenue(d) {
            match d.amount {
                Some(a) => won_amounts.push(a),
                None => won_without_amount += 1,
            }
            if let Some(c) = &d.currency {
                currencies.insert(c.clone());
            }
        }
    }
    let mixed_currency = currencies.len() > 1;
    let revenue_cap = if mixed_currency {
        None
    } else {
        percentile(&mut won_amounts, opts.cap_percentile)
    };
    let capped = |d: &DealObs| -> f64 {
        match (d.won, d.amount, revenue_cap) {
            (true, Some(a), Some(cap)) => a.min(cap),
            (true, Some(a), None) => a,
            _ => 0.0,
        }
    };

    let figures: Vec<ArmFigures> = arms
        .iter()
        .map(|units| {
            let deals = || units.iter().flat_map(|u| &u.deals);
            let n = deals().filter(|d| in_metric(d)).count() as u64;
            let won = deals().filter(|d| in_metric(d) && d.won).count() as u64;
            let (win, revenue, revenue_per_unit) = match def.unit {
                Unit::Deal => {
                    let pop: Vec<f64> = deals().filter(|d| in_revenue(d)).map(capped).collect();
                    let sum: f64 = pop.iter().sum();
                    let sum_sq: f64 = pop.iter().map(|y| y * y).sum();
                    (
                        Moments::proportion(n, won),
                        Moments::sample_mean(pop.len() as u64, sum, sum_sq),
                        (!pop.is_empty()).then(|| sum / pop.len() as f64),
                    )
                }
                Unit::Rep => {
                    let mut win_sums = RatioSums::default();
                    let mut rev_sums = RatioSums::default();
                    for u in units {
                        let in_m: Vec<&DealObs> = u.deals.iter().filter(|d| in_metric(d)).collect();
                        let won_u = in_m.iter().filter(|d| d.won).count() as f64;
                        win_sums.add(won_u, in_m.len() as f64);
                        let pop: Vec<&DealObs> = u.deals.iter().filter(|d| in_revenue(d)).collect();
                        rev_sums.add(pop.iter().map(|d| capped(d)).sum(), pop.len() as f64);
                    }
                    let reps = units.len() as u64;
                    (
                        Moments::ratio(reps, win_sums),
                        Moments::ratio(reps, rev_sums),
                        (rev_sums.d > 0.0).then(|| rev_sums.m / rev_sums.d),
                    )
                }
            };
            ArmFigures {
                units: units.len() as u64,
                exposures: units.iter().map(|u| u.exposures).sum(),
                deals: deals().count() as u64,
                matured: deals().filter(|d| d.matured).count() as u64,
                closed: deals().filter(|d| d.closed).count() as u64,
                won,
                n,
                win,
                revenue: if mixed_currency { None } else { revenue },
                revenue_per_unit: if mixed_currency {
                    None
                } else {
                    revenue_per_unit
                },
            }
        })
        .collect();

    let weights: Vec<f64> = def.variants.iter().map(|v| v.weight).collect();
    let observed: Vec<u64> = figures.iter().map(|f| f.units).collect();
    let srm_p = stats::srm_p(&observed, &weights);
    let srm_warning = srm_p.is_some_and(|p| p < SRM_THRESHOLD);

    let base = def.baseline();
    let mut rows: Vec<VariantReport> = def
        .variants
        .iter()
        .zip(&figures)
        .map(|(v, f)| VariantReport {
            id: v.id.clone(),
            weight: v.weight,
            control: v.control,
            units: f.units,
            closed: f.closed,
            won: f.won,
            win_rate: (f.n > 0).then(|| f.won as f64 / f.n as f64),
            win_rate_ci: rate_ci(def.unit, f).map(|(a, b)| [a, b]),
            revenue_per_unit: f.revenue_per_unit,
            vs_control: None,
            matured: f.matured,
            n: f.n,
            exposures: f.exposures,
            deals: f.deals,
            revenue_sd: f.revenue.map(|m| m.var.sqrt()),
            prob_best: None,
        })
        .collect();

    // Versus the baseline.
    let b = &figures[base];
    for (i, f) in figures.iter().enumerate() {
        if i == base {
            continue;
        }
        let rel = pair(b.win, f.win, Scale::Relative);
        let abs = pair(b.win, f.win, Scale::Absolute);
        let rel_test = rel.and_then(|e| stats::welch_two_sided(&e, opts.alpha));
        let abs_test = abs.and_then(|e| stats::welch_two_sided(&e, opts.alpha));
        let bayes = rel.and_then(|e| stats::bayes_flat(&e, opts.alpha));
        let seq = rel
            .and_then(|e| stats::sequential(&e, (b.n + f.n) as f64, opts.seq_tuning, opts.alpha));
        let rev_rel = pair(b.revenue, f.revenue, Scale::Relative)
            .and_then(|e| stats::welch_two_sided(&e, opts.alpha));
        let rev_abs = pair(b.revenue, f.revenue, Scale::Absolute)
            .and_then(|e| stats::welch_two_sided(&e, opts.alpha));
        let enough_data = b.closed >= opts.min_closed && f.closed >= opts.min_closed;
        rows[i].vs_control = Some(VsControl {
            abs_diff: abs_test.map(|t| t.delta),
            abs_ci: abs_test.map(|t| [t.ci.0, t.ci.1]),
            rel_lift: rel_test.map(|t| t.delta),
            rel_ci: rel_test.map(|t| [t.ci.0, t.ci.1]),
            p_value: rel_test.map(|t| t.p),
            p_adjusted: None,
            chance_to_win: bayes.map(|x| x.chance_to_win),
            risk: bayes.map(|x| x.risk),
            seq_ci: seq.map(|s| [s.ci.0, s.ci.1]),
            enough_data,
            needed_units_per_arm: if enough_data {
                None
            } else {
                needed_units(&figures, base, i, opts)
            },
            abs_p_value: abs_test.map(|t| t.p),
            rel_ci_adjusted: None,
            credible_ci: bayes.map(|x| [x.ci.0, x.ci.1]),
            seq_p_value: seq.map(|s| s.p),
            verdict: "",
            revenue_abs_diff: rev_abs.map(|t| t.delta),
            revenue_rel_lift: rev_rel.map(|t| t.delta),
            revenue_rel_ci: rev_rel.map(|t| [t.ci.0, t.ci.1]),
            revenue_p_value: rev_rel.map(|t| t.p),
        });
    }

    // Holm over the treatment arms that have a p-value.
    let tested: Vec<(usize, f64)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.vs_control.as_ref()?.p_value.map(|p| (i, p)))
        .collect();
    let adjusted = stats::holm(&tested.iter().map(|(_, p)| *p).collect::<Vec<_>>());
    for ((i, _), p_adj) in tested.iter().zip(&adjusted) {
        if let Some(vs) = rows[*i].vs_control.as_mut() {
            vs.p_adjusted = Some(*p_adj);
            if tested.len() > 1 {
                vs.rel_ci_adjusted = vs
                    .rel_lift
                    .and_then(|lift| stats::adjusted_ci(*p_adj, lift, opts.alpha))
                    .map(|(a, b)| [a, b]);
            }
        }
    }
    for r in &mut rows {
        if let Some(vs) = r.vs_control.as_mut() {
            vs.verdict = verdict(vs, srm_warning, opts.alpha);
            if vs.enough_data && vs.rel_lift.is_some_and(|l| l.abs() > SUSPICIOUS_LIFT) {
                warnings.push(format!(
                    "{}: a lift of more than {:.0} % is unusual; check the data before acting on it",
                    r.id,
                    SUSPICIOUS_LIFT * 100.0
                ));
            }
        }
    }

    // Probability to be best, for three or more arms with data.
    if figures.len() >= 3 && figures.iter().all(|f| f.n > 0) {
        let counts: Vec<(u64, u64)> = figures.iter().map(|f| (f.won, f.n - f.won)).collect();
        if let Some(p) = stats::prob_best(&counts) {
            for (r, p) in rows.iter_mut().zip(p) {
                r.prob_best = Some(p);
            }
        }
    }

    if units.is_empty() {
        warnings.push("no exposures yet".to_string());
    }
    if let Some(p) = srm_p.filter(|_| srm_warning) {
        warnings.push(format!(
            "sample ratio mismatch (p = {p:.2e} < {SRM_THRESHOLD}): the arms' units do not match \
             the weights; find out why before trusting any figure"
        ));
    }
    if multiple > 0 {
        warnings.push(format!(
            "{multiple} unit(s) saw more than one variant and are left out (did weights or \
             variant ids change mid-test?)"
        ));
    }
    if unknown > 0 {
        warnings.push(format!(
            "{unknown} unit(s) are in variants the card no longer defines and are left out"
        ));
    }
    if mixed_currency {
        warnings.push(format!(
            "won amounts are in several currencies ({}): revenue is not computed; convert \
             amounts to one currency in the CRM export",
            currencies.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if won_without_amount > 0 {
        warnings.push(format!(
            "{won_without_amount} won deal(s) have no amount and count as 0 revenue"
        ));
    }
    if closed_before_exposure > 0 {
        warnings.push(format!(
            "{closed_before_exposure} deal(s) closed before their first exposure and are not \
             counted as closed"
        ));
    }
    if def.unit == Unit::Rep {
        warnings.push(
            "unit: rep: effects are ratios over reps (delta method); the sample-size guidance \
             ignores clustering"
                .to_string(),
        );
    }

    Report {
        experiment_key: def.key.clone(),
        card_id: def.card_id.clone(),
        unit: def.unit,
        metric: opts.metric,
        window_days: opts.window_days,
        as_of: format!(
            "{:04}-{:02}-{:02}",
            opts.as_of.year(),
            u8::from(opts.as_of.month()),
            opts.as_of.day()
        ),
        srm_p,
        multiple_exposure_units: multiple,
        variants: rows,
        srm_warning,
        baseline: def
            .variants
            .get(base)
            .map(|v| v.id.clone())
            .unwrap_or_default(),
        seq_tuning: opts.seq_tuning,
        revenue_cap,
        currency: if mixed_currency {
            None
        } else {
            currencies.into_iter().next()
        },
        unknown_variant_units: unknown,
        closed_before_exposure,
        warnings,
    }
}

fn pair(a: Option<Moments>, b: Option<Moments>, scale: Scale) -> Option<stats::Effect> {
    stats::effect(&a?, &b?, scale)
}

/// The arm's win-rate interval: Wilson for deals, the delta-method normal interval for a
/// ratio over reps.
fn rate_ci(unit: Unit, f: &ArmFigures) -> Option<(f64, f64)> {
    match unit {
        Unit::Deal => stats::wilson(f.won, f.n, stats::Z_975),
        Unit::Rep => {
            let m = f.win?;
            let half = stats::Z_975 * m.var_of_mean().sqrt();
            Some(((m.mean - half).max(0.0), (m.mean + half).min(1.0)))
        }
    }
}

/// Additional units per arm (in the metric's denominator) to detect the relative MDE with
/// the configured power, and at least the gate's minimum.
fn needed_units(
    figures: &[ArmFigures],
    base: usize,
    arm: usize,
    opts: &ReportOptions,
) -> Option<u64> {
    let usable = |won: u64, n: u64| {
        let p = won as f64 / n as f64;
        (n > 0 && p > 0.0 && p < 1.0).then_some(p)
    };
    let b = &figures[base];
    let p1 = usable(b.won, b.n).or_else(|| {
        let won = figures.iter().map(|f| f.won).sum();
        let n = figures.iter().map(|f| f.n).sum();
        usable(won, n)
    })?;
    let p2 = p1 * (1.0 + opts.mde);
    if p2 >= 1.0 {
        return None;
    }
    let required = stats::sample_size_two_proportions(p1, p2, opts.alpha, opts.power)?.ceil();
    let target = (required as u64).max(opts.min_closed);
    let have = b.n.min(figures[arm].n);
    Some(target.saturating_sub(have))
}

fn verdict(vs: &VsControl, srm_warning: bool, alpha: f64) -> &'static str {
    if !vs.enough_data {
        return "not_enough_data";
    }
    if srm_warning {
        return "srm_warning";
    }
    // Significant at a fixed horizon (Holm-adjusted); "better"/"worse" only once the
    // always-valid interval agrees, so peeking every day cannot manufacture a winner.
    if !vs.p_adjusted.is_some_and(|p| p < alpha) {
        return "no_clear_difference";
    }
    let up = vs.rel_lift.is_some_and(|l| l > 0.0);
    match (up, vs.seq_ci) {
        (true, Some([lo, _])) if lo > 0.0 => "better",
        (false, Some([_, hi])) if hi < 0.0 => "worse",
        (true, _) => "leaning_better",
        (false, _) => "leaning_worse",
    }
}

/// Linear-interpolation percentile (`q` in `0..=1`) of the values (sorted in place).
fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let h = (values.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(values.len() - 1);
    Some(values[lo] + (h - lo as f64) * (values[hi] - values[lo]))
}

#[cfg(test)]
mod tests;
