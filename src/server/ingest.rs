//! An ingest connection: a transcript producer streams one call. The call itself is a
//! [`CallDriver`]; this module only moves frames between the socket, the driver, the store
//! queue, the call's subscribers and the metrics, and keeps the socket honest (pings,
//! idle and write timeouts, takeover by a newer connection for the same call).
//!
//! The handler is generic over the socket (`Stream` + `Sink` of WebSocket messages) so
//! tests can drive it without a network.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{Sink, Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tracing::{Span, debug, info, warn};

use super::AppState;
use super::calls::{Call, Claim, JoinError, Registry};
use super::socket::{self, Liveness, Tick};
use crate::driver::{
    Admission, CallDriver, Close, DriverConfig, Host, Output, Refusal, Reply, SystemHost,
};
use crate::protocol::adapters::Adapter;
use crate::protocol::{ErrorCode, Start};
use crate::session::SessionLimits;
use crate::store::{Record, StoreHandle};
use crate::timestamp::Timestamp;

/// How long a newer `start` waits for the connection holding its call to let go.
const TAKEOVER_WAIT: Duration = Duration::from_secs(2);

/// Why the loop stopped, and the close frame to send (if any).
pub(super) fn close(code: CloseCode, reason: &'static str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code,
        reason: reason.into(),
    })
}

/// The live host: the system clock, and the call registry deciding who holds a call.
struct IngestHost {
    clock: SystemHost,
    state: Arc<AppState>,
    /// This connection's hold on the call it started.
    claim: Option<Claim>,
    /// A call held by another connection that was asked to let go: `start` waits for it.
    waiting_for: Option<(String, Option<String>, Arc<Call>)>,
}

impl IngestHost {
    /// Claims `call_id`; the admission for the driver.
    fn claim(&mut self, call_id: &str, rep_id: Option<&str>) -> Result<Admission, JoinError> {
        let mut claim = self.state.calls.start_ingest(call_id, rep_id)?;
        Span::current().record("call_id", call_id);
        info!(%call_id, resumed = claim.parked.is_some(), "call started");
        let admission = match claim.parked.take() {
            Some(parked) => Admission::Resume(parked),
            None => Admission::New,
        };
        self.claim = Some(claim);
        Ok(admission)
    }

    fn replaced(&self) -> Option<CancellationToken> {
        self.claim.as_ref().map(|c| c.replaced.clone())
    }
}

fn refusal(e: JoinError) -> Refusal {
    Refusal {
        code: match e {
            JoinError::IngestBusy(_) => ErrorCode::Protocol,
            _ => ErrorCode::Limit,
        },
        message: e.to_string(),
    }
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

    fn admit(&mut self, start: &Start) -> Admission {
        let rep_id = start.rep_id.as_deref();
        match self.claim(&start.call_id, rep_id) {
            Ok(admission) => admission,
            // A newer start takes the call over: the holder is asked to let go.
            Err(JoinError::IngestBusy(_)) => match self.state.calls.take_over(&start.call_id) {
                Some(call) => {
                    info!(call_id = %start.call_id, "call taken over by a newer connection");
                    let rep_id = start.rep_id.clone();
                    self.waiting_for = Some((start.call_id.clone(), rep_id, call));
                    Admission::Wait
                }
                // Let go in between.
                None => self
                    .claim(&start.call_id, rep_id)
                    .unwrap_or_else(|e| Admission::Refuse(refusal(e))),
            },
            Err(e) => Admission::Refuse(refusal(e)),
        }
    }

    fn shown_on_call(&mut self, display_id: &str) -> bool {
        self.claim
            .as_ref()
            .is_some_and(|c| c.call.was_shown(display_id))
    }
}

