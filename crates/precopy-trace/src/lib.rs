//! Identify an application's files on Linux x86-64: which files it uses, which it only reads
//! (ReadOnly) and which it writes (ReadWrite), when it updates them, and which other processes
//! share them. This is the identification step of the method (SPEC §1); the output is the trace
//! format of [`precopy_core::trace`] and a JSON manifest. See `docs/tracer.md`.
//!
//! Two ways, one output ([`Identify`]): **stop-free** ([`watch`]: fanotify events of the
//! application's processes, known exactly from the kernel's fork notices, [`forks`]; the
//! application runs in a cgroup of its own, [`cgroup`], and never stops; needs root), and the
//! paper's **ptrace** method below, which stops it on every open.
//!
//! # Layers (ptrace)
//!
//! ```text
//!  tracer (ptrace loop)          decode (pure)              record
//!  waitpid → typed Stop ──────▶ fd tables, paths ──────▶ FileEvent → trace + manifest
//!  reads regs via arch::*        classification            (ids, kinds, periods)
//!  reads tracee memory
//! ```
//!
//! - [`tracer::Tracer`] spawns or attaches, keeps the application running (signals re-injected,
//!   group stops held with `PTRACE_LISTEN`) and yields [`stop::Stop`]s. System call arguments,
//!   path strings and the files behind new fds are read here, so a [`syscall::SyscallRecord`]
//!   is complete when it leaves the loop.
//! - [`decode::Decoder`] turns stops into [`decode::FileEvent`]s. It does no I/O.
//! - [`record::Recording`] assigns ids and builds the outputs; [`session::record`] wires it all.
//!
//! ```
//! use precopy_trace::decode::{Decoder, FileEvent};
//! use precopy_trace::paths::PathFilter;
//! use precopy_trace::stop::Stop;
//! use precopy_trace::syscall::{Call, OpenedFile, SyscallRecord};
//! use nix::unistd::Pid;
//!
//! let mut decoder = Decoder::new(PathFilter::default());
//! let open = SyscallRecord {
//!     tid: Pid::from_raw(42),
//!     call: Call::Open { flags: libc::O_WRONLY as u64, creates: false },
//!     ret: 3,
//!     opened: Some(OpenedFile { path: "/data/log".into(), regular: true }),
//! };
//! let events = decoder.decode(&Stop::Syscall(open));
//! assert!(matches!(&events[..], [FileEvent::Opened { write: true, .. }]));
//! ```
//!
//! # Cost
//!
//! A spawned application gets a seccomp filter (installed between fork and exec) that returns
//! `SECCOMP_RET_TRACE` only for the calls the decoder needs and `SECCOMP_RET_ALLOW` for all
//! others, so it stops only on those (strace's `--seccomp-bpf`). An attached process (`--pid`)
//! cannot be given a filter from outside: every one of its system calls stops twice
//! (`PTRACE_SYSCALL`), which costs far more on call-heavy programs.
//!
//! # If the tracer dies
//!
//! A spawned application is seized with `PTRACE_O_EXITKILL`: if the tracer dies, the kernel
//! kills the application. Without a tracer its filtered calls would fail with `ENOSYS` (that is
//! what `SECCOMP_RET_TRACE` does when nobody traces), so it could not go on correctly anyway;
//! strace does the same. An attached process is not killed: Ctrl-C detaches from it cleanly.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![warn(missing_docs)]

pub mod arch;
pub mod cgroup;
pub mod decode;
pub mod error;
pub mod forks;
pub mod named;
pub mod notify;
pub mod paths;
pub mod record;
pub mod seccomp;
pub mod session;
pub mod sharing;
pub mod stop;
pub mod syscall;
pub mod tracer;
pub mod watch;

pub use error::TraceError;
pub use session::{
    record, record_observed, Identify, Observed, Target, TraceConfig, TraceOutput, WriteMonitor,
};
