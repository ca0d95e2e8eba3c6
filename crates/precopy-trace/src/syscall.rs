//! System calls as values: which calls the tracer knows ([`Sys`]), and a traced call with its
//! arguments already read from the tracee ([`Call`], [`SyscallRecord`]). Building a [`Call`] reads
//! tracee memory through the [`Memory`] trait, which the ptrace loop implements; the decoder only
//! ever sees finished records.

use nix::unistd::Pid;

/// A system call the tracer knows, independent of the architecture's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Sys {
    Open,
    OpenAt,
    OpenAt2,
    Creat,
    Dup,
    Dup2,
    Dup3,
    Fcntl,
    Close,
    CloseRange,
    Write,
    Pwrite64,
    Writev,
    Pwritev,
    Pwritev2,
    Sendfile,
    CopyFileRange,
    Splice,
    Truncate,
    Ftruncate,
    Fallocate,
    Rename,
    RenameAt,
    RenameAt2,
    Unlink,
    UnlinkAt,
    Mmap,
    Clone,
    Clone3,
}

impl Sys {
    /// Whether the seccomp filter stops on this call. Clones are not stopped on: their flags are
    /// read at the fork/clone event stop instead.
    pub fn traced(self) -> bool {
        !matches!(self, Sys::Clone | Sys::Clone3)
    }

    /// A call that changes an open file's content and nothing else: what the fanotify write
    /// monitor sees instead of a stop (write family, fallocate). Not ftruncate: the kernel's
    /// event for a size change names no open file, and an fd-reporting fanotify group drops it.
    pub fn updates_content(self) -> bool {
        matches!(
            self,
            Sys::Write
                | Sys::Pwrite64
                | Sys::Writev
                | Sys::Pwritev
                | Sys::Pwritev2
                | Sys::Sendfile
                | Sys::CopyFileRange
                | Sys::Splice
                | Sys::Fallocate
        )
    }
}

impl Sys {
    /// A call the fanotify mode does not stop on: the content updates fanotify sees, and the
    /// fd-table bookkeeping (close, dup, fcntl, close_range) that only the exact mode needs to
    /// attribute each write to its file. Without a table, ftruncate and a shared mapping name
    /// their file at their own stop ([`SyscallRecord::opened`]). tar stops once per file less.
    pub fn exact_mode_only(self) -> bool {
        self.updates_content()
            || matches!(
                self,
                Sys::Close | Sys::CloseRange | Sys::Dup | Sys::Dup2 | Sys::Dup3 | Sys::Fcntl
            )
    }
}

/// A path argument, made absolute by the decoder. Relative paths carry the directory they are
/// relative to (the cwd or the dirfd's target), read by the loop when the call was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathArg {
    /// The path as the application passed it.
    pub path: String,
    /// The directory a relative `path` is relative to; `None` if unknown or not needed.
    pub base: Option<String>,
}

/// A traced system call with its arguments decoded and its tracee memory already read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// open, openat, openat2 or creat; the opened file is read at exit into
    /// [`SyscallRecord::opened`].
    Open {
        /// Open flags (`creat` is `O_CREAT | O_WRONLY | O_TRUNC`).
        flags: u64,
        /// With `O_CREAT`, nothing was at the path when the call began: a success creates it.
        creates: bool,
    },
    /// dup, dup2, dup3, fcntl(F_DUPFD / F_DUPFD_CLOEXEC); the new fd is the return value.
    Dup {
        /// The fd duplicated.
        fd: i32,
        /// The new fd is close-on-exec.
        cloexec: bool,
    },
    /// fcntl(F_SETFD).
    SetCloexec {
        /// The fd.
        fd: i32,
        /// FD_CLOEXEC set.
        on: bool,
    },
    /// close.
    Close {
        /// The fd.
        fd: i32,
    },
    /// close_range.
    CloseRange {
        /// First fd.
        first: u32,
        /// Last fd, inclusive.
        last: u32,
        /// CLOSE_RANGE_CLOEXEC: mark instead of closing.
        cloexec: bool,
        /// CLOSE_RANGE_UNSHARE: unshare the fd table first.
        unshare: bool,
    },
    /// write, pwrite64, writev, pwritev, pwritev2, and the output side of sendfile,
    /// copy_file_range and splice. The length is the return value.
    Write {
        /// The fd written to.
        fd: i32,
        /// The file offset, where the call has one.
        offset: Option<u64>,
    },
    /// truncate.
    Truncate {
        /// The file.
        path: PathArg,
        /// New length.
        len: u64,
    },
    /// ftruncate.
    Ftruncate {
        /// The fd.
        fd: i32,
        /// New length.
        len: u64,
    },
    /// fallocate.
    Fallocate {
        /// The fd.
        fd: i32,
        /// Offset.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// rename, renameat, renameat2.
    Rename {
        /// Old path.
        from: PathArg,
        /// New path.
        to: PathArg,
        /// RENAME_EXCHANGE: the two paths swap.
        exchange: bool,
        /// Something was at the new path when the call began: a success replaces it.
        replaces: bool,
    },
    /// unlink, unlinkat (not AT_REMOVEDIR).
    Unlink {
        /// The path.
        path: PathArg,
    },
    /// mmap with MAP_SHARED and PROT_WRITE of an fd.
    MmapShared {
        /// The fd mapped.
        fd: i32,
    },
}

