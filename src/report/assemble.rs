//! One experiment's report from its definition, its exposures (grouped per unit and
//! variant) and the latest outcome of its deals. Pure: the store reads happen in
//! [`super::build`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use time::Duration;

use super::stats::{self, Moments, RatioSums, Scale};
use super::{
    ExperimentDef, Metric, Report, ReportOptions, VariantDef, VariantReport, Verdict, VsControl,
};
use crate::library::Unit;
use crate::store::{ExposureGroupRow, OutcomeRow};
use crate::timestamp::Timestamp;

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
    deals: BTreeMap<&'a str, Timestamp>,
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

/// The exposed units sorted into the experiment's arms, and the ones left out.
#[derive(Debug, Default)]
struct Arms {
    /// One list of units per variant of the definition, in its order.
    arms: Vec<Vec<UnitObs>>,
    /// Units that saw more than one variant.
    multiple: u64,
    /// Units whose variant the definition no longer has.
    unknown: u64,
    /// Deals whose outcome closed before the day of their first exposure.
    closed_before_exposure: u64,
}

/// The pooled won amounts, read once for every arm.
#[derive(Debug, Default)]
struct Revenue {
    /// One cap for every arm; `None` when nothing was won or currencies are mixed.
    cap: Option<f64>,
    /// The won amounts' currencies (upper case).
    currencies: BTreeSet<String>,
    /// Won deals that count for revenue but have no amount.
    won_without_amount: u64,
}

impl Revenue {
    /// Amounts in several currencies cannot be added up: revenue is not computed.
    fn mixed_currency(&self) -> bool {
        self.currencies.len() > 1
    }

    /// What a deal contributes to revenue: its won amount, capped; 0 otherwise.
    fn capped(&self, d: &DealObs) -> f64 {
        match (d.won, d.amount, self.cap) {
            (true, Some(a), Some(cap)) => a.min(cap),
            (true, Some(a), None) => a,
            _ => 0.0,
        }
    }
}

impl DealObs {
    /// Whether the deal counts for revenue: every exposed one, or the matured ones.
    fn in_revenue(&self, metric: Metric) -> bool {
        metric == Metric::Closed || self.matured
    }

    /// Whether the deal is in the win rate's denominator (a win counts only then).
    fn in_metric(&self, metric: Metric) -> bool {
        match metric {
            Metric::Closed => self.closed,
            Metric::Matured => self.matured,
        }
    }
}

/// Builds the report. `groups` are the experiment's exposures before the cutoff grouped by
/// (deal, rep, variant); `outcomes` the latest outcome of its deals.
pub fn assemble(
    def: &ExperimentDef,
    groups: &[ExposureGroupRow],
    outcomes: &[OutcomeRow],
    opts: &ReportOptions,
) -> Report {
    let cutoff = opts.cutoff();
    let window = Duration::days(i64::from(opts.window_days));

    let units = exposed_units(def.unit, groups, cutoff);
    let arms = sort_into_arms(def, &units, outcomes, window, cutoff);
    let revenue = pooled_revenue(&arms.arms, opts);
    let figures: Vec<ArmFigures> = arms
        .arms
        .iter()
        .map(|units| arm_figures(def.unit, units, opts.metric, &revenue))
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
        .map(|(v, f)| variant_row(v, def.unit, f))
        .collect();
    for (i, row) in rows.iter_mut().enumerate() {
        if i != base {
            row.vs_control = Some(versus_baseline(&figures, base, i, opts));
        }
    }
    adjust_for_several_arms(&mut rows, opts.alpha);
    let mut warnings = give_verdicts(&mut rows, srm_warning, opts.alpha);
    if let Some(p) = probability_best(&figures) {
        for (r, p) in rows.iter_mut().zip(p) {
            r.prob_best = Some(p);
        }
    }
    warnings.extend(data_warnings(
        def.unit,
        units.is_empty(),
        srm_p.filter(|_| srm_warning),
        &arms,
        &revenue,
    ));

    let mixed_currency = revenue.mixed_currency();
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
        multiple_exposure_units: arms.multiple,
        variants: rows,
        srm_warning,
        baseline: def
            .variants
            .get(base)
            .map(|v| v.id.clone())
            .unwrap_or_default(),
        seq_tuning: opts.seq_tuning,
        revenue_cap: revenue.cap,
        currency: if mixed_currency {
            None
        } else {
            revenue.currencies.into_iter().next()
        },
        unknown_variant_units: arms.unknown,
        closed_before_exposure: arms.closed_before_exposure,
        warnings,
    }
}

