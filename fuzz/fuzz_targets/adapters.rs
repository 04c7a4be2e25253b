//! Every STT adapter: a stream of provider frames (lines of the input, the first byte
//! choosing the adapter) decodes or reports an error, never panics.
#![no_main]

use cuedeck::protocol::adapters::{Adapter, CallSetup, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = Format::ALL[pick as usize % Format::ALL.len()];
    let setup = CallSetup {
        call_id: Some("fuzz".into()),
        rep_label: Some("0".into()),
        ..CallSetup::default()
    };
    let mut adapter = Adapter::new(format, setup);
    for line in text.lines() {
        let _ = adapter.decode(line);
    }
});
