//! A/B experiments end to end: calls streamed over real WebSockets are assigned sticky
//! arms, outcomes arrive through the CRM webhook, and the report counts exactly what was
//! streamed and posted. Also `cuedeck outcomes import`, `cuedeck report` and the simulator
//! whose known true effect the report must recover.

use std::collections::BTreeMap;
use std::path::Path;

use cuedeck::config::{Limits, Role, Token};
use cuedeck::engine::Engine;
use cuedeck::library::Library;
use cuedeck::report::{self, ExperimentDef, ReportOptions};
use cuedeck::server::Tokens;
use cuedeck::simulate::{self, SimParams};
use cuedeck::store::Store;
use serde_json::{Value, json};

use crate::support::*;

const KEY: &str = "price-test";

const CARD: &str = "\
id: price
title: Price objection
category: objection
triggers:
  any: [\"too expensive\"]
body: Anchor on the value agreed in discovery.
experiment:
  key: price-test
  variants:
    - { id: control, weight: 1, show: false }
    - { id: short, weight: 1, body: \"Isolate, then anchor.\" }
    - { id: long, weight: 1 }
";

fn cards_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("price.yaml"), CARD).expect("write card");
    dir
}

/// Streams one call that fires the card once; returns the card frames it got back.
async fn call(server: &TestServer, call_id: &str, deal_id: Option<&str>) -> Vec<Value> {
    let mut ws = connect(&server.url("/v1/stream")).await;
    let mut start = json!({"type": "start", "call_id": call_id, "rep_id": "r-1"});
    if let Some(d) = deal_id {
        start["deal_id"] = json!(d);
    }
    send(&mut ws, &start.to_string()).await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    send(
        &mut ws,
        r#"{"type":"transcript","segment_id":"s-1","speaker":"prospect","text":"honestly this is too expensive","is_final":true,"t_ms":1000}"#,
    )
    .await;
    send(&mut ws, r#"{"type":"end"}"#).await;
    let (frames, _) = drain(&mut ws).await;
    frames.into_iter().filter(|f| f["type"] == "card").collect()
}

/// The arm a deal's call landed in, as the rep saw it: the card's variant, or the control
/// arm when no card came back.
fn seen_arm(cards: &[Value]) -> String {
    assert!(cards.len() <= 1, "{cards:?}");
    cards.first().map_or("control".to_string(), |c| {
        c["variant"].as_str().unwrap().to_string()
    })
}

fn outcome_for(i: usize) -> Option<&'static str> {
    match i % 10 {
        0..=2 => Some("won"),
        3..=6 => Some("lost"),
        7 => Some("open"),
        _ => None,
    }
}

async fn post(server: &TestServer, body: &Value) -> (u16, Value) {
    let (status, text) = http_request(
        server.addr,
        "POST",
        "/v1/outcomes",
        None,
        Some(&body.to_string()),
    )
    .await;
    (status, serde_json::from_str(&text).expect("JSON answer"))
}

