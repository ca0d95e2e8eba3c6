//! The receiver's root directory: where a relative path may go, and how a file lands there.
//!
//! A [`RelPath`] cannot name `..` or an absolute path, but a symlink already under the root could
//! still lead out. So every directory on the way is checked with `lstat` and must be a real
//! directory (created if missing); files are opened with `O_NOFOLLOW`; and the final rename
//! replaces a symlink at the target itself rather than following it. A file arrives in a
//! temporary file beside its target and is checked against its BLAKE3 hash ([`Incoming::seal`]);
//! then, in a batch with the files that arrived meanwhile ([`Store::commit`]), its data is made
//! durable, it is renamed into place, and the renames are made durable: a reader never sees a
//! partial file, and an acknowledged file survives a crash. One batch costs one `syncfs` per file
//! system and one `fsync` per directory however many files it holds (group commit): two fsyncs per
//! file made 11,000 small files take minutes on a virtual disk.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek};
use std::num::NonZeroU64;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, SystemTime};

use precopy_proto::{DeltaHeader, ErrorCode, FileHeader, Meta, RelPath};

use super::stamp::Stamp;

/// Suffix of temporary files (removed at start-up if a crash left any).
const TMP_SUFFIX: &str = ".precopy-tmp";
/// Bytes of a file received between two requests to start its writeback.
const WRITEBACK: u64 = 8 << 20;

/// A refusal or failure, with the error code the sender gets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The path would leave the root.
    #[error("refused path {path}: {why}")]
    Refused {
        /// The path as received.
        path: String,
        /// Why.
        why: &'static str,
    },
    /// The bytes do not match the announced size or hash.
    #[error("{path}: {why}")]
    Integrity {
        /// The file.
        path: String,
        /// What did not match.
        why: String,
    },
    /// The file system failed (disk full, permissions…).
    #[error("storing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: io::Error,
    },
}

impl StoreError {
    /// The code of the error frame.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Refused { .. } => ErrorCode::Path,
            StoreError::Integrity { .. } => ErrorCode::Integrity,
            StoreError::Io { .. } => ErrorCode::Storage,
        }
    }
}

fn shown(rel: RelPath<'_>) -> String {
    String::from_utf8_lossy(rel.as_bytes()).into_owned()
}

fn io_error(rel: RelPath<'_>) -> impl FnOnce(io::Error) -> StoreError {
    let path = shown(rel);
    move |source| StoreError::Io { path, source }
}

/// What the store remembers of a file it verified: enough to answer a resume query without
/// hashing it again while nothing touched it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Verified {
    stamp: Stamp,
    hash: [u8; 32],
}

/// The root and the hashes it has verified (shared by every connection).
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    verified: Mutex<HashMap<Vec<u8>, Verified>>,
    writeback: Writeback,
    /// The stop-time check reads every file again instead of trusting remembered hashes.
    reread_at_verify: bool,
    /// Bytes read back to hash copies already here.
    read_back: AtomicU64,
}

impl Store {
    /// Opens `root` (created if missing) and removes temporary files a crash left behind.
    pub fn open(root: &Path) -> io::Result<Store> {
        fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        remove_stale_temporaries(&root)?;
        Ok(Store {
            root,
            verified: Mutex::new(HashMap::new()),
            writeback: Writeback::spawn(),
            reread_at_verify: false,
            read_back: AtomicU64::new(0),
        })
    }

    /// Makes the stop-time check read every file again (its time grows with the whole tree)
    /// rather than trust the hash remembered for a file whose stamp has not changed since.
    pub fn rereading_at_verify(mut self) -> Store {
        self.reread_at_verify = true;
        self
    }

    pub(crate) fn rereads_at_verify(&self) -> bool {
        self.reread_at_verify
    }

    /// Bytes read back so far to hash copies already here (not those hashed as they arrived).
    pub fn bytes_read_back(&self) -> u64 {
        self.read_back.load(Ordering::Relaxed)
    }

