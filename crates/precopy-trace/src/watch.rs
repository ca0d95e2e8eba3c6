//! Stop-free identification: the application's files from fanotify events on the filesystems
//! it may use, kept when the event's process is one of the application's. The application
//! never stops: no ptrace, no seccomp filter. See `docs/tracer.md` ("Stop-free identification")
//! for what this mode sees and what it does not.
//!
//! One `FAN_CLASS_NOTIF` group ([`crate::named`]) with a *filesystem* mark on every filesystem
//! of the mount table but the kernel's own (proc, sysfs, cgroup, devtmpfs…), reporting each
//! event by directory and name: `FAN_CLOSE_NOWRITE` → used, ReadOnly so far;
//! `FAN_CLOSE_WRITE` → ReadWrite (the kernel says the file was open for writing); `FAN_MODIFY`
//! → an update; `FAN_CREATE`, `FAN_DELETE`, `FAN_RENAME` → the tree's changes. Files are
//! identified at their close, not their open: a new file's creation, writes and close then
//! merge into one queued event, where opens made it three (measured: `tar -x` of small files,
//! BENCHMARKS.md). Files still open are found by reading the open files and mappings of the
//! cgroup's processes (`/proc/PID/fd`, `fdinfo`, `maps`) once a [`SCAN`] interval and when the
//! watch ends: what the kernel says is open now, with its open flags.
//! Whose process an event is comes from the kernel's fork notices ([`crate::forks`]), read after
//! each batch of events, so a process that is gone by then is still placed exactly.
//!
//! Costs are kept off the application's path. `FAN_MODIFY` is asked per file, on the inode of
//! each file the application used, from its first sight on: a filesystem mark with
//! `FAN_MODIFY` sent every write on the filesystem, anyone's, down fsnotify's slow path. After
//! each `FAN_MODIFY` it is taken off the file's mark for one window (as in [`crate::notify`]),
//! so writes in the window take the fast path. Writes made before the first sight are not
//! events: a file whose modification time at first sight is not older than the last scan (less
//! a margin for the kernel's coarse clock: a file first seen now was not open then) counts as
//! updated at the application's write-close of it (not at all if it only read it: the write
//! was someone else's). Once a file is known its further closes tell nothing new and are
//! ignored for good (an *ignore* mark on its inode).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::eventfd::EventFd;
use precopy_core::trace::WriteOp;

use crate::decode::FileEvent;
use crate::error::TraceError;
use crate::forks::{Forks, Lineage, Lost};
use crate::named::{Change, Group, Happened};
use crate::notify::{read_until_stopped, spawn_reader, Wakes};
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

/// How often the open files of the application's processes are read: a file it keeps open is
/// identified at most this long after its open (the rest at their close).
pub const SCAN: Duration = Duration::from_secs(1);

/// A file's modification time.
fn modified(meta: &std::fs::Metadata) -> SystemTime {
    let since_epoch = Duration::new(
        meta.mtime().max(0) as u64,
        meta.mtime_nsec().clamp(0, 999_999_999) as u32,
    );
    SystemTime::UNIX_EPOCH + since_epoch
}

/// A file of the application, as one event or scan saw it.
#[derive(Debug, Clone, Copy, Default)]
struct Use {
    /// Open for writing (a write-close, a write, or open now with write access): its
    /// modification time may be the application's own doing.
    write: bool,
    /// A `FAN_MODIFY`.
    modified: bool,
}

impl From<Happened> for Use {
    fn from(happened: Happened) -> Use {
        Use {
            write: happened.closed_write || happened.modified,
            modified: happened.modified,
        }
    }
}

