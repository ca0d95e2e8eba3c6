//! Frames: a fixed header, then a typed payload.
//!
//! ```text
//! 0      4        5       6          10             10 + length
//! | "PCMG" | version | type | length (u32 BE) | payload … |
//! ```
//!
//! Integers are big-endian. A path is a u16 length and that many bytes, checked as a [`RelPath`];
//! a list is a u32 count and its items. Every payload must be used up exactly. The two handshake
//! frames travel as they are; every later frame travels inside [`crate::record`]s, which
//! authenticate every byte (and every file carries its BLAKE3 hash end to end besides).

use thiserror::Error;

use crate::handshake::MESSAGE_LEN;
use crate::path::{PathError, RelPath, MAX_PATH};

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"PCMG";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 4;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 10;

/// Hard limits that keep a peer from making the other side allocate without bound.
pub mod limits {
    /// Largest payload: a frame never needs more than this in memory.
    pub const MAX_PAYLOAD: usize = 1 << 20;
    /// Largest error message, bytes.
    pub const MAX_MESSAGE: usize = 1024;
    /// Most argv items of a restart.
    pub const MAX_ARGS: usize = 1024;
    /// Longest argv item, bytes.
    pub const MAX_ARG: usize = 16 * 1024;
    /// Most environment entries of a restart.
    pub const MAX_ENV: usize = 4096;
    /// Longest environment entry, bytes.
    pub const MAX_ENV_ENTRY: usize = 128 * 1024;
    /// Most supplementary groups of a restart (the kernel's NGROUPS_MAX).
    pub const MAX_GROUPS: usize = 65536;
}

use limits::{MAX_ARG, MAX_ARGS, MAX_ENV, MAX_ENV_ENTRY, MAX_GROUPS, MAX_MESSAGE, MAX_PAYLOAD};

const T_HELLO: u8 = 0x01;
const T_WELCOME: u8 = 0x02;
const T_FILE_START: u8 = 0x10;
const T_CHUNK: u8 = 0x11;
const T_FILE_END: u8 = 0x12;
const T_FILE_ACK: u8 = 0x13;
const T_RENAME: u8 = 0x14;
const T_DELTA_START: u8 = 0x15;
const T_PATCH: u8 = 0x16;
const T_RESEND: u8 = 0x17;
const T_QUERY: u8 = 0x20;
const T_HAVE: u8 = 0x21;
const T_MANIFEST: u8 = 0x30;
const T_VERDICT: u8 = 0x31;
const T_RESTART: u8 = 0x40;
const T_STARTED: u8 = 0x41;
const T_BYE: u8 = 0x42;
const T_ERROR: u8 = 0x7f;

/// A frame the decoder refuses. The connection should be closed after one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The bytes do not start with [`MAGIC`]: not this protocol, or out of sync.
    #[error("bad magic: not a precopy frame")]
    BadMagic,
    /// A version this crate does not speak.
    #[error("protocol version {0} not supported (this side: {VERSION})")]
    Version(u8),
    /// A frame type this crate does not know.
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// A length above [`limits::MAX_PAYLOAD`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_PAYLOAD}")]
    TooLarge(u32),
    /// The payload does not match its type.
    #[error("malformed {frame} frame: {what}")]
    Malformed {
        /// Frame type name.
        frame: &'static str,
        /// What is wrong.
        what: &'static str,
    },
    /// A path that is not a normalised relative path.
    #[error("bad path: {0}")]
    Path(#[from] PathError),
}

/// A message that cannot be emitted as one frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The payload would exceed [`limits::MAX_PAYLOAD`]: split it (see [`batches`]).
    #[error("payload of {0} bytes exceeds the limit of {MAX_PAYLOAD}")]
    TooLarge(usize),
    /// A field exceeds its own limit.
    #[error("{0} too long")]
    FieldTooLong(&'static str),
}

/// Error codes of an [`Message::Error`] frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A frame could not be decoded, or came out of order.
    Protocol,
    /// The handshake failed.
    Auth,
    /// A path was refused (escape, symlink out of the root, bad form).
    Path,
    /// The received bytes do not match the announced size or hash.
    Integrity,
    /// The destination could not store the file (disk full, permissions…).
    Storage,
    /// The restart command could not be started.
    Restart,
    /// A record failed authentication: the link altered, dropped, repeated or reordered data.
    /// Worth reconnecting for.
    Record,
    /// A code this side does not know (kept for display).
    Other(u16),
}

impl ErrorCode {
    fn to_u16(self) -> u16 {
        match self {
            ErrorCode::Protocol => 1,
            ErrorCode::Auth => 2,
            ErrorCode::Path => 3,
            ErrorCode::Integrity => 4,
            ErrorCode::Storage => 5,
            ErrorCode::Restart => 6,
            ErrorCode::Record => 7,
            ErrorCode::Other(code) => code,
        }
    }

