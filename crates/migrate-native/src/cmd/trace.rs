//! `migrate-native trace`: not built yet (see the issue tracker).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

/// Arguments of `trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {}

/// Runs `trace`.
pub fn run(_args: TraceArgs) -> Result<ExitCode> {
    bail!("`trace` is not implemented yet")
}
