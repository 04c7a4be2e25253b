//! Experiment reports (docs/statistics.md): which card variant wins more deals.
//!
//! - [`stats`] — pure statistics (Wilson, Welch on absolute and relative effects, Holm,
//!   the flat-prior Gaussian Bayesian view, probability to be best, the asymptotic
//!   confidence sequence, SRM, sample size), GrowthBook `gbstats` conventions.
//! - [`mod@assemble`] — one experiment's report from its definition (the card library) and
//!   the store's read API: units, outcome windows, maturity, revenue capping, the
//!   not-enough-data gate. The core ([`assemble::assemble`]) is pure; [`build`] reads the
//!   store and calls it.
//! - [`render`] — the aligned table, JSON (the field names of docs/statistics.md#json-fields)
//!   and CSV.
//!
//! Definitions (documented for users in docs/statistics.md#who-counts):
//! - A unit (deal, or rep for `unit: rep`) belongs to the arm of its exposures; a unit
//!   exposed to more than one variant is counted in `multiple_exposure_units` and left out.
//!   Its first exposure starts its outcome window.
//! - A deal's outcome is its latest update. It counts as *closed* when it is `won` or
//!   `lost` and its close time (`closed_at`, else the time it was received) falls on or
//!   after the day of the first exposure, within `window_days` of it, and before the end of
//!   the `as_of` day.
//! - `--metric closed` (default): win rate = won / closed. `--metric matured`: win rate =
//!   won within the window / units whose first exposure is at least `window_days` old.
//! - Revenue per exposed unit: the won amount (decimal, major currency units) capped at
//!   the pooled 99th percentile of won amounts (one cap for every arm), 0 otherwise,
//!   averaged over exposed units (matured units with `--metric matured`).

pub mod assemble;
pub mod params;
pub mod render;
pub mod stats;
pub mod svg;

use serde::Serialize;

use crate::library::{Library, Unit};
use crate::store::{Store, StoreError};
use crate::timestamp::Timestamp;

pub use assemble::assemble;
pub use params::{ParamError, ReportParams};

/// The win definition (docs/statistics.md#per-arm-figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Won among units whose latest outcome is won or lost.
    Closed,
    /// Won within the window among units whose first exposure is at least the window old.
    Matured,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        crate::names::name_of(&self)
    }
}

/// How a report is computed.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    pub metric: Metric,
    /// Outcome window after a unit's first exposure (default 90).
    pub window_days: u32,
    /// The report covers data up to the end of this day (UTC).
    pub as_of: time::Date,
    /// N* of the sequential confidence sequence (default 5000).
    pub seq_tuning: f64,
    /// Percentile of pooled won amounts at which revenue is capped (default 0.99).
    pub cap_percentile: f64,
    /// Relative minimum detectable effect for the sample-size guidance (default 0.10).
    pub mde: f64,
    /// Power for the sample-size guidance (default 0.8).
    pub power: f64,
    /// Closed units each arm needs before a verdict is given (default 100).
    pub min_closed: u64,
    /// Two-sided significance level (default 0.05).
    pub alpha: f64,
}

impl ReportOptions {
    /// The defaults, as of `as_of`.
    pub fn new(as_of: time::Date) -> ReportOptions {
        ReportOptions {
            metric: Metric::Closed,
            window_days: 90,
            as_of,
            seq_tuning: 5000.0,
            cap_percentile: 0.99,
            mde: 0.10,
            power: 0.8,
            min_closed: 100,
            alpha: 0.05,
        }
    }

    /// The defaults, as of today (UTC).
    pub fn today() -> ReportOptions {
        ReportOptions::new(time::OffsetDateTime::now_utc().date())
    }

    /// The exclusive upper bound of the report's data: midnight UTC after `as_of`.
    pub fn cutoff(&self) -> Timestamp {
        Timestamp::start_of(self.as_of.next_day().unwrap_or(self.as_of))
    }
}

