//! The stop-free identification's fanotify group. It reports every event by a directory and a
//! name in it (`FAN_REPORT_DFID_NAME`, Linux 5.9; `FAN_RENAME`, Linux 5.17, gives a rename's
//! old and new names in one event): files closed after writing or reading, modified, created,
//! deleted and renamed. Such a group gets no fd per event, so a directory is found again from
//! its handle with `open_by_handle_at` (needs `CAP_DAC_READ_SEARCH`). One group, not one per
//! kind of event: the kernel merges the events of one name and process while they wait to be
//! read, so a new file's creation, writes and close cost the application one queued event.
//! Parsing the kernel's records is pure ([`parse`]), so it is tested with hand-made buffers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// What happened to one name, as far as one event tells. The kernel merges a name's events
/// while they wait to be read, so their order within one event is lost (the caller can tell
/// a creation and a deletion apart by whether the name exists now).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Happened {
    /// A file was created at the name.
    pub created: bool,
    /// A file at the name was deleted.
    pub deleted: bool,
    /// The file was written (asked per file, with an inode mark).
    pub modified: bool,
    /// The file was closed by a process that had it open for writing.
    pub closed_write: bool,
    /// The file was closed by a process that had it open for reading only.
    pub closed_read: bool,
}

/// What one event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Something happened to the file at a name.
    At(Name, Happened),
    /// A file was renamed from one name to another (over whatever was there).
    Renamed {
        /// The old name.
        from: Name,
        /// The new name.
        to: Name,
    },
}

/// A name in a directory known by its handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The filesystem's id.
    pub fsid: [i32; 2],
    /// The directory's handle type and bytes.
    pub handle_type: i32,
    /// The handle.
    pub handle: Vec<u8>,
    /// The entry's name in it.
    pub name: Vec<u8>,
}

/// One event of the group: the process and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The process (thread group id).
    pub pid: u32,
    /// The change.
    pub change: Change,
}

/// Events the filesystem marks ask for: files (not directories) closed, created, deleted,
/// renamed. `FAN_MODIFY` is asked per file, on inode marks.
const MASK: u64 = libc::FAN_CLOSE_WRITE
    | libc::FAN_CLOSE_NOWRITE
    | libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_RENAME;

/// Parses what a read of the group returned. Records it does not know are skipped; a truncated
/// one ends the parse.
pub fn parse(buf: &[u8]) -> Vec<Event> {
    const META: usize = std::mem::size_of::<libc::fanotify_event_metadata>();
    let mut events = Vec::new();
    let mut at = 0;
    while buf.len() - at >= META {
        let u32_at = |i: usize| u32::from_ne_bytes(buf[i..i + 4].try_into().unwrap_or([0; 4]));
        let event_len = u32_at(at) as usize;
        let metadata_len = u16::from_ne_bytes([buf[at + 6], buf[at + 7]]) as usize;
        if event_len < META || at + event_len > buf.len() || metadata_len > event_len {
            break;
        }
        let mask = u64::from_ne_bytes(buf[at + 8..at + 16].try_into().unwrap_or([0; 8]));
        let pid = u32_at(at + 20);
        let names = infos(&buf[at + metadata_len..at + event_len]);
        let name = |kind: u8| {
            names
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, n)| n.clone())
        };
        let change = if mask & libc::FAN_RENAME != 0 {
            let (from, to) = (
                name(libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME),
                name(libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME),
            );
            from.zip(to).map(|(from, to)| Change::Renamed { from, to })
        } else {
            let happened = Happened {
                created: mask & libc::FAN_CREATE != 0,
                deleted: mask & libc::FAN_DELETE != 0,
                modified: mask & libc::FAN_MODIFY != 0,
                closed_write: mask & libc::FAN_CLOSE_WRITE != 0,
                closed_read: mask & libc::FAN_CLOSE_NOWRITE != 0,
            };
            let named = name(libc::FAN_EVENT_INFO_TYPE_DFID_NAME);
            named
                .filter(|_| happened != Happened::default())
                .map(|name| Change::At(name, happened))
        };
        // A directory's own events are not asked for; a directory named in one is skipped.
        if let Some(change) = change.filter(|_| mask & libc::FAN_ONDIR == 0) {
            events.push(Event { pid, change });
        }
        at += event_len;
    }
    events
}

