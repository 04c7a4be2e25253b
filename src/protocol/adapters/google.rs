//! Google Cloud Speech-to-Text `StreamingRecognizeResponse` as JSON (v1 or v2). A response
//! holds results in order: a final result (`isFinal`) closes the channel's segment with its
//! text; the non-final results after it (stable prefix + unstable tail) are concatenated
//! into the channel's next segment's interim. One channel's utterance until `isFinal` is one
//! segment (`g-{channelTag}-{n}`). The label is `channelTag` (1-based; absent or 0 means no
//! channel), or the words' `speakerLabel`/`speakerTag` when a final's words carry them.
//! Times are Duration strings (`"3.5s"`, or `{seconds, nanos}` objects); `t_ms` =
//! `resultEndOffset` (v2) or `resultEndTime` (v1). Responses without results (speech
//! events, billing metadata) are accepted and ignored.

use super::json::At;
use super::{Emit, Kind, MAX_CHANNELS, Word, parse_seconds, seconds_to_ms, speaker_runs};

#[derive(Debug, Default)]
pub(super) struct State {
    /// Indexed by channel tag (0 = none).
    spans: Vec<Span>,
    last_t_ms: u64,
}

#[derive(Debug, Default, Clone)]
struct Span {
    n: u64,
    open: bool,
}

/// Fields of a response that carries no results.
const NON_RESULT_FIELDS: [&str; 7] = [
    "speechEventType",
    "speechEventOffset",
    "speechEventTime",
    "totalBilledTime",
    "metadata",
    "speechAdaptationInfo",
    "requestId",
];

/// A Duration: `"3.5s"` or `{"seconds": "3", "nanos": 500000000}`.
fn duration_ms(at: &At<'_>) -> Result<u64, String> {
    if let Ok(s) = at.str() {
        let Some(number) = s.strip_suffix('s') else {
            return Err(format!(
                "{} must be a Duration such as \"3.5s\", found `{s}`",
                at.name()
            ));
        };
        return parse_seconds(at, number);
    }
    if at.value().is_object() {
        let seconds = match at.get("seconds") {
            Some(s) => match s.str() {
                Ok(text) => parse_seconds(&s, text)?,
                Err(_) => seconds_to_ms(s.non_negative()?),
            },
            None => 0,
        };
        let nanos = match at.get("nanos") {
            Some(n) => n.u64()?,
            None => 0,
        };
        return Ok(seconds + (nanos + 500_000) / 1_000_000);
    }
    Err(format!("{} must be a Duration such as \"3.5s\"", at.name()))
}

fn end_of(r: &At<'_>, names: [&str; 2]) -> Result<Option<u64>, String> {
    match r.get(names[0]).or_else(|| r.get(names[1])) {
        Some(d) => duration_ms(&d).map(Some),
        None => Ok(None),
    }
}

pub(super) fn decode(state: &mut State, msg: &At<'_>, emit: &mut Emit<'_>) -> Result<Kind, String> {
    let results = match msg.get("results") {
        Some(r) => r.array()?,
        None if NON_RESULT_FIELDS.iter().any(|f| msg.has(f)) => {
            return Ok(Kind::GoogleResponse);
        }
        None => {
            msg.object()?;
            return Err("missing field `results` (or `speechEventType`)".to_string());
        }
    };
    // The interim of each channel in this response: (tag, text, end).
    let mut pending: Vec<(u64, String, Option<u64>)> = Vec::new();
    for r in &results {
        let tag = match r.get("channelTag") {
            Some(t) => t.u64()?,
            None => 0,
        };
        if tag >= MAX_CHANNELS {
            return Err(format!(
                "{}.channelTag must be below {MAX_CHANNELS}",
                r.name()
            ));
        }
        let is_final = match r.get("isFinal").or_else(|| r.get("is_final")) {
            Some(b) => b.bool()?,
            None => false,
        };
        let end = end_of(r, ["resultEndOffset", "resultEndTime"])?;
        let alternative = match r.get("alternatives") {
            Some(a) => a.first()?,
            None => None,
        };
        let text = match alternative.as_ref().and_then(|a| a.get("transcript")) {
            Some(t) => t.str()?,
            None => "",
        };
        if !is_final {
            match pending.iter_mut().find(|(t, _, _)| *t == tag) {
                Some((_, acc, acc_end)) => {
                    acc.push_str(text);
                    *acc_end = end.or(*acc_end);
                }
                None => pending.push((tag, text.to_string(), end)),
            }
            continue;
        }
        // A final: the channel's earlier interim text in this response is superseded.
        pending.retain(|(t, _, _)| *t != tag);
        let words = match alternative.as_ref().and_then(|a| a.get("words")) {
            Some(w) => w.array()?,
            None => Vec::new(),
        };
        let mut parsed = Vec::with_capacity(words.len());
        for w in &words {
            let label = match (w.get("speakerLabel"), w.get("speakerTag")) {
                (Some(l), _) => Some(l.label()?).filter(|l| !l.is_empty()),
                (None, Some(t)) => Some(t.u64()?).filter(|t| *t > 0).map(|t| t.to_string()),
                (None, None) => None,
            };
            parsed.push(Word {
                text: w.req("word")?.str()?,
                label,
                end_ms: end_of(w, ["endOffset", "endTime"])?.unwrap_or(0),
                attach: false,
            });
        }
        let t_ms = end
            .or_else(|| parsed.iter().map(|w| w.end_ms).max())
            .unwrap_or(state.last_t_ms);
        let span = span(state, tag);
        let base = format!("g-{tag}-{}", span.n);
        let open = span.open;
        span.n += 1;
        span.open = false;
        if parsed.iter().any(|w| w.label.is_some()) {
            emit.runs(&base, &speaker_runs(&parsed), true, t_ms);
        } else if !text.trim().is_empty() || open {
            emit.transcript(&base, label(tag).as_deref(), text, true, t_ms);
        }
        state.last_t_ms = t_ms;
    }
    for (tag, text, end) in pending {
        if text.trim().is_empty() {
            continue;
        }
        let t_ms = end.unwrap_or(state.last_t_ms);
        let span = span(state, tag);
        span.open = true;
        let base = format!("g-{tag}-{}", span.n);
        emit.transcript(&base, label(tag).as_deref(), &text, false, t_ms);
        state.last_t_ms = t_ms;
    }
    Ok(Kind::GoogleResponse)
}

fn span(state: &mut State, tag: u64) -> &mut Span {
    let idx = tag as usize;
    if state.spans.len() <= idx {
        state.spans.resize(idx + 1, Span::default());
    }
    &mut state.spans[idx]
}

/// `channelTag` as the `speakers` key: `"1"`, `"2"`…; 0 (absent) is no channel.
fn label(tag: u64) -> Option<String> {
    (tag > 0).then(|| tag.to_string())
}
