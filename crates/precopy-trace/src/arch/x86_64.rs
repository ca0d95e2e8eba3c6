//! x86-64: `PTRACE_GETREGS`, and the system call table of the 64-bit ABI.

use nix::sys::ptrace;
use nix::unistd::Pid;
use seccompiler::TargetArch;

use crate::syscall::Sys;

/// The seccomp filter's architecture check.
pub const TARGET_ARCH: TargetArch = TargetArch::x86_64;

/// A thread's system call registers at a syscall or event stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regs {
    /// System call number (`orig_rax`).
    pub nr: i64,
    /// Arguments, in ABI order.
    pub args: [u64; 6],
    /// Return value (`rax`); `-ENOSYS` at syscall entry.
    pub ret: i64,
}

impl Regs {
    /// At a syscall-entry stop the kernel has put `-ENOSYS` in `rax`; used to recognise a thread
    /// that was attached in the middle of a system call (its first stop is an exit).
    pub fn at_entry(&self) -> bool {
        self.ret == -(libc::ENOSYS as i64)
    }
}

/// Reads the system call registers of a stopped thread.
pub fn read(tid: Pid) -> nix::Result<Regs> {
    let r = ptrace::getregs(tid)?;
    Ok(Regs {
        nr: r.orig_rax as i64,
        args: [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9],
        ret: r.rax as i64,
    })
}

/// The system calls the crate knows, with their numbers on this architecture.
pub const SYSCALLS: &[(Sys, i64)] = &[
    (Sys::Open, libc::SYS_open),
    (Sys::OpenAt, libc::SYS_openat),
    (Sys::OpenAt2, libc::SYS_openat2),
    (Sys::Creat, libc::SYS_creat),
    (Sys::Dup, libc::SYS_dup),
    (Sys::Dup2, libc::SYS_dup2),
    (Sys::Dup3, libc::SYS_dup3),
    (Sys::Fcntl, libc::SYS_fcntl),
    (Sys::Close, libc::SYS_close),
    (Sys::CloseRange, libc::SYS_close_range),
    (Sys::Write, libc::SYS_write),
    (Sys::Pwrite64, libc::SYS_pwrite64),
    (Sys::Writev, libc::SYS_writev),
    (Sys::Pwritev, libc::SYS_pwritev),
    (Sys::Pwritev2, libc::SYS_pwritev2),
    (Sys::Sendfile, libc::SYS_sendfile),
    (Sys::CopyFileRange, libc::SYS_copy_file_range),
    (Sys::Splice, libc::SYS_splice),
    (Sys::Truncate, libc::SYS_truncate),
    (Sys::Ftruncate, libc::SYS_ftruncate),
    (Sys::Fallocate, libc::SYS_fallocate),
    (Sys::Rename, libc::SYS_rename),
    (Sys::RenameAt, libc::SYS_renameat),
    (Sys::RenameAt2, libc::SYS_renameat2),
    (Sys::Unlink, libc::SYS_unlink),
    (Sys::UnlinkAt, libc::SYS_unlinkat),
    (Sys::Mmap, libc::SYS_mmap),
    (Sys::Clone, libc::SYS_clone),
    (Sys::Clone3, libc::SYS_clone3),
];

/// Which known system call `nr` is.
pub fn sys(nr: i64) -> Option<Sys> {
    SYSCALLS.iter().find(|(_, n)| *n == nr).map(|(s, _)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips() {
        for (s, nr) in SYSCALLS {
            assert_eq!(sys(*nr), Some(*s));
        }
        assert_eq!(sys(libc::SYS_read), None);
    }
}
