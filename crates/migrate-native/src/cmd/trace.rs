//! `migrate-native trace`: run (or attach to) an application under ptrace and record which
//! files it uses, as a trace (JSON Lines, replayable by `simulate --dataset`) and a manifest
//! (JSON). The work is in the `precopy-trace` crate; this file maps arguments and writes files.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::cmd::{duration, duration_or_zero};

/// Arguments of `trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Monitoring period T: the manifest counts writes per period; the trace records it.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub period: f64,
    /// Where to write the trace (JSON Lines).
    #[arg(long, default_value = "trace.jsonl")]
    pub out: PathBuf,
    /// Where to write the manifest (JSON): every file with size, kind, writes per period,
    /// first/last access, and the processes sharing them.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Leave out files matching GLOB (`*` also matches `/`). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Record only files matching GLOB. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Add the other files of processes sharing ours to the manifest (transitively).
    #[arg(long)]
    pub follow_sharing: bool,
    /// Also record every file under DIR as it is when tracing starts, opened or not (the
    /// filters apply): a migration of the application's data moves the files it never opens
    /// too. Repeatable.
    #[arg(long, value_name = "DIR")]
    pub tree: Vec<PathBuf>,
    /// How writes are observed: `fanotify` stops the application only on opens and fd-table,
    /// path and process-tree changes and counts writes from kernel file events (windows with
    /// writes, no offsets; needs root); `ptrace` stops it on every write call (exact counts,
    /// offsets and lengths, much slower for write-heavy programs); `auto` is fanotify where it
    /// is permitted, else ptrace (with a note). `--pid` always uses ptrace.
    #[arg(long, value_enum, default_value = "auto")]
    pub write_monitor: MonitorArg,
    /// How files are identified: `cgroup` runs the command in a cgroup of its own and takes
    /// its files from fanotify events of its processes (known exactly from the kernel's fork
    /// notices), without ever stopping it (root; see docs/tracer.md for what it cannot see);
    /// `ptrace` stops it on every open (the paper's method); `auto`, the default, is cgroup
    /// where permitted, else ptrace (with a note), and ptrace with `--write-monitor ptrace`.
    /// `--pid` always uses ptrace.
    #[arg(long, value_enum, default_value = "auto")]
    pub identify_with: IdentifyArg,
    /// fanotify: after a file's write is reported, its further writes are not reported for this
    /// long (a count is the number of such windows with writes).
    /// 0 reports every write the kernel does not merge.
    #[arg(long, default_value = "10ms", value_parser = duration_or_zero)]
    pub window: f64,
    /// Attach to this running process (all its threads) instead of spawning; Ctrl-C detaches
    /// and leaves it running. Every system call then stops, so it runs slower than a spawned one.
    #[arg(long, conflicts_with = "command", required_unless_present = "command")]
    pub pid: Option<i32>,
    /// The command to run under trace, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `--write-monitor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MonitorArg {
    /// fanotify where it is permitted (root), else ptrace.
    Auto,
    /// Kernel file events (fanotify FAN_MODIFY); the application never stops on writes.
    Fanotify,
    /// Every write-family call stops the application (exact).
    Ptrace,
}

/// `--identify-with`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdentifyArg {
    /// cgroup where it is permitted (root), else ptrace.
    Auto,
    /// Stop-free: fanotify events of the processes in the application's cgroup.
    Cgroup,
    /// ptrace and seccomp: the application stops on every open.
    Ptrace,
}

impl IdentifyArg {
    /// The library's setting.
    pub fn identify(self) -> precopy_trace::Identify {
        match self {
            IdentifyArg::Auto => precopy_trace::Identify::Auto,
            IdentifyArg::Cgroup => precopy_trace::Identify::Cgroup,
            IdentifyArg::Ptrace => precopy_trace::Identify::Ptrace,
        }
    }
}

/// Runs `trace`: the application's exit status is passed through (its code, or 128 + signal).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub fn run(args: TraceArgs) -> Result<ExitCode> {
    use anyhow::Context;
    use precopy_trace::paths::PathFilter;
    use precopy_trace::{Observed, Target, TraceConfig, TraceError, WriteMonitor};

    use crate::cmd::{bad_input, write_atomic};

    if args.period <= 0.0 {
        return Err(bad_input("--period must be positive"));
    }
    if args.window < 0.0 {
        return Err(bad_input("--window must not be negative"));
    }
    if args.identify_with == IdentifyArg::Cgroup && args.write_monitor == MonitorArg::Ptrace {
        return Err(bad_input(
            "--identify-with cgroup never stops the application, so it cannot count write calls \
             with --write-monitor ptrace: choose one",
        ));
    }
    let filter = PathFilter::new(&args.include, &args.exclude).map_err(bad_input)?;
    let target = match args.pid {
        Some(pid) => Target::Pid(pid),
        None => Target::Command(args.command),
    };
    let config = TraceConfig {
        target,
        period_s: args.period,
        filter,
        follow_sharing: args.follow_sharing,
        write_monitor: match args.write_monitor {
            MonitorArg::Auto => WriteMonitor::Auto,
            MonitorArg::Fanotify => WriteMonitor::Fanotify,
            MonitorArg::Ptrace => WriteMonitor::Ptrace,
        },
        window_s: args.window,
        // `trace` is interactive: the application keeps the terminal.
        output: None,
        identify: args.identify_with.identify(),
        cgroup: None,
        trees: args.tree,
    };
    let output = precopy_trace::record_observed(&config, &mut |observed| match observed {
        Observed::Fallback { why } => eprintln!(
            "migrate-native trace: {why}: using --write-monitor ptrace, which stops the \
                 application on every write"
        ),
        Observed::IdentifyFallback { why } => eprintln!(
            "migrate-native trace: {why}: using --identify-with ptrace, which stops the \
                 application on every open"
        ),
        _ => {}
    });
    let output = output.map_err(|e| match e {
        TraceError::NoSuchProcess(_) | TraceError::Spawn { .. } => bad_input(e),
        e => anyhow::Error::new(e),
    })?;
    write_atomic(&args.out, output.trace.as_bytes())?;
    if let Some(path) = &args.manifest {
        let json = serde_json::to_string_pretty(&output.manifest).context("manifest")?;
        write_atomic(path, (json + "\n").as_bytes())?;
    }
    eprint!("migrate-native trace: {}", output.summary());
    if output.manifest.files.is_empty() {
        eprintln!("migrate-native trace: no files recorded: the trace cannot be replayed");
    }
    let code = output.exit.map_or(0, |e| e.shell_code());
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Runs `trace`: only Linux x86-64 is supported.
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
pub fn run(_args: TraceArgs) -> Result<ExitCode> {
    anyhow::bail!("`trace` needs Linux on x86-64 (ptrace and seccomp)")
}
