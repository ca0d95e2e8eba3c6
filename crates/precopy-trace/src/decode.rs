//! Decoding stops into file events: pure (no system calls, no clock), so it is tested with
//! hand-made stops. It keeps the per-process fd tables: which fd refers to which recorded file.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use nix::unistd::Pid;
use precopy_core::trace::WriteOp;

use crate::paths::{resolve, PathFilter};
use crate::stop::Stop;
use crate::syscall::{Call, SyscallRecord};

/// Something the application did to a recorded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// Opened (or found open when tracing began).
    Opened {
        /// Process id.
        pid: u32,
        /// Absolute path.
        path: String,
        /// Opened for writing: the file is ReadWrite.
        write: bool,
    },
    /// Created: nothing was at the path before (told just before the open that made it).
    Created {
        /// Process id.
        pid: u32,
        /// Absolute path.
        path: String,
    },
    /// Unlinked.
    Unlinked {
        /// Process id.
        pid: u32,
        /// Absolute path.
        path: String,
    },
    /// Renamed: the file at `from` is now at `to`, replacing what was there (or, with
    /// `exchange`, the two swapped).
    Renamed {
        /// Process id.
        pid: u32,
        /// The old path.
        from: String,
        /// The new path.
        to: String,
        /// RENAME_EXCHANGE.
        exchange: bool,
        /// Something was at `to` before.
        replaces: bool,
    },
    /// Changed: written, truncated or allocated.
    Updated {
        /// Process id.
        pid: u32,
        /// Absolute path.
        path: String,
        /// Kind of update.
        op: WriteOp,
        /// Offset, where the call has one.
        offset: Option<u64>,
        /// Length in bytes, or the new size for a truncate.
        len: Option<u64>,
    },
    /// Mapped shared and writable: later writes through memory are invisible.
    MappedShared {
        /// Process id.
        pid: u32,
        /// Absolute path.
        path: String,
    },
}

#[derive(Debug, Clone)]
struct Fd {
    path: String,
    cloexec: bool,
}

/// fd → recorded file. Fds of files we do not record are absent.
type FdTable = BTreeMap<i32, Fd>;

#[derive(Debug, Clone, Copy)]
struct Thread {
    tgid: Pid,
    table: u64,
}

/// The decoder's state: threads, their fd tables, and the paths recorded so far.
#[derive(Debug)]
pub struct Decoder {
    filter: PathFilter,
    tables: HashMap<u64, FdTable>,
    next_table: u64,
    threads: HashMap<Pid, Thread>,
    recorded: HashSet<String>,
    processes: BTreeSet<i32>,
}

/// A successful open: writing if any of these flags is set.
fn opens_for_writing(flags: u64) -> bool {
    let flags = flags as i32;
    flags & libc::O_ACCMODE != libc::O_RDONLY
        || flags & (libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) != 0
}

impl FileEvent {
    /// The paths whose file may have a new size after the event.
    pub fn resized(&self) -> Option<&str> {
        match self {
            FileEvent::Opened { path, .. }
            | FileEvent::Created { path, .. }
            | FileEvent::Updated { path, .. } => Some(path),
            FileEvent::Renamed { to, .. } => Some(to),
            FileEvent::Unlinked { .. } | FileEvent::MappedShared { .. } => None,
        }
    }
}

impl Decoder {
    /// A decoder recording the paths `filter` allows.
    pub fn new(filter: PathFilter) -> Decoder {
        Decoder {
            filter,
            tables: HashMap::new(),
            next_table: 0,
            threads: HashMap::new(),
            recorded: HashSet::new(),
            processes: BTreeSet::new(),
        }
    }

    /// Paths recorded before the application opens them (`--tree`): their unlinks and renames
    /// are followed like those of opened files.
    pub fn know(&mut self, paths: impl IntoIterator<Item = String>) {
        self.recorded.extend(paths);
    }

    /// Every process id seen so far (the traced tree, for the sharing scan to skip).
    pub fn processes(&self) -> &BTreeSet<i32> {
        &self.processes
    }

    fn new_table(&mut self, table: FdTable) -> u64 {
        let id = self.next_table;
        self.next_table += 1;
        self.tables.insert(id, table);
        id
    }

    fn add_thread(&mut self, tid: Pid, tgid: Pid, table: u64) {
        self.threads.insert(tid, Thread { tgid, table });
        self.processes.insert(tgid.as_raw());
    }

