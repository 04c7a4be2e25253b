//! Recorded calls → live streams: a Harper Valley Bank transcript (Gridspace, Apache-2.0)
//! becomes native JSON lines or a Deepgram live stream, with interim results synthesized
//! one word at a time, so replays, tests and demos see what a live STT bridge would send.
//! Pure: text in, text out.
//!
//! HVB: a JSON list of segments with `channel_index`, `speaker_role` (`agent` → rep,
//! `caller` → prospect), `start_ms`, `duration_ms`, `transcript` (ASR) and
//! `human_transcript` (corrected), and per-word `word_offsets_ms`/`word_durations_ms`
//! relative to `start_ms`. Word `i` is heard at `start_ms + offset[i] + duration[i]`; the
//! segment is final at `start_ms + duration_ms`. Human text whose word count differs from
//! the timings is spread evenly over the segment. Bracketed tokens (`[noise]`) are not
//! speech and are dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::library::Speaker;
use crate::protocol::adapters::CallSetup;

/// Which HVB transcript to use (`--text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
#[value(rename_all = "lowercase")]
pub enum HvbText {
    /// The machine ASR `transcript`, errors and all.
    #[default]
    Asr,
    /// The corrected `human_transcript`.
    Human,
}

/// A recorded call that cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConvertError {
    pub message: String,
}

fn error(message: String) -> ConvertError {
    ConvertError { message }
}

/// One timed word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedWord {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// One speaker's segment of a recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Native segment id (`s{index}`).
    pub id: String,
    /// The recording's channel (HVB `channel_index`).
    pub channel: u32,
    pub speaker: Speaker,
    pub start_ms: u64,
    /// When the segment is final: its end, and never before its last word.
    pub end_ms: u64,
    pub words: Vec<TimedWord>,
}

/// One message of the synthesized stream: the first `words` words of segment `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub segment: usize,
    pub words: usize,
    pub is_final: bool,
    pub t_ms: u64,
}

#[derive(Deserialize)]
struct HvbSegment {
    channel_index: u32,
    speaker_role: String,
    start_ms: u64,
    duration_ms: u64,
    #[serde(default)]
    index: Option<u64>,
    transcript: String,
    #[serde(default)]
    human_transcript: Option<String>,
    word_offsets_ms: Vec<u64>,
    word_durations_ms: Vec<u64>,
}

/// Reads a Harper Valley Bank transcript into timed segments (in file order).
pub fn parse_hvb(json: &str, text: HvbText) -> Result<Vec<Segment>, ConvertError> {
    let raw: Vec<HvbSegment> = serde_json::from_str(json).map_err(|e| {
        error(format!(
            "not a Harper Valley Bank transcript: line {} column {}: {}",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        ))
    })?;
    let mut segments = Vec::with_capacity(raw.len());
    for (i, seg) in raw.into_iter().enumerate() {
        let at = |m: String| error(format!("segment {}: {m}", i + 1));
        let speaker = match seg.speaker_role.as_str() {
            "agent" => Speaker::Rep,
            "caller" => Speaker::Prospect,
            other => {
                return Err(at(format!(
                    "`speaker_role` must be `agent` or `caller`, found `{other}`"
                )));
            }
        };
        if seg.word_offsets_ms.len() != seg.word_durations_ms.len() {
            return Err(at(format!(
                "`word_offsets_ms` has {} entries but `word_durations_ms` has {}",
                seg.word_offsets_ms.len(),
                seg.word_durations_ms.len()
            )));
        }
        let line = match text {
            HvbText::Asr => seg.transcript.as_str(),
            HvbText::Human => seg
                .human_transcript
                .as_deref()
                .ok_or_else(|| at("missing field `human_transcript`".into()))?,
        };
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let n = tokens.len() as u64;
        let timed = tokens.iter().enumerate().map(|(j, token)| {
            let (start, end) = if tokens.len() == seg.word_offsets_ms.len() {
                let off = seg.word_offsets_ms[j];
                (off, off + seg.word_durations_ms[j])
            } else {
                let j = j as u64;
                (seg.duration_ms * j / n, seg.duration_ms * (j + 1) / n)
            };
            TimedWord {
                text: (*token).to_string(),
                start_ms: seg.start_ms + start,
                end_ms: seg.start_ms + end,
            }
        });
        let words: Vec<TimedWord> = timed
            .filter(|w| !(w.text.starts_with('[') && w.text.ends_with(']')))
            .collect();
        let last_word_end = words.iter().map(|w| w.end_ms).max().unwrap_or(0);
        if words.is_empty() {
            continue;
        }
        segments.push(Segment {
            id: format!("s{}", seg.index.unwrap_or(i as u64 + 1)),
            channel: seg.channel_index,
            speaker,
            start_ms: seg.start_ms,
            end_ms: (seg.start_ms + seg.duration_ms).max(last_word_end),
            words,
        });
    }
    Ok(segments)
}

