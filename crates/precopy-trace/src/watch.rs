//! Stop-free identification: the application's files from fanotify events on the filesystems
//! it may use, kept when the event's process is in the application's cgroup. The application
//! never stops: no ptrace, no seccomp filter. See `docs/tracer.md` ("Stop-free identification")
//! for what this mode sees and what it does not.
//!
//! One `FAN_CLASS_NOTIF` group with a *filesystem* mark (`FAN_OPEN | FAN_MODIFY |
//! FAN_CLOSE_WRITE`) on every filesystem of the mount table but the kernel's own (proc, sysfs,
//! cgroup, devtmpfs…). A reader thread turns each event of a process in the cgroup into a
//! [`FileEvent`]: `FAN_OPEN` → opened (ReadOnly so far); `FAN_CLOSE_WRITE` → opened for writing
//! (ReadWrite: the kernel says the file was open for writing); `FAN_MODIFY` → an update.
//! Events of other processes are dropped after one lookup of their cgroup (cached per pid).
//!
//! Files created, deleted and renamed come from a second group with directory events
//! ([`crate::dirs`]), where the kernel and our privileges allow it: creations of paths the
//! filter records, and deletions and renames of paths already named.
//!
//! Costs are kept off the application's path with *ignore* marks on the file's inode: once a
//! file is known ReadWrite its opens and write-closes are ignored for good, and after each
//! `FAN_MODIFY` its modifications are ignored for one window (as in [`crate::notify`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::eventfd::EventFd;
use nix::sys::fanotify::{Fanotify, MarkFlags, MaskFlags};
use precopy_core::trace::WriteOp;

use crate::decode::FileEvent;
use crate::dirs::{DirChange, DirEvent, DirGroup};
use crate::error::TraceError;
use crate::notify::{notification_group, read_until_stopped, spawn_reader, Wakes};
use crate::paths::PathFilter;

/// Filesystems that hold no application data (or that fanotify cannot watch usefully).
const KERNEL_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devtmpfs",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "efivarfs",
    "rpc_pipefs",
];

/// Reads of the file events' queue per wake, at most.
const MAX_READS: usize = 64;

/// One mount point per filesystem of the mount table that may hold the application's files.
fn filesystems() -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut devices = BTreeSet::new();
    let mut points = Vec::new();
    for line in table.lines() {
        let Some((fields, rest)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = fields.split(' ').collect();
        let fstype = rest.split(' ').next().unwrap_or("");
        if fields.len() < 5 || KERNEL_FS.contains(&fstype) {
            continue;
        }
        if devices.insert(fields[2].to_string()) {
            points.push(PathBuf::from(fields[4].replace("\\040", " ")));
        }
    }
    points
}

/// The identification events read so far: `(seconds since start, event)`.
pub type Timed = (f64, FileEvent);

/// The running watch: a fanotify group and its reader thread.
#[derive(Debug)]
pub struct Watch {
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<Tally>>,
    events: Receiver<Timed>,
}

/// What the reader dropped, for the summary.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Processes of the application seen in events.
    pub processes: BTreeSet<u32>,
    /// Events of processes outside the cgroup.
    pub outside: u64,
    /// Events whose process was gone before its cgroup could be read (see the docs).
    pub unattributed: u64,
}

impl Watch {
    /// Marks the filesystems and starts the reader, for the cgroup at `cgroup` (a directory
    /// under the cgroup v2 mount). Needs `CAP_SYS_ADMIN`. Start it before the application, so
    /// no open is missed.
    pub fn start(
        cgroup: &Path,
        start: Instant,
        window: Duration,
        filter: PathFilter,
    ) -> Result<Watch, TraceError> {
        let group = notification_group()?;
        let mask = MaskFlags::FAN_OPEN | MaskFlags::FAN_MODIFY | MaskFlags::FAN_CLOSE_WRITE;
        let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
        let mut marked = 0;
        let points = filesystems();
        for point in &points {
            let flags = MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM;
            // Some filesystems refuse a filesystem mark (no fsid); their files go unseen.
            if group.mark(flags, mask, cwd, Some(point)).is_ok() {
                marked += 1;
            }
        }
        if marked == 0 {
            return Err(TraceError::Fanotify(Errno::ENODEV));
        }
        let relative = cgroup
            .strip_prefix(crate::cgroup::mount().map_err(|_| TraceError::Fanotify(Errno::ENOENT))?)
            .map(|p| format!("/{}", p.display()))
            .map_err(|_| TraceError::Fanotify(Errno::EINVAL))?;
        let (tx, events) = channel();
        let mut reader = Reader {
            group,
            start,
            window,
            filter,
            cgroup: relative.trim_end_matches('/').to_string(),
            members: HashMap::new(),
            files: HashMap::new(),
            dirs: DirGroup::start(&points).ok(),
            named: HashSet::new(),
            held: HashMap::new(),
            tally: Tally::default(),
            tx,
        };
        let (stop, thread) = spawn_reader("fanotify-watch", move |stop| {
            read_until_stopped(&mut reader, stop);
            reader.tally
        })?;
        Ok(Watch {
            stop,
            thread: Some(thread),
            events,
        })
    }

