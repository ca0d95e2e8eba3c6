//! Restarting the application at the destination, as the user it ran as at the source.
//!
//! The source reads the application's [`Identity`] (effective uid and gid, supplementary groups,
//! the environment it was started with); the destination [`start`]s the command with exactly
//! that identity, in a session of its own, and reports it started only if it is still running
//! after a grace period: a server that refuses to run (PostgreSQL as root, a port in use) exits
//! within it, and the error then carries its exit status and last lines on stderr. A thread of
//! ours reaps it whenever it exits, so it never lingers as a zombie of the receiver.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lines of the application's stderr kept for the error of an early exit.
const TAIL_LINES: usize = 20;
/// A kept line is cut to this many characters: the error travels in a frame of bounded size.
const TAIL_LINE_CHARS: usize = 300;
/// A line is forwarded in pieces of at most this many bytes, so none grows without bound.
const LINE_BYTES: u64 = 4096;
/// How long an early exit waits for the end of its stderr: a background process the application
/// left behind may hold the pipe open for ever.
const STDERR_DRAIN: Duration = Duration::from_millis(200);

/// Who a process runs as, and with which environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
    /// `NAME=value` entries, as the process was started with (later `setenv`s are not seen).
    pub env: Vec<Vec<u8>>,
}

impl Identity {
    /// Reads `/proc/PID/status` and `/proc/PID/environ` (the latter needs the right to ptrace
    /// the process: same user, or root).
    pub fn of_process(pid: u32) -> io::Result<Identity> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let (uid, gid, groups) = parse_status(&status).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("/proc/{pid}/status lacks a Uid:, Gid: or Groups: line"),
            )
        })?;
        let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
        let env = environ
            .split(|&b| b == 0)
            .filter(|entry| !entry.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        Ok(Identity {
            uid,
            gid,
            groups,
            env,
        })
    }
}

/// `(effective uid, effective gid, supplementary groups)` from the text of `/proc/PID/status`.
fn parse_status(status: &str) -> Option<(u32, u32, Vec<u32>)> {
    let field = |name: &str| status.lines().find_map(|line| line.strip_prefix(name));
    // Real, effective, saved, filesystem.
    let effective = |name: &str| field(name)?.split_whitespace().nth(1)?.parse().ok();
    let groups = field("Groups:")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    Some((effective("Uid:")?, effective("Gid:")?, groups))
}

/// What to start at the destination.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The command line, `argv[0]` first (looked up in the `PATH` of `identity.env` when it has
    /// no slash).
    pub argv: Vec<Vec<u8>>,
    /// The working directory; it must exist.
    pub cwd: PathBuf,
    /// Who it runs as, and its whole environment.
    pub identity: Identity,
}

/// The application runs at the destination.
#[derive(Debug)]
pub struct Started {
    /// Its process id; it leads a session of its own.
    pub pid: u32,
    spawned: Instant,
    exit: Arc<Exit>,
}

impl Started {
    /// How long it has been running.
    pub fn running(&self) -> Duration {
        self.spawned.elapsed()
    }

    /// Its exit status once it has exited and been reaped, or `None` if it still runs after
    /// `bound`.
    pub fn wait(&self, bound: Duration) -> Option<ExitStatus> {
        self.exit.wait(bound)
    }
}

/// Why the application is not running at the destination.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// No command to start.
    #[error("cannot restart the application: empty command line")]
    EmptyCommand,
    /// It could not be started.
    #[error("cannot start {program} in {} as uid {uid}, gid {gid}: {source}", .cwd.display())]
    Spawn {
        /// `argv[0]`.
        program: String,
        /// Its working directory.
        cwd: PathBuf,
        /// The user it was to run as.
        uid: u32,
        /// The group it was to run as.
        gid: u32,
        /// Why.
        source: io::Error,
    },
    /// It started and exited within the grace period.
    #[error(
        "the application exited at the destination within {:.1} s ({status}){}",
        .grace.as_secs_f64(),
        tail_suffix(.stderr_tail)
    )]
    Exited {
        /// The grace period.
        grace: Duration,
        /// `exit status N` or `killed by SIGNAME`.
        status: String,
        /// Its last lines on stderr, joined by newlines.
        stderr_tail: String,
    },
}