async fn wait_for_exposures(store: &Store, n: usize) {
    for _ in 0..200 {
        if store.exposures(None).await.unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the exposures were not all written");
}

async fn streamed_calls_and_posted_outcomes_are_reported_exactly(db: Option<String>) {
    let cards = cards_dir();
    let server =
        TestServer::start_with(cards.path(), Limits::default(), Tokens::default(), db).await;
    const DEALS: usize = 300;

    // Stream one call per deal (every fifth deal calls twice), 12 connections at a time.
    let mut arms: BTreeMap<String, String> = BTreeMap::new();
    let mut calls = 0;
    let srv = &server;
    for chunk in (0..DEALS).collect::<Vec<_>>().chunks(12) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let deal = format!("d-{i:03}");
            let n = if i % 5 == 0 { 2 } else { 1 };
            calls += n;
            tasks.push(async move {
                let mut seen = Vec::new();
                for c in 0..n {
                    seen.push(seen_arm(
                        &call(srv, &format!("c-{i}-{c}"), Some(&deal)).await,
                    ));
                }
                (deal, seen)
            });
        }
        for (deal, seen) in futures_util::future::join_all(tasks).await {
            assert!(
                seen.iter().all(|a| *a == seen[0]),
                "{deal}: sticky across calls {seen:?}"
            );
            arms.insert(deal, seen[0].clone());
        }
    }
    // Calls without a deal id are not enrolled: base content, no variant.
    for i in 0..3 {
        let cards = call(&server, &format!("anon-{i}"), None).await;
        assert_eq!(cards.len(), 1);
        assert!(cards[0]["variant"].is_null(), "{}", cards[0]);
        assert_eq!(cards[0]["body"], "Anchor on the value agreed in discovery.");
    }
    wait_for_exposures(&server.store, calls + 3).await;

    // Outcomes through the webhook: arrays of 50, one single object; some deals first
    // report `open` and later their result (last write wins).
    let mut expected_outcome: BTreeMap<String, &str> = BTreeMap::new();
    let mut early = Vec::new();
    let mut last = Vec::new();
    for i in 0..DEALS {
        let Some(o) = outcome_for(i) else { continue };
        let deal = format!("d-{i:03}");
        if i % 6 == 0 && o != "open" {
            early.push(json!({"deal_id": deal, "outcome": "open", "amount": 5000}));
        }
        let mut body = json!({"deal_id": deal, "outcome": o, "currency": "USD"});
        if o == "won" {
            body["amount"] = json!(1000.0 + i as f64);
            body["closed_at"] = json!(cuedeck::timestamp::Timestamp::now().to_string());
        }
        last.push(body);
        expected_outcome.insert(deal, o);
    }
    for chunk in early.chunks(50) {
        assert_eq!(post(&server, &json!(chunk)).await.0, 200);
    }
    let single = last.pop().unwrap();
    for chunk in last.chunks(50) {
        let (status, answer) = post(&server, &json!(chunk)).await;
        assert_eq!(
            (status, answer["saved"].as_u64()),
            (200, Some(chunk.len() as u64))
        );
    }
    assert_eq!(post(&server, &single).await, (200, json!({"saved": 1})));
    // Posting the same update again changes nothing (the deal's latest outcome is the same).
    assert_eq!(post(&server, &single).await.0, 200);

    // A bad element rejects the whole request, naming its index and field.
    let (status, answer) = post(
        &server,
        &json!([
            {"deal_id": "d-001", "outcome": "lost"},
            {"deal_id": "d-002", "outcome": "won", "amount": -3},
        ]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        (answer["index"].clone(), answer["field"].clone()),
        (json!(1), json!("amount"))
    );
    assert!(
        answer["error"].as_str().unwrap().starts_with("[1].amount:"),
        "{answer}"
    );
    let history = server.store.outcomes(Some("d-001")).await.unwrap();
    assert_eq!(
        history.last().unwrap().outcome,
        "won",
        "nothing of the bad request was saved"
    );

    // The report counts exactly what was streamed and posted.
    let (status, text) = http_request(
        server.addr,
        "GET",
        &format!("/v1/experiments/{KEY}/report"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["experiment_key"], KEY);
    assert_eq!(report["card_id"], "price");
    assert_eq!(report["unit"], "deal");
    assert_eq!(report["metric"], "closed");
    assert_eq!(report["multiple_exposure_units"], 0);
    let srm = report["srm_p"].as_f64().unwrap();
    assert!(
        srm >= 0.001 && report["srm_warning"] == false,
        "SRM flagged: {srm}"
    );
    let variants = report["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 3);
    for v in variants {
        let id = v["id"].as_str().unwrap();
        let deals: Vec<&String> = arms
            .iter()
            .filter(|(_, a)| *a == id)
            .map(|(d, _)| d)
            .collect();
        let outcome = |d: &&String| expected_outcome.get(d.as_str()).copied();
        let closed = deals
            .iter()
            .filter(|d| matches!(outcome(d), Some("won" | "lost")))
            .count();
        let won = deals.iter().filter(|d| outcome(d) == Some("won")).count();
        assert!(deals.len() > 60, "{id}: {} deals", deals.len());
        assert_eq!(v["units"], deals.len(), "{id}");
        assert_eq!(v["closed"], closed, "{id}");
        assert_eq!(v["won"], won, "{id}");
        assert_eq!(
            v["win_rate"].as_f64().unwrap(),
            won as f64 / closed as f64,
            "{id}"
        );
        let [lo, hi] = [&v["win_rate_ci"][0], &v["win_rate_ci"][1]].map(|x| x.as_f64().unwrap());
        assert!(lo < v["win_rate"].as_f64().unwrap() && v["win_rate"].as_f64().unwrap() < hi);
        assert_eq!(v["control"], id == "control");
        if id == "control" {
            assert!(v["vs_control"].is_null());
        } else {
            let vs = &v["vs_control"];
            // Fewer than 100 closed deals per arm: no verdict, and how many more are needed.
            assert_eq!(vs["enough_data"], false);
            assert_eq!(vs["verdict"], "not_enough_data");
            assert!(vs["needed_units_per_arm"].as_u64().unwrap() > 0);
            assert!(vs["p_value"].as_f64().is_some() && vs["rel_ci"].is_array());
        }
    }

    // The same as CSV, and in the experiment list.
    let (status, csv) = http_request(
        server.addr,
        "GET",
        &format!("/v1/experiments/{KEY}/report?format=csv&metric=matured"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains(",matured,"), "{csv}");
    let (status, list) = http_request(server.addr, "GET", "/v1/experiments", None, None).await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    let exp = &list["experiments"][0];
    assert_eq!(
        (exp["key"].as_str(), exp["status"].as_str()),
        (Some(KEY), Some("running"))
    );
    assert_eq!(exp["units"], DEALS);
    assert_eq!(exp["exposures"], calls, "enrolled calls only");
    // Bad parameters and unknown experiments are named.
    let (status, text) = http_request(
        server.addr,
        "GET",
        "/v1/experiments/nope/report",
        None,
        None,
    )
    .await;
    assert_eq!(status, 404, "{text}");
    let (status, text) = http_request(
        server.addr,
        "GET",
        &format!("/v1/experiments/{KEY}/report?as_of=yesterday"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("as_of"), "{text}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_sqlite() {
    streamed_calls_and_posted_outcomes_are_reported_exactly(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_postgres() {
    if let Some(url) = postgres_database().await {
        streamed_calls_and_posted_outcomes_are_reported_exactly(Some(url)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outcome_webhook_needs_the_admin_role() {
    let token = |secret: &str, role| Token {
        name: secret.into(),
        role,
        secret: secret.into(),
        rep_id: None,
    };
    let tokens = Tokens::new(&[
        token("manager-secret-00001", Role::Manager),
        token("admin-secret-0000001", Role::Admin),
    ]);
    let cards = cards_dir();
    let server = TestServer::start_with_tokens(cards.path(), Limits::default(), tokens).await;
    let body = r#"{"deal_id":"d-1","outcome":"won","amount":12000,"currency":"USD","closed_at":"2026-11-20T10:00:00Z"}"#;
    for (token, expected) in [
        (None, 401),
        (Some("manager-secret-00001"), 403),
        (Some("admin-secret-0000001"), 200),
    ] {
        let (status, text) =
            http_request(server.addr, "POST", "/v1/outcomes", token, Some(body)).await;
        assert_eq!(status, expected, "{token:?}: {text}");
    }
    let saved = server.store.outcomes(Some("d-1")).await.unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].amount, Some(12000.0));
    assert_eq!(
        saved[0].closed_at.map(|t| t.to_string()).as_deref(),
        Some("2026-11-20T10:00:00.000Z")
    );
    server.shutdown().await;
}

/// One validator for the report options: the same bad value is refused with the same
/// message by `cuedeck report` and by the report route, each naming the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_report_options_get_the_same_message_from_the_command_line_and_http() {
    let cards = cards_dir();
    let server = TestServer::start(cards.path(), Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(&dir.path().join("report.db"));
    for (param, value) in [
        ("window_days", "0"),
        ("window_days", "ninety"),
        ("as_of", "22/11/2026"),
        ("metric", "won"),
        ("seq_tuning", "0"),
    ] {
        let path = format!("/v1/experiments/{KEY}/report?{param}={value}");
        let (status, body) = http_request(server.addr, "GET", &path, None, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let http = body["error"].as_str().unwrap();
        let message = http
            .strip_prefix(&format!("`{param}`: "))
            .unwrap_or_else(|| panic!("{http} names `{param}`"));
        assert!(message.contains(value), "{http}");

        let flag = format!("--{}", param.replace('_', "-"));
        let cards = cards.path().to_str().unwrap();
        let out = cuedeck(&["report", "--db", &db, "--cards", cards, &flag, value]);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            text(&out.stderr).trim_end(),
            format!("cuedeck: report: {flag}: {message}")
        );
    }
    // Percent-encoded values are decoded: `2020%2D01%2D01` is 2020-01-01.
    let (status, csv) = http_request(
        server.addr,
        "GET",
        &format!("/v1/experiments/{KEY}/report?format=csv&as_of=2020%2D01%2D01"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    assert!(csv.contains(",2020-01-01,"), "{csv}");
    server.shutdown().await;
}

/// The simulator's known effect: with 20,000 deals the report's intervals cover the true
/// win rates and the true relative lift of every treatment arm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_recovers_the_simulated_true_effect() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("sim.db").display()))
        .await
        .unwrap();
    let engine = Engine::new(Library::load_dir(&bundled_cards()).unwrap()).unwrap();
    let mut params = SimParams::new(20_000, 0.1, 7);
    params.now = time::macros::datetime!(2026-11-22 12:00 UTC);
    let summary = simulate::run(&store, &engine, &params).await.unwrap();
    assert_eq!(summary.deals, 20_000);
    let def = ExperimentDef::from_library(engine.library())
        .into_iter()
        .find(|d| d.key == summary.experiment_key)
        .unwrap();
    let opts = ReportOptions::new(time::macros::date!(2026 - 11 - 22));
    let r = report::build(&store, &def, &opts).await.unwrap();

    assert!(!r.srm_warning, "SRM p {:?}", r.srm_p);
    assert_eq!(
        r.multiple_exposure_units, 0,
        "every deal's calls got one arm"
    );
    assert_eq!(r.variants.iter().map(|v| v.units).sum::<u64>(), 20_000);
    let base = r.variants.iter().find(|v| v.id == r.baseline).unwrap();
    for v in &r.variants {
        let (_, deals, true_rate) = summary
            .variants
            .iter()
            .find(|(id, ..)| *id == v.id)
            .unwrap();
        assert_eq!(v.units, *deals, "{}", v.id);
        let [lo, hi] = v.win_rate_ci.unwrap();
        assert!(
            lo < *true_rate && *true_rate < hi,
            "{}: {true_rate} outside [{lo}, {hi}]",
            v.id
        );
        if v.id == base.id {
            continue;
        }
        let vs = v.vs_control.as_ref().unwrap();
        assert!(vs.enough_data);
        for (name, ci) in [("fixed", vs.rel_ci), ("always-valid", vs.seq_ci)] {
            let [lo, hi] = ci.unwrap();
            assert!(
                lo < 0.1 && 0.1 < hi,
                "{}: {name} CI [{lo}, {hi}] misses the true lift 0.1",
                v.id
            );
        }
        let [lo, hi] = vs.abs_ci.unwrap();
        assert!(lo < 0.025 && 0.025 < hi, "{}: [{lo}, {hi}]", v.id);
        assert!(vs.chance_to_win.unwrap() > 0.5);
    }
    store.close().await;
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("cuedeck.db").display())
}

#[test]
fn outcomes_import_reports_bad_rows_and_imports_nothing_unless_told_to_skip_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path());
    let csv = dir.path().join("outcomes.csv");
    std::fs::write(
        &csv,
        "deal_id,outcome,amount,currency,closed_at\n\
         d-1,won,12000.50,USD,2026-11-20\n\
         d-2,maybe,,,\n\
         d-3,lost,,,2026-11-21T09:00:00Z\n\
         d-4,won,12k,USD,\n",
    )
    .unwrap();
    let csv = csv.to_str().unwrap();
    let out = cuedeck(&["outcomes", "import", "--db", &db, csv]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("row 3: `outcome`"), "{err}");
    assert!(err.contains("row 5: `amount`"), "{err}");
    assert!(err.contains("nothing imported"), "{err}");

    let out = cuedeck(&["outcomes", "import", "--db", &db, "--skip-bad", csv]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("imported 2 outcome(s), skipped 2 bad row(s)"));
    let rows = tokio::runtime::Runtime::new().unwrap().block_on(async {
        Store::open(&db)
            .await
            .unwrap()
            .outcomes(None)
            .await
            .unwrap()
    });
    let saved: Vec<(&str, &str, Option<f64>)> = rows
        .iter()
        .map(|o| (o.deal_id.as_str(), o.outcome.as_str(), o.amount))
        .collect();
    assert_eq!(
        saved,
        [("d-1", "won", Some(12000.5)), ("d-3", "lost", None)]
    );

    let out = cuedeck(&["outcomes", "import", "--db", &db, "missing.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("cuedeck: outcomes import: cannot read missing.csv"));
}

#[test]
fn simulate_then_report_as_table_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path());
    let out = cuedeck(&[
        "simulate", "--db", &db, "--deals", "600", "--lift", "0.2", "--seed", "3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("simulated 600 deals"),
        "{}",
        text(&out.stdout)
    );

    let out = cuedeck(&["report", "--db", &db]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for word in [
        "price-objection-2026q4",
        "control (baseline)",
        "short",
        "long",
        "win rate",
        "SRM p",
    ] {
        assert!(table.contains(word), "{word} missing from\n{table}");
    }

    let out = cuedeck(&[
        "report",
        "--db",
        &db,
        "--format",
        "json",
        "--metric",
        "matured",
        "--window-days",
        "30",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "one experiment in the bundled cards");
    assert_eq!(
        (
            lines[0]["metric"].as_str(),
            lines[0]["window_days"].as_u64()
        ),
        (Some("matured"), Some(30))
    );
    let units: u64 = lines[0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["units"].as_u64().unwrap())
        .sum();
    assert_eq!(units, 600);

    let out = cuedeck(&[
        "report",
        "--db",
        &db,
        "--format",
        "csv",
        "--as-of",
        "2020-01-01",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().contains(",2020-01-01,"),
        "{csv}"
    );

    let out = cuedeck(&["report", "--db", &db, "--experiment", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no experiment `nope`"),
        "{}",
        text(&out.stderr)
    );
    let out = cuedeck(&["report", "--db", &db, "--as-of", "22/11/2026"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--as-of"),
        "{}",
        text(&out.stderr)
    );
    let missing = db_url(&dir.path().join("nowhere"));
    let out = cuedeck(&["report", "--db", &missing]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no such database file"),
        "{}",
        text(&out.stderr)
    );
}

/// The simulator's bulk writes and the report's reads on PostgreSQL too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_and_report_on_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    let engine = Engine::new(Library::load_dir(&bundled_cards()).unwrap()).unwrap();
    let mut params = SimParams::new(400, 0.1, 11);
    params.now = time::macros::datetime!(2026-11-22 12:00 UTC);
    let summary = simulate::run(&store, &engine, &params).await.unwrap();
    let def = ExperimentDef::from_library(engine.library())
        .into_iter()
        .find(|d| d.key == summary.experiment_key)
        .unwrap();
    let opts = ReportOptions::new(time::macros::date!(2026 - 11 - 22));
    let r = report::build(&store, &def, &opts).await.unwrap();
    assert_eq!(r.variants.iter().map(|v| v.units).sum::<u64>(), 400);
    assert_eq!(r.multiple_exposure_units, 0);
    assert!(r.revenue_cap.is_some() && r.currency.as_deref() == Some("USD"));
    // Amounts (NULL for lost deals, decimals for won ones) survive the round trip.
    let outcomes = store.outcomes(None).await.unwrap();
    assert_eq!(outcomes.len() as u64, summary.outcome_rows);
    assert!(
        outcomes
            .iter()
            .any(|o| o.outcome == "lost" && o.amount.is_none())
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.outcome == "won" && o.amount.is_some_and(|a| a.fract() != 0.0))
    );
    store.close().await;
}
