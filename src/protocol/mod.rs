//! The wire protocol: native client messages (docs/protocol.md#client-messages), their
//! decoding with precise error messages, and the server messages. Pure: no IO.
//!
//! Decoding reads the `type` tag first, then decodes the message as its own struct with
//! unknown fields rejected, so an error names the field and its line and column
//! (`line 1 column 17: unknown field \`txt\`, expected one of …`).

pub mod adapters;

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::library::{Link, Speaker};
use crate::rules::CallContext;
use adapters::{Format, Kind};

/// Longest id (call, deal, rep, segment, display) accepted.
pub const MAX_ID_LEN: usize = 128;

/// A context value: one string or a list of strings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ContextValue {
    One(String),
    Many(Vec<String>),
}

/// A channel or diarization label: providers write numbers or strings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Label {
    Int(i64),
    Str(String),
}

impl Label {
    pub fn as_key(&self) -> String {
        match self {
            Label::Int(i) => i.to_string(),
            Label::Str(s) => s.clone(),
        }
    }
}

/// `{"type":"start", …}`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Start {
    #[serde(rename = "type", default)]
    _type: IgnoredAny,
    pub call_id: String,
    #[serde(default)]
    pub deal_id: Option<String>,
    #[serde(default)]
    pub rep_id: Option<String>,
    #[serde(default)]
    pub context: BTreeMap<String, ContextValue>,
    /// Provider channel or diarization label → role.
    #[serde(default)]
    pub speakers: BTreeMap<String, Speaker>,
}

impl Start {
    pub fn new(call_id: &str) -> Start {
        Start {
            _type: IgnoredAny,
            call_id: call_id.to_string(),
            deal_id: None,
            rep_id: None,
            context: BTreeMap::new(),
            speakers: BTreeMap::new(),
        }
    }

    /// The targeting context, every value as a list.
    pub fn call_context(&self) -> CallContext {
        CallContext(
            self.context
                .iter()
                .map(|(k, v)| {
                    let values = match v {
                        ContextValue::One(s) => vec![s.clone()],
                        ContextValue::Many(list) => list.clone(),
                    };
                    (k.clone(), values)
                })
                .collect(),
        )
    }
}

/// `{"type":"transcript", …}`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Transcript {
    #[serde(rename = "type", default)]
    _type: IgnoredAny,
    #[serde(default)]
    pub segment_id: Option<String>,
    #[serde(default)]
    pub speaker: Option<Speaker>,
    #[serde(default)]
    pub channel: Option<Label>,
    pub text: String,
    #[serde(default)]
    pub is_final: bool,
    #[serde(default)]
    pub t_ms: Option<u64>,
}

impl Transcript {
    pub fn new(
        segment_id: Option<&str>,
        speaker: Speaker,
        text: &str,
        is_final: bool,
        t_ms: Option<u64>,
    ) -> Self {
        Transcript {
            _type: IgnoredAny,
            segment_id: segment_id.map(str::to_string),
            speaker: Some(speaker),
            channel: None,
            text: text.to_string(),
            is_final,
            t_ms,
        }
    }
}

/// What the rep did with a card.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackAction {
    Clicked,
    Dismissed,
    Useful,
    NotUseful,
}

impl FeedbackAction {
    pub fn as_str(self) -> &'static str {
        crate::names::name_of(&self)
    }
}

/// `{"type":"feedback", …}`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    #[serde(rename = "type", default)]
    _type: IgnoredAny,
    pub display_id: String,
    pub action: FeedbackAction,
}

/// `{"type":"end", …}`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct End {
    #[serde(rename = "type", default)]
    _type: IgnoredAny,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A decoded client message.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMsg {
    Start(Start),
    Transcript(Transcript),
    Feedback(Feedback),
    End(End),
}

impl ClientMsg {
    /// The native `type`, for metrics.
    pub fn kind(&self) -> &'static str {
        Kind::of(self).as_str()
    }
}

/// A message that could not be decoded; the text is sent back in an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub message: String,
}

fn json_error(e: &serde_json::Error) -> DecodeError {
    let text = e.to_string();
    let bare = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let what = if e.is_syntax() || e.is_eof() {
        "invalid JSON: "
    } else {
        ""
    };
    DecodeError {
        message: format!("line {} column {}: {what}{bare}", e.line(), e.column()),
    }
}

fn invalid(message: impl Into<String>) -> DecodeError {
    DecodeError {
        message: message.into(),
    }
}

