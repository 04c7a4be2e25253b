//! The call registry: which calls exist, who listens to them, and the state an ended call
//! keeps during its grace period so that a reconnect resumes cooldowns and budgets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::session::Session;

/// A frame queued for a subscriber.
pub type Frame = Arc<str>;

#[derive(Debug, Default)]
struct CallState {
    /// The session, while no ingest connection holds it (before start, or in grace).
    parked: Option<Session>,
    ingest_live: bool,
    ended_at: Option<Instant>,
    subscribers: Vec<(u64, mpsc::Sender<Frame>)>,
}

/// One call's shared part.
#[derive(Debug, Default)]
pub struct Call {
    state: Mutex<CallState>,
}

impl Call {
    fn lock(&self) -> MutexGuard<'_, CallState> {
        // A panic while holding this lock cannot leave the state inconsistent in a way
        // that matters more than losing the call, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a frame to every subscriber without waiting. A subscriber whose queue is full
    /// is dropped (its task then closes its socket); returns how many were dropped.
    pub fn broadcast(&self, frame: &Frame) -> usize {
        let mut st = self.lock();
        let before = st.subscribers.len();
        st.subscribers
            .retain(|(_, tx)| tx.try_send(frame.clone()).is_ok());
        before - st.subscribers.len()
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

/// All calls on this node.
#[derive(Debug)]
pub struct Registry {
    calls: Mutex<HashMap<String, Arc<Call>>>,
    max_calls: usize,
    max_subscribers: usize,
    grace: Duration,
    next_subscriber: std::sync::atomic::AtomicU64,
}

impl Registry {
    pub fn new(max_calls: usize, max_subscribers: usize, grace: Duration) -> Registry {
        Registry {
            calls: Mutex::new(HashMap::new()),
            max_calls,
            max_subscribers,
            grace,
            next_subscriber: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Call>>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_or_create(&self, call_id: &str) -> Result<Arc<Call>, JoinError> {
        let mut calls = self.lock();
        if let Some(c) = calls.get(call_id) {
            return Ok(c.clone());
        }
        if calls.len() >= self.max_calls {
            return Err(JoinError::TooManyCalls(self.max_calls));
        }
        let call = Arc::new(Call::default());
        calls.insert(call_id.to_string(), call.clone());
        Ok(call)
    }

    /// Claims a call for an ingest connection. Returns the call and, when the call is
    /// resumed within its grace period, its previous session.
    pub fn start_ingest(&self, call_id: &str) -> Result<(Arc<Call>, Option<Session>), JoinError> {
        let call = self.get_or_create(call_id)?;
        let mut st = call.lock();
        if st.ingest_live {
            return Err(JoinError::IngestBusy(call_id.to_string()));
        }
        st.ingest_live = true;
        st.ended_at = None;
        let parked = st.parked.take();
        drop(st);
        Ok((call, parked))
    }

    /// The ingest connection is gone: park the session for the grace period.
    pub fn end_ingest(&self, call: &Call, session: Session) {
        let mut st = call.lock();
        st.ingest_live = false;
        st.ended_at = Some(Instant::now());
        st.parked = Some(session);
    }

    /// Adds a subscriber; frames for it arrive on the returned receiver.
    pub fn subscribe(
        &self,
        call_id: &str,
        queue: usize,
    ) -> Result<(Arc<Call>, u64, mpsc::Receiver<Frame>), JoinError> {
        let call = self.get_or_create(call_id)?;
        let mut st = call.lock();
        if st.subscribers.len() >= self.max_subscribers {
            return Err(JoinError::TooManySubscribers(self.max_subscribers));
        }
        let id = self
            .next_subscriber
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(queue.max(1));
        st.subscribers.push((id, tx));
        drop(st);
        Ok((call, id, rx))
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
        let before = calls.len();
        calls.retain(|_, call| {
            let st = call.lock();
            let expired = st
                .ended_at
                .is_none_or(|t| now.duration_since(t) >= self.grace);
            st.ingest_live || !st.subscribers.is_empty() || !expired
        });
        before - calls.len()
    }

    /// Calls with a live ingest connection.
    pub fn active_calls(&self) -> usize {
        self.lock()
            .values()
            .filter(|c| c.lock().ingest_live)
            .count()
    }

    /// Calls held (live, waiting for an ingest, or in grace).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{CallInfo, SessionLimits};

    fn registry() -> Registry {
        Registry::new(2, 1, Duration::from_millis(0))
    }

    #[test]
    fn one_ingest_per_call_and_resume_after_end() {
        let r = registry();
        let (call, parked) = r.start_ingest("c1").unwrap();
        assert!(parked.is_none());
        assert_eq!(
            r.start_ingest("c1").unwrap_err(),
            JoinError::IngestBusy("c1".into())
        );
        r.end_ingest(
            &call,
            Session::new(CallInfo::default(), SessionLimits::default()),
        );
        let (_, parked) = r.start_ingest("c1").unwrap();
        assert!(parked.is_some());
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
    fn a_full_subscriber_is_dropped_not_waited_for() {
        let r = Registry::new(10, 10, Duration::from_secs(30));
        let (call, _, mut slow) = r.subscribe("c", 1).unwrap();
        let (_, _, mut fast) = r.subscribe("c", 8).unwrap();
        let frame: Frame = Arc::from("x");
        assert_eq!(call.broadcast(&frame), 0);
        let _ = fast.try_recv();
        assert_eq!(call.broadcast(&frame), 1, "the slow subscriber is dropped");
        assert_eq!(call.subscriber_count(), 1);
        assert!(slow.try_recv().is_ok());
        assert!(slow.try_recv().is_err(), "then its channel is closed");
    }

    #[test]
    fn reap_keeps_calls_in_grace() {
        let r = Registry::new(10, 10, Duration::from_secs(30));
        let (call, _) = r.start_ingest("c").unwrap();
        r.end_ingest(
            &call,
            Session::new(CallInfo::default(), SessionLimits::default()),
        );
        assert_eq!(r.reap(), 0);
        let r = Registry::new(10, 10, Duration::from_millis(0));
        let (call, _) = r.start_ingest("c").unwrap();
        r.end_ingest(
            &call,
            Session::new(CallInfo::default(), SessionLimits::default()),
        );
        assert_eq!(r.reap(), 1);
        assert!(r.is_empty());
    }
}
