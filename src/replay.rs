//! `cuedeck replay`: runs a recorded call through the same [`Session`] the server uses,
//! with the clock taken from `t_ms`. Native JSON lines are read as they are; a provider's
//! JSON lines go through the same [`Adapter`] as a live `?format=` stream; a Harper Valley
//! Bank transcript is converted to native lines first ([`crate::convert`]).

use std::sync::Arc;

use serde::Serialize;

use crate::engine::Engine;
use crate::protocol::adapters::{Adapter, CallSetup, Format};
use crate::protocol::{self, ClientMsg, Start};
use crate::session::{CallInfo, Decision, Session, SessionLimits, Utterance};

/// A problem in a recorded call, with its line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ReplayError {
    pub line: usize,
    pub message: String,
}

/// One decision as `replay --json` prints it (SPEC §7).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DecisionLine<'a> {
    pub call_id: &'a str,
    pub t_ms: u64,
    pub card_id: &'a str,
    pub variant: Option<&'a str>,
    pub shown: bool,
    pub reason: &'static str,
    pub phrase: &'a str,
    pub speaker: &'static str,
    pub segment_id: &'a str,
}

impl<'a> DecisionLine<'a> {
    pub fn new(call_id: &'a str, d: &'a Decision) -> Self {
        DecisionLine {
            call_id,
            t_ms: d.t_ms,
            card_id: &d.card.id,
            variant: d.variant_id(),
            shown: d.shown(),
            reason: d.reason.as_str(),
            phrase: &d.phrase,
            speaker: d.speaker.as_str(),
            segment_id: &d.segment_id,
        }
    }
}

/// The result of replaying one call.
#[derive(Debug)]
pub struct Replayed {
    pub info: CallInfo,
    pub decisions: Vec<Decision>,
    /// The transcript text each decision was made on (parallel to `decisions`).
    pub texts: Vec<Arc<str>>,
    /// Frames (lines) decoded.
    pub messages: usize,
}

/// What `cuedeck replay --format` reads: a live stream format, or a Harper Valley Bank
/// transcript (replay only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Stream(Format),
    Hvb,
}

impl InputFormat {
    /// Every input format: the stream formats, then `hvb`.
    pub const ALL: [InputFormat; Format::ALL.len() + 1] = {
        let mut all = [InputFormat::Hvb; Format::ALL.len() + 1];
        let mut i = 0;
        while i < Format::ALL.len() {
            all[i] = InputFormat::Stream(Format::ALL[i]);
            i += 1;
        }
        all
    };

    /// The name `--format` takes: the stream format's name, or `hvb`.
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Stream(format) => format.as_str(),
            InputFormat::Hvb => "hvb",
        }
    }
}

impl clap::ValueEnum for InputFormat {
    fn value_variants<'a>() -> &'a [InputFormat] {
        &InputFormat::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Drives one call's native messages through a [`Session`] exactly as the server does,
/// with the clock taken from `t_ms` (a message without it keeps the previous clock: a
/// recording has no receive times).
pub struct Replayer<'e> {
    engine: &'e Engine,
    start: Option<Start>,
    session: Option<Session>,
    clock: u64,
    ended: bool,
    decisions: Vec<Decision>,
    texts: Vec<Arc<str>>,
}

impl<'e> Replayer<'e> {
    pub fn new(engine: &'e Engine) -> Self {
        Replayer {
            engine,
            start: None,
            session: None,
            clock: 0,
            ended: false,
            decisions: Vec::new(),
            texts: Vec::new(),
        }
    }

