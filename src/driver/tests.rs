//! The driver without sockets or clocks: frames in, replies, records and decisions out.

use super::*;
use crate::library::Library;
use crate::protocol::adapters::{CallSetup, Format};
use crate::session::Reason;

const CARDS: &str = "\
id: price
title: Price
category: objection
body: isolate it
triggers: { any: [price], speaker: prospect }
cooldown_seconds: 60
max_per_call: 5
";

fn engine() -> Engine {
    let rival =
        "id: rival\ntitle: Rival\ncategory: competitor\nbody: b\ntriggers: { any: [acme] }\n";
    let deck = "max_cards_per_call: 20\nmin_gap_seconds: 0\n";
    Engine::new(
        Library::from_sources(
            &[
                ("price.yaml", CARDS),
                ("rival.yaml", rival),
                ("_deck.yaml", deck),
            ],
            "t",
        )
        .expect("valid library"),
    )
    .expect("engine")
}

/// A host with a fixed clock, numbered display ids and a fixed latency.
struct TestHost {
    now: Timestamp,
    ids: u32,
    parked: Option<Parked>,
    refuse: Option<Refusal>,
    /// A display id shown on the call by an earlier connection.
    shown_elsewhere: Option<String>,
    /// Another connection holds the call.
    wait: bool,
}

impl TestHost {
    fn new() -> TestHost {
        TestHost {
            now: Timestamp::parse("2026-12-01T10:00:00Z").unwrap(),
            ids: 0,
            parked: None,
            refuse: None,
            shown_elsewhere: None,
            wait: false,
        }
    }
}

impl Host for TestHost {
    fn now(&mut self) -> Timestamp {
        self.now
    }

    fn display_id(&mut self, now: Timestamp) -> String {
        self.ids += 1;
        format!("d{}@{}", self.ids, now.unix_ms())
    }

    fn engine_us(&mut self) -> u64 {
        7
    }

    fn admit(&mut self, _start: &Start) -> Admission {
        if self.wait {
            return Admission::Wait;
        }
        match (self.refuse.take(), self.parked.take()) {
            (Some(refusal), _) => Admission::Refuse(refusal),
            (None, Some(parked)) => Admission::Resume(parked),
            (None, None) => Admission::New,
        }
    }

    fn shown_on_call(&mut self, display_id: &str) -> bool {
        self.shown_elsewhere.as_deref() == Some(display_id)
    }
}

fn driver(max_errors: u32) -> CallDriver {
    let config = DriverConfig {
        max_errors_in_a_row: max_errors,
        ..DriverConfig::default()
    };
    CallDriver::new(config, Adapter::new(Format::Native, CallSetup::default()))
}

const START: &str = r#"{"type":"start","call_id":"c-1","deal_id":"d-1","context":{"stage":"evaluation","region":["emea"]}}"#;

