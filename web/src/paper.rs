//! The paper's Figures 2–5 computed in the browser: pre-copy and final-copy bytes against
//! bandwidth (5..100 Mbps step 5), both data sets, baseline / proposed / sweep, averaged over
//! seeds 1..=n, and the paper's claims beside ours.
//!
//! The work is cut into slices of a time budget, one simulation round at a time, so the caller
//! can yield to the browser between slices and the page stays responsive.

use precopy_core::paper::{bandwidths_mbps, reduction_pct, Assessment, Quantity, Reported, CLAIMS};
use precopy_core::{Dataset, PolicyKind, Preset, SimBuilder, SimConfig, Simulation};

/// The policies of the paper view.
pub const POLICIES: [PolicyKind; 3] = [
    PolicyKind::Baseline,
    PolicyKind::Proposed,
    PolicyKind::Sweep,
];

/// The figures: number, data set, quantity.
pub const FIGURES: [(u32, Preset, Quantity); 4] = [
    (2, Preset::Fixed, Quantity::PrecopyBytes),
    (3, Preset::Fixed, Quantity::FinalBytes),
    (4, Preset::Variable, Quantity::PrecopyBytes),
    (5, Preset::Variable, Quantity::FinalBytes),
];

/// What to compute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperSettings {
    /// Seeds per point (1..=seeds).
    pub seeds: u32,
    /// Data-set scale (1 = the paper's 11,000 files).
    pub scale: f64,
    /// Model parameters; bandwidth and seed are set per run.
    pub base: SimConfig,
}

#[derive(Debug, Clone, Copy)]
struct Job {
    preset: usize,
    bandwidth: usize,
    policy: usize,
    seed: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sum {
    precopy: f64,
    final_copy: f64,
    runs: u32,
}

/// A paper sweep in progress.
pub struct PaperRun {
    settings: PaperSettings,
    bandwidths: Vec<f64>,
    datasets: [Dataset; 2],
    jobs: Vec<Job>,
    /// The next job of the in-page (sliced) mode.
    next: usize,
    current: Option<Simulation>,
    /// Jobs whose results are in (from slices or workers).
    recorded: Vec<bool>,
    finished: usize,
    /// Indexed by (preset, policy, bandwidth).
    sums: Vec<Sum>,
}

impl PaperRun {
    /// Plans every run; nothing is simulated yet.
    pub fn new(settings: PaperSettings) -> Result<PaperRun, String> {
        let datasets = [
            Preset::Fixed.dataset(settings.scale),
            Preset::Variable.dataset(settings.scale),
        ];
        let [Ok(fixed), Ok(variable)] = datasets else {
            return Err(format!("scale {} is not usable", settings.scale));
        };
        let bandwidths = bandwidths_mbps();
        let mut jobs = Vec::new();
        // Bandwidth by bandwidth, so the figures fill from left to right.
        for preset in 0..2 {
            for bandwidth in 0..bandwidths.len() {
                for policy in 0..POLICIES.len() {
                    for seed in 1..=u64::from(settings.seeds) {
                        jobs.push(Job {
                            preset,
                            bandwidth,
                            policy,
                            seed,
                        });
                    }
                }
            }
        }
        Ok(PaperRun {
            settings,
            sums: vec![Sum::default(); 2 * POLICIES.len() * bandwidths.len()],
            bandwidths,
            datasets: [fixed, variable],
            recorded: vec![false; jobs.len()],
            finished: 0,
            jobs,
            next: 0,
            current: None,
        })
    }

    /// The settings.
    pub fn settings(&self) -> PaperSettings {
        self.settings
    }

    /// (runs finished, runs in all).
    pub fn progress(&self) -> (usize, usize) {
        (self.finished, self.jobs.len())
    }

    /// Whether every run is done.
    pub fn is_done(&self) -> bool {
        self.finished == self.jobs.len()
    }

    /// Adds one run's result (a repeated or unknown job is ignored).
    pub fn record(&mut self, job: usize, precopy_bytes: u64, final_bytes: u64) {
        let Some(j) = self.jobs.get(job).copied() else {
            return;
        };
        if std::mem::replace(&mut self.recorded[job], true) {
            return;
        }
        let slot = self.slot(j.preset, j.policy, j.bandwidth);
        let sum = &mut self.sums[slot];
        sum.precopy += precopy_bytes as f64;
        sum.final_copy += final_bytes as f64;
        sum.runs += 1;
        self.finished += 1;
    }