    /// The root, canonical.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory that holds `rel` (every step a real directory under the root, created if
    /// `create`), and the file name.
    pub(crate) fn parent_of<'p>(
        &self,
        rel: RelPath<'p>,
        create: bool,
    ) -> Result<Option<(PathBuf, &'p OsStr)>, StoreError> {
        let components: Vec<&[u8]> = rel.components().collect();
        let (name, dirs) = components.split_last().expect("a RelPath is not empty");
        let mut dir = self.root.clone();
        for component in dirs {
            dir.push(OsStr::from_bytes(component));
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(StoreError::Refused {
                        path: shown(rel),
                        why: "a directory on the way is a symlink",
                    })
                }
                // A file where the source now has a directory (the tree changed kind): it goes.
                Ok(_) if create => {
                    fs::remove_file(&dir).map_err(io_error(rel))?;
                    make_dir(&dir, rel)?;
                }
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => make_dir(&dir, rel)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_error(rel)(e)),
            }
        }
        Ok(Some((dir, OsStr::from_bytes(name))))
    }

    /// Starts receiving a file: a temporary file beside the target.
    pub fn begin(&self, header: &FileHeader<'_>) -> Result<Incoming, StoreError> {
        let rel = header.path;
        let (dir, name) = self
            .parent_of(rel, true)?
            .expect("created directories exist");
        let target = dir.join(name);
        // A directory where the source now has a file (the tree changed kind): it goes. A
        // symlink is replaced by the rename into place, never followed.
        if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&target).map_err(io_error(rel))?;
        }
        let tmp = temporary_in(&dir, rel)?;
        Ok(Incoming {
            rel: rel.as_bytes().to_vec(),
            tmp,
            dir,
            target,
            hasher: Some(blake3::Hasher::new()),
            writeback: self.writeback.clone(),
            bytes: 0,
            meta: header.meta,
        })
    }

    /// Starts receiving a delta: a temporary file beside the target holding the copy here, cut
    /// or extended to the new size, for [`Incoming::patch`]. `None` if the copy here is not the
    /// delta's base (absent, another size or hash). Holes of the copy stay holes.
    pub fn begin_delta(&self, header: &DeltaHeader<'_>) -> Result<Option<Incoming>, StoreError> {
        let rel = header.path;
        match self.current(rel, false) {
            Ok(Some((size, hash))) if size == header.base_size && hash == header.base_hash => {}
            Ok(_) | Err(StoreError::Refused { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let (dir, name) = self.parent_of(rel, false)?.expect("the base is there");
        let target = dir.join(name);
        let base = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&target)
            .map_err(io_error(rel))?;
        let tmp = temporary_in(&dir, rel)?;
        copy_data(&base, tmp.as_file(), header.base_size.min(header.size))
            .map_err(io_error(rel))?;
        tmp.as_file().set_len(header.size).map_err(io_error(rel))?;
        Ok(Some(Incoming {
            rel: rel.as_bytes().to_vec(),
            tmp,
            dir,
            target,
            hasher: None,
            writeback: self.writeback.clone(),
            bytes: header.size,
            meta: header.meta,
        }))
    }

    /// Whether `rel` is here with this size and hash; remembered hashes are used while the file's
    /// inode, size and times are unchanged, otherwise it is read again.
    pub fn has(&self, rel: RelPath<'_>, size: u64, hash: &[u8; 32]) -> bool {
        match self.current(rel, false) {
            Ok(Some((s, h))) => s == size && &h == hash,
            _ => false,
        }
    }

    /// Renames the verified file at `from` to `to` (a rename at the source, content unchanged),
    /// durably, keeping what is known of it. Returns whether it did: `from` must be a verified
    /// regular file whose stamp is unchanged, and `to` not a directory.
    pub fn rename_verified(&self, from: RelPath<'_>, to: RelPath<'_>) -> Result<bool, StoreError> {
        let key = from.as_bytes().to_vec();
        let known = self
            .verified
            .lock()
            .expect("no panics while held")
            .get(&key)
            .copied();
        let Some(known) = known else {
            return Ok(false);
        };
        let Some((from_dir, from_name)) = self.parent_of(from, false)? else {
            return Ok(false);
        };
        let source = from_dir.join(from_name);
        // Read again only if its stamp changed since it was verified.
        let unchanged =
            matches!(self.current(from, false), Ok(Some((_, hash))) if hash == known.hash);
        let (to_dir, to_name) = self.parent_of(to, true)?.expect("created on the way");
        let target = to_dir.join(to_name);
        if !unchanged || fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Ok(false);
        }
        fs::rename(&source, &target).map_err(io_error(to))?;
        for dir in [&from_dir, &to_dir] {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(to))?;
        }
        let meta = fs::symlink_metadata(&target).map_err(io_error(to))?;
        let mut verified = self.verified.lock().expect("no panics while held");
        verified.remove(&key);
        verified.insert(
            to.as_bytes().to_vec(),
            Verified {
                stamp: Stamp::of(&meta),
                hash: known.hash,
            },
        );
        Ok(true)
    }

    /// Size and hash of the regular file at `rel`, `None` if absent.
    pub(crate) fn current(
        &self,
        rel: RelPath<'_>,
        reread: bool,
    ) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        let Some((dir, name)) = self.parent_of(rel, false)? else {
            return Ok(None);
        };
        let path = dir.join(name);
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // ELOOP: the last component is a symlink.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(StoreError::Refused {
                    path: shown(rel),
                    why: "the file is a symlink",
                })
            }
            Err(e) => return Err(io_error(rel)(e)),
        };
        let meta = file.metadata().map_err(io_error(rel))?;
        if !meta.is_file() {
            return Ok(None);
        }
        let key = rel.as_bytes().to_vec();
        let stamp = Stamp::of(&meta);
        if !reread {
            let cache = self.verified.lock().expect("no panics while held");
            if let Some(v) = cache.get(&key).filter(|v| v.stamp == stamp) {
                return Ok(Some((stamp.size(), v.hash)));
            }
        }
        let hash = hash_reader(file).map_err(io_error(rel))?;
        self.read_back.fetch_add(stamp.size(), Ordering::Relaxed);
        self.remember(key, Verified { stamp, hash });
        Ok(Some((stamp.size(), hash)))
    }

    /// Only the metadata of the file at `rel` (at `path`) was set here since `before`: a hash
    /// remembered under `before`'s stamp holds under the stamp it has now.
    pub(crate) fn restamp(&self, rel: &[u8], before: &fs::Metadata, path: &Path) {
        let Ok(now) = fs::symlink_metadata(path) else {
            return;
        };
        let mut verified = self.verified.lock().expect("no panics while held");
        if let Some(known) = verified
            .get_mut(rel)
            .filter(|known| known.stamp == Stamp::of(before))
        {
            known.stamp = Stamp::of(&now);
        }
    }

    fn remember(&self, key: Vec<u8>, verified: Verified) {
        self.verified
            .lock()
            .expect("no panics while held")
            .insert(key, verified);
    }
}

