//! Input adapters: a speech-to-text provider's live messages → native client messages
//! (docs/protocol.md#provider-formats). Pure: no IO.
//!
//! An [`Adapter`] is a stateful decoder for one connection (or one recorded call): each
//! text frame goes in, the native messages it stands for come out, and the server and
//! `cuedeck replay` feed those through the same handling as native messages.
//!
//! - The first message may be a native `start` (it carries the deal, the rep, the context
//!   and the `speakers` map from the provider's label to `rep`/`prospect`). Without it, the
//!   call is set up from a [`CallSetup`] (query parameters or replay flags) at the first
//!   provider message: the `rep_channel`/`rep_speaker` label is the rep, every other label
//!   the prospect. Native `feedback` and `end` messages are accepted in every format.
//! - Each provider span is one segment (ids `dg-…`, `aai-…`, the AWS `ResultId`, `g-…`,
//!   `wl-…`); a message whose words carry several diarization speakers becomes one segment
//!   per speaker run (run `k > 0` gets `#k` appended to the id). The clock `t_ms` is the end
//!   of the span's audio, rounded to the millisecond.
//! - Messages that carry no transcript (Deepgram `Metadata`, AssemblyAI `Begin`, empty AWS
//!   results, …) produce no native message and are counted in [`AdapterStats`].
//! - A label missing from the `speakers` map is the prospect, and counted.
//! - Memory per call is bounded: a counter per channel (at most [`MAX_CHANNELS`]) and, for
//!   WhisperLive, the last partial text.
//!
//! The provider messages are read through `json::At`, a JSON value with its path, not
//! decoded into serde structs: each field is read and checked in one line with an error
//! that names its path (`missing field` followed by `channel.alternatives[0].words[0].end`,
//! or `duration` must be a number, found a string), and the checks serde cannot express
//! (not negative, a label that is a number or a string, Google's `"3.5s"` durations,
//! WhisperLive's string seconds, AssemblyAI's legacy `message_type`) stay next to the read.
//! Typed structs with `serde_path_to_error` would need a wrapper type per check and a
//! rewrite of serde's error text to keep these messages: more code than the reader.

mod assemblyai;
mod aws;
mod deepgram;
mod google;
mod json;
mod whisperlive;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::{ClientMsg, ErrorCode, MAX_ID_LEN, Start, Transcript, check_id, json_error};
use crate::library::Speaker;
use crate::names;
use json::At;

/// Channels (or channel tags) an adapter keeps a span counter for.
pub const MAX_CHANNELS: u64 = 64;

/// The input format of an ingest connection or a recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Native,
    Deepgram,
    AssemblyAi,
    Aws,
    Google,
    WhisperLive,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Native,
        Format::Deepgram,
        Format::AssemblyAi,
        Format::Aws,
        Format::Google,
        Format::WhisperLive,
    ];

    /// The name used in `?format=` and `--format`.
    pub fn as_str(self) -> &'static str {
        names::name_of(&self)
    }

    /// Every format name, comma-separated, for error messages.
    pub fn names() -> String {
        names::names::<Format>().join(", ")
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format `{0}`, expected one of {names}", names = Format::names())]
pub struct UnknownFormat(pub String);

impl std::str::FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        names::parse_name(s).map_err(|e| UnknownFormat(e.value))
    }
}

/// How a call is set up when the stream does not begin with a native `start`: the query
/// parameters of `/v1/stream` or the flags of `cuedeck replay`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallSetup {
    pub call_id: Option<String>,
    pub deal_id: Option<String>,
    pub rep_id: Option<String>,
    /// The provider label of the rep (`rep_channel` or `rep_speaker`); every other label
    /// is the prospect.
    pub rep_label: Option<String>,
}

/// The call set-up as given: the query parameters of `/v1/stream` (axum's `Query`) or the
/// flags of `cuedeck replay`. Other query parameters are left to their owners.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct SetupParams {
    pub call_id: Option<String>,
    pub deal_id: Option<String>,
    pub rep_id: Option<String>,
    pub rep_channel: Option<String>,
    pub rep_speaker: Option<String>,
}

