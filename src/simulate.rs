//! `cuedeck simulate`: fills a store with a realistic experiment so the report and the
//! dashboard have something to show on a fresh install, and so the report can be checked
//! against a known true effect.
//!
//! Every deal gets one to three calls spread over the last `days` days. Each call runs
//! through the same [`CallDriver`] as a live call, with a prospect line that fires the
//! experiment's card, so arms, exposures and suppressions are exactly what `serve` would
//! log. Deals close 7 to 75
//! days after their first call (still open if that is after now); the baseline arm (the
//! control, else the first variant) wins with `base_rate`, every other arm with
//! `base_rate × (1 + lift)`: the true relative lift of the win rate is `lift`. Won amounts
//! are log-normal around 12,000 USD; a tenth of the deals first report an `open` update, so
//! the outcome history is exercised too. Deterministic for a given seed.

use time::{Duration, OffsetDateTime};

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::driver::{CallDriver, DriverConfig, Host, Output};
use crate::engine::Engine;
use crate::library::{Card, Experiment, Speaker};
use crate::protocol::adapters::{Adapter, CallSetup, Format};
use crate::protocol::{ClientMsg, ContextValue, Start, Transcript};
use crate::store::{ExposureRow, FinishedCall, OutcomeRow, Record, Store, StoreError};
use crate::timestamp::Timestamp;

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
fn context_for(card: &Card) -> BTreeMap<String, ContextValue> {
    card.when
        .conditions
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), ContextValue::One(v.first()?.clone()))))
        .collect()
}

/// The host of a simulated call: the clock is set by the simulation to where each message
/// falls, and display ids and latencies are drawn from the seeded generator.
struct SimHost {
    rng: Rng,
    now: Timestamp,
}

impl Host for SimHost {
    fn now(&mut self) -> Timestamp {
        self.now
    }

    fn display_id(&mut self, now: Timestamp) -> String {
        let ms = u64::try_from(now.unix_ms()).unwrap_or(0);
        ulid::Ulid::from_parts(ms, u128::from(self.rng.next_u64())).to_string()
    }

    fn engine_us(&mut self) -> u64 {
        5 + self.rng.below(20)
    }
}

