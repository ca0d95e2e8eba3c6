//! One receiving session as a state machine, without sockets or threads (sans-IO): each frame
//! goes in ([`Session::on_message`]), what to tell the sender comes out as [`Action`]s. Files go
//! to a [`Destination`]: the [`Store`] on disk, or [`memory::Memory`] in tests and the fuzzer.
//! [`crate::receiver`] is the IO edge: it reads frames, feeds them in and performs the actions.
//!
//! ```text
//!          file-start | delta-start            chunk… | patch…, file-end (sealed, batched)
//!   Idle ─────────────────────────────► File ─────────────────────────────────────► Idle
//!     │ delta-start, its base not here              patch… dropped, file-end → resend
//!     ├───────────────────────────────► Skipping ──────────────────────────────────► Idle
//!     │ manifest, not its last part                 manifest… last part → have | verdict
//!     ├───────────────────────────────► Manifest ──────────────────────────────────► Idle
//!     │ bye (so does any error)
//!     └───────────────────────────────► Closed
//! ```
//!
//! Sealed files wait in a batch (group commit). The batch is committed, then acknowledged, before
//! any other frame is handled (answers come after every acknowledgement they may depend on) and
//! before a delta whose base it holds; the IO edge also commits it when the sender pauses or it is
//! full. Any other frame, in any state, is refused with a protocol error naming it.
//!
//! ```
//! use precopy_net::session::{memory::Memory, Action, Session};
//! use precopy_proto::{Entry, FileHeader, Message, Meta, RelPath};
//!
//! let path = RelPath::new(b"data/a").unwrap();
//! let hash = *blake3::hash(b"hello").as_bytes();
//! let mut session = Session::new(Memory::default());
//! let mut out = Vec::new();
//! let header = FileHeader { id: 7, path, meta: Meta::default(), size: 5 };
//! session.on_message(Message::FileStart(header), &mut out).unwrap();
//! session.on_message(Message::Chunk(b"hello"), &mut out).unwrap();
//! session.on_message(Message::FileEnd { id: 7, size: 5, hash }, &mut out).unwrap();
//! assert!(out.is_empty(), "sealed, not yet committed");
//! let query = vec![Entry { path, size: 5, hash }];
//! session.on_message(Message::Query(query), &mut out).unwrap();
//! assert_eq!(out, [Action::Ack(7), Action::Have(vec![true])]);
//! ```

use std::fmt;

use precopy_proto::{DeltaHeader, ErrorCode, FileHeader, Message, Node, RelPath};

use crate::mirror::{Mirror, TreeNode};
use crate::restart::{self, RestartError};
use crate::store::{Incoming, Sealed, Store, StoreError};
use crate::transport::Verdict;
use crate::wire::{unexpected, WireError};

pub mod memory;

/// A batch of received files is committed once it holds this many files…
const BATCH_FILES: usize = 1024;
/// …or this many bytes, or as soon as the sender pauses (group commit, see [`Store::commit`]).
const BATCH_BYTES: u64 = 64 << 20;
/// Differing files listed in a verdict (the count is always exact).
const MAX_LISTED: usize = 256;
/// Most entries of one manifest (a few hundred bytes of memory each).
const MAX_MANIFEST: usize = 16 << 20;

/// What a session asks of the place files are received into.
pub trait Destination {
    /// A file being received.
    type Incoming;
    /// A file received and checked, waiting for its batch's commit.
    type Sealed;

