//! The catalogue in the paper view: shipped workloads × bandwidths × policies, replayed as
//! `docs/real-apps.md` replays them (`precopy_core::catalogue::config`), one simulation round at a
//! time in slices of a time budget, so the page stays responsive. Each cell's figures are those
//! of `migrate-native sweep` for the command [`EvaluationRun::command_line`] shows
//! (crates/migrate-native/tests/catalogue.rs checks the core's side of that).

use std::rc::Rc;
use std::sync::Arc;

use precopy_core::catalogue::{self, Figures, Workload, NAMES};
use precopy_core::units::parse_bandwidth;
use precopy_core::{PolicyKind, SimBuilder, Simulation};

/// What to compute: indices into `catalogue::NAMES`, bandwidths (bit/s) and policies.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationSettings {
    /// Workloads, by index.
    pub workloads: Vec<usize>,
    /// Link rates, bit/s, ascending.
    pub bandwidths_bps: Vec<f64>,
    /// Policies, in `PolicyKind::ALL` order.
    pub policies: Vec<PolicyKind>,
}

impl EvaluationSettings {
    /// The docs' table: every workload, the docs' bandwidths and policies.
    pub fn docs() -> EvaluationSettings {
        EvaluationSettings {
            workloads: (0..NAMES.len()).collect(),
            bandwidths_bps: catalogue::BANDWIDTHS_MBPS.map(|b| b * 1e6).to_vec(),
            policies: catalogue::POLICIES.to_vec(),
        }
    }

    /// Settings from the form: workloads and policies ticked, bandwidths as typed.
    pub fn new(
        workloads: &[usize],
        bandwidths: &str,
        policies: &[PolicyKind],
    ) -> Result<EvaluationSettings, String> {
        if workloads.is_empty() {
            return Err("choose at least one workload".into());
        }
        if policies.is_empty() {
            return Err("choose at least one policy".into());
        }
        Ok(EvaluationSettings {
            workloads: workloads.to_vec(),
            bandwidths_bps: Self::parse_bandwidths(bandwidths)?,
            policies: policies.to_vec(),
        })
    }

    /// Reads a bandwidth list as typed (`5,10,20`: Mbit/s unless a unit is given).
    pub fn parse_bandwidths(text: &str) -> Result<Vec<f64>, String> {
        let mut list = Vec::new();
        for item in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match parse_bandwidth(item) {
                Ok(bps) if (1e6..=1e9).contains(&bps) => list.push(bps),
                Ok(_) => return Err(format!("bandwidth `{item}`: between 1 and 1000 Mbps")),
                Err(e) => return Err(format!("bandwidth `{item}`: {e}")),
            }
        }
        if list.is_empty() {
            return Err("bandwidths: at least one, e.g. 5,10,20,50,100".into());
        }
        list.sort_by(f64::total_cmp);
        list.dedup();
        Ok(list)
    }
}

/// An evaluation in progress.
pub struct EvaluationRun {
    settings: EvaluationSettings,
    workloads: Vec<Rc<Workload>>,
    /// (workload, bandwidth, policy) indices, workload by workload.
    jobs: Vec<(usize, usize, usize)>,
    next: usize,
    current: Option<Simulation>,
    /// Figures by job.
    results: Vec<Option<Figures>>,
}

