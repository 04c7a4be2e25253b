//! Schema checks: a located YAML tree in, validated cards out, and every problem found on
//! the way reported with its file, line and column (never just the first).

use std::collections::HashMap;

use super::LoadError;
use super::model::*;
use super::yaml::{Node, Pos, Value};
use crate::normalize::normalize;

const CARD_FIELDS: &[&str] = &[
    "id",
    "title",
    "category",
    "priority",
    "triggers",
    "when",
    "cooldown_seconds",
    "max_per_call",
    "body",
    "links",
    "examples",
    "experiment",
];
const TRIGGER_FIELDS: &[&str] = &[
    "any",
    "all",
    "unless",
    "speaker",
    "scope",
    "window_seconds",
    "from_seconds",
    "to_seconds",
];
const WHEN_FIELDS: &[&str] = &["deal_stage", "competitor", "segment", "team"];
const LINK_FIELDS: &[&str] = &["title", "url"];
const EXAMPLE_FIELDS: &[&str] = &["fire", "no_fire"];
const EXPERIMENT_FIELDS: &[&str] = &["key", "unit", "variants"];
const VARIANT_FIELDS: &[&str] = &["id", "weight", "show", "title", "body", "links"];
const DECK_FIELDS: &[&str] = &["max_cards_per_call", "min_gap_seconds", "max_visible"];

/// Most `all` groups a card may have (they are tracked as bits of a `u64`).
pub const MAX_ALL_GROUPS: usize = 64;
const MAX_TITLE_CHARS: usize = 120;

/// `triggers.scope`; a window also needs `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum ScopeName {
    Segment,
    Window,
}

/// The entries of a mapping, first occurrence of each key, and where the mapping starts.
pub(super) struct Fields<'n> {
    pos: Pos,
    entries: Vec<(&'n str, &'n Node<'n>)>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node<'n>> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

/// Collects errors for one file.
pub(super) struct Checker<'a> {
    pub file: &'a str,
    pub errors: Vec<LoadError>,
}

impl<'a> Checker<'a> {
    pub fn new(file: &'a str) -> Self {
        Checker {
            file,
            errors: Vec::new(),
        }
    }

    pub fn origin(&self, pos: Pos) -> Location {
        Location::new(self.file, pos)
    }

