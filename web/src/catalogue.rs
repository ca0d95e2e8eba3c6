//! The shipped workloads (`data/traces/NAME.jsonl.zst` and `NAME.log`). The traces are not in
//! the bundle: Trunk copies them to `dist/traces/` (index.html, `copy-dir`) and the page fetches
//! one from its own server only when a workload is picked or the catalogue runs, checks it is
//! the file the build described (build.rs: size and digest), decodes it with `ruzstd` (pure
//! Rust) and keeps it for the rest of the visit. The logs (what ran) are small and embedded.
//!
//! What to do with them (the docs' settings, a run's figures) is `precopy_core::catalogue`'s.

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

use precopy_core::catalogue::{Workload, NAMES};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::digest::fnv1a64;

/// A shipped trace as build.rs found it.
struct Shipped {
    name: &'static str,
    /// Compressed size, bytes.
    bytes: usize,
    /// FNV-1a of the compressed file.
    digest: u64,
    log: &'static str,
}

/// Every `data/traces/*.jsonl.zst`, by name (build.rs; a test checks it is `NAMES`).
const SHIPPED: &[Shipped] = include!(concat!(env!("OUT_DIR"), "/shipped.rs"));

/// A decompressed trace larger than this is refused (a zstd bomb cannot fill memory).
const MAX_TEXT: u64 = 256 << 20;

/// Where a workload's trace stands.
#[derive(Clone)]
pub enum Status {
    /// Not asked for yet.
    Absent,
    /// Being fetched and decoded.
    Loading,
    /// Decoded, for the rest of the visit.
    Ready(Rc<Workload>),
    /// The fetch or the decoding failed: why, naming the workload and the file.
    Failed(String),
}

thread_local! {
    /// By index into `NAMES`.
    static STATUS: RefCell<Vec<Status>> = RefCell::new(vec![Status::Absent; NAMES.len()]);
}

fn shipped(index: usize) -> &'static Shipped {
    let name = NAMES[index];
    (SHIPPED.iter().find(|s| s.name == name))
        .unwrap_or_else(|| panic!("data/traces/{name}.jsonl.zst was not there at build time"))
}

/// The index of a workload name, if it is shipped.
pub fn index_of(name: &str) -> Option<usize> {
    NAMES.iter().position(|n| *n == name)
}

/// What ran in workload `index`, from its log (no fetch).
pub fn load_text(index: usize) -> String {
    precopy_core::catalogue::Recording::parse(shipped(index).log).load
}

/// Compressed size of workload `index`'s trace, bytes.
pub fn packed_bytes(index: usize) -> usize {
    shipped(index).bytes
}

/// The trace's file in dist/, as the messages name it.
pub fn file(index: usize) -> String {
    format!("traces/{}.jsonl.zst", NAMES[index])
}

/// What the page says while workloads `indices` load: which files, how big.
pub fn loading_text(indices: &[usize]) -> String {
    let files: Vec<String> = (indices.iter())
        .map(|&i| {
            format!(
                "{} ({})",
                file(i),
                crate::format::bytes(packed_bytes(i) as u64)
            )
        })
        .collect();
    format!("Loading {}…", files.join(", "))
}

/// Its URL, relative to the page (dist/ works from any folder). The digest in the query makes
/// the URL change whenever the trace does, so no cache serves an old recording.
fn url(index: usize) -> String {
    format!("{}?v={:016x}", file(index), shipped(index).digest)
}

/// Where workload `index` stands.
pub fn status(index: usize) -> Status {
    STATUS.with(|s| s.borrow()[index].clone())
}

/// Fetches and decodes workload `index` if it was not asked for yet ([`Status::Absent`]);
/// `done` runs once it is ready or has failed.
pub fn request(index: usize, done: impl FnOnce() + 'static) {
    if !matches!(status(index), Status::Absent) {
        return;
    }
    set(index, Status::Loading);
    wasm_bindgen_futures::spawn_local(async move {
        let loaded = match fetch_bytes(&url(index)).await {
            Ok(bytes) => accept(index, &bytes).map(Rc::new),
            Err(why) => Err(format!(
                "{}: could not load {}: {why}",
                NAMES[index],
                file(index)
            )),
        };
        set(index, loaded.map_or_else(Status::Failed, Status::Ready));
        done();
    });
}

/// Makes a failed workload [`Status::Absent`] again, so that the next request tries again
/// (the user picked it again, or ran the catalogue again).
pub fn retry(index: usize) {
    if matches!(status(index), Status::Failed(_)) {
        set(index, Status::Absent);
    }
}

fn set(index: usize, status: Status) {
    STATUS.with(|s| s.borrow_mut()[index] = status);
}