/// The (type, name) info records of one event: header (type, pad, u16 len), fsid, then a
/// `file_handle` (u32 bytes, i32 type, bytes) and a NUL-terminated name.
fn infos(mut rest: &[u8]) -> Vec<(u8, Name)> {
    let mut names = Vec::new();
    while rest.len() >= 4 {
        let (kind, len) = (rest[0], u16::from_ne_bytes([rest[2], rest[3]]) as usize);
        if len < 4 || len > rest.len() {
            break;
        }
        if let Some(name) = name(&rest[4..len]) {
            names.push((kind, name));
        }
        rest = &rest[len..];
    }
    names
}

fn name(record: &[u8]) -> Option<Name> {
    let i32_at = |i: usize| Some(i32::from_ne_bytes(record.get(i..i + 4)?.try_into().ok()?));
    let fsid = [i32_at(0)?, i32_at(4)?];
    let bytes = i32_at(8)? as u32 as usize;
    let handle_type = i32_at(12)?;
    let handle = record.get(16..16 + bytes)?.to_vec();
    let tail = record.get(16 + bytes..)?;
    let name = tail.split(|&b| b == 0).next()?.to_vec();
    Some(Name {
        fsid,
        handle_type,
        handle,
        name,
    })
}

/// The group and what turns its handles back into paths.
#[derive(Debug)]
pub struct Group {
    fd: OwnedFd,
    /// An open directory of each marked filesystem, by fsid: the mount `open_by_handle_at`
    /// needs.
    mounts: HashMap<[i32; 2], OwnedFd>,
    /// The directories resolved since the last read, by filesystem and handle: a batch of
    /// events names few directories many times (`tar -x`), and each resolution costs three
    /// system calls. Forgotten at each read, so a directory renamed since is found again.
    dirs: RefCell<HashMap<DirKey, Option<PathBuf>>>,
}

/// A directory as events name it: filesystem id, handle type, handle.
type DirKey = ([i32; 2], i32, Vec<u8>);

impl Group {
    /// A group watching `points`' filesystems (each a mount point). Fails where the kernel or
    /// our privileges do not allow it.
    pub fn start(points: &[PathBuf]) -> Result<Group, Errno> {
        let flags = libc::FAN_CLASS_NOTIF
            | libc::FAN_CLOEXEC
            | libc::FAN_NONBLOCK
            | libc::FAN_UNLIMITED_QUEUE
            | libc::FAN_UNLIMITED_MARKS
            | libc::FAN_REPORT_DFID_NAME;
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::fanotify_init(flags, libc::O_RDONLY as u32) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut mounts = HashMap::new();
        for point in points {
            let Ok(path) = CString::new(point.as_os_str().as_bytes()) else {
                continue;
            };
            let flags = libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM;
            // SAFETY: a valid C string; the result is checked.
            let marked = unsafe {
                libc::fanotify_mark(fd.as_raw_fd(), flags, MASK, libc::AT_FDCWD, path.as_ptr())
            };
            let Ok(dir) = std::fs::File::open(point) else {
                continue;
            };
            if let (0, Some(fsid)) = (marked, fsid(&dir)) {
                mounts.insert(fsid, OwnedFd::from(dir));
            }
        }
        if mounts.is_empty() {
            return Err(Errno::ENODEV);
        }
        Ok(Group {
            fd,
            mounts,
            dirs: RefCell::default(),
        })
    }