    /// The work split for `workers` web workers, as the JSON messages to post: jobs dealt out
    /// in turn, so that every worker gets cheap and expensive runs alike.
    pub fn tasks(&self, workers: usize) -> Vec<String> {
        let workers = workers.max(1);
        (0..workers)
            .map(|w| {
                let jobs = (w..self.jobs.len())
                    .step_by(workers)
                    .map(|i| {
                        let j = self.jobs[i];
                        TaskJob {
                            index: i,
                            preset: Preset::ALL[j.preset],
                            bandwidth_mbps: self.bandwidths[j.bandwidth],
                            policy: POLICIES[j.policy],
                            seed: j.seed,
                        }
                    })
                    .collect();
                let task = Task {
                    scale: self.settings.scale,
                    base: self.settings.base,
                    jobs,
                };
                // Plain data: serialising cannot fail.
                serde_json::to_string(&task).unwrap_or_default()
            })
            .collect()
    }

    fn slot(&self, preset: usize, policy: usize, bandwidth: usize) -> usize {
        (preset * POLICIES.len() + policy) * self.bandwidths.len() + bandwidth
    }

    /// Simulates until `budget_ms` have passed on `now` (a millisecond clock) or all is done.
    /// At least one round runs per call, so progress never stalls.
    pub fn work(&mut self, budget_ms: f64, now: &dyn Fn() -> f64) {
        let start = now();
        while self.next < self.jobs.len() {
            let job = self.jobs[self.next];
            let sim = match &mut self.current {
                Some(sim) => sim,
                None => {
                    let config = SimConfig {
                        bandwidth_bps: self.bandwidths[job.bandwidth] * 1e6,
                        seed: job.seed,
                        ..self.settings.base
                    };
                    let built =
                        SimBuilder::new(self.datasets[job.preset].clone(), POLICIES[job.policy])
                            .config(config)
                            .build();
                    // The settings were validated by the form; a refusal here is a bug.
                    self.current
                        .insert(built.expect("a validated configuration"))
                }
            };
            if sim.step().is_none() {
                let (precopy, final_bytes) =
                    (sim.metrics().precopy_bytes, sim.metrics().final_bytes);
                self.current = None;
                self.record(self.next, precopy, final_bytes);
                self.next += 1;
            }
            if now() - start >= budget_ms {
                break;
            }
        }
    }

    /// Mean of a quantity per bandwidth for one data set and policy, over the points whose
    /// seeds are all done: (Mbps, bytes).
    pub fn means(&self, preset: Preset, policy: PolicyKind, quantity: Quantity) -> Vec<(f64, f64)> {
        let p = Preset::ALL.iter().position(|x| *x == preset).unwrap_or(0);
        let Some(k) = POLICIES.iter().position(|x| *x == policy) else {
            return Vec::new();
        };
        (0..self.bandwidths.len())
            .filter_map(|b| {
                let s = self.sums[self.slot(p, k, b)];
                (s.runs == self.settings.seeds).then(|| {
                    let total = match quantity {
                        Quantity::PrecopyBytes => s.precopy,
                        Quantity::FinalBytes => s.final_copy,
                    };
                    (self.bandwidths[b], total / f64::from(s.runs))
                })
            })
            .collect()
    }

    /// Every claim of the paper with ours (`None` until its band has finished points).
    pub fn assessments(&self) -> Vec<(precopy_core::paper::Claim, Option<Assessment>)> {
        CLAIMS
            .iter()
            .map(|claim| {
                let base = self.means(claim.dataset, PolicyKind::Baseline, claim.quantity);
                let ours = self.means(claim.dataset, PolicyKind::Proposed, claim.quantity);
                let points: Vec<(f64, f64, f64)> = base
                    .iter()
                    .zip(&ours)
                    .map(|(&(bw, b), &(_, p))| (bw, b, p))
                    .collect();
                (*claim, claim.assess(&points))
            })
            .collect()
    }

    /// The finished points as CSV: data set, policy, bandwidth, mean pre-copy and final bytes,
    /// and the reduction against the baseline.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "dataset,policy,bandwidth_mbps,seeds,precopy_bytes_mean,final_bytes_mean,precopy_reduction_pct,final_reduction_pct\n",
        );
        for preset in Preset::ALL {
            let base_pre = self.means(preset, PolicyKind::Baseline, Quantity::PrecopyBytes);
            let base_fin = self.means(preset, PolicyKind::Baseline, Quantity::FinalBytes);
            for policy in POLICIES {
                let pre = self.means(preset, policy, Quantity::PrecopyBytes);
                let fin = self.means(preset, policy, Quantity::FinalBytes);
                for ((bw, p), (_, f)) in pre.iter().zip(&fin) {
                    let reduction = |base: &[(f64, f64)], v: f64| {
                        base.iter()
                            .find(|(b, _)| b == bw)
                            .map_or(String::new(), |(_, b)| {
                                format!("{:.2}", reduction_pct(*b, v))
                            })
                    };
                    out.push_str(&format!(
                        "{},{},{},{},{},{},{},{}\n",
                        preset.name(),
                        policy.name(),
                        bw,
                        self.settings.seeds,
                        p,
                        f,
                        reduction(&base_pre, *p),
                        reduction(&base_fin, *f)
                    ));
                }
            }
        }
        out
    }
}

