//! Every route × role: 401 without a known token, 403 with a role that does not allow the
//! route, and through otherwise — checked before any handler or upgrade runs.

use cuedeck::config::{Limits, Role, Token};
use cuedeck::server::Tokens;

use crate::support::*;

const SECRETS: &[(&str, Role)] = &[
    ("ingest-secret-0000001", Role::Ingest),
    ("rep-secret-000000001", Role::Rep),
    ("manager-secret-00001", Role::Manager),
    ("admin-secret-0000001", Role::Admin),
];

async fn server() -> TestServer {
    let tokens: Vec<Token> = SECRETS
        .iter()
        .map(|(s, r)| Token {
            name: r.as_str().into(),
            role: *r,
            secret: s.to_string(),
            rep_id: None,
        })
        .collect();
    TestServer::start_with_tokens(&bundled_cards(), Limits::default(), Tokens::new(&tokens)).await
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line")
}

async fn get_with(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    status(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_role() {
    let server = server().await;
    // (path, role needed, status when allowed: WebSocket routes answer 400 to a plain GET)
    let routes: &[(&str, Option<Role>, u16)] = &[
        ("/healthz", None, 200),
        ("/readyz", None, 200),
        ("/", None, 200),
        ("/assets/panel.js", None, 200),
        ("/v1/stream", Some(Role::Ingest), 400),
        ("/v1/calls/c-1/cards", Some(Role::Rep), 400),
        ("/v1/demo", Some(Role::Rep), 400),
        ("/v1/cards", Some(Role::Manager), 200),
        ("/v1/cards/status", Some(Role::Manager), 200),
        ("/v1/experiments", Some(Role::Manager), 200),
        (
            "/v1/experiments/price-objection-2026q4/report",
            Some(Role::Manager),
            200,
        ),
    ];
    let mut failures_expected = 0;
    for (path, needed, ok) in routes {
        for token in [None, Some("not-a-known-token-at-all")] {
            let expected = if needed.is_some() { 401 } else { *ok };
            if needed.is_some() {
                failures_expected += 1;
            }
            assert_eq!(
                get_with(server.addr, path, token).await,
                expected,
                "{path} with {token:?}"
            );
        }
        for (secret, role) in SECRETS {
            let allowed = needed.is_none_or(|n| role.allows(n));
            let expected = if allowed { *ok } else { 403 };
            if !allowed {
                failures_expected += 1;
            }
            assert_eq!(
                get_with(server.addr, path, Some(secret)).await,
                expected,
                "{path} as {role:?}"
            );
        }
    }
    let counted = server
        .state
        .stats
        .auth_failures
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted, failures_expected);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_take_the_token_from_the_query() {
    let server = server().await;
    let bad =
        tokio_tungstenite::connect_async(server.url("/v1/stream?token=rep-secret-000000001")).await;
    match bad {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    let none = tokio_tungstenite::connect_async(server.url("/v1/stream")).await;
    match none {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let mut ws = connect(&server.url("/v1/stream?token=ingest-secret-0000001")).await;
    send(&mut ws, r#"{"type":"start","call_id":"c-auth"}"#).await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    let mut sub = connect(&server.url("/v1/calls/c-auth/cards?token=manager-secret-00001")).await;
    assert_eq!(next_json(&mut sub).await["type"], "ready");
    server.shutdown().await;
}
