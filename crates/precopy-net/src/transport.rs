//! The sender's side of the connection: files out through the token bucket, acknowledgements in on
//! a reader thread, and reconnection.

use std::collections::{BTreeMap, HashMap};

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use precopy_proto::{
    batches, DeltaHeader, Entry, FileHeader, Identity, Key, Message, Node, Reason, RelPath,
};

use super::delta::{self, Digest, FileHasher, ResendRates};
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

impl Sent {
    /// What a transfer of `size` bytes read (`bytes` of them on the link) records, for a file
    /// whose metadata and stamp were taken before reading.
    pub(crate) fn of_read(
        size: u64,
        bytes: u64,
        hash: [u8; 32],
        meta: &Metadata,
        stamp: Option<Stamp>,
    ) -> Sent {
        Sent {
            size,
            bytes,
            hash,
            // The stamp vouches only if the whole file it describes was read.
            stamp: stamp.filter(|s| s.size() == size),
            observed: Stamp::of(meta),
        }
    }
}

/// A source file opened for a transfer, with what `stat` said just before it is read.
pub(crate) struct Source {
    pub(crate) handle: File,
    pub(crate) meta: Metadata,
    /// The stamp taken before reading, if it vouches for what is read ([`Stamp::before_read`]).
    pub(crate) stamp: Option<Stamp>,
}

impl Source {
    /// `None` if `path` is no longer a regular file reachable without symlinks.
    pub(crate) fn open(path: &Path) -> Result<Option<Source>, SendError> {
        let Some(handle) = super::tree::open_file(path).map_err(|e| source_error(path, e))? else {
            return Ok(None);
        };
        let (meta, stamp) = Stamp::before_read(&handle).map_err(|e| source_error(path, e))?;
        Ok(Some(Source {
            handle,
            meta,
            stamp,
        }))
    }
}

/// Reading the source file at `path` failed.
pub(crate) fn source_error(path: &Path, why: io::Error) -> SendError {
    SendError::Source {
        path: path.display().to_string(),
        why,
    }
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

/// What the reader thread passes on from the receiver.
#[derive(Debug)]
enum Event {
    /// A transfer is durable at the receiver; when its acknowledgement arrived.
    Ack(u64, Instant),
    Resend(u64),
    Answer(Answer),
    Failed(WireError),
}

/// The receiver's answer to a request (a query, a manifest, a restart).
#[derive(Debug, PartialEq)]
enum Answer {
    Have(Vec<bool>),
    Verdict(Verdict),
    Started(Restarted),
}

impl Answer {
    /// Flags for `count` entries, the answer to a query or a manifest (`to` names it).
    fn have(self, count: usize, to: &'static str) -> Result<Vec<bool>, WireError> {
        match self {
            Answer::Have(flags) if flags.len() == count => Ok(flags),
            _ => Err(WireError::Unexpected(to)),
        }
    }

    /// The answer to a manifest with verify.
    fn verdict(self) -> Result<Verdict, WireError> {
        match self {
            Answer::Verdict(verdict) => Ok(verdict),
            _ => Err(WireError::Unexpected("answer to manifest")),
        }
    }

    /// The answer to a restart.
    fn started(self) -> Result<Restarted, WireError> {
        match self {
            Answer::Started(restarted) => Ok(restarted),
            _ => Err(WireError::Unexpected("answer to restart")),
        }
    }

    /// Its frame's name.
    fn name(&self) -> &'static str {
        match self {
            Answer::Have(_) => "have",
            Answer::Verdict(_) => "verdict",
            Answer::Started(_) => "started",
        }
    }
}

/// What an event settles.
#[derive(Debug, PartialEq)]
enum Settled {
    /// This transfer is at the receiver, durably.
    Acked(u64, Inflight),
    /// This delta was not applied: the file goes whole next time.
    Refused(u64, Inflight),
    /// The answer to the request in progress, if any.
    Answer(Answer),
}

/// Settles `event` against the transfers in flight. The receiver acknowledges in the order the
/// files ended, and answers `resend` at a delta's end: an acknowledgement is always for the oldest
/// transfer in flight, a resend for any, and either for no other.
fn settle(inflight: &mut BTreeMap<u64, Inflight>, event: Event) -> Result<Settled, WireError> {
    match event {
        Event::Ack(id, _) => match inflight.first_key_value() {
            Some((&oldest, _)) if oldest == id => {
                Ok(Settled::Acked(id, inflight.remove(&id).expect("just seen")))
            }
            Some(_) if inflight.contains_key(&id) => {
                Err(WireError::Unexpected("file-ack out of order"))
            }
            _ => Err(WireError::Unexpected("file-ack of no transfer")),
        },
        Event::Resend(id) => match inflight.remove(&id) {
            Some(done) => Ok(Settled::Refused(id, done)),
            None => Err(WireError::Unexpected("resend of no transfer")),
        },
        Event::Answer(answer) => Ok(Settled::Answer(answer)),
        Event::Failed(e) => Err(e),
    }
}

