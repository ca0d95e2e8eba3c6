//! # precopy-proto
//!
//! The wire format of a real pre-copy migration, sans-IO in the smoltcp way: [`parse`] reads one
//! frame from a byte slice (returning `Ok(None)` while the slice holds only part of one, so the
//! caller buffers) and [`Message::emit`] appends one to a `Vec`; the handshake and the records
//! that carry frames once it is done work on byte slices too. No sockets and no clock (only the
//! handshake's ephemeral keys come from the operating system), so every decoder can be fuzzed and
//! tested alone.
//!
//! ```text
//!  sender (S)                                  receiver (D)
//!  Hello{noise: psk, e}      ───────────────►  (the token's key, Noise NNpsk0)
//!                            ◄───────────────  Welcome{noise: e, ee}
//!  ══════════ every later frame in encrypted, authenticated records ══════════
//!  Query{path,size,hash…}    ───────────────►  (on reconnect: what is already verified?)
//!                            ◄───────────────  Have{bitmap}
//!  FileStart, Chunk…, FileEnd ──────────────►  temp file, fsync, check BLAKE3, rename
//!                            ◄───────────────  FileAck{id}
//!  Manifest{roots, nodes…}   ───────────────►  make the roots equal but for contents
//!                            ◄───────────────  Have{bitmap: content equal}
//!  FileStart… (the rest)     ───────────────►
//!  Manifest{verify}          ───────────────►  make equal again, read every file, compare
//!                            ◄───────────────  Verdict{differing…}
//!  Bye                       ───────────────►
//! ```
//!
//! - [`frame`]: the frame header and every message; limits in [`limits`].
//! - [`path`]: normalised relative paths (no `..`, no absolute paths, no NUL).
//! - [`handshake`]: Noise `NNpsk0` keyed by the pre-shared token: mutual authentication,
//!   forward secrecy.
//! - [`record`]: the encrypted, authenticated (and optionally compressed) records.
//!
//! ```
//! use precopy_proto::{parse, Message};
//!
//! let mut wire = Vec::new();
//! Message::FileAck { id: 7 }.emit(&mut wire).unwrap();
//! // Half a frame is not a frame yet.
//! assert_eq!(parse(&wire[..wire.len() - 1]).unwrap(), None);
//! let (message, used) = parse(&wire).unwrap().unwrap();
//! assert_eq!(message, Message::FileAck { id: 7 });
//! assert_eq!(used, wire.len());
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod frame;
pub mod handshake;
pub mod path;
pub mod record;

pub use frame::{
    batches, chunk_header, limits, parse, DeltaHeader, Difference, EmitError, Encoded, Entry,
    ErrorCode, FileHeader, Identity, Message, Meta, Node, NodeKind, ParseError, Reason, HEADER_LEN,
    MAGIC, VERSION,
};
pub use handshake::{AuthError, Key};
pub use path::{PathError, RelPath};
pub use record::{Opener, RecordError, Sealer};
