//! `migrate-native sweep`: many runs, grouped into cells (everything but the seed fixed), each
//! summarised by its mean and 95% confidence interval over seeds.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use precopy_core::{Dataset, Metrics, PolicyKind, SimBuilder, SimConfig};
use rayon::prelude::*;

use super::simulate::policy_kind;
use super::{bad_input, bandwidth, duration, DatasetSource, ModelArgs};

/// Arguments of `sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Policies, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "baseline,proposed,sweep", value_parser = policy_kind)]
    pub policies: Vec<PolicyKind>,
    /// Data sets, comma-separated: fixed, variable, or files.
    #[arg(long, value_delimiter = ',', default_value = "fixed,variable", value_parser = DatasetSource::parse)]
    pub datasets: Vec<DatasetSource>,
    /// Bandwidths: a list (5,10,20) or a range FROM..TO:STEP in Mbps (5..100:5).
    #[arg(long, default_value = "5..100:5", value_parser = bandwidth_list)]
    pub bandwidths: BandwidthList,
    /// Seeds per cell (1..=N).
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Also sweep β over these values (overrides --beta).
    #[arg(long, value_delimiter = ',')]
    pub betas: Vec<u32>,
    /// Also sweep the monitoring period over these values (overrides --period).
    #[arg(long, value_delimiter = ',', value_parser = duration)]
    pub periods: Vec<f64>,
    /// Also sweep the write intensity over these values (overrides --intensity).
    #[arg(long, value_delimiter = ',')]
    pub intensities: Vec<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Output formats of `sweep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One row per cell.
    Csv,
    /// An array of cell objects.
    Json,
}

/// Bandwidths in bits per second.
#[derive(Debug, Clone)]
pub struct BandwidthList(pub Vec<f64>);

/// clap value parser: `5,10,20` or `5..100:5` (Mbps unless units are given in a list).
pub fn bandwidth_list(text: &str) -> Result<BandwidthList, String> {
    if let Some((from, rest)) = text.split_once("..") {
        let (to, step) = rest.split_once(':').unwrap_or((rest, "5"));
        let parse = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("bandwidth range `{text}`: `{s}` is not a number"))
        };
        let (from, to, step) = (parse(from)?, parse(to)?, parse(step)?);
        if !(from > 0.0 && step > 0.0 && to >= from && (to - from) / step < 10_000.0) {
            return Err(format!(
                "bandwidth range `{text}`: need 0 < FROM <= TO and STEP > 0"
            ));
        }
        let count = ((to - from) / step + 1e-9).floor() as usize + 1;
        return Ok(BandwidthList(
            (0..count).map(|i| (from + step * i as f64) * 1e6).collect(),
        ));
    }
    text.split(',')
        .map(bandwidth)
        .collect::<Result<_, _>>()
        .map(BandwidthList)
}

/// One cell: everything but the seed.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Index into the data sets.
    pub dataset: usize,
    /// Policy.
    pub policy: PolicyKind,
    /// Configuration; its seed is replaced per run.
    pub config: SimConfig,
}

/// A mean and the half-width of its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// Mean over seeds.
    pub mean: f64,
    /// Half-width of the 95% interval (Student's t), 0 for one seed.
    pub ci95: f64,
}

impl Estimate {
    /// Mean and interval of `values`.
    pub fn of(values: &[f64]) -> Estimate {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        if values.len() < 2 {
            return Estimate { mean, ci95: 0.0 };
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Estimate {
            mean,
            ci95: t95(values.len() - 1) * (var / n).sqrt(),
        }
    }
}

/// Two-sided 95% quantile of Student's t with `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    TABLE.get(df.wrapping_sub(1)).copied().unwrap_or(1.96)
}

/// A cell's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CellResult {
    /// Data-set label.
    pub dataset: String,
    /// Policy name.
    pub policy: &'static str,
    /// Link rate, Mbps.
    pub bandwidth_mbps: f64,
    /// β.
    pub beta: u32,
    /// Monitoring period, seconds.
    pub period_s: f64,
    /// Write intensity.
    pub intensity: f64,
    /// Seeds run.
    pub seeds: u64,
    /// Pre-copy bytes.
    pub precopy_bytes: Estimate,
    /// Final-copy bytes.
    pub final_bytes: Estimate,
    /// Downtime, seconds.
    pub downtime_s: Estimate,
    /// Total migration time, seconds.
    pub total_time_s: Estimate,
    /// Rounds.
    pub rounds: Estimate,
    /// Resent bytes.
    pub resent_bytes: Estimate,
    /// How pre-copy ended, per seed (e.g. `beta:4,safety-cap:1`).
    pub end_reasons: String,
}

/// Runs every cell for seeds 1..=`seeds`, in parallel, results in cell order.
pub fn run_cells(
    datasets: &[(String, Arc<Dataset>)],
    cells: &[Cell],
    seeds: u64,
    progress: &ProgressBar,
) -> Result<Vec<CellResult>> {
    // Validate once, so a bad parameter is reported before any work.
    for cell in cells {
        cell.config.validate().map_err(bad_input)?;
    }
    let runs: Vec<(usize, u64)> = (0..cells.len())
        .flat_map(|c| (1..=seeds).map(move |s| (c, s)))
        .collect();
    progress.set_length(runs.len() as u64);
    let metrics: Vec<Metrics> = runs
        .par_iter()
        .map(|&(c, seed)| {
            let cell = &cells[c];
            let config = SimConfig {
                seed,
                ..cell.config
            };
            let sim = SimBuilder::new(Arc::clone(&datasets[cell.dataset].1), cell.policy)
                .config(config)
                .build()
                .map_err(bad_input)?;
            let m = sim.run();
            progress.inc(1);
            Ok(m)
        })
        .collect::<Result<_>>()?;
    progress.finish_and_clear();
    Ok(cells
        .iter()
        .zip(metrics.chunks(seeds as usize))
        .map(|(cell, runs)| summarise(&datasets[cell.dataset].0, cell, runs, seeds))
        .collect())
}

