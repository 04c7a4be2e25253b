//! The `cuedeck serve` binary and its signals: SIGTERM under load loses no exposure and
//! writes none extra; SIGHUP reloads the cards.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// Starts `cuedeck serve` on a free loopback port; returns the child and its address.
fn serve(cards: &Path, db: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cuedeck"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(format!("sqlite://{}", db.display()))
        .arg("--cards")
        .arg(cards)
        .args(extra)
        .env("CUEDECK_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve prints its address")
            .expect("stderr line");
        if let Some(rest) = line.strip_prefix("cuedeck: listening on http://") {
            break rest.split('/').next().unwrap_or_default().to_string();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn sigterm_under_load_loses_no_exposure_and_writes_none_extra() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cuedeck.db");
    let (mut child, addr) = serve(&bundled_cards(), &db, &["--no-watch"]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let received: Vec<String> = runtime.block_on(async {
        let phrases = [
            "honestly the price is a bit too high",
            "we are also looking at acme",
            "I need to run this by my boss",
            "how long does implementation take",
            "what are the next steps",
        ];
        let mut tasks = Vec::new();
        for call in 0..20 {
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                let mut ws = connect(&format!("ws://{addr}/v1/stream")).await;
                send(
                    &mut ws,
                    &format!(r#"{{"type":"start","call_id":"load-{call}","deal_id":"deal-{call}"}}"#),
                )
                .await;
                // Stream until the server closes the socket; collect every card frame.
                let (tx, mut rx) = futures_util::StreamExt::split(ws);
                let writer = tokio::spawn(async move {
                    let mut tx = tx;
                    for seg in 0..100_000u64 {
                        let text = phrases[(seg as usize) % phrases.len()];
                        let msg = format!(
                            r#"{{"type":"transcript","segment_id":"s{seg}","speaker":"prospect","text":"{text}","is_final":true,"t_ms":{}}}"#,
                            seg * 700_000
                        );
                        let frame = tokio_tungstenite::tungstenite::Message::text(msg);
                        if futures_util::SinkExt::send(&mut tx, frame).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                });
                let mut cards = Vec::new();
                let mut close_code = None;
                while let Some(Ok(msg)) = futures_util::StreamExt::next(&mut rx).await {
                    match msg {
                        tokio_tungstenite::tungstenite::Message::Text(t) => {
                            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                            if v["type"] == "card" {
                                cards.push(v["display_id"].as_str().unwrap().to_string());
                            }
                        }
                        tokio_tungstenite::tungstenite::Message::Close(c) => {
                            close_code = c.map(|c| u16::from(c.code));
                            break;
                        }
                        _ => {}
                    }
                }
                writer.abort();
                assert_eq!(close_code, Some(1001), "closed with going-away at shutdown");
                cards
            }));
        }
        // Let the calls run, then stop the server in the middle of them.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        signal(&child, "-TERM");
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("call task"));
        }
        all
    });
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "serve exits 0 after SIGTERM");
    assert!(
        received.len() >= 40,
        "the calls produced cards: {}",
        received.len()
    );

    let stored = runtime.block_on(async {
        let store = cuedeck::store::Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        store.exposures(None).await.unwrap()
    });
    let mut shown: Vec<String> = stored
        .iter()
        .filter(|r| r.shown)
        .map(|r| r.display_id.clone())
        .collect();
    let mut received = received;
    shown.sort();
    received.sort();
    assert_eq!(shown, received, "shown rows = cards the reps received");
}

#[test]
fn sighup_reloads_the_card_library() {
    let cards = copy_of_bundled_cards();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(cards.path(), &dir.path().join("c.db"), &["--no-watch"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let version = |body: String| -> String {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["version"].as_str().unwrap().to_string()
    };
    let before = runtime.block_on(http_request(addr, "GET", "/v1/cards/status", None, None));
    std::fs::write(
        cards.path().join("hup.yaml"),
        "id: hup\ntitle: Hup\ncategory: other\ntriggers: { any: [hup] }\nbody: b\n",
    )
    .unwrap();
    signal(&child, "-HUP");
    let mut after = before.clone();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        after = runtime.block_on(http_request(addr, "GET", "/v1/cards/status", None, None));
        if version(after.1.clone()) != version(before.1.clone()) {
            break;
        }
    }
    assert_ne!(
        version(after.1),
        version(before.1),
        "SIGHUP reloaded the library"
    );
    let cards_json = runtime.block_on(http_get(addr, "/v1/cards".into()));
    assert!(cards_json.contains("\"hup\""));
    signal(&child, "-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
