//! Reference runs: a fixed set of small simulations whose metrics are committed as a golden file.
//! Native tests and the browser build both compare against it, so the two drivers of this core
//! provably give bit-identical results.

use alloc::vec::Vec;

use crate::dataset::Preset;
use crate::metrics::Metrics;
use crate::policy::PolicyKind;
use crate::sim::{ConfigError, SimBuilder, SimConfig};
use crate::workload::{WriteBytes, WriteModel};

/// Every policy on both presets at 5% scale, 25 Mbps, seed 7.
pub fn golden_runs() -> Result<Vec<Metrics>, ConfigError> {
    runs(SimConfig {
        bandwidth_bps: 25e6,
        seed: 7,
        ..SimConfig::default()
    })
}

/// The same runs with delta resends and writes of exponential size (mean 16 KiB): the extents'
/// draws (integer offsets, the ziggurat's lengths) are pinned too.
pub fn golden_delta_runs() -> Result<Vec<Metrics>, ConfigError> {
    runs(SimConfig {
        bandwidth_bps: 25e6,
        seed: 7,
        delta: true,
        write_model: WriteModel {
            write_bytes: WriteBytes::Exponential { mean: 16_384 },
            ..WriteModel::default()
        },
        ..SimConfig::default()
    })
}

/// Every policy on the hand-written version-2 trace (creations, a rename over a file, an
/// unlink, sizes), with the trace falling quiet and looping, at 2000 bit/s (the migration outlasts the trace)
/// and period 2 s.
#[cfg(feature = "serde")]
pub fn golden_trace_runs() -> Result<Vec<Metrics>, ConfigError> {
    const TRACE: &str = include_str!("../tests/golden/lifetimes.jsonl");
    let trace = crate::trace::Trace::parse(TRACE).map_err(|e| {
        ConfigError::Dataset(crate::dataset::DatasetError::Parse {
            line: e.line,
            message: e.message,
        })
    })?;
    let dataset = alloc::sync::Arc::new(trace.dataset()?);
    let mut runs = Vec::new();
    for trace_after in crate::workload::TraceAfter::ALL {
        for policy in PolicyKind::ALL {
            let config = SimConfig {
                bandwidth_bps: 2000.0,
                period_s: 2.0,
                seed: 7,
                trace_after,
                ..SimConfig::default()
            };
            let sim = SimBuilder::new(alloc::sync::Arc::clone(&dataset), policy);
            runs.push(sim.config(config).build()?.run());
        }
    }
    Ok(runs)
}

fn runs(config: SimConfig) -> Result<Vec<Metrics>, ConfigError> {
    let mut runs = Vec::new();
    for preset in Preset::ALL {
        for policy in PolicyKind::ALL {
            let dataset = preset.dataset(0.05)?;
            runs.push(
                SimBuilder::new(dataset, policy)
                    .config(config)
                    .build()?
                    .run(),
            );
        }
    }
    Ok(runs)
}
