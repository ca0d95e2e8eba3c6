//! The destination daemon: accepts connections forever, one thread each, so a bad or stuck peer
//! only ever costs its own connection.

use std::ffi::OsStr;
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Arc;
use std::time::Duration;

use precopy_proto::{Difference, ErrorCode, Identity, Key, Message, Reason, RelPath};

use super::mirror::TreeNode;
use super::restart::{self, Launch};
use super::store::{Incoming, Sealed, Store, StoreError};
use super::wire::{server_handshake, unexpected, FrameReader, FrameWriter, WireError};

/// A connection is dropped after this long without a frame.
const IDLE: Duration = Duration::from_secs(120);
/// Differing files listed in a verdict (the count is always exact).
const MAX_LISTED: usize = 256;
/// A batch of received files is committed once it holds this many files…
const BATCH_FILES: usize = 1024;
/// …or this many bytes, or as soon as the sender pauses (group commit, see [`Store::commit`]).
const BATCH_BYTES: u64 = 64 << 20;
/// Most entries of one manifest (a few hundred bytes of memory each).
const MAX_MANIFEST: usize = 16 << 20;

/// The daemon's shared state.
#[derive(Debug)]
pub struct Receiver {
    /// The root and its verified files.
    pub store: Store,
    /// The handshake key.
    pub key: Key,
    /// How long a restarted application must keep running to count as started.
    pub restart_grace: Duration,
}

impl Receiver {
    /// Serves forever.
    pub fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait and go on.
                Err(e) => {
                    eprintln!("receive: accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let this = Arc::clone(&self);
            std::thread::spawn(move || match this.session(stream) {
                Ok(summary) => eprintln!("receive: {peer}: {summary}"),
                Err(e) => eprintln!("receive: {peer}: {e}"),
            });
        }
    }

    fn session(&self, stream: TcpStream) -> Result<String, SessionError> {
        stream.set_nodelay(true).map_err(WireError::from)?;
        stream
            .set_read_timeout(Some(IDLE))
            .map_err(WireError::from)?;
        let mut reader = FrameReader::new(stream.try_clone().map_err(WireError::from)?);
        let mut writer = FrameWriter::new(stream, None);
        server_handshake(&mut reader, &mut writer, &self.key)?;
        let mut state = Session::default();
        let result = self.frames(&mut reader, &mut writer, &mut state);
        if result.is_err() && !state.batch.is_empty() {
            // Whole and checked, only not acknowledged: keep them, so that a sender that
            // reconnects finds them by its query and need not send them again.
            let batch = state.batch.drain(..).map(|(_, sealed)| sealed).collect();
            let _ = self.store.commit(batch);
        }
        if let Err(e) = &result {
            // Tell the peer why before closing (a frame error, a refused path, a full disk…).
            let code = match e {
                SessionError::Store(s) => Some(s.code()),
                SessionError::Wire(w) => w.code(),
                SessionError::Restart(_) => Some(ErrorCode::Restart),
            };
            if let Some(code) = code {
                writer.send_error(code, &e.to_string());
            }
        }
        result?;
        Ok(format!(
            "{} files stored, {} bytes ({} as deltas; {} deltas refused); {}",
            state.files, state.bytes, state.deltas, state.resends, state.verdict
        ))
    }

