//! The card library: a directory of YAML files in, an immutable, validated [`Library`] out.
//!
//! Loading has two steps. [`yaml`] reads each file into a tree whose nodes know their line
//! and column; `schema` walks the trees and reports *every* problem (unknown or missing
//! fields, duplicate keys, bad values and ranges, unknown `@vocab` names, duplicate card
//! ids with both locations, …) as a [`LoadError`] with file, line and column. A library
//! with any error is rejected as a whole, so a half-valid library never goes live.

mod model;
mod schema;
pub mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::location::Pos;
use crate::parallel;

pub use model::*;

/// One problem in a card library, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// Where the problem is.
    pub at: Location,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Why a library could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The directory or a file could not be read. The reason is part of the message (not
    /// a `source`), so an error chain does not print it twice.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The files were read but are not a valid library; every problem is listed.
    #[error("{} error(s) in the card library:\n{}", .0.len(), join_lines(.0))]
    Invalid(Vec<LoadError>),
}

fn join_lines(errors: &[LoadError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Largest card file read, against accidental huge files.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// A validated, immutable card library.
#[derive(Debug, Clone)]
pub struct Library {
    cards: Vec<Arc<Card>>,
    by_id: HashMap<String, usize>,
    deck: Deck,
    vocab: Vocab,
    version: String,
    source: String,
}

impl Library {
    /// Loads every `*.yaml` / `*.yml` file directly in `dir` (not subdirectories).
    pub fn load_dir(dir: &Path) -> Result<Library, LibraryError> {
        let io = |path: &Path, error| LibraryError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let entry = entry.map_err(|e| io(dir, e))?;
            let path = entry.path();
            let is_yaml = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            if !is_yaml || !path.is_file() {
                continue;
            }
            // The size of what is read, not of the directory entry: a symlink's own
            // metadata says nothing about the file it points to. Reading at most one byte
            // over the limit also covers a file that grows after the check.
            let file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(file, MAX_FILE_BYTES + 1),
                &mut text,
            )
            .map_err(|e| io(&path, e))?;
            let len = text.len() as u64;
            if len > MAX_FILE_BYTES {
                return Err(LibraryError::Invalid(vec![LoadError {
                    at: Location::new(path.display().to_string(), Pos::START),
                    message: format!(
                        "file is over {MAX_FILE_BYTES} bytes, at most {MAX_FILE_BYTES} allowed"
                    ),
                }]));
            }
            files.push((path.display().to_string(), text));
        }
        let sources: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        Library::from_sources(&sources, &dir.display().to_string())
    }

    /// Builds a library from `(file name, YAML text)` pairs; `source` names where they came
    /// from (shown in status output). File names starting with `_` are settings files.
    pub fn from_sources(files: &[(&str, &str)], source: &str) -> Result<Library, LibraryError> {
        let mut files: Vec<(&str, &str)> = files.to_vec();
        files.sort();
        let version = version_of(&files);
        let mut errors: Vec<LoadError> = Vec::new();
        let parsed = parse_files(&files, &mut errors);
        // Settings first: cards refer to vocabulary lists.
        let (vocab, deck) = read_settings(&parsed, &mut errors);
        let items = card_items(&parsed, &mut errors);
        let mut cards = check_cards(&items, &vocab, &mut errors);
        check_experiment_keys(&cards, &mut errors);

        if !errors.is_empty() {
            errors.sort_by(|a, b| a.at.cmp(&b.at));
            return Err(LibraryError::Invalid(errors));
        }
        cards.sort_by(|a, b| a.id.cmp(&b.id));
        let by_id = cards
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        Ok(Library {
            cards: cards.into_iter().map(Arc::new).collect(),
            by_id,
            deck,
            vocab,
            version,
            source: source.to_string(),
        })
    }

    /// Cards sorted by id.
    pub fn cards(&self) -> &[Arc<Card>] {
        &self.cards
    }

    /// A card by id.
    pub fn card(&self, id: &str) -> Option<&Arc<Card>> {
        self.by_id.get(id).and_then(|&i| self.cards.get(i))
    }

    /// The library-wide display policy.
    pub fn deck(&self) -> &Deck {
        &self.deck
    }

    /// The named phrase lists.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// `sha256:<hex>` over the files' names and contents: equal libraries, equal versions.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Where the library was loaded from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The longest `window_seconds` of any card (0 when no card uses a window), which
    /// bounds how much transcript a call keeps.
    pub fn max_window_seconds(&self) -> u32 {
        self.cards
            .iter()
            .filter_map(|c| match c.triggers.scope {
                Scope::Window { seconds } => Some(seconds),
                Scope::Segment => None,
            })
            .max()
            .unwrap_or(0)
    }
}

/// Below this many bytes of YAML a library is checked on one thread (spawning costs more).
const PARALLEL_MIN_BYTES: usize = 64 * 1024;