impl SetupParams {
    /// The checked set-up: ids like a native `start` message's, at most one rep label.
    pub fn setup(self) -> Result<CallSetup, String> {
        if self.rep_channel.is_some() && self.rep_speaker.is_some() {
            return Err("give one of `rep_channel` and `rep_speaker`, once".to_string());
        }
        let setup = CallSetup {
            call_id: self.call_id,
            deal_id: self.deal_id,
            rep_id: self.rep_id,
            rep_label: self.rep_channel.or(self.rep_speaker),
        };
        setup.check()?;
        Ok(setup)
    }
}

/// Refuses a query string that percent-decoding would change silently: `form_urlencoded`
/// (and so axum's `Query`) keeps a malformed `%` escape as text and turns bytes that are
/// not UTF-8 into U+FFFD, and an id must arrive as sent or not at all.
pub fn check_encoding(query: &str) -> Result<(), String> {
    let escapes_ok = query.match_indices('%').all(|(i, _)| {
        query
            .get(i + 1..i + 3)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if escapes_ok
        && percent_encoding::percent_decode_str(query)
            .decode_utf8()
            .is_ok()
    {
        Ok(())
    } else {
        Err("the query string is not valid percent-encoded UTF-8".to_string())
    }
}

impl CallSetup {
    /// Reads `call_id`, `deal_id`, `rep_id`, `rep_channel` and `rep_speaker` from a query
    /// string (percent-decoded); other parameters are left to their owners.
    pub fn from_query(query: &str) -> Result<CallSetup, String> {
        check_encoding(query)?;
        serde_urlencoded::from_str::<SetupParams>(query)
            .map_err(|e| e.to_string())?
            .setup()
    }

    /// Checks the ids like a native `start` message's.
    pub fn check(&self) -> Result<(), String> {
        let fields = [
            ("call_id", &self.call_id),
            ("deal_id", &self.deal_id),
            ("rep_id", &self.rep_id),
            ("rep_channel", &self.rep_label),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                check_id(name, v).map_err(|e| e.message)?;
            }
        }
        Ok(())
    }

    /// The `speakers` map these settings stand for.
    pub fn speakers(&self) -> BTreeMap<String, Speaker> {
        self.rep_label
            .iter()
            .map(|l| (l.clone(), Speaker::Rep))
            .collect()
    }

    /// The `start` message these settings stand for, if they name a call.
    pub fn start(&self) -> Option<Start> {
        let call_id = self.call_id.as_deref()?;
        let mut start = Start::new(call_id);
        start.deal_id.clone_from(&self.deal_id);
        start.rep_id.clone_from(&self.rep_id);
        start.speakers = self.speakers();
        Some(start)
    }
}

/// What kind of message a frame was, for metrics; the serde name is the message's own
/// type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Kind {
    #[serde(rename = "start")]
    Start,
    #[serde(rename = "transcript")]
    Transcript,
    #[serde(rename = "feedback")]
    Feedback,
    #[serde(rename = "end")]
    End,
    #[serde(rename = "Results")]
    DeepgramResults,
    #[serde(rename = "Metadata")]
    DeepgramMetadata,
    #[serde(rename = "SpeechStarted")]
    DeepgramSpeechStarted,
    #[serde(rename = "UtteranceEnd")]
    DeepgramUtteranceEnd,
    #[serde(rename = "Turn")]
    AssemblyAiTurn,
    #[serde(rename = "Begin")]
    AssemblyAiBegin,
    #[serde(rename = "Termination")]
    AssemblyAiTermination,
    #[serde(rename = "TranscriptEvent")]
    AwsTranscriptEvent,
    #[serde(rename = "StreamingRecognizeResponse")]
    GoogleResponse,
    #[serde(rename = "segments")]
    WhisperLiveSegments,
    #[serde(rename = "status")]
    WhisperLiveStatus,
}

impl Kind {
    pub const COUNT: usize = 15;
    pub const ALL: [Kind; Kind::COUNT] = [
        Kind::Start,
        Kind::Transcript,
        Kind::Feedback,
        Kind::End,
        Kind::DeepgramResults,
        Kind::DeepgramMetadata,
        Kind::DeepgramSpeechStarted,
        Kind::DeepgramUtteranceEnd,
        Kind::AssemblyAiTurn,
        Kind::AssemblyAiBegin,
        Kind::AssemblyAiTermination,
        Kind::AwsTranscriptEvent,
        Kind::GoogleResponse,
        Kind::WhisperLiveSegments,
        Kind::WhisperLiveStatus,
    ];

