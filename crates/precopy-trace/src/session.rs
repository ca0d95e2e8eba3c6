//! One tracing session from start to outputs: the loop, the decoder, the write monitor and the
//! recording wired together. With [`WriteMonitor::Fanotify`], writes come from
//! [`crate::notify::Monitor`] instead of stops, and feed the same [`Recording`].

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::Pid;
use precopy_core::dataset::Kind;

use crate::cgroup::{self, Cgroup, Join};
use crate::decode::Decoder;
use crate::decode::FileEvent;
use crate::error::TraceError;
use crate::notify::{Monitor, WriteEvent};
use crate::paths::{self, PathFilter};
use crate::record::{Manifest, ManifestFile, Origin, Recording, RecordingInfo};
use crate::sharing;
use crate::stop::{Exit, Stop};
use crate::tracer::Tracer;
use crate::watch::{Armed, Watch};

/// What to trace.
#[derive(Debug, Clone)]
pub enum Target {
    /// Spawn this command (with the seccomp filter).
    Command(Vec<OsString>),
    /// Attach to this running process; SIGINT detaches.
    Pid(i32),
}

/// How writes to the recorded files are observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMonitor {
    /// Every write-family call stops the application (exact counts, offsets and lengths).
    Ptrace,
    /// The application stops only on opens and fd-table, path and process-tree changes;
    /// writes are seen through fanotify without stopping it (counts per window, no offsets).
    /// Needs `CAP_SYS_ADMIN`. An attached process (`--pid`) stops on every call anyway, so
    /// it is always traced with [`WriteMonitor::Ptrace`].
    #[default]
    Fanotify,
    /// Fanotify where it is permitted, else ptrace ([`Observed::Fallback`] says why).
    Auto,
}

impl WriteMonitor {
    /// The name used on the command line and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            WriteMonitor::Ptrace => "ptrace",
            WriteMonitor::Fanotify => "fanotify",
            WriteMonitor::Auto => "auto",
        }
    }
}

/// How the application's files are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Identify {
    /// The paper's method: ptrace and a seccomp filter; the application stops on every open.
    /// The library's default (the command line's is [`Identify::Auto`]).
    #[default]
    Ptrace,
    /// Stop-free: the application runs in a cgroup of its own and its files come from fanotify
    /// events of its processes, known from the kernel's fork notices ([`crate::watch`],
    /// [`crate::forks`]); it never stops. Needs root. Only for a spawned application: `--pid`
    /// is traced with ptrace. Writes are seen as with [`WriteMonitor::Fanotify`], whatever
    /// [`TraceConfig::write_monitor`] says.
    Cgroup,
    /// [`Identify::Cgroup`] where permitted, else [`Identify::Ptrace`] (with
    /// [`Observed::IdentifyFallback`]); [`Identify::Ptrace`] with [`WriteMonitor::Ptrace`],
    /// whose exact write calls need the stops.
    Auto,
}

impl Identify {
    /// The name used on the command line and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Identify::Ptrace => "ptrace",
            Identify::Cgroup => "cgroup",
            Identify::Auto => "auto",
        }
    }
}

/// The default fanotify window: after a file's write is reported, its further writes are not
/// reported for this long (see [`crate::notify`]).
pub const DEFAULT_WINDOW_S: f64 = 0.01;

/// A tracing session's settings.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// What to trace.
    pub target: Target,
    /// Monitoring period, seconds (for the per-period counts).
    pub period_s: f64,
    /// Which paths are recorded.
    pub filter: PathFilter,
    /// Add the files of processes sharing ours to the manifest, transitively.
    pub follow_sharing: bool,
    /// How writes are observed.
    pub write_monitor: WriteMonitor,
    /// The fanotify window, seconds ([`DEFAULT_WINDOW_S`]).
    pub window_s: f64,
    /// Where a spawned application's stdout and stderr go (`None`: inherited from us).
    pub output: Option<Arc<OwnedFd>>,
    /// How files are identified.
    pub identify: Identify,
    /// The cgroup a spawned application joins before exec (`None`: the stop-free mode makes
    /// one of its own, the ptrace mode leaves it where we are).
    pub cgroup: Option<Join>,
    /// Directories whose files (those `filter` records) are in the trace from its start,
    /// opened or not: a database never opens many of its files, and a migration moves them
    /// all ([`crate::paths::walk`]).
    pub trees: Vec<PathBuf>,
}

