//! HTTP routes and the WebSocket upgrade handlers.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tracing::{Instrument, debug, info_span};

use super::{AppState, ConnPermit, demo as demo_call, experiments, ingest, subscribe};
use crate::config::Role;
use crate::protocol::MAX_ID_LEN;
use crate::protocol::adapters::{Adapter, Format, SetupParams, check_encoding};

pub(super) fn router(state: Arc<AppState>) -> axum::Router {
    let guard = |role| from_fn_with_state((state.clone(), role), require);
    let public = axum::Router::new()
        .route("/", get(panel))
        .route("/dashboard", get(dashboard))
        .route("/assets/{name}", get(asset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz));
    let ingest = axum::Router::new()
        .route("/v1/stream", get(stream))
        .route_layer(guard(Role::Ingest));
    let rep = axum::Router::new()
        .route("/v1/calls/{call_id}/cards", get(call_cards))
        .route("/v1/demo", get(demo))
        .route_layer(guard(Role::Rep));
    let manager = axum::Router::new()
        .route("/v1/cards", get(cards))
        .route("/v1/cards/status", get(cards_status))
        .route("/v1/live", get(live))
        .route("/v1/experiments", get(experiments::list))
        .route("/v1/experiments/{key}/report", get(experiments::report))
        .route_layer(guard(Role::Manager));
    let admin = axum::Router::new()
        .route("/v1/admin/reload", post(admin_reload))
        .route("/v1/outcomes", post(experiments::post_outcomes))
        .route_layer(guard(Role::Admin));
    public
        .merge(admin)
        .merge(ingest)
        .merge(rep)
        .merge(manager)
        .layer(from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

/// Every page, asset and answer: no framing, no sniffing, no referrer, and scripts, styles
/// and connections from this origin only (`blob:` images: the dashboard's charts are
/// fetched with the token header and shown from blobs).
const SECURITY_HEADERS: [(&str, &str); 3] = [
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

/// The browser-facing checks every request passes before routing: a `Host` (and, with
/// no tokens configured, a loopback one: DNS rebinding), and an allowed `Origin` on
/// WebSocket upgrades and non-GET requests (another site's page). Adds the security
/// headers to the answer.
async fn edge(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let mut response = match edge_check(&state, &req) {
        Ok(()) => next.run(req).await,
        Err((status, message)) => (status, Json(json!({ "error": message }))).into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

fn edge_check(state: &AppState, req: &Request) -> Result<(), (StatusCode, String)> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .ok_or((
            StatusCode::BAD_REQUEST,
            "a `Host` header is required".to_string(),
        ))?;
    if state.tokens.is_empty() && !is_loopback_host(host) {
        // Without tokens anyone who can reach the port is trusted; a page on another
        // site could otherwise reach it through a rebound DNS name.
        return Err((
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "host `{host}` is not a loopback name; without tokens only localhost, 127.0.0.0/8 and [::1] are served"
            ),
        ));
    }
    let safe = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if safe && !hyper_tungstenite::is_upgrade_request(req) {
        return Ok(());
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        // Not a browser (a CRM, a bridge, curl): nothing to check.
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("null");
    let own = format!("http://{host}");
    let allowed = origin != "null"
        && (origin.eq_ignore_ascii_case(&own)
            || state.http.allowed_origins.iter().any(|o| o == origin));
    if allowed {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            format!("origin `{origin}` is not allowed: add it to `allowed_origins`"),
        ))
    }
}

/// `localhost`, `127.0.0.0/8` or `[::1]`, with any port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // `[::1]:7700`: the address is inside the brackets.
        match rest.split_once(']') {
            Some((addr, port)) if port.is_empty() || port.starts_with(':') => addr,
            _ => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Rejects a request whose token does not allow `role`, before any handler or upgrade.
async fn require(
    State((state, role)): State<(Arc<AppState>, Role)>,
    req: Request,
    next: Next,
) -> Response {
    // Query-string tokens only on upgrades: elsewhere they would end up in proxy logs.
    let query = req
        .uri()
        .query()
        .filter(|_| hyper_tungstenite::is_upgrade_request(&req));
    match state.tokens.authorize(req.headers(), query, role) {
        Ok(scope) => {
            let mut req = req;
            req.extensions_mut().insert(scope);
            next.run(req).await
        }
        Err(status) => {
            state
                .stats
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let message = if status == StatusCode::FORBIDDEN {
                format!(
                    "this token's role does not allow this route (needs {})",
                    role.as_str()
                )
            } else {
                "missing or unknown token: send `Authorization: Bearer <token>` (or `?token=` on a WebSocket upgrade)"
                    .to_string()
            };
            (status, Json(json!({ "error": message }))).into_response()
        }
    }
}

const PANEL_HTML: &str = include_str!("../web/panel.html");
const DASHBOARD_HTML: &str = include_str!("../web/dashboard.html");
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("../web/dashboard.css"),
    ),
    (
        "panel.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/panel.js"),
    ),
    (
        "panel.css",
        "text/css; charset=utf-8",
        include_str!("../web/panel.css"),
    ),
];

