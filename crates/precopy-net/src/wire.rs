//! A framed connection over TCP, the token bucket, and both halves of the handshake.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use precopy_proto::frame::limits::MAX_PAYLOAD;
use precopy_proto::handshake::{client_proof, server_proof};
use precopy_proto::{parse, ErrorCode, Key, Message, ParseError, HEADER_LEN};

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
    Parse(#[from] ParseError),
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
}

impl WireError {
    /// Worth reconnecting for: the link failed, not the peer's judgement.
    pub fn is_transient(&self) -> bool {
        matches!(self, WireError::Io(_) | WireError::Closed)
    }
}

/// Reads frames from a stream, buffering partial ones (at most one frame's worth).
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: Read> FrameReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> FrameReader<R> {
        FrameReader {
            inner,
            buf: vec![0; 2 * (HEADER_LEN + MAX_PAYLOAD)],
            start: 0,
            end: 0,
        }
    }

    /// The next frame. Memory stays bounded: the decoder refuses an oversized header at once.
    pub fn recv(&mut self) -> Result<Message<'_>, WireError> {
        let used = loop {
            if let Some((_, used)) = parse(&self.buf[self.start..self.end])? {
                break used;
            }
            self.fill()?;
        };
        let at = self.start;
        self.start += used;
        match parse(&self.buf[at..at + used]) {
            Ok(Some((message, _))) => Ok(message),
            _ => unreachable!("a frame parsed once parses again"),
        }
    }

    fn fill(&mut self) -> Result<(), WireError> {
        if self.start > 0 && self.buf.len() - self.end < HEADER_LEN + MAX_PAYLOAD {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.inner.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(WireError::Closed);
        }
        self.end += n;
        Ok(())
    }
}

impl FrameReader<TcpStream> {
    /// Whether the peer is still sending: a whole frame is buffered, or bytes can be read
    /// without waiting (they are read into the buffer). The receiver commits its batch of files
    /// when this is false, that is before it would block.
    pub fn ready(&mut self) -> Result<bool, WireError> {
        if parse(&self.buf[self.start..self.end])?.is_some() {
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

/// Writes frames, coalescing small ones, through an optional token bucket.
pub struct FrameWriter {
    stream: TcpStream,
    out: Vec<u8>,
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
            throttle,
            written: 0,
        }
    }

    /// Queues one frame.
    pub fn queue(&mut self, message: &Message<'_>) -> Result<(), WireError> {
        message
            .emit(&mut self.out)
            .map_err(|e| WireError::Io(io::Error::other(e)))
    }

    /// Queues a chunk of up to `max` bytes read from `source`; returns the bytes read (0 at EOF).
    pub fn queue_chunk_from(
        &mut self,
        source: &mut impl Read,
        max: usize,
        hasher: &mut blake3::Hasher,
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
        hasher.update(&self.out[body..]);
        Ok(n)
    }

    /// Bytes queued but not written.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Writes everything queued.
    pub fn flush(&mut self) -> Result<(), WireError> {
        let piece = self.throttle.as_ref().map_or(usize::MAX, Throttle::piece);
        for part in self.out.chunks(piece) {
            if let Some(t) = self.throttle.as_mut() {
                t.take(part.len());
            }
            self.stream.write_all(part)?;
            self.written += part.len() as u64;
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

/// Fresh random bytes for a nonce.
pub fn nonce() -> io::Result<[u8; 32]> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(n)
}

/// Sender side: prove we know the token and check that the receiver does too.
pub fn client_handshake(
    reader: &mut FrameReader<TcpStream>,
    writer: &mut FrameWriter,
    key: &Key,
) -> Result<(), WireError> {
    let ours = nonce()?;
    writer.send(&Message::Hello { nonce: ours })?;
    let (theirs, proof) = match reader.recv()? {
        Message::Challenge { nonce, proof } => (nonce, proof),
        other => return Err(unexpected(other)),
    };
    key.verify_server(&ours, &theirs, &proof)
        .map_err(|_| WireError::Auth)?;
    writer.send(&Message::Auth {
        proof: client_proof(key, &ours, &theirs),
    })?;
    match reader.recv()? {
        Message::Ready => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// Receiver side: answer the sender's challenge, then check its proof. On failure the sender
/// gets an error frame and nothing else.
pub fn server_handshake(
    reader: &mut FrameReader<TcpStream>,
    writer: &mut FrameWriter,
    key: &Key,
) -> Result<(), WireError> {
    let theirs = match reader.recv()? {
        Message::Hello { nonce } => nonce,
        other => return Err(unexpected(other)),
    };
    let ours = nonce()?;
    writer.send(&Message::Challenge {
        nonce: ours,
        proof: server_proof(key, &theirs, &ours),
    })?;
    let proof = match reader.recv()? {
        Message::Auth { proof } => proof,
        other => return Err(unexpected(other)),
    };
    if key.verify_client(&theirs, &ours, &proof).is_err() {
        writer.send_error(ErrorCode::Auth, "authentication failed");
        return Err(WireError::Auth);
    }
    writer.send(&Message::Ready)
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