/// Starts `launch` and gives it `grace` to fail: `Ok` only if it still runs then. Its stdout
/// goes to our stderr; its stderr is forwarded to ours line by line, prefixed with `app: `.
///
/// The supplementary groups are set only if they differ from ours (setting them needs
/// CAP_SETGID even when unchanged), so an unprivileged receiver can still start the application
/// as itself; starting it as anyone else needs root.
pub fn start(launch: &Launch, grace: Duration) -> Result<Started, RestartError> {
    let (program, args) = launch
        .argv
        .split_first()
        .ok_or(RestartError::EmptyCommand)?;
    let Identity {
        uid,
        gid,
        ref groups,
        ref env,
    } = launch.identity;
    let spawn_error = |source| RestartError::Spawn {
        program: String::from_utf8_lossy(program).into_owned(),
        cwd: launch.cwd.clone(),
        uid,
        gid,
        source,
    };
    let mut command = Command::new(OsStr::from_bytes(program));
    command
        .args(args.iter().map(|arg| OsStr::from_bytes(arg)))
        .current_dir(&launch.cwd)
        .env_clear()
        .envs(env.iter().filter_map(|entry| {
            let at = entry.iter().position(|&b| b == b'=').filter(|&at| at > 0)?;
            Some((
                OsStr::from_bytes(&entry[..at]),
                OsStr::from_bytes(&entry[at + 1..]),
            ))
        }))
        .stdin(Stdio::null())
        .stdout(stderr_clone().map_err(spawn_error)?)
        .stderr(Stdio::piped());
    let groups = (!same_groups(groups)).then(|| groups.clone());
    // SAFETY: between fork and exec the child only makes the setsid, setgroups, setgid and
    // setuid system calls (async-signal-safe; glibc's are in the child alone, its only thread)
    // and reads `groups`, allocated before the fork; on failure it builds an `io::Error` from
    // errno, which does not allocate. Groups and gid go before the uid: changing them needs the
    // privilege that dropping root removes.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            rustix::process::setsid()?;
            if let Some(groups) = &groups {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(spawn_error)?;
    let spawned = Instant::now();
    let pid = child.id();

    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
    let (reading, stderr_closed) = mpsc::channel::<()>();
    let stderr = child.stderr.take().expect("stderr is piped");
    let kept = Arc::clone(&tail);
    std::thread::spawn(move || {
        forward_stderr(stderr, &kept);
        drop(reading);
    });

    let exit = Arc::new(Exit::default());
    let reaped = Arc::clone(&exit);
    std::thread::spawn(move || match child.wait() {
        Ok(status) => {
            eprintln!(
                "receive: the restarted application (pid {pid}) exited ({})",
                describe(status)
            );
            reaped.record(status);
        }
        Err(e) => eprintln!("receive: waiting for the restarted application (pid {pid}): {e}"),
    });

    let Some(status) = exit.wait(grace) else {
        return Ok(Started { pid, spawned, exit });
    };
    // Its last lines may still be in the pipe: wait until it is closed and read to the end.
    let _ = stderr_closed.recv_timeout(STDERR_DRAIN);
    let lines = tail.lock().unwrap_or_else(PoisonError::into_inner);
    Err(RestartError::Exited {
        grace,
        status: describe(status),
        stderr_tail: Vec::from(lines.clone()).join("\n"),
    })
}

/// `: <its last lines>`, or what says there were none.
fn tail_suffix(stderr_tail: &str) -> String {
    if stderr_tail.is_empty() {
        ", with nothing on stderr".to_owned()
    } else {
        format!(": {stderr_tail}")
    }
}

/// Our stderr, for the application's stdout: a daemon's stdout may be nowhere anyone reads.
fn stderr_clone() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    io::stderr().as_fd().try_clone_to_owned()
}

/// `groups` are our supplementary groups, in any order.
fn same_groups(groups: &[u32]) -> bool {
    let Ok(ours) = rustix::process::getgroups() else {
        return false;
    };
    let mut ours: Vec<u32> = ours.into_iter().map(|gid| gid.as_raw()).collect();
    let mut theirs = groups.to_vec();
    for list in [&mut ours, &mut theirs] {
        list.sort_unstable();
        list.dedup();
    }
    ours == theirs
}

/// Copies the application's stderr to ours, each line prefixed, keeping the last lines.
fn forward_stderr(stderr: impl Read, tail: &Mutex<VecDeque<String>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(LINE_BYTES).read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        let _ = writeln!(io::stderr().lock(), "app: {text}");
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text.chars().take(TAIL_LINE_CHARS).collect());
    }
}

/// `exit status N` or `killed by SIGNAME`.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(name) => format!("killed by {name}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => status.to_string(),
    }
}

/// The exit status, recorded by the reaper thread, awaited by others.
#[derive(Debug, Default)]
struct Exit {
    status: Mutex<Option<ExitStatus>>,
    reaped: Condvar,
}