    /// Starts receiving a whole file.
    fn begin(&mut self, header: &FileHeader<'_>) -> Result<Self::Incoming, StoreError>;
    /// Starts receiving a delta; `None` if the copy here is not its base.
    fn begin_delta(
        &mut self,
        header: &DeltaHeader<'_>,
    ) -> Result<Option<Self::Incoming>, StoreError>;
    /// Appends a whole file's bytes.
    fn write(&mut self, file: &mut Self::Incoming, data: &[u8]) -> Result<(), StoreError>;
    /// Writes a delta's bytes at `offset`.
    fn patch(
        &mut self,
        file: &mut Self::Incoming,
        offset: u64,
        data: &[u8],
    ) -> Result<(), StoreError>;
    /// Checks the size and hash sent at the end. An integrity error on a delta means the copy
    /// here was not the base after all: the sender resends the file whole.
    fn seal(
        &mut self,
        file: Self::Incoming,
        size: u64,
        hash: &[u8; 32],
    ) -> Result<Self::Sealed, StoreError>;
    /// Makes a batch durable and visible, in order: afterwards every file of it may be
    /// acknowledged.
    fn commit(&mut self, batch: Vec<Self::Sealed>) -> Result<(), StoreError>;
    /// Whether `rel` is here, verified, with this size and hash.
    fn has(&mut self, rel: RelPath<'_>, size: u64, hash: &[u8; 32]) -> bool;
    /// Renames a verified file (a rename at the source); whether it did.
    fn rename_verified(&mut self, from: RelPath<'_>, to: RelPath<'_>) -> Result<bool, StoreError>;
    /// Makes the roots equal to the manifest but for file contents, and says what is equal.
    fn mirror(&mut self, roots: &[Vec<u8>], nodes: &[TreeNode], verify: bool) -> Mirror;
}

impl Destination for &Store {
    type Incoming = Incoming;
    type Sealed = Sealed;

    fn begin(&mut self, header: &FileHeader<'_>) -> Result<Incoming, StoreError> {
        Store::begin(self, header)
    }

    fn begin_delta(&mut self, header: &DeltaHeader<'_>) -> Result<Option<Incoming>, StoreError> {
        Store::begin_delta(self, header)
    }

    fn write(&mut self, file: &mut Incoming, data: &[u8]) -> Result<(), StoreError> {
        file.write(data)
    }

    fn patch(&mut self, file: &mut Incoming, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        file.patch(offset, data)
    }

    fn seal(&mut self, file: Incoming, size: u64, hash: &[u8; 32]) -> Result<Sealed, StoreError> {
        file.seal(size, hash)
    }

    fn commit(&mut self, batch: Vec<Sealed>) -> Result<(), StoreError> {
        Store::commit(self, batch)
    }

    fn has(&mut self, rel: RelPath<'_>, size: u64, hash: &[u8; 32]) -> bool {
        Store::has(self, rel, size, hash)
    }

    fn rename_verified(&mut self, from: RelPath<'_>, to: RelPath<'_>) -> Result<bool, StoreError> {
        Store::rename_verified(self, from, to)
    }

    fn mirror(&mut self, roots: &[Vec<u8>], nodes: &[TreeNode], verify: bool) -> Mirror {
        Store::mirror(self, roots, nodes, verify)
    }
}

/// What the IO edge does for the session, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `file-ack`: the file is committed.
    Ack(u64),
    /// Send `resend`: the delta could not be applied, the copy here is as it was.
    Resend(u64),
    /// Send `have`: the answer to a query, or to a manifest without verify.
    Have(Vec<bool>),
    /// Send `verdict`: the answer to a manifest with verify.
    Verdict(Verdict),
    /// Start the application, then send `started` with its pid.
    Restart {
        /// Working directory, under the root.
        cwd: Vec<u8>,
        /// Who it runs as, and its environment.
        identity: restart::Identity,
        /// Command and arguments, as sent (absolute paths not yet mapped under the root).
        argv: Vec<Vec<u8>>,
    },
    /// The sender said `bye`: close the connection.
    Close,
}

/// Why a session ended early; the sender is told by an error frame with [`SessionError::code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The connection failed, or the peer sent a bad frame, a frame out of order or an error.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The destination refused or could not store a file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The application could not be started again.
    #[error(transparent)]
    Restart(#[from] RestartError),
}

impl SessionError {
    /// The code of the error frame to send before closing, if the peer is to be told.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            SessionError::Wire(w) => w.code(),
            SessionError::Store(s) => Some(s.code()),
            SessionError::Restart(_) => Some(ErrorCode::Restart),
        }
    }
}

/// What a session did, for the daemon's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files committed and acknowledged.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Deltas applied.
    pub deltas: u64,
    /// Deltas refused (answered with `resend`).
    pub resends: u64,
    /// The last check: entries in the manifest, and how many differ.
    pub checked: Option<(usize, usize)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} files stored, {} bytes ({} as deltas; {} deltas refused); ",
            self.files, self.bytes, self.deltas, self.resends
        )?;
        match self.checked {
            None => Ok(()),
            Some((entries, 0)) => write!(f, "all {entries} entries equal the manifest"),
            Some((entries, n)) => write!(f, "{n} of {entries} entries differ from the manifest"),
        }
    }
}

