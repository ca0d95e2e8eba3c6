//! The identification step, live: `send -- CMD` without a file list starts the application in a
//! cgroup of its own and watches it: stop-free where permitted (`precopy_trace::watch`: fanotify
//! events of the application's processes; it never stops, and nothing of `send` outlives the
//! migration), else with seccomp + ptrace for the open family, which stops it on each open. The
//! files it opens during the identification window start the migration, and every file it opens
//! later, up to the stop, joins it ([`Live::take_opened`]), ReadWrite if any process of its tree
//! opened it for writing. Under ptrace the session stays with the application for its whole life
//! (a spawned tracee's filtered calls fail without its tracer, so it cannot be left behind).
//! `send --pid PID` attaches for the window instead, then detaches.

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
use precopy_trace::session::DEFAULT_WINDOW_S;
use precopy_trace::stop::Exit;
use precopy_trace::watch::Watch;
use precopy_trace::{record_observed, Identify, Observed, Target, TraceConfig, WriteMonitor};

use super::app::App;

/// What the tracing thread passes on.
enum Seen {
    Started(u32),
    Opened { path: String, write: bool },
}

/// The watched application.
pub struct Live {
    source: Source,
    /// What was identified so far: path → opened for writing.
    identified: BTreeMap<String, bool>,
}

/// Where the application's opens come from.
enum Source {
    /// The ptrace session, which lives as long as the application.
    Traced(Tracing),
    /// The stop-free watch, ours to end.
    Watched(Watch),
}

/// A ptrace session on a thread of its own.
struct Tracing {
    seen: Receiver<Seen>,
    tracer: JoinHandle<Result<Option<Exit>>>,
}

impl Live {
    /// Starts `command` in a cgroup of its own where one can be made, and identifies its files
    /// for `window`: stop-free ([`Identify::Cgroup`]; [`Identify::Auto`] where permitted, else
    /// with a note) or under ptrace. Under ptrace, writes are not the tracer's business here
    /// (the migration has its own write monitor), so it uses fanotify where permitted: the
    /// application stops on the open family only. Returns the application too, to be stopped
    /// for the final copy with its cgroup's freezer (or with signals, where there is none).
    pub fn spawn(
        command: &[String],
        filter: PathFilter,
        window: Duration,
        output: OwnedFd,
        identify: Identify,
    ) -> Result<(Live, App)> {
        let identify = match identify {
            Identify::Ptrace => Identify::Ptrace,
            stop_free => match Live::watched(command, filter.clone(), window, &output) {
                Ok(watched) => return Ok(watched),
                Err(e) if stop_free == Identify::Auto => {
                    eprintln!(
                        "send: {e:#}: identifying the application's files with ptrace (it \
                         stops on each open; send stays until it ends)"
                    );
                    Identify::Ptrace
                }
                Err(e) => return Err(e.context("stop-free identification")),
            },
        };
        let command = command.iter().map(OsString::from).collect();
        let cgroup = Cgroup::for_spawn().and_then(|c| Ok((c.join()?, c)));
        let join = cgroup.as_ref().ok().map(|(join, _)| join.clone());
        let target = Target::Command(command);
        let output = Some(Arc::new(output));
        let (tracing, identified, pid) =
            Live::start(target, filter, window, output, join, identify)?;
        let live = Live {
            source: Source::Traced(tracing),
            identified,
        };
        let app = App::traced(pid, cgroup.map(|(_, c)| c));
        Ok((live, app))
    }

    /// Stop-free: the cgroup and the armed watch first, so its first open is seen; then the
    /// application, spawned as `send` spawns one it does not trace ([`App::spawn_in`]).
    fn watched(
        command: &[String],
        filter: PathFilter,
        window: Duration,
        output: &OwnedFd,
    ) -> Result<(Live, App)> {
        let cgroup = Cgroup::for_spawn().context("a cgroup for the application")?;
        let modify_window = Duration::from_secs_f64(DEFAULT_WINDOW_S);
        let armed = Watch::arm(cgroup.path(), Instant::now(), modify_window, filter)?;
        let mut app = App::spawn_in(command, output.try_clone()?, Ok(cgroup))
            .with_context(|| format!("starting {}", command[0]))?;
        let watch = match armed.follow(app.pid()) {
            Ok(watch) => watch,
            Err(e) => {
                // Not left running unwatched (nor started twice by the fallback).
                let _ = app.kill();
                return Err(e.into());
            }
        };
        let mut live = Live {
            source: Source::Watched(watch),
            identified: BTreeMap::new(),
        };
        // The files opened within the window; the rest come through `take_opened`.
        std::thread::sleep(window);
        live.take_opened();
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
        let (Tracing { tracer, .. }, identified, _) = Live::start(
            Target::Pid(pid),
            filter,
            window,
            None,
            None,
            Identify::Ptrace,
        )?;
        let files = existing(&identified);
        // SIGINT to the tracing thread detaches (and interrupts its wait); its handler is
        // installed before the tracer reports the start.
        pthread_kill(tracer.as_pthread_t(), Signal::SIGINT)
            .context("detaching from the application")?;
        tracer
            .join()
            .map_err(|_| anyhow!("the tracer thread panicked"))??;
        Ok(files)
    }

