//! A token bucket on a caller's clock: `rate` events a second on average, bursts of up to
//! `burst`. Pure: the caller passes the time, so it is tested without waiting.

#![warn(missing_docs)]

/// Allows `rate` events a second with bursts of `burst`; time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens added per second.
    rate: u32,
    /// Most tokens held (in thousandths of a token, like `tokens`).
    capacity_milli: u64,
    /// Tokens now, in thousandths (integer arithmetic, no drift).
    tokens_milli: u64,
    /// The time of the last refill.
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` a second. A rate of 0 allows
    /// everything.
    pub fn new(rate: u32, burst: u32) -> TokenBucket {
        let capacity_milli = u64::from(burst.max(1)) * 1000;
        TokenBucket {
            rate,
            capacity_milli,
            tokens_milli: capacity_milli,
            last_ms: 0,
        }
    }

    /// Takes one token at time `now_ms`; `false` when none is left.
    pub fn take(&mut self, now_ms: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        let refill = elapsed.saturating_mul(u64::from(self.rate));
        self.tokens_milli = self
            .tokens_milli
            .saturating_add(refill)
            .min(self.capacity_milli);
        if self.tokens_milli < 1000 {
            return false;
        }
        self.tokens_milli -= 1000;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let mut b = TokenBucket::new(10, 20);
        assert!((0..20).all(|_| b.take(0)));
        assert!(!b.take(0), "the burst is used up");
        assert!(!b.take(99), "a tenth of a second is not quite one token");
        assert!(b.take(100));
        assert!(!b.take(100));
        // A long pause refills only up to the burst.
        assert_eq!((0..30).filter(|_| b.take(60_000)).count(), 20);
    }

    #[test]
    fn a_clock_going_back_takes_nothing_and_gives_nothing() {
        let mut b = TokenBucket::new(1, 1);
        assert!(b.take(5_000));
        assert!(!b.take(1_000));
        assert!(!b.take(5_500));
        assert!(b.take(6_000));
    }

    #[test]
    fn rate_zero_is_unlimited() {
        let mut b = TokenBucket::new(0, 0);
        assert!((0..1000).all(|_| b.take(0)));
    }
}
