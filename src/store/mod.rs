//! Store: exposures, feedback, outcomes and calls in SQLite (default) or PostgreSQL.
//!
//! Design:
//! - One [`sqlx::AnyPool`] serves both databases with the *same* migrations
//!   (`migrations/`, embedded with `sqlx::migrate!`, so the binary needs no files) and the
//!   same SQL strings. Placeholders are `$1, $2, …`: PostgreSQL's native form, which
//!   sqlx's SQLite driver also binds by number. Only portable types are used: TEXT,
//!   BIGINT, BOOLEAN, DOUBLE PRECISION; timestamps are TEXT in RFC 3339 UTC with
//!   milliseconds ([`now_rfc3339`]), so they sort as strings. Conflicts use
//!   `ON CONFLICT … DO NOTHING / DO UPDATE` (SQLite ≥ 3.24 and PostgreSQL).
//! - One quirk of the Any driver: it cannot *read* an SQLite column declared BOOLEAN, so
//!   queries select `CASE WHEN shown THEN 1 ELSE 0 END` (an integer on both databases).
//! - SQLite is opened with `mode=rwc` (the file is created), WAL journal mode (set once at
//!   open), `synchronous = NORMAL` and a 5 s `busy_timeout` on every connection; write
//!   transactions start with `BEGIN IMMEDIATE` so a busy database waits instead of failing
//!   on a stale snapshot.
//! - Writes from the hot path go through [`spawn_writer`]: producers hold a cloneable
//!   [`StoreHandle`] over a bounded channel (a full queue makes `send` wait: backpressure,
//!   never a silent drop); one task drains it in batches of up to 513 records per
//!   transaction and retries a failed batch with backoff (100 ms doubling to 5 s) until it
//!   succeeds. Exposure and feedback inserts are idempotent, so a retried batch is safe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Connection, Row};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::histogram::Histogram;

mod bulk;
mod experiments;
mod live;
#[cfg(test)]
mod tests;

pub use bulk::FinishedCall;
pub use experiments::{ArmCountRow, ExposureGroupRow};
pub use live::LiveSummary;

/// The embedded migrations (`migrations/` at the crate root).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Records taken greedily after the first one, per transaction.
const MAX_EXTRA_PER_BATCH: usize = 512;
/// First delay before retrying a failed batch.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between retries of a failed batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// SQLite waits this long (ms) for a lock before reporting the database busy.
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";

/// One display decision (docs/store.md#exposures), as `replay --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExposureRow {
    pub display_id: String,
    pub ts: String,
    pub call_id: String,
    pub deal_id: Option<String>,
    pub rep_id: Option<String>,
    pub card_id: String,
    pub experiment_key: Option<String>,
    pub variant: Option<String>,
    pub shown: bool,
    pub reason: String,
    pub phrase: String,
    pub speaker: String,
    pub segment_id: String,
    pub engine_us: i64,
    pub library_version: String,
}

/// A call as it starts (or reconnects).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRow {
    pub call_id: String,
    pub deal_id: Option<String>,
    pub rep_id: Option<String>,
    /// The call's context as a JSON object.
    pub context: String,
    pub started_at: String,
}

/// Rep feedback on a displayed card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedbackRow {
    pub display_id: String,
    pub ts: String,
    pub action: String,
}

/// One CRM outcome update (docs/http-api.md#post-v1outcomes); the table keeps every update.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeRow {
    pub deal_id: String,
    /// `won`, `lost` or `open`.
    pub outcome: String,
    pub amount: Option<f64>,
    pub currency: Option<String>,
    pub closed_at: Option<String>,
    pub received_at: String,
}

