//! Records: every byte after the handshake, encrypted and authenticated.
//!
//! ```text
//! 0               2                                         2 + length
//! | length u16 BE | AES-256-GCM(key, nonce, data ‖ kind u8) ‖ tag[16] |
//! ```
//!
//! A record is one Noise transport message (at most 65,535 bytes, so the length fits a u16). The
//! frames of [`crate::frame`] are cut into records wherever a write ends: a 1 MiB chunk frame spans
//! 17 records, a dozen acknowledgements share one. The nonce is the record's number in its
//! direction, counted by each side and never sent: a record dropped, repeated, reordered or taken
//! from another session (other keys) fails its tag, and so does any altered byte, its length
//! included (the wrong bytes are then taken as the record). A failed record ends the session:
//! nothing of it is returned. The kind byte (last, as in TLS 1.3) says whether the data is
//! zstd-compressed: a sender compresses a record only where that makes it shorter, and the data of
//! a record never exceeds [`MAX_DATA`] bytes, compressed or not, so decompression is bounded too.
//!
//! ```
//! use precopy_proto::handshake::{respond, Initiator, Key};
//! use precopy_proto::record::{RecordError, OPEN_SPACE};
//!
//! let key = Key::from_token(b"correct horse battery").unwrap();
//! let (initiator, hello) = Initiator::start(&key);
//! let (welcome, _, mut opener) = respond(&key, &hello).unwrap();
//! let (mut sealer, _) = initiator.finish(&welcome).unwrap();
//! let text = b"the same line, again and again\n".repeat(100);
//! let mut wire = Vec::new();
//! sealer.seal(&text, Some(3), &mut wire).unwrap();
//! assert!(wire.len() < text.len() / 4);
//! let mut data = vec![0; OPEN_SPACE];
//! // Half a record is not a record yet.
//! assert_eq!(opener.open(&wire[..wire.len() - 1], &mut data), Ok(None));
//! let (used, n) = opener.open(&wire, &mut data).unwrap().unwrap();
//! assert_eq!((used, &data[..n]), (wire.len(), &text[..]));
//! // The same record again: its nonce has passed.
//! assert_eq!(opener.open(&wire, &mut data), Err(RecordError::Forged));
//! ```

use std::sync::Arc;

use thiserror::Error;

use crate::frame::MAGIC;

/// Largest record after its length: a Noise transport message.
pub const MAX_RECORD: usize = 65535;
/// Bytes of the length before each record.
pub const LEN_BYTES: usize = 2;
/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Most bytes of frames one record carries (before compression).
pub const MAX_DATA: usize = MAX_RECORD - TAG_LEN - 1;
/// Room [`Opener::open`] needs in its output.
pub const OPEN_SPACE: usize = MAX_RECORD;
/// Highest zstd level used (higher ones need zstd's `--ultra` memory).
pub const MAX_LEVEL: i32 = 19;

const PLAIN: u8 = 0;
const ZSTD: u8 = 1;

/// A record that cannot be opened. The connection must be closed after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The tag does not match: altered, dropped, repeated or reordered on the path, or from
    /// another session.
    #[error(
        "a record failed authentication (altered, dropped, repeated or reordered on the path, \
         or from another session)"
    )]
    Forged,
    /// A plaintext frame where a record belongs.
    #[error("a plaintext frame where an encrypted record belongs: the peer does not encrypt")]
    Plaintext,
    /// A length too short for a tag and a kind byte.
    #[error("a record of {0} bytes, shorter than its tag")]
    Short(usize),
    /// An authenticated record of a kind this side does not know.
    #[error("a record of unknown kind {0}")]
    Kind(u8),
    /// An authenticated compressed record that does not decompress within [`MAX_DATA`] bytes.
    #[error("a compressed record does not decompress within {MAX_DATA} bytes")]
    Decompress,
    /// 2⁶⁴ − 1 records in one direction: the nonces are used up.
    #[error("the session's nonces are used up")]
    Exhausted,
}

/// Bytes of the record at the start of `wire` with its length, once all of them are there.
/// Lets a relay (or a test's proxy) find record boundaries without the keys.
pub fn record_len(wire: &[u8]) -> Result<Option<usize>, RecordError> {
    let Some(&[hi, lo]) = wire.get(..LEN_BYTES) else {
        return Ok(None);
    };
    let len = u16::from_be_bytes([hi, lo]) as usize;
    if len < TAG_LEN + 1 {
        return Err(RecordError::Short(len));
    }
    Ok((wire.len() >= LEN_BYTES + len).then_some(LEN_BYTES + len))
}

/// The sending half of a channel: seals data into records, numbering them.
pub struct Sealer {
    transport: Arc<snow::StatelessTransportState>,
    nonce: u64,
    zstd: Option<(i32, zstd::bulk::Compressor<'static>)>,
    plain: Vec<u8>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(record {})", self.nonce)
    }
}