/// Runs one ingest connection to its end.
pub(super) async fn run<S>(state: Arc<AppState>, mut ws: S, store: StoreHandle, adapter: Adapter)
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let limits = &state.limits;
    let mut alive = Liveness::new(
        Duration::from_secs(limits.idle_timeout_seconds),
        Duration::from_secs(limits.ping_seconds),
    );
    let shutdown = state.shutdown.clone();
    let config = DriverConfig {
        session: SessionLimits {
            max_transcript_bytes: limits.max_transcript_bytes,
            ..SessionLimits::default()
        },
        max_errors_in_a_row: limits.max_errors_in_a_row,
        feedback_per_second: limits.feedback_per_second,
        ..DriverConfig::default()
    };
    let mut driver = CallDriver::new(config, adapter);
    let mut host = IngestHost {
        clock: SystemHost::default(),
        state: state.clone(),
        claim: None,
        waiting_for: None,
    };
    let mut out = Output::default();
    let close_frame = loop {
        let replaced = host.replaced();
        let idle_at = alive.idle_at();
        let msg = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break close(CloseCode::Away, "server shutting down"),
            _ = cancelled(replaced) => break close(CloseCode::Library(4001), "replaced"),
            _ = tokio::time::sleep_until(idle_at) => break close(CloseCode::Normal, "idle timeout"),
            tick = alive.tick() => match tick {
                Tick::Dead => {
                    debug!("two pings unanswered: dropping the socket");
                    break None;
                }
                Tick::Ping => match socket::send(&mut ws, Message::Ping(Default::default())).await {
                    Ok(()) => continue,
                    Err(_) => break None,
                },
            },
            next = ws.next() => match next {
                None => break None,
                Some(Err(WsError::Capacity(error))) => {
                    state.stats.frames_oversized.fetch_add(1, Ordering::Relaxed);
                    debug!(%error, "frame over the size limit");
                    break close(CloseCode::Size, "message too big");
                }
                Some(Err(error)) => {
                    debug!(%error, "ingest socket error");
                    break None;
                }
                Some(Ok(msg)) => msg,
            },
        };
        alive.seen();
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
                if out.waiting {
                    take_over(&engine, &mut driver, &mut host, &mut out).await;
                }
                count_frame(&state, &out);
            }
            Message::Binary(_) => {
                state.metrics.message("binary");
                driver.on_binary(&mut out);
            }
            Message::Close(_) => break None,
            _ => continue,
        }
        let call = host.claim.as_ref().map(|c| c.call.clone());
        if deliver(&state, &store, call.as_deref(), &mut out, &mut ws)
            .await
            .is_err()
        {
            break None; // the socket is gone, or stopped reading
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
        let _ = socket::send(&mut ws, Message::Close(Some(frame))).await;
    }
    let _ =
        tokio::time::timeout(socket::WRITE_TIMEOUT, futures_util::SinkExt::close(&mut ws)).await;
    if let (Some(finished), Some(claim)) = (driver.finish(&mut host), host.claim.take()) {
        if let Record::CallEnded { call_id, .. } = &finished.record {
            info!(%call_id, "call ended");
        }
        state
            .calls
            .end_ingest(&claim.call, claim.id, finished.parked);
        queue(&store, finished.record).await;
    }
}

/// Resolves when `token` is cancelled; never without one.
async fn cancelled(token: Option<CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// A `start` for a call another connection holds: wait for it to let go, then claim the
/// call and resume it.
async fn take_over(
    engine: &crate::engine::Engine,
    driver: &mut CallDriver,
    host: &mut IngestHost,
    out: &mut Output,
) {
    let Some((call_id, rep_id, call)) = host.waiting_for.take() else {
        return;
    };
    if !Registry::released(&call, TAKEOVER_WAIT).await {
        warn!(%call_id, "the connection holding the call did not let go in time");
    }
    let admission = host
        .claim(&call_id, rep_id.as_deref())
        .unwrap_or_else(|e| Admission::Refuse(refusal(e)));
    driver.admitted(engine, admission, host, out);
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
/// subscribers. Records first: every decision is logged even when the socket fails.
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
    // Panels get every card before the ingest socket is written to: a stalled bridge
    // does not hold them up.
    for reply in &out.replies {
        match reply {
            Reply::Error { .. } => {
                state.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
            }
            Reply::Card { display_id, frame } => {
                let dropped = call.map_or(0, |c| c.show(display_id, frame));
                if dropped > 0 {
                    state
                        .stats
                        .subscribers_dropped
                        .fetch_add(dropped as u64, Ordering::Relaxed);
                }
            }
            Reply::Ready(_) | Reply::Transcript(_) => {}
        }
    }
    for reply in &out.replies {
        socket::send(ws, Message::text(reply.to_json())).await?;
    }
    Ok(())
}

async fn queue(store: &StoreHandle, record: Record) {
    if let Err(error) = store.send(record).await {
        tracing::error!(%error, "record not queued: the store writer is gone");
    }
}
