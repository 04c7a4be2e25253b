//! Read API for experiment reports: exposures grouped by unit and variant, the latest
//! outcome of every deal in an experiment, and exposure counts per experiment. Same
//! portable SQL on SQLite and PostgreSQL (`$N` placeholders, `COUNT(DISTINCT …)`,
//! correlated subqueries rather than window functions).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::rows::timestamp;
use super::{OutcomeRow, Store, StoreError, outcome_from_row, query_err};
use crate::timestamp::Timestamp;

/// One experiment's exposures of one (deal, rep, variant): when the first was and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposureGroupRow {
    pub deal_id: Option<String>,
    pub rep_id: Option<String>,
    pub variant: Option<String>,
    /// The earliest `ts`.
    pub first_ts: Timestamp,
    pub exposures: i64,
}

/// Exposure counts of one experiment arm, for `GET /v1/experiments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArmCountRow {
    pub experiment_key: String,
    pub variant: Option<String>,
    pub exposures: i64,
    /// Distinct deal ids (the units of `unit: deal` experiments).
    pub deals: i64,
    /// Distinct rep ids (the units of `unit: rep` experiments).
    pub reps: i64,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
}

const SELECT_EXPOSURE_GROUPS: &str = "SELECT deal_id, rep_id, variant, MIN(ts) AS first_ts, \
     COUNT(*) AS exposures FROM exposures WHERE experiment_key = $1 AND ts < $2 \
     GROUP BY deal_id, rep_id, variant";

/// The latest row of every deal exposed in the experiment: by the CRM's `updated_at` (the
/// receive time for a row without one), then `received_at`, then insertion id.
const SELECT_LATEST_OUTCOMES: &str = "SELECT o.deal_id, o.outcome, o.amount, o.currency, \
     o.closed_at, o.updated_at, o.received_at FROM outcomes o \
     WHERE o.deal_id IN (SELECT deal_id FROM exposures WHERE experiment_key = $1) \
     AND o.id = (SELECT o2.id FROM outcomes o2 WHERE o2.deal_id = o.deal_id \
     ORDER BY COALESCE(o2.updated_at, o2.received_at) DESC, o2.received_at DESC, o2.id DESC \
     LIMIT 1)";

const SELECT_ARM_COUNTS: &str = "SELECT experiment_key, variant, COUNT(*) AS exposures, \
     COUNT(DISTINCT deal_id) AS deals, COUNT(DISTINCT rep_id) AS reps, MIN(ts) AS first_ts, \
     MAX(ts) AS last_ts FROM exposures WHERE experiment_key IS NOT NULL \
     GROUP BY experiment_key, variant ORDER BY experiment_key, variant";

fn group_from_row(row: &AnyRow) -> Result<ExposureGroupRow, sqlx::Error> {
    Ok(ExposureGroupRow {
        deal_id: row.try_get("deal_id")?,
        rep_id: row.try_get("rep_id")?,
        variant: row.try_get("variant")?,
        first_ts: timestamp(row, "first_ts")?,
        exposures: row.try_get("exposures")?,
    })
}

fn arm_count_from_row(row: &AnyRow) -> Result<ArmCountRow, sqlx::Error> {
    Ok(ArmCountRow {
        experiment_key: row.try_get("experiment_key")?,
        variant: row.try_get("variant")?,
        exposures: row.try_get("exposures")?,
        deals: row.try_get("deals")?,
        reps: row.try_get("reps")?,
        first_ts: timestamp(row, "first_ts")?,
        last_ts: timestamp(row, "last_ts")?,
    })
}

impl Store {
    /// The experiment's exposures with `ts < before`, grouped by deal, rep and variant.
    pub async fn exposure_groups(
        &self,
        experiment_key: &str,
        before: Timestamp,
    ) -> Result<Vec<ExposureGroupRow>, StoreError> {
        let rows = sqlx::query(SELECT_EXPOSURE_GROUPS)
            .bind(experiment_key)
            .bind(before.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("exposure groups read"))?;
        rows.iter()
            .map(group_from_row)
            .collect::<Result<_, _>>()
            .map_err(query_err("exposure groups read"))
    }

