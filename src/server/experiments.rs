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
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::http::query_param;
use crate::library::Unit;
use crate::outcomes;
use crate::report::{self, ExperimentDef, Metric, ReportOptions, render};
use crate::store::now_rfc3339;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `POST /v1/outcomes`: one outcome object or an array; 400 names the index and field of
/// the first problem and saves nothing; 200 `{"saved": n}` once every outcome is committed.
pub(super) async fn post_outcomes(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
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
    let received_at = now_rfc3339();
    let rows: Vec<_> = parsed
        .into_iter()
        .map(|o| o.into_row(&received_at))
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
            let first = arms
                .iter()
                .filter_map(|(_, c)| c.map(|c| c.first_ts.as_str()))
                .min();
            let last = arms
                .iter()
                .filter_map(|(_, c)| c.map(|c| c.last_ts.as_str()))
                .max();
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

/// Report options from the query string; the message names the bad parameter.
fn options(query: &str) -> Result<ReportOptions, String> {
    let mut opts = match query_param(query, "as_of") {
        Some(s) => ReportOptions::new(
            report::parse_date(s)
                .ok_or_else(|| format!("`as_of`: expected YYYY-MM-DD, got {s:?}"))?,
        ),
        None => ReportOptions::today(),
    };
    if let Some(s) = query_param(query, "window_days") {
        opts.window_days = s
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=3650).contains(d))
            .ok_or_else(|| {
                format!("`window_days`: expected a number of days from 1 to 3650, got {s:?}")
            })?;
    }
    if let Some(s) = query_param(query, "metric") {
        opts.metric = crate::names::parse_name::<Metric>(s)
            .ok()
            .ok_or_else(|| format!("`metric`: expected `closed` or `matured`, got {s:?}"))?;
    }
    if let Some(s) = query_param(query, "seq_tuning") {
        opts.seq_tuning = s
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(f64::from)
            .ok_or_else(|| format!("`seq_tuning`: expected a positive whole number, got {s:?}"))?;
    }
    Ok(opts)
}

/// `GET /v1/experiments/{key}/report[?format=csv]`.
pub(super) async fn report(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let format = match query_param(&query, "format") {
        None | Some("json") => "json",
        Some("csv") => "csv",
        // The lift forest plot and the cumulative timeline, for the dashboard.
        Some("svg") => "svg",
        Some("timeline") => "timeline",
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`format`: expected `json`, `csv`, `svg` or `timeline`, got {other:?}"),
            );
        }
    };
    let opts = match options(&query) {
        Ok(o) => o,
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
    if format == "timeline" {
        let store = state.store();
        let data = async {
            let groups = store.exposure_groups(&def.key, &opts.cutoff()).await?;
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
    if format == "svg" {
        return (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            report::svg::forest(&r),
        )
            .into_response();
    }
    if format == "csv" {
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
