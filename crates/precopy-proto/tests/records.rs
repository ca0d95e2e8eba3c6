//! Properties of the handshake and the record layer, and the `record` fuzzer's committed inputs
//! replayed without nightly.

use std::path::Path;

use precopy_proto::handshake::{respond, Initiator, Key};
use precopy_proto::record::{Opener, Sealer, OPEN_SPACE};
use proptest::prelude::*;

#[path = "../fuzz/record_property.rs"]
mod record_property;

fn channel() -> (Sealer, Opener) {
    let key = Key::from_token(b"proptest token 0123456789").unwrap();
    let (initiator, hello) = Initiator::start(&key);
    let (welcome, _, opener) = respond(&key, &hello).unwrap();
    let (sealer, _) = initiator.finish(&welcome).unwrap();
    (sealer, opener)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn writes_of_any_size_arrive_in_order(
        writes in prop::collection::vec(prop::collection::vec(0u8..4, 0..150_000), 1..4),
        level in prop::option::of(1i32..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let (mut sealer, mut opener) = channel();
        let mut wire = Vec::new();
        for w in &writes {
            sealer.seal(w, level, &mut wire).unwrap();
        }
        // Fed in two pieces split anywhere, as reads return them.
        let cut = cut.index(wire.len() + 1);
        let mut buffered = wire[..cut].to_vec();
        let mut rest = &wire[cut..];
        let mut got = Vec::new();
        let mut out = vec![0; OPEN_SPACE];
        loop {
            match opener.open(&buffered, &mut out).unwrap() {
                Some((used, n)) => {
                    got.extend_from_slice(&out[..n]);
                    buffered.drain(..used);
                }
                None if rest.is_empty() => break,
                None => {
                    buffered.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        prop_assert!(buffered.is_empty());
        prop_assert_eq!(got, writes.concat());
    }

    #[test]
    fn arbitrary_input_never_panics(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        record_property::check(&input);
    }
}

/// Every file of the `record` fuzzer's committed corpus and regressions passes its property.
#[test]
fn committed_fuzz_inputs_replay() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["corpus/record", "regressions/record"] {
        for file in std::fs::read_dir(fuzz.join(dir)).unwrap() {
            let path = file.unwrap().path();
            record_property::check(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "only {replayed} committed fuzz inputs");
}
