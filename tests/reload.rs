//! Hot reload: the reload endpoint and file watching swap the library atomically, only
//! when valid; live calls keep their state and use the new cards from the next message.

use std::time::Duration;

use cuedeck::config::Limits;

use crate::support::*;

const NEW_CARD: &str = "\
id: brand-new-card
title: A card added while calls are live
category: other
cooldown_seconds: 0
triggers: { any: [\"flux capacitor\"] }
body: New content.
";

fn transcript(seg: &str, text: &str, t_ms: u64) -> String {
    format!(
        r#"{{"type":"transcript","segment_id":"{seg}","speaker":"prospect","text":"{text}","is_final":true,"t_ms":{t_ms}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_endpoint_swaps_a_valid_library_and_keeps_live_calls() {
    let cards = copy_of_bundled_cards();
    let server = TestServer::start(cards.path(), Limits::default()).await;
    let mut ws = connect(&server.url("/v1/stream")).await;
    send(
        &mut ws,
        r#"{"type":"start","call_id":"c-reload","deal_id":"d-1"}"#,
    )
    .await;
    let old_version = next_json(&mut ws).await["library_version"].clone();
    send(&mut ws, &transcript("s1", "we are looking at acme", 1000)).await;
    assert_eq!(next_json(&mut ws).await["card_id"], "competitor-acme");

    // Nothing fires on the new phrase before the reload.
    send(&mut ws, &transcript("s2", "the flux capacitor", 2000)).await;
    std::fs::write(cards.path().join("brand-new-card.yaml"), NEW_CARD).unwrap();
    let (code, body) = http_request(server.addr, "POST", "/v1/admin/reload", None, None).await;
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["ok"], true);
    assert_ne!(status["version"], old_version);
    assert_eq!(status["errors"], serde_json::json!([]));

    // Same connection, next message: the new card fires; acme is still in its cooldown.
    send(
        &mut ws,
        &transcript("s3", "acme and the flux capacitor", 3000),
    )
    .await;
    let card = next_json(&mut ws).await;
    assert_eq!(card["card_id"], "brand-new-card");
    send(&mut ws, r#"{"type":"end"}"#).await;
    let (frames, _) = drain(&mut ws).await;
    assert!(frames.is_empty(), "{frames:?}");
    // Keep `stopped` (it owns the SQLite file's temporary directory) while reading.
    let stopped = server.shutdown().await;
    let store = &stopped.store;
    let rows = store.exposures(Some("c-reload")).await.unwrap();
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.card_id.clone(), r.reason.clone()))
        .collect();
    let expect = |c: &str, r: &str| (c.to_string(), r.to_string());
    assert_eq!(
        got,
        [
            expect("competitor-acme", "shown"),
            // Higher priority is decided first within one message.
            expect("competitor-acme", "cooldown"),
            expect("brand-new-card", "shown"),
        ]
    );
    assert_ne!(rows[0].library_version, rows[2].library_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_library_never_replaces_the_live_one() {
    let cards = copy_of_bundled_cards();
    let server = TestServer::start(cards.path(), Limits::default()).await;
    let before = http_request(server.addr, "GET", "/v1/cards/status", None, None)
        .await
        .1;
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();
    std::fs::write(
        cards.path().join("broken.yaml"),
        "id: broken\ntitle: Broken\ncategory: nonsense\ntriggers: { any: [x] }\nbody: b\n",
    )
    .unwrap();
    let (code, body) = http_request(server.addr, "POST", "/v1/admin/reload", None, None).await;
    assert_eq!(code, 422, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["ok"], false);
    assert_eq!(
        status["version"], before["version"],
        "the old library stays live"
    );
    let err = &status["errors"][0];
    assert!(err["file"].as_str().unwrap().ends_with("broken.yaml"));
    assert_eq!(err["line"], 3);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("unknown value `nonsense`")
    );
    let (_, now) = http_request(server.addr, "GET", "/v1/cards/status", None, None).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&now).unwrap(),
        status
    );

    // Calls still work on the old library.
    let mut ws = connect(&server.url("/v1/stream")).await;
    send(&mut ws, r#"{"type":"start","call_id":"c-inv"}"#).await;
    next_json(&mut ws).await;
    send(&mut ws, &transcript("s1", "we are looking at acme", 1000)).await;
    assert_eq!(next_json(&mut ws).await["card_id"], "competitor-acme");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changes_are_live_within_a_second_or_two() {
    let cards = copy_of_bundled_cards();
    let server = TestServer::start(cards.path(), Limits::default()).await;
    cuedeck::server::reload::watch(server.state.clone()).expect("watch");
    let mut ws = connect(&server.url("/v1/stream")).await;
    send(&mut ws, r#"{"type":"start","call_id":"c-watch"}"#).await;
    next_json(&mut ws).await;
    std::fs::write(cards.path().join("brand-new-card.yaml"), NEW_CARD).unwrap();
    // Poll with new segments until the card fires (bounded).
    let mut fired = false;
    for i in 0..40u64 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send(
            &mut ws,
            &transcript(&format!("s{i}"), "flux capacitor", i * 1000),
        )
        .await;
        send(&mut ws, "{").await; // an error frame marks the end of this message's output
        loop {
            let f = next_json(&mut ws).await;
            if f["type"] == "error" {
                break;
            }
            if f["card_id"] == "brand-new-card" {
                fired = true;
            }
        }
        if fired {
            break;
        }
    }
    assert!(fired, "the new card never fired after the file was written");
    server.shutdown().await;
}
