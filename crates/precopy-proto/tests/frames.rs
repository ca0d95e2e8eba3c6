//! Properties of the decoder, and the fuzzer's committed corpus and regressions replayed without
//! nightly.

use std::path::Path;

use precopy_proto::{
    parse, DeltaHeader, Difference, Entry, ErrorCode, FileHeader, Identity, Message, Meta, Node,
    NodeKind, ParseError, Reason, RelPath,
};
use proptest::prelude::*;

/// Owned data from which a borrowed [`Message`] is built (proptest needs owned values).
#[derive(Debug, Clone)]
enum Owned {
    Hello([u8; 48]),
    Welcome([u8; 48]),
    Bye,
    FileStart(u64, Vec<u8>, Meta, u64),
    Chunk(Vec<u8>),
    FileEnd(u64, u64, [u8; 32]),
    FileAck(u64),
    DeltaStart(u64, Vec<u8>, Meta, u64, u64, [u8; 32]),
    Patch(u64, Vec<u8>),
    Resend(u64),
    Rename(Vec<u8>, Vec<u8>),
    Query(Vec<(Vec<u8>, u64, [u8; 32])>),
    Have(Vec<bool>),
    Manifest(bool, bool, Vec<Vec<u8>>, Vec<OwnedNode>),
    Verdict(u32, Vec<(Vec<u8>, u8)>),
    Restart(Vec<u8>, u32, u32, Vec<u32>, Vec<Vec<u8>>, Vec<Vec<u8>>),
    Started(u32, u32),
    Error(u16, String),
}

fn rel_path() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec("[a-zA-Z0-9_.-]{1,12}", 1..5).prop_filter_map("dot components", |parts| {
        let joined = parts.join("/").into_bytes();
        RelPath::new(&joined).is_ok().then_some(joined)
    })
}

#[derive(Debug, Clone)]
enum OwnedKind {
    File(u64, [u8; 32]),
    Dir,
    Symlink(Vec<u8>),
}

type OwnedNode = (Vec<u8>, Meta, OwnedKind);

fn meta() -> impl Strategy<Value = Meta> {
    (
        0..=0o7777u32,
        any::<u32>(),
        any::<u32>(),
        any::<i64>(),
        0..1_000_000_000u32,
    )
        .prop_map(|(mode, uid, gid, mtime_s, mtime_ns)| Meta {
            mode,
            uid,
            gid,
            mtime_s,
            mtime_ns,
        })
}

fn nodes() -> impl Strategy<Value = Vec<OwnedNode>> {
    let kind = prop_oneof![
        (any::<u64>(), any::<[u8; 32]>()).prop_map(|(s, h)| OwnedKind::File(s, h)),
        Just(OwnedKind::Dir),
        prop::collection::vec(1u8..=255, 1..40).prop_map(OwnedKind::Symlink),
    ];
    prop::collection::vec((rel_path(), meta(), kind), 0..6)
}

fn blobs(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..max)
}

fn entries() -> impl Strategy<Value = Vec<(Vec<u8>, u64, [u8; 32])>> {
    prop::collection::vec((rel_path(), any::<u64>(), any::<[u8; 32]>()), 0..8)
}

fn owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 48).prop_map(|v| Owned::Hello(v.try_into().unwrap())),
        prop::collection::vec(any::<u8>(), 48).prop_map(|v| Owned::Welcome(v.try_into().unwrap())),
        Just(Owned::Bye),
        (any::<u64>(), rel_path(), meta(), any::<u64>())
            .prop_map(|(i, p, m, z)| Owned::FileStart(i, p, m, z)),
        prop::collection::vec(any::<u8>(), 0..2048).prop_map(Owned::Chunk),
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>())
            .prop_map(|(i, s, h)| Owned::FileEnd(i, s, h)),
        any::<u64>().prop_map(Owned::FileAck),
        (
            any::<u64>(),
            rel_path(),
            meta(),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 32]>()
        )
            .prop_map(|(i, p, m, z, b, h)| Owned::DeltaStart(i, p, m, z, b, h)),
        (0..u64::MAX / 2, prop::collection::vec(any::<u8>(), 0..2048))
            .prop_map(|(o, d)| Owned::Patch(o, d)),
        any::<u64>().prop_map(Owned::Resend),
        (rel_path(), rel_path()).prop_map(|(f, t)| Owned::Rename(f, t)),
        entries().prop_map(Owned::Query),
        prop::collection::vec(any::<bool>(), 0..70).prop_map(Owned::Have),
        (
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(rel_path(), 0..3),
            nodes()
        )
            .prop_map(|(l, v, r, n)| Owned::Manifest(l, v, r, n)),
        (0u32..4, prop::collection::vec((rel_path(), 1u8..=8), 0..6))
            .prop_map(|(extra, list)| Owned::Verdict(extra, list)),
        (
            rel_path(),
            any::<u32>(),
            any::<u32>(),
            prop::collection::vec(any::<u32>(), 0..4),
            blobs(4),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..5)
        )
            .prop_map(|(c, u, g, gs, e, a)| Owned::Restart(c, u, g, gs, e, a)),
        (any::<u32>(), any::<u32>()).prop_map(|(p, r)| Owned::Started(p, r)),
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
    [
        Reason::Missing,
        Reason::Size,
        Reason::Hash,
        Reason::Refused,
        Reason::Kind,
        Reason::Metadata,
        Reason::Extra,
        Reason::Target,
    ][code as usize - 1]
}

