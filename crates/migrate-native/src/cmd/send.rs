//! `migrate-native send`: not built yet (see the issue tracker).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

/// Arguments of `send`.
#[derive(Debug, Args)]
pub struct SendArgs {}

/// Runs `send`.
pub fn run(_args: SendArgs) -> Result<ExitCode> {
    bail!("`send` is not implemented yet")
}