/// Whether `value` may be a key (call, deal, rep, display, segment id): 1 to
/// [`MAX_ID_LEN`] bytes without control characters. Keys end up in the store (PostgreSQL
/// refuses a NUL in text for good), logs and CSV reports.
pub fn valid_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_ID_LEN && !value.chars().any(char::is_control)
}

fn check_id(field: &str, value: &str) -> Result<(), DecodeError> {
    if !valid_id(value) {
        return Err(invalid(format!(
            "`{field}` must be 1 to {MAX_ID_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

/// Decodes one native JSON text frame.
pub fn decode(text: &str) -> Result<ClientMsg, DecodeError> {
    #[derive(Deserialize)]
    struct Tag<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    let tag: Tag<'_> = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    let Some(kind) = tag.kind else {
        return Err(invalid("missing field `type`"));
    };
    let kind = Kind::named(Format::Native, &kind).map_err(|expected| {
        invalid(format!(
            "unknown message type `{kind}`, expected one of {expected}"
        ))
    })?;
    let msg = match kind {
        Kind::Start => ClientMsg::Start(serde_json::from_str(text).map_err(|e| json_error(&e))?),
        Kind::Transcript => {
            ClientMsg::Transcript(serde_json::from_str(text).map_err(|e| json_error(&e))?)
        }
        Kind::Feedback => {
            ClientMsg::Feedback(serde_json::from_str(text).map_err(|e| json_error(&e))?)
        }
        Kind::End => ClientMsg::End(serde_json::from_str(text).map_err(|e| json_error(&e))?),
        // `named` finds the native types only.
        provider => {
            return Err(invalid(format!(
                "`{}` is not a native message type",
                provider.as_str()
            )));
        }
    };
    match &msg {
        ClientMsg::Start(s) => {
            check_id("call_id", &s.call_id)?;
            if let Some(d) = &s.deal_id {
                check_id("deal_id", d)?;
            }
            if let Some(r) = &s.rep_id {
                check_id("rep_id", r)?;
            }
        }
        ClientMsg::Transcript(t) => {
            if let Some(seg) = &t.segment_id {
                check_id("segment_id", seg)?;
            }
            if t.speaker.is_none() && t.channel.is_none() {
                return Err(invalid(
                    "missing field `speaker` (or `channel` mapped by the start message's `speakers`)",
                ));
            }
        }
        ClientMsg::Feedback(f) => check_id("display_id", &f.display_id)?,
        ClientMsg::End(_) => {}
    }
    Ok(msg)
}

/// Error codes of `error` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadMessage,
    Protocol,
    Unauthorized,
    Limit,
    Internal,
}

/// The phrase that triggered a card.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TriggerInfo<'a> {
    pub phrase: &'a str,
    pub speaker: Speaker,
    pub segment_id: &'a str,
    pub t_ms: u64,
}

/// A card pushed to the rep.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CardMsg<'a> {
    pub display_id: &'a str,
    pub card_id: &'a str,
    pub variant: Option<&'a str>,
    pub title: &'a str,
    pub body: &'a str,
    pub links: &'a [Link],
    pub category: &'static str,
    pub priority: u32,
    pub trigger: TriggerInfo<'a>,
    pub engine_us: u64,
}

impl<'a> CardMsg<'a> {
    /// The card frame for a shown decision.
    pub fn new(display_id: &'a str, d: &'a crate::session::Decision, engine_us: u64) -> Self {
        CardMsg {
            display_id,
            card_id: &d.card.id,
            variant: d.variant_id(),
            title: d.title(),
            body: d.body(),
            links: d.links(),
            category: d.card.category.as_str(),
            priority: d.card.priority,
            trigger: TriggerInfo {
                phrase: &d.phrase,
                speaker: d.speaker,
                segment_id: &d.segment_id,
                t_ms: d.t_ms,
            },
            engine_us,
        }
    }
}

/// Server → client messages.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg<'a> {
    Ready {
        call_id: &'a str,
        library_version: &'a str,
        cards: usize,
        max_visible: u32,
    },
    Card(CardMsg<'a>),
    /// The demo stream's transcript lines.
    Transcript {
        segment_id: &'a str,
        speaker: Speaker,
        text: &'a str,
        is_final: bool,
        t_ms: u64,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
    },
}

impl ServerMsg<'_> {
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail; fall back to a fixed error frame.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"encoding failed"}"#.to_string()
        })
    }
}

