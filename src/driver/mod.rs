//! One call's pipeline, pure: a client frame and the time it arrived in; everything that
//! follows out — the `ready` frame, error replies, the decisions, card frames, the store
//! records (call started and ended, exposures, feedback) and whether the connection should
//! close.
//!
//! The live ingest socket (`server::ingest`), the demo (`server::demo`), `cuedeck replay`,
//! `cuedeck simulate` and the session benchmark all run calls through [`CallDriver`], so
//! "replay decides exactly as the live server" holds by construction: they differ only in
//! the [`Host`] they pass (where wall-clock time, display ids and the decision latency come
//! from, and whether a `start` may join its call) and in what they do with the [`Output`].
//!
//! No IO, no clock read, no tokio: [`SystemHost`] is the one host that reads the clock.

#![warn(missing_docs)]

use std::collections::VecDeque;
use std::sync::Arc;

use crate::engine::Engine;
use crate::protocol::adapters::{Adapter, Kind};
use crate::protocol::{
    self, CardMsg, ClientMsg, ErrorCode, Feedback, ServerMsg, Start, Transcript,
};
use crate::rate::TokenBucket;
use crate::session::{CallInfo, Decision, Session, SessionLimits, Utterance};
use crate::store::{CallRow, ExposureRow, FeedbackRow, Record};
use crate::timestamp::Timestamp;

mod system;
#[cfg(test)]
mod tests;

pub use system::SystemHost;

/// What the driver asks of whoever runs it: everything that is not a pure function of the
/// messages.
pub trait Host {
    /// Wall-clock time now: exposure, feedback and call timestamps.
    fn now(&mut self) -> Timestamp;
    /// A new display id for a decision logged at `now`; ids of one call sort in decision
    /// order.
    fn display_id(&mut self, now: Timestamp) -> String;
    /// Microseconds from the frame's arrival to this decision.
    fn engine_us(&mut self) -> u64;
    /// May this `start` begin (or resume) its call? The default admits every call as new.
    fn admit(&mut self, start: &Start) -> Admission {
        let _ = start;
        Admission::New
    }
    /// Was `display_id` shown on this call by an earlier connection? (Feedback is taken
    /// only for displays of its call.) The default knows of none.
    fn shown_on_call(&mut self, display_id: &str) -> bool {
        let _ = display_id;
        false
    }
}

/// The host's answer to a `start`.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per call start; boxing the parked call would only add an allocation"
)]
pub enum Admission {
    /// A new call.
    New,
    /// A call an earlier connection left within its grace period.
    Resume(Parked),
    /// Another connection still holds the call and was asked to let go: the driver keeps
    /// the `start` (and the rest of its frame) until [`CallDriver::admitted`].
    Wait,
    /// Not admitted.
    Refuse(Refusal),
}

/// Why a `start` was refused; sent to the client as an error frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error frame's `code`.
    pub code: ErrorCode,
    /// What the client is told, naming the limit or the conflict.
    pub message: String,
}

/// How a driver behaves; the same for every call of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// Bounds on the call's memory.
    pub session: SessionLimits,
    /// Error replies in a row after which the connection is closed (policy violation).
    pub max_errors_in_a_row: u32,
    /// Echo each transcript message back as a `transcript` frame (the demo viewer shows
    /// the conversation with its cards).
    pub echo_transcript: bool,
    /// Feedback messages a second (bursts of twice that); over it: `limit`. 0: no limit
    /// (a recording has no arrival times to rate).
    pub feedback_per_second: u32,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            session: SessionLimits::default(),
            max_errors_in_a_row: u32::MAX,
            echo_transcript: false,
            feedback_per_second: 0,
        }
    }
}

/// A frame for the client that sent the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The `ready` frame answering a `start`.
    Ready(String),
    /// A bad message; the connection stays open (until too many come in a row).
    Error {
        /// The error frame's `code`.
        code: ErrorCode,
        /// What was wrong, and where (field, line, column).
        message: String,
    },
    /// A shown card; also for the call's subscribers.
    Card {
        /// The decision's display id (feedback names it).
        display_id: String,
        /// The card frame.
        frame: Arc<str>,
    },
    /// A transcript line echoed back ([`DriverConfig::echo_transcript`]).
    Transcript(String),
}

impl Reply {
    /// The frame's JSON text.
    pub fn to_json(&self) -> String {
        match self {
            Reply::Ready(json) | Reply::Transcript(json) => json.clone(),
            Reply::Card { frame, .. } => frame.to_string(),
            Reply::Error { code, message } => ServerMsg::Error {
                code: *code,
                message,
            }
            .to_json(),
        }
    }
}