/// The units (deals, or reps for `unit: rep`) exposed before the cutoff, with the variants
/// each saw, its exposures, and its deals' first exposures. Groups without a variant or
/// without the unit's id are left out.
fn exposed_units<'a>(
    unit: Unit,
    groups: &'a [ExposureGroupRow],
    cutoff: Timestamp,
) -> BTreeMap<&'a str, UnitAcc<'a>> {
    let mut units: BTreeMap<&str, UnitAcc<'_>> = BTreeMap::new();
    for g in groups {
        if g.first_ts >= cutoff {
            continue;
        }
        let (Some(variant), Some(unit_id)) = (
            g.variant.as_deref(),
            match unit {
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
            let first = acc.deals.entry(deal).or_insert(g.first_ts);
            *first = (*first).min(g.first_ts);
        }
    }
    units
}

/// Each unit in the arm of the one variant it saw, with what its deals contributed; units
/// that saw several variants, or one the definition no longer has, are counted and left
/// out.
fn sort_into_arms(
    def: &ExperimentDef,
    units: &BTreeMap<&str, UnitAcc<'_>>,
    outcomes: &[OutcomeRow],
    window: Duration,
    cutoff: Timestamp,
) -> Arms {
    let latest: HashMap<&str, &OutcomeRow> =
        outcomes.iter().map(|o| (o.deal_id.as_str(), o)).collect();
    let mut out = Arms {
        arms: def.variants.iter().map(|_| Vec::new()).collect(),
        ..Arms::default()
    };
    for acc in units.values() {
        if acc.variants.len() > 1 {
            out.multiple += 1;
            continue;
        }
        let Some(idx) = acc
            .variants
            .first()
            .and_then(|v| def.variants.iter().position(|d| d.id == *v))
        else {
            out.unknown += 1;
            continue;
        };
        let mut deals = Vec::with_capacity(acc.deals.len());
        for (deal, &first) in &acc.deals {
            let (obs, before) = deal_obs(first, latest.get(deal).copied(), window, cutoff);
            out.closed_before_exposure += u64::from(before);
            deals.push(obs);
        }
        out.arms[idx].push(UnitObs {
            exposures: acc.exposures,
            deals,
        });
    }
    out
}

/// What one deal first exposed at `first` contributed, given its latest outcome: matured
/// once its window has passed by the cutoff; closed (won or lost) if it was decided on or
/// after the day of its first exposure, before the cutoff and within the window. The flag
/// is set for a deal decided before the day of its first exposure (not counted as closed).
fn deal_obs(
    first: Timestamp,
    outcome: Option<&OutcomeRow>,
    window: Duration,
    cutoff: Timestamp,
) -> (DealObs, bool) {
    let mut obs = DealObs {
        matured: first + window <= cutoff,
        closed: false,
        won: false,
        amount: None,
        currency: None,
    };
    let Some(o) = outcome.filter(|o| matches!(o.outcome.as_str(), "won" | "lost")) else {
        return (obs, false);
    };
    let at = o.closed_at.unwrap_or(o.received_at);
    if at.datetime().date() < first.datetime().date() {
        return (obs, true);
    }
    if at < cutoff && at <= first + window {
        obs.closed = true;
        obs.won = o.outcome == "won";
        obs.amount = o.amount;
        obs.currency = o.currency.as_ref().map(|c| c.to_ascii_uppercase());
    }
    (obs, false)
}

/// The won amounts of every arm pooled: their currencies, the won deals without an amount,
/// and one revenue cap for every arm (the configured percentile; none for mixed
/// currencies).
fn pooled_revenue(arms: &[Vec<UnitObs>], opts: &ReportOptions) -> Revenue {
    let mut won_amounts = Vec::new();
    let mut revenue = Revenue::default();
    for d in arms.iter().flatten().flat_map(|u| &u.deals) {
        if d.won && d.in_revenue(opts.metric) {
            match d.amount {
                Some(a) => won_amounts.push(a),
                None => revenue.won_without_amount += 1,
            }
            if let Some(c) = &d.currency {
                revenue.currencies.insert(c.clone());
            }
        }
    }
    if !revenue.mixed_currency() {
        revenue.cap = percentile(&mut won_amounts, opts.cap_percentile);
    }
    revenue
}

/// One arm's counts and the moments of its win rate and revenue: per deal for `unit:
/// deal`, ratios over reps (delta method) for `unit: rep`.
fn arm_figures(unit: Unit, units: &[UnitObs], metric: Metric, revenue: &Revenue) -> ArmFigures {
    let deals = || units.iter().flat_map(|u| &u.deals);
    let n = deals().filter(|d| d.in_metric(metric)).count() as u64;
    let won = deals().filter(|d| d.in_metric(metric) && d.won).count() as u64;
    let (win, revenue_moments, revenue_per_unit) = match unit {
        Unit::Deal => {
            let pop: Vec<f64> = deals()
                .filter(|d| d.in_revenue(metric))
                .map(|d| revenue.capped(d))
                .collect();
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
                let in_m: Vec<&DealObs> = u.deals.iter().filter(|d| d.in_metric(metric)).collect();
                let won_u = in_m.iter().filter(|d| d.won).count() as f64;
                win_sums.add(won_u, in_m.len() as f64);
                let pop: Vec<&DealObs> = u.deals.iter().filter(|d| d.in_revenue(metric)).collect();
                rev_sums.add(
                    pop.iter().map(|d| revenue.capped(d)).sum(),
                    pop.len() as f64,
                );
            }
            let reps = units.len() as u64;
            (
                Moments::ratio(reps, win_sums),
                Moments::ratio(reps, rev_sums),
                (rev_sums.d > 0.0).then(|| rev_sums.m / rev_sums.d),
            )
        }
    };
    let mixed_currency = revenue.mixed_currency();
    ArmFigures {
        units: units.len() as u64,
        exposures: units.iter().map(|u| u.exposures).sum(),
        deals: deals().count() as u64,
        matured: deals().filter(|d| d.matured).count() as u64,
        closed: deals().filter(|d| d.closed).count() as u64,
        won,
        n,
        win,
        revenue: revenue_moments.filter(|_| !mixed_currency),
        revenue_per_unit: revenue_per_unit.filter(|_| !mixed_currency),
    }
}

