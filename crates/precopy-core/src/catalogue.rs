//! The workload catalogue: the traces `scripts/record-workloads.sh` records and the repository
//! ships as `data/traces/NAME.jsonl.zst` (each with a `NAME.log` saying what ran), and the one
//! way `docs/real-apps.md` replays them, so that the browser, the CLI and the docs agree.
//!
//! The core reads no file: callers decompress the trace and pass its text (the CLI with the
//! `zstd` library, the web app with a pure-Rust decoder of the bytes it fetches from its server).
//!
//! ```
//! use precopy_core::catalogue::{self, Recording};
//! let log = "workload: redis\nload: redis-benchmark for 45s\n";
//! assert_eq!(Recording::parse(log).load, "redis-benchmark for 45s");
//! // The docs' replay at 20 Mbit/s: T = 10 s, writes looped to 20000 s.
//! let config = catalogue::config(20e6);
//! assert_eq!(config.period_s, 10.0);
//! ```

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::sim::{ConfigError, SimBuilder, SimConfig};
use crate::trace::Trace;
use crate::workload::TraceAfter;
use crate::{Dataset, DatasetError, Metrics, PolicyKind};

/// The shipped workloads, in the order the docs list them. A test checks that it names every
/// `data/traces/*.jsonl.zst` and nothing else.
pub const NAMES: [&str; 6] = ["postgres", "redis", "sqlite", "build", "git", "nginx"];

/// Monitoring period of the docs' replays (`scripts/real-apps.sh`: `PERIOD=10s`).
pub const PERIOD_S: f64 = 10.0;
/// The docs loop each trace's writes up to this time (`scripts/real-apps.sh`: `LOOP=20000s`):
/// a migration at 5 Mbit/s outlasts a 45 s recording, and a quiet application would flatter
/// every policy (docs/trace-format.md, "After the trace").
pub const LOOP_UNTIL_S: f64 = 20_000.0;
/// The docs' bandwidths, Mbit/s.
pub const BANDWIDTHS_MBPS: [f64; 5] = [5.0, 10.0, 20.0, 50.0, 100.0];
/// The docs' policies, in their column order.
pub const POLICIES: [PolicyKind; 6] = [
    PolicyKind::Baseline,
    PolicyKind::Proposed,
    PolicyKind::Sweep,
    PolicyKind::Converge,
    PolicyKind::Qemu,
    PolicyKind::Clairvoyant,
];

/// The docs' extension of a trace: writes looped to [`LOOP_UNTIL_S`].
pub const TRACE_AFTER: TraceAfter = TraceAfter::Loop {
    until_s: Some(LOOP_UNTIL_S),
};

/// The configuration the docs replay a workload with at `bandwidth_bps`: what
/// `migrate-native sweep --seeds 1 --period 10s --loop-trace 20000s` gives a cell.
pub fn config(bandwidth_bps: f64) -> SimConfig {
    SimConfig {
        bandwidth_bps,
        period_s: PERIOD_S,
        seed: 1,
        trace_after: TRACE_AFTER,
        ..SimConfig::default()
    }
}

/// The command that computes the same cells natively (as `scripts/real-apps.sh` runs it).
pub fn command_line(
    workloads: &[&str],
    policies: &[PolicyKind],
    bandwidths_mbps: &[f64],
) -> String {
    let join = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(",");
    format!(
        "migrate-native sweep --datasets {} --policies {} --bandwidths {} --seeds 1 --period {PERIOD_S}s --loop-trace {LOOP_UNTIL_S}s",
        join(&mut workloads.iter().map(|w| format!("data/traces/{w}.jsonl.zst"))),
        join(&mut policies.iter().map(|p| p.name().to_string())),
        join(&mut bandwidths_mbps.iter().map(|b| format!("{b}"))),
    )
}

/// What a recording's `NAME.log` says (lines `key: value`; missing keys stay empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recording {
    /// What ran, e.g. `pgbench -i -s 10, then pgbench -n -c 4 -j 2 -R 200 -T 45`.
    pub load: String,
    /// When and with which settings it was recorded.
    pub recorded: String,
}

impl Recording {
    /// Reads a `NAME.log`.
    pub fn parse(log: &str) -> Recording {
        let mut recording = Recording::default();
        for line in log.lines() {
            match line.split_once(':') {
                Some(("load", value)) => recording.load = value.trim().to_string(),
                Some(("recorded", value)) => recording.recorded = value.trim().to_string(),
                _ => {}
            }
        }
        recording
    }
}

/// A shipped trace, parsed, with the data set it replays as.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Its name (`data/traces/NAME.jsonl.zst`).
    pub name: String,
    /// What its log says.
    pub recording: Recording,
    /// The trace.
    pub trace: Arc<Trace>,
    /// The data set it replays as (shared by every run).
    pub dataset: Arc<Dataset>,
}

/// Why a shipped trace cannot be replayed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CatalogueError {
    /// The trace does not parse.
    Trace(crate::trace::TraceError),
    /// It parses but makes no data set.
    Dataset(DatasetError),
}

