//! The crate's error type.

use nix::errno::Errno;

/// Why tracing could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The kernel refused ptrace (EPERM).
    #[error(
        "ptrace is not permitted on pid {pid}: run as root or with CAP_SYS_PTRACE, or lower \
         /proc/sys/kernel/yama/ptrace_scope (1 only allows tracing descendants, 3 forbids ptrace); \
         in a container, check that the seccomp profile allows ptrace"
    )]
    NotPermitted {
        /// The process we tried to trace.
        pid: i32,
    },
    /// `--pid` names no running process.
    #[error("no process with pid {0}")]
    NoSuchProcess(i32),
    /// The command could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: Errno,
    },
    /// A ptrace or wait request failed unexpectedly.
    #[error("{what} failed for pid {pid}: {source}")]
    Ptrace {
        /// The request.
        what: &'static str,
        /// The thread.
        pid: i32,
        /// Why.
        source: Errno,
    },
    /// The seccomp filter could not be compiled.
    #[error("seccomp filter: {0}")]
    Filter(String),
    /// The fanotify write monitor could not start.
    #[error(
        "fanotify write monitor: {0} (it needs CAP_SYS_ADMIN, i.e. root; \
         `--write-monitor ptrace` works without it)"
    )]
    Fanotify(Errno),
    /// No cgroup of its own could be made for the application.
    #[error("cannot make a cgroup for the application: {0}")]
    Cgroup(String),
    /// The kernel's fork notices (the proc connector), which the stop-free mode needs to know
    /// the application's processes exactly, are not available.
    #[error("cannot follow the application's forks (proc connector): {0}")]
    ProcConnector(String),
    /// An `--include` or `--exclude` glob is malformed.
    #[error("glob `{glob}`: {message}")]
    Glob {
        /// The glob.
        glob: String,
        /// Why.
        message: String,
    },
    /// A `--tree` directory, or a directory in it, could not be listed.
    #[error("tree {path}: {message}")]
    Tree {
        /// The directory.
        path: String,
        /// Why.
        message: String,
    },
}

impl TraceError {
    /// A failed ptrace request, with EPERM turned into [`TraceError::NotPermitted`].
    pub(crate) fn ptrace(what: &'static str, pid: i32, source: Errno) -> TraceError {
        match source {
            Errno::EPERM => TraceError::NotPermitted { pid },
            Errno::ESRCH => TraceError::NoSuchProcess(pid),
            _ => TraceError::Ptrace { what, pid, source },
        }
    }
}
