//! `migrate-native send`: migrates a running application's files to a `receive` daemon,
//! pre-copying in the order of a core policy, then stopping the application's process tree for
//! the final copy.

use std::io::IsTerminal;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use precopy_core::trace::Trace;
use precopy_core::units::format_bytes;
use precopy_core::{Kind, Metrics, Phase, PolicyKind, PolicyParams, RoundReport, SimConfig};
use precopy_trace::paths::PathFilter;

use crate::cmd::load_key;
use crate::cmd::{bad_input, bandwidth, duration};
use precopy_net::app::App;
use precopy_net::live::Live;
use precopy_net::migrate::{MigrateConfig, Migration, Outcome, Then};
use precopy_net::monitor::{FanotifyMonitor, Monitor, PollingMonitor};
use precopy_net::transport::Transport;
use precopy_net::tree::Roots;
use precopy_net::wire::Compress;

fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{text:?}: expected on or off")),
    }
}

/// Arguments of `send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The receiver.
    #[arg(long, value_name = "HOST:PORT")]
    pub to: String,
    /// Transfer policy (as in `simulate`): proposed, baseline, sweep, qemu, p-only, size-only, random.
    #[arg(long, default_value = "proposed", value_parser = policy)]
    pub policy: PolicyKind,
    /// Token-bucket limit on the sending rate, e.g. 20Mbps.
    #[arg(long, value_parser = bandwidth)]
    pub bwlimit: Option<f64>,
    /// Compression of the encrypted records: off, zstd[:LEVEL] (every record it shrinks), or
    /// auto[:LEVEL] (only while the link, not the CPU, is the bottleneck, measured as it runs).
    #[arg(
        long,
        default_value = "off",
        value_name = "off|zstd[:LEVEL]|auto[:LEVEL]"
    )]
    pub compress: Compress,
    /// Resends as deltas: only the 8 KiB blocks that changed since the version the receiver
    /// holds (checked there against the whole file's hash), or whole files.
    #[arg(
        long,
        default_value = "on",
        value_name = "on|off",
        value_parser = on_off,
        action = clap::ArgAction::Set
    )]
    pub delta: bool,
    /// Monitoring period T.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub period: f64,
    /// β: U values kept by the proposed policy's end test (even, ≥ 2).
    #[arg(long, default_value_t = PolicyParams::default().beta)]
    pub beta: u32,
    /// Baseline iterations.
    #[arg(long, default_value_t = PolicyParams::default().baseline_iterations)]
    pub baseline_iterations: u32,
    /// Seed of the policy's own randomness (the random ablation), as in `simulate`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Safety cap on pre-copy rounds.
    #[arg(long, default_value_t = 1000)]
    pub max_rounds: u32,
    /// How often the files are polled for writes (default: a tenth of the period, 20 ms–1 s).
    #[arg(long, value_parser = duration)]
    pub poll: Option<f64>,
    /// How long to keep trying to reconnect after the connection drops.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub reconnect: f64,
    /// File holding the pre-shared token.
    #[arg(long, value_name = "F", env = "PRECOPY_TOKEN_FILE")]
    pub token_file: PathBuf,
    /// Afterwards: resume the application at the source, leave it stopped, or restart it at
    /// the destination.
    #[arg(long, value_enum, default_value = "resume")]
    pub then: Then,
    /// A shell command run at the source just before the application is stopped for the final
    /// copy (its output goes to stderr). send waits for it; if it fails, nothing is stopped and
    /// send exits non-zero. E.g. `psql -c CHECKPOINT`: PostgreSQL then starts at the destination
    /// with little WAL to replay.
    #[arg(long, value_name = "CMD")]
    pub before_stop: Option<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// How writes are seen: fanotify events (needs root), polling `stat`, or `auto`: fanotify
    /// where it is permitted, else polling (with a note).
    #[arg(long, value_enum, default_value = "auto")]
    pub write_monitor: WriteMonitorKind,
    /// fanotify: a file's further writes within this window count once.
    #[arg(long, default_value = "10ms", value_parser = duration)]
    pub window: f64,
    /// ReadOnly files or directories (comma-separated, repeatable). A directory is migrated
    /// whole, as it is at the stop: files created in it meanwhile too, deleted ones deleted.
    #[arg(long, value_delimiter = ',')]
    pub ro: Vec<PathBuf>,
    /// ReadWrite files or directories (comma-separated, repeatable), as for --ro.
    #[arg(long, value_delimiter = ',')]
    pub rw: Vec<PathBuf>,
    /// The files and their kinds from a `migrate-native trace` recording.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Without --ro, --rw and --trace, the files are identified live: the application starts
    /// under the tracer, the files it opens in this first stretch start the migration, and
    /// every file it opens later, up to the stop, joins it.
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub identify: f64,
    /// How files are identified live: `cgroup` (stop-free: fanotify events of the application's
    /// processes; it never stops, and send exits after the migration while it runs on; root;
    /// see docs/tracer.md for what it misses), `ptrace` (the paper's method: it stops on every
    /// open, and send stays until it ends), or `auto`: cgroup where permitted, else ptrace
    /// (with a note).
    #[arg(long, value_enum, default_value = "auto")]
    pub identify_with: crate::cmd::trace::IdentifyArg,
    /// Identify the application's files live even with --ro, --rw or --trace: every file it
    /// opens up to the stop joins the roots named (a database opens many lazily).
    #[arg(long)]
    pub live: bool,
    /// Live identification: record only files matching GLOB. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Live identification: leave out files matching GLOB (/proc, /sys and /dev always are).
    /// Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Leave FIFOs, sockets and device files under the roots out (they are named) instead of
    /// failing: they cannot be migrated.
    #[arg(long)]
    pub skip_special: bool,
    /// Migrate a running process (and its descendants) instead of starting one.
    #[arg(long, conflicts_with = "command")]
    pub pid: Option<u32>,
    /// Where the application's stdout and stderr go: `null`, `inherit` (send's stderr: send's
    /// stdout is its summary), or a file (appended to; never migrated).
    #[arg(long, default_value = "null", value_name = "null|inherit|FILE")]
    pub app_output: String,
    /// The application to start and migrate.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