/// Why the connection should close after this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The client sent `end`.
    Ended,
    /// [`DriverConfig::max_errors_in_a_row`] bad messages in a row.
    TooManyErrors,
}

/// What a text frame decoded to, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// The message type, as counted by `cuedeck_messages_total{type}`.
    pub kind: Kind,
    /// Accepted, but carried nothing for the engine (a provider's control message).
    pub ignored: bool,
    /// Transcripts whose provider label was not mapped to a role.
    pub unmapped_speakers: u32,
}

/// Everything one frame caused, in order. Reused across frames: [`Output::clear`].
#[derive(Debug, Default)]
pub struct Output {
    /// The decoded frame; `None` when it was not a valid message (an error reply says why)
    /// or was handed over already decoded.
    pub frame: Option<FrameInfo>,
    /// Frames for the sender, in order.
    pub replies: Vec<Reply>,
    /// Store writes, in order. A caller queues them before sending the card replies, so a
    /// shown card always has its exposure row.
    pub records: Vec<Record>,
    /// Every decision, shown or suppressed, in decision order.
    pub decisions: Vec<Decision>,
    /// The transcript text each decision was made on (parallel to `decisions`).
    pub texts: Vec<Arc<str>>,
    /// Set when the connection should close after this frame.
    pub close: Option<Close>,
    /// The `start` waits for another connection to let go of its call: call
    /// [`CallDriver::admitted`] once it has (or after a timeout).
    pub waiting: bool,
}

impl Output {
    /// Empties the output for the next frame, keeping its allocations.
    pub fn clear(&mut self) {
        self.frame = None;
        self.replies.clear();
        self.records.clear();
        self.decisions.clear();
        self.texts.clear();
        self.close = None;
        self.waiting = false;
    }

    /// Error replies in this output.
    pub fn errors(&self) -> usize {
        self.replies
            .iter()
            .filter(|r| matches!(r, Reply::Error { .. }))
            .count()
    }
}

/// What handling one frame needs besides the driver: the engine deciding it, its arrival
/// time, the host and the output it adds to.
struct Ctx<'a, H> {
    engine: &'a Engine,
    received_ms: Option<u64>,
    host: &'a mut H,
    out: &'a mut Output,
}

/// A started call: its `start` message and session.
#[derive(Debug)]
struct Live {
    start: Start,
    session: Session,
    /// Arrival time of the `start` (ms since the connection opened): the call clock's zero
    /// for messages without `t_ms`.
    started_ms: u64,
    clock: CallClock,
    /// Display ids of the cards shown on this connection, newest last (feedback must name
    /// one of them, or one the host knows from an earlier connection).
    shown: VecDeque<Box<str>>,
    /// The feedback rules of this connection.
    feedback: FeedbackGate,
}

/// The rules feedback passes on either socket (ingest or panel): it names a card shown on
/// its call, and one socket sends at most `rate` a second (bursts of twice that). It does
/// not reset a socket's count of errors in a row (else it could hold a bad client open).
#[derive(Debug, Clone, Copy)]
pub struct FeedbackGate {
    rate: u32,
    bucket: TokenBucket,
}

impl FeedbackGate {
    /// The gate of one socket; a rate of 0 does not limit.
    pub fn new(rate: u32) -> FeedbackGate {
        FeedbackGate {
            rate,
            bucket: TokenBucket::new(rate, rate.saturating_mul(2)),
        }
    }

    /// The feedback as the store row logged at `ts`, or why it is refused. `shown`: its
    /// display id is a card shown on the call; `now_ms`: the socket's clock (`None`, a
    /// recording: not rated).
    pub fn admit(
        &mut self,
        f: Feedback,
        shown: bool,
        now_ms: Option<u64>,
        ts: Timestamp,
    ) -> Result<FeedbackRow, Refusal> {
        if !shown {
            return Err(Refusal {
                code: ErrorCode::BadMessage,
                message: format!("`display_id` {:?} was not shown on this call", f.display_id),
            });
        }
        if now_ms.is_some_and(|now| !self.bucket.take(now)) {
            return Err(Refusal {
                code: ErrorCode::Limit,
                message: format!("more than {} feedback messages a second", self.rate),
            });
        }
        Ok(FeedbackRow {
            display_id: f.display_id,
            ts,
            action: f.action.as_str().to_string(),
        })
    }
}

