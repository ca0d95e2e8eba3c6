//! # precopy-core
//!
//! A pure, deterministic simulation of **pre-copy migration of an application's files**, with the
//! transfer order chosen by update expectation (ReadOnly files first, then ReadWrite files in
//! ascending p̂ × size), against a Xen-style baseline and other comparators.
//!
//! ```text
//!  Dataset (presets, groups, trace) ──► WriteClock (seeded per-file write streams)
//!                                              │ writes
//!  Policy (order + end test) ◄── View ── Simulation (time, link, consistency rule)
//!                                              │ step()
//!                                   RoundReport … Metrics
//! ```
//!
//! - [`dataset`]: the files to move; the paper's presets.
//! - [`workload`]: how access probabilities become writes; replayed traces.
//! - [`monitor`]: what a write monitor lets a policy know (per-period counts → p̂).
//! - [`policy`]: the policies, behind one trait.
//! - [`delta`]: what a resend costs when only the blocks written since the last send go.
//! - [`engine`]: the pre-copy engine, sans-IO, driven by the simulator and the real sender alike.
//! - [`sim`]: the simulator: [`SimBuilder`] → [`Simulation::step`] / [`Simulation::run`].
//! - [`metrics`]: round reports and run metrics.
//! - [`trace`] (feature `serde`): the JSON Lines trace format.
//! - [`catalogue`] (feature `serde`): the shipped workloads and how the docs replay them.
//!
//! The core has no I/O, no clock and no `std` unless asked: the browser and the native binary
//! are two drivers of the same code, and the same seed gives bit-identical results on both.
//!
//! ```
//! use precopy_core::{PolicyKind, Preset, SimBuilder};
//!
//! let dataset = Preset::Variable.dataset(0.05).unwrap();
//! let mut sim = SimBuilder::new(dataset, PolicyKind::Proposed)
//!     .bandwidth_bps(20e6)
//!     .build()
//!     .unwrap();
//! while let Some(round) = sim.step() {
//!     // One monitoring period at a time; the last step is the final copy.
//!     assert!(round.end >= round.start);
//! }
//! let metrics = sim.metrics();
//! // Every byte reaches the destination at least once.
//! assert!(metrics.precopy_bytes + metrics.final_bytes >= metrics.total_bytes);
//! ```
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(feature = "serde")]
pub mod catalogue;
pub mod dataset;
pub mod delta;
pub mod engine;
pub mod metrics;
pub mod monitor;
pub mod paper;
mod pending;
pub mod policy;
pub mod reference;
pub mod sim;
#[cfg(feature = "serde")]
pub mod trace;
pub mod units;
pub mod workload;

pub use dataset::{
    Dataset, DatasetError, FileSpec, Group, Kind, Preset, RecordedExtent, ReplayedFile, SizeSpec,
};
pub use metrics::{EndReason, Metrics, Phase, RoundPoint, RoundReport};
pub use monitor::Estimator;
pub use policy::{PolicyKind, PolicyParams, Status};
#[cfg(feature = "serde")]
pub use sim::RunReport;
pub use sim::{ConfigError, SimBuilder, SimConfig, Simulation};
pub use workload::{RateMapping, TraceAfter, WriteBytes, WriteModel};
