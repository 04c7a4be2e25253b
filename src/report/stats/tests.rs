//! Every test vector of docs/statistics.md#test-vectors (and the statrs CDF vectors it
//! quotes), to the precision given there: a value given with `d` decimals must agree to
//! half a unit of the last decimal.

use super::*;

#[track_caller]
fn close(actual: f64, expected: f64, decimals: i32) {
    let tol = 0.5 * 10f64.powi(-decimals) + 1e-12;
    assert!(
        (actual - expected).abs() <= tol,
        "{actual} differs from {expected} by more than {tol}"
    );
}

#[track_caller]
fn close_pair(actual: (f64, f64), expected: (f64, f64), decimals: i32) {
    close(actual.0, expected.0, decimals);
    close(actual.1, expected.1, decimals);
}

fn means_a() -> Moments {
    Moments::sample_mean(3407, 1396.87, 52377.9767).unwrap()
}

fn means_b() -> Moments {
    Moments::sample_mean(3461, 2422.7, 134698.29).unwrap()
}

#[test]
fn srm_vector() {
    // Test vectors, SRM: check_srm([1000, 1200], [0.5, 0.5]) = 0.000020079 (χ² = 18.1818).
    close(srm_p(&[1000, 1200], &[0.5, 0.5]).unwrap(), 0.000020079, 9);
    // A perfectly balanced split is not a mismatch; unequal weights are honoured.
    close(srm_p(&[500, 500], &[1.0, 1.0]).unwrap(), 1.0, 9);
    close(srm_p(&[500, 1000], &[1.0, 2.0]).unwrap(), 1.0, 9);
    // An empty arm with a positive weight still counts (PR #4439).
    assert!(srm_p(&[300, 300, 0], &[1.0, 1.0, 1.0]).unwrap() < 1e-6);
    assert_eq!(srm_p(&[0, 0], &[1.0, 1.0]), None);
    assert_eq!(srm_p(&[10], &[1.0]), None);
}

#[test]
fn frequentist_means_vectors() {
    // Test vectors, Welch on sample means: means 0.41 / 0.70, variances 15.21 / 38.44,
    // Welch ν ≈ 5841.7.
    let (a, b) = (means_a(), means_b());
    close(a.mean, 0.41, 2);
    close(b.mean, 0.70, 2);
    close(a.var, 15.21, 2);
    close(b.var, 38.44, 2);
    let rel = effect(&a, &b, Scale::Relative).unwrap();
    close(rel.dof, 5841.7, 1);
    let r = welch_two_sided(&rel, 0.05).unwrap();
    close(r.delta, 0.70732, 5);
    close(r.se, 0.37879, 5);
    close_pair(r.ci, (-0.03526, 1.44989), 5);
    close(r.p, 0.06191, 5);

    let abs = effect(&a, &b, Scale::Absolute).unwrap();
    let r = welch_two_sided(&abs, 0.05).unwrap();
    close(r.delta, 0.29, 2);
    close(r.se, 0.12478, 5);
    close_pair(r.ci, (0.04538, 0.53462), 5);
    close(r.p, 0.02016, 5);
}

#[test]
fn frequentist_proportions_vector() {
    // Test vectors, Welch on proportions: A = 14/28, B = 16/30, relative.
    let a = Moments::proportion(28, 14).unwrap();
    let b = Moments::proportion(30, 16).unwrap();
    let r = welch_two_sided(&effect(&a, &b, Scale::Relative).unwrap(), 0.05).unwrap();
    close(r.delta, 0.06667, 5);
    close(r.se, 0.27170, 5);
    close_pair(r.ci, (-0.47767, 0.61101), 5);
    close(r.p, 0.80707, 5);
}

#[test]
fn frequentist_one_sided_vector() {
    // Test vectors, one-sided: A n = 3000 with the same sums, B as for sample means.
    let a = Moments::sample_mean(3000, 1396.87, 52377.9767).unwrap();
    let e = effect(&a, &means_b(), Scale::Relative).unwrap();
    close(e.delta, 0.503361, 6);
    close(e.se, 0.333412, 6);
    let (lower, p) = welch_one_sided_greater(&e, 0.05).unwrap();
    close(lower, -0.045137, 6);
    close(p, 0.065583, 6);
}

#[test]
fn effects_that_cannot_be_computed_are_none() {
    let some = Moments::proportion(100, 20).unwrap();
    let zero_rate = Moments::proportion(100, 0).unwrap();
    // A zero baseline has no relative lift; a zero variance has no test.
    assert_eq!(effect(&zero_rate, &some, Scale::Relative), None);
    assert_eq!(effect(&some, &zero_rate, Scale::Absolute), None);
    assert_eq!(Moments::proportion(0, 0), None);
    assert_eq!(Moments::sample_mean(1, 5.0, 25.0), None);
    assert_eq!(wilson(0, 0, Z_975), None);
}

