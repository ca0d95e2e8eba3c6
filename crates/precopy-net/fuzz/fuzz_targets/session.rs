//! Arbitrary frame sequences fed to a receiving session on a memory destination. The property
//! (no panic; frames out of order refused by name; acknowledgements only for committed files, in
//! order, before any answer; one resend per refused delta…) is in `session_property.rs`, shared
//! with the stable replay in `tests/session/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../session_property.rs");

fuzz_target!(|data: &[u8]| check(data));
