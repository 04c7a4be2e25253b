//! The per-call state machine: segments, once-per-segment decisions, cooldowns, budgets,
//! the minimum gap, and experiment variants. Pure: no IO, no clock, no tokio. The server
//! and `cuedeck replay` drive the same [`Session::on_utterance`], so a recorded call replays
//! exactly as it ran live.
//!
//! Per message: find or open the segment, match its text, collect the cards whose `any`
//! phrase is present for a speaker they listen to and that were not yet decided in this
//! segment, check `all`/`unless` over the card's scope, the time range and the call
//! context; then, highest priority first (ties by id), apply the display policy — card
//! cooldown, card max per call, deck budget, deck minimum gap — and emit one [`Decision`]
//! per card, shown or suppressed with its reason.

#![warn(missing_docs)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::engine::Engine;
use crate::experiment;
use crate::library::{Card, Link, Scope, Speaker, Unit};
use crate::matcher::PatternId;
use crate::rules::{self, CallContext, ScopeHits};

/// Who the call is for, from its `start` message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallInfo {
    /// The call's id, unique while it is live.
    pub call_id: String,
    /// The CRM deal: the unit of deal-level experiments and of outcomes.
    pub deal_id: Option<String>,
    /// The rep: the unit of rep-level experiments.
    pub rep_id: Option<String>,
    /// Targeting facts (`when` conditions match against these).
    pub context: CallContext,
}

/// Bounds on what one call keeps in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Normalized transcript bytes kept for window scopes and late duplicates.
    pub max_transcript_bytes: usize,
    /// Segments kept (open and recently closed).
    pub max_segments: usize,
    /// Segments that may be open (not final) at once; the oldest is closed beyond this.
    pub max_open_segments: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_transcript_bytes: 64 * 1024,
            max_segments: 512,
            max_open_segments: 16,
        }
    }
}

/// One transcript message, already decoded and with its speaker resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utterance<'a> {
    /// The provider's segment id; `None` groups consecutive messages of one speaker.
    pub segment_id: Option<&'a str>,
    /// Who spoke.
    pub speaker: Speaker,
    /// The segment's text so far (a partial) or in full (a final).
    pub text: &'a str,
    /// The segment is complete: no later message changes it.
    pub is_final: bool,
    /// The call clock: the message's `t_ms`, or the receive time since `start`.
    pub t_ms: u64,
}

/// Why a decision was or was not shown (`reason` in docs/store.md#exposures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The card reached the rep.
    Shown,
    /// The call is in the experiment's control arm: logged, not shown.
    Control,
    /// The card was shown less than its `cooldown_seconds` ago.
    Cooldown,
    /// The card was already shown `max_per_call` times.
    MaxPerCall,
    /// The deck's `max_cards_per_call` is used up.
    Budget,
    /// Another card of equal or higher priority was shown within `min_gap_seconds`.
    Gap,
}

impl Reason {
    /// Every reason, in the order metrics list them.
    pub const ALL: [Reason; 6] = [
        Reason::Shown,
        Reason::Control,
        Reason::Cooldown,
        Reason::MaxPerCall,
        Reason::Budget,
        Reason::Gap,
    ];

    /// The reason's name as logged (`max_per_call`), from the serde attributes.
    pub fn as_str(self) -> &'static str {
        crate::names::name_of(&self)
    }
}

/// The experiment arm a decision was made in.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// The experiment's `key`.
    pub experiment_key: String,
    /// The variant's `id`.
    pub variant: String,
    /// Index into the card's experiment variants.
    pub index: usize,
    /// The variant has `show: false`: decisions are logged but not shown.
    pub control: bool,
}

/// One card decision: shown, or suppressed with a reason. Every decision is logged.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The card decided on.
    pub card: Arc<Card>,
    /// The call's arm when the card is in an experiment and the call is enrolled.
    pub arm: Option<Arm>,
    /// Shown, or why not.
    pub reason: Reason,
    /// The normalized `any` phrase that triggered the card.
    pub phrase: Arc<str>,
    /// Who said it.
    pub speaker: Speaker,
    /// The segment it was said in (`auto-N` when the provider gave none).
    pub segment_id: Arc<str>,
    /// The call time of the message that triggered it.
    pub t_ms: u64,
}

impl Decision {
    /// Did the card reach the rep?
    pub fn shown(&self) -> bool {
        self.reason == Reason::Shown
    }

    /// The arm's variant id, if enrolled.
    pub fn variant_id(&self) -> Option<&str> {
        self.arm.as_ref().map(|a| a.variant.as_str())
    }

    /// The arm's experiment key, if enrolled.
    pub fn experiment_key(&self) -> Option<&str> {
        self.arm.as_ref().map(|a| a.experiment_key.as_str())
    }

