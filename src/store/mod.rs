//! Store: exposures, feedback, outcomes and calls in SQLite (default) or PostgreSQL.
//!
//! Design:
//! - One [`sqlx::AnyPool`] serves both databases with the *same* migrations
//!   (`migrations/`, embedded with `sqlx::migrate!`, so the binary needs no files) and the
//!   same SQL strings. Placeholders are `$1, $2, …`: PostgreSQL's native form, which
//!   sqlx's SQLite driver also binds by number. Only portable types are used: TEXT,
//!   BIGINT, BOOLEAN, DOUBLE PRECISION; timestamps are TEXT in RFC 3339 UTC with
//!   milliseconds ([`Timestamp`]), so they sort as strings. Conflicts use
//!   `ON CONFLICT … DO NOTHING / DO UPDATE` (SQLite ≥ 3.24 and PostgreSQL).
//! - One quirk of the Any driver: it cannot *read* an SQLite column declared BOOLEAN, so
//!   queries select `CASE WHEN shown THEN 1 ELSE 0 END` (an integer on both databases).
//! - SQLite is opened with `mode=rwc` (the file is created), WAL journal mode (set once at
//!   open), `synchronous = NORMAL` and a 5 s `busy_timeout` on every connection; write
//!   transactions start with `BEGIN IMMEDIATE` so a busy database waits instead of failing
//!   on a stale snapshot.
//! - Writes from the hot path go through [`spawn_writer_with_spill`]: producers hold a
//!   cloneable [`StoreHandle`] over a bounded channel; when it is full, records go to a
//!   bounded spill file on local disk, and only when both are full does `send` wait
//!   (backpressure, never a silent drop). One task, on its own connection, drains the queue
//!   then the spill in batches of up to 513 records per transaction and retries a batch
//!   that failed for a transient reason with backoff (100 ms doubling to 5 s) until it
//!   succeeds; a batch the database rejects is retried record by record and a record
//!   rejected for good becomes a dead letter. Exposure and feedback inserts are
//!   idempotent, so a retried batch (or a spill re-read after a crash) is safe.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Row};

use crate::timestamp::Timestamp;

mod bulk;
mod experiments;
mod live;
mod rows;
mod spill;
mod sql;
#[cfg(test)]
mod tests;
mod url;
mod writer;

pub use bulk::FinishedCall;
pub use experiments::{ArmCountRow, ExposureGroupRow};
pub use live::LiveSummary;
pub use rows::{CallRow, DeadLetterRow, ExposureRow, FeedbackRow, OutcomeRow, Record};
pub(crate) use rows::{bind_exposure, bind_outcome};
pub use url::default_spill_dir;
pub use writer::{
    SpillOptions, StoreHandle, WRITE_BUCKETS, WriterStats, WriterTask, spawn_writer,
    spawn_writer_with_spill,
};

use rows::{
    call_from_row, dead_letter_from_row, exposure_from_row, feedback_from_row, outcome_from_row,
};
use sql::*;
pub use url::redact;
use url::{Backend, prepare_url};

/// The embedded migrations (`migrations/` at the crate root).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// SQLite waits this long (ms) for a lock before reporting the database busy.
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";

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
    /// The spill directory or file could not be opened.
    #[error("cannot open the spill in {path}: {source}")]
    Spill {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The writer task panicked or was cancelled.
    #[error("the store writer task failed: {0}")]
    Writer(#[source] tokio::task::JoinError),
}

impl StoreError {
    /// Whether trying again can succeed: anything but the database rejecting the record
    /// itself. Connection, pool timeout, lock or busy, disk full and I/O errors are
    /// transient; constraint, data and encoding errors are for good.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Query { source, .. } => !rejects_for_good(source),
            _ => true,
        }
    }
}

/// A constraint, data or encoding error: the same record will fail again.
fn rejects_for_good(error: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    match error {
        sqlx::Error::Encode(_) => true,
        sqlx::Error::Database(db) => {
            if matches!(
                db.kind(),
                ErrorKind::UniqueViolation
                    | ErrorKind::ForeignKeyViolation
                    | ErrorKind::NotNullViolation
                    | ErrorKind::CheckViolation
            ) {
                return true;
            }
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                // SQLSTATE classes 22 data exception (bad encoding, out of range), 23
                // integrity constraint, 54 program limit (a value too large to index).
                return matches!(pg.code().get(..2), Some("22" | "23" | "54"));
            }
            // SQLite result codes (the primary code is the low byte): TOOBIG 18,
            // CONSTRAINT 19 (also a trigger's RAISE), MISMATCH 20, RANGE 25.
            db.try_downcast_ref::<sqlx::sqlite::SqliteError>()
                .and_then(sqlx::error::DatabaseError::code)
                .and_then(|code| code.parse::<u32>().ok())
                .is_some_and(|code| matches!(code & 0xff, 18 | 19 | 20 | 25))
        }
        _ => false,
    }
}

