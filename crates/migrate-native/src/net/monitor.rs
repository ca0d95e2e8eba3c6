//! Where the sender learns about writes: a [`Monitor`] reports, per file, how many writes it saw.
//!
//! The policy only ever sees per-period counts (SPEC §5), so any source of write events fits:
//! [`FanotifyMonitor`] (the default) counts the kernel's file-change events, without stopping the
//! application, one per window of writes (`precopy_trace::notify`, the `trace` command's write
//! monitor; it needs root); [`PollingMonitor`] stats the files and counts a change of their
//! [`Stamp`] (size, times, inode, device) as one write (no privileges, at most one write per file per poll).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use precopy_core::Kind;

use super::stamp::Stamp;

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

/// Counts changes of `stat` between polls.
#[derive(Debug)]
pub struct PollingMonitor {
    files: Vec<WatchedFile>,
    seen: Vec<Option<Stamp>>,
}

/// Files in the order every monitor reports them: by wire path, once each.
fn in_path_order(mut files: Vec<WatchedFile>) -> Vec<WatchedFile> {
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files.dedup_by(|a, b| a.rel == b.rel);
    files
}

impl PollingMonitor {
    /// Watches `files` (sorted here by path).
    pub fn new(files: Vec<WatchedFile>) -> PollingMonitor {
        let files = in_path_order(files);
        let seen = files.iter().map(|f| Stamp::of_path(&f.path).ok()).collect();
        PollingMonitor { files, seen }
    }
}

/// Counts fanotify `FAN_MODIFY` events per file: a write is seen even when `stat` would not
/// change, and the application never stops for it. Writers outside the application count too
/// (their writes make the copy stale all the same).
#[derive(Debug)]
pub struct FanotifyMonitor {
    files: Vec<WatchedFile>,
    by_path: HashMap<String, usize>,
    /// Events read but not yet handed out, per file.
    pending: Vec<u32>,
    notify: precopy_trace::notify::Monitor,
}

impl FanotifyMonitor {
    /// Marks `files` (sorted here by path); `window` as in `trace --window`.
    pub fn new(files: Vec<WatchedFile>, window: Duration) -> io::Result<FanotifyMonitor> {
        let files = in_path_order(files);
        let filter = precopy_trace::paths::PathFilter::default();
        let notify = precopy_trace::notify::Monitor::start(Instant::now(), window, filter)
            .map_err(io::Error::other)?;
        let marks = notify.marks();
        let mut by_path = HashMap::new();
        for (id, file) in files.iter().enumerate() {
            let path = file.path.to_string_lossy().into_owned();
            marks.add(&path, &path);
            by_path.insert(path, id);
        }
        Ok(FanotifyMonitor {
            pending: vec![0; files.len()],
            files,
            by_path,
            notify,
        })
    }

    fn drain(&mut self) {
        for event in self.notify.take() {
            if let Some(&id) = self.by_path.get(&event.path) {
                self.pending[id] += 1;
            }
        }
    }
}

impl Monitor for FanotifyMonitor {
    fn files(&self) -> &[WatchedFile] {
        &self.files
    }

    fn poll(&mut self, counts: &mut [u32]) -> io::Result<()> {
        self.drain();
        for (count, pending) in counts.iter_mut().zip(&mut self.pending) {
            *count += std::mem::take(pending);
        }
        Ok(())
    }

    fn poll_file(&mut self, file: usize) -> io::Result<u32> {
        self.drain();
        Ok(std::mem::take(&mut self.pending[file]))
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
        let now = Stamp::of_path(&self.files[file].path).ok();
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
