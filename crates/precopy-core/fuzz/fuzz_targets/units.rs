//! Any text (command-line values and URL parameters reach these parsers): a value or an error,
//! never a panic, and a parsed value is one the simulation can use.
#![no_main]

use libfuzzer_sys::fuzz_target;
use precopy_core::units::{
    parse_bandwidth, parse_compress_ratio, parse_duration, parse_size, parse_write_bytes,
};

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
    if let Ok(ratio) = parse_compress_ratio(text) {
        assert!(ratio.is_finite() && ratio >= 1.0, "{text:?} gave {ratio}");
    }
    // A write size is one the simulation accepts, and reads back the same from its display.
    if let Ok(write_bytes) = parse_write_bytes(text) {
        assert!(write_bytes.is_valid(), "{text:?} gave {write_bytes:?}");
        assert_eq!(parse_write_bytes(&write_bytes.to_string()), Ok(write_bytes));
    }
});
