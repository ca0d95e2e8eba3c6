//! The source side of what is migrated: a set of *roots* (directories or single files), walked
//! again whenever the sender needs to know what is there now. Membership is never fixed: files
//! created, deleted or renamed while the application runs appear in, or vanish from, the next
//! [`Roots::scan`], and the stop-time scan is the tree the destination is made equal to.
//!
//! A walk never follows symlinks (they are migrated as symlinks) and names what it cannot carry:
//! FIFOs, sockets and device files are listed as [`Scan::special`], not silently dropped.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use precopy_core::Kind;
use precopy_proto::Meta;

use super::stamp::Stamp;

/// A migrated root: a directory (its whole subtree) or a single file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// Absolute path at the source, symlinks resolved.
    pub path: PathBuf,
    /// The path on the wire (see `precopy_proto::path`).
    pub rel: Vec<u8>,
    /// The identification step's verdict for the files found under it at the start.
    pub kind: Kind,
}

/// What an entry of the source tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symlink and its target.
    Symlink(Vec<u8>),
    /// A FIFO, socket or device: cannot be migrated (the word says which).
    Special(&'static str),
}

/// One entry found by a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Absolute path at the source.
    pub path: PathBuf,
    /// File, directory, symlink, or something that cannot be carried.
    pub kind: EntryKind,
    /// Mode, owner and modification time.
    pub meta: Meta,
    /// What a write would change (files only).
    pub stamp: Stamp,
    /// The kind of the root it was found under (ReadWrite wins where roots overlap).
    pub access: Kind,
}

impl Entry {
    /// Size in bytes (meaningful for files).
    pub fn size(&self) -> u64 {
        self.stamp.size()
    }
}

/// A walk of every root: entries by wire path (parents before children).
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Every entry but the specials.
    pub entries: BTreeMap<Vec<u8>, Entry>,
    /// FIFOs, sockets and device files found, by wire path.
    pub special: BTreeMap<Vec<u8>, Entry>,
}

/// The roots of a migration.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    roots: Vec<Root>,
    /// Files never migrated, by (device, inode): the sender's own output.
    excluded: Vec<(u64, u64)>,
}

/// A scan failed on one path (permission denied, I/O error…): named, never skipped silently.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct ScanError {
    /// Where.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

impl Root {
    /// The root at `path`, which must exist now.
    fn at(path: PathBuf, kind: Kind) -> Result<Root, ScanError> {
        let fail = |source| ScanError {
            path: path.clone(),
            source,
        };
        let path = path.canonicalize().map_err(fail)?;
        let rel = precopy_proto::path::relative_of_absolute(path.as_os_str().as_bytes())
            .map_err(|e| fail(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())))?;
        Ok(Root { path, rel, kind })
    }
}

impl Roots {
    /// Roots for the named paths (which must exist now). A root inside another is kept (its kind
    /// matters for the files under it) but walked only once.
    pub fn new(named: Vec<(PathBuf, Kind)>) -> Result<Roots, ScanError> {
        Roots::named_and_found(named, Vec::new())
    }

    /// Roots for the named paths (which must exist now) and for the files an identification
    /// found: one gone since (a temporary file deleted or renamed away, a directory on its way
    /// replaced: [`is_gone_ref`]) is left out, as it is not there to migrate.
    pub fn named_and_found(
        named: Vec<(PathBuf, Kind)>,
        found: Vec<(PathBuf, Kind)>,
    ) -> Result<Roots, ScanError> {
        let mut roots: Vec<Root> = Vec::new();
        for (path, kind) in named {
            roots.push(Root::at(path, kind)?);
        }
        for (path, kind) in found {
            match Root::at(path, kind) {
                Ok(root) => roots.push(root),
                Err(e) if is_gone_ref(&e.source) => {}
                Err(e) => return Err(e),
            }
        }
        // Named as both: ReadWrite wins (it may be written).
        roots.sort_by(|a, b| a.rel.cmp(&b.rel).then(b.kind.cmp(&a.kind)));
        roots.dedup_by(|a, b| a.rel == b.rel);
        Ok(Roots {
            roots,
            excluded: Vec::new(),
        })
    }

    /// Never migrates the regular file open as `fd` (the sender's own stdout or stderr, say:
    /// `send --json > out.json` must not migrate `out.json`).
    pub fn exclude_fd(&mut self, fd: std::os::fd::BorrowedFd<'_>) {
        if let Ok(stat) = rustix::fs::fstat(fd) {
            if rustix::fs::FileType::from_raw_mode(stat.st_mode)
                == rustix::fs::FileType::RegularFile
            {
                self.excluded.push((stat.st_dev, stat.st_ino));
            }
        }
    }

