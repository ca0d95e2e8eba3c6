//! Stop-free identification: the application's files from fanotify events on the filesystems
//! it may use, kept when the event's process is one of the application's. The application
//! never stops: no ptrace, no seccomp filter. See `docs/tracer.md` ("Stop-free identification")
//! for what this mode sees and what it does not.
//!
//! One `FAN_CLASS_NOTIF` group with a *filesystem* mark (`FAN_OPEN | FAN_CLOSE_WRITE`) on every
//! filesystem of the mount table but the kernel's own (proc, sysfs, cgroup, devtmpfs…). A
//! reader thread turns each event of a process of the application into a [`FileEvent`]:
//! `FAN_OPEN` → opened (ReadOnly so far); `FAN_CLOSE_WRITE` → opened for writing (ReadWrite: the
//! kernel says the file was open for writing); `FAN_MODIFY` → an update.
//! Whose process an event is comes from the kernel's fork notices ([`crate::forks`]), read after
//! each fanotify batch, so a process that is gone by then is still placed exactly.
//!
//! Files created, deleted and renamed come from a second group with directory events
//! ([`crate::dirs`]), where the kernel and our privileges allow it: creations of paths the
//! filter records, and deletions and renames of paths already named.
//!
//! Costs are kept off the application's path. `FAN_MODIFY` is asked per file, on the inode of
//! each file the application opened, from the first event of it on: a filesystem mark with
//! `FAN_MODIFY` sent every write on the filesystem, anyone's, down fsnotify's slow path. After
//! each `FAN_MODIFY` it is taken off the file's mark for one window (as in [`crate::notify`]),
//! so writes in the window take the fast path. Writes made between the open and the mark are
//! not events: a file whose modification time at first sight is not older than the events read
//! (less a margin for the kernel's coarse clock) counts as updated at the application's
//! write-close of it (not at all if it only read it: the write was someone else's). Once a file
//! is known ReadWrite its opens and write-closes are ignored for good (an *ignore* mark on its
//! inode).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::eventfd::EventFd;
use nix::sys::fanotify::{Fanotify, MarkFlags, MaskFlags};
use precopy_core::trace::WriteOp;

use crate::decode::FileEvent;
use crate::dirs::{DirChange, DirEvent, DirGroup};
use crate::error::TraceError;
use crate::forks::{Forks, Lineage, Lost};
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

/// How far the kernel's file times may lag the clock (they come from a coarse clock, a tick
/// behind at most; a tick is 10 ms at the slowest `HZ`).
const CLOCK_MARGIN: Duration = Duration::from_millis(10);

/// A file's modification time.
fn modified(stat: &libc::stat) -> SystemTime {
    let since_epoch = Duration::new(
        stat.st_mtime.max(0) as u64,
        stat.st_mtime_nsec.clamp(0, 999_999_999) as u32,
    );
    SystemTime::UNIX_EPOCH + since_epoch
}

/// Asks (`FAN_MARK_ADD`) or stops asking (`FAN_MARK_REMOVE`) `FAN_MODIFY` on the file's inode
/// mark; whether the kernel took it.
fn modify_events(group: &Fanotify, fd: BorrowedFd, how: MarkFlags) -> bool {
    (group.mark(how, MaskFlags::FAN_MODIFY, fd, None::<&Path>)).is_ok()
}

/// The size of an event without information records (`FAN_EVENT_METADATA_LEN`).
const EVENT_LEN: usize = std::mem::size_of::<libc::fanotify_event_metadata>();

/// How many bytes of events the group has queued (`FIONREAD`); if it cannot tell, no limit.
fn queued_bytes(group: &Fanotify) -> usize {
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer given.
    let done = unsafe { libc::ioctl(group.as_fd().as_raw_fd(), libc::FIONREAD, &mut bytes) };
    if done == 0 {
        bytes.max(0) as usize
    } else {
        usize::MAX
    }
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
    /// Events of other processes.
    pub outside: u64,
    /// Times the kernel dropped fork notices (its buffer was full): a process forked and gone
    /// meanwhile may have been missed (see the docs).
    pub forks_lost: u64,
}

