//! Deepgram live (`/v1/listen`) `Results`: an interim (`is_final: false`) replaces the
//! prior interim of the same audio span, `is_final: true` freezes the span (the next
//! message starts a new one), `speech_final` only marks the end of an utterance. The label
//! is the word's diarization `speaker` when words carry one, else `channel_index[0]`.
//! Times are float seconds; `t_ms` = `start + duration`. Segment ids: `dg-{channel}-{n}`.

use super::json::At;
use super::{Emit, Format, Kind, MAX_CHANNELS, Word, seconds_to_ms, speaker_runs};

/// The open span of each channel.
#[derive(Debug, Default)]
pub(super) struct State {
    spans: Vec<Span>,
}

#[derive(Debug, Default, Clone)]
struct Span {
    /// Spans closed so far on this channel.
    n: u64,
    /// A transcript of the current span was sent.
    open: bool,
}

pub(super) fn decode(state: &mut State, msg: &At<'_>, emit: &mut Emit<'_>) -> Result<Kind, String> {
    let kind = Kind::of_type(Format::Deepgram, msg)?;
    if kind == Kind::DeepgramResults {
        results(state, msg, emit)?;
    }
    Ok(kind)
}

fn results(state: &mut State, msg: &At<'_>, emit: &mut Emit<'_>) -> Result<(), String> {
    let channel = match msg.get("channel_index") {
        Some(ci) => match ci.first()? {
            Some(c) => c.u64()?,
            None => 0,
        },
        None => 0,
    };
    if channel >= MAX_CHANNELS {
        return Err(format!("`channel_index[0]` must be below {MAX_CHANNELS}"));
    }
    let start = msg.req("start")?.non_negative()?;
    let duration = msg.req("duration")?.non_negative()?;
    let end_ms = seconds_to_ms(start + duration);
    let is_final = match msg.get("is_final") {
        Some(b) => b.bool()?,
        None => false,
    };
    let alternative = msg.req("channel")?.req("alternatives")?.first()?;
    let (transcript, words) = match &alternative {
        Some(alt) => (
            alt.req("transcript")?.str()?,
            match alt.get("words") {
                Some(w) => w.array()?,
                None => Vec::new(),
            },
        ),
        None => ("", Vec::new()),
    };
    let mut parsed = Vec::with_capacity(words.len());
    for w in &words {
        let text = match w.get("punctuated_word") {
            Some(p) => p.str()?,
            None => w.req("word")?.str()?,
        };
        parsed.push(Word {
            text,
            label: w.get("speaker").map(|s| s.label()).transpose()?,
            end_ms: seconds_to_ms(w.req("end")?.non_negative()?),
            attach: false,
        });
    }

    let idx = channel as usize;
    if state.spans.len() <= idx {
        state.spans.resize(idx + 1, Span::default());
    }
    let span = &mut state.spans[idx];
    let base = format!("dg-{channel}-{}", span.n);
    if parsed.iter().any(|w| w.label.is_some()) {
        emit.runs(&base, &speaker_runs(&parsed), is_final, end_ms);
        span.open = true;
    } else if !transcript.trim().is_empty() || (is_final && span.open) {
        // An empty final still closes a span whose interims were sent.
        emit.transcript(
            &base,
            Some(&channel.to_string()),
            transcript,
            is_final,
            end_ms,
        );
        span.open = true;
    }
    if is_final {
        span.n += 1;
        span.open = false;
    }
    Ok(())
}
