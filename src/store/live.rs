//! Read API for the live part of the dashboard: cards shown per minute, top cards and
//! decisions by reason since a point in time. Portable SQL (`substr` on the RFC 3339 text
//! timestamps gives the minute on SQLite and PostgreSQL alike).

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, query_err};
use crate::timestamp::Timestamp;

/// Decisions since a point in time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LiveSummary {
    /// `(minute "YYYY-MM-DDTHH:MM", cards shown)`, oldest first; minutes with none omitted.
    pub shown_per_minute: Vec<(String, i64)>,
    /// `(card_id, shown)`, most shown first (at most 10).
    pub top_cards: Vec<(String, i64)>,
    /// `(reason, decisions)` for every reason that occurred.
    pub by_reason: Vec<(String, i64)>,
    /// Distinct calls with a decision.
    pub calls: i64,
}

const PER_MINUTE: &str = "SELECT substr(ts, 1, 16) AS minute, COUNT(*) AS n FROM exposures \
     WHERE ts >= $1 AND reason = 'shown' GROUP BY substr(ts, 1, 16) ORDER BY minute";
const TOP_CARDS: &str = "SELECT card_id, COUNT(*) AS n FROM exposures WHERE ts >= $1 \
     AND reason = 'shown' GROUP BY card_id ORDER BY n DESC, card_id LIMIT 10";
const BY_REASON: &str = "SELECT reason, COUNT(*) AS n FROM exposures WHERE ts >= $1 \
     GROUP BY reason ORDER BY reason";
const CALLS: &str = "SELECT COUNT(DISTINCT call_id) AS n FROM exposures WHERE ts >= $1";

impl Store {
    /// Decisions logged at or after `since`.
    pub async fn live_summary(&self, since: Timestamp) -> Result<LiveSummary, StoreError> {
        let since = since.to_string();
        let since = since.as_str();
        let pairs = |sql: &'static str, what: &'static str| async move {
            let rows = sqlx::query(sql)
                .bind(since)
                .fetch_all(&self.pool)
                .await
                .map_err(query_err(what))?;
            rows.iter()
                .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(query_err(what))
        };
        let shown_per_minute = pairs(PER_MINUTE, "live per minute").await?;
        let top_cards = pairs(TOP_CARDS, "live top cards").await?;
        let by_reason = pairs(BY_REASON, "live reasons").await?;
        let calls = sqlx::query(CALLS)
            .bind(since)
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get::<i64, _>(0))
            .map_err(query_err("live calls"))?;
        Ok(LiveSummary {
            shown_per_minute,
            top_cards,
            by_reason,
            calls,
        })
    }
}
