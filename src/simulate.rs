//! `cuedeck simulate`: fills a store with a realistic experiment so the report and the
//! dashboard have something to show on a fresh install, and so the report can be checked
//! against a known true effect.
//!
//! Every deal gets one to three calls spread over the last `days` days. Each call runs
//! through the real [`Session`] with a prospect line that fires the experiment's card, so
//! arms, exposures and suppressions are exactly what `serve` would log. Deals close 7 to 75
//! days after their first call (still open if that is after now); the baseline arm (the
//! control, else the first variant) wins with `base_rate`, every other arm with
//! `base_rate × (1 + lift)`: the true relative lift of the win rate is `lift`. Won amounts
//! are log-normal around 12,000 USD; a tenth of the deals first report an `open` update, so
//! the outcome history is exercised too. Deterministic for a given seed.

use time::{Duration, OffsetDateTime};

use crate::engine::Engine;
use crate::library::{Card, Experiment};
use crate::outcomes::format_utc;
use crate::rules::CallContext;
use crate::session::{CallInfo, Decision, Session, SessionLimits, Utterance};
use crate::store::{CallRow, ExposureRow, FinishedCall, OutcomeRow, Store, StoreError};

/// Calls per write transaction.
const BATCH: usize = 5_000;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimParams {
    /// Experiment key; default the library's first experiment.
    pub experiment: Option<String>,
    pub deals: u64,
    /// True relative lift of every treatment arm's win rate over the baseline.
    pub lift: f64,
    /// The baseline arm's win rate among closed deals.
    pub base_rate: f64,
    pub seed: u64,
    /// First calls are spread over this many days before `now`.
    pub days: u32,
    pub now: OffsetDateTime,
}

