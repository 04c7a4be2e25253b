//! The statistics of the experiment report: pure functions over per-arm sufficient
//! statistics, following GrowthBook's `gbstats` conventions (docs/statistics.md has the
//! formulas and the correspondence) so results can be checked against it.
//!
//! Every function returns `None` (never NaN) when its figure cannot be computed: an empty
//! arm, a zero variance, a zero baseline, too few units for a degree of freedom.
//! Distributions come from `statrs`.

use statrs::distribution::{Beta, ChiSquared, Continuous, ContinuousCDF, Normal, StudentsT};

/// `z` of the 97.5th percentile of the standard normal (two-sided 95 %).
pub const Z_975: f64 = 1.959_963_984_540_054;

fn std_normal() -> Normal {
    // Mean 0, sd 1 is always a valid normal distribution.
    Normal::standard()
}

/// Standard normal CDF Φ.
fn norm_cdf(x: f64) -> f64 {
    std_normal().cdf(x)
}

/// Standard normal density φ.
fn norm_pdf(x: f64) -> f64 {
    std_normal().pdf(x)
}

/// Standard normal quantile Φ⁻¹(p), for `0 < p < 1`.
pub fn norm_quantile(p: f64) -> Option<f64> {
    (p > 0.0 && p < 1.0).then(|| std_normal().inverse_cdf(p))
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// One arm's summary for a metric: `n` units, the metric's mean, and the unit-level
/// variance (so the variance of the arm's mean is `var / n`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub n: f64,
    pub mean: f64,
    pub var: f64,
}

impl Moments {
    /// A proportion (`ProportionStatistic`): `successes / n`, variance `p(1 − p)`.
    pub fn proportion(n: u64, successes: u64) -> Option<Moments> {
        if n == 0 || successes > n {
            return None;
        }
        let n = n as f64;
        let mean = successes as f64 / n;
        Some(Moments {
            n,
            mean,
            var: mean * (1.0 - mean),
        })
    }

    /// A sample mean (`SampleMeanStatistic`) from `n`, `Σy`, `Σy²`: variance with `n − 1`.
    pub fn sample_mean(n: u64, sum: f64, sum_sq: f64) -> Option<Moments> {
        if n < 2 {
            return None;
        }
        let nf = n as f64;
        let mean = sum / nf;
        let var = ((sum_sq - sum * sum / nf) / (nf - 1.0)).max(0.0);
        Some(Moments {
            n: nf,
            mean: finite(mean)?,
            var: finite(var)?,
        })
    }

    /// A ratio of per-unit sums `ΣM / ΣD` (`RatioStatistic`) over `n` units (clusters, e.g.
    /// reps), with the delta-method unit variance
    /// `σ²_M/μ_D² + σ²_D·μ_M²/μ_D⁴ − 2·cov_MD·μ_M/μ_D³`.
    pub fn ratio(n: u64, sums: RatioSums) -> Option<Moments> {
        if n < 2 || sums.d <= 0.0 {
            return None;
        }
        let nf = n as f64;
        let mu_m = sums.m / nf;
        let mu_d = sums.d / nf;
        let var_m = (sums.m2 - sums.m * sums.m / nf) / (nf - 1.0);
        let var_d = (sums.d2 - sums.d * sums.d / nf) / (nf - 1.0);
        let cov = (sums.md - sums.m * sums.d / nf) / (nf - 1.0);
        let var = var_m / mu_d.powi(2) + var_d * mu_m.powi(2) / mu_d.powi(4)
            - 2.0 * cov * mu_m / mu_d.powi(3);
        Some(Moments {
            n: nf,
            mean: finite(sums.m / sums.d)?,
            var: finite(var.max(0.0))?,
        })
    }

    /// Variance of the arm's mean.
    pub fn var_of_mean(&self) -> f64 {
        self.var / self.n
    }
}

/// Per-unit sums for a ratio metric: `ΣM`, `ΣM²`, `ΣD`, `ΣD²`, `ΣMD`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RatioSums {
    pub m: f64,
    pub m2: f64,
    pub d: f64,
    pub d2: f64,
    pub md: f64,
}

