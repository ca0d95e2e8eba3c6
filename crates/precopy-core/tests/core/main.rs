//! Integration tests of the simulation core: one binary, one module per concern.

mod determinism;
mod fuzz_regressions;
mod properties;
mod replay;
mod schedules;

use precopy_core::dataset::Writes;
use precopy_core::{Dataset, FileSpec, Kind, PolicyKind, SimBuilder, SimConfig, Simulation};

/// A data set of 1000-byte files with recorded writes: (path, kind, write times).
pub fn recorded(files: &[(&str, Kind, &[f64])]) -> Dataset {
    let specs = files
        .iter()
        .map(|(path, kind, _)| FileSpec {
            path: (*path).into(),
            size: 1000,
            kind: *kind,
            access_probability: 0.0,
        })
        .collect();
    let writes = files.iter().map(|(_, _, w)| w.to_vec()).collect();
    Dataset::new("hand".into(), specs, Writes::Recorded(writes)).unwrap()
}

/// 8000 bit/s: a 1000-byte file takes exactly 1 s. Period 2 s, β = 2.
pub fn hand_config() -> SimConfig {
    let mut config = SimConfig {
        bandwidth_bps: 8000.0,
        period_s: 2.0,
        ..SimConfig::default()
    };
    config.params.beta = 2;
    config
}

pub fn build(dataset: Dataset, policy: PolicyKind, config: SimConfig) -> Simulation {
    SimBuilder::new(dataset, policy)
        .config(config)
        .build()
        .unwrap()
}
