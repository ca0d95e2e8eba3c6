//! The subcommands, and what they share: the model's parameters and data-set loading.

pub mod paper;
pub mod receive;
pub mod send;
pub mod simulate;
pub mod sweep;
pub mod trace;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use precopy_core::dataset::GroupsFile;
use precopy_core::trace::Trace;
use precopy_core::units::{
    parse_bandwidth, parse_compress_ratio, parse_duration, parse_size, parse_write_bytes,
};
use precopy_core::{
    Dataset, Estimator, PolicyParams, Preset, RateMapping, SimConfig, TraceAfter, WriteBytes,
    WriteModel,
};

/// An error caused by the user's input: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Wraps any displayable error as bad input.
pub fn bad_input(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(BadInput(error.to_string()))
}

/// 2 for bad input, 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> ExitCode {
    if error.chain().any(|e| e.is::<BadInput>()) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// clap value parser: a bandwidth such as `10Mbps` into bits per second.
pub fn bandwidth(text: &str) -> Result<f64, String> {
    parse_bandwidth(text).map_err(|e| format!("bandwidth `{text}`: {e}"))
}

/// clap value parser: a duration such as `500ms` into seconds.
pub fn duration(text: &str) -> Result<f64, String> {
    parse_duration(text).map_err(|e| format!("duration `{text}`: {e}"))
}

/// clap value parser: a duration that may be zero.
pub fn duration_or_zero(text: &str) -> Result<f64, String> {
    if text
        .trim()
        .trim_end_matches(|c: char| c.is_alphabetic())
        .parse::<f64>()
        == Ok(0.0)
    {
        return Ok(0.0);
    }
    duration(text)
}

fn estimator(text: &str) -> Result<Estimator, String> {
    if let Some(alpha) = text.strip_prefix("ewma:") {
        let alpha: f64 = alpha
            .parse()
            .map_err(|_| format!("estimator `{text}`: alpha is not a number"))?;
        return Ok(Estimator::Ewma { alpha });
    }
    Estimator::from_name(text).ok_or_else(|| {
        format!("estimator `{text}`: expected share, ewma, ewma:ALPHA or cumulative")
    })
}

fn write_bytes(text: &str) -> Result<WriteBytes, String> {
    parse_write_bytes(text).map_err(|e| {
        format!("write size `{text}`: {e} (expected whole, a size like 8KiB, MIN..MAX or exp:MEAN)")
    })
}

fn block_size(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| format!("block size `{text}`: {e}"))
}

fn compress_ratio(text: &str) -> Result<f64, String> {
    parse_compress_ratio(text).map_err(|e| format!("compression ratio `{text}`: {e}"))
}

fn rate_mapping(text: &str) -> Result<RateMapping, String> {
    RateMapping::from_name(text)
        .ok_or_else(|| format!("rate mapping `{text}`: expected linear or per-window"))
}

fn trace_after(text: &str) -> Result<TraceAfter, String> {
    TraceAfter::from_name(text)
        .ok_or_else(|| format!("trace-after `{text}`: expected quiet or loop"))
}

/// The model's parameters, shared by `simulate`, `sweep` and `paper`. Defaults: docs/model.md.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Monitoring period T.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub period: f64,
    /// β: U values kept by the proposed policy's end test (even, ≥ 2).
    #[arg(long, default_value_t = PolicyParams::default().beta)]
    pub beta: u32,
    /// The β test stops when the ratio is within 1 ± tolerance.
    #[arg(long, default_value_t = PolicyParams::default().tolerance)]
    pub tolerance: f64,
    /// p̂ estimator: share (paper), ewma, ewma:ALPHA, cumulative.
    #[arg(long, default_value = "share", value_parser = estimator)]
    pub estimator: Estimator,
    /// How "accessed with probability p" becomes a write rate: linear or per-window.
    #[arg(long, default_value = "linear", value_parser = rate_mapping)]
    pub rate_mapping: RateMapping,
    /// Global write intensity, writes per second at p = 1.
    #[arg(long, default_value_t = WriteModel::default().intensity)]
    pub intensity: f64,
    /// Fixed cost per file transfer.
    #[arg(long, default_value = "0s", value_parser = duration_or_zero)]
    pub overhead: f64,
    /// Multiplies every group's file count (1 = the paper's size).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Baseline iterations.
    #[arg(long, default_value_t = PolicyParams::default().baseline_iterations)]
    pub baseline_iterations: u32,
    /// Downtime limit of the QEMU-style and converge policies: they stop pre-copy once the final
    /// copy would take at most this long on the link.
    #[arg(long, visible_alias = "max-downtime", default_value = "300ms", value_parser = duration_or_zero)]
    pub downtime_limit: f64,
    /// Converge: passes in a row (each sending as many bytes as were left at its start) that do
    /// not cut what is left by 10 % before it stops.
    #[arg(long, default_value_t = PolicyParams::default().stall_passes)]
    pub stall_passes: u32,
    /// Safety cap on pre-copy rounds.
    #[arg(long, default_value_t = SimConfig::default().max_rounds)]
    pub max_rounds: u32,
    /// Bytes one write dirties: whole (the paper), a size (8KiB), MIN..MAX (uniform) or
    /// exp:MEAN. Only delta resends' costs depend on it.
    #[arg(long, default_value = "whole", value_parser = write_bytes)]
    pub write_bytes: WriteBytes,
    /// Delta resends: a file the destination holds costs the blocks written since its last send.
    #[arg(long)]
    pub delta: bool,
    /// Block size of delta resends.
    #[arg(long, default_value = "8KiB", value_parser = block_size, requires = "delta")]
    pub block_size: u64,
    /// Replay a trace's writes again and again, each copy shifted by the trace's duration, up to
    /// this time, so that a migration longer than the recording does not find the application
    /// quiet (0: once, as recorded). `--trace-after loop` without an end.
    #[arg(long, default_value = "0s", value_parser = duration_or_zero, conflicts_with = "trace_after")]
    pub loop_trace: f64,
    /// Compression ratio R ≥ 1 of the link: a transfer of n bytes puts n / R on the wire
    /// (1: none, the paper's model). Byte figures stay the files' bytes.
    #[arg(long, default_value = "1", value_parser = compress_ratio)]
    pub compress_ratio: f64,
    /// What a replayed trace's files do once the trace is over: quiet (nothing more) or loop
    /// (its writes repeat, one trace duration apart, for as long as the migration lasts). See
    /// docs/trace-format.md.
    #[arg(long, default_value = "quiet", value_parser = trace_after)]
    pub trace_after: TraceAfter,
}