    /// `end` was seen: later messages are not part of the call.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Handles one message; the error is what the server would answer with.
    pub fn message(&mut self, msg: ClientMsg) -> Result<(), String> {
        if self.ended {
            return Ok(());
        }
        match msg {
            ClientMsg::Start(s) => {
                if self.start.is_some() {
                    return Err("a second `start` message".into());
                }
                let info = CallInfo {
                    call_id: s.call_id.clone(),
                    deal_id: s.deal_id.clone(),
                    rep_id: s.rep_id.clone(),
                    context: s.call_context(),
                };
                self.session = Some(Session::new(info, SessionLimits::default()));
                self.start = Some(s);
            }
            ClientMsg::Transcript(t) => {
                let (Some(s), Some(session)) = (&self.start, self.session.as_mut()) else {
                    return Err("`transcript` before `start`".into());
                };
                self.clock = t.t_ms.unwrap_or(self.clock);
                let u = Utterance {
                    segment_id: t.segment_id.as_deref(),
                    speaker: protocol::resolve_speaker(&s.speakers, &t),
                    text: &t.text,
                    is_final: t.is_final,
                    t_ms: self.clock,
                };
                let before = self.decisions.len();
                session.on_utterance(self.engine, &u, &mut self.decisions);
                if self.decisions.len() > before {
                    let text: Arc<str> = Arc::from(t.text.as_str());
                    self.texts
                        .extend(std::iter::repeat_n(text, self.decisions.len() - before));
                }
            }
            ClientMsg::Feedback(_) => {}
            ClientMsg::End(_) => self.ended = true,
        }
        Ok(())
    }

    /// The call's decisions; an error when the call never started.
    pub fn finish(self, messages: usize) -> Result<Replayed, String> {
        let Some(session) = self.session else {
            return Err("no `start` message".into());
        };
        Ok(Replayed {
            info: session.info().clone(),
            decisions: self.decisions,
            texts: self.texts,
            messages,
        })
    }
}

/// Replays one call's native JSON lines.
pub fn replay_native(engine: &Engine, text: &str) -> Result<Replayed, ReplayError> {
    replay_stream(
        engine,
        Adapter::new(Format::Native, CallSetup::default()),
        text,
    )
}

/// Replays one call's JSON lines (one provider or native message per line) through
/// `adapter`, as the server would receive them. Lines after an `end` are not read.
pub fn replay_stream(
    engine: &Engine,
    mut adapter: Adapter,
    text: &str,
) -> Result<Replayed, ReplayError> {
    let mut replayer = Replayer::new(engine);
    let mut messages = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| ReplayError {
            line: i + 1,
            message,
        };
        let out = adapter.decode(line).map_err(|e| err(e.message))?;
        messages += 1;
        for msg in out.messages {
            replayer.message(msg).map_err(err)?;
        }
        if replayer.ended() {
            break;
        }
    }
    replayer
        .finish(messages)
        .map_err(|message| ReplayError { line: 1, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::Library;

    fn engine() -> Engine {
        let yaml =
            "id: price\ntitle: P\ncategory: objection\nbody: b\ntriggers: { any: [price] }\n";
        Engine::new(Library::from_sources(&[("c.yaml", yaml)], "t").unwrap()).unwrap()
    }

    #[test]
    fn replays_a_call_and_maps_channels() {
        let call = r#"{"type":"start","call_id":"c1","speakers":{"0":"rep","1":"prospect"}}
{"type":"transcript","channel":0,"text":"our price","is_final":true,"t_ms":1000}

{"type":"transcript","channel":1,"text":"the price","is_final":false,"t_ms":2000}
{"type":"transcript","channel":1,"text":"the price is high","is_final":true,"t_ms":2500}
{"type":"end"}
{"type":"transcript","channel":1,"text":"price after end","is_final":true,"t_ms":9000}
"#;
        let r = replay_native(&engine(), call).unwrap();
        assert_eq!(r.messages, 5);
        let lines: Vec<String> = r
            .decisions
            .iter()
            .map(|d| serde_json::to_string(&DecisionLine::new(&r.info.call_id, d)).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                r#"{"call_id":"c1","t_ms":2000,"card_id":"price","variant":null,"shown":true,"reason":"shown","phrase":"price","speaker":"prospect","segment_id":"auto-2"}"#
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = replay_native(
            &engine(),
            "{\"type\":\"transcript\",\"speaker\":\"rep\",\"text\":\"x\"}\n",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "line 1: `transcript` before `start`");
        let e = replay_native(
            &engine(),
            "{\"type\":\"start\",\"call_id\":\"c\"}\n{oops}\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 2: line 1 column 2: invalid JSON"),
            "{e}"
        );
    }
}