    fn frames(
        &self,
        reader: &mut FrameReader<TcpStream>,
        writer: &mut FrameWriter,
        state: &mut Session,
    ) -> Result<(), SessionError> {
        loop {
            if !state.batch.is_empty()
                && (state.batch.len() >= BATCH_FILES
                    || state.batch_bytes >= BATCH_BYTES
                    || !reader.ready()?)
            {
                self.commit(writer, state)?;
            }
            let message = reader.recv()?;
            if !matches!(
                message,
                Message::FileStart(_)
                    | Message::Chunk(_)
                    | Message::DeltaStart(_)
                    | Message::Patch { .. }
                    | Message::FileEnd { .. }
            ) {
                // Answers come after every acknowledgement they may depend on.
                self.commit(writer, state)?;
            }
            match message {
                Message::FileStart(header) => {
                    if state.incoming.is_some() || state.skipping.is_some() {
                        return Err(WireError::Unexpected("file-start").into());
                    }
                    state.incoming = Some((header.id, self.store.begin(&header)?));
                }
                Message::DeltaStart(header) => {
                    if state.incoming.is_some() || state.skipping.is_some() {
                        return Err(WireError::Unexpected("delta-start").into());
                    }
                    // Its base may be in the batch, received but not yet in place.
                    let path = header.path.as_bytes();
                    if state.batch.iter().any(|(_, sealed)| sealed.rel() == path) {
                        self.commit(writer, state)?;
                    }
                    match self.store.begin_delta(&header)? {
                        Some(incoming) => state.incoming = Some((header.id, incoming)),
                        None => state.skipping = Some(header.id),
                    }
                }
                Message::Chunk(data) => match state.incoming.as_mut() {
                    Some((_, incoming)) => incoming.write(data)?,
                    None => return Err(WireError::Unexpected("chunk").into()),
                },
                Message::Patch { offset, data } => match state.incoming.as_mut() {
                    Some((_, incoming)) => incoming.patch(offset, data)?,
                    None if state.skipping.is_some() => {}
                    None => return Err(WireError::Unexpected("patch").into()),
                },
                Message::FileEnd { id, .. } if state.skipping == Some(id) => {
                    state.skipping = None;
                    state.resends += 1;
                    writer.send(&Message::Resend { id })?;
                }
                Message::FileEnd { id, size, hash } => match state.incoming.take() {
                    Some((started, incoming)) if started == id => {
                        let delta = incoming.is_delta();
                        match incoming.seal(size, &hash) {
                            Ok(sealed) => {
                                state.deltas += u64::from(delta);
                                state.batch_bytes += sealed.size();
                                state.batch.push((id, sealed));
                            }
                            // The copy here changed behind our back: nothing was replaced.
                            Err(StoreError::Integrity { .. }) if delta => {
                                state.resends += 1;
                                writer.send(&Message::Resend { id })?;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    _ => return Err(WireError::Unexpected("file-end").into()),
                },
                Message::Rename { from, to } => {
                    // A copy that does not follow is caught by the stop-time check.
                    self.store.rename_verified(from, to)?;
                }
                Message::Query(entries) => {
                    let have = entries
                        .iter()
                        .map(|e| self.store.has(e.path, e.size, &e.hash))
                        .collect();
                    writer.send(&Message::Have(have))?;
                }
                Message::Manifest {
                    last,
                    verify,
                    roots,
                    nodes,
                } => {
                    let manifest = state.manifest.get_or_insert_with(Default::default);
                    manifest
                        .roots
                        .extend(roots.iter().map(|r| r.as_bytes().to_vec()));
                    manifest.nodes.extend(nodes.iter().map(TreeNode::from));
                    if manifest.nodes.len() > MAX_MANIFEST {
                        return Err(WireError::Unexpected("manifest of too many entries").into());
                    }
                    if last {
                        let manifest = state.manifest.take().expect("just inserted");
                        let mirror = self.store.mirror(&manifest.roots, &manifest.nodes, verify);
                        if verify {
                            let verdict = verdict(manifest.nodes.len(), &mirror.differing);
                            writer.send(&verdict)?;
                            state.verdict = match mirror.differing.len() {
                                0 => format!(
                                    "all {} entries equal the manifest",
                                    manifest.nodes.len()
                                ),
                                n => format!(
                                    "{n} of {} entries differ from the manifest",
                                    manifest.nodes.len()
                                ),
                            };
                        } else {
                            writer.send(&Message::Have(mirror.files))?;
                        }
                    }
                }
                Message::Restart {
                    cwd,
                    identity,
                    argv,
                } => {
                    let pid = self.restart(cwd, identity, &argv)?;
                    writer.send(&Message::Started { pid })?;
                }
                Message::Bye => return Ok(()),
                other => return Err(unexpected(other).into()),
            }
        }
    }

    /// Commits the batch of received files and acknowledges them, all in one write.
    fn commit(&self, writer: &mut FrameWriter, state: &mut Session) -> Result<(), SessionError> {
        if state.batch.is_empty() {
            return Ok(());
        }
        let (ids, sealed): (Vec<u64>, Vec<Sealed>) = state.batch.drain(..).unzip();
        state.files += ids.len() as u64;
        state.bytes += state.batch_bytes;
        state.batch_bytes = 0;
        self.store.commit(sealed)?;
        for id in ids {
            writer.queue(&Message::FileAck { id })?;
        }
        writer.flush()?;
        Ok(())
    }

    /// Starts the application at the destination as the user it ran as, with its environment:
    /// the working directory and every absolute argument are mapped under the root. It is
    /// reported started only if it still runs after the grace period.
    fn restart(
        &self,
        cwd: RelPath<'_>,
        identity: Identity<'_>,
        argv: &[&[u8]],
    ) -> Result<u32, SessionError> {
        let map = |arg: &[u8]| -> Vec<u8> {
            match precopy_proto::path::relative_of_absolute(arg) {
                Ok(rel) => self
                    .store
                    .root()
                    .join(OsStr::from_bytes(&rel))
                    .into_os_string()
                    .into_vec(),
                Err(_) => arg.to_vec(),
            }
        };
        let mut mapped: Vec<Vec<u8>> = vec![argv[0].to_vec()];
        mapped.extend(argv[1..].iter().map(|a| map(a)));
        // The working directory need not be under a migrated root: made if missing.
        let (dir, name) = self
            .store
            .parent_of(cwd, true)?
            .expect("created on the way");
        let cwd = dir.join(name);
        if !cwd.is_dir() {
            std::fs::create_dir(&cwd).map_err(|source| StoreError::Io {
                path: cwd.display().to_string(),
                source,
            })?;
        }
        let launch = Launch {
            argv: mapped,
            cwd,
            identity: restart::Identity {
                uid: identity.uid,
                gid: identity.gid,
                groups: identity.groups,
                env: identity.env.iter().map(|e| e.to_vec()).collect(),
            },
        };
        let started = restart::start(&launch, self.restart_grace)?;
        let pid = started.pid;
        // The daemon's log says when the application it started ends.
        std::thread::spawn(move || loop {
            if let Some(status) = started.wait(Duration::from_secs(3600)) {
                eprintln!("receive: the restarted application (pid {pid}) ended: {status}");
                return;
            }
        });
        Ok(pid)
    }
}

fn verdict(entries: usize, differing: &[(Vec<u8>, Reason)]) -> Message<'_> {
    let list = differing
        .iter()
        .take(MAX_LISTED)
        .map(|(path, reason)| Difference {
            path: RelPath::new(path).expect("came as a RelPath"),
            reason: *reason,
        })
        .collect();
    Message::Verdict {
        files: entries as u32,
        differing: differing.len() as u32,
        list,
    }
}

/// A manifest being received, part by part.
#[derive(Default)]
struct Manifest {
    roots: Vec<Vec<u8>>,
    nodes: Vec<TreeNode>,
}

#[derive(Default)]
struct Session {
    incoming: Option<(u64, Incoming)>,
    /// A delta whose base is not here: its patches are dropped and its end answered with
    /// [`Message::Resend`].
    skipping: Option<u64>,
    deltas: u64,
    resends: u64,
    /// Received and checked, not yet committed nor acknowledged.
    batch: Vec<(u64, Sealed)>,
    batch_bytes: u64,
    files: u64,
    bytes: u64,
    manifest: Option<Manifest>,
    verdict: String,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Restart(#[from] restart::RestartError),
}
