//! The ptrace loop: spawn or attach, wait for stops, keep the application running, and yield
//! typed [`Stop`]s. This is the only layer that talks to the kernel about the tracee: it reads
//! registers (through [`crate::arch`]) and tracee memory, and hands finished records upward.
//!
//! Signals: a signal-delivery stop re-injects the signal; a group stop (SIGSTOP, SIGTSTP…) is
//! left in place with `PTRACE_LISTEN`, so job control behaves as without a tracer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{CString, OsString};
use std::io::IoSliceMut;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::arch;
use crate::error::TraceError;
use crate::notify::Marks;
use crate::seccomp;
use crate::stop::{Exit, InheritedFd, Stop};
use crate::syscall::{self, Call, Memory, OpenedFile, PathArg, Sys, SyscallRecord};

/// Set by the SIGINT handler of [`Tracer::detach_on_sigint`].
static DETACH: AtomicBool = AtomicBool::new(false);

extern "C" fn request_detach(_: libc::c_int) {
    DETACH.store(true, Ordering::SeqCst);
}

/// Puts back the SIGINT action that [`Tracer::detach_on_sigint`] replaced, when dropped.
#[derive(Debug)]
pub struct SigintGuard(Option<SigAction>);

impl Drop for SigintGuard {
    fn drop(&mut self) {
        if let Some(previous) = self.0.take() {
            // SAFETY: an action this process had installed before.
            let _ = unsafe { signal::sigaction(Signal::SIGINT, &previous) };
        }
    }
}

/// How the application is stopped on system calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A seccomp filter stops only the calls we decode (spawned applications).
    Seccomp,
    /// `PTRACE_SYSCALL`: every system call stops twice (attached processes, which cannot be
    /// given a filter from outside).
    EverySyscall,
}

/// What a thread inside a system call is doing, between its entry and exit stops.
#[derive(Debug)]
enum Entry {
    /// A call we decode, its arguments already read.
    Traced(Call),
    /// Any other call (only in [`Mode::EverySyscall`]).
    Other,
}

/// The ptrace loop over one traced process tree.
#[derive(Debug)]
pub struct Tracer {
    mode: Mode,
    root: Pid,
    /// Traced threads, and the call each is inside of.
    threads: HashMap<Pid, Option<Entry>>,
    /// New threads whose first stop came before their parent's fork event: held stopped.
    early: HashSet<Pid>,
    /// New threads announced by a fork event whose first stop has not come yet.
    announced: HashSet<Pid>,
    queue: VecDeque<Stop>,
    detached: bool,
    /// The fanotify write monitor's marks: writes do not stop (spawned applications only).
    marks: Option<Marks>,
}

/// Stop options common to both modes.
fn options() -> Options {
    Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEEXEC
}

fn is_group_stop(sig: Signal) -> bool {
    matches!(
        sig,
        Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
    )
}

impl Tracer {
    /// Starts `command` (looked up in `PATH`) under trace with the seccomp filter installed.
    /// The application inherits stdin, stdout and stderr. With `PTRACE_O_EXITKILL`, it is killed
    /// if the tracer dies: its filtered calls would otherwise fail with ENOSYS.
    pub fn spawn(command: &[OsString]) -> Result<Tracer, TraceError> {
        Tracer::spawn_with(command, None, None, None)
    }

