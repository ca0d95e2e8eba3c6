//! Frames of hand-written sessions, and a session to feed them to.

use precopy_net::session::{memory::Memory, Action, Session, SessionError};
use precopy_proto::{DeltaHeader, Entry, FileHeader, Message, Meta, Node, NodeKind, RelPath};

pub fn path(rel: &'static [u8]) -> RelPath<'static> {
    RelPath::new(rel).unwrap()
}

pub fn hash(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

/// A whole file: start, its data in two chunks, end.
pub fn whole(id: u64, rel: &'static [u8], data: &'static [u8]) -> Vec<Message<'static>> {
    let (first, second) = data.split_at(data.len() / 2);
    vec![
        Message::FileStart(FileHeader {
            id,
            path: path(rel),
            meta: Meta::default(),
            size: data.len() as u64,
        }),
        Message::Chunk(first),
        Message::Chunk(second),
        end(id, data),
    ]
}

/// The start of a delta from `base` to a version of `size` bytes.
pub fn delta_start(id: u64, rel: &'static [u8], base: &[u8], size: usize) -> Message<'static> {
    Message::DeltaStart(DeltaHeader {
        id,
        path: path(rel),
        meta: Meta::default(),
        size: size as u64,
        base_size: base.len() as u64,
        base_hash: hash(base),
    })
}

pub fn patch(offset: u64, data: &'static [u8]) -> Message<'static> {
    Message::Patch { offset, data }
}

/// The end of a transfer whose content is `data`.
pub fn end(id: u64, data: &[u8]) -> Message<'static> {
    Message::FileEnd {
        id,
        size: data.len() as u64,
        hash: hash(data),
    }
}

/// A query: does the destination hold these contents?
pub fn query(entries: &[(&'static [u8], &[u8])]) -> Message<'static> {
    Message::Query(
        entries
            .iter()
            .map(|(rel, data)| Entry {
                path: path(rel),
                size: data.len() as u64,
                hash: hash(data),
            })
            .collect(),
    )
}

pub fn dir(rel: &'static [u8]) -> Node<'static> {
    Node {
        path: path(rel),
        meta: Meta::default(),
        kind: NodeKind::Dir,
    }
}

pub fn file(rel: &'static [u8], data: &[u8]) -> Node<'static> {
    Node {
        path: path(rel),
        meta: Meta::default(),
        kind: NodeKind::File {
            size: data.len() as u64,
            hash: hash(data),
        },
    }
}

/// What one frame led to: its actions, and its error if it was refused.
pub type Step = (Vec<Action>, Option<SessionError>);

/// Feeds `frames` to `session` until one is refused; what each frame led to.
pub fn feed(session: &mut Session<Memory>, frames: &[Message<'_>]) -> Vec<Step> {
    let mut steps = Vec::new();
    for frame in frames {
        let mut out = Vec::new();
        let error = session.on_message(frame.clone(), &mut out).err();
        let refused = error.is_some();
        steps.push((out, error));
        if refused {
            break;
        }
    }
    steps
}

/// The frames of several pieces, in order.
pub fn frames(pieces: Vec<Vec<Message<'static>>>) -> Vec<Message<'static>> {
    pieces.into_iter().flatten().collect()
}

/// `frames` as bytes on the wire (plaintext, as the fuzz target reads them).
pub fn wire(frames: &[Message<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        frame.emit(&mut out).unwrap();
    }
    out
}
