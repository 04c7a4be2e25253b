//! `cuedeck replay`: runs a recorded call (native JSON lines) through the same
//! [`Session`] the server uses, with the clock taken from `t_ms`.

use serde::Serialize;

use crate::engine::Engine;
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
    pub messages: usize,
}

/// Replays one call's JSON lines. Messages without `t_ms` use the previous message's
/// clock (a recording has no receive times).
pub fn replay_native(engine: &Engine, text: &str) -> Result<Replayed, ReplayError> {
    let mut start: Option<Start> = None;
    let mut session: Option<Session> = None;
    let mut decisions = Vec::new();
    let mut messages = 0;
    let mut clock = 0u64;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| ReplayError {
            line: line_no,
            message,
        };
        let msg = protocol::decode(line).map_err(|e| err(e.message))?;
        messages += 1;
        match msg {
            ClientMsg::Start(s) => {
                if start.is_some() {
                    return Err(err("a second `start` message".into()));
                }
                let info = CallInfo {
                    call_id: s.call_id.clone(),
                    deal_id: s.deal_id.clone(),
                    rep_id: s.rep_id.clone(),
                    context: s.call_context(),
                };
                session = Some(Session::new(info, SessionLimits::default()));
                start = Some(s);
            }
            ClientMsg::Transcript(t) => {
                let (Some(s), Some(session)) = (&start, session.as_mut()) else {
                    return Err(err("`transcript` before `start`".into()));
                };
                clock = t.t_ms.unwrap_or(clock);
                let u = Utterance {
                    segment_id: t.segment_id.as_deref(),
                    speaker: protocol::resolve_speaker(&s.speakers, &t),
                    text: &t.text,
                    is_final: t.is_final,
                    t_ms: clock,
                };
                session.on_utterance(engine, &u, &mut decisions);
            }
            ClientMsg::Feedback(_) => {}
            ClientMsg::End(_) => break,
        }
    }
    let Some(session) = session else {
        return Err(ReplayError {
            line: 1,
            message: "no `start` message".into(),
        });
    };
    Ok(Replayed {
        info: session.info().clone(),
        decisions,
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