    /// The message's own type name (`start`, `Results`, `Turn`, …), as counted by
    /// `cuedeck_messages_total{type}`.
    pub fn as_str(self) -> &'static str {
        names::name_of(&self)
    }

    /// Whose message this is: `native` or a provider's format name.
    pub fn source(self) -> &'static str {
        self.format().as_str()
    }

    /// The format whose message this is.
    fn format(self) -> Format {
        match self {
            Kind::Start | Kind::Transcript | Kind::Feedback | Kind::End => Format::Native,
            Kind::DeepgramResults
            | Kind::DeepgramMetadata
            | Kind::DeepgramSpeechStarted
            | Kind::DeepgramUtteranceEnd => Format::Deepgram,
            Kind::AssemblyAiTurn | Kind::AssemblyAiBegin | Kind::AssemblyAiTermination => {
                Format::AssemblyAi
            }
            Kind::AwsTranscriptEvent => Format::Aws,
            Kind::GoogleResponse => Format::Google,
            Kind::WhisperLiveSegments | Kind::WhisperLiveStatus => Format::WhisperLive,
        }
    }

    /// The message of `format` whose type name is `name`; the error is the format's type
    /// names, in backticks.
    pub(crate) fn named(format: Format, name: &str) -> Result<Kind, String> {
        let kinds = Kind::ALL.into_iter().filter(|k| k.format() == format);
        kinds.clone().find(|k| k.as_str() == name).ok_or_else(|| {
            kinds
                .map(|k| format!("`{}`", k.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// A provider message's kind, from its `type` field.
    fn of_type(format: Format, msg: &At<'_>) -> Result<Kind, String> {
        let name = msg.req("type")?.str()?;
        Kind::named(format, name).map_err(|expected| {
            format!("unknown message `type` `{name}`, expected one of {expected}")
        })
    }

    pub(crate) fn of(msg: &ClientMsg) -> Kind {
        match msg {
            ClientMsg::Start(_) => Kind::Start,
            ClientMsg::Transcript(_) => Kind::Transcript,
            ClientMsg::Feedback(_) => Kind::Feedback,
            ClientMsg::End(_) => Kind::End,
        }
    }
}

/// The native messages one frame stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    kind: Kind,
    /// In order; empty for a message that carries no transcript.
    pub messages: Vec<ClientMsg>,
    /// Transcripts whose provider label was not in the `speakers` map (sent as prospect).
    pub unmapped_speakers: u32,
}

impl Output {
    /// The frame's message type (`start`, `Results`, `Turn`, …), for metrics.
    pub fn kind(&self) -> &str {
        self.kind.as_str()
    }

    pub fn message_kind(&self) -> Kind {
        self.kind
    }

    /// Accepted and ignored: the frame carried nothing for the engine.
    pub fn ignored(&self) -> bool {
        self.messages.is_empty()
    }
}

/// Counters of what the adapters saw, shared by every connection (message kinds are
/// counted by the server's metrics with [`Output::kind`]).
#[derive(Debug, Default)]
pub struct AdapterStats {
    ignored: AtomicU64,
    unmapped_speakers: AtomicU64,
}

impl AdapterStats {
    /// Counts one frame: whether it was ignored, and its unmapped speaker labels.
    pub fn count(&self, ignored: bool, unmapped_speakers: u32) {
        if ignored {
            self.ignored.fetch_add(1, Ordering::Relaxed);
        }
        if unmapped_speakers > 0 {
            self.unmapped_speakers
                .fetch_add(u64::from(unmapped_speakers), Ordering::Relaxed);
        }
    }

    /// Frames accepted and ignored (control messages, empty results).
    pub fn ignored(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }

    /// Transcripts sent as prospect because their label was not mapped.
    pub fn unmapped_speakers(&self) -> u64 {
        self.unmapped_speakers.load(Ordering::Relaxed)
    }
}

/// A frame an adapter cannot use; the message names the adapter and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AdapterError {
    /// `bad_message` for a malformed message, `protocol` for one out of order.
    pub code: ErrorCode,
    pub message: String,
}

impl AdapterError {
    fn bad(message: String) -> AdapterError {
        AdapterError {
            code: ErrorCode::BadMessage,
            message,
        }
    }
}

/// Provider label → role.
#[derive(Debug, Clone, Default)]
struct Speakers {
    map: BTreeMap<String, Speaker>,
    /// Set up with a rep label only: every other label is the prospect, by definition.
    others_are_prospects: bool,
}

impl Speakers {
    fn from_setup(setup: &CallSetup) -> Speakers {
        Speakers {
            map: setup.speakers(),
            others_are_prospects: setup.rep_label.is_some(),
        }
    }

    /// The role and whether the label was unmapped.
    fn resolve(&self, label: Option<&str>) -> (Speaker, bool) {
        match label.and_then(|l| self.map.get(l)) {
            Some(s) => (*s, false),
            None => (Speaker::Prospect, !self.others_are_prospects),
        }
    }
}

/// Collects one frame's native transcripts.
struct Emit<'s> {
    speakers: &'s Speakers,
    out: Vec<ClientMsg>,
    unmapped: u32,
}

impl Emit<'_> {
    fn transcript(
        &mut self,
        segment_id: &str,
        label: Option<&str>,
        text: &str,
        is_final: bool,
        t_ms: u64,
    ) {
        let (speaker, unmapped) = self.speakers.resolve(label);
        if unmapped {
            self.unmapped += 1;
        }
        self.out.push(ClientMsg::Transcript(Transcript::new(
            Some(segment_id),
            speaker,
            text.trim(),
            is_final,
            Some(t_ms),
        )));
    }

    /// One transcript per speaker run: run `k > 0` gets `#k` after `base`; the last run
    /// ends at `end_ms` (the span's end), earlier ones at their last word.
    fn runs(&mut self, base: &str, runs: &[Run], is_final: bool, end_ms: u64) {
        for (k, run) in runs.iter().enumerate() {
            let id = if k == 0 {
                base.to_string()
            } else {
                format!("{base}#{k}")
            };
            let t_ms = if k + 1 == runs.len() {
                end_ms.max(run.end_ms)
            } else {
                run.end_ms
            };
            self.transcript(&id, run.label.as_deref(), &run.text, is_final, t_ms);
        }
    }
}

