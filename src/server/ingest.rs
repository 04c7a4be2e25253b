//! An ingest connection: a transcript producer streams one call. The call itself is a
//! [`CallDriver`]; this module only moves frames between the socket, the driver, the store
//! queue, the call's subscribers and the metrics.
//!
//! The handler is generic over the socket (`Stream` + `Sink` of WebSocket messages) so
//! tests can drive it without a network.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{Span, debug, info};

use super::AppState;
use super::calls::{Call, JoinError};
use crate::driver::{CallDriver, Close, DriverConfig, Host, Output, Refusal, Reply, SystemHost};
use crate::protocol::adapters::Adapter;
use crate::protocol::{ErrorCode, Start};
use crate::session::{Session, SessionLimits};
use crate::store::{Record, StoreHandle};
use crate::timestamp::Timestamp;

/// Why the loop stopped, and the close frame to send (if any).
pub(super) fn close(code: CloseCode, reason: &'static str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code,
        reason: reason.into(),
    })
}

/// The live host: the system clock, and the call registry deciding who may start a call.
struct IngestHost {
    clock: SystemHost,
    state: Arc<AppState>,
    /// The registry entry of the call this connection started.
    call: Option<Arc<Call>>,
}

impl Host for IngestHost {
    fn now(&mut self) -> Timestamp {
        self.clock.now()
    }

    fn display_id(&mut self, now: Timestamp) -> String {
        self.clock.display_id(now)
    }

    fn engine_us(&mut self) -> u64 {
        self.clock.engine_us()
    }

    fn admit(&mut self, start: &Start) -> Result<Option<Session>, Refusal> {
        let (call, parked) = self.state.calls.start_ingest(&start.call_id).map_err(|e| {
            let code = match e {
                JoinError::IngestBusy(_) => ErrorCode::Protocol,
                _ => ErrorCode::Limit,
            };
            Refusal {
                code,
                message: e.to_string(),
            }
        })?;
        Span::current().record("call_id", start.call_id.as_str());
        info!(call_id = %start.call_id, resumed = parked.is_some(), "call started");
        self.call = Some(call);
        Ok(parked)
    }
}

/// Runs one ingest connection to its end.
pub(super) async fn run<S>(state: Arc<AppState>, mut ws: S, store: StoreHandle, adapter: Adapter)
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let idle = Duration::from_secs(state.limits.idle_timeout_seconds.max(1));
    let shutdown = state.shutdown.clone();
    let config = DriverConfig {
        session: SessionLimits {
            max_transcript_bytes: state.limits.max_transcript_bytes,
            ..SessionLimits::default()
        },
        max_errors_in_a_row: state.limits.max_errors_in_a_row,
        ..DriverConfig::default()
    };
    let mut driver = CallDriver::new(config, adapter);
    let mut host = IngestHost {
        clock: SystemHost::default(),
        state: state.clone(),
        call: None,
    };
    let mut out = Output::default();
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
        out.clear();
        match msg {
            Message::Text(text) => {
                let received_ms = host.clock.received();
                let engine = state.engine.load();
                driver.on_text(
                    &engine,
                    text.as_str(),
                    Some(received_ms),
                    &mut host,
                    &mut out,
                );
                count_frame(&state, &out);
            }
            Message::Binary(_) => {
                state.metrics.message("binary");
                driver.on_binary(&mut out);
            }
            Message::Close(_) => break None,
            _ => continue,
        }
        if deliver(&state, &store, host.call.as_deref(), &mut out, &mut ws)
            .await
            .is_err()
        {
            break None; // the socket is gone
        }
        match out.close {
            Some(Close::TooManyErrors) => {
                break close(CloseCode::Policy, "too many errors in a row");
            }
            Some(Close::Ended) => break close(CloseCode::Normal, "call ended"),
            None => {}
        }
    };
    if let Some(frame) = close_frame {
        let _ = ws.send(Message::Close(Some(frame))).await;
    }
    let _ = ws.close().await;
    if let (Some(finished), Some(call)) = (driver.finish(&mut host), host.call.take()) {
        if let Record::CallEnded { call_id, .. } = &finished.record {
            info!(%call_id, "call ended");
        }
        state.calls.end_ingest(&call, finished.session);
        queue(&store, finished.record).await;
    }
}

/// Counts a decoded text frame and its decisions in the metrics.
fn count_frame(state: &AppState, out: &Output) {
    match &out.frame {
        Some(frame) => {
            state.metrics.message(frame.kind.as_str());
            state
                .stats
                .adapters
                .count(frame.ignored, frame.unmapped_speakers);
        }
        None => state.metrics.message("invalid"),
    }
    for d in &out.decisions {
        state.metrics.decision(d.reason);
    }
    for record in &out.records {
        if let Record::Exposure(row) = record
            && row.shown
        {
            state.metrics.latency(row.engine_us as u64);
        }
    }
}

/// Queues the frame's records, then sends its replies; cards also go to the call's
/// subscribers. Records first: a shown card always has its exposure row.
async fn deliver<S>(
    state: &AppState,
    store: &StoreHandle,
    call: Option<&Call>,
    out: &mut Output,
    ws: &mut S,
) -> Result<(), WsError>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    for record in out.records.drain(..) {
        queue(store, record).await;
    }
    for reply in &out.replies {
        match reply {
            Reply::Error { .. } => {
                state.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
            }
            Reply::Card(frame) => {
                let dropped = call.map_or(0, |c| c.broadcast(frame));
                if dropped > 0 {
                    state
                        .stats
                        .subscribers_dropped
                        .fetch_add(dropped as u64, Ordering::Relaxed);
                }
            }
            Reply::Ready(_) | Reply::Transcript(_) => {}
        }
        ws.send(Message::text(reply.to_json())).await?;
    }
    Ok(())
}

async fn queue(store: &StoreHandle, record: Record) {
    if let Err(error) = store.send(record).await {
        tracing::error!(%error, "record not queued: the store writer is gone");
    }
}