/// A write for the writer task.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "exposures are nearly all the traffic; boxing would only add an allocation each"
)]
pub enum Record {
    Exposure(ExposureRow),
    /// Inserts the call, or on reconnect updates deal, rep and context, keeps
    /// `started_at` and clears `ended_at`.
    CallStarted(CallRow),
    CallEnded {
        call_id: String,
        ended_at: String,
    },
    Feedback(FeedbackRow),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not `sqlite://PATH` or `postgres://…`.
    #[error("bad store URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The database could not be opened or connected to.
    #[error("cannot open store {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// The migrations failed.
    #[error("cannot migrate store {url}: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed; `what` names the operation.
    #[error("store {what} failed: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The writer task is gone (it exited or panicked), so the record was not queued.
    #[error("the store writer is closed")]
    Closed,
    /// The writer task panicked or was cancelled.
    #[error("the store writer task failed: {0}")]
    Writer(#[source] tokio::task::JoinError),
}

fn query_err(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

/// Now, as RFC 3339 UTC with milliseconds: `2026-11-23T10:00:00.123Z`.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The URL with any password replaced by `***`, for messages and logs.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &url[scheme_end + 3 + at..]
        ),
        None => url.to_string(),
    }
}

/// Which backend a URL names, and the URL to connect with (SQLite gets `mode=rwc`).
fn prepare_url(url: &str) -> Result<(Backend, String), StoreError> {
    let bad = |reason: &str| StoreError::BadUrl {
        url: redact(url),
        reason: reason.to_string(),
    };
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, params) = match rest.split_once('?') {
            Some((path, params)) => (path, Some(params)),
            None => (rest, None),
        };
        let has_mode = params.is_some_and(|p| p.split('&').any(|kv| kv.starts_with("mode=")));
        if path.is_empty() && !has_mode {
            return Err(bad("no database path (expected sqlite://PATH)"));
        }
        let connect_url = if has_mode || path == ":memory:" {
            url.to_string()
        } else if params.is_some() {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        Ok((Backend::Sqlite, connect_url))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((Backend::Postgres, url.to_string()))
    } else {
        Err(bad("expected sqlite://PATH or postgres://…"))
    }
}

const INSERT_EXPOSURE: &str = "INSERT INTO exposures (display_id, ts, call_id, deal_id, rep_id, \
     card_id, experiment_key, variant, shown, reason, phrase, speaker, segment_id, engine_us, \
     library_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
     ON CONFLICT (display_id) DO NOTHING";

const UPSERT_CALL: &str = "INSERT INTO calls (call_id, deal_id, rep_id, context, started_at, \
     ended_at) VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT (call_id) DO UPDATE SET \
     deal_id = excluded.deal_id, rep_id = excluded.rep_id, context = excluded.context, \
     ended_at = NULL";

const END_CALL: &str = "UPDATE calls SET ended_at = $1 WHERE call_id = $2";

const INSERT_FEEDBACK: &str = "INSERT INTO feedback (display_id, ts, action) VALUES ($1, $2, $3) \
     ON CONFLICT (display_id, ts, action) DO NOTHING";

// The amount is bound as text and cast: sqlx's Any driver declares a NULL f64 parameter
// as float4 on PostgreSQL, which then rejects the next non-NULL f64 in the cached statement.
const INSERT_OUTCOME: &str = "INSERT INTO outcomes (id, deal_id, outcome, amount, currency, \
     closed_at, received_at) VALUES ($1, $2, $3, CAST($4 AS DOUBLE PRECISION), $5, $6, $7)";

const SELECT_EXPOSURES: &str = "SELECT display_id, ts, call_id, deal_id, rep_id, card_id, \
     experiment_key, variant, CASE WHEN shown THEN 1 ELSE 0 END AS shown, reason, phrase, \
     speaker, segment_id, engine_us, library_version FROM exposures ORDER BY ts, display_id";
const SELECT_EXPOSURES_BY_CALL: &str = "SELECT display_id, ts, call_id, deal_id, rep_id, \
     card_id, experiment_key, variant, CASE WHEN shown THEN 1 ELSE 0 END AS shown, reason, \
     phrase, speaker, segment_id, engine_us, library_version FROM exposures \
     WHERE call_id = $1 ORDER BY ts, display_id";

const SELECT_FEEDBACK: &str =
    "SELECT display_id, ts, action FROM feedback ORDER BY ts, display_id, action";
const SELECT_FEEDBACK_BY_DISPLAY: &str =
    "SELECT display_id, ts, action FROM feedback WHERE display_id = $1 ORDER BY ts, action";

const SELECT_CALL: &str = "SELECT call_id, deal_id, rep_id, context, started_at, ended_at \
     FROM calls WHERE call_id = $1";