    pub fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(LoadError {
            at: self.origin(pos),
            message: message.into(),
        });
    }

    /// Checks that `node` is a mapping with only `allowed` keys; reports unknown and
    /// duplicate keys (the duplicate at its second occurrence).
    pub fn fields<'n>(
        &mut self,
        node: &'n Node<'n>,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.err(
                node.pos,
                format!("{what}: expected a mapping, found {}", node.value.kind()),
            );
            return None;
        };
        let mut fields = Fields {
            pos: node.pos,
            entries: Vec::new(),
        };
        let mut seen: Vec<(&str, Pos)> = Vec::new();
        for (key, value) in entries {
            let Value::Str(name) = &key.value else {
                self.err(
                    key.pos,
                    format!("{what}: keys must be strings, found {}", key.value.kind()),
                );
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(k, _)| k == name) {
                self.err(
                    key.pos,
                    format!(
                        "duplicate key `{name}` (first at line {}, column {})",
                        first.line, first.column
                    ),
                );
                continue;
            }
            seen.push((name, key.pos));
            if !allowed.contains(&name.as_ref()) {
                let expected = allowed
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.err(
                    key.pos,
                    format!("{what}: unknown field `{name}`, expected one of {expected}"),
                );
                continue;
            }
            fields.entries.push((name, value));
        }
        Some(fields)
    }

    fn required<'n>(&mut self, f: &Fields<'n>, key: &str, what: &str) -> Option<&'n Node<'n>> {
        let node = f.get(key);
        if node.is_none() {
            self.err(f.pos, format!("{what}: missing required field `{key}`"));
        }
        node
    }

    fn string(&mut self, node: &Node<'_>, field: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.to_string()),
            other => {
                self.err(
                    node.pos,
                    format!("`{field}`: expected a string, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn nonempty_string(&mut self, node: &Node<'_>, field: &str) -> Option<String> {
        let s = self.string(node, field)?;
        if s.trim().is_empty() {
            self.err(node.pos, format!("`{field}`: must not be empty"));
            return None;
        }
        Some(s)
    }

    fn int_in(&mut self, node: &Node<'_>, field: &str, min: i64, max: i64) -> Option<u32> {
        match &node.value {
            Value::Int(v) if (min..=max).contains(v) => Some(*v as u32),
            Value::Int(v) => {
                self.err(
                    node.pos,
                    format!("`{field}`: {v} is out of range {min}..={max}"),
                );
                None
            }
            other => {
                self.err(
                    node.pos,
                    format!("`{field}`: expected an integer, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node<'_>, field: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            other => {
                self.err(
                    node.pos,
                    format!("`{field}`: expected true or false, found {}", other.kind()),
                );
                None
            }
        }
    }

    /// One of a unit enum's serde names.
    fn one_of<T: serde::de::DeserializeOwned>(
        &mut self,
        node: &Node<'_>,
        field: &str,
    ) -> Option<T> {
        let s = self.string(node, field)?;
        match crate::names::parse_name(&s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(
                    node.pos,
                    format!(
                        "`{field}`: unknown value `{s}`, expected one of {}",
                        e.quoted()
                    ),
                );
                None
            }
        }
    }

    /// A list of strings; a single string is accepted as a list of one.
    fn string_list(&mut self, node: &Node<'_>, field: &str) -> Option<Vec<(String, Pos)>> {
        match &node.value {
            Value::Str(s) => Some(vec![(s.to_string(), node.pos)]),
            Value::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items {
                    match &item.value {
                        Value::Str(s) => out.push((s.to_string(), item.pos)),
                        other => {
                            self.err(
                                item.pos,
                                format!(
                                    "`{field}`: expected a string item, found {}",
                                    other.kind()
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(out)
            }
            other => {
                self.err(
                    node.pos,
                    format!(
                        "`{field}`: expected a list of strings, found {}",
                        other.kind()
                    ),
                );
                None
            }
        }
    }

    /// A phrase list: strings or `@vocab` references, each normalizing to some words.
    fn phrases(&mut self, node: &Node<'_>, field: &str, vocab: &Vocab) -> Option<Vec<Phrase>> {
        let items = self.string_list(node, field)?;
        if items.is_empty() {
            self.err(node.pos, format!("`{field}`: empty phrase list"));
            return None;
        }
        let mut out: Vec<Phrase> = Vec::new();
        let mut ok = true;
        for (text, pos) in items {
            let expanded: Vec<String> = if let Some(name) = text.strip_prefix('@') {
                match vocab.get(name) {
                    Some(list) => list.clone(),
                    None => {
                        let mut known: Vec<&str> = vocab.keys().map(String::as_str).collect();
                        known.sort_unstable();
                        let hint = if known.is_empty() {
                            "no vocabulary lists are defined in _vocab.yaml".to_string()
                        } else {
                            format!("known lists: {}", known.join(", "))
                        };
                        self.err(
                            pos,
                            format!("`{field}`: unknown vocabulary list `@{name}` ({hint})"),
                        );
                        ok = false;
                        continue;
                    }
                }
            } else {
                vec![text]
            };
            for phrase in expanded {
                let normalized = normalize(&phrase).trim().to_string();
                if normalized.is_empty() {
                    self.err(
                        pos,
                        format!("`{field}`: phrase {phrase:?} normalizes to nothing"),
                    );
                    ok = false;
                    continue;
                }
                if !out.iter().any(|p| p.normalized == normalized) {
                    out.push(Phrase {
                        text: phrase,
                        normalized,
                    });
                }
            }
        }
        ok.then_some(out)
    }

    fn links(&mut self, node: &Node<'_>, field: &str) -> Option<Vec<Link>> {
        let Value::Seq(items) = &node.value else {
            self.err(
                node.pos,
                format!(
                    "`{field}`: expected a list of links, found {}",
                    node.value.kind()
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(f) = self.fields(item, "link", LINK_FIELDS) else {
                ok = false;
                continue;
            };
            let title = self
                .required(&f, "title", "link")
                .and_then(|n| self.nonempty_string(n, "links.title"));
            let url = self.required(&f, "url", "link").and_then(|n| {
                let url = self.nonempty_string(n, "links.url")?;
                // Only web links: the rep panel renders them as anchors.
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    self.err(
                        n.pos,
                        format!("`links.url`: {url:?} must start with https:// or http://"),
                    );
                    return None;
                }
                Some(url)
            });
            match (title, url) {
                (Some(title), Some(url)) => out.push(Link { title, url }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn title(&mut self, node: &Node<'_>, field: &str) -> Option<String> {
        let title = self.nonempty_string(node, field)?;
        let chars = title.chars().count();
        if chars > MAX_TITLE_CHARS {
            self.err(
                node.pos,
                format!("`{field}`: {chars} characters, at most {MAX_TITLE_CHARS} allowed"),
            );
            return None;
        }
        Some(title)
    }
}

/// `[a-z0-9-]{1,64}`
pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks one card mapping. Returns `None` when it has errors (all of them reported).
pub(super) fn card(c: &mut Checker<'_>, node: &Node<'_>, vocab: &Vocab) -> Option<Card> {
    let before = c.errors.len();
    let f = c.fields(node, "card", CARD_FIELDS)?;

    let id = c.required(&f, "id", "card").and_then(|n| {
        let id = c.string(n, "id")?;
        if !valid_id(&id) {
            c.err(
                n.pos,
                format!("`id`: {id:?} must be 1 to 64 characters of a-z, 0-9 and -"),
            );
            return None;
        }
        Some(id)
    });
    let title = c
        .required(&f, "title", "card")
        .and_then(|n| c.title(n, "title"));
    let category = c
        .required(&f, "category", "card")
        .and_then(|n| c.one_of(n, "category"));
    let priority = f
        .get("priority")
        .map_or(Some(50), |n| c.int_in(n, "priority", 0, 1000));
    let cooldown_seconds = f
        .get("cooldown_seconds")
        .map_or(Some(60), |n| c.int_in(n, "cooldown_seconds", 0, 86_400));
    let max_per_call = f
        .get("max_per_call")
        .map_or(Some(1), |n| c.int_in(n, "max_per_call", 1, 100));
    let body = c
        .required(&f, "body", "card")
        .and_then(|n| c.nonempty_string(n, "body"));
    let links = f
        .get("links")
        .map_or(Some(Vec::new()), |n| c.links(n, "links"));
    let triggers = c
        .required(&f, "triggers", "card")
        .and_then(|n| triggers(c, n, vocab));
    let when = f.get("when").map_or(Some(When::default()), |n| when(c, n));
    let examples = f
        .get("examples")
        .map_or(Some(Examples::default()), |n| examples(c, n));
    let experiment = match f.get("experiment") {
        None => Some(None),
        Some(n) => experiment(c, n, id.as_deref()).map(Some),
    };

    if c.errors.len() > before {
        return None;
    }
    Some(Card {
        id: id?,
        title: title?,
        category: category?,
        priority: priority?,
        triggers: triggers?,
        when: when?,
        cooldown_seconds: cooldown_seconds?,
        max_per_call: max_per_call?,
        body: body?,
        links: links?,
        examples: examples?,
        experiment: experiment?,
        origin: c.origin(node.pos),
    })
}

fn triggers(c: &mut Checker<'_>, node: &Node<'_>, vocab: &Vocab) -> Option<Triggers> {
    let before = c.errors.len();
    let f = c.fields(node, "triggers", TRIGGER_FIELDS)?;
    let any = c
        .required(&f, "any", "triggers")
        .and_then(|n| c.phrases(n, "triggers.any", vocab));
    let all = f
        .get("all")
        .map_or(Some(Vec::new()), |n| all_groups(c, n, vocab));
    let unless = f
        .get("unless")
        .map_or(Some(Vec::new()), |n| c.phrases(n, "triggers.unless", vocab));
    let speaker = f.get("speaker").map_or(Some(SpeakerFilter::Prospect), |n| {
        c.one_of(n, "triggers.speaker")
    });
    let scope = scope(c, &f);
    let (from, to) = time_range(c, &f);
    if c.errors.len() > before {
        return None;
    }
    Some(Triggers {
        any: any?,
        all: all?,
        unless: unless?,
        speaker: speaker?,
        scope: scope?,
        from_seconds: from,
        to_seconds: to,
    })
}

/// `triggers.all`: a non-empty list of at most `MAX_ALL_GROUPS` groups, each a phrase list
/// (a bare string is a group of one).
fn all_groups(c: &mut Checker<'_>, n: &Node<'_>, vocab: &Vocab) -> Option<Vec<Vec<Phrase>>> {
    match &n.value {
        Value::Seq(groups) if groups.is_empty() => {
            c.err(n.pos, "`triggers.all`: empty list of groups");
            None
        }
        Value::Seq(groups) if groups.len() > MAX_ALL_GROUPS => {
            c.err(
                n.pos,
                format!(
                    "`triggers.all`: {} groups, at most {MAX_ALL_GROUPS} allowed",
                    groups.len()
                ),
            );
            None
        }
        // Every group is checked (and reports its errors) before the first failure counts.
        Value::Seq(groups) => groups
            .iter()
            .map(|g| c.phrases(g, "triggers.all", vocab))
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Option<Vec<_>>>(),
        other => {
            c.err(
                n.pos,
                format!(
                    "`triggers.all`: expected a list of phrase lists, found {}",
                    other.kind()
                ),
            );
            None
        }
    }
}

/// `triggers.scope` (default `segment`) with `triggers.window_seconds`, which a window
/// needs and a segment must not have.
fn scope(c: &mut Checker<'_>, f: &Fields<'_>) -> Option<Scope> {
    let scope_name = f
        .get("scope")
        .map_or(Some(ScopeName::Segment), |n| c.one_of(n, "triggers.scope"));
    let window = f
        .get("window_seconds")
        .map(|n| (n.pos, c.int_in(n, "triggers.window_seconds", 1, 3600)));
    match (scope_name, window) {
        (Some(ScopeName::Window), Some((_, Some(seconds)))) => Some(Scope::Window { seconds }),
        (Some(ScopeName::Window), None) => {
            c.err(
                f.pos,
                "triggers: `scope: window` needs `window_seconds` (1..=3600)",
            );
            None
        }
        (Some(ScopeName::Segment), Some((pos, _))) => {
            c.err(
                pos,
                "`triggers.window_seconds` only applies with `scope: window`",
            );
            None
        }
        (Some(ScopeName::Segment), None) => Some(Scope::Segment),
        _ => None,
    }
}

/// `triggers.from_seconds` and `triggers.to_seconds`, each optional; with both, `to` must
/// be greater. An invalid value is reported and read as absent (the caller rejects the
/// triggers on any error).
fn time_range(c: &mut Checker<'_>, f: &Fields<'_>) -> (Option<u32>, Option<u32>) {
    let from = f
        .get("from_seconds")
        .and_then(|n| c.int_in(n, "triggers.from_seconds", 0, 86_400));
    let to = f
        .get("to_seconds")
        .map(|n| (n.pos, c.int_in(n, "triggers.to_seconds", 1, 86_400)));
    if let (Some(from), Some((pos, Some(to)))) = (from, to) {
        if from >= to {
            c.err(
                pos,
                format!("`triggers.to_seconds`: {to} must be greater than from_seconds ({from})"),
            );
        }
    }
    (from, to.and_then(|(_, t)| t))
}

fn when(c: &mut Checker<'_>, node: &Node<'_>) -> Option<When> {
    let before = c.errors.len();
    let f = c.fields(node, "when", WHEN_FIELDS)?;
    let mut conditions = Vec::new();
    for (key, value) in &f.entries {
        let field = format!("when.{key}");
        if let Some(values) = c.string_list(value, &field) {
            if values.is_empty() {
                c.err(value.pos, format!("`{field}`: empty list"));
                continue;
            }
            conditions.push((
                key.to_string(),
                values.into_iter().map(|(v, _)| v).collect(),
            ));
        }
    }
    (c.errors.len() == before).then_some(When { conditions })
}

fn examples(c: &mut Checker<'_>, node: &Node<'_>) -> Option<Examples> {
    let f = c.fields(node, "examples", EXAMPLE_FIELDS)?;
    let mut list = |key: &str| -> Option<Vec<(String, Location)>> {
        match f.get(key) {
            None => Some(Vec::new()),
            Some(n) => c
                .string_list(n, &format!("examples.{key}"))
                .map(|v| v.into_iter().map(|(s, p)| (s, c.origin(p))).collect()),
        }
    };
    let fire = list("fire");
    let no_fire = list("no_fire");
    Some(Examples {
        fire: fire?,
        no_fire: no_fire?,
    })
}

fn experiment(c: &mut Checker<'_>, node: &Node<'_>, card_id: Option<&str>) -> Option<Experiment> {
    let before = c.errors.len();
    let f = c.fields(node, "experiment", EXPERIMENT_FIELDS)?;
    let key = match f.get("key") {
        Some(n) => c.string(n, "experiment.key").and_then(|k| {
            if k.is_empty() || k.len() > 64 || k.chars().any(|ch| ch.is_whitespace()) {
                c.err(
                    n.pos,
                    format!("`experiment.key`: {k:?} must be 1 to 64 characters without spaces"),
                );
                return None;
            }
            Some(k)
        }),
        None => card_id.map(str::to_string),
    };
    let unit = f
        .get("unit")
        .map_or(Some(Unit::Deal), |n| c.one_of(n, "experiment.unit"));
    let variants = c
        .required(&f, "variants", "experiment")
        .and_then(|n| variants(c, n));
    if c.errors.len() > before {
        return None;
    }
    Some(Experiment {
        key: key?,
        unit: unit?,
        variants: variants?,
    })
}

fn variants(c: &mut Checker<'_>, node: &Node<'_>) -> Option<Vec<Variant>> {
    let Value::Seq(items) = &node.value else {
        c.err(
            node.pos,
            format!(
                "`experiment.variants`: expected a list of variants, found {}",
                node.value.kind()
            ),
        );
        return None;
    };
    if items.len() < 2 {
        c.err(
            node.pos,
            format!(
                "`experiment.variants`: an experiment needs at least 2 variants, found {}",
                items.len()
            ),
        );
        return None;
    }
    let before = c.errors.len();
    let mut out: Vec<Variant> = Vec::new();
    let mut ids: HashMap<String, Pos> = HashMap::new();
    let mut control: Option<Pos> = None;
    for item in items {
        let Some(f) = c.fields(item, "variant", VARIANT_FIELDS) else {
            continue;
        };
        let id = c
            .required(&f, "id", "variant")
            .and_then(|n| variant_id(c, n, &mut ids));
        let weight = f.get("weight").map_or(Some(1.0), |n| variant_weight(c, n));
        let show = f
            .get("show")
            .map_or(Some(true), |n| c.boolean(n, "variants.show"));
        if show == Some(false) {
            if let Some(first) = control {
                c.err(
                    item.pos,
                    format!(
                        "more than one control variant (`show: false`); the first is at line {}, column {}",
                        first.line, first.column
                    ),
                );
            } else {
                control = Some(item.pos);
            }
        }
        let title = f.get("title").map(|n| c.title(n, "variants.title"));
        let body = f.get("body").map(|n| c.nonempty_string(n, "variants.body"));
        let links = f.get("links").map(|n| c.links(n, "variants.links"));
        if let (Some(id), Some(weight), Some(show)) = (id, weight, show) {
            out.push(Variant {
                id,
                weight,
                show,
                title: title.flatten(),
                body: body.flatten(),
                links: links.flatten(),
            });
        }
    }
    (c.errors.len() == before).then_some(out)
}

/// `variants.id`: an id of a-z, 0-9, - and _ that no earlier variant of the experiment
/// has (`ids` holds those, with where they are).
fn variant_id(c: &mut Checker<'_>, n: &Node<'_>, ids: &mut HashMap<String, Pos>) -> Option<String> {
    let id = c.string(n, "variants.id")?;
    if !valid_id(&id.replace('_', "-")) {
        c.err(
            n.pos,
            format!("`variants.id`: {id:?} must be 1 to 64 characters of a-z, 0-9, - and _"),
        );
        return None;
    }
    if let Some(first) = ids.get(&id) {
        c.err(
            n.pos,
            format!(
                "`variants.id`: duplicate variant id `{id}` (first at line {}, column {})",
                first.line, first.column
            ),
        );
        return None;
    }
    ids.insert(id.clone(), n.pos);
    Some(id)
}

/// `variants.weight`: a number greater than 0.
fn variant_weight(c: &mut Checker<'_>, n: &Node<'_>) -> Option<f64> {
    match n.value {
        Value::Int(w) if w > 0 => Some(w as f64),
        Value::Float(w) if w > 0.0 && w.is_finite() => Some(w),
        Value::Int(_) | Value::Float(_) => {
            c.err(n.pos, "`variants.weight`: must be greater than 0");
            None
        }
        ref other => {
            c.err(
                n.pos,
                format!(
                    "`variants.weight`: expected a number, found {}",
                    other.kind()
                ),
            );
            None
        }
    }
}

/// Checks `_deck.yaml`.
pub(super) fn deck(c: &mut Checker<'_>, node: &Node<'_>) -> Option<Deck> {
    if node.value == Value::Null {
        return Some(Deck::default());
    }
    let before = c.errors.len();
    let f = c.fields(node, "_deck.yaml", DECK_FIELDS)?;
    let d = Deck::default();
    let max_cards_per_call = f
        .get("max_cards_per_call")
        .map_or(Some(d.max_cards_per_call), |n| {
            c.int_in(n, "max_cards_per_call", 1, 1000)
        });
    let min_gap_seconds = f
        .get("min_gap_seconds")
        .map_or(Some(d.min_gap_seconds), |n| {
            c.int_in(n, "min_gap_seconds", 0, 3600)
        });
    let max_visible = f
        .get("max_visible")
        .map_or(Some(d.max_visible), |n| c.int_in(n, "max_visible", 1, 20));
    if c.errors.len() > before {
        return None;
    }
    Some(Deck {
        max_cards_per_call: max_cards_per_call?,
        min_gap_seconds: min_gap_seconds?,
        max_visible: max_visible?,
    })
}

/// Checks `_vocab.yaml`: named lists of phrases (no nested references).
pub(super) fn vocab(c: &mut Checker<'_>, node: &Node<'_>) -> Vocab {
    let mut out = Vocab::new();
    if node.value == Value::Null {
        return out;
    }
    let Value::Map(entries) = &node.value else {
        c.err(
            node.pos,
            format!(
                "_vocab.yaml: expected a mapping of list names to phrase lists, found {}",
                node.value.kind()
            ),
        );
        return out;
    };
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    for (key, value) in entries {
        let Value::Str(name) = &key.value else {
            c.err(key.pos, "_vocab.yaml: list names must be strings");
            continue;
        };
        if let Some(first) = seen.get(name.as_ref()) {
            c.err(
                key.pos,
                format!(
                    "duplicate key `{name}` (first at line {}, column {})",
                    first.line, first.column
                ),
            );
            continue;
        }
        seen.insert(name, key.pos);
        let field = format!("@{name}");
        let Some(items) = c.string_list(value, &field) else {
            continue;
        };
        if items.is_empty() {
            c.err(value.pos, format!("`{field}`: empty phrase list"));
            continue;
        }
        let mut phrases = Vec::new();
        for (text, pos) in items {
            if text.starts_with('@') {
                c.err(
                    pos,
                    format!("`{field}`: {text:?}: vocabulary lists cannot reference other lists"),
                );
            } else if normalize(&text).trim().is_empty() {
                c.err(
                    pos,
                    format!("`{field}`: phrase {text:?} normalizes to nothing"),
                );
            } else {
                phrases.push(text);
            }
        }
        out.insert(name.to_string(), phrases);
    }
    out
}
