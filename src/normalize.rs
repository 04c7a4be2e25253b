//! Text normalization, shared by the card library (its phrases) and the matcher (transcript
//! text): Unicode lowercase, apostrophes removed, every other non-alphanumeric character
//! turned into a space, runs of spaces collapsed, one space of padding at each end. A
//! normalized text is therefore a sequence of words separated by single spaces, which is
//! what makes phrase matching whole-word by construction (see the `matcher` module).
//!
//! A leaf module: it depends on nothing else in the crate, so that `library` and `matcher`
//! can both use it without depending on each other.

#![warn(missing_docs)]

/// Normalizes `text` into `out` (cleared first). The result always starts and ends with a
/// space; text with no letters or digits normalizes to a single space.
pub fn normalize_into(text: &str, out: &mut String) {
    normalize_with(text, out, |_| {});
}

/// [`normalize_into`], calling `on_word` with each output word as soon as it is complete,
/// so that matching can run in the same pass (no second scan for the spaces).
#[inline(always)]
pub(crate) fn normalize_with(text: &str, out: &mut String, mut on_word: impl FnMut(&[u8])) {
    out.clear();
    out.reserve(text.len() + 2);
    out.push(' ');
    let mut word_start = out.len();
    let bytes = text.as_bytes();
    let mut last_was_space = true;
    let mut i = 0;
    // Byte classes for ASCII (a table lookup per byte); other characters are decoded and
    // handled one by one. Transcript text is mostly words and single spaces: such a span is
    // copied with one `push_str` and lowercased in place, instead of word by word.
    while i < bytes.len() {
        match ASCII_CLASS[bytes[i] as usize] {
            KEEP | UPPER => {
                let start = i;
                let mut upper = false;
                loop {
                    match bytes.get(i).map(|&b| ASCII_CLASS[b as usize]) {
                        Some(KEEP) => i += 1,
                        Some(UPPER) => {
                            upper = true;
                            i += 1;
                        }
                        // A single space followed by a word byte stays inside the span.
                        Some(SEPARATOR)
                            if bytes[i] == b' '
                                && bytes.get(i + 1).is_some_and(|&b| {
                                    matches!(ASCII_CLASS[b as usize], KEEP | UPPER)
                                }) =>
                        {
                            i += 1
                        }
                        _ => break,
                    }
                }
                let from = out.len();
                out.push_str(&text[start..i]);
                if upper {
                    out[from..].make_ascii_lowercase();
                }
                // Words completed inside the span; the last one may go on (`don't`).
                let copied = out.as_bytes();
                for (k, &b) in copied.iter().enumerate().skip(from) {
                    if b == b' ' {
                        on_word(&copied[word_start..k]);
                        word_start = k + 1;
                    }
                }
                last_was_space = false;
                continue;
            }
            APOSTROPHE => {}
            SEPARATOR => {
                if !last_was_space {
                    on_word(&out.as_bytes()[word_start..]);
                    out.push(' ');
                    word_start = out.len();
                    last_was_space = true;
                }
            }
            _ => {
                // Not ASCII: `i` is at a character boundary (only ASCII bytes and whole
                // characters are stepped over).
                let Some(c) = text[i..].chars().next() else {
                    break;
                };
                i += c.len_utf8();
                if c == '\u{2019}' {
                    continue;
                }
                if c.is_alphanumeric() {
                    out.extend(c.to_lowercase());
                    last_was_space = false;
                } else if !last_was_space {
                    on_word(&out.as_bytes()[word_start..]);
                    out.push(' ');
                    word_start = out.len();
                    last_was_space = true;
                }
                continue;
            }
        }
        i += 1;
    }
    if !last_was_space {
        on_word(&out.as_bytes()[word_start..]);
        out.push(' ');
    }
}

const SEPARATOR: u8 = 0;
const KEEP: u8 = 1;
const UPPER: u8 = 2;
const APOSTROPHE: u8 = 3;
const NON_ASCII: u8 = 4;

/// What [`normalize_into`] does with each byte value.
static ASCII_CLASS: [u8; 256] = {
    let mut t = [SEPARATOR; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c >= 0x80 {
            NON_ASCII
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            KEEP
        } else if c.is_ascii_uppercase() {
            UPPER
        } else if c == b'\'' {
            APOSTROPHE
        } else {
            SEPARATOR
        };
        b += 1;
    }
    t
};

/// Normalizes `text` into a new string; see [`normalize_into`].
pub fn normalize(text: &str) -> String {
    let mut out = String::new();
    normalize_into(text, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    macro_rules! norm {
        ($name:ident, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(normalize($input), $expected);
            }
        };
    }

    norm!(lowercases, "The PRICE Is", " the price is ");
    norm!(apostrophes_removed, "don't won’t", " dont wont ");
    norm!(possessive_glues, "Acme's deal", " acmes deal ");
    norm!(punctuation_is_space, "price,too-high!!", " price too high ");
    norm!(runs_collapse, "  a \t\n b  ", " a b ");
    norm!(unicode_lowercase, "CAFÉ Café", " café café ");
    norm!(digits_kept, "10k seats, $5/user", " 10k seats 5 user ");
    norm!(nothing_left, "?!  ...", " ");
    norm!(empty, "", " ");
    norm!(lone_apostrophe, "it ' x 'y", " it x y ");
    norm!(mixed_case_span, "We NEED to Think", " we need to think ");
    norm!(space_before_non_ascii, "a é", " a é ");
    norm!(non_latin_letters, "Цена ВЫСОКАЯ", " цена высокая ");

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The byte-table normalization equals the plain `chars()` definition.
        #[test]
        fn normalize_matches_reference(text in "(\\PC|[ 'A-Za-z0-9’,.!?-]){0,40}") {
            prop_assert_eq!(normalize(&text), reference_normalize(&text));
        }
    }

    /// The definition `normalize_into` is optimized from.
    fn reference_normalize(text: &str) -> String {
        let mut out = String::from(" ");
        let mut last_was_space = true;
        for c in text.chars() {
            if c == '\'' || c == '\u{2019}' {
                continue;
            }
            if c.is_alphanumeric() {
                out.extend(c.to_lowercase());
                last_was_space = false;
            } else if !last_was_space {
                out.push(' ');
                last_was_space = true;
            }
        }
        if !last_was_space {
            out.push(' ');
        }
        out
    }
}