const SELECT_OUTCOMES: &str = "SELECT deal_id, outcome, amount, currency, closed_at, \
     received_at FROM outcomes ORDER BY deal_id, received_at, id";
const SELECT_OUTCOMES_BY_DEAL: &str = "SELECT deal_id, outcome, amount, currency, closed_at, \
     received_at FROM outcomes WHERE deal_id = $1 ORDER BY received_at, id";

/// A no-op write: fails on a read-only database or replica, waits on a held write lock.
impl ExposureRow {
    /// The row logged for one decision of a call, stamped now.
    pub fn from_decision(
        info: &crate::session::CallInfo,
        d: &crate::session::Decision,
        display_id: String,
        engine_us: u64,
        library_version: &str,
    ) -> ExposureRow {
        ExposureRow {
            display_id,
            ts: now_rfc3339(),
            call_id: info.call_id.clone(),
            deal_id: info.deal_id.clone(),
            rep_id: info.rep_id.clone(),
            card_id: d.card.id.clone(),
            experiment_key: d.experiment_key().map(str::to_string),
            variant: d.variant_id().map(str::to_string),
            shown: d.shown(),
            reason: d.reason.as_str().to_string(),
            phrase: d.phrase.to_string(),
            speaker: d.speaker.as_str().to_string(),
            segment_id: d.segment_id.to_string(),
            engine_us: engine_us as i64,
            library_version: library_version.to_string(),
        }
    }
}

/// A query on the Any driver, as the store builds them.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds an exposure's columns in the order of the `exposures` table.
pub(crate) fn bind_exposure<'q>(q: AnyQuery<'q>, e: &'q ExposureRow) -> AnyQuery<'q> {
    q.bind(&e.display_id)
        .bind(&e.ts)
        .bind(&e.call_id)
        .bind(&e.deal_id)
        .bind(&e.rep_id)
        .bind(&e.card_id)
        .bind(&e.experiment_key)
        .bind(&e.variant)
        .bind(e.shown)
        .bind(&e.reason)
        .bind(&e.phrase)
        .bind(&e.speaker)
        .bind(&e.segment_id)
        .bind(e.engine_us)
        .bind(&e.library_version)
}

/// Binds an outcome's columns in the order of the `outcomes` table, with a new row id.
/// The amount goes as text (the SQL casts it): sqlx's `Any` driver cannot bind a NULL
/// `f64`.
pub(crate) fn bind_outcome<'q>(q: AnyQuery<'q>, o: &'q OutcomeRow) -> AnyQuery<'q> {
    q.bind(bulk::next_outcome_id().to_string())
        .bind(&o.deal_id)
        .bind(&o.outcome)
        .bind(o.amount.map(|a| a.to_string()))
        .bind(&o.currency)
        .bind(&o.closed_at)
        .bind(&o.received_at)
}

const PING: &str = "UPDATE calls SET ended_at = ended_at WHERE 1 = 0";

fn exposure_from_row(row: &AnyRow) -> Result<ExposureRow, sqlx::Error> {
    Ok(ExposureRow {
        display_id: row.try_get("display_id")?,
        ts: row.try_get("ts")?,
        call_id: row.try_get("call_id")?,
        deal_id: row.try_get("deal_id")?,
        rep_id: row.try_get("rep_id")?,
        card_id: row.try_get("card_id")?,
        experiment_key: row.try_get("experiment_key")?,
        variant: row.try_get("variant")?,
        shown: row.try_get::<i64, _>("shown")? != 0,
        reason: row.try_get("reason")?,
        phrase: row.try_get("phrase")?,
        speaker: row.try_get("speaker")?,
        segment_id: row.try_get("segment_id")?,
        engine_us: row.try_get("engine_us")?,
        library_version: row.try_get("library_version")?,
    })
}

fn feedback_from_row(row: &AnyRow) -> Result<FeedbackRow, sqlx::Error> {
    Ok(FeedbackRow {
        display_id: row.try_get("display_id")?,
        ts: row.try_get("ts")?,
        action: row.try_get("action")?,
    })
}

