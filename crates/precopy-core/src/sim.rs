//! The simulator: the [`Engine`] driven in continuous simulated time, over one link, with seeded
//! writes. The real sender drives the same engine with a clock, a write monitor and a transport.
//!
//! Describe the run with [`SimBuilder`], get a validated [`Simulation`], then drive it with
//! [`Simulation::step`] (one round: a monitoring period or an iteration; the last step is the final
//! copy) or [`Simulation::run`]. Time advances only here; nothing reads a clock.
//!
//! Per round the policy gives an order (O(n + k log k): only the k files that fit in a period are
//! sorted), and the simulator walks it: before each transfer starts it applies that file's writes
//! due by then, and at the round's end every file's, so the consistency rule — a copy is clean iff
//! no write hit the file after its transfer started — holds exactly, at O(n + writes) per round.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use crate::dataset::{Dataset, DatasetError};
use crate::engine::{Context, Engine, Stage};
use crate::metrics::{Metrics, RoundReport};
use crate::policy::{self, FileView, Link, PolicyKind, PolicyParams};
use crate::workload::{ExtentDraws, WriteBytes, WriteClock, WriteModel};

/// The run's parameters, apart from the data set and the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct SimConfig {
    /// Link rate in bits per second.
    pub bandwidth_bps: f64,
    /// Monitoring period T in seconds.
    pub period_s: f64,
    /// Fixed cost per file transfer in seconds (0 in the paper).
    pub overhead_s: f64,
    /// Seed of the write processes.
    pub seed: u64,
    /// How access probabilities become write rates.
    pub write_model: WriteModel,
    /// Safety cap on pre-copy rounds (reported as such when hit).
    pub max_rounds: u32,
    /// Policy parameters.
    pub params: PolicyParams,
    /// A resend of a file the destination holds costs only the blocks written since its last
    /// send (off: the whole file, as in the paper).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "core::ops::Not::not"))]
    pub delta: bool,
    /// Block size of delta resends, bytes (the real sender's: 8 KiB).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "is_default_block"))]
    pub block_bytes: u64,
}

/// The real sender's block size.
pub const DEFAULT_BLOCK_BYTES: u64 = 8192;

#[cfg(feature = "serde")]
fn is_default_block(bytes: &u64) -> bool {
    *bytes == DEFAULT_BLOCK_BYTES
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bandwidth_bps: 10e6,
            period_s: 10.0,
            overhead_s: 0.0,
            seed: 1,
            write_model: WriteModel::default(),
            max_rounds: 100_000,
            params: PolicyParams::default(),
            delta: false,
            block_bytes: DEFAULT_BLOCK_BYTES,
        }
    }
}

