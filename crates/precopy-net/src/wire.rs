//! A framed connection over TCP: in plaintext for the two handshake frames, then inside
//! encrypted records (`precopy_proto::record`), optionally compressed; the token bucket; both
//! halves of the handshake.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::str::FromStr;
use std::time::{Duration, Instant};

use precopy_proto::frame::limits::MAX_PAYLOAD;
use precopy_proto::handshake::{respond, Initiator};
use precopy_proto::record::{record_len, LEN_BYTES, MAX_RECORD, OPEN_SPACE};
use precopy_proto::{
    parse, ErrorCode, Key, Message, Opener, ParseError, RecordError, Sealer, HEADER_LEN, VERSION,
};

/// What can go wrong on a connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed or the peer went away.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
    /// The peer sent bytes that are not a valid frame.
    #[error("bad frame from the peer: {0}")]
    Parse(ParseError),
    /// The peer sent a valid frame at the wrong time.
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
    /// The peer reported an error and closed.
    #[error("peer error ({code:?}): {message}")]
    Remote {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The handshake failed: the peer does not know the token.
    #[error("authentication failed: the peer does not know the token")]
    Auth,
    /// A record could not be opened.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The peer speaks another version of the protocol.
    #[error("the peer speaks protocol version {0}, this side {VERSION}: upgrade the older side")]
    Version(u8),
    /// A plaintext frame where the encrypted handshake belongs.
    #[error(
        "a plaintext {0} frame where the encrypted handshake's hello belongs: the peer does not \
         encrypt"
    )]
    Plaintext(&'static str),
}

impl WireError {
    /// Worth reconnecting for: the link failed (or altered data), not the peer's judgement.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            WireError::Io(_)
                | WireError::Closed
                | WireError::Record(RecordError::Forged | RecordError::Short(_))
                | WireError::Remote {
                    code: ErrorCode::Record,
                    ..
                }
        )
    }

    /// The code to tell the peer before closing, for an error of its making.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            WireError::Parse(_)
            | WireError::Unexpected(_)
            | WireError::Version(_)
            | WireError::Plaintext(_) => Some(ErrorCode::Protocol),
            WireError::Record(RecordError::Forged | RecordError::Short(_)) => {
                Some(ErrorCode::Record)
            }
            WireError::Record(_) => Some(ErrorCode::Protocol),
            WireError::Io(_) | WireError::Closed | WireError::Remote { .. } | WireError::Auth => {
                None
            }
        }
    }
}

impl From<ParseError> for WireError {
    fn from(e: ParseError) -> WireError {
        match e {
            ParseError::Version(v) => WireError::Version(v),
            other => WireError::Parse(other),
        }
    }
}

/// Reads frames from a stream: in plaintext until [`FrameReader::encrypt`], then out of records.
/// Memory stays bounded: two frames' worth of opened data, one frame's worth of raw bytes.
pub struct FrameReader<R> {
    inner: R,
    opener: Option<Opener>,
    /// Bytes as read from the stream.
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
    /// Frames opened out of records.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// Where the next frame lies.
enum Found {
    Raw(usize, usize),
    Opened(usize, usize),
}

impl<R: Read> FrameReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> FrameReader<R> {
        FrameReader {
            inner,
            opener: None,
            raw: vec![0; HEADER_LEN + MAX_PAYLOAD],
            raw_start: 0,
            raw_end: 0,
            buf: vec![0; 2 * (HEADER_LEN + MAX_PAYLOAD)],
            start: 0,
            end: 0,
        }
    }

    /// From now on, frames come in records opened by `opener`.
    pub fn encrypt(&mut self, opener: Opener) {
        self.opener = Some(opener);
    }

