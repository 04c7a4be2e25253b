//! Open-loop load generator for `cuedeck serve` (and, for the baseline, for
//! `examples/echo_server.rs`). BENCH.md has the method, the commands and the results.
//!
//! `run`: N calls, each one WebSocket streaming a demo call's transcript as partials at R
//! messages per second. **Open loop**: send times are fixed in advance — call `i` sends at
//! `t0 + i/(N·R) + k/R` (uniform phase offsets) — by one dedicated pacing thread (not tokio
//! timers), and every latency is measured from the *intended* send time, so a stalled
//! server shows up as latency instead of as fewer requests (no coordinated omission). A
//! call is the bundled demo call turned into partials (start, ~2 words per partial,
//! finals, end); when it ends the connection closes and a new call starts on a new
//! connection, so cards keep coming (a call shows at most a few).
//!
//! Reports: client round trip (intended send → card frame received; for the echo server,
//! → echo received) p50/p99/p99.9/max; the in-engine latency of every card (its
//! `engine_us`, exact) and the server's own `cuedeck_engine_latency_seconds` histogram
//! (from `/metrics`, bucketed); cards, messages and errors; server CPU per inbound
//! message (from `/proc/PID/stat`); and the load generator's own CPU (`getrusage`), to
//! show it is not the bottleneck.
//!
//! `idle`: opens N connections (each a started call for cuedeck) and reports the server's
//! RSS growth per connection, plus the kernel's slab and TCP memory growth (both ends).
//! Source addresses cycle over 127.0.0.1..=127.0.0.K so more than one address's ~28k
//! ephemeral ports can be used (100,000 calls need K ≥ 4).
//!
//! Everything is bounded: event counts, connection counts and every wait have limits;
//! only loopback addresses are accepted.
//!
//! ```text
//! cargo run --release --example loadgen -- run --url ws://127.0.0.1:7700/v1/stream \
//!     --calls 1000 --rate 3 --duration 300 --server-pid PID
//! cargo run --release --example loadgen -- idle --url ws://127.0.0.1:7700/v1/stream \
//!     --calls 5000 --server-pid PID
//! ```

#![allow(
    unsafe_code,
    reason = "resource usage, open-file limits and signals through libc, each call commented"
)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[path = "../benches/common/mod.rs"]
mod common;

#[derive(Parser)]
#[command(about = "Open-loop WebSocket load generator for cuedeck (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream partials on N calls at R per second each; report latencies and CPU.
    Run(RunArgs),
    /// Hold N idle calls; report memory per connection.
    Idle(IdleArgs),
    /// Write a generated card library (N phrases, files under 1 MiB) for reload tests.
    Cards(CardsArgs),
}