/// The rep panel: a static shell holding no data.
async fn panel() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PANEL_HTML,
    )
        .into_response()
}

/// The manager dashboard: a static shell holding no data.
async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        DASHBOARD_HTML,
    )
        .into_response()
}

/// `GET /v1/live`: live calls and the last hour's decisions, for the dashboard.
async fn live(State(state): State<Arc<AppState>>) -> Response {
    let since = crate::timestamp::Timestamp::now() - time::Duration::hours(1);
    match state.store().live_summary(since).await {
        Ok(summary) => Json(json!({
            "calls_active": state.calls.active_calls(),
            "since": since,
            "shown_per_minute": summary.shown_per_minute,
            "top_cards": summary.top_cards,
            "by_reason": summary.by_reason,
            "calls": summary.calls,
        }))
        .into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": format!("store: {error}") })),
        )
            .into_response(),
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// `/metrics` on the main port: 404 when `metrics_listen` serves it elsewhere.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if state.http.separate_metrics {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    metrics_page(State(state)).await
}

/// The Prometheus text for `/metrics`, on whichever listener serves it.
pub(super) async fn metrics_page(State(state): State<Arc<AppState>>) -> Response {
    let snapshot = state.metrics_snapshot().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        super::metrics::render(
            &state.metrics,
            &snapshot,
            state.writer_stats.write_latency(),
        ),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    // The library is loaded before the port is bound; what can fail later is the store.
    if state.store_ok().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let s = state.metrics_snapshot().await;
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "store not writable; {} records queued, {} bytes spilled\n",
                s.store_queue_depth, s.store_spill_bytes
            ),
        )
            .into_response()
    }
}

async fn cards(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let engine = state.engine.load();
    let lib = engine.library();
    let cards: Vec<_> = lib
        .cards()
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "title": c.title,
                "category": c.category.as_str(),
                "priority": c.priority,
                "experiment": c.experiment.as_ref().map(|e| json!({
                    "key": e.key,
                    "unit": e.unit,
                    "variants": e.variants.iter().map(|v| json!({
                        "id": v.id, "weight": v.weight, "control": !v.show,
                    })).collect::<Vec<_>>(),
                })),
            })
        })
        .collect();
    Json(json!({
        "version": lib.version(),
        "source": lib.source(),
        "deck": {
            "max_cards_per_call": lib.deck().max_cards_per_call,
            "min_gap_seconds": lib.deck().min_gap_seconds,
            "max_visible": lib.deck().max_visible,
        },
        "cards": cards,
    }))
}

async fn cards_status(State(state): State<Arc<AppState>>) -> Json<super::LoadStatus> {
    Json(
        state
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    )
}