fn temporary_in(dir: &Path, rel: RelPath<'_>) -> Result<tempfile::NamedTempFile, StoreError> {
    tempfile::Builder::new()
        .prefix(".")
        .suffix(TMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(io_error(rel))
}

/// Copies the first `len` bytes of `from` into `to` at the same offsets, data extents only (in
/// the kernel, as a reflink where the file system can), so that holes stay holes.
fn copy_data(from: &File, to: &File, len: u64) -> io::Result<()> {
    use rustix::fs::{copy_file_range, seek, SeekFrom};
    let mut at = 0u64;
    while at < len {
        let start = match seek(from, SeekFrom::Data(at)) {
            Ok(start) => start,
            // No data after `at`: the rest is a hole.
            Err(rustix::io::Errno::NXIO) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if start >= len {
            return Ok(());
        }
        let end = seek(from, SeekFrom::Hole(start))?.min(len);
        let (mut read_at, mut write_at) = (start, start);
        while read_at < end {
            let want = (end - read_at) as usize;
            let n = copy_file_range(from, Some(&mut read_at), to, Some(&mut write_at), want)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the base copy shrank while copied",
                ));
            }
        }
        at = end;
    }
    Ok(())
}

/// Makes the directory `dir` on the way to `rel`; another connection may have made it meanwhile.
fn make_dir(dir: &Path, rel: RelPath<'_>) -> Result<(), StoreError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                Err(StoreError::Refused {
                    path: shown(rel),
                    why: "a directory on the way changed under us",
                })
            }
        }
        Err(e) => Err(io_error(rel)(e)),
    }
}

