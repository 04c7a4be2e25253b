//! The network edge: one port for HTTP and WebSocket.
//!
//! [`run`] owns the accept loop (a semaphore permit is taken *before* `accept`, so the
//! connection limit holds under load), serves each connection with hyper, and routes with
//! axum. WebSocket upgrades are handed to `ingest` (a transcript producer; cards come back
//! on the same socket) or `subscribe` (a rep's panel receiving the same cards). Shutdown
//! is a future passed in by the caller: the loop stops accepting, every socket finishes the
//! message it is handling and closes with a close frame, and `run` returns once all
//! connections are done or the grace period ends. The store is drained by the caller after.

mod auth;
pub mod calls;
mod demo;
mod experiments;
mod http;
mod ingest;
pub mod metrics;
pub mod reload;
mod socket;
mod subscribe;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::Limits;
use crate::engine::Engine;
use crate::store::{Store, StoreHandle};

pub use auth::{RepScope, Tokens};
pub use calls::Registry;

/// Counters read by tests, `/readyz` and the metrics endpoint.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub websockets: AtomicU64,
    pub subscribers_dropped: AtomicU64,
    pub frames_oversized: AtomicU64,
    pub bad_messages: AtomicU64,
    pub auth_failures: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_error: AtomicU64,
    /// Requests whose handler panicked (answered 500).
    pub handler_panics: AtomicU64,
    /// Provider control messages ignored, unmapped speaker labels.
    pub adapters: crate::protocol::adapters::AdapterStats,
}

/// The result of the last library load, for `/v1/cards/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadStatus {
    pub ok: bool,
    pub version: String,
    pub loaded_at: String,
    pub errors: Vec<StatusError>,
}

/// One library error in the status JSON.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusError {
    /// Where: `file`, `line`, `column` in the JSON; line and column 0 for a problem with
    /// the directory or file as a whole.
    #[serde(flatten)]
    pub at: crate::location::Location,
    pub message: String,
}

impl StatusError {
    /// A problem with `path` as a whole (unreadable, or the engine could not be built).
    pub fn whole_file(path: &std::path::Path, message: String) -> StatusError {
        StatusError {
            at: crate::location::Location {
                file: path.display().to_string(),
                line: 0,
                column: 0,
            },
            message,
        }
    }
}

/// Browser-facing options of the HTTP edge (`allowed_origins`, `metrics_listen`).
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Origins besides the server's own allowed to open WebSockets and send non-GET
    /// requests, exact (`https://crm.example.com`).
    pub allowed_origins: Vec<String>,
    /// `/metrics` is served on its own listener ([`run_metrics`]); the main port answers
    /// it with 404.
    pub separate_metrics: bool,
}

/// Everything the connection handlers share.
pub struct AppState {
    pub engine: ArcSwap<Engine>,
    pub calls: Registry,
    pub limits: Limits,
    pub stats: Stats,
    pub metrics: metrics::Metrics,
    pub status: Mutex<LoadStatus>,
    tokens: Tokens,
    http: HttpOptions,
    reload_lock: tokio::sync::Mutex<()>,
    store: Store,
    /// Taken at shutdown so that the writer sees every producer gone and drains.
    store_handle: Mutex<Option<StoreHandle>>,
    /// Queue depth and rows written, without keeping the writer alive.
    writer_stats: crate::store::WriterStats,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    started: Instant,
}

impl AppState {
    pub fn new(
        engine: Engine,
        store: Store,
        handle: StoreHandle,
        limits: Limits,
        tokens: Tokens,
    ) -> Arc<AppState> {
        AppState::with_options(
            engine,
            store,
            handle,
            limits,
            tokens,
            HttpOptions::default(),
        )
    }

    /// As [`AppState::new`], with the HTTP edge's options.
    pub fn with_options(
        engine: Engine,
        store: Store,
        handle: StoreHandle,
        limits: Limits,
        tokens: Tokens,
        http: HttpOptions,
    ) -> Arc<AppState> {
        let status = LoadStatus {
            ok: true,
            version: engine.library().version().to_string(),
            loaded_at: crate::timestamp::Timestamp::now().to_string(),
            errors: Vec::new(),
        };
        Arc::new(AppState {
            engine: ArcSwap::from_pointee(engine),
            calls: Registry::new(
                limits.max_calls,
                limits.max_subscribers_per_call,
                Duration::from_secs(limits.call_grace_seconds),
            ),
            limits,
            stats: Stats::default(),
            metrics: metrics::Metrics::default(),
            status: Mutex::new(status),
            tokens,
            http,
            reload_lock: tokio::sync::Mutex::new(()),
            store,
            writer_stats: handle.stats(),
            store_handle: Mutex::new(Some(handle)),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            started: Instant::now(),
        })
    }

