//! Any bytes: the trace and data-set parsers, and the replay of a parsed trace
//! (`checks::trace_text`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        checks::trace_text(text);
    }
});