    /// The thread's record, created with an empty table if the loop never introduced it.
    fn thread(&mut self, tid: Pid) -> Thread {
        if let Some(t) = self.threads.get(&tid) {
            return *t;
        }
        let table = self.new_table(FdTable::new());
        self.add_thread(tid, tid, table);
        self.threads[&tid]
    }

    fn table(&mut self, tid: Pid) -> (u32, &mut FdTable) {
        let thread = self.thread(tid);
        let table = self.tables.entry(thread.table).or_default();
        (thread.tgid.as_raw() as u32, table)
    }

    /// A private copy of the thread's table (exec, CLOSE_RANGE_UNSHARE).
    fn unshare(&mut self, tid: Pid, keep: impl Fn(&Fd) -> bool) {
        let thread = self.thread(tid);
        let copy: FdTable = self.tables[&thread.table]
            .iter()
            .filter(|(_, fd)| keep(fd))
            .map(|(n, fd)| (*n, fd.clone()))
            .collect();
        let table = self.new_table(copy);
        self.threads.insert(tid, Thread { table, ..thread });
        self.drop_unused_tables();
    }

    fn drop_unused_tables(&mut self) {
        let used: HashSet<u64> = self.threads.values().map(|t| t.table).collect();
        self.tables.retain(|id, _| used.contains(id));
    }

    /// The file events a stop means.
    pub fn decode(&mut self, stop: &Stop) -> Vec<FileEvent> {
        match stop {
            Stop::Attached { pid, threads, fds } => {
                let mut table = FdTable::new();
                let mut events = Vec::new();
                for fd in fds
                    .iter()
                    .filter(|f| f.regular && self.filter.allows(&f.path))
                {
                    let entry = Fd {
                        path: fd.path.clone(),
                        cloexec: fd.cloexec,
                    };
                    table.insert(fd.fd, entry);
                    self.recorded.insert(fd.path.clone());
                    events.push(FileEvent::Opened {
                        pid: pid.as_raw() as u32,
                        path: fd.path.clone(),
                        write: fd.writable,
                    });
                }
                let table = self.new_table(table);
                for tid in threads.iter().chain([pid]) {
                    self.add_thread(*tid, *pid, table);
                }
                events
            }
            Stop::Spawned {
                parent,
                child,
                thread,
                shares_files,
            } => {
                let parent = self.thread(*parent);
                let tgid = if *thread { parent.tgid } else { *child };
                let table = if *shares_files {
                    parent.table
                } else {
                    let copy = self.tables[&parent.table].clone();
                    self.new_table(copy)
                };
                self.add_thread(*child, tgid, table);
                Vec::new()
            }
            Stop::Exec { pid, former } => {
                // The other threads die; the caller takes the leader's id; exec unshares the
                // table and closes close-on-exec fds.
                let tgid = self.thread(*former).tgid;
                let caller = self.threads[former];
                self.threads
                    .retain(|tid, t| t.tgid != tgid || tid == former);
                self.threads.remove(former);
                self.threads.insert(*pid, caller);
                self.unshare(*pid, |fd| !fd.cloexec);
                Vec::new()
            }
            Stop::Exited { pid, .. } => {
                self.threads.remove(pid);
                self.drop_unused_tables();
                Vec::new()
            }
            Stop::Syscall(record) => self.syscall(record),
        }
    }