    /// [`Tracer::spawn`], with writes left to the fanotify write monitor when `marks` is given:
    /// the filter no longer stops the calls that only change an open file's content, and every
    /// recorded file is marked when it is opened (before the application can write to it).
    /// With `output`, the application's stdout and stderr go to that descriptor instead. With
    /// `cgroup` (a cgroup's `cgroup.procs`, open for writing), it joins that cgroup before it
    /// runs anything of its own.
    pub fn spawn_with(
        command: &[OsString],
        marks: Option<Marks>,
        output: Option<RawFd>,
        cgroup: Option<RawFd>,
    ) -> Result<Tracer, TraceError> {
        let name = command
            .first()
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        let spawn_error = |source| TraceError::Spawn {
            command: name.clone(),
            source,
        };
        let args: Vec<CString> = command
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(|_| spawn_error(Errno::EINVAL)))
            .collect::<Result<_, _>>()?;
        if args.is_empty() {
            return Err(spawn_error(Errno::ENOENT));
        }
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let program = seccomp::program(marks.is_none())?;
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        let message = format!("migrate-native trace: cannot execute `{name}`: ");
        // SAFETY: the child only makes async-signal-safe calls on memory prepared before the
        // fork, then execs or exits.
        match unsafe { fork() }.map_err(spawn_error)? {
            ForkResult::Child => unsafe {
                exec_child(&argv, &prog, message.as_bytes(), output, cgroup)
            },
            ForkResult::Parent { child } => Tracer::seize_child(child, marks),
        }
    }

    fn seize_child(child: Pid, marks: Option<Marks>) -> Result<Tracer, TraceError> {
        let raw = child.as_raw();
        match waitpid(child, Some(WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
            Ok(_) => {
                return Err(TraceError::Ptrace {
                    what: "waiting for the new process to stop",
                    pid: raw,
                    source: Errno::ECHILD,
                })
            }
            Err(e) => return Err(TraceError::ptrace("waitpid", raw, e)),
        }
        let opts = options() | Options::PTRACE_O_TRACESECCOMP | Options::PTRACE_O_EXITKILL;
        if let Err(e) = ptrace::seize(child, opts) {
            let _ = signal::kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            return Err(TraceError::ptrace("PTRACE_SEIZE", raw, e));
        }
        let mut tracer = Tracer::new(Mode::Seccomp, child);
        tracer.threads.insert(child, None);
        let fds = read_fds(child);
        if let Some(marks) = &marks {
            for fd in fds.iter().filter(|f| f.regular) {
                marks.add(&format!("/proc/{child}/fd/{}", fd.fd), &fd.path);
            }
        }
        tracer.marks = marks;
        tracer.queue.push_back(Stop::Attached {
            pid: child,
            threads: vec![child],
            fds,
        });
        signal::kill(child, Signal::SIGCONT).map_err(|e| TraceError::ptrace("kill", raw, e))?;
        Ok(tracer)
    }

    /// Attaches to every thread of a running process with `PTRACE_SEIZE`. No filter can be
    /// installed from outside, so every system call stops (see the crate docs for the cost).
    pub fn attach(pid: Pid) -> Result<Tracer, TraceError> {
        let raw = pid.as_raw();
        let task_dir = format!("/proc/{raw}/task");
        if std::fs::metadata(&task_dir).is_err() {
            return Err(TraceError::NoSuchProcess(raw));
        }
        let mut tracer = Tracer::new(Mode::EverySyscall, pid);
        // Threads may be created while we attach: repeat until no new one appears.
        loop {
            let tasks: Vec<Pid> = std::fs::read_dir(&task_dir)
                .map_err(|_| TraceError::NoSuchProcess(raw))?
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .map(Pid::from_raw)
                .filter(|t| !tracer.threads.contains_key(t))
                .collect();
            if tasks.is_empty() {
                break;
            }
            for tid in tasks {
                match ptrace::seize(tid, options()) {
                    Ok(()) => {}
                    Err(Errno::ESRCH) => continue,
                    Err(e) => return Err(TraceError::ptrace("PTRACE_SEIZE", tid.as_raw(), e)),
                }
                // A seized thread runs on: interrupt it so it can be restarted with
                // PTRACE_SYSCALL.
                let _ = ptrace::interrupt(tid);
                tracer.threads.insert(tid, None);
            }
        }
        let threads = tracer.threads.keys().copied().collect();
        tracer.queue.push_back(Stop::Attached {
            pid,
            threads,
            fds: read_fds(pid),
        });
        Ok(tracer)
    }

    /// Until the returned guard is dropped, SIGINT to this process makes [`Tracer::next_stop`]
    /// detach from every thread and end, leaving the application running; the guard puts the
    /// previous SIGINT action back, so a program that goes on after the trace gets its Ctrl-C
    /// back. A program can also detach on its own by sending SIGINT to the tracing thread
    /// (`pthread_kill`), which interrupts its wait too.
    pub fn detach_on_sigint() -> SigintGuard {
        DETACH.store(false, Ordering::SeqCst);
        // No SA_RESTART: the signal must interrupt waitpid.
        let action = SigAction::new(
            SigHandler::Handler(request_detach),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic.
        SigintGuard(unsafe { signal::sigaction(Signal::SIGINT, &action) }.ok())
    }

    fn new(mode: Mode, root: Pid) -> Tracer {
        Tracer {
            mode,
            root,
            threads: HashMap::new(),
            early: HashSet::new(),
            announced: HashSet::new(),
            queue: VecDeque::new(),
            detached: false,
            marks: None,
        }
    }

    /// The spawned or attached process.
    pub fn root(&self) -> Pid {
        self.root
    }

    /// How system calls are stopped.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether tracing ended by detaching (SIGINT in attach mode) rather than by the tree
    /// exiting.
    pub fn detached(&self) -> bool {
        self.detached
    }

    /// The next stop, or `None` when every traced thread has exited or we detached.
    pub fn next_stop(&mut self) -> Result<Option<Stop>, TraceError> {
        loop {
            if let Some(stop) = self.queue.pop_front() {
                return Ok(Some(stop));
            }
            if self.threads.is_empty() && self.early.is_empty() {
                return Ok(None);
            }
            if self.mode == Mode::EverySyscall && DETACH.load(Ordering::SeqCst) {
                self.detach_all()?;
                return Ok(None);
            }
            match waitpid(None, Some(tracees())) {
                Ok(status) => self.handle(status)?,
                Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => return Ok(None),
                Err(e) => return Err(TraceError::ptrace("waitpid", -1, e)),
            }
        }
    }

    fn handle(&mut self, status: WaitStatus) -> Result<(), TraceError> {
        match status {
            WaitStatus::Exited(pid, code) => self.gone(pid, Exit::Code(code)),
            WaitStatus::Signaled(pid, sig, _) => self.gone(pid, Exit::Signal(sig as i32)),
            WaitStatus::PtraceSyscall(pid) => self.syscall_stop(pid),
            WaitStatus::PtraceEvent(pid, sig, event) => self.event_stop(pid, sig, event)?,
            // Signal-delivery stop: deliver it.
            WaitStatus::Stopped(pid, sig) => self.resume(pid, Some(sig)),
            _ => {}
        }
        Ok(())
    }

    fn gone(&mut self, pid: Pid, status: Exit) {
        let known = self.threads.remove(&pid).is_some();
        self.early.remove(&pid);
        self.announced.remove(&pid);
        // Children of this process that we never traced are not ours to report.
        if known {
            self.queue.push_back(Stop::Exited { pid, status });
        }
    }

    fn event_stop(&mut self, pid: Pid, sig: Signal, event: i32) -> Result<(), TraceError> {
        const SECCOMP: i32 = Event::PTRACE_EVENT_SECCOMP as i32;
        const FORK: i32 = Event::PTRACE_EVENT_FORK as i32;
        const VFORK: i32 = Event::PTRACE_EVENT_VFORK as i32;
        const CLONE: i32 = Event::PTRACE_EVENT_CLONE as i32;
        const EXEC: i32 = Event::PTRACE_EVENT_EXEC as i32;
        const STOP: i32 = Event::PTRACE_EVENT_STOP as i32;
        match event {
            SECCOMP => {
                self.entry(pid);
                self.resume(pid, None);
            }
            FORK | VFORK | CLONE => {
                let Ok(child) = ptrace::getevent(pid) else {
                    return Ok(());
                };
                let child = Pid::from_raw(child as i32);
                let flags = clone_flags(pid);
                self.queue.push_back(Stop::Spawned {
                    parent: pid,
                    child,
                    thread: flags & libc::CLONE_THREAD as u64 != 0,
                    shares_files: flags & libc::CLONE_FILES as u64 != 0,
                });
                self.threads.insert(child, None);
                if self.early.remove(&child) {
                    self.resume(child, None);
                } else {
                    self.announced.insert(child);
                }
                self.resume(pid, None);
            }
            EXEC => {
                let former = ptrace::getevent(pid).map_or(pid, |f| Pid::from_raw(f as i32));
                if former != pid {
                    let entry = self.threads.remove(&former).flatten();
                    self.threads.insert(pid, entry);
                }
                self.queue.push_back(Stop::Exec { pid, former });
                self.resume(pid, None);
            }
            STOP => {
                if !self.threads.contains_key(&pid) {
                    // A new thread, before its parent's fork event: wait for that first.
                    self.early.insert(pid);
                } else if self.announced.remove(&pid) || !is_group_stop(sig) {
                    self.resume(pid, None);
                } else {
                    // Group stop: stay stopped, but keep reporting (SIGCONT, SIGKILL).
                    // SAFETY: PTRACE_LISTEN takes no pointers.
                    unsafe { libc::ptrace(libc::PTRACE_LISTEN, pid.as_raw(), 0, 0) };
                }
            }
            _ => self.resume(pid, None),
        }
        Ok(())
    }

    /// A syscall-entry (seccomp or PTRACE_SYSCALL) stop: read the call's arguments.
    fn entry(&mut self, tid: Pid) {
        let Ok(regs) = arch::read(tid) else { return };
        // With the write monitor, these calls are not ours (none arrive through the filter).
        let exact = self.marks.is_none();
        let call = arch::sys(regs.nr)
            .filter(|s| s.traced() && (exact || !s.exact_mode_only()))
            .and_then(|s| syscall::build(s, regs.args, &mut ProcMemory { pid: tid }));
        let entry = match (call, self.mode) {
            // close releases the fd whatever it returns: report it now and save the exit stop.
            (Some(call @ Call::Close { .. }), mode) => {
                let record = SyscallRecord {
                    tid,
                    call,
                    ret: 0,
                    opened: None,
                };
                self.queue.push_back(Stop::Syscall(record));
                (mode == Mode::EverySyscall).then_some(Entry::Other)
            }
            (Some(call), _) => Some(Entry::Traced(call)),
            (None, Mode::EverySyscall) => Some(Entry::Other),
            // No exit stop needed.
            (None, Mode::Seccomp) => None,
        };
        self.threads.insert(tid, entry);
    }

    fn syscall_stop(&mut self, tid: Pid) {
        match self.threads.get_mut(&tid).and_then(Option::take) {
            Some(Entry::Traced(call)) => {
                if let Ok(regs) = arch::read(tid) {
                    let opened = match call {
                        Call::Open { .. } if regs.ret >= 0 => {
                            opened_file(tid, regs.ret, self.marks.as_ref())
                        }
                        // No fd table in the fanotify mode: the fd's file, read now.
                        Call::Ftruncate { fd, .. } | Call::MmapShared { fd }
                            if self.marks.is_some() && regs.ret >= 0 =>
                        {
                            opened_file(tid, fd.into(), None)
                        }
                        _ => None,
                    };
                    self.queue.push_back(Stop::Syscall(SyscallRecord {
                        tid,
                        call,
                        ret: regs.ret,
                        opened,
                    }));
                }
            }
            Some(Entry::Other) => {}
            // Attached in the middle of a call, the first stop is its exit.
            None if self.mode == Mode::EverySyscall
                && arch::read(tid).is_ok_and(|r| r.at_entry()) =>
            {
                self.entry(tid);
            }
            None => {}
        }
        self.resume(tid, None);
    }

    fn resume(&mut self, tid: Pid, sig: Option<Signal>) {
        let in_call = matches!(self.threads.get(&tid), Some(Some(_)));
        let result = if self.mode == Mode::EverySyscall || in_call {
            ptrace::syscall(tid, sig)
        } else {
            ptrace::cont(tid, sig)
        };
        // ESRCH: killed meanwhile; its exit is reported next.
        let _ = result;
    }

    fn detach_all(&mut self) -> Result<(), TraceError> {
        let mut left: HashSet<Pid> = self.threads.keys().copied().collect();
        for tid in self.early.drain() {
            let _ = ptrace::detach(tid, None);
        }
        for tid in &left {
            let _ = ptrace::interrupt(*tid);
        }
        while !left.is_empty() {
            let status = match waitpid(None, Some(tracees())) {
                Ok(s) => s,
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => break,
                Err(e) => return Err(TraceError::ptrace("waitpid", -1, e)),
            };
            match status {
                WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _) => {
                    left.remove(&pid);
                }
                // A pending signal goes on with the detach.
                WaitStatus::Stopped(pid, sig) => {
                    let _ = ptrace::detach(pid, Some(sig));
                    left.remove(&pid);
                }
                WaitStatus::PtraceEvent(pid, _, _) | WaitStatus::PtraceSyscall(pid) => {
                    let _ = ptrace::detach(pid, None);
                    left.remove(&pid);
                }
                _ => {}
            }
        }
        self.threads.clear();
        self.detached = true;
        Ok(())
    }
}

