//! The pages in a real browser: Debian's Chromium driven through chromedriver.
//! Without chromedriver these tests are skipped with a printed reason — except under
//! `CI=true`, where they fail.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cuedeck::config::Limits;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::*;

/// A chromedriver process, killed on drop. Holds the browser lock: one browser at a time,
/// so the tests' timing assertions are not at the mercy of several Chromiums on 2 cores.
pub struct Driver {
    child: Child,
    pub url: String,
    _profile: tempfile::TempDir,
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(cmd: &str) -> Option<String> {
    ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"]
        .iter()
        .map(|d| format!("{d}/{cmd}"))
        .find(|p| std::path::Path::new(p).exists())
}

/// Starts chromedriver, or returns `None` (skip) when it is not installed.
pub async fn driver() -> Option<(Driver, Client)> {
    let Some(chromedriver) = find("chromedriver") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromedriver is required under CI=true (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: chromedriver not found (apt-get install chromium chromium-driver)");
        return None;
    };
    let guard = BROWSER.lock().await;
    let port = StdListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().expect("profile dir");
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: profile,
        _one_at_a_time: guard,
    };
    let mut caps = serde_json::Map::new();
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-first-run".into(),
        "--window-size=1280,900".into(),
        // Cards fade in from opacity 0, and WebDriver reads no text from an invisible
        // element; the panel honours reduced motion, so tests see cards at once.
        "--force-prefers-reduced-motion".into(),
    ];
    args.push(format!("--user-data-dir={}", d._profile.path().display()));
    let mut options = json!({ "args": args });
    if let Some(bin) = find("chromium") {
        options["binary"] = json!(bin);
    }
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&d.url)
            .await
        {
            Ok(client) => return Some((d, client)),
            Err(e) if Instant::now() > deadline => panic!("chromedriver did not start: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits for an element, up to `secs` seconds.
async fn wait_for(c: &Client, css: &str, secs: u64) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(secs))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} within {secs} s: {e}"))
}

