//! The phrases as a trie over word ids, and the walk that matches text against it.

use super::vocab::{FastMap, Vocab};
use super::{BuildError, PatternId};

const NO_NODE: u32 = u32::MAX;
const NO_PATTERN: u32 = u32::MAX;
/// Partial matches tracked on the stack; deeper libraries use a heap buffer per call.
const ACTIVE_ON_STACK: usize = 64;

/// The phrases as a trie over word ids. Node 0 is the root; its children are a dense
/// array indexed by word id, every other node's children a sorted run of `(word, node)`.
#[derive(Debug, Clone)]
pub(super) struct WordTrie {
    /// Word → id, for every word of every phrase; a text word not in it ends all matches.
    vocab: Vocab,
    /// Word id → the root's child for it, or `NO_NODE`: one load for the first word, the
    /// most frequent step.
    root: Vec<u32>,
    /// Node `n`'s children are `edge_word/edge_node[offsets[n]..offsets[n + 1]]`.
    offsets: Vec<u32>,
    /// Edge → its word id; sorted within a node, so a child is found by binary search.
    edge_word: Vec<u32>,
    /// Edge → the node it leads to.
    edge_node: Vec<u32>,
    /// Node → the pattern ending there, or `NO_PATTERN`.
    pattern: Vec<u32>,
    /// Number of distinct phrases.
    patterns: usize,
    /// Words in the longest phrase: the most partial matches alive at once.
    max_depth: usize,
}

impl WordTrie {
    /// The trie of `phrases`, repeats allowed: a phrase's pattern id is the number of
    /// distinct phrases before its first occurrence (as [`index_phrases`](super::index_phrases) numbers them).
    pub(super) fn build<'p>(
        phrases: impl Iterator<Item = &'p str>,
    ) -> Result<WordTrie, BuildError> {
        let mut word_ids: FastMap<&str, u32> = Default::default();
        let mut words: Vec<&str> = Vec::new();
        let mut children: FastMap<(u32, u32), u32> = Default::default();
        let mut pattern = vec![NO_PATTERN];
        let mut patterns = 0;
        let mut max_depth = 0;
        for phrase in phrases {
            let mut node = 0u32;
            let mut depth = 0;
            for w in phrase.split(' ') {
                let wid = *word_ids.entry(w).or_insert_with(|| {
                    words.push(w);
                    words.len() as u32 - 1
                });
                let fresh = u32::try_from(pattern.len())
                    .ok()
                    .filter(|&n| n != NO_NODE)
                    .ok_or_else(|| BuildError("more than 4 billion trie nodes".into()))?;
                node = *children.entry((node, wid)).or_insert_with(|| {
                    pattern.push(NO_PATTERN);
                    fresh
                });
                depth += 1;
            }
            max_depth = max_depth.max(depth);
            if pattern[node as usize] == NO_PATTERN {
                pattern[node as usize] = patterns;
                patterns += 1;
            }
        }
        let mut edges: Vec<(u32, u32, u32)> =
            children.into_iter().map(|((p, w), c)| (p, w, c)).collect();
        edges.sort_unstable();
        let mut root = vec![NO_NODE; words.len()];
        let mut offsets = vec![0u32; pattern.len() + 1];
        for &(parent, word, child) in &edges {
            if parent == 0 {
                root[word as usize] = child;
            }
            offsets[parent as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        Ok(WordTrie {
            vocab: Vocab::new(&words),
            root,
            offsets,
            edge_word: edges.iter().map(|e| e.1).collect(),
            edge_node: edges.iter().map(|e| e.2).collect(),
            pattern,
            patterns: patterns as usize,
            max_depth,
        })
    }

    /// Number of distinct phrases.
    pub(super) fn patterns(&self) -> usize {
        self.patterns
    }

    /// The pattern of exactly `phrase` (words separated by single spaces): the trie is
    /// the index, so follow its words to where a pattern ends.
    pub(super) fn pattern_of(&self, phrase: &str) -> Option<PatternId> {
        let mut node = 0;
        for word in phrase.split(' ') {
            node = self.child(node, self.vocab.get(word.as_bytes())?);
            if node == NO_NODE {
                return None;
            }
        }
        self.pattern
            .get(node as usize)
            .copied()
            .filter(|&p| p != NO_PATTERN)
    }

    /// The child of `node` by `word`, or `NO_NODE`.
    #[inline]
    fn child(&self, node: u32, word: u32) -> u32 {
        if node == 0 {
            return self.root[word as usize];
        }
        let (a, b) = (
            self.offsets[node as usize] as usize,
            self.offsets[node as usize + 1] as usize,
        );
        match self.edge_word[a..b].binary_search(&word) {
            Ok(i) => self.edge_node[a + i],
            Err(_) => NO_NODE,
        }
    }

    /// Runs `f` with a fresh walk over this trie (its partial-match buffer on the stack
    /// unless the library has phrases of more than `ACTIVE_ON_STACK` words).
    #[inline(always)]
    pub(super) fn with_walk<R>(&self, f: impl FnOnce(&mut Walk<'_>) -> R) -> R {
        let mut stack = [0u32; ACTIVE_ON_STACK];
        let mut heap = Vec::new();
        let active: &mut [u32] = if self.max_depth <= ACTIVE_ON_STACK {
            &mut stack
        } else {
            heap.resize(self.max_depth, 0);
            &mut heap
        };
        f(&mut Walk {
            trie: self,
            active,
            alive: 0,
        })
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.vocab.heap_bytes()
            + (self.root.capacity()
                + self.offsets.capacity()
                + self.edge_word.capacity()
                + self.edge_node.capacity()
                + self.pattern.capacity())
                * 4
    }
}

/// Matching in progress: the trie nodes of the partial matches ending at the previous
/// word, oldest (longest) first; at most `max_depth` of them.
pub(super) struct Walk<'a> {
    /// The trie being walked.
    trie: &'a WordTrie,
    /// Buffer of partial-match nodes, `max_depth` long (on the stack when short enough).
    active: &'a mut [u32],
    /// How many of `active` hold partial matches after the previous word.
    alive: usize,
}

impl Walk<'_> {
    /// Advances over the next word of the text; appends the patterns that end here.
    #[inline(always)]
    pub(super) fn step(&mut self, word: &[u8], out: &mut Vec<PatternId>) {
        let trie = self.trie;
        let Some(word) = trie.vocab.get(word) else {
            self.alive = 0; // a word no phrase has: every partial match ends here
            return;
        };
        let active = &mut *self.active;
        let mut kept = 0;
        for j in 0..self.alive {
            let next = trie.child(active[j], word);
            if next != NO_NODE {
                active[kept] = next;
                kept += 1;
            }
        }
        let next = trie.root[word as usize];
        if next != NO_NODE && kept < active.len() {
            active[kept] = next;
            kept += 1;
        }
        self.alive = kept;
        for &node in &active[..kept] {
            let p = trie.pattern[node as usize];
            if p != NO_PATTERN && !out.contains(&p) {
                out.push(p);
            }
        }
    }
}
