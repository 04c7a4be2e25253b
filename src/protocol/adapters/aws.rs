//! Amazon Transcribe streaming `TranscriptEvent` (on the wire wrapped as
//! `{"TranscriptResultStream":{"TranscriptEvent":{"Transcript":{…}}}}`; the bare
//! `TranscriptEvent` and `Transcript` objects SDKs hand out are accepted too). One
//! `ResultId` is one segment until `IsPartial` is false; the segment id is the `ResultId`.
//! The label is the items' `Speaker` (split into runs when they differ), else the result's
//! `ChannelId` (`"ch_0"`). Times are float seconds; `t_ms` = the result's `EndTime`. An
//! event with no results, or only empty ones, is accepted and ignored.

use super::json::At;
use super::{Emit, Kind, MAX_PROVIDER_ID, Word, seconds_to_ms, speaker_runs};

const EXCEPTIONS: [&str; 5] = [
    "BadRequestException",
    "LimitExceededException",
    "InternalFailureException",
    "ConflictException",
    "ServiceUnavailableException",
];

pub(super) fn decode(msg: &At<'_>, emit: &mut Emit<'_>) -> Result<Kind, String> {
    msg.object()?;
    let transcript = if let Some(stream) = msg.get("TranscriptResultStream") {
        stream.req("TranscriptEvent")?.req("Transcript")?
    } else if let Some(event) = msg.get("TranscriptEvent") {
        event.req("Transcript")?
    } else if let Some(transcript) = msg.get("Transcript") {
        transcript
    } else {
        if let Some(name) = EXCEPTIONS.iter().find(|n| msg.has(n)) {
            return Err(format!("Transcribe sent `{name}`, not a transcript"));
        }
        return Err(
            "missing field `TranscriptResultStream` (or `TranscriptEvent`, `Transcript`)"
                .to_string(),
        );
    };
    for result in transcript.req("Results")?.array()? {
        one_result(&result, emit)?;
    }
    Ok(Kind::AwsTranscriptEvent)
}

fn one_result(r: &At<'_>, emit: &mut Emit<'_>) -> Result<(), String> {
    let id_at = r.req("ResultId")?;
    let id = id_at.str()?;
    if id.is_empty() || id.len() > MAX_PROVIDER_ID || id.chars().any(char::is_control) {
        return Err(format!(
            "{} must be 1 to {MAX_PROVIDER_ID} bytes without control characters",
            id_at.name()
        ));
    }
    let is_final = !r.req("IsPartial")?.bool()?;
    let end_ms = seconds_to_ms(r.req("EndTime")?.non_negative()?);
    let channel = r.get("ChannelId").map(|c| c.label()).transpose()?;
    let Some(alt) = r
        .get("Alternatives")
        .map(|a| a.first())
        .transpose()?
        .flatten()
    else {
        return Ok(());
    };
    let text = match alt.get("Transcript") {
        Some(t) => t.str()?,
        None => "",
    };
    let items = match alt.get("Items") {
        Some(i) => i.array()?,
        None => Vec::new(),
    };
    let mut words = Vec::with_capacity(items.len());
    let mut last_end = 0;
    for item in &items {
        let attach = match item.get("Type") {
            Some(t) => t.str()? == "punctuation",
            None => false,
        };
        let end = match item.get("EndTime") {
            Some(e) => seconds_to_ms(e.non_negative()?),
            None if attach => last_end,
            None => return Err(format!("missing field `{}.EndTime`", item.path())),
        };
        last_end = end;
        words.push(Word {
            text: item.req("Content")?.str()?,
            label: item.get("Speaker").map(|s| s.label()).transpose()?,
            end_ms: end,
            attach,
        });
    }
    if words.iter().any(|w| w.label.is_some()) {
        emit.runs(id, &speaker_runs(&words), is_final, end_ms);
    } else if !text.trim().is_empty() {
        emit.transcript(id, channel.as_deref(), text, is_final, end_ms);
    }
    Ok(())
}
