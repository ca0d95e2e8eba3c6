//! What the ptrace loop yields: typed stops, with everything the decoder needs already read.

use nix::unistd::Pid;

use crate::syscall::SyscallRecord;

/// One thing that happened in the traced process tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A process came under trace with these fds already open (the spawned application before
    /// exec, or every process attached with `--pid`).
    Attached {
        /// The process (thread group) id.
        pid: Pid,
        /// Its threads, the leader included.
        threads: Vec<Pid>,
        /// Its open fds.
        fds: Vec<InheritedFd>,
    },
    /// A traced system call finished.
    Syscall(SyscallRecord),
    /// fork, vfork or clone made a new traced thread or process.
    Spawned {
        /// The thread that called fork/clone.
        parent: Pid,
        /// The new thread.
        child: Pid,
        /// CLONE_THREAD: same process.
        thread: bool,
        /// CLONE_FILES: same fd table.
        shares_files: bool,
    },
    /// A successful execve; `former` is the thread that called it (it becomes `pid`).
    Exec {
        /// The process after exec.
        pid: Pid,
        /// The calling thread.
        former: Pid,
    },
    /// A thread or process is gone.
    Exited {
        /// The thread.
        pid: Pid,
        /// How it ended.
        status: Exit,
    },
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// exit(code).
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Exit {
    /// The shell's convention: the code, or 128 + the signal.
    pub fn shell_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// An fd open when a process came under trace, from `/proc/PID/fd` and `fdinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InheritedFd {
    /// The fd.
    pub fd: i32,
    /// What it refers to.
    pub path: String,
    /// A regular file.
    pub regular: bool,
    /// Open for writing.
    pub writable: bool,
    /// Close-on-exec.
    pub cloexec: bool,
}
