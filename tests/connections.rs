//! Connections as real networks drop them: a bridge reconnecting without a FIN, a stream
//! restarting its clock, a panel reconnecting, peers that stop answering, and the abuse a
//! rep token allows (feedback floods, subscriptions to made-up calls).

use std::time::Duration;

use cuedeck::config::Limits;

use crate::support::*;

/// A card library of one card: `price`, 60 s cooldown, up to 10 per call, no deck gap.
fn price_cards() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("price.yaml"),
        "id: price\ntitle: Price\ncategory: objection\nbody: Isolate it.\n\
         triggers: { any: [price], speaker: prospect }\ncooldown_seconds: 60\nmax_per_call: 10\n",
    )
    .expect("card");
    std::fs::write(
        dir.path().join("_deck.yaml"),
        "max_cards_per_call: 20\nmin_gap_seconds: 0\n",
    )
    .expect("deck");
    dir
}

fn said(segment: &str, t_ms: u64) -> String {
    format!(
        r#"{{"type":"transcript","segment_id":"{segment}","speaker":"prospect","text":"the price","is_final":true,"t_ms":{t_ms}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_reconnecting_without_closing_takes_its_call_over_and_resumes_it() {
    let cards = price_cards();
    let server = TestServer::start(cards.path(), Limits::default()).await;
    let mut old = connect(&server.url("/v1/stream")).await;
    send(&mut old, r#"{"type":"start","call_id":"c-9"}"#).await;
    assert_eq!(next_json(&mut old).await["type"], "ready");
    send(&mut old, &said("s1", 600_000)).await;
    assert_eq!(next_json(&mut old).await["type"], "card");

    // The bridge's network dropped without a FIN: it reconnects, now knowing the deal,
    // while the old socket still looks open. Its provider restarted its clock at 0.
    let mut new = connect(&server.url("/v1/stream")).await;
    send(
        &mut new,
        r#"{"type":"start","call_id":"c-9","deal_id":"d-9"}"#,
    )
    .await;
    assert_eq!(next_json(&mut new).await["type"], "ready");
    let (_, close) = drain(&mut old).await;
    assert_eq!(close, Some((4001, "replaced".to_string())));

    // Resumed: the card is still cooling down at the call time the new stream starts at...
    send(&mut new, &said("s2", 1_000)).await;
    // ...and shown two minutes later on the new stream's clock (the call's 12th minute).
    send(&mut new, &said("s3", 121_000)).await;
    let card = next_json(&mut new).await;
    assert_eq!(card["type"], "card");
    assert_eq!(card["trigger"]["segment_id"], "s3");
    assert_eq!(card["trigger"]["t_ms"], 720_000);
    send(&mut new, r#"{"type":"end"}"#).await;
    drain(&mut new).await;

    let stopped = server.shutdown().await;
    let rows = stopped.store.exposures(Some("c-9")).await.unwrap();
    let logged: Vec<(&str, Option<&str>, &str)> = rows
        .iter()
        .map(|r| {
            (
                r.segment_id.as_str(),
                r.deal_id.as_deref(),
                r.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        logged,
        [
            ("s1", None, "shown"),
            ("s2", Some("d-9"), "cooldown"),
            ("s3", Some("d-9"), "shown"),
        ],
        "the deal id given on reconnect reaches the exposures"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panel_that_reconnects_is_sent_the_cards_it_missed() {
    let cards = price_cards();
    let server = TestServer::start(cards.path(), Limits::default()).await;
    let mut ingest = connect(&server.url("/v1/stream")).await;
    send(&mut ingest, r#"{"type":"start","call_id":"c-p"}"#).await;
    next_json(&mut ingest).await;
    // A card is shown while no panel is connected (it is reconnecting).
    send(&mut ingest, &said("s1", 1_000)).await;
    let live = next_json(&mut ingest).await;

    let mut panel = connect(&server.url("/v1/calls/c-p/cards")).await;
    assert_eq!(next_json(&mut panel).await["type"], "ready");
    let replayed = next_json(&mut panel).await;
    assert_eq!(replayed["replayed"], true);
    assert_eq!(replayed["display_id"], live["display_id"]);
    // Cards shown from now on come live, unmarked.
    send(&mut ingest, &said("s2", 100_000)).await;
    let next = next_json(&mut panel).await;
    assert_eq!(next["trigger"]["segment_id"], "s2");
    assert!(next.get("replayed").is_none(), "{next}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_taken_only_for_cards_of_the_call_and_at_a_bounded_rate() {
    let cards = price_cards();
    let limits = Limits {
        feedback_per_second: 2,
        max_errors_in_a_row: 3,
        ..Limits::default()
    };
    let server = TestServer::start(cards.path(), limits).await;
    let mut ingest = connect(&server.url("/v1/stream")).await;
    send(&mut ingest, r#"{"type":"start","call_id":"c-f"}"#).await;
    next_json(&mut ingest).await;
    send(&mut ingest, &said("s1", 1_000)).await;
    let card = next_json(&mut ingest).await;
    let shown = card["display_id"].as_str().unwrap().to_string();
    let feedback =
        |id: &str| format!(r#"{{"type":"feedback","display_id":"{id}","action":"useful"}}"#);

    let mut panel = connect(&server.url("/v1/calls/c-f/cards")).await;
    next_json(&mut panel).await; // ready
    next_json(&mut panel).await; // the card, replayed
    // A display id never shown on this call is refused, not stored.
    send(&mut panel, &feedback("01JDMADEUP000000000000000")).await;
    let err = next_json(&mut panel).await;
    assert_eq!(err["code"], "bad_message", "{err}");
    // Feedback does not reset the errors in a row: it cannot hold a bad client open.
    send(&mut panel, &feedback(&shown)).await;
    send(&mut panel, "not json").await;
    assert_eq!(next_json(&mut panel).await["code"], "bad_message");
    send(&mut panel, &feedback(&shown)).await;
    send(&mut panel, "not json").await;
    let (frames, close) = drain(&mut panel).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(close.map(|c| c.0), Some(1008));

    // A flood from the ingest socket: a burst of twice the rate (4), then `limit`.
    for _ in 0..6 {
        send(&mut ingest, &feedback(&shown)).await;
    }
    for _ in 0..2 {
        let err = next_json(&mut ingest).await;
        assert_eq!(err["code"], "limit", "{err}");
    }
    send(&mut ingest, r#"{"type":"end"}"#).await;
    let (frames, _) = drain(&mut ingest).await;
    assert!(frames.is_empty(), "only two refused: {frames:?}");

    let stopped = server.shutdown().await;
    let stored = stopped.store.feedback(Some(&shown)).await.unwrap();
    // The panel's two and the ingest's four (rows of the same millisecond are one).
    assert!((3..=6).contains(&stored.len()), "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panels_on_made_up_calls_take_no_call_slot() {
    let limits = Limits {
        max_calls: 1,
        ..Limits::default()
    };
    let server = TestServer::start(&bundled_cards(), limits).await;
    let mut panels = Vec::new();
    for i in 0..5 {
        let mut p = connect(&server.url(&format!("/v1/calls/nope-{i}/cards"))).await;
        assert_eq!(next_json(&mut p).await["type"], "ready");
        panels.push(p);
    }
    let mut ingest = connect(&server.url("/v1/stream")).await;
    send(&mut ingest, r#"{"type":"start","call_id":"real"}"#).await;
    assert_eq!(next_json(&mut ingest).await["type"], "ready");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let limits = Limits {
        ping_seconds: 1,
        ..Limits::default()
    };
    let server = TestServer::start(&bundled_cards(), limits).await;
    let mut ingest = connect(&server.url("/v1/stream")).await;
    send(&mut ingest, r#"{"type":"start","call_id":"c-dead"}"#).await;
    next_json(&mut ingest).await;
    assert_eq!(server.state.calls.active_calls(), 1);
    // The client stops reading, so it never answers a ping (its network is gone).
    let mut dropped = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if server.state.calls.active_calls() == 0 {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the call is let go after two unanswered pings");
    drop(ingest);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_panel_answering_pings_outlives_the_idle_timeout() {
    let limits = Limits {
        ping_seconds: 1,
        idle_timeout_seconds: 2,
        ..Limits::default()
    };
    let server = TestServer::start(&bundled_cards(), limits).await;
    let mut panel = connect(&server.url("/v1/calls/quiet/cards")).await;
    next_json(&mut panel).await;
    // Reading answers the server's pings; nothing else is sent for longer than the idle
    // timeout: the pongs keep the panel open.
    let quiet = tokio::time::timeout(Duration::from_millis(3_500), drain(&mut panel)).await;
    assert!(quiet.is_err(), "still open: {quiet:?}");
    server.shutdown().await;
}