/// `POST /v1/admin/reload`: 200 with the status when the new library is live, 422 with
/// it (and the old library still live) when it is invalid.
async fn admin_reload(State(state): State<Arc<AppState>>) -> Response {
    let status = super::reload::reload(&state).await;
    let code = if status.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (code, Json(status)).into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// Performs the WebSocket handshake and spawns `task` on the upgraded socket.
fn upgrade<F, Fut>(
    state: &Arc<AppState>,
    mut req: Request,
    span: tracing::Span,
    task: F,
) -> Response
where
    F: FnOnce(hyper_tungstenite::HyperWebsocketStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if !hyper_tungstenite::is_upgrade_request(&req) {
        return bad_request("this endpoint needs a WebSocket upgrade");
    }
    let permit = req.extensions().get::<ConnPermit>().cloned();
    let (response, websocket) = match hyper_tungstenite::upgrade(&mut req, Some(state.ws_config()))
    {
        Ok(x) => x,
        Err(error) => return bad_request(&format!("bad WebSocket handshake: {error}")),
    };
    let st = state.clone();
    state.tasks.spawn(
        async move {
            let _permit = permit;
            match websocket.await {
                Ok(ws) => {
                    st.stats
                        .websockets
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    task(ws).await;
                    st.stats
                        .websockets
                        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(error) => debug!(%error, "WebSocket upgrade failed"),
            }
        }
        .instrument(span),
    );
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::new(body))
}

/// `/v1/stream`'s query: the input format and the call set-up.
#[derive(Debug, Deserialize)]
struct StreamQuery {
    format: Option<String>,
    #[serde(flatten)]
    setup: SetupParams,
}

impl StreamQuery {
    fn adapter(self, raw: &str) -> Result<Adapter, String> {
        check_encoding(raw)?;
        let format = match self.format {
            None => Format::Native,
            Some(name) => name.parse::<Format>().map_err(|e| e.to_string())?,
        };
        Ok(Adapter::new(format, self.setup.setup()?))
    }
}

async fn stream(
    State(state): State<Arc<AppState>>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    req: Request,
) -> Response {
    // The input adapter (docs/protocol.md#provider-formats): refused before the upgrade
    // when unknown or misconfigured.
    let raw = req.uri().query().unwrap_or("");
    let adapter = match query.map_err(|r| r.body_text()) {
        Ok(Query(query)) => query.adapter(raw),
        Err(e) => Err(e),
    };
    let adapter = match adapter {
        Ok(adapter) => adapter,
        Err(e) => return bad_request(&e),
    };
    let Some(store) = state.store_handle() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let st = state.clone();
    upgrade(
        &state,
        req,
        info_span!("ingest", call_id = tracing::field::Empty),
        move |ws| ingest::run(st, ws, store, adapter),
    )
}

async fn call_cards(
    State(state): State<Arc<AppState>>,
    Path(call_id): Path<String>,
    req: Request,
) -> Response {
    if !crate::protocol::valid_id(&call_id) {
        return bad_request(&format!(
            "call id must be 1 to {MAX_ID_LEN} bytes without control characters"
        ));
    }
    let scope = req
        .extensions()
        .get::<super::RepScope>()
        .and_then(|s| s.0.clone());
    if let Some(rep) = &scope {
        // A rep token scoped to one rep reads only that rep's calls. A call not in the
        // store yet is left to the subscribe task.
        match state.store().call(&call_id).await {
            Ok(Some((call, _))) if call.rep_id.as_deref() != Some(rep.as_str()) => {
                state
                    .stats
                    .auth_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return (
                    StatusCode::FORBIDDEN,
                    Json(json!({ "error": "this token is for another rep's calls" })),
                )
                    .into_response();
            }
            Ok(_) => {}
            Err(error) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "error": format!("store: {error}") })),
                )
                    .into_response();
            }
        }
    }
    let Some(store) = state.store_handle() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let st = state.clone();
    let span = info_span!("subscriber", call_id = %call_id);
    let mut response = upgrade(&state, req, span, move |ws| {
        subscribe::run(st, ws, store, call_id, scope)
    });
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// `/v1/demo`'s query: which bundled call, how fast.
#[derive(Debug, Deserialize)]
struct DemoQuery {
    call: Option<String>,
    speed: Option<String>,
}

async fn demo(
    State(state): State<Arc<AppState>>,
    query: Result<Query<DemoQuery>, QueryRejection>,
    req: Request,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return bad_request(&rejection.body_text()),
    };
    let name = query.call.unwrap_or_else(|| "new-deal".to_string());
    if !demo_call::DEMO_CALLS.iter().any(|(n, _)| *n == name) {
        let known: Vec<&str> = demo_call::DEMO_CALLS.iter().map(|(n, _)| *n).collect();
        return bad_request(&format!(
            "unknown demo call `{name}`, expected one of {}",
            known.join(", ")
        ));
    }
    let speed = match query.speed.as_deref().map(str::parse::<f64>) {
        None => 1.0,
        Some(Ok(s)) if (0.1..=1000.0).contains(&s) => s,
        Some(_) => return bad_request("`speed` must be a number from 0.1 to 1000"),
    };
    let st = state.clone();
    upgrade(&state, req, info_span!("demo"), move |ws| {
        demo_call::run(st, ws, name, speed)
    })
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_with_any_port() {
        for host in [
            "localhost",
            "LOCALHOST:7700",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:7700",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "localhost.evil.example:7700",
            "10.0.0.1:7700",
            "[::1]x",
            "[::ffff:10.0.0.1]:80",
            "::1",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