/// A variant's row before any comparison: its counts, win rate and interval, revenue.
fn variant_row(v: &VariantDef, unit: Unit, f: &ArmFigures) -> VariantReport {
    VariantReport {
        id: v.id.clone(),
        weight: v.weight,
        control: v.control,
        units: f.units,
        closed: f.closed,
        won: f.won,
        win_rate: (f.n > 0).then(|| f.won as f64 / f.n as f64),
        win_rate_ci: rate_ci(unit, f).map(|(a, b)| [a, b]),
        revenue_per_unit: f.revenue_per_unit,
        vs_control: None,
        matured: f.matured,
        n: f.n,
        exposures: f.exposures,
        deals: f.deals,
        revenue_sd: f.revenue.map(|m| m.var.sqrt()),
        prob_best: None,
    }
}

/// Arm `arm` versus the baseline: absolute and relative effects (Welch), the Bayesian and
/// always-valid views, revenue, and the not-enough-data gate. The Holm adjustment and the
/// verdict need every arm: [`adjust_for_several_arms`] and [`give_verdicts`] add them.
fn versus_baseline(
    figures: &[ArmFigures],
    base: usize,
    arm: usize,
    opts: &ReportOptions,
) -> VsControl {
    let (b, f) = (&figures[base], &figures[arm]);
    let rel = pair(b.win, f.win, Scale::Relative);
    let abs = pair(b.win, f.win, Scale::Absolute);
    let rel_test = rel.and_then(|e| stats::welch_two_sided(&e, opts.alpha));
    let abs_test = abs.and_then(|e| stats::welch_two_sided(&e, opts.alpha));
    let bayes = rel.and_then(|e| stats::bayes_flat(&e, opts.alpha));
    let seq =
        rel.and_then(|e| stats::sequential(&e, (b.n + f.n) as f64, opts.seq_tuning, opts.alpha));
    let rev_rel = pair(b.revenue, f.revenue, Scale::Relative)
        .and_then(|e| stats::welch_two_sided(&e, opts.alpha));
    let rev_abs = pair(b.revenue, f.revenue, Scale::Absolute)
        .and_then(|e| stats::welch_two_sided(&e, opts.alpha));
    let enough_data = b.closed >= opts.min_closed && f.closed >= opts.min_closed;
    VsControl {
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
            needed_units(figures, base, arm, opts)
        },
        abs_p_value: abs_test.map(|t| t.p),
        rel_ci_adjusted: None,
        credible_ci: bayes.map(|x| [x.ci.0, x.ci.1]),
        seq_p_value: seq.map(|s| s.p),
        // Given by `give_verdicts` once every arm's p-value is adjusted.
        verdict: Verdict::NotEnoughData,
        revenue_abs_diff: rev_abs.map(|t| t.delta),
        revenue_rel_lift: rev_rel.map(|t| t.delta),
        revenue_rel_ci: rev_rel.map(|t| [t.ci.0, t.ci.1]),
        revenue_p_value: rev_rel.map(|t| t.p),
    }
}

