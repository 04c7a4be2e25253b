//! The matcher, differentially: for any text, the one-pass `normalize_and_find` gives the
//! same normalized text and the same patterns as `normalize` then `find`, and the
//! normalized text has the documented shape (padded, single spaces, lowercase ASCII).
#![no_main]

#[path = "bundled.rs"]
mod bundled;

use bundled::engine;
use cuedeck::matcher::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let matcher = engine().matcher();
    let two_pass_text = normalize(text);
    let mut two_pass = Vec::new();
    matcher.find(&two_pass_text, &mut two_pass);
    let mut one_pass_text = String::new();
    let mut one_pass = Vec::new();
    matcher.normalize_and_find(text, &mut one_pass_text, &mut one_pass);
    assert_eq!(one_pass_text, two_pass_text);
    assert_eq!(one_pass, two_pass);

    assert!(two_pass_text.starts_with(' ') && two_pass_text.ends_with(' '));
    assert!(!two_pass_text.contains("  "));
    assert!(
        !two_pass_text
            .bytes()
            .any(|b| b.is_ascii_uppercase() || b == b'\'')
    );
});