/// The body of a GET of `url` on the page's server.
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    // A rejected fetch is a network failure (offline, server gone), not an HTTP status.
    let response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| {
            format!(
                "network error ({}): offline, or the server stopped?",
                js_text(&e)
            )
        })?;
    let response: web_sys::Response = response.dyn_into().map_err(|e| js_text(&e))?;
    if !response.ok() {
        return Err(format!(
            "HTTP {} {}",
            response.status(),
            response.status_text()
        ));
    }
    let body = response.array_buffer().map_err(|e| js_text(&e))?;
    let body = JsFuture::from(body)
        .await
        .map_err(|e| format!("download cut short ({})", js_text(&e)))?;
    Ok(js_sys::Uint8Array::new(&body).to_vec())
}

fn js_text(value: &wasm_bindgen::JsValue) -> String {
    match value.dyn_ref::<js_sys::Error>() {
        Some(e) => String::from(e.to_string()),
        None => value.as_string().unwrap_or_else(|| format!("{value:?}")),
    }
}

/// Workload `index` from its compressed trace, if these are the bytes the build described.
pub fn accept(index: usize, bytes: &[u8]) -> Result<Workload, String> {
    let (name, expected) = (NAMES[index], shipped(index));
    if bytes.len() != expected.bytes || fnv1a64(bytes) != expected.digest {
        return Err(format!(
            "{name}: {} is not the trace this page was built with ({} bytes, expected {}): \
             dist/ is out of date, rebuild it",
            file(index),
            bytes.len(),
            expected.bytes
        ));
    }
    let text = decompress(bytes).map_err(|why| format!("{name}: {why}"))?;
    Workload::parse(name, &text, expected.log).map_err(|why| format!("{name}: {why}"))
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

/// The shipped traces, embedded in the test build only (build.rs: `packed.rs`).
#[cfg(test)]
pub(crate) const PACKED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/packed.rs"));

/// Workload `index` from the test build's copy, as if fetched (unit tests have no dist/).
#[cfg(test)]
pub(crate) fn load_for_test(index: usize) -> Rc<Workload> {
    if let Status::Ready(w) = status(index) {
        return w;
    }
    let (_, bytes) = (PACKED.iter())
        .find(|(name, _)| *name == NAMES[index])
        .expect("packed");
    let w = Rc::new(accept(index, bytes).expect("a shipped trace decodes"));
    set(index, Status::Ready(w.clone()));
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn the_shipped_list_is_the_cores() {
        let mut names: Vec<&str> = SHIPPED.iter().map(|s| s.name).collect();
        let mut core = NAMES.to_vec();
        names.sort_unstable();
        core.sort_unstable();
        assert_eq!(names, core);
        for (i, name) in NAMES.iter().enumerate() {
            assert!(!load_text(i).is_empty(), "{name}: no load line");
            assert!(url(i).starts_with(&format!("traces/{name}.jsonl.zst?v=")));
        }
    }

    #[wasm_bindgen_test]
    fn bad_bytes_are_refused_with_a_reason() {
        assert!(decompress(b"not zstd")
            .unwrap_err()
            .contains("not a zstd stream"));
        let mut cut = PACKED[0].1.to_vec();
        cut.truncate(cut.len() / 2);
        assert!(decompress(&cut).is_err());
        let i = index_of(PACKED[0].0).unwrap();
        let e = accept(i, &cut).err().unwrap();
        assert!(e.contains("not the trace this page was built with"), "{e}");
        assert!(e.contains(&file(i)), "{e}");
    }

    #[wasm_bindgen_test]
    fn a_workload_decodes_once() {
        let i = index_of("nginx").unwrap();
        let first = load_for_test(i);
        assert!(Rc::ptr_eq(&first, &load_for_test(i)));
        assert!(
            first.describe().contains(" files, "),
            "{}",
            first.describe()
        );
        assert_eq!(index_of("nope"), None);
    }

    /// The test runner's server has no traces/: a 404 comes back as a clear failure.
    #[wasm_bindgen_test]
    async fn a_missing_trace_fails_naming_the_workload_and_the_status() {
        let i = index_of("redis").unwrap();
        let done = js_sys::Promise::new(&mut |resolve, _| {
            request(i, move || drop(resolve.call0(&wasm_bindgen::JsValue::NULL)));
        });
        assert!(matches!(status(i), Status::Loading));
        JsFuture::from(done).await.unwrap();
        let Status::Failed(e) = status(i) else {
            panic!("the fetch did not fail");
        };
        assert!(
            e.starts_with("redis: could not load traces/redis.jsonl.zst: HTTP 404"),
            "{e}"
        );
    }
}