/// Parses a `YYYY-MM-DD` date (for `--as-of`).
pub fn parse_date(s: &str) -> Option<time::Date> {
    time::Date::parse(
        s.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// One arm as the card library defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantDef {
    pub id: String,
    pub weight: f64,
    /// The control arm (`show: false`).
    pub control: bool,
}

/// An experiment as the card library defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentDef {
    pub key: String,
    pub card_id: String,
    pub unit: Unit,
    pub variants: Vec<VariantDef>,
}

impl ExperimentDef {
    /// Every experiment of a library, in card order (the first card wins a shared key).
    pub fn from_library(lib: &Library) -> Vec<ExperimentDef> {
        let mut out: Vec<ExperimentDef> = Vec::new();
        for card in lib.cards() {
            let Some(exp) = &card.experiment else {
                continue;
            };
            if out.iter().any(|e| e.key == exp.key) {
                continue;
            }
            out.push(ExperimentDef {
                key: exp.key.clone(),
                card_id: card.id.clone(),
                unit: exp.unit,
                variants: exp
                    .variants
                    .iter()
                    .map(|v| VariantDef {
                        id: v.id.clone(),
                        weight: v.weight,
                        control: !v.show,
                    })
                    .collect(),
            });
        }
        out
    }

    /// The arm every other is compared with: the control arm, else the first variant.
    pub fn baseline(&self) -> usize {
        self.variants.iter().position(|v| v.control).unwrap_or(0)
    }
}

/// One experiment's report (docs/statistics.md#json-fields; the fixed names first, extras
/// after).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub experiment_key: String,
    pub card_id: String,
    pub unit: Unit,
    pub metric: Metric,
    pub window_days: u32,
    /// `YYYY-MM-DD`.
    pub as_of: String,
    pub srm_p: Option<f64>,
    pub multiple_exposure_units: u64,
    pub variants: Vec<VariantReport>,
    /// `srm_p` below 0.001: the split does not match the weights; do not trust the results.
    pub srm_warning: bool,
    /// The variant every other is compared with.
    pub baseline: String,
    /// N* of the sequential interval.
    pub seq_tuning: f64,
    /// The revenue cap (pooled percentile of won amounts), in `currency`.
    pub revenue_cap: Option<f64>,
    pub currency: Option<String>,
    /// Units whose variant the library no longer defines (left out).
    pub unknown_variant_units: u64,
    /// Deals whose outcome closed before their first exposure (not counted as closed).
    pub closed_before_exposure: u64,
    pub warnings: Vec<String>,
}

/// One variant's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantReport {
    pub id: String,
    pub weight: f64,
    pub control: bool,
    /// Exposed units (multiple-exposure units left out).
    pub units: u64,
    /// Units with a won or lost outcome in the window (deals, for `unit: rep`).
    pub closed: u64,
    /// Won units in the metric's denominator.
    pub won: u64,
    pub win_rate: Option<f64>,
    pub win_rate_ci: Option<[f64; 2]>,
    pub revenue_per_unit: Option<f64>,
    pub vs_control: Option<VsControl>,
    /// Units whose first exposure is at least the window old.
    pub matured: u64,
    /// The win rate's denominator: `closed`, or `matured` with `--metric matured`.
    pub n: u64,
    /// Exposure decisions logged for these units.
    pub exposures: u64,
    /// Exposed deals (equal to `units` for `unit: deal`).
    pub deals: u64,
    /// Standard deviation of revenue per unit (after capping).
    pub revenue_sd: Option<f64>,
    /// Probability that this variant has the highest win rate (3 or more variants).
    pub prob_best: Option<f64>,
}