impl ModelArgs {
    /// The simulation configuration for one bandwidth and seed.
    pub fn config(&self, bandwidth_bps: f64, seed: u64) -> SimConfig {
        let defaults = PolicyParams::default();
        SimConfig {
            bandwidth_bps,
            period_s: self.period,
            overhead_s: self.overhead,
            seed,
            write_model: WriteModel {
                mapping: self.rate_mapping,
                intensity: self.intensity,
                write_bytes: self.write_bytes,
            },
            delta: self.delta,
            block_bytes: self.block_size,
            compress_ratio: self.compress_ratio,
            trace_after: match self.loop_trace {
                until if until > 0.0 => TraceAfter::Loop {
                    until_s: Some(until),
                },
                _ => self.trace_after,
            },
            max_rounds: self.max_rounds,
            params: PolicyParams {
                beta: self.beta,
                tolerance: self.tolerance,
                estimator: self.estimator,
                baseline_iterations: self.baseline_iterations,
                downtime_limit_s: self.downtime_limit,
                stall_passes: self.stall_passes,
                ..defaults
            },
        }
    }
}

/// A data set named on the command line: a preset, a groups file (JSON) or a trace (JSON Lines).
#[derive(Debug, Clone)]
pub enum DatasetSource {
    /// fixed or variable.
    Preset(Preset),
    /// A file.
    File(std::path::PathBuf),
}

impl DatasetSource {
    /// Parses `fixed`, `variable`, or a path.
    pub fn parse(text: &str) -> Result<DatasetSource, String> {
        match Preset::from_name(text) {
            Some(preset) => Ok(DatasetSource::Preset(preset)),
            None if Path::new(text).exists() => Ok(DatasetSource::File(text.into())),
            None => Err(format!(
                "data set `{text}`: not `fixed`, `variable`, or an existing file"
            )),
        }
    }

    /// A short label for tables.
    pub fn label(&self) -> String {
        match self {
            DatasetSource::Preset(p) => p.name().to_string(),
            DatasetSource::File(path) => path.display().to_string(),
        }
    }

    /// Loads the data set. A file is a trace if its first line is a trace header.
    pub fn load(&self, model: &ModelArgs) -> Result<Dataset> {
        let scale = model.scale;
        match self {
            DatasetSource::Preset(preset) => preset.dataset(scale).map_err(bad_input),
            DatasetSource::File(path) => {
                let text = read_text(path)?;
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                let data = if first.contains(precopy_core::trace::FORMAT) {
                    let trace = Trace::parse(&text)
                        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
                    trace.dataset()
                } else {
                    let groups = GroupsFile::parse(&text)
                        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
                    groups.dataset(scale)
                };
                data.map_err(|e| bad_input(format!("{}: {e}", path.display())))
            }
        }
    }
}

/// The zstd frame magic (RFC 8878, 3.1.1): traces may ship compressed.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// A decompressed data set larger than this is refused rather than filling memory (a zstd bomb).
const MAX_DECOMPRESSED: u64 = 4 << 30;

/// Reads a UTF-8 data set or trace, decompressing it first if it is zstd (whatever its name).
pub fn read_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = if bytes.starts_with(&ZSTD_MAGIC) {
        let mut text = Vec::new();
        zstd::stream::read::Decoder::new(bytes.as_slice())
            .and_then(|d| d.take(MAX_DECOMPRESSED + 1).read_to_end(&mut text))
            .map_err(|e| bad_input(format!("{}: not a valid zstd stream: {e}", path.display())))?;
        if text.len() as u64 > MAX_DECOMPRESSED {
            return Err(bad_input(format!(
                "{}: decompresses to more than {MAX_DECOMPRESSED} bytes",
                path.display()
            )));
        }
        text
    } else {
        bytes
    };
    String::from_utf8(bytes).map_err(|e| {
        bad_input(format!(
            "{}: not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Writes `contents` to `path` atomically: a temporary file beside it, then a rename, so a
/// failure never leaves a partial file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// Reads a token file into the handshake key (a token too short is bad input).
pub fn load_key(path: &std::path::Path) -> anyhow::Result<precopy_proto::Key> {
    use anyhow::Context;
    let token =
        std::fs::read(path).with_context(|| format!("reading token file {}", path.display()))?;
    precopy_proto::Key::from_token(&token)
        .map_err(|e| bad_input(format!("token file {}: {e}", path.display())))
}