fn strip_position(text: &str) -> &str {
    match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// The synthesized stream in time order: an interim per word (the words so far), then the
/// final with every word at the segment's end. A segment's messages never come before the
/// previous segment of its channel is final.
pub fn events(segments: &[Segment]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut channel_final: BTreeMap<u32, u64> = BTreeMap::new();
    for (i, seg) in segments.iter().enumerate() {
        let floor = channel_final.get(&seg.channel).copied().unwrap_or(0);
        let n = seg.words.len();
        for (k, w) in seg.words.iter().enumerate().take(n.saturating_sub(1)) {
            out.push(Event {
                segment: i,
                words: k + 1,
                is_final: false,
                t_ms: w.end_ms.max(floor),
            });
        }
        let end = seg.end_ms.max(floor);
        out.push(Event {
            segment: i,
            words: n,
            is_final: true,
            t_ms: end,
        });
        channel_final.insert(seg.channel, end);
    }
    // Stable: a segment's own messages keep their order at equal times.
    out.sort_by_key(|e| e.t_ms);
    out
}

fn text_of(seg: &Segment, words: usize) -> String {
    let mut text = String::new();
    for w in seg.words.iter().take(words) {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&w.text);
    }
    text
}

#[derive(Serialize)]
struct NativeStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    call_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    deal_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rep_id: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    speakers: BTreeMap<String, &'static str>,
}

impl<'a> NativeStart<'a> {
    fn new(setup: &'a CallSetup, speakers: BTreeMap<String, &'static str>) -> Self {
        NativeStart {
            kind: "start",
            call_id: setup.call_id.as_deref().unwrap_or("call"),
            deal_id: setup.deal_id.as_deref(),
            rep_id: setup.rep_id.as_deref(),
            speakers,
        }
    }
}

#[derive(Serialize)]
struct NativeTranscript<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    segment_id: &'a str,
    speaker: &'static str,
    text: &'a str,
    is_final: bool,
    t_ms: u64,
}

fn json_line<T: Serialize>(value: &T) -> String {
    // Plain structs of strings and numbers always serialize.
    serde_json::to_string(value).unwrap_or_default()
}

/// The call as native JSON lines: `start` (ids from `setup`; `call_id` defaults to
/// `call`), the transcripts, `end`.
pub fn to_native(segments: &[Segment], setup: &CallSetup) -> String {
    let mut out = json_line(&NativeStart::new(setup, BTreeMap::new()));
    out.push('\n');
    for e in events(segments) {
        let seg = &segments[e.segment];
        let text = text_of(seg, e.words);
        out.push_str(&json_line(&NativeTranscript {
            kind: "transcript",
            segment_id: &seg.id,
            speaker: seg.speaker.as_str(),
            text: &text,
            is_final: e.is_final,
            t_ms: e.t_ms,
        }));
        out.push('\n');
    }
    out.push_str("{\"type\":\"end\"}\n");
    out
}

#[derive(Serialize)]
struct DgWord<'a> {
    word: String,
    start: f64,
    end: f64,
    confidence: f64,
    punctuated_word: &'a str,
}

#[derive(Serialize)]
struct DgAlternative<'a> {
    transcript: String,
    confidence: f64,
    words: Vec<DgWord<'a>>,
}

#[derive(Serialize)]
struct DgChannel<'a> {
    alternatives: Vec<DgAlternative<'a>>,
}

#[derive(Serialize)]
struct DgResults<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel_index: [u32; 2],
    duration: f64,
    start: f64,
    is_final: bool,
    speech_final: bool,
    from_finalize: bool,
    channel: DgChannel<'a>,
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The Deepgram channel of an HVB channel (1-based → 0-based).
fn dg_channel(channel: u32) -> u32 {
    channel.saturating_sub(1)
}

