//! The YAML card loader: any bytes as a card file and as a vocabulary file must give a
//! library or located errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (card, vocab) = text.split_once("\n---\n").unwrap_or((text, ""));
    let _ = cuedeck::library::Library::from_sources(
        &[("card.yaml", card), ("_vocab.yaml", vocab)],
        "fuzz",
    );
});
