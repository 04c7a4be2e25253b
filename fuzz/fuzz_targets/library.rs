//! The YAML card loader: any bytes as a card file and as a vocabulary file must give a
//! library or located errors, never a panic; every error points inside its file.
#![no_main]

use cuedeck::library::{Library, LibraryError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (card, vocab) = text.split_once("\n---\n").unwrap_or((text, ""));
    let files = [("card.yaml", card), ("_vocab.yaml", vocab)];
    if let Err(LibraryError::Invalid(errors)) = Library::from_sources(&files, "fuzz") {
        for e in errors {
            let (_, text) = files
                .iter()
                .find(|(name, _)| *name == e.at.file)
                .unwrap_or_else(|| panic!("error names an unknown file: {e}"));
            // YAML breaks lines at `\n`, `\r\n` and a lone `\r`; a position may be just past
            // the last break.
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count() as u32;
            assert!(e.at.line >= 1 && e.at.line <= lines, "{e} (file has {lines} lines)");
            assert!(e.at.column >= 1, "{e}");
        }
    }
});