    /// The events read so far and not yet taken.
    pub fn take(&self) -> Vec<Timed> {
        self.events.try_iter().collect()
    }

    /// Stops the reader after a last read of the queue (call it once the application is gone:
    /// its events are all queued by then); the events not yet taken, and the tally.
    pub fn finish(mut self) -> (Vec<Timed>, Tally) {
        let tally = self.stop_reader();
        (self.take(), tally)
    }

    fn stop_reader(&mut self) -> Tally {
        let Some(thread) = self.thread.take() else {
            return Tally::default();
        };
        let _ = self.stop.write(1);
        thread.join().unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop_reader();
    }
}

/// What we know of a file the application used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    ReadOnly,
    ReadWrite,
}

struct Reader {
    group: Fanotify,
    start: Instant,
    window: Duration,
    filter: PathFilter,
    /// The cgroup as `/proc/PID/cgroup` names it.
    cgroup: String,
    /// pid → in the cgroup (a pid is looked up once; see the docs on reuse).
    members: HashMap<u32, bool>,
    /// (device, inode) → what the application did with it.
    files: HashMap<(u64, u64), Known>,
    /// Directory events, if the kernel gives them to us.
    dirs: Option<DirGroup>,
    /// The paths told so far: deletions and renames are told only of these.
    named: HashSet<String>,
    /// Files whose modifications are ignored until the instant given, with an fd to undo it.
    held: HashMap<(u64, u64), (OwnedFd, Instant)>,
    tally: Tally,
    tx: Sender<Timed>,
}

impl Wakes for Reader {
    fn group(&self) -> &Fanotify {
        &self.group
    }

    fn also(&self) -> Option<BorrowedFd<'_>> {
        self.dirs.as_ref().map(DirGroup::as_fd)
    }

    fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    fn window(&self) -> Duration {
        self.window
    }

    fn rearm(&mut self, all: bool) {
        Reader::rearm(self, all)
    }

    fn drain(&mut self) -> bool {
        Reader::drain(self)
    }
}

impl Reader {
    /// Whether `pid` is in the application's cgroup (`None`: it is gone).
    fn member(&mut self, pid: u32) -> Option<bool> {
        if let Some(&known) = self.members.get(&pid) {
            return Some(known);
        }
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let inside = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .is_some_and(|path| path == self.cgroup);
        self.members.insert(pid, inside);
        Some(inside)
    }

    /// Lets the held files report modifications again (all of them if `all`).
    fn rearm(&mut self, all: bool) {
        let now = Instant::now();
        let group = &self.group;
        self.held.retain(|_, (fd, until)| {
            if all || *until <= now {
                let flags = MarkFlags::FAN_MARK_REMOVE | MarkFlags::FAN_MARK_IGNORED_MASK;
                let _ = group.mark(flags, MaskFlags::FAN_MODIFY, &*fd, None::<&Path>);
                false
            } else {
                true
            }
        });
    }

    /// Adds `mask` to the events ignored on the file's inode (surviving its modifications).
    fn ignore(&self, fd: BorrowedFd, mask: MaskFlags) -> bool {
        let flags = MarkFlags::FAN_MARK_ADD
            | MarkFlags::FAN_MARK_IGNORED_MASK
            | MarkFlags::FAN_MARK_IGNORED_SURV_MODIFY;
        self.group.mark(flags, mask, fd, None::<&Path>).is_ok()
    }

    /// Whether the event's process is the application's, counting those that are not.
    fn attributed(&mut self, pid: u32) -> bool {
        match self.member(pid) {
            Some(true) => true,
            Some(false) => {
                self.tally.outside += 1;
                false
            }
            None => {
                self.tally.unattributed += 1;
                false
            }
        }
    }

