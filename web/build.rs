//! Describes the shipped traces (`data/traces/NAME.jsonl.zst` and `NAME.log`) to the app without
//! embedding them: Trunk copies the traces into `dist/traces/` (index.html, `copy-dir`) and the
//! page fetches one when it is first used. Writes to OUT_DIR:
//! - `shipped.rs`: per trace its name, size and FNV-1a digest (the fetch URL carries the digest,
//!   so a re-recorded trace is never served from a stale cache, and the page checks the bytes),
//!   and its log, embedded (a few hundred bytes each: the menus show what ran before any fetch);
//! - `packed.rs`: the traces themselves as `include_bytes!`, for the tests only (they compare
//!   wasm32 figures with the golden file without a server).

use std::fmt::Write as _;
use std::path::Path;

#[path = "src/digest.rs"]
mod digest;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/traces");
    let dir = dir.canonicalize().expect("data/traces exists");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("data/traces is readable")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".jsonl.zst").map(str::to_string)
        })
        .collect();
    names.sort();

    let (mut shipped, mut packed) = (String::from("&["), String::from("&["));
    for name in &names {
        let trace = dir.join(format!("{name}.jsonl.zst"));
        let log = dir.join(format!("{name}.log"));
        let bytes = std::fs::read(&trace).expect("a shipped trace is readable");
        writeln!(
            shipped,
            "Shipped {{ name: {name:?}, bytes: {}, digest: {:#018x}, log: include_str!({:?}) }},",
            bytes.len(),
            digest::fnv1a64(&bytes),
            log.display(),
        )
        .unwrap();
        writeln!(packed, "({name:?}, include_bytes!({:?})),", trace.display()).unwrap();
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).to_path_buf();
    std::fs::write(out.join("shipped.rs"), shipped + "]\n").expect("OUT_DIR is writable");
    std::fs::write(out.join("packed.rs"), packed + "]\n").expect("OUT_DIR is writable");
}