/// A configuration the builder refuses, naming the parameter.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Bandwidth must be positive and finite.
    Bandwidth(f64),
    /// The monitoring period must be positive and finite.
    Period(f64),
    /// The per-file overhead must be ≥ 0 and finite.
    Overhead(f64),
    /// β must be even and at least 2.
    Beta(u32),
    /// The β tolerance must be in [0, 1).
    Tolerance(f64),
    /// The write intensity must be ≥ 0 and finite.
    Intensity(f64),
    /// An EWMA weight must be in (0, 1].
    Alpha(f64),
    /// The QEMU downtime limit must be ≥ 0 and finite.
    DowntimeLimit(f64),
    /// An iteration or round cap must be at least 1.
    Cap(&'static str),
    /// The delta block size must be at least 1 byte.
    BlockSize,
    /// A write must dirty at least 1 byte, and a range's minimum not exceed its maximum.
    WriteBytes(WriteBytes),
    /// The data set is invalid.
    Dataset(DatasetError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Bandwidth(v) => write!(f, "bandwidth {v} bit/s must be positive"),
            ConfigError::Period(v) => write!(f, "period {v} s must be positive"),
            ConfigError::Overhead(v) => write!(f, "per-file overhead {v} s must be 0 or more"),
            ConfigError::Beta(v) => write!(f, "beta {v} must be an even number of at least 2"),
            ConfigError::Tolerance(v) => write!(f, "beta tolerance {v} must be in [0, 1)"),
            ConfigError::Intensity(v) => write!(f, "write intensity {v} must be 0 or more"),
            ConfigError::Alpha(v) => write!(f, "EWMA alpha {v} must be in (0, 1]"),
            ConfigError::DowntimeLimit(v) => write!(f, "downtime limit {v} s must be 0 or more"),
            ConfigError::Cap(name) => write!(f, "{name} must be at least 1"),
            ConfigError::BlockSize => f.write_str("delta block size must be at least 1 byte"),
            ConfigError::WriteBytes(w) => write!(
                f,
                "write size {w} must be at least 1 byte (a range: minimum ≤ maximum)"
            ),
            ConfigError::Dataset(e) => write!(f, "data set: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

impl From<DatasetError> for ConfigError {
    fn from(e: DatasetError) -> Self {
        ConfigError::Dataset(e)
    }
}

fn finite_nonnegative(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

impl SimConfig {
    /// Checks every parameter; the first bad one is named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.bandwidth_bps.is_finite() && self.bandwidth_bps > 0.0) {
            return Err(ConfigError::Bandwidth(self.bandwidth_bps));
        }
        if !(self.period_s.is_finite() && self.period_s > 0.0) {
            return Err(ConfigError::Period(self.period_s));
        }
        if !finite_nonnegative(self.overhead_s) {
            return Err(ConfigError::Overhead(self.overhead_s));
        }
        if !finite_nonnegative(self.write_model.intensity) {
            return Err(ConfigError::Intensity(self.write_model.intensity));
        }
        if self.max_rounds == 0 {
            return Err(ConfigError::Cap("max rounds"));
        }
        if self.block_bytes == 0 {
            return Err(ConfigError::BlockSize);
        }
        if !self.write_model.write_bytes.is_valid() {
            return Err(ConfigError::WriteBytes(self.write_model.write_bytes));
        }
        let p = &self.params;
        if p.beta < 2 || p.beta % 2 != 0 {
            return Err(ConfigError::Beta(p.beta));
        }
        if !(p.tolerance.is_finite() && (0.0..1.0).contains(&p.tolerance)) {
            return Err(ConfigError::Tolerance(p.tolerance));
        }
        if let crate::monitor::Estimator::Ewma { alpha } = p.estimator {
            if !(alpha > 0.0 && alpha <= 1.0) {
                return Err(ConfigError::Alpha(alpha));
            }
        }
        if !finite_nonnegative(p.downtime_limit_s) {
            return Err(ConfigError::DowntimeLimit(p.downtime_limit_s));
        }
        if p.baseline_iterations == 0 {
            return Err(ConfigError::Cap("baseline iterations"));
        }
        if p.qemu_max_iterations == 0 {
            return Err(ConfigError::Cap("QEMU iteration cap"));
        }
        Ok(())
    }
}

/// A finished run as `migrate-native simulate --json` prints it and the web app exports it:
/// the metrics, flattened, and the configuration that produced them.
#[cfg(feature = "serde")]
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RunReport<'a> {
    /// The run's figures.
    #[serde(flatten)]
    pub metrics: &'a Metrics,
    /// Its configuration.
    pub config: &'a SimConfig,
}

/// Describes a run; [`SimBuilder::build`] validates it into a [`Simulation`].
///
/// ```
/// use precopy_core::{Preset, PolicyKind, SimBuilder};
/// let dataset = Preset::Fixed.dataset(0.01).unwrap();
/// let metrics = SimBuilder::new(dataset, PolicyKind::Proposed)
///     .bandwidth_bps(20e6)
///     .seed(7)
///     .build()
///     .unwrap()
///     .run();
/// assert!(metrics.precopy_bytes >= 10 * 200_000); // every ReadOnly file is pre-copied
/// ```
#[derive(Debug, Clone)]
pub struct SimBuilder {
    dataset: Arc<Dataset>,
    policy: PolicyKind,
    config: SimConfig,
}

impl SimBuilder {
    /// A run of `policy` over `dataset` with default parameters. Runs may share one data set
    /// (`Arc<Dataset>`): a sweep then builds each run without copying every file's path.
    pub fn new(dataset: impl Into<Arc<Dataset>>, policy: PolicyKind) -> SimBuilder {
        SimBuilder {
            dataset: dataset.into(),
            policy,
            config: SimConfig::default(),
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: SimConfig) -> Self {
        self.config = config;
        self
    }

    /// Link rate in bits per second.
    pub fn bandwidth_bps(mut self, bps: f64) -> Self {
        self.config.bandwidth_bps = bps;
        self
    }

    /// Seed of the write processes.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Policy parameters.
    pub fn params(mut self, params: PolicyParams) -> Self {
        self.config.params = params;
        self
    }

    /// Validates the configuration and lays out the run.
    pub fn build(self) -> Result<Simulation, ConfigError> {
        self.config.validate()?;
        if self.dataset.files.is_empty() {
            return Err(ConfigError::Dataset(DatasetError::Empty));
        }
        let config = self.config;
        let n = self.dataset.files.len();
        let files: Vec<FileView> = self
            .dataset
            .files
            .iter()
            .map(|f| FileView::unsent(f.size, f.kind))
            .collect();
        let unsent_bytes = files.iter().map(|f| f.size).sum();
        let policy = policy::build(self.policy, &config.params, n, config.seed);
        let metrics = Metrics::new(
            policy.name(),
            &self.dataset.name,
            config.bandwidth_bps,
            config.seed,
            n as u32,
            unsent_bytes,
        );
        let write_bytes = config.write_model.write_bytes;
        let extents = (config.delta
            && !(write_bytes.is_whole() && self.dataset.extents.is_empty()))
        .then(|| ExtentDraws::new(&self.dataset, write_bytes, config.seed));
        let world = World {
            clock: WriteClock::new(&self.dataset, &config.write_model, config.seed),
            extents,
            dataset: self.dataset,
            link: Link {
                bandwidth_bps: config.bandwidth_bps,
                overhead_s: config.overhead_s,
            },
            clairvoyant: policy.clairvoyant(),
            config,
            now: 0.0,
            link_free_at: 0.0,
        };
        let mut engine = Engine::new(policy, files, config.period_s, config.max_rounds, metrics);
        if config.delta {
            engine.track_delta(config.block_bytes);
        }
        Ok(Simulation { engine, world })
    }
}

/// A running migration: the [`Engine`] driven in simulated time. See the module docs.
pub struct Simulation {
    engine: Engine,
    world: World,
}

/// Everything the engine does not own: the data set, simulated time, the link and the writes.
struct World {
    dataset: Arc<Dataset>,
    config: SimConfig,
    link: Link,
    clairvoyant: bool,
    clock: WriteClock,
    /// Where writes land, when a resend's cost depends on it.
    extents: Option<ExtentDraws>,
    now: f64,
    link_free_at: f64,
}

impl fmt::Debug for Simulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulation")
            .field("policy", &self.engine.policy_name())
            .field("now", &self.world.now)
            .field("round", &self.engine.round())
            .field("unsent_bytes", &self.engine.unsent_bytes())
            .finish_non_exhaustive()
    }
}