fn node(n: &OwnedNode) -> Node<'_> {
    Node {
        path: RelPath::new(&n.0).unwrap(),
        meta: n.1,
        kind: match &n.2 {
            OwnedKind::File(size, hash) => NodeKind::File {
                size: *size,
                hash: *hash,
            },
            OwnedKind::Dir => NodeKind::Dir,
            OwnedKind::Symlink(target) => NodeKind::Symlink { target },
        },
    }
}

fn message(o: &Owned) -> Message<'_> {
    match o {
        Owned::Hello(n) => Message::Hello { noise: *n },
        Owned::Welcome(n) => Message::Welcome { noise: *n },
        Owned::Bye => Message::Bye,
        Owned::FileStart(id, path, meta, size) => Message::FileStart(FileHeader {
            id: *id,
            path: RelPath::new(path).unwrap(),
            meta: *meta,
            size: *size,
        }),
        Owned::Chunk(data) => Message::Chunk(data),
        Owned::FileEnd(id, size, hash) => Message::FileEnd {
            id: *id,
            size: *size,
            hash: *hash,
        },
        Owned::FileAck(id) => Message::FileAck { id: *id },
        Owned::DeltaStart(id, path, meta, size, base_size, base_hash) => {
            Message::DeltaStart(DeltaHeader {
                id: *id,
                path: RelPath::new(path).unwrap(),
                meta: *meta,
                size: *size,
                base_size: *base_size,
                base_hash: *base_hash,
            })
        }
        Owned::Patch(offset, data) => Message::Patch {
            offset: *offset,
            data,
        },
        Owned::Resend(id) => Message::Resend { id: *id },
        Owned::Rename(from, to) => Message::Rename {
            from: RelPath::new(from).unwrap(),
            to: RelPath::new(to).unwrap(),
        },
        Owned::Query(e) => Message::Query(e.iter().map(entry).collect()),
        Owned::Have(flags) => Message::Have(flags.clone()),
        Owned::Manifest(last, verify, roots, nodes) => Message::Manifest {
            last: *last,
            verify: *verify,
            roots: roots.iter().map(|r| RelPath::new(r).unwrap()).collect(),
            nodes: nodes.iter().map(node).collect(),
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
        Owned::Restart(cwd, uid, gid, groups, env, argv) => Message::Restart {
            cwd: RelPath::new(cwd).unwrap(),
            identity: Identity {
                uid: *uid,
                gid: *gid,
                groups: groups.clone(),
                env: env.iter().map(Vec::as_slice).collect(),
            },
            argv: argv.iter().map(Vec::as_slice).collect(),
        },
        Owned::Started(pid, running_ms) => Message::Started {
            pid: *pid,
            running_ms: *running_ms,
        },
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
        let mut wire = b"PCMG".to_vec();
        wire.push(precopy_proto::VERSION);
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
            let path = file.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let mut rest = &bytes[..];
            while let Ok(Some((message, used))) = parse(rest) {
                let mut again = Vec::new();
                message.emit(&mut again).unwrap();
                assert_eq!(again, rest[..used]);
                rest = &rest[used..];
            }
            // The seed corpus is valid frames of this version (`examples/write_corpus.rs`):
            // after a format change, stale seeds would only exercise the version check.
            if dir.starts_with("corpus") {
                assert!(rest.is_empty(), "{} does not parse", path.display());
            } else {
                assert!(
                    !matches!(parse(&bytes), Err(ParseError::Version(_))),
                    "{} stops at the version",
                    path.display()
                );
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
