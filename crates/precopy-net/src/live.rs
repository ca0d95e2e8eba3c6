//! The identification step, live: `send -- CMD` without a file list starts the application in a
//! cgroup of its own and watches it (`precopy-trace`: stop-free, from fanotify events of the
//! cgroup's processes, where permitted; else seccomp + ptrace for the open family, which stops
//! it on each open); the files it opens during
//! the identification window start the migration, and every file it opens later, up to the stop,
//! joins it ([`Live::take_opened`]), ReadWrite if any process of its tree opened it for writing.
//! The session stays with the application for its whole life (under ptrace a spawned tracee's
//! filtered calls fail without it, so it cannot be left behind). `send --pid PID` attaches for the window
//! instead, then detaches.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::thread::JoinHandleExt;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use nix::sys::pthread::pthread_kill;
use nix::sys::signal::Signal;
use precopy_core::Kind;
use precopy_trace::cgroup::{Cgroup, Join};
use precopy_trace::decode::FileEvent;
use precopy_trace::paths::PathFilter;
use precopy_trace::stop::Exit;
use precopy_trace::{record_observed, Identify, Observed, Target, TraceConfig, WriteMonitor};

use super::app::App;

/// What the tracing thread passes on.
enum Seen {
    Started(u32),
    Opened { path: String, write: bool },
}

/// The traced application.
pub struct Live {
    /// The root process id.
    pub pid: u32,
    seen: Receiver<Seen>,
    tracer: JoinHandle<Result<Option<Exit>>>,
    /// What the window identified: path → opened for writing.
    identified: BTreeMap<String, bool>,
}

impl Live {
    /// Starts `command` under the tracer, in a cgroup of its own where one can be made, and
    /// identifies its files for `window`. Writes are not the tracer's business here (the
    /// migration has its own write monitor), so it uses fanotify where permitted: the
    /// application stops on the open family only. Returns the application too, to be stopped
    /// for the final copy with its cgroup's freezer (or with signals, where there is none).
    pub fn spawn(
        command: &[String],
        filter: PathFilter,
        window: Duration,
        output: Option<Arc<OwnedFd>>,
        identify: Identify,
    ) -> Result<(Live, App)> {
        let command = command.iter().map(OsString::from).collect();
        let cgroup = Cgroup::for_spawn().and_then(|c| Ok((c.join()?, c)));
        let join = cgroup.as_ref().ok().map(|(join, _)| join.clone());
        // Stop-free identification needs the cgroup; without one, say why and use ptrace.
        let identify = match (&cgroup, identify) {
            (Err(e), Identify::Cgroup) => {
                return Err(anyhow!("{e}: stop-free identification needs a cgroup"))
            }
            (Err(_), Identify::Auto) => Identify::Ptrace,
            (_, identify) => identify,
        };
        let target = Target::Command(command);
        let live = Live::start(target, filter, window, output, join, identify)?;
        let app = App::traced(live.pid, cgroup.map(|(_, c)| c));
        Ok((live, app))
    }

    /// Attaches to a running process tree for `window`, then detaches: it runs on untraced
    /// (an attached process has no seccomp filter, so nothing depends on the tracer). The
    /// files it had open when the trace began count, with those it opened meanwhile.
    pub fn identify_attached(
        pid: u32,
        filter: PathFilter,
        window: Duration,
    ) -> Result<Vec<(PathBuf, Kind)>> {
        let pid = i32::try_from(pid).context("--pid out of range")?;
        let live = Live::start(
            Target::Pid(pid),
            filter,
            window,
            None,
            None,
            Identify::Ptrace,
        )?;
        // SIGINT to the tracing thread detaches (and interrupts its wait); its handler is
        // installed before the tracer reports the start.
        pthread_kill(live.tracer.as_pthread_t(), Signal::SIGINT)
            .context("detaching from the application")?;
        let files = live.files();
        live.tracer
            .join()
            .map_err(|_| anyhow!("the tracer thread panicked"))??;
        Ok(files)
    }

