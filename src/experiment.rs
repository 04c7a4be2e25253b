//! Deterministic, sticky variant assignment without storage.
//!
//! GrowthBook's hashing, version 2: `n = fnv32a(str(fnv32a(seed + unit))) % 10000 / 10000`
//! over UTF-8 bytes, then cumulative normalized weights map `n` to a variant. The same deal
//! gets the same variant on every call and every node.

use crate::library::Experiment;

/// FNV-1a, 32 bit, over bytes.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// GrowthBook hash version 2: a number in `[0, 1)` with 4 decimals.
pub fn hash_v2(seed: &str, unit_id: &str) -> f64 {
    let inner = fnv32a(format!("{seed}{unit_id}").as_bytes());
    f64::from(fnv32a(inner.to_string().as_bytes()) % 10_000) / 10_000.0
}

/// Maps `n` in `[0, 1)` to the index of the variant whose cumulative weight range holds it.
/// Weights are normalized by their sum; an empty or non-positive list gives `None`.
pub fn choose(n: f64, weights: &[f64]) -> Option<usize> {
    let total: f64 = weights.iter().sum();
    if weights.is_empty() || total <= 0.0 || !total.is_finite() {
        return None;
    }
    let mut start = 0.0;
    for (i, w) in weights.iter().enumerate() {
        let end = start + w / total;
        if n >= start && n < end {
            return Some(i);
        }
        start = end;
    }
    // Rounding can leave the top of the range uncovered: it belongs to the last arm.
    Some(weights.len() - 1)
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
