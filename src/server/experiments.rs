//! Experiment routes: the CRM outcome webhook (`POST /v1/outcomes`, admin), the experiment
//! list (`GET /v1/experiments`, manager) and a report (`GET /v1/experiments/{key}/report`,
//! manager; `?format=csv`, `window_days`, `as_of`, `metric`, `seq_tuning`).
//!
//! Variants and weights come from the loaded library; exposures and outcomes from the
//! store. Outcomes are written directly (not through the exposure queue) and the webhook
//! answers only once they are committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::library::Unit;
use crate::names;
use crate::outcomes;
use crate::report::{self, ExperimentDef, ReportOptions, ReportParams, render};
use crate::timestamp::Timestamp;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Whether the request says its body is JSON (`application/json`, parameters such as
/// `charset` allowed). Required so that a page on another site cannot post outcomes with a
/// form or a `text/plain` fetch, which browsers send without asking first.
fn is_json(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// `POST /v1/outcomes`: one outcome object or an array; 415 unless the body is declared
/// JSON; 400 names the index and field of the first problem and saves nothing; 200
/// `{"saved": n}` once every outcome is committed.
pub(super) async fn post_outcomes(
    State(state): State<Arc<AppState>>,
    headers: header::HeaderMap,
    body: Bytes,
) -> Response {
    if !is_json(&headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the outcomes with `Content-Type: application/json`",
        );
    }
    let parsed = match outcomes::parse_body(&body) {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": e.to_string(), "index": e.index, "field": e.field })),
            )
                .into_response();
        }
    };
    let received_at = Timestamp::now();
    let rows: Vec<_> = parsed
        .into_iter()
        .map(|o| o.into_row(received_at))
        .collect();
    match state.store().insert_outcomes(&rows).await {
        Ok(()) => Json(json!({ "saved": rows.len() })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "outcomes not saved");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("outcomes not saved: {e}"),
            )
        }
    }
}

/// `GET /v1/experiments`: the loaded library's experiments with their status and exposure
/// counts (units are deals, or reps for `unit: rep`).
pub(super) async fn list(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.engine.load();
    let defs = ExperimentDef::from_library(engine.library());
    let counts = match state.store().arm_counts().await {
        Ok(c) => c,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let mut by_arm: BTreeMap<(&str, &str), &crate::store::ArmCountRow> = BTreeMap::new();
    for c in &counts {
        if let Some(v) = c.variant.as_deref() {
            by_arm.insert((c.experiment_key.as_str(), v), c);
        }
    }
    let experiments: Vec<_> = defs
        .iter()
        .map(|d| {
            let arms: Vec<_> = d
                .variants
                .iter()
                .map(|v| (v, by_arm.get(&(d.key.as_str(), v.id.as_str())).copied()))
                .collect();
            let units = |c: &crate::store::ArmCountRow| match d.unit {
                Unit::Deal => c.deals,
                Unit::Rep => c.reps,
            };
            let exposures: i64 = arms
                .iter()
                .filter_map(|(_, c)| c.map(|c| c.exposures))
                .sum();
            let first = arms.iter().filter_map(|(_, c)| c.map(|c| c.first_ts)).min();
            let last = arms.iter().filter_map(|(_, c)| c.map(|c| c.last_ts)).max();
            json!({
                "key": d.key,
                "card_id": d.card_id,
                "unit": d.unit,
                "status": if exposures > 0 { "running" } else { "not_started" },
                "units": arms.iter().filter_map(|(_, c)| c.map(units)).sum::<i64>(),
                "exposures": exposures,
                "first_exposure": first,
                "last_exposure": last,
                "report": format!("/v1/experiments/{}/report", d.key),
                "variants": arms.iter().map(|(v, c)| json!({
                    "id": v.id,
                    "weight": v.weight,
                    "control": v.control,
                    "units": c.map_or(0, units),
                    "exposures": c.map_or(0, |c| c.exposures),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({
        "library_version": engine.library().version(),
        "experiments": experiments,
    }))
    .into_response()
}

/// What `GET /v1/experiments/{key}/report` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReportFormat {
    #[default]
    Json,
    Csv,
    /// The lift forest plot, for the dashboard.
    Svg,
    /// The cumulative timeline, for the dashboard.
    Timeline,
}

/// The report route's query: the output format and the report options (other parameters,
/// such as `token`, are left to their owners).
#[derive(Debug, Deserialize)]
pub(super) struct ReportQuery {
    format: Option<String>,
    #[serde(flatten)]
    params: ReportParams,
}

impl ReportQuery {
    /// The format and the options; the message names the bad parameter.
    fn read(&self) -> Result<(ReportFormat, ReportOptions), String> {
        let format = match &self.format {
            None => ReportFormat::default(),
            Some(s) => names::parse_name(s)
                .map_err(|e| format!("`format`: expected {}, got {s:?}", e.alternatives()))?,
        };
        let opts = self
            .params
            .options(ReportOptions::today().as_of)
            .map_err(|e| e.to_string())?;
        Ok((format, opts))
    }
}

/// `GET /v1/experiments/{key}/report[?format=csv]`.
pub(super) async fn report(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Response {
    let read = match &query {
        Ok(Query(q)) => q.read(),
        Err(rejection) => Err(rejection.body_text()),
    };
    let (format, opts) = match read {
        Ok(read) => read,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let def = {
        let engine = state.engine.load();
        ExperimentDef::from_library(engine.library())
            .into_iter()
            .find(|d| d.key == key)
    };
    let Some(def) = def else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no experiment `{key}` in the loaded card library"),
        );
    };
    if format == ReportFormat::Timeline {
        let store = state.store();
        let data = async {
            let groups = store.exposure_groups(&def.key, opts.cutoff()).await?;
            let outcomes = store.latest_outcomes(&def.key).await?;
            Ok::<_, crate::store::StoreError>((groups, outcomes))
        };
        return match data.await {
            Ok((groups, outcomes)) => (
                [
                    (header::CONTENT_TYPE, "image/svg+xml"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                report::svg::timeline(&def, &groups, &outcomes),
            )
                .into_response(),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        };
    }
    let r = match report::build(state.store(), &def, &opts).await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    if format == ReportFormat::Svg {
        return (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            report::svg::forest(&r),
        )
            .into_response();
    }
    if format == ReportFormat::Csv {
        match render::csv(std::slice::from_ref(&r)) {
            Ok(text) => (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                text,
            )
                .into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    } else {
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            render::json(&r),
        )
            .into_response()
    }
}