/// `sha256:<hex>` over the files' base names and contents, each length-prefixed (`files`
/// sorted by name, so the order they were given in does not matter).
fn version_of(files: &[(&str, &str)]) -> String {
    let mut hasher = Sha256::new();
    for (name, text) in files {
        let base = base_name(name);
        hasher.update((base.len() as u64).to_le_bytes());
        hasher.update(base.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    format!("sha256:{:x}", hasher.finalize())
}

/// Each file's YAML tree with its name and size, in file order; a file that is not valid
/// YAML adds an error instead.
fn parse_files<'f>(
    files: &[(&'f str, &'f str)],
    errors: &mut Vec<LoadError>,
) -> Vec<(&'f str, usize, yaml::Node<'f>)> {
    // Files are independent until the duplicate-id check: parse them on every core (a
    // large library's reload is dominated by YAML parsing).
    let results = parallel::map(
        files,
        |(_, text)| text.len(),
        PARALLEL_MIN_BYTES,
        |(_, text)| yaml::parse(text),
    );
    let mut parsed = Vec::new();
    for ((name, text), result) in files.iter().zip(results) {
        match result {
            Ok(node) => parsed.push((*name, text.len(), node)),
            Err(e) => errors.push(LoadError {
                at: Location::new(*name, e.pos),
                message: format!("invalid YAML: {}", e.message),
            }),
        }
    }
    parsed
}

/// The settings files: the vocabulary (`_vocab.yaml`) and the deck policy (`_deck.yaml`),
/// defaults for those missing. Any other name starting with `_` is an error.
fn read_settings(
    parsed: &[(&str, usize, yaml::Node<'_>)],
    errors: &mut Vec<LoadError>,
) -> (Vocab, Deck) {
    let mut vocab = Vocab::new();
    let mut deck = Deck::default();
    for (name, _, node) in parsed {
        let mut c = schema::Checker::new(name);
        match base_name(name) {
            "_vocab.yaml" | "_vocab.yml" => vocab = schema::vocab(&mut c, node),
            "_deck.yaml" | "_deck.yml" => {
                if let Some(d) = schema::deck(&mut c, node) {
                    deck = d;
                }
            }
            other if other.starts_with('_') => c.err(
                yaml::Pos::START,
                "unknown settings file: names starting with `_` are reserved for _deck.yaml and _vocab.yaml",
            ),
            _ => {}
        }
        errors.append(&mut c.errors);
    }
    (vocab, deck)
}

/// The card files' cards as `(file, approximate bytes, node)` work items: one per card,
/// not per file, so that one large file holding a list of cards is checked on every core
/// too. Item order is file order, then list order. An empty card file is an error.
fn card_items<'p>(
    parsed: &'p [(&'p str, usize, yaml::Node<'p>)],
    errors: &mut Vec<LoadError>,
) -> Vec<(&'p str, usize, &'p yaml::Node<'p>)> {
    let mut items = Vec::new();
    for (name, len, node) in parsed {
        if base_name(name).starts_with('_') {
            continue;
        }
        match &node.value {
            yaml::Value::Seq(list) => {
                let each = len / list.len().max(1);
                items.extend(list.iter().map(|item| (*name, each, item)));
            }
            yaml::Value::Null => {
                let mut c = schema::Checker::new(name);
                c.err(node.pos, "empty file: expected a card or a list of cards");
                errors.append(&mut c.errors);
            }
            _ => items.push((*name, *len, node)),
        }
    }
    items
}

/// Every valid card, checked on every core, in item order; a card whose id an earlier
/// card has is an error (naming both places) and left out.
fn check_cards(
    items: &[(&str, usize, &yaml::Node<'_>)],
    vocab: &Vocab,
    errors: &mut Vec<LoadError>,
) -> Vec<Card> {
    let checked = parallel::map(
        items,
        |(_, len, _)| *len,
        PARALLEL_MIN_BYTES,
        |(name, _, node)| {
            let mut c = schema::Checker::new(name);
            let card = schema::card(&mut c, node, vocab);
            (card, c.errors)
        },
    );
    let mut cards: Vec<Card> = Vec::new();
    let mut first_seen: HashMap<String, Location> = HashMap::new();
    for (card, mut card_errors) in checked {
        errors.append(&mut card_errors);
        let Some(card) = card else { continue };
        if let Some(first) = first_seen.get(&card.id) {
            errors.push(LoadError {
                at: card.origin.clone(),
                message: format!("duplicate card id `{}` (also defined at {first})", card.id),
            });
            continue;
        }
        first_seen.insert(card.id.clone(), card.origin.clone());
        cards.push(card);
    }
    cards
}

/// An experiment key used by two cards is an error (at the second, naming the first).
fn check_experiment_keys(cards: &[Card], errors: &mut Vec<LoadError>) {
    let mut seen_keys: HashMap<&str, &Card> = HashMap::new();
    for card in cards {
        if let Some(exp) = &card.experiment {
            if let Some(other) = seen_keys.get(exp.key.as_str()) {
                errors.push(LoadError {
                    at: card.origin.clone(),
                    message: format!(
                        "experiment key `{}` is also used by card `{}` ({})",
                        exp.key, other.id, other.origin
                    ),
                });
            } else {
                seen_keys.insert(&exp.key, card);
            }
        }
    }
}

fn base_name(path: &str) -> &str {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

#[cfg(test)]
mod tests;