impl RatioSums {
    pub fn add(&mut self, m: f64, d: f64) {
        self.m += m;
        self.m2 += m * m;
        self.d += d;
        self.d2 += d * d;
        self.md += m * d;
    }
}

/// Absolute (`μ_B − μ_A`) or relative (`(μ_B − μ_A)/|μ_A|`) effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Absolute,
    Relative,
}

/// An effect of B over A with its standard error and Welch–Satterthwaite degrees of freedom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effect {
    pub delta: f64,
    pub se: f64,
    pub dof: f64,
}

/// The effect of `b` over `a` (`gbstats` `frequentist_diff` / `frequentist_variance`, the
/// relative one by the delta method). `None` when a variance is zero, the baseline mean is
/// zero (relative), or an arm has fewer than 2 units.
pub fn effect(a: &Moments, b: &Moments, scale: Scale) -> Option<Effect> {
    if a.n < 2.0 || b.n < 2.0 || a.var <= 0.0 || b.var <= 0.0 {
        return None;
    }
    let (va, vb) = (a.var_of_mean(), b.var_of_mean());
    let (delta, var) = match scale {
        Scale::Absolute => (b.mean - a.mean, va + vb),
        Scale::Relative => {
            if a.mean == 0.0 {
                return None;
            }
            (
                (b.mean - a.mean) / a.mean.abs(),
                vb / a.mean.powi(2) + va * b.mean.powi(2) / a.mean.powi(4),
            )
        }
    };
    let dof = (vb + va).powi(2)
        / (b.var.powi(2) / (b.n.powi(2) * (b.n - 1.0))
            + a.var.powi(2) / (a.n.powi(2) * (a.n - 1.0)));
    if var <= 0.0 || dof.is_nan() || dof <= 0.0 {
        return None;
    }
    Some(Effect {
        delta: finite(delta)?,
        se: finite(var.sqrt())?,
        dof,
    })
}

fn students_t(dof: f64) -> Option<StudentsT> {
    StudentsT::new(0.0, 1.0, dof).ok()
}

/// A frequentist result: the effect, its CI and p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestResult {
    pub delta: f64,
    pub se: f64,
    pub ci: (f64, f64),
    pub p: f64,
}

/// Two-sided Welch t-test of `delta = 0` at level `alpha`:
/// `p = 2(1 − F_t(|t|; ν))`, `CI = Δ ± F_t⁻¹(1 − α/2; ν)·se`.
pub fn welch_two_sided(e: &Effect, alpha: f64) -> Option<TestResult> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return None;
    }
    let t = students_t(e.dof)?;
    let stat = e.delta / e.se;
    let p = (2.0 * t.sf(stat.abs())).min(1.0);
    let q = t.inverse_cdf(1.0 - alpha / 2.0);
    Some(TestResult {
        delta: e.delta,
        se: e.se,
        ci: (finite(e.delta - q * e.se)?, finite(e.delta + q * e.se)?),
        p: finite(p)?,
    })
}

/// One-sided Welch t-test (H₁: effect > 0): `p = 1 − F_t(t; ν)`; the CI is
/// `(Δ − F_t⁻¹(1 − α; ν)·se, +∞)`, returned as its lower bound.
pub fn welch_one_sided_greater(e: &Effect, alpha: f64) -> Option<(f64, f64)> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return None;
    }
    let t = students_t(e.dof)?;
    let p = t.sf(e.delta / e.se);
    let lower = e.delta - t.inverse_cdf(1.0 - alpha) * e.se;
    Some((finite(lower)?, finite(p)?))
}

