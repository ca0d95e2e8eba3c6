//! Writes the fuzzers' seed inputs: for `decode` (`fuzz/corpus/decode/`) one valid frame of each
//! type and a whole session, in the current protocol version; for `record` (`fuzz/corpus/record/`,
//! `fuzz/regressions/record/`) handshake messages, records of another session and what a hostile
//! peer sends. Rerun after a format change:
//! `cargo run -p precopy-proto --example write_corpus`.

use std::path::Path;

use precopy_proto::handshake::{respond, Initiator, Key};
use precopy_proto::{
    DeltaHeader, Difference, Entry, ErrorCode, FileHeader, Identity, Message, Meta, Node, NodeKind,
    Reason, RelPath,
};

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    std::fs::create_dir_all(&dir)?;
    let path = RelPath::new(b"var/lib/app/data.db").unwrap();
    let meta = Meta {
        mode: 0o2750,
        uid: 105,
        gid: 108,
        mtime_s: 1_700_000_000,
        mtime_ns: 123_456_789,
    };
    let entry = Entry {
        path,
        size: 5,
        hash: *blake3::hash(b"hello").as_bytes(),
    };
    let nodes = vec![
        Node {
            path: RelPath::new(b"var/lib/app").unwrap(),
            meta,
            kind: NodeKind::Dir,
        },
        Node {
            path,
            meta,
            kind: NodeKind::File {
                size: 5,
                hash: entry.hash,
            },
        },
        Node {
            path: RelPath::new(b"var/lib/app/current").unwrap(),
            meta,
            kind: NodeKind::Symlink { target: b"data.db" },
        },
    ];
    let frames: Vec<(&str, Message<'_>)> = vec![
        ("hello", Message::Hello { noise: [1; 48] }),
        ("welcome", Message::Welcome { noise: [2; 48] }),
        (
            "file-start",
            Message::FileStart(FileHeader {
                id: 7,
                path,
                meta,
                size: 5,
            }),
        ),
        ("chunk", Message::Chunk(b"hello")),
        (
            "file-end",
            Message::FileEnd {
                id: 7,
                size: 5,
                hash: entry.hash,
            },
        ),
        ("file-ack", Message::FileAck { id: 7 }),
        (
            "delta-start",
            Message::DeltaStart(DeltaHeader {
                id: 8,
                path,
                meta,
                size: 16384,
                base_size: 8192,
                base_hash: entry.hash,
            }),
        ),
        (
            "patch",
            Message::Patch {
                offset: 8192,
                data: b"new block",
            },
        ),
        ("resend", Message::Resend { id: 8 }),
        (
            "rename",
            Message::Rename {
                from: RelPath::new(b"var/lib/app/wal.1").unwrap(),
                to: path,
            },
        ),
        ("query", Message::Query(vec![entry])),
        ("have", Message::Have(vec![true, false, true])),
        (
            "manifest",
            Message::Manifest {
                last: true,
                verify: true,
                roots: vec![RelPath::new(b"var/lib/app").unwrap()],
                nodes: nodes.clone(),
            },
        ),
        (
            "verdict",
            Message::Verdict {
                files: 3,
                differing: 1,
                list: vec![Difference {
                    path,
                    reason: Reason::Metadata,
                }],
            },
        ),
        (
            "restart",
            Message::Restart {
                cwd: RelPath::new(b"var/lib/app").unwrap(),
                identity: Identity {
                    uid: 105,
                    gid: 108,
                    groups: vec![108, 4],
                    env: vec![b"HOME=/var/lib/app", b"LANG=C.UTF-8"],
                },
                argv: vec![b"/usr/bin/app", b"--data", b"/var/lib/app"],
            },
        ),
        (
            "started",
            Message::Started {
                pid: 4242,
                running_ms: 1000,
            },
        ),
        ("bye", Message::Bye),
        (
            "error",
            Message::Error {
                code: ErrorCode::Storage,
                message: "storing var/lib/app/data.db: No space left on device",
            },
        ),
    ];
    let mut session = Vec::new();
    for (name, message) in &frames {
        let mut wire = Vec::new();
        message.emit(&mut wire).expect("corpus frames fit");
        std::fs::write(dir.join(name), &wire)?;
        if *name != "error" {
            session.extend_from_slice(&wire);
        }
    }
    std::fs::write(dir.join("session"), session)?;
    record_inputs()
}

/// Inputs of the `record` target: its first byte picks the mode (see `fuzz/record_property.rs`).
fn record_inputs() -> std::io::Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    // A session of another key: what the fuzzer's channel must refuse.
    let key = Key::from_token(b"another session's token").unwrap();
    let (initiator, hello) = Initiator::start(&key);
    let (welcome, _, _) = respond(&key, &hello).unwrap();
    let (mut sealer, _) = initiator.finish(&welcome).unwrap();
    let mut records = Vec::new();
    sealer
        .seal(b"file-start and a chunk", None, &mut records)
        .unwrap();
    sealer
        .seal(&b"compressible ".repeat(400), Some(3), &mut records)
        .unwrap();
    let text = b"a line of a log file, much like the one before it\n".repeat(40);
    let pattern: Vec<u8> = (0..precopy_proto::record::MAX_DATA as u32 + 100)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let mut bye = Vec::new();
    Message::Bye.emit(&mut bye).unwrap();
    let inputs: [(&str, Vec<u8>); 12] = [
        ("corpus/record/hello", [&[0][..], &hello].concat()),
        ("corpus/record/welcome", [&[0][..], &welcome].concat()),
        (
            "corpus/record/foreign-records",
            [&[1][..], &records].concat(),
        ),
        (
            "corpus/record/text-zstd",
            [&[2, 3, 0x12, 0x34][..], &text].concat(),
        ),
        (
            "corpus/record/text-plain",
            [&[2, 0, 0, 77][..], &text].concat(),
        ),
        (
            "corpus/record/two-records",
            [&[2, 1, 0xff, 0xff][..], &pattern].concat(),
        ),
        ("corpus/record/empty", vec![2, 1, 0, 0]),
        (
            "regressions/record/huge-length",
            [&[1, 0xff, 0xff][..], &[7; 100]].concat(),
        ),
        (
            "regressions/record/short-record",
            vec![1, 0, 5, 1, 2, 3, 4, 5],
        ),
        (
            "regressions/record/plaintext-frames",
            [&[1][..], &bye.repeat(3000)].concat(),
        ),
        (
            "regressions/record/truncated-record",
            [&[1][..], &records[..records.len() / 2]].concat(),
        ),
        (
            "regressions/record/garbage",
            b"\x01GET / HTTP/1.1\r\n\r\n".to_vec(),
        ),
    ];
    for (name, input) in inputs {
        let path = fuzz.join(name);
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(path, input)?;
    }
    Ok(())
}