impl TraceConfig {
    /// Defaults: period 1 s, every path, no sharing closure, the fanotify monitor, ptrace
    /// identification.
    pub fn new(target: Target) -> TraceConfig {
        TraceConfig {
            target,
            period_s: 1.0,
            filter: PathFilter::default(),
            follow_sharing: false,
            write_monitor: WriteMonitor::default(),
            window_s: DEFAULT_WINDOW_S,
            output: None,
            identify: Identify::default(),
            cgroup: None,
            trees: Vec::new(),
        }
    }
}

/// The results of a session.
#[derive(Debug, Clone)]
pub struct TraceOutput {
    /// The trace, JSON Lines.
    pub trace: String,
    /// The manifest.
    pub manifest: Manifest,
    /// How the spawned or attached process ended (`None` if we detached first).
    pub exit: Option<Exit>,
    /// Tracing ended by detaching.
    pub detached: bool,
}

/// What a live session tells its observer, from the tracer's thread, as it happens.
#[derive(Debug)]
pub enum Observed<'a> {
    /// The application runs (spawned) or is attached: its root process id.
    Started {
        /// The root process id.
        pid: u32,
    },
    /// [`WriteMonitor::Auto`] could not start fanotify (it needs `CAP_SYS_ADMIN`): writes are
    /// observed with ptrace instead. Told before the application starts.
    Fallback {
        /// Why fanotify could not start.
        why: &'a TraceError,
    },
    /// [`Identify::Auto`] could not identify without stops (it needs root, a cgroup v2 and the
    /// initial namespaces): ptrace is used. Told before the application starts.
    IdentifyFallback {
        /// Why.
        why: &'a TraceError,
    },
    /// A file event, at `t` seconds since tracing began.
    File {
        /// Seconds since tracing began.
        t: f64,
        /// The event.
        event: &'a FileEvent,
    },
}

/// The recording, with the observer told of every event it takes.
struct Sink<'a> {
    recording: Recording,
    observer: &'a mut dyn FnMut(Observed<'_>),
}

impl<'a> Sink<'a> {
    /// A recording that starts with the files of the trees as they were before the
    /// application started (`declared`, from [`paths::walk`]).
    fn new(declared: &[(String, u64)], observer: &'a mut dyn FnMut(Observed<'_>)) -> Sink<'a> {
        let mut recording = Recording::default();
        for (path, size) in declared {
            recording.declare(path, *size);
        }
        Sink {
            recording,
            observer,
        }
    }

    /// Records the event and the size it leaves its path with, read now: a sample (the
    /// application may have gone on since; see `docs/trace-format.md`).
    fn push(&mut self, t: f64, event: FileEvent) {
        (self.observer)(Observed::File { t, event: &event });
        let resized = event.resized().map(str::to_string);
        self.recording.push(t, event);
        if let Some(path) = resized {
            self.recording.sized(t, &path, size(&path));
        }
    }

    /// Fanotify's events as updates (of files the filter records; a deleted file's path does
    /// not pass it).
    fn push_writes(&mut self, filter: &PathFilter, events: Vec<WriteEvent>) {
        for WriteEvent { t, pid, path } in events {
            if filter.allows(&path) {
                let update = FileEvent::Updated {
                    pid,
                    path,
                    op: precopy_core::trace::WriteOp::Write,
                    offset: None,
                    len: None,
                };
                self.push(t, update);
            }
        }
    }
}

fn size(path: &str) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Traces until the process tree exits (or, attached, until SIGINT), then builds the outputs.
pub fn record(config: &TraceConfig) -> Result<TraceOutput, TraceError> {
    record_observed(config, &mut |_| {})
}