/// A file being received.
#[derive(Debug)]
pub struct Incoming {
    rel: Vec<u8>,
    tmp: tempfile::NamedTempFile,
    dir: PathBuf,
    target: PathBuf,
    /// The hash of the bytes received so far; `None` for a delta, whose result is read again.
    hasher: Option<blake3::Hasher>,
    writeback: Writeback,
    /// Bytes received so far; a delta's new size.
    bytes: u64,
    meta: Meta,
}

impl Incoming {
    fn rel(&self) -> RelPath<'_> {
        RelPath::new(&self.rel).expect("checked when received")
    }

    /// Appends data; blocks of zeros are skipped (left as holes), so a sparse file stays sparse.
    /// Every [`WRITEBACK`] bytes, the kernel is asked to start writing the last stretch to disk
    /// ([`Writeback`]).
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        let Some(hasher) = self.hasher.as_mut() else {
            return Err(self.refused("file data within a delta"));
        };
        hasher.update(data);
        let before = self.bytes;
        self.bytes += data.len() as u64;
        let rel = RelPath::new(&self.rel).expect("checked when received");
        let file = self.tmp.as_file();
        for (at, run) in data_runs(data) {
            file.write_all_at(run, before + at as u64)
                .map_err(io_error(rel))?;
        }
        if before / WRITEBACK != self.bytes / WRITEBACK {
            let from = (self.bytes / WRITEBACK - 1) * WRITEBACK;
            self.writeback
                .start(self.tmp.as_file(), from, NonZeroU64::new(WRITEBACK));
        }
        Ok(())
    }

    /// Whether this is a delta (built on the copy here) rather than a whole file.
    pub fn is_delta(&self) -> bool {
        self.hasher.is_none()
    }

    /// Writes a delta's bytes at `offset`; blocks of zeros become holes.
    pub fn patch(&mut self, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        if self.hasher.is_some() {
            return Err(self.refused("a patch within a whole file"));
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > self.bytes {
            return Err(self.refused("a patch past the delta's size"));
        }
        let rel = RelPath::new(&self.rel).expect("checked when received");
        let file = self.tmp.as_file();
        let mut done = 0;
        for (at, run) in data_runs(data) {
            punch_hole(file, offset + done as u64, (at - done) as u64).map_err(io_error(rel))?;
            file.write_all_at(run, offset + at as u64)
                .map_err(io_error(rel))?;
            done = at + run.len();
        }
        punch_hole(file, offset + done as u64, (data.len() - done) as u64).map_err(io_error(rel))
    }

    fn refused(&self, what: &str) -> StoreError {
        StoreError::Integrity {
            path: shown(self.rel()),
            why: format!("{what}: out of order"),
        }
    }

    /// Seals and commits this file alone.
    #[cfg(test)]
    pub fn finish(self, store: &Store, size: u64, hash: &[u8; 32]) -> Result<(), StoreError> {
        let sealed = self.seal(size, hash)?;
        store.commit(vec![sealed])
    }

    /// Checks size and hash, sets owner, mode and mtime, and closes the temporary file: it waits
    /// for [`Store::commit`]. An owner that cannot be set (the receiver is not root) is left as
    /// it is: the stop-time check reports it.
    pub fn seal(mut self, size: u64, hash: &[u8; 32]) -> Result<Sealed, StoreError> {
        // A delta's file may have shrunk while the sender read it: the end says where it ends.
        if self.is_delta() && size < self.bytes {
            self.bytes = size;
        }
        let rel = self.rel();
        if self.bytes != size {
            return Err(StoreError::Integrity {
                path: shown(rel),
                why: format!("received {} bytes, the sender says {size}", self.bytes),
            });
        }
        let received = match &self.hasher {
            Some(hasher) => hasher.finalize(),
            None => {
                let mut file = self.tmp.reopen().map_err(io_error(rel))?;
                file.seek(io::SeekFrom::Start(0)).map_err(io_error(rel))?;
                blake3::Hash::from_bytes(hash_reader(file).map_err(io_error(rel))?)
            }
        };
        if received != blake3::Hash::from_bytes(*hash) {
            return Err(StoreError::Integrity {
                path: shown(rel),
                why: "BLAKE3 hash differs from the sender's".into(),
            });
        }
        let file = self.tmp.as_file();
        // Holes at the end are not written: the length says where the file ends.
        file.set_len(self.bytes).map_err(io_error(rel))?;
        let _ = rustix::fs::fchown(
            file,
            Some(rustix::fs::Uid::from_raw(self.meta.uid)),
            Some(rustix::fs::Gid::from_raw(self.meta.gid)),
        );
        // After the owner: chown clears the setuid and setgid bits.
        file.set_permissions(fs::Permissions::from_mode(self.meta.mode))
            .map_err(io_error(rel))?;
        file.set_modified(mtime_of(self.meta.mtime_s, self.meta.mtime_ns))
            .map_err(io_error(rel))?;
        self.writeback
            .start(file, self.bytes / WRITEBACK * WRITEBACK, None);
        let meta = file.metadata().map_err(io_error(rel))?;
        let verified = Verified {
            stamp: Stamp::of(&meta),
            hash: *hash,
        };
        Ok(Sealed {
            rel: self.rel,
            tmp: self.tmp.into_temp_path(),
            dir: self.dir,
            target: self.target,
            verified,
        })
    }
}

