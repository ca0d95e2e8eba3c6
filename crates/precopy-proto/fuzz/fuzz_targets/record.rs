//! The handshake and the record layer against a hostile peer, and records' round trip: no panic,
//! nothing forged ever opens, a flipped bit or a replayed record never goes unseen. The property
//! is in `record_property.rs`, shared with the stable replay in `tests/records.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../record_property.rs");

fuzz_target!(|data: &[u8]| check(data));
