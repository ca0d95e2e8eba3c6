//! Properties of the decoder, and the fuzzer's committed corpus and regressions replayed without
//! nightly.

use std::path::Path;

use precopy_proto::{
    parse, Difference, Entry, ErrorCode, FileHeader, Message, ParseError, Reason, RelPath,
};
use proptest::prelude::*;

/// Owned data from which a borrowed [`Message`] is built (proptest needs owned values).
#[derive(Debug, Clone)]
enum Owned {
    Hello([u8; 32]),
    Challenge([u8; 32], [u8; 32]),
    Auth([u8; 32]),
    Ready,
    Bye,
    FileStart(u64, Vec<u8>, u32, i64, u32, u64),
    Chunk(Vec<u8>),
    FileEnd(u64, u64, [u8; 32]),
    FileAck(u64),
    Query(Vec<(Vec<u8>, u64, [u8; 32])>),
    Have(Vec<bool>),
    Manifest(bool, Vec<(Vec<u8>, u64, [u8; 32])>),
    Verdict(u32, Vec<(Vec<u8>, u8)>),
    Restart(Vec<u8>, Vec<Vec<u8>>),
    Started(u32),
    Error(u16, String),
}

fn rel_path() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec("[a-zA-Z0-9_.-]{1,12}", 1..5).prop_filter_map("dot components", |parts| {
        let joined = parts.join("/").into_bytes();
        RelPath::new(&joined).is_ok().then_some(joined)
    })
}

fn entries() -> impl Strategy<Value = Vec<(Vec<u8>, u64, [u8; 32])>> {
    prop::collection::vec((rel_path(), any::<u64>(), any::<[u8; 32]>()), 0..8)
}

fn owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(Owned::Hello),
        (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(n, p)| Owned::Challenge(n, p)),
        any::<[u8; 32]>().prop_map(Owned::Auth),
        Just(Owned::Ready),
        Just(Owned::Bye),
        (
            any::<u64>(),
            rel_path(),
            any::<u32>(),
            any::<i64>(),
            0..1_000_000_000u32,
            any::<u64>()
        )
            .prop_map(|(i, p, m, s, ns, z)| Owned::FileStart(i, p, m, s, ns, z)),
        prop::collection::vec(any::<u8>(), 0..2048).prop_map(Owned::Chunk),
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>())
            .prop_map(|(i, s, h)| Owned::FileEnd(i, s, h)),
        any::<u64>().prop_map(Owned::FileAck),
        entries().prop_map(Owned::Query),
        prop::collection::vec(any::<bool>(), 0..70).prop_map(Owned::Have),
        (any::<bool>(), entries()).prop_map(|(l, e)| Owned::Manifest(l, e)),
        (0u32..4, prop::collection::vec((rel_path(), 1u8..=4), 0..6))
            .prop_map(|(extra, list)| Owned::Verdict(extra, list)),
        (
            rel_path(),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..5)
        )
            .prop_map(|(c, a)| Owned::Restart(c, a)),
        any::<u32>().prop_map(Owned::Started),
        (any::<u16>(), "[ -~]{0,100}").prop_map(|(c, m)| Owned::Error(c, m)),
    ]
}

fn entry(e: &(Vec<u8>, u64, [u8; 32])) -> Entry<'_> {
    Entry {
        path: RelPath::new(&e.0).unwrap(),
        size: e.1,
        hash: e.2,
    }
}

fn reason(code: u8) -> Reason {
    [Reason::Missing, Reason::Size, Reason::Hash, Reason::Refused][code as usize - 1]
}