fn policy(text: &str) -> Result<PolicyKind, String> {
    match PolicyKind::from_name(text) {
        Some(PolicyKind::Clairvoyant) => {
            Err("clairvoyant needs the future: simulation only".into())
        }
        Some(kind) => Ok(kind),
        None => Err(format!("unknown policy `{text}`")),
    }
}

/// Where `send` learns about writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteMonitorKind {
    /// fanotify where it is permitted (root), else polling.
    Auto,
    /// Kernel file-change events, without stopping the application (root).
    Fanotify,
    /// `stat` of every file each poll (no privileges; at most one write per file per poll).
    Poll,
}

/// Runs `send`.
pub fn run(args: SendArgs) -> Result<ExitCode> {
    if args.command.is_empty() && args.pid.is_none() {
        return Err(bad_input(
            "give the application: `-- CMD ARGS…` or --pid PID (and its files with --ro, --rw \
             or --trace, or none to identify them live, or both with --live)",
        ));
    }
    let listed = !(args.ro.is_empty() && args.rw.is_empty() && args.trace.is_none());
    let named = if listed {
        named_files(&args)?
    } else {
        Vec::new()
    };
    let filter = PathFilter::new(&args.include, &args.exclude).map_err(bad_input)?;
    let key = load_key(&args.token_file)?;
    let params = PolicyParams {
        beta: args.beta,
        baseline_iterations: args.baseline_iterations,
        ..PolicyParams::default()
    };
    let check = SimConfig {
        period_s: args.period,
        params,
        max_rounds: args.max_rounds,
        ..SimConfig::default()
    };
    check.validate().map_err(bad_input)?;
    let config = MigrateConfig {
        policy: args.policy,
        params,
        period_s: args.period,
        max_rounds: args.max_rounds,
        bwlimit_bps: args.bwlimit,
        poll_s: args.poll.unwrap_or((args.period / 10.0).clamp(0.02, 1.0)),
        reconnect: Duration::from_secs_f64(args.reconnect),
        then: args.then,
        skip_special: args.skip_special,
        seed: args.seed,
    };
    let transport = Transport::connect(&args.to, key, args.bwlimit, args.compress, args.delta)
        .with_context(|| format!("connecting to {}", args.to))?;
    let output = app_output(&args.app_output)?;
    let (mut roots, mut app, mut live) = if listed && !args.live {
        let app = match args.pid {
            Some(pid) => App::attach(pid),
            None => App::spawn(&args.command, output.try_clone()?)
                .with_context(|| format!("starting {}", args.command[0]))?,
        };
        (roots(named, Vec::new())?, app, None)
    } else {
        let window = Duration::from_secs_f64(args.identify);
        let (opened, app, live) = match args.pid {
            Some(pid) => {
                let opened = Live::identify_attached(pid, filter, window)
                    .with_context(|| format!("identifying the files of pid {pid}"))?;
                (opened, App::attach(pid), None)
            }
            None => {
                let identify = args.identify_with.identify();
                let (live, app) =
                    Live::spawn(&args.command, filter, window, output.try_clone()?, identify)
                        .with_context(|| format!("starting {} under watch", args.command[0]))?;
                (live.files(), app, Some(live))
            }
        };
        let opened: Vec<(PathBuf, Kind)> =
            opened.into_iter().filter(|(p, _)| p.is_file()).collect();
        let how = match &live {
            Some(live) if !live.traced() => "stop-free",
            _ => "with ptrace",
        };
        eprintln!(
            "send: identified {} file(s) in the first {:.1} s ({} read-write), {how}",
            opened.len(),
            args.identify,
            opened.iter().filter(|(_, k)| *k == Kind::ReadWrite).count()
        );
        if opened.is_empty() && named.is_empty() {
            bail!(
                "no files to migrate: the application opened none (that --include/--exclude keep)"
            );
        }
        (roots(named, opened)?, app, live)
    };
    eprintln!(
        "send: the final copy will stop the application with {}",
        app.stopping()
    );
    // `send --json > out.json` must not migrate out.json.
    roots.exclude_fd(std::io::stdout().as_fd());
    roots.exclude_fd(std::io::stderr().as_fd());
    roots.exclude_fd(output.as_fd());
    let window = Duration::from_secs_f64(args.window);
    let mut monitor: Box<dyn Monitor> = match args.write_monitor {
        WriteMonitorKind::Fanotify => Box::new(FanotifyMonitor::new(window).context(
            "starting the fanotify write monitor (needs root; or use --write-monitor poll)",
        )?),
        WriteMonitorKind::Auto => match FanotifyMonitor::new(window) {
            Ok(monitor) => Box::new(monitor),
            Err(e) => {
                eprintln!(
                    "send: fanotify is not available here ({e}; it needs root): polling the \
                     files instead (--write-monitor poll), which sees at most one write per \
                     file per poll"
                );
                Box::<PollingMonitor>::default()
            }
        },
        WriteMonitorKind::Poll => Box::<PollingMonitor>::default(),
    };
    let mut progress = Progress::new();
    let mut on_round = |r: &RoundReport, m: &Metrics| progress.round(r, m);
    let mut opened = || live.as_mut().map(Live::take_opened).unwrap_or_default();
    let mut before_stop =
        (args.before_stop.clone()).map(|command| move || run_before_stop(&command));
    let outcome = Migration::new(
        config,
        roots,
        monitor.as_mut(),
        &mut app,
        transport,
        &mut on_round,
    )
    .map(|migration| {
        let migration = migration.discovering(&mut opened);
        // Without a command there is no hook, and no extra round.
        match before_stop.as_mut() {
            Some(hook) => migration.before_stop(hook),
            None => migration,
        }
    })
    .and_then(Migration::run);
    progress.finish();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            if live.as_ref().is_some_and(Live::traced) {
                eprintln!("send: the application ends with send (it runs under send's tracer)");
            } else if args.then == Then::Resume && app.exited().is_none() {
                eprintln!("send: the application keeps running at the source");
            }
            return Err(e);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_summary(&outcome);
    }
    // A cgroup of ours goes now (left frozen, the application stays stopped by SIGSTOP).
    if let Err(e) = app.release() {
        eprintln!("send: removing the application's cgroup: {e}");
    }
    if app.spawned() && args.then == Then::Resume {
        // We started it; it goes on at the source as it would have.
        eprintln!("send: application pid {} resumed at the source", app.pid());
    }
    if let Some(live) = live {
        if live.traced() && app.exited().is_none() {
            eprintln!(
                "send: application pid {} goes on at the source {}under trace (its traced calls \
                 need the tracer); send ends when it does",
                app.pid(),
                if args.then == Then::Stop {
                    "stopped, "
                } else {
                    ""
                }
            );
        }
        if let Some(exit) = live.finish()? {
            eprintln!("send: the application ended ({exit})");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The roots named by --ro, --rw and --trace (a trace's files that no longer exist are left
/// out: temporary files it recorded).
fn named_files(args: &SendArgs) -> Result<Vec<(PathBuf, Kind)>> {
    let mut named: Vec<(PathBuf, Kind)> = Vec::new();
    for (paths, kind) in [(&args.ro, Kind::ReadOnly), (&args.rw, Kind::ReadWrite)] {
        named.extend(paths.iter().map(|p| (p.clone(), kind)));
    }
    if let Some(trace) = &args.trace {
        let text = super::read_text(trace)?;
        let trace = Trace::parse(&text).map_err(bad_input)?;
        for file in trace.files {
            let path = PathBuf::from(file.path);
            if path.exists() {
                named.push((path, file.kind));
            }
        }
    }
    if named.is_empty() {
        return Err(bad_input("no files to migrate: give --ro, --rw or --trace"));
    }
    Ok(named)
}

/// Where `--app-output` sends the application's output.
fn app_output(choice: &str) -> Result<OwnedFd> {
    let file = match choice {
        "inherit" => return Ok(std::io::stderr().as_fd().try_clone_to_owned()?),
        "null" => std::fs::OpenOptions::new().write(true).open("/dev/null"),
        path => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path),
    };
    let file = file.with_context(|| format!("opening --app-output {choice}"))?;
    Ok(file.into())
}

/// Roots for the named paths and the identified files; a named path that does not exist is bad
/// input, named (an identified file gone since is left out).
fn roots(named: Vec<(PathBuf, Kind)>, found: Vec<(PathBuf, Kind)>) -> Result<Roots> {
    Roots::named_and_found(named, found)
        .map_err(|e| bad_input(format!("finding what to migrate: {e}")))
}

/// Progress on stderr: a bar when it is a terminal, a line per round otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").unwrap(),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar }
    }

    fn round(&mut self, r: &RoundReport, m: &Metrics) {
        let seconds = (r.end - r.start).max(1e-9);
        let rate_bps = r.bytes_sent as f64 * 8.0 / seconds;
        // At this round's rate: how long what is not cleanly at D would take to send.
        let eta = if rate_bps > 0.0 {
            format!("{:.1} s", r.unsent_bytes as f64 * 8.0 / rate_bps)
        } else {
            "–".to_string()
        };
        let line = format!(
            "round {:>3} {:<12} sent {:>5} files {:>10} ({:>7.1} Mbit/s), dirtied {:>10}, U = {} (ETA {eta}){}",
            r.index + 1,
            r.phase.label(),
            r.files_sent,
            format_bytes(r.bytes_sent as f64),
            rate_bps / 1e6,
            format_bytes(r.bytes_dirtied as f64),
            format_bytes(r.unsent_bytes as f64),
            match (r.phase, r.ended) {
                (Phase::Final, _) => format!(" — downtime {:.3} s", m.downtime_s),
                (_, Some(reason)) => format!(" — pre-copy ends: {reason}"),
                _ => String::new(),
            }
        );
        match &self.bar {
            Some(bar) => {
                bar.println(&line);
                bar.set_message(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn print_summary(outcome: &Outcome) {
    let m = &outcome.metrics;
    let x = &outcome.measured;
    let p = outcome.prediction.as_ref();
    let row = |name: &str, measured: String, predicted: Option<String>| {
        println!(
            "{name:<22} {measured:>16}   {:>16}",
            predicted.unwrap_or_default()
        );
    };
    let bytes = |b: u64| format_bytes(b as f64);
    let per_second = |rate: Option<f64>| {
        rate.map_or_else(|| "(not measured)".to_string(), |r| format_bytes(r) + "/s")
    };
    println!(
        "policy {} · {} files, {}",
        m.policy,
        m.files,
        bytes(m.total_bytes)
    );
    println!("{:<22} {:>16}   {:>16}", "", "measured", "simulator");
    row(
        "pre-copy bytes",
        bytes(m.precopy_bytes),
        p.map(|p| bytes(p.precopy_bytes)),
    );
    row(
        "final-copy bytes",
        bytes(m.final_bytes),
        p.map(|p| bytes(p.final_bytes)),
    );
    row(
        "resent bytes",
        bytes(m.resent_bytes),
        p.map(|p| bytes(p.resent_bytes)),
    );
    row(
        "downtime",
        format!("{:.3} s", x.downtime_s),
        p.map(|p| format!("{:.3} s", p.downtime_s)),
    );
    row(
        "total time",
        format!("{:.3} s", m.total_time_s),
        p.map(|p| format!("{:.3} s", p.total_time_s)),
    );
    row(
        "rounds",
        m.rounds.to_string(),
        p.map(|p| p.rounds.to_string()),
    );
    row(
        "pre-copy ended",
        m.end_reason.name().to_string(),
        p.map(|p| p.end_reason.name().to_string()),
    );
    println!("why: {}", m.end_reason);
    println!(
        "rate {:.1} Mbit/s · {} on the wire · verify {:.3} s (read again: {} files, {}) · \
         reconnects {} · repaired {} · deltas {} ({} refused, resent whole) · files moved at {} \
         whole, {} as deltas",
        x.send_rate_bps / 1e6,
        bytes(x.wire_bytes),
        x.verify_s,
        x.reread.files,
        bytes(x.reread.bytes),
        x.reconnects,
        x.repaired_files,
        x.deltas,
        x.refused_deltas,
        per_second(x.whole_rate_bytes_per_s),
        per_second(x.delta_rate_bytes_per_s)
    );
    println!("verdict: {}", x.verdict);
    println!(
        "downtime parts: final copy {:.3} s · check {:.3} s · {} {:.3} s",
        x.downtime.final_copy_s,
        x.downtime.verify_s,
        match x.then {
            Then::Restart => "restart",
            Then::Resume => "resume",
            Then::Stop => "stop",
        },
        x.downtime.restart_s
    );
    if x.then == Then::Restart {
        println!(
            "after the downtime: the destination watched the application run for {:.3} s \
             (receive --restart-grace) before reporting it started",
            x.downtime.restart_check_s
        );
    }
    println!(
        "walks of the roots: {} ({} entries), {:.1} ms each on average, {:.1} ms at most",
        x.walks.count,
        x.walks.entries,
        1e3 * x.walks.total_s / f64::from(x.walks.count.max(1)),
        1e3 * x.walks.max_s
    );
    for dir in &x.unopened {
        println!(
            "not migrated: {dir} the application never opened, in a directory it wrote into \
             (give the directory with --rw to migrate it whole)"
        );
    }
    if !x.skipped.is_empty() {
        println!("left out (--skip-special): {}", x.skipped.join(", "));
    }
    if let Some(pid) = x.restarted_pid {
        println!("restarted at the destination as pid {pid}");
    }
}

/// Runs `--before-stop`'s command with `sh -c`, its output on stderr (stdout may be `--json`).
fn run_before_stop(command: &str) -> Result<()> {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("running --before-stop {command:?}"))?;
    if !status.success() {
        bail!("--before-stop {command:?} failed ({status}): nothing was stopped");
    }
    Ok(())
}