/// What a worker posts once it listens: only then is its task posted (messages sent before
/// its WebAssembly has started would be lost).
pub const READY: &str = "ready";

/// One run of a worker's task.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct TaskJob {
    index: usize,
    preset: Preset,
    bandwidth_mbps: f64,
    policy: PolicyKind,
    seed: u64,
}

/// What a worker is asked to compute.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Task {
    scale: f64,
    base: SimConfig,
    jobs: Vec<TaskJob>,
}

/// A worker's side: runs every job of a task message, calling `reply` with each result as
/// `[job, precopy_bytes, final_bytes]` JSON as soon as it is known.
pub fn run_task(message: &str, reply: &mut dyn FnMut(String)) -> Result<(), String> {
    let task: Task = serde_json::from_str(message).map_err(|e| format!("bad task: {e}"))?;
    let mut datasets: Vec<(Preset, Dataset)> = Vec::new();
    for job in &task.jobs {
        let dataset = match datasets.iter().find(|(p, _)| *p == job.preset) {
            Some((_, d)) => d.clone(),
            None => {
                let d = job.preset.dataset(task.scale).map_err(|e| e.to_string())?;
                datasets.push((job.preset, d.clone()));
                d
            }
        };
        let config = SimConfig {
            bandwidth_bps: job.bandwidth_mbps * 1e6,
            seed: job.seed,
            ..task.base
        };
        let m = SimBuilder::new(dataset, job.policy)
            .config(config)
            .build()
            .map_err(|e| e.to_string())?
            .run();
        reply(format!(
            "[{},{},{}]",
            job.index, m.precopy_bytes, m.final_bytes
        ));
    }
    Ok(())
}

/// Parses a worker's reply: (job, pre-copy bytes, final-copy bytes).
pub fn parse_reply(text: &str) -> Option<(usize, u64, u64)> {
    serde_json::from_str(text).ok()
}

/// The paper's claim as text, e.g. "−43% to −94%" or "about equal".
pub fn reported_text(reported: Reported) -> String {
    match reported {
        Reported::Reduction { min_pct, max_pct } => {
            format!("−{min_pct:.0}% to −{max_pct:.0}%")
        }
        Reported::AboutEqual => "about equal".into(),
    }
}

/// Our reduction range as text in the paper's convention (a reduction is negative).
pub fn ours_text(a: &Assessment) -> String {
    if !(a.ours_min_pct.is_finite() && a.ours_max_pct.is_finite()) {
        return "n/a: the baseline sends 0 bytes at some bandwidth".into();
    }
    let signed = |pct: f64| {
        let change = -pct;
        if change <= 0.0 {
            format!("−{:.0}%", -change)
        } else {
            format!("+{change:.0}%")
        }
    };
    format!("{} to {}", signed(a.ours_min_pct), signed(a.ours_max_pct))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn a_small_sweep_finishes_in_slices_and_matches_direct_runs() {
        let settings = PaperSettings {
            seeds: 1,
            scale: 0.01,
            base: SimConfig::default(),
        };
        let mut run = PaperRun::new(settings).unwrap();
        assert_eq!(run.progress(), (0, 2 * 20 * 3));
        // A fake clock that advances 1 ms per reading: each slice stops after a few rounds.
        let tick = Cell::new(0.0);
        let now = || {
            tick.set(tick.get() + 1.0);
            tick.get()
        };
        let mut slices = 0;
        while !run.is_done() {
            run.work(3.0, &now);
            slices += 1;
        }
        assert!(slices > 40, "{slices} slices");
        let means = run.means(Preset::Fixed, PolicyKind::Proposed, Quantity::PrecopyBytes);
        assert_eq!(means.len(), 20);
        let direct = SimBuilder::new(Preset::Fixed.dataset(0.01).unwrap(), PolicyKind::Proposed)
            .config(SimConfig {
                bandwidth_bps: 5e6,
                seed: 1,
                ..SimConfig::default()
            })
            .build()
            .unwrap()
            .run();
        assert_eq!(means[0], (5.0, direct.precopy_bytes as f64));
        assert!(run.assessments().iter().all(|(_, a)| a.is_some()));
        assert_eq!(run.csv().lines().count(), 1 + 2 * 3 * 20);

        // The same sweep through two workers' tasks gives the same means.
        let mut split = PaperRun::new(settings).unwrap();
        for task in split.tasks(2) {
            let mut replies = Vec::new();
            run_task(&task, &mut |r| replies.push(r)).unwrap();
            for reply in replies {
                let (job, precopy, final_bytes) = parse_reply(&reply).unwrap();
                split.record(job, precopy, final_bytes);
            }
        }
        assert!(split.is_done());
        assert_eq!(split.csv(), run.csv());
    }
}
