//! `serve` over real WebSockets with a real SQLite file.

use std::time::Duration;

use cuedeck::config::Limits;
use cuedeck::engine::Engine;
use cuedeck::library::Library;
use cuedeck::replay;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

fn transcript_lines(call: &str) -> Vec<&str> {
    call.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// Streams the demo call over the ingest socket; returns the card frames it got back.
async fn stream_demo(server: &TestServer, call: &str) -> Vec<serde_json::Value> {
    let mut ingest = connect(&server.url("/v1/stream")).await;
    let lines = transcript_lines(call);
    send(&mut ingest, lines[0]).await;
    let ready = next_json(&mut ingest).await;
    assert_eq!(ready["type"], "ready");
    assert!(
        ready["library_version"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    for line in &lines[1..] {
        send(&mut ingest, line).await;
    }
    let (frames, close) = drain(&mut ingest).await;
    assert_eq!(
        close.map(|c| c.0),
        Some(1000),
        "closed normally after `end`"
    );
    for f in &frames {
        assert_eq!(f["type"], "card", "unexpected frame {f}");
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_call_cards_reach_ingest_and_subscriber_and_every_exposure_is_stored() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let call = demo_call("demo-new-deal.jsonl");
    // A subscriber may connect before the call starts.
    let mut sub = connect(&server.url("/v1/calls/demo-new-deal-1/cards")).await;
    assert_eq!(next_json(&mut sub).await["type"], "ready");

    let cards = stream_demo(&server, &call).await;
    let ids: Vec<&str> = cards
        .iter()
        .map(|c| c["card_id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/demo-new-deal.decisions.jsonl"),
    )
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
    .filter(|d| d["shown"] == true)
    .map(|d| d["card_id"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(ids, expected, "the server decides exactly as replay does");
    let price = cards
        .iter()
        .find(|c| c["card_id"] == "objection-price")
        .unwrap();
    assert_eq!(price["variant"], "short");
    assert_eq!(price["trigger"]["segment_id"], "s-8");
    assert_eq!(price["trigger"]["speaker"], "prospect");
    assert!(price["engine_us"].as_u64().is_some());
    assert!(price["body"].as_str().unwrap().len() > 10);

    // The subscriber gets the same cards, in the same order.
    let mut sub_cards = Vec::new();
    while sub_cards.len() < cards.len() {
        sub_cards.push(next_json(&mut sub).await);
    }
    assert_eq!(sub_cards, cards);

    // A late subscriber is accepted too (the call is in its grace period).
    let mut late = connect(&server.url("/v1/calls/demo-new-deal-1/cards")).await;
    assert_eq!(next_json(&mut late).await["type"], "ready");

    // Feedback from the panel is stored.
    let display_id = cards[0]["display_id"].as_str().unwrap().to_string();
    send(
        &mut sub,
        &format!(r#"{{"type":"feedback","display_id":"{display_id}","action":"useful"}}"#),
    )
    .await;
    // A subscriber may only send feedback.
    send(&mut sub, r#"{"type":"end"}"#).await;
    let err = next_json(&mut sub).await;
    assert_eq!(err["code"], "protocol");

    let stopped = server.shutdown().await;
    let store = stopped.store;
    let (_, close) = drain(&mut sub).await;
    assert_eq!(
        close.map(|c| c.0),
        Some(1001),
        "subscribers get a close frame at shutdown"
    );

    let rows = store.exposures(Some("demo-new-deal-1")).await.unwrap();
    // Every record queued was written: the exposures, one feedback, call start and end.
    assert_eq!(stopped.written as usize, rows.len() + 1 + 2);
    let shown: Vec<&str> = rows
        .iter()
        .filter(|r| r.shown)
        .map(|r| r.card_id.as_str())
        .collect();
    assert_eq!(shown, ids, "one shown exposure per card received");
    for (row, card) in rows.iter().filter(|r| r.shown).zip(&cards) {
        assert_eq!(row.display_id, card["display_id"].as_str().unwrap());
        assert_eq!(row.deal_id.as_deref(), Some("d-2004"));
        assert_eq!(row.reason, "shown");
    }
    let fb = store.feedback(Some(&display_id)).await.unwrap();
    assert_eq!(fb.len(), 1);
    assert_eq!(fb[0].action, "useful");
    let (call_row, ended) = store
        .call("demo-new-deal-1")
        .await
        .unwrap()
        .expect("call row");
    assert_eq!(call_row.deal_id.as_deref(), Some("d-2004"));
    assert!(call_row.context.contains("evaluation"));
    assert!(ended.is_some(), "ended_at is set");
}

/// What a decision is, without when it was logged: (card, variant, shown, reason, phrase,
/// speaker, segment).
type DecisionKey = (String, Option<String>, bool, String, String, String, String);

/// The demo call as call `again-1`, its conversation said twice (the second time in new
/// segments, 30 s later): cooldowns, caps and the deck budget suppress cards.
fn said_twice(call: &str) -> String {
    let lines: Vec<serde_json::Value> = transcript_lines(call)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut start = lines[0].clone();
    start["call_id"] = "again-1".into();
    let said: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["type"] == "transcript").collect();
    let last_ms = said
        .iter()
        .filter_map(|l| l["t_ms"].as_u64())
        .max()
        .unwrap();
    let mut out = vec![start.to_string()];
    out.extend(said.iter().map(|l| l.to_string()));
    for l in &said {
        let mut again = (*l).clone();
        again["segment_id"] = format!("{}-again", l["segment_id"].as_str().unwrap()).into();
        again["t_ms"] = (l["t_ms"].as_u64().unwrap() + last_ms + 30_000).into();
        out.push(again.to_string());
    }
    out.push(r#"{"type":"end"}"#.into());
    out.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_server_and_replay_decide_identically_on_the_bundled_demo_calls() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let engine = Engine::new(Library::load_dir(&bundled_cards()).unwrap()).unwrap();
    let mut replayed: Vec<(String, Vec<DecisionKey>)> = Vec::new();
    let calls = [
        demo_call("demo-new-deal.jsonl"),
        demo_call("demo-renewal.jsonl"),
        said_twice(&demo_call("demo-new-deal.jsonl")),
    ];
    for call in &calls {
        stream_demo(&server, call).await;
        let r = replay::replay_native(&engine, call).unwrap();
        let keys = r
            .decisions
            .iter()
            .map(|d| {
                (
                    d.card.id.clone(),
                    d.variant_id().map(str::to_string),
                    d.shown(),
                    d.reason.as_str().to_string(),
                    d.phrase.to_string(),
                    d.speaker.as_str().to_string(),
                    d.segment_id.to_string(),
                )
            })
            .collect();
        replayed.push((r.info.call_id.clone(), keys));
    }
    let stopped = server.shutdown().await;
    for (call_id, expected) in replayed {
        let rows = stopped.store.exposures(Some(&call_id)).await.unwrap();
        let live: Vec<DecisionKey> = rows
            .into_iter()
            .map(|r| {
                (
                    r.card_id,
                    r.variant,
                    r.shown,
                    r.reason,
                    r.phrase,
                    r.speaker,
                    r.segment_id,
                )
            })
            .collect();
        if call_id == "again-1" {
            assert!(
                expected.iter().any(|d| !d.2),
                "suppressed decisions are compared too"
            );
        }
        assert_eq!(live, expected, "{call_id}: every logged decision, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_error_frames_and_the_connection_stays_open() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let mut ws = connect(&server.url("/v1/stream")).await;
    let cases: &[(&str, &str, &str)] = &[
        ("not json", "bad_message", "invalid JSON"),
        (
            r#"{"type":"transcript","speaker":"prospect","text":"hi"}"#,
            "protocol",
            "before `start`",
        ),
        (
            r#"{"type":"bogus"}"#,
            "bad_message",
            "unknown message type `bogus`",
        ),
    ];
    for (frame, code, needle) in cases {
        send(&mut ws, frame).await;
        let err = next_json(&mut ws).await;
        assert_eq!(err["type"], "error");
        assert_eq!(err["code"], *code, "{frame}");
        assert!(err["message"].as_str().unwrap().contains(needle), "{err}");
    }
    send(
        &mut ws,
        r#"{"type":"start","call_id":"c-err","deal_id":"d-1"}"#,
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    send(
        &mut ws,
        r#"{"type":"transcript","speaker":"prospect","txt":"price"}"#,
    )
    .await;
    let err = next_json(&mut ws).await;
    assert_eq!(err["code"], "bad_message");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("line 1 column "),
        "{err}"
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `txt`"),
        "{err}"
    );
    send(&mut ws, r#"{"type":"start","call_id":"c-err"}"#).await;
    assert_eq!(next_json(&mut ws).await["code"], "protocol");
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next_json(&mut ws).await["code"], "bad_message");
    // Still open and working: a valid message fires a card.
    send(
        &mut ws,
        r#"{"type":"transcript","segment_id":"s1","speaker":"prospect","text":"we are also looking at acme","is_final":true,"t_ms":1000}"#,
    )
    .await;
    let card = next_json(&mut ws).await;
    assert_eq!(card["type"], "card");
    assert_eq!(card["card_id"], "competitor-acme");

    // A second ingest for the same live call takes it over (a bridge reconnecting after
    // its network dropped without a FIN): the old socket is closed with 4001 `replaced`.
    let mut dup = connect(&server.url("/v1/stream")).await;
    send(&mut dup, r#"{"type":"start","call_id":"c-err"}"#).await;
    assert_eq!(next_json(&mut dup).await["type"], "ready");
    let (_, close) = drain(&mut ws).await;
    assert_eq!(close, Some((4001, "replaced".to_string())));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_close_with_1009_and_other_calls_continue() {
    let limits = Limits {
        max_message_bytes: 1024,
        ..Limits::default()
    };
    let server = TestServer::start(&bundled_cards(), limits).await;
    let mut other = connect(&server.url("/v1/stream")).await;
    send(&mut other, r#"{"type":"start","call_id":"c-other"}"#).await;
    assert_eq!(next_json(&mut other).await["type"], "ready");

    let mut ws = connect(&server.url("/v1/stream")).await;
    let big = format!(
        r#"{{"type":"transcript","speaker":"prospect","text":"{}"}}"#,
        "a".repeat(2000)
    );
    let _ = ws.send(Message::text(big)).await;
    let (_, close) = drain(&mut ws).await;
    assert_eq!(close.map(|c| c.0), Some(1009));

    send(
        &mut other,
        r#"{"type":"transcript","speaker":"prospect","text":"we are also looking at acme","is_final":true,"t_ms":5}"#,
    )
    .await;
    assert_eq!(next_json(&mut other).await["card_id"], "competitor-acme");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_errors_in_a_row_close_with_1008() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let mut ws = connect(&server.url("/v1/stream")).await;
    for _ in 0..10 {
        send(&mut ws, "{").await;
    }
    let (frames, close) = drain(&mut ws).await;
    assert_eq!(frames.len(), 10);
    assert!(frames.iter().all(|f| f["code"] == "bad_message"));
    assert_eq!(close.map(|c| c.0), Some(1008));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let limits = Limits {
        idle_timeout_seconds: 1,
        ..Limits::default()
    };
    let server = TestServer::start(&bundled_cards(), limits).await;
    let mut ws = connect(&server.url("/v1/stream")).await;
    let (_, close) = drain(&mut ws).await;
    assert_eq!(close, Some((1000, "idle timeout".to_string())));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_dropped_without_slowing_the_call() {
    // Ten cards sharing one phrase, no cooldown, with large bodies: every message sends
    // ten big frames, far more than the socket buffers of a subscriber that never reads.
    let dir = tempfile::tempdir().unwrap();
    let body = "word ".repeat(6000);
    for i in 0..10 {
        std::fs::write(
            dir.path().join(format!("c{i}.yaml")),
            format!(
                "id: c{i}\ntitle: C{i}\ncategory: other\ncooldown_seconds: 0\nmax_per_call: 100\ntriggers: {{ any: [ping] }}\nbody: {body}\n"
            ),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("_deck.yaml"), "max_cards_per_call: 1000\n").unwrap();
    let limits = Limits {
        subscriber_queue: 16,
        ..Limits::default()
    };
    let server = TestServer::start(dir.path(), limits).await;
    let slow = connect(&server.url("/v1/calls/c-slow/cards")).await;
    let mut fast = connect(&server.url("/v1/calls/c-slow/cards")).await;
    assert_eq!(next_json(&mut fast).await["type"], "ready");
    let mut ingest = connect(&server.url("/v1/stream")).await;
    send(&mut ingest, r#"{"type":"start","call_id":"c-slow"}"#).await;
    assert_eq!(next_json(&mut ingest).await["type"], "ready");
    let mut fast_received = 0;
    for i in 0..100u64 {
        let msg = format!(
            r#"{{"type":"transcript","segment_id":"s{i}","speaker":"prospect","text":"ping","is_final":true,"t_ms":{i}}}"#
        );
        send(&mut ingest, &msg).await;
        // The call keeps flowing: every card comes back on the ingest socket.
        for _ in 0..10 {
            assert_eq!(next_json(&mut ingest).await["type"], "card");
        }
        // A subscriber that keeps up gets everything.
        for _ in 0..10 {
            assert_eq!(next_json(&mut fast).await["type"], "card");
            fast_received += 1;
        }
    }
    assert_eq!(fast_received, 1000);
    let dropped = server
        .state
        .stats
        .subscribers_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(dropped, 1, "only the slow subscriber was dropped");
    drop(slow);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_within_the_grace_period_resumes_cooldowns() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let start = r#"{"type":"start","call_id":"c-re","deal_id":"d-re"}"#;
    let acme = |seg: &str, t: u64| {
        format!(
            r#"{{"type":"transcript","segment_id":"{seg}","speaker":"prospect","text":"we are looking at acme","is_final":true,"t_ms":{t}}}"#
        )
    };
    let mut ws = connect(&server.url("/v1/stream")).await;
    send(&mut ws, start).await;
    next_json(&mut ws).await;
    send(&mut ws, &acme("s1", 1000)).await;
    assert_eq!(next_json(&mut ws).await["card_id"], "competitor-acme");
    drop(ws);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut ws = connect(&server.url("/v1/stream")).await;
    send(&mut ws, start).await;
    next_json(&mut ws).await;
    // Within the card's cooldown: decided, but suppressed, so no card frame.
    send(&mut ws, &acme("s2", 2000)).await;
    send(&mut ws, r#"{"type":"end"}"#).await;
    let (frames, _) = drain(&mut ws).await;
    assert!(frames.is_empty(), "{frames:?}");
    // Keep `stopped` (it owns the SQLite file's temporary directory) while reading.
    let stopped = server.shutdown().await;
    let store = &stopped.store;
    let rows = store.exposures(Some("c-re")).await.unwrap();
    let reasons: Vec<&str> = rows.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons, ["shown", "cooldown"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let get = |path: &str| http_get(server.addr, path.to_string());
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    let cards = get("/v1/cards").await;
    assert!(cards.contains("\"competitor-acme\""), "{cards}");
    assert!(get("/v1/stream").await.starts_with("HTTP/1.1 400"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_streams_transcript_and_cards_and_stores_nothing() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let mut ws = connect(&server.url("/v1/demo?call=new-deal&speed=1000")).await;
    let (frames, close) = drain(&mut ws).await;
    assert_eq!(close.map(|c| c.0), Some(1000));
    assert_eq!(frames[0]["type"], "ready");
    let call_id = frames[0]["call_id"].as_str().unwrap().to_string();
    assert!(call_id.starts_with("demo-"), "{call_id}");
    let transcripts = frames.iter().filter(|f| f["type"] == "transcript").count();
    assert!(transcripts > 20, "{transcripts}");
    let cards: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "card")
        .map(|f| f["card_id"].as_str().unwrap())
        .collect();
    assert!(cards.contains(&"objection-price"), "{cards:?}");
    // Not enrolled: the price card shows its base content, with no variant.
    let price = frames
        .iter()
        .find(|f| f["card_id"] == "objection-price")
        .unwrap();
    assert!(price["variant"].is_null());
    // Each card follows the transcript line that triggered it.
    let first_card = frames.iter().position(|f| f["type"] == "card").unwrap();
    let seg = frames[first_card]["trigger"]["segment_id"].clone();
    assert!(frames[..first_card].iter().any(|f| f["segment_id"] == seg));

    let bad = tokio_tungstenite::connect_async(server.url("/v1/demo?call=nope")).await;
    assert!(
        bad.is_err(),
        "unknown demo call is refused before the upgrade"
    );
    let stopped = server.shutdown().await;
    assert!(stopped.store.exposures(None).await.unwrap().is_empty());
    assert_eq!(stopped.written, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rep_panel_and_its_assets_are_served_from_the_binary() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let get = |path: &str| http_get(server.addr, path.to_string());
    let page = get("/").await;
    assert!(page.starts_with("HTTP/1.1 200"));
    assert!(page.contains("text/html"));
    assert!(page.contains("/assets/panel.js"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external links or CDNs"
    );
    let js = get("/assets/panel.js").await;
    assert!(js.starts_with("HTTP/1.1 200") && js.contains("text/javascript"));
    assert!(get("/assets/panel.css").await.contains("text/css"));
    assert!(get("/assets/nope.js").await.starts_with("HTTP/1.1 404"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_wait_until_one_closes() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let server = TestServer::start(&bundled_cards(), limits).await;
    let a = connect(&server.url("/v1/calls/c1/cards")).await;
    let _b = connect(&server.url("/v1/calls/c2/cards")).await;
    // The third is not accepted while both permits are held.
    let url = server.url("/v1/calls/c3/cards");
    let third = tokio::spawn(async move { tokio_tungstenite::connect_async(url).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served over the limit"
    );
    drop(a);
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a permit frees")
        .unwrap()
        .expect("handshake");
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    server.shutdown().await;
}
