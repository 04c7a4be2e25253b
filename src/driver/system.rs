//! The host of a live call: the system clock, ULID display ids and the latency since the
//! frame arrived. The one place the call pipeline reads a clock.

use std::time::Instant;

use super::Host;
use crate::timestamp::Timestamp;

/// A [`Host`] on the system clock. Call [`SystemHost::received`] as each frame arrives.
pub struct SystemHost {
    /// Monotonic within a millisecond, so one call's display ids sort in decision order.
    ids: ulid::Generator,
    opened: Instant,
    received: Instant,
}

impl Default for SystemHost {
    fn default() -> Self {
        let now = Instant::now();
        SystemHost {
            ids: ulid::Generator::new(),
            opened: now,
            received: now,
        }
    }
}

impl SystemHost {
    /// A frame arrived now; returns its arrival time in ms since this host was made (the
    /// connection opened), for [`super::CallDriver::on_text`].
    pub fn received(&mut self) -> u64 {
        self.received = Instant::now();
        self.received.duration_since(self.opened).as_millis() as u64
    }
}

impl Host for SystemHost {
    fn now(&mut self) -> Timestamp {
        Timestamp::now()
    }

    fn display_id(&mut self, now: Timestamp) -> String {
        let at = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(now.unix_ms()).unwrap_or(0));
        self.ids
            .generate_from_datetime(at)
            .unwrap_or_else(|_| ulid::Ulid::from_datetime(at))
            .to_string()
    }

    fn engine_us(&mut self) -> u64 {
        self.received.elapsed().as_micros() as u64
    }
}