#[derive(Args, Clone)]
struct Target {
    /// WebSocket URL: cuedeck's ws://127.0.0.1:PORT/v1/stream or the echo server.
    #[arg(long)]
    url: String,
    /// The target is the echo server: every frame comes back, no `start`/`end` replies.
    #[arg(long)]
    echo: bool,
    /// Server process id, for its CPU time and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Source addresses 127.0.0.1..=127.0.0.K, cycled over connections.
    #[arg(long, default_value_t = 1)]
    source_ips: u8,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    target: Target,
    /// Concurrent calls (connections).
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Partials per second per call.
    #[arg(long, default_value_t = 3.0)]
    rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Load generator worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Write the results as JSON to this file too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Send SIGHUP (library reload) to the server every this many seconds.
    #[arg(long)]
    reload_every: Option<u64>,
    /// Write every card received as `slot generation card_id t_ms`, sorted, to this file:
    /// two runs of the same schedule must give the same file (nothing lost or duplicated).
    #[arg(long)]
    card_log: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct CardsArgs {
    /// Phrases to generate (2–4 words each, 10 per card, seeded).
    #[arg(long, default_value_t = 100_000)]
    phrases: usize,
    /// Directory to write `generated-NN.yaml` files into (created).
    #[arg(long)]
    out: std::path::PathBuf,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    target: Target,
    /// Idle calls to open.
    #[arg(long, default_value_t = 5000)]
    calls: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Seconds to hold the calls after the measurement.
    #[arg(long, default_value_t = 2)]
    hold: u64,
    /// Write the results as JSON to this file too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

// ---------------------------------------------------------------------------------------
// Transcript corpus: the bundled demo calls as partial-heavy streams.

/// One call's frames: `start`, transcripts (as prefixes to complete with `t_ms`), `end`.
struct Script {
    /// JSON up to and including `"t_ms":`; the frame is `prefix + t_ms + "}"`.
    transcripts: Vec<String>,
    start_fields: String,
}

fn scripts() -> Vec<Script> {
    let mut out = Vec::new();
    for file in [
        include_str!("../battlecards/demo/demo-new-deal.jsonl"),
        include_str!("../battlecards/demo/demo-renewal.jsonl"),
    ] {
        let mut transcripts = Vec::new();
        let mut start_fields = String::new();
        for line in file.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["type"] == "start" {
                // Everything but the ids, which are per call.
                let mut s = serde_json::Map::new();
                for key in ["context", "speakers"] {
                    s.insert(key.into(), v[key].clone());
                }
                start_fields = serde_json::Value::Object(s).to_string();
                start_fields = start_fields[1..start_fields.len() - 1].to_string();
                continue;
            }
            if v["type"] != "transcript" || v["is_final"] != true {
                continue;
            }
            let text = v["text"].as_str().unwrap_or_default();
            let words: Vec<&str> = text.split_whitespace().collect();
            let steps = words.len().div_ceil(2).max(1);
            for k in 1..=steps {
                let n = (2 * k).min(words.len());
                let prefix = format!(
                    r#"{{"type":"transcript","segment_id":{},"speaker":{},"text":{},"is_final":{},"t_ms":"#,
                    v["segment_id"],
                    v["speaker"],
                    serde_json::Value::from(words[..n].join(" ")),
                    k == steps
                );
                transcripts.push(prefix);
            }
        }
        out.push(Script {
            transcripts,
            start_fields,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// Shared results.

struct Results {
    rtt: Mutex<Histogram<u64>>,
    engine: Mutex<Histogram<u64>>,
    connect: Mutex<Histogram<u64>>,
    /// Start of the measured window: earlier sends are not recorded.
    measure_from: Instant,
    sent: AtomicU64,
    sent_measured: AtomicU64,
    cards: AtomicU64,
    echoes: AtomicU64,
    errors: AtomicU64,
    error_frames: AtomicU64,
    connect_errors: AtomicU64,
    unexpected_closes: AtomicU64,
    calls_started: AtomicU64,
    card_log: Option<Mutex<Vec<String>>>,
    dispatch_dropped: AtomicU64,
}

impl Results {
    fn new(measure_from: Instant) -> Results {
        let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
        Results {
            rtt: Mutex::new(h()),
            engine: Mutex::new(h()),
            connect: Mutex::new(h()),
            measure_from,
            sent: AtomicU64::new(0),
            sent_measured: AtomicU64::new(0),
            cards: AtomicU64::new(0),
            echoes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            error_frames: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            unexpected_closes: AtomicU64::new(0),
            calls_started: AtomicU64::new(0),
            dispatch_dropped: AtomicU64::new(0),
            card_log: None,
        }
    }

    fn record(h: &Mutex<Histogram<u64>>, micros: u64) {
        let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
        let _ = h.record(micros.clamp(1, 60_000_000));
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------
// Connections.

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

fn server_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{url}: only ws:// URLs"))?;
    let host = rest.split('/').next().unwrap_or_default();
    let addr: SocketAddr = host
        .parse()
        .map_err(|_| format!("{url}: the host must be an IP:PORT"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{url}: loopback addresses only"));
    }
    Ok(addr)
}

async fn connect(url: &str, server: SocketAddr, source: Ipv4Addr) -> Result<Ws, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(server))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async_with_config(url, stream, Some(client_config())),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

fn source_ip(i: usize, k: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(k.max(1))) as u8)
}

/// What a text frame from the server says, for the load generator's purposes.
enum Reply {
    Card {
        t_ms: u64,
        engine_us: u64,
        card_id: String,
    },
    Echo {
        t_ms: Option<u64>,
    },
    Ready,
    Error,
    Other,
}

fn parse_reply(text: &str, echo: bool) -> Reply {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Reply::Other;
    };
    if echo {
        return Reply::Echo {
            t_ms: v["t_ms"].as_u64(),
        };
    }
    match v["type"].as_str() {
        Some("card") => Reply::Card {
            t_ms: v["trigger"]["t_ms"].as_u64().unwrap_or(u64::MAX),
            engine_us: v["engine_us"].as_u64().unwrap_or(0),
            card_id: v["card_id"].as_str().unwrap_or_default().to_string(),
        },
        Some("ready") => Reply::Ready,
        Some("error") => Reply::Error,
        _ => Reply::Other,
    }
}

struct CallCtx {
    /// Unique per load generator run, so call ids never meet a previous run's parked calls.
    run: u64,
    id: usize,
    url: String,
    server: SocketAddr,
    source: Ipv4Addr,
    echo: bool,
    period_ms: f64,
    scripts: Arc<Vec<Script>>,
    results: Arc<Results>,
}

/// Records one text frame from the server, received at `now`: a card (its round trip
/// from the intended send time of the partial that raised it), an echo, or an error.
fn on_reply(
    ctx: &CallCtx,
    generation: usize,
    pending: &mut HashMap<u64, Instant>,
    text: &str,
    now: Instant,
) {
    let r = &ctx.results;
    match parse_reply(text, ctx.echo) {
        Reply::Card {
            t_ms,
            engine_us,
            card_id,
        } => {
            bump(&r.cards);
            if let Some(log) = &r.card_log {
                let line = format!("{} {generation} {card_id} {t_ms}", ctx.id);
                log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
            if let Some(&intended) = pending.get(&t_ms) {
                Results::record(&r.rtt, (now - intended).as_micros() as u64);
                Results::record(&r.engine, engine_us);
            }
        }
        Reply::Echo { t_ms: Some(t) } => {
            bump(&r.echoes);
            if let Some(intended) = pending.remove(&t) {
                Results::record(&r.rtt, (now - intended).as_micros() as u64);
            }
        }
        Reply::Error => {
            bump(&r.error_frames);
            bump(&r.errors);
            if r.error_frames.load(Ordering::Relaxed) < 5 {
                eprintln!("loadgen: call {}: {text}", ctx.id);
            }
        }
        Reply::Echo { t_ms: None } | Reply::Ready | Reply::Other => {}
    }
}

/// One call slot: sends the next frame of its script at every tick from the pacer; when
/// the script ends it sends `end`, the connection closes, and the next tick begins a new
/// call on a new connection.
async fn call_task(ctx: CallCtx, mut ticks: mpsc::UnboundedReceiver<Instant>) {
    let r = &ctx.results;
    let mut generation = 0usize;
    'calls: loop {
        let started = Instant::now();
        let ws = match connect(&ctx.url, ctx.server, ctx.source).await {
            Ok(ws) => ws,
            Err(e) => {
                bump(&r.connect_errors);
                bump(&r.errors);
                if r.connect_errors.load(Ordering::Relaxed) < 5 {
                    eprintln!("loadgen: call {}: {e}", ctx.id);
                }
                // Drain ticks for a second (they count as not sent), then retry.
                let until = Instant::now() + Duration::from_secs(1);
                while Instant::now() < until {
                    match tokio::time::timeout_at(until.into(), ticks.recv()).await {
                        Ok(Some(_)) => bump(&r.dispatch_dropped),
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                continue;
            }
        };
        Results::record(&r.connect, started.elapsed().as_micros() as u64);
        let (mut tx, mut rx) = ws.split();
        let script = &ctx.scripts[(ctx.id + generation) % ctx.scripts.len()];
        generation += 1;
        let call_id = format!("lg{}-{}-{generation}", ctx.run, ctx.id);
        // Frame index: 0 = start, 1..=n transcripts, n+1 = end.
        let mut next = 0usize;
        let n = script.transcripts.len();
        let mut pending: HashMap<u64, Instant> = HashMap::with_capacity(n);
        let mut ended = false;
        let close_deadline = loop {
            tokio::select! {
                tick = ticks.recv(), if !ended => {
                    let Some(intended) = tick else { return };
                    let (frame, t_ms) = if next == 0 {
                        bump(&r.calls_started);
                        (format!(
                            r#"{{"type":"start","call_id":"{call_id}","deal_id":"d-{}-{generation}","rep_id":"r-{}",{}}}"#,
                            ctx.id, ctx.id % 50, script.start_fields
                        ), None)
                    } else if next <= n {
                        let t_ms = (next as f64 * ctx.period_ms) as u64;
                        (format!("{}{t_ms}}}", script.transcripts[next - 1]), Some(t_ms))
                    } else {
                        ended = true;
                        (r#"{"type":"end"}"#.to_string(), None)
                    };
                    next += 1;
                    if let Some(t) = t_ms {
                        if intended >= r.measure_from {
                            pending.insert(t, intended);
                            bump(&r.sent_measured);
                        }
                    }
                    bump(&r.sent);
                    if tx.send(Message::text(frame)).await.is_err() {
                        bump(&r.errors);
                        bump(&r.unexpected_closes);
                        continue 'calls;
                    }
                    if ended {
                        if ctx.echo {
                            let _ = tx.send(Message::Close(None)).await;
                        }
                        break Instant::now() + Duration::from_secs(5);
                    }
                }
                msg = rx.next() => {
                    let now = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(text))) => {
                            on_reply(&ctx, generation, &mut pending, text.as_str(), now);
                        }
                        Some(Ok(Message::Close(_))) | None => {
                            // cuedeck closes only after `end`, which we have not sent.
                            bump(&r.errors);
                            bump(&r.unexpected_closes);
                            continue 'calls;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) => {
                            bump(&r.errors);
                            bump(&r.unexpected_closes);
                            continue 'calls;
                        }
                    }
                }
            }
        };
        // After `end`: read the remaining frames until the server closes (bounded).
        loop {
            match tokio::time::timeout_at(close_deadline.into(), rx.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    on_reply(
                        &ctx,
                        generation,
                        &mut pending,
                        text.as_str(),
                        Instant::now(),
                    );
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
                Ok(Some(Ok(_))) => {}
                Err(_) => {
                    bump(&r.errors); // no close within 5 s
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Process measurements.

/// (user + system) CPU seconds of this process.
fn own_cpu() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// (user + system) CPU seconds of another process, from /proc/PID/stat.
fn proc_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is [0]; utime is field 14 overall → [11], stime [12].
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / hz)
}

fn status_kib(pid: &str, key: &str) -> Option<u64> {
    proc_kib(&format!("/proc/{pid}/status"), key)
}

fn meminfo_kib(key: &str) -> Option<u64> {
    proc_kib("/proc/meminfo", key)
}

/// The number after `key` in a `/proc` file of `Key: value kB` lines.
fn proc_kib(path: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// TCP socket buffer memory in KiB (pages in /proc/net/sockstat).
fn tcp_mem_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = s.lines().find(|l| l.starts_with("TCP:"))?;
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == "mem" {
            let pages: u64 = it.next()?.parse().ok()?;
            return Some(pages * 4);
        }
    }
    None
}

/// Raises this process's `nofile` soft limit to what `want` needs (the hard limit too,
/// when allowed: root).
fn raise_nofile(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 0;
        }
        if l.rlim_max < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: want,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return want;
            }
        }
        l.rlim_cur = l.rlim_max.min(want.max(l.rlim_cur));
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur
    }
}

/// `GET /metrics` over a plain TCP connection (bounded: 5 s, 1 MiB).
async fn scrape(server: SocketAddr) -> Option<String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(server).await.ok()?;
        // The server's own address as Host: without tokens, other names get 421.
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.take(1 << 20).read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        text.split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .ok()
        .flatten()
}

