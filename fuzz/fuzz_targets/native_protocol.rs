//! The native WebSocket message decoder: any frame text decodes or gives an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cuedeck::protocol::decode(text);
    }
});
