//! End-to-end tests: real programs with known file use, traced for real. They need ptrace
//! (root in CI); without it each test prints why it is skipped and passes.

mod attach;
mod common;
mod monitor;
mod sharing;
mod spawn;
mod stopfree;