/// A file or delta being received.
struct Open<I> {
    id: u64,
    rel: Vec<u8>,
    incoming: I,
    delta: bool,
}

/// A manifest being received, part by part.
#[derive(Default)]
struct Parts {
    roots: Vec<Vec<u8>>,
    nodes: Vec<TreeNode>,
}

enum State<I> {
    Idle,
    File(Open<I>),
    /// A delta whose base is not here: its patches are dropped and its end answered with
    /// [`Action::Resend`].
    Skipping(u64),
    Manifest(Parts),
    Closed,
}

/// A sealed file waiting for its batch's commit.
struct Received<S> {
    id: u64,
    rel: Vec<u8>,
    sealed: S,
}

/// One session's sequencing: see the module documentation.
pub struct Session<D: Destination> {
    destination: D,
    state: State<D::Incoming>,
    batch: Vec<Received<D::Sealed>>,
    batch_bytes: u64,
    summary: Summary,
}

impl<D: Destination> Session<D> {
    /// A session whose handshake is done.
    pub fn new(destination: D) -> Session<D> {
        Session {
            destination,
            state: State::Idle,
            batch: Vec::new(),
            batch_bytes: 0,
            summary: Summary::default(),
        }
    }

    /// The destination, to look at.
    pub fn destination(&self) -> &D {
        &self.destination
    }

    /// What the session did so far.
    pub fn summary(&self) -> Summary {
        self.summary
    }

    /// Whether sealed files wait for a commit.
    pub fn has_batch(&self) -> bool {
        !self.batch.is_empty()
    }

    /// Whether the batch is large enough to be committed now.
    pub fn batch_full(&self) -> bool {
        self.batch.len() >= BATCH_FILES || self.batch_bytes >= BATCH_BYTES
    }

    /// Handles one frame from the sender, appending what to do to `out`. On an error, `out` holds
    /// what was decided before it (acknowledgements to send before the error frame) and the
    /// session is over: every later frame is refused.
    pub fn on_message(
        &mut self,
        message: Message<'_>,
        out: &mut Vec<Action>,
    ) -> Result<(), SessionError> {
        let result = self.step(message, out);
        if result.is_err() {
            self.state = State::Closed;
        }
        result
    }

    fn step(&mut self, message: Message<'_>, out: &mut Vec<Action>) -> Result<(), SessionError> {
        if matches!(self.state, State::Closed) {
            return Err(unexpected(message).into());
        }
        if !matches!(
            message,
            Message::FileStart(_)
                | Message::Chunk(_)
                | Message::DeltaStart(_)
                | Message::Patch { .. }
                | Message::FileEnd { .. }
        ) {
            // Answers come after every acknowledgement they may depend on.
            self.commit(out)?;
        }
        self.state = match (std::mem::replace(&mut self.state, State::Idle), message) {
            (State::Idle, Message::FileStart(header)) => State::File(Open {
                id: header.id,
                rel: header.path.as_bytes().to_vec(),
                incoming: self.destination.begin(&header)?,
                delta: false,
            }),
            (State::Idle, Message::DeltaStart(header)) => {
                // Its base may be in the batch, received but not yet in place.
                let rel = header.path.as_bytes();
                if self.batch.iter().any(|r| r.rel == rel) {
                    self.commit(out)?;
                }
                match self.destination.begin_delta(&header)? {
                    Some(incoming) => State::File(Open {
                        id: header.id,
                        rel: rel.to_vec(),
                        incoming,
                        delta: true,
                    }),
                    None => State::Skipping(header.id),
                }
            }
            (State::File(mut open), Message::Chunk(data)) if !open.delta => {
                self.destination.write(&mut open.incoming, data)?;
                State::File(open)
            }
            (State::File(mut open), Message::Patch { offset, data }) if open.delta => {
                self.destination.patch(&mut open.incoming, offset, data)?;
                State::File(open)
            }
            (State::Skipping(id), Message::Patch { .. }) => State::Skipping(id),
            (State::Skipping(skipped), Message::FileEnd { id, .. }) if skipped == id => {
                self.summary.resends += 1;
                out.push(Action::Resend(id));
                State::Idle
            }
            (State::File(open), Message::FileEnd { id, size, hash }) if open.id == id => {
                self.seal(open, size, &hash, out)?;
                State::Idle
            }
            (State::Idle, Message::Rename { from, to }) => {
                // A copy that does not follow is caught by the stop-time check.
                self.destination.rename_verified(from, to)?;
                State::Idle
            }
            (State::Idle, Message::Query(entries)) => {
                let have = entries
                    .iter()
                    .map(|e| self.destination.has(e.path, e.size, &e.hash))
                    .collect();
                out.push(Action::Have(have));
                State::Idle
            }
            (
                state @ (State::Idle | State::Manifest(_)),
                Message::Manifest {
                    last,
                    verify,
                    roots,
                    nodes,
                },
            ) => {
                let parts = match state {
                    State::Manifest(parts) => parts,
                    _ => Parts::default(),
                };
                self.manifest(parts, (last, verify), &roots, &nodes, out)?
            }
            (
                State::Idle,
                Message::Restart {
                    cwd,
                    identity,
                    argv,
                },
            ) => {
                out.push(Action::Restart {
                    cwd: cwd.as_bytes().to_vec(),
                    identity: restart::Identity {
                        uid: identity.uid,
                        gid: identity.gid,
                        groups: identity.groups,
                        env: identity.env.iter().map(|e| e.to_vec()).collect(),
                    },
                    argv: argv.iter().map(|a| a.to_vec()).collect(),
                });
                State::Idle
            }
            (State::Idle, Message::Bye) => {
                out.push(Action::Close);
                State::Closed
            }
            (_, other) => return Err(unexpected(other).into()),
        };
        Ok(())
    }

