//! The rows the store writes and reads, and how each maps to its table's columns.
//! Times are [`Timestamp`]s here and RFC 3339 text in the database.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::bulk;
use crate::timestamp::Timestamp;

/// One display decision (docs/store.md#exposures), as `replay --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExposureRow {
    pub display_id: String,
    pub ts: Timestamp,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRow {
    pub call_id: String,
    pub deal_id: Option<String>,
    pub rep_id: Option<String>,
    /// The call's context as a JSON object.
    pub context: String,
    pub started_at: Timestamp,
}

/// Rep feedback on a displayed card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRow {
    pub display_id: String,
    pub ts: Timestamp,
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
    pub closed_at: Option<Timestamp>,
    /// When the CRM last changed the deal, if it said; orders the updates of one deal.
    pub updated_at: Option<Timestamp>,
    pub received_at: Timestamp,
}

/// A record the database rejected for good (docs/store.md#dead_letters).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterRow {
    pub ts: Timestamp,
    /// The [`Record`] as JSON.
    pub record: String,
    /// The database's error.
    pub error: String,
}

/// A write for the writer task. Serialized as JSON (tagged by `kind`) in the spill file and
/// in dead letters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
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
        ended_at: Timestamp,
    },
    Feedback(FeedbackRow),
}

impl ExposureRow {
    /// The row logged for one decision of a call, made at `ts`.
    pub fn from_decision(
        info: &crate::session::CallInfo,
        d: &crate::session::Decision,
        display_id: String,
        ts: Timestamp,
        engine_us: u64,
        library_version: &str,
    ) -> ExposureRow {
        ExposureRow {
            display_id,
            ts,
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
        .bind(e.ts.to_string())
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
        .bind(o.closed_at.map(|t| t.to_string()))
        .bind(o.received_at.to_string())
        .bind(o.updated_at.map(|t| t.to_string()))
}

pub(super) fn exposure_from_row(row: &AnyRow) -> Result<ExposureRow, sqlx::Error> {
    Ok(ExposureRow {
        display_id: row.try_get("display_id")?,
        ts: timestamp(row, "ts")?,
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

pub(super) fn feedback_from_row(row: &AnyRow) -> Result<FeedbackRow, sqlx::Error> {
    Ok(FeedbackRow {
        display_id: row.try_get("display_id")?,
        ts: timestamp(row, "ts")?,
        action: row.try_get("action")?,
    })
}

pub(super) fn outcome_from_row(row: &AnyRow) -> Result<OutcomeRow, sqlx::Error> {
    Ok(OutcomeRow {
        deal_id: row.try_get("deal_id")?,
        outcome: row.try_get("outcome")?,
        amount: row.try_get("amount")?,
        currency: row.try_get("currency")?,
        closed_at: optional_timestamp(row, "closed_at")?,
        updated_at: optional_timestamp(row, "updated_at")?,
        received_at: timestamp(row, "received_at")?,
    })
}

pub(super) fn dead_letter_from_row(row: &AnyRow) -> Result<DeadLetterRow, sqlx::Error> {
    Ok(DeadLetterRow {
        ts: timestamp(row, "ts")?,
        record: row.try_get("record")?,
        error: row.try_get("error")?,
    })
}

pub(super) fn call_from_row(row: &AnyRow) -> Result<(CallRow, Option<Timestamp>), sqlx::Error> {
    let ended_at = optional_timestamp(row, "ended_at")?;
    let call = CallRow {
        call_id: row.try_get("call_id")?,
        deal_id: row.try_get("deal_id")?,
        rep_id: row.try_get("rep_id")?,
        context: row.try_get("context")?,
        started_at: timestamp(row, "started_at")?,
    };
    Ok((call, ended_at))
}

/// Reads a nullable timestamp column.
pub(super) fn optional_timestamp(
    row: &AnyRow,
    column: &str,
) -> Result<Option<Timestamp>, sqlx::Error> {
    let text: Option<String> = row.try_get(column)?;
    match text {
        Some(_) => timestamp(row, column).map(Some),
        None => Ok(None),
    }
}

/// Reads a timestamp column; text that is not a timestamp is a decode error naming it.
pub(super) fn timestamp(row: &AnyRow, column: &str) -> Result<Timestamp, sqlx::Error> {
    let text: String = row.try_get(column)?;
    Timestamp::parse(&text).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(e),
    })
}