/// The files process `pid` has open or mapped now, with whether it may write them; none if it
/// is gone.
fn open_files(pid: u32) -> Vec<(String, bool)> {
    let mut files = Vec::new();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten();
    for entry in fds.flatten() {
        let Ok(path) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let info = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
        let flags = std::fs::read_to_string(info).ok().and_then(|info| {
            let octal = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
            i32::from_str_radix(octal.trim(), 8).ok()
        });
        let Some(flags) = flags else { continue };
        files.push((
            path.to_string_lossy().into_owned(),
            flags & libc::O_ACCMODE != libc::O_RDONLY,
        ));
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    for line in maps.lines() {
        // address perms offset device inode path (the path is the rest, spaces and all).
        let mut fields = line.splitn(6, ' ');
        let perms = fields.nth(1).unwrap_or("");
        let path = fields.nth(3).unwrap_or("").trim_start();
        if path.starts_with('/') {
            let shared_writable = perms.as_bytes().get(1) == Some(&b'w') && perms.ends_with('s');
            files.push((path.to_string(), shared_writable));
        }
    }
    files
}

/// The files the processes in `cgroup` have open or mapped now: `(pid, path, may write)`.
fn open_in(cgroup: &Path) -> impl Iterator<Item = (u32, String, bool)> {
    let procs = crate::cgroup::procs_of(cgroup).unwrap_or_default();
    procs.into_iter().flat_map(|pid| {
        open_files(pid)
            .into_iter()
            .map(move |(path, write)| (pid, path, write))
    })
}

/// The identification events read so far: `(seconds since start, event)`.
pub type Timed = (f64, FileEvent);

/// The running watch: a fanotify group and its reader thread.
#[derive(Debug)]
pub struct Watch {
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<Tally>>,
    events: Receiver<Timed>,
    cgroup: PathBuf,
    filter: PathFilter,
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
    group: Group,
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
        // Some filesystems refuse a filesystem mark (no fsid); their files go unseen.
        let group = Group::start(&filesystems()).map_err(TraceError::Fanotify)?;
        Ok(Armed {
            group,
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

    /// The files the application's processes have open or mapped now, with whether one may
    /// write them: what it keeps open, before the reader's next scan, such as right after
    /// the application was frozen.
    pub fn open_now(&self) -> Vec<(String, bool)> {
        open_in(&self.cgroup)
            .filter(|(_, path, _)| self.filter.allows(path) && Path::new(path).is_file())
            .map(|(_, path, write)| (path, write))
            .collect()
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
    /// are told like those of files it used.
    pub fn naming(mut self, paths: impl IntoIterator<Item = String>) -> Armed {
        self.named.extend(paths);
        self
    }

    /// Starts the reader for the application whose root process is `root`: it, and every
    /// process forked from it since the watch was armed.
    pub fn follow(self, root: u32) -> Result<Watch, TraceError> {
        let (tx, events) = channel();
        let (cgroup, filter) = (self.cgroup.clone(), self.filter.clone());
        // The application may have run since the watch was armed.
        let armed_at = SystemTime::now() - self.start.elapsed();
        let mut reader = Reader {
            group: self.group,
            forks: self.forks,
            lineage: Lineage::of(root),
            cgroup: self.cgroup,
            start: self.start,
            window: self.window,
            filter: self.filter,
            files: HashMap::new(),
            scanned: (self.start, armed_at - CLOCK_MARGIN),
            unseen: HashSet::new(),
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
            cgroup,
            filter,
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
    group: Group,
    forks: Forks,
    /// The application's processes.
    lineage: Lineage,
    /// Its cgroup: whose processes' open files are scanned, and who is re-admitted if fork
    /// notices are lost.
    cgroup: PathBuf,
    start: Instant,
    window: Duration,
    filter: PathFilter,
    /// (device, inode) → what the application did with it.
    files: HashMap<(u64, u64), Known>,
    /// When the last scan began, and the modification time from which a file first seen now
    /// counts as written before its first sight: it was not open at that scan.
    scanned: (Instant, SystemTime),
    /// Files modified before their first sight, until the application's write-close or write.
    unseen: HashSet<(u64, u64)>,
    /// The paths told so far: deletions and renames are told only of these.
    named: HashSet<String>,
    /// Files whose modifications are ignored until the instant given, with an `O_PATH` fd to
    /// undo it.
    held: HashMap<(u64, u64), (OwnedFd, Instant)>,
    tally: Tally,
    tx: Sender<Timed>,
}

impl Wakes for Reader {
    fn group(&self) -> BorrowedFd<'_> {
        self.group.as_fd()
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
        vec![self.forks.as_fd()]
    }
}

/// The path through which an `O_PATH` fd's file is marked (`fanotify_mark` takes no such fd).
fn through(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl Reader {
    /// Takes in every queued fork notice: after a read of events, the forks of every process
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
                group.mark(libc::FAN_MARK_ADD, libc::FAN_MODIFY, &through(fd));
                false
            } else {
                true
            }
        });
    }

    /// Adds `mask` to the events ignored on the file's inode (surviving its modifications).
    fn ignore(&self, path: &Path, mask: u64) {
        let flags =
            libc::FAN_MARK_ADD | libc::FAN_MARK_IGNORED_MASK | libc::FAN_MARK_IGNORED_SURV_MODIFY;
        self.group.mark(flags, mask, path);
    }

    /// Reads the events queued when called, and no more (16 reads at most: an application, or
    /// the rest of the system, that keeps making events must not keep the reader from its
    /// stop), then the open files if a scan is due. False when the receiver is gone.
    fn drain(&mut self) -> bool {
        let events = self.group.read();
        // Read after the events: every fork they depend on is queued by now.
        self.follow_forks();
        let now = Instant::now();
        let t = now.duration_since(self.start).as_secs_f64();
        let mut told = Vec::new();
        for event in events {
            let ours = self.attributed(event.pid);
            for file_event in self.decode(event.pid, event.change, ours, now) {
                if ours {
                    self.tally.processes.insert(event.pid);
                }
                told.push((t, file_event));
            }
        }
        told.into_iter().all(|timed| self.tx.send(timed).is_ok())
            && (now.duration_since(self.scanned.0) < SCAN || self.scan())
    }

    /// Reads the open files and mappings of the processes in the cgroup now, as uses: what it
    /// keeps open is identified before it closes it. False when the receiver is gone.
    fn scan(&mut self) -> bool {
        let began = (Instant::now(), SystemTime::now() - CLOCK_MARGIN);
        let t = began.0.duration_since(self.start).as_secs_f64();
        let mut told = Vec::new();
        for (pid, path, write) in open_in(&self.cgroup) {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let usage = Use {
                write,
                ..Use::default()
            };
            for file_event in self.used(pid, path, &meta, usage, began.0) {
                self.tally.processes.insert(pid);
                told.push((t, file_event));
            }
        }
        self.scanned = began;
        told.into_iter().all(|timed| self.tx.send(timed).is_ok())
    }

    /// Whether the event's process is the application's, counting those that are not.
    fn attributed(&mut self, pid: u32) -> bool {
        let ours = self.lineage.contains(pid);
        if !ours {
            self.tally.outside += 1;
        }
        ours
    }

    /// An event of process `pid`, as file events: creations of paths the filter records and
    /// uses of files by the application's processes (`ours`), and deletions and renames of paths
    /// already told by any process: what happens to the application's files counts whoever
    /// does it (logrotate renames a service's log).
    fn decode(&mut self, pid: u32, change: Change, ours: bool, now: Instant) -> Vec<FileEvent> {
        match change {
            Change::At(name, happened) => {
                let Some(path) = self.group.path(&name) else {
                    return Vec::new();
                };
                let there = std::fs::symlink_metadata(&path).ok();
                let mut out = Vec::new();
                // Deleted, yet there now: created again since (in this event or a later one).
                if happened.deleted && there.is_some() {
                    out.extend(self.deleted(pid, &path));
                }
                let created = happened.created && ours && self.filter.allows(&path);
                if created {
                    let path = path.clone();
                    out.push(FileEvent::Created { pid, path });
                }
                let told_of = created || self.named.contains(&path);
                let usage = Use::from(happened);
                if ours && (usage.write || happened.closed_read) {
                    // Used, then renamed before this read: told by its name then, the rename
                    // (read next) carries it on.
                    out.extend(match &there {
                        Some(meta) => self.used(pid, path.clone(), meta, usage, now),
                        None if told_of => self.used_and_gone(pid, path.clone(), usage),
                        None => Vec::new(),
                    });
                }
                // Gone: used (and perhaps created) first, deleted since.
                if happened.deleted && there.is_none() && told_of {
                    out.push(FileEvent::Unlinked { pid, path });
                }
                self.remember(&out);
                out
            }
            Change::Renamed { from, to } => {
                let (Some(from), Some(to)) = (self.group.path(&from), self.group.path(&to)) else {
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

    /// The paths of `told` are named from now on: their deletions and renames are told.
    fn remember(&mut self, told: &[FileEvent]) {
        for event in told {
            if let FileEvent::Created { path, .. } | FileEvent::Opened { path, .. } = event {
                self.named.insert(path.clone());
            }
        }
    }

    fn deleted(&self, pid: u32, path: &str) -> Vec<FileEvent> {
        if self.named.contains(path) {
            let path = path.to_string();
            vec![FileEvent::Unlinked { pid, path }]
        } else {
            Vec::new()
        }
    }

    /// A use of a file no longer at `path` by the time it was read (renamed or deleted since,
    /// as an event tells): told by its name, without marks; only of paths told of.
    fn used_and_gone(&mut self, pid: u32, path: String, usage: Use) -> Vec<FileEvent> {
        if !self.filter.allows(&path) {
            return Vec::new();
        }
        let write = usage.write;
        vec![FileEvent::Opened { pid, path, write }]
    }

    /// A use of the file at `path` (`meta` its status) by the application's process `pid`.
    fn used(
        &mut self,
        pid: u32,
        path: String,
        meta: &std::fs::Metadata,
        usage: Use,
        now: Instant,
    ) -> Vec<FileEvent> {
        if !meta.is_file() || !self.filter.allows(&path) {
            return Vec::new();
        }
        let key = (meta.dev(), meta.ino());
        let mut out = Vec::new();
        let known = self.files.get(&key).copied();
        let file = Path::new(&path);
        // At first sight: its writes from now on are events. One made before (it was not open
        // at the last scan) is told by the modification time, once the application is seen
        // with it open for writing (not another process's write, on a file it only reads).
        let modified_before_sight =
            known.is_none() && !usage.modified && modified(meta) >= self.scanned.1;
        if modified_before_sight {
            self.unseen.insert(key);
        }
        let updated = usage.modified || (usage.write && self.unseen.contains(&key));
        if known.is_none() {
            self.group.mark(libc::FAN_MARK_ADD, libc::FAN_MODIFY, file);
        }
        if usage.write {
            self.unseen.remove(&key);
        }
        if known.is_none() || (usage.write && known == Some(Known::ReadOnly)) {
            out.push(FileEvent::Opened {
                pid,
                path: path.clone(),
                write: usage.write,
            });
            if usage.write {
                // Known ReadWrite: its closes tell us nothing more.
                self.ignore(file, libc::FAN_CLOSE_WRITE | libc::FAN_CLOSE_NOWRITE);
                self.files.insert(key, Known::ReadWrite);
            } else {
                self.ignore(file, libc::FAN_CLOSE_NOWRITE);
                self.files.insert(key, Known::ReadOnly);
            }
        }
        if updated {
            out.push(FileEvent::Updated {
                pid,
                path: path.clone(),
                op: WriteOp::Write,
                offset: None,
                len: None,
            });
            // Not at first sight: a file first seen at its write-close (a new file of `tar -x`)
            // is seldom written again; held once it is.
            if known.is_some() {
                self.hold(file, key, now);
            }
        }
        out
    }

    /// Takes `FAN_MODIFY` off the file's mark for one window.
    fn hold(&mut self, file: &Path, key: (u64, u64), now: Instant) {
        if self.window.is_zero() || self.held.contains_key(&key) {
            return;
        }
        let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC;
        let Ok(fd) = nix::fcntl::open(file, flags, nix::sys::stat::Mode::empty()) else {
            return;
        };
        if self
            .group
            .mark(libc::FAN_MARK_REMOVE, libc::FAN_MODIFY, &through(&fd))
        {
            self.held.insert(key, (fd, now + self.window));
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