/// Wilson score interval for `successes / n` with normal quantile `z`.
pub fn wilson(successes: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 || successes > n {
        return None;
    }
    let nf = n as f64;
    let p = successes as f64 / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let center = (p + z2 / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    Some(((center - half).max(0.0), (center + half).min(1.0)))
}

/// Wald interval `p̂ ± z·sqrt(p̂(1 − p̂)/n)` (for comparison; Wilson is used for reports).
pub fn wald(successes: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    let m = Moments::proportion(n, successes)?;
    let half = z * m.var_of_mean().sqrt();
    Some((m.mean - half, m.mean + half))
}

/// Clopper–Pearson exact interval at level `1 − alpha`.
pub fn clopper_pearson(successes: u64, n: u64, alpha: f64) -> Option<(f64, f64)> {
    if n == 0 || successes > n || !(alpha > 0.0 && alpha < 1.0) {
        return None;
    }
    let (k, n) = (successes as f64, n as f64);
    let lower = if successes == 0 {
        0.0
    } else {
        Beta::new(k, n - k + 1.0).ok()?.inverse_cdf(alpha / 2.0)
    };
    let upper = if k == n {
        1.0
    } else {
        Beta::new(k + 1.0, n - k)
            .ok()?
            .inverse_cdf(1.0 - alpha / 2.0)
    };
    Some((lower, upper))
}

/// Holm–Bonferroni adjusted p-values, in input order: sort ascending,
/// `p̃₍ᵢ₎ = min(p₍ᵢ₎·(m − i), 1)`, then the running maximum.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running = 0.0_f64;
    for (i, &idx) in order.iter().enumerate() {
        let adjusted = (p[idx] * (m - i) as f64).min(1.0);
        running = running.max(adjusted);
        out[idx] = running;
    }
    out
}

/// GrowthBook's `adjustedCI` for a multiple-testing adjusted p-value (ad hoc):
/// `width = z_{1−α/2}·|lift / z_{1−p̃/2}|`, CI = lift ± width.
pub fn adjusted_ci(p_adjusted: f64, lift: f64, alpha: f64) -> Option<(f64, f64)> {
    let z = norm_quantile(1.0 - alpha / 2.0)?;
    let z_p = norm_quantile(1.0 - p_adjusted / 2.0)?;
    if z_p == 0.0 {
        return None;
    }
    let width = finite(z * (lift / z_p).abs())?;
    Some((lift - width, lift + width))
}

/// The Bayesian view of an effect: Gaussian posterior of the (relative) lift under a flat
/// prior (`gbstats` `EffectBayesianABTest`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bayes {
    /// Posterior mean of the lift.
    pub mean: f64,
    /// Posterior standard deviation.
    pub sd: f64,
    /// Credible interval at the chosen level.
    pub ci: (f64, f64),
    /// `P(lift > 0)`.
    pub chance_to_win: f64,
    /// `[expected loss of keeping control, expected loss of shipping the variant]`.
    pub risk: [f64; 2],
}

impl Default for Bayes {
    /// `gbstats`' output when nothing can be computed (e.g. empty arms): a coin flip.
    fn default() -> Self {
        Bayes {
            mean: 0.0,
            sd: 0.0,
            ci: (0.0, 0.0),
            chance_to_win: 0.5,
            risk: [0.0, 0.0],
        }
    }
}

/// Flat-prior Gaussian posterior `N(Δ, se²)`: chance to win `Φ(m/s)`, credible interval
/// `m ± Φ⁻¹(1 − α/2)·s`, risk `[s·φ(m/s) + m·Φ(m/s), s·φ(m/s) − m·Φ(−m/s)]`
/// (short-circuited to `[max(m, 0), max(−m, 0)]` beyond |m/s| > 37, as gbstats does).
pub fn bayes_flat(e: &Effect, alpha: f64) -> Option<Bayes> {
    let (m, s) = (e.delta, e.se);
    if s <= 0.0 {
        return None;
    }
    let z = norm_quantile(1.0 - alpha / 2.0)?;
    let r = m / s;
    let risk = if r.abs() > 37.0 {
        [m.max(0.0), (-m).max(0.0)]
    } else {
        let density = s * norm_pdf(r);
        [density + m * norm_cdf(r), density - m * norm_cdf(-r)]
    };
    Some(Bayes {
        mean: m,
        sd: s,
        ci: (m - z * s, m + z * s),
        chance_to_win: norm_cdf(r),
        risk,
    })
}

