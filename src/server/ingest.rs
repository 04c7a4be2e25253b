//! An ingest connection: a transcript producer streams one call; decisions are logged and
//! cards come back on the same socket and go out to the call's subscribers.
//!
//! The handler is generic over the socket (`Stream` + `Sink` of WebSocket messages) so
//! tests can drive it without a network.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{Span, debug, info};

use super::AppState;
use super::calls::{Call, JoinError};
use crate::protocol::adapters::Adapter;
use crate::protocol::{self, CardMsg, ClientMsg, ErrorCode, ServerMsg, Start, Transcript};
use crate::session::{CallInfo, Decision, Session, SessionLimits, Utterance};
use crate::store::{CallRow, ExposureRow, FeedbackRow, Record, StoreHandle, now_rfc3339};

/// Why the loop stopped, and the close frame to send (if any).
pub(super) fn close(code: CloseCode, reason: &'static str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code,
        reason: reason.into(),
    })
}

struct Live {
    call: Arc<Call>,
    start: Start,
    session: Session,
    started_at: Instant,
}

struct Ingest {
    state: Arc<AppState>,
    store: StoreHandle,
    live: Option<Live>,
    errors_in_a_row: u32,
    ended: bool,
    decisions: Vec<Decision>,
    /// Monotonic within a millisecond, so display ids sort in decision order.
    ids: ulid::Generator,
    /// The `?format=` input adapter: each text frame → native messages.
    adapter: Adapter,
}

/// Runs one ingest connection to its end.
pub(super) async fn run<S>(state: Arc<AppState>, mut ws: S, store: StoreHandle, adapter: Adapter)
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let idle = Duration::from_secs(state.limits.idle_timeout_seconds.max(1));
    let shutdown = state.shutdown.clone();
    let mut conn = Ingest {
        state: state.clone(),
        store,
        live: None,
        errors_in_a_row: 0,
        ended: false,
        decisions: Vec::new(),
        ids: ulid::Generator::new(),
        adapter,
    };
    let close_frame = loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break close(CloseCode::Away, "server shutting down"),
            r = tokio::time::timeout(idle, ws.next()) => r,
        };
        let msg = match next {
            Err(_) => break close(CloseCode::Normal, "idle timeout"),
            Ok(None) => break None,
            Ok(Some(Err(WsError::Capacity(error)))) => {
                state.stats.frames_oversized.fetch_add(1, Ordering::Relaxed);
                debug!(%error, "frame over the size limit");
                break close(CloseCode::Size, "message too big");
            }
            Ok(Some(Err(error))) => {
                debug!(%error, "ingest socket error");
                break None;
            }
            Ok(Some(Ok(msg))) => msg,
        };
        let result = match msg {
            Message::Text(text) => conn.on_text(text.as_str(), &mut ws).await,
            Message::Binary(_) => {
                state.metrics.message("binary");
                conn.reply_error(
                    &mut ws,
                    ErrorCode::BadMessage,
                    "binary frames are not supported: send JSON text frames",
                )
                .await
            }
            Message::Close(_) => break None,
            _ => Ok(()),
        };
        if result.is_err() {
            break None; // the socket is gone
        }
        if conn.errors_in_a_row >= state.limits.max_errors_in_a_row {
            break close(CloseCode::Policy, "too many errors in a row");
        }
        if conn.ended {
            break close(CloseCode::Normal, "call ended");
        }
    };
    if let Some(frame) = close_frame {
        let _ = ws.send(Message::Close(Some(frame))).await;
    }
    let _ = ws.close().await;
    conn.finish().await;
}

impl Ingest {
    async fn reply_error<S>(
        &mut self,
        ws: &mut S,
        code: ErrorCode,
        message: &str,
    ) -> Result<(), WsError>
    where
        S: Sink<Message, Error = WsError> + Unpin,
    {
        self.errors_in_a_row += 1;
        self.state
            .stats
            .bad_messages
            .fetch_add(1, Ordering::Relaxed);
        let frame = ServerMsg::Error { code, message }.to_json();
        ws.send(Message::text(frame)).await
    }

    async fn on_text<S>(&mut self, text: &str, ws: &mut S) -> Result<(), WsError>
    where
        S: Sink<Message, Error = WsError> + Unpin,
    {
        let decoded_at = Instant::now();
        let out = match self.adapter.decode(text) {
            Ok(out) => out,
            Err(e) => {
                self.state.metrics.message("invalid");
                return self.reply_error(ws, e.code, &e.message).await;
            }
        };
        self.state.metrics.message(out.kind());
        self.state.stats.adapters.record(&out);
        if out.ignored() {
            self.errors_in_a_row = 0; // a provider control message: accepted
        }
        for msg in out.messages {
            let is_start = matches!(msg, ClientMsg::Start(_));
            self.on_message(msg, decoded_at, ws).await?;
            if is_start && self.live.is_none() {
                break; // the start was refused: the rest of the frame has no call
            }
        }
        Ok(())
    }

    async fn on_message<S>(
        &mut self,
        msg: ClientMsg,
        decoded_at: Instant,
        ws: &mut S,
    ) -> Result<(), WsError>
    where
        S: Sink<Message, Error = WsError> + Unpin,
    {
        match msg {
            ClientMsg::Start(start) => self.on_start(start, ws).await,
            ClientMsg::Transcript(t) => self.on_transcript(&t, decoded_at, ws).await,
            ClientMsg::Feedback(f) => {
                self.errors_in_a_row = 0;
                let row = FeedbackRow {
                    display_id: f.display_id,
                    ts: now_rfc3339(),
                    action: f.action.as_str().to_string(),
                };
                self.record(Record::Feedback(row)).await;
                Ok(())
            }
            ClientMsg::End(_) => {
                if self.live.is_none() {
                    return self
                        .reply_error(ws, ErrorCode::Protocol, "`end` before `start`")
                        .await;
                }
                self.ended = true;
                Ok(())
            }
        }
    }