/// Display ids remembered per connection for feedback checks; far above any deck budget.
const SHOWN_KEPT: usize = 1024;

/// The call clock: never goes backwards. A resumed stream whose clock restarts lower is
/// shifted by a constant offset so that its first message continues at the last call time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CallClock {
    /// The latest call time used.
    last: u64,
    /// Added to the stream's own times (a resumed stream that restarted its clock).
    offset: u64,
    /// Resumed and no message yet: the first one sets `offset`.
    resumed: bool,
}

impl CallClock {
    /// The call time of a message whose stream time is `raw`.
    fn time(&mut self, raw: u64) -> u64 {
        if std::mem::take(&mut self.resumed) && raw < self.last {
            self.offset = self.last - raw;
        }
        self.last = raw.saturating_add(self.offset).max(self.last);
        self.last
    }
}

/// A call between connections: its session and clock, kept by the host for a reconnect.
#[derive(Debug)]
pub struct Parked {
    /// Segments, cooldowns, budgets and arms so far.
    pub session: Session,
    /// The last call time: a resumed stream continues from it.
    last_t_ms: u64,
}

/// A call that ended (its connection closed): its state to park for a reconnect and the
/// record that logs the end.
#[derive(Debug)]
pub struct Finished {
    /// What a reconnect within the grace period resumes.
    pub parked: Parked,
    /// [`Record::CallEnded`], stamped by the host.
    pub record: Record,
}

/// One connection's call, from `start` to `end`.
#[derive(Debug)]
pub struct CallDriver {
    config: DriverConfig,
    /// Turns the provider's frames into native messages.
    adapter: Adapter,
    live: Option<Live>,
    /// Error replies since the last accepted message.
    errors_in_a_row: u32,
    /// `end` was received: later messages are not part of the call.
    ended: bool,
    /// A `start` waiting for its call to be let go of, with what followed it in its frame.
    pending: Option<Pending>,
}

/// A `start` the host asked to wait ([`Admission::Wait`]).
#[derive(Debug)]
struct Pending {
    start: Start,
    received_ms: Option<u64>,
    /// The messages after the `start` in its frame.
    rest: Vec<ClientMsg>,
}

impl CallDriver {
    /// A driver reading text frames through `adapter` (`?format=`).
    pub fn new(config: DriverConfig, adapter: Adapter) -> CallDriver {
        CallDriver {
            adapter,
            config,
            live: None,
            errors_in_a_row: 0,
            ended: false,
            pending: None,
        }
    }

    /// The call's id, once started.
    pub fn call_id(&self) -> Option<&str> {
        self.live.as_ref().map(|l| l.start.call_id.as_str())
    }

    /// The call's session, once started.
    pub fn session(&self) -> Option<&Session> {
        self.live.as_ref().map(|l| &l.session)
    }

    /// `end` was received.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Handles one text frame. `received_ms` is its arrival time in ms since the connection
    /// opened, `None` for a recording (a message without `t_ms` then keeps the previous
    /// call time).
    pub fn on_text(
        &mut self,
        engine: &Engine,
        text: &str,
        received_ms: Option<u64>,
        host: &mut impl Host,
        out: &mut Output,
    ) {
        match self.adapter.decode(text) {
            Err(e) => self.error(e.code, e.message, out),
            Ok(decoded) => {
                let ignored = decoded.ignored();
                out.frame = Some(FrameInfo {
                    kind: decoded.message_kind(),
                    ignored,
                    unmapped_speakers: decoded.unmapped_speakers,
                });
                if ignored {
                    self.errors_in_a_row = 0; // a provider control message: accepted
                }
                let mut cx = Ctx {
                    engine,
                    received_ms,
                    host,
                    out: &mut *out,
                };
                let mut messages = decoded.messages.into_iter();
                while let Some(msg) = messages.next() {
                    let is_start = matches!(msg, ClientMsg::Start(_));
                    self.message(msg, &mut cx);
                    if let Some(pending) = self.pending.as_mut() {
                        pending.rest.extend(messages);
                        break;
                    }
                    if is_start && self.live.is_none() {
                        break; // the start was refused: the rest of the frame has no call
                    }
                }
            }
        }
        self.check_close(out);
    }

    /// Handles one message already decoded (the demo decodes to pace its lines).
    pub fn on_message(
        &mut self,
        engine: &Engine,
        msg: ClientMsg,
        received_ms: Option<u64>,
        host: &mut impl Host,
        out: &mut Output,
    ) {
        let mut cx = Ctx {
            engine,
            received_ms,
            host,
            out: &mut *out,
        };
        self.message(msg, &mut cx);
        self.check_close(out);
    }

