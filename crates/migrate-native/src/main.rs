//! `migrate-native`: simulate, trace and really perform pre-copy migration of an application's
//! files. `main` parses arguments, runs one subcommand, and maps errors to exit codes
//! (2 for bad input, 1 for everything else).

mod cmd;
mod svg;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Pre-copy migration of an application's files, ordered by update expectation.
#[derive(Debug, Parser)]
#[command(name = "migrate-native", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate one migration and print its figures.
    Simulate(cmd::simulate::SimulateArgs),
    /// Sweep policies × data sets × bandwidths × seeds; mean and 95% interval per cell.
    Sweep(cmd::sweep::SweepArgs),
    /// Regenerate the paper's Figures 2–5 as CSV and SVG, with its claims beside ours.
    Paper(cmd::paper::PaperArgs),
    /// Trace an application's file use with ptrace (identification step).
    Trace(cmd::trace::TraceArgs),
    /// Receive migrations (the destination daemon).
    Receive(cmd::receive::ReceiveArgs),
    /// Migrate an application's files to a receiver, pre-copying in the policy's order.
    Send(cmd::send::SendArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Sweep(args) => cmd::sweep::run(args),
        Command::Paper(args) => cmd::paper::run(args),
        Command::Trace(args) => cmd::trace::run(args),
        Command::Receive(args) => cmd::receive::run(args),
        Command::Send(args) => cmd::send::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("migrate-native: {error:#}");
            cmd::exit_code(&error)
        }
    }
}
