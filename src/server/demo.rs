//! `GET /v1/demo`: the server plays a bundled demo call into a fresh `demo-…` call and
//! streams its transcript lines and cards, paced on the call clock. Demo calls are never
//! enrolled in experiments and write nothing to the store.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::AppState;
use super::ingest::close;
use crate::driver::{CallDriver, DriverConfig, Output, SystemHost};
use crate::protocol::adapters::{Adapter, CallSetup, Format};
use crate::protocol::{self, ClientMsg};

/// The bundled demo calls, embedded so the binary needs no files.
pub const DEMO_CALLS: &[(&str, &str)] = &[
    (
        "new-deal",
        include_str!("../../battlecards/demo/demo-new-deal.jsonl"),
    ),
    (
        "renewal",
        include_str!("../../battlecards/demo/demo-renewal.jsonl"),
    ),
];

/// Plays demo call `name` at `speed`× real time.
pub(super) async fn run<S>(state: Arc<AppState>, mut ws: S, name: String, speed: f64)
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let text = DEMO_CALLS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(DEMO_CALLS[0].1, |(_, t)| t);
    let call_id = format!("demo-{}", ulid::Ulid::new().to_string().to_lowercase());
    let shutdown = state.shutdown.clone();
    let config = DriverConfig {
        echo_transcript: true,
        ..DriverConfig::default()
    };
    let mut driver = CallDriver::new(config, Adapter::new(Format::Native, CallSetup::default()));
    let mut host = SystemHost::default();
    let mut out = Output::default();
    let started = tokio::time::Instant::now();
    let mut close_frame = close(CloseCode::Normal, "demo finished");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(mut msg) = protocol::decode(line) else {
            continue;
        };
        match &mut msg {
            ClientMsg::Start(start) => {
                start.call_id = call_id.clone();
                // No deal or rep id: a demo is never enrolled in an experiment.
                start.deal_id = None;
                start.rep_id = None;
            }
            ClientMsg::Transcript(t) => {
                let t_ms = t.t_ms.unwrap_or(0);
                let due = started + Duration::from_secs_f64(t_ms as f64 / 1000.0 / speed);
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        close_frame = close(CloseCode::Away, "server shutting down");
                        break;
                    }
                    _ = tokio::time::sleep_until(due) => {}
                    // The viewer closed the demo.
                    m = ws.next() => if matches!(m, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                        return;
                    },
                }
            }
            ClientMsg::Feedback(_) | ClientMsg::End(_) => {}
        }
        out.clear();
        let received_ms = host.received();
        let engine = state.engine.load();
        driver.on_message(&engine, msg, Some(received_ms), &mut host, &mut out);
        // The records are dropped: a demo writes nothing to the store.
        for reply in &out.replies {
            if ws.send(Message::text(reply.to_json())).await.is_err() {
                return;
            }
        }
        if out.close.is_some() {
            break;
        }
    }
    let _ = ws.send(Message::Close(close_frame)).await;
    let _ = ws.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_demo_calls_decode() {
        for (name, text) in DEMO_CALLS {
            for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
                assert!(protocol::decode(line).is_ok(), "{name} line {}", i + 1);
            }
        }
    }
}