    fn seal(
        &mut self,
        open: Open<D::Incoming>,
        size: u64,
        hash: &[u8; 32],
        out: &mut Vec<Action>,
    ) -> Result<(), SessionError> {
        match self.destination.seal(open.incoming, size, hash) {
            Ok(sealed) => {
                self.summary.deltas += u64::from(open.delta);
                self.batch_bytes += size;
                self.batch.push(Received {
                    id: open.id,
                    rel: open.rel,
                    sealed,
                });
                Ok(())
            }
            // The copy here changed behind our back: nothing was replaced.
            Err(StoreError::Integrity { .. }) if open.delta => {
                self.summary.resends += 1;
                out.push(Action::Resend(open.id));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Adds a manifest part; on the last one, mirrors and answers.
    fn manifest(
        &mut self,
        mut parts: Parts,
        (last, verify): (bool, bool),
        roots: &[RelPath<'_>],
        nodes: &[Node<'_>],
        out: &mut Vec<Action>,
    ) -> Result<State<D::Incoming>, SessionError> {
        parts
            .roots
            .extend(roots.iter().map(|r| r.as_bytes().to_vec()));
        parts.nodes.extend(nodes.iter().map(TreeNode::from));
        if parts.nodes.len() > MAX_MANIFEST {
            return Err(WireError::Unexpected("manifest of too many entries").into());
        }
        if !last {
            return Ok(State::Manifest(parts));
        }
        let mirror = self.destination.mirror(&parts.roots, &parts.nodes, verify);
        if verify {
            let entries = parts.nodes.len();
            self.summary.checked = Some((entries, mirror.differing.len()));
            out.push(Action::Verdict(Verdict {
                files: entries as u32,
                differing: mirror.differing.len() as u32,
                list: mirror.differing.into_iter().take(MAX_LISTED).collect(),
            }));
        } else {
            out.push(Action::Have(mirror.files));
        }
        Ok(State::Idle)
    }

    /// Commits the batch and appends its acknowledgements to `out`, in the order the files came.
    pub fn commit(&mut self, out: &mut Vec<Action>) -> Result<(), SessionError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.summary.files += batch.len() as u64;
        self.summary.bytes += std::mem::take(&mut self.batch_bytes);
        let (ids, sealed): (Vec<u64>, Vec<D::Sealed>) =
            batch.into_iter().map(|r| (r.id, r.sealed)).unzip();
        self.destination.commit(sealed)?;
        out.extend(ids.into_iter().map(Action::Ack));
        Ok(())
    }

    /// After an error: the sealed files not yet acknowledged are whole and checked, so they are
    /// committed anyway (best effort), and a sender that reconnects finds them by its query.
    pub fn keep_unacknowledged(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let sealed = self.batch.drain(..).map(|r| r.sealed).collect();
        self.batch_bytes = 0;
        let _ = self.destination.commit(sealed);
    }
}