impl EvaluationRun {
    /// Plans every run of `settings` on `workloads` (loaded, in the settings' order); nothing is
    /// simulated yet.
    pub fn new(settings: EvaluationSettings, workloads: Vec<Rc<Workload>>) -> EvaluationRun {
        let mut jobs = Vec::new();
        for w in 0..workloads.len() {
            for b in 0..settings.bandwidths_bps.len() {
                for p in 0..settings.policies.len() {
                    jobs.push((w, b, p));
                }
            }
        }
        EvaluationRun {
            results: vec![None; jobs.len()],
            settings,
            workloads,
            jobs,
            next: 0,
            current: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &EvaluationSettings {
        &self.settings
    }

    /// The workloads, in the settings' order.
    pub fn workloads(&self) -> &[Rc<Workload>] {
        &self.workloads
    }

    /// (runs finished, runs in all).
    pub fn progress(&self) -> (usize, usize) {
        (self.next, self.jobs.len())
    }

    /// Whether every run is done.
    pub fn is_done(&self) -> bool {
        self.next == self.jobs.len()
    }

    /// Simulates until `budget_ms` have passed on `now` (a millisecond clock) or all is done;
    /// at least one round per call.
    pub fn work(&mut self, budget_ms: f64, now: &dyn Fn() -> f64) -> Result<(), String> {
        let start = now();
        while let Some(&(w, b, p)) = self.jobs.get(self.next) {
            let workload = &self.workloads[w];
            let sim = match &mut self.current {
                Some(sim) => sim,
                None => {
                    let config = catalogue::config(self.settings.bandwidths_bps[b]);
                    let sim =
                        SimBuilder::new(Arc::clone(&workload.dataset), self.settings.policies[p])
                            .config(config)
                            .build()
                            .map_err(|e| format!("{}: {e}", workload.name))?;
                    self.current.insert(sim)
                }
            };
            if sim.step().is_none() {
                self.results[self.next] = Some(Figures::of(&workload.name, sim.metrics()));
                self.current = None;
                self.next += 1;
            }
            if now() - start >= budget_ms {
                break;
            }
        }
        Ok(())
    }

    /// The figures of one cell, once computed.
    pub fn cell(&self, workload: usize, bandwidth: usize, policy: usize) -> Option<&Figures> {
        let (b, p) = (
            self.settings.bandwidths_bps.len(),
            self.settings.policies.len(),
        );
        self.results[(workload * b + bandwidth) * p + policy].as_ref()
    }

    /// The command that computes the same cells natively.
    pub fn command_line(&self) -> String {
        let names: Vec<&str> = self.workloads.iter().map(|w| w.name.as_str()).collect();
        let mbps: Vec<f64> = self
            .settings
            .bandwidths_bps
            .iter()
            .map(|b| b / 1e6)
            .collect();
        catalogue::command_line(&names, &self.settings.policies, &mbps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue as shipped;
    use std::cell::Cell;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn bandwidth_lists_are_checked() {
        assert_eq!(
            EvaluationSettings::parse_bandwidths("20, 5,20").unwrap(),
            [5e6, 20e6]
        );
        assert!(EvaluationSettings::parse_bandwidths("5,x")
            .unwrap_err()
            .contains("`x`"));
        assert!(EvaluationSettings::parse_bandwidths(" , ").is_err());
        assert!(EvaluationSettings::parse_bandwidths("0.5")
            .unwrap_err()
            .contains("1 and 1000"));
    }

    /// The sliced runs give what one `Workload::run` per cell gives (the path the golden
    /// figures and tests/catalogue.rs check against the CLI).
    #[wasm_bindgen_test]
    fn sliced_cells_equal_whole_runs() {
        let nginx = shipped::index_of("nginx").unwrap();
        let settings = EvaluationSettings {
            workloads: vec![nginx],
            bandwidths_bps: vec![50e6, 100e6],
            policies: vec![PolicyKind::Baseline, PolicyKind::Converge],
        };
        let w = shipped::load_for_test(nginx);
        let mut run = EvaluationRun::new(settings, vec![w.clone()]);
        let tick = Cell::new(0.0);
        let now = || {
            tick.set(tick.get() + 1.0);
            tick.get()
        };
        while !run.is_done() {
            run.work(5.0, &now).unwrap();
        }
        let figures = run.cell(0, 1, 1).unwrap();
        assert_eq!(*figures, w.run(PolicyKind::Converge, 100e6).unwrap());
        assert!(run
            .command_line()
            .contains("--datasets data/traces/nginx.jsonl.zst"));
    }

    #[wasm_bindgen_test]
    fn settings_need_a_workload_and_a_policy() {
        let new = EvaluationSettings::new;
        assert!(new(&[], "5", &[PolicyKind::Baseline])
            .unwrap_err()
            .contains("workload"));
        assert!(new(&[0], "5", &[]).unwrap_err().contains("policy"));
        let settings = new(&[2], "5,1Gbps", &[PolicyKind::Qemu]).unwrap();
        assert_eq!(settings.bandwidths_bps, [5e6, 1e9]);
    }
}