fn summarise(dataset: &str, cell: &Cell, runs: &[Metrics], seeds: u64) -> CellResult {
    let est = |f: &dyn Fn(&Metrics) -> f64| Estimate::of(&runs.iter().map(f).collect::<Vec<_>>());
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for m in runs {
        let name = m.end_reason.name();
        match reasons.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => reasons.push((name, 1)),
        }
    }
    CellResult {
        dataset: dataset.to_string(),
        policy: cell.policy.name(),
        bandwidth_mbps: cell.config.bandwidth_bps / 1e6,
        beta: cell.config.params.beta,
        period_s: cell.config.period_s,
        intensity: cell.config.write_model.intensity,
        seeds,
        precopy_bytes: est(&|m| m.precopy_bytes as f64),
        final_bytes: est(&|m| m.final_bytes as f64),
        downtime_s: est(&|m| m.downtime_s),
        total_time_s: est(&|m| m.total_time_s),
        rounds: est(&|m| f64::from(m.rounds)),
        resent_bytes: est(&|m| m.resent_bytes as f64),
        end_reasons: reasons
            .iter()
            .map(|(n, c)| format!("{n}:{c}"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub fn progress_bar() -> ProgressBar {
    if std::io::stderr().is_terminal() {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs  {elapsed} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    }
}

/// Loads every data set once; the runs share it.
pub fn load_datasets(
    sources: &[DatasetSource],
    model: &ModelArgs,
) -> Result<Vec<(String, Arc<Dataset>)>> {
    sources
        .iter()
        .map(|s| Ok((s.label(), Arc::new(s.load(model)?))))
        .collect()
}

/// Writes cells as CSV.
pub fn write_csv(out: &mut impl Write, results: &[CellResult]) -> Result<()> {
    writeln!(
        out,
        "dataset,policy,bandwidth_mbps,beta,period_s,intensity,seeds,\
         precopy_bytes,precopy_bytes_ci95,final_bytes,final_bytes_ci95,\
         downtime_s,downtime_s_ci95,total_time_s,total_time_s_ci95,rounds,rounds_ci95,\
         resent_bytes,resent_bytes_ci95,end_reasons"
    )?;
    for r in results {
        write!(
            out,
            "{},{},{},{},{},{},{}",
            r.dataset, r.policy, r.bandwidth_mbps, r.beta, r.period_s, r.intensity, r.seeds
        )?;
        for e in [
            r.precopy_bytes,
            r.final_bytes,
            r.downtime_s,
            r.total_time_s,
            r.rounds,
            r.resent_bytes,
        ] {
            write!(out, ",{},{}", e.mean, e.ci95)?;
        }
        writeln!(out, ",{}", r.end_reasons)?;
    }
    Ok(())
}

/// Runs `sweep`.
pub fn run(args: SweepArgs) -> Result<ExitCode> {
    if args.seeds == 0 {
        return Err(bad_input("--seeds must be at least 1"));
    }
    let datasets = load_datasets(&args.datasets, &args.model)?;
    let betas = if args.betas.is_empty() {
        vec![args.model.beta]
    } else {
        args.betas.clone()
    };
    let periods = if args.periods.is_empty() {
        vec![args.model.period]
    } else {
        args.periods.clone()
    };
    let intensities = if args.intensities.is_empty() {
        vec![args.model.intensity]
    } else {
        args.intensities.clone()
    };
    let mut cells = Vec::new();
    for dataset in 0..datasets.len() {
        for &policy in &args.policies {
            for &bw in &args.bandwidths.0 {
                for &beta in &betas {
                    for &period in &periods {
                        for &intensity in &intensities {
                            let mut config = args.model.config(bw, 1);
                            config.params.beta = beta;
                            config.period_s = period;
                            config.write_model.intensity = intensity;
                            cells.push(Cell {
                                dataset,
                                policy,
                                config,
                            });
                        }
                    }
                }
            }
        }
    }
    let results = run_cells(&datasets, &cells, args.seeds, &progress_bar())?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Csv => write_csv(&mut out, &results)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &results)?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_lists() {
        assert_eq!(
            bandwidth_list("5..20:5").unwrap().0,
            [5e6, 10e6, 15e6, 20e6]
        );
        assert_eq!(bandwidth_list("5,1Gbps").unwrap().0, [5e6, 1e9]);
        assert!(bandwidth_list("20..5:5").is_err());
        assert!(bandwidth_list("5..x").is_err());
        assert!(bandwidth_list("0,5").is_err());
    }

    #[test]
    fn confidence_interval() {
        let e = Estimate::of(&[1.0, 2.0, 3.0]);
        assert_eq!(e.mean, 2.0);
        // sd = 1, n = 3, t(2) = 4.303.
        assert!((e.ci95 - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(Estimate::of(&[5.0]).ci95, 0.0);
    }
}
