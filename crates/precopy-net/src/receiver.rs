//! The destination daemon: accepts connections forever, one thread each, so a bad or stuck peer
//! only ever costs its own connection. Each connection is the IO edge of a [`Session`]: it reads
//! frames, feeds them to the session and performs the [`Action`]s it decides.

use std::ffi::OsStr;
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Arc;
use std::time::Duration;

use precopy_proto::{Difference, Key, Message, RelPath};

use super::restart::{self, Launch};
use super::session::{Action, Session, SessionError};
use super::store::{Store, StoreError};
use super::transport::Verdict;
use super::wire::{server_handshake, FrameReader, FrameWriter, WireError};

/// A connection is dropped after this long without a frame.
const IDLE: Duration = Duration::from_secs(120);

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
        let mut session = Session::new(&self.store);
        let result = self.frames(&mut reader, &mut writer, &mut session);
        if let Err(e) = &result {
            session.keep_unacknowledged();
            // Tell the peer why before closing (a frame error, a refused path, a full disk…).
            if let Some(code) = e.code() {
                writer.send_error(code, &e.to_string());
            }
        }
        result?;
        Ok(session.summary().to_string())
    }

    /// Feeds frames to the session and performs what it decides, until `bye` or an error.
    fn frames(
        &self,
        reader: &mut FrameReader<TcpStream>,
        writer: &mut FrameWriter,
        session: &mut Session<&Store>,
    ) -> Result<(), SessionError> {
        let mut actions = Vec::new();
        loop {
            if session.has_batch() && (session.batch_full() || !reader.ready()?) {
                session.commit(&mut actions)?;
                self.perform(writer, &mut actions)?;
            }
            let handled = session.on_message(reader.recv()?, &mut actions);
            // What came before a failure goes out before the error frame (acknowledgements).
            let closed = self.perform(writer, &mut actions)?;
            handled?;
            if closed {
                return Ok(());
            }
        }
    }

    /// Sends what the session decided, in order, in one write unless a restart waits in between;
    /// returns whether the session is over.
    fn perform(
        &self,
        writer: &mut FrameWriter,
        actions: &mut Vec<Action>,
    ) -> Result<bool, SessionError> {
        let mut closed = false;
        for action in actions.drain(..) {
            match action {
                Action::Ack(id) => writer.queue(&Message::FileAck { id })?,
                Action::Resend(id) => writer.queue(&Message::Resend { id })?,
                Action::Have(flags) => writer.queue(&Message::Have(flags))?,
                Action::Verdict(verdict) => writer.queue(&verdict_message(&verdict))?,
                Action::Restart {
                    cwd,
                    identity,
                    argv,
                } => {
                    // The acknowledgements go out before the grace period.
                    if writer.pending() > 0 {
                        writer.flush()?;
                    }
                    let (pid, running) = self.restart(&cwd, identity, argv)?;
                    let running_ms = u32::try_from(running.as_millis()).unwrap_or(u32::MAX);
                    writer.queue(&Message::Started { pid, running_ms })?;
                }
                Action::Close => closed = true,
            }
        }
        if writer.pending() > 0 {
            writer.flush()?;
        }
        Ok(closed)
    }

    /// Starts the application at the destination as the user it ran as, with its environment:
    /// the working directory and every absolute argument are mapped under the root. It is
    /// reported started only if it still runs after the grace period.
    fn restart(
        &self,
        cwd: &[u8],
        identity: restart::Identity,
        argv: Vec<Vec<u8>>,
    ) -> Result<(u32, Duration), SessionError> {
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
        let mut mapped: Vec<Vec<u8>> = vec![argv[0].clone()];
        mapped.extend(argv[1..].iter().map(|a| map(a)));
        // The working directory need not be under a migrated root: made if missing.
        let cwd = RelPath::new(cwd).expect("checked when received");
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
            identity,
        };
        let started = restart::start(&launch, self.restart_grace)?;
        let pid = started.pid;
        let running = started.running();
        // The daemon's log says when the application it started ends.
        std::thread::spawn(move || loop {
            if let Some(status) = started.wait(Duration::from_secs(3600)) {
                eprintln!("receive: the restarted application (pid {pid}) ended: {status}");
                return;
            }
        });
        Ok((pid, running))
    }
}

fn verdict_message(verdict: &Verdict) -> Message<'_> {
    Message::Verdict {
        files: verdict.files,
        differing: verdict.differing,
        list: verdict
            .list
            .iter()
            .map(|(path, reason)| Difference {
                path: RelPath::new(path).expect("came as a RelPath"),
                reason: *reason,
            })
            .collect(),
    }
}