    /// The fd to poll.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Adds (`FAN_MARK_ADD`) or removes (`FAN_MARK_REMOVE`) `mask` on the inode mark of the file
    /// at `path` (with `FAN_MARK_IGNORED_MASK`, to the events ignored on it); whether the kernel
    /// took it.
    pub fn mark(&self, flags: libc::c_uint, mask: u64, path: &Path) -> bool {
        let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: a valid C string; the result is checked.
        let marked = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                flags,
                mask,
                libc::AT_FDCWD,
                path.as_ptr(),
            )
        };
        marked == 0
    }

    /// Reads the queued events, up to 16 reads of 64 KiB (the queue of a busy machine's
    /// filesystem may never empty; the caller wakes again while it is not).
    pub fn read(&self) -> Vec<Event> {
        self.dirs.borrow_mut().clear();
        let mut events = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..16 {
            match nix::unistd::read(&self.fd, &mut buf) {
                Ok(0) | Err(Errno::EAGAIN) => return events,
                Ok(n) => events.extend(parse(&buf[..n])),
                Err(Errno::EINTR) => {}
                Err(_) => return events,
            }
        }
        events
    }

    /// The path `name` has: its directory's path as first resolved since the last read (the
    /// directory may have moved or gone since the event: then `None`).
    pub fn path(&self, name: &Name) -> Option<String> {
        let key = (name.fsid, name.handle_type, name.handle.clone());
        let base = (self.dirs.borrow_mut().entry(key))
            .or_insert_with(|| self.directory(name))
            .clone()?;
        let name = std::ffi::OsStr::from_bytes(&name.name);
        Some(base.join(name).to_string_lossy().into_owned())
    }

    /// The path of `name`'s directory now.
    fn directory(&self, name: &Name) -> Option<PathBuf> {
        let mount = self.mounts.get(&name.fsid)?;
        // struct file_handle: u32 bytes, i32 type, then the bytes.
        let mut raw = Vec::with_capacity(8 + name.handle.len());
        raw.extend((name.handle.len() as u32).to_ne_bytes());
        raw.extend(name.handle_type.to_ne_bytes());
        raw.extend(&name.handle);
        // u32-aligned, as the kernel reads it.
        let mut words = vec![0u32; raw.len().div_ceil(4)];
        // SAFETY: `words` has at least `raw.len()` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(raw.as_ptr(), words.as_mut_ptr().cast(), raw.len())
        };
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
        // SAFETY: a file_handle laid out as the kernel expects; the result is checked.
        let dir =
            unsafe { libc::open_by_handle_at(mount.as_raw_fd(), words.as_mut_ptr().cast(), flags) };
        if dir < 0 {
            return None;
        }
        // SAFETY: a fresh fd we own.
        let dir = unsafe { OwnedFd::from_raw_fd(dir) };
        std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).ok()
    }
}

