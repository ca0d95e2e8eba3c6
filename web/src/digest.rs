//! FNV-1a, 64 bits: the fingerprint build.rs takes of each shipped trace and the page checks a
//! fetched one against (a stale or truncated copy in dist/ must not give other figures).
//! Shared by build.rs (`#[path]`) and the app, so both sides hash the same way.

/// The FNV-1a 64-bit hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