    fn variant(&self) -> Option<&crate::library::Variant> {
        let arm = self.arm.as_ref()?;
        self.card.experiment.as_ref()?.variants.get(arm.index)
    }

    /// The title shown: the variant's, else the card's.
    pub fn title(&self) -> &str {
        self.variant()
            .and_then(|v| v.title.as_deref())
            .unwrap_or(&self.card.title)
    }

    /// The body shown: the variant's, else the card's.
    pub fn body(&self) -> &str {
        self.variant()
            .and_then(|v| v.body.as_deref())
            .unwrap_or(&self.card.body)
    }

    /// The links shown: the variant's, else the card's.
    pub fn links(&self) -> &[Link] {
        self.variant()
            .and_then(|v| v.links.as_deref())
            .unwrap_or(&self.card.links)
    }
}

/// One utterance as the provider segments it: partials grow its text until a final.
#[derive(Debug)]
struct Segment {
    /// The provider's id, or `auto-N` for an implicit segment.
    id: Arc<str>,
    /// Who spoke last in it (window scopes listen only to a card's speakers).
    speaker: Speaker,
    /// Complete: later messages for it are ignored.
    is_final: bool,
    /// Opened without a provider id (consecutive messages of one speaker).
    implicit: bool,
    /// Call time of its latest message (window scopes and pruning).
    last_t_ms: u64,
    /// Normalized text of the latest message (kept to re-match after a reload).
    text: String,
    /// Patterns in the latest message, in text order.
    patterns: Vec<PatternId>,
    /// Patterns seen in any message of the segment so far (for `unless`).
    seen: Vec<PatternId>,
    /// The phrases of `seen`, so they survive a reload that renumbers patterns.
    seen_phrases: Vec<Box<str>>,
    /// Cards already decided in this segment.
    decided: Vec<Arc<str>>,
}

/// What the display policy remembers of one card in this call.
#[derive(Debug, Default, Clone, Copy)]
struct CardState {
    /// Call time it was last shown (or held back in the control arm): for its cooldown.
    last_ms: Option<u64>,
    /// Times shown (or held back in control): for its `max_per_call`.
    count: u32,
}

/// The state of one call.
#[derive(Debug)]
pub struct Session {
    /// Who the call is for (experiment units, `when` conditions, exposure rows).
    info: CallInfo,
    /// Memory bounds: segments kept and open, transcript bytes.
    limits: SessionLimits,
    /// The engine generation the segments' pattern ids belong to; a reload changes it and
    /// the kept text is matched again.
    generation: u64,
    /// Open and recently closed segments, oldest first (window scopes look back over them).
    segments: VecDeque<Segment>,
    /// Sum of the segments' normalized text, held under `limits.max_transcript_bytes`.
    transcript_bytes: usize,
    /// Number of the next implicit segment (`auto-N`).
    next_auto: u64,
    /// Cooldown and count per card id.
    cards: HashMap<Arc<str>, CardState>,
    /// Cards shown in this call: the deck budget.
    shown_total: u32,
    /// Call time and priority of the last card shown: the deck's minimum gap.
    last_shown: Option<(u64, u32)>,
    /// Sticky arm per experiment key for this call: the unit id it was assigned for and
    /// the variant id (a new deal or rep on resume gets its own arm).
    arms: HashMap<String, (String, String)>,
    /// Reused buffer for a message's normalized text (no allocation per message).
    scratch: String,
    /// Reused buffer for a message's patterns.
    scratch_patterns: Vec<PatternId>,
}

impl Session {
    /// A call with nothing said yet.
    pub fn new(info: CallInfo, limits: SessionLimits) -> Session {
        Session {
            info,
            limits,
            generation: 0,
            segments: VecDeque::new(),
            transcript_bytes: 0,
            next_auto: 1,
            cards: HashMap::new(),
            shown_total: 0,
            last_shown: None,
            arms: HashMap::new(),
            scratch: String::new(),
            scratch_patterns: Vec::new(),
        }
    }

    /// Who the call is for.
    pub fn info(&self) -> &CallInfo {
        &self.info
    }

    /// A later `start` of the call (a reconnect) says who it is for from now on: deal, rep
    /// and context. Cooldowns, budgets and segments carry on.
    pub fn update_info(&mut self, info: CallInfo) {
        self.info = info;
    }

    /// Bytes of normalized transcript currently kept.
    pub fn transcript_bytes(&self) -> usize {
        self.transcript_bytes
    }