/// A recognized word with its diarization label.
struct Word<'a> {
    text: &'a str,
    label: Option<String>,
    end_ms: u64,
    /// Punctuation: attached to the previous word without a space.
    attach: bool,
}

/// Consecutive words of one speaker.
#[derive(Debug, PartialEq)]
struct Run {
    label: Option<String>,
    text: String,
    end_ms: u64,
}

/// Splits words into speaker runs; an unlabeled word belongs to the run before it (the
/// first labeled word's speaker when it leads).
fn speaker_runs(words: &[Word<'_>]) -> Vec<Run> {
    let mut current = words.iter().find_map(|w| w.label.clone());
    let mut runs: Vec<Run> = Vec::new();
    for w in words {
        if w.label.is_some() {
            current.clone_from(&w.label);
        }
        match runs.last_mut() {
            Some(run) if run.label == current => {
                if !w.attach && !run.text.is_empty() {
                    run.text.push(' ');
                }
                run.text.push_str(w.text);
                run.end_ms = run.end_ms.max(w.end_ms);
            }
            _ => runs.push(Run {
                label: current.clone(),
                text: w.text.to_string(),
                end_ms: w.end_ms,
            }),
        }
    }
    runs
}

/// Seconds (already checked finite and not negative) → milliseconds, rounded.
fn seconds_to_ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round() as u64
}

/// A decimal number of seconds written as a string (`"12.340"`, Google's `"3.5s"`).
fn parse_seconds(at: &At<'_>, text: &str) -> Result<u64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(seconds_to_ms(s)),
        _ => Err(format!(
            "{} must be a number of seconds, found `{text}`",
            at.name()
        )),
    }
}

/// Per-provider decoding state.
#[derive(Debug)]
enum Provider {
    Native,
    Deepgram(deepgram::State),
    AssemblyAi(assemblyai::State),
    Aws,
    Google(google::State),
    WhisperLive(whisperlive::State),
}

/// A stateful decoder for one call's stream in one format.
#[derive(Debug)]
pub struct Adapter {
    format: Format,
    setup: CallSetup,
    started: bool,
    speakers: Speakers,
    provider: Provider,
}