    /// A handle for one connection's records; `None` once shutdown has begun.
    fn store_handle(&self) -> Option<StoreHandle> {
        self.store_handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Releases the server's own store handle (shutdown).
    pub fn release_store(&self) {
        self.store_handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn ws_config(&self) -> WebSocketConfig {
        let max = self.limits.max_message_bytes;
        // Small read and write buffers: an idle call should cost kilobytes, not the
        // 128 KiB tungstenite reserves by default. The read buffer is allocated up front for
        // every socket and only bounds one read (a larger frame still arrives whole):
        // 1 KiB holds a whole partial and measured ~3 KiB less per idle call (BENCH.md).
        WebSocketConfig::default()
            .read_buffer_size(1024)
            .write_buffer_size(0)
            .max_write_buffer_size(max.saturating_mul(4).max(64 * 1024))
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
    }

    /// Whether the store takes writes, from the writer's state (its last write or check);
    /// no query per request, so `/readyz` and `/metrics` cannot load the database.
    pub async fn store_ok(&self) -> bool {
        self.writer_stats.store_ok().await
    }

    /// Current values for `/metrics`.
    pub async fn metrics_snapshot(&self) -> metrics::Snapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metrics::Snapshot {
            websockets: load(&self.stats.websockets),
            http_connections: load(&self.stats.connections),
            calls_active: self.calls.active_calls() as u64,
            calls_held: self.calls.len() as u64,
            store_queue_depth: self.writer_stats.queue_depth() as u64,
            exposures_written: self.writer_stats.written(),
            store_write_failures: self.writer_stats.write_failures(),
            store_dead_letters: self.writer_stats.dead_letters(),
            store_spill_bytes: self.writer_stats.spill_bytes(),
            store_spilled: self.writer_stats.spilled(),
            reloads_ok: load(&self.stats.reloads_ok),
            reloads_error: load(&self.stats.reloads_error),
            handler_panics: load(&self.stats.handler_panics),
            auth_failures: load(&self.stats.auth_failures),
            subscribers_dropped: load(&self.stats.subscribers_dropped),
            frames_oversized: load(&self.stats.frames_oversized),
            bad_messages: load(&self.stats.bad_messages),
            provider_ignored: self.stats.adapters.ignored(),
            unmapped_speakers: self.stats.adapters.unmapped_speakers(),
            store_ok: self.store_ok().await,
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Serves until `shutdown` resolves, then closes every connection (WebSockets with a close
/// frame) and returns when they are done or `shutdown_grace_seconds` have passed.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = state.shutdown.clone();
    let trigger = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let reaper_state = state.clone();
    let reaper_token = token.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = reaper_token.cancelled() => break,
                _ = tick.tick() => { reaper_state.calls.reap(); }
            }
        }
    });

    let router = http::router(state.clone());
    let permits = Arc::new(Semaphore::new(state.limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = token.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = token.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        keepalive(&stream);
        let state = state.clone();
        let router = router.clone();
        let token = token.clone();
        state.tasks.clone().spawn(
            serve_connection(stream, peer, state, router, token, permit)
                .instrument(info_span!("conn", %peer)),
        );
    }
    drop(listener);
    info!("stopped accepting; closing connections");
    state.tasks.close();
    let grace = Duration::from_secs(state.limits.shutdown_grace_seconds);
    if tokio::time::timeout(grace, state.tasks.wait())
        .await
        .is_err()
    {
        warn!(
            remaining = state.tasks.len(),
            "shutdown grace period over with connections still open"
        );
    }
    Ok(())
}

/// Serves `GET /metrics` alone on `listener` (`metrics_listen`) until the server shuts
/// down, so scrapes need not reach the public port.
pub async fn run_metrics(listener: TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(http::metrics_page))
        .with_state(state);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Runs the router on one request; a panic in a handler is answered with 500 and
/// counted, instead of dropping the connection without an answer (a CRM would retry).
async fn call_catching_panics(
    router: axum::Router,
    req: axum::extract::Request,
    stats: &Stats,
) -> axum::response::Response {
    use futures_util::FutureExt;
    use tower::ServiceExt;
    match std::panic::AssertUnwindSafe(router.oneshot(req))
        .catch_unwind()
        .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => {
            stats.handler_panics.fetch_add(1, Ordering::Relaxed);
            // The panic message itself went to stderr through the panic hook.
            warn!("a request handler panicked; answered 500");
            axum::response::IntoResponse::into_response((
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({ "error": "internal error" })),
            ))
        }
    }
}

/// A connection's permit, shared with the WebSocket task it may upgrade into.
#[derive(Clone)]
pub(crate) struct ConnPermit(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<AppState>,
    router: axum::Router,
    token: CancellationToken,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    state.stats.connections.fetch_add(1, Ordering::Relaxed);
    let permit = ConnPermit(Arc::new(permit));
    let st = state.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(permit.clone());
            let router = router.clone();
            let st = st.clone();
            async move {
                let response =
                    call_catching_panics(router, req.map(axum::body::Body::new), &st.stats).await;
                Ok::<_, std::convert::Infallible>(response)
            }
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = token.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        debug!(%error, %peer, "connection ended with an error");
    }
    state.stats.connections.fetch_sub(1, Ordering::Relaxed);
}

/// TCP keepalive on an accepted socket: probes after 60 s of silence, every 10 s. The
/// WebSocket pings notice a dead peer first; this also covers plain HTTP connections.
fn keepalive(stream: &tokio::net::TcpStream) {
    let probe = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10));
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&probe) {
        debug!(%error, "TCP keepalive not set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_tcp_keepalive_on() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        keepalive(&stream);
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_is_counted() {
        async fn boom() -> &'static str {
            panic!("handler bug")
        }
        let router = axum::Router::new().route("/boom", axum::routing::get(boom));
        let stats = Stats::default();
        let req = axum::extract::Request::builder()
            .uri("/boom")
            .body(axum::body::Body::empty())
            .expect("request");
        let response = call_catching_panics(router, req, &stats).await;
        assert_eq!(response.status(), 500);
        assert_eq!(stats.handler_panics.load(Ordering::Relaxed), 1);
    }
}