/// The child side of [`Tracer::spawn`]: wait to be seized, install the filter, exec.
///
/// # Safety
/// Call only in a freshly forked child; `argv` is NULL-terminated.
unsafe fn exec_child(
    argv: &[*const libc::c_char],
    prog: &libc::sock_fprog,
    message: &[u8],
    output: Option<RawFd>,
    cgroup: Option<RawFd>,
) -> ! {
    let fail = |what: &[u8]| -> ! {
        let err = Errno::last().desc().as_bytes();
        unsafe {
            libc::write(2, message.as_ptr().cast(), message.len());
            libc::write(2, what.as_ptr().cast(), what.len());
            libc::write(2, err.as_ptr().cast(), err.len());
            libc::write(2, b"\n".as_ptr().cast(), 1);
            libc::_exit(127)
        }
    };
    unsafe {
        if let Some(fd) = output {
            if libc::dup2(fd, 1) < 0 || libc::dup2(fd, 2) < 0 {
                fail(b"redirecting the output: ");
            }
        }
        if let Some(fd) = cgroup {
            if !crate::cgroup::join_in_child(fd) {
                fail(b"joining the application's cgroup: ");
            }
        }
        // The parent seizes us while we are stopped, then sends SIGCONT.
        libc::raise(libc::SIGSTOP);
        let install = || {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                prog as *const libc::sock_fprog,
            )
        };
        // Root (CAP_SYS_ADMIN) needs no no_new_privs, which would break setuid programs.
        if install() != 0 {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            if install() != 0 {
                fail(b"seccomp filter: ");
            }
        }
        libc::execvp(argv[0], argv.as_ptr());
        fail(b"")
    }
}

