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

use crate::dataset::{Dataset, DatasetError, Kind, Writes};
use crate::engine::{Context, Engine, Stage};
use crate::metrics::{Metrics, RoundReport};
use crate::policy::{self, FileView, Link, PolicyKind, PolicyParams, Status};
use crate::workload::{ExtentDraws, TraceAfter, WriteBytes, WriteClock, WriteModel};

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
    /// Compression ratio R ≥ 1 of the link: a transfer of n bytes puts n / R on the wire, so it
    /// takes R times less time (1: none, the paper's model). Byte counts stay the files' bytes.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "is_one"))]
    pub compress_ratio: f64,
    /// What a replayed trace's files do once the trace is over.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "TraceAfter::is_quiet"))]
    pub trace_after: TraceAfter,
}

/// The real sender's block size.
pub const DEFAULT_BLOCK_BYTES: u64 = 8192;

#[cfg(feature = "serde")]
fn is_default_block(bytes: &u64) -> bool {
    *bytes == DEFAULT_BLOCK_BYTES
}

#[cfg(feature = "serde")]
fn is_one(ratio: &f64) -> bool {
    *ratio == 1.0
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
            compress_ratio: 1.0,
            trace_after: TraceAfter::Quiet,
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
    /// The compression ratio must be finite and at least 1.
    CompressRatio(f64),
    /// A write must dirty at least 1 byte, and a range's minimum not exceed its maximum.
    WriteBytes(WriteBytes),
    /// A file's life must be within the data set and run from a time ≥ 0 to a later one.
    Life {
        /// The data set's index of the file.
        file: usize,
        /// When it appears, seconds.
        appears: f64,
        /// When it vanishes, seconds.
        vanishes: f64,
    },
    /// Some file must be there at time 0 (a migration starts from the files present).
    NoFileAtStart,
    /// A trace can only loop if it lasted some time.
    LoopOfNoDuration,
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
            ConfigError::CompressRatio(v) => {
                write!(
                    f,
                    "compression ratio {v} must be a finite number of at least 1"
                )
            }
            ConfigError::WriteBytes(w) => write!(
                f,
                "write size {w} must be at least 1 byte (a range: minimum ≤ maximum)"
            ),
            ConfigError::Life {
                file,
                appears,
                vanishes,
            } => write!(
                f,
                "file {file} appearing at {appears} s and vanishing at {vanishes} s: it must be \
                 in the data set, and 0 ≤ appearance < vanishing"
            ),
            ConfigError::NoFileAtStart => f.write_str(
                "no file is there at time 0 (a replayed trace whose files were all created while \
                 tracing has nothing to migrate when it began)",
            ),
            ConfigError::LoopOfNoDuration => {
                f.write_str("the trace lasted 0 s: its writes cannot repeat (trace-after loop)")
            }
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
        if !(self.compress_ratio.is_finite() && self.compress_ratio >= 1.0) {
            return Err(ConfigError::CompressRatio(self.compress_ratio));
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
        if p.stall_passes == 0 {
            return Err(ConfigError::Cap("converge stall passes"));
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
    /// (data set index, appears, vanishes) of the files not there for the whole run.
    lives: Vec<(usize, f64, f64)>,
}

impl SimBuilder {
    /// A run of `policy` over `dataset` with default parameters. Runs may share one data set
    /// (`Arc<Dataset>`): a sweep then builds each run without copying every file's path.
    pub fn new(dataset: impl Into<Arc<Dataset>>, policy: PolicyKind) -> SimBuilder {
        SimBuilder {
            dataset: dataset.into(),
            policy,
            config: SimConfig::default(),
            lives: Vec::new(),
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

    /// File `index` of the data set is created at `appears` (> 0: while the application runs)
    /// and deleted at `vanishes` (∞: never), as the application would: a walk of the trees
    /// (at each round's start and at the stop, as the real sender's) finds it and it joins as an
    /// unsent ReadWrite file, or finds it gone and it leaves; a transfer that finds it gone also
    /// makes it leave. Its writes count from the walk that found it (a monitor watches a file
    /// from then on) to its vanishing. Files join in data set (path) order, after the others.
    pub fn life(mut self, index: usize, appears: f64, vanishes: f64) -> Self {
        self.lives.push((index, appears, vanishes));
        self
    }

    /// Validates the configuration and lays out the run.
    pub fn build(self) -> Result<Simulation, ConfigError> {
        self.config.validate()?;
        if self.dataset.files.is_empty() {
            return Err(ConfigError::Dataset(DatasetError::Empty));
        }
        let config = self.config;
        let mut clock = WriteClock::new(&self.dataset, &config.write_model, config.seed);
        let recorded = matches!(self.dataset.writes, Writes::Recorded(_));
        if let (true, TraceAfter::Loop { until_s }) = (recorded, config.trace_after) {
            let until = until_s.unwrap_or(f64::INFINITY);
            // A horizon within the recording asks for no copy.
            if until > self.dataset.recorded_s {
                if self.dataset.recorded_s <= 0.0 {
                    return Err(ConfigError::LoopOfNoDuration);
                }
                clock.repeat_recorded(self.dataset.recorded_s, until);
            }
        }
        // A replayed trace's lives, then the builder's (a later one for a file wins).
        let spans: Vec<(usize, f64, f64)> = (self.dataset.lives.iter().enumerate())
            .filter(|(_, &span)| span != (0.0, f64::INFINITY))
            .map(|(index, &(appears, vanishes))| (index, appears, vanishes))
            .chain(self.lives)
            .collect();
        let lives = match spans.is_empty() {
            true => None,
            false => Some(Lives::new(&self.dataset, &spans, &clock)?),
        };
        let files: Vec<FileView> = (self.dataset.files.iter().enumerate())
            .filter(|&(index, _)| lives.as_ref().is_none_or(|l| l.spans[index].0 == 0.0))
            .map(|(_, f)| FileView::unsent(f.size, f.kind))
            .collect();
        let n = files.len();
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
        let sizes = (!self.dataset.sizes.is_empty()).then(|| Sizes::new(&self.dataset));
        let world = World {
            clock,
            lives,
            sizes,
            extents,
            dataset: self.dataset,
            // Compressed R to 1, the files' bytes cross R times faster: every transfer's time,
            // and the rate a policy plans with, follow (× 1 changes no bit).
            link: Link {
                bandwidth_bps: config.bandwidth_bps * config.compress_ratio,
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
    /// Files that appear and vanish, if any: then engine ids are not data set indices.
    lives: Option<Lives>,
    /// Recorded sizes over time, if any.
    sizes: Option<Sizes>,
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

    /// The data set's index of the file the engine knows as `file` (the same, unless files
    /// appear mid-run: see [`SimBuilder::life`]).
    pub fn dataset_index(&self, file: u32) -> usize {
        self.world.index(file) as usize
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
            if engine.should_send(file) && !world.found_gone(engine, file) {
                world.send(engine, file, begin);
            }
        }
        let end = engine.round_end(world.link_free_at.max(start));
        world.vanish_due(engine, end);
        let (lives, extents) = (&world.lives, &mut world.extents);
        (world.clock).take_all_until(end, |index, count, first, last| {
            if let Some(id) = writing(lives, index) {
                wrote(engine, extents.as_mut(), index, id, count, first, last);
            }
        });
        world.resize_all(engine, end);
        world.now = end;
        // The walk comes before the end test: files made during the round are pending for it
        // (walked at the next round's start instead, a round that sent all it knew ended with
        // "nothing left" and every file made meanwhile went in the final copy).
        world.walk(engine);
        engine.end_round(world.context())
    }

    /// The application is stopped at `now`: no more writes. Whatever is on the wire finishes,
    /// then every file not cleanly at the destination goes.
    fn final_copy(&mut self) -> RoundReport {
        let (engine, world) = (&mut self.engine, &mut self.world);
        let stop = world.now;
        engine.begin_final(stop);
        world.walk(engine);
        let pending: Vec<u32> = engine.pending().collect();
        for file in pending {
            world.send(engine, file, world.link_free_at.max(stop));
        }
        let end = world.link_free_at.max(stop);
        world.now = end;
        engine.end_final(stop, end)
    }
}

/// Where a file is in its life (see [`SimBuilder::life`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Not found by a walk yet.
    Unseen,
    /// Known to the engine by this id; its writes count.
    Known(u32),
    /// Vanished: no more writes, but the engine holds it by this id until it is found gone.
    Vanished(u32),
    /// Gone, and not held by the engine (any more, or ever).
    Gone,
}

/// The files that appear and vanish mid-run, and the engine ids that follow from it.
#[derive(Debug)]
struct Lives {
    /// When each file appears and vanishes, by data set index.
    spans: Vec<(f64, f64)>,
    /// Where each is in its life, by data set index.
    life: Vec<Life>,
    /// The data set index of each engine id.
    files: Vec<u32>,
    /// Files yet to appear, and yet to vanish: the next one last.
    appearing: Vec<u32>,
    vanishing: Vec<u32>,
    /// Vanished files the engine still holds, for the next walk.
    unnoticed: Vec<u32>,
    /// Their future writes by engine id, for the clairvoyant reference.
    foresight: WriteClock,
}

impl Lives {
    /// Every file lives from 0 to ∞ except those `lives` list as (index, appears, vanishes); the
    /// ones there at 0 are known from the start, by id in data set order.
    fn new(
        dataset: &Dataset,
        lives: &[(usize, f64, f64)],
        clock: &WriteClock,
    ) -> Result<Lives, ConfigError> {
        let n = dataset.files.len();
        let mut spans = alloc::vec![(0.0, f64::INFINITY); n];
        for &(file, appears, vanishes) in lives {
            // Written so that a NaN fails.
            let valid = file < n && appears >= 0.0 && appears.is_finite() && vanishes > appears;
            if !valid {
                return Err(ConfigError::Life {
                    file,
                    appears,
                    vanishes,
                });
            }
            spans[file] = (appears, vanishes);
        }
        let mut files = Vec::new();
        let mut foresight = WriteClock::default();
        let life = (0..n as u32)
            .map(|index| {
                if spans[index as usize].0 > 0.0 {
                    return Life::Unseen;
                }
                foresight.push_stream_of(clock, index);
                files.push(index);
                Life::Known(files.len() as u32 - 1)
            })
            .collect();
        if files.is_empty() {
            return Err(ConfigError::NoFileAtStart);
        }
        // Files with a time in (0, ∞), latest first, so the next one pops off the end.
        let by_time = |time: fn(&(f64, f64)) -> f64| {
            let at = |i: u32| time(&spans[i as usize]);
            let mut order: Vec<u32> = (0..n as u32)
                .filter(|&i| at(i) > 0.0 && at(i).is_finite())
                .collect();
            order.sort_unstable_by(|&a, &b| at(b).total_cmp(&at(a)).then(b.cmp(&a)));
            order
        };
        Ok(Lives {
            appearing: by_time(|s| s.0),
            vanishing: by_time(|s| s.1),
            spans,
            life,
            files,
            unnoticed: Vec::new(),
            foresight,
        })
    }
}

impl World {
    fn context(&self) -> Context<'_> {
        Context {
            now: self.now,
            link_free_at: self.link_free_at,
            bandwidth_bps: self.link.bandwidth_bps,
            overhead_s: self.link.overhead_s,
            future: self.clairvoyant.then_some(match &self.lives {
                Some(lives) => &lives.foresight,
                None => &self.clock,
            }),
        }
    }

    /// The data set's index of engine id `file`.
    fn index(&self, file: u32) -> u32 {
        self.lives.as_ref().map_or(file, |l| l.files[file as usize])
    }

    /// Applies `file`'s writes due by `until`. Lazy per file is exact: only the file's own
    /// transfers change its status, and each transfer is preceded by a catch-up to its start.
    fn catch_up(&mut self, engine: &mut Engine, file: u32, until: f64) {
        self.vanish_due(engine, until);
        let index = self.index(file);
        if writing(&self.lives, index).is_none() {
            return;
        }
        if let Some((count, first, last)) = self.clock.take_until(index, until) {
            wrote(
                engine,
                self.extents.as_mut(),
                index,
                file,
                count,
                first,
                last,
            );
        }
        self.resize(engine, index, file, until);
    }

    /// Applies the latest recorded size of data set file `index`, engine id `file`, due by
    /// `until`. A size change no write made stale makes a clean copy stale: the content changed.
    fn resize(&mut self, engine: &mut Engine, index: u32, file: u32, until: f64) {
        let Some(sizes) = self.sizes.as_mut() else {
            return;
        };
        let Some((at, size)) = sizes.due(&self.dataset, index, until) else {
            return;
        };
        let view = &engine.files()[file as usize];
        if view.size != size {
            if view.status == Status::Clean {
                engine.on_lost(file, at);
            }
            engine.set_size(file, size);
        }
    }

    /// [`World::resize`] for every file whose size changes and whose writes count.
    fn resize_all(&mut self, engine: &mut Engine, until: f64) {
        let Some(sizes) = self.sizes.as_ref() else {
            return;
        };
        for index in sizes.changing.clone() {
            if let Some(id) = writing(&self.lives, index) {
                self.resize(engine, index, id, until);
            }
        }
    }

    /// Ends the writes of the files that vanished by `until`, after applying those they had
    /// made; the engine lets them go when a walk or a transfer finds them gone.
    fn vanish_due(&mut self, engine: &mut Engine, until: f64) {
        let Some(lives) = self.lives.as_mut() else {
            return;
        };
        let spans = &lives.spans;
        while let Some(&index) = (lives.vanishing.last()).filter(|&&i| spans[i as usize].1 <= until)
        {
            lives.vanishing.pop();
            let i = index as usize;
            lives.life[i] = match lives.life[i] {
                Life::Known(id) => {
                    let vanished = spans[i].1;
                    if let Some((count, first, last)) = self.clock.take_until(index, vanished) {
                        wrote(engine, self.extents.as_mut(), index, id, count, first, last);
                    }
                    lives.unnoticed.push(index);
                    Life::Vanished(id)
                }
                _ => Life::Gone,
            };
        }
    }

    /// Whether `file`, about to be sent, has vanished: the transfer finds it gone, so it leaves.
    fn found_gone(&mut self, engine: &mut Engine, file: u32) -> bool {
        let Some(lives) = self.lives.as_mut() else {
            return false;
        };
        let index = lives.files[file as usize] as usize;
        if lives.life[index] != Life::Vanished(file) {
            return false;
        }
        engine.remove_file(file);
        lives.life[index] = Life::Gone;
        true
    }

    /// A walk of the trees at `now`, as the real sender makes at a round's start and at the
    /// stop: files gone leave, files new join (unsent, ReadWrite, in data set order), watched
    /// for writes from now on.
    fn walk(&mut self, engine: &mut Engine) {
        let now = self.now;
        self.vanish_due(engine, now);
        let Some(lives) = self.lives.as_mut() else {
            return;
        };
        for index in lives.unnoticed.drain(..) {
            if let Life::Vanished(id) = lives.life[index as usize] {
                engine.remove_file(id);
                lives.life[index as usize] = Life::Gone;
            }
        }
        let spans = &lives.spans;
        let mut found = Vec::new();
        while let Some(&index) = (lives.appearing.last()).filter(|&&i| spans[i as usize].0 <= now) {
            lives.appearing.pop();
            found.push(index);
        }
        found.sort_unstable();
        let mut joined = Vec::new();
        for index in found {
            if lives.life[index as usize] != Life::Unseen {
                continue;
            }
            // Its writes so far went with the round ends' (a monitor sees a file's writes from
            // when it watches it).
            let id = engine.add_file(self.dataset.files[index as usize].size, Kind::ReadWrite);
            lives.foresight.push_stream_of(&self.clock, index);
            lives.life[index as usize] = Life::Known(id);
            lives.files.push(index);
            joined.push((index, id));
        }
        for (index, id) in joined {
            self.resize(engine, index, id, now);
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

/// Where each file is in its recorded sizes (see [`Dataset::sizes`]).
#[derive(Debug)]
struct Sizes {
    /// By data set index: how many of its sizes are applied or passed.
    next: Vec<usize>,
    /// The data set indices of the files whose size changes.
    changing: Vec<u32>,
}

impl Sizes {
    fn new(dataset: &Dataset) -> Sizes {
        Sizes {
            next: alloc::vec![0; dataset.sizes.len()],
            changing: (0..dataset.sizes.len() as u32)
                .filter(|&i| !dataset.sizes[i as usize].is_empty())
                .collect(),
        }
    }

    /// The latest size of file `index` due by `until` and not yet taken, with its time.
    fn due(&mut self, dataset: &Dataset, index: u32, until: f64) -> Option<(f64, u64)> {
        let track = &dataset.sizes[index as usize];
        let next = &mut self.next[index as usize];
        let mut latest = None;
        while let Some(&change) = track.get(*next).filter(|c| c.0 <= until) {
            latest = Some(change);
            *next += 1;
        }
        latest
    }
}

/// The engine id of data set file `index` while its writes count: it is known and has not
/// vanished.
fn writing(lives: &Option<Lives>, index: u32) -> Option<u32> {
    match lives {
        None => Some(index),
        Some(lives) => match lives.life[index as usize] {
            Life::Known(id) => Some(id),
            _ => None,
        },
    }
}

/// `count` writes to data set file `index`, engine id `file`, from `first` to `last`, told to
/// the engine as if one by one: the first may dirty a clean copy, the last is the latest. With
/// `extents`, each lands somewhere.
fn wrote(
    engine: &mut Engine,
    extents: Option<&mut ExtentDraws>,
    index: u32,
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
                engine.on_write_to(file, 1, at, draws.next(index, size));
            }
        }
        None => engine.on_writes(file, count, first, last),
    }
}