impl core::fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CatalogueError::Trace(e) => write!(f, "{e}"),
            CatalogueError::Dataset(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CatalogueError {}

impl Workload {
    /// Parses a workload from its decompressed trace and its log.
    pub fn parse(name: &str, trace_text: &str, log: &str) -> Result<Workload, CatalogueError> {
        let trace = Trace::parse(trace_text).map_err(CatalogueError::Trace)?;
        let dataset = trace.dataset().map_err(CatalogueError::Dataset)?;
        Ok(Workload {
            name: name.to_string(),
            recording: Recording::parse(log),
            trace: Arc::new(trace),
            dataset: Arc::new(dataset),
        })
    }

    /// One line: what ran, files, bytes, duration, e.g.
    /// `pgbench … · 240 files, 428.1 MB · 45 s recorded`.
    pub fn describe(&self) -> String {
        let load = match self.recording.load.as_str() {
            "" => "recorded by scripts/record-workloads.sh",
            load => load,
        };
        format!(
            "{load} · {} files, {:.1} MB · {:.0} s recorded (trace v{})",
            self.dataset.files.len(),
            self.dataset.total_bytes() as f64 / 1e6,
            self.trace.duration_s,
            self.trace.version
        )
    }

    /// Runs one cell of the docs' tables: `policy` at `bandwidth_bps` with [`config`].
    pub fn run(&self, policy: PolicyKind, bandwidth_bps: f64) -> Result<Figures, ConfigError> {
        let metrics = SimBuilder::new(Arc::clone(&self.dataset), policy)
            .config(config(bandwidth_bps))
            .build()?
            .run();
        Ok(Figures::of(&self.name, &metrics))
    }
}

/// One run's figures, as the docs' tables have them.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Figures {
    /// Workload name.
    pub workload: String,
    /// Policy name.
    pub policy: String,
    /// Link rate, Mbit/s.
    pub bandwidth_mbps: f64,
    /// Files there at the start.
    pub files: u32,
    /// Their bytes.
    pub total_bytes: u64,
    /// Pre-copy bytes, resends included (network load).
    pub precopy_bytes: u64,
    /// Final-copy bytes.
    pub final_bytes: u64,
    /// Resent bytes.
    pub resent_bytes: u64,
    /// Downtime, seconds.
    pub downtime_s: f64,
    /// Start to the end of the final copy, seconds.
    pub total_time_s: f64,
    /// Pre-copy rounds.
    pub rounds: u32,
    /// Why pre-copy ended (`EndReason::name`).
    pub end_reason: String,
}

impl Figures {
    /// The figures of a finished run of `workload`.
    pub fn of(workload: &str, m: &Metrics) -> Figures {
        Figures {
            workload: workload.to_string(),
            policy: m.policy.clone(),
            bandwidth_mbps: m.bandwidth_bps / 1e6,
            files: m.files,
            total_bytes: m.total_bytes,
            precopy_bytes: m.precopy_bytes,
            final_bytes: m.final_bytes,
            resent_bytes: m.resent_bytes,
            downtime_s: m.downtime_s,
            total_time_s: m.total_time_s,
            rounds: m.rounds,
            end_reason: m.end_reason.name().to_string(),
        }
    }

    /// Stop-and-copy's downtime at this bandwidth: every byte sent with the application stopped.
    pub fn stop_and_copy_s(&self) -> f64 {
        self.total_bytes as f64 * 8.0 / (self.bandwidth_mbps * 1e6)
    }
}

/// The fixed settings of the golden figures: 20 Mbit/s, the paper's two policies and ours.
pub const GOLDEN_POLICIES: [PolicyKind; 3] = [
    PolicyKind::Baseline,
    PolicyKind::Proposed,
    PolicyKind::Converge,
];
/// Bandwidth of the golden figures, bit/s.
pub const GOLDEN_BANDWIDTH_BPS: f64 = 20e6;

/// The golden figures of one workload (`crates/precopy-core/tests/golden/catalogue.json` holds
/// every shipped one's; the native tests and the browser tests both compare with it).
pub fn golden_runs(workload: &Workload) -> Result<Vec<Figures>, ConfigError> {
    GOLDEN_POLICIES
        .iter()
        .map(|&policy| workload.run(policy, GOLDEN_BANDWIDTH_BPS))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_says_what_ran() {
        let log = "workload: nginx\nrecorded: 2026-12-02T11:53:46Z DURATION=45\n\
                   files: 25  write records: 5189\nload: ab -c 4 over 5 pages: 1-256 KiB\n";
        let r = Recording::parse(log);
        assert_eq!(r.load, "ab -c 4 over 5 pages: 1-256 KiB");
        assert_eq!(r.recorded, "2026-12-02T11:53:46Z DURATION=45");
        assert_eq!(Recording::parse("nothing here"), Recording::default());
    }

    #[test]
    fn the_command_line_names_the_docs_settings() {
        let line = command_line(&["redis", "git"], &[PolicyKind::Proposed], &[5.0, 12.5]);
        assert_eq!(
            line,
            "migrate-native sweep --datasets data/traces/redis.jsonl.zst,data/traces/git.jsonl.zst \
             --policies proposed --bandwidths 5,12.5 --seeds 1 --period 10s --loop-trace 20000s"
        );
    }

    #[test]
    fn a_bad_trace_is_refused_with_its_line() {
        let text =
            "{\"type\":\"header\",\"format\":\"precopy-trace\",\"version\":1,\"period_s\":1}\n\
                    {\"type\":\"write\",\"t\":1,\"id\":0}\n";
        let e = Workload::parse("x", text, "").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