    fn syscall(&mut self, r: &SyscallRecord) -> Vec<FileEvent> {
        // close releases the fd even when it reports an error (other than EBADF).
        if let Call::Close { fd } = r.call {
            self.table(r.tid).1.remove(&fd);
            return Vec::new();
        }
        if r.ret < 0 {
            return Vec::new();
        }
        let ret_fd = r.ret as i32;
        let mut events = Vec::new();
        match &r.call {
            Call::Open { flags, creates } => {
                let recorded = r.opened.as_ref().filter(|o| {
                    o.regular && *flags & libc::O_PATH as u64 == 0 && self.filter.allows(&o.path)
                });
                let path = recorded.map(|o| o.path.clone());
                let (pid, table) = self.table(r.tid);
                match path {
                    Some(path) => {
                        let cloexec = *flags & libc::O_CLOEXEC as u64 != 0;
                        table.insert(
                            ret_fd,
                            Fd {
                                path: path.clone(),
                                cloexec,
                            },
                        );
                        self.recorded.insert(path.clone());
                        if *creates {
                            let path = path.clone();
                            events.push(FileEvent::Created { pid, path });
                        }
                        events.push(FileEvent::Opened {
                            pid,
                            path,
                            write: opens_for_writing(*flags),
                        });
                    }
                    None => {
                        table.remove(&ret_fd);
                    }
                }
            }
            Call::Dup { fd, cloexec } => {
                let (_, table) = self.table(r.tid);
                match table.get(fd).cloned() {
                    Some(old) if ret_fd != *fd => {
                        let path = old.path;
                        let cloexec = *cloexec;
                        table.insert(ret_fd, Fd { path, cloexec });
                    }
                    Some(_) => {}
                    None => {
                        table.remove(&ret_fd);
                    }
                }
            }
            Call::SetCloexec { fd, on } => {
                if let Some(entry) = self.table(r.tid).1.get_mut(fd) {
                    entry.cloexec = *on;
                }
            }
            Call::Close { .. } => {}
            Call::CloseRange {
                first,
                last,
                cloexec,
                unshare,
            } => {
                if *unshare {
                    self.unshare(r.tid, |_| true);
                }
                let range = (*first as i64).min(i32::MAX as i64) as i32
                    ..=(*last as i64).min(i32::MAX as i64) as i32;
                let (_, table) = self.table(r.tid);
                if *cloexec {
                    table.range_mut(range).for_each(|(_, fd)| fd.cloexec = true);
                } else {
                    table.retain(|fd, _| !range.contains(fd));
                }
            }
            Call::Write { fd, offset } => {
                if r.ret > 0 {
                    let len = Some(r.ret as u64);
                    events.extend(self.update_fd(r, *fd, WriteOp::Write, *offset, len));
                }
            }
            Call::Ftruncate { fd, len } => {
                events.extend(self.update_fd(r, *fd, WriteOp::Truncate, None, Some(*len)));
            }
            Call::Fallocate { fd, offset, len } => {
                let (offset, len) = (Some(*offset), Some(*len));
                events.extend(self.update_fd(r, *fd, WriteOp::Fallocate, offset, len));
            }
            Call::Truncate { path, len } => {
                // truncate changes content whether or not the file was opened: always record.
                if let Some(path) = resolve(path).filter(|p| self.filter.allows(p)) {
                    self.recorded.insert(path.clone());
                    let pid = self.thread(r.tid).tgid.as_raw() as u32;
                    events.push(update(pid, path, WriteOp::Truncate, None, Some(*len)));
                }
            }
            Call::Unlink { path } => {
                if let Some(path) = resolve(path).filter(|p| self.recorded.contains(p)) {
                    let pid = self.thread(r.tid).tgid.as_raw() as u32;
                    events.push(FileEvent::Unlinked { pid, path });
                }
            }
            Call::Rename {
                from,
                to,
                exchange,
                replaces,
            } => {
                events.extend(self.rename(r.tid, from, to, *exchange, *replaces));
            }
            Call::MmapShared { fd } => {
                if let Some((pid, path)) = self.fd_file(r, *fd) {
                    events.push(FileEvent::MappedShared { pid, path });
                }
            }
        }
        events
    }

    fn update_fd(
        &mut self,
        r: &SyscallRecord,
        fd: i32,
        op: WriteOp,
        offset: Option<u64>,
        len: Option<u64>,
    ) -> Option<FileEvent> {
        let (pid, path) = self.fd_file(r, fd)?;
        Some(update(pid, path, op, offset, len))
    }

    /// The recorded file `fd` refers to, with the calling process: as read at the call's stop
    /// when the loop did (the fanotify mode keeps no fd table), else from the table.
    fn fd_file(&mut self, r: &SyscallRecord, fd: i32) -> Option<(u32, String)> {
        let (pid, table) = self.table(r.tid);
        let path = match &r.opened {
            Some(o) => Some(o.path.clone()).filter(|p| o.regular && self.recorded.contains(p)),
            None => table.get(&fd).map(|entry| entry.path.clone()),
        }?;
        Some((pid, path))
    }

