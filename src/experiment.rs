//! Deterministic, sticky variant assignment without storage.
//!
//! GrowthBook's hashing, version 2: `n = fnv32a(str(fnv32a(seed + unit))) % 10000 / 10000`
//! over UTF-8 bytes, then cumulative normalized weights map `n` to a variant. The same deal
//! gets the same variant on every call and every node.

#![warn(missing_docs)]

use crate::library::Experiment;

/// FNV-1a, 32 bit, over bytes.
fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// GrowthBook hash version 2: a number in `[0, 1)` with 4 decimals.
fn hash_v2(seed: &str, unit_id: &str) -> f64 {
    let inner = fnv32a(format!("{seed}{unit_id}").as_bytes());
    f64::from(fnv32a(inner.to_string().as_bytes()) % 10_000) / 10_000.0
}

/// GrowthBook's hash by version: 1 is the legacy `fnv32a(value + seed) % 1000 / 1000`
/// (biased), 2 is [`hash_v2`]; other versions give `None`. Only the tests use it: they
/// check both versions against GrowthBook's published vectors.
#[cfg(test)]
fn hash(seed: &str, value: &str, version: u32) -> Option<f64> {
    match version {
        1 => Some(f64::from(fnv32a(format!("{value}{seed}").as_bytes()) % 1000) / 1000.0),
        2 => Some(hash_v2(seed, value)),
        _ => None,
    }
}

/// GrowthBook's `getBucketRanges`: one `[start, end)` range per variant, each starting at
/// its cumulative weight and `coverage` (clamped to `0..=1`) of its weight wide. Weights of
/// the wrong length, or not summing to 1 ± 0.01, fall back to equal weights.
fn bucket_ranges(variants: usize, coverage: f64, weights: Option<&[f64]>) -> Vec<(f64, f64)> {
    if variants == 0 {
        return Vec::new();
    }
    let coverage = if coverage.is_nan() {
        1.0
    } else {
        coverage.clamp(0.0, 1.0)
    };
    let equal = vec![1.0 / variants as f64; variants];
    let weights = match weights {
        Some(w) if w.len() == variants && (w.iter().sum::<f64>() - 1.0).abs() <= 0.01 => w,
        _ => &equal,
    };
    let mut start = 0.0;
    weights
        .iter()
        .map(|w| {
            let range = (start, start + coverage * w);
            start += w;
            range
        })
        .collect()
}

/// GrowthBook's `chooseVariation`: the first range with `start <= n < end`, else `None`
/// (the unit is not in the experiment).
fn choose_variation(n: f64, ranges: &[(f64, f64)]) -> Option<usize> {
    ranges
        .iter()
        .position(|&(start, end)| n >= start && n < end)
}

/// Maps `n` in `[0, 1)` to the index of the variant whose cumulative weight range holds it.
/// Weights are normalized by their sum (full coverage); an empty or non-positive list
/// gives `None`.
fn choose(n: f64, weights: &[f64]) -> Option<usize> {
    let total: f64 = weights.iter().sum();
    if weights.is_empty() || total <= 0.0 || !total.is_finite() {
        return None;
    }
    let normalized: Vec<f64> = weights.iter().map(|w| w / total).collect();
    choose_variation(n, &bucket_ranges(weights.len(), 1.0, Some(&normalized)))
        // Rounding can leave the top of the range uncovered: it belongs to the last arm.
        .or(Some(weights.len() - 1))
}

