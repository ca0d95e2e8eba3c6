//! Collecting file events into the trace (JSON Lines) and the manifest.
//!
//! A file's kind is only final when tracing ends (a file first opened for reading may be
//! written later), so the whole trace is kept in memory and emitted at the end: header, every
//! file record (dense ids in first-seen order), then the open, write, create, unlink, rename and
//! size records in time order, then `end`. The caller writes it atomically.
//!
//! Sizes are samples: the caller tells the size of the path an event leaves changed
//! ([`Recording::sized`]) when it handles the event, and a `size` record is kept when it differs
//! from the last known one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use precopy_core::dataset::Kind;
use precopy_core::trace::{Record, WriteOp};
use serde::{Deserialize, Serialize};

use crate::decode::FileEvent;
use crate::sharing::SharingProcess;

#[derive(Debug, Clone)]
struct FileState {
    path: String,
    written: bool,
    mmap_shared: bool,
    first_s: f64,
    last_s: f64,
    /// No file was at the path when tracing began.
    new: bool,
    /// The size when first seen (the file record's).
    first_size: Option<u64>,
    /// What is at the path now, as far as the trace says.
    now: AtPath,
}

/// What the recording knows is at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtPath {
    /// A file whose size is not known yet.
    Unsized,
    /// A file of this size.
    Sized(u64),
    /// Nothing: it was unlinked or renamed away.
    Nothing,
}

/// The events recorded so far, by file.
#[derive(Debug, Default)]
pub struct Recording {
    files: Vec<FileState>,
    ids: HashMap<String, u32>,
    /// Open and write records, in the order they were pushed (the write monitor's events may
    /// come a little late: they are sorted by time on output).
    events: Vec<Record>,
}

/// Where a manifest entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Used by the traced application.
    Traced,
    /// Open in a process sharing the application's files (`--follow-sharing`).
    Sharing,
}

/// Write activity of a file in one monitoring period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodWrites {
    /// Period index: the period covers `[index × period_s, (index + 1) × period_s)`.
    pub period: u64,
    /// Update calls (writes, truncates, fallocates, renames, unlinks). With the fanotify
    /// monitor, each write record is a window with writes, not a call.
    pub calls: u64,
    /// Bytes written by write-family calls (0 with the fanotify monitor: it sees no lengths).
    pub bytes: u64,
    /// Of `calls`, those made by processes outside the traced tree (only the fanotify monitor
    /// sees them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub others: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Absolute path.
    pub path: String,
    /// Size when tracing ended (0 if the file no longer exists).
    pub size: u64,
    /// Whether the file existed when tracing ended.
    pub exists: bool,
    /// ReadOnly or ReadWrite.
    pub kind: Kind,
    /// Mapped shared and writable: write counts miss writes through the mapping.
    pub mmap_shared: bool,
    /// Traced or found through sharing.
    pub origin: Origin,
    /// First access, seconds since tracing began.
    pub first_access_s: Option<f64>,
    /// Last access, seconds since tracing began.
    pub last_access_s: Option<f64>,
    /// Update calls in total (write records: windows with writes for the fanotify monitor).
    pub write_calls: u64,
    /// Bytes written in total.
    pub bytes_written: u64,
    /// Per-period activity (periods without updates are left out).
    pub periods: Vec<PeriodWrites>,
    /// Processes outside the traced tree that wrote the file (fanotify monitor only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_writers: Vec<u32>,
}

/// Everything `migrate-native trace` learnt, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The traced command, if spawned.
    pub command: Vec<String>,
    /// The traced process, if attached.
    pub pid: Option<u32>,
    /// Monitoring period, seconds.
    pub period_s: f64,
    /// How long tracing lasted, seconds.
    pub duration_s: f64,
    /// Every process of the traced tree.
    pub processes: Vec<i32>,
    /// How writes were observed: `ptrace` (every call) or `fanotify` (windows with writes).
    #[serde(default)]
    pub write_monitor: String,
    /// The fanotify window, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_s: Option<f64>,
    /// How files were identified: `ptrace` (stops on opens) or `cgroup` (stop-free).
    #[serde(default)]
    pub identified_with: String,
    /// Stop-free mode: file events of processes outside the application's cgroup, dropped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub outside_events: u64,
    /// Stop-free mode: times the kernel dropped fork notices (a process forked and gone
    /// meanwhile may be missing).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub forks_lost: u64,
    /// The files, traced ones first in first-seen order (trace ids), then shared ones by path.
    pub files: Vec<ManifestFile>,
    /// Other processes using the files.
    pub sharing: Vec<SharingProcess>,
}

