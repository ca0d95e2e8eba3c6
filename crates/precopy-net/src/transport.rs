//! The sender's side of the connection: files out through the token bucket, acknowledgements in on
//! a reader thread, and reconnection.

use std::collections::{BTreeMap, HashMap};

use std::io::{self, Read};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use precopy_proto::{
    batches, DeltaHeader, Entry, FileHeader, Identity, Key, Message, Node, Reason, RelPath,
};

use super::delta::{self, Digest};
use super::stamp::Stamp;
use super::wire::{
    client_handshake, unexpected, Compress, FrameReader, FrameWriter, Throttle, WireError,
};

/// Bytes per chunk frame.
const CHUNK: usize = 256 * 1024;

/// What a transfer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Bytes read.
    pub size: u64,
    /// Bytes of content that went over the link: `size`, or what changed for a delta.
    pub bytes: u64,
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
    Resend(u64),
    Have(Vec<bool>),
    Verdict(Verdict),
    Started(u32),
    Failed(WireError),
}

/// The version of a file last sent, which the destination holds once it is acknowledged: the
/// base of the file's next delta.
struct Version {
    id: u64,
    acked: bool,
    size: u64,
    hash: [u8; 32],
    blocks: Vec<Digest>,
    /// The last delta changed most blocks: the next resend goes whole.
    whole_next: bool,
}

/// How the transfers in flight end.
struct Inflight {
    file: usize,
    rel: Vec<u8>,
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
    inflight: BTreeMap<u64, Inflight>,
    /// Whether resends go as deltas.
    delta: bool,
    versions: HashMap<Vec<u8>, Version>,
    /// Files whose delta the receiver could not apply, not yet taken.
    refused: Vec<usize>,
    buf: Vec<u8>,
    /// Transfers sent as deltas.
    pub deltas: u32,
    /// Deltas the receiver could not apply (its copy was not the base).
    pub refused_deltas: u32,
    /// Reconnections so far.
    pub reconnects: u32,
    /// Bytes written to sockets, frames included.
    pub wire_bytes: u64,
    /// When the last acknowledgement came.
    pub last_ack: Option<Instant>,
}

