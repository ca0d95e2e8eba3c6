//! The sender's side of the connection: files out through the token bucket, acknowledgements in on
//! a reader thread, and reconnection.

use std::collections::BTreeMap;

use std::io::{self, Read};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use precopy_proto::{batches, Entry, FileHeader, Identity, Key, Message, Node, Reason, RelPath};

use super::stamp::Stamp;
use super::wire::{
    client_handshake, unexpected, Compress, FrameReader, FrameWriter, Throttle, WireError,
};

/// Bytes per chunk frame.
const CHUNK: usize = 256 * 1024;

/// What a transfer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Bytes.
    pub size: u64,
    /// BLAKE3 of them.
    pub hash: [u8; 32],
    /// The file's stamp before it was read, if it vouches for the content sent: while the file
    /// has this stamp, it holds what was sent.
    pub stamp: Option<Stamp>,
    /// The file's stamp before it was read, vouching or not: a later walk that finds another
    /// one knows the file changed.
    pub observed: Stamp,
}

/// The receiver's answer to the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Files compared.
    pub files: u32,
    /// Files that differ.
    pub differing: u32,
    /// Some of them (all, unless there were very many), with why.
    pub list: Vec<(Vec<u8>, Reason)>,
}

/// A transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection or the receiver.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The source file could not be read.
    #[error("reading {path}: {why}")]
    Source {
        /// The file.
        path: String,
        /// Why.
        why: io::Error,
    },
}

enum Event {
    Ack(u64),
    Have(Vec<bool>),
    Verdict(Verdict),
    Started(u32),
    Failed(WireError),
}

struct Link {
    writer: FrameWriter,
    events: mpsc::Receiver<Event>,
}

/// A connection to the receiver that can be re-established.
pub struct Transport {
    addr: String,
    key: Key,
    bwlimit_bps: Option<f64>,
    compress: Compress,
    link: Option<Link>,
    next_id: u64,
    inflight: BTreeMap<u64, usize>,
    /// Reconnections so far.
    pub reconnects: u32,
    /// Bytes written to sockets, frames included.
    pub wire_bytes: u64,
    /// When the last acknowledgement came.
    pub last_ack: Option<Instant>,
}

impl Transport {
    /// Connects and authenticates; files go out compressed as `compress` says.
    pub fn connect(
        addr: &str,
        key: Key,
        bwlimit_bps: Option<f64>,
        compress: Compress,
    ) -> Result<Transport, WireError> {
        let mut t = Transport {
            addr: addr.to_string(),
            key,
            bwlimit_bps,
            compress,
            link: None,
            next_id: 0,
            inflight: BTreeMap::new(),
            reconnects: 0,
            wire_bytes: 0,
            last_ack: None,
        };
        t.link = Some(t.open()?);
        Ok(t)
    }