    fn from_u16(code: u16) -> ErrorCode {
        match code {
            1 => ErrorCode::Protocol,
            2 => ErrorCode::Auth,
            3 => ErrorCode::Path,
            4 => ErrorCode::Integrity,
            5 => ErrorCode::Storage,
            6 => ErrorCode::Restart,
            7 => ErrorCode::Record,
            other => ErrorCode::Other(other),
        }
    }
}

/// Why a file at the destination differs from the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Not there.
    Missing,
    /// Another size.
    Size,
    /// Same size, another hash.
    Hash,
    /// The path was refused (e.g. a symlink escaping the root).
    Refused,
    /// Another kind of entry (a file where a directory should be…) that could not be replaced.
    Kind,
    /// Mode, owner or modification time differ and could not be set.
    Metadata,
    /// Under a migrated root at the destination only, and it could not be removed.
    Extra,
    /// A symlink pointing elsewhere.
    Target,
}

impl Reason {
    fn to_u8(self) -> u8 {
        match self {
            Reason::Missing => 1,
            Reason::Size => 2,
            Reason::Hash => 3,
            Reason::Refused => 4,
            Reason::Kind => 5,
            Reason::Metadata => 6,
            Reason::Extra => 7,
            Reason::Target => 8,
        }
    }

    fn from_u8(code: u8) -> Option<Reason> {
        Some(match code {
            1 => Reason::Missing,
            2 => Reason::Size,
            3 => Reason::Hash,
            4 => Reason::Refused,
            5 => Reason::Kind,
            6 => Reason::Metadata,
            7 => Reason::Extra,
            8 => Reason::Target,
            _ => return None,
        })
    }

    /// A word for messages.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Size => "size",
            Reason::Hash => "content",
            Reason::Refused => "refused",
            Reason::Kind => "kind",
            Reason::Metadata => "metadata",
            Reason::Extra => "extra",
            Reason::Target => "symlink target",
        }
    }
}

/// The start of a file's transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader<'a> {
    /// Transfer id, echoed by the [`Message::FileAck`].
    pub id: u64,
    /// Where the file goes, relative to the receiver's root.
    pub path: RelPath<'a>,
    /// Mode, owner and modification time at the source.
    pub meta: Meta,
    /// Size when the transfer started (the actual size is in [`Message::FileEnd`]).
    pub size: u64,
}

/// The start of a delta: the file's new version is the destination's copy (`base_size` bytes
/// with hash `base_hash`, which the destination must hold) with [`Message::Patch`]es applied,
/// cut or extended to `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaHeader<'a> {
    /// Transfer id, echoed by the [`Message::FileAck`] or [`Message::Resend`].
    pub id: u64,
    /// Where the file goes, relative to the receiver's root.
    pub path: RelPath<'a>,
    /// Mode, owner and modification time at the source.
    pub meta: Meta,
    /// The new version's size.
    pub size: u64,
    /// Size of the version the sender takes the destination to hold.
    pub base_size: u64,
    /// BLAKE3 of that version.
    pub base_hash: [u8; 32],
}

/// The metadata the destination reproduces on every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits, setuid/setgid/sticky included (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime_s: i64,
    /// Nanoseconds of the modification time (< 10⁹).
    pub mtime_ns: u32,
}

impl Meta {
    const ENCODED_LEN: usize = 4 + 4 + 4 + 8 + 4;
}

/// What an entry of the stop-time tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind<'a> {
    /// A regular file with this size and BLAKE3 hash.
    File {
        /// Bytes.
        size: u64,
        /// BLAKE3 of the content.
        hash: [u8; 32],
    },
    /// A directory.
    Dir,
    /// A symbolic link and what it points to (never followed at the destination).
    Symlink {
        /// The link's target, as stored (non-empty, no NUL, ≤ 4096 bytes).
        target: &'a [u8],
    },
}

/// One entry of the stop-time tree: a file, directory or symlink under a migrated root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node<'a> {
    /// Where it is, relative to the receiver's root.
    pub path: RelPath<'a>,
    /// Mode, owner, modification time.
    pub meta: Meta,
    /// File, directory or symlink.
    pub kind: NodeKind<'a>,
}

impl Node<'_> {
    /// Bytes this node takes in a payload.
    pub fn encoded_len(&self) -> usize {
        let kind = match self.kind {
            NodeKind::File { .. } => 8 + 32,
            NodeKind::Dir => 0,
            NodeKind::Symlink { target } => 2 + target.len(),
        };
        2 + self.path.as_bytes().len() + 1 + Meta::ENCODED_LEN + kind
    }
}

/// Who the application runs as, and with which environment, after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity<'a> {
    /// Effective user id at the source.
    pub uid: u32,
    /// Effective group id at the source.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Environment entries (`NAME=value`).
    pub env: Vec<&'a [u8]>,
}