#[test]
fn sequential_vectors() {
    // Test vectors, sequential: proportions A = 1396/3000, B = 2422/3461, N* = 5000,
    // α = 0.05 (relative).
    let a = Moments::proportion(3000, 1396).unwrap();
    let b = Moments::proportion(3461, 2422).unwrap();
    let e = effect(&a, &b, Scale::Relative).unwrap();
    close(e.delta, 0.50386, 5);
    close(e.se, 0.03386, 5);
    let s = sequential(&e, 6461.0, 5000.0, 0.05).unwrap();
    close_pair(s.ci, (0.40098, 0.60675), 5);
    close(s.p, 0.0, 6);
    assert!((s.p / 5.2e-44 - 1.0).abs() < 0.05, "p = {}", s.p);

    // Test vectors, sequential: the half-width in units of se at N = N* (and at 1000 and 20000).
    let unit = Effect {
        delta: 0.0,
        se: 1.0,
        dof: 1e6,
    };
    for (n, multiplier) in [(5000.0, 3.0352), (1000.0, 3.3639), (20000.0, 3.1271)] {
        let s = sequential(&unit, n, 5000.0, 0.05).unwrap();
        close(s.ci.1, multiplier, 4);
        close(s.p, 1.0, 9);
    }
    // Always wider than the fixed-horizon interval.
    let fixed = welch_two_sided(&e, 0.05).unwrap();
    assert!(s_width(sequential(&e, 6461.0, 5000.0, 0.05).unwrap().ci) > s_width(fixed.ci));
}

fn s_width(ci: (f64, f64)) -> f64 {
    ci.1 - ci.0
}

#[test]
fn bayesian_vectors() {
    // Test vectors, Bayesian: A = 49/100, B = 51/100.
    let a = Moments::proportion(100, 49).unwrap();
    let b = Moments::proportion(100, 51).unwrap();
    let r = bayes_flat(&effect(&a, &b, Scale::Relative).unwrap(), 0.05).unwrap();
    close(r.mean, 0.04082, 5);
    close(r.sd, 0.14725, 5);
    close_pair(r.ci, (-0.24779, 0.32943), 5);
    close(r.chance_to_win, 0.60918, 5);
    close(r.risk[0], 0.0814, 4);
    close(r.risk[1], 0.04058, 5);

    // Test vectors, Bayesian: sample means, flat prior.
    let a = Moments::sample_mean(10, 100.0, 1002.25).unwrap();
    let b = Moments::sample_mean(10, 105.0, 1111.5).unwrap();
    let r = bayes_flat(&effect(&a, &b, Scale::Relative).unwrap(), 0.05).unwrap();
    close(r.mean, 0.05, 2);
    close(r.sd, 0.03572, 5);
    close_pair(r.ci, (-0.02, 0.12), 2);
    close(r.chance_to_win, 0.91923, 5);
    close(r.risk[0], 0.05131, 5);
    close(r.risk[1], 0.00131, 5);

    // Bayesian: empty arms have no posterior; gbstats' default is a coin flip.
    assert_eq!(Moments::proportion(0, 0), None);
    let d = Bayes::default();
    assert_eq!((d.chance_to_win, d.mean), (0.5, 0.0));

    // Far beyond 37 sd the risk is the posterior mean itself.
    let sure = bayes_flat(
        &Effect {
            delta: 0.5,
            se: 0.01,
            dof: 1e6,
        },
        0.05,
    )
    .unwrap();
    assert_eq!(sure.risk, [0.5, 0.0]);
    assert_eq!(sure.chance_to_win, 1.0);
}

#[test]
fn holm_and_adjusted_ci_vectors() {
    // Test vectors, Holm and the adjusted CI.
    let adjusted = holm(&[0.01, 0.04, 0.03, 0.005, 0.55, 0.6]);
    let expected = [0.05, 0.12, 0.12, 0.03, 1.0, 1.0];
    for (a, e) in adjusted.iter().zip(expected) {
        close(*a, e, 9);
    }
    close_pair(adjusted_ci(0.049999999, 0.1, 0.05).unwrap(), (0.0, 0.2), 8);
    close_pair(adjusted_ci(0.0099999999, 0.1, 0.01).unwrap(), (0.0, 0.2), 8);
    // One comparison is not adjusted.
    assert_eq!(holm(&[0.2]), vec![0.2]);
}

#[test]
fn proportion_interval_vectors() {
    // Test vectors, proportion intervals: 7/50 at 95 %.
    close_pair(wilson(7, 50, Z_975).unwrap(), (0.069508, 0.261862), 6);
    close_pair(wald(7, 50, Z_975).unwrap(), (0.043822, 0.236178), 6);
    close_pair(
        clopper_pearson(7, 50, 0.05).unwrap(),
        (0.05819170033997342, 0.26739600249700846),
        9,
    );
    close(norm_quantile(0.975).unwrap(), 1.9599639845400532, 12);
    close(Z_975, 1.9599639845400532, 15);
}