/// Holm over the treatment arms that have a p-value: each one's adjusted p-value, and
/// with several such arms the relative interval widened to match.
fn adjust_for_several_arms(rows: &mut [VariantReport], alpha: f64) {
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
                    .and_then(|lift| stats::adjusted_ci(*p_adj, lift, alpha))
                    .map(|(a, b)| [a, b]);
            }
        }
    }
}

/// Each treatment arm's [`verdict`]; returns a warning for every implausibly large lift
/// that passed the gate.
fn give_verdicts(rows: &mut [VariantReport], srm_warning: bool, alpha: f64) -> Vec<String> {
    let mut warnings = Vec::new();
    for r in rows {
        if let Some(vs) = r.vs_control.as_mut() {
            vs.verdict = verdict(vs, srm_warning, alpha);
            if vs.enough_data && vs.rel_lift.is_some_and(|l| l.abs() > SUSPICIOUS_LIFT) {
                warnings.push(format!(
                    "{}: a lift of more than {:.0} % is unusual; check the data before acting on it",
                    r.id,
                    SUSPICIOUS_LIFT * 100.0
                ));
            }
        }
    }
    warnings
}

/// Each arm's probability to have the best win rate, for three or more arms that all have
/// data.
fn probability_best(figures: &[ArmFigures]) -> Option<Vec<f64>> {
    if figures.len() < 3 || figures.iter().any(|f| f.n == 0) {
        return None;
    }
    let counts: Vec<(u64, u64)> = figures.iter().map(|f| (f.won, f.n - f.won)).collect();
    stats::prob_best(&counts)
}

/// The warnings about the data itself, in a fixed order: no exposures, a sample ratio
/// mismatch (`srm_p` given only when flagged), units left out, revenue that could not be
/// computed or is incomplete, outcomes before exposures, and the caveat of `unit: rep`.
fn data_warnings(
    unit: Unit,
    no_units: bool,
    srm_p: Option<f64>,
    arms: &Arms,
    revenue: &Revenue,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if no_units {
        warnings.push("no exposures yet".to_string());
    }
    if let Some(p) = srm_p {
        warnings.push(format!(
            "sample ratio mismatch (p = {p:.2e} < {SRM_THRESHOLD}): the arms' units do not match \
             the weights; find out why before trusting any figure"
        ));
    }
    if arms.multiple > 0 {
        warnings.push(format!(
            "{} unit(s) saw more than one variant and are left out (did weights or \
             variant ids change mid-test?)",
            arms.multiple
        ));
    }
    if arms.unknown > 0 {
        warnings.push(format!(
            "{} unit(s) are in variants the card no longer defines and are left out",
            arms.unknown
        ));
    }
    if revenue.mixed_currency() {
        warnings.push(format!(
            "won amounts are in several currencies ({}): revenue is not computed; convert \
             amounts to one currency in the CRM export",
            revenue
                .currencies
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if revenue.won_without_amount > 0 {
        warnings.push(format!(
            "{} won deal(s) have no amount and count as 0 revenue",
            revenue.won_without_amount
        ));
    }
    if arms.closed_before_exposure > 0 {
        warnings.push(format!(
            "{} deal(s) closed before their first exposure and are not counted as closed",
            arms.closed_before_exposure
        ));
    }
    if unit == Unit::Rep {
        warnings.push(
            "unit: rep: effects are ratios over reps (delta method); the sample-size guidance \
             ignores clustering"
                .to_string(),
        );
    }
    warnings
}

/// The effect of `b` over `a` on `scale`, when both arms have moments.
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

/// A treatment arm's verdict: withheld below the gate or with a sample ratio mismatch;
/// otherwise from the Holm-adjusted p-value and the always-valid interval.
fn verdict(vs: &VsControl, srm_warning: bool, alpha: f64) -> Verdict {
    if !vs.enough_data {
        return Verdict::NotEnoughData;
    }
    if srm_warning {
        return Verdict::SrmWarning;
    }
    // Significant at a fixed horizon (Holm-adjusted); "better"/"worse" only once the
    // always-valid interval agrees, so peeking every day cannot manufacture a winner.
    if !vs.p_adjusted.is_some_and(|p| p < alpha) {
        return Verdict::NoClearDifference;
    }
    let up = vs.rel_lift.is_some_and(|l| l > 0.0);
    match (up, vs.seq_ci) {
        (true, Some([lo, _])) if lo > 0.0 => Verdict::Better,
        (false, Some([_, hi])) if hi < 0.0 => Verdict::Worse,
        (true, _) => Verdict::LeaningBetter,
        (false, _) => Verdict::LeaningWorse,
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