/// A file and its content hash: resume queries and the final manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The file.
    pub path: RelPath<'a>,
    /// Its size.
    pub size: u64,
    /// BLAKE3 of its content.
    pub hash: [u8; 32],
}

impl Entry<'_> {
    /// Bytes this entry takes in a payload.
    pub fn encoded_len(&self) -> usize {
        2 + self.path.as_bytes().len() + 8 + 32
    }
}

/// A file that differs, in a [`Message::Verdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Difference<'a> {
    /// The file.
    pub path: RelPath<'a>,
    /// How it differs.
    pub reason: Reason,
}

/// One frame's meaning. Borrowed from the buffer it was parsed from (no copies of file data).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message<'a> {
    /// Sender → receiver, in plaintext: the first handshake message (see [`crate::handshake`]).
    Hello {
        /// The Noise message.
        noise: [u8; MESSAGE_LEN],
    },
    /// Receiver → sender, in plaintext: the second handshake message. Every later frame, both
    /// ways, travels in [`crate::record`]s.
    Welcome {
        /// The Noise message.
        noise: [u8; MESSAGE_LEN],
    },
    /// A file's transfer begins.
    FileStart(FileHeader<'a>),
    /// The next bytes of the current file.
    Chunk(&'a [u8]),
    /// A file's delta begins: [`Message::Patch`]es and a [`Message::FileEnd`] follow.
    DeltaStart(DeltaHeader<'a>),
    /// Bytes of the current delta's new version, at `offset`.
    Patch {
        /// Where they go.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// The current file is complete.
    FileEnd {
        /// Transfer id of the [`Message::FileStart`].
        id: u64,
        /// Bytes sent.
        size: u64,
        /// BLAKE3 of those bytes.
        hash: [u8; 32],
    },
    /// Receiver → sender: the file is stored, verified, durable and renamed into place.
    FileAck {
        /// Transfer id.
        id: u64,
    },
    /// Receiver → sender: the delta could not be applied (the copy here is not the base, or the
    /// result's hash differs); the copy here is as it was. Send the file whole.
    Resend {
        /// Transfer id.
        id: u64,
    },
    /// Sender → receiver: the file at `from` was renamed to `to` at the source, its content
    /// unchanged. The receiver renames its copy if it holds `from` verified; no answer (the
    /// stop-time check catches a copy that did not follow).
    Rename {
        /// The old path.
        from: RelPath<'a>,
        /// The new path.
        to: RelPath<'a>,
    },
    /// Sender → receiver: which of these files do you already have, verified?
    Query(Vec<Entry<'a>>),
    /// Receiver → sender: one flag per queried entry, in order.
    Have(Vec<bool>),
    /// Sender → receiver: part of the tree taken at stop time. On the last part the receiver
    /// makes every migrated root equal to it (removing what is not in it, creating directories
    /// and symlinks, setting metadata) except for file contents, then answers with
    /// [`Message::Have`] (one flag per node: equal) or, if `verify`, reads every file again and
    /// answers with a [`Message::Verdict`].
    Manifest {
        /// The manifest's last part.
        last: bool,
        /// Compare everything, contents read again, and answer with a verdict.
        verify: bool,
        /// Migrated roots whose whole subtree the manifest describes (usually in the first part).
        roots: Vec<RelPath<'a>>,
        /// The entries.
        nodes: Vec<Node<'a>>,
    },
    /// Receiver → sender: the tree compared with the manifest.
    Verdict {
        /// Entries in the manifest.
        files: u32,
        /// Files that differ (the list below may be shorter if it did not fit).
        differing: u32,
        /// The differing files.
        list: Vec<Difference<'a>>,
    },
    /// Sender → receiver: start the application at the destination.
    Restart {
        /// Working directory, relative to the receiver's root.
        cwd: RelPath<'a>,
        /// Who it runs as, and its environment.
        identity: Identity<'a>,
        /// Command and arguments; absolute paths are mapped under the root by the receiver.
        argv: Vec<&'a [u8]>,
    },
    /// Receiver → sender: the application runs at the destination.
    Started {
        /// Its process id.
        pid: u32,
        /// How long it had been running when this was sent (the receiver's grace period): the
        /// sender's downtime ends that much before this frame arrives.
        running_ms: u32,
    },
    /// Sender → receiver: the migration is over.
    Bye,
    /// Either way: something went wrong; the sender of this frame closes the connection.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// A human-readable explanation (≤ [`limits::MAX_MESSAGE`] bytes).
        message: &'a str,
    },
}

impl Message<'_> {
    /// The frame type's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        name_of(self.type_byte())
    }

    fn type_byte(&self) -> u8 {
        match self {
            Message::Hello { .. } => T_HELLO,
            Message::Welcome { .. } => T_WELCOME,
            Message::FileStart(_) => T_FILE_START,
            Message::Chunk(_) => T_CHUNK,
            Message::DeltaStart(_) => T_DELTA_START,
            Message::Patch { .. } => T_PATCH,
            Message::Resend { .. } => T_RESEND,
            Message::FileEnd { .. } => T_FILE_END,
            Message::FileAck { .. } => T_FILE_ACK,
            Message::Rename { .. } => T_RENAME,
            Message::Query(_) => T_QUERY,
            Message::Have(_) => T_HAVE,
            Message::Manifest { .. } => T_MANIFEST,
            Message::Verdict { .. } => T_VERDICT,
            Message::Restart { .. } => T_RESTART,
            Message::Started { .. } => T_STARTED,
            Message::Bye => T_BYE,
            Message::Error { .. } => T_ERROR,
        }
    }

    /// Appends this message as one frame to `out`. On error `out` is left as it was.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        if let Err(error) = self.emit_payload(out) {
            out.truncate(start);
            return Err(error);
        }
        let length = out.len() - start - HEADER_LEN;
        if length > MAX_PAYLOAD {
            out.truncate(start);
            return Err(EmitError::TooLarge(length));
        }
        out[start..start + HEADER_LEN].copy_from_slice(&header(self.type_byte(), length as u32));
        Ok(())
    }

    fn emit_payload(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        match self {
            Message::Hello { noise } | Message::Welcome { noise } => out.extend_from_slice(noise),
            Message::Bye => {}
            Message::FileStart(h) => {
                out.extend_from_slice(&h.id.to_be_bytes());
                put_path(out, h.path);
                put_meta(out, &h.meta);
                out.extend_from_slice(&h.size.to_be_bytes());
            }
            Message::Chunk(data) => {
                if data.len() > MAX_PAYLOAD {
                    return Err(EmitError::TooLarge(data.len()));
                }
                out.extend_from_slice(data);
            }
            Message::FileEnd { id, size, hash } => {
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(hash);
            }
            Message::FileAck { id } | Message::Resend { id } => {
                out.extend_from_slice(&id.to_be_bytes())
            }
            Message::DeltaStart(h) => {
                out.extend_from_slice(&h.id.to_be_bytes());
                put_path(out, h.path);
                put_meta(out, &h.meta);
                out.extend_from_slice(&h.size.to_be_bytes());
                out.extend_from_slice(&h.base_size.to_be_bytes());
                out.extend_from_slice(&h.base_hash);
            }
            Message::Patch { offset, data } => {
                if data.len() > MAX_PAYLOAD - 8 {
                    return Err(EmitError::TooLarge(data.len() + 8));
                }
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(data);
            }
            Message::Rename { from, to } => {
                put_path(out, *from);
                put_path(out, *to);
            }
            Message::Query(entries) => put_entries(out, entries)?,
            Message::Have(flags) => {
                put_count(out, flags.len())?;
                let mut bits = vec![0u8; flags.len().div_ceil(8)];
                for (i, _) in flags.iter().enumerate().filter(|(_, &f)| f) {
                    bits[i / 8] |= 1 << (i % 8);
                }
                out.extend_from_slice(&bits);
            }
            Message::Manifest {
                last,
                verify,
                roots,
                nodes,
            } => {
                out.push(u8::from(*last) | u8::from(*verify) << 1);
                put_count(out, roots.len())?;
                for root in roots {
                    put_path(out, *root);
                }
                put_count(out, nodes.len())?;
                for node in nodes {
                    put_node(out, node)?;
                }
            }
            Message::Verdict {
                files,
                differing,
                list,
            } => {
                out.extend_from_slice(&files.to_be_bytes());
                out.extend_from_slice(&differing.to_be_bytes());
                put_count(out, list.len())?;
                for d in list {
                    put_path(out, d.path);
                    out.push(d.reason.to_u8());
                }
            }
            Message::Restart {
                cwd,
                identity,
                argv,
            } => {
                if argv.is_empty() || argv.len() > MAX_ARGS {
                    return Err(EmitError::FieldTooLong("argv"));
                }
                if identity.groups.len() > MAX_GROUPS {
                    return Err(EmitError::FieldTooLong("groups"));
                }
                if identity.env.len() > MAX_ENV {
                    return Err(EmitError::FieldTooLong("environment"));
                }
                put_path(out, *cwd);
                out.extend_from_slice(&identity.uid.to_be_bytes());
                out.extend_from_slice(&identity.gid.to_be_bytes());
                put_count(out, identity.groups.len())?;
                for group in &identity.groups {
                    out.extend_from_slice(&group.to_be_bytes());
                }
                put_blobs(out, &identity.env, MAX_ENV_ENTRY, "environment entry")?;
                put_blobs(out, argv, MAX_ARG, "argument")?;
            }
            Message::Started { pid, running_ms } => {
                out.extend_from_slice(&pid.to_be_bytes());
                out.extend_from_slice(&running_ms.to_be_bytes());
            }
            Message::Error { code, message } => {
                if message.len() > MAX_MESSAGE {
                    return Err(EmitError::FieldTooLong("error message"));
                }
                out.extend_from_slice(&code.to_u16().to_be_bytes());
                out.extend_from_slice(&(message.len() as u16).to_be_bytes());
                out.extend_from_slice(message.as_bytes());
            }
        }
        Ok(())
    }
}

