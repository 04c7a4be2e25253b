//! Backtests over recorded calls: `cuedeck replay --summary` (per card: how often it fires,
//! on how many calls, for whom, with examples) and `--diff OLD_CARDS_DIR` (the decisions a
//! library change adds or removes). "Is my new trigger noisy?" before publishing.
//!
//! Reading files happens here; replaying is [`crate::replay`], converting
//! [`crate::convert`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::convert::{self, HvbText};
use crate::engine::Engine;
use crate::library::Library;
use crate::protocol::adapters::{Adapter, CallSetup};
use crate::replay::{self, InputFormat, Replayed};
use crate::session::Decision;

/// A recorded call that could not be read or replayed.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no call files (*.json, *.jsonl, *.ndjson) in this directory", path.display())]
    EmptyDir { path: PathBuf },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Call { path: PathBuf, message: String },
}

/// How the recorded calls are read.
#[derive(Debug, Clone)]
pub struct Input {
    pub format: InputFormat,
    /// Call set-up for streams without a native `start`; `call_id` defaults to the file
    /// name without its extension.
    pub setup: CallSetup,
    /// Which HVB transcript (`--format hvb` only).
    pub text: HvbText,
}

/// One replayed file.
#[derive(Debug)]
pub struct CallRun {
    pub file: PathBuf,
    pub replayed: Replayed,
}

const CALL_EXTENSIONS: [&str; 3] = ["json", "jsonl", "ndjson"];

/// Files as given, and each directory's `*.json`, `*.jsonl`, `*.ndjson` files (not
/// recursive), sorted by name.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, BacktestError> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let io = |source| BacktestError::Io {
            path: path.clone(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io)? {
            let p = entry.map_err(io)?.path();
            let is_call = p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| CALL_EXTENSIONS.contains(&e));
            if is_call && p.is_file() {
                files.push(p);
            }
        }
        if files.is_empty() {
            return Err(BacktestError::EmptyDir { path: path.clone() });
        }
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

/// The input's set-up for one file: `call_id` defaults to the file stem.
fn setup_for(input: &Input, path: &Path) -> CallSetup {
    let mut setup = input.setup.clone();
    if setup.call_id.is_none() {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "call".to_string());
        setup.call_id = Some(stem);
    }
    setup
}

/// Reads and replays one recorded call.
pub fn replay_file(engine: &Engine, path: &Path, input: &Input) -> Result<Replayed, BacktestError> {
    let text = std::fs::read_to_string(path).map_err(|source| BacktestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let setup = setup_for(input, path);
    let line_error = |e: replay::ReplayError| BacktestError::Line {
        path: path.to_path_buf(),
        line: e.line,
        message: e.message,
    };
    match input.format {
        InputFormat::Stream(format) => {
            replay::replay_stream(engine, Adapter::new(format, setup), &text).map_err(line_error)
        }
        InputFormat::Hvb => {
            let segments =
                convert::parse_hvb(&text, input.text).map_err(|e| BacktestError::Call {
                    path: path.to_path_buf(),
                    message: e.message,
                })?;
            let native = convert::to_native(&segments, &setup);
            replay::replay_native(engine, &native).map_err(line_error)
        }
    }
}

/// Replays every file.
pub fn replay_all(
    engine: &Engine,
    files: &[PathBuf],
    input: &Input,
) -> Result<Vec<CallRun>, BacktestError> {
    files
        .iter()
        .map(|f| {
            Ok(CallRun {
                file: f.clone(),
                replayed: replay_file(engine, f, input)?,
            })
        })
        .collect()
}

/// `mm:ss.mmm` on the call clock.
pub fn format_clock(t_ms: u64) -> String {
    format!(
        "{:02}:{:02}.{:03}",
        t_ms / 60_000,
        (t_ms / 1000) % 60,
        t_ms % 1000
    )
}

/// At most this many characters of an example's transcript (its end: where the phrase
/// completed).
const SNIPPET_CHARS: usize = 100;
const EXAMPLES_PER_CARD: usize = 3;

fn snippet(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= SNIPPET_CHARS {
        return text.to_string();
    }
    let tail: String = text.chars().skip(chars - SNIPPET_CHARS).collect();
    format!("…{}", tail.trim_start())
}

/// A decision, owned, in `replay --json` field order.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub call_id: String,
    pub t_ms: u64,
    pub card_id: String,
    pub variant: Option<String>,
    pub shown: bool,
    pub reason: &'static str,
    pub phrase: String,
    pub speaker: &'static str,
    pub segment_id: String,
}