/// A treatment arm versus the baseline (relative lift unless named `abs_`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VsControl {
    pub abs_diff: Option<f64>,
    pub abs_ci: Option<[f64; 2]>,
    pub rel_lift: Option<f64>,
    pub rel_ci: Option<[f64; 2]>,
    /// Two-sided Welch p-value of the relative lift.
    pub p_value: Option<f64>,
    /// Holm-adjusted over the treatment arms.
    pub p_adjusted: Option<f64>,
    pub chance_to_win: Option<f64>,
    /// `[expected loss of keeping control, expected loss of shipping the variant]`.
    pub risk: Option<[f64; 2]>,
    /// Always-valid interval of the relative lift.
    pub seq_ci: Option<[f64; 2]>,
    pub enough_data: bool,
    /// More units per arm (in the metric's denominator) needed to detect a 10 % relative
    /// lift with 80 % power; null once there is enough data.
    pub needed_units_per_arm: Option<u64>,
    pub abs_p_value: Option<f64>,
    /// The relative CI widened for the Holm adjustment (several treatment arms).
    pub rel_ci_adjusted: Option<[f64; 2]>,
    /// Bayesian credible interval of the relative lift.
    pub credible_ci: Option<[f64; 2]>,
    pub seq_p_value: Option<f64>,
    pub verdict: Verdict,
    pub revenue_abs_diff: Option<f64>,
    pub revenue_rel_lift: Option<f64>,
    pub revenue_rel_ci: Option<[f64; 2]>,
    pub revenue_p_value: Option<f64>,
}

/// What a treatment arm's comparison with the baseline supports (`verdict` in JSON and CSV,
/// snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Fewer closed units than the gate asks for in one of the two arms.
    NotEnoughData,
    /// The arms' units do not match the weights: no figure can be trusted.
    SrmWarning,
    /// The Holm-adjusted p-value is not below alpha.
    NoClearDifference,
    /// Significant at a fixed horizon only: valid if this is the planned readout.
    LeaningBetter,
    /// Significant at a fixed horizon only: valid if this is the planned readout.
    LeaningWorse,
    /// The always-valid interval excludes 0 as well: valid however often the report is read.
    Better,
    /// The always-valid interval excludes 0 as well: valid however often the report is read.
    Worse,
}

impl std::fmt::Display for Verdict {
    /// The serialized name, so that CSV and JSON spell it alike.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::names::name_of(self))
    }
}

/// Reads the experiment's exposures and outcomes from the store and assembles its report.
pub async fn build(
    store: &Store,
    def: &ExperimentDef,
    opts: &ReportOptions,
) -> Result<Report, StoreError> {
    let groups = store.exposure_groups(&def.key, opts.cutoff()).await?;
    let outcomes = store.latest_outcomes(&def.key).await?;
    Ok(assemble(def, &groups, &outcomes, opts))
}

/// Rows for tests of what reads a report.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{VariantReport, Verdict, VsControl};

    /// A variant with no data; the control when it has no comparison.
    pub(crate) fn variant(id: &str, vs: Option<VsControl>) -> VariantReport {
        VariantReport {
            id: id.into(),
            weight: 1.0,
            control: vs.is_none(),
            units: 0,
            closed: 0,
            won: 0,
            win_rate: None,
            win_rate_ci: None,
            revenue_per_unit: None,
            vs_control: vs,
            matured: 0,
            n: 0,
            exposures: 0,
            deals: 0,
            revenue_sd: None,
            prob_best: None,
        }
    }

    /// A comparison past the gate with no figures yet.
    pub(crate) fn comparison() -> VsControl {
        VsControl {
            abs_diff: None,
            abs_ci: None,
            rel_lift: None,
            rel_ci: None,
            p_value: None,
            p_adjusted: None,
            chance_to_win: None,
            risk: None,
            seq_ci: None,
            enough_data: true,
            needed_units_per_arm: None,
            abs_p_value: None,
            rel_ci_adjusted: None,
            credible_ci: None,
            seq_p_value: None,
            verdict: Verdict::NoClearDifference,
            revenue_abs_diff: None,
            revenue_rel_lift: None,
            revenue_rel_ci: None,
            revenue_p_value: None,
        }
    }
}
