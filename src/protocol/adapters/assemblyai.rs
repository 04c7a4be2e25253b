//! AssemblyAI Universal-Streaming v3: each `Turn` message is the whole turn so far; one
//! `turn_order` is one segment (`aai-{turn_order}`), matched on the text of all its words
//! so far (final or not), closed by `end_of_turn`. A later message for a closed turn (the
//! `turn_is_formatted` copy) is ignored. The label is the turn's `speaker_label`, or the
//! words' `speaker` (split into runs when they differ). Times are integer milliseconds;
//! `t_ms` = the end of the turn's last word.

use super::json::At;
use super::{Emit, Format, Kind, Word, speaker_runs};

#[derive(Debug, Default)]
pub(super) struct State {
    /// The highest turn closed so far (turns are numbered in order).
    closed: Option<u64>,
    /// The turn a transcript was sent for and not yet closed.
    open: Option<u64>,
    /// The clock of the last transcript, for a turn without words.
    last_t_ms: u64,
}

pub(super) fn decode(state: &mut State, msg: &At<'_>, emit: &mut Emit<'_>) -> Result<Kind, String> {
    if !msg.has("type") && msg.has("message_type") {
        return Err(
            "`message_type` is the legacy v2 real-time API: stream from Universal-Streaming v3 (`type`: `Turn`)"
                .to_string(),
        );
    }
    let kind = Kind::of_type(Format::AssemblyAi, msg)?;
    if kind == Kind::AssemblyAiTurn {
        turn(state, msg, emit)?;
    }
    Ok(kind)
}

fn turn(state: &mut State, msg: &At<'_>, emit: &mut Emit<'_>) -> Result<(), String> {
    let order = msg.req("turn_order")?.u64()?;
    let end_of_turn = match msg.get("end_of_turn") {
        Some(b) => b.bool()?,
        None => false,
    };
    let turn_label = msg.get("speaker_label").map(|l| l.label()).transpose()?;
    let words = match msg.get("words") {
        Some(w) => w.array()?,
        None => Vec::new(),
    };
    let mut parsed = Vec::with_capacity(words.len());
    for w in &words {
        let label = w.get("speaker").map(|s| s.label()).transpose()?;
        parsed.push(Word {
            text: w.req("text")?.str()?,
            label: label.or_else(|| turn_label.clone()),
            end_ms: w.req("end")?.non_negative()?.round() as u64,
            attach: false,
        });
    }
    let transcript = match msg.get("transcript") {
        Some(t) => t.str()?,
        None => "",
    };
    if state.closed.is_some_and(|c| order <= c) {
        return Ok(()); // the formatted copy of a closed turn, or a late duplicate
    }
    let t_ms = parsed
        .iter()
        .map(|w| w.end_ms)
        .max()
        .unwrap_or(state.last_t_ms);
    state.last_t_ms = t_ms;
    let base = format!("aai-{order}");
    let was_open = state.open == Some(order);
    if !parsed.is_empty() {
        emit.runs(&base, &speaker_runs(&parsed), end_of_turn, t_ms);
        state.open = Some(order);
    } else if !transcript.trim().is_empty() || (end_of_turn && was_open) {
        emit.transcript(&base, turn_label.as_deref(), transcript, end_of_turn, t_ms);
        state.open = Some(order);
    }
    if end_of_turn {
        state.closed = Some(order);
        state.open = None;
    }
    Ok(())
}