impl Row {
    fn new(call_id: &str, d: &Decision) -> Row {
        Row {
            call_id: call_id.to_string(),
            t_ms: d.t_ms,
            card_id: d.card.id.clone(),
            variant: d.variant_id().map(str::to_string),
            shown: d.shown(),
            reason: d.reason.as_str(),
            phrase: d.phrase.to_string(),
            speaker: d.speaker.as_str(),
            segment_id: d.segment_id.to_string(),
        }
    }

    fn render(&self) -> String {
        let variant = self
            .variant
            .as_ref()
            .map(|v| format!(" [{v}]"))
            .unwrap_or_default();
        format!(
            "{}  {:>9}  {:<8}  {:<12}  {}{variant}  on {:?} ({})",
            self.call_id,
            format_clock(self.t_ms),
            self.speaker,
            self.reason,
            self.card_id,
            self.phrase,
            self.segment_id
        )
    }
}

/// One example of a card firing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Example {
    pub call_id: String,
    pub t_ms: u64,
    pub speaker: &'static str,
    pub phrase: String,
    /// The end of the transcript the card fired on.
    pub text: String,
}

/// How one card behaved over the calls. A fire is a decision: the card's triggers held
/// (shown, or suppressed by the display policy or a control arm).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CardSummary {
    pub card_id: String,
    pub fires: usize,
    pub fires_per_100_calls: f64,
    pub calls_with_fire: usize,
    pub shown: usize,
    pub rep: usize,
    pub prospect: usize,
    pub examples: Vec<Example>,
}

/// `replay --summary`: every card of the library, most fires first.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub calls: usize,
    pub decisions: usize,
    pub shown: usize,
    pub cards: Vec<CardSummary>,
}

/// Tallies the calls' decisions per card.
pub fn summarize(library: &Library, runs: &[CallRun]) -> Summary {
    let mut cards: BTreeMap<&str, CardSummary> = library
        .cards()
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                CardSummary {
                    card_id: c.id.clone(),
                    fires: 0,
                    fires_per_100_calls: 0.0,
                    calls_with_fire: 0,
                    shown: 0,
                    rep: 0,
                    prospect: 0,
                    examples: Vec::new(),
                },
            )
        })
        .collect();
    let mut decisions = 0;
    let mut shown = 0;
    for run in runs {
        let r = &run.replayed;
        let mut fired_here: Vec<&str> = Vec::new();
        for (i, d) in r.decisions.iter().enumerate() {
            decisions += 1;
            shown += usize::from(d.shown());
            let Some(card) = cards.get_mut(d.card.id.as_str()) else {
                continue;
            };
            card.fires += 1;
            card.shown += usize::from(d.shown());
            match d.speaker {
                crate::library::Speaker::Rep => card.rep += 1,
                crate::library::Speaker::Prospect => card.prospect += 1,
            }
            if !fired_here.contains(&d.card.id.as_str()) {
                fired_here.push(&d.card.id);
                card.calls_with_fire += 1;
                // One example per call, from the first few calls.
                if card.examples.len() < EXAMPLES_PER_CARD {
                    card.examples.push(Example {
                        call_id: r.info.call_id.clone(),
                        t_ms: d.t_ms,
                        speaker: d.speaker.as_str(),
                        phrase: d.phrase.to_string(),
                        text: snippet(r.texts.get(i).map(|t| &**t).unwrap_or("")),
                    });
                }
            }
        }
    }
    let calls = runs.len();
    let mut cards: Vec<CardSummary> = cards.into_values().collect();
    for c in &mut cards {
        if calls > 0 {
            c.fires_per_100_calls = (c.fires as f64 * 1000.0 / calls as f64).round() / 10.0;
        }
    }
    cards.sort_by(|a, b| {
        b.fires
            .cmp(&a.fires)
            .then_with(|| a.card_id.cmp(&b.card_id))
    });
    Summary {
        calls,
        decisions,
        shown,
        cards,
    }
}

