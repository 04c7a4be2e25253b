//! The validated, immutable card library types.

use std::collections::HashMap;

pub use crate::location::Location;

/// A card's category (docs/cards.md#card-keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Objection,
    BuyingSignal,
    Competitor,
    Pricing,
    NextStep,
    Compliance,
    Discovery,
    Other,
}

impl Category {
    /// The name written in cards and card frames (`buying_signal`).
    pub fn as_str(self) -> &'static str {
        crate::names::name_of(&self)
    }
}

/// Who is speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Rep,
    Prospect,
}

impl Speaker {
    pub fn as_str(self) -> &'static str {
        crate::names::name_of(&self)
    }
}

/// Whose words a card listens to (`triggers.speaker`; names in the order error messages
/// list them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeakerFilter {
    Prospect,
    Rep,
    Any,
}

impl SpeakerFilter {
    pub fn allows(self, speaker: Speaker) -> bool {
        match self {
            SpeakerFilter::Any => true,
            SpeakerFilter::Rep => speaker == Speaker::Rep,
            SpeakerFilter::Prospect => speaker == Speaker::Prospect,
        }
    }

    /// The speaker an example utterance is attributed to (`cuedeck test`).
    pub fn example_speaker(self) -> Speaker {
        match self {
            SpeakerFilter::Rep => Speaker::Rep,
            _ => Speaker::Prospect,
        }
    }
}

/// Where `all` and `unless` are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The current segment only.
    Segment,
    /// The card's speakers' segments of the last `seconds` of the call.
    Window { seconds: u32 },
}

/// A trigger phrase: as written (after `@vocab` expansion) and normalized (no padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    pub text: String,
    pub normalized: String,
}

/// When a card becomes a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggers {
    pub any: Vec<Phrase>,
    /// Each group must also match (AND of ORs).
    pub all: Vec<Vec<Phrase>>,
    pub unless: Vec<Phrase>,
    pub speaker: SpeakerFilter,
    pub scope: Scope,
    pub from_seconds: Option<u32>,
    pub to_seconds: Option<u32>,
}

/// Call-context targeting: every key present must be satisfied by the call's context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct When {
    /// `(key, allowed values)`, keys among `deal_stage`, `competitor`, `segment`, `team`.
    pub conditions: Vec<(String, Vec<String>)>,
}

/// A link shown under a card.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Link {
    pub title: String,
    pub url: String,
}

/// Trigger tests run by `cuedeck test`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Examples {
    pub fire: Vec<(String, Location)>,
    pub no_fire: Vec<(String, Location)>,
}

/// Which id an experiment hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Deal,
    Rep,
}

/// One arm of a card experiment. Content not set here is inherited from the card.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub id: String,
    pub weight: f64,
    /// `false` for the control arm: decide and log, show nothing.
    pub show: bool,
    pub title: Option<String>,
    pub body: Option<String>,
    pub links: Option<Vec<Link>>,
}

/// An A/B test of a card's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub key: String,
    pub unit: Unit,
    pub variants: Vec<Variant>,
}

/// A validated battlecard.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub id: String,
    pub title: String,
    pub category: Category,
    pub priority: u32,
    pub triggers: Triggers,
    pub when: When,
    pub cooldown_seconds: u32,
    pub max_per_call: u32,
    pub body: String,
    pub links: Vec<Link>,
    pub examples: Examples,
    pub experiment: Option<Experiment>,
    pub origin: Location,
}

/// Library-wide display policy (`_deck.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deck {
    pub max_cards_per_call: u32,
    pub min_gap_seconds: u32,
    pub max_visible: u32,
}

impl Default for Deck {
    fn default() -> Self {
        Deck {
            max_cards_per_call: 30,
            min_gap_seconds: 0,
            max_visible: 3,
        }
    }
}

/// Named phrase lists (`_vocab.yaml`), referenced as `@name`.
pub type Vocab = HashMap<String, Vec<String>>;