    fn open(&self) -> Result<Link, WireError> {
        let stream = TcpStream::connect(&self.addr)?;
        stream.set_nodelay(true)?;
        let mut reader = FrameReader::new(stream.try_clone()?);
        let mut writer = FrameWriter::new(stream, self.bwlimit_bps.map(Throttle::new));
        client_handshake(&mut reader, &mut writer, &self.key, self.compress)?;
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || read_events(reader, tx));
        Ok(Link { writer, events })
    }

    /// Drops the connection and makes a new one, retrying for up to `patience`. Transfers not
    /// acknowledged are forgotten: the caller asks the receiver what it has ([`Transport::query`]).
    pub fn reconnect(&mut self, patience: Duration) -> Result<(), WireError> {
        if let Some(link) = self.link.take() {
            self.wire_bytes += link.writer.written;
        }
        self.inflight.clear();
        self.reconnects += 1;
        let deadline = Instant::now() + patience;
        let mut wait = Duration::from_millis(100);
        loop {
            match self.open() {
                Ok(link) => {
                    self.link = Some(link);
                    return Ok(());
                }
                Err(e) if e.is_transient() && Instant::now() + wait < deadline => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn link(&mut self) -> Result<&mut Link, WireError> {
        self.link.as_mut().ok_or(WireError::Closed)
    }

    /// Sends one file as it is now: at most the size it had when opened. `None` if it is no
    /// longer a regular file there (deleted, or replaced by a directory…): nothing was sent.
    pub fn send_file(
        &mut self,
        file: usize,
        rel: &[u8],
        path: &Path,
    ) -> Result<Option<Sent>, SendError> {
        let source = |why| SendError::Source {
            path: path.display().to_string(),
            why,
        };
        let Some(handle) = super::tree::open_file(path).map_err(source)? else {
            return Ok(None);
        };
        let (meta, stamp) = Stamp::before_read(&handle).map_err(source)?;
        let id = self.next_id;
        self.next_id += 1;
        let rel = RelPath::new(rel).map_err(|e| source(io::Error::other(e)))?;
        let link = self.link()?;
        link.writer.queue(&Message::FileStart(FileHeader {
            id,
            path: rel,
            meta: super::tree::meta_of(&meta),
            size: meta.len(),
        }))?;
        let mut content = handle.take(meta.len());
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        loop {
            let n = link
                .writer
                .queue_chunk_from(&mut content, CHUNK, &mut hasher)
                .map_err(source)?;
            size += n as u64;
            if n == 0 || link.writer.pending() >= CHUNK {
                link.writer.flush()?;
            }
            if n == 0 {
                break;
            }
        }
        let hash = *hasher.finalize().as_bytes();
        link.writer.send(&Message::FileEnd { id, size, hash })?;
        self.inflight.insert(id, file);
        self.drain()?;
        // Sent whole: the stamp's size is what was read.
        let observed = Stamp::of(&meta);
        let stamp = stamp.filter(|s| s.size() == size);
        Ok(Some(Sent {
            size,
            hash,
            stamp,
            observed,
        }))
    }

    /// Handles the events that have arrived, without waiting.
    pub fn drain(&mut self) -> Result<(), WireError> {
        loop {
            let event = match self.link()?.events.try_recv() {
                Ok(event) => event,
                Err(mpsc::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::TryRecvError::Disconnected) => return Err(WireError::Closed),
            };
            self.handle(event)?;
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), WireError> {
        match event {
            Event::Ack(id) => {
                self.inflight.remove(&id);
                self.last_ack = Some(Instant::now());
                Ok(())
            }
            Event::Failed(e) => Err(e),
            Event::Have(_) => Err(WireError::Unexpected("have")),
            Event::Verdict(_) => Err(WireError::Unexpected("verdict")),
            Event::Started(_) => Err(WireError::Unexpected("started")),
        }
    }

    /// The next event that is not an acknowledgement (acknowledgements are handled on the way).
    fn next_answer(&mut self) -> Result<Event, WireError> {
        loop {
            let event = self.link()?.events.recv().map_err(|_| WireError::Closed)?;
            match event {
                Event::Ack(_) | Event::Failed(_) => self.handle(event)?,
                answer => return Ok(answer),
            }
        }
    }

    /// Waits until every transfer is acknowledged.
    pub fn wait_acks(&mut self) -> Result<(), WireError> {
        while !self.inflight.is_empty() {
            let event = self.link()?.events.recv().map_err(|_| WireError::Closed)?;
            self.handle(event)?;
        }
        Ok(())
    }

    /// Tells the receiver a file it holds was renamed, its content unchanged.
    pub fn rename(&mut self, from: RelPath<'_>, to: RelPath<'_>) -> Result<(), WireError> {
        self.link()?.writer.send(&Message::Rename { from, to })
    }

    /// Which of these files the receiver already has, verified, with this size and hash.
    pub fn query(&mut self, entries: &[Entry<'_>]) -> Result<Vec<bool>, WireError> {
        let mut have = Vec::with_capacity(entries.len());
        for batch in batches(entries, 0) {
            self.link()?.writer.send(&Message::Query(batch.to_vec()))?;
            match self.next_answer()? {
                Event::Have(flags) if flags.len() == batch.len() => have.extend(flags),
                _ => return Err(WireError::Unexpected("answer to query")),
            }
        }
        Ok(have)
    }

    /// Sends the stop-time tree; the receiver makes its roots equal to it but for file contents.
    /// Returns, per node, whether the receiver's copy is equal now.
    pub fn mirror(
        &mut self,
        roots: &[RelPath<'_>],
        nodes: &[Node<'_>],
    ) -> Result<Vec<bool>, WireError> {
        self.send_manifest(roots, nodes, false)?;
        match self.next_answer()? {
            Event::Have(flags) if flags.len() == nodes.len() => Ok(flags),
            _ => Err(WireError::Unexpected("answer to manifest")),
        }
    }

    /// Sends the stop-time tree for the final check; returns the receiver's verdict.
    pub fn verify(
        &mut self,
        roots: &[RelPath<'_>],
        nodes: &[Node<'_>],
    ) -> Result<Verdict, WireError> {
        self.send_manifest(roots, nodes, true)?;
        match self.next_answer()? {
            Event::Verdict(v) => Ok(v),
            _ => Err(WireError::Unexpected("answer to manifest")),
        }
    }

    fn send_manifest(
        &mut self,
        roots: &[RelPath<'_>],
        nodes: &[Node<'_>],
        verify: bool,
    ) -> Result<(), WireError> {
        let reserved: usize = roots.iter().map(|r| 2 + r.as_bytes().len()).sum();
        if reserved + 1024 > precopy_proto::limits::MAX_PAYLOAD {
            return Err(WireError::Io(io::Error::other(
                "too many roots for one manifest frame",
            )));
        }
        let parts: Vec<_> = batches(nodes, reserved).collect();
        for (i, part) in parts.iter().enumerate() {
            self.link()?.writer.send(&Message::Manifest {
                last: i + 1 == parts.len(),
                verify,
                roots: if i == 0 { roots.to_vec() } else { Vec::new() },
                nodes: part.to_vec(),
            })?;
        }
        Ok(())
    }

    /// Asks the receiver to start the application; returns its pid there.
    pub fn restart(
        &mut self,
        cwd: RelPath<'_>,
        identity: Identity<'_>,
        argv: &[&[u8]],
    ) -> Result<u32, WireError> {
        self.link()?.writer.send(&Message::Restart {
            cwd,
            identity,
            argv: argv.to_vec(),
        })?;
        match self.next_answer()? {
            Event::Started(pid) => Ok(pid),
            _ => Err(WireError::Unexpected("answer to restart")),
        }
    }

    /// Ends the session politely.
    pub fn bye(&mut self) {
        if let Some(mut link) = self.link.take() {
            let _ = link.writer.send(&Message::Bye);
            self.wire_bytes += link.writer.written;
        }
    }

    /// Bytes written so far, on every connection.
    pub fn written(&self) -> u64 {
        self.wire_bytes + self.link.as_ref().map_or(0, |l| l.writer.written)
    }

    /// A failed write often means the receiver refused something and closed: prefer its reason.
    pub fn explain(&mut self, error: WireError) -> WireError {
        if !error.is_transient() {
            return error;
        }
        let Some(link) = self.link.as_mut() else {
            return error;
        };
        let deadline = Instant::now() + Duration::from_millis(300);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match link.events.recv_timeout(left) {
                Ok(Event::Failed(remote @ WireError::Remote { .. })) => return remote,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        error
    }
}

fn read_events(mut reader: FrameReader<TcpStream>, tx: mpsc::Sender<Event>) {
    loop {
        let event = match reader.recv() {
            Ok(Message::FileAck { id }) => Event::Ack(id),
            Ok(Message::Have(flags)) => Event::Have(flags),
            Ok(Message::Verdict {
                files,
                differing,
                list,
            }) => Event::Verdict(Verdict {
                files,
                differing,
                list: list
                    .iter()
                    .map(|d| (d.path.as_bytes().to_vec(), d.reason))
                    .collect(),
            }),
            Ok(Message::Started { pid }) => Event::Started(pid),
            Ok(other) => Event::Failed(unexpected(other)),
            Err(e) => Event::Failed(e),
        };
        let last = matches!(event, Event::Failed(_));
        if tx.send(event).is_err() || last {
            return;
        }
    }
}