/// The flags of the fork/clone the stopped thread is inside of (0 for fork and vfork).
fn clone_flags(tid: Pid) -> u64 {
    let Ok(regs) = arch::read(tid) else { return 0 };
    match arch::sys(regs.nr) {
        Some(Sys::Clone) => regs.args[0],
        // struct clone_args starts with the u64 flags.
        Some(Sys::Clone3) => ProcMemory { pid: tid }.u64(regs.args[0]).unwrap_or(0),
        _ => 0,
    }
}

/// What a new fd refers to; a recorded regular file is also marked for the write monitor.
fn opened_file(tid: Pid, fd: i64, marks: Option<&Marks>) -> Option<OpenedFile> {
    let link = format!("/proc/{tid}/fd/{fd}");
    let path = std::fs::read_link(&link).ok()?;
    let path = path.to_string_lossy().into_owned();
    // Sockets, pipes and anonymous inodes (`socket:[…]`) need no stat.
    let regular = path.starts_with('/') && std::fs::metadata(&link).is_ok_and(|m| m.is_file());
    if let (true, Some(marks)) = (regular, marks) {
        marks.add(&link, &path);
    }
    Some(OpenedFile { path, regular })
}

/// The open fds of a process, from `/proc/PID/fd` and `/proc/PID/fdinfo`.
fn read_fds(pid: Pid) -> Vec<InheritedFd> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<InheritedFd> = dir
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let fd: i32 = entry.file_name().to_str()?.parse().ok()?;
            let path = std::fs::read_link(entry.path()).ok()?;
            let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
                .unwrap_or(0);
            Some(InheritedFd {
                fd,
                path: path.to_string_lossy().into_owned(),
                regular: std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()),
                writable: flags & libc::O_ACCMODE != libc::O_RDONLY,
                cloexec: flags & libc::O_CLOEXEC != 0,
            })
        })
        .collect();
    fds.sort_by_key(|f| f.fd);
    fds
}