    /// The next frame. The decoder refuses an oversized header at once.
    pub fn recv(&mut self) -> Result<Message<'_>, WireError> {
        let found = loop {
            if let Some(found) = self.next_frame()? {
                break found;
            }
            self.fill()?;
        };
        let frame = match found {
            Found::Raw(at, used) => &self.raw[at..at + used],
            Found::Opened(at, used) => &self.buf[at..at + used],
        };
        match parse(frame) {
            Ok(Some((message, _))) => Ok(message),
            _ => unreachable!("a frame parsed once parses again"),
        }
    }

    /// A whole frame from what is buffered, opening records as needed; `None`: read more.
    fn next_frame(&mut self) -> Result<Option<Found>, WireError> {
        let Some(opener) = self.opener.as_mut() else {
            let Some((_, used)) = parse(&self.raw[self.raw_start..self.raw_end])? else {
                return Ok(None);
            };
            self.raw_start += used;
            return Ok(Some(Found::Raw(self.raw_start - used, used)));
        };
        loop {
            if let Some((_, used)) = parse(&self.buf[self.start..self.end])? {
                self.start += used;
                return Ok(Some(Found::Opened(self.start - used, used)));
            }
            // Less than a frame is buffered: room for a record's data after it.
            if self.buf.len() - self.end < OPEN_SPACE {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let raw = &self.raw[self.raw_start..self.raw_end];
            match opener.open(raw, &mut self.buf[self.end..])? {
                Some((used, n)) => {
                    self.raw_start += used;
                    self.end += n;
                }
                None => return Ok(None),
            }
        }
    }

    fn fill(&mut self) -> Result<(), WireError> {
        if self.raw_start > 0 && self.raw.len() - self.raw_end < LEN_BYTES + MAX_RECORD {
            self.raw.copy_within(self.raw_start..self.raw_end, 0);
            self.raw_end -= self.raw_start;
            self.raw_start = 0;
        }
        let n = self.inner.read(&mut self.raw[self.raw_end..])?;
        if n == 0 {
            return Err(WireError::Closed);
        }
        self.raw_end += n;
        Ok(())
    }
}