/// Probability that each arm has the highest win rate, each arm's rate drawn from
/// `Beta(1 + won, 1 + lost)` (PostHog's multi-variant view), by numerical integration of
/// `P(i best) = ∫ f_i(x) Π_{j≠i} F_j(x) dx` (deterministic). `arms` holds `(won, lost)`.
pub fn prob_best(arms: &[(u64, u64)]) -> Option<Vec<f64>> {
    if arms.len() < 2 {
        return None;
    }
    let dists: Vec<Beta> = arms
        .iter()
        .map(|&(won, lost)| Beta::new(1.0 + won as f64, 1.0 + lost as f64).ok())
        .collect::<Option<_>>()?;
    // Integrate where the densities live: ±12 sd around every arm's mean.
    let (mut lo, mut hi) = (1.0_f64, 0.0_f64);
    for &(won, lost) in arms {
        let (a, b) = (1.0 + won as f64, 1.0 + lost as f64);
        let mean = a / (a + b);
        let sd = (a * b / ((a + b).powi(2) * (a + b + 1.0))).sqrt();
        lo = lo.min(mean - 12.0 * sd);
        hi = hi.max(mean + 12.0 * sd);
    }
    let (lo, hi) = (lo.max(0.0), hi.min(1.0));
    const STEPS: usize = 4000; // even, for Simpson's rule
    let h = (hi - lo) / STEPS as f64;
    let mut out = vec![0.0; arms.len()];
    let mut pdf = vec![0.0; arms.len()];
    let mut cdf = vec![0.0; arms.len()];
    for step in 0..=STEPS {
        let x = lo + h * step as f64;
        for (j, d) in dists.iter().enumerate() {
            let p = d.pdf(x);
            pdf[j] = if p.is_finite() { p } else { 0.0 };
            cdf[j] = d.cdf(x);
        }
        let weight = if step == 0 || step == STEPS {
            1.0
        } else if step % 2 == 1 {
            4.0
        } else {
            2.0
        };
        for i in 0..arms.len() {
            let others: f64 = (0..arms.len())
                .filter(|&j| j != i)
                .map(|j| cdf[j])
                .product();
            out[i] += weight * pdf[i] * others;
        }
    }
    let total: f64 = out.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return None;
    }
    Some(out.into_iter().map(|p| p / total).collect())
}

/// An always-valid (sequential) interval and p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sequential {
    pub ci: (f64, f64),
    pub p: f64,
}

/// Asymptotic confidence sequence (Waudby-Smith et al.; `gbstats`
/// `SequentialTwoSidedTTest`) for an effect estimated from `n` units in total (both arms),
/// tuned for `n_star` units: `ρ = sqrt((−2 ln α + ln(−2 ln α + 1))/N*)`,
/// half-width `s·sqrt(2(Nρ² + 1)/(N²ρ²)·ln(sqrt(Nρ² + 1)/α))` with `s = se·sqrt(N)`;
/// `p = min(1, 1/E)`, `E = exp(ρ²·st²/(2(Nρ² + 1)))/sqrt(Nρ² + 1)`, `st² = Δ²·N/se²`.
pub fn sequential(e: &Effect, n: f64, n_star: f64, alpha: f64) -> Option<Sequential> {
    if !(n > 0.0 && n_star > 0.0 && alpha > 0.0 && alpha < 1.0 && e.se > 0.0) {
        return None;
    }
    let l = -2.0 * alpha.ln();
    let rho2 = (l + (l + 1.0).ln()) / n_star;
    let s = e.se * n.sqrt();
    let k = n * rho2 + 1.0;
    let half = s * (2.0 * k / (n * n * rho2) * (k.sqrt() / alpha).ln()).sqrt();
    let st2 = e.delta.powi(2) * n / e.se.powi(2);
    // 1/E computed in logs so a huge E gives a tiny p instead of 0/inf.
    let log_e = rho2 * st2 / (2.0 * k) - 0.5 * k.ln();
    let p = (-log_e).exp().min(1.0);
    Some(Sequential {
        ci: (finite(e.delta - half)?, finite(e.delta + half)?),
        p: finite(p)?,
    })
}