    /// The call a waiting `start` asked for was let go of (or the wait timed out): begin it
    /// as the host now admits it, then handle the rest of the `start`'s frame.
    pub fn admitted(
        &mut self,
        engine: &Engine,
        admission: Admission,
        host: &mut impl Host,
        out: &mut Output,
    ) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let mut cx = Ctx {
            engine,
            received_ms: pending.received_ms,
            host,
            out: &mut *out,
        };
        let parked = match admission {
            Admission::New | Admission::Wait => None,
            Admission::Resume(parked) => Some(parked),
            Admission::Refuse(refusal) => {
                self.error(refusal.code, refusal.message, cx.out);
                return self.check_close(out);
            }
        };
        self.begin(pending.start, parked, &mut cx);
        for msg in pending.rest {
            self.message(msg, &mut cx);
        }
        self.check_close(out);
    }

    /// A binary frame: not part of the protocol.
    pub fn on_binary(&mut self, out: &mut Output) {
        self.error(
            ErrorCode::BadMessage,
            "binary frames are not supported: send JSON text frames".into(),
            out,
        );
        self.check_close(out);
    }

    /// The connection is over: the session to park and the record of the call's end;
    /// `None` when the call never started.
    pub fn finish(self, host: &mut impl Host) -> Option<Finished> {
        let live = self.live?;
        let record = Record::CallEnded {
            call_id: live.start.call_id,
            ended_at: host.now(),
        };
        Some(Finished {
            parked: Parked {
                session: live.session,
                last_t_ms: live.clock.last,
            },
            record,
        })
    }

    fn message<H: Host>(&mut self, msg: ClientMsg, cx: &mut Ctx<'_, H>) {
        if self.ended {
            return;
        }
        match msg {
            ClientMsg::Start(start) => self.start(start, cx),
            ClientMsg::Transcript(t) => self.transcript(t, cx),
            ClientMsg::Feedback(f) => self.feedback(f, cx),
            ClientMsg::End(_) => {
                if self.live.is_none() {
                    let message = "`end` before `start`".into();
                    return self.error(ErrorCode::Protocol, message, cx.out);
                }
                self.errors_in_a_row = 0;
                self.ended = true;
            }
        }
    }

    fn start<H: Host>(&mut self, start: Start, cx: &mut Ctx<'_, H>) {
        if self.live.is_some() {
            let message = "a second `start` on this connection".into();
            return self.error(ErrorCode::Protocol, message, cx.out);
        }
        let parked = match cx.host.admit(&start) {
            Admission::New => None,
            Admission::Resume(parked) => Some(parked),
            Admission::Refuse(refusal) => {
                return self.error(refusal.code, refusal.message, cx.out);
            }
            Admission::Wait => {
                let received_ms = cx.received_ms;
                self.pending = Some(Pending {
                    start,
                    received_ms,
                    rest: Vec::new(),
                });
                return;
            }
        };
        self.begin(start, parked, cx);
    }

    /// Begins (or resumes) the call of an admitted `start`.
    fn begin<H: Host>(&mut self, start: Start, parked: Option<Parked>, cx: &mut Ctx<'_, H>) {
        self.errors_in_a_row = 0;
        let context = start.call_context();
        let info = CallInfo {
            call_id: start.call_id.clone(),
            deal_id: start.deal_id.clone(),
            rep_id: start.rep_id.clone(),
            context: context.clone(),
        };
        let (session, clock) = match parked {
            // The latest start says who the call is for from now on.
            Some(mut p) => {
                p.session.update_info(info);
                let clock = CallClock {
                    last: p.last_t_ms,
                    offset: 0,
                    resumed: true,
                };
                (p.session, clock)
            }
            None => (
                Session::new(info, self.config.session),
                CallClock::default(),
            ),
        };
        let library = cx.engine.library();
        cx.out.replies.push(Reply::Ready(
            ServerMsg::Ready {
                call_id: &start.call_id,
                library_version: library.version(),
                cards: library.cards().len(),
                max_visible: library.deck().max_visible,
            }
            .to_json(),
        ));
        // Sorted keys: the stored context reads the same for the same call.
        let context: std::collections::BTreeMap<_, _> = context.0.into_iter().collect();
        cx.out.records.push(Record::CallStarted(CallRow {
            call_id: start.call_id.clone(),
            deal_id: start.deal_id.clone(),
            rep_id: start.rep_id.clone(),
            context: serde_json::to_string(&context).unwrap_or_else(|_| "{}".into()),
            started_at: cx.host.now(),
        }));
        self.live = Some(Live {
            start,
            session,
            started_ms: cx.received_ms.unwrap_or(0),
            clock,
            shown: VecDeque::new(),
            feedback: FeedbackGate::new(self.config.feedback_per_second),
        });
    }

    fn transcript<H: Host>(&mut self, t: Transcript, cx: &mut Ctx<'_, H>) {
        let Some(live) = self.live.as_mut() else {
            let message = "`transcript` before `start`".into();
            return self.error(ErrorCode::Protocol, message, cx.out);
        };
        self.errors_in_a_row = 0;
        // The message's own time, else its arrival on the call clock, else (a recording)
        // the previous message's.
        let raw = t.t_ms.unwrap_or(match cx.received_ms {
            Some(ms) => ms.saturating_sub(live.started_ms),
            None => live.clock.last.saturating_sub(live.clock.offset),
        });
        let t_ms = live.clock.time(raw);
        let speaker = protocol::resolve_speaker(&live.start.speakers, &t);
        if self.config.echo_transcript {
            let line = ServerMsg::Transcript {
                segment_id: t.segment_id.as_deref().unwrap_or_default(),
                speaker,
                text: &t.text,
                is_final: t.is_final,
                t_ms,
            };
            cx.out.replies.push(Reply::Transcript(line.to_json()));
        }
        let u = Utterance {
            segment_id: t.segment_id.as_deref(),
            speaker,
            text: &t.text,
            is_final: t.is_final,
            t_ms,
        };
        let first = cx.out.decisions.len();
        live.session
            .on_utterance(cx.engine, &u, &mut cx.out.decisions);
        if cx.out.decisions.len() > first {
            log_decisions(live, first, Arc::from(t.text), cx);
        }
    }

    /// Feedback passes the connection's [`FeedbackGate`].
    fn feedback<H: Host>(&mut self, f: Feedback, cx: &mut Ctx<'_, H>) {
        let Some(live) = self.live.as_mut() else {
            let message = "`feedback` before `start`".into();
            return self.error(ErrorCode::Protocol, message, cx.out);
        };
        let shown = live.shown.iter().any(|id| **id == *f.display_id)
            || cx.host.shown_on_call(&f.display_id);
        let ts = cx.host.now();
        match live.feedback.admit(f, shown, cx.received_ms, ts) {
            Ok(row) => cx.out.records.push(Record::Feedback(row)),
            Err(refusal) => self.error(refusal.code, refusal.message, cx.out),
        }
    }

    fn error(&mut self, code: ErrorCode, message: String, out: &mut Output) {
        self.errors_in_a_row = self.errors_in_a_row.saturating_add(1);
        out.replies.push(Reply::Error { code, message });
    }

    /// What the frame leaves the connection to do: wait for a `start`'s call to be let go
    /// of, or close.
    fn check_close(&self, out: &mut Output) {
        out.waiting = self.pending.is_some();
        if self.errors_in_a_row >= self.config.max_errors_in_a_row {
            out.close = Some(Close::TooManyErrors);
        } else if self.ended {
            out.close = Some(Close::Ended);
        }
    }
}

/// The card frames and exposure rows of the decisions from `first` on, all made on `text`;
/// each stamped by the host.
fn log_decisions<H: Host>(live: &mut Live, first: usize, text: Arc<str>, cx: &mut Ctx<'_, H>) {
    let version = cx.engine.library().version();
    let info = live.session.info();
    let out = &mut *cx.out;
    for d in &out.decisions[first..] {
        let now = cx.host.now();
        let display_id = cx.host.display_id(now);
        let engine_us = cx.host.engine_us();
        if d.shown() {
            let frame = ServerMsg::Card(CardMsg::new(&display_id, d, engine_us)).to_json();
            out.replies.push(Reply::Card {
                display_id: display_id.clone(),
                frame: Arc::from(frame),
            });
            if live.shown.len() >= SHOWN_KEPT {
                live.shown.pop_front();
            }
            live.shown.push_back(display_id.as_str().into());
        }
        let row = ExposureRow::from_decision(info, d, display_id, now, engine_us, version);
        out.records.push(Record::Exposure(row));
        out.texts.push(text.clone());
    }
}