/// [`record`], telling `observer` of the start and of every file event as it happens (`send`
/// identifies the files of an application it migrates this way). The observer runs on the
/// tracing thread while the application waits in a stop: it should be quick.
pub fn record_observed(
    config: &TraceConfig,
    observer: &mut dyn FnMut(Observed<'_>),
) -> Result<TraceOutput, TraceError> {
    // Exact write calls (`WriteMonitor::Ptrace`) need the stops: `Auto` then means ptrace.
    let stop_free = match config.identify {
        Identify::Cgroup => true,
        Identify::Auto => config.write_monitor != WriteMonitor::Ptrace,
        Identify::Ptrace => false,
    };
    // Before the application starts: the trees as a migration would find them.
    let declared = paths::walk(&config.trees, &config.filter)?;
    if let (Target::Command(command), true) = (&config.target, stop_free) {
        match StopFree::prepare(config, declared.clone()) {
            Ok(prepared) => return prepared.record(config, command, observer),
            Err(why) if config.identify == Identify::Auto => {
                observer(Observed::IdentifyFallback { why: &why });
            }
            Err(e) => return Err(e),
        }
    }
    let start = Instant::now();
    let monitor = match (&config.target, config.write_monitor) {
        (Target::Command(_), WriteMonitor::Fanotify | WriteMonitor::Auto) => {
            let window = Duration::from_secs_f64(config.window_s.max(0.0));
            match Monitor::start(start, window, config.filter.clone()) {
                Ok(monitor) => Some(monitor),
                Err(why) if config.write_monitor == WriteMonitor::Auto => {
                    observer(Observed::Fallback { why: &why });
                    None
                }
                Err(e) => return Err(e),
            }
        }
        _ => None,
    };
    // Attached, SIGINT detaches until the session ends.
    let _sigint = matches!(config.target, Target::Pid(_)).then(Tracer::detach_on_sigint);
    let (mut tracer, command, pid) = match &config.target {
        Target::Command(command) => {
            let output = config.output.as_ref().map(|fd| fd.as_raw_fd());
            let cgroup = config.cgroup.as_ref().map(|join| join.procs.as_raw_fd());
            let marks = monitor.as_ref().map(Monitor::marks);
            let tracer = Tracer::spawn_with(command, marks, output, cgroup)?;
            // Ctrl-C reaches the application through its process group; the tracer stays to
            // see it exit. SAFETY: SIG_IGN installs no handler code.
            for sig in [Signal::SIGINT, Signal::SIGQUIT] {
                let _ = unsafe { signal::signal(sig, SigHandler::SigIgn) };
            }
            let command = command
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            (tracer, command, None)
        }
        Target::Pid(pid) => {
            let tracer = Tracer::attach(Pid::from_raw(*pid))?;
            (tracer, Vec::new(), Some(*pid as u32))
        }
    };
    let root = tracer.root();
    observer(Observed::Started {
        pid: root.as_raw() as u32,
    });
    let mut decoder = Decoder::new(config.filter.clone());
    decoder.know(declared.iter().map(|(path, _)| path.clone()));
    let mut sink = Sink::new(&declared, observer);
    let mut exit = None;
    while let Some(stop) = tracer.next_stop()? {
        let t = start.elapsed().as_secs_f64();
        if let Stop::Exited { pid, status } = &stop {
            if *pid == root {
                exit = Some(*status);
            }
        }
        for event in decoder.decode(&stop) {
            sink.push(t, event);
        }
        if let Some(monitor) = &monitor {
            sink.push_writes(&config.filter, monitor.take());
        }
    }
    let write_monitor = match monitor {
        Some(monitor) => {
            sink.push_writes(&config.filter, monitor.finish());
            WriteMonitor::Fanotify
        }
        None => WriteMonitor::Ptrace,
    };
    let info = RecordingInfo {
        period_s: config.period_s,
        command,
        pid,
        duration_s: start.elapsed().as_secs_f64(),
    };
    let mut output = outputs(
        config,
        &sink.recording,
        info,
        decoder.processes(),
        write_monitor,
        exit,
    );
    output.detached = tracer.detached();
    Ok(output)
}

/// The trace and the manifest of a finished session (not detached).
fn outputs(
    config: &TraceConfig,
    recording: &Recording,
    info: RecordingInfo,
    traced: &BTreeSet<i32>,
    write_monitor: WriteMonitor,
    exit: Option<Exit>,
) -> TraceOutput {
    let trace = recording.trace(&info, size);
    let mut files = recording.manifest_files(config.period_s, size, traced);

    let processes = sharing::scan(traced);
    let ours: BTreeSet<String> = recording.paths().map(str::to_string).collect();
    let sharing = if config.follow_sharing {
        let (sharers, added) = sharing::closure(&processes, &ours, &config.filter);
        files.extend(
            added
                .into_iter()
                .map(|(path, writable)| shared_file(path, writable)),
        );
        sharers
    } else {
        sharing::sharers(&processes, &ours)
    };
    let manifest = Manifest {
        command: info.command,
        pid: info.pid,
        period_s: info.period_s,
        duration_s: info.duration_s,
        processes: traced.iter().copied().collect(),
        write_monitor: write_monitor.name().to_string(),
        window_s: (write_monitor == WriteMonitor::Fanotify).then_some(config.window_s),
        identified_with: Identify::Ptrace.name().to_string(),
        outside_events: 0,
        forks_lost: 0,
        files,
        sharing,
    };
    TraceOutput {
        trace,
        manifest,
        exit,
        detached: false,
    }
}

/// A stop-free session, ready to spawn: the cgroup and the armed watch.
struct StopFree {
    start: Instant,
    /// The cgroup, if we made it here (removed when the session ends).
    _own: Option<Cgroup>,
    join: Join,
    armed: Armed,
    /// The trees' files when the session began.
    declared: Vec<(String, u64)>,
}

impl StopFree {
    fn prepare(config: &TraceConfig, declared: Vec<(String, u64)>) -> Result<StopFree, TraceError> {
        let start = Instant::now();
        let no_cgroup = |e: std::io::Error| TraceError::Cgroup(e.to_string());
        let (own, join) = match &config.cgroup {
            Some(join) => (None, join.clone()),
            None => {
                let own = Cgroup::for_spawn().map_err(no_cgroup)?;
                let join = own.join().map_err(no_cgroup)?;
                (Some(own), join)
            }
        };
        let window = Duration::from_secs_f64(config.window_s.max(0.0));
        let armed = Watch::arm(&join.dir, start, window, config.filter.clone())?;
        Ok(StopFree {
            start,
            _own: own,
            join,
            armed,
            declared,
        })
    }

    /// Spawns the command in the cgroup and records until the cgroup is empty.
    fn record(
        self,
        config: &TraceConfig,
        command: &[OsString],
        observer: &mut dyn FnMut(Observed<'_>),
    ) -> Result<TraceOutput, TraceError> {
        let name = command
            .first()
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut spawn = std::process::Command::new(command.first().ok_or(TraceError::Spawn {
            command: name.clone(),
            source: Errno::ENOENT,
        })?);
        spawn.args(&command[1..]);
        if let Some(output) = &config.output {
            let fd = |f: &OwnedFd| f.try_clone().map(std::process::Stdio::from);
            let spawn_error = |e: std::io::Error| TraceError::Spawn {
                command: name.clone(),
                source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            };
            spawn.stdout(fd(output).map_err(spawn_error)?);
            spawn.stderr(fd(output).map_err(spawn_error)?);
        }
        // SAFETY: the hook makes one write(2) between fork and exec.
        unsafe { spawn.pre_exec(cgroup::join_hook(&self.join.procs)) };
        let mut child = spawn.spawn().map_err(|e| TraceError::Spawn {
            command: name.clone(),
            source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        // As under ptrace: Ctrl-C reaches the application through its process group, and we
        // stay to see it end. SAFETY: SIG_IGN installs no handler code.
        for sig in [Signal::SIGINT, Signal::SIGQUIT] {
            let _ = unsafe { signal::signal(sig, SigHandler::SigIgn) };
        }
        let named = self.declared.iter().map(|(path, _)| path.clone());
        let watch = match self.armed.naming(named).follow(child.id()) {
            Ok(watch) => watch,
            Err(e) => {
                // Not left running unwatched.
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        observer(Observed::Started { pid: child.id() });
        // The session ends when the whole tree has: the root's status, then an empty cgroup.
        let (done, ended) = std::sync::mpsc::channel();
        let dir = self.join.dir.clone();
        std::thread::spawn(move || {
            let status = child.wait();
            let _ = cgroup::wait_empty(&dir);
            let _ = done.send(status);
        });
        let mut sink = Sink::new(&self.declared, observer);
        let status = loop {
            let status = ended.recv_timeout(Duration::from_millis(20));
            for (t, event) in watch.take() {
                sink.push(t, event);
            }
            match status {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Ok(status) => break status.ok(),
                Err(_) => break None,
            }
        };
        let (rest, tally) = watch.finish();
        for (t, event) in rest {
            sink.push(t, event);
        }
        let exit = status.map(|status| {
            use std::os::unix::process::ExitStatusExt;
            match status.signal() {
                Some(signal) => Exit::Signal(signal),
                None => Exit::Code(status.code().unwrap_or(0)),
            }
        });
        let info = RecordingInfo {
            period_s: config.period_s,
            command: command
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect(),
            pid: None,
            duration_s: self.start.elapsed().as_secs_f64(),
        };
        let traced: BTreeSet<i32> = tally.processes.iter().map(|&p| p as i32).collect();
        let mut output = outputs(
            config,
            &sink.recording,
            info,
            &traced,
            WriteMonitor::Fanotify,
            exit,
        );
        output.manifest.identified_with = Identify::Cgroup.name().to_string();
        output.manifest.outside_events = tally.outside;
        output.manifest.forks_lost = tally.forks_lost;
        Ok(output)
    }
}

fn shared_file(path: String, writable: bool) -> ManifestFile {
    let size = size(&path);
    ManifestFile {
        size: size.unwrap_or(0),
        exists: size.is_some(),
        kind: Kind::opened_for_writing(writable),
        path,
        mmap_shared: false,
        origin: Origin::Sharing,
        first_access_s: None,
        last_access_s: None,
        write_calls: 0,
        bytes_written: 0,
        periods: Vec::new(),
        other_writers: Vec::new(),
    }
}

impl TraceOutput {
    /// A short human summary (for stderr).
    pub fn summary(&self) -> String {
        let m = &self.manifest;
        let traced = m.files.iter().filter(|f| f.origin == Origin::Traced);
        let rw = traced.clone().filter(|f| f.kind == Kind::ReadWrite).count();
        let total = traced.clone().count();
        let calls: u64 = traced.clone().map(|f| f.write_calls).sum();
        let updates = match m.window_s {
            Some(w) => format!(
                "{calls} windows of {:.0} ms with writes (fanotify)",
                w * 1e3
            ),
            None => format!("{calls} update calls"),
        };
        let mut text = format!(
            "traced {} process(es) for {:.2} s: {} files ({} read-only, {} read-write), {updates}\n",
            m.processes.len(),
            m.duration_s,
            total,
            total - rw,
            rw,
        );
        let outside: BTreeSet<u32> = traced.flat_map(|f| f.other_writers.clone()).collect();
        if !outside.is_empty() {
            let pids: Vec<String> = outside.iter().map(u32::to_string).collect();
            text += &format!(
                "written also by process(es) outside the traced tree: {}\n",
                pids.join(", ")
            );
        }
        let mapped = m.files.iter().filter(|f| f.mmap_shared).count();
        if mapped > 0 {
            text += &format!("{mapped} file(s) mapped shared and writable: writes through the mapping are not counted\n");
        }
        if m.sharing.is_empty() {
            text += "no other process has these files open or mapped\n";
        }
        // The manifest has everything; stderr gets the first few of each list.
        const SHOWN: usize = 10;
        for s in m.sharing.iter().take(SHOWN) {
            let mut files = s
                .files
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if s.files.len() > 3 {
                files += &format!(" and {} more", s.files.len() - 3);
            }
            text += &format!("shared with pid {} ({}): {files}\n", s.pid, s.command);
        }
        if m.sharing.len() > SHOWN {
            text += &format!(
                "… and {} more sharing process(es), listed in the manifest\n",
                m.sharing.len() - SHOWN
            );
        }
        let added = m.files.len() - total;
        if added > 0 {
            text += &format!("--follow-sharing added {added} file(s)\n");
        }
        if self.detached {
            text += "detached; the application keeps running\n";
        }
        text
    }
}
