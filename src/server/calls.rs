//! The call registry: which calls exist, who streams and who listens to them, the cards
//! shown on each (for feedback checks and for panels that reconnect), and the state an
//! ended call keeps during its grace period so that a reconnect resumes it.
//!
//! One ingest connection owns a call at a time. A newer `start` for a call that is still
//! owned takes it over: the owner is asked to give the call up (it closes with `4001
//! replaced` and parks its state), and the newcomer resumes from that state. A bridge whose
//! network dropped without a FIN is therefore never locked out of its own call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::driver::Parked;

/// A frame queued for a subscriber.
pub type Frame = Arc<str>;

/// How far back a (re)subscribing panel is sent the call's cards.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// Cards remembered per call (feedback checks, replay); far above any deck budget.
const SHOWN_KEPT: usize = 1024;

/// A card shown on the call.
#[derive(Debug)]
struct ShownCard {
    display_id: Box<str>,
    at: Instant,
    frame: Frame,
}

#[derive(Debug, Default)]
struct CallState {
    /// The call's state while no ingest connection holds it (in grace, or being handed
    /// over to a newer connection).
    parked: Option<Parked>,
    /// The ingest connection holding the call: its claim id and the token asking it to
    /// give the call up.
    owner: Option<(u64, CancellationToken)>,
    ended_at: Option<Instant>,
    /// An ingest connection started the call (a call only panels asked for takes no
    /// `max_calls` slot).
    started: bool,
    subscribers: Vec<(u64, mpsc::Sender<Frame>)>,
    /// Cards shown, oldest first, at most `SHOWN_KEPT`.
    shown: VecDeque<ShownCard>,
}

/// One call's shared part.
#[derive(Debug, Default)]
pub struct Call {
    state: Mutex<CallState>,
    /// Signalled when the owning ingest connection lets go of the call.
    released: Notify,
}

impl Call {
    fn lock(&self) -> MutexGuard<'_, CallState> {
        // A panic while holding this lock cannot leave the state inconsistent in a way
        // that matters more than losing the call, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a shown card and sends it to every subscriber without waiting. A
    /// subscriber whose queue is full is dropped (its task then closes its socket);
    /// returns how many were dropped.
    pub fn show(&self, display_id: &str, frame: &Frame) -> usize {
        let mut st = self.lock();
        if st.shown.len() >= SHOWN_KEPT {
            st.shown.pop_front();
        }
        st.shown.push_back(ShownCard {
            display_id: display_id.into(),
            at: Instant::now(),
            frame: frame.clone(),
        });
        let before = st.subscribers.len();
        st.subscribers
            .retain(|(_, tx)| tx.try_send(frame.clone()).is_ok());
        before - st.subscribers.len()
    }

    /// Was a card with this display id shown on the call?
    pub fn was_shown(&self, display_id: &str) -> bool {
        self.lock()
            .shown
            .iter()
            .any(|c| *c.display_id == *display_id)
    }

    /// Number of live subscribers.
    #[cfg(test)]
    fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }
}

/// Why a call could not be joined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("call `{0}` already has a live ingest connection")]
    IngestBusy(String),
    #[error("too many calls: the limit is {0}")]
    TooManyCalls(usize),
    #[error("too many subscribers for this call: the limit is {0}")]
    TooManySubscribers(usize),
}

/// An ingest connection's hold on a call.
#[derive(Debug)]
pub struct Claim {
    pub call: Arc<Call>,
    /// Tells this claim from a later one on the same call.
    pub id: u64,
    /// Cancelled when a newer connection takes the call over.
    pub replaced: CancellationToken,
    /// The call's state when it is resumed.
    pub parked: Option<Parked>,
}

/// A new subscriber: its call, id, queue, and the cards to send it first.
#[derive(Debug)]
pub struct Subscription {
    pub call: Arc<Call>,
    pub id: u64,
    pub frames: mpsc::Receiver<Frame>,
    /// Cards shown in the last [`REPLAY_WINDOW`], oldest first, marked `"replayed":true`.
    pub replay: Vec<String>,
}

