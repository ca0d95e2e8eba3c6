//! Where the sender learns about writes: a [`Monitor`] reports, per file, how many writes it saw.
//!
//! The policy only ever sees per-period counts (SPEC §5), so any source of write events fits:
//! [`FanotifyMonitor`] (the default) counts the kernel's file-change events, without stopping the
//! application, one per window of writes (`precopy_trace::notify`, the `trace` command's write
//! monitor; it needs root); [`PollingMonitor`] stats the files and counts a change of their
//! [`Stamp`] (size, times, inode, device) as one write (no privileges, at most one write per file per poll).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use precopy_core::workload::WriteClock;

use super::stamp::Stamp;

/// A source of write counts for the files it is told to watch, by id.
pub trait Monitor {
    /// Watches the file now at `path` as `file` (again, if a new file took that path).
    fn watch(&mut self, file: usize, path: &Path);
    /// Adds the writes seen since the last call to `counts` (one entry per file id).
    fn poll(&mut self, counts: &mut [u32]) -> io::Result<()>;
    /// Writes to one file since it was last looked at, just before its transfer starts (so a
    /// write that came before the transfer does not make the new copy look stale).
    fn poll_file(&mut self, file: usize) -> io::Result<u32>;
    /// Every file's future writes, by the ids given to [`Monitor::watch`]: known only to a
    /// monitor that replays a workload, for the clairvoyant reference to plan with.
    fn foresight(&self) -> Option<&WriteClock> {
        None
    }
}

/// Counts changes of `stat` between polls.
#[derive(Debug, Default)]
pub struct PollingMonitor {
    paths: Vec<PathBuf>,
    seen: Vec<Option<Stamp>>,
}

/// Counts fanotify `FAN_MODIFY` events per file: a write is seen even when `stat` would not
/// change, and the application never stops for it. Writers outside the application count too
/// (their writes make the copy stale all the same).
#[derive(Debug)]
pub struct FanotifyMonitor {
    by_path: HashMap<String, usize>,
    /// Events read but not yet handed out, per file.
    pending: Vec<u32>,
    notify: precopy_trace::notify::Monitor,
}

impl FanotifyMonitor {
    /// Starts the fanotify group; `window` as in `trace --window`.
    pub fn new(window: Duration) -> io::Result<FanotifyMonitor> {
        let filter = precopy_trace::paths::PathFilter::default();
        let notify = precopy_trace::notify::Monitor::start(Instant::now(), window, filter)
            .map_err(io::Error::other)?;
        Ok(FanotifyMonitor {
            by_path: HashMap::new(),
            pending: Vec::new(),
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
    fn watch(&mut self, file: usize, path: &Path) {
        // Events name the path the file has when they are read (renames are followed).
        let path = path.to_string_lossy().into_owned();
        self.notify.marks().add(&path, &path);
        self.by_path.insert(path, file);
        if self.pending.len() <= file {
            self.pending.resize(file + 1, 0);
        }
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
        Ok(self.pending.get_mut(file).map_or(0, std::mem::take))
    }
}

impl Monitor for PollingMonitor {
    fn watch(&mut self, file: usize, path: &Path) {
        if self.paths.len() <= file {
            self.paths.resize(file + 1, PathBuf::new());
            self.seen.resize(file + 1, None);
        }
        self.paths[file] = path.to_path_buf();
        self.seen[file] = Stamp::of_path(path).ok();
    }

    fn poll(&mut self, counts: &mut [u32]) -> io::Result<()> {
        for (id, count) in counts.iter_mut().enumerate().take(self.paths.len()) {
            *count += self.poll_file(id)?;
        }
        Ok(())
    }

    fn poll_file(&mut self, file: usize) -> io::Result<u32> {
        let Some(path) = self.paths.get(file) else {
            return Ok(0);
        };
        let now = Stamp::of_path(path).ok();
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
        let mut monitor = PollingMonitor::default();
        monitor.watch(0, &path);
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