/// A watch ready to follow an application that is not started yet: its events and forks are
/// queued from now on.
#[derive(Debug)]
pub struct Armed {
    group: Fanotify,
    dirs: Option<DirGroup>,
    forks: Forks,
    cgroup: PathBuf,
    start: Instant,
    window: Duration,
    filter: PathFilter,
    named: HashSet<String>,
}

impl Watch {
    /// Marks the filesystems and subscribes to fork notices, for an application that will run
    /// in the cgroup at `cgroup` (a directory under the cgroup v2 mount). Arm it before the
    /// application starts, so no open and no fork is missed, then [`Armed::follow`] it. Needs
    /// `CAP_SYS_ADMIN` (fanotify), `CAP_NET_ADMIN` and the initial namespaces (fork notices).
    pub fn arm(
        cgroup: &Path,
        start: Instant,
        window: Duration,
        filter: PathFilter,
    ) -> Result<Armed, TraceError> {
        let group = notification_group()?;
        let mask = MaskFlags::FAN_OPEN | MaskFlags::FAN_CLOSE_WRITE;
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
        Ok(Armed {
            group,
            dirs: DirGroup::start(&points).ok(),
            forks: Forks::subscribe()?,
            cgroup: cgroup.to_path_buf(),
            start,
            window,
            filter,
            named: HashSet::new(),
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

impl Armed {
    /// Paths recorded before the application opens them (`--tree`): their unlinks and renames
    /// are told like those of files it opened.
    pub fn naming(mut self, paths: impl IntoIterator<Item = String>) -> Armed {
        self.named.extend(paths);
        self
    }

    /// Starts the reader for the application whose root process is `root`: it, and every
    /// process forked from it since the watch was armed.
    pub fn follow(self, root: u32) -> Result<Watch, TraceError> {
        let (tx, events) = channel();
        let mut reader = Reader {
            group: self.group,
            forks: self.forks,
            lineage: Lineage::of(root),
            cgroup: self.cgroup,
            start: self.start,
            window: self.window,
            filter: self.filter,
            files: HashMap::new(),
            // The application may have run since the watch was armed.
            fresh_since: SystemTime::now() - self.start.elapsed() - CLOCK_MARGIN,
            unseen: HashSet::new(),
            dirs: self.dirs,
            named: self.named,
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
}

/// What we know of a file the application used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    ReadOnly,
    ReadWrite,
}

struct Reader {
    group: Fanotify,
    forks: Forks,
    /// The application's processes.
    lineage: Lineage,
    /// Its cgroup, whose processes are re-admitted if fork notices are lost.
    cgroup: PathBuf,
    start: Instant,
    window: Duration,
    filter: PathFilter,
    /// (device, inode) → what the application did with it.
    files: HashMap<(u64, u64), Known>,
    /// A file first seen in this read and modified since is taken as written between its open
    /// and its mark: every event read now was queued after this instant.
    fresh_since: SystemTime,
    /// Files modified before their mark, until the application's write-close or write.
    unseen: HashSet<(u64, u64)>,
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

    fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    fn rearm(&mut self, all: bool) {
        Reader::rearm(self, all)
    }

    fn drain(&mut self) -> bool {
        Reader::drain(self)
    }

    fn also(&self) -> Vec<BorrowedFd<'_>> {
        let dirs = self.dirs.as_ref().map(DirGroup::as_fd);
        [Some(self.forks.as_fd()), dirs]
            .into_iter()
            .flatten()
            .collect()
    }
}

impl Reader {
    /// Takes in every queued fork notice: after a fanotify read, the forks of every process
    /// whose events it returned. If notices were lost, the processes in the cgroup now are
    /// admitted (those forked and gone meanwhile cannot be).
    fn follow_forks(&mut self) {
        if self.forks.read_into(&mut self.lineage) == Err(Lost) {
            self.tally.forks_lost += 1;
            for pid in crate::cgroup::procs_of(&self.cgroup).unwrap_or_default() {
                self.lineage.admit(pid);
            }
        }
    }

    /// Lets the held files report modifications again (all of them if `all`).
    fn rearm(&mut self, all: bool) {
        let now = Instant::now();
        let group = &self.group;
        self.held.retain(|_, (fd, until)| {
            if all || *until <= now {
                let _ = modify_events(group, fd.as_fd(), MarkFlags::FAN_MARK_ADD);
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

    /// Reads the events queued when called, and no more: an application (or the rest of the
    /// system) that keeps making events must not keep the reader from its stop. False when
    /// the receiver is gone. The directory group is read first, so every file event that came
    /// before one of its events is read too; its events are decoded after the file events
    /// (knowing the paths they name) and told before them (a file is created before it is
    /// opened).
    fn drain(&mut self) -> bool {
        let began = SystemTime::now();
        let dir_events = self.dirs.as_ref().map(DirGroup::read).unwrap_or_default();
        let dirs_read = self.start.elapsed().as_secs_f64();
        let mut files = Vec::new();
        let mut left = queued_bytes(&self.group);
        loop {
            let events = match left {
                0 => Vec::new(),
                _ => match self.group.read_events() {
                    Err(Errno::EINTR) => continue,
                    read => read.unwrap_or_default(),
                },
            };
            // Read after the events: every fork they depend on is queued by now.
            self.follow_forks();
            if events.is_empty() {
                break;
            }
            left = left.saturating_sub(events.len() * EVENT_LEN);
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
        self.fresh_since = began - CLOCK_MARGIN;
        let mut told = Vec::new();
        for DirEvent { pid, change } in dir_events {
            let ours = self.attributed(pid);
            for file_event in self.decode_dir(pid, change, ours) {
                if ours {
                    self.tally.processes.insert(pid);
                }
                told.push((dirs_read, file_event));
            }
        }
        told.into_iter()
            .chain(files)
            .all(|timed| self.tx.send(timed).is_ok())
    }

    /// Whether the event's process is the application's, counting those that are not.
    fn attributed(&mut self, pid: u32) -> bool {
        let ours = self.lineage.contains(pid);
        if !ours {
            self.tally.outside += 1;
        }
        ours
    }

    /// A directory event of process `pid`, as file events: creations of paths the filter
    /// records by the application's processes (`ours`), and deletions and renames of paths
    /// already told by any process: what happens to the application's files counts whoever
    /// does it (logrotate renames a service's log).
    fn decode_dir(&mut self, pid: u32, change: DirChange, ours: bool) -> Vec<FileEvent> {
        let Some(dirs) = self.dirs.as_ref() else {
            return Vec::new();
        };
        match change {
            DirChange::Created(name) => match dirs.path(&name) {
                Some(path) if ours && self.filter.allows(&path) => {
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
                    .flat_map(|change| self.decode_dir(pid, change, ours))
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
        // At first sight: its writes from now on are events. One made before the mark (read
        // after it) is told by the modification time, once the application's write-close
        // says the write may be its own (not another process's, on a file it only reads).
        let modified_before_mark = known.is_none()
            && modify_events(&self.group, fd, MarkFlags::FAN_MARK_ADD)
            && !mask.contains(MaskFlags::FAN_MODIFY)
            && nix::sys::stat::fstat(fd).is_ok_and(|now| modified(&now) >= self.fresh_since);
        if modified_before_mark {
            self.unseen.insert(key);
        }
        let updated = mask.contains(MaskFlags::FAN_MODIFY)
            || (mask.contains(MaskFlags::FAN_CLOSE_WRITE) && self.unseen.contains(&key));
        if written {
            self.unseen.remove(&key);
        }
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
        if updated {
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

    /// Takes `FAN_MODIFY` off the file's mark for one window.
    fn hold(&mut self, fd: BorrowedFd, key: (u64, u64), now: Instant) {
        if self.window.is_zero() || self.held.contains_key(&key) {
            return;
        }
        let Ok(owned) = fd.try_clone_to_owned() else {
            return;
        };
        if modify_events(&self.group, fd, MarkFlags::FAN_MARK_REMOVE) {
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
