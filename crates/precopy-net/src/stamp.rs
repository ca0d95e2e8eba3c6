//! A file's stamp: what `stat` says that a write would change (device, inode, size, mtime, ctime).
//!
//! The polling monitor counts a changed stamp as a write, the receiver keeps a stamp with each
//! hash it verified, and the sender keeps one with each file it sent, so that the manifest hashed
//! while the application is stopped reads only the files whose stamps changed since they were
//! sent. For that a stamp must *vouch* for the content read after it was taken: any later write
//! must change it. [`Stamp::before_read`] gives a stamp only when that holds:
//!
//! - A `write` sets ctime to the kernel's clock, which lags the real time by less than a tick
//!   (seconds on ext4's small inodes and some other file systems). So a file whose ctime is at
//!   least [`RACY`] older than the moment just before the stamp was taken gets a strictly later
//!   ctime from any later write. A younger one might not (the same tick): no stamp.
//! - A store through a shared mapping sets mtime and ctime only when it faults on a
//!   write-protected page, and a page stays writable from its first store until it is written
//!   back. So the file's dirty pages are written back (which write-protects them) before the
//!   stamp: every later store faults. This holds on the file systems whose `page_mkwrite` updates
//!   the times ([`VOUCHING_FILE_SYSTEMS`]); on others (tmpfs never updates them for stores through
//!   a mapping) there is no stamp, and the file is read again.
//!
//! It assumes the real-time clock does not step back meanwhile.

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

/// How much older than the stamp a file's ctime must be for the stamp to vouch for it: above any
/// file system's timestamp granularity (kernel ticks are ≤ 10 ms, ext4's 128-byte inodes count
/// whole seconds).
pub const RACY: Duration = Duration::from_secs(1);

/// `statfs` magic numbers of the file systems that update mtime and ctime on the first store to
/// a write-protected mapped page: ext2/3/4, XFS, Btrfs, F2FS.
const VOUCHING_FILE_SYSTEMS: [u32; 4] = [0xef53, 0x5846_5342, 0x9123_683e, 0xf2f5_2010];

/// What `stat` says about a file that a write would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp of these metadata.
    pub fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The stamp of the file at `path` now (symlinks followed).
    pub fn of_path(path: &std::path::Path) -> io::Result<Stamp> {
        std::fs::metadata(path).map(|m| Stamp::of(&m))
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file system's device.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// The file's device and inode.
    pub fn inode(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// Whether `other` is the same inode with the same size and mtime: the file was renamed
    /// (which changes its ctime), not written.
    pub fn same_content_moved(&self, other: &Stamp) -> bool {
        (self.dev, self.ino, self.size, self.mtime)
            == (other.dev, other.ino, other.size, other.mtime)
    }

    /// For a file about to be read and hashed: its metadata, and its stamp if that vouches for
    /// what is read next (module docs): while the file's stamp stays equal to it, the content is
    /// unchanged.
    pub fn before_read(file: &File) -> io::Result<(Metadata, Option<Stamp>)> {
        let now = SystemTime::now();
        let vouches = updates_times_on_mapped_stores(file) && write_protect(file).is_ok();
        let meta = file.metadata()?;
        let stamp = Stamp::of(&meta);
        let old_enough = ctime_of(&stamp).is_some_and(|ctime| ctime + RACY <= now);
        Ok((meta, (vouches && old_enough).then_some(stamp)))
    }
}

fn ctime_of(stamp: &Stamp) -> Option<SystemTime> {
    let (seconds, nanos) = stamp.ctime;
    let seconds = u64::try_from(seconds).ok()?;
    let nanos = u64::try_from(nanos).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_nanos(nanos))
}

fn updates_times_on_mapped_stores(file: &File) -> bool {
    rustix::fs::fstatfs(file).is_ok_and(|fs| VOUCHING_FILE_SYSTEMS.contains(&(fs.f_type as u32)))
}

/// Writes back the file's dirty pages and waits (pages being written back are waited for first,
/// or they would be skipped while still writable). Clean pages cost nothing, and nothing is
/// flushed to the disk's cache: only the page tables matter here.
fn write_protect(file: &File) -> io::Result<()> {
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is open for the
    // duration of the call (borrowed from `file`). Length 0 means "to the end of the file".
    #[allow(unsafe_code)]
    let result = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, flags) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_young_file_gets_no_stamp_and_an_old_one_does_where_stores_update_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"data").unwrap();
        let file = File::open(&path).unwrap();
        let (meta, stamp) = Stamp::before_read(&file).unwrap();
        assert_eq!(meta.len(), 4);
        assert_eq!(stamp, None, "written just now: within RACY of the stamp");
        std::thread::sleep(RACY + Duration::from_millis(50));
        let (meta, stamp) = Stamp::before_read(&file).unwrap();
        let expected = updates_times_on_mapped_stores(&file).then(|| Stamp::of(&meta));
        assert_eq!(stamp, expected);
    }
}
