//! Word ids: every word of every phrase → a dense id, and the hashing behind it.

/// Hash maps for building: their keys are the library's own phrases and words, not
/// client input, so a fast multiply-rotate hash replaces SipHash (about a third of the
/// build time at 100k phrases went to hashing).
pub(super) type FastMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

#[derive(Default)]
pub(super) struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            self.write_u64(pack_short(chunk).unwrap_or(0));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply leaves its entropy in the high bits; the table indexes by the low.
        self.0.rotate_left(26)
    }
}

/// Every word of every phrase → a dense id. Open addressing with linear probing at a load
/// factor of at most 1/2; keys live in one arena.
#[derive(Debug, Clone)]
pub(super) struct Vocab {
    /// Word id + 1 per slot; 0 is empty.
    slots: Vec<u32>,
    /// Word id → its hash, compared before the bytes (most probes miss on the hash).
    hashes: Vec<u64>,
    /// Word id → start of its bytes in `arena`; one more entry than words.
    starts: Vec<u32>,
    /// Every word's bytes, back to back: one allocation instead of one per word.
    arena: Vec<u8>,
}

impl Vocab {
    pub(super) fn new(words: &[&str]) -> Vocab {
        let cap = (words.len() * 2).next_power_of_two().max(16);
        let mut v = Vocab {
            slots: vec![0; cap],
            hashes: Vec::with_capacity(words.len()),
            starts: Vec::with_capacity(words.len() + 1),
            arena: Vec::new(),
        };
        v.starts.push(0);
        for (id, w) in words.iter().enumerate() {
            let h = hash_word(w.as_bytes());
            v.hashes.push(h);
            v.arena.extend_from_slice(w.as_bytes());
            v.starts.push(v.arena.len() as u32);
            let mask = cap - 1;
            let mut i = (h >> 32) as usize & mask;
            while v.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            v.slots[i] = id as u32 + 1;
        }
        v
    }

    #[inline(always)]
    pub(super) fn get(&self, word: &[u8]) -> Option<u32> {
        let h = hash_word(word);
        let mask = self.slots.len() - 1;
        let mut i = (h >> 32) as usize & mask;
        loop {
            let id = self.slots[i].checked_sub(1)? as usize;
            if self.hashes[id] == h
                && same_word(
                    &self.arena[self.starts[id] as usize..self.starts[id + 1] as usize],
                    word,
                )
            {
                return Some(id as u32);
            }
            i = (i + 1) & mask;
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4
            + self.hashes.capacity() * 8
            + self.starts.capacity() * 4
            + self.arena.capacity()
    }
}

/// A fast non-cryptographic hash of a word (the keys are the library's own words, so
/// flooding is not a concern). Words of up to 8 bytes — nearly all — are read with
/// fixed-size loads (no `memcpy` call for a variable-length tail); longer ones 8 bytes at
/// a time.
#[inline(always)]
fn hash_word(w: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (w.len() as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
    if let Some(packed) = pack_short(w) {
        h ^= packed;
    } else {
        for c in w.chunks(8) {
            h = (h ^ pack_short(c).unwrap_or(0))
                .wrapping_mul(K)
                .rotate_left(29);
        }
    }
    let h = h.wrapping_mul(K);
    h ^ (h >> 29)
}

/// The bytes of a word of at most 8 bytes in one `u64`: together with the length it
/// determines the word (lengths 4–8: the first and the last four bytes, overlapping;
/// 1–3: first, middle and last byte). `None` for longer words.
#[inline(always)]
fn pack_short(w: &[u8]) -> Option<u64> {
    let n = w.len();
    match (w.first_chunk::<4>(), w.last_chunk::<4>()) {
        _ if n > 8 => None,
        (Some(a), Some(b)) => {
            Some(u64::from(u32::from_le_bytes(*a)) | u64::from(u32::from_le_bytes(*b)) << 32)
        }
        _ => match (w.first(), w.get(n / 2), w.last()) {
            (Some(&a), Some(&m), Some(&z)) => {
                Some(u64::from(a) | u64::from(m) << 8 | u64::from(z) << 16)
            }
            _ => Some(0),
        },
    }
}

/// Word equality without a `memcmp` call for short words.
#[inline(always)]
fn same_word(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && match (pack_short(a), pack_short(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_equality_is_exact_for_every_length() {
        // Every word over a 3-letter alphabet up to 9 bytes against every other of the
        // same length: the packed comparison must agree with byte equality.
        let mut words: Vec<Vec<u8>> = vec![Vec::new()];
        let mut frontier = words.clone();
        for _ in 0..9 {
            let next: Vec<Vec<u8>> = frontier
                .iter()
                .flat_map(|w| {
                    b"abc".iter().map(move |&c| {
                        let mut w = w.clone();
                        w.push(c);
                        w
                    })
                })
                .collect();
            words.extend(next.iter().cloned());
            frontier = next;
        }
        let short: Vec<&Vec<u8>> = words.iter().filter(|w| w.len() <= 6).collect();
        for a in &short {
            for b in &short {
                assert_eq!(same_word(a, b), a == b, "{a:?} {b:?}");
            }
        }
        // Longer words: each against a sample, and hash collisions stay rare.
        let mut hashes: Vec<u64> = words.iter().map(|w| hash_word(w)).collect();
        for a in words.iter().filter(|w| w.len() >= 7).step_by(37) {
            for b in words.iter().filter(|w| w.len() == a.len()) {
                assert_eq!(same_word(a, b), a == b, "{a:?} {b:?}");
            }
        }
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(
            hashes.len(),
            words.len(),
            "a hash collision among {} words",
            words.len()
        );
    }
}
