//! `migrate-native paper`: the paper's Figures 2–5 (pre-copy and final-copy bytes against
//! bandwidth, both data sets) as CSV and SVG, and its claims beside ours.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use precopy_core::paper::{bandwidths_mbps, reduction_pct, Quantity, Reported, CLAIMS};
use precopy_core::{PolicyKind, Preset};

use super::simulate::policy_kind;
use super::sweep::{progress_bar, run_cells, write_csv, Cell, CellResult, Estimate};
use super::{bad_input, write_atomic, DatasetSource, ModelArgs};
use crate::svg::{line_chart, Series};

/// Arguments of `paper`.
#[derive(Debug, Args)]
pub struct PaperArgs {
    /// Folder for the CSV and SVG files (created if missing).
    #[arg(long, default_value = "out/paper")]
    pub out: PathBuf,
    /// Seeds per point.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Policies drawn; the claims compare `proposed` with `baseline`, which are always included.
    #[arg(long, value_delimiter = ',', default_value = "baseline,proposed,sweep", value_parser = policy_kind)]
    pub policies: Vec<PolicyKind>,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// The figures: number, data set, quantity.
const FIGURES: [(u32, Preset, Quantity); 4] = [
    (2, Preset::Fixed, Quantity::PrecopyBytes),
    (3, Preset::Fixed, Quantity::FinalBytes),
    (4, Preset::Variable, Quantity::PrecopyBytes),
    (5, Preset::Variable, Quantity::FinalBytes),
];

fn value(result: &CellResult, quantity: Quantity) -> Estimate {
    match quantity {
        Quantity::PrecopyBytes => result.precopy_bytes,
        Quantity::FinalBytes => result.final_bytes,
    }
}

/// Mean of one policy's quantity per bandwidth.
fn means(
    results: &[CellResult],
    preset: Preset,
    policy: PolicyKind,
    quantity: Quantity,
) -> Vec<(f64, f64)> {
    results
        .iter()
        .filter(|r| r.dataset == preset.name() && r.policy == policy.name())
        .map(|r| (r.bandwidth_mbps, value(r, quantity).mean))
        .collect()
}

/// Runs `paper`.
pub fn run(args: PaperArgs) -> Result<ExitCode> {
    if args.seeds == 0 {
        return Err(bad_input("--seeds must be at least 1"));
    }
    let mut policies = vec![PolicyKind::Baseline, PolicyKind::Proposed];
    for p in &args.policies {
        if !policies.contains(p) {
            policies.push(*p);
        }
    }
    let sources = [
        DatasetSource::Preset(Preset::Fixed),
        DatasetSource::Preset(Preset::Variable),
    ];
    let datasets = super::sweep::load_datasets(&sources, &args.model)?;
    let mut cells = Vec::new();
    for dataset in 0..datasets.len() {
        for &policy in &policies {
            for bw in bandwidths_mbps() {
                cells.push(Cell {
                    dataset,
                    policy,
                    config: args.model.config(bw * 1e6, 1),
                });
            }
        }
    }
    let results = run_cells(&datasets, &cells, args.seeds, &progress_bar())?;

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut all = Vec::new();
    write_csv(&mut all, &results)?;
    write_atomic(&args.out.join("paper.csv"), &all)?;
    for (number, preset, quantity) in FIGURES {
        let stem = format!(
            "fig{number}_{}_{}",
            preset.name(),
            match quantity {
                Quantity::PrecopyBytes => "precopy",
                Quantity::FinalBytes => "final",
            }
        );
        let mut csv = String::from("bandwidth_mbps");
        for p in &policies {
            let _ = write!(csv, ",{0}_gb,{0}_ci95_gb", p.name());
        }
        csv.push('\n');
        let series: Vec<Series> = policies
            .iter()
            .map(|&p| Series {
                label: p.name().to_string(),
                points: results
                    .iter()
                    .filter(|r| r.dataset == preset.name() && r.policy == p.name())
                    .map(|r| {
                        let e = value(r, quantity);
                        (r.bandwidth_mbps, e.mean / 1e9, e.ci95 / 1e9)
                    })
                    .collect(),
            })
            .collect();
        for (i, bw) in bandwidths_mbps().into_iter().enumerate() {
            let _ = write!(csv, "{bw}");
            for s in &series {
                let (_, mean, ci) = s.points[i];
                let _ = write!(csv, ",{mean},{ci}");
            }
            csv.push('\n');
        }
        write_atomic(&args.out.join(format!("{stem}.csv")), csv.as_bytes())?;
        let title = format!(
            "Fig. {number}: {} data set, {}",
            preset.name(),
            quantity.label()
        );
        let svg = line_chart(&title, "bandwidth (Mbps)", "GB (mean, 95% CI)", &series);
        write_atomic(&args.out.join(format!("{stem}.svg")), svg.as_bytes())?;
    }

    let report = claims_report(&results, &policies);
    write_atomic(&args.out.join("claims.md"), report.as_bytes())?;
    print!("{report}");
    eprintln!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// The paper's claims next to ours, and how our `sweep` policy compares with `proposed`.
fn claims_report(results: &[CellResult], policies: &[PolicyKind]) -> String {
    let mut out = String::from(
        "| data set | quantity | bandwidths | paper (proposed vs baseline) | ours | holds |\n\
         |---|---|---|---|---|---|\n",
    );
    for claim in CLAIMS {
        let baseline = means(results, claim.dataset, PolicyKind::Baseline, claim.quantity);
        let proposed = means(results, claim.dataset, PolicyKind::Proposed, claim.quantity);
        let points: Vec<(f64, f64, f64)> = baseline
            .iter()
            .zip(&proposed)
            .map(|(&(bw, b), &(_, p))| (bw, b, p))
            .collect();
        let Some(a) = claim.assess(&points) else {
            continue;
        };
        let paper = match claim.reported {
            Reported::Reduction { min_pct, max_pct } => format!("−{min_pct:.0}% to −{max_pct:.0}%"),
            Reported::AboutEqual => "about equal".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} to {} | {} |",
            claim.dataset.name(),
            claim.quantity.label(),
            claim.band.label(),
            paper,
            signed(-a.ours_min_pct),
            signed(-a.ours_max_pct),
            if a.holds { "yes" } else { "no" }
        );
    }
    if policies.contains(&PolicyKind::Sweep) {
        out.push_str("\nsweep (ours) vs proposed, change per bandwidth (negative is better):\n\n");
        for preset in Preset::ALL {
            for quantity in [Quantity::PrecopyBytes, Quantity::FinalBytes] {
                let proposed = means(results, preset, PolicyKind::Proposed, quantity);
                let ours = means(results, preset, PolicyKind::Sweep, quantity);
                let changes: Vec<String> = proposed
                    .iter()
                    .zip(&ours)
                    .map(|(&(bw, p), &(_, o))| format!("{bw}:{}", signed(-reduction_pct(p, o))))
                    .collect();
                let _ = writeln!(
                    out,
                    "- {} {}: {}",
                    preset.name(),
                    quantity.label(),
                    changes.join(" ")
                );
            }
        }
    }
    out
}

fn signed(pct: f64) -> String {
    if !pct.is_finite() {
        "n/a".to_string()
    } else if pct.abs() < 0.5 {
        // Also keeps "-0%" out of the tables.
        "±0%".to_string()
    } else {
        format!("{pct:+.0}%")
    }
}
