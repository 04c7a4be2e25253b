//! WhisperLive (`collabora/WhisperLive`): every message re-sends the last N completed
//! segments plus the current incomplete one. A completed segment that ends after the last
//! one already finalized is new (it closes the open segment, or opens and closes its own);
//! older ones are re-sends and skipped. The incomplete segment is the open segment's
//! interim, sent again only when its text changes. Segment ids: `wl-{n}`. The label is the
//! segment's `speaker` (present with diarization). Times are strings of seconds
//! (`"12.340"`); `t_ms` = `end`. Messages without `completed` (older servers) treat every
//! segment but the last as completed. Control messages (`SERVER_READY`, `DISCONNECT`,
//! `WAIT`, language detection) are accepted and ignored.

use super::json::At;
use super::{Emit, Kind, parse_seconds, seconds_to_ms};

#[derive(Debug, Default)]
pub(super) struct State {
    /// Segments opened so far.
    next: u64,
    /// The segment the incomplete text belongs to.
    open: Option<u64>,
    /// The text last sent for the open segment.
    last_interim: String,
    /// The end of the latest finalized segment.
    final_end_ms: Option<u64>,
}

/// `"12.340"` or a number of seconds.
fn seconds(at: &At<'_>) -> Result<u64, String> {
    match at.str() {
        Ok(text) => parse_seconds(at, text),
        Err(_) => at.non_negative().map(seconds_to_ms).map_err(|_| {
            format!(
                "{} must be a string of seconds such as \"12.340\"",
                at.name()
            )
        }),
    }
}

pub(super) fn decode(state: &mut State, msg: &At<'_>, emit: &mut Emit<'_>) -> Result<Kind, String> {
    let Some(segments) = msg.get("segments") else {
        if ["message", "status", "language"].iter().any(|f| msg.has(f)) {
            return Ok(Kind::WhisperLiveStatus);
        }
        msg.object()?;
        return Err("missing field `segments` (or `message`, `status`)".to_string());
    };
    let segments = segments.array()?;
    let count = segments.len();
    for (i, seg) in segments.iter().enumerate() {
        let completed = match seg.get("completed") {
            Some(c) => c.bool()?,
            None => i + 1 < count,
        };
        let end_ms = seconds(&seg.req("end")?)?;
        seconds(&seg.req("start")?)?;
        let text = seg.req("text")?.str()?.trim();
        let label = seg.get("speaker").map(|s| s.label()).transpose()?;
        if completed {
            if state.final_end_ms.is_some_and(|e| end_ms <= e) {
                continue; // re-sent
            }
            state.final_end_ms = Some(end_ms);
            let open = state.open.take();
            state.last_interim.clear();
            if text.is_empty() && open.is_none() {
                continue;
            }
            let n = open.unwrap_or_else(|| next(state));
            emit.transcript(&format!("wl-{n}"), label.as_deref(), text, true, end_ms);
        } else {
            if text.is_empty() || (state.open.is_some() && text == state.last_interim) {
                continue;
            }
            let n = match state.open {
                Some(n) => n,
                None => {
                    let n = next(state);
                    state.open = Some(n);
                    n
                }
            };
            state.last_interim.clear();
            state.last_interim.push_str(text);
            emit.transcript(&format!("wl-{n}"), label.as_deref(), text, false, end_ms);
        }
    }
    Ok(Kind::WhisperLiveSegments)
}

fn next(state: &mut State) -> u64 {
    let n = state.next;
    state.next += 1;
    n
}