    /// Handles one transcript message and appends the decisions it causes to `out`.
    pub fn on_utterance(&mut self, engine: &Engine, u: &Utterance<'_>, out: &mut Vec<Decision>) {
        if self.generation != engine.generation() {
            self.rematch(engine);
        }
        let Some(idx) = self.segment_for(u) else {
            return; // a message for a segment that is already final: nothing new to decide
        };
        let matcher = engine.matcher();
        self.scratch_patterns.clear();
        matcher.normalize_and_find(u.text, &mut self.scratch, &mut self.scratch_patterns);
        {
            let seg = &mut self.segments[idx];
            self.transcript_bytes = self.transcript_bytes - seg.text.len() + self.scratch.len();
            std::mem::swap(&mut seg.text, &mut self.scratch);
            std::mem::swap(&mut seg.patterns, &mut self.scratch_patterns);
            for &p in &seg.patterns {
                if !seg.seen.contains(&p) {
                    seg.seen.push(p);
                    seg.seen_phrases.push(matcher.phrase(p).into());
                }
            }
            seg.speaker = u.speaker;
            seg.last_t_ms = u.t_ms;
            seg.is_final |= u.is_final;
        }

        let candidates = self.candidates(engine, idx, u);
        for (card, phrase) in candidates {
            let decision = self.decide(engine, card, phrase, idx, u);
            self.segments[idx]
                .decided
                .push(Arc::from(decision.card.id.as_str()));
            out.push(decision);
        }
        self.prune(engine, u.t_ms);
    }

