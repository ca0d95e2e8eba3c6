//! The shipped workloads (`data/traces/NAME.jsonl.zst` and `NAME.log`), embedded in the bundle
//! and decompressed here on first use by `ruzstd` (pure Rust). The traces are small (the six
//! add about 700 KB to the wasm file; `docs/web.md` has the sizes), and embedding them keeps the
//! page working from any static server, offline.
//!
//! What to do with them (the docs' settings, a run's figures) is `precopy_core::catalogue`'s.

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

use precopy_core::catalogue::{Workload, NAMES};

/// A shipped workload as embedded: name, compressed trace, log.
struct Embedded {
    name: &'static str,
    trace: &'static [u8],
    log: &'static str,
}

macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        [$(Embedded {
            name: $name,
            trace: include_bytes!(concat!("../../data/traces/", $name, ".jsonl.zst")),
            log: include_str!(concat!("../../data/traces/", $name, ".log")),
        }),*]
    };
}

/// In `precopy_core::catalogue::NAMES` order (a test checks it).
const EMBEDDED: [Embedded; NAMES.len()] =
    embedded!("postgres", "redis", "sqlite", "build", "git", "nginx");

/// A decompressed trace larger than this is refused (a zstd bomb cannot fill memory).
const MAX_TEXT: u64 = 256 << 20;

thread_local! {
    /// Decoded workloads, by index: decoding the largest takes a moment, so it happens once.
    static DECODED: RefCell<Vec<Option<Rc<Workload>>>> = RefCell::new(vec![None; NAMES.len()]);
}

/// The index of a workload name, if it is shipped.
pub fn index_of(name: &str) -> Option<usize> {
    NAMES.iter().position(|n| *n == name)
}

/// What ran in workload `index`, from its log (no decoding).
pub fn load_text(index: usize) -> String {
    precopy_core::catalogue::Recording::parse(EMBEDDED[index].log).load
}

/// Compressed size of workload `index`'s trace, bytes.
pub fn packed_bytes(index: usize) -> usize {
    EMBEDDED[index].trace.len()
}

/// Workload `index`, decoded and parsed on first use.
pub fn workload(index: usize) -> Result<Rc<Workload>, String> {
    if let Some(w) = DECODED.with(|d| d.borrow()[index].clone()) {
        return Ok(w);
    }
    let e = &EMBEDDED[index];
    let text = decompress(e.trace).map_err(|why| format!("{}: {why}", e.name))?;
    let w =
        Rc::new(Workload::parse(e.name, &text, e.log).map_err(|why| format!("{}: {why}", e.name))?);
    DECODED.with(|d| d.borrow_mut()[index] = Some(w.clone()));
    Ok(w)
}

/// Decompresses a zstd frame into UTF-8 text.
pub fn decompress(bytes: &[u8]) -> Result<String, String> {
    let decoder = ruzstd::decoding::StreamingDecoder::new(bytes)
        .map_err(|e| format!("not a zstd stream: {e}"))?;
    let mut text = Vec::new();
    decoder
        .take(MAX_TEXT + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("corrupt zstd stream: {e}"))?;
    if text.len() as u64 > MAX_TEXT {
        return Err(format!("decompresses to more than {MAX_TEXT} bytes"));
    }
    String::from_utf8(text)
        .map_err(|e| format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn the_embedded_list_is_the_cores() {
        let names: Vec<&str> = EMBEDDED.iter().map(|e| e.name).collect();
        assert_eq!(names, NAMES);
        for (i, name) in NAMES.iter().enumerate() {
            assert!(!load_text(i).is_empty(), "{name}: no load line");
        }
    }

    #[wasm_bindgen_test]
    fn bad_bytes_are_refused_with_a_reason() {
        assert!(decompress(b"not zstd")
            .unwrap_err()
            .contains("not a zstd stream"));
        let mut cut = EMBEDDED[0].trace.to_vec();
        cut.truncate(cut.len() / 2);
        assert!(decompress(&cut).is_err());
    }

    #[wasm_bindgen_test]
    fn a_workload_decodes_once() {
        let i = index_of("nginx").unwrap();
        let first = workload(i).unwrap();
        assert!(Rc::ptr_eq(&first, &workload(i).unwrap()));
        assert!(
            first.describe().contains(" files, "),
            "{}",
            first.describe()
        );
        assert_eq!(index_of("nope"), None);
    }
}