/// A received file, checked and closed, waiting in its temporary file to be committed (dropped,
/// the temporary file is removed).
#[derive(Debug)]
pub struct Sealed {
    rel: Vec<u8>,
    tmp: tempfile::TempPath,
    dir: PathBuf,
    target: PathBuf,
    verified: Verified,
}

impl Sealed {
    /// Its path under the root.
    pub fn rel(&self) -> &[u8] {
        &self.rel
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.verified.stamp.size()
    }
}

impl Store {
    /// Makes a batch of sealed files durable and visible: `syncfs` once per file system (their
    /// data), each renamed into place, then `fsync` once per directory (the names). When this
    /// returns, every file of the batch may be acknowledged. On an error the files not yet
    /// renamed are removed.
    pub fn commit(&self, batch: Vec<Sealed>) -> Result<(), StoreError> {
        let mut devices = BTreeSet::new();
        for sealed in &batch {
            if devices.insert(sealed.verified.stamp.dev()) {
                let rel = RelPath::new(&sealed.rel).expect("checked when received");
                File::open(&sealed.dir)
                    .and_then(|dir| rustix::fs::syncfs(&dir).map_err(io::Error::from))
                    .map_err(io_error(rel))?;
            }
        }
        let mut dirs = BTreeSet::new();
        let mut done = Vec::with_capacity(batch.len());
        for sealed in batch {
            let rel = RelPath::new(&sealed.rel).expect("checked when received");
            match sealed.tmp.persist(&sealed.target) {
                Ok(_) => {}
                // A later file of this batch made the target, or a directory on its way, a
                // directory: this one is superseded (the stop-time check settles the path).
                Err(e) if superseded(&e.error) => continue,
                Err(e) => return Err(io_error(rel)(e.error)),
            }
            // The rename changed the ctime (on ext4, XFS…): remember the stamp it has now, or
            // the next look at it would read it again.
            let mut verified = sealed.verified;
            if let Ok(meta) = fs::symlink_metadata(&sealed.target) {
                verified.stamp = Stamp::of(&meta);
            }
            dirs.insert(sealed.dir);
            done.push((sealed.rel, verified));
        }
        for dir in &dirs {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| StoreError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
        }
        for (key, verified) in done {
            self.remember(key, verified);
        }
        Ok(())
    }
}