impl Sealer {
    pub(crate) fn new(transport: Arc<snow::StatelessTransportState>) -> Sealer {
        Sealer {
            transport,
            nonce: 0,
            zstd: None,
            plain: Vec::with_capacity(MAX_RECORD),
        }
    }

    /// Appends to `out` the records that carry `data`; with `level`, each record's data is
    /// zstd-compressed at that level (clamped to 1..=[`MAX_LEVEL`]) where that makes it shorter.
    pub fn seal(
        &mut self,
        data: &[u8],
        level: Option<i32>,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        for piece in data.chunks(MAX_DATA) {
            self.plain.clear();
            let compressed = match level {
                Some(level) => self.compress(piece, level.clamp(1, MAX_LEVEL)),
                None => false,
            };
            if compressed {
                self.plain.push(ZSTD);
            } else {
                self.plain.clear();
                self.plain.extend_from_slice(piece);
                self.plain.push(PLAIN);
            }
            if self.nonce == u64::MAX {
                return Err(RecordError::Exhausted);
            }
            let at = out.len();
            out.resize(at + LEN_BYTES + self.plain.len() + TAG_LEN, 0);
            let n = self
                .transport
                .write_message(self.nonce, &self.plain, &mut out[at + LEN_BYTES..])
                .map_err(|_| RecordError::Exhausted)?;
            self.nonce += 1;
            out[at..at + LEN_BYTES].copy_from_slice(&(n as u16).to_be_bytes());
            out.truncate(at + LEN_BYTES + n);
        }
        Ok(())
    }

    /// Compresses `piece` into `self.plain` if that makes it shorter.
    fn compress(&mut self, piece: &[u8], level: i32) -> bool {
        if !matches!(&self.zstd, Some((l, _)) if *l == level) {
            self.zstd = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        let Some((_, compressor)) = self.zstd.as_mut() else {
            return false;
        };
        // One byte shorter at least, or not worth it (zstd fails when it does not fit).
        self.plain.resize(piece.len().saturating_sub(1), 0);
        match compressor.compress_to_buffer(piece, &mut self.plain[..]) {
            Ok(n) => {
                self.plain.truncate(n);
                true
            }
            Err(_) => false,
        }
    }
}

/// The receiving half of a channel: opens records in order.
pub struct Opener {
    transport: Arc<snow::StatelessTransportState>,
    nonce: u64,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    packed: Vec<u8>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opener(record {})", self.nonce)
    }
}

impl Opener {
    pub(crate) fn new(transport: Arc<snow::StatelessTransportState>) -> Opener {
        Opener {
            transport,
            nonce: 0,
            zstd: None,
            packed: Vec::new(),
        }
    }