/// What describes a finished recording beyond its events.
#[derive(Debug, Clone)]
pub struct RecordingInfo {
    /// Monitoring period, seconds.
    pub period_s: f64,
    /// The traced command, if spawned.
    pub command: Vec<String>,
    /// The traced process, if attached.
    pub pid: Option<u32>,
    /// How long tracing lasted, seconds.
    pub duration_s: f64,
}

impl Recording {
    /// Records an event that happened `t` seconds after tracing began.
    pub fn push(&mut self, t: f64, event: FileEvent) {
        match event {
            FileEvent::Opened { pid, path, write } => {
                let id = self.touch(&path, t);
                self.files[id as usize].written |= write;
                self.events.push(Record::Open { t, id, pid, write });
            }
            FileEvent::Created { pid, path } => {
                let id = self.touch_new(&path, t, true);
                let file = &mut self.files[id as usize];
                file.written = true;
                file.now = AtPath::Sized(0);
                let pid = Some(pid);
                self.events.push(Record::Create { t, id, pid });
            }
            FileEvent::Unlinked { pid, path } => {
                let id = self.touch(&path, t);
                self.files[id as usize].now = AtPath::Nothing;
                let pid = Some(pid);
                self.events.push(Record::Unlink { t, id, pid });
            }
            FileEvent::Renamed {
                pid,
                from,
                to,
                exchange,
                replaces,
            } => {
                let from = self.touch(&from, t);
                let to = self.touch_new(&to, t, !replaces);
                let (old, new) = (self.files[from as usize].now, self.files[to as usize].now);
                self.files[to as usize].now = old;
                self.files[from as usize].now = if exchange { new } else { AtPath::Nothing };
                for id in [from, to] {
                    self.files[id as usize].written = true;
                }
                let pid = Some(pid);
                self.events.push(Record::Rename {
                    t,
                    from,
                    to,
                    exchange,
                    pid,
                });
            }
            FileEvent::Updated {
                pid,
                path,
                op,
                offset,
                len,
            } => {
                let id = self.touch(&path, t);
                self.files[id as usize].written = true;
                self.events.push(Record::Write {
                    t,
                    id,
                    pid: Some(pid),
                    op,
                    offset,
                    len,
                });
            }
            FileEvent::MappedShared { path, .. } => {
                let id = self.touch(&path, t);
                let file = &mut self.files[id as usize];
                file.mmap_shared = true;
                file.written = true;
            }
        }
    }

    /// A file that was at `path` when tracing began, with its size then, whether or not the
    /// application ever opens it (`--tree`: it is part of what a migration moves).
    pub fn declare(&mut self, path: &str, size: u64) {
        let id = self.touch(path, 0.0);
        let file = &mut self.files[id as usize];
        if file.now == AtPath::Unsized {
            file.first_size = Some(size);
            file.now = AtPath::Sized(size);
        }
    }

    /// The size of the file at `path` after an event at `t` (`None`: nothing is there).
    pub fn sized(&mut self, t: f64, path: &str, size: Option<u64>) {
        let (Some(&id), Some(size)) = (self.ids.get(path), size) else {
            return;
        };
        let file = &mut self.files[id as usize];
        match file.now {
            AtPath::Nothing => return,
            AtPath::Sized(known) if known == size => return,
            AtPath::Unsized if file.first_size.is_none() && !file.new => {
                file.first_size = Some(size);
            }
            _ => self.events.push(Record::Size { t, id, size }),
        }
        file.now = AtPath::Sized(size);
    }

    fn touch(&mut self, path: &str, t: f64) -> u32 {
        self.touch_new(path, t, false)
    }

    /// The path's id; a path first seen here had no file when tracing began if `new`.
    fn touch_new(&mut self, path: &str, t: f64, new: bool) -> u32 {
        if let Some(&id) = self.ids.get(path) {
            self.files[id as usize].last_s = t;
            return id;
        }
        let id = self.files.len() as u32;
        self.ids.insert(path.to_string(), id);
        self.files.push(FileState {
            path: path.to_string(),
            written: false,
            mmap_shared: false,
            first_s: t,
            last_s: t,
            new,
            first_size: None,
            now: if new {
                AtPath::Nothing
            } else {
                AtPath::Unsized
            },
        });
        id
    }

