//! Replays the fuzz corpora and every kept regression through the parsers on stable Rust, with
//! the same checks as the fuzz targets (`fuzz/fuzz_targets/`; the trace target's are
//! `fuzz/checks.rs`, compiled into both).

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

use precopy_core::units::{parse_bandwidth, parse_compress_ratio, parse_duration, parse_size};

/// Every input kept for `target` (its corpus and its regressions) that is UTF-8, and how many
/// files were found.
fn inputs(target: &str) -> (Vec<String>, usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut texts = Vec::new();
    let mut seen = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            seen += 1;
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            texts.extend(String::from_utf8(bytes).ok());
        }
    }
    (texts, seen)
}

#[test]
fn trace_corpus_and_regressions_parse_and_replay() {
    let (texts, seen) = inputs("trace");
    assert!(seen >= 3, "the corpus is missing ({seen} files)");
    for text in texts {
        checks::trace_text(&text);
    }
}

#[test]
fn units_corpus_parses_to_usable_values_or_errors() {
    let (texts, seen) = inputs("units");
    assert!(seen >= 10, "the corpus is missing ({seen} files)");
    for text in texts {
        for value in [parse_bandwidth(&text), parse_duration(&text)]
            .into_iter()
            .flatten()
        {
            assert!(value.is_finite() && value > 0.0, "{text:?} gave {value}");
        }
        if let Ok(bytes) = parse_size(&text) {
            assert!(bytes >= 1, "{text:?} gave {bytes}");
        }
        if let Ok(ratio) = parse_compress_ratio(&text) {
            assert!(ratio.is_finite() && ratio >= 1.0, "{text:?} gave {ratio}");
        }
    }
}
