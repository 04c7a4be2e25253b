//! `GET /metrics`: Prometheus text with the counts a call produced.

use std::time::Duration;

use cuedeck::config::Limits;

use crate::support::*;

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_a_call_did() {
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let call = demo_call("demo-renewal.jsonl");
    let lines: Vec<&str> = call.lines().filter(|l| !l.trim().is_empty()).collect();
    let transcripts = lines
        .iter()
        .filter(|l| l.contains("\"transcript\""))
        .count();
    let mut ws = connect(&server.url("/v1/stream")).await;
    for line in &lines[..lines.len() - 1] {
        send(&mut ws, line).await;
    }
    send(&mut ws, "not json").await;
    let mut cards = 0;
    loop {
        let f = next_json(&mut ws).await;
        if f["type"] == "card" {
            cards += 1;
        }
        if f["type"] == "error" {
            break;
        }
    }
    let _sub = connect(&server.url("/v1/calls/demo-renewal-1/cards")).await;

    // The writer is asynchronous: wait (bounded) until every exposure is written.
    let mut text = String::new();
    for _ in 0..50 {
        text = http_get(server.addr, "/metrics".into()).await;
        if value(&text, "cuedeck_exposures_written_total") as usize >= cards {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text.starts_with("HTTP/1.1 200"));
    assert!(text.contains("text/plain; version=0.0.4"));
    assert_eq!(
        value(&text, "cuedeck_decisions_total{reason=\"shown\"}") as usize,
        cards
    );
    assert_eq!(
        value(&text, "cuedeck_messages_total{type=\"transcript\"}") as usize,
        transcripts
    );
    assert_eq!(value(&text, "cuedeck_messages_total{type=\"start\"}"), 1.0);
    assert_eq!(
        value(&text, "cuedeck_messages_total{type=\"invalid\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "cuedeck_engine_latency_seconds_count") as usize,
        cards
    );
    assert_eq!(
        value(&text, "cuedeck_engine_latency_seconds_bucket{le=\"+Inf\"}") as usize,
        cards
    );
    assert_eq!(
        value(&text, "cuedeck_exposures_written_total") as usize,
        cards
    );
    assert_eq!(value(&text, "cuedeck_calls_active"), 1.0);
    assert_eq!(
        value(&text, "cuedeck_connections"),
        2.0,
        "ingest + subscriber"
    );
    assert_eq!(value(&text, "cuedeck_store_up"), 1.0);
    assert_eq!(value(&text, "cuedeck_store_write_failures_total"), 0.0);
    // At least one batch was written (the start, the exposures), each one timed.
    let batches = value(&text, "cuedeck_store_write_seconds_count");
    assert!(batches >= 1.0, "{text}");
    assert_eq!(
        value(&text, "cuedeck_store_write_seconds_bucket{le=\"+Inf\"}"),
        batches
    );
    assert!(value(&text, "cuedeck_store_write_seconds_sum") > 0.0);
    assert_eq!(value(&text, "cuedeck_bad_messages_total"), 1.0);
    assert_eq!(value(&text, "cuedeck_reloads_total{result=\"error\"}"), 0.0);
    server.shutdown().await;
}
