//! The destination made equal to the source's stop-time tree (the manifest): under every migrated
//! root, entries the source does not have are removed, directories and symlinks are created, an
//! entry of the wrong kind is replaced, and mode, owner and modification time are set. File
//! contents cannot be made here: [`Mirror::files`] says which files are equal, and the sender
//! sends the others. With `verify`, everything is compared: file contents by the hash this store
//! computed from the bytes it wrote, while the file's stamp (inode, size, times) is unchanged
//! since, so that the check costs what changed, not the tree; a file whose stamp changed is read
//! again, and with [`Store::rereading_at_verify`] every file is.
//!
//! Every path goes through [`Store::parent_of`] (each directory on the way a real directory under
//! the root), symlinks are never followed, and only entries under a migrated root are touched.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use precopy_proto::{Meta, Node, NodeKind, Reason, RelPath};
use rayon::prelude::*;
use rustix::fs::{AtFlags, Gid, Mode, Timespec, Timestamps, Uid, CWD, UTIME_OMIT};

use super::store::{Store, StoreError};

/// A manifest entry, owned (manifests arrive in several frames).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    /// Wire path.
    pub rel: Vec<u8>,
    /// Mode, owner, modification time.
    pub meta: Meta,
    /// What it is.
    pub kind: OwnedKind,
}

/// [`NodeKind`], owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedKind {
    /// A file of this size and hash.
    File {
        /// Bytes.
        size: u64,
        /// BLAKE3.
        hash: [u8; 32],
    },
    /// A directory.
    Dir,
    /// A symlink to this target.
    Symlink(Vec<u8>),
}

impl From<&Node<'_>> for TreeNode {
    fn from(node: &Node<'_>) -> TreeNode {
        TreeNode {
            rel: node.path.as_bytes().to_vec(),
            meta: node.meta,
            kind: match node.kind {
                NodeKind::File { size, hash } => OwnedKind::File { size, hash },
                NodeKind::Dir => OwnedKind::Dir,
                NodeKind::Symlink { target } => OwnedKind::Symlink(target.to_vec()),
            },
        }
    }
}

/// What making the roots equal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirror {
    /// Per node, in order: equal now (a file's content included).
    pub files: Vec<bool>,
    /// What still differs, with why: everything with `verify`, else all but contents.
    pub differing: Vec<(Vec<u8>, Reason)>,
}

impl Store {
    /// Makes every root equal to `nodes` but for file contents (module docs). With `verify`,
    /// every difference left is reported.
    pub fn mirror(&self, roots: &[Vec<u8>], nodes: &[TreeNode], verify: bool) -> Mirror {
        let wanted: BTreeSet<&[u8]> = nodes.iter().map(|n| n.rel.as_slice()).collect();
        let mut differing = Vec::new();
        for extra in self.extras(roots, &wanted) {
            if let Err(e) = remove_any(&self.root().join(OsStr::from_bytes(&extra))) {
                if e.kind() != io::ErrorKind::NotFound {
                    differing.push((extra, Reason::Extra));
                }
            }
        }
        // Kinds first, parents before children (nodes are in path order).
        let shaped: Vec<Result<PathBuf, Reason>> = nodes.iter().map(|n| self.shape(n)).collect();
        // Contents on every core: the application is stopped while this runs.
        let files: Vec<bool> = nodes
            .par_iter()
            .zip(&shaped)
            .map(|(node, shaped)| match (&node.kind, shaped) {
                (_, Err(_)) => false,
                (OwnedKind::File { size, hash }, Ok(_)) => {
                    let rel = RelPath::new(&node.rel).expect("came as a RelPath");
                    let reread = verify && self.rereads_at_verify();
                    matches!(self.current(rel, reread), Ok(Some((s, h))) if s == *size && h == *hash)
                }
                (_, Ok(_)) => true,
            })
            .collect();
        // Metadata last: creating and removing entries changes their directories' times.
        for ((node, shaped), &equal) in nodes.iter().zip(&shaped).zip(&files) {
            match shaped {
                Err(reason) => differing.push((node.rel.clone(), *reason)),
                Ok(path) if equal => match set_meta(path, node) {
                    Ok(Some(before)) if matches!(node.kind, OwnedKind::File { .. }) => {
                        self.restamp(&node.rel, &before, path);
                    }
                    Ok(_) => {}
                    Err(_) if !verify => differing.push((node.rel.clone(), Reason::Metadata)),
                    Err(_) => {}
                },
                Ok(_) => {}
            }
        }
        if verify {
            differing.clear();
            for ((node, shaped), &equal) in nodes.iter().zip(&shaped).zip(&files) {
                let reason = match shaped {
                    Err(reason) => Some(*reason),
                    Ok(path) => difference(node, path, equal),
                };
                if let Some(reason) = reason {
                    differing.push((node.rel.clone(), reason));
                }
            }
            differing.extend(
                self.extras(roots, &wanted)
                    .into_iter()
                    .map(|rel| (rel, Reason::Extra)),
            );
        }
        Mirror { files, differing }
    }