impl Transport {
    /// Connects and authenticates; files go out compressed as `compress` says, resends as
    /// deltas if `delta`.
    pub fn connect(
        addr: &str,
        key: Key,
        bwlimit_bps: Option<f64>,
        compress: Compress,
        delta: bool,
    ) -> Result<Transport, WireError> {
        let mut t = Transport {
            addr: addr.to_string(),
            key,
            bwlimit_bps,
            compress,
            link: None,
            next_id: 0,
            inflight: BTreeMap::new(),
            delta,
            versions: HashMap::new(),
            refused: Vec::new(),
            buf: vec![0; CHUNK],
            deltas: 0,
            refused_deltas: 0,
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
        self.versions.retain(|_, version| version.acked);
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

    /// Sends one file as it is now: at most the size it had when opened; as a delta when the
    /// receiver holds a version sent before. `None` if it is no longer a regular file there
    /// (deleted, or replaced by a directory…): nothing was sent.
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
        let path_rel = RelPath::new(rel).map_err(|e| source(io::Error::other(e)))?;
        let base = self
            .versions
            .remove(rel)
            .filter(|v| self.delta && !v.whole_next);
        let (size, hash, blocks, bytes) = match &base {
            Some(base) => {
                self.deltas += 1;
                let header = DeltaHeader {
                    id,
                    path: path_rel,
                    meta: super::tree::meta_of(&meta),
                    size: meta.len(),
                    base_size: base.size,
                    base_hash: base.hash,
                };
                self.send_delta(&header, &base.blocks, handle.take(meta.len()))
            }
            None => self.send_whole(
                FileHeader {
                    id,
                    path: path_rel,
                    meta: super::tree::meta_of(&meta),
                    size: meta.len(),
                },
                handle.take(meta.len()),
            ),
        }
        .map_err(|e| match e {
            Failure::Read(why) => source(why),
            Failure::Wire(e) => SendError::Wire(e),
        })?;
        self.link()?
            .writer
            .send(&Message::FileEnd { id, size, hash })?;
        let changed_most = bytes as f64 > delta::WHOLE_ABOVE * size as f64;
        self.versions.insert(
            rel.to_vec(),
            Version {
                id,
                acked: false,
                size,
                hash,
                blocks,
                whole_next: base.is_some() && changed_most,
            },
        );
        self.inflight.insert(
            id,
            Inflight {
                file,
                rel: rel.to_vec(),
            },
        );
        self.drain()?;
        // Sent whole: the stamp's size is what was read.
        let observed = Stamp::of(&meta);
        let stamp = stamp.filter(|s| s.size() == size);
        Ok(Some(Sent {
            size,
            bytes,
            hash,
            stamp,
            observed,
        }))
    }

    /// Streams `content` as chunks; returns its size, hash, block digests (if deltas are on)
    /// and the bytes sent.
    fn send_whole(&mut self, header: FileHeader<'_>, mut content: impl Read) -> Streamed {
        let delta = self.delta;
        let link = self.link.as_mut().ok_or(WireError::Closed)?;
        link.writer.queue(&Message::FileStart(header))?;
        let mut hasher = blake3::Hasher::new();
        let mut blocks = Vec::new();
        let mut size = 0u64;
        loop {
            let n = link
                .writer
                .queue_chunk_from(&mut content, CHUNK, &mut |data| {
                    hasher.update(data);
                    if delta {
                        blocks.extend(data.chunks(delta::BLOCK).map(delta::digest));
                    }
                })
                .map_err(Failure::Read)?;
            size += n as u64;
            if n == 0 || link.writer.pending() >= CHUNK {
                link.writer.flush()?;
            }
            if n == 0 {
                break;
            }
        }
        Ok((size, *hasher.finalize().as_bytes(), blocks, size))
    }

    /// Reads `content` and sends the blocks whose digest differs from `old`'s as patches.
    fn send_delta(
        &mut self,
        header: &DeltaHeader<'_>,
        old: &[Digest],
        mut content: impl Read,
    ) -> Streamed {
        let link = self.link.as_mut().ok_or(WireError::Closed)?;
        link.writer.queue(&Message::DeltaStart(*header))?;
        let mut hasher = blake3::Hasher::new();
        let mut blocks = Vec::new();
        let (mut size, mut bytes) = (0u64, 0u64);
        loop {
            let n = read_full(&mut content, &mut self.buf).map_err(Failure::Read)?;
            let data = &self.buf[..n];
            hasher.update(data);
            let first = (size / delta::BLOCK as u64) as usize;
            for (start, end) in delta::changed_runs(old, first, data, &mut blocks) {
                link.writer.queue(&Message::Patch {
                    offset: size + start as u64,
                    data: &data[start..end],
                })?;
                bytes += (end - start) as u64;
            }
            size += n as u64;
            if n < self.buf.len() || link.writer.pending() >= CHUNK {
                link.writer.flush()?;
            }
            if n < self.buf.len() {
                return Ok((size, *hasher.finalize().as_bytes(), blocks, bytes));
            }
        }
    }

    /// Files whose delta the receiver could not apply since last asked: their copy there is not
    /// current (it is as it was), and their next send goes whole.
    pub fn take_refused(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.refused)
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
                if let Some(done) = self.inflight.remove(&id) {
                    if let Some(version) = self.versions.get_mut(&done.rel) {
                        version.acked |= version.id == id;
                    }
                }
                self.last_ack = Some(Instant::now());
                Ok(())
            }
            Event::Resend(id) => {
                let done = self
                    .inflight
                    .remove(&id)
                    .ok_or(WireError::Unexpected("resend of no transfer"))?;
                // A later version, if any, was built on this one and is refused too.
                if self.versions.get(&done.rel).is_some_and(|v| v.id == id) {
                    self.versions.remove(&done.rel);
                }
                self.refused.push(done.file);
                self.refused_deltas += 1;
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
                Event::Ack(_) | Event::Resend(_) | Event::Failed(_) => self.handle(event)?,
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
        // If the receiver's copy does not follow, the next delta is refused and resent whole.
        if let Some(version) = self.versions.remove(from.as_bytes()) {
            self.versions.insert(to.as_bytes().to_vec(), version);
        }
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

/// Size, hash, block digests and bytes sent of a file's transfer.
type Streamed = Result<(u64, [u8; 32], Vec<Digest>, u64), Failure>;

enum Failure {
    Read(io::Error),
    Wire(WireError),
}

impl From<WireError> for Failure {
    fn from(e: WireError) -> Failure {
        Failure::Wire(e)
    }
}

/// Fills `buf` from `source` unless it ends first; returns the bytes read.
fn read_full(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_events(mut reader: FrameReader<TcpStream>, tx: mpsc::Sender<Event>) {
    loop {
        let event = match reader.recv() {
            Ok(Message::FileAck { id }) => Event::Ack(id),
            Ok(Message::Resend { id }) => Event::Resend(id),
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
