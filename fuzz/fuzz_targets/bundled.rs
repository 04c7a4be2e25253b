//! The engine over the repository's bundled cards, built once per fuzzing process.

use std::sync::OnceLock;

use cuedeck::engine::Engine;
use cuedeck::library::Library;

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../battlecards");
        Engine::new(Library::load_dir(&dir).expect("bundled cards")).expect("engine")
    })
}