/// `(upper bound seconds, cumulative count)` of the engine latency histogram.
fn engine_buckets(metrics: &str) -> Vec<(f64, u64)> {
    let mut out = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("cuedeck_engine_latency_seconds_bucket{le=\"") else {
            continue;
        };
        let Some((le, count)) = rest.split_once("\"} ") else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::INFINITY)
        };
        out.push((le, count.trim().parse().unwrap_or(0)));
    }
    out
}

fn metric_value(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l[name.len()..].trim().parse().ok())
}

/// Quantile from cumulative buckets, interpolating linearly inside the bucket (as
/// Prometheus' `histogram_quantile` does).
fn bucket_quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut prev_bound = 0.0;
    let mut prev_count = 0u64;
    for &(bound, count) in buckets {
        if count as f64 >= rank {
            if bound.is_infinite() {
                return Some(prev_bound);
            }
            let inside = (count - prev_count) as f64;
            let frac = if inside > 0.0 {
                (rank - prev_count as f64) / inside
            } else {
                1.0
            };
            return Some(prev_bound + (bound - prev_bound) * frac);
        }
        prev_bound = bound;
        prev_count = count;
    }
    None
}

fn pct(h: &Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "count": h.len(),
        "p50_us": h.value_at_quantile(0.50),
        "p99_us": h.value_at_quantile(0.99),
        "p99_9_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
        "mean_us": (h.mean() * 10.0).round() / 10.0,
    })
}

