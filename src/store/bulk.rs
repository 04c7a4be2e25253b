//! Bulk loading (the simulator): multi-row `INSERT … VALUES (…), (…)` statements in one
//! transaction, many times faster than one statement per row. Conflicting keys are left
//! as they are (`ON CONFLICT DO NOTHING`), like the writer's inserts. At most 999 bound
//! parameters per statement, the lowest limit of any SQLite build.

use super::{Backend, CallRow, ExposureRow, OutcomeRow, Store, StoreError, query_err};

/// SQLite's historical default `SQLITE_MAX_VARIABLE_NUMBER`.
const MAX_PARAMS: usize = 250;

/// The next outcome row id: ULIDs from one process-wide generator, so they increase even
/// between requests received in the same millisecond (the latest update of a deal is the
/// one with the greatest `received_at`, then id).
pub(super) fn next_outcome_id() -> ulid::Ulid {
    static IDS: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut ids = IDS.lock().unwrap_or_else(|p| p.into_inner());
    ids.get_or_insert_with(ulid::Generator::new)
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
}

/// A call with its end, for bulk loading.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedCall {
    pub call: CallRow,
    pub ended_at: Option<crate::timestamp::Timestamp>,
}

/// `($1, $2, …), ($k+1, …)` for `rows` rows of `cols` columns; the column `real`, if any,
/// is bound as text and cast to DOUBLE PRECISION (sqlx's Any driver declares a NULL f64 as
/// float4 on PostgreSQL, see `INSERT_OUTCOME`).
fn values(rows: usize, cols: usize, real: Option<usize>) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            let n = r * cols + c + 1;
            if real == Some(c) {
                out.push_str(&format!("CAST(${n} AS DOUBLE PRECISION)"));
            } else {
                out.push_str(&format!("${n}"));
            }
        }
        out.push(')');
    }
    out
}

fn statement(
    prefix: &str,
    rows: usize,
    cols: usize,
    real: Option<usize>,
    suffix: &str,
) -> sqlx::AssertSqlSafe<String> {
    // Built from constant column lists and numbered placeholders only: no input.
    sqlx::AssertSqlSafe(format!(
        "{prefix} VALUES {} {suffix}",
        values(rows, cols, real)
    ))
}

const EXPOSURE_COLS: usize = 15;
const CALL_COLS: usize = 6;
const OUTCOME_COLS: usize = 8;

impl Store {
    /// Inserts exposures, finished calls and outcome updates in one transaction.
    pub async fn bulk_insert(
        &self,
        exposures: &[ExposureRow],
        calls: &[FinishedCall],
        outcomes: &[OutcomeRow],
    ) -> Result<(), StoreError> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(query_err("begin"))?;
        for chunk in exposures.chunks(MAX_PARAMS / EXPOSURE_COLS) {
            let sql = statement(
                "INSERT INTO exposures (display_id, ts, call_id, deal_id, rep_id, card_id, \
                 experiment_key, variant, shown, reason, phrase, speaker, segment_id, \
                 engine_us, library_version)",
                chunk.len(),
                EXPOSURE_COLS,
                None,
                "ON CONFLICT (display_id) DO NOTHING",
            );
            let mut q = sqlx::query(sql);
            for e in chunk {
                q = super::bind_exposure(q, e);
            }
            q.execute(&mut *tx)
                .await
                .map_err(query_err("bulk exposure insert"))?;
        }
        for chunk in calls.chunks(MAX_PARAMS / CALL_COLS) {
            let sql = statement(
                "INSERT INTO calls (call_id, deal_id, rep_id, context, started_at, ended_at)",
                chunk.len(),
                CALL_COLS,
                None,
                "ON CONFLICT (call_id) DO NOTHING",
            );
            let mut q = sqlx::query(sql);
            for c in chunk {
                q = q
                    .bind(&c.call.call_id)
                    .bind(&c.call.deal_id)
                    .bind(&c.call.rep_id)
                    .bind(&c.call.context)
                    .bind(c.call.started_at.to_string())
                    .bind(c.ended_at.map(|t| t.to_string()));
            }
            q.execute(&mut *tx)
                .await
                .map_err(query_err("bulk call insert"))?;
        }
        for chunk in outcomes.chunks(MAX_PARAMS / OUTCOME_COLS) {
            let sql = statement(
                "INSERT INTO outcomes (id, deal_id, outcome, amount, currency, closed_at, \
                 received_at, updated_at)",
                chunk.len(),
                OUTCOME_COLS,
                Some(3),
                "",
            );
            let mut q = sqlx::query(sql);
            for o in chunk {
                q = super::bind_outcome(q, o);
            }
            q.execute(&mut *tx)
                .await
                .map_err(query_err("bulk outcome insert"))?;
        }
        tx.commit().await.map_err(query_err("commit"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::values;

    #[test]
    fn placeholders_are_numbered_row_by_row() {
        assert_eq!(values(2, 3, None), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values(1, 2, Some(1)), "($1, CAST($2 AS DOUBLE PRECISION))");
    }
}
