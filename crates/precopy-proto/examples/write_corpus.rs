//! Writes the fuzzer's seed corpus (`fuzz/corpus/decode/`): one valid frame of each type and a
//! whole session, in the current protocol version. Rerun after a format change:
//! `cargo run -p precopy-proto --example write_corpus`.

use std::path::Path;

use precopy_proto::{
    Difference, Entry, ErrorCode, FileHeader, Identity, Message, Meta, Node, NodeKind, Reason,
    RelPath,
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
        ("hello", Message::Hello { nonce: [1; 32] }),
        (
            "challenge",
            Message::Challenge {
                nonce: [2; 32],
                proof: [3; 32],
            },
        ),
        ("auth", Message::Auth { proof: [4; 32] }),
        ("ready", Message::Ready),
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
        ("started", Message::Started { pid: 4242 }),
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
    std::fs::write(dir.join("session"), session)
}