/// A stopped thread's memory and directories.
struct ProcMemory {
    pid: Pid,
}

impl ProcMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Option<usize> {
        let remote = [RemoteIoVec {
            base: addr as usize,
            len: buf.len(),
        }];
        process_vm_readv(self.pid, &mut [IoSliceMut::new(buf)], &remote).ok()
    }
}

impl Memory for ProcMemory {
    fn string(&mut self, addr: u64) -> Option<String> {
        const PAGE: u64 = 4096;
        let mut bytes = Vec::new();
        let mut at = addr;
        // Page by page: a string may end just before an unmapped page.
        while bytes.len() <= libc::PATH_MAX as usize {
            let mut chunk = vec![0u8; (PAGE - at % PAGE) as usize];
            let n = self.read(at, &mut chunk)?;
            if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
                bytes.extend_from_slice(&chunk[..end]);
                return Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            bytes.extend_from_slice(&chunk[..n]);
            at += n as u64;
        }
        None
    }

    fn u64(&mut self, addr: u64) -> Option<u64> {
        let mut buf = [0u8; 8];
        (self.read(addr, &mut buf)? == 8).then(|| u64::from_ne_bytes(buf))
    }

    fn dir(&mut self, dirfd: i32) -> Option<String> {
        let link = if dirfd == libc::AT_FDCWD {
            format!("/proc/{}/cwd", self.pid)
        } else {
            format!("/proc/{}/fd/{dirfd}", self.pid)
        };
        Some(
            std::fs::read_link(link)
                .ok()?
                .to_string_lossy()
                .into_owned(),
        )
    }

    fn exists(&mut self, path: &PathArg) -> bool {
        // As the kernel will walk it (not lexically: `..` after a symlink).
        let joined = match &path.base {
            Some(base) if !path.path.starts_with('/') => format!("{base}/{}", path.path),
            _ => path.path.clone(),
        };
        std::fs::symlink_metadata(joined).is_ok()
    }
}

/// Wait flags for "any of our tracees": every kind of child, but only this thread's. Without
/// `__WNOTHREAD` the loop would also reap children that other threads of the host program spawn
/// (their `wait` would then fail) and take the stops of tracees another thread's tracer owns,
/// which only that thread can resume.
fn tracees() -> WaitPidFlag {
    WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD
}
