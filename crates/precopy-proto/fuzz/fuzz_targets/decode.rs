//! Decodes arbitrary bytes as a stream of frames. Properties: no panic; a frame that parses
//! re-emits to exactly the bytes it came from; any proper prefix of it is incomplete.
#![no_main]

use libfuzzer_sys::fuzz_target;
use precopy_proto::parse;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((message, used))) = parse(rest) {
        let mut again = Vec::new();
        message.emit(&mut again).expect("a parsed frame re-emits");
        assert_eq!(again, rest[..used]);
        assert_eq!(parse(&rest[..used - 1]), Ok(None));
        rest = &rest[used..];
    }
});
