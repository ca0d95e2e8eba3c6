//! The handshake: Noise `NNpsk0` keyed by the pre-shared token.
//!
//! Both sides derive a pre-shared key from the token (BLAKE3 `derive_key`); the token never
//! crosses the wire. Two messages, each carried in a frame ([`crate::Message::Hello`],
//! [`crate::Message::Welcome`]):
//!
//! ```text
//!  S → D  hello    psk, e      its ephemeral key; an empty payload sealed under keys mixed from
//!                              the psk: D refuses a sender without the token here
//!  D → S  welcome  e, ee       its ephemeral key; sealed under keys mixed from the psk and the
//!                              ephemeral Diffie-Hellman: S drops a receiver without the token
//! ```
//!
//! Then each side holds two keys, one per direction, from the psk and the ephemeral
//! Diffie-Hellman: a recorded session stays secret even if the token is stolen later (forward
//! secrecy), and every later byte travels in authenticated [`crate::record`]s. The prologue
//! binds the protocol version, so a peer that took another version's header for this one fails
//! the handshake instead of speaking it. A replayed hello gets a welcome, but its replayer lacks
//! the sender's ephemeral key, so its first record fails: nothing is written.
//!
//! ```
//! use precopy_proto::handshake::{respond, Initiator, Key};
//!
//! let key = Key::from_token(b"correct horse battery").unwrap();
//! let (initiator, hello) = Initiator::start(&key);
//! let (welcome, mut d_out, _d_in) = respond(&key, &hello).unwrap();
//! let (_s_out, mut s_in) = initiator.finish(&welcome).unwrap();
//! let mut wire = Vec::new();
//! d_out.seal(b"ready", None, &mut wire).unwrap();
//! let mut data = vec![0; precopy_proto::record::OPEN_SPACE];
//! let (used, n) = s_in.open(&wire, &mut data).unwrap().unwrap();
//! assert_eq!((used, &data[..n]), (wire.len(), &b"ready"[..]));
//!
//! let other = Key::from_token(b"another horse battery").unwrap();
//! assert!(respond(&other, &hello).is_err());
//! ```

use std::sync::Arc;

use thiserror::Error;

use crate::frame::{MAGIC, VERSION};
use crate::record::{Opener, Sealer};

/// Shortest token accepted, bytes.
pub const MIN_TOKEN: usize = 16;

/// The Noise protocol: no static keys, the token's key mixed in first, X25519, AES-256-GCM (with
/// AES-NI three times the throughput of ChaCha20-Poly1305 here), BLAKE2s.
pub const PATTERN: &str = "Noise_NNpsk0_25519_AESGCM_BLAKE2s";

/// Bytes of each handshake message: an ephemeral public key and an empty payload's tag.
pub const MESSAGE_LEN: usize = 32 + 16;

const CONTEXT: &str = "precopy-proto v3 2026-12 noise pre-shared key";

/// The handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token is shorter than [`MIN_TOKEN`] bytes.
    #[error("token shorter than {MIN_TOKEN} bytes")]
    WeakToken,
    /// The peer's handshake message does not authenticate: it does not know the token (or the
    /// message was altered on the way).
    #[error("the peer does not know the token")]
    BadToken,
}

/// The pre-shared key derived from the token.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// Derives the key. Surrounding whitespace (a token file's newline) is not part of it.
    pub fn from_token(token: &[u8]) -> Result<Key, AuthError> {
        let token = token.trim_ascii();
        if token.len() < MIN_TOKEN {
            return Err(AuthError::WeakToken);
        }
        Ok(Key(blake3::derive_key(CONTEXT, token)))
    }

    fn builder(&self) -> snow::Builder<'_> {
        const PROLOGUE: [u8; 5] = [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION];
        snow::Builder::new(PATTERN.parse().expect("a valid Noise pattern"))
            .prologue(&PROLOGUE)
            .and_then(|b| b.psk(0, &self.0))
            .expect("a prologue and a 32-byte psk")
    }
}

/// The sender's half of the handshake, between its hello and the receiver's welcome.
pub struct Initiator(snow::HandshakeState);

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Initiator(…)")
    }
}