/// Asks the kernel to start writing `len` bytes from `from` (to the end if `None`) to disk, so
/// that the flush at commit finds little left to do while the next files are received.
/// POSIX_FADV_DONTNEED starts writeback of the dirty pages in the range and drops only the clean
/// ones (pages still dirty or being written stay cached). A hint: errors do not matter.
fn start_writeback(file: &File, from: u64, len: Option<NonZeroU64>) {
    let _ = rustix::fs::fadvise(file, from, len, rustix::fs::Advice::DontNeed);
}

/// A range of a file to start writing back.
type WritebackRequest = (File, u64, Option<NonZeroU64>);

/// Starts writeback ([`start_writeback`]) on a helper thread: submitting the I/O (the file
/// system's and the block layer's work) then runs beside the receiving thread instead of in it.
/// Inline when the helper is behind, so that no more than a few descriptors wait.
#[derive(Debug, Clone)]
struct Writeback(mpsc::SyncSender<WritebackRequest>);

impl Writeback {
    fn spawn() -> Writeback {
        let (tx, rx) = mpsc::sync_channel::<WritebackRequest>(64);
        // Ends when the store and every file being received are gone.
        std::thread::spawn(move || {
            for (file, from, len) in rx {
                start_writeback(&file, from, len);
            }
        });
        Writeback(tx)
    }

    fn start(&self, file: &File, from: u64, len: Option<NonZeroU64>) {
        let queued = file
            .try_clone()
            .is_ok_and(|dup| self.0.try_send((dup, from, len)).is_ok());
        if !queued {
            start_writeback(file, from, len);
        }
    }
}

/// The rename into place failed because the path changed kind meanwhile.
fn superseded(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == rustix::io::Errno::ISDIR.raw_os_error()
            || code == rustix::io::Errno::NOTDIR.raw_os_error()
    )
}

/// Makes `len` bytes at `offset` read as zeros: a hole, or written zeros on a file system that
/// cannot punch one.
fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    use std::os::unix::fs::FileExt;
    if len == 0 {
        return Ok(());
    }
    let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
    match fallocate(file, flags, offset, len) {
        Err(rustix::io::Errno::OPNOTSUPP) => {
            let zeros = [0u8; HOLE_BLOCK];
            let mut at = 0;
            while at < len {
                let n = (len - at).min(HOLE_BLOCK as u64) as usize;
                file.write_all_at(&zeros[..n], offset + at)?;
                at += n as u64;
            }
            Ok(())
        }
        result => result.map_err(io::Error::from),
    }
}

/// Bytes per block checked for zeros: a file system's block, the smallest hole it can keep.
const HOLE_BLOCK: usize = 4096;

/// The runs of `data` that are not whole blocks of zeros, as (offset, bytes).
fn data_runs(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let is_hole = |block: &[u8]| block.len() == HOLE_BLOCK && block.iter().all(|&b| b == 0);
        while at < data.len() && is_hole(&data[at..(at + HOLE_BLOCK).min(data.len())]) {
            at += HOLE_BLOCK;
        }
        if at >= data.len() {
            return None;
        }
        let start = at;
        while at < data.len() && !is_hole(&data[at..(at + HOLE_BLOCK).min(data.len())]) {
            at = (at + HOLE_BLOCK).min(data.len());
        }
        Some((start, &data[start..at]))
    })
}

pub(crate) fn mtime_of(seconds: i64, nanos: u32) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(nanos));
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64) + nanos
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()) + nanos
    }
}