    fn start(
        target: Target,
        filter: PathFilter,
        window: Duration,
        output: Option<Arc<OwnedFd>>,
        cgroup: Option<Join>,
        identify: Identify,
    ) -> Result<Live> {
        let config = TraceConfig {
            filter,
            write_monitor: WriteMonitor::Auto,
            output,
            identify,
            cgroup,
            ..TraceConfig::new(target)
        };
        let (tx, seen) = channel();
        let tracer = std::thread::Builder::new()
            .name("tracer".into())
            .spawn(move || {
                // Each (path, write) once: a long-lived application reopens its files often.
                let mut told = BTreeSet::new();
                let output = record_observed(&config, &mut |observed| {
                    let message = match observed {
                        Observed::Started { pid } => Seen::Started(pid),
                        Observed::File {
                            event: FileEvent::Opened { path, write, .. },
                            ..
                        } => {
                            if !told.insert((path.clone(), *write)) {
                                return;
                            }
                            Seen::Opened {
                                path: path.clone(),
                                write: *write,
                            }
                        }
                        Observed::IdentifyFallback { why } => {
                            eprintln!("send: {why}: identifying the application's files with ptrace (it stops on each open)");
                            return;
                        }
                        Observed::Fallback { why } => {
                            eprintln!("send: {why}: tracing the application's writes with ptrace (slower)");
                            return;
                        }
                        Observed::File { .. } => return,
                    };
                    // The receiving side is gone only when send is failing anyway.
                    let _ = tx.send(message);
                });
                Ok(output?.exit)
            })
            .context("starting the tracer thread")?;
        let pid = match seen.recv() {
            Ok(Seen::Started(pid)) => pid,
            _ => return Err(failure(tracer)),
        };
        let mut live = Live {
            pid,
            seen,
            tracer,
            identified: BTreeMap::new(),
        };
        let end = Instant::now() + window;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match live.seen.recv_timeout(left) {
                Ok(Seen::Opened { path, write }) => {
                    *live.identified.entry(path).or_default() |= write;
                }
                Ok(Seen::Started(_)) => {}
                Err(RecvTimeoutError::Timeout) => break,
                // The application ended within the window: what it opened is all there is.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(live)
    }

    /// The identified files that still exist as regular files (a temporary file may be gone),
    /// with their kinds.
    pub fn files(&self) -> Vec<(PathBuf, Kind)> {
        self.identified
            .iter()
            .map(|(path, &write)| (PathBuf::from(path), Kind::opened_for_writing(write)))
            .filter(|(path, _)| path.is_file())
            .collect()
    }

    /// The files first opened (or first opened for writing) since the last call, with their
    /// kinds. Called up to the stop, so every file opened before it is migrated.
    pub fn take_opened(&mut self) -> Vec<(PathBuf, Kind)> {
        let mut fresh = Vec::new();
        for seen in self.seen.try_iter() {
            let Seen::Opened { path, write } = seen else {
                continue;
            };
            let known = self.identified.get(&path).copied();
            if known.is_none() || (write && known == Some(false)) {
                self.identified.insert(path.clone(), write);
                fresh.push((PathBuf::from(path), Kind::opened_for_writing(write)));
            }
        }
        fresh
    }

    /// Waits for the application to end (the tracer must outlive it), says which files it
    /// first opened after the stop (they are not at D), and says how it ended.
    pub fn wait_and_report(self) -> Result<String> {
        let exit = self
            .tracer
            .join()
            .map_err(|_| anyhow!("the tracer thread panicked"))??;
        let late: BTreeSet<String> = self
            .seen
            .try_iter()
            .filter_map(|seen| match seen {
                Seen::Opened { path, .. } if !self.identified.contains_key(&path) => Some(path),
                _ => None,
            })
            .collect();
        if !late.is_empty() {
            const SHOWN: usize = 5;
            let mut names: Vec<&str> = late.iter().take(SHOWN).map(String::as_str).collect();
            if late.len() > SHOWN {
                names.push("…");
            }
            eprintln!(
                "send: {} file(s) first opened after the stop were not migrated: {}",
                late.len(),
                names.join(", ")
            );
        }
        Ok(match exit {
            Some(Exit::Code(code)) => format!("exit code {code}"),
            Some(Exit::Signal(signal)) => format!("killed by signal {signal}"),
            None => "detached".into(),
        })
    }
}

/// Why the tracer ended before the application started.
fn failure(tracer: JoinHandle<Result<Option<Exit>>>) -> anyhow::Error {
    match tracer.join() {
        Ok(Err(e)) => e.context("tracing the application"),
        Ok(Ok(_)) => anyhow!("the tracer ended before the application started"),
        Err(_) => anyhow!("the tracer thread panicked"),
    }
}
