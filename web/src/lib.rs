//! # precopy-web
//!
//! The browser front end of the pre-copy migration simulator: configure a run, watch the
//! policies move files round by round, compare them on live charts, and reproduce the paper's
//! figures. It drives the same `precopy-core` as the native binary, so the same seed gives the
//! same bytes in both.
//!
//! ```text
//!  config (form ⇄ URL) ──► playback (one Simulation per policy, shared clock) ──► map, charts
//!                                      │ step() per round                          results
//!  paper (Figures 2–5, timed slices) ──┘
//!  state (State, Action, reducer) ── app (root) ── components/* (data + callbacks in props)
//! ```
//!
//! Domain logic lives in `config`, `playback`, `map`, `paper` and `export`; components only show
//! it and send actions.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod catalogue;
pub mod components;
pub mod config;
pub mod digest;
pub mod evaluation;
pub mod export;
pub mod format;
pub mod hooks;
pub mod map;
pub mod palette;
pub mod panic;
pub mod paper;
pub mod playback;
pub mod state;

pub use app::{App, TITLE};

// Unit tests run in headless Chromium, like the integration tests.
#[cfg(test)]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
