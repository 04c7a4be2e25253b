//! Shared helpers for the integration tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cuedeck::config::Limits;
use cuedeck::engine::Engine;
use cuedeck::library::Library;
use cuedeck::server::{self, AppState, HttpOptions, Tokens};
use cuedeck::store::{self, Store};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The repository's bundled card library.
pub fn bundled_cards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("battlecards")
}

pub fn demo_call(name: &str) -> String {
    std::fs::read_to_string(bundled_cards().join("demo").join(name)).expect("demo call")
}

/// A server running in-process on 127.0.0.1:0 with a temporary SQLite file.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub store: Store,
    shutdown: Option<oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<u64>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start(cards: &Path, limits: Limits) -> TestServer {
        TestServer::start_with_tokens(cards, limits, Tokens::default()).await
    }

    pub async fn start_with_tokens(cards: &Path, limits: Limits, tokens: Tokens) -> TestServer {
        TestServer::start_with(cards, limits, tokens, None).await
    }

    /// A server on the store `db` (default: a new SQLite file in a temporary directory).
    pub async fn start_with(
        cards: &Path,
        limits: Limits,
        tokens: Tokens,
        db: Option<String>,
    ) -> TestServer {
        TestServer::start_at(cards, limits, tokens, db, "127.0.0.1:0").await
    }

    /// A server listening on `listen` (e.g. the port of a server that was stopped).
    pub async fn start_at(
        cards: &Path,
        limits: Limits,
        tokens: Tokens,
        db: Option<String>,
        listen: &str,
    ) -> TestServer {
        TestServer::start_full(cards, limits, tokens, db, listen, HttpOptions::default()).await
    }

    /// A server with the HTTP edge's options (`allowed_origins`, a separate metrics port).
    pub async fn start_with_http(cards: &Path, tokens: Tokens, http: HttpOptions) -> TestServer {
        TestServer::start_full(cards, Limits::default(), tokens, None, "127.0.0.1:0", http).await
    }

    async fn start_full(
        cards: &Path,
        limits: Limits,
        tokens: Tokens,
        db: Option<String>,
        listen: &str,
        http: HttpOptions,
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let url =
            db.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("cuedeck.db").display()));
        let engine = Engine::new(Library::load_dir(cards).expect("valid cards")).expect("engine");
        let store = Store::open(&url).await.expect("store");
        let spill = store::SpillOptions {
            dir: dir.path().join("spill"),
            max_bytes: limits.spill_max_bytes,
        };
        let (handle, writer) =
            store::spawn_writer_with_spill(store.clone(), limits.store_queue, &spill)
                .expect("spill");
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = AppState::with_options(engine, store.clone(), handle, limits, tokens, http);
        let (tx, rx) = oneshot::channel::<()>();
        let st = state.clone();
        let join = tokio::spawn(async move {
            server::run(listener, st.clone(), async {
                let _ = rx.await;
            })
            .await
            .expect("server run");
            st.release_store();
            drop(st);
            writer.finish().await.expect("store drained")
        });
        TestServer {
            addr,
            state,
            store,
            shutdown: Some(tx),
            join: Some(join),
            _dir: dir,
        }
    }

    /// The URL of the default store (the SQLite file in the server's temporary directory).
    pub fn store_url(&self) -> String {
        format!("sqlite://{}", self._dir.path().join("cuedeck.db").display())
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Triggers the shutdown future and waits until the store is drained.
    pub async fn shutdown(mut self) -> Stopped {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let join = self.join.take().expect("running");
        // The server's own Arc must go too before the writer can see every handle gone.
        let store = self.store.clone();
        drop(self.state);
        let written = tokio::time::timeout(Duration::from_secs(20), join)
            .await
            .expect("shutdown in time")
            .expect("server task");
        Stopped {
            store,
            written,
            _dir: self._dir,
        }
    }
}

/// A stopped server: its store (the SQLite file lives as long as this does).
pub struct Stopped {
    pub store: Store,
    pub written: u64,
    _dir: tempfile::TempDir,
}

pub async fn connect(url: &str) -> Ws {
    let (ws, _) = connect_async(url).await.expect("connect");
    ws
}

pub async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_string()))
        .await
        .expect("send");
}

/// Next text frame as JSON (skips pings); panics after 5 s.
pub async fn next_json(ws: &mut Ws) -> serde_json::Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open")
            .expect("frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON frame"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Reads until the socket closes; returns the text frames as JSON and the close frame.
pub async fn drain(ws: &mut Ws) -> (Vec<serde_json::Value>, Option<(u16, String)>) {
    let mut frames = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("socket closes within 5 s");
        match next {
            Some(Ok(Message::Text(t))) => {
                frames.push(serde_json::from_str(t.as_str()).expect("JSON frame"))
            }
            Some(Ok(Message::Close(c))) => {
                return (frames, c.map(|c| (u16::from(c.code), c.reason.to_string())));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (frames, None),
        }
    }
}

/// A plain HTTP/1.1 GET; returns the whole response (status line, headers, body).
pub async fn http_get(addr: SocketAddr, path: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// An HTTP/1.1 request with optional bearer token and JSON body; returns (status, body).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Sends `request` as written and reads until the server closes; returns the status (`None`
/// when the connection ended without an answer), the head and the body.
pub async fn http_raw(addr: SocketAddr, request: &str) -> (Option<u16>, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    // A reset connection is an answer of nothing, not a test failure here.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok());
    (status, head.to_string(), body.to_string())
}

/// Copies the bundled card library into a fresh temporary directory (to edit in a test).
pub fn copy_of_bundled_cards() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(bundled_cards()).expect("bundled cards") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    dir
}

/// A new, empty database in the PostgreSQL server of `CUEDECK_TEST_POSTGRES_URL`; returns
/// its URL. Without the variable: `None` with a printed reason, or a failure under CI=true.
pub async fn postgres_database() -> Option<String> {
    use sqlx::Connection;
    let Ok(base) = std::env::var("CUEDECK_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CUEDECK_TEST_POSTGRES_URL must be set under CI=true"
        );
        eprintln!("skipped: set CUEDECK_TEST_POSTGRES_URL to run the PostgreSQL tests");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!(
        "cuedeck_it_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let mut admin = sqlx::AnyConnection::connect(&base)
        .await
        .expect("connect to PostgreSQL");
    // The name is generated here, not input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    let _ = admin.close().await;
    let server = base.split('?').next().unwrap_or(&base);
    let server = server.rsplit_once('/').map_or(server, |(s, _)| s);
    Some(format!("{server}/{name}"))
}

/// Runs the `cuedeck` binary from the repository root, as a user would.
pub fn cuedeck(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cuedeck"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cuedeck")
}

/// Bytes as text, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
