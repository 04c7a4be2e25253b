//! Faults: the store goes away at run time. Cards keep flowing, exposures wait in the
//! bounded queue, `/readyz` says so, and everything is written once the store is back.
//! Two nodes share one PostgreSQL database.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cuedeck::config::Limits;
use cuedeck::server::Tokens;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::support::*;

/// A loopback TCP proxy that can cut every connection and refuse new ones.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (u, c) = (up.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                c.lock().await.push(task);
            }
        });
        Proxy {
            addr,
            up,
            conns,
            accept,
        }
    }

    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for t in self.conns.lock().await.drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn postgres_target(url: &str) -> (SocketAddr, String) {
    // postgres://user@host:port/db
    let rest = url.split_once("://").map(|(_, r)| r).unwrap();
    let (auth_host, db) = rest.split_once('/').unwrap();
    let (user, host) = auth_host.rsplit_once('@').unwrap();
    (host.parse().unwrap(), format!("{user}/{db}"))
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_buffers_exposures_and_cards_keep_flowing() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let (target, user_db) = postgres_target(&db);
    let proxy = Proxy::start(target).await;
    let (user, name) = user_db.split_once('/').unwrap();
    let via_proxy = format!("postgres://{user}@{}/{name}", proxy.addr);
    let server = TestServer::start_with(
        &bundled_cards(),
        Limits::default(),
        Tokens::default(),
        Some(via_proxy),
    )
    .await;

    proxy.cut().await;
    let (code, body) = http_request(server.addr, "GET", "/readyz", None, None).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("store not writable"), "{body}");

    // A whole call during the outage: every card still reaches the rep.
    let call = demo_call("demo-new-deal.jsonl");
    let lines: Vec<&str> = call.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut ws = connect(&server.url("/v1/stream")).await;
    for line in &lines {
        send(&mut ws, line).await;
    }
    let (frames, close) = drain(&mut ws).await;
    assert_eq!(close.map(|c| c.0), Some(1000));
    let cards: Vec<String> = frames
        .iter()
        .filter(|f| f["type"] == "card")
        .map(|f| f["display_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cards.len(), 9);
    let text = http_get(server.addr, "/metrics".into()).await;
    assert_eq!(metric(&text, "cuedeck_exposures_written_total"), 0);
    assert_eq!(metric(&text, "cuedeck_store_up"), 0);

    proxy.restore();
    let mut written = 0;
    for _ in 0..100 {
        let text = http_get(server.addr, "/metrics".into()).await;
        written = metric(&text, "cuedeck_exposures_written_total");
        if written as usize == cards.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        written as usize,
        cards.len(),
        "every buffered exposure was written"
    );
    let (code, _) = http_request(server.addr, "GET", "/readyz", None, None).await;
    assert_eq!(code, 200);
    let store = server.shutdown().await.store;
    let rows = store.exposures(Some("demo-new-deal-1")).await.unwrap();
    let stored: Vec<&str> = rows
        .iter()
        .filter(|r| r.shown)
        .map(|r| r.display_id.as_str())
        .collect();
    assert_eq!(stored, cards);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_postgres_database() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let a = TestServer::start_with(
        &bundled_cards(),
        Limits::default(),
        Tokens::default(),
        Some(db.clone()),
    )
    .await;
    let b = TestServer::start_with(
        &bundled_cards(),
        Limits::default(),
        Tokens::default(),
        Some(db),
    )
    .await;
    // Each deal has one call on each node: the price card's variant must agree.
    let mut agree = 0;
    for i in 0..20 {
        let mut variants = Vec::new();
        for (n, node) in [&a, &b].into_iter().enumerate() {
            let mut ws = connect(&node.url("/v1/stream")).await;
            send(
                &mut ws,
                &format!(r#"{{"type":"start","call_id":"c-{i}-{n}","deal_id":"deal-{i}"}}"#),
            )
            .await;
            next_json(&mut ws).await;
            send(
                &mut ws,
                r#"{"type":"transcript","segment_id":"s1","speaker":"prospect","text":"honestly the price is a bit too high","is_final":true,"t_ms":1000}"#,
            )
            .await;
            send(&mut ws, r#"{"type":"end"}"#).await;
            let (frames, _) = drain(&mut ws).await;
            let card = frames.iter().find(|f| f["card_id"] == "objection-price");
            // The control arm shows nothing; otherwise the variant is on the card.
            variants.push(card.map(|c| c["variant"].as_str().unwrap().to_string()));
        }
        assert_eq!(
            variants[0], variants[1],
            "deal-{i} got different arms on two nodes"
        );
        agree += 1;
    }
    assert_eq!(agree, 20);
    let store_a = a.shutdown().await.store;
    b.shutdown().await;
    // Both nodes' exposures are in the one database, with the same arm per deal.
    let rows = store_a.exposures(None).await.unwrap();
    let price: Vec<_> = rows
        .iter()
        .filter(|r| r.card_id == "objection-price")
        .collect();
    assert_eq!(price.len(), 40);
    for i in 0..20 {
        let deal = format!("deal-{i}");
        let arms: Vec<_> = price
            .iter()
            .filter(|r| r.deal_id.as_deref() == Some(deal.as_str()))
            .map(|r| r.variant.clone())
            .collect();
        assert_eq!(arms.len(), 2);
        assert_eq!(arms[0], arms[1]);
        assert!(arms[0].is_some());
    }
}
