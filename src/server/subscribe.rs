//! A subscriber connection: a rep's panel receives the cards of one call and sends
//! feedback. It never slows the call: frames reach it through a bounded queue, and a
//! subscriber that falls behind is disconnected (it can reconnect).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::debug;

use super::AppState;
use super::ingest::close;
use crate::protocol::{self, ClientMsg, ErrorCode, ServerMsg};
use crate::store::{FeedbackRow, Record, StoreHandle};
use crate::timestamp::Timestamp;

/// Runs one subscriber connection to its end.
pub(super) async fn run<S>(state: Arc<AppState>, mut ws: S, store: StoreHandle, call_id: String)
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let (call, id, mut frames) = match state
        .calls
        .subscribe(&call_id, state.limits.subscriber_queue)
    {
        Ok(x) => x,
        Err(e) => {
            let frame = ServerMsg::Error {
                code: ErrorCode::Limit,
                message: &e.to_string(),
            }
            .to_json();
            let _ = ws.send(Message::text(frame)).await;
            let _ = ws
                .send(Message::Close(close(CloseCode::Again, "limit reached")))
                .await;
            return;
        }
    };
    let ready = ready_frame(&state, &call_id);
    let idle = Duration::from_secs(state.limits.idle_timeout_seconds.max(1));
    let shutdown = state.shutdown.clone();
    let mut errors_in_a_row = 0u32;
    let close_frame = if ws.send(Message::text(ready)).await.is_err() {
        None
    } else {
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break close(CloseCode::Away, "server shutting down"),
                frame = frames.recv() => match frame {
                    Some(frame) => {
                        if ws.send(Message::text(frame.to_string())).await.is_err() {
                            break None;
                        }
                    }
                    // The call dropped us: we fell too far behind.
                    None => break close(CloseCode::Again, "subscriber too slow"),
                },
                next = tokio::time::timeout(idle, ws.next()) => match next {
                    Err(_) => break close(CloseCode::Normal, "idle timeout"),
                    Ok(None) | Ok(Some(Err(_))) => break None,
                    Ok(Some(Ok(Message::Text(text)))) => {
                        let Some((code, message)) = on_text(&store, text.as_str()).await else {
                            errors_in_a_row = 0;
                            continue;
                        };
                        errors_in_a_row += 1;
                        state.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
                        let frame = ServerMsg::Error { code, message: &message }.to_json();
                        if ws.send(Message::text(frame)).await.is_err() {
                            break None;
                        }
                        if errors_in_a_row >= state.limits.max_errors_in_a_row {
                            break close(CloseCode::Policy, "too many errors in a row");
                        }
                    }
                    Ok(Some(Ok(Message::Close(_)))) => break None,
                    Ok(Some(Ok(_))) => {}
                },
            }
        }
    };
    state.calls.unsubscribe(&call, id);
    if let Some(frame) = close_frame {
        if frame.reason == "subscriber too slow" {
            debug!(call_id = %call_id, "slow subscriber disconnected");
        }
        let _ = ws.send(Message::Close(Some(frame))).await;
    }
    let _ = ws.close().await;
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

/// One text message from a subscriber: feedback is queued for the store; anything else
/// gets the error to answer with.
async fn on_text(store: &StoreHandle, text: &str) -> Option<(ErrorCode, String)> {
    match protocol::decode(text) {
        Ok(ClientMsg::Feedback(f)) => {
            let row = FeedbackRow {
                display_id: f.display_id,
                ts: Timestamp::now(),
                action: f.action.as_str().to_string(),
            };
            if let Err(error) = store.send(Record::Feedback(row)).await {
                tracing::error!(%error, "feedback not queued");
            }
            None
        }
        Ok(other) => Some((
            ErrorCode::Protocol,
            format!(
                "a subscriber may only send `feedback`, not `{}`",
                other.kind()
            ),
        )),
        Err(e) => Some((ErrorCode::BadMessage, e.message)),
    }
}