/// The filesystem id events name it by: statfs's `f_fsid`.
fn fsid(dir: &std::fs::File) -> Option<[i32; 2]> {
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: fstatfs fills the struct; the result is checked.
    if unsafe { libc::fstatfs(dir.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: filled above.
    let stat = unsafe { stat.assume_init() };
    // SAFETY: fsid_t is two c_ints (its field is private).
    Some(unsafe { std::mem::transmute::<libc::fsid_t, [i32; 2]>(stat.f_fsid) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED_WRITTEN: Happened = Happened {
        created: true,
        deleted: false,
        modified: false,
        closed_write: true,
        closed_read: false,
    };
    const DELETED: Happened = Happened {
        created: false,
        deleted: true,
        modified: false,
        closed_write: false,
        closed_read: false,
    };

    /// An info record: type, the fsid, a 4-byte handle and a name.
    fn info(kind: u8, name: &str) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(7i32.to_ne_bytes());
        body.extend(9i32.to_ne_bytes());
        body.extend(4u32.to_ne_bytes());
        body.extend(1i32.to_ne_bytes());
        body.extend([1, 2, 3, 4]);
        body.extend(name.as_bytes());
        body.push(0);
        while (body.len() + 4) % 4 != 0 {
            body.push(0);
        }
        let mut record = vec![kind, 0];
        record.extend(((body.len() + 4) as u16).to_ne_bytes());
        record.extend(body);
        record
    }

    fn event(mask: u64, pid: i32, infos: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = infos.concat();
        let len = 24 + body.len();
        let mut e = Vec::new();
        e.extend((len as u32).to_ne_bytes());
        e.extend([libc::FANOTIFY_METADATA_VERSION, 0]);
        e.extend(24u16.to_ne_bytes());
        e.extend(mask.to_ne_bytes());
        e.extend((-1i32).to_ne_bytes());
        e.extend(pid.to_ne_bytes());
        e.extend(body);
        e
    }

    fn named(name: &str) -> Name {
        Name {
            fsid: [7, 9],
            handle_type: 1,
            handle: vec![1, 2, 3, 4],
            name: name.as_bytes().to_vec(),
        }
    }

    fn at(name: &str, happened: Happened) -> Change {
        Change::At(named(name), happened)
    }

    #[test]
    fn parses_closes_creations_deletions_and_renames() {
        let dfid = libc::FAN_EVENT_INFO_TYPE_DFID_NAME;
        let buf = [
            event(
                libc::FAN_CREATE | libc::FAN_CLOSE_WRITE,
                5,
                &[info(dfid, "a.tmp")],
            ),
            event(libc::FAN_CREATE | libc::FAN_ONDIR, 5, &[info(dfid, "sub")]),
            event(
                libc::FAN_RENAME,
                6,
                &[
                    info(libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, "a.tmp"),
                    info(libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, "b"),
                ],
            ),
            event(libc::FAN_DELETE, 7, &[info(dfid, "log")]),
            event(libc::FAN_CREATE | libc::FAN_DELETE, 7, &[info(dfid, "x")]),
            event(
                libc::FAN_CLOSE_NOWRITE | libc::FAN_MODIFY,
                8,
                &[info(dfid, "r")],
            ),
        ]
        .concat();
        let events = parse(&buf);
        let both = Happened {
            created: true,
            deleted: true,
            ..Happened::default()
        };
        let read_modified = Happened {
            modified: true,
            closed_read: true,
            ..Happened::default()
        };
        let expected = [
            (5, at("a.tmp", CREATED_WRITTEN)),
            (
                6,
                Change::Renamed {
                    from: named("a.tmp"),
                    to: named("b"),
                },
            ),
            (7, at("log", DELETED)),
            (7, at("x", both)),
            (8, at("r", read_modified)),
        ]
        .map(|(pid, change)| Event { pid, change });
        assert_eq!(events, expected);
        // Cut anywhere, it parses what is whole and stops.
        for cut in 0..buf.len() {
            assert!(parse(&buf[..cut]).len() <= events.len());
        }
    }

    /// A temporary directory, its canonical path and a group on its filesystem; none (skipped,
    /// but never under CI) without the privilege.
    fn group_in_tempdir() -> Option<(tempfile::TempDir, PathBuf, Group)> {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        match Group::start(std::slice::from_ref(&dir)) {
            Ok(group) => Some((tmp, dir, group)),
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "no directory events under CI: {e}"
                );
                eprintln!("SKIPPED: no directory events here (needs root): {e}");
                None
            }
        }
    }

    #[test]
    fn a_file_created_renamed_and_deleted_is_seen_with_its_path() {
        let Some((_tmp, dir, group)) = group_in_tempdir() else {
            return;
        };
        std::fs::write(dir.join("a"), "x").unwrap();
        std::fs::rename(dir.join("a"), dir.join("b")).unwrap();
        std::fs::remove_file(dir.join("b")).unwrap();
        // Events are queued by the calls themselves: all are there now. Others' events on the
        // same filesystem are left out by process and directory (tests run side by side).
        let me = std::process::id();
        let d = dir.display().to_string();
        let seen: Vec<String> = (group.read().into_iter())
            .filter(|e| e.pid == me)
            .map(|e| match e.change {
                Change::At(n, happened) => {
                    format!("{happened:?} {}", group.path(&n).unwrap())
                }
                Change::Renamed { from, to } => format!(
                    "rename {} {}",
                    group.path(&from).unwrap(),
                    group.path(&to).unwrap()
                ),
            })
            .filter(|seen| seen.contains(&format!("{d}/")))
            .collect();
        assert_eq!(
            seen,
            [
                format!("{CREATED_WRITTEN:?} {d}/a"),
                format!("rename {d}/a {d}/b"),
                format!("{DELETED:?} {d}/b")
            ]
        );
    }

    #[test]
    fn a_directory_renamed_between_reads_is_found_by_its_new_path() {
        let Some((_tmp, dir, group)) = group_in_tempdir() else {
            return;
        };
        let me = std::process::id();
        let paths = |group: &Group| -> Vec<String> {
            (group.read().into_iter())
                .filter(|e| e.pid == me)
                .filter_map(|e| match e.change {
                    Change::At(n, _) => group.path(&n),
                    Change::Renamed { .. } => None,
                })
                .filter(|path| path.starts_with(&format!("{}/", dir.display())))
                .collect()
        };
        std::fs::create_dir(dir.join("d")).unwrap();
        std::fs::write(dir.join("d/a"), "x").unwrap();
        let d = dir.display();
        assert_eq!(paths(&group), [format!("{d}/d/a")]);
        std::fs::rename(dir.join("d"), dir.join("e")).unwrap();
        std::fs::write(dir.join("e/b"), "x").unwrap();
        assert_eq!(paths(&group), [format!("{d}/e/b")]);
    }
}