impl Summary {
    /// The human-readable table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let fired: Vec<&CardSummary> = self.cards.iter().filter(|c| c.fires > 0).collect();
        let _ = writeln!(
            out,
            "{} calls, {} decisions ({} shown), {} of {} cards fired",
            self.calls,
            self.decisions,
            self.shown,
            fired.len(),
            self.cards.len()
        );
        if !fired.is_empty() {
            let width = fired
                .iter()
                .map(|c| c.card_id.len())
                .max()
                .unwrap_or(4)
                .max(4);
            let _ = writeln!(
                out,
                "\n{:<width$}  {:>5}  {:>10}  {:>5}  {:>5}  {:>5}  {:>8}",
                "card", "fires", "per 100", "calls", "shown", "rep", "prospect"
            );
            for c in &fired {
                let _ = writeln!(
                    out,
                    "{:<width$}  {:>5}  {:>10.1}  {:>5}  {:>5}  {:>5}  {:>8}",
                    c.card_id,
                    c.fires,
                    c.fires_per_100_calls,
                    c.calls_with_fire,
                    c.shown,
                    c.rep,
                    c.prospect
                );
                for e in &c.examples {
                    let _ = writeln!(
                        out,
                        "    {}  {}  {}  on {:?}: {:?}",
                        e.call_id,
                        format_clock(e.t_ms),
                        e.speaker,
                        e.phrase,
                        e.text
                    );
                }
            }
        }
        let silent: Vec<&str> = self
            .cards
            .iter()
            .filter(|c| c.fires == 0)
            .map(|c| c.card_id.as_str())
            .collect();
        if !silent.is_empty() {
            let _ = writeln!(
                out,
                "\nnever fired ({}): {}",
                silent.len(),
                silent.join(", ")
            );
        }
        out
    }
}

/// One decision a library change adds or removes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    /// `added` or `removed`.
    pub change: &'static str,
    #[serde(flatten)]
    pub decision: Row,
}

/// `replay --diff`: decisions of the new library that the old one did not make (added)
/// and the other way round (removed), call by call.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Diff {
    pub calls: usize,
    pub changes: Vec<Change>,
}

/// Compares two replays of the same files (same order) under two libraries.
pub fn diff(old: &[CallRun], new: &[CallRun]) -> Diff {
    let mut changes = Vec::new();
    for (o, n) in old.iter().zip(new) {
        let rows = |r: &Replayed| -> BTreeMap<Row, usize> {
            let mut m = BTreeMap::new();
            for d in &r.decisions {
                *m.entry(Row::new(&r.info.call_id, d)).or_insert(0) += 1;
            }
            m
        };
        let (before, after) = (rows(&o.replayed), rows(&n.replayed));
        let mut call_changes = Vec::new();
        for (row, count) in &after {
            let extra = count.saturating_sub(before.get(row).copied().unwrap_or(0));
            for _ in 0..extra {
                call_changes.push(Change {
                    change: "added",
                    decision: row.clone(),
                });
            }
        }
        for (row, count) in &before {
            let gone = count.saturating_sub(after.get(row).copied().unwrap_or(0));
            for _ in 0..gone {
                call_changes.push(Change {
                    change: "removed",
                    decision: row.clone(),
                });
            }
        }
        call_changes.sort_by(|a, b| {
            (a.decision.t_ms, &a.decision.card_id, a.change).cmp(&(
                b.decision.t_ms,
                &b.decision.card_id,
                b.change,
            ))
        });
        changes.extend(call_changes);
    }
    Diff {
        calls: new.len(),
        changes,
    }
}