    /// A rename moves a file from one path to another. Renames that touch a recorded file
    /// are followed (one of a file the application never opened is a documented blind spot):
    /// the new path becomes recorded, and open fds now refer to it. A recorded file moved to a
    /// path the filter does not record is, for the trace, unlinked.
    fn rename(
        &mut self,
        tid: Pid,
        from: &crate::syscall::PathArg,
        to: &crate::syscall::PathArg,
        exchange: bool,
        replaces: bool,
    ) -> Vec<FileEvent> {
        let (Some(from), Some(to)) = (resolve(from), resolve(to)) else {
            return Vec::new();
        };
        let pid = self.thread(tid).tgid.as_raw() as u32;
        let from_known = self.recorded.contains(&from);
        let to_known = self.recorded.contains(&to);
        let mut events = Vec::new();
        let both_allowed = self.filter.allows(&from) && self.filter.allows(&to);
        if (from_known || to_known) && both_allowed {
            self.recorded.insert(from.clone());
            self.recorded.insert(to.clone());
            events.push(FileEvent::Renamed {
                pid,
                from: from.clone(),
                to: to.clone(),
                exchange,
                replaces,
            });
        } else if from_known {
            events.push(FileEvent::Unlinked {
                pid,
                path: from.clone(),
            });
        } else if to_known && replaces {
            events.push(FileEvent::Unlinked {
                pid,
                path: to.clone(),
            });
        }
        for table in self.tables.values_mut() {
            for fd in table.values_mut() {
                if fd.path == from {
                    fd.path = to.clone();
                } else if exchange && fd.path == to {
                    fd.path = from.clone();
                }
            }
        }
        events
    }
}

