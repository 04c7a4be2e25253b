//! Adapter internals; the per-provider conformance tests are in `tests/adapters.rs`.

use super::*;

fn word<'a>(text: &'a str, label: Option<&str>, end_ms: u64, attach: bool) -> Word<'a> {
    Word {
        text,
        label: label.map(str::to_string),
        end_ms,
        attach,
    }
}

#[test]
fn words_split_into_speaker_runs() {
    let words = [
        word("hello", None, 100, false),
        word("there", Some("0"), 200, false),
        word(",", None, 200, true),
        word("hi", Some("1"), 300, false),
        word("again", Some("0"), 400, false),
    ];
    let runs = speaker_runs(&words);
    let got: Vec<(Option<&str>, &str, u64)> = runs
        .iter()
        .map(|r| (r.label.as_deref(), r.text.as_str(), r.end_ms))
        .collect();
    assert_eq!(
        got,
        [
            (Some("0"), "hello there,", 200),
            (Some("1"), "hi", 300),
            (Some("0"), "again", 400)
        ]
    );
}

#[test]
fn query_parameters_set_the_call_up() {
    let s =
        CallSetup::from_query("format=aws&call_id=c%2D1+x&deal_id=d-9&rep_channel=ch_0&token=t")
            .unwrap();
    assert_eq!(s.call_id.as_deref(), Some("c-1 x"));
    assert_eq!(s.deal_id.as_deref(), Some("d-9"));
    assert_eq!(s.rep_label.as_deref(), Some("ch_0"));
    let start = s.start().unwrap();
    assert_eq!(start.speakers["ch_0"], Speaker::Rep);

    let e = CallSetup::from_query("rep_channel=0&rep_speaker=A").unwrap_err();
    assert!(e.contains("`rep_channel` and `rep_speaker`"), "{e}");
    let e = CallSetup::from_query("call_id=").unwrap_err();
    assert!(e.contains("`call_id` must be"), "{e}");
    let e = CallSetup::from_query("call_id=%ZZ").unwrap_err();
    assert!(e.contains("percent-encoded"), "{e}");
    assert_eq!(CallSetup::from_query("").unwrap(), CallSetup::default());
}

#[test]
fn query_values_are_decoded_as_utf8_or_refused() {
    let s = CallSetup::from_query("call_id=caf%C3%A9&rep_speaker=a%26b").unwrap();
    assert_eq!(s.call_id.as_deref(), Some("café"));
    assert_eq!(s.rep_label.as_deref(), Some("a&b"));
    for bad in ["call_id=%FF", "call_id=x%2", "deal_id=%G0"] {
        let e = CallSetup::from_query(bad).unwrap_err();
        assert!(e.contains("percent-encoded"), "{bad}: {e}");
    }
}

#[test]
fn unknown_format_lists_the_formats() {
    let e = "vosk".parse::<Format>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown format `vosk`, expected one of native, deepgram, assemblyai, aws, google, whisperlive"
    );
    for f in Format::ALL {
        assert_eq!(f.as_str().parse::<Format>(), Ok(f));
    }
}

#[test]
fn a_start_without_speakers_takes_the_query_rep_label() {
    let setup = CallSetup {
        rep_label: Some("1".into()),
        ..CallSetup::default()
    };
    let mut a = Adapter::new(Format::Deepgram, setup);
    let out = a.decode(r#"{"type":"start","call_id":"c"}"#).unwrap();
    let ClientMsg::Start(s) = &out.messages[0] else {
        panic!("{out:?}")
    };
    assert_eq!(s.speakers["1"], Speaker::Rep);
    let out = a
        .decode(r#"{"type":"Results","channel_index":[0,2],"start":0,"duration":1,"is_final":true,"channel":{"alternatives":[{"transcript":"hi"}]}}"#)
        .unwrap();
    // Label 0 is not the rep: the prospect, by definition, so not counted as unmapped.
    assert_eq!(out.unmapped_speakers, 0);
    let ClientMsg::Transcript(t) = &out.messages[0] else {
        panic!()
    };
    assert_eq!(t.speaker, Some(Speaker::Prospect));
}

#[test]
fn native_errors_in_a_provider_stream_name_the_adapter() {
    let mut a = Adapter::new(Format::Aws, CallSetup::default());
    let e = a.decode(r#"{"type":"start"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    assert!(
        e.message
            .starts_with("aws: `start` message: line 1 column 16: missing field `call_id`"),
        "{e}"
    );
    let e = a.decode("[1]").unwrap_err();
    assert_eq!(
        e.message,
        "aws: the message must be a JSON object, found a list"
    );
    let e = a.decode("{").unwrap_err();
    assert!(
        e.message.starts_with("aws: line 1 column 1: invalid JSON"),
        "{e}"
    );
}

#[test]
fn kinds_are_the_metrics_type_labels() {
    for kind in Kind::ALL {
        assert!(
            crate::server::metrics::MESSAGE_KINDS.contains(&kind.as_str()),
            "{kind:?} is not counted by the metrics"
        );
    }
}

#[test]
fn a_malformed_first_message_does_not_swallow_the_query_start() {
    let mut a = Adapter::new(
        Format::Deepgram,
        CallSetup {
            call_id: Some("c".into()),
            ..CallSetup::default()
        },
    );
    assert!(a.decode(r#"{"type":"Results"}"#).is_err());
    let out = a.decode(r#"{"type":"Metadata"}"#).unwrap();
    assert!(matches!(out.messages[..], [ClientMsg::Start(_)]), "{out:?}");
    assert_eq!(out.kind(), "Metadata");
    let out = a.decode(r#"{"type":"Metadata"}"#).unwrap();
    assert!(out.ignored());
}