    /// Opens the record at the start of `wire` into `out` (at least [`OPEN_SPACE`] bytes):
    /// `Ok(None)` while `wire` holds only part of it (read more and call again), else the bytes
    /// of `wire` it used and the bytes of data now at the start of `out`. Never panics; nothing
    /// of a record that fails is returned.
    pub fn open(
        &mut self,
        wire: &[u8],
        out: &mut [u8],
    ) -> Result<Option<(usize, usize)>, RecordError> {
        assert!(out.len() >= OPEN_SPACE, "open needs {OPEN_SPACE} bytes");
        let used = match record_len(wire) {
            Ok(Some(used)) => used,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e),
        };
        if self.nonce == u64::MAX {
            return Err(RecordError::Exhausted);
        }
        let n = match self
            .transport
            .read_message(self.nonce, &wire[LEN_BYTES..used], out)
        {
            Ok(n) => n,
            Err(_) if wire.starts_with(&MAGIC) => return Err(RecordError::Plaintext),
            Err(_) => return Err(RecordError::Forged),
        };
        self.nonce += 1;
        // At least a kind byte: `record_len` refused shorter records.
        let data = n - 1;
        match out[data] {
            PLAIN => Ok(Some((used, data))),
            ZSTD => {
                self.packed.clear();
                self.packed.extend_from_slice(&out[..data]);
                let zstd = match self.zstd.as_mut() {
                    Some(zstd) => zstd,
                    None => self.zstd.insert(
                        zstd::bulk::Decompressor::new().map_err(|_| RecordError::Decompress)?,
                    ),
                };
                let n = zstd
                    .decompress_to_buffer(&self.packed, &mut out[..MAX_DATA])
                    .map_err(|_| RecordError::Decompress)?;
                Ok(Some((used, n)))
            }
            other => Err(RecordError::Kind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{respond, Initiator, Key};

    fn channel() -> (Sealer, Opener) {
        let key = Key::from_token(b"0123456789abcdef").unwrap();
        let (initiator, hello) = Initiator::start(&key);
        let (welcome, _, opener) = respond(&key, &hello).unwrap();
        let (sealer, _) = initiator.finish(&welcome).unwrap();
        (sealer, opener)
    }

    /// Every record of `wire`, with its length.
    fn records(mut wire: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while let Some(n) = record_len(wire).unwrap() {
            out.push(&wire[..n]);
            wire = &wire[n..];
        }
        assert!(wire.is_empty());
        out
    }

    fn open_all(opener: &mut Opener, mut wire: &[u8]) -> Result<Vec<u8>, RecordError> {
        let mut data = Vec::new();
        let mut out = vec![0; OPEN_SPACE];
        while let Some((used, n)) = opener.open(wire, &mut out)? {
            data.extend_from_slice(&out[..n]);
            wire = &wire[used..];
        }
        assert!(wire.is_empty(), "a partial record left");
        Ok(data)
    }

    #[test]
    fn a_megabyte_spans_records_and_comes_back() {
        let (mut sealer, mut opener) = channel();
        let data: Vec<u8> = (0..(1u32 << 20) + 10).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        sealer.seal(&data, None, &mut wire).unwrap();
        assert_eq!(records(&wire).len(), data.len().div_ceil(MAX_DATA));
        assert!(records(&wire)
            .iter()
            .all(|r| r.len() <= LEN_BYTES + MAX_RECORD));
        assert_eq!(open_all(&mut opener, &wire).unwrap(), data);
    }

    #[test]
    fn only_records_that_shrink_are_compressed() {
        let (mut sealer, mut opener) = channel();
        let mut noise = vec![0u8; MAX_DATA];
        getrandom_free_noise(&mut noise);
        let text = b"0123456789".repeat(MAX_DATA / 10);
        let data = [noise.as_slice(), text.as_slice()].concat();
        let mut wire = Vec::new();
        sealer.seal(&data, Some(3), &mut wire).unwrap();
        let parts = records(&wire);
        assert_eq!(parts[0].len(), LEN_BYTES + MAX_DATA + 1 + TAG_LEN);
        assert!(parts[1].len() < 1000, "{}", parts[1].len());
        assert_eq!(open_all(&mut opener, &wire).unwrap(), data);
    }

    /// Pseudo-random bytes (xorshift): incompressible without pulling in a generator.
    fn getrandom_free_noise(buf: &mut [u8]) {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }

    #[test]
    fn dropped_repeated_reordered_altered_and_foreign_records_fail() {
        for what in ["dropped", "repeated", "reordered", "foreign"] {
            let (mut sealer, mut opener) = channel();
            let mut wire = Vec::new();
            for word in [&b"one"[..], b"two", b"three"] {
                sealer.seal(word, None, &mut wire).unwrap();
            }
            let r = records(&wire);
            let received = match what {
                "dropped" => [r[0], r[2]].concat(),
                "repeated" => [r[0], r[0]].concat(),
                "reordered" => [r[1], r[0]].concat(),
                _ => {
                    opener = channel().1;
                    wire.clone()
                }
            };
            assert_eq!(
                open_all(&mut opener, &received),
                Err(RecordError::Forged),
                "{what}"
            );
        }
        // Length, ciphertext, tag: 2 + 3 + 1 + 16 bytes.
        for bit in [0, 7, 16, 100, 175] {
            let (mut s, mut o) = channel();
            let mut one = Vec::new();
            s.seal(b"one", None, &mut one).unwrap();
            assert_eq!(one.len(), 22);
            one[bit / 8] ^= 1 << (bit % 8);
            let mut out = vec![0; OPEN_SPACE];
            // A changed length is another record: it fails, or waits for bytes that never come.
            assert!(
                matches!(o.open(&one, &mut out), Err(_) | Ok(None)),
                "bit {bit}"
            );
            if bit >= 16 {
                assert_eq!(
                    o.open(&one, &mut out),
                    Err(RecordError::Forged),
                    "bit {bit}"
                );
            }
        }
    }

    #[test]
    fn plaintext_short_and_truncated_input() {
        let (_, mut opener) = channel();
        let mut out = vec![0; OPEN_SPACE];
        let mut frame = Vec::new();
        crate::Message::Bye.emit(&mut frame).unwrap();
        // "PC" read as a length is 20,547 bytes: a whole session's worth of frames fails.
        let frames = frame.repeat(3000);
        assert_eq!(opener.open(&frames, &mut out), Err(RecordError::Plaintext));
        assert_eq!(
            opener.open(&[0, 5, 1, 2, 3, 4, 5], &mut out),
            Err(RecordError::Short(5))
        );
        assert_eq!(opener.open(&[0xff], &mut out), Ok(None));
        assert_eq!(opener.open(&[0xff, 0xff, 0], &mut out), Ok(None));
    }
}