fn message(o: &Owned) -> Message<'_> {
    match o {
        Owned::Hello(n) => Message::Hello { nonce: *n },
        Owned::Challenge(n, p) => Message::Challenge {
            nonce: *n,
            proof: *p,
        },
        Owned::Auth(p) => Message::Auth { proof: *p },
        Owned::Ready => Message::Ready,
        Owned::Bye => Message::Bye,
        Owned::FileStart(id, path, mode, mtime_s, mtime_ns, size) => {
            Message::FileStart(FileHeader {
                id: *id,
                path: RelPath::new(path).unwrap(),
                mode: *mode,
                mtime_s: *mtime_s,
                mtime_ns: *mtime_ns,
                size: *size,
            })
        }
        Owned::Chunk(data) => Message::Chunk(data),
        Owned::FileEnd(id, size, hash) => Message::FileEnd {
            id: *id,
            size: *size,
            hash: *hash,
        },
        Owned::FileAck(id) => Message::FileAck { id: *id },
        Owned::Query(e) => Message::Query(e.iter().map(entry).collect()),
        Owned::Have(flags) => Message::Have(flags.clone()),
        Owned::Manifest(last, e) => Message::Manifest {
            last: *last,
            entries: e.iter().map(entry).collect(),
        },
        Owned::Verdict(extra, list) => Message::Verdict {
            files: list.len() as u32 + extra * 2,
            differing: list.len() as u32 + extra,
            list: list
                .iter()
                .map(|(p, r)| Difference {
                    path: RelPath::new(p).unwrap(),
                    reason: reason(*r),
                })
                .collect(),
        },
        Owned::Restart(cwd, argv) => Message::Restart {
            cwd: RelPath::new(cwd).unwrap(),
            argv: argv.iter().map(Vec::as_slice).collect(),
        },
        Owned::Started(pid) => Message::Started { pid: *pid },
        Owned::Error(code, text) => Message::Error {
            code: error_code(*code),
            message: text,
        },
    }
}

/// Known codes parse back as their named variant, so build them that way.
fn error_code(code: u16) -> ErrorCode {
    let mut wire = Vec::new();
    Message::Error {
        code: ErrorCode::Other(code),
        message: "",
    }
    .emit(&mut wire)
    .unwrap();
    match parse(&wire).unwrap().unwrap().0 {
        Message::Error { code, .. } => code,
        _ => unreachable!(),
    }
}

proptest! {
    #[test]
    fn emit_then_parse_round_trips(owned in owned()) {
        let sent = message(&owned);
        let mut wire = Vec::new();
        sent.emit(&mut wire).unwrap();
        let (got, used) = parse(&wire).unwrap().unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(got, sent);
    }

    #[test]
    fn frames_back_to_back_parse_in_order(a in owned(), b in owned()) {
        let mut wire = Vec::new();
        message(&a).emit(&mut wire).unwrap();
        message(&b).emit(&mut wire).unwrap();
        let (first, used) = parse(&wire).unwrap().unwrap();
        prop_assert_eq!(first, message(&a));
        let (second, rest) = parse(&wire[used..]).unwrap().unwrap();
        prop_assert_eq!(second, message(&b));
        prop_assert_eq!(used + rest, wire.len());
    }

    #[test]
    fn truncated_frames_are_incomplete_never_wrong(owned in owned(), cut in any::<prop::sample::Index>()) {
        let mut wire = Vec::new();
        message(&owned).emit(&mut wire).unwrap();
        let cut = cut.index(wire.len());
        prop_assert_eq!(parse(&wire[..cut]), Ok(None));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn arbitrary_payloads_behind_a_valid_header_never_panic(
        kind in any::<u8>(),
        payload in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut wire = b"PCMG\x01".to_vec();
        wire.push(kind);
        wire.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        wire.extend_from_slice(&payload);
        match parse(&wire) {
            Ok(Some((_, used))) => prop_assert_eq!(used, wire.len()),
            Ok(None) => prop_assert!(false, "a whole frame is never incomplete"),
            Err(_) => {}
        }
    }
}

/// Every file of the committed fuzz corpus and regressions decodes without panicking, and a
/// frame that parses re-emits to the same bytes.
#[test]
fn committed_fuzz_inputs_replay() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["corpus/decode", "regressions/decode"] {
        for file in std::fs::read_dir(fuzz.join(dir)).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            let mut rest = &bytes[..];
            while let Ok(Some((message, used))) = parse(rest) {
                let mut again = Vec::new();
                message.emit(&mut again).unwrap();
                assert_eq!(again, rest[..used]);
                rest = &rest[used..];
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "only {replayed} committed fuzz inputs");
}

#[test]
fn a_wrong_magic_is_refused_at_once() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ParseError::BadMagic));
}
