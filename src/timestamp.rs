//! [`Timestamp`]: the one form every time cuedeck stores or compares takes — a UTC instant
//! with millisecond precision, written as RFC 3339 text (`2026-11-23T10:00:00.123Z`).
//!
//! The store keeps timestamps as TEXT so SQLite and PostgreSQL share one schema; text sorts
//! as time only when every writer uses the same width and precision, so formatting lives
//! here and nowhere else.

#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A UTC instant, milliseconds since the Unix epoch. Ordering is time order, and the
/// text form ([`fmt::Display`]) sorts the same way for years 0000–9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_ms: i64,
}

/// Text that is neither an RFC 3339 timestamp nor a `YYYY-MM-DD` date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a timestamp: expected RFC 3339 (2026-11-23T10:00:00Z) or a date (2026-11-23)"
)]
pub struct TimestampError {
    /// The text as given (trimmed).
    pub text: String,
}

impl Timestamp {
    /// The current time. The one clock read; pure code takes a `Timestamp` instead.
    pub fn now() -> Timestamp {
        Timestamp::from(OffsetDateTime::now_utc())
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub fn from_unix_ms(unix_ms: i64) -> Timestamp {
        Timestamp { unix_ms }
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub fn unix_ms(self) -> i64 {
        self.unix_ms
    }

    /// This instant as a `time` value in UTC.
    pub fn datetime(self) -> OffsetDateTime {
        let nanos = i128::from(self.unix_ms) * 1_000_000;
        // Out of `time`'s range only for instants no input can produce (it takes years
        // ±9999); clamp rather than fail.
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(if nanos < 0 {
            OffsetDateTime::UNIX_EPOCH
        } else {
            PrimitiveDateTime::new(Date::MAX, Time::MIDNIGHT).assume_utc()
        })
    }

    /// Midnight UTC at the start of `date`.
    pub fn start_of(date: Date) -> Timestamp {
        Timestamp::from(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc())
    }

    /// Parses an RFC 3339 timestamp (any offset; finer than milliseconds is truncated) or
    /// a `YYYY-MM-DD` date (midnight UTC). Surrounding white space is ignored.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let s = text.trim();
        if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
            return Ok(Timestamp::from(t));
        }
        Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
            .map(Timestamp::start_of)
            .map_err(|_| TimestampError {
                text: s.to_string(),
            })
    }

    /// `ms` milliseconds later (earlier when negative), saturating.
    pub fn add_ms(self, ms: i64) -> Timestamp {
        Timestamp {
            unix_ms: self.unix_ms.saturating_add(ms),
        }
    }
}

/// Minus a `time` duration, truncated to milliseconds, saturating.
impl std::ops::Sub<time::Duration> for Timestamp {
    type Output = Timestamp;

    fn sub(self, d: time::Duration) -> Timestamp {
        self + -d
    }
}

/// Plus a `time` duration, truncated to milliseconds, saturating.
impl std::ops::Add<time::Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, d: time::Duration) -> Timestamp {
        let ms = i64::try_from(d.whole_milliseconds()).unwrap_or(if d.is_negative() {
            i64::MIN
        } else {
            i64::MAX
        });
        self.add_ms(ms)
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Timestamp {
        let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
        Timestamp {
            unix_ms: i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX }),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.datetime().to_offset(UtcOffset::UTC);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Timestamp, TimestampError> {
        Timestamp::parse(s)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_milliseconds_whatever_the_input_offset() {
        let t = Timestamp::parse("2026-11-23T11:00:00.123456+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-23T10:00:00.123Z");
        assert_eq!(
            Timestamp::parse("2026-11-23T10:00:00Z")
                .unwrap()
                .to_string(),
            "2026-11-23T10:00:00.000Z"
        );
    }

    #[test]
    fn now_is_rfc3339_utc_with_millis() {
        let now = Timestamp::now().to_string();
        assert_eq!(now.len(), "2026-11-23T10:00:00.123Z".len(), "{now}");
        assert!(now.ends_with('Z'));
        assert_eq!(&now[10..11], "T");
        assert_eq!(&now[19..20], ".");
        OffsetDateTime::parse(&now, &Rfc3339).expect("parses as RFC 3339");
    }

    #[test]
    fn a_date_is_midnight_utc() {
        let t = Timestamp::parse(" 2026-01-31 ").unwrap();
        assert_eq!(t.to_string(), "2026-01-31T00:00:00.000Z");
    }

    #[test]
    fn text_that_is_no_time_names_itself() {
        let e = Timestamp::parse("yesterday").unwrap_err();
        assert!(
            e.to_string().starts_with("`yesterday` is not a timestamp"),
            "{e}"
        );
        assert!(Timestamp::parse("2026-02-30").is_err());
    }

    #[test]
    fn round_trips_through_text_and_serde() {
        let t = Timestamp::from_unix_ms(1_764_000_000_123);
        assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2025-11-24T16:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"soon\"").is_err());
    }

    #[test]
    fn text_order_is_time_order() {
        // The store compares timestamps as text: the two orders must agree, also across
        // second and year boundaries and before 1970.
        let mut times: Vec<Timestamp> = [
            -86_400_000_i64,
            -1,
            0,
            999,
            1_000,
            59_999,
            1_764_000_000_000,
            1_767_225_599_999,
            1_767_225_600_000,
        ]
        .into_iter()
        .map(Timestamp::from_unix_ms)
        .collect();
        times.reverse();
        let mut by_time = times.clone();
        by_time.sort();
        let mut by_text = times;
        by_text.sort_by_key(|t| t.to_string());
        assert_eq!(by_time, by_text);
    }

    #[test]
    fn sub_millisecond_times_truncate_toward_the_past() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(-1).unwrap();
        assert_eq!(Timestamp::from(t).unix_ms(), -1);
        assert_eq!(Timestamp::from(t).to_string(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn adds_durations() {
        let t = Timestamp::parse("2026-11-23").unwrap();
        assert_eq!(
            (t + time::Duration::days(1)).to_string(),
            "2026-11-24T00:00:00.000Z"
        );
        assert_eq!(t.add_ms(-1).to_string(), "2026-11-22T23:59:59.999Z");
    }
}