/// The event a frame from the receiver is.
fn event_of(frame: Result<Message<'_>, WireError>) -> Event {
    match frame {
        Ok(Message::FileAck { id }) => Event::Ack(id, Instant::now()),
        Ok(Message::Resend { id }) => Event::Resend(id),
        Ok(Message::Have(flags)) => Event::Answer(Answer::Have(flags)),
        Ok(Message::Verdict {
            files,
            differing,
            list,
        }) => Event::Answer(Answer::Verdict(Verdict {
            files,
            differing,
            list: list
                .iter()
                .map(|d| (d.path.as_bytes().to_vec(), d.reason))
                .collect(),
        })),
        Ok(Message::Started { pid, running_ms }) => Event::Answer(Answer::Started(Restarted {
            pid,
            running: Duration::from_millis(u64::from(running_ms)),
        })),
        Ok(other) => Event::Failed(unexpected(other)),
        Err(e) => Event::Failed(e),
    }
}

/// The application started at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restarted {
    /// Its pid there.
    pub pid: u32,
    /// How long it had been running when the destination answered (its grace period).
    pub running: Duration,
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

/// A transfer waiting for its acknowledgement.
#[derive(Debug, PartialEq)]
struct Inflight {
    file: usize,
    rel: Vec<u8>,
    /// When the sender began reading the file.
    began: Instant,
    size: u64,
    as_delta: bool,
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
    /// How fast whole sends and deltas have moved files.
    pub rates: ResendRates,
    /// The application is stopped: a resend goes the way predicted to end sooner, not the way
    /// that sends fewer bytes.
    minimise_time: bool,
    /// When the last transfer was settled: a transfer's time in the pipeline starts no earlier.
    last_settled: Option<Instant>,
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
            rates: ResendRates::default(),
            minimise_time: false,
            last_settled: None,
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
        let source = |why| source_error(path, why);
        let Some(Source {
            handle,
            meta,
            stamp,
        }) = Source::open(path)?
        else {
            return Ok(None);
        };
        let began = Instant::now();
        let id = self.next_id;
        self.next_id += 1;
        let path_rel = RelPath::new(rel).map_err(|e| source(io::Error::other(e)))?;
        let base = self
            .versions
            .remove(rel)
            .filter(|v| self.delta && !v.whole_next)
            .filter(|_| !(self.minimise_time && self.rates.delta_is_slower()));
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
                began,
                size,
                as_delta: base.is_some(),
            },
        );
        self.drain()?;
        Ok(Some(Sent::of_read(size, bytes, hash, &meta, stamp)))
    }

    /// Streams `content` as chunks; returns its size, hash, block digests (if deltas are on)
    /// and the bytes sent.
    fn send_whole(&mut self, header: FileHeader<'_>, mut content: impl Read) -> Streamed {
        let delta = self.delta;
        let link = self.link.as_mut().ok_or(WireError::Closed)?;
        link.writer.queue(&Message::FileStart(header))?;
        // Block digests only if a delta may follow; else BLAKE3 alone, at its widest.
        enum Hashing {
            Whole(blake3::Hasher),
            Blocks(FileHasher),
        }
        let mut hasher = if delta {
            Hashing::Blocks(FileHasher::default())
        } else {
            Hashing::Whole(blake3::Hasher::new())
        };
        let mut size = 0u64;
        loop {
            let n = link
                .writer
                .queue_chunk_from(&mut content, CHUNK, &mut |data| match &mut hasher {
                    Hashing::Whole(whole) => {
                        whole.update(data);
                    }
                    Hashing::Blocks(blocks) => blocks.update(data),
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
        let (hash, blocks) = match hasher {
            Hashing::Whole(whole) => (*whole.finalize().as_bytes(), Vec::new()),
            Hashing::Blocks(blocks) => blocks.finish(),
        };
        Ok((size, hash, blocks, size))
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
        let mut hasher = FileHasher::default();
        let (mut size, mut bytes) = (0u64, 0u64);
        loop {
            let n = read_full(&mut content, &mut self.buf).map_err(Failure::Read)?;
            let data = &self.buf[..n];
            hasher.update(data);
            // The last read ends the file: its short block's digest comes with the hash.
            let end = (n < self.buf.len()).then(|| std::mem::take(&mut hasher).finish());
            let digests = end
                .as_ref()
                .map_or(hasher.digests(), |(_, digests)| digests);
            let first = (size / delta::BLOCK as u64) as usize;
            for (start, end) in delta::changed_runs(old, first, data, digests) {
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
            if let Some((hash, blocks)) = end {
                return Ok((size, hash, blocks, bytes));
            }
        }
    }

    /// From now on the application is stopped and the downtime runs: each resend goes whole or
    /// as a delta by which has moved files faster so far.
    pub fn minimise_time(&mut self) {
        self.minimise_time = true;
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
            self.handle_unasked(event)?;
        }
    }

    /// Settles an acknowledgement or a resend; returns an answer, which the caller may expect.
    fn handle(&mut self, event: Event) -> Result<Option<Answer>, WireError> {
        if let Event::Ack(_, at) = event {
            if let Some(done) = self.inflight.first_key_value().map(|(_, d)| d) {
                // Its time in the pipeline: from when it began or the previous one was done.
                let from = self
                    .last_settled
                    .map_or(done.began, |last| last.max(done.began));
                let seconds = at.saturating_duration_since(from).as_secs_f64();
                self.rates.record(done.as_delta, done.size, seconds);
            }
            self.last_settled = Some(at);
        }
        match settle(&mut self.inflight, event)? {
            Settled::Acked(id, done) => {
                if let Some(version) = self.versions.get_mut(&done.rel) {
                    version.acked |= version.id == id;
                }
                self.last_ack = Some(Instant::now());
                Ok(None)
            }
            Settled::Refused(id, done) => {
                // A later version, if any, was built on this one and is refused too.
                if self.versions.get(&done.rel).is_some_and(|v| v.id == id) {
                    self.versions.remove(&done.rel);
                }
                self.refused.push(done.file);
                self.refused_deltas += 1;
                Ok(None)
            }
            Settled::Answer(answer) => Ok(Some(answer)),
        }
    }

    /// Handles an event when no request waits for an answer.
    fn handle_unasked(&mut self, event: Event) -> Result<(), WireError> {
        match self.handle(event)? {
            Some(answer) => Err(WireError::Unexpected(answer.name())),
            None => Ok(()),
        }
    }

    /// The next answer (acknowledgements are handled on the way).
    fn next_answer(&mut self) -> Result<Answer, WireError> {
        loop {
            let event = self.link()?.events.recv().map_err(|_| WireError::Closed)?;
            if let Some(answer) = self.handle(event)? {
                return Ok(answer);
            }
        }
    }

    /// Waits until every transfer is acknowledged.
    pub fn wait_acks(&mut self) -> Result<(), WireError> {
        while !self.inflight.is_empty() {
            let event = self.link()?.events.recv().map_err(|_| WireError::Closed)?;
            self.handle_unasked(event)?;
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
            have.extend(self.next_answer()?.have(batch.len(), "answer to query")?);
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
        self.next_answer()?.have(nodes.len(), "answer to manifest")
    }

    /// Sends the stop-time tree for the final check; returns the receiver's verdict.
    pub fn verify(
        &mut self,
        roots: &[RelPath<'_>],
        nodes: &[Node<'_>],
    ) -> Result<Verdict, WireError> {
        self.send_manifest(roots, nodes, true)?;
        self.next_answer()?.verdict()
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
    ) -> Result<Restarted, WireError> {
        self.link()?.writer.send(&Message::Restart {
            cwd,
            identity,
            argv: argv.to_vec(),
        })?;
        self.next_answer()?.started()
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
        let event = event_of(reader.recv());
        let last = matches!(event, Event::Failed(_));
        if tx.send(event).is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use precopy_proto::{ErrorCode, FileHeader, Meta};
    use proptest::prelude::*;

    use super::*;

    fn restarted(pid: u32) -> Restarted {
        Restarted {
            pid,
            running: Duration::from_millis(1000),
        }
    }

    fn inflight(ids: &[u64]) -> BTreeMap<u64, Inflight> {
        ids.iter()
            .map(|&id| {
                let transfer = Inflight {
                    file: id as usize,
                    rel: format!("f{id}").into_bytes(),
                    began: Instant::now(),
                    size: 0,
                    as_delta: false,
                };
                (id, transfer)
            })
            .collect()
    }

    fn refused(result: Result<Settled, WireError>) -> &'static str {
        match result {
            Err(WireError::Unexpected(what)) => what,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn acks_settle_the_oldest_transfer_only() {
        let mut pending = inflight(&[3, 4, 5]);
        assert_eq!(
            refused(settle(&mut pending, Event::Ack(4, Instant::now()))),
            "file-ack out of order"
        );
        assert_eq!(
            refused(settle(&mut pending, Event::Ack(9, Instant::now()))),
            "file-ack of no transfer"
        );
        assert!(matches!(
            settle(&mut pending, Event::Ack(3, Instant::now())).unwrap(),
            Settled::Acked(3, Inflight { file: 3, rel, .. }) if rel == b"f3"
        ));
        // A delta's resend comes at its end, before the batch ahead of it is acknowledged.
        assert!(matches!(
            settle(&mut pending, Event::Resend(5)).unwrap(),
            Settled::Refused(5, Inflight { file: 5, .. })
        ));
        assert_eq!(
            refused(settle(&mut pending, Event::Resend(5))),
            "resend of no transfer"
        );
        assert!(matches!(
            settle(&mut pending, Event::Ack(4, Instant::now())).unwrap(),
            Settled::Acked(4, _)
        ));
        assert!(pending.is_empty());
        assert_eq!(
            refused(settle(&mut pending, Event::Ack(4, Instant::now()))),
            "file-ack of no transfer"
        );
    }

    #[test]
    fn answers_must_match_their_request() {
        assert_eq!(
            Answer::Have(vec![true, false])
                .have(2, "answer to query")
                .unwrap(),
            [true, false]
        );
        for (answer, count) in [
            (Answer::Have(vec![true]), 2),
            (Answer::Started(restarted(7)), 1),
            (
                Answer::Verdict(Verdict {
                    files: 1,
                    differing: 0,
                    list: Vec::new(),
                }),
                1,
            ),
        ] {
            assert!(matches!(
                answer.have(count, "answer to query"),
                Err(WireError::Unexpected("answer to query"))
            ));
        }
        assert!(matches!(
            Answer::Have(Vec::new()).verdict(),
            Err(WireError::Unexpected("answer to manifest"))
        ));
        assert!(matches!(
            Answer::Have(Vec::new()).started(),
            Err(WireError::Unexpected("answer to restart"))
        ));
        assert_eq!(
            Answer::Started(restarted(42)).started().unwrap(),
            restarted(42)
        );
    }

    #[test]
    fn frames_a_receiver_never_sends_end_the_link() {
        let header = FileHeader {
            id: 1,
            path: RelPath::new(b"a").unwrap(),
            meta: Meta::default(),
            size: 0,
        };
        assert!(matches!(
            event_of(Ok(Message::FileStart(header))),
            Event::Failed(WireError::Unexpected("file-start"))
        ));
        let error = Message::Error {
            code: ErrorCode::Storage,
            message: "disk full",
        };
        assert!(matches!(
            event_of(Ok(error)),
            Event::Failed(WireError::Remote { code: ErrorCode::Storage, message }) if message == "disk full"
        ));
        assert!(matches!(
            event_of(Ok(Message::Have(vec![true]))),
            Event::Answer(Answer::Have(flags)) if flags == [true]
        ));
    }

    proptest! {
        /// Transfers end in order; some deltas are refused at their end, the others wait in
        /// batches committed at any point. The receiver's order of acknowledgements and resends
        /// settles every transfer exactly once, the way it ended.
        #[test]
        fn acks_and_resends_in_the_receivers_order_settle_everything(
            files in prop::collection::vec((any::<bool>(), any::<bool>()), 1..40),
        ) {
            let ids: Vec<u64> = (0..files.len() as u64).collect();
            let mut pending = inflight(&ids);
            let (mut events, mut batch) = (Vec::new(), Vec::new());
            for (&id, &(refuse, commit)) in ids.iter().zip(&files) {
                if refuse {
                    events.push(Event::Resend(id));
                } else {
                    batch.push(Event::Ack(id, Instant::now()));
                }
                if commit {
                    events.append(&mut batch);
                }
            }
            events.append(&mut batch);
            let mut settled = Vec::new();
            for event in events {
                match settle(&mut pending, event).unwrap() {
                    Settled::Acked(id, _) => settled.push((id, false)),
                    Settled::Refused(id, _) => settled.push((id, true)),
                    Settled::Answer(a) => prop_assert!(false, "an answer: {a:?}"),
                }
            }
            prop_assert!(pending.is_empty());
            settled.sort();
            let expected: Vec<(u64, bool)> =
                ids.iter().zip(&files).map(|(&id, &(refuse, _))| (id, refuse)).collect();
            prop_assert_eq!(settled, expected);
        }
    }
}