    /// Cards whose triggers and conditions hold on this message, in decision order.
    fn candidates(
        &self,
        engine: &Engine,
        idx: usize,
        u: &Utterance<'_>,
    ) -> Vec<(Arc<Card>, PatternId)> {
        let matcher = engine.matcher();
        let cards = engine.library().cards();
        let seg = &self.segments[idx];
        let mut found: Vec<(u32, PatternId)> = Vec::new();
        for &p in &seg.patterns {
            for t in matcher.targets(p) {
                if t.role == crate::matcher::Role::Any && !found.iter().any(|(c, _)| *c == t.card) {
                    found.push((t.card, p));
                }
            }
        }
        let mut out: Vec<(Arc<Card>, PatternId)> = Vec::new();
        for (ci, phrase) in found {
            let Some(card) = cards.get(ci as usize) else {
                continue;
            };
            if !rules::speaker_allows(card, u.speaker)
                || seg.decided.iter().any(|d| **d == *card.id)
                || !rules::in_time_range(card, u.t_ms)
                || !rules::context_allows(&card.when, &self.info.context)
            {
                continue;
            }
            let mut hits = ScopeHits::default();
            hits.add(matcher, ci, &seg.patterns, true, false);
            hits.add(matcher, ci, &seg.seen, false, true);
            if let Scope::Window { seconds } = card.triggers.scope {
                let since = u.t_ms.saturating_sub(u64::from(seconds) * 1000);
                for (j, other) in self.segments.iter().enumerate() {
                    if j == idx
                        || other.last_t_ms < since
                        || !rules::speaker_allows(card, other.speaker)
                    {
                        continue;
                    }
                    hits.add(matcher, ci, &other.patterns, true, false);
                    hits.add(matcher, ci, &other.seen, false, true);
                }
            }
            if hits.holds(card) {
                out.push((card.clone(), phrase));
            }
        }
        out.sort_by(|(a, _), (b, _)| b.priority.cmp(&a.priority).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// Applies the display policy to one eligible card and records the outcome.
    fn decide(
        &mut self,
        engine: &Engine,
        card: Arc<Card>,
        phrase: PatternId,
        idx: usize,
        u: &Utterance<'_>,
    ) -> Decision {
        let deck = engine.library().deck();
        let arm = self.arm_for(&card);
        let control = arm.as_ref().is_some_and(|a| a.control);
        let state = self
            .cards
            .get(card.id.as_str())
            .copied()
            .unwrap_or_default();
        let cooldown_ms = u64::from(card.cooldown_seconds) * 1000;
        let gap_ms = u64::from(deck.min_gap_seconds) * 1000;
        let reason = if state
            .last_ms
            .is_some_and(|last| u.t_ms.saturating_sub(last) < cooldown_ms)
        {
            Reason::Cooldown
        } else if state.count >= card.max_per_call {
            Reason::MaxPerCall
        } else if self.shown_total >= deck.max_cards_per_call {
            Reason::Budget
        } else if self.last_shown.is_some_and(|(last, priority)| {
            u.t_ms.saturating_sub(last) < gap_ms && card.priority <= priority
        }) {
            Reason::Gap
        } else if control {
            Reason::Control
        } else {
            Reason::Shown
        };
        if matches!(reason, Reason::Shown | Reason::Control) {
            // Both arms count against the card's own cooldown and max per call, so they
            // are decided identically; only what reached the rep counts for the deck.
            let entry = self.cards.entry(Arc::from(card.id.as_str())).or_default();
            entry.last_ms = Some(u.t_ms);
            entry.count += 1;
            if reason == Reason::Shown {
                self.shown_total += 1;
                self.last_shown = Some((u.t_ms, card.priority));
            }
        }
        let seg = &self.segments[idx];
        Decision {
            phrase: Arc::from(engine.matcher().phrase(phrase)),
            speaker: u.speaker,
            segment_id: seg.id.clone(),
            t_ms: u.t_ms,
            arm,
            reason,
            card,
        }
    }

    /// The call's arm in the card's experiment; `None` when the card has no experiment or
    /// the call lacks the unit id (not enrolled).
    fn arm_for(&mut self, card: &Card) -> Option<Arm> {
        let exp = card.experiment.as_ref()?;
        let unit_id = match exp.unit {
            Unit::Deal => self.info.deal_id.as_deref(),
            Unit::Rep => self.info.rep_id.as_deref(),
        }
        .filter(|id| !id.is_empty())?;
        // Sticky for the call and unit: a reload that keeps the variant keeps the arm.
        let index = self
            .arms
            .get(&exp.key)
            .filter(|(unit, _)| unit == unit_id)
            .and_then(|(_, v)| exp.variants.iter().position(|x| x.id == *v))
            .unwrap_or_else(|| experiment::assign(exp, unit_id));
        let variant = exp.variants.get(index)?;
        let arm = (unit_id.to_string(), variant.id.clone());
        self.arms.insert(exp.key.clone(), arm);
        Some(Arm {
            experiment_key: exp.key.clone(),
            variant: variant.id.clone(),
            index,
            control: !variant.show,
        })
    }

    /// The index of the segment this message belongs to, opening one if needed; `None`
    /// when the segment is already final.
    fn segment_for(&mut self, u: &Utterance<'_>) -> Option<usize> {
        if let Some(id) = u.segment_id {
            if let Some(i) = self
                .segments
                .iter()
                .rposition(|s| !s.implicit && *s.id == *id)
            {
                return (!self.segments[i].is_final).then_some(i);
            }
            return Some(self.open_segment(Arc::from(id), u, false));
        }
        // Without ids, consecutive messages of one speaker until a final form a segment.
        if let Some(i) = self
            .segments
            .iter()
            .rposition(|s| s.implicit && !s.is_final)
        {
            if self.segments[i].speaker == u.speaker {
                return Some(i);
            }
            self.segments[i].is_final = true;
        }
        let id = format!("auto-{}", self.next_auto);
        self.next_auto += 1;
        Some(self.open_segment(Arc::from(id.as_str()), u, true))
    }

    fn open_segment(&mut self, id: Arc<str>, u: &Utterance<'_>, implicit: bool) -> usize {
        let open = self.segments.iter().filter(|s| !s.is_final).count();
        if open >= self.limits.max_open_segments {
            if let Some(oldest) = self.segments.iter_mut().find(|s| !s.is_final) {
                oldest.is_final = true;
            }
        }
        self.segments.push_back(Segment {
            id,
            speaker: u.speaker,
            is_final: false,
            implicit,
            last_t_ms: u.t_ms,
            text: String::new(),
            patterns: Vec::new(),
            seen: Vec::new(),
            seen_phrases: Vec::new(),
            decided: Vec::new(),
        });
        self.segments.len() - 1
    }

    /// Drops old segments: beyond the longest window they are only kept (up to a small
    /// number) so that a late duplicate of a final message is recognized; and never more
    /// than the memory limits allow.
    fn prune(&mut self, engine: &Engine, now_ms: u64) {
        const KEEP_RECENT: usize = 64;
        let window_ms = u64::from(engine.library().max_window_seconds()) * 1000;
        while let Some(front) = self.segments.front() {
            let too_many = self.segments.len() > self.limits.max_segments;
            let too_big =
                self.transcript_bytes > self.limits.max_transcript_bytes && self.segments.len() > 1;
            let expired = self.segments.len() > KEEP_RECENT
                && front.is_final
                && now_ms.saturating_sub(front.last_t_ms) > window_ms;
            if !(too_many || too_big || expired) {
                break;
            }
            if let Some(seg) = self.segments.pop_front() {
                self.transcript_bytes -= seg.text.len();
            }
        }
    }

    /// After a reload, pattern ids refer to the old automaton: match the kept text again,
    /// and map the phrases seen earlier in each segment to the new patterns.
    fn rematch(&mut self, engine: &Engine) {
        let matcher = engine.matcher();
        for seg in &mut self.segments {
            seg.patterns.clear();
            matcher.find(&seg.text, &mut seg.patterns);
            seg.seen = seg
                .seen_phrases
                .iter()
                .filter_map(|p| matcher.lookup(p))
                .collect();
            seg.seen_phrases = seg.seen.iter().map(|&p| matcher.phrase(p).into()).collect();
            for &p in &seg.patterns {
                if !seg.seen.contains(&p) {
                    seg.seen.push(p);
                    seg.seen_phrases.push(matcher.phrase(p).into());
                }
            }
        }
        self.generation = engine.generation();
    }
}

#[cfg(test)]
mod tests;