fn header(kind: u8, length: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4] = VERSION;
    h[5] = kind;
    h[6..].copy_from_slice(&length.to_be_bytes());
    h
}

/// The header of a [`Message::Chunk`] of `len` bytes, so a sender can read file data straight
/// into its buffer after it instead of copying. `len` must be ≤ [`limits::MAX_PAYLOAD`].
pub fn chunk_header(len: usize) -> [u8; HEADER_LEN] {
    assert!(
        len <= MAX_PAYLOAD,
        "chunk of {len} bytes exceeds MAX_PAYLOAD"
    );
    header(T_CHUNK, len as u32)
}

/// Something listed in a frame, whose encoded size is known.
pub trait Encoded {
    /// Bytes it takes in a payload.
    fn encoded_len(&self) -> usize;
}

impl Encoded for Entry<'_> {
    fn encoded_len(&self) -> usize {
        Entry::encoded_len(self)
    }
}

impl Encoded for Node<'_> {
    fn encoded_len(&self) -> usize {
        Node::encoded_len(self)
    }
}

/// Splits `items` into runs that each fit one [`Message::Query`] (entries) or, after `reserved`
/// bytes of other fields, one [`Message::Manifest`] (nodes). Always at least one run.
pub fn batches<T: Encoded>(items: &[T], reserved: usize) -> impl Iterator<Item = &[T]> {
    // One byte of flags, four of each count.
    let budget = MAX_PAYLOAD - 9 - reserved;
    let mut rest = items;
    let mut first = true;
    std::iter::from_fn(move || {
        if rest.is_empty() && !first {
            return None;
        }
        first = false;
        let mut used = 0;
        let mut n = 0;
        while n < rest.len() && used + rest[n].encoded_len() <= budget {
            used += rest[n].encoded_len();
            n += 1;
        }
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        Some(batch)
    })
}