/// BLAKE3 of everything `reader` yields.
pub fn hash_reader(mut reader: impl Read) -> io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(*hasher.finalize().as_bytes()),
            Ok(n) => {
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Deletes `.*.precopy-tmp` files under `dir`, never following symlinks.
fn remove_stale_temporaries(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let name = entry.file_name();
        if kind.is_dir() {
            remove_stale_temporaries(&entry.path())?;
        } else if kind.is_file()
            && name.as_bytes().starts_with(b".")
            && name.as_bytes().ends_with(TMP_SUFFIX.as_bytes())
        {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn header(path: &[u8]) -> FileHeader<'_> {
        FileHeader {
            id: 1,
            path: RelPath::new(path).unwrap(),
            meta: Meta {
                mode: 0o2640,
                uid: rustix::process::geteuid().as_raw(),
                gid: rustix::process::getegid().as_raw(),
                mtime_s: 1_700_000_000,
                mtime_ns: 5,
            },
            size: 5,
        }
    }

    fn store_file(store: &Store, path: &[u8], data: &[u8]) -> Result<(), StoreError> {
        let mut incoming = store.begin(&header(path))?;
        incoming.write(data)?;
        let hash = *blake3::hash(data).as_bytes();
        incoming.finish(store, data.len() as u64, &hash)
    }

    fn delta_header<'a>(path: &'a [u8], size: u64, base: &[u8]) -> DeltaHeader<'a> {
        DeltaHeader {
            id: 2,
            path: RelPath::new(path).unwrap(),
            meta: header(path).meta,
            size,
            base_size: base.len() as u64,
            base_hash: *blake3::hash(base).as_bytes(),
        }
    }

    /// Applies `patches` to the copy of `base` at `path`, sealed with `new`'s hash.
    fn store_delta(
        store: &Store,
        path: &[u8],
        base: &[u8],
        new: &[u8],
        patches: &[(u64, &[u8])],
    ) -> Result<Option<()>, StoreError> {
        let Some(mut incoming) = store.begin_delta(&delta_header(path, new.len() as u64, base))?
        else {
            return Ok(None);
        };
        for &(offset, data) in patches {
            incoming.patch(offset, data)?;
        }
        let sealed = incoming.seal(new.len() as u64, blake3::hash(new).as_bytes())?;
        store.commit(vec![sealed]).map(Some)
    }

    #[test]
    fn a_delta_builds_the_new_version_from_the_copy_here() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let base: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        store_file(&store, b"f", &base).unwrap();
        // Grown with a hole in the middle, one run overwritten, and cut: each as a patch.
        let mut new = base.clone();
        new[100..200].fill(9);
        new.resize(100_000, 0);
        new[90_000..90_010].fill(3);
        let patches: [(u64, &[u8]); 2] = [(100, &new[100..200]), (90_000, &new[90_000..90_010])];
        store_delta(&store, b"f", &base, &new, &patches)
            .unwrap()
            .unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), new);
        let cut = &new[..5000];
        store_delta(&store, b"f", &new, cut, &[]).unwrap().unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), cut);
        // Zeros written over data read as zeros.
        let mut zeroed = cut.to_vec();
        zeroed[..4096].fill(0);
        store_delta(&store, b"f", cut, &zeroed, &[(0, &zeroed[..4096])])
            .unwrap()
            .unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), zeroed);
    }

    #[test]
    fn a_delta_on_another_base_or_with_a_wrong_result_replaces_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let base = vec![5u8; 20_000];
        store_file(&store, b"f", &base).unwrap();
        let mut new = base.clone();
        new[0] = 6;
        // The copy here is not the base the sender names.
        let other = vec![4u8; 20_000];
        assert!(store_delta(&store, b"f", &other, &new, &[(0, &new[..1])])
            .unwrap()
            .is_none());
        assert!(store_delta(&store, b"absent", &base, &new, &[])
            .unwrap()
            .is_none());
        // The base matches but the patches do not make the announced file (as when the copy
        // changed behind the receiver's back after it was checked): refused at the seal.
        let wrong = store_delta(&store, b"f", &base, &new, &[(0, &[7])]);
        assert!(
            matches!(wrong, Err(StoreError::Integrity { .. })),
            "{wrong:?}"
        );
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), base);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
        // A patch past the new size is refused.
        let mut incoming = store
            .begin_delta(&delta_header(b"f", 10, &base))
            .unwrap()
            .unwrap();
        assert!(incoming.patch(8, &[1, 2, 3]).is_err());
    }

    #[test]
    fn files_land_atomically_with_mode_and_mtime() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        store_file(&store, b"var/app/db", b"hello").unwrap();
        let path = root.path().join("var/app/db");
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o2640);
        assert_eq!(meta.mtime(), 1_700_000_000);
        assert!(store.has(
            RelPath::new(b"var/app/db").unwrap(),
            5,
            blake3::hash(b"hello").as_bytes()
        ));
        // Nothing but the file in its directory: no temporary left.
        assert_eq!(
            fs::read_dir(root.path().join("var/app")).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_bad_hash_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let mut incoming = store.begin(&header(b"a/f")).unwrap();
        incoming.write(b"hello").unwrap();
        let err = incoming.finish(&store, 5, &[0; 32]).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Integrity);
        assert_eq!(fs::read_dir(root.path().join("a")).unwrap().count(), 0);
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        let store = Store::open(root.path()).unwrap();
        let err = store_file(&store, b"escape/evil", b"x").unwrap_err();
        assert_eq!(err.code(), ErrorCode::Path);
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        // A symlink as the file itself is replaced, never written through.
        let victim = outside.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, root.path().join("link")).unwrap();
        assert!(matches!(
            store.current(RelPath::new(b"link").unwrap(), true),
            Err(StoreError::Refused { .. })
        ));
        store_file(&store, b"link", b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(!fs::symlink_metadata(root.path().join("link"))
            .unwrap()
            .is_symlink());
    }

    #[test]
    fn a_verified_file_is_renamed_with_what_is_known_of_it() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        store_file(&store, b"wal/1", b"hello").unwrap();
        let (from, to) = (
            RelPath::new(b"wal/1").unwrap(),
            RelPath::new(b"wal/9").unwrap(),
        );
        assert!(store.rename_verified(from, to).unwrap());
        assert!(!root.path().join("wal/1").exists());
        assert!(store.has(to, 5, blake3::hash(b"hello").as_bytes()));
        // Not verified (any more): nothing happens.
        assert!(!store.rename_verified(from, to).unwrap());
        fs::write(root.path().join("wal/9"), b"HELLO").unwrap();
        let back = RelPath::new(b"wal/2").unwrap();
        assert!(
            !store.rename_verified(to, back).unwrap(),
            "changed behind its back"
        );
    }

    #[test]
    fn zero_blocks_become_holes() {
        use std::os::unix::fs::MetadataExt;
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let mut data = vec![0u8; 1 << 20];
        data[5] = 1;
        data[700_000] = 2;
        let mut incoming = store.begin(&header(b"sparse")).unwrap();
        for piece in data.chunks(256 * 1024) {
            incoming.write(piece).unwrap();
        }
        let hash = *blake3::hash(&data).as_bytes();
        incoming.finish(&store, data.len() as u64, &hash).unwrap();
        let path = root.path().join("sparse");
        assert_eq!(fs::read(&path).unwrap(), data);
        // Two 4 KiB blocks hold data; st_blocks counts 512-byte units.
        assert!(fs::metadata(&path).unwrap().blocks() * 512 <= 64 * 1024);
        let runs: Vec<(usize, usize)> = data_runs(&data).map(|(at, r)| (at, r.len())).collect();
        assert_eq!(runs, [(0, 4096), (696_320, 4096)]);
    }

    #[test]
    fn stale_temporaries_are_removed_at_start() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("d")).unwrap();
        fs::write(root.path().join("d/.x.abc.precopy-tmp"), b"partial").unwrap();
        fs::write(root.path().join("d/kept"), b"k").unwrap();
        Store::open(root.path()).unwrap();
        assert_eq!(fs::read_dir(root.path().join("d")).unwrap().count(), 1);
    }
}
