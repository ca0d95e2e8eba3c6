//! One tracing session from start to outputs: the loop, the decoder and the recording wired
//! together. A second source of write events (issue 6's fanotify monitor) would feed the same
//! [`Recording`] from here.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::time::Instant;

use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::Pid;
use precopy_core::dataset::Kind;

use crate::decode::Decoder;
use crate::error::TraceError;
use crate::paths::PathFilter;
use crate::record::{Manifest, ManifestFile, Origin, Recording, RecordingInfo};
use crate::sharing;
use crate::stop::{Exit, Stop};
use crate::tracer::Tracer;

/// What to trace.
#[derive(Debug, Clone)]
pub enum Target {
    /// Spawn this command (with the seccomp filter).
    Command(Vec<OsString>),
    /// Attach to this running process; SIGINT detaches.
    Pid(i32),
}

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

fn size(path: &str) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Traces until the process tree exits (or, attached, until SIGINT), then builds the outputs.
pub fn record(config: &TraceConfig) -> Result<TraceOutput, TraceError> {
    let start = Instant::now();
    let (mut tracer, command, pid) = match &config.target {
        Target::Command(command) => {
            let tracer = Tracer::spawn(command)?;
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
            Tracer::detach_on_sigint();
            let tracer = Tracer::attach(Pid::from_raw(*pid))?;
            (tracer, Vec::new(), Some(*pid as u32))
        }
    };
    let root = tracer.root();
    let mut decoder = Decoder::new(config.filter.clone());
    let mut recording = Recording::default();
    let mut exit = None;
    while let Some(stop) = tracer.next_stop()? {
        let t = start.elapsed().as_secs_f64();
        if let Stop::Exited { pid, status } = &stop {
            if *pid == root {
                exit = Some(*status);
            }
        }
        for event in decoder.decode(&stop) {
            recording.push(t, event);
        }
    }
    let info = RecordingInfo {
        period_s: config.period_s,
        command,
        pid,
        duration_s: start.elapsed().as_secs_f64(),
    };
    let trace = recording.trace(&info, size);
    let mut files = recording.manifest_files(config.period_s, size);

    let processes = sharing::scan(decoder.processes());
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
        processes: decoder.processes().iter().copied().collect(),
        files,
        sharing,
    };
    Ok(TraceOutput {
        trace,
        manifest,
        exit,
        detached: tracer.detached(),
    })
}

fn shared_file(path: String, writable: bool) -> ManifestFile {
    let size = size(&path);
    ManifestFile {
        size: size.unwrap_or(0),
        exists: size.is_some(),
        kind: if writable {
            Kind::ReadWrite
        } else {
            Kind::ReadOnly
        },
        path,
        mmap_shared: false,
        origin: Origin::Sharing,
        first_access_s: None,
        last_access_s: None,
        write_calls: 0,
        bytes_written: 0,
        periods: Vec::new(),
    }
}

impl TraceOutput {
    /// A short human summary (for stderr).
    pub fn summary(&self) -> String {
        let m = &self.manifest;
        let traced = m.files.iter().filter(|f| f.origin == Origin::Traced);
        let rw = traced.clone().filter(|f| f.kind == Kind::ReadWrite).count();
        let total = traced.clone().count();
        let calls: u64 = traced.map(|f| f.write_calls).sum();
        let mut text = format!(
            "traced {} process(es) for {:.2} s: {} files ({} read-only, {} read-write), {} update calls\n",
            m.processes.len(),
            m.duration_s,
            total,
            total - rw,
            rw,
            calls
        );
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
