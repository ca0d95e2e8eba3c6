//! `migrate-native simulate`: one run of one policy, printed as a summary, JSON or CSV.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use precopy_core::units::format_bytes;
use precopy_core::{Metrics, PolicyKind, RoundPoint, RunReport, SimBuilder, SimConfig};

use super::{bad_input, bandwidth, DatasetSource, ModelArgs};

/// Arguments of `simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Data set: fixed, variable, a groups file (JSON) or a trace (JSON Lines).
    #[arg(long, default_value = "fixed", value_parser = DatasetSource::parse)]
    pub dataset: DatasetSource,
    /// Link rate, e.g. 10Mbps (a bare number is Mbps).
    #[arg(long, default_value = "10Mbps", value_parser = bandwidth)]
    pub bandwidth: f64,
    /// Policy: baseline, proposed, sweep, converge, qemu, clairvoyant, p-only, size-only, random.
    #[arg(long, default_value = "proposed", value_parser = policy_kind)]
    pub policy: PolicyKind,
    /// Seed of the write processes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object: the metrics, the per-round series and the configuration.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the per-round series as CSV.
    #[arg(long)]
    pub csv: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// clap value parser for a policy name.
pub fn policy_kind(text: &str) -> Result<PolicyKind, String> {
    PolicyKind::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = PolicyKind::ALL.iter().map(|p| p.name()).collect();
        format!("policy `{text}`: expected one of {}", names.join(", "))
    })
}

/// Runs one simulation; errors in the configuration are bad input.
pub fn simulate(
    source: &DatasetSource,
    policy: PolicyKind,
    config: SimConfig,
    model: &ModelArgs,
) -> Result<Metrics> {
    let dataset = source.load(model)?;
    let sim = SimBuilder::new(dataset, policy)
        .config(config)
        .build()
        .map_err(bad_input)?;
    Ok(sim.run())
}

/// Runs `simulate`.
pub fn run(args: SimulateArgs) -> Result<ExitCode> {
    let config = args.model.config(args.bandwidth, args.seed);
    let metrics = simulate(&args.dataset, args.policy, config, &args.model)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = RunReport {
            metrics: &metrics,
            config: &config,
        };
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else if args.csv {
        write_series_csv(&mut out, &metrics)?;
    } else {
        write_summary(&mut out, &metrics, &config)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The per-round series as CSV.
pub fn write_series_csv(out: &mut impl Write, metrics: &Metrics) -> Result<()> {
    writeln!(out, "{}", RoundPoint::CSV_HEADER)?;
    for p in &metrics.series {
        writeln!(out, "{}", p.csv_row())?;
    }
    Ok(())
}

fn write_summary(out: &mut impl Write, m: &Metrics, config: &SimConfig) -> Result<()> {
    writeln!(
        out,
        "{} on {} ({} files, {}) at {} Mbps, period {} s, seed {}",
        m.policy,
        m.dataset,
        m.files,
        format_bytes(m.total_bytes as f64),
        m.bandwidth_bps / 1e6,
        config.period_s,
        m.seed
    )?;
    if config.delta {
        writeln!(
            out,
            "  {:<14} resends cost the {}-byte blocks written since the last send; writes of {} bytes",
            "delta", config.block_bytes, config.write_model.write_bytes
        )?;
    }
    if let precopy_core::TraceAfter::Loop { until_s } = config.trace_after {
        let until = until_s.map_or(String::new(), |s| format!(", copies before {s} s"));
        writeln!(
            out,
            "  {:<14} loop: a replayed trace's writes repeat, one trace duration apart{until}",
            "after trace",
        )?;
    }
    if config.compress_ratio != 1.0 {
        writeln!(
            out,
            "  {:<14} {} to 1: a transfer puts 1/{} of its bytes on the wire; bytes below are the files'",
            "compression", config.compress_ratio, config.compress_ratio
        )?;
    }
    let rows = [
        (
            "pre-copy",
            format!(
                "{} in {} transfers ({} resent in {} transfers)",
                format_bytes(m.precopy_bytes as f64),
                m.precopy_files,
                format_bytes(m.resent_bytes as f64),
                m.resent_files
            ),
        ),
        (
            "final copy",
            format!(
                "{} in {} files",
                format_bytes(m.final_bytes as f64),
                m.final_files
            ),
        ),
        ("downtime", format!("{:.2} s", m.downtime_s)),
        ("pre-copy time", format!("{:.1} s", m.precopy_time_s)),
        ("total time", format!("{:.1} s", m.total_time_s)),
        ("rounds", m.rounds.to_string()),
        ("ended", m.end_reason.to_string()),
    ];
    for (name, value) in rows {
        writeln!(out, "  {name:<14} {value}")?;
    }
    Ok(())
}
