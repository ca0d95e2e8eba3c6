//! Where the sender learns about writes: a [`Monitor`] reports, per file, how many writes it saw.
//!
//! The policy only ever sees per-period counts (SPEC §5), so any source of write events fits:
//! [`PollingMonitor`] stats the files and counts a change of size, mtime, ctime or inode as one
//! write (it needs no privileges but sees at most one write per file per poll); the ptrace tracer
//! (`precopy-trace`, `migrate-native trace`) plugs in here as another implementation that counts
//! every write-family system call.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use precopy_core::Kind;

/// One file to migrate.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchedFile {
    /// Absolute path at the source.
    pub path: PathBuf,
    /// The path on the wire (relative, see `precopy_proto::path`).
    pub rel: Vec<u8>,
    /// ReadOnly or ReadWrite, from the identification step.
    pub kind: Kind,
    /// Size when the migration started.
    pub size: u64,
}

/// A source of write counts.
pub trait Monitor {
    /// The files, sorted by path (the baseline's fixed order), indexed as in every other call.
    fn files(&self) -> &[WatchedFile];
    /// Adds the writes seen since the last call to `counts` (one entry per file).
    fn poll(&mut self, counts: &mut [u32]) -> io::Result<()>;
    /// Writes to one file since it was last looked at, just before its transfer starts (so a
    /// write that came before the transfer does not make the new copy look stale).
    fn poll_file(&mut self, file: usize) -> io::Result<u32>;
}

/// What `stat` says about a file that a write would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    size: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn signature(path: &std::path::Path) -> Option<Signature> {
    let m = std::fs::metadata(path).ok()?;
    Some(Signature {
        size: m.len(),
        ino: m.ino(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

/// Counts changes of `stat` between polls.
#[derive(Debug)]
pub struct PollingMonitor {
    files: Vec<WatchedFile>,
    seen: Vec<Option<Signature>>,
}

impl PollingMonitor {
    /// Watches `files` (sorted here by path).
    pub fn new(mut files: Vec<WatchedFile>) -> PollingMonitor {
        files.sort_by(|a, b| a.rel.cmp(&b.rel));
        files.dedup_by(|a, b| a.rel == b.rel);
        let seen = files.iter().map(|f| signature(&f.path)).collect();
        PollingMonitor { files, seen }
    }
}

impl Monitor for PollingMonitor {
    fn files(&self) -> &[WatchedFile] {
        &self.files
    }

    fn poll(&mut self, counts: &mut [u32]) -> io::Result<()> {
        for (id, count) in counts.iter_mut().enumerate() {
            *count += self.poll_file(id)?;
        }
        Ok(())
    }

    fn poll_file(&mut self, file: usize) -> io::Result<u32> {
        let now = signature(&self.files[file].path);
        let changed = now != self.seen[file];
        self.seen[file] = now;
        Ok(u32::from(changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_counts_once_per_look() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"a").unwrap();
        let file = WatchedFile {
            path: path.clone(),
            rel: b"f".to_vec(),
            kind: Kind::ReadWrite,
            size: 1,
        };
        let mut monitor = PollingMonitor::new(vec![file]);
        let mut counts = [0];
        monitor.poll(&mut counts).unwrap();
        assert_eq!(counts, [0]);
        std::fs::write(&path, b"bb").unwrap();
        assert_eq!(monitor.poll_file(0).unwrap(), 1);
        monitor.poll(&mut counts).unwrap();
        assert_eq!(counts, [0], "already seen by poll_file");
        std::fs::write(&path, b"ccc").unwrap();
        monitor.poll(&mut counts).unwrap();
        assert_eq!(counts, [1]);
    }
}