fn outcome_from_row(row: &AnyRow) -> Result<OutcomeRow, sqlx::Error> {
    Ok(OutcomeRow {
        deal_id: row.try_get("deal_id")?,
        outcome: row.try_get("outcome")?,
        amount: row.try_get("amount")?,
        currency: row.try_get("currency")?,
        closed_at: row.try_get("closed_at")?,
        received_at: row.try_get("received_at")?,
    })
}

/// A connection pool to the store database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens `sqlite://PATH` (created if missing; WAL) or `postgres://…` and runs the
    /// migrations (several nodes may start at once: sqlx's migrator takes a lock).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, connect_url) = prepare_url(url)?;
        let open_err = |source| StoreError::Open {
            url: redact(url),
            source,
        };

        // A bounded wait for a connection: while the database is down, callers (the writer's
        // retries, /readyz) get an error instead of hanging.
        let options = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            // A failed COMMIT (SQLITE_FULL, a dropped link) can leave a connection inside a
            // transaction; back in the pool, every later BEGIN on it would fail and wedge
            // whoever writes next. Such a connection is closed instead (the pool opens a
            // fresh one).
            .after_release(|conn, _meta| Box::pin(async move { Ok(!conn.is_in_transaction()) }));
        let options = match backend {
            Backend::Sqlite => {
                // WAL is a property of the file: set it once, on one connection, before the
                // pool opens others (switching needs the only connection to the file).
                let mut conn = AnyConnection::connect(&connect_url)
                    .await
                    .map_err(open_err)?;
                let mode: Option<String> = sqlx::query("PRAGMA journal_mode = WAL")
                    .fetch_optional(&mut conn)
                    .await
                    .map_err(open_err)?
                    .map(|row| row.try_get::<String, _>(0))
                    .transpose()
                    .map_err(open_err)?;
                if !mode
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case("wal"))
                {
                    tracing::warn!(
                        url = %redact(url),
                        journal_mode = mode.as_deref().unwrap_or("unknown"),
                        "SQLite did not switch to WAL journal mode"
                    );
                }
                conn.close().await.map_err(open_err)?;
                options.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query(SQLITE_BUSY_TIMEOUT).execute(&mut *conn).await?;
                        Ok(())
                    })
                })
            }
            Backend::Postgres => options,
        };
        let pool = options.connect(&connect_url).await.map_err(open_err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: redact(url),
                source,
            })?;
        Ok(Store { pool, backend })
    }

    /// Writes the records in one transaction.
    pub async fn write_batch(&self, records: &[Record]) -> Result<(), StoreError> {
        self.write_batch_counted(records).await.map(|_| ())
    }

    /// Writes the records in one transaction; returns how many exposure rows were new.
    async fn write_batch_counted(&self, records: &[Record]) -> Result<u64, StoreError> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(query_err("begin"))?;
        let mut exposures = 0;
        for record in records {
            match record {
                Record::Exposure(e) => {
                    let done = bind_exposure(sqlx::query(INSERT_EXPOSURE), e)
                        .execute(&mut *tx)
                        .await
                        .map_err(query_err("exposure insert"))?;
                    exposures += done.rows_affected();
                }
                Record::CallStarted(c) => {
                    sqlx::query(UPSERT_CALL)
                        .bind(&c.call_id)
                        .bind(&c.deal_id)
                        .bind(&c.rep_id)
                        .bind(&c.context)
                        .bind(&c.started_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(query_err("call upsert"))?;
                }
                Record::CallEnded { call_id, ended_at } => {
                    sqlx::query(END_CALL)
                        .bind(ended_at)
                        .bind(call_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(query_err("call end"))?;
                }
                Record::Feedback(f) => {
                    sqlx::query(INSERT_FEEDBACK)
                        .bind(&f.display_id)
                        .bind(&f.ts)
                        .bind(&f.action)
                        .execute(&mut *tx)
                        .await
                        .map_err(query_err("feedback insert"))?;
                }
            }
        }
        tx.commit().await.map_err(query_err("commit"))?;
        Ok(exposures)
    }

    /// Exposures, of one call or of all, ordered by `ts` then `display_id`.
    pub async fn exposures(&self, call_id: Option<&str>) -> Result<Vec<ExposureRow>, StoreError> {
        let rows = match call_id {
            Some(call_id) => {
                sqlx::query(SELECT_EXPOSURES_BY_CALL)
                    .bind(call_id)
                    .fetch_all(&self.pool)
                    .await
            }
            None => sqlx::query(SELECT_EXPOSURES).fetch_all(&self.pool).await,
        }
        .map_err(query_err("exposures read"))?;
        rows.iter()
            .map(exposure_from_row)
            .collect::<Result<_, _>>()
            .map_err(query_err("exposures read"))
    }

    /// Feedback, on one display or on all, ordered by `ts`.
    pub async fn feedback(&self, display_id: Option<&str>) -> Result<Vec<FeedbackRow>, StoreError> {
        let rows = match display_id {
            Some(display_id) => {
                sqlx::query(SELECT_FEEDBACK_BY_DISPLAY)
                    .bind(display_id)
                    .fetch_all(&self.pool)
                    .await
            }
            None => sqlx::query(SELECT_FEEDBACK).fetch_all(&self.pool).await,
        }
        .map_err(query_err("feedback read"))?;
        rows.iter()
            .map(feedback_from_row)
            .collect::<Result<_, _>>()
            .map_err(query_err("feedback read"))
    }

    /// A call and its `ended_at` (None while it is live).
    pub async fn call(
        &self,
        call_id: &str,
    ) -> Result<Option<(CallRow, Option<String>)>, StoreError> {
        let row = sqlx::query(SELECT_CALL)
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("call read"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let read = |row: &AnyRow| -> Result<(CallRow, Option<String>), sqlx::Error> {
            Ok((
                CallRow {
                    call_id: row.try_get("call_id")?,
                    deal_id: row.try_get("deal_id")?,
                    rep_id: row.try_get("rep_id")?,
                    context: row.try_get("context")?,
                    started_at: row.try_get("started_at")?,
                },
                row.try_get("ended_at")?,
            ))
        };
        read(&row).map(Some).map_err(query_err("call read"))
    }

    /// Appends outcome updates (history) in one transaction, written directly (not through
    /// the writer) so a webhook can answer once they are durable.
    pub async fn insert_outcomes(&self, outcomes: &[OutcomeRow]) -> Result<(), StoreError> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(query_err("begin"))?;
        for o in outcomes {
            bind_outcome(sqlx::query(INSERT_OUTCOME), o)
                .execute(&mut *tx)
                .await
                .map_err(query_err("outcome insert"))?;
        }
        tx.commit().await.map_err(query_err("commit"))?;
        Ok(())
    }

    /// Outcome history, of one deal or of all, oldest first per deal (the last row of a
    /// deal is its current outcome).
    pub async fn outcomes(&self, deal_id: Option<&str>) -> Result<Vec<OutcomeRow>, StoreError> {
        let rows = match deal_id {
            Some(deal_id) => {
                sqlx::query(SELECT_OUTCOMES_BY_DEAL)
                    .bind(deal_id)
                    .fetch_all(&self.pool)
                    .await
            }
            None => sqlx::query(SELECT_OUTCOMES).fetch_all(&self.pool).await,
        }
        .map_err(query_err("outcomes read"))?;
        rows.iter()
            .map(outcome_from_row)
            .collect::<Result<_, _>>()
            .map_err(query_err("outcomes read"))
    }

    /// Readiness: a no-op write, so a read-only or locked-out database is not ready.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(PING)
            .execute(&self.pool)
            .await
            .map_err(query_err("ping"))?;
        Ok(())
    }

    /// Closes the pool (waits for connections in use to come back).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Starts the writer task (must be called inside a Tokio runtime). `capacity` bounds the
