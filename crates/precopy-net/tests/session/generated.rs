//! Generated sessions, mostly as a sender would write them (files, deltas on what it sent last or
//! on a stale version, renames, queries, manifests in parts, a restart), with frames out of order
//! inserted anywhere, checked against the protocol's model (`session_property::check`).

use std::collections::BTreeMap;

use precopy_proto::{
    DeltaHeader, Entry, ErrorCode, FileHeader, Identity, Message, Meta, Node, NodeKind, RelPath,
};
use proptest::prelude::*;

use super::session_property::check;

const PATHS: [&[u8]; 4] = [b"d/a", b"d/b", b"e", b"d/c/f"];

fn rel(file: usize) -> RelPath<'static> {
    RelPath::new(PATHS[file]).unwrap()
}

fn hash(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

#[derive(Debug, Clone)]
enum Op {
    /// A whole file in `pieces` chunks; its end announces another content if `wrong`.
    Whole {
        file: usize,
        data: Vec<u8>,
        pieces: usize,
        wrong: bool,
    },
    /// A delta on the version last sent (or on another, `stale`): these patches, then cut or
    /// extended to the base's size plus `grow`; with `overflow`, patches may reach past that.
    Delta {
        file: usize,
        stale: bool,
        patches: Vec<(usize, Vec<u8>)>,
        grow: i8,
        overflow: bool,
    },
    Rename(usize, usize),
    Query(Vec<usize>),
    Manifest {
        parts: usize,
        verify: bool,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let file = 0..PATHS.len();
    prop_oneof![
        4 => (file.clone(), prop::collection::vec(any::<u8>(), 0..64), 1..4usize, prop::bool::weighted(0.1))
            .prop_map(|(file, data, pieces, wrong)| Op::Whole { file, data, pieces, wrong }),
        4 => (
            file.clone(),
            prop::bool::weighted(0.2),
            prop::collection::vec((0..80usize, prop::collection::vec(any::<u8>(), 1..12)), 0..4),
            -8..8i8,
            prop::bool::weighted(0.05),
        )
            .prop_map(|(file, stale, patches, grow, overflow)| Op::Delta {
                file,
                stale,
                patches,
                grow,
                overflow,
            }),
        1 => (file.clone(), file.clone()).prop_map(|(from, to)| Op::Rename(from, to)),
        2 => prop::collection::vec(file, 0..5).prop_map(Op::Query),
        1 => (1..4usize, any::<bool>()).prop_map(|(parts, verify)| Op::Manifest { parts, verify }),
        1 => Just(Op::Restart),
    ]
}

/// A frame that is out of order almost anywhere (or, for `bye`, that ends the session).
fn noise(kind: u8, id: u64) -> Vec<u8> {
    let header = FileHeader {
        id,
        path: rel(0),
        meta: Meta::default(),
        size: 3,
    };
    let message = match kind % 10 {
        0 => Message::Chunk(b"abc"),
        1 => Message::Patch {
            offset: 1,
            data: b"x",
        },
        2 => Message::FileEnd {
            id,
            size: 3,
            hash: hash(b"abc"),
        },
        3 => Message::FileStart(header),
        4 => Message::FileAck { id },
        5 => Message::Have(vec![true]),
        6 => Message::Resend { id },
        7 => Message::Started {
            pid: 1,
            running_ms: 0,
        },
        8 => Message::Error {
            code: ErrorCode::Protocol,
            message: "no",
        },
        _ => Message::Bye,
    };
    let mut out = Vec::new();
    message.emit(&mut out).unwrap();
    out
}

/// The frames of `ops`, one `Vec` each, as a sender that remembers what it sent writes them.
fn frames(ops: &[Op]) -> Vec<Vec<u8>> {
    let mut sent: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut frames = Vec::new();
    let mut emit = |message: Message<'_>| {
        let mut out = Vec::new();
        message.emit(&mut out).unwrap();
        frames.push(out);
    };
    for (id, op) in ops.iter().enumerate() {
        let id = id as u64;
        match op {
            Op::Whole {
                file,
                data,
                pieces,
                wrong,
            } => {
                emit(Message::FileStart(FileHeader {
                    id,
                    path: rel(*file),
                    meta: Meta::default(),
                    size: data.len() as u64,
                }));
                for chunk in data.chunks(data.len().div_ceil(*pieces).max(1)) {
                    emit(Message::Chunk(chunk));
                }
                let announced = if *wrong {
                    &data[..data.len() / 2]
                } else {
                    data
                };
                emit(Message::FileEnd {
                    id,
                    size: announced.len() as u64,
                    hash: hash(announced),
                });
                sent.insert(*file, data.clone());
            }
            Op::Delta {
                file,
                stale,
                patches,
                grow,
                overflow,
            } => {
                let base = match sent.get(file) {
                    Some(data) if !stale => data.clone(),
                    _ => b"a version never sent".to_vec(),
                };
                let size = (base.len() as i64 + i64::from(*grow)).max(0) as usize;
                let mut new = base.clone();
                new.resize(size, 0);
                emit(Message::DeltaStart(DeltaHeader {
                    id,
                    path: rel(*file),
                    meta: Meta::default(),
                    size: size as u64,
                    base_size: base.len() as u64,
                    base_hash: hash(&base),
                }));
                for (offset, data) in patches {
                    let offset = offset % (size + 1);
                    let end = (offset + data.len()).min(size);
                    new[offset..end].copy_from_slice(&data[..end - offset]);
                    let data = if *overflow {
                        data
                    } else {
                        &data[..end - offset]
                    };
                    if !data.is_empty() {
                        emit(Message::Patch {
                            offset: offset as u64,
                            data,
                        });
                    }
                }
                emit(Message::FileEnd {
                    id,
                    size: size as u64,
                    hash: hash(&new),
                });
                sent.insert(*file, new);
            }
            Op::Rename(from, to) => {
                emit(Message::Rename {
                    from: rel(*from),
                    to: rel(*to),
                });
                if let Some(data) = sent.remove(from) {
                    sent.insert(*to, data);
                }
            }
            Op::Query(files) => {
                let entries = files
                    .iter()
                    .map(|f| {
                        let data = sent.get(f).map_or(&[][..], Vec::as_slice);
                        Entry {
                            path: rel(*f),
                            size: data.len() as u64,
                            hash: hash(data),
                        }
                    })
                    .collect();
                emit(Message::Query(entries));
            }
            Op::Manifest { parts, verify } => {
                let nodes: Vec<Node<'_>> = sent
                    .iter()
                    .map(|(f, data)| Node {
                        path: rel(*f),
                        meta: Meta::default(),
                        kind: NodeKind::File {
                            size: data.len() as u64,
                            hash: hash(data),
                        },
                    })
                    .collect();
                let per_part = nodes.len().div_ceil(*parts).max(1);
                let mut chunks: Vec<&[Node<'_>]> = nodes.chunks(per_part).collect();
                chunks.resize(*parts, &[]);
                for (i, part) in chunks.iter().enumerate() {
                    emit(Message::Manifest {
                        last: i + 1 == *parts,
                        verify: *verify,
                        roots: if i == 0 { vec![rel(0)] } else { Vec::new() },
                        nodes: part.to_vec(),
                    });
                }
            }
            Op::Restart => emit(Message::Restart {
                cwd: rel(2),
                identity: Identity::default(),
                argv: vec![b"/bin/app", b"/d/a"],
            }),
        }
    }
    frames
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Sessions as a sender writes them, ended by `bye` or not.
    #[test]
    fn sessions_follow_the_protocol(ops in prop::collection::vec(op(), 0..24), bye in any::<bool>()) {
        let mut wire = frames(&ops).concat();
        if bye {
            wire.extend(noise(9, 0));
        }
        check(&wire);
    }

    /// The same with frames out of order anywhere, even inside a file or a manifest.
    #[test]
    fn frames_out_of_order_are_refused(
        ops in prop::collection::vec(op(), 0..16),
        inserted in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..20u64), 1..3),
    ) {
        let mut frames = frames(&ops);
        for (at, kind, id) in inserted {
            frames.insert(at.index(frames.len() + 1), noise(kind, id));
        }
        check(&frames.concat());
    }
}