// ---------------------------------------------------------------------------------------
// run

/// Raises the open-file limit for `calls` connections (returns it), or says why not.
fn ensure_nofile(calls: usize) -> Result<u64, String> {
    let nofile = raise_nofile(calls as u64 + 1_000);
    if nofile < calls as u64 + 100 {
        return Err(format!(
            "nofile limit {nofile} is too low for {calls} calls"
        ));
    }
    Ok(nofile)
}

fn run(args: RunArgs) -> Result<serde_json::Value, String> {
    let t = &args.target;
    let server = server_addr(&t.url)?;
    if args.calls == 0 || args.calls > 200_000 || !(args.rate > 0.0 && args.rate <= 100.0) {
        return Err("calls must be 1..=200000 and rate in (0, 100]".into());
    }
    if args.duration > 3_600 || args.warmup > 600 {
        return Err("duration at most 3600 s, warm-up at most 600 s".into());
    }
    ensure_nofile(args.calls)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let scripts = Arc::new(scripts());
    let period = Duration::from_secs_f64(1.0 / (args.calls as f64 * args.rate));
    // Ramp: connections are opened while the first ticks are already due; the warm-up
    // absorbs it. The schedule starts 1 s from now.
    let t0 = Instant::now() + Duration::from_secs(1);
    let measure_from = t0 + Duration::from_secs(args.warmup);
    let total = ((args.warmup + args.duration) as f64 * args.rate * args.calls as f64) as u64;
    let mut results = Results::new(measure_from);
    if args.card_log.is_some() {
        results.card_log = Some(Mutex::new(Vec::new()));
    }
    let results = Arc::new(results);

    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut senders = Vec::with_capacity(args.calls);
    runtime.block_on(async {
        for i in 0..args.calls {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            let ctx = CallCtx {
                run: run_id,
                id: i,
                url: t.url.clone(),
                server,
                source: source_ip(i, t.source_ips),
                echo: t.echo,
                period_ms: 1000.0 / args.rate,
                scripts: scripts.clone(),
                results: results.clone(),
            };
            tokio::spawn(call_task(ctx, rx));
        }
    });

    // The pacing thread: fixed intended times, uniform phase offsets across calls.
    let pacer = {
        let results = results.clone();
        std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || {
                let mut late_max = Duration::ZERO;
                for j in 0..total {
                    let due =
                        t0 + Duration::from_nanos((j as f64 * period.as_nanos() as f64) as u64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    } else {
                        late_max = late_max.max(now - due);
                    }
                    let call = (j % senders.len() as u64) as usize;
                    if senders[call].send(due).is_err() {
                        bump(&results.dispatch_dropped);
                    }
                }
                late_max
            })
            .map_err(|e| e.to_string())?
    };

    let reload_pid = args.reload_every.zip(t.server_pid);
    let report = runtime.block_on(async {
        // Wait for the warm-up to end, then take the "before" readings.
        tokio::time::sleep_until(measure_from.into()).await;
        let m0 = if t.echo { None } else { scrape(server).await };
        let server_cpu0 = t.server_pid.and_then(proc_cpu);
        let own_cpu0 = own_cpu();
        let sent0 = results.sent.load(Ordering::Relaxed);
        let wall0 = Instant::now();
        let end = measure_from + Duration::from_secs(args.duration);
        let mut reloads = 0u64;
        while Instant::now() < end {
            let step = Duration::from_secs(reload_pid.map_or(1, |(s, _)| s.max(1)));
            let until = (Instant::now() + step).min(end);
            tokio::time::sleep_until(until.into()).await;
            if let Some((_, pid)) = reload_pid {
                if Instant::now() < end {
                    // SAFETY: kill(2) with a pid the user passed in and a valid signal.
                    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
                    reloads += 1;
                }
            }
        }
        let wall = wall0.elapsed().as_secs_f64();
        let sent = results.sent.load(Ordering::Relaxed) - sent0;
        let own = own_cpu() - own_cpu0;
        let server_cpu = t
            .server_pid
            .and_then(proc_cpu)
            .zip(server_cpu0)
            .map(|(b, a)| b - a);
        let m1 = if t.echo { None } else { scrape(server).await };
        // Let in-flight replies land before reading the histograms.
        tokio::time::sleep(Duration::from_millis(500)).await;
        (wall, sent, own, server_cpu, m0, m1, reloads)
    });
    let (wall, sent, own, server_cpu, m0, m1, reloads) = report;
    if let (Some(path), Some(log)) = (&args.card_log, &results.card_log) {
        let mut lines = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        lines.sort();
        std::fs::write(path, lines.join("\n") + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let late_max = pacer.join().map_err(|_| "pacer panicked")?;
    runtime.shutdown_timeout(Duration::from_secs(2));

    let server_hist = match (&m0, &m1) {
        (Some(a), Some(b)) => {
            let (b0, b1) = (engine_buckets(a), engine_buckets(b));
            let delta: Vec<(f64, u64)> = b1
                .iter()
                .zip(b0.iter().chain(std::iter::repeat(&(0.0, 0))))
                .map(|(&(le, c1), &(_, c0))| (le, c1.saturating_sub(c0)))
                .collect();
            let q = |x| bucket_quantile(&delta, x).map(|s| (s * 1e7).round() / 10.0);
            let count = delta.last().map_or(0, |d| d.1);
            let sum =
                |m: &str| metric_value(m, "cuedeck_engine_latency_seconds_sum").unwrap_or(0.0);
            serde_json::json!({
                "count": count,
                "p50_us": q(0.5), "p99_us": q(0.99), "p99_9_us": q(0.999),
                "mean_us": if count > 0 { ((sum(b) - sum(a)) / count as f64 * 1e7).round() / 10.0 } else { 0.0 },
                "buckets_le_seconds": delta,
            })
        }
        _ => serde_json::Value::Null,
    };
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let rtt = results.rtt.lock().unwrap_or_else(|p| p.into_inner());
    let engine = results.engine.lock().unwrap_or_else(|p| p.into_inner());
    let connect = results.connect.lock().unwrap_or_else(|p| p.into_inner());
    Ok(serde_json::json!({
        "mode": "run",
        "target": if t.echo { "echo" } else { "cuedeck" },
        "calls": args.calls,
        "rate_per_call": args.rate,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "offered_msgs_per_s": args.calls as f64 * args.rate,
        "sent_in_window": sent,
        "achieved_msgs_per_s": (sent as f64 / wall * 10.0).round() / 10.0,
        "client_rtt": pct(&rtt),
        "card_engine_us": pct(&engine),
        "server_engine_histogram": server_hist,
        "connect": pct(&connect),
        "cards": load(&results.cards),
        "echoes": load(&results.echoes),
        "calls_started": load(&results.calls_started),
        "errors": load(&results.errors),
        "error_frames": load(&results.error_frames),
        "connect_errors": load(&results.connect_errors),
        "unexpected_closes": load(&results.unexpected_closes),
        "ticks_dropped": load(&results.dispatch_dropped),
        "pacer_late_max_us": late_max.as_micros() as u64,
        "reloads": reloads,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_msg": server_cpu.map(|c| (c / sent.max(1) as f64 * 1e7).round() / 10.0),
        "server_cpu_cores": server_cpu.map(|c| (c / wall * 1000.0).round() / 1000.0),
        "loadgen_cpu_s": (own * 100.0).round() / 100.0,
        "loadgen_cpu_cores": (own / wall * 1000.0).round() / 1000.0,
    }))
}

// ---------------------------------------------------------------------------------------
// idle

fn idle(args: IdleArgs) -> Result<serde_json::Value, String> {
    let t = &args.target;
    let server = server_addr(&t.url)?;
    if args.calls == 0 || args.calls > 200_000 || args.hold > 600 {
        return Err("calls must be 1..=200000, hold at most 600 s".into());
    }
    let nofile = ensure_nofile(args.calls)?;
    let pid = t.server_pid.map(|p| p.to_string());
    let rss = |who: &str| status_kib(who, "VmRSS:");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(500));
    let before = (
        pid.as_deref().and_then(rss),
        rss("self"),
        meminfo_kib("Slab:"),
        tcp_mem_kib(),
    );
    let started = Instant::now();
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let results = Arc::new(Results::new(started));
    let held: Vec<Ws> = runtime.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
        let mut handles = Vec::with_capacity(args.calls);
        for i in 0..args.calls {
            let permit = sem.clone().acquire_owned().await.expect("semaphore");
            let url = t.url.clone();
            let echo = t.echo;
            let source = source_ip(i, t.source_ips);
            let results = results.clone();
            handles.push(tokio::spawn(async move {
                let _permit = permit;
                let t = Instant::now();
                let mut ws = match connect(&url, server, source).await {
                    Ok(ws) => ws,
                    Err(e) => {
                        if results.connect_errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("loadgen: idle call {i}: {e}");
                        }
                        return None;
                    }
                };
                if !echo {
                    let start = format!(
                        r#"{{"type":"start","call_id":"idle{run_id}-{i}","deal_id":"d-{i}"}}"#
                    );
                    if ws.send(Message::text(start)).await.is_err() {
                        bump(&results.errors);
                        return None;
                    }
                    // Wait for `ready` (bounded).
                    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                        Ok(Some(Ok(Message::Text(text))))
                            if text.as_str().contains("\"ready\"") => {}
                        _ => {
                            bump(&results.errors);
                            return None;
                        }
                    }
                }
                Results::record(&results.connect, t.elapsed().as_micros() as u64);
                Some(ws)
            }));
        }
        let mut held = Vec::with_capacity(args.calls);
        for h in handles {
            if let Ok(Some(ws)) = h.await {
                held.push(ws);
            }
        }
        held
    });
    let open_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2)); // let allocations settle
    let after = (
        pid.as_deref().and_then(rss),
        rss("self"),
        meminfo_kib("Slab:"),
        tcp_mem_kib(),
    );
    let n = held.len() as f64;
    let per = |a: Option<u64>, b: Option<u64>| {
        a.zip(b)
            .map(|(a, b)| ((b as f64 - a as f64) * 1024.0 / n.max(1.0)).round())
    };
    std::thread::sleep(Duration::from_secs(args.hold));
    let connect = results.connect.lock().unwrap_or_else(|p| p.into_inner());
    let report = serde_json::json!({
        "mode": "idle",
        "target": if t.echo { "echo" } else { "cuedeck" },
        "requested": args.calls,
        "held": held.len(),
        "connect_errors": results.connect_errors.load(Ordering::Relaxed),
        "errors": results.errors.load(Ordering::Relaxed),
        "open_seconds": (open_s * 10.0).round() / 10.0,
        "connect_and_ready": pct(&connect),
        "server_rss_kib": [before.0, after.0],
        "server_rss_bytes_per_call": per(before.0, after.0),
        "loadgen_rss_bytes_per_call": per(before.1, after.1),
        "kernel_slab_bytes_per_call_both_ends": per(before.2, after.2),
        "kernel_tcp_buffer_bytes_per_call_both_ends": per(before.3, after.3),
        "nofile": nofile,
    });
    drop(connect);
    runtime.block_on(async {
        // Close politely (bounded), so the server's call state goes to its grace period.
        let closes = held.into_iter().map(|mut ws| async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        });
        futures_util::future::join_all(closes).await;
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(report)
}

