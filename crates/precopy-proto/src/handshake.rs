//! Mutual challenge-response over a pre-shared token.
//!
//! Both sides derive a key from the token (BLAKE3 `derive_key`), then each proves knowledge of it
//! by a keyed hash over both nonces and its role. The token never crosses the wire; the role label
//! keeps one side's proof from being replayed as the other's; fresh nonces on both sides keep a
//! recorded session from being replayed. Comparisons are constant-time (`blake3::Hash`'s `==`).
//!
//! ```
//! use precopy_proto::handshake::{client_proof, server_proof, Key};
//!
//! let key = Key::from_token(b"correct horse battery").unwrap();
//! let (nc, ns) = ([1u8; 32], [2u8; 32]);
//! // The receiver answers the sender's nonce; the sender checks it, then answers in turn.
//! let from_server = server_proof(&key, &nc, &ns);
//! assert!(key.verify_server(&nc, &ns, &from_server).is_ok());
//! let from_client = client_proof(&key, &nc, &ns);
//! assert!(key.verify_client(&nc, &ns, &from_client).is_ok());
//! assert!(key.verify_server(&nc, &ns, &from_client).is_err());
//! ```

use thiserror::Error;

/// Shortest token accepted, bytes.
pub const MIN_TOKEN: usize = 16;

const CONTEXT: &str = "precopy-proto v1 2026-01 handshake key";

/// The handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token is shorter than [`MIN_TOKEN`] bytes.
    #[error("token shorter than {MIN_TOKEN} bytes")]
    WeakToken,
    /// The peer's proof is wrong: it does not know the token.
    #[error("the peer does not know the token")]
    BadProof,
}

/// The key derived from the token.
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

    fn proof(&self, role: &[u8], client: &[u8; 32], server: &[u8; 32]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(role);
        h.update(client);
        h.update(server);
        h.finalize()
    }

    /// Checks the receiver's proof (run by the sender).
    pub fn verify_server(
        &self,
        client: &[u8; 32],
        server: &[u8; 32],
        proof: &[u8; 32],
    ) -> Result<(), AuthError> {
        check(self.proof(b"server", client, server), proof)
    }

    /// Checks the sender's proof (run by the receiver).
    pub fn verify_client(
        &self,
        client: &[u8; 32],
        server: &[u8; 32],
        proof: &[u8; 32],
    ) -> Result<(), AuthError> {
        check(self.proof(b"client", client, server), proof)
    }
}

fn check(expected: blake3::Hash, got: &[u8; 32]) -> Result<(), AuthError> {
    // blake3::Hash compares in constant time.
    if expected == blake3::Hash::from_bytes(*got) {
        Ok(())
    } else {
        Err(AuthError::BadProof)
    }
}

/// The receiver's proof for the nonces of one session.
pub fn server_proof(key: &Key, client: &[u8; 32], server: &[u8; 32]) -> [u8; 32] {
    *key.proof(b"server", client, server).as_bytes()
}

/// The sender's proof for the nonces of one session.
pub fn client_proof(key: &Key, client: &[u8; 32], server: &[u8; 32]) -> [u8; 32] {
    *key.proof(b"client", client, server).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_token_fails_both_ways() {
        let right = Key::from_token(b"0123456789abcdef").unwrap();
        let wrong = Key::from_token(b"0123456789abcdeX").unwrap();
        let (c, s) = ([7; 32], [9; 32]);
        assert_eq!(
            right.verify_client(&c, &s, &client_proof(&wrong, &c, &s)),
            Err(AuthError::BadProof)
        );
        assert_eq!(
            wrong.verify_server(&c, &s, &server_proof(&right, &c, &s)),
            Err(AuthError::BadProof)
        );
    }

    #[test]
    fn proofs_bind_both_nonces() {
        let key = Key::from_token(b"0123456789abcdef\n").unwrap();
        let proof = client_proof(&key, &[1; 32], &[2; 32]);
        assert!(key.verify_client(&[1; 32], &[3; 32], &proof).is_err());
        assert!(key.verify_client(&[4; 32], &[2; 32], &proof).is_err());
    }

    #[test]
    fn short_tokens_are_refused() {
        assert_eq!(
            Key::from_token(b"  short \n").unwrap_err(),
            AuthError::WeakToken
        );
    }
}
