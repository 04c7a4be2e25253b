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
use crate::protocol::{self, CardMsg, ClientMsg, ServerMsg};
use crate::session::{CallInfo, Session, SessionLimits, Utterance};

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
    let mut session: Option<(Session, protocol::Start)> = None;
    let mut decisions = Vec::new();
    let mut ids = ulid::Generator::new();
    let started = tokio::time::Instant::now();
    let mut close_frame = close(CloseCode::Normal, "demo finished");
    'lines: for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(msg) = protocol::decode(line) else {
            continue;
        };
        match msg {
            ClientMsg::Start(mut start) => {
                start.call_id = call_id.clone();
                let engine = state.engine.load();
                let ready = ServerMsg::Ready {
                    call_id: &call_id,
                    library_version: engine.library().version(),
                    cards: engine.library().cards().len(),
                    max_visible: engine.library().deck().max_visible,
                }
                .to_json();
                if ws.send(Message::text(ready)).await.is_err() {
                    return;
                }
                // No deal or rep id: a demo is never enrolled in an experiment.
                let info = CallInfo {
                    call_id: call_id.clone(),
                    deal_id: None,
                    rep_id: None,
                    context: start.call_context(),
                };
                session = Some((Session::new(info, SessionLimits::default()), start));
            }
            ClientMsg::Transcript(t) => {
                let Some((session, start)) = session.as_mut() else {
                    continue;
                };
                let t_ms = t.t_ms.unwrap_or(0);
                let due = started + Duration::from_secs_f64(t_ms as f64 / 1000.0 / speed);
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        close_frame = close(CloseCode::Away, "server shutting down");
                        break 'lines;
                    }
                    _ = tokio::time::sleep_until(due) => {}
                    // The viewer closed the demo.
                    m = ws.next() => if matches!(m, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                        return;
                    },
                }
                let decoded_at = std::time::Instant::now();
                let speaker = protocol::resolve_speaker(&start.speakers, &t);
                let segment = t.segment_id.clone().unwrap_or_default();
                let line = ServerMsg::Transcript {
                    segment_id: &segment,
                    speaker,
                    text: &t.text,
                    is_final: t.is_final,
                    t_ms,
                }
                .to_json();
                if ws.send(Message::text(line)).await.is_err() {
                    return;
                }
                let u = Utterance {
                    segment_id: t.segment_id.as_deref(),
                    speaker,
                    text: &t.text,
                    is_final: t.is_final,
                    t_ms,
                };
                let engine = state.engine.load();
                decisions.clear();
                session.on_utterance(&engine, &u, &mut decisions);
                for d in decisions.iter().filter(|d| d.shown()) {
                    let display_id = ids
                        .generate()
                        .unwrap_or_else(|_| ulid::Ulid::new())
                        .to_string();
                    let engine_us = decoded_at.elapsed().as_micros() as u64;
                    let card = ServerMsg::Card(CardMsg::new(&display_id, d, engine_us)).to_json();
                    if ws.send(Message::text(card)).await.is_err() {
                        return;
                    }
                }
            }
            ClientMsg::End(_) => break,
            ClientMsg::Feedback(_) => {}
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