    /// A directory event of the application's process `pid`, as file events: creations of
    /// paths the filter records, deletions and renames of paths already told.
    fn decode_dir(&mut self, pid: u32, change: DirChange) -> Vec<FileEvent> {
        let Some(dirs) = self.dirs.as_ref() else {
            return Vec::new();
        };
        match change {
            DirChange::Created(name) => match dirs.path(&name) {
                Some(path) if self.filter.allows(&path) => {
                    self.named.insert(path.clone());
                    vec![FileEvent::Created { pid, path }]
                }
                _ => Vec::new(),
            },
            DirChange::Deleted(name) => match dirs.path(&name) {
                Some(path) if self.named.contains(&path) => vec![FileEvent::Unlinked { pid, path }],
                _ => Vec::new(),
            },
            DirChange::CreatedAndDeleted(name) => {
                let Some(path) = dirs.path(&name) else {
                    return Vec::new();
                };
                // There now: deleted, then created again; gone: created, then deleted.
                let there = std::fs::symlink_metadata(&path).is_ok();
                let (created, deleted) =
                    (DirChange::Created(name.clone()), DirChange::Deleted(name));
                let order = if there {
                    [deleted, created]
                } else {
                    [created, deleted]
                };
                order
                    .into_iter()
                    .flat_map(|change| self.decode_dir(pid, change))
                    .collect()
            }
            DirChange::Renamed { from, to } => {
                let (Some(from), Some(to)) = (dirs.path(&from), dirs.path(&to)) else {
                    return Vec::new();
                };
                let (from_named, to_named) = (self.named.contains(&from), self.named.contains(&to));
                if (from_named || to_named) && self.filter.allows(&from) && self.filter.allows(&to)
                {
                    self.named.insert(to.clone());
                    // The kernel does not say whether something was at `to`: what we told of.
                    let replaces = to_named;
                    vec![FileEvent::Renamed {
                        pid,
                        from,
                        to,
                        exchange: false,
                        replaces,
                    }]
                } else if from_named {
                    vec![FileEvent::Unlinked { pid, path: from }]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Reads every queued event; false when the receiver is gone. The directory group is read
    /// first, so every file event that came before one of its events is read too; its events
    /// are decoded after the file events (knowing the paths they name) and told before them
    /// (a file is created before it is opened).
    fn drain(&mut self) -> bool {
        let dir_events = self.dirs.as_ref().map(DirGroup::read).unwrap_or_default();
        let dirs_read = self.start.elapsed().as_secs_f64();
        let mut files = Vec::new();
        // Bounded: under a flood of other processes' events the queue may never empty, and
        // what was read must still be told (the next wake goes on).
        for _ in 0..MAX_READS {
            let events = match self.group.read_events() {
                Ok(events) if !events.is_empty() => events,
                Err(Errno::EINTR) => continue,
                _ => break,
            };
            let now = Instant::now();
            let t = now.duration_since(self.start).as_secs_f64();
            for event in &events {
                let Some(fd) = event.fd() else { continue };
                let pid = event.pid().max(0) as u32;
                if !self.attributed(pid) {
                    continue;
                }
                for file_event in self.decode(fd, event.mask(), pid, now) {
                    self.tally.processes.insert(pid);
                    files.push((t, file_event));
                }
            }
        }
        let mut told = Vec::new();
        for DirEvent { pid, change } in dir_events {
            if self.attributed(pid) {
                for file_event in self.decode_dir(pid, change) {
                    self.tally.processes.insert(pid);
                    told.push((dirs_read, file_event));
                }
            }
        }
        told.into_iter()
            .chain(files)
            .all(|timed| self.tx.send(timed).is_ok())
    }

    /// An event of the application's process `pid` on the file open as `fd`.
    fn decode(
        &mut self,
        fd: BorrowedFd,
        mask: MaskFlags,
        pid: u32,
        now: Instant,
    ) -> Vec<FileEvent> {
        let Ok(stat) = nix::sys::stat::fstat(fd) else {
            return Vec::new();
        };
        if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Vec::new();
        }
        let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
            return Vec::new();
        };
        let path = path.to_string_lossy().into_owned();
        if !self.filter.allows(&path) {
            return Vec::new();
        }
        let key = (stat.st_dev, stat.st_ino);
        let mut out = Vec::new();
        let known = self.files.get(&key).copied();
        let written = mask.intersects(MaskFlags::FAN_CLOSE_WRITE | MaskFlags::FAN_MODIFY);
        if known.is_none() || (written && known == Some(Known::ReadOnly)) {
            self.named.insert(path.clone());
            out.push(FileEvent::Opened {
                pid,
                path: path.clone(),
                write: written,
            });
            if written {
                // Known ReadWrite: its opens and write-closes tell us nothing more.
                self.ignore(fd, MaskFlags::FAN_OPEN | MaskFlags::FAN_CLOSE_WRITE);
                self.files.insert(key, Known::ReadWrite);
            } else {
                self.ignore(fd, MaskFlags::FAN_OPEN);
                self.files.insert(key, Known::ReadOnly);
            }
        }
        if mask.contains(MaskFlags::FAN_MODIFY) {
            out.push(FileEvent::Updated {
                pid,
                path,
                op: WriteOp::Write,
                offset: None,
                len: None,
            });
            self.hold(fd, key, now);
        }
        out
    }

    /// Ignores the file's modifications for one window.
    fn hold(&mut self, fd: BorrowedFd, key: (u64, u64), now: Instant) {
        if self.window.is_zero() || self.held.contains_key(&key) {
            return;
        }
        let Ok(owned) = fd.try_clone_to_owned() else {
            return;
        };
        if self.ignore(fd, MaskFlags::FAN_MODIFY) {
            self.held.insert(key, (owned, now + self.window));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_own_filesystems_are_left_out() {
        let points = filesystems();
        assert!(!points.iter().any(|p| p == Path::new("/proc")));
        assert!(points.iter().any(|p| p == Path::new("/")), "{points:?}");
    }
}