/// The role of a transcript message: its `speaker`, else its `channel` looked up in the
/// start message's `speakers` map; an unmapped channel is the prospect.
pub fn resolve_speaker(speakers: &BTreeMap<String, Speaker>, t: &Transcript) -> Speaker {
    if let Some(s) = t.speaker {
        return s;
    }
    t.channel
        .as_ref()
        .and_then(|c| speakers.get(&c.as_key()).copied())
        .unwrap_or(Speaker::Prospect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_native_message() {
        let start = decode(
            r#"{"type":"start","call_id":"c-123","deal_id":"d-9","rep_id":"r-7",
             "context":{"deal_stage":"evaluation","competitor":["acme"]},
             "speakers":{"0":"rep","1":"prospect"}}"#,
        )
        .unwrap();
        let ClientMsg::Start(s) = start else { panic!() };
        assert_eq!(s.call_id, "c-123");
        assert_eq!(s.call_context().get("deal_stage"), ["evaluation"]);
        assert_eq!(s.call_context().get("competitor"), ["acme"]);
        assert_eq!(s.speakers["0"], Speaker::Rep);

        let t = decode(
            r#"{"type":"transcript","segment_id":"s-4","speaker":"prospect","text":"the price","is_final":false,"t_ms":41250}"#,
        )
        .unwrap();
        assert_eq!(
            t,
            ClientMsg::Transcript(Transcript::new(
                Some("s-4"),
                Speaker::Prospect,
                "the price",
                false,
                Some(41250)
            ))
        );
        let f = decode(r#"{"type":"feedback","display_id":"01JD","action":"not_useful"}"#).unwrap();
        assert!(matches!(
            f,
            ClientMsg::Feedback(Feedback {
                action: FeedbackAction::NotUseful,
                ..
            })
        ));
        assert!(matches!(
            decode(r#"{"type":"end"}"#).unwrap(),
            ClientMsg::End(_)
        ));
        let ch = decode(r#"{"type":"transcript","channel":0,"text":"x"}"#).unwrap();
        let ClientMsg::Transcript(ch) = ch else {
            panic!()
        };
        assert_eq!(ch.channel.unwrap().as_key(), "0");
    }

    #[test]
    fn errors_name_the_field_and_position() {
        let e = decode(r#"{"type":"transcript","txt":"hello"}"#).unwrap_err();
        assert!(
            e.message
                .starts_with("line 1 column 26: unknown field `txt`, expected one of"),
            "{e}"
        );
        let e = decode(r#"{"type":"transcript","speaker":"prospect"}"#).unwrap_err();
        assert!(e.message.contains("missing field `text`"), "{e}");
        let e = decode(r#"{"type":"transcript","speaker":"boss","text":"x"}"#).unwrap_err();
        assert!(e.message.contains("unknown variant `boss`"), "{e}");
        let e = decode("not json").unwrap_err();
        assert!(
            e.message
                .starts_with("line 1 column 2: invalid JSON: expected"),
            "{e}"
        );
        let e = decode(r#"{"type":"hello"}"#).unwrap_err();
        assert!(e.message.contains("unknown message type `hello`"), "{e}");
        let e = decode(r#"{"call_id":"x"}"#).unwrap_err();
        assert_eq!(e.message, "missing field `type`");
        let e = decode(r#"{"type":"start","call_id":""}"#).unwrap_err();
        assert!(e.message.contains("`call_id` must be"), "{e}");
        let e = decode(r#"{"type":"transcript","text":"x"}"#).unwrap_err();
        assert!(e.message.contains("missing field `speaker`"), "{e}");
        let e = decode(r#"[1,2]"#).unwrap_err();
        assert!(e.message.contains("line 1"), "{e}");
    }

    #[test]
    fn server_messages_encode_with_type_tags() {
        let ready = ServerMsg::Ready {
            call_id: "c",
            library_version: "sha256:x",
            cards: 3,
            max_visible: 3,
        };
        assert_eq!(
            ready.to_json(),
            r#"{"type":"ready","call_id":"c","library_version":"sha256:x","cards":3,"max_visible":3}"#
        );
        let err = ServerMsg::Error {
            code: ErrorCode::BadMessage,
            message: "m",
        };
        assert_eq!(
            err.to_json(),
            r#"{"type":"error","code":"bad_message","message":"m"}"#
        );
    }
}