fn query_err(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

/// Pool options for `max` connections; SQLite connections get their pragmas.
fn pool_options(backend: Backend, max: u32) -> AnyPoolOptions {
    // A bounded wait for a connection: while the database is down, callers (the writer's
    // retries, readers) get an error instead of hanging.
    let options = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        // A failed COMMIT (SQLITE_FULL, a dropped link) can leave a connection inside a
        // transaction; back in the pool, every later BEGIN on it would fail and wedge
        // whoever writes next. Such a connection is closed instead (the pool opens a
        // fresh one).
        .after_release(|conn, _meta| Box::pin(async move { Ok(!conn.is_in_transaction()) }));
    match backend {
        Backend::Sqlite => options.after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(SQLITE_BUSY_TIMEOUT).execute(&mut *conn).await?;
                Ok(())
            })
        }),
        Backend::Postgres => options,
    }
}

/// Switches an SQLite file to WAL. WAL is a property of the file: set once, on one
/// connection, before the pool opens others (switching needs the only connection).
async fn set_wal(connect_url: &str, url: &str) -> Result<(), StoreError> {
    let open_err = |source| StoreError::Open {
        url: redact(url),
        source,
    };
    let mut conn = AnyConnection::connect(connect_url)
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
    conn.close().await.map_err(open_err)
}

/// A connection pool to the store database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// The writer's own connection, opened on first use: the writer never waits for a
    /// connection behind readers (reports, `/v1/live`), nor they behind it.
    writer_pool: AnyPool,
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

        if backend == Backend::Sqlite {
            set_wal(&connect_url, url).await?;
        }
        let pool = pool_options(backend, 8)
            .connect(&connect_url)
            .await
            .map_err(open_err)?;
        // An in-memory SQLite database exists once per pool: it keeps the one pool.
        let writer_pool = if connect_url.contains(":memory:") {
            pool.clone()
        } else {
            pool_options(backend, 1)
                .connect_lazy(&connect_url)
                .map_err(open_err)?
        };
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: redact(url),
                source,
            })?;
        Ok(Store {
            pool,
            writer_pool,
            backend,
        })
    }

    /// The same database, with the writer's connection as its only one.
    pub(super) fn for_writer(&self) -> Store {
        Store {
            pool: self.writer_pool.clone(),
            writer_pool: self.writer_pool.clone(),
            backend: self.backend,
        }
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
                        .bind(c.started_at.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(query_err("call upsert"))?;
                }
                Record::CallEnded { call_id, ended_at } => {
                    sqlx::query(END_CALL)
                        .bind(ended_at.to_string())
                        .bind(call_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(query_err("call end"))?;
                }
                Record::Feedback(f) => {
                    sqlx::query(INSERT_FEEDBACK)
                        .bind(&f.display_id)
                        .bind(f.ts.to_string())
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
    ) -> Result<Option<(CallRow, Option<Timestamp>)>, StoreError> {
        let row = sqlx::query(SELECT_CALL)
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("call read"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        call_from_row(&row)
            .map(Some)
            .map_err(query_err("call read"))
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

    /// Stores a record the database rejected for good (as JSON) with the error.
    pub async fn insert_dead_letter(
        &self,
        ts: Timestamp,
        record: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(INSERT_DEAD_LETTER)
            .bind(ulid::Ulid::new().to_string())
            .bind(ts.to_string())
            .bind(record)
            .bind(error)
            .execute(&self.pool)
            .await
            .map_err(query_err("dead letter insert"))?;
        Ok(())
    }

    /// The dead letters, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetterRow>, StoreError> {
        self.fetch_rows(
            sqlx::query(SELECT_DEAD_LETTERS),
            "dead letters read",
            dead_letter_from_row,
        )
        .await
    }

    /// Runs a read and maps each row; errors name `what`.
    pub(super) async fn fetch_rows<T>(
        &self,
        query: rows::AnyQuery<'_>,
        what: &'static str,
        from_row: fn(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = query.fetch_all(&self.pool).await.map_err(query_err(what))?;
        rows.iter()
            .map(from_row)
            .collect::<Result<_, _>>()
            .map_err(query_err(what))
    }

    /// Closes the pools (waits for connections in use to come back).
    pub async fn close(&self) {
        self.writer_pool.close().await;
        self.pool.close().await;
    }
}
