//! A subscriber connection: a rep's panel receives the cards of one call and sends
//! feedback. It never slows the call: frames reach it through a bounded queue, and a
//! subscriber that falls behind is disconnected (it can reconnect, and is then sent the
//! cards of the last five minutes again, marked `"replayed":true`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{Sink, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::AppState;
use super::calls::{Call, Frame, Subscription};
use super::ingest::close;
use super::socket::{self, Liveness, Tick};
use crate::driver::FeedbackGate;
use crate::protocol::{self, ClientMsg, ErrorCode, ServerMsg};
use crate::store::{Record, StoreHandle};
use crate::timestamp::Timestamp;

/// Runs one subscriber connection to its end.
pub(super) async fn run<S>(
    state: Arc<AppState>,
    mut ws: S,
    store: StoreHandle,
    call_id: String,
    scope: Option<String>,
) where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let sub = match state
        .calls
        .subscribe(&call_id, state.limits.subscriber_queue, scope.as_deref())
    {
        Ok(sub) => sub,
        Err(e) => {
            let frame = ServerMsg::Error {
                code: ErrorCode::Limit,
                message: &e.to_string(),
            }
            .to_json();
            let _ = socket::send(&mut ws, Message::text(frame)).await;
            let close_frame = close(CloseCode::Again, "limit reached");
            let _ = socket::send(&mut ws, Message::Close(close_frame)).await;
            return;
        }
    };
    let Subscription {
        call,
        id,
        mut frames,
        replay,
        other_rep,
    } = sub;
    let close_frame = if other_rep.is_cancelled() {
        close(CloseCode::Library(4003), "another rep's call")
    } else if send_first(&state, &call_id, replay, &mut ws).await.is_err() {
        None
    } else {
        let mut panel = Panel {
            state: &state,
            store: &store,
            call: &call,
            errors_in_a_row: 0,
            feedback: FeedbackGate::new(state.limits.feedback_per_second),
            opened: tokio::time::Instant::now(),
        };
        panel.serve(&mut frames, &other_rep, &mut ws).await
    };
    state.calls.unsubscribe(&call, id);
    if let Some(frame) = close_frame {
        if frame.reason == "subscriber too slow" {
            debug!(call_id = %call_id, "slow subscriber disconnected");
        }
        let _ = socket::send(&mut ws, Message::Close(Some(frame))).await;
    }
    let _ =
        tokio::time::timeout(socket::WRITE_TIMEOUT, futures_util::SinkExt::close(&mut ws)).await;
}

/// The `ready` frame, then the cards shown on the call in the last five minutes (so a
/// panel that reconnects loses none).
async fn send_first<S>(
    state: &AppState,
    call_id: &str,
    replay: Vec<String>,
    ws: &mut S,
) -> Result<(), WsError>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    socket::send(ws, Message::text(ready_frame(state, call_id))).await?;
    for frame in replay {
        socket::send(ws, Message::text(frame)).await?;
    }
    Ok(())
}

/// A panel's connection state.
struct Panel<'a> {
    state: &'a AppState,
    store: &'a StoreHandle,
    call: &'a Call,
    /// Bad messages since the last good one (feedback does not count as good: it could
    /// hold a misbehaving client open).
    errors_in_a_row: u32,
    feedback: FeedbackGate,
    opened: tokio::time::Instant,
}

impl Panel<'_> {
    /// Forwards the call's cards and takes feedback until the socket or the call ends.
    async fn serve<S>(
        &mut self,
        frames: &mut mpsc::Receiver<Frame>,
        other_rep: &CancellationToken,
        ws: &mut S,
    ) -> Option<CloseFrame>
    where
        S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
    {
        let limits = &self.state.limits;
        let mut alive = Liveness::new(
            Duration::from_secs(limits.idle_timeout_seconds),
            Duration::from_secs(limits.ping_seconds),
        );
        let shutdown = self.state.shutdown.clone();
        loop {
            let idle_at = alive.idle_at();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return close(CloseCode::Away, "server shutting down"),
                // A rep-scoped token waited for a call that started with another rep.
                _ = other_rep.cancelled() => return close(CloseCode::Library(4003), "another rep's call"),
                frame = frames.recv() => match frame {
                    Some(frame) => {
                        if socket::send(ws, Message::text(frame.to_string())).await.is_err() {
                            return None;
                        }
                    }
                    // The call dropped us: we fell too far behind.
                    None => return close(CloseCode::Again, "subscriber too slow"),
                },
                _ = tokio::time::sleep_until(idle_at) => return close(CloseCode::Normal, "idle timeout"),
                tick = alive.tick() => match tick {
                    Tick::Dead => return None,
                    Tick::Ping => {
                        if socket::send(ws, Message::Ping(Default::default())).await.is_err() {
                            return None;
                        }
                    }
                },
                next = ws.next() => {
                    alive.seen();
                    match next {
                        None | Some(Err(_)) => return None,
                        Some(Ok(Message::Text(text))) => {
                            let Some((code, message)) = self.on_text(text.as_str()).await else {
                                continue;
                            };
                            self.errors_in_a_row += 1;
                            self.state.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
                            let frame = ServerMsg::Error { code, message: &message }.to_json();
                            if socket::send(ws, Message::text(frame)).await.is_err() {
                                return None;
                            }
                            if self.errors_in_a_row >= limits.max_errors_in_a_row {
                                return close(CloseCode::Policy, "too many errors in a row");
                            }
                        }
                        Some(Ok(Message::Close(_))) => return None,
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
    }

    /// One text message from the panel: feedback on a card shown on this call is queued
    /// for the store; anything else gets the error to answer with.
    async fn on_text(&mut self, text: &str) -> Option<(ErrorCode, String)> {
        let f = match protocol::decode(text) {
            Ok(ClientMsg::Feedback(f)) => f,
            Ok(other) => {
                let message = format!(
                    "a subscriber may only send `feedback`, not `{}`",
                    other.kind()
                );
                return Some((ErrorCode::Protocol, message));
            }
            Err(e) => return Some((ErrorCode::BadMessage, e.message)),
        };
        let shown = self.call.was_shown(&f.display_id);
        let now_ms = self.opened.elapsed().as_millis() as u64;
        let row = match self
            .feedback
            .admit(f, shown, Some(now_ms), Timestamp::now())
        {
            Ok(row) => row,
            Err(refusal) => return Some((refusal.code, refusal.message)),
        };
        if let Err(error) = self.store.send(Record::Feedback(row)).await {
            tracing::error!(%error, "feedback not queued");
        }
        None
    }
}

/// The `ready` frame a subscriber gets first: the call and the live library.
fn ready_frame(state: &AppState, call_id: &str) -> String {
    let engine = state.engine.load();
    ServerMsg::Ready {
        call_id,
        library_version: engine.library().version(),
        cards: engine.library().cards().len(),
        max_visible: engine.library().deck().max_visible,
    }
    .to_json()
}