impl Exit {
    fn record(&self, status: ExitStatus) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
        self.reaped.notify_all();
    }

    fn wait(&self, bound: Duration) -> Option<ExitStatus> {
        let status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        let (status, _) = self
            .reaped
            .wait_timeout_while(status, bound, |status| status.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        *status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough for any child here to exit; `start` returns as soon as it does.
    const PATIENCE: Duration = Duration::from_secs(30);

    fn argv(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|item| item.as_bytes().to_vec()).collect()
    }

    /// Ours, with `env` as the whole environment.
    fn own_identity(env: &[&str]) -> Identity {
        Identity {
            env: argv(env),
            ..Identity::of_process(std::process::id()).unwrap()
        }
    }

    fn launch(command: &[&str], identity: Identity) -> Launch {
        Launch {
            argv: argv(command),
            cwd: PathBuf::from("/"),
            identity,
        }
    }

    fn kill(pid: u32) {
        let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    }

    #[test]
    fn status_gives_the_effective_ids_and_the_groups() {
        let status = "Name:\tpostgres\nUmask:\t0077\nState:\tS (sleeping)\n\
                      Uid:\t1000\t999\t999\t999\nGid:\t1001\t998\t998\t998\n\
                      FDSize:\t64\nGroups:\t4 24 998 \nNStgid:\t42\n";
        assert_eq!(parse_status(status), Some((999, 998, vec![4, 24, 998])));
        let no_groups = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t \n";
        assert_eq!(parse_status(no_groups), Some((0, 0, vec![])));
        assert_eq!(parse_status("Uid:\t0\t0\t0\t0\nGroups:\t\n"), None);
    }

    #[test]
    fn our_identity_matches_our_credentials() {
        let identity = Identity::of_process(std::process::id()).unwrap();
        assert_eq!(identity.uid, rustix::process::geteuid().as_raw());
        assert_eq!(identity.gid, rustix::process::getegid().as_raw());
        assert!(same_groups(&identity.groups), "{:?}", identity.groups);
        assert!(identity
            .env
            .iter()
            .all(|entry| !entry.is_empty() && !entry.contains(&0)));
    }

    #[test]
    fn an_application_that_stays_is_started_and_reaped_when_it_exits() {
        let started = start(
            &launch(&["sleep", "30"], own_identity(&["PATH=/usr/bin:/bin"])),
            Duration::from_millis(300),
        )
        .unwrap();
        assert_eq!(started.wait(Duration::ZERO), None);
        kill(started.pid);
        let status = started.wait(PATIENCE).expect("reaped");
        assert_eq!(describe(status), "killed by SIGKILL");
        // Reaped: no zombie left (the pid could only have been reused by a live process).
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", started.pid));
        assert!(stat.map_or(true, |stat| !stat.contains(") Z ")));
    }

    #[test]
    fn an_application_that_exits_at_once_is_an_error_with_its_stderr() {
        let failing = launch(
            &[
                "sh",
                "-c",
                "echo starting; echo 'first line' >&2; echo boom >&2; exit 3",
            ],
            own_identity(&["PATH=/usr/bin:/bin"]),
        );
        let err = start(&failing, PATIENCE).unwrap_err();
        let RestartError::Exited {
            status,
            stderr_tail,
            ..
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(status, "exit status 3");
        assert_eq!(stderr_tail, "first line\nboom");
        assert_eq!(
            err.to_string(),
            "the application exited at the destination within 30.0 s (exit status 3): first line\nboom"
        );
    }

    #[test]
    fn the_environment_is_exactly_the_given_one() {
        // Entries with no name are dropped; `/proc/PID/environ` shows what the exec got.
        let given = [
            "PATH=/usr/bin:/bin",
            "PRECOPY_MARKER=a=b",
            "NO_EQUALS",
            "=nameless",
        ];
        let started = start(
            &launch(&["sleep", "30"], own_identity(&given)),
            Duration::from_millis(300),
        )
        .unwrap();
        let seen = Identity::of_process(started.pid).unwrap().env;
        kill(started.pid);
        assert_eq!(seen, argv(&given[..2]));
    }

    #[test]
    fn a_missing_program_is_named() {
        let missing = launch(&["/nonexistent/precopy-app"], own_identity(&[]));
        let err = start(&missing, PATIENCE).unwrap_err();
        assert!(matches!(err, RestartError::Spawn { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("cannot start /nonexistent/precopy-app in / as uid"),
            "{err}"
        );
    }

    /// A server that refuses root, as PostgreSQL does, runs when started as `nobody`.
    #[test]
    fn root_starts_it_as_the_given_user() {
        if !rustix::process::geteuid().is_root() {
            let reason = "SKIPPED root_starts_it_as_the_given_user: needs root to change uid";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{reason}, and CI runs as root"
            );
            let _ = writeln!(io::stderr(), "{reason}");
            return;
        }
        const NOBODY: u32 = 65534;
        let identity = Identity {
            uid: NOBODY,
            gid: NOBODY,
            groups: vec![100, NOBODY],
            env: argv(&["PATH=/usr/bin:/bin"]),
        };
        let refuses_root =
            "test \"$(id -u)\" != 0 || { echo 'root is refused' >&2; exit 1; }; exec sleep 30";
        let started = start(
            &launch(&["sh", "-c", refuses_root], identity.clone()),
            Duration::from_millis(300),
        )
        .unwrap();
        let seen = Identity::of_process(started.pid).unwrap();
        kill(started.pid);
        // (The shell adds PWD to the environment of the `sleep` it becomes.)
        assert_eq!(
            (seen.uid, seen.gid, seen.groups),
            (identity.uid, identity.gid, identity.groups)
        );
    }
}