#[derive(Debug, Default)]
struct Calls {
    map: HashMap<String, Arc<Call>>,
    /// Entries an ingest connection started (what `max_calls` bounds).
    started: usize,
}

/// All calls on this node.
#[derive(Debug)]
pub struct Registry {
    calls: Mutex<Calls>,
    max_calls: usize,
    max_subscribers: usize,
    grace: Duration,
    next_id: std::sync::atomic::AtomicU64,
}

impl Registry {
    pub fn new(max_calls: usize, max_subscribers: usize, grace: Duration) -> Registry {
        Registry {
            calls: Mutex::new(Calls::default()),
            max_calls,
            max_subscribers,
            grace,
            next_id: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_id(&self) -> u64 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Claims a call for an ingest connection. Returns its state when the call is resumed
    /// within its grace period; [`JoinError::IngestBusy`] while another connection holds
    /// it (see [`Registry::take_over`]).
    pub fn start_ingest(&self, call_id: &str) -> Result<Claim, JoinError> {
        let mut calls = self.lock();
        let call = calls.map.get(call_id).cloned();
        let call = match call {
            Some(call) => call,
            None => {
                let call = Arc::new(Call::default());
                calls.map.insert(call_id.to_string(), call.clone());
                call
            }
        };
        let mut st = call.lock();
        if st.owner.is_some() {
            return Err(JoinError::IngestBusy(call_id.to_string()));
        }
        if !st.started {
            if calls.started >= self.max_calls {
                let empty = st.subscribers.is_empty();
                drop(st);
                if empty {
                    calls.map.remove(call_id);
                }
                return Err(JoinError::TooManyCalls(self.max_calls));
            }
            st.started = true;
            calls.started += 1;
        }
        let id = self.next_id();
        let replaced = CancellationToken::new();
        st.owner = Some((id, replaced.clone()));
        st.ended_at = None;
        let parked = st.parked.take();
        drop(st);
        Ok(Claim {
            call,
            id,
            replaced,
            parked,
        })
    }

    /// Asks the connection holding `call_id` to give it up; returns the call, to wait on
    /// with [`Registry::released`]. `None` when nobody holds it.
    pub fn take_over(&self, call_id: &str) -> Option<Arc<Call>> {
        let call = self.lock().map.get(call_id).cloned()?;
        let st = call.lock();
        let (_, replaced) = st.owner.as_ref()?;
        replaced.cancel();
        drop(st);
        Some(call)
    }

    /// Waits (at most `timeout`) until nobody holds `call`; `false` on timeout.
    pub async fn released(call: &Call, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = call.released.notified();
                if call.lock().owner.is_none() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// The ingest connection of claim `id` is gone: park the call's state for the grace
    /// period. A claim that was taken over meanwhile parks nothing.
    pub fn end_ingest(&self, call: &Call, id: u64, parked: Parked) {
        let mut st = call.lock();
        if st.owner.as_ref().is_none_or(|(owner, _)| *owner != id) {
            return;
        }
        st.owner = None;
        st.ended_at = Some(Instant::now());
        st.parked = Some(parked);
        drop(st);
        call.released.notify_waiters();
    }

    /// Adds a subscriber; frames for it arrive on the returned receiver, after the
    /// replayed cards. Subscribing to a call that has not started is accepted (the panel
    /// waits for it) and takes no `max_calls` slot.
    pub fn subscribe(&self, call_id: &str, queue: usize) -> Result<Subscription, JoinError> {
        let call = self
            .lock()
            .map
            .entry(call_id.to_string())
            .or_default()
            .clone();
        let mut st = call.lock();
        if st.subscribers.len() >= self.max_subscribers {
            return Err(JoinError::TooManySubscribers(self.max_subscribers));
        }
        let id = self.next_id();
        let (tx, frames) = mpsc::channel(queue.max(1));
        st.subscribers.push((id, tx));
        // Under the same lock as joining: no card falls between the replay and the queue.
        let since = Instant::now().checked_sub(REPLAY_WINDOW);
        let replay = st
            .shown
            .iter()
            .filter(|c| since.is_none_or(|since| c.at >= since))
            .map(|c| replayed(&c.frame))
            .collect();
        drop(st);
        Ok(Subscription {
            call,
            id,
            frames,
            replay,
        })
    }

    /// Removes a subscriber (its socket closed).
    pub fn unsubscribe(&self, call: &Call, id: u64) {
        call.lock().subscribers.retain(|(s, _)| *s != id);
    }

    /// Drops calls with no live ingest, no subscribers, and no state worth keeping
    /// (never started, or ended longer ago than the grace period).
    pub fn reap(&self) -> usize {
        let now = Instant::now();
        let mut calls = self.lock();
        let before = calls.map.len();
        let mut started_removed = 0;
        calls.map.retain(|_, call| {
            let st = call.lock();
            let expired = st
                .ended_at
                .is_none_or(|t| now.duration_since(t) >= self.grace);
            let keep = st.owner.is_some() || !st.subscribers.is_empty() || !expired;
            if !keep && st.started {
                started_removed += 1;
            }
            keep
        });
        calls.started -= started_removed;
        before - calls.map.len()
    }

    /// Calls with a live ingest connection.
    pub fn active_calls(&self) -> usize {
        self.lock()
            .map
            .values()
            .filter(|c| c.lock().owner.is_some())
            .count()
    }

    /// Calls held (live, waiting for an ingest, or in grace).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A card frame as replayed to a panel: the same object with `"replayed":true` added.
fn replayed(frame: &str) -> String {
    match frame.strip_suffix('}') {
        Some(body) => format!("{body},\"replayed\":true}}"),
        None => frame.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{CallDriver, DriverConfig, Host, Output};
    use crate::engine::Engine;
    use crate::library::Library;
    use crate::protocol::adapters::{Adapter, CallSetup, Format};
    use crate::timestamp::Timestamp;

    fn registry() -> Registry {
        Registry::new(2, 1, Duration::from_millis(0))
    }

    /// A parked call, as a driver leaves one.
    fn parked(call_id: &str) -> Parked {
        struct Clock;
        impl Host for Clock {
            fn now(&mut self) -> Timestamp {
                Timestamp::from_unix_ms(0)
            }
            fn display_id(&mut self, _: Timestamp) -> String {
                "d".into()
            }
            fn engine_us(&mut self) -> u64 {
                0
            }
        }
        let yaml = "id: p\ntitle: P\ncategory: objection\nbody: b\ntriggers: { any: [price] }\n";
        let engine = Engine::new(Library::from_sources(&[("c.yaml", yaml)], "t").unwrap()).unwrap();
        let adapter = Adapter::new(Format::Native, CallSetup::default());
        let mut d = CallDriver::new(DriverConfig::default(), adapter);
        let start = format!(r#"{{"type":"start","call_id":"{call_id}"}}"#);
        d.on_text(&engine, &start, None, &mut Clock, &mut Output::default());
        d.finish(&mut Clock).expect("started").parked
    }

    #[test]
    fn one_ingest_per_call_and_resume_after_end() {
        let r = registry();
        let claim = r.start_ingest("c1").unwrap();
        assert!(claim.parked.is_none());
        assert_eq!(
            r.start_ingest("c1").unwrap_err(),
            JoinError::IngestBusy("c1".into())
        );
        r.end_ingest(&claim.call, claim.id, parked("c1"));
        let again = r.start_ingest("c1").unwrap();
        assert!(again.parked.is_some());
        assert_eq!(r.active_calls(), 1);
    }

    #[tokio::test]
    async fn a_newer_start_takes_the_call_over_and_resumes_its_state() {
        let r = Registry::new(10, 10, Duration::from_secs(30));
        let old = r.start_ingest("c").unwrap();
        let call = r.take_over("c").expect("held");
        assert!(old.replaced.is_cancelled(), "the owner is asked to let go");
        assert!(
            !Registry::released(&call, Duration::from_millis(10)).await,
            "still held until the owner parks"
        );
        r.end_ingest(&old.call, old.id, parked("c"));
        assert!(Registry::released(&call, Duration::from_millis(10)).await);
        let new = r.start_ingest("c").unwrap();
        assert!(new.parked.is_some(), "the newcomer resumes the call");
        // A stale owner ending later parks nothing over the newcomer.
        r.end_ingest(&old.call, old.id, parked("c"));
        assert_eq!(r.active_calls(), 1);
    }

    #[test]
    fn limits_calls_and_subscribers() {
        let r = registry();
        r.start_ingest("a").unwrap();
        r.start_ingest("b").unwrap();
        assert_eq!(r.start_ingest("c").unwrap_err(), JoinError::TooManyCalls(2));
        r.subscribe("a", 4).unwrap();
        assert_eq!(
            r.subscribe("a", 4).unwrap_err(),
            JoinError::TooManySubscribers(1)
        );
    }

    #[test]
    fn panels_on_calls_not_started_take_no_call_slot() {
        let r = Registry::new(1, 4, Duration::from_millis(0));
        for i in 0..10 {
            r.subscribe(&format!("nope-{i}"), 4).unwrap();
        }
        // Every call slot is still free for a real call.
        assert!(r.start_ingest("real").is_ok());
        assert_eq!(
            r.start_ingest("other").unwrap_err(),
            JoinError::TooManyCalls(1)
        );
    }

    #[test]
    fn a_full_subscriber_is_dropped_not_waited_for() {
        let r = Registry::new(10, 10, Duration::from_secs(30));
        let mut slow = r.subscribe("c", 1).unwrap();
        let mut fast = r.subscribe("c", 8).unwrap();
        let frame: Frame = Arc::from("{}");
        let call = slow.call.clone();
        assert_eq!(call.show("d1", &frame), 0);
        let _ = fast.frames.try_recv();
        assert_eq!(call.show("d2", &frame), 1, "the slow subscriber is dropped");
        assert_eq!(call.subscriber_count(), 1);
        assert!(slow.frames.try_recv().is_ok());
        assert!(
            slow.frames.try_recv().is_err(),
            "then its channel is closed"
        );
    }

    #[test]
    fn a_resubscribing_panel_gets_the_recent_cards_marked_replayed() {
        let r = Registry::new(10, 10, Duration::from_secs(30));
        let claim = r.start_ingest("c").unwrap();
        let frame: Frame = Arc::from(r#"{"type":"card","display_id":"d1"}"#);
        claim.call.show("d1", &frame);
        assert!(claim.call.was_shown("d1"));
        assert!(!claim.call.was_shown("d2"));
        let sub = r.subscribe("c", 4).unwrap();
        assert_eq!(
            sub.replay,
            [r#"{"type":"card","display_id":"d1","replayed":true}"#]
        );
    }

    #[test]
    fn reap_keeps_calls_in_grace() {
        let r = Registry::new(10, 10, Duration::from_secs(30));
        let claim = r.start_ingest("c").unwrap();
        r.end_ingest(&claim.call, claim.id, parked("c"));
        assert_eq!(r.reap(), 0);
        let r = Registry::new(1, 10, Duration::from_millis(0));
        let claim = r.start_ingest("c").unwrap();
        r.end_ingest(&claim.call, claim.id, parked("c"));
        assert_eq!(r.reap(), 1);
        assert!(r.is_empty());
        assert!(
            r.start_ingest("d").is_ok(),
            "the reaped call's slot is free again"
        );
    }
}