    /// Entries under the roots at the destination that `wanted` does not hold, parents before
    /// their children.
    fn extras(&self, roots: &[Vec<u8>], wanted: &BTreeSet<&[u8]>) -> Vec<Vec<u8>> {
        let mut extras = Vec::new();
        for root in roots {
            let Ok(rel) = RelPath::new(root) else {
                continue;
            };
            // A root whose way is not a real directory at D holds nothing of ours.
            if !matches!(self.parent_of(rel, false), Ok(Some(_))) {
                continue;
            }
            collect_extras(
                &self.root().join(OsStr::from_bytes(root)),
                root.clone(),
                wanted,
                &mut extras,
            );
        }
        extras.sort();
        extras.dedup();
        extras
    }

    /// Gives the entry at `node.rel` the node's kind (a directory or symlink made, a wrong kind
    /// removed); returns its path.
    fn shape(&self, node: &TreeNode) -> Result<PathBuf, Reason> {
        let rel = RelPath::new(&node.rel).expect("came as a RelPath");
        let (dir, name) = match self.parent_of(rel, true) {
            Ok(Some(found)) => found,
            Ok(None) => return Err(Reason::Missing),
            Err(StoreError::Refused { .. }) => return Err(Reason::Refused),
            Err(_) => return Err(Reason::Missing),
        };
        let path = dir.join(name);
        let now = fs::symlink_metadata(&path).ok();
        let fits = now.as_ref().is_some_and(|m| match &node.kind {
            OwnedKind::File { .. } => m.is_file(),
            OwnedKind::Dir => m.is_dir(),
            OwnedKind::Symlink(target) => {
                m.is_symlink()
                    && fs::read_link(&path).is_ok_and(|t| t.as_os_str().as_bytes() == target)
            }
        });
        if fits {
            return Ok(path);
        }
        if now.is_some() && remove_any(&path).is_err() {
            return Err(Reason::Kind);
        }
        let made = match &node.kind {
            OwnedKind::File { .. } => return Ok(path),
            OwnedKind::Dir => fs::create_dir(&path),
            OwnedKind::Symlink(target) => {
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &path)
            }
        };
        made.map(|()| path).map_err(|_| Reason::Missing)
    }
}

/// How the entry at `path` differs from `node` now, if it does (`content_equal` from the content
/// pass).
fn difference(node: &TreeNode, path: &Path, content_equal: bool) -> Option<Reason> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Some(Reason::Missing);
    };
    let kind_fits = match &node.kind {
        OwnedKind::File { .. } => meta.is_file(),
        OwnedKind::Dir => meta.is_dir(),
        OwnedKind::Symlink(_) => meta.is_symlink(),
    };
    if !kind_fits {
        return Some(Reason::Kind);
    }
    match &node.kind {
        OwnedKind::File { size, .. } if !content_equal => {
            return Some(if meta.len() != *size {
                Reason::Size
            } else {
                Reason::Hash
            });
        }
        OwnedKind::Symlink(target)
            if fs::read_link(path).map_or(true, |t| t.as_os_str().as_bytes() != target) =>
        {
            return Some(Reason::Target);
        }
        _ => {}
    }
    (!meta_equal(&meta, node)).then_some(Reason::Metadata)
}

/// Walks the destination's entry at `path` (never following symlinks) and lists what is not
/// wanted; an unwanted directory is listed alone (removing it removes what it holds).
fn collect_extras(path: &Path, rel: Vec<u8>, wanted: &BTreeSet<&[u8]>, extras: &mut Vec<Vec<u8>>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !wanted.contains(rel.as_slice()) {
        extras.push(rel);
        return;
    }
    if !meta.is_dir() {
        return;
    }
    let Ok(children) = fs::read_dir(path) else {
        return;
    };
    for child in children.flatten() {
        let name = child.file_name();
        let mut child_rel = rel.clone();
        child_rel.push(b'/');
        child_rel.extend_from_slice(name.as_bytes());
        collect_extras(&path.join(&name), child_rel, wanted, extras);
    }
}

/// Removes a file, symlink or whole directory (never following a symlink).
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    }
}

fn meta_equal(meta: &Metadata, node: &TreeNode) -> bool {
    let want = &node.meta;
    // A symlink's own mode is always 0777 on Linux and cannot be set.
    let mode_fits = meta.is_symlink() || meta.mode() & 0o7777 == want.mode;
    mode_fits
        && meta.uid() == want.uid
        && meta.gid() == want.gid
        && meta.mtime() == want.mtime_s
        && meta.mtime_nsec() == i64::from(want.mtime_ns)
}