impl Diff {
    pub fn added(&self) -> usize {
        self.changes.iter().filter(|c| c.change == "added").count()
    }

    pub fn removed(&self) -> usize {
        self.changes.len() - self.added()
    }

    /// `+`/`-` lines, then the count per card.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let sign = if c.change == "added" { '+' } else { '-' };
            let _ = writeln!(out, "{sign} {}", c.decision.render());
        }
        if self.changes.is_empty() {
            let _ = writeln!(out, "{} calls: no decision changed", self.calls);
            return out;
        }
        let _ = writeln!(
            out,
            "{} calls: +{} -{} decisions",
            self.calls,
            self.added(),
            self.removed()
        );
        let mut per_card: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for c in &self.changes {
            let e = per_card.entry(&c.decision.card_id).or_default();
            if c.change == "added" {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        for (card, (added, removed)) in per_card {
            let _ = writeln!(out, "  {card}  +{added} -{removed}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::replay_native;

    fn engine(cards: &[(&str, &str)]) -> Engine {
        let sources: Vec<(String, String)> = cards
            .iter()
            .map(|(id, phrase)| {
                (
                    format!("{id}.yaml"),
                    format!(
                        "id: {id}\ntitle: T\ncategory: other\nbody: b\ntriggers: {{ any: [\"{phrase}\"], speaker: any }}\n"
                    ),
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = sources
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        Engine::new(Library::from_sources(&refs, "t").unwrap()).unwrap()
    }

    const CALL: &str = r#"{"type":"start","call_id":"c1"}
{"type":"transcript","segment_id":"a","speaker":"prospect","text":"my debit card","is_final":true,"t_ms":1000}
{"type":"transcript","segment_id":"b","speaker":"rep","text":"which card","is_final":true,"t_ms":2000}
"#;

    fn run(engine: &Engine) -> Vec<CallRun> {
        vec![CallRun {
            file: "c1.jsonl".into(),
            replayed: replay_native(engine, CALL).unwrap(),
        }]
    }

    #[test]
    fn summary_counts_fires_calls_and_speakers() {
        let e = engine(&[("card", "card"), ("never", "zebra")]);
        let s = summarize(e.library(), &run(&e));
        assert_eq!(s.calls, 1);
        let card = &s.cards[0];
        assert_eq!(card.card_id, "card");
        // The default cooldown suppresses the second fire: both are fires.
        assert_eq!((card.fires, card.shown, card.calls_with_fire), (2, 1, 1));
        assert_eq!((card.rep, card.prospect), (1, 1));
        assert_eq!(card.fires_per_100_calls, 200.0);
        assert_eq!(card.examples[0].text, "my debit card");
        assert_eq!(s.cards[1].fires, 0);
        let text = s.render();
        assert!(text.contains("never fired (1): never"), "{text}");
    }

    #[test]
    fn diff_lists_added_and_removed_decisions() {
        let old = engine(&[("card", "card")]);
        let new = engine(&[("card", "card"), ("debit", "debit card")]);
        let d = diff(&run(&old), &run(&new));
        assert_eq!((d.added(), d.removed()), (1, 0));
        assert_eq!(d.changes[0].decision.card_id, "debit");
        let back = diff(&run(&new), &run(&old));
        assert_eq!((back.added(), back.removed()), (0, 1));
        assert!(back.render().starts_with("- c1"), "{}", back.render());
        assert!(
            diff(&run(&old), &run(&old))
                .render()
                .contains("no decision changed")
        );
    }

    #[test]
    fn long_snippets_keep_the_end() {
        let text = format!("{} the price is too high", "word ".repeat(40));
        let s = snippet(&text);
        assert!(
            s.starts_with('…') && s.ends_with("the price is too high"),
            "{s}"
        );
        assert!(s.chars().count() <= SNIPPET_CHARS + 1);
    }
}