impl Initiator {
    /// Starts a handshake with a fresh ephemeral key (from the operating system); returns the
    /// hello message.
    pub fn start(key: &Key) -> (Initiator, [u8; MESSAGE_LEN]) {
        let mut state = key.builder().build_initiator().expect("an initiator");
        let mut hello = [0u8; MESSAGE_LEN];
        let n = state
            .write_message(&[], &mut hello)
            .expect("the first message fits");
        debug_assert_eq!(n, MESSAGE_LEN);
        (Initiator(state), hello)
    }

    /// Checks the receiver's welcome; returns the channel: records out, records in.
    pub fn finish(mut self, welcome: &[u8; MESSAGE_LEN]) -> Result<(Sealer, Opener), AuthError> {
        let mut payload = [0u8; MESSAGE_LEN];
        match self.0.read_message(welcome, &mut payload) {
            Ok(0) => split(self.0),
            _ => Err(AuthError::BadToken),
        }
    }
}

/// The receiver's half: checks a hello and answers it; returns the welcome and the channel.
pub fn respond(
    key: &Key,
    hello: &[u8; MESSAGE_LEN],
) -> Result<([u8; MESSAGE_LEN], Sealer, Opener), AuthError> {
    let mut state = key.builder().build_responder().expect("a responder");
    let mut payload = [0u8; MESSAGE_LEN];
    if state.read_message(hello, &mut payload) != Ok(0) {
        return Err(AuthError::BadToken);
    }
    let mut welcome = [0u8; MESSAGE_LEN];
    let n = state
        .write_message(&[], &mut welcome)
        .expect("the second message fits");
    debug_assert_eq!(n, MESSAGE_LEN);
    let (sealer, opener) = split(state)?;
    Ok((welcome, sealer, opener))
}

fn split(state: snow::HandshakeState) -> Result<(Sealer, Opener), AuthError> {
    let transport = state
        .into_stateless_transport_mode()
        .map_err(|_| AuthError::BadToken)?;
    let transport = Arc::new(transport);
    Ok((Sealer::new(Arc::clone(&transport)), Opener::new(transport)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_token_fails_both_ways() {
        let right = Key::from_token(b"0123456789abcdef").unwrap();
        let wrong = Key::from_token(b"0123456789abcdeX").unwrap();
        // A sender with the wrong token is refused at its hello.
        let (_, hello) = Initiator::start(&wrong);
        assert_eq!(respond(&right, &hello).unwrap_err(), AuthError::BadToken);
        // A receiver with the wrong token: its welcome does not authenticate (it could not have
        // read the hello either; here it answers a hello made with its own token).
        let (initiator, _) = Initiator::start(&right);
        let (_, hello) = Initiator::start(&wrong);
        let (welcome, _, _) = respond(&wrong, &hello).unwrap();
        assert_eq!(initiator.finish(&welcome).unwrap_err(), AuthError::BadToken);
    }

    #[test]
    fn an_altered_message_fails() {
        let key = Key::from_token(b"0123456789abcdef\n").unwrap();
        let (_, mut hello) = Initiator::start(&key);
        hello[40] ^= 1;
        assert_eq!(respond(&key, &hello).unwrap_err(), AuthError::BadToken);
        let (initiator, hello) = Initiator::start(&key);
        let (mut welcome, _, _) = respond(&key, &hello).unwrap();
        welcome[3] ^= 0x80;
        assert_eq!(initiator.finish(&welcome).unwrap_err(), AuthError::BadToken);
    }

    #[test]
    fn a_welcome_from_another_session_fails() {
        let key = Key::from_token(b"0123456789abcdef").unwrap();
        let (first, _) = Initiator::start(&key);
        let (_, hello) = Initiator::start(&key);
        let (welcome, _, _) = respond(&key, &hello).unwrap();
        assert_eq!(first.finish(&welcome).unwrap_err(), AuthError::BadToken);
    }

    #[test]
    fn short_tokens_are_refused() {
        assert_eq!(
            Key::from_token(b"  short \n").unwrap_err(),
            AuthError::WeakToken
        );
    }
}