    /// The recorded paths, in id order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|f| f.path.as_str())
    }

    /// The trace as JSON Lines (see [`precopy_core::trace`], version 2). `size` gives a path's
    /// size when tracing ended (`None`: it no longer exists): a file never sized before gets it
    /// as its first size, and one whose size changed unseen gets a last `size` record.
    pub fn trace(&self, info: &RecordingInfo, size: impl Fn(&str) -> Option<u64>) -> String {
        let mut closing = Recording {
            files: self.files.clone(),
            ids: self.ids.clone(),
            events: self.events.clone(),
        };
        let last = closing.events.iter().map(time).fold(0.0, f64::max);
        let end = info.duration_s.max(last);
        for f in &self.files {
            closing.sized(end, &f.path, size(&f.path));
        }
        let mut lines = vec![Record::header(
            info.period_s,
            info.command.clone(),
            info.pid,
        )];
        lines.extend(
            closing
                .files
                .iter()
                .enumerate()
                .map(|(id, f)| Record::File {
                    id: id as u32,
                    path: f.path.clone(),
                    size: f.first_size.unwrap_or(0),
                    kind: Kind::opened_for_writing(f.written),
                    mmap_shared: f.mmap_shared,
                    new: f.new,
                }),
        );
        let mut events = closing.events;
        // Stable: same-time events keep the order they happened in.
        events.sort_by(|a, b| time(a).total_cmp(&time(b)));
        lines.extend(events);
        lines.push(Record::End { t: end });
        let mut text: String = lines.iter().map(|r| r.to_line() + "\n").collect();
        text.shrink_to_fit();
        text
    }

    /// The manifest's entries for the traced files, in id order. `tree` holds the traced
    /// processes: updates by any other pid are counted as `others`.
    pub fn manifest_files(
        &self,
        period_s: f64,
        size: impl Fn(&str) -> Option<u64>,
        tree: &BTreeSet<i32>,
    ) -> Vec<ManifestFile> {
        let mut periods: Vec<BTreeMap<u64, PeriodWrites>> = vec![BTreeMap::new(); self.files.len()];
        let mut others: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); self.files.len()];
        for record in &self.events {
            let (t, ids, bytes, pid) = match record {
                Record::Write {
                    t,
                    id,
                    op,
                    len,
                    pid,
                    ..
                } => {
                    let bytes = if *op == WriteOp::Write {
                        len.unwrap_or(0)
                    } else {
                        0
                    };
                    (*t, [Some(*id), None], bytes, *pid)
                }
                Record::Unlink { t, id, pid } => (*t, [Some(*id), None], 0, *pid),
                Record::Rename {
                    t, from, to, pid, ..
                } => (*t, [Some(*from), Some(*to)], 0, *pid),
                _ => continue,
            };
            for id in ids.into_iter().flatten() {
                let period = (t / period_s).floor() as u64;
                let entry = periods[id as usize].entry(period).or_insert(PeriodWrites {
                    period,
                    calls: 0,
                    bytes: 0,
                    others: 0,
                });
                entry.calls += 1;
                entry.bytes += bytes;
                if let Some(pid) = pid.filter(|p| !tree.contains(&(*p as i32))) {
                    entry.others += 1;
                    others[id as usize].insert(pid);
                }
            }
        }
        self.files
            .iter()
            .zip(periods)
            .zip(others)
            .map(|((f, periods), others)| {
                let periods: Vec<PeriodWrites> = periods.into_values().collect();
                let size = size(&f.path);
                ManifestFile {
                    path: f.path.clone(),
                    size: size.unwrap_or(0),
                    exists: size.is_some(),
                    kind: Kind::opened_for_writing(f.written),
                    mmap_shared: f.mmap_shared,
                    origin: Origin::Traced,
                    first_access_s: Some(f.first_s),
                    last_access_s: Some(f.last_s),
                    write_calls: periods.iter().map(|p| p.calls).sum(),
                    bytes_written: periods.iter().map(|p| p.bytes).sum(),
                    periods,
                    other_writers: others.into_iter().collect(),
                }
            })
            .collect()
    }
}