/// Runs the simulation into `store`.
pub async fn run(store: &Store, engine: &Engine, p: &SimParams) -> Result<SimSummary, SimError> {
    check_params(p)?;
    let card = pick_card(engine, p.experiment.as_deref())?;
    let exp: &Experiment = card.experiment.as_ref().ok_or(SimError::NoExperiment)?;
    let rates = win_rates(exp, p);
    let script = Script::for_card(card);
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
    let now = Timestamp::from(p.now);
    let mut host = SimHost {
        rng: Rng(p.seed),
        now,
    };
    let mut out = Output::default();
    for d in 0..p.deals {
        let deal = Deal {
            id: format!("sim-d-{d:06}"),
            rep_id: format!("sim-rep-{:02}", host.rng.below(25) + 1),
        };
        let first = now.add_ms(-(host.rng.below(span_ms as u64) as i64 + 3_600_000));
        let call_count = 1 + host.rng.below(3);
        let mut arm = None;
        for c in 0..call_count {
            let start = first + Duration::days(c as i64 * (1 + host.rng.below(10) as i64));
            if start >= now {
                break;
            }
            let call_id = format!("sim-c-{d:06}-{c}");
            script.run(engine, &deal, &call_id, start, &mut host, &mut out);
            if let Some(dec) = out.decisions.iter().find(|dec| dec.card.id == card.id) {
                arm = dec.arm.as_ref().map(|a| a.index);
            }
            let ended = start + Duration::minutes(20 + host.rng.below(30) as i64);
            for record in out.records.drain(..) {
                match record {
                    Record::CallStarted(call) => {
                        calls.push(FinishedCall {
                            call,
                            ended_at: Some(ended),
                        });
                        summary.calls += 1;
                    }
                    Record::Exposure(row) => {
                        exposures.push(row);
                        summary.exposures += 1;
                    }
                    Record::CallEnded { .. } | Record::Feedback(_) => {}
                }
            }
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
        deal_outcome(
            &mut host.rng,
            deal.id,
            first,
            now,
            rates[arm],
            &mut outcomes,
        );
    }
    store.bulk_insert(&exposures, &calls, &outcomes).await?;
    summary.outcome_rows = outcomes.len() as u64;
    Ok(summary)
}

/// Refuses parameters that cannot describe an experiment.
fn check_params(p: &SimParams) -> Result<(), SimError> {
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
    Ok(())
}

/// The card whose experiment is simulated: the one with experiment `key`, else the first
/// card with an experiment.
fn pick_card<'e>(engine: &'e Engine, key: Option<&str>) -> Result<&'e Arc<Card>, SimError> {
    let mut with_exp = engine
        .library()
        .cards()
        .iter()
        .filter(|c| c.experiment.is_some());
    let Some(key) = key else {
        return with_exp.next().ok_or(SimError::NoExperiment);
    };
    with_exp
        .clone()
        .find(|c| c.experiment.as_ref().is_some_and(|e| e.key == key))
        .ok_or_else(|| SimError::UnknownExperiment {
            key: key.to_string(),
            known: with_exp
                .filter_map(|c| c.experiment.as_ref().map(|e| e.key.clone()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The true win rate of each variant: the baseline arm (the control, else the first
/// variant) wins with `base_rate`, every other arm with `base_rate × (1 + lift)`.
fn win_rates(exp: &Experiment, p: &SimParams) -> Vec<f64> {
    let baseline = exp.variants.iter().position(|v| !v.show).unwrap_or(0);
    (0..exp.variants.len())
        .map(|i| {
            if i == baseline {
                p.base_rate
            } else {
                p.base_rate * (1.0 + p.lift)
            }
        })
        .collect()
}

/// A simulated deal.
struct Deal {
    id: String,
    rep_id: String,
}

/// What every simulated call says: one line that fires the card, by its speaker, in its
/// time range, in a context its `when` accepts.
struct Script {
    line: String,
    context: BTreeMap<String, ContextValue>,
    speaker: Speaker,
    t_ms: u64,
}

impl Script {
    fn for_card(card: &Card) -> Script {
        Script {
            line: trigger_line(card),
            context: context_for(card),
            speaker: card.triggers.speaker.example_speaker(),
            // Inside the card's time range, if it has one.
            t_ms: u64::from(card.triggers.from_seconds.unwrap_or(0)) * 1000,
        }
    }

    /// One call of `deal` starting at `start`, through a fresh [`CallDriver`]: its
    /// records and decisions land in `out` (cleared first).
    fn run(
        &self,
        engine: &Engine,
        deal: &Deal,
        call_id: &str,
        start: Timestamp,
        host: &mut SimHost,
        out: &mut Output,
    ) {
        let mut start_msg = Start::new(call_id);
        start_msg.deal_id = Some(deal.id.clone());
        start_msg.rep_id = Some(deal.rep_id.clone());
        start_msg.context = self.context.clone();
        let said = Transcript::new(Some("s-1"), self.speaker, &self.line, true, Some(self.t_ms));
        let adapter = Adapter::new(Format::Native, CallSetup::default());
        let mut driver = CallDriver::new(DriverConfig::default(), adapter);
        out.clear();
        host.now = start;
        driver.on_message(engine, ClientMsg::Start(start_msg), None, host, out);
        // Decisions are stamped at their place on the call clock.
        host.now = start.add_ms(self.t_ms as i64);
        driver.on_message(engine, ClientMsg::Transcript(said), None, host, out);
    }
}

/// The outcome history of a deal first called at `first`: a tenth first report `open`;
/// the deal closes 7 to 75 days later (still open if that is after `now`), won with
/// probability `rate`; won amounts are log-normal around 12,000 USD.
fn deal_outcome(
    rng: &mut Rng,
    deal_id: String,
    first: Timestamp,
    now: Timestamp,
    rate: f64,
    outcomes: &mut Vec<OutcomeRow>,
) {
    let closes = first + Duration::days(7 + rng.below(69) as i64);
    let won = rng.unit() < rate;
    let amount = (12_000.0 * (0.6 * rng.normal()).exp() * 100.0).round() / 100.0;
    if rng.below(10) == 0 {
        outcomes.push(OutcomeRow {
            deal_id: deal_id.clone(),
            outcome: "open".into(),
            amount: Some(amount),
            currency: Some("USD".into()),
            closed_at: None,
            updated_at: None,
            received_at: first + Duration::days(1),
        });
    }
    if closes < now {
        outcomes.push(OutcomeRow {
            deal_id,
            outcome: if won { "won" } else { "lost" }.into(),
            amount: won.then_some(amount),
            currency: Some("USD".into()),
            closed_at: Some(closes),
            updated_at: None,
            received_at: closes,
        });
    }
}