#[test]
fn sample_size_and_power_vectors() {
    // Test vectors, sample size and power: 0.10 → 0.12, α = 0.05 two-sided, power 0.8
    // → 3838.10 → 3839 per arm.
    let n = sample_size_two_proportions(0.10, 0.12, 0.05, 0.8).unwrap();
    close(n, 3838.10, 2);
    assert_eq!(n.ceil(), 3839.0);
    close(
        power_two_proportions(0.10, 0.12, 3839.0, 0.05).unwrap(),
        0.80009,
        5,
    );
    assert_eq!(sample_size_two_proportions(0.1, 0.1, 0.05, 0.8), None);
}

#[test]
fn msprt_and_fixed_horizon_z_vectors() {
    // Test vectors, fixed-horizon z and mixture SPRT: n = 1000 per arm, 100 vs 130 wins,
    // θ₀ = 0; V = 0.2031 per unit.
    let (pa, pb) = (0.100, 0.130);
    let v_unit = pa * (1.0 - pa) + pb * (1.0 - pb);
    close(v_unit, 0.2031, 4);
    for (tau, lambda, p) in [
        (0.01, 1.70032, 0.58812),
        (0.05, 2.12751, 0.47003),
        (0.1, 1.23761, 0.80801),
    ] {
        let (l, pv) = msprt_normal(pb - pa, v_unit / 1000.0, 0.0, tau).unwrap();
        close(l, lambda, 5);
        close(pv, p, 5);
    }
    let unpooled = z_two_proportions((100, 1000), (130, 1000), false).unwrap();
    close(unpooled, 2.10507, 5);
    close(z_p_value(unpooled), 0.035285, 6);
    let pooled = z_two_proportions((100, 1000), (130, 1000), true).unwrap();
    close(pooled, 2.10274, 5);
    close(z_p_value(pooled), 0.035488, 6);
}

#[test]
fn statrs_students_t_cdf_vectors() {
    // Test vectors, Student-t CDF, from statrs' own tests: the dependency behaves as quoted.
    let t = |dof: f64, x: f64| StudentsT::new(0.0, 1.0, dof).unwrap().cdf(x);
    close(t(1.0, 1.0), 0.75, 12);
    close(t(1.0, 2.0), 0.852416382349567, 12);
    close(t(2.0, 1.0), 0.788675134594813, 12);
    close(t(2.0, 2.0), 0.908248290463863, 12);
    close(t(2.0, -2.0), 0.091751709536137, 12);
}

/// Exact `P(p_B > p_A)` for Beta posteriors with integer parameters (Evan Miller's sum).
fn exact_b_beats_a(a: (u64, u64), b: (u64, u64)) -> f64 {
    use statrs::function::beta::ln_beta;
    let (aa, ba) = (1.0 + a.0 as f64, 1.0 + a.1 as f64);
    let (ab, bb) = (1.0 + b.0 as f64, 1.0 + b.1 as f64);
    (0..(ab as u64))
        .map(|i| {
            let i = i as f64;
            (ln_beta(aa + i, ba + bb) - (bb + i).ln() - ln_beta(1.0 + i, bb) - ln_beta(aa, ba))
                .exp()
        })
        .sum()
}

#[test]
fn probability_to_be_best() {
    // Two arms: the integral agrees with the exact closed form.
    for (a, b) in [
        ((20, 80), (30, 70)),
        ((3, 4), (1, 9)),
        ((400, 1200), (430, 1170)),
    ] {
        let p = prob_best(&[a, b]).unwrap();
        close(p[1], exact_b_beats_a(a, b), 6);
        close(p[0] + p[1], 1.0, 9);
    }
    // Identical arms are equally likely to be best.
    let p = prob_best(&[(50, 150), (50, 150), (50, 150)]).unwrap();
    for x in &p {
        close(*x, 1.0 / 3.0, 6);
    }
    // A clearly better arm is almost surely best; ordering follows the rates.
    let p = prob_best(&[(100, 300), (140, 260), (110, 290), (90, 310)]).unwrap();
    assert!(p[1] > 0.95, "{p:?}");
    assert!(p[2] > p[3] && p[0] > p[3], "{p:?}");
    close(p.iter().sum::<f64>(), 1.0, 9);
    // Empty arms are allowed (a uniform prior), a single arm is not a comparison.
    close(prob_best(&[(0, 0), (0, 0)]).unwrap()[0], 0.5, 6);
    assert_eq!(prob_best(&[(1, 1)]), None);
}

#[test]
fn ratio_moments_reduce_to_a_proportion_for_single_deal_units() {
    // One deal per unit: ΣM/ΣD is the win rate and the delta-method variance is p(1 − p)
    // up to the n/(n − 1) sample correction.
    let mut sums = RatioSums::default();
    for i in 0..200 {
        sums.add(if i < 50 { 1.0 } else { 0.0 }, 1.0);
    }
    let r = Moments::ratio(200, sums).unwrap();
    close(r.mean, 0.25, 12);
    close(r.var, 0.25 * 0.75 * 200.0 / 199.0, 12);
}
