//! The core's reference runs, computed in the browser, equal the golden file written natively:
//! the two drivers of the core are bit-identical.

use wasm_bindgen_test::wasm_bindgen_test;

const GOLDEN: &str = include_str!("../../../crates/precopy-core/tests/golden/reference.json");

#[wasm_bindgen_test]
fn reference_runs_match_the_native_golden_file() {
    let runs =
        precopy_core::reference::golden_runs().expect("the reference configuration is valid");
    let json = serde_json::to_string_pretty(&runs).expect("metrics serialise") + "\n";
    assert!(
        json == GOLDEN,
        "browser results differ from crates/precopy-core/tests/golden/reference.json"
    );
}

const GOLDEN_DELTA: &str = include_str!("../../../crates/precopy-core/tests/golden/delta.json");

#[wasm_bindgen_test]
fn delta_runs_match_the_native_golden_file() {
    let runs =
        precopy_core::reference::golden_delta_runs().expect("the delta configuration is valid");
    let json = serde_json::to_string_pretty(&runs).expect("metrics serialise") + "\n";
    assert!(
        json == GOLDEN_DELTA,
        "browser results differ from crates/precopy-core/tests/golden/delta.json"
    );
}

const GOLDEN_TRACE: &str = include_str!("../../../crates/precopy-core/tests/golden/trace.json");

#[wasm_bindgen_test]
fn trace_runs_match_the_native_golden_file() {
    let runs =
        precopy_core::reference::golden_trace_runs().expect("the hand-written trace replays");
    let json = serde_json::to_string_pretty(&runs).expect("metrics serialise") + "\n";
    assert!(
        json == GOLDEN_TRACE,
        "browser results differ from crates/precopy-core/tests/golden/trace.json"
    );
}

const GOLDEN_CATALOGUE: &str =
    include_str!("../../../crates/precopy-core/tests/golden/catalogue.json");

/// The shipped traces, the very files Trunk copies to dist/traces/ (build.rs lists them): the
/// bundle does not embed them, so this test does.
const PACKED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/packed.rs"));

/// Every shipped trace, taken as the page takes a fetched one (checked against the build's
/// digest, decoded by ruzstd) and replayed here, gives the figures the native test wrote
/// (`UPDATE_GOLDEN=1 cargo test -p migrate-native --test catalogue`).
#[wasm_bindgen_test]
fn shipped_traces_match_the_native_golden_file() {
    let runs: Vec<Vec<precopy_core::catalogue::Figures>> = (precopy_core::catalogue::NAMES.iter())
        .enumerate()
        .map(|(i, name)| {
            let (_, bytes) = PACKED.iter().find(|(n, _)| n == name).expect("shipped");
            let workload =
                precopy_web::catalogue::accept(i, bytes).expect("a shipped trace decodes");
            precopy_core::catalogue::golden_runs(&workload).expect("the golden settings are valid")
        })
        .collect();
    let json = serde_json::to_string_pretty(&runs).expect("figures serialise") + "\n";
    assert!(
        json == GOLDEN_CATALOGUE,
        "browser replays of data/traces differ from crates/precopy-core/tests/golden/catalogue.json"
    );
}