fn time(record: &Record) -> f64 {
    match record {
        Record::Open { t, .. }
        | Record::Write { t, .. }
        | Record::Create { t, .. }
        | Record::Unlink { t, .. }
        | Record::Rename { t, .. }
        | Record::Size { t, .. }
        | Record::End { t } => *t,
        Record::Header { .. } | Record::File { .. } => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use precopy_core::trace::Trace;

    fn opened(path: &str, write: bool) -> FileEvent {
        FileEvent::Opened {
            pid: 1,
            path: path.into(),
            write,
        }
    }

    fn written(path: &str, len: u64) -> FileEvent {
        FileEvent::Updated {
            pid: 1,
            path: path.into(),
            op: WriteOp::Write,
            offset: None,
            len: Some(len),
        }
    }

    #[test]
    fn a_file_read_first_and_written_later_is_rw_and_declared_first() {
        let mut r = Recording::default();
        r.push(0.1, opened("/a", false));
        r.push(0.2, opened("/b", false));
        r.push(0.5, written("/a", 10));
        r.push(1.5, written("/a", 5));
        r.push(1.6, written("/a", 5));
        let info = RecordingInfo {
            period_s: 1.0,
            command: vec!["app".into()],
            pid: None,
            duration_s: 2.0,
        };
        let text = r.trace(&info, |p| (p == "/a").then_some(20));
        let trace = Trace::parse(&text).unwrap();
        assert_eq!(trace.files[0].kind, Kind::ReadWrite);
        assert_eq!(trace.files[1].kind, Kind::ReadOnly);
        assert_eq!(trace.files[0].writes, [0.5, 1.5, 1.6]);
        assert_eq!(trace.duration_s, 2.0);
        trace.dataset().unwrap();

        let files = r.manifest_files(1.0, |p| (p == "/a").then_some(20), &[1].into());
        assert_eq!((files[0].write_calls, files[0].bytes_written), (3, 20));
        let periods: Vec<_> = files[0]
            .periods
            .iter()
            .map(|p| (p.period, p.calls))
            .collect();
        assert_eq!(periods, [(0, 1), (1, 2)]);
        assert_eq!(files[0].last_access_s, Some(1.6));
        assert!(!files[1].exists);
    }

    #[test]
    fn creations_renames_unlinks_and_sizes_make_a_version_2_trace() {
        // /b exists (5 bytes); /a.tmp is created, grows to 7 bytes and is renamed over /b;
        // /log is created and unlinked.
        let mut r = Recording::default();
        let sized = |r: &mut Recording, t, path: &str, size| r.sized(t, path, Some(size));
        r.push(0.1, opened("/b", false));
        sized(&mut r, 0.1, "/b", 5);
        r.push(
            0.2,
            FileEvent::Created {
                pid: 1,
                path: "/a.tmp".into(),
            },
        );
        r.push(0.2, opened("/a.tmp", true));
        sized(&mut r, 0.2, "/a.tmp", 0);
        r.push(0.3, written("/a.tmp", 7));
        sized(&mut r, 0.3, "/a.tmp", 7);
        let rename = FileEvent::Renamed {
            pid: 1,
            from: "/a.tmp".into(),
            to: "/b".into(),
            exchange: false,
            replaces: true,
        };
        r.push(0.4, rename);
        sized(&mut r, 0.4, "/b", 7);
        r.push(
            0.5,
            FileEvent::Created {
                pid: 1,
                path: "/log".into(),
            },
        );
        r.push(
            0.6,
            FileEvent::Unlinked {
                pid: 1,
                path: "/log".into(),
            },
        );
        let info = RecordingInfo {
            period_s: 1.0,
            command: vec![],
            pid: None,
            duration_s: 1.0,
        };
        let text = r.trace(&info, |p| (p == "/b").then_some(7));
        let records: Vec<Record> = text
            .lines()
            .skip(1)
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|r| !matches!(r, Record::Open { .. }))
            .collect();
        let file = |id, path: &str, size, new| Record::File {
            id,
            path: path.into(),
            size,
            // A rename changes what is at both paths: both are ReadWrite.
            kind: Kind::ReadWrite,
            mmap_shared: false,
            new,
        };
        assert_eq!(
            records,
            [
                file(0, "/b", 5, false),
                file(1, "/a.tmp", 0, true),
                file(2, "/log", 0, true),
                Record::Create {
                    t: 0.2,
                    id: 1,
                    pid: Some(1)
                },
                Record::Write {
                    t: 0.3,
                    id: 1,
                    pid: Some(1),
                    op: WriteOp::Write,
                    offset: None,
                    len: Some(7)
                },
                Record::Size {
                    t: 0.3,
                    id: 1,
                    size: 7
                },
                Record::Rename {
                    t: 0.4,
                    from: 1,
                    to: 0,
                    exchange: false,
                    pid: Some(1)
                },
                Record::Create {
                    t: 0.5,
                    id: 2,
                    pid: Some(1)
                },
                Record::Unlink {
                    t: 0.6,
                    id: 2,
                    pid: Some(1)
                },
                Record::End { t: 1.0 },
            ]
        );
        let trace = Trace::parse(&text).unwrap();
        let lives: Vec<_> = trace
            .contents()
            .iter()
            .map(|c| (c.spec.path.clone(), c.life))
            .collect();
        assert_eq!(
            lives,
            [
                ("/b".to_string(), (0.0, 0.4)),
                ("/a.tmp".to_string(), (0.2, f64::INFINITY)),
                ("/log".to_string(), (0.5, 0.6)),
            ]
        );
    }

    #[test]
    fn a_shared_mapping_flags_the_file() {
        let mut r = Recording::default();
        r.push(0.0, opened("/m", true));
        r.push(
            0.1,
            FileEvent::MappedShared {
                pid: 1,
                path: "/m".into(),
            },
        );
        let files = r.manifest_files(1.0, |_| Some(1), &[1].into());
        assert!(files[0].mmap_shared);
        assert_eq!(files[0].kind, Kind::ReadWrite);
    }
}