/// Sets owner, then mode (chown clears setuid and setgid), then modification time, on the entry
/// itself (never through a symlink). Only what differs is set; returns the metadata from before
/// if anything was.
fn set_meta(path: &Path, node: &TreeNode) -> io::Result<Option<Metadata>> {
    let meta = fs::symlink_metadata(path)?;
    if meta_equal(&meta, node) {
        return Ok(None);
    }
    let want = &node.meta;
    if meta.uid() != want.uid || meta.gid() != want.gid {
        rustix::fs::chownat(
            CWD,
            path,
            Some(Uid::from_raw(want.uid)),
            Some(Gid::from_raw(want.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    if !meta.is_symlink() {
        rustix::fs::chmodat(CWD, path, Mode::from_raw_mode(want.mode), AtFlags::empty())?;
    }
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: want.mtime_s,
            tv_nsec: want.mtime_ns.into(),
        },
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(Some(meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mode: u32) -> Meta {
        Meta {
            mode,
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            mtime_s: 1_600_000_000,
            mtime_ns: 42,
        }
    }

    fn file(rel: &str, data: &[u8]) -> TreeNode {
        TreeNode {
            rel: rel.as_bytes().to_vec(),
            meta: meta(0o640),
            kind: OwnedKind::File {
                size: data.len() as u64,
                hash: *blake3::hash(data).as_bytes(),
            },
        }
    }

    fn dir(rel: &str, mode: u32) -> TreeNode {
        TreeNode {
            rel: rel.as_bytes().to_vec(),
            meta: meta(mode),
            kind: OwnedKind::Dir,
        }
    }

    #[test]
    fn extras_go_kinds_are_fixed_and_metadata_set_but_contents_are_asked_for() {
        let root = tempfile::tempdir().unwrap();
        let at = |p: &str| root.path().join(p);
        fs::create_dir_all(at("app/old/deep")).unwrap();
        fs::write(at("app/old/deep/x"), b"x").unwrap();
        fs::write(at("app/same"), b"same").unwrap();
        fs::create_dir(at("app/was-dir")).unwrap();
        fs::write(at("outside"), b"not under a root").unwrap();
        let store = Store::open(root.path()).unwrap();
        let nodes = vec![
            dir("app", 0o700),
            dir("app/empty", 0o1777),
            TreeNode {
                rel: b"app/link".to_vec(),
                meta: meta(0o777),
                kind: OwnedKind::Symlink(b"../outside".to_vec()),
            },
            file("app/new", b"new"),
            file("app/same", b"same"),
            file("app/was-dir", b"now a file"),
        ];
        let roots = vec![b"app".to_vec()];
        let first = store.mirror(&roots, &nodes, false);
        assert_eq!(first.files, [true, true, true, false, true, false]);
        assert_eq!(first.differing, []);
        assert!(!at("app/old").exists());
        assert!(at("outside").exists(), "outside every root: untouched");
        assert!(
            !at("app/was-dir").exists(),
            "a directory where a file belongs goes"
        );
        assert_eq!(
            fs::read_link(at("app/link")).unwrap(),
            Path::new("../outside")
        );
        let empty = fs::metadata(at("app/empty")).unwrap();
        assert_eq!(empty.mode() & 0o7777, 0o1777);
        assert_eq!((empty.mtime(), empty.mtime_nsec()), (1_600_000_000, 42));

        // The sender sends the two files it was asked for; the check then finds D equal.
        fs::write(at("app/new"), b"new").unwrap();
        fs::write(at("app/was-dir"), b"now a file").unwrap();
        let check = store.mirror(&roots, &nodes, true);
        assert_eq!(check.differing, [], "{check:?}");
        assert_eq!(fs::metadata(at("app")).unwrap().mode() & 0o7777, 0o700);
        let link = fs::symlink_metadata(at("app/link")).unwrap();
        assert_eq!(
            link.mtime(),
            1_600_000_000,
            "set on the link, not its target"
        );

        // Checking again reads nothing: every stamp is as when its hash was taken.
        let read = store.bytes_read_back();
        assert_eq!(store.mirror(&roots, &nodes, true).differing, []);
        assert_eq!(store.bytes_read_back(), read);

        // A change behind the store's back changes the stamp: that file is read and found.
        fs::write(at("app/same"), b"SAME").unwrap();
        let check = store.mirror(&roots, &nodes, true);
        assert_eq!(check.differing, [(b"app/same".to_vec(), Reason::Hash)]);
        assert_eq!(store.bytes_read_back(), read + 4);

        // Told to, the check reads every file again.
        let store = Store::open(root.path()).unwrap().rereading_at_verify();
        store.mirror(&roots, &nodes, true);
        let read = store.bytes_read_back();
        store.mirror(&roots, &nodes, true);
        assert_eq!(store.bytes_read_back() - read, 4 + 3 + 10);
    }

    #[test]
    fn a_root_that_vanished_at_the_source_is_removed() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("gone/sub")).unwrap();
        let store = Store::open(root.path()).unwrap();
        let mirror = store.mirror(&[b"gone".to_vec()], &[], true);
        assert_eq!(mirror.differing, []);
        assert!(!root.path().join("gone").exists());
    }

    #[test]
    fn a_symlink_on_the_way_is_refused_and_never_followed() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("app")).unwrap();
        let store = Store::open(root.path()).unwrap();
        let nodes = vec![file("app/x", b"x")];
        let mirror = store.mirror(&[b"app/x".to_vec()], &nodes, true);
        assert_eq!(mirror.differing, [(b"app/x".to_vec(), Reason::Refused)]);
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