    /// Adds a single-file root (a file the application opened after the start), unless a root
    /// already covers it. Returns whether it was added.
    pub fn add_file(&mut self, path: PathBuf, kind: Kind) -> bool {
        let Ok(rel) = precopy_proto::path::relative_of_absolute(path.as_os_str().as_bytes()) else {
            return false;
        };
        if self.roots.iter().any(|r| is_within(&rel, &r.rel)) {
            return false;
        }
        let at = self.roots.partition_point(|r| r.rel < rel);
        self.roots.insert(at, Root { path, rel, kind });
        true
    }

    /// Directories holding a ReadWrite single-file root (ones the application wrote into) that
    /// also hold regular files no root covers, with how many: files the application never
    /// opened, which a database may still need (`--rw DIR` migrates them).
    pub fn unopened_neighbours(&self) -> Vec<(PathBuf, usize)> {
        let mut dirs: Vec<&Path> = self
            .roots
            .iter()
            .filter(|r| r.kind == Kind::ReadWrite && !r.path.is_dir())
            .filter_map(|r| r.path.parent())
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs.into_iter()
            .filter_map(|dir| {
                let unopened = std::fs::read_dir(dir)
                    .ok()?
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter(|e| {
                        let path = e.path();
                        !self.roots.iter().any(|r| path.starts_with(&r.path))
                    })
                    .count();
                (unopened > 0).then(|| (dir.to_path_buf(), unopened))
            })
            .collect()
    }

    /// The roots no other root contains: what the destination makes equal, subtree by subtree.
    pub fn outermost(&self) -> impl Iterator<Item = &Root> {
        self.roots.iter().filter(|r| {
            !self
                .roots
                .iter()
                .any(|o| o.rel != r.rel && is_within(&r.rel, &o.rel))
        })
    }

    /// Walks every root now. A root or entry that vanishes during the walk is simply absent
    /// (a deletion); any other failure names its path.
    pub fn scan(&self) -> Result<Scan, ScanError> {
        let mut scan = Scan::default();
        for root in self.outermost() {
            walk(
                &root.path,
                root.rel.clone(),
                root.kind,
                &self.excluded,
                &mut scan,
            )?;
        }
        // Files under an inner ReadOnly or ReadWrite root take that root's kind, ReadWrite winning.
        for root in &self.roots {
            for (rel, entry) in scan.entries.range_mut(root.rel.clone()..) {
                if !is_within(rel, &root.rel) {
                    break;
                }
                if root.kind == Kind::ReadWrite {
                    entry.access = Kind::ReadWrite;
                }
            }
        }
        Ok(scan)
    }
}

/// `rel` is `root` or under it.
pub fn is_within(rel: &[u8], root: &[u8]) -> bool {
    rel.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
}

