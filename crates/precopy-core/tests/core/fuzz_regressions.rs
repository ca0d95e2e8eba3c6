//! Replays the fuzz corpus and every kept regression through the parsers on stable Rust, with the
//! same checks as the fuzz target (`fuzz/fuzz_targets/trace.rs`).

use std::path::Path;

use precopy_core::dataset::GroupsFile;
use precopy_core::trace::Trace;

#[test]
fn corpus_and_regressions_parse_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut seen = 0;
    for dir in ["corpus/trace", "regressions/trace"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            seen += 1;
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            if let Ok(trace) = Trace::parse(text) {
                assert_eq!(Trace::parse(&trace.to_jsonl()).unwrap(), trace);
                let _ = trace.dataset();
            }
            if let Ok(groups) = GroupsFile::parse(text) {
                let _ = groups.dataset(1e-6);
            }
        }
    }
    assert!(seen >= 3, "the corpus is missing ({seen} files)");
}