impl Simulation {
    /// Advances one round and reports it; the final copy is the last report, then `None`.
    pub fn step(&mut self) -> Option<RoundReport> {
        match self.engine.stage() {
            Stage::PreCopy => Some(self.precopy_round()),
            Stage::FinalCopy => Some(self.final_copy()),
            Stage::Done => None,
        }
    }

    /// Runs to the end and returns the metrics. The round reports are not returned, so their
    /// lists of dirtied files (read by no policy and by no metric) are not kept.
    pub fn run(mut self) -> Metrics {
        self.engine.forget_dirtied();
        while self.step().is_some() {}
        self.engine.metrics().clone()
    }

    /// The metrics so far (complete once [`Simulation::is_done`]).
    pub fn metrics(&self) -> &Metrics {
        self.engine.metrics()
    }

    /// Whether the final copy is done.
    pub fn is_done(&self) -> bool {
        self.engine.stage() == Stage::Done
    }

    /// Current simulated time, seconds.
    pub fn now(&self) -> f64 {
        self.world.now
    }

    /// U: bytes not cleanly at the destination.
    pub fn unsent_bytes(&self) -> u64 {
        self.engine.unsent_bytes()
    }

    /// The files' current state, by id.
    pub fn files(&self) -> &[FileView] {
        self.engine.files()
    }