/// What an fd returned by an open refers to, read from `/proc/PID/fd/N` at syscall exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedFile {
    /// The kernel's absolute path (symlinks resolved), or `socket:[…]`, `anon_inode:…`.
    pub path: String,
    /// A regular file (not a directory, device, socket or pipe).
    pub regular: bool,
}

/// A finished traced system call: what the ptrace loop hands the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallRecord {
    /// The calling thread.
    pub tid: Pid,
    /// The call.
    pub call: Call,
    /// Return value (negative errno on failure).
    pub ret: i64,
    /// For a successful open: what the new fd refers to. In the fanotify mode, also for
    /// ftruncate and a shared writable mapping: what their fd refers to (no fd table is kept).
    pub opened: Option<OpenedFile>,
}

/// Tracee memory and directories, as seen by the loop while a thread is stopped.
pub trait Memory {
    /// A NUL-terminated string at `addr`.
    fn string(&mut self, addr: u64) -> Option<String>;
    /// A native-endian u64 at `addr`.
    fn u64(&mut self, addr: u64) -> Option<u64>;
    /// The directory `dirfd` names (`AT_FDCWD`: the cwd).
    fn dir(&mut self, dirfd: i32) -> Option<String>;
    /// Whether something (a file, a directory, a symlink…) is at `path` now.
    fn exists(&mut self, path: &PathArg) -> bool;
}

const AT_FDCWD: i32 = libc::AT_FDCWD;

fn path_arg(mem: &mut impl Memory, dirfd: i32, addr: u64) -> Option<PathArg> {
    let path = mem.string(addr)?;
    let base = if path.starts_with('/') {
        None
    } else {
        mem.dir(dirfd)
    };
    Some(PathArg { path, base })
}

/// An open's call: with `O_CREAT`, whether the path at `addr` (relative to `dirfd`) is free now.
fn open(mem: &mut impl Memory, flags: u64, dirfd: i32, addr: u64) -> Call {
    let creates = flags & libc::O_CREAT as u64 != 0
        && path_arg(mem, dirfd, addr).is_some_and(|path| !mem.exists(&path));
    Call::Open { flags, creates }
}

fn optional_offset(mem: &mut impl Memory, addr: u64) -> Option<u64> {
    if addr == 0 {
        None
    } else {
        mem.u64(addr)
    }
}