impl FrameReader<TcpStream> {
    /// Whether the peer is still sending: a whole frame or record is buffered, or bytes can be
    /// read without waiting (they are read into the buffer). The receiver commits its batch of
    /// files when this is false, that is before it would block.
    pub fn ready(&mut self) -> Result<bool, WireError> {
        let raw = &self.raw[self.raw_start..self.raw_end];
        let whole = match self.opener {
            Some(_) => {
                parse(&self.buf[self.start..self.end])?.is_some() || record_len(raw)?.is_some()
            }
            None => parse(raw)?.is_some(),
        };
        if whole {
            return Ok(true);
        }
        self.inner.set_nonblocking(true)?;
        let filled = self.fill();
        self.inner.set_nonblocking(false)?;
        match filled {
            Ok(()) => Ok(true),
            Err(WireError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A token bucket: `rate` bytes per second, bursts of at most `burst` bytes.
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Throttle {
    /// A bucket for `bits_per_second`; bursts of 50 ms worth, at least 16 KiB.
    pub fn new(bits_per_second: f64) -> Throttle {
        let rate = bits_per_second / 8.0;
        let burst = (rate * 0.05).max(16.0 * 1024.0);
        Throttle {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Waits until `n` bytes may go.
    pub fn take(&mut self, n: usize) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - n as f64;
        if self.tokens < 0.0 {
            std::thread::sleep(Duration::from_secs_f64(-self.tokens / self.rate));
        }
    }

    /// Piece size that keeps the bucket smooth.
    pub fn piece(&self) -> usize {
        (self.burst as usize).max(1)
    }
}

/// How `send` compresses records: `off`, `zstd[:LEVEL]` (every record where that shrinks it), or
/// `auto[:LEVEL]` (only while that makes the transfer faster: the link, not the CPU, is the
/// bottleneck). Level 3 (zstd's default) unless given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compress {
    /// Never.
    #[default]
    Off,
    /// Every record, at this level.
    Zstd(i32),
    /// Measured as the migration runs.
    Auto(i32),
}

impl FromStr for Compress {
    type Err = String;

    fn from_str(text: &str) -> Result<Compress, String> {
        let (mode, level) = match text.split_once(':') {
            Some((mode, level)) => {
                let level = level
                    .parse()
                    .ok()
                    .filter(|l| (1..=precopy_proto::record::MAX_LEVEL).contains(l))
                    .ok_or_else(|| format!("zstd level `{level}`: 1 to 19"))?;
                (mode, Some(level))
            }
            None => (text, None),
        };
        match (mode, level) {
            ("off", None) => Ok(Compress::Off),
            ("zstd", level) => Ok(Compress::Zstd(level.unwrap_or(3))),
            ("auto", level) => Ok(Compress::Auto(level.unwrap_or(3))),
            _ => Err(format!("`{text}`: off, zstd[:LEVEL] or auto[:LEVEL]")),
        }
    }
}

/// Plain bytes over which `auto` measures one mode.
const WINDOW: u64 = 4 << 20;
/// Windows between two tries of the other mode, at first and at most (doubled while the tries
/// confirm the choice).
const PROBE_FIRST: u32 = 2;
const PROBE_MAX: u32 = 64;

/// `--compress auto`: what a plain byte costs (sealing, then writing: a full socket buffer and the
/// token bucket included), compressed and not, each measured over windows of [`WINDOW`] bytes.
/// The cheaper mode is kept; the other is tried again now and then, less often while it loses.
/// On a link slower than compression, compressible data is cheaper compressed; on a fast link
/// (or incompressible data) the compressor's time is the cost.
#[derive(Debug)]
struct Auto {
    level: i32,
    on: bool,
    /// Seconds per plain byte: off, on.
    cost: [Option<f64>; 2],
    bytes: u64,
    seconds: f64,
    /// Windows until the other mode is tried; whether the current window is such a try.
    left: u32,
    interval: u32,
    trying: bool,
}

impl Auto {
    fn new(level: i32) -> Auto {
        Auto {
            level,
            on: false,
            cost: [None, None],
            bytes: 0,
            seconds: 0.0,
            left: 1,
            interval: PROBE_FIRST,
            trying: false,
        }
    }

    fn level(&self) -> Option<i32> {
        self.on.then_some(self.level)
    }

    fn measured(&mut self, plain: usize, seconds: f64) {
        self.bytes += plain as u64;
        self.seconds += seconds;
        if self.bytes < WINDOW {
            return;
        }
        self.cost[usize::from(self.on)] = Some(self.seconds / self.bytes as f64);
        (self.bytes, self.seconds) = (0, 0.0);
        if self.trying {
            self.trying = false;
            let tried = self.on;
            self.on = match self.cost {
                [Some(off), Some(on)] => on < off,
                _ => tried,
            };
            self.interval = if self.on == tried {
                PROBE_FIRST
            } else {
                (self.interval * 2).min(PROBE_MAX)
            };
            self.left = self.interval;
            return;
        }
        self.left -= 1;
        if self.left == 0 {
            self.trying = true;
            self.on = !self.on;
        }
    }
}

/// Writes frames, coalescing small ones, through an optional token bucket; after
/// [`FrameWriter::encrypt`], inside records.
pub struct FrameWriter {
    stream: TcpStream,
    out: Vec<u8>,
    sealer: Option<Sealer>,
    /// Records sealed from `out`.
    sealed: Vec<u8>,
    compress: Compress,
    auto: Option<Auto>,
    throttle: Option<Throttle>,
    /// Bytes written to the socket so far.
    pub written: u64,
}

impl FrameWriter {
    /// Wraps `stream`.
    pub fn new(stream: TcpStream, throttle: Option<Throttle>) -> FrameWriter {
        FrameWriter {
            stream,
            out: Vec::with_capacity(HEADER_LEN + MAX_PAYLOAD),
            sealer: None,
            sealed: Vec::new(),
            compress: Compress::Off,
            auto: None,
            throttle,
            written: 0,
        }
    }

    /// From now on, frames go out in records sealed by `sealer`, compressed as `compress` says.
    pub fn encrypt(&mut self, sealer: Sealer, compress: Compress) {
        self.sealer = Some(sealer);
        self.compress = compress;
        self.auto = match compress {
            Compress::Auto(level) => Some(Auto::new(level)),
            _ => None,
        };
    }

    /// Queues one frame.
    pub fn queue(&mut self, message: &Message<'_>) -> Result<(), WireError> {
        message
            .emit(&mut self.out)
            .map_err(|e| WireError::Io(io::Error::other(e)))
    }

    /// Queues a chunk of up to `max` bytes read from `source`, shown to `observe`; returns the
    /// bytes read (0 at EOF). Fewer than `max` only at the end of `source`.
    pub fn queue_chunk_from(
        &mut self,
        source: &mut impl Read,
        max: usize,
        observe: &mut impl FnMut(&[u8]),
    ) -> Result<usize, io::Error> {
        let at = self.out.len();
        self.out.resize(at + HEADER_LEN + max, 0);
        let body = at + HEADER_LEN;
        let mut n = 0;
        while n < max {
            match source.read(&mut self.out[body + n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.out.truncate(at);
                    return Err(e);
                }
            }
        }
        self.out.truncate(body + n);
        if n == 0 {
            self.out.truncate(at);
            return Ok(0);
        }
        self.out[at..body].copy_from_slice(&precopy_proto::chunk_header(n));
        observe(&self.out[body..]);
        Ok(n)
    }

    /// Bytes queued but not written.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Writes everything queued.
    pub fn flush(&mut self) -> Result<(), WireError> {
        let began = Instant::now();
        let bytes = match self.sealer.as_mut() {
            Some(sealer) => {
                let level = match (self.compress, &self.auto) {
                    (Compress::Zstd(level), _) => Some(level),
                    (Compress::Auto(_), Some(auto)) => auto.level(),
                    _ => None,
                };
                self.sealed.clear();
                sealer.seal(&self.out, level, &mut self.sealed)?;
                &self.sealed
            }
            None => &self.out,
        };
        let piece = self.throttle.as_ref().map_or(usize::MAX, Throttle::piece);
        for part in bytes.chunks(piece) {
            if let Some(t) = self.throttle.as_mut() {
                t.take(part.len());
            }
            self.stream.write_all(part)?;
            self.written += part.len() as u64;
        }
        if let Some(auto) = self.auto.as_mut() {
            auto.measured(self.out.len(), began.elapsed().as_secs_f64());
        }
        self.out.clear();
        Ok(())
    }

    /// Queues and writes one frame.
    pub fn send(&mut self, message: &Message<'_>) -> Result<(), WireError> {
        self.queue(message)?;
        self.flush()
    }

    /// Sends an error frame, best effort: the connection is being closed anyway. A message too
    /// long for the frame keeps its start and its end (where an application's last words are).
    pub fn send_error(&mut self, code: ErrorCode, message: &str) {
        let text = shortened(message, precopy_proto::limits::MAX_MESSAGE);
        self.out.clear();
        let _ = self.send(&Message::Error {
            code,
            message: &text,
        });
    }
}

/// `text` in at most `max` bytes: its first fifth, " … ", and as much of its end as fits.
fn shortened(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    const GAP: &str = " … ";
    let floor = |mut at: usize| {
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    let ceil = |mut at: usize| {
        while !text.is_char_boundary(at) {
            at += 1;
        }
        at
    };
    let head = floor(max / 5);
    let tail = ceil(text.len() - (max - head - GAP.len()));
    format!("{}{GAP}{}", &text[..head], &text[tail..]).into()
}

/// Sender side: the Noise handshake with the token's key (see `precopy_proto::handshake`); a
/// receiver without the token is dropped before any file leaves. Afterwards both halves speak in
/// records, `writer` compressing as `compress` says.
pub fn client_handshake(
    reader: &mut FrameReader<TcpStream>,
    writer: &mut FrameWriter,
    key: &Key,
    compress: Compress,
) -> Result<(), WireError> {
    let (initiator, hello) = Initiator::start(key);
    writer.send(&Message::Hello { noise: hello })?;
    let welcome = match reader.recv()? {
        Message::Welcome { noise } => noise,
        other => return Err(unexpected(other)),
    };
    let (sealer, opener) = initiator.finish(&welcome).map_err(|_| WireError::Auth)?;
    reader.encrypt(opener);
    writer.encrypt(sealer, compress);
    Ok(())
}

/// Receiver side: checks the sender's hello and answers it. A sender without the token gets an
/// error frame and nothing else; one of another version or without encryption, an error frame
/// naming that.
pub fn server_handshake(
    reader: &mut FrameReader<TcpStream>,
    writer: &mut FrameWriter,
    key: &Key,
) -> Result<(), WireError> {
    let hello = match reader.recv() {
        Ok(Message::Hello { noise }) => Ok(noise),
        Ok(error @ Message::Error { .. }) => Err(unexpected(error)),
        Ok(other) => Err(WireError::Plaintext(other.name())),
        Err(e) => Err(e),
    };
    let hello = match hello {
        Ok(hello) => hello,
        Err(e) => {
            if let Some(code) = e.code() {
                writer.send_error(code, &e.to_string());
            }
            return Err(e);
        }
    };
    match respond(key, &hello) {
        Ok((welcome, sealer, opener)) => {
            writer.send(&Message::Welcome { noise: welcome })?;
            reader.encrypt(opener);
            writer.encrypt(sealer, Compress::Off);
            Ok(())
        }
        Err(_) => {
            writer.send_error(ErrorCode::Auth, "authentication failed");
            Err(WireError::Auth)
        }
    }
}

/// The error for a frame that came at the wrong time (an error frame is passed on as such).
pub fn unexpected(message: Message<'_>) -> WireError {
    match message {
        Message::Error { code, message } => WireError::Remote {
            code,
            message: message.to_string(),
        },
        other => WireError::Unexpected(other.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reassembles_frames_split_anywhere() {
        let mut wire = Vec::new();
        Message::FileAck { id: 1 }.emit(&mut wire).unwrap();
        Message::Chunk(&[7; 3000]).emit(&mut wire).unwrap();
        Message::Bye.emit(&mut wire).unwrap();
        // A reader that returns 1-byte pieces.
        struct Trickle(Vec<u8>, usize);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.1 == self.0.len() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[self.1];
                self.1 += 1;
                Ok(1)
            }
        }
        let mut reader = FrameReader::new(Trickle(wire, 0));
        assert_eq!(reader.recv().unwrap(), Message::FileAck { id: 1 });
        assert!(matches!(reader.recv().unwrap(), Message::Chunk(d) if d.len() == 3000));
        assert_eq!(reader.recv().unwrap(), Message::Bye);
        assert!(matches!(reader.recv(), Err(WireError::Closed)));
    }

    #[test]
    fn reader_opens_records_split_anywhere() {
        let key = Key::from_token(b"0123456789abcdef").unwrap();
        let (initiator, hello) = Initiator::start(&key);
        let (welcome, _, opener) = respond(&key, &hello).unwrap();
        let (mut sealer, _) = initiator.finish(&welcome).unwrap();
        let mut frames = Vec::new();
        Message::FileAck { id: 1 }.emit(&mut frames).unwrap();
        let big: Vec<u8> = (0..MAX_PAYLOAD).map(|i| (i % 7) as u8).collect();
        Message::Chunk(&big).emit(&mut frames).unwrap();
        Message::Bye.emit(&mut frames).unwrap();
        let mut wire = Vec::new();
        // Compressed, in writes that end mid-frame.
        for part in frames.chunks(300_000) {
            sealer.seal(part, Some(1), &mut wire).unwrap();
        }
        assert!(wire.len() < frames.len() / 10);
        struct Pieces(Vec<u8>, usize);
        impl Read for Pieces {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = (self.0.len() - self.1).min(buf.len()).min(777);
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let mut reader = FrameReader::new(Pieces(wire, 0));
        reader.encrypt(opener);
        assert_eq!(reader.recv().unwrap(), Message::FileAck { id: 1 });
        assert!(matches!(reader.recv().unwrap(), Message::Chunk(d) if d == &big[..]));
        assert_eq!(reader.recv().unwrap(), Message::Bye);
        assert!(matches!(reader.recv(), Err(WireError::Closed)));
    }

    #[test]
    fn compress_options() {
        assert_eq!("off".parse(), Ok(Compress::Off));
        assert_eq!("zstd".parse(), Ok(Compress::Zstd(3)));
        assert_eq!("zstd:19".parse(), Ok(Compress::Zstd(19)));
        assert_eq!("auto:1".parse(), Ok(Compress::Auto(1)));
        for bad in ["zstd:0", "zstd:20", "auto:x", "gzip", "off:3"] {
            assert!(bad.parse::<Compress>().is_err(), "{bad}");
        }
    }

    /// Share of `windows` compressed by `auto` when a plain byte costs `off` seconds sent as it
    /// is and `on` seconds compressed.
    fn auto_share(off: f64, on: f64, windows: usize) -> f64 {
        let mut auto = Auto::new(3);
        let mut compressed = 0;
        for _ in 0..windows {
            let cost = if auto.on { on } else { off };
            compressed += usize::from(auto.on);
            auto.measured(WINDOW as usize, cost * WINDOW as f64);
        }
        compressed as f64 / windows as f64
    }

    #[test]
    fn auto_compresses_while_the_link_is_the_bottleneck_only() {
        // A 20 Mbit/s link, data compressed to a third by a compressor at 300 MB/s.
        let link = 8.0 / 20e6;
        let share = auto_share(link, 1.0 / 300e6 + link / 3.0, 500);
        assert!(share > 0.9, "{share}");
        // Loopback at 2 GB/s: the compressor's time is the cost.
        let share = auto_share(1.0 / 2e9, 1.0 / 300e6 + 1.0 / 6e9, 500);
        assert!(share < 0.1, "{share}");
    }

    #[test]
    fn a_long_message_keeps_its_start_and_its_end() {
        let text = format!("start {} the last line", "é".repeat(2000));
        let short = shortened(&text, 1024);
        assert!(short.len() <= 1024, "{}", short.len());
        assert!(short.starts_with("start "));
        assert!(short.ends_with("the last line"));
        assert_eq!(shortened("short", 1024), "short");
    }

    #[test]
    fn throttle_holds_the_rate() {
        let mut t = Throttle::new(8.0 * 1_000_000.0);
        let start = Instant::now();
        for _ in 0..10 {
            t.take(50_000);
        }
        // 500 kB at 1 MB/s, less the initial burst of 50 kB: about 0.45 s.
        let took = start.elapsed().as_secs_f64();
        assert!((0.4..0.7).contains(&took), "{took}");
    }
}