/// The call as a Deepgram live stream (JSON lines): a native `start` whose `speakers` map
/// each Deepgram channel to its role, then `Results` messages — interims word by word
/// (`is_final: false`, the span growing from the segment's start), and the final
/// (`is_final` and `speech_final`) — and a closing `Metadata` message.
pub fn to_deepgram(segments: &[Segment], setup: &CallSetup) -> String {
    let speakers: BTreeMap<String, &'static str> = segments
        .iter()
        .map(|s| (dg_channel(s.channel).to_string(), s.speaker.as_str()))
        .collect();
    let channels = segments
        .iter()
        .map(|s| dg_channel(s.channel) + 1)
        .max()
        .unwrap_or(1);
    let mut out = json_line(&NativeStart::new(setup, speakers));
    out.push('\n');
    for e in events(segments) {
        let seg = &segments[e.segment];
        let words: Vec<DgWord<'_>> = seg
            .words
            .iter()
            .take(e.words)
            .map(|w| DgWord {
                word: w.text.to_lowercase(),
                start: seconds(w.start_ms),
                end: seconds(w.end_ms),
                confidence: 1.0,
                punctuated_word: &w.text,
            })
            .collect();
        let msg = DgResults {
            kind: "Results",
            channel_index: [dg_channel(seg.channel), channels],
            duration: seconds(e.t_ms.saturating_sub(seg.start_ms)),
            start: seconds(seg.start_ms),
            is_final: e.is_final,
            speech_final: e.is_final,
            from_finalize: false,
            channel: DgChannel {
                alternatives: vec![DgAlternative {
                    transcript: text_of(seg, e.words),
                    confidence: 1.0,
                    words,
                }],
            },
        };
        out.push_str(&json_line(&msg));
        out.push('\n');
    }
    let duration = segments.iter().map(|s| s.end_ms).max().unwrap_or(0);
    out.push_str(&format!(
        "{{\"type\":\"Metadata\",\"request_id\":\"cuedeck-convert\",\"duration\":{},\"channels\":{channels}}}\n",
        seconds(duration)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HVB: &str = r#"[
 {"channel_index": 2, "speaker_role": "agent", "start_ms": 1000, "duration_ms": 1000, "index": 1,
  "transcript": "which part", "human_transcript": "which card is it",
  "word_offsets_ms": [0, 500], "word_durations_ms": [400, 400]},
 {"channel_index": 1, "speaker_role": "caller", "start_ms": 1200, "duration_ms": 500, "index": 2,
  "transcript": "[noise] yes", "human_transcript": "[noise] yes",
  "word_offsets_ms": [0, 200], "word_durations_ms": [100, 200]}
]"#;

    #[test]
    fn asr_words_take_their_timings_and_noise_is_dropped() {
        let segs = parse_hvb(HVB, HvbText::Asr).unwrap();
        assert_eq!(segs[0].speaker, Speaker::Rep);
        assert_eq!(
            segs[0].words.iter().map(|w| w.end_ms).collect::<Vec<_>>(),
            [1400, 1900]
        );
        assert_eq!(segs[0].end_ms, 2000);
        assert_eq!(segs[1].speaker, Speaker::Prospect);
        assert_eq!(segs[1].words.len(), 1);
        assert_eq!(segs[1].words[0].text, "yes");
        assert_eq!(segs[1].words[0].end_ms, 1600);
    }

    #[test]
    fn human_text_with_another_word_count_is_spread_evenly() {
        let segs = parse_hvb(HVB, HvbText::Human).unwrap();
        let ends: Vec<u64> = segs[0].words.iter().map(|w| w.end_ms).collect();
        assert_eq!(ends, [1250, 1500, 1750, 2000]);
    }

    #[test]
    fn events_interleave_in_time_and_end_with_finals() {
        let segs = parse_hvb(HVB, HvbText::Asr).unwrap();
        let evs: Vec<(usize, usize, bool, u64)> = events(&segs)
            .iter()
            .map(|e| (e.segment, e.words, e.is_final, e.t_ms))
            .collect();
        assert_eq!(
            evs,
            [(0, 1, false, 1400), (1, 1, true, 1700), (0, 2, true, 2000)]
        );
    }

    #[test]
    fn errors_name_the_segment_and_field() {
        let e = parse_hvb(&HVB.replace("\"agent\"", "\"boss\""), HvbText::Asr).unwrap_err();
        assert_eq!(
            e.message,
            "segment 1: `speaker_role` must be `agent` or `caller`, found `boss`"
        );
        let e = parse_hvb("{}", HvbText::Asr).unwrap_err();
        assert!(
            e.message
                .starts_with("not a Harper Valley Bank transcript: line 1"),
            "{e}"
        );
    }
}