/// The variant index a unit gets in an experiment.
pub fn assign(experiment: &Experiment, unit_id: &str) -> usize {
    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.weight).collect();
    choose(hash_v2(&experiment.key, unit_id), &weights).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growthbook_hash_v2_vectors() {
        let cases = [
            ("seed", "a", 0.0505),
            ("seed", "b", 0.2696),
            ("foo", "ab", 0.2575),
            ("foo", "def", 0.2019),
            ("89123klj", "8952klfjas09ujkasdf", 0.124),
            ("90850943850283058242805", "123", 0.7516),
        ];
        for (seed, value, n) in cases {
            assert!(
                (hash_v2(seed, value) - n).abs() < 1e-9,
                "hash({seed:?}, {value:?})"
            );
        }
    }

    #[test]
    fn choose_uses_cumulative_ranges() {
        assert_eq!(choose(0.5, &[1.0, 1.0]), Some(1));
        assert_eq!(choose(0.4999, &[1.0, 1.0]), Some(0));
        assert_eq!(choose(0.0, &[1.0, 1.0, 2.0]), Some(0));
        assert_eq!(choose(0.49, &[1.0, 1.0, 2.0]), Some(1));
        assert_eq!(choose(0.5, &[1.0, 1.0, 2.0]), Some(2));
        assert_eq!(choose(0.9999, &[1.0, 1.0, 2.0]), Some(2));
        assert_eq!(choose(0.5, &[]), None);
    }

    #[test]
    fn growthbook_hash_versions() {
        // docs/statistics.md#test-vectors (hash): the legacy version 1 and an unknown version.
        assert_eq!(hash("", "a", 1), Some(0.22));
        assert_eq!(hash("b", "a", 1), Some(0.946));
        assert_eq!(hash("abc", "def", 99), None);
        assert_eq!(hash("seed", "a", 2), Some(hash_v2("seed", "a")));
    }

    #[test]
    fn growthbook_bucket_ranges_and_choose_variation() {
        // docs/statistics.md#test-vectors (bucket ranges, `chooseVariation`).
        let close = |got: Vec<(f64, f64)>, want: &[(f64, f64)]| {
            assert_eq!(got.len(), want.len(), "{got:?}");
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g.0 - w.0).abs() < 1e-12 && (g.1 - w.1).abs() < 1e-12,
                    "{got:?}"
                );
            }
        };
        close(bucket_ranges(2, 1.0, None), &[(0.0, 0.5), (0.5, 1.0)]);
        close(bucket_ranges(2, 0.5, None), &[(0.0, 0.25), (0.5, 0.75)]);
        close(
            bucket_ranges(3, 0.2, Some(&[0.2, 0.3, 0.5])),
            &[(0.0, 0.04), (0.2, 0.26), (0.5, 0.6)],
        );
        close(bucket_ranges(2, -0.2, None), &[(0.0, 0.0), (0.5, 0.5)]);
        // Weights that do not sum to 1 fall back to equal weights.
        close(
            bucket_ranges(2, 1.0, Some(&[0.7, 0.7])),
            &[(0.0, 0.5), (0.5, 1.0)],
        );
        assert_eq!(choose_variation(0.5, &[(0.0, 0.5), (0.5, 1.0)]), Some(1));
        assert_eq!(choose_variation(0.4, &[(0.0, 0.25), (0.5, 0.75)]), None);
    }

    #[test]
    fn assignments_of_two_experiments_are_independent() {
        // The seed is the experiment key: a deal's arm in one experiment says nothing about
        // its arm in another. 2x2 contingency table over 10^5 deals, chi-square test of
        // independence (1 degree of freedom; 10.83 is the 0.001 critical value).
        let n = 100_000;
        let mut table = [[0u32; 2]; 2];
        for i in 0..n {
            let id = format!("deal-{i}");
            let a = choose(hash_v2("price-objection-2026q4", &id), &[1.0, 1.0]).unwrap();
            let b = choose(hash_v2("competitor-acme-2026q4", &id), &[1.0, 1.0]).unwrap();
            table[a][b] += 1;
        }
        let total = f64::from(n);
        let rows = [0, 1].map(|a| f64::from(table[a][0] + table[a][1]));
        let cols = [0, 1].map(|b| f64::from(table[0][b] + table[1][b]));
        let mut chi2 = 0.0;
        for a in 0..2 {
            for b in 0..2 {
                let expected = rows[a] * cols[b] / total;
                chi2 += (f64::from(table[a][b]) - expected).powi(2) / expected;
                // Every combination holds about a quarter of the deals.
                assert!(
                    (f64::from(table[a][b]) / total - 0.25).abs() < 0.01,
                    "{table:?}"
                );
            }
        }
        assert!(
            chi2 < 10.83,
            "assignments look correlated: chi2 = {chi2}, {table:?}"
        );
    }

    #[test]
    fn arms_are_balanced_to_their_weights() {
        let weights = [1.0, 1.0, 2.0];
        let mut counts = [0usize; 3];
        let n = 100_000;
        for i in 0..n {
            let idx = choose(hash_v2("balance-test", &format!("deal-{i}")), &weights).unwrap();
            counts[idx] += 1;
        }
        for (count, w) in counts.iter().zip(weights) {
            let share = *count as f64 / n as f64;
            assert!((share - w / 4.0).abs() < 0.01, "{counts:?}");
        }
    }
}
