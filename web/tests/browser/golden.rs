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