fn line(text: &str, t_ms: Option<u64>) -> String {
    let t = t_ms.map(|t| format!(r#","t_ms":{t}"#)).unwrap_or_default();
    format!(r#"{{"type":"transcript","speaker":"prospect","text":"{text}","is_final":true{t}}}"#)
}

/// Feeds one frame; returns its output.
fn feed(d: &mut CallDriver, host: &mut TestHost, text: &str, received_ms: Option<u64>) -> Output {
    let mut out = Output::default();
    d.on_text(&engine(), text, received_ms, host, &mut out);
    out
}

#[test]
fn start_answers_ready_and_logs_the_call_with_its_context() {
    let (mut d, mut host) = (driver(10), TestHost::new());
    let out = feed(&mut d, &mut host, START, Some(5));
    let [Reply::Ready(ready)] = out.replies.as_slice() else {
        panic!("{:?}", out.replies)
    };
    let ready: serde_json::Value = serde_json::from_str(ready).unwrap();
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["call_id"], "c-1");
    assert_eq!(ready["cards"], 2);
    let [Record::CallStarted(row)] = out.records.as_slice() else {
        panic!("{:?}", out.records)
    };
    assert_eq!(row.deal_id.as_deref(), Some("d-1"));
    assert_eq!(row.context, r#"{"region":["emea"],"stage":["evaluation"]}"#);
    assert_eq!(row.started_at.to_string(), "2026-12-01T10:00:00.000Z");
    assert_eq!(out.frame.map(|f| f.kind), Some(Kind::Start));
    assert_eq!(d.call_id(), Some("c-1"));
    assert!(out.close.is_none());
}

#[test]
fn a_shown_card_has_its_frame_and_exposure_row_stamped_by_the_host() {
    let (mut d, mut host) = (driver(10), TestHost::new());
    feed(&mut d, &mut host, START, Some(0));
    let out = feed(
        &mut d,
        &mut host,
        &line("the price vs acme", Some(1500)),
        Some(9),
    );
    // Both cards fire on one message, highest priority first (ties by id).
    let ids: Vec<&str> = out.decisions.iter().map(|d| d.card.id.as_str()).collect();
    assert_eq!(ids, ["price", "rival"]);
    assert_eq!(out.replies.len(), 2);
    let Reply::Card { frame, .. } = &out.replies[0] else {
        panic!("{:?}", out.replies)
    };
    let frame: serde_json::Value = serde_json::from_str(frame).unwrap();
    assert_eq!(frame["card_id"], "price");
    assert_eq!(frame["display_id"], format!("d1@{}", host.now.unix_ms()));
    assert_eq!(frame["engine_us"], 7);
    assert_eq!(frame["trigger"]["t_ms"], 1500);
    let rows: Vec<&ExposureRow> = out
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Exposure(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].display_id, frame["display_id"]);
    assert_eq!(rows[0].ts.to_string(), "2026-12-01T10:00:00.000Z");
    assert_eq!(rows[0].deal_id.as_deref(), Some("d-1"));
    assert_eq!((rows[0].reason.as_str(), rows[0].engine_us), ("shown", 7));
    assert_eq!(out.texts.len(), 2);
    assert_eq!(&*out.texts[0], "the price vs acme");
}

#[test]
fn suppressed_decisions_are_logged_but_send_no_card() {
    let (mut d, mut host) = (driver(10), TestHost::new());
    feed(&mut d, &mut host, START, Some(0));
    feed(&mut d, &mut host, &line("price", Some(1_000)), None);
    let out = feed(&mut d, &mut host, &line("price again", Some(2_000)), None);
    assert_eq!(out.decisions.len(), 1);
    assert_eq!(out.decisions[0].reason, Reason::Cooldown);
    assert!(out.replies.is_empty(), "{:?}", out.replies);
    let [Record::Exposure(row)] = out.records.as_slice() else {
        panic!("{:?}", out.records)
    };
    assert_eq!((row.shown, row.reason.as_str()), (false, "cooldown"));
}

#[test]
fn call_time_is_t_ms_else_arrival_since_start_else_the_previous_clock() {
    let (mut d, mut host) = (driver(10), TestHost::new());
    feed(&mut d, &mut host, START, Some(1_000));
    // Live: no t_ms, so arrival (4,000 ms into the connection) minus the start's (1,000).
    let out = feed(&mut d, &mut host, &line("price", None), Some(4_000));
    assert_eq!(out.decisions[0].t_ms, 3_000);
    // A recording: no arrival time either, so the previous call time.
    let out = feed(&mut d, &mut host, &line("acme", None), None);
    assert_eq!(out.decisions[0].t_ms, 3_000);
    // A message's own t_ms wins over its arrival time.
    let out = feed(&mut d, &mut host, &line("acme", Some(9_000)), Some(1));
    assert_eq!(out.decisions[0].t_ms, 9_000);
}

#[test]
fn errors_count_in_a_row_and_close_at_the_limit() {
    let (mut d, mut host) = (driver(3), TestHost::new());
    let out = feed(&mut d, &mut host, &line("price", None), Some(0));
    assert_eq!(
        out.replies,
        [Reply::Error {
            code: ErrorCode::Protocol,
            message: "`transcript` before `start`".into()
        }]
    );
    let out = feed(&mut d, &mut host, "{oops", Some(0));
    assert_eq!(out.errors(), 1);
    assert!(out.frame.is_none(), "an invalid frame has no kind");
    assert!(out.close.is_none());
    // An accepted message resets the count.
    feed(&mut d, &mut host, START, Some(0));
    let mut out = Output::default();
    d.on_binary(&mut out);
    d.on_binary(&mut out);
    assert!(out.close.is_none());
    let out = feed(&mut d, &mut host, START, Some(0));
    assert_eq!(out.errors(), 1, "a second start is refused");
    assert_eq!(out.close, Some(Close::TooManyErrors));
}

#[test]
fn a_refused_start_answers_the_hosts_reason_and_skips_the_rest_of_the_frame() {
    let mut d = driver(10);
    let mut host = TestHost::new();
    host.refuse = Some(Refusal {
        code: ErrorCode::Limit,
        message: "too many calls".into(),
    });
    // A provider frame may carry a start and a transcript; the native adapter one message,
    // so feed the start alone and check nothing was started.
    let out = feed(&mut d, &mut host, START, Some(0));
    assert_eq!(
        out.replies,
        [Reply::Error {
            code: ErrorCode::Limit,
            message: "too many calls".into()
        }]
    );
    assert!(out.records.is_empty());
    assert!(d.call_id().is_none());
    assert!(d.finish(&mut host).is_none(), "no call, nothing to log");
}

#[test]
fn end_closes_ignores_what_follows_and_finish_hands_back_the_session() {
    let (mut d, mut host) = (driver(10), TestHost::new());
    feed(&mut d, &mut host, START, Some(0));
    let out = feed(&mut d, &mut host, r#"{"type":"end"}"#, Some(0));
    assert_eq!(out.close, Some(Close::Ended));
    let out = feed(&mut d, &mut host, &line("price", Some(1)), Some(0));
    assert!(out.decisions.is_empty() && out.replies.is_empty());
    host.now = host.now.add_ms(60_000);
    let finished = d.finish(&mut host).expect("started");
    assert_eq!(finished.parked.session.info().call_id, "c-1");
    assert_eq!(
        finished.record,
        Record::CallEnded {
            call_id: "c-1".into(),
            ended_at: Timestamp::parse("2026-12-01T10:01:00Z").unwrap()
        }
    );
}

#[test]
fn a_resumed_call_keeps_its_cooldowns() {
    let (mut d, mut host) = (driver(10), TestHost::new());
    feed(&mut d, &mut host, START, Some(0));
    feed(&mut d, &mut host, &line("price", Some(1_000)), None);
    let parked = d.finish(&mut host).expect("started").parked;

    let mut again = driver(10);
    host.parked = Some(parked);
    feed(&mut again, &mut host, START, Some(0));
    let out = feed(&mut again, &mut host, &line("price", Some(30_000)), None);
    assert_eq!(out.decisions[0].reason, Reason::Cooldown);
}

#[test]
fn feedback_is_logged_and_echo_puts_the_line_before_its_card() {
    let config = DriverConfig {
        echo_transcript: true,
        ..DriverConfig::default()
    };
    let mut d = CallDriver::new(config, Adapter::new(Format::Native, CallSetup::default()));
    let mut host = TestHost::new();
    feed(&mut d, &mut host, START, Some(0));
    let out = feed(&mut d, &mut host, &line("price", Some(10)), None);
    assert!(matches!(out.replies[0], Reply::Transcript(_)));
    assert!(matches!(out.replies[1], Reply::Card { .. }));
    let shown = display_ids(&out)[0].clone();
    let out = feed(&mut d, &mut host, &feedback(&shown), None);
    let [Record::Feedback(row)] = out.records.as_slice() else {
        panic!("{:?}", out.records)
    };
    assert_eq!(
        (row.display_id.as_str(), row.action.as_str()),
        (shown.as_str(), "not_useful")
    );
}

fn feedback(display_id: &str) -> String {
    format!(r#"{{"type":"feedback","display_id":"{display_id}","action":"not_useful"}}"#)
}

/// The display ids of the exposure rows in `out`.
fn display_ids(out: &Output) -> Vec<String> {
    out.records
        .iter()
        .filter_map(|r| match r {
            Record::Exposure(e) => Some(e.display_id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_resumed_call_takes_the_new_deal_and_its_clock_never_goes_back() {
    let (mut d, mut host) = (driver(10), TestHost::new());
    feed(&mut d, &mut host, START, Some(0));
    feed(&mut d, &mut host, &line("acme", Some(30_000)), None);
    let parked = d.finish(&mut host).expect("started").parked;

    // The bridge reconnects knowing the deal, and its provider restarts its clock at 0.
    let mut again = driver(10);
    host.parked = Some(parked);
    let start = START.replace("d-1", "d-2");
    let out = feed(&mut again, &mut host, &start, Some(0));
    let [Record::CallStarted(row)] = out.records.as_slice() else {
        panic!("{:?}", out.records)
    };
    assert_eq!(row.deal_id.as_deref(), Some("d-2"));
    let out = feed(&mut again, &mut host, &line("price", Some(1_000)), None);
    assert_eq!(
        out.decisions[0].t_ms, 30_000,
        "continues at the last call time"
    );
    let [Record::Exposure(row)] = out.records.as_slice() else {
        panic!("{:?}", out.records)
    };
    assert_eq!(
        row.deal_id.as_deref(),
        Some("d-2"),
        "the new deal is logged"
    );
    // Later messages keep the offset: 61 s on the provider's clock is 90 s on the call's,
    // so the card's 60 s cooldown has passed (it would not have without the offset).
    let out = feed(&mut again, &mut host, &line("price", Some(61_000)), None);
    assert_eq!(out.decisions[0].t_ms, 90_000);
    assert_eq!(out.decisions[0].reason, Reason::Shown);
}

#[test]
fn feedback_for_a_display_not_shown_on_the_call_is_refused() {
    let (mut d, mut host) = (driver(10), TestHost::new());
    feed(&mut d, &mut host, START, Some(0));
    let out = feed(&mut d, &mut host, &feedback("01JDNOTSHOWN"), Some(0));
    assert!(out.records.is_empty(), "{:?}", out.records);
    let [Reply::Error { code, .. }] = out.replies.as_slice() else {
        panic!("{:?}", out.replies)
    };
    assert_eq!(*code, ErrorCode::BadMessage);
    // A display shown on the call earlier (another connection: the host knows it) is fine.
    host.shown_elsewhere = Some("01JDEARLIER".into());
    let out = feed(&mut d, &mut host, &feedback("01JDEARLIER"), Some(0));
    assert_eq!(out.records.len(), 1);
}

#[test]
fn feedback_does_not_reset_the_errors_in_a_row() {
    let (mut d, mut host) = (driver(3), TestHost::new());
    feed(&mut d, &mut host, START, Some(0));
    let out = feed(&mut d, &mut host, &line("price", Some(1)), Some(0));
    let shown = display_ids(&out)[0].clone();
    feed(&mut d, &mut host, "{oops", Some(0));
    feed(&mut d, &mut host, &feedback(&shown), Some(0));
    feed(&mut d, &mut host, "{oops", Some(0));
    feed(&mut d, &mut host, &feedback(&shown), Some(0));
    let out = feed(&mut d, &mut host, "{oops", Some(0));
    assert_eq!(out.close, Some(Close::TooManyErrors));
}

#[test]
fn feedback_over_its_rate_gets_limit() {
    let config = DriverConfig {
        feedback_per_second: 2,
        ..DriverConfig::default()
    };
    let mut d = CallDriver::new(config, Adapter::new(Format::Native, CallSetup::default()));
    let mut host = TestHost::new();
    feed(&mut d, &mut host, START, Some(0));
    let out = feed(&mut d, &mut host, &line("price", Some(1)), Some(0));
    let shown = display_ids(&out)[0].clone();
    // A burst of twice the rate is taken, then the bucket is empty.
    let codes: Vec<Option<ErrorCode>> = (0..5)
        .map(|_| {
            let out = feed(&mut d, &mut host, &feedback(&shown), Some(1_000));
            out.replies.iter().find_map(|r| match r {
                Reply::Error { code, .. } => Some(*code),
                _ => None,
            })
        })
        .collect();
    assert_eq!(codes, [None, None, None, None, Some(ErrorCode::Limit)]);
    // Half a second later one more token is there.
    let out = feed(&mut d, &mut host, &feedback(&shown), Some(1_500));
    assert_eq!(out.errors(), 0);
}

#[test]
fn a_start_that_waits_for_its_call_keeps_the_rest_of_its_frame() {
    let (mut d, mut host) = (driver(10), TestHost::new());
    host.wait = true;
    let out = feed(&mut d, &mut host, START, Some(0));
    assert!(out.waiting);
    assert!(out.replies.is_empty() && d.call_id().is_none());
    // The other connection let go and left its state: the call resumes.
    let mut first = driver(10);
    let mut other = TestHost::new();
    feed(&mut first, &mut other, START, Some(0));
    feed(&mut first, &mut other, &line("price", Some(5_000)), None);
    let parked = first.finish(&mut other).expect("started").parked;
    let mut out = Output::default();
    d.admitted(&engine(), Admission::Resume(parked), &mut host, &mut out);
    assert!(matches!(out.replies[0], Reply::Ready(_)));
    let out = feed(&mut d, &mut host, &line("price", Some(1_000)), None);
    assert_eq!(
        out.decisions[0].reason,
        Reason::Cooldown,
        "resumed, not new"
    );
}
