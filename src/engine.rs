//! An [`Engine`] is one loaded library plus its phrase automaton: everything a call needs
//! to decide which cards to show. It is immutable; a reload builds a new one and swaps it.

#![warn(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::library::Library;
use crate::matcher::{BuildError, Matcher};

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A library and its matcher, built together.
#[derive(Debug)]
pub struct Engine {
    library: Library,
    matcher: Matcher,
    generation: u64,
}

impl Engine {
    /// Builds the matcher for `library`.
    pub fn new(library: Library) -> Result<Engine, BuildError> {
        let matcher = Matcher::build(&library)?;
        Ok(Engine {
            library,
            matcher,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The cards, deck settings and vocabulary this engine was built from.
    pub fn library(&self) -> &Library {
        &self.library
    }

    /// The automaton over every trigger phrase of the library.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// Unique per built engine in this process: a session that sees a new generation
    /// re-matches the transcript it keeps for window scopes.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}