    async fn on_start<S>(&mut self, start: Start, ws: &mut S) -> Result<(), WsError>
    where
        S: Sink<Message, Error = WsError> + Unpin,
    {
        if self.live.is_some() {
            return self
                .reply_error(
                    ws,
                    ErrorCode::Protocol,
                    "a second `start` on this connection",
                )
                .await;
        }
        let (call, parked) = match self.state.calls.start_ingest(&start.call_id) {
            Ok(x) => x,
            Err(e) => {
                let code = match e {
                    JoinError::IngestBusy(_) => ErrorCode::Protocol,
                    _ => ErrorCode::Limit,
                };
                return self.reply_error(ws, code, &e.to_string()).await;
            }
        };
        self.errors_in_a_row = 0;
        Span::current().record("call_id", start.call_id.as_str());
        let resumed = parked.is_some();
        let session = parked.unwrap_or_else(|| {
            let limits = SessionLimits {
                max_transcript_bytes: self.state.limits.max_transcript_bytes,
                ..SessionLimits::default()
            };
            Session::new(
                CallInfo {
                    call_id: start.call_id.clone(),
                    deal_id: start.deal_id.clone(),
                    rep_id: start.rep_id.clone(),
                    context: start.call_context(),
                },
                limits,
            )
        });
        info!(call_id = %start.call_id, resumed, "call started");
        let context = serde_json::to_string(
            &start
                .call_context()
                .0
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .unwrap_or_else(|_| "{}".into());
        let row = CallRow {
            call_id: start.call_id.clone(),
            deal_id: start.deal_id.clone(),
            rep_id: start.rep_id.clone(),
            context,
            started_at: now_rfc3339(),
        };
        let engine = self.state.engine.load();
        let ready = ServerMsg::Ready {
            call_id: &start.call_id,
            library_version: engine.library().version(),
            cards: engine.library().cards().len(),
            max_visible: engine.library().deck().max_visible,
        }
        .to_json();
        self.live = Some(Live {
            call,
            start,
            session,
            started_at: Instant::now(),
        });
        self.record(Record::CallStarted(row)).await;
        ws.send(Message::text(ready)).await
    }

    async fn on_transcript<S>(
        &mut self,
        t: &Transcript,
        decoded_at: Instant,
        ws: &mut S,
    ) -> Result<(), WsError>
    where
        S: Sink<Message, Error = WsError> + Unpin,
    {
        let Some(live) = self.live.as_mut() else {
            return self
                .reply_error(ws, ErrorCode::Protocol, "`transcript` before `start`")
                .await;
        };
        self.errors_in_a_row = 0;
        let engine = self.state.engine.load();
        let t_ms = t
            .t_ms
            .unwrap_or_else(|| live.started_at.elapsed().as_millis() as u64);
        let u = Utterance {
            segment_id: t.segment_id.as_deref(),
            speaker: protocol::resolve_speaker(&live.start.speakers, t),
            text: &t.text,
            is_final: t.is_final,
            t_ms,
        };
        self.decisions.clear();
        live.session.on_utterance(&engine, &u, &mut self.decisions);
        if self.decisions.is_empty() {
            return Ok(());
        }
        let version = engine.library().version();
        let decisions = std::mem::take(&mut self.decisions);
        for d in &decisions {
            let display_id = self
                .ids
                .generate()
                .unwrap_or_else(|_| ulid::Ulid::new())
                .to_string();
            let engine_us = decoded_at.elapsed().as_micros() as u64;
            self.state.metrics.decision(d.reason);
            if d.shown() {
                self.state.metrics.latency(engine_us);
            }
            let frame = d.shown().then(|| {
                Arc::<str>::from(ServerMsg::Card(CardMsg::new(&display_id, d, engine_us)).to_json())
            });
            let info = live.session.info();
            let row = ExposureRow::from_decision(info, d, display_id, engine_us, version);
            // Logged at the decision point, before the card goes out: a shown card always
            // has its exposure row.
            if let Err(error) = self.store.send(Record::Exposure(row)).await {
                tracing::error!(%error, "exposure not queued: the store writer is gone");
            }
            if let Some(frame) = frame {
                let dropped = live.call.broadcast(&frame);
                if dropped > 0 {
                    self.state
                        .stats
                        .subscribers_dropped
                        .fetch_add(dropped as u64, Ordering::Relaxed);
                }
                ws.send(Message::text(frame.to_string())).await?;
            }
        }
        self.decisions = decisions;
        Ok(())
    }

    async fn record(&self, record: Record) {
        if let Err(error) = self.store.send(record).await {
            tracing::error!(%error, "record not queued: the store writer is gone");
        }
    }

    /// The connection is over: park the session for the grace period and log the end.
    async fn finish(mut self) {
        if let Some(live) = self.live.take() {
            info!(call_id = %live.start.call_id, "call ended");
            let call_id = live.start.call_id.clone();
            self.state.calls.end_ingest(&live.call, live.session);
            self.record(Record::CallEnded {
                call_id,
                ended_at: now_rfc3339(),
            })
            .await;
        }
    }
}