/// The element's visible text once it has any (a card may still be fading in), waiting
/// up to 2 s.
async fn shown_text(el: &fantoccini::elements::Element) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let text = el.text().await.expect("element text");
        if !text.is_empty() || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the image has loaded (it is fetched with the token header, then shown from a
/// blob), waiting up to 5 s.
async fn image_loaded(c: &Client, css: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let width = c
            .execute(
                "const i = document.querySelector(arguments[0]); return i ? i.naturalWidth : 0",
                vec![json!(css)],
            )
            .await
            .expect("read image width");
        if width.as_u64().unwrap_or(0) > 0 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn no_js_errors(c: &Client) {
    let errors = c
        .execute("return window.__cuedeckErrors;", vec![])
        .await
        .expect("read errors");
    assert_eq!(errors, json!([]), "JavaScript errors on the page");
}

async fn save_screenshot(c: &Client, name: &str) {
    // Regenerate the README's screenshots with CUEDECK_SCREENSHOTS=1.
    if std::env::var("CUEDECK_SCREENSHOTS").as_deref() == Ok("1") {
        let png = c.screenshot().await.expect("screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(name), png).expect("write screenshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rep_panel_shows_cards_and_sends_feedback() {
    let Some((_driver, c)) = driver().await else {
        return;
    };
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    c.goto(&format!("http://{}/?call=c-browser", server.addr))
        .await
        .expect("open panel");
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::XPath("//*[@id='status'][contains(., 'live')]"))
        .await
        .expect("panel connects");

    let mut ingest = connect(&server.url("/v1/stream")).await;
    send(
        &mut ingest,
        r#"{"type":"start","call_id":"c-browser","deal_id":"d-b"}"#,
    )
    .await;
    next_json(&mut ingest).await;
    let sent = Instant::now();
    send(
        &mut ingest,
        r#"{"type":"transcript","segment_id":"s1","speaker":"prospect","text":"we are also looking at Acme <b>right</b> now","is_final":false,"t_ms":1000}"#,
    )
    .await;
    let card = next_json(&mut ingest).await;
    assert_eq!(card["card_id"], "competitor-acme");
    let el = wait_for(&c, "li.card[data-card-id='competitor-acme']", 2).await;
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "card on screen within 2 s"
    );
    let title = shown_text(&el.find(Locator::Css("h3")).await.unwrap()).await;
    assert_eq!(title, card["title"].as_str().unwrap());
    // The body is rendered from the markdown subset: bold, lists, no raw HTML.
    assert!(el.find(Locator::Css(".body strong")).await.is_ok());
    let links = el
        .find_all(Locator::Css("ul a[target='_blank']"))
        .await
        .unwrap();
    assert!(!links.is_empty());
    assert_eq!(
        links[0].attr("rel").await.unwrap().as_deref(),
        Some("noopener noreferrer")
    );

    // Feedback buttons reach the store.
    el.find(Locator::Css("button[data-action='useful']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let display_id = card["display_id"].as_str().unwrap().to_string();
    let mut actions = Vec::new();
    for _ in 0..50 {
        actions = server
            .store
            .feedback(Some(&display_id))
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.action)
            .collect();
        if !actions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(actions, ["useful"]);

    // Esc dismisses the top card: it moves to the history and `dismissed` is stored.
    c.execute(
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}));",
        vec![],
    )
    .await
    .unwrap();
    wait_for(&c, "#history-box:not([hidden]) #history li", 2).await;
    assert!(c.find(Locator::Css("#cards li.card")).await.is_err());
    let mut stored = Vec::new();
    for _ in 0..50 {
        stored = server.store.feedback(Some(&display_id)).await.unwrap();
        if stored.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let actions: Vec<&str> = stored.iter().map(|f| f.action.as_str()).collect();
    assert!(actions.contains(&"dismissed"), "{actions:?}");
    // Clicking a card's link records `clicked`.
    send(
        &mut ingest,
        r#"{"type":"transcript","segment_id":"s2","speaker":"prospect","text":"we are also talking to globex","is_final":true,"t_ms":5000}"#,
    )
    .await;
    let second = next_json(&mut ingest).await;
    let id = second["display_id"].as_str().unwrap().to_string();
    let link = wait_for(&c, &format!("li.card[data-display-id='{id}'] ul a"), 2).await;
    let window = c.window().await.unwrap();
    link.click().await.unwrap();
    let mut clicked = false;
    for _ in 0..50 {
        let actions = server.store.feedback(Some(&id)).await.unwrap();
        if actions.iter().any(|f| f.action == "clicked") {
            clicked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(clicked, "a link click is stored as `clicked`");
    c.switch_to_window(window).await.unwrap();
    no_js_errors(&c).await;
    c.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rep_panel_reconnects_after_the_server_restarts() {
    let Some((_driver, c)) = driver().await else {
        return;
    };
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    let addr = server.addr;
    c.goto(&format!("http://{addr}/?call=c-restart"))
        .await
        .unwrap();
    let live = Locator::XPath("//*[@id='status'][contains(., 'live')]");
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(live)
        .await
        .unwrap();
    server.shutdown().await;
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::XPath("//*[@id='status'][contains(., 'retrying')]"))
        .await
        .expect("the panel shows it lost the connection");
    // The same address comes back: the panel rejoins the call by itself.
    let again = TestServer::start_at(
        &bundled_cards(),
        Limits::default(),
        cuedeck::server::Tokens::default(),
        None,
        &addr.to_string(),
    )
    .await;
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(live)
        .await
        .expect("reconnected");
    let mut ingest = connect(&again.url("/v1/stream")).await;
    send(&mut ingest, r#"{"type":"start","call_id":"c-restart"}"#).await;
    next_json(&mut ingest).await;
    send(
        &mut ingest,
        r#"{"type":"transcript","segment_id":"s1","speaker":"prospect","text":"we are also looking at acme","is_final":true}"#,
    )
    .await;
    wait_for(&c, "li.card[data-card-id='competitor-acme']", 3).await;
    no_js_errors(&c).await;
    c.close().await.unwrap();
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_call_plays_with_transcript_and_highlighted_phrases() {
    let Some((_driver, c)) = driver().await else {
        return;
    };
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    c.goto(&format!("http://{}/?demo&speed=40", server.addr))
        .await
        .expect("open panel");
    wait_for(&c, "#transcript li", 5).await;
    wait_for(&c, "li.card", 10).await;
    wait_for(&c, "#transcript mark", 5).await;
    // At most max_visible (3) cards on screen; the rest collapse into the history.
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::XPath(
            "//*[@id='status'][contains(., 'demo finished')]",
        ))
        .await
        .expect("demo finishes");
    let visible = c.find_all(Locator::Css("#cards li.card")).await.unwrap();
    assert_eq!(visible.len(), 3);
    let history = c.find_all(Locator::Css("#history li")).await.unwrap();
    assert_eq!(history.len(), 6, "9 cards in the new-deal demo");
    let marks = c.find_all(Locator::Css("#transcript mark")).await.unwrap();
    assert!(
        marks.len() >= 9,
        "each triggering phrase is highlighted: {}",
        marks.len()
    );
    let badge = shown_text(&c.find(Locator::Css("li.card .latency")).await.unwrap()).await;
    assert!(
        badge.starts_with("engine ") && badge.contains("µs"),
        "{badge}"
    );
    no_js_errors(&c).await;
    save_screenshot(&c, "rep-panel-demo.png").await;
    // A phone-width layout has no horizontal page scroll.
    c.set_window_size(390, 844).await.unwrap();
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "the panel fits a phone width");
    c.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_numbers_of_the_json_report() {
    let Some((_driver, c)) = driver().await else {
        return;
    };
    let server = TestServer::start(&bundled_cards(), Limits::default()).await;
    // A simulated experiment in the server's own store, plus one live call with a card.
    let engine = server.state.engine.load_full();
    let params = cuedeck::simulate::SimParams::new(600, 0.2, 7);
    cuedeck::simulate::run(&server.store, &engine, &params)
        .await
        .expect("simulate");
    let mut ingest = connect(&server.url("/v1/stream")).await;
    send(&mut ingest, r#"{"type":"start","call_id":"c-dash"}"#).await;
    next_json(&mut ingest).await;
    send(
        &mut ingest,
        r#"{"type":"transcript","segment_id":"s1","speaker":"prospect","text":"we are also looking at acme","is_final":true}"#,
    )
    .await;
    assert_eq!(next_json(&mut ingest).await["card_id"], "competitor-acme");

    let key = "price-objection-2026q4";
    let (code, body) = http_request(
        server.addr,
        "GET",
        &format!("/v1/experiments/{key}/report"),
        None,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();

    c.goto(&format!("http://{}/dashboard", server.addr))
        .await
        .expect("open dashboard");
    wait_for(
        &c,
        &format!("article.experiment[data-key='{key}'] table.report"),
        10,
    )
    .await;
    let article = wait_for(&c, &format!("article.experiment[data-key='{key}']"), 1).await;
    for v in report["variants"].as_array().unwrap() {
        let id = v["id"].as_str().unwrap();
        let row = article
            .find(Locator::Css(&format!("tr[data-variant='{id}']")))
            .await
            .unwrap_or_else(|_| panic!("row for {id}"));
        let cells: Vec<String> = {
            let mut out = Vec::new();
            for td in row.find_all(Locator::Css("td")).await.unwrap() {
                out.push(td.text().await.unwrap());
            }
            out
        };
        assert_eq!(cells[0], v["units"].to_string(), "{id} units");
        assert_eq!(cells[1], v["closed"].to_string(), "{id} closed");
        assert_eq!(cells[2], v["won"].to_string(), "{id} won");
        let rate = v["win_rate"].as_f64().map(|r| format!("{:.1}%", r * 100.0));
        assert_eq!(Some(cells[3].clone()), rate, "{id} win rate");
    }
    // The forest plot is an SVG from the server.
    let img = article.find(Locator::Css("img.forest")).await.unwrap();
    assert!(image_loaded(&c, "img.forest").await, "forest plot loaded");
    assert!(
        image_loaded(&c, "img.timeline").await,
        "timeline chart loaded"
    );
    assert!(img.attr("alt").await.unwrap().is_some());
    // Library and live sections.
    let version = c
        .find(Locator::Id("lib-version"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(version.starts_with("sha256:"));
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::XPath(
            "//table[@id='top-cards']//td[.='competitor-acme']",
        ))
        .await
        .expect("the live call's card in the top cards");
    assert_eq!(
        c.find(Locator::Id("live-calls"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "1"
    );
    no_js_errors(&c).await;
    save_screenshot(&c, "dashboard.png").await;
    // A phone-width layout has no horizontal page scroll.
    c.set_window_size(390, 844).await.unwrap();
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow, json!(true), "the page fits a phone width");
    c.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_downloads_reports_with_the_token_header() {
    let Some((_driver, c)) = driver().await else {
        return;
    };
    let secret = "manager-secret-00001";
    let tokens = cuedeck::server::Tokens::new(&[cuedeck::config::Token {
        name: "boss".into(),
        role: cuedeck::config::Role::Manager,
        secret: secret.into(),
        rep_id: None,
    }]);
    let server = TestServer::start_with_tokens(&bundled_cards(), Limits::default(), tokens).await;
    let key = "price-objection-2026q4";
    c.goto(&format!("http://{}/dashboard", server.addr))
        .await
        .expect("open dashboard");
    let input = wait_for(&c, "#token", 5).await;
    input.send_keys(secret).await.unwrap();
    c.find(Locator::Css("#auth button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &c,
        &format!("article.experiment[data-key='{key}'] table.report"),
        10,
    )
    .await;
    // Charts and the CSV reach the page without a token in any URL.
    assert!(image_loaded(&c, "img.forest").await, "forest plot loaded");
    assert!(
        image_loaded(&c, "img.timeline").await,
        "timeline chart loaded"
    );
    let link = wait_for(
        &c,
        &format!("article.experiment[data-key='{key}'] a.download-csv"),
        2,
    )
    .await;
    assert_eq!(link.attr("href").await.unwrap().as_deref(), Some("#"));
    link.click().await.unwrap();
    let downloaded = c
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("a.download-csv[data-downloaded]"))
        .await
        .expect("the CSV was fetched");
    let size: usize = downloaded
        .attr("data-downloaded")
        .await
        .unwrap()
        .unwrap_or_default()
        .parse()
        .unwrap();
    let (code, csv) = http_request(
        server.addr,
        "GET",
        &format!("/v1/experiments/{key}/report?format=csv"),
        Some(secret),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(size, csv.len(), "the whole CSV");
    no_js_errors(&c).await;
    c.close().await.unwrap();
    server.shutdown().await;
}