// ---------------------------------------------------------------------------------------
// cards

fn cards(args: CardsArgs) -> Result<serde_json::Value, String> {
    if args.phrases == 0 || args.phrases > 1_000_000 {
        return Err("phrases must be 1..=1000000".into());
    }
    let yaml = common::library_yaml(&common::phrases(args.phrases, common::SEED));
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    // Split at card boundaries into files well under the library's 1 MiB per-file limit.
    let mut files = Vec::new();
    let mut current = String::new();
    for card in yaml.split_inclusive("  body: generated\n") {
        if current.len() + card.len() > 512 * 1024 {
            files.push(std::mem::take(&mut current));
        }
        current.push_str(card);
    }
    if !current.is_empty() {
        files.push(current);
    }
    for (i, text) in files.iter().enumerate() {
        let path = args.out.join(format!("generated-{i:02}.yaml"));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(serde_json::json!({ "mode": "cards", "phrases": args.phrases, "files": files.len() }))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (result, json_path) = match cli.command {
        Command::Run(a) => {
            let p = a.json.clone();
            (run(a), p)
        }
        Command::Idle(a) => {
            let p = a.json.clone();
            (idle(a), p)
        }
        Command::Cards(a) => (cards(a), None),
    };
    match result {
        Ok(report) => {
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            println!("{text}");
            if let Some(p) = json_path {
                if let Err(e) = std::fs::write(&p, text + "\n") {
                    eprintln!("loadgen: {}: {e}", p.display());
                    return std::process::ExitCode::from(2);
                }
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