/// Sample-ratio-mismatch p-value (`gbstats` `check_srm`): χ² of the observed units per arm
/// against the weights, `k − 1` degrees of freedom. Arms with zero units but a positive
/// weight are included. `None` with fewer than 2 weighted arms or no units.
pub fn srm_p(observed: &[u64], weights: &[f64]) -> Option<f64> {
    if observed.len() != weights.len() {
        return None;
    }
    let total_w: f64 = weights.iter().filter(|w| **w > 0.0).sum();
    let total_n: u64 = observed
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w > 0.0)
        .map(|(o, _)| *o)
        .sum();
    let k = weights.iter().filter(|w| **w > 0.0).count();
    if k < 2 || total_n == 0 || total_w <= 0.0 {
        return None;
    }
    let chi2: f64 = observed
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w > 0.0)
        .map(|(&o, &w)| {
            let e = w / total_w * total_n as f64;
            (o as f64 - e).powi(2) / e
        })
        .sum();
    let dist = ChiSquared::new((k - 1) as f64).ok()?;
    finite(dist.sf(chi2))
}

/// Units per arm to detect `p1 → p2` with a two-sided test at level `alpha` and the given
/// power: `(z_{1−α/2} + z_{power})²·(p₁(1 − p₁) + p₂(1 − p₂))/(p₂ − p₁)²` (not rounded).
pub fn sample_size_two_proportions(p1: f64, p2: f64, alpha: f64, power: f64) -> Option<f64> {
    if !((0.0..=1.0).contains(&p1) && (0.0..=1.0).contains(&p2)) || p1 == p2 {
        return None;
    }
    let z = norm_quantile(1.0 - alpha / 2.0)? + norm_quantile(power)?;
    let var = p1 * (1.0 - p1) + p2 * (1.0 - p2);
    if var <= 0.0 {
        return None;
    }
    finite(z * z * var / (p2 - p1).powi(2))
}

/// Two-sided power to detect `p1 → p2` with `n` units per arm:
/// `1 − Φ(z_{1−α/2} − Δ/σ_Δ) + Φ(z_{α/2} − Δ/σ_Δ)`.
pub fn power_two_proportions(p1: f64, p2: f64, n: f64, alpha: f64) -> Option<f64> {
    if n <= 0.0 {
        return None;
    }
    let sd = ((p1 * (1.0 - p1) + p2 * (1.0 - p2)) / n).sqrt();
    if sd <= 0.0 {
        return None;
    }
    let z = norm_quantile(1.0 - alpha / 2.0)?;
    let shift = (p2 - p1) / sd;
    finite(1.0 - norm_cdf(z - shift) + norm_cdf(-z - shift))
}

/// Two-proportion z statistic (B − A), unpooled or pooled variance.
pub fn z_two_proportions(a: (u64, u64), b: (u64, u64), pooled: bool) -> Option<f64> {
    let (pa, pb) = (
        Moments::proportion(a.1, a.0)?,
        Moments::proportion(b.1, b.0)?,
    );
    let var = if pooled {
        let p = (a.0 + b.0) as f64 / (a.1 + b.1) as f64;
        p * (1.0 - p) * (1.0 / pa.n + 1.0 / pb.n)
    } else {
        pa.var_of_mean() + pb.var_of_mean()
    };
    if var <= 0.0 {
        return None;
    }
    finite((pb.mean - pa.mean) / var.sqrt())
}

/// Two-sided normal p-value of a z statistic.
pub fn z_p_value(z: f64) -> f64 {
    2.0 * norm_cdf(-z.abs())
}

/// Mixture SPRT with a normal mixing distribution `N(θ₀, τ²)` (the `mixtureSPRT` form):
/// `Λ = sqrt(V/(V + τ²))·exp(τ²(θ̂ − θ₀)²/(2V(V + τ²)))` where `V` is the variance of the
/// estimate `θ̂`; the always-valid p-value is `min(1, 1/Λ)`. Returns `(Λ, p)`.
pub fn msprt_normal(estimate: f64, var: f64, theta0: f64, tau: f64) -> Option<(f64, f64)> {
    if var <= 0.0 || tau <= 0.0 {
        return None;
    }
    let t2 = tau * tau;
    let lambda = (var / (var + t2)).sqrt()
        * (t2 * (estimate - theta0).powi(2) / (2.0 * var * (var + t2))).exp();
    let lambda = finite(lambda)?;
    Some((lambda, (1.0 / lambda).min(1.0)))
}

#[cfg(test)]
mod tests;