fn put_meta(out: &mut Vec<u8>, meta: &Meta) {
    out.extend_from_slice(&meta.mode.to_be_bytes());
    out.extend_from_slice(&meta.uid.to_be_bytes());
    out.extend_from_slice(&meta.gid.to_be_bytes());
    out.extend_from_slice(&meta.mtime_s.to_be_bytes());
    out.extend_from_slice(&meta.mtime_ns.to_be_bytes());
}

const KIND_FILE: u8 = 1;
const KIND_DIR: u8 = 2;
const KIND_SYMLINK: u8 = 3;

fn put_node(out: &mut Vec<u8>, node: &Node<'_>) -> Result<(), EmitError> {
    put_path(out, node.path);
    match node.kind {
        NodeKind::File { .. } => out.push(KIND_FILE),
        NodeKind::Dir => out.push(KIND_DIR),
        NodeKind::Symlink { .. } => out.push(KIND_SYMLINK),
    }
    put_meta(out, &node.meta);
    match node.kind {
        NodeKind::File { size, hash } => {
            out.extend_from_slice(&size.to_be_bytes());
            out.extend_from_slice(&hash);
        }
        NodeKind::Dir => {}
        NodeKind::Symlink { target } => {
            if !valid_target(target) {
                return Err(EmitError::FieldTooLong(
                    "symlink target (or empty, or with NUL)",
                ));
            }
            out.extend_from_slice(&(target.len() as u16).to_be_bytes());
            out.extend_from_slice(target);
        }
    }
    Ok(())
}

fn valid_target(target: &[u8]) -> bool {
    !target.is_empty() && target.len() <= MAX_PATH && !target.contains(&0)
}

/// A list of byte strings, each a u32 length and its bytes.
fn put_blobs(
    out: &mut Vec<u8>,
    items: &[&[u8]],
    max: usize,
    what: &'static str,
) -> Result<(), EmitError> {
    put_count(out, items.len())?;
    for item in items {
        if item.len() > max {
            return Err(EmitError::FieldTooLong(what));
        }
        out.extend_from_slice(&(item.len() as u32).to_be_bytes());
        out.extend_from_slice(item);
    }
    Ok(())
}