/// Decodes a known system call's arguments at entry, reading what it needs from the tracee.
/// `None` for calls that do not matter (an fcntl that does not duplicate, a private mmap…).
pub fn build(sys: Sys, a: [u64; 6], mem: &mut impl Memory) -> Option<Call> {
    let fd = |i: usize| a[i] as i32;
    let call = match sys {
        Sys::Open => open(mem, a[1], AT_FDCWD, a[0]),
        Sys::OpenAt => open(mem, a[2], fd(0), a[1]),
        // struct open_how starts with the u64 flags.
        Sys::OpenAt2 => {
            let flags = mem.u64(a[2])?;
            open(mem, flags, fd(0), a[1])
        }
        Sys::Creat => open(
            mem,
            (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64,
            AT_FDCWD,
            a[0],
        ),
        Sys::Dup | Sys::Dup2 => Call::Dup {
            fd: fd(0),
            cloexec: false,
        },
        Sys::Dup3 => Call::Dup {
            fd: fd(0),
            cloexec: a[2] & libc::O_CLOEXEC as u64 != 0,
        },
        Sys::Fcntl => match a[1] as i32 {
            libc::F_DUPFD => Call::Dup {
                fd: fd(0),
                cloexec: false,
            },
            libc::F_DUPFD_CLOEXEC => Call::Dup {
                fd: fd(0),
                cloexec: true,
            },
            libc::F_SETFD => Call::SetCloexec {
                fd: fd(0),
                on: a[2] & libc::FD_CLOEXEC as u64 != 0,
            },
            _ => return None,
        },
        Sys::Close => Call::Close { fd: fd(0) },
        Sys::CloseRange => Call::CloseRange {
            first: a[0] as u32,
            last: a[1] as u32,
            cloexec: a[2] & libc::CLOSE_RANGE_CLOEXEC as u64 != 0,
            unshare: a[2] & libc::CLOSE_RANGE_UNSHARE as u64 != 0,
        },
        Sys::Write | Sys::Writev | Sys::Sendfile => Call::Write {
            fd: fd(0),
            offset: None,
        },
        Sys::Pwrite64 | Sys::Pwritev => Call::Write {
            fd: fd(0),
            offset: Some(a[3]),
        },
        // An offset of -1 means "the current position".
        Sys::Pwritev2 => Call::Write {
            fd: fd(0),
            offset: (a[3] as i64 != -1).then_some(a[3]),
        },
        Sys::CopyFileRange | Sys::Splice => Call::Write {
            fd: fd(2),
            offset: optional_offset(mem, a[3]),
        },
        Sys::Truncate => Call::Truncate {
            path: path_arg(mem, AT_FDCWD, a[0])?,
            len: a[1],
        },
        Sys::Ftruncate => Call::Ftruncate {
            fd: fd(0),
            len: a[1],
        },
        Sys::Fallocate => Call::Fallocate {
            fd: fd(0),
            offset: a[2],
            len: a[3],
        },
        Sys::Rename | Sys::RenameAt | Sys::RenameAt2 => {
            let (from, to) = match sys {
                Sys::Rename => ((AT_FDCWD, a[0]), (AT_FDCWD, a[1])),
                _ => ((fd(0), a[1]), (fd(2), a[3])),
            };
            let to = path_arg(mem, to.0, to.1)?;
            Call::Rename {
                from: path_arg(mem, from.0, from.1)?,
                replaces: mem.exists(&to),
                to,
                exchange: sys == Sys::RenameAt2 && a[4] & libc::RENAME_EXCHANGE as u64 != 0,
            }
        }
        Sys::Unlink => Call::Unlink {
            path: path_arg(mem, AT_FDCWD, a[0])?,
        },
        Sys::UnlinkAt if a[2] & libc::AT_REMOVEDIR as u64 != 0 => return None,
        Sys::UnlinkAt => Call::Unlink {
            path: path_arg(mem, fd(0), a[1])?,
        },
        Sys::Mmap => {
            // Without a filter (attach mode) every mmap arrives here.
            let shared = a[3] & libc::MAP_SHARED as u64 != 0;
            let writable = a[2] & libc::PROT_WRITE as u64 != 0;
            if !(shared && writable) || a[3] & libc::MAP_ANONYMOUS as u64 != 0 {
                return None;
            }
            Call::MmapShared { fd: fd(4) }
        }
        Sys::Clone | Sys::Clone3 => return None,
    };
    Some(call)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory with one string at 0x1000, a u64 at 0x2000, and cwd `/work`.
    struct Fake;

    impl Memory for Fake {
        fn string(&mut self, addr: u64) -> Option<String> {
            match addr {
                0x1000 => Some("data/a.txt".into()),
                0x1100 => Some("/abs/b".into()),
                _ => None,
            }
        }
        fn u64(&mut self, addr: u64) -> Option<u64> {
            (addr == 0x2000).then_some(4096)
        }
        fn dir(&mut self, dirfd: i32) -> Option<String> {
            match dirfd {
                libc::AT_FDCWD => Some("/work".into()),
                7 => Some("/srv".into()),
                _ => None,
            }
        }
        fn exists(&mut self, path: &PathArg) -> bool {
            path.path == "/abs/b"
        }
    }

    #[test]
    fn creating_opens_and_replacing_renames_are_told_at_entry() {
        let creat = |flags: i32, addr| {
            let flags = flags as u64;
            build(Sys::OpenAt, [7, addr, flags, 0, 0, 0], &mut Fake)
        };
        let free = creat(libc::O_CREAT | libc::O_WRONLY, 0x1000);
        assert_eq!(
            free,
            Some(Call::Open {
                flags: (libc::O_CREAT | libc::O_WRONLY) as u64,
                creates: true
            })
        );
        let taken = creat(libc::O_CREAT | libc::O_WRONLY, 0x1100);
        assert!(matches!(taken, Some(Call::Open { creates: false, .. })));
        assert!(matches!(
            creat(libc::O_WRONLY, 0x1000),
            Some(Call::Open { creates: false, .. })
        ));
        let over = build(Sys::RenameAt2, [7, 0x1000, 7, 0x1100, 0, 0], &mut Fake);
        assert!(matches!(over, Some(Call::Rename { replaces: true, .. })));
        let away = build(Sys::RenameAt2, [7, 0x1100, 7, 0x1000, 0, 0], &mut Fake);
        assert!(matches!(
            away,
            Some(Call::Rename {
                replaces: false,
                ..
            })
        ));
    }

    #[test]
    fn relative_paths_carry_their_base() {
        let cwd = AT_FDCWD as u32 as u64;
        let call = build(Sys::Rename, [0x1000, 0x1100, 0, 0, 0, 0], &mut Fake).unwrap();
        assert_eq!(
            call,
            Call::Rename {
                from: PathArg {
                    path: "data/a.txt".into(),
                    base: Some("/work".into())
                },
                to: PathArg {
                    path: "/abs/b".into(),
                    base: None
                },
                exchange: false,
                replaces: true,
            }
        );
        let call = build(Sys::UnlinkAt, [7, 0x1000, 0, 0, 0, 0], &mut Fake).unwrap();
        assert!(matches!(call, Call::Unlink { path } if path.base.as_deref() == Some("/srv")));
        let rmdir = [cwd, 0x1000, libc::AT_REMOVEDIR as u64, 0, 0, 0];
        assert_eq!(build(Sys::UnlinkAt, rmdir, &mut Fake), None);
    }

    #[test]
    fn offsets_come_from_args_or_memory() {
        let pwrite = build(Sys::Pwrite64, [3, 0, 10, 77, 0, 0], &mut Fake);
        assert_eq!(
            pwrite,
            Some(Call::Write {
                fd: 3,
                offset: Some(77)
            })
        );
        let current = build(Sys::Pwritev2, [3, 0, 1, u64::MAX, 0, 0], &mut Fake);
        assert_eq!(
            current,
            Some(Call::Write {
                fd: 3,
                offset: None
            })
        );
        let copy = build(Sys::CopyFileRange, [3, 0, 4, 0x2000, 9, 0], &mut Fake);
        assert_eq!(
            copy,
            Some(Call::Write {
                fd: 4,
                offset: Some(4096)
            })
        );
    }

    #[test]
    fn only_shared_writable_file_mappings_matter() {
        let shared = libc::MAP_SHARED as u64;
        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let map = |prot, flags| build(Sys::Mmap, [0, 4096, prot, flags, 5, 0], &mut Fake);
        assert_eq!(map(rw, shared), Some(Call::MmapShared { fd: 5 }));
        assert_eq!(map(libc::PROT_READ as u64, shared), None);
        assert_eq!(map(rw, libc::MAP_PRIVATE as u64), None);
        assert_eq!(map(rw, shared | libc::MAP_ANONYMOUS as u64), None);
    }

    #[test]
    fn fcntl_only_when_it_touches_the_fd_table() {
        let f = |cmd: i32, arg| build(Sys::Fcntl, [4, cmd as u64, arg, 0, 0, 0], &mut Fake);
        assert_eq!(
            f(libc::F_DUPFD_CLOEXEC, 10),
            Some(Call::Dup {
                fd: 4,
                cloexec: true
            })
        );
        assert_eq!(
            f(libc::F_SETFD, libc::FD_CLOEXEC as u64),
            Some(Call::SetCloexec { fd: 4, on: true })
        );
        assert_eq!(f(libc::F_GETFL, 0), None);
        let creat = build(Sys::Creat, [0x1000, 0o644, 0, 0, 0, 0], &mut Fake).unwrap();
        assert!(matches!(creat, Call::Open { flags, .. } if flags & libc::O_TRUNC as u64 != 0));
    }
}
