//! Browser tests (`cargo test -p precopy-web --target wasm32-unknown-unknown` with the wasm
//! environment of scripts/env.sh): headless Chromium through wasm-bindgen-test-runner.

mod golden;
mod page;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