    /// A ptrace session on a thread of its own, after the identification window; with what it
    /// identified and the root's pid.
    fn start(
        target: Target,
        filter: PathFilter,
        window: Duration,
        output: Option<Arc<OwnedFd>>,
        cgroup: Option<Join>,
        identify: Identify,
    ) -> Result<(Tracing, BTreeMap<String, bool>, u32)> {
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
                        Observed::Fallback { why } => {
                            eprintln!("send: {why}: tracing the application's writes with ptrace (slower)");
                            return;
                        }
                        Observed::IdentifyFallback { .. } | Observed::File { .. } => return,
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
        let mut identified = BTreeMap::new();
        let end = Instant::now() + window;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match seen.recv_timeout(left) {
                Ok(Seen::Opened { path, write }) => {
                    *identified.entry(path).or_default() |= write;
                }
                Ok(Seen::Started(_)) => {}
                Err(RecvTimeoutError::Timeout) => break,
                // The application ended within the window: what it opened is all there is.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok((Tracing { seen, tracer }, identified, pid))
    }

    /// Whether the application runs under our tracer, so [`Live::finish`] waits until it ends.
    pub fn traced(&self) -> bool {
        matches!(self.source, Source::Traced(_))
    }

    /// The identified files that still exist as regular files (a temporary file may be gone),
    /// with their kinds.
    pub fn files(&self) -> Vec<(PathBuf, Kind)> {
        existing(&self.identified)
    }

    /// The files first opened (or first opened for writing) since the last call, with their
    /// kinds. Called up to the stop, so every file opened before it is migrated.
    pub fn take_opened(&mut self) -> Vec<(PathBuf, Kind)> {
        let opens = match &self.source {
            Source::Traced(tracing) => traced_opens(tracing.seen.try_iter()),
            Source::Watched(watch) => {
                let mut opens = watched_opens(watch.take(), &self.identified);
                opens.extend(watch.open_now());
                opens
            }
        };
        let mut fresh = Vec::new();
        for (path, write) in opens {
            let known = self.identified.get(&path).copied();
            if known.is_none() || (write && known == Some(false)) {
                self.identified.insert(path.clone(), write);
                fresh.push((PathBuf::from(path), Kind::opened_for_writing(write)));
            }
        }
        fresh
    }

    /// Ends identification, and says which files were first opened after the stop (they are
    /// not at D). Under ptrace it first waits for the application to end (the tracer must
    /// outlive it) and returns how it ended; stop-free it ends the watch at once (`None`): the
    /// application runs on without it.
    pub fn finish(self) -> Result<Option<String>> {
        let (exit, opens) = match self.source {
            Source::Traced(Tracing { seen, tracer }) => {
                let exit = tracer
                    .join()
                    .map_err(|_| anyhow!("the tracer thread panicked"))??;
                let exit = match exit {
                    Some(Exit::Code(code)) => format!("exit code {code}"),
                    Some(Exit::Signal(signal)) => format!("killed by signal {signal}"),
                    None => "detached".into(),
                };
                (Some(exit), traced_opens(seen.try_iter()))
            }
            Source::Watched(watch) => (None, watched_opens(watch.finish().0, &self.identified)),
        };
        let late: BTreeSet<String> = opens
            .into_iter()
            .map(|(path, _)| path)
            .filter(|path| !self.identified.contains_key(path))
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
        Ok(exit)
    }
}

/// The identified files that exist as regular files, with their kinds.
fn existing(identified: &BTreeMap<String, bool>) -> Vec<(PathBuf, Kind)> {
    identified
        .iter()
        .map(|(path, &write)| (PathBuf::from(path), Kind::opened_for_writing(write)))
        .filter(|(path, _)| path.is_file())
        .collect()
}

/// The opens among the tracer's messages: (path, opened for writing).
fn traced_opens(seen: impl Iterator<Item = Seen>) -> Vec<(String, bool)> {
    seen.filter_map(|seen| match seen {
        Seen::Opened { path, write } => Some((path, write)),
        Seen::Started(_) => None,
    })
    .collect()
}

/// The opens among the watch's events, a renamed file's under its new name (the watch tells
/// a file at its close, by the name it had then).
fn watched_opens(
    events: Vec<precopy_trace::watch::Timed>,
    identified: &BTreeMap<String, bool>,
) -> Vec<(String, bool)> {
    let mut opens: Vec<(String, bool)> = Vec::new();
    for (_, event) in events {
        match event {
            FileEvent::Opened { path, write, .. } => opens.push((path, write)),
            FileEvent::Renamed { from, to, .. } => {
                let told = opens.iter().rev().find(|(path, _)| *path == from);
                let write = told
                    .map(|(_, write)| *write)
                    .or(identified.get(&from).copied());
                if let Some(write) = write {
                    opens.push((to, write));
                }
            }
            _ => {}
        }
    }
    opens
}

/// Why the tracer ended before the application started.
fn failure(tracer: JoinHandle<Result<Option<Exit>>>) -> anyhow::Error {
    match tracer.join() {
        Ok(Err(e)) => e.context("tracing the application"),
        Ok(Ok(_)) => anyhow!("the tracer ended before the application started"),
        Err(_) => anyhow!("the tracer thread panicked"),
    }
}
