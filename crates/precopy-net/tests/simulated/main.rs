//! The real sender ([`Migration`]) in simulated time: held side by side with the core's
//! simulator, and checked for the core's invariants.

mod equal;
mod properties;

use std::time::Duration;

use precopy_core::{Dataset, Metrics, PolicyKind, PolicyParams, RoundReport, WriteModel};
use precopy_net::migrate::{MigrateConfig, Migration, Outcome, Then};
use precopy_net::simulated::{World, WorldBuilder};

/// A live run's parameters, as the simulator's are given in `SimConfig`.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub policy: PolicyKind,
    pub params: PolicyParams,
    pub bandwidth_bps: f64,
    pub period_s: f64,
    pub poll_s: f64,
    pub max_rounds: u32,
    pub seed: u64,
    pub model: WriteModel,
}

impl Run {
    fn config(&self) -> MigrateConfig {
        MigrateConfig {
            policy: self.policy,
            params: self.params,
            period_s: self.period_s,
            max_rounds: self.max_rounds,
            bwlimit_bps: Some(self.bandwidth_bps),
            poll_s: self.poll_s,
            reconnect: Duration::from_secs(1),
            then: Then::Stop,
            skip_special: false,
            seed: self.seed,
        }
    }

    /// The world of `dataset` written by this run's workload, for [`Run::live`].
    pub fn world(&self, dataset: Dataset) -> WorldBuilder {
        WorldBuilder::new(dataset, self.model, self.seed, self.bandwidth_bps)
    }

    /// Runs the real sender in `world`.
    pub fn live(&self, world: WorldBuilder) -> Live {
        let World {
            roots,
            mut monitor,
            mut app,
            link,
            clock,
            dir: _dir,
        } = world.build().expect("laying out the world");
        let mut reports = Vec::new();
        let mut on_round = |r: &RoundReport, _: &Metrics| reports.push(r.clone());
        let outcome = Migration::with(
            self.config(),
            roots,
            &mut monitor,
            &mut app,
            link,
            clock,
            &mut on_round,
        )
        .and_then(Migration::run)
        .expect("the simulated migration");
        let files = (0..).map_while(|id| monitor.workload_file(id)).collect();
        Live {
            reports,
            outcome,
            files,
        }
    }
}

/// A finished live run.
pub struct Live {
    /// Its round reports, the final copy last.
    pub reports: Vec<RoundReport>,
    pub outcome: Outcome,
    /// The data set's index of each file id.
    pub files: Vec<usize>,
}