    /// The current (latest) outcome of every deal exposed in the experiment.
    pub async fn latest_outcomes(
        &self,
        experiment_key: &str,
    ) -> Result<Vec<OutcomeRow>, StoreError> {
        let rows = sqlx::query(SELECT_LATEST_OUTCOMES)
            .bind(experiment_key)
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("latest outcomes read"))?;
        rows.iter()
            .map(outcome_from_row)
            .collect::<Result<_, _>>()
            .map_err(query_err("latest outcomes read"))
    }

    /// Exposure counts per experiment and variant, ordered by key and variant.
    pub async fn arm_counts(&self) -> Result<Vec<ArmCountRow>, StoreError> {
        self.fetch_rows(
            sqlx::query(SELECT_ARM_COUNTS),
            "experiment counts read",
            arm_count_from_row,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ExposureRow, OutcomeRow, Record, Store};

    fn exposure(id: &str, ts: &str, deal: &str, variant: Option<&str>) -> Record {
        Record::Exposure(ExposureRow {
            display_id: id.into(),
            ts: ts.parse().expect("a timestamp"),
            call_id: format!("c-{deal}"),
            deal_id: Some(deal.into()),
            rep_id: Some("r-1".into()),
            card_id: "price".into(),
            experiment_key: variant.map(|_| "exp".to_string()),
            variant: variant.map(str::to_string),
            shown: variant != Some("control"),
            reason: "shown".into(),
            phrase: "too expensive".into(),
            speaker: "prospect".into(),
            segment_id: "s-1".into(),
            engine_us: 5,
            library_version: "sha256:x".into(),
        })
    }

    fn outcome(deal: &str, outcome: &str, received_at: &str) -> OutcomeRow {
        OutcomeRow {
            deal_id: deal.into(),
            outcome: outcome.into(),
            amount: None,
            currency: None,
            closed_at: None,
            updated_at: None,
            received_at: received_at.parse().unwrap(),
        }
    }

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (Store::open(&url).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn exposures_are_grouped_per_unit_and_variant_before_the_cutoff() {
        let (store, _dir) = store().await;
        store
            .write_batch(&[
                exposure("01A", "2026-06-02T10:00:00.000Z", "d-1", Some("short")),
                exposure("01B", "2026-06-01T10:00:00.000Z", "d-1", Some("short")),
                exposure("01C", "2026-06-03T10:00:00.000Z", "d-2", Some("control")),
                exposure("01D", "2026-06-09T10:00:00.000Z", "d-3", Some("control")),
                // Not in an experiment.
                exposure("01E", "2026-06-01T10:00:00.000Z", "d-4", None),
            ])
            .await
            .unwrap();
        let mut groups = store
            .exposure_groups("exp", "2026-06-05T00:00:00.000Z".parse().unwrap())
            .await
            .unwrap();
        groups.sort_by(|a, b| a.deal_id.cmp(&b.deal_id));
        let got: Vec<(&str, &str, String, i64)> = groups
            .iter()
            .map(|g| {
                (
                    g.deal_id.as_deref().unwrap(),
                    g.variant.as_deref().unwrap(),
                    g.first_ts.to_string(),
                    g.exposures,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("d-1", "short", "2026-06-01T10:00:00.000Z".to_string(), 2),
                ("d-2", "control", "2026-06-03T10:00:00.000Z".to_string(), 1),
            ]
        );
        let counts = store.arm_counts().await.unwrap();
        let got: Vec<(&str, i64, i64)> = counts
            .iter()
            .map(|c| (c.variant.as_deref().unwrap(), c.exposures, c.deals))
            .collect();
        assert_eq!(got, [("control", 2, 2), ("short", 2, 1)]);
    }

    #[tokio::test]
    async fn the_latest_update_of_each_exposed_deal_counts() {
        let (store, _dir) = store().await;
        store
            .write_batch(&[
                exposure("01A", "2026-06-01T10:00:00.000Z", "d-1", Some("short")),
                exposure("01B", "2026-06-01T10:00:00.000Z", "d-2", Some("control")),
            ])
            .await
            .unwrap();
        let t = "2026-07-01T10:00:00.000Z";
        // Separate requests received in the same millisecond: the later one wins.
        for amount in 1..=10 {
            let o = OutcomeRow {
                amount: Some(f64::from(amount)),
                ..outcome("d-1", if amount % 2 == 0 { "won" } else { "lost" }, t)
            };
            store.insert_outcomes(&[o]).await.unwrap();
        }
        store
            .insert_outcomes(&[
                outcome("d-2", "lost", "2026-07-02T00:00:00.000Z"),
                outcome("d-2", "open", "2026-07-01T00:00:00.000Z"),
                // Not exposed in the experiment.
                outcome("d-9", "won", t),
            ])
            .await
            .unwrap();
        let mut latest = store.latest_outcomes("exp").await.unwrap();
        latest.sort_by(|a, b| a.deal_id.cmp(&b.deal_id));
        let got: Vec<(&str, &str)> = latest
            .iter()
            .map(|o| (o.deal_id.as_str(), o.outcome.as_str()))
            .collect();
        assert_eq!(got, [("d-1", "won"), ("d-2", "lost")]);
        assert_eq!(latest[0].amount, Some(10.0));
        // The history is kept.
        assert_eq!(store.outcomes(Some("d-1")).await.unwrap().len(), 10);
    }
}
