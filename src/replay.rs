//! `cuedeck replay`: runs a recorded call through the same [`CallDriver`] the server uses,
//! with the clock taken from `t_ms`. Native JSON lines are read as they are; a provider's
//! JSON lines go through the same [`Adapter`] as a live `?format=` stream; a Harper Valley
//! Bank transcript is converted to native lines first ([`crate::convert`]).

use std::sync::Arc;

use serde::Serialize;

use crate::driver::{CallDriver, DriverConfig, Host, Output, Reply};
use crate::engine::Engine;
use crate::protocol::adapters::{Adapter, CallSetup, Format};
use crate::session::{CallInfo, Decision};
use crate::timestamp::Timestamp;

/// A problem in a recorded call, with its line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ReplayError {
    pub line: usize,
    pub message: String,
}

/// One decision as `replay --json` prints it (the fields of docs/store.md#exposures, with
/// the call clock `t_ms` for `ts`).
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

/// The host of a recorded call: a recording has no wall-clock times, display ids or
/// latencies, so they are fixed (replay prints none of them) and every call is admitted.
#[derive(Debug, Default)]
struct RecordingHost {
    decisions: u64,
}

impl Host for RecordingHost {
    fn now(&mut self) -> Timestamp {
        Timestamp::from_unix_ms(0)
    }

    fn display_id(&mut self, _now: Timestamp) -> String {
        self.decisions += 1;
        format!("replay-{}", self.decisions)
    }

    fn engine_us(&mut self) -> u64 {
        0
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
/// `adapter` and the same [`CallDriver`] the server runs, as the server would receive
/// them. The clock is the messages' `t_ms` (a message without it keeps the previous one:
/// a recording has no receive times). The first line the server would answer with an
/// error stops the replay; lines after an `end` are not read.
pub fn replay_stream(
    engine: &Engine,
    adapter: Adapter,
    text: &str,
) -> Result<Replayed, ReplayError> {
    let mut driver = CallDriver::new(DriverConfig::default(), adapter);
    let mut host = RecordingHost::default();
    let mut out = Output::default();
    let mut decisions = Vec::new();
    let mut texts = Vec::new();
    let mut messages = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.clear();
        driver.on_text(engine, line, None, &mut host, &mut out);
        if let Some(Reply::Error { message, .. }) = out
            .replies
            .iter()
            .find(|r| matches!(r, Reply::Error { .. }))
        {
            return Err(ReplayError {
                line: i + 1,
                message: message.clone(),
            });
        }
        messages += 1;
        decisions.append(&mut out.decisions);
        texts.append(&mut out.texts);
        if driver.ended() {
            break;
        }
    }
    let Some(session) = driver.session() else {
        return Err(ReplayError {
            line: 1,
            message: "no `start` message".into(),
        });
    };
    Ok(Replayed {
        info: session.info().clone(),
        decisions,
        texts,
        messages,
    })
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
