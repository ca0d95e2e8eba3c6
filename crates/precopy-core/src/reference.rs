//! Reference runs: a fixed set of small simulations whose metrics are committed as a golden file.
//! Native tests and the browser build both compare against it, so the two drivers of this core
//! provably give bit-identical results.

use alloc::vec::Vec;

use crate::dataset::Preset;
use crate::metrics::Metrics;
use crate::policy::PolicyKind;
use crate::sim::{ConfigError, SimBuilder, SimConfig};

/// Every policy on both presets at 5% scale, 25 Mbps, seed 7.
pub fn golden_runs() -> Result<Vec<Metrics>, ConfigError> {
    let mut runs = Vec::new();
    for preset in Preset::ALL {
        for policy in PolicyKind::ALL {
            let config = SimConfig {
                bandwidth_bps: 25e6,
                seed: 7,
                ..SimConfig::default()
            };
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