/// queue (at least 1). The writer exits once every [`StoreHandle`] clone is dropped and
/// everything queued is written; [`WriterTask::finish`] waits for that.
pub fn spawn_writer(store: Store, capacity: usize) -> (StoreHandle, WriterTask) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let counters = Arc::new(Counters::default());
    let join = tokio::spawn(run_writer(store, rx, Arc::clone(&counters)));
    (StoreHandle { tx, counters }, WriterTask { join })
}

/// Upper bounds (seconds) of the batch write time histogram.
pub const WRITE_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];

/// What the writer reports about itself, shared with its handles.
#[derive(Debug)]
struct Counters {
    /// Exposure rows written.
    written: AtomicU64,
    /// Batch writes that failed (each retry counts).
    failures: AtomicU64,
    /// Whether the batch in hand has failed and not yet been written: the store is
    /// reachable for reads perhaps, but not taking writes (disk full, schema broken).
    failing: AtomicBool,
    /// Time per successful batch write.
    write_latency: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            written: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            write_latency: Histogram::new(WRITE_BUCKETS),
        }
    }
}

async fn run_writer(store: Store, mut rx: mpsc::Receiver<Record>, counters: Arc<Counters>) -> u64 {
    let mut total = 0u64;
    let mut batch = Vec::with_capacity(MAX_EXTRA_PER_BATCH + 1);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() <= MAX_EXTRA_PER_BATCH {
            match rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        let mut delay = INITIAL_BACKOFF;
        loop {
            let started = std::time::Instant::now();
            match store.write_batch_counted(&batch).await {
                Ok(exposures) => {
                    counters
                        .write_latency
                        .record_micros(started.elapsed().as_micros() as u64);
                    counters.written.fetch_add(exposures, Ordering::Relaxed);
                    counters.failing.store(false, Ordering::Relaxed);
                    total += batch.len() as u64;
                    break;
                }
                Err(error) => {
                    counters.failures.fetch_add(1, Ordering::Relaxed);
                    counters.failing.store(true, Ordering::Relaxed);
                    tracing::error!(
                        %error,
                        records = batch.len(),
                        retry_in_ms = delay.as_millis() as u64,
                        "store write failed; keeping the batch and retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
        batch.clear();
    }
    total
}

/// A producer's handle on the writer queue. Cheap to clone. The writer runs until every
/// clone is dropped, so long-lived state that only reads the counters (metrics) should
/// hold [`WriterStats`] instead.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Record>,
    counters: Arc<Counters>,
}

impl StoreHandle {
    /// Queues a record; waits while the queue is full. `Err(Closed)` if the writer is gone.
    pub async fn send(&self, record: Record) -> Result<(), StoreError> {
        self.tx.send(record).await.map_err(|_| StoreError::Closed)
    }

    /// Records waiting in the queue (not counting the batch being written).
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Exposure rows written so far (duplicates of an existing display id not counted).
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// A read-only view of the counters that does not keep the writer alive.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            tx: self.tx.downgrade(),
            counters: Arc::clone(&self.counters),
        }
    }
}

/// The writer's counters (for metrics), without a hold on the queue: unlike a
/// [`StoreHandle`], it does not delay [`WriterTask::finish`].
#[derive(Debug, Clone)]
pub struct WriterStats {
    tx: mpsc::WeakSender<Record>,
    counters: Arc<Counters>,
}

impl WriterStats {
    /// Records waiting in the queue (0 once the writer has exited).
    pub fn queue_depth(&self) -> usize {
        self.tx
            .upgrade()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Exposure rows written so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Batch writes that failed so far (every retry counts).
    pub fn write_failures(&self) -> u64 {
        self.counters.failures.load(Ordering::Relaxed)
    }

    /// Whether the writer's current batch has failed and is waiting to be retried.
    pub fn failing(&self) -> bool {
        self.counters.failing.load(Ordering::Relaxed)
    }

    /// Time per successful batch write.
    pub fn write_latency(&self) -> &Histogram {
        &self.counters.write_latency
    }
}

/// The running writer; [`finish`](WriterTask::finish) it at shutdown.
#[derive(Debug)]
pub struct WriterTask {
    join: JoinHandle<u64>,
}

impl WriterTask {
    /// Waits until every [`StoreHandle`] is dropped and the queue is drained and written;
    /// returns the number of records written (of every kind). While the database is down
    /// this keeps waiting (the writer retries), so bound it with a timeout if needed.
    pub async fn finish(self) -> Result<u64, StoreError> {
        self.join.await.map_err(StoreError::Writer)
    }
}