fn put_path(out: &mut Vec<u8>, path: RelPath<'_>) {
    // RelPath guarantees ≤ MAX_PATH < u16::MAX.
    out.extend_from_slice(&(path.as_bytes().len() as u16).to_be_bytes());
    out.extend_from_slice(path.as_bytes());
}

fn put_count(out: &mut Vec<u8>, n: usize) -> Result<(), EmitError> {
    let n = u32::try_from(n).map_err(|_| EmitError::TooLarge(n))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_entries(out: &mut Vec<u8>, entries: &[Entry<'_>]) -> Result<(), EmitError> {
    let size: usize = entries.iter().map(Entry::encoded_len).sum();
    if size > MAX_PAYLOAD {
        return Err(EmitError::TooLarge(size));
    }
    put_count(out, entries.len())?;
    for e in entries {
        put_path(out, e.path);
        out.extend_from_slice(&e.size.to_be_bytes());
        out.extend_from_slice(&e.hash);
    }
    Ok(())
}

fn name_of(kind: u8) -> &'static str {
    match kind {
        T_HELLO => "hello",
        T_WELCOME => "welcome",
        T_FILE_START => "file-start",
        T_CHUNK => "chunk",
        T_FILE_END => "file-end",
        T_FILE_ACK => "file-ack",
        T_RENAME => "rename",
        T_DELTA_START => "delta-start",
        T_PATCH => "patch",
        T_RESEND => "resend",
        T_QUERY => "query",
        T_HAVE => "have",
        T_MANIFEST => "manifest",
        T_VERDICT => "verdict",
        T_RESTART => "restart",
        T_STARTED => "started",
        T_BYE => "bye",
        T_ERROR => "error",
        _ => "unknown",
    }
}

/// Reads one frame from the start of `buf`: `Ok(None)` if `buf` holds only part of one (read
/// more and call again), else the message and the bytes it used. Never panics; refuses a bad
/// header as soon as its first bytes arrive, before any payload is buffered.
pub fn parse(buf: &[u8]) -> Result<Option<(Message<'_>, usize)>, ParseError> {
    let seen = buf.len().min(MAGIC.len());
    if buf[..seen] != MAGIC[..seen] {
        return Err(ParseError::BadMagic);
    }
    if let Some(&version) = buf.get(4) {
        if version != VERSION {
            return Err(ParseError::Version(version));
        }
    }
    if let Some(&kind) = buf.get(5) {
        if name_of(kind) == "unknown" {
            return Err(ParseError::UnknownType(kind));
        }
    }
    let Some(length) = buf.get(6..HEADER_LEN) else {
        return Ok(None);
    };
    let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]);
    if length as usize > MAX_PAYLOAD {
        return Err(ParseError::TooLarge(length));
    }
    let end = HEADER_LEN + length as usize;
    let Some(payload) = buf.get(HEADER_LEN..end) else {
        return Ok(None);
    };
    let message = decode(buf[5], payload)?;
    Ok(Some((message, end)))
}

/// A cursor over a payload.
struct Reader<'a> {
    rest: &'a [u8],
    frame: &'static str,
}

impl<'a> Reader<'a> {
    fn bad(&self, what: &'static str) -> ParseError {
        ParseError::Malformed {
            frame: self.frame,
            what,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        if n > self.rest.len() {
            return Err(self.bad("payload too short"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn path(&mut self) -> Result<RelPath<'a>, ParseError> {
        let len = self.u16()? as usize;
        if len > MAX_PATH {
            return Err(ParseError::Path(PathError::TooLong));
        }
        Ok(RelPath::new(self.take(len)?)?)
    }

    /// A list count, checked against what the rest of the payload can hold.
    fn count(&mut self, min_item: usize) -> Result<usize, ParseError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.rest.len() {
            return Err(self.bad("count larger than the payload"));
        }
        Ok(n)
    }

    fn i64(&mut self) -> Result<i64, ParseError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn meta(&mut self) -> Result<Meta, ParseError> {
        let meta = Meta {
            mode: self.u32()?,
            uid: self.u32()?,
            gid: self.u32()?,
            mtime_s: self.i64()?,
            mtime_ns: self.u32()?,
        };
        if meta.mtime_ns >= 1_000_000_000 {
            return Err(self.bad("nanoseconds ≥ 10⁹"));
        }
        if meta.mode > 0o7777 {
            return Err(self.bad("mode has bits above 0o7777"));
        }
        Ok(meta)
    }

    fn node(&mut self) -> Result<Node<'a>, ParseError> {
        let path = self.path()?;
        let kind = self.u8()?;
        let meta = self.meta()?;
        let kind = match kind {
            KIND_FILE => NodeKind::File {
                size: self.u64()?,
                hash: self.array()?,
            },
            KIND_DIR => NodeKind::Dir,
            KIND_SYMLINK => {
                let len = self.u16()? as usize;
                let target = self.take(len)?;
                if !valid_target(target) {
                    return Err(self.bad("symlink target empty, too long or with NUL"));
                }
                NodeKind::Symlink { target }
            }
            _ => return Err(self.bad("unknown node kind")),
        };
        Ok(Node { path, meta, kind })
    }

    fn blobs(&mut self, max_items: usize, max_len: usize) -> Result<Vec<&'a [u8]>, ParseError> {
        let n = self.count(4)?;
        if n > max_items {
            return Err(self.bad("too many items"));
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let len = self.u32()? as usize;
            if len > max_len {
                return Err(self.bad("item too long"));
            }
            items.push(self.take(len)?);
        }
        Ok(items)
    }

    fn entries(&mut self) -> Result<Vec<Entry<'a>>, ParseError> {
        let n = self.count(2 + 1 + 8 + 32)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(Entry {
                path: self.path()?,
                size: self.u64()?,
                hash: self.array()?,
            });
        }
        Ok(entries)
    }

    fn finish<T>(self, value: T) -> Result<T, ParseError> {
        if self.rest.is_empty() {
            Ok(value)
        } else {
            Err(self.bad("trailing bytes"))
        }
    }
}