fn walk(
    path: &Path,
    rel: Vec<u8>,
    access: Kind,
    excluded: &[(u64, u64)],
    scan: &mut Scan,
) -> Result<(), ScanError> {
    let fail = |source| ScanError {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if is_gone_ref(&e) => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    if excluded.contains(&(meta.dev(), meta.ino())) {
        return Ok(());
    }
    let file_type = meta.file_type();
    let kind = if file_type.is_file() {
        EntryKind::File
    } else if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_symlink() {
        match std::fs::read_link(path) {
            Ok(target) => EntryKind::Symlink(target.into_os_string().into_vec()),
            Err(e) if is_gone_ref(&e) => return Ok(()),
            Err(e) => return Err(fail(e)),
        }
    } else if file_type.is_fifo() {
        EntryKind::Special("FIFO")
    } else if file_type.is_socket() {
        EntryKind::Special("socket")
    } else {
        EntryKind::Special("device file")
    };
    let entry = Entry {
        path: path.to_path_buf(),
        meta: meta_of(&meta),
        stamp: Stamp::of(&meta),
        access,
        kind,
    };
    if matches!(entry.kind, EntryKind::Special(_)) {
        scan.special.insert(rel, entry);
        return Ok(());
    }
    let is_dir = entry.kind == EntryKind::Dir;
    scan.entries.insert(rel.clone(), entry);
    if !is_dir {
        return Ok(());
    }
    let children = match std::fs::read_dir(path) {
        Ok(children) => children,
        Err(e) if is_gone_ref(&e) => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    for child in children {
        let child = match child {
            Ok(child) => child,
            Err(e) if is_gone_ref(&e) => continue,
            Err(e) => return Err(fail(e)),
        };
        let name = child.file_name();
        let mut child_rel = rel.clone();
        child_rel.push(b'/');
        child_rel.extend_from_slice(name.as_bytes());
        walk(&path.join(&name), child_rel, access, excluded, scan)?;
    }
    Ok(())
}

/// Opens the regular file at `path` (absolute, found by a walk) for reading without following
/// any symlink on the way: a file replaced by a symlink since the walk must not have the
/// symlink's target read and sent in its name. `Ok(None)` if it is no longer a file reachable
/// so (gone, a symlink now, or a directory on its way is no longer one).
pub fn open_file(path: &Path) -> io::Result<Option<std::fs::File>> {
    use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let opened =
        match rustix::fs::openat2(CWD, path, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS) {
            // Before Linux 5.6: at least the file itself is not followed.
            Err(rustix::io::Errno::NOSYS) => rustix::fs::openat(CWD, path, flags, Mode::empty()),
            other => other,
        };
    let file = match opened {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) if is_gone(e.into()) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(file.metadata()?.is_file().then_some(file))
}

/// An error that means the entry is no longer there as it was: deleted, or a directory on its
/// way replaced by a file or a symlink.
fn is_gone(error: io::Error) -> bool {
    is_gone_ref(&error)
}

fn is_gone_ref(error: &io::Error) -> bool {
    use rustix::io::Errno;
    error.kind() == io::ErrorKind::NotFound
        || [Errno::NOTDIR, Errno::LOOP, Errno::XDEV]
            .iter()
            .any(|e| error.raw_os_error() == Some(e.raw_os_error()))
}

/// Mode (with setuid, setgid and sticky), owner and modification time.
pub fn meta_of(meta: &Metadata) -> Meta {
    Meta {
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_s: meta.mtime(),
        mtime_ns: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
    }
}

/// A wire path for messages.
pub fn shown(rel: &[u8]) -> std::borrow::Cow<'_, str> {
    OsStr::from_bytes(rel).to_string_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_sees_files_directories_symlinks_and_names_specials() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("f"), b"abc").unwrap();
        std::os::unix::fs::symlink("f", root.join("link")).unwrap();
        nix::unistd::mkfifo(&root.join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let roots = Roots::new(vec![(root.clone(), Kind::ReadOnly)]).unwrap();
        let scan = roots.scan().unwrap();
        let base = roots.outermost().next().unwrap().rel.clone();
        let rel = |name: &str| [&base[..], b"/", name.as_bytes()].concat();
        assert_eq!(scan.entries[&base].kind, EntryKind::Dir);
        assert_eq!(scan.entries[&rel("empty")].kind, EntryKind::Dir);
        assert_eq!(scan.entries[&rel("f")].kind, EntryKind::File);
        assert_eq!(scan.entries[&rel("f")].size(), 3);
        assert_eq!(
            scan.entries[&rel("link")].kind,
            EntryKind::Symlink(b"f".to_vec())
        );
        assert_eq!(scan.special[&rel("pipe")].kind, EntryKind::Special("FIFO"));
        assert_eq!(scan.entries.len(), 4);
    }

    #[test]
    fn an_inner_read_write_root_wins_and_is_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        let outer = dir.path().join("app");
        std::fs::create_dir_all(outer.join("db")).unwrap();
        std::fs::write(outer.join("bin"), b"x").unwrap();
        std::fs::write(outer.join("db/table"), b"y").unwrap();
        let roots = Roots::new(vec![
            (outer.clone(), Kind::ReadOnly),
            (outer.join("db"), Kind::ReadWrite),
        ])
        .unwrap();
        assert_eq!(roots.outermost().count(), 1);
        let scan = roots.scan().unwrap();
        let kind_of = |name: &str| {
            let path = outer.join(name);
            scan.entries
                .values()
                .find(|e| e.path == path)
                .unwrap()
                .access
        };
        assert_eq!(kind_of("bin"), Kind::ReadOnly);
        assert_eq!(kind_of("db/table"), Kind::ReadWrite);
    }

    #[test]
    fn a_missing_root_is_named_and_a_vanished_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = Roots::new(vec![(missing.clone(), Kind::ReadWrite)]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let there = dir.path().join("there");
        std::fs::write(&there, b"x").unwrap();
        let roots = Roots::new(vec![(there.clone(), Kind::ReadWrite)]).unwrap();
        std::fs::remove_file(&there).unwrap();
        assert!(roots.scan().unwrap().entries.is_empty());
    }

    #[test]
    fn a_found_file_gone_before_the_roots_are_made_is_left_out_a_named_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        std::fs::write(&kept, b"x").unwrap();
        let gone = dir.path().join("count.tmp");
        let found = vec![(gone.clone(), Kind::ReadWrite), (kept, Kind::ReadWrite)];
        let roots = Roots::named_and_found(Vec::new(), found).unwrap();
        let scanned = roots.scan().unwrap().entries;
        assert_eq!(scanned.len(), 1, "{scanned:?}");
        let err = Roots::named_and_found(vec![(gone, Kind::ReadWrite)], Vec::new()).unwrap_err();
        assert!(err.to_string().contains("count.tmp"), "{err}");
    }

    #[test]
    fn within_means_the_root_or_below_it() {
        assert!(is_within(b"a/b", b"a"));
        assert!(is_within(b"a", b"a"));
        assert!(!is_within(b"ab", b"a"));
        assert!(!is_within(b"a", b"a/b"));
    }
}
