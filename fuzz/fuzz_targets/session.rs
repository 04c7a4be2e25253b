//! A recorded call (native JSON lines) replayed through the session against the bundled
//! cards: any input replays or reports a line error, never panics.
#![no_main]

use std::sync::OnceLock;

use cuedeck::engine::Engine;
use cuedeck::library::Library;
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../battlecards");
        Engine::new(Library::load_dir(&dir).expect("bundled cards")).expect("engine")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cuedeck::replay::replay_native(engine(), text);
    }
});