impl Adapter {
    pub fn new(format: Format, setup: CallSetup) -> Adapter {
        let provider = match format {
            Format::Native => Provider::Native,
            Format::Deepgram => Provider::Deepgram(deepgram::State::default()),
            Format::AssemblyAi => Provider::AssemblyAi(assemblyai::State::default()),
            Format::Aws => Provider::Aws,
            Format::Google => Provider::Google(google::State::default()),
            Format::WhisperLive => Provider::WhisperLive(whisperlive::State::default()),
        };
        Adapter {
            format,
            setup,
            started: false,
            speakers: Speakers::default(),
            provider,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Decodes one text frame into the native messages it stands for.
    pub fn decode(&mut self, text: &str) -> Result<Output, AdapterError> {
        if let Provider::Native = self.provider {
            let msg = super::decode(text).map_err(|e| AdapterError::bad(e.message))?;
            return Ok(Output {
                kind: Kind::of(&msg),
                messages: vec![msg],
                unmapped_speakers: 0,
            });
        }
        let name = self.format.as_str();
        let value: Value = serde_json::from_str(text)
            .map_err(|e| AdapterError::bad(format!("{name}: {}", json_error(&e).message)))?;
        let mut messages = Vec::new();
        if let Some(kind) = value.get("type").and_then(Value::as_str) {
            if matches!(kind, "start" | "transcript" | "feedback" | "end") {
                let mut msg = super::decode(text).map_err(|e| {
                    AdapterError::bad(format!("{name}: `{kind}` message: {}", e.message))
                })?;
                match &mut msg {
                    ClientMsg::Start(start) if !self.started => {
                        // The start message's map wins; the query's rep label fills in.
                        if start.speakers.is_empty() && self.setup.rep_label.is_some() {
                            start.speakers = self.setup.speakers();
                            self.speakers = Speakers::from_setup(&self.setup);
                        } else {
                            self.speakers = Speakers {
                                map: start.speakers.clone(),
                                others_are_prospects: false,
                            };
                        }
                        self.started = true;
                    }
                    ClientMsg::Start(_) => {} // a second start: the handler refuses it
                    _ => self.start_from_setup(&mut messages),
                }
                messages.push(msg);
                return Ok(Output {
                    kind: Kind::of(&messages[messages.len() - 1]),
                    messages,
                    unmapped_speakers: 0,
                });
            }
        }
        // Set up from the query at the first provider message, committed only when the
        // message decodes (a malformed first message must not swallow the start).
        let setup_start = if self.started {
            None
        } else {
            self.setup.start()
        };
        if setup_start.is_some() {
            self.speakers = Speakers::from_setup(&self.setup);
        }
        let Adapter {
            provider, speakers, ..
        } = self;
        let mut emit = Emit {
            speakers,
            out: messages,
            unmapped: 0,
        };
        let root = At::root(&value);
        let kind = match provider {
            // Decoded before the dispatch (the early return above).
            Provider::Native => Err("a native message reached the provider dispatch".into()),
            Provider::Deepgram(state) => deepgram::decode(state, &root, &mut emit),
            Provider::AssemblyAi(state) => assemblyai::decode(state, &root, &mut emit),
            Provider::Aws => aws::decode(&root, &mut emit),
            Provider::Google(state) => google::decode(state, &root, &mut emit),
            Provider::WhisperLive(state) => whisperlive::decode(state, &root, &mut emit),
        }
        .map_err(|m| AdapterError::bad(format!("{name}: {m}")))?;
        if let Some(start) = setup_start {
            self.started = true;
            emit.out.insert(0, ClientMsg::Start(start));
        }
        if !self.started && !emit.out.is_empty() {
            return Err(AdapterError {
                code: ErrorCode::Protocol,
                message: format!(
                    "{name}: a `{}` message before `start`: send a native `start` message first, or set `call_id` in the query",
                    kind.as_str()
                ),
            });
        }
        Ok(Output {
            kind,
            messages: emit.out,
            unmapped_speakers: emit.unmapped,
        })
    }

    /// Sets the call up from the query parameters or flags, once, if they name a call.
    fn start_from_setup(&mut self, messages: &mut Vec<ClientMsg>) {
        if self.started {
            return;
        }
        if let Some(start) = self.setup.start() {
            self.started = true;
            self.speakers = Speakers::from_setup(&self.setup);
            messages.push(ClientMsg::Start(start));
        }
    }
}

/// The longest provider-chosen segment id accepted (room left for a `#k` run suffix).
const MAX_PROVIDER_ID: usize = MAX_ID_LEN - 8;

#[cfg(test)]
mod tests;
