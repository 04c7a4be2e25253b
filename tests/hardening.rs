//! Browser and HTTP hardening over real sockets: Origin and Host checks, the outcome
//! webhook's content type, tokens in query strings, security headers, unrepresentable
//! dates, symlinked card files and the database password in logs.

use cuedeck::config::{Limits, Role, Token};
use cuedeck::server::{HttpOptions, Tokens};

use crate::support::*;

/// A request with the given extra header lines (each ending in `\r\n`) and body.
fn request(method: &str, path: &str, headers: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

const OUTCOME: &str = r#"{"deal_id":"d-web","outcome":"won"}"#;

/// Posts [`OUTCOME`] with the given header lines; returns the status and the body.
async fn post_outcome(addr: std::net::SocketAddr, headers: &str) -> (Option<u16>, String) {
    let (status, _, body) =
        http_raw(addr, &request("POST", "/v1/outcomes", headers, OUTCOME)).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_origin_text_plain_outcome_post_is_refused() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let host = format!("Host: {}\r\n", server.addr);
    // What a hostile page's `fetch(…, {mode: "no-cors"})` sends: no preflight.
    let hostile = format!("{host}Origin: https://evil.example\r\nContent-Type: text/plain\r\n");
    let (status, body) = post_outcome(server.addr, &hostile).await;
    assert_eq!(status, Some(403), "{body}");
    // The same page with a JSON content type: still another origin.
    let hostile_json =
        format!("{host}Origin: https://evil.example\r\nContent-Type: application/json\r\n");
    let (status, _) = post_outcome(server.addr, &hostile_json).await;
    assert_eq!(status, Some(403));
    // From the server's own origin, text/plain is the wrong content type.
    let own = format!("http://{}", server.addr);
    let same = format!("{host}Origin: {own}\r\nContent-Type: text/plain\r\n");
    let (status, body) = post_outcome(server.addr, &same).await;
    assert_eq!(status, Some(415), "{body}");
    let no_type = host.clone();
    let (status, _) = post_outcome(server.addr, &no_type).await;
    assert_eq!(status, Some(415), "no content type at all");
    assert!(
        server.store.outcomes(None).await.unwrap().is_empty(),
        "nothing refused was stored"
    );
    // A CRM (no Origin) with a charset parameter is fine.
    let crm = format!("{host}Content-Type: application/json; charset=utf-8\r\n");
    let (status, body) = post_outcome(server.addr, &crm).await;
    assert_eq!(status, Some(200), "{body}");
    // And so is the server's own page.
    let page = format!("{host}Origin: {own}\r\nContent-Type: application/json\r\n");
    let (status, body) = post_outcome(server.addr, &page).await;
    assert_eq!(status, Some(200), "{body}");
    assert_eq!(server.store.outcomes(None).await.unwrap().len(), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_websocket_upgrades_are_refused() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let upgrade = |origin: &str| {
        format!(
            "GET /v1/calls/c-o/cards HTTP/1.1\r\nHost: {}\r\n{origin}Upgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            server.addr
        )
    };
    for origin in ["Origin: https://evil.example\r\n", "Origin: null\r\n"] {
        let (status, head, _) = http_raw(server.addr, &upgrade(origin)).await;
        assert_eq!(status, Some(403), "{origin}: {head}");
    }
    let own = format!("Origin: http://{}\r\n", server.addr);
    for origin in [own.as_str(), ""] {
        let (status, head, _) = http_raw(server.addr, &upgrade(origin)).await;
        assert_eq!(status, Some(101), "{origin:?}: {head}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_hosts_get_421_without_tokens() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let get = |host: &str| format!("GET /v1/cards HTTP/1.1\r\n{host}Connection: close\r\n\r\n");
    for host in [
        "Host: evil.example\r\n",
        "Host: evil.example:7700\r\n",
        "Host: 10.0.0.5:7700\r\n",
        "Host: localhost.evil.example\r\n",
    ] {
        let (status, _, _) = http_raw(server.addr, &get(host)).await;
        assert_eq!(status, Some(421), "{host}");
    }
    for host in [
        "Host: localhost\r\n",
        "Host: LocalHost:7700\r\n",
        "Host: 127.0.0.1\r\n",
        "Host: 127.9.9.9:80\r\n",
        "Host: [::1]:7700\r\n",
    ] {
        let (status, _, _) = http_raw(server.addr, &get(host)).await;
        assert_eq!(status, Some(200), "{host}");
    }
    let (status, _, _) = http_raw(server.addr, "GET /v1/cards HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, Some(400), "no Host at all");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_security_headers() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    for path in ["/", "/dashboard", "/assets/panel.js"] {
        let head = http_get(server.addr, path.to_string()).await.to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains("content-security-policy: default-src 'self'")
                && head.contains("frame-ancestors 'none'"),
            "{path}: {head}"
        );
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
        assert!(
            head.contains("referrer-policy: no-referrer"),
            "{path}: {head}"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_future_closed_at_gets_400_not_a_dropped_connection() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let host = format!(
        "Host: {}\r\nContent-Type: application/json\r\n",
        server.addr
    );
    for closed_at in [
        "9999-12-31T23:59:59-23:59",
        "+275760-09-13T00:00:00Z",
        "+275760-09-13",
    ] {
        let body = format!(r#"{{"deal_id":"d-far","outcome":"won","closed_at":"{closed_at}"}}"#);
        let (status, head, body) =
            http_raw(server.addr, &request("POST", "/v1/outcomes", &host, &body)).await;
        assert_eq!(status, Some(400), "{closed_at}: {head}{body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["field"], "closed_at", "{body}");
    }
    // A report date at the end of the representable range answers too.
    let (status, _, body) = http_raw(
        server.addr,
        &request(
            "GET",
            "/v1/experiments/price-objection-2026q4/report?as_of=9999-12-31",
            &host,
            "",
        ),
    )
    .await;
    assert!(matches!(status, Some(200 | 400)), "{status:?} {body}");
    // The report over whatever is stored still answers.
    let (status, _, body) = http_raw(
        server.addr,
        &request(
            "GET",
            "/v1/experiments/price-objection-2026q4/report?format=timeline",
            &host,
            "",
        ),
    )
    .await;
    assert_eq!(status, Some(200), "{body}");
    server.shutdown().await;
}

#[test]
fn a_symlinked_card_file_obeys_the_size_limit() {
    let cards = copy_of_bundled_cards();
    let outside = tempfile::tempdir().unwrap();
    let big = outside.path().join("big.yaml");
    let padding = "# padding\n".repeat((cuedeck::library::MAX_FILE_BYTES as usize) / 10 + 10);
    std::fs::write(&big, padding).unwrap();
    std::os::unix::fs::symlink(&big, cards.path().join("zz-linked.yaml")).unwrap();
    let error = cuedeck::library::Library::load_dir(cards.path())
        .expect_err("a file over the limit behind a symlink is refused")
        .to_string();
    assert!(error.contains("at most"), "{error}");
    assert!(error.contains("zz-linked.yaml"), "{error}");
}

#[test]
fn no_log_line_contains_the_database_password() {
    let cards = bundled_cards();
    // Nothing listens on port 1: the store is unreachable at start-up.
    let out = cuedeck(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--no-watch",
        "--cards",
        cards.to_str().unwrap(),
        "--db",
        "postgres://cuedeck:hunter2-secret@127.0.0.1:1/cuedeck",
    ]);
    assert!(!out.status.success());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("cuedeck:***@127.0.0.1:1"), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
}

fn tokens(list: &[(&str, Role, Option<&str>)]) -> Tokens {
    let list: Vec<Token> = list
        .iter()
        .map(|(secret, role, rep)| Token {
            name: secret.to_string(),
            role: *role,
            secret: secret.to_string(),
            rep_id: rep.map(str::to_string),
        })
        .collect();
    Tokens::new(&list)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_origins_may_post_and_open_websockets() {
    let http = HttpOptions {
        allowed_origins: vec!["https://crm.example.com".into()],
        ..HttpOptions::default()
    };
    let server = TestServer::start_with_http(&bundled_cards(), Tokens::default(), http).await;
    let headers = |origin: &str| {
        format!(
            "Host: {}\r\nOrigin: {origin}\r\nContent-Type: application/json\r\n",
            server.addr
        )
    };
    let (status, body) = post_outcome(server.addr, &headers("https://crm.example.com")).await;
    assert_eq!(status, Some(200), "{body}");
    for refused in [
        "https://crm.example.com.evil.example",
        "http://crm.example.com",
    ] {
        let (status, _) = post_outcome(server.addr, &headers(refused)).await;
        assert_eq!(status, Some(403), "{refused}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_tokens_work_only_on_websocket_upgrades() {
    let server = TestServer::start_with_tokens(
        &bundled_cards(),
        Limits::default(),
        tokens(&[("manager-secret-00001", Role::Manager, None)]),
    )
    .await;
    let get = |path: &str, auth: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
            server.addr
        )
    };
    for path in [
        "/v1/cards?token=manager-secret-00001",
        "/v1/experiments/price-objection-2026q4/report?format=csv&token=manager-secret-00001",
    ] {
        let (status, _, _) = http_raw(server.addr, &get(path, "")).await;
        assert_eq!(status, Some(401), "{path}");
        let (status, _, _) = http_raw(
            server.addr,
            &get(path, "Authorization: Bearer manager-secret-00001\r\n"),
        )
        .await;
        assert_eq!(status, Some(200), "{path} with the header");
    }
    // An upgrade still takes it from the query (browsers cannot set its headers).
    let mut sub = connect(&server.url("/v1/calls/c-q/cards?token=manager-secret-00001")).await;
    assert_eq!(next_json(&mut sub).await["type"], "ready");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_metrics_on_its_own_address() {
    let http = HttpOptions {
        separate_metrics: true,
        ..HttpOptions::default()
    };
    let server = TestServer::start_with_http(&bundled_cards(), Tokens::default(), http).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = listener.local_addr().unwrap();
    tokio::spawn(cuedeck::server::run_metrics(listener, server.state.clone()));
    let main = http_get(server.addr, "/metrics".into()).await;
    assert!(main.starts_with("HTTP/1.1 404"), "{main}");
    let own = http_get(metrics_addr, "/metrics".into()).await;
    assert!(own.starts_with("HTTP/1.1 200"), "{own}");
    assert!(own.contains("cuedeck_handler_panics_total 0"), "{own}");
    server.shutdown().await;
}

/// A server with an ingest token, a rep token scoped to `r-ana` and an unscoped one.
async fn rep_scoped_server() -> TestServer {
    TestServer::start_with_tokens(
        &bundled_cards(),
        Limits::default(),
        tokens(&[
            ("ingest-secret-0000001", Role::Ingest, None),
            ("rep-ana-secret-00001", Role::Rep, Some("r-ana")),
            ("rep-any-secret-00001", Role::Rep, None),
        ]),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rep_token_only_subscribes_to_its_reps_calls() {
    let server = rep_scoped_server().await;
    let mut calls = Vec::new();
    for (call, rep) in [("c-ana", "r-ana"), ("c-bo", "r-bo")] {
        let mut ingest = connect(&server.url("/v1/stream?token=ingest-secret-0000001")).await;
        send(
            &mut ingest,
            &format!(r#"{{"type":"start","call_id":"{call}","rep_id":"{rep}"}}"#),
        )
        .await;
        assert_eq!(next_json(&mut ingest).await["type"], "ready");
        calls.push(ingest);
    }
    // The calls reach the store through the writer's queue.
    for call in ["c-ana", "c-bo"] {
        for _ in 0..100 {
            if server.store.call(call).await.unwrap().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let refused = tokio_tungstenite::connect_async(
        server.url("/v1/calls/c-bo/cards?token=rep-ana-secret-00001"),
    )
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    let mut own = connect(&server.url("/v1/calls/c-ana/cards?token=rep-ana-secret-00001")).await;
    assert_eq!(next_json(&mut own).await["type"], "ready");
    let mut any = connect(&server.url("/v1/calls/c-bo/cards?token=rep-any-secret-00001")).await;
    assert_eq!(next_json(&mut any).await["type"], "ready");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_retry_of_an_old_outcome_does_not_win() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let key = "price-objection-2026q4";
    // The deal is in the experiment: one exposure of it.
    let exposure = cuedeck::store::ExposureRow {
        display_id: "disp-late".into(),
        ts: cuedeck::timestamp::Timestamp::now(),
        call_id: "c-late".into(),
        deal_id: Some("d-late".into()),
        rep_id: None,
        card_id: "pricing-objection".into(),
        experiment_key: Some(key.into()),
        variant: Some("control".into()),
        shown: false,
        reason: "control".into(),
        phrase: "too expensive".into(),
        speaker: "prospect".into(),
        segment_id: "s1".into(),
        engine_us: 1,
        library_version: "test".into(),
    };
    server
        .store
        .write_batch(&[cuedeck::store::Record::Exposure(exposure)])
        .await
        .unwrap();
    let post =
        |body: &'static str| http_request(server.addr, "POST", "/v1/outcomes", None, Some(body));
    // The CRM's newer update arrives first, then a retry of the older one.
    let (status, body) =
        post(r#"{"deal_id":"d-late","outcome":"won","updated_at":"2026-11-20T10:00:00Z"}"#).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        post(r#"{"deal_id":"d-late","outcome":"open","updated_at":"2026-11-19T09:00:00Z"}"#).await;
    assert_eq!(status, 200, "{body}");
    let latest = server.store.latest_outcomes(key).await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].outcome, "won", "{latest:?}");
    // A newer update from the CRM wins.
    let (status, _) =
        post(r#"{"deal_id":"d-late","outcome":"lost","updated_at":"2026-11-21"}"#).await;
    assert_eq!(status, 200);
    let latest = server.store.latest_outcomes(key).await.unwrap();
    assert_eq!(latest[0].outcome, "lost");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rep_token_waiting_for_a_call_is_closed_when_another_reps_call_starts() {
    let server = rep_scoped_server().await;
    // Ana's panel opens before the call starts: it waits.
    let mut panel = connect(&server.url("/v1/calls/c-next/cards?token=rep-ana-secret-00001")).await;
    assert_eq!(next_json(&mut panel).await["type"], "ready");
    let mut ingest = connect(&server.url("/v1/stream?token=ingest-secret-0000001")).await;
    send(
        &mut ingest,
        r#"{"type":"start","call_id":"c-next","rep_id":"r-bo"}"#,
    )
    .await;
    assert_eq!(next_json(&mut ingest).await["type"], "ready");
    let (frames, close) = drain(&mut panel).await;
    assert!(frames.is_empty(), "{frames:?}");
    assert_eq!(close, Some((4003, "another rep's call".to_string())));
    server.shutdown().await;
}