impl SimParams {
    pub fn new(deals: u64, lift: f64, seed: u64) -> SimParams {
        SimParams {
            experiment: None,
            deals,
            lift,
            base_rate: 0.25,
            seed,
            days: 180,
            now: OffsetDateTime::now_utc(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSummary {
    pub experiment_key: String,
    pub card_id: String,
    pub deals: u64,
    pub calls: u64,
    pub exposures: u64,
    pub outcome_rows: u64,
    /// Per variant: (id, deals, true win rate).
    pub variants: Vec<(String, u64, f64)>,
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the card library has no experiment to simulate")]
    NoExperiment,
    #[error("no experiment `{key}` in the card library (experiments: {known})")]
    UnknownExperiment { key: String, known: String },
    #[error("bad parameter: {0}")]
    BadParam(String),
    #[error("card `{0}` did not fire on its own example line, so no exposure can be simulated")]
    NoTrigger(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// SplitMix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// The line a prospect says to fire the card: its first `fire` example, else its first
/// phrase (plus every `all` group's first phrase).
fn trigger_line(card: &Card) -> String {
    if let Some((line, _)) = card.examples.fire.first() {
        return line.clone();
    }
    let mut words: Vec<&str> = card
        .triggers
        .any
        .iter()
        .take(1)
        .map(|p| p.text.as_str())
        .collect();
    for group in &card.triggers.all {
        if let Some(p) = group.first() {
            words.push(&p.text);
        }
    }
    words.join(" ")
}

/// A call context that satisfies the card's `when`.
fn context_for(card: &Card) -> CallContext {
    CallContext(
        card.when
            .conditions
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), vec![v.first()?.clone()])))
            .collect(),
    )
}

/// Runs the simulation into `store`.
pub async fn run(store: &Store, engine: &Engine, p: &SimParams) -> Result<SimSummary, SimError> {
    if !(p.base_rate > 0.0 && p.base_rate < 1.0) {
        return Err(SimError::BadParam(
            "the base rate must be between 0 and 1".into(),
        ));
    }
    if !(p.lift > -1.0 && p.base_rate * (1.0 + p.lift) < 1.0) {
        return Err(SimError::BadParam(format!(
            "a lift of {} makes a win rate outside 0..1 from the base rate {}",
            p.lift, p.base_rate
        )));
    }
    if p.days == 0 {
        return Err(SimError::BadParam("days must be at least 1".into()));
    }
    let lib = engine.library();
    let with_exp = |card: &&std::sync::Arc<Card>| card.experiment.is_some();
    let card = match &p.experiment {
        None => lib
            .cards()
            .iter()
            .find(with_exp)
            .ok_or(SimError::NoExperiment)?,
        Some(key) => lib
            .cards()
            .iter()
            .filter(with_exp)
            .find(|c| c.experiment.as_ref().is_some_and(|e| e.key == *key))
            .ok_or_else(|| SimError::UnknownExperiment {
                key: key.clone(),
                known: lib
                    .cards()
                    .iter()
                    .filter_map(|c| c.experiment.as_ref().map(|e| e.key.clone()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?,
    };
    let exp: &Experiment = card.experiment.as_ref().ok_or(SimError::NoExperiment)?;
    let baseline = exp.variants.iter().position(|v| !v.show).unwrap_or(0);
    let rates: Vec<f64> = (0..exp.variants.len())
        .map(|i| {
            if i == baseline {
                p.base_rate
            } else {
                p.base_rate * (1.0 + p.lift)
            }
        })
        .collect();
    let line = trigger_line(card);
    let context = context_for(card);
    let speaker = card.triggers.speaker.example_speaker();
    // Inside the card's time range, if it has one.
    let t_ms = u64::from(card.triggers.from_seconds.unwrap_or(0)) * 1000;
    let version = lib.version().to_string();

    let mut rng = Rng(p.seed);
    let mut calls: Vec<FinishedCall> = Vec::with_capacity(BATCH);
    let mut exposures: Vec<ExposureRow> = Vec::with_capacity(BATCH);
    let mut outcomes: Vec<OutcomeRow> = Vec::new();
    let mut summary = SimSummary {
        experiment_key: exp.key.clone(),
        card_id: card.id.clone(),
        deals: p.deals,
        calls: 0,
        exposures: 0,
        outcome_rows: 0,
        variants: exp
            .variants
            .iter()
            .zip(&rates)
            .map(|(v, r)| (v.id.clone(), 0, *r))
            .collect(),
    };
    let span_ms = i64::from(p.days) * 86_400_000;
    let mut decisions: Vec<Decision> = Vec::new();
    for d in 0..p.deals {
        let deal_id = format!("sim-d-{d:06}");
        let rep_id = format!("sim-rep-{:02}", rng.below(25) + 1);
        let first = p.now - Duration::milliseconds(rng.below(span_ms as u64) as i64 + 3_600_000);
        let call_count = 1 + rng.below(3);
        let mut arm = None;
        for c in 0..call_count {
            let start = first + Duration::days(c as i64 * (1 + rng.below(10) as i64));
            if start >= p.now {
                break;
            }
            let call_id = format!("sim-c-{d:06}-{c}");
            let mut session = Session::new(
                CallInfo {
                    call_id: call_id.clone(),
                    deal_id: Some(deal_id.clone()),
                    rep_id: Some(rep_id.clone()),
                    context: context.clone(),
                },
                SessionLimits::default(),
            );
            decisions.clear();
            session.on_utterance(
                engine,
                &Utterance {
                    segment_id: Some("s-1"),
                    speaker,
                    text: &line,
                    is_final: true,
                    t_ms,
                },
                &mut decisions,
            );
            for dec in &decisions {
                let at = start + Duration::milliseconds(dec.t_ms as i64);
                if dec.card.id == card.id {
                    arm = dec.arm.as_ref().map(|a| a.index);
                }
                let id = ulid::Ulid::from_parts(
                    (at.unix_timestamp_nanos() / 1_000_000) as u64,
                    u128::from(rng.next_u64()),
                );
                exposures.push(ExposureRow {
                    display_id: id.to_string(),
                    ts: format_utc(at),
                    call_id: call_id.clone(),
                    deal_id: Some(deal_id.clone()),
                    rep_id: Some(rep_id.clone()),
                    card_id: dec.card.id.clone(),
                    experiment_key: dec.experiment_key().map(str::to_string),
                    variant: dec.variant_id().map(str::to_string),
                    shown: dec.shown(),
                    reason: dec.reason.as_str().to_string(),
                    phrase: dec.phrase.to_string(),
                    speaker: dec.speaker.as_str().to_string(),
                    segment_id: dec.segment_id.to_string(),
                    engine_us: 5 + rng.below(20) as i64,
                    library_version: version.clone(),
                });
                summary.exposures += 1;
            }
            calls.push(FinishedCall {
                call: CallRow {
                    call_id,
                    deal_id: Some(deal_id.clone()),
                    rep_id: Some(rep_id.clone()),
                    context: serde_json::to_string(&context.0).unwrap_or_else(|_| "{}".into()),
                    started_at: format_utc(start),
                },
                ended_at: Some(format_utc(
                    start + Duration::minutes(20 + rng.below(30) as i64),
                )),
            });
            summary.calls += 1;
            if calls.len() >= BATCH {
                store.bulk_insert(&exposures, &calls, &[]).await?;
                calls.clear();
                exposures.clear();
            }
        }
        let Some(arm) = arm else {
            if d == 0 {
                return Err(SimError::NoTrigger(card.id.clone()));
            }
            continue;
        };
        summary.variants[arm].1 += 1;

        // The deal's outcome.
        let closes = first + Duration::days(7 + rng.below(69) as i64);
        let won = rng.unit() < rates[arm];
        let amount = (12_000.0 * (0.6 * rng.normal()).exp() * 100.0).round() / 100.0;
        if rng.below(10) == 0 {
            outcomes.push(OutcomeRow {
                deal_id: deal_id.clone(),
                outcome: "open".into(),
                amount: Some(amount),
                currency: Some("USD".into()),
                closed_at: None,
                received_at: format_utc(first + Duration::days(1)),
            });
        }
        if closes < p.now {
            let at = format_utc(closes);
            outcomes.push(OutcomeRow {
                deal_id,
                outcome: if won { "won" } else { "lost" }.into(),
                amount: won.then_some(amount),
                currency: Some("USD".into()),
                closed_at: Some(at.clone()),
                received_at: at,
            });
        }
    }
    store.bulk_insert(&exposures, &calls, &outcomes).await?;
    summary.outcome_rows = outcomes.len() as u64;
    Ok(summary)
}
