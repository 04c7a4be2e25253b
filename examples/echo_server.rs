//! A bare tokio-tungstenite WebSocket echo server: the baseline the load generator runs the
//! same schedule against (BENCH.md, "client round trip"). Every text frame comes straight
//! back. Same runtime shape as `cuedeck serve` (multi-thread, one worker per core),
//! `TCP_NODELAY` on, default WebSocket configuration. Loopback only.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:7701
//! ```

#![allow(
    unsafe_code,
    reason = "resource usage, open-file limits and signals through libc, each call commented"
)]

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7701".into());
    let addr: std::net::SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::other(
            "echo_server listens on loopback only",
        ));
    }
    raise_nofile();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        eprintln!("echo_server: listening on ws://{}", listener.local_addr()?);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("echo_server: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let echo = matches!(msg, Message::Text(_) | Message::Binary(_));
                    if matches!(msg, Message::Close(_)) || (echo && ws.send(msg).await.is_err()) {
                        break;
                    }
                }
            });
        }
    })
}

/// Soft `nofile` up to the hard limit, for many idle connections.
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}