    /// The data set being migrated.
    pub fn dataset(&self) -> &Dataset {
        &self.world.dataset
    }

    /// The validated configuration.
    pub fn config(&self) -> &SimConfig {
        &self.world.config
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &'static str {
        self.engine.policy_name()
    }

    fn precopy_round(&mut self) -> RoundReport {
        let (engine, world) = (&mut self.engine, &mut self.world);
        let start = world.now;
        engine.begin_round(start);
        engine.plan(world.context());
        loop {
            let begin = world.link_free_at.max(start);
            let Some(file) = engine.candidate(begin) else {
                break;
            };
            world.catch_up(engine, file, begin);
            if engine.should_send(file) {
                world.send(engine, file, begin);
            }
        }
        let end = engine.round_end(world.link_free_at.max(start));
        let extents = &mut world.extents;
        (world.clock).take_all_until(end, |file, count, first, last| {
            wrote(engine, extents.as_mut(), file, count, first, last)
        });
        world.now = end;
        engine.end_round(world.context())
    }

    /// The application is stopped at `now`: no more writes. Whatever is on the wire finishes,
    /// then every file not cleanly at the destination goes.
    fn final_copy(&mut self) -> RoundReport {
        let (engine, world) = (&mut self.engine, &mut self.world);
        let stop = world.now;
        engine.begin_final(stop);
        let pending: Vec<u32> = engine.pending().collect();
        for file in pending {
            world.send(engine, file, world.link_free_at.max(stop));
        }
        let end = world.link_free_at.max(stop);
        world.now = end;
        engine.end_final(stop, end)
    }
}

impl World {
    fn context(&self) -> Context<'_> {
        Context {
            now: self.now,
            link_free_at: self.link_free_at,
            bandwidth_bps: self.link.bandwidth_bps,
            overhead_s: self.link.overhead_s,
            future: self.clairvoyant.then_some(&self.clock),
        }
    }

    /// Applies `file`'s writes due by `until`. Lazy per file is exact: only the file's own
    /// transfers change its status, and each transfer is preceded by a catch-up to its start.
    fn catch_up(&mut self, engine: &mut Engine, file: u32, until: f64) {
        if let Some((count, first, last)) = self.clock.take_until(file, until) {
            wrote(engine, self.extents.as_mut(), file, count, first, last);
        }
    }

    /// Sends `file` from `begin`: as long as the bytes the engine says it costs take.
    fn send(&mut self, engine: &mut Engine, file: u32, begin: f64) {
        let size = engine.files()[file as usize].size;
        let bytes = engine.send_cost(file);
        let end = begin + self.link.transfer_time(bytes);
        engine.on_sent(file, size, bytes, begin, end);
        self.link_free_at = end;
    }
}

/// `count` writes to `file` from `first` to `last`, told to the engine as if one by one: the
/// first may dirty a clean copy, the last is the latest. With `extents`, each lands somewhere.
fn wrote(
    engine: &mut Engine,
    extents: Option<&mut ExtentDraws>,
    file: u32,
    count: u32,
    first: f64,
    last: f64,
) {
    match extents {
        Some(draws) => {
            let size = engine.files()[file as usize].size;
            for i in 0..count {
                let at = if i == 0 { first } else { last };
                engine.on_write_to(file, 1, at, draws.next(file, size));
            }
        }
        None => {
            engine.on_write(file, 1, first);
            if count > 1 {
                engine.on_write(file, count - 1, last);
            }
        }
    }
}
