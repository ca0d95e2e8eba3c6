//! Any text (command-line values and URL parameters reach these parsers): a value or an error,
//! never a panic, and a parsed value is one the simulation can use.
#![no_main]

use libfuzzer_sys::fuzz_target;
use precopy_core::units::{parse_bandwidth, parse_duration, parse_size};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for value in [parse_bandwidth(text), parse_duration(text)].into_iter().flatten() {
        assert!(value.is_finite() && value > 0.0, "{text:?} gave {value}");
    }
    if let Ok(bytes) = parse_size(text) {
        assert!(bytes >= 1, "{text:?} gave {bytes}");
    }
});
