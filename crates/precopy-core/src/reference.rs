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