fn decode(kind: u8, payload: &[u8]) -> Result<Message<'_>, ParseError> {
    let mut r = Reader {
        rest: payload,
        frame: name_of(kind),
    };
    let message = match kind {
        T_HELLO => Message::Hello { noise: r.array()? },
        T_WELCOME => Message::Welcome { noise: r.array()? },
        T_BYE => Message::Bye,
        T_FILE_START => Message::FileStart(FileHeader {
            id: r.u64()?,
            path: r.path()?,
            meta: r.meta()?,
            size: r.u64()?,
        }),
        T_CHUNK => Message::Chunk(std::mem::take(&mut r.rest)),
        T_FILE_END => Message::FileEnd {
            id: r.u64()?,
            size: r.u64()?,
            hash: r.array()?,
        },
        T_FILE_ACK => Message::FileAck { id: r.u64()? },
        T_RESEND => Message::Resend { id: r.u64()? },
        T_DELTA_START => Message::DeltaStart(DeltaHeader {
            id: r.u64()?,
            path: r.path()?,
            meta: r.meta()?,
            size: r.u64()?,
            base_size: r.u64()?,
            base_hash: r.array()?,
        }),
        T_PATCH => {
            let offset = r.u64()?;
            let data = std::mem::take(&mut r.rest);
            if offset.checked_add(data.len() as u64).is_none() {
                return Err(r.bad("patch ends past 2⁶⁴"));
            }
            Message::Patch { offset, data }
        }
        T_RENAME => Message::Rename {
            from: r.path()?,
            to: r.path()?,
        },
        T_QUERY => Message::Query(r.entries()?),
        T_HAVE => {
            let n = r.u32()? as usize;
            let bytes = n.div_ceil(8);
            if bytes != r.rest.len() {
                return Err(r.bad("bitmap length does not match the count"));
            }
            let bits = r.take(bytes)?;
            if n % 8 != 0 && bits[bytes - 1] >> (n % 8) != 0 {
                return Err(r.bad("bits set past the count"));
            }
            Message::Have((0..n).map(|i| bits[i / 8] & (1 << (i % 8)) != 0).collect())
        }
        T_MANIFEST => {
            let flags = r.u8()?;
            if flags > 3 {
                return Err(r.bad("unknown flags"));
            }
            let n = r.count(2 + 1)?;
            let mut roots = Vec::with_capacity(n);
            for _ in 0..n {
                roots.push(r.path()?);
            }
            let n = r.count(2 + 1 + 1 + Meta::ENCODED_LEN)?;
            let mut nodes = Vec::with_capacity(n);
            for _ in 0..n {
                nodes.push(r.node()?);
            }
            Message::Manifest {
                last: flags & 1 != 0,
                verify: flags & 2 != 0,
                roots,
                nodes,
            }
        }
        T_VERDICT => {
            let files = r.u32()?;
            let differing = r.u32()?;
            let n = r.count(2 + 1 + 1)?;
            if n > differing as usize || differing > files {
                return Err(r.bad("counts disagree"));
            }
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                let path = r.path()?;
                let reason = Reason::from_u8(r.u8()?).ok_or_else(|| r.bad("unknown reason"))?;
                list.push(Difference { path, reason });
            }
            Message::Verdict {
                files,
                differing,
                list,
            }
        }
        T_RESTART => {
            let cwd = r.path()?;
            let uid = r.u32()?;
            let gid = r.u32()?;
            let n = r.count(4)?;
            if n > MAX_GROUPS {
                return Err(r.bad("too many groups"));
            }
            let mut groups = Vec::with_capacity(n);
            for _ in 0..n {
                groups.push(r.u32()?);
            }
            let env = r.blobs(MAX_ENV, MAX_ENV_ENTRY)?;
            let argv = r.blobs(MAX_ARGS, MAX_ARG)?;
            if argv.is_empty() {
                return Err(r.bad("argv count out of range"));
            }
            Message::Restart {
                cwd,
                identity: Identity {
                    uid,
                    gid,
                    groups,
                    env,
                },
                argv,
            }
        }
        T_STARTED => Message::Started {
            pid: r.u32()?,
            running_ms: r.u32()?,
        },
        T_ERROR => {
            let code = ErrorCode::from_u16(r.u16()?);
            let len = r.u16()? as usize;
            if len > MAX_MESSAGE {
                return Err(r.bad("message too long"));
            }
            let message = std::str::from_utf8(r.take(len)?).map_err(|_| r.bad("not UTF-8"))?;
            Message::Error { code, message }
        }
        other => return Err(ParseError::UnknownType(other)),
    };
    r.finish(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(message: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        message.emit(&mut out).unwrap();
        out
    }

    #[test]
    fn header_layout() {
        let wire = frame(&Message::FileAck { id: 0x0102 });
        assert_eq!(&wire[..4], b"PCMG");
        assert_eq!(wire[4], VERSION);
        assert_eq!(wire[5], T_FILE_ACK);
        assert_eq!(&wire[6..10], &8u32.to_be_bytes());
        assert_eq!(wire.len(), HEADER_LEN + 8);
    }

    #[test]
    fn refuses_bad_headers_early() {
        assert_eq!(parse(b"PX"), Err(ParseError::BadMagic));
        assert_eq!(parse(b"PCMG\x02"), Err(ParseError::Version(2)));
        // Version 3 had no deltas: its peers are refused by version, not misread.
        assert_eq!(parse(b"PCMG\x03"), Err(ParseError::Version(3)));
        assert_eq!(parse(b"PCMG\x04\x99"), Err(ParseError::UnknownType(0x99)));
        // Version 2's challenge, auth and ready are gone.
        assert_eq!(parse(b"PCMG\x04\x03"), Err(ParseError::UnknownType(0x03)));
        let huge = [&b"PCMG\x04\x11"[..], &u32::MAX.to_be_bytes()].concat();
        assert_eq!(parse(&huge), Err(ParseError::TooLarge(u32::MAX)));
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b"PCMG\x04\x11\x00"), Ok(None));
    }

    #[test]
    fn refuses_escaping_paths_in_frames() {
        let mut wire = frame(&Message::FileStart(FileHeader {
            id: 1,
            path: RelPath::new(b"a/bc").unwrap(),
            meta: Meta::default(),
            size: 0,
        }));
        // Overwrite the path bytes in place: "a/bc" → "../c".
        let at = HEADER_LEN + 8 + 2;
        wire[at..at + 4].copy_from_slice(b"../c");
        assert_eq!(parse(&wire), Err(ParseError::Path(PathError::Parent)));
        wire[at..at + 4].copy_from_slice(b"/etc");
        assert_eq!(parse(&wire), Err(ParseError::Path(PathError::Absolute)));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut wire = frame(&Message::FileAck { id: 1 });
        wire.push(0);
        wire[9] += 1;
        assert!(matches!(parse(&wire), Err(ParseError::Malformed { .. })));
    }

    #[test]
    fn oversized_lists_are_split_by_batches() {
        let path = [b'x'; 4000];
        let entry = Entry {
            path: RelPath::new(&path).unwrap(),
            size: 1,
            hash: [0; 32],
        };
        let entries = vec![entry; 600];
        assert!(matches!(
            Message::Query(entries.clone()).emit(&mut Vec::new()),
            Err(EmitError::TooLarge(_))
        ));
        let parts: Vec<_> = batches(&entries, 0).collect();
        assert!(parts.len() > 1);
        assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), 600);
        for part in parts {
            let wire = frame(&Message::Query(part.to_vec()));
            assert!(parse(&wire).unwrap().is_some());
        }
        let node = Node {
            path: RelPath::new(&path).unwrap(),
            meta: Meta::default(),
            kind: NodeKind::Symlink { target: &path },
        };
        let nodes = vec![node; 300];
        let root = RelPath::new(&path).unwrap();
        let reserved = 2 + path.len();
        let parts: Vec<_> = batches(&nodes, reserved).collect();
        assert!(parts.len() > 1);
        for part in parts {
            let wire = frame(&Message::Manifest {
                last: false,
                verify: true,
                roots: vec![root],
                nodes: part.to_vec(),
            });
            assert!(parse(&wire).unwrap().is_some());
        }
        // An empty list still makes one (empty) batch, so a manifest always has a last part.
        assert_eq!(batches::<Entry>(&[], 0).count(), 1);
    }
}
