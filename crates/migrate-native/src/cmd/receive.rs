//! `migrate-native receive`: not built yet (see the issue tracker).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

/// Arguments of `receive`.
#[derive(Debug, Args)]
pub struct ReceiveArgs {}

/// Runs `receive`.
pub fn run(_args: ReceiveArgs) -> Result<ExitCode> {
    bail!("`receive` is not implemented yet")
}
