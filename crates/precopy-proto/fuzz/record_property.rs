// The property of the `record` fuzz target, shared with `tests/records.rs`, which replays the
// committed inputs on stable. Included (`include!`, `#[path]`), not a crate of its own.
//
// The first byte picks what the rest is: 0, a hostile peer's handshake message; 1, a hostile
// peer's records on an established channel; 2, a round trip (the next byte picks compression, the
// two after it a bit to flip, the rest is the data).

use precopy_proto::handshake::{respond, Initiator, Key, MESSAGE_LEN};
use precopy_proto::record::{record_len, Opener, RecordError, OPEN_SPACE};

/// Opens every record of `wire`: the data, and how it ended (`Ok` once `wire` is used up or holds
/// only part of a record).
fn open_all(opener: &mut Opener, mut wire: &[u8]) -> (Vec<u8>, Result<(), RecordError>) {
    let mut data = Vec::new();
    let mut out = vec![0; OPEN_SPACE];
    loop {
        match opener.open(wire, &mut out) {
            Ok(Some((used, n))) => {
                data.extend_from_slice(&out[..n]);
                wire = &wire[used..];
            }
            Ok(None) => return (data, Ok(())),
            Err(e) => return (data, Err(e)),
        }
    }
}

pub fn check(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let key = Key::from_token(b"fuzzing token 0123456789").unwrap();
    let (initiator, hello) = Initiator::start(&key);
    let (welcome, mut d_sealer, mut d_opener) = respond(&key, &hello).unwrap();
    let (mut s_sealer, mut s_opener) = initiator.finish(&welcome).unwrap();
    match mode % 3 {
        0 => {
            // Bytes nobody sealed with the token never pass for a hello or a welcome.
            let mut message = [0u8; MESSAGE_LEN];
            let n = rest.len().min(MESSAGE_LEN);
            message[..n].copy_from_slice(&rest[..n]);
            assert!(respond(&key, &message).is_err(), "a forged hello passed");
            let (initiator, _) = Initiator::start(&key);
            assert!(
                initiator.finish(&message).is_err(),
                "a forged welcome passed"
            );
        }
        1 => {
            // Bytes nobody sealed never open, whatever their lengths say.
            let (data, _) = open_all(&mut d_opener, rest);
            assert!(data.is_empty(), "a forged record opened");
            let _ = record_len(rest);
        }
        _ => {
            let [pick, hi, lo, data @ ..] = rest else {
                return;
            };
            let level = match pick % 4 {
                0 => None,
                l => Some(i32::from(l)),
            };
            let mut wire = Vec::new();
            s_sealer.seal(data, level, &mut wire).unwrap();
            let (got, end) = open_all(&mut d_opener, &wire);
            assert_eq!(end, Ok(()));
            assert_eq!(got, data, "the data did not come back");
            // The same data again, one bit flipped: what opens before the flip is the data's
            // start, and the stream never opens whole.
            let mut again = Vec::new();
            s_sealer.seal(data, level, &mut again).unwrap();
            if !again.is_empty() {
                let bit = usize::from(u16::from_be_bytes([*hi, *lo])) % (again.len() * 8);
                again[bit / 8] ^= 1 << (bit % 8);
                let (got, end) = open_all(&mut d_opener, &again);
                assert!(data.starts_with(&got), "altered data came out");
                assert!(
                    end.is_err() || got.len() < data.len(),
                    "a flipped bit went unseen"
                );
            }
            // The other way, then a record repeated.
            let mut back = Vec::new();
            d_sealer.seal(data, level, &mut back).unwrap();
            let (got, _) = open_all(&mut s_opener, &back);
            assert_eq!(got, data);
            if let Ok(Some(first)) = record_len(&back) {
                let (got, end) = open_all(&mut s_opener, &back[..first]);
                assert!(
                    got.is_empty() && end == Err(RecordError::Forged),
                    "a replay opened"
                );
            }
        }
    }
}