fn update(pid: u32, path: String, op: WriteOp, offset: Option<u64>, len: Option<u64>) -> FileEvent {
    FileEvent::Updated {
        pid,
        path,
        op,
        offset,
        len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stop::{Exit, InheritedFd};
    use crate::syscall::{OpenedFile, PathArg};

    const P: Pid = Pid::from_raw(100);

    fn decoder() -> Decoder {
        let mut d = Decoder::new(PathFilter::default());
        let fds = vec![InheritedFd {
            fd: 1,
            path: "/log/out".into(),
            regular: true,
            writable: true,
            cloexec: false,
        }];
        let attached = Stop::Attached {
            pid: P,
            threads: vec![P],
            fds,
        };
        assert_eq!(d.decode(&attached).len(), 1);
        d
    }

    fn sys(d: &mut Decoder, tid: Pid, call: Call, ret: i64) -> Vec<FileEvent> {
        let opened = match call {
            Call::Open { .. } if ret >= 0 => Some(OpenedFile {
                path: format!("/f/{ret}"),
                regular: true,
            }),
            _ => None,
        };
        d.decode(&Stop::Syscall(SyscallRecord {
            tid,
            call,
            ret,
            opened,
        }))
    }

    #[test]
    fn without_a_table_the_loop_names_the_file() {
        // The fanotify mode: no close stop, so fd 3's table entry is stale; ftruncate and mmap
        // carry the file their fd refers to now, and only recorded files count.
        let mut d = decoder();
        sys(
            &mut d,
            P,
            Call::Open {
                flags: 0,
                creates: false,
            },
            3,
        );
        let named = |path: &str| {
            Some(OpenedFile {
                path: path.into(),
                regular: true,
            })
        };
        let mut with = |call, opened| {
            d.decode(&Stop::Syscall(SyscallRecord {
                tid: P,
                call,
                ret: 0,
                opened,
            }))
        };
        let truncated = with(Call::Ftruncate { fd: 3, len: 0 }, named("/log/out"));
        assert!(
            matches!(&truncated[..], [FileEvent::Updated { path, op: WriteOp::Truncate, .. }] if path == "/log/out"),
            "{truncated:?}"
        );
        assert!(with(Call::Ftruncate { fd: 3, len: 0 }, named("/memfd:x")).is_empty());
        let mapped = with(Call::MmapShared { fd: 3 }, named("/f/3"));
        assert!(
            matches!(&mapped[..], [FileEvent::MappedShared { path, .. }] if path == "/f/3"),
            "{mapped:?}"
        );
    }

    fn write(d: &mut Decoder, tid: Pid, fd: i32) -> Vec<FileEvent> {
        sys(d, tid, Call::Write { fd, offset: None }, 10)
    }

    fn paths(events: &[FileEvent]) -> Vec<&str> {
        events
            .iter()
            .map(|e| match e {
                FileEvent::Opened { path, .. }
                | FileEvent::Created { path, .. }
                | FileEvent::Unlinked { path, .. }
                | FileEvent::Updated { path, .. }
                | FileEvent::MappedShared { path, .. } => path.as_str(),
                FileEvent::Renamed { to, .. } => to.as_str(),
            })
            .collect()
    }

    #[test]
    fn classifies_opens() {
        let mut d = decoder();
        let ro = libc::O_RDONLY as u64;
        for (flags, write) in [
            (ro, false),
            (libc::O_WRONLY as u64, true),
            (libc::O_RDWR as u64, true),
            (ro | libc::O_APPEND as u64, true),
            (ro | libc::O_CREAT as u64, true),
            (ro | libc::O_TRUNC as u64, true),
        ] {
            let events = sys(
                &mut d,
                P,
                Call::Open {
                    flags,
                    creates: false,
                },
                3,
            );
            assert!(
                matches!(&events[..], [FileEvent::Opened { write: w, .. }] if *w == write),
                "{flags:o}"
            );
        }
        let failed = sys(
            &mut d,
            P,
            Call::Open {
                flags: ro,
                creates: false,
            },
            -2,
        );
        assert!(failed.is_empty());
        let o_path = sys(
            &mut d,
            P,
            Call::Open {
                flags: libc::O_PATH as u64,
                creates: false,
            },
            4,
        );
        assert!(o_path.is_empty());
    }

    #[test]
    fn follows_dup_close_and_inherited_fds() {
        let mut d = decoder();
        assert_eq!(paths(&write(&mut d, P, 1)), ["/log/out"]);
        sys(
            &mut d,
            P,
            Call::Open {
                flags: 1,
                creates: false,
            },
            3,
        );
        sys(
            &mut d,
            P,
            Call::Dup {
                fd: 3,
                cloexec: false,
            },
            7,
        );
        sys(&mut d, P, Call::Close { fd: 3 }, 0);
        assert!(write(&mut d, P, 3).is_empty());
        assert_eq!(paths(&write(&mut d, P, 7)), ["/f/3"]);
        // dup2 of an untracked fd over a tracked one forgets it.
        sys(
            &mut d,
            P,
            Call::Dup {
                fd: 40,
                cloexec: false,
            },
            7,
        );
        assert!(write(&mut d, P, 7).is_empty());
        // A failed write, a zero-length write: nothing.
        sys(
            &mut d,
            P,
            Call::Open {
                flags: 1,
                creates: false,
            },
            5,
        );
        assert!(sys(
            &mut d,
            P,
            Call::Write {
                fd: 5,
                offset: None
            },
            -28
        )
        .is_empty());
        assert!(sys(
            &mut d,
            P,
            Call::Write {
                fd: 5,
                offset: None
            },
            0
        )
        .is_empty());
    }

    #[test]
    fn fork_copies_and_threads_share_the_table() {
        let mut d = decoder();
        let (thread, child) = (Pid::from_raw(101), Pid::from_raw(200));
        let spawn = |child, thread| Stop::Spawned {
            parent: P,
            child,
            thread,
            shares_files: thread,
        };
        d.decode(&spawn(thread, true));
        d.decode(&spawn(child, false));
        // Opened by a thread: visible to the process, not to the forked child.
        sys(
            &mut d,
            thread,
            Call::Open {
                flags: 1,
                creates: false,
            },
            4,
        );
        assert_eq!(paths(&write(&mut d, P, 4)), ["/f/4"]);
        assert!(write(&mut d, child, 4).is_empty());
        assert_eq!(paths(&write(&mut d, child, 1)), ["/log/out"]);
        match &write(&mut d, thread, 4)[0] {
            FileEvent::Updated { pid, .. } => assert_eq!(*pid, 100),
            e => panic!("{e:?}"),
        }
        assert_eq!(
            d.processes().iter().copied().collect::<Vec<_>>(),
            [100, 200]
        );
    }

    #[test]
    fn exec_closes_cloexec_fds() {
        let mut d = decoder();
        let flags = (libc::O_WRONLY | libc::O_CLOEXEC) as u64;
        sys(
            &mut d,
            P,
            Call::Open {
                flags,
                creates: false,
            },
            3,
        );
        sys(
            &mut d,
            P,
            Call::Open {
                flags: 1,
                creates: false,
            },
            4,
        );
        sys(
            &mut d,
            P,
            Call::Dup {
                fd: 4,
                cloexec: true,
            },
            5,
        );
        d.decode(&Stop::Exec { pid: P, former: P });
        assert!(write(&mut d, P, 3).is_empty());
        assert!(write(&mut d, P, 5).is_empty());
        assert_eq!(paths(&write(&mut d, P, 4)), ["/f/4"]);
        d.decode(&Stop::Exited {
            pid: P,
            status: Exit::Code(0),
        });
    }

    #[test]
    fn close_range_closes_or_marks() {
        let mut d = decoder();
        for fd in 3..6 {
            sys(
                &mut d,
                P,
                Call::Open {
                    flags: 1,
                    creates: false,
                },
                fd,
            );
        }
        let range = |first, last, cloexec| Call::CloseRange {
            first,
            last,
            cloexec,
            unshare: false,
        };
        sys(&mut d, P, range(5, u32::MAX, true), 0);
        sys(&mut d, P, range(4, 4, false), 0);
        assert!(write(&mut d, P, 4).is_empty());
        assert_eq!(write(&mut d, P, 5).len(), 1);
        d.decode(&Stop::Exec { pid: P, former: P });
        assert!(write(&mut d, P, 5).is_empty());
        assert_eq!(write(&mut d, P, 3).len(), 1);
    }

    #[test]
    fn rename_truncate_unlink_and_mmap() {
        let mut d = decoder();
        let arg = |p: &str| PathArg {
            path: p.into(),
            base: Some("/f".into()),
        };
        sys(
            &mut d,
            P,
            Call::Open {
                flags: 1,
                creates: false,
            },
            3,
        );
        let rename = Call::Rename {
            from: arg("3"),
            to: arg("../g/new"),
            exchange: false,
            replaces: true,
        };
        let renamed = sys(&mut d, P, rename, 0);
        assert!(
            matches!(&renamed[..], [FileEvent::Renamed { from, to, exchange: false, replaces: true, .. }]
                if from == "/f/3" && to == "/g/new"),
            "{renamed:?}"
        );
        // The fd follows the file.
        assert_eq!(paths(&write(&mut d, P, 3)), ["/g/new"]);
        let untracked = Call::Rename {
            from: arg("x"),
            to: arg("y"),
            exchange: false,
            replaces: false,
        };
        assert!(sys(&mut d, P, untracked, 0).is_empty());
        let truncate = Call::Truncate {
            path: arg("t"),
            len: 5,
        };
        let events = sys(&mut d, P, truncate, 0);
        assert!(matches!(&events[..],
            [FileEvent::Updated { op: WriteOp::Truncate, len: Some(5), path, .. }] if path == "/f/t"));
        assert!(sys(&mut d, P, Call::Unlink { path: arg("nope") }, 0).is_empty());
        assert_eq!(
            paths(&sys(&mut d, P, Call::Unlink { path: arg("t") }, 0)),
            ["/f/t"]
        );
        let mapped = sys(&mut d, P, Call::MmapShared { fd: 3 }, 0x7000);
        assert!(matches!(&mapped[..], [FileEvent::MappedShared { .. }]));
    }

    #[test]
    fn creations_are_told_before_their_open_and_renames_out_of_view_unlink() {
        let mut d = Decoder::new(PathFilter::new(&[], &["/tmp/*".into()]).unwrap());
        let flags = (libc::O_CREAT | libc::O_WRONLY) as u64;
        let created = sys(
            &mut d,
            P,
            Call::Open {
                flags,
                creates: true,
            },
            3,
        );
        assert!(
            matches!(&created[..], [FileEvent::Created { path, .. }, FileEvent::Opened { write: true, .. }]
                if path == "/f/3"),
            "{created:?}"
        );
        // A failed creating open creates nothing.
        assert!(sys(
            &mut d,
            P,
            Call::Open {
                flags,
                creates: true
            },
            -17
        )
        .is_empty());
        let arg = |p: &str| PathArg {
            path: p.into(),
            base: None,
        };
        let away = Call::Rename {
            from: arg("/f/3"),
            to: arg("/tmp/x"),
            exchange: false,
            replaces: false,
        };
        let gone = sys(&mut d, P, away, 0);
        assert!(
            matches!(&gone[..], [FileEvent::Unlinked { path, .. }] if path == "/f/3"),
            "{gone:?}"
        );
    }
}
