//! A recorded call (native JSON lines) replayed through the session against the bundled
//! cards: any input replays or reports a line error, never panics.
#![no_main]

#[path = "bundled.rs"]
mod bundled;

use bundled::engine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cuedeck::replay::replay_native(engine(), text);
    }
});
