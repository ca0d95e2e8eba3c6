//! The file-access trace format (JSON Lines, versions 1 and 2): what `migrate-native trace`
//! records and what the simulator replays. Documented in `docs/trace-format.md`. Version 2 adds
//! what happened to files: creations, unlinks, renames and sizes over time.
//!
//! ```text
//! {"type":"header","format":"precopy-trace","version":1,"period_s":1.0,"command":["app"]}
//! {"type":"file","id":0,"path":"/etc/app.conf","size":512,"kind":"ro"}
//! {"type":"file","id":1,"path":"/var/app/db","size":65536,"kind":"rw"}
//! {"type":"write","t":0.25,"id":1,"pid":42,"offset":0,"len":4096}
//! {"type":"end","t":10.0}
//! ```
//!
//! Parsing is pure (a `&str` in, a value or an error naming the line out), so it can be fuzzed.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::dataset::ReplayedFile;
use crate::dataset::{strip_position, Dataset, DatasetError, FileSpec, Kind, RecordedExtent};

/// The `format` value of a trace header.
pub const FORMAT: &str = "precopy-trace";
/// The trace format version this crate writes; it reads this one and version 1.
pub const VERSION: u32 = 2;
/// The first version, still read exactly as before.
pub const VERSION_1: u32 = 1;

/// What kind of update a write record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteOp {
    /// write, pwrite, writev, sendfile or splice into the file, copy_file_range…
    #[default]
    Write,
    /// truncate or ftruncate.
    Truncate,
    /// fallocate.
    Fallocate,
    /// The file was renamed over or renamed away (version 1 only: version 2 has `rename`).
    Rename,
    /// The file was unlinked (version 1 only: version 2 has `unlink`).
    Unlink,
}

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Record {
    /// First line.
    Header {
        /// Always [`FORMAT`].
        format: String,
        /// Always [`VERSION`] for this reader.
        version: u32,
        /// The monitoring period used while recording, seconds.
        period_s: f64,
        /// The traced command line, if the tracer spawned it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        command: Vec<String>,
        /// The traced process id, if attached.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
    /// A file the application uses. Ids are dense from 0.
    File {
        /// File id.
        id: u32,
        /// Absolute path at the source.
        path: String,
        /// Size in bytes when the trace ended.
        size: u64,
        /// ReadOnly or ReadWrite.
        kind: Kind,
        /// Mapped shared and writable: writes through the mapping are not seen.
        #[serde(default, skip_serializing_if = "core::ops::Not::not")]
        mmap_shared: bool,
        /// Version 2: no file was at this path when tracing began (it came by a `create` or a
        /// `rename`).
        #[serde(default, skip_serializing_if = "core::ops::Not::not")]
        new: bool,
    },
    /// An open of a file (informational).
    Open {
        /// Seconds since the trace began.
        t: f64,
        /// File id.
        id: u32,
        /// Opening process.
        pid: u32,
        /// Opened for writing.
        write: bool,
    },
    /// An update to a file.
    Write {
        /// Seconds since the trace began.
        t: f64,
        /// File id.
        id: u32,
        /// Writing process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// Kind of update.
        #[serde(default, skip_serializing_if = "is_default_op")]
        op: WriteOp,
        /// Offset, where the call has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// Length in bytes, where the call has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        len: Option<u64>,
    },
    /// Version 2: a file was created at the path (none was there just before).
    Create {
        /// Seconds since the trace began.
        t: f64,
        /// File id (its path).
        id: u32,
        /// Creating process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
    /// Version 2: the path's file was unlinked.
    Unlink {
        /// Seconds since the trace began.
        t: f64,
        /// File id (its path).
        id: u32,
        /// Unlinking process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
    /// Version 2: the file at path `from` is now at path `to`; a file that was at `to` is gone
    /// (with `exchange`, the two swap).
    Rename {
        /// Seconds since the trace began.
        t: f64,
        /// File id of the old path.
        from: u32,
        /// File id of the new path.
        to: u32,
        /// renameat2's RENAME_EXCHANGE.
        #[serde(default, skip_serializing_if = "core::ops::Not::not")]
        exchange: bool,
        /// Renaming process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
    /// Version 2: the path's file has this size from `t` on.
    Size {
        /// Seconds since the trace began.
        t: f64,
        /// File id (its path).
        id: u32,
        /// Size in bytes.
        size: u64,
    },
    /// Last line: the trace's duration.
    End {
        /// Seconds since the trace began.
        t: f64,
    },
}

fn is_default_op(op: &WriteOp) -> bool {
    *op == WriteOp::Write
}

impl Record {
    /// The header line for a trace recorded with monitoring period `period_s`.
    pub fn header(period_s: f64, command: Vec<String>, pid: Option<u32>) -> Record {
        Record::Header {
            format: FORMAT.to_string(),
            version: VERSION,
            period_s,
            command,
            pid,
        }
    }

    /// One JSON line (no trailing newline).
    pub fn to_line(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A parsed, checked trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The format version it was written in (1 or 2).
    pub version: u32,
    /// Monitoring period used while recording.
    pub period_s: f64,
    /// Traced command, if any.
    pub command: Vec<String>,
    /// Files (paths), by id.
    pub files: Vec<TracedFile>,
    /// Version 2: creations, unlinks, renames and sizes, sorted by time (stable: same-time
    /// changes keep the trace's order). Empty in version 1.
    pub changes: Vec<Change>,
    /// Duration: the `end` record's time, or the last event's.
    pub duration_s: f64,
}

/// One file of a trace, with its update times.
#[derive(Debug, Clone, PartialEq)]
pub struct TracedFile {
    /// Path.
    pub path: String,
    /// Size: version 1, when the trace ended; version 2, when the file was first seen.
    pub size: u64,
    /// Kind.
    pub kind: Kind,
    /// Writes can be missed (shared writable mapping).
    pub mmap_shared: bool,
    /// Version 2: no file was at the path when tracing began.
    pub new: bool,
    /// Update times, sorted.
    pub writes: Vec<f64>,
    /// Each update's extent, in the order of `writes`.
    pub extents: Vec<RecordedExtent>,
}

/// What happened to a path (version 2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// A file was created at path `id`.
    Create {
        /// When.
        t: f64,
        /// The path's file id.
        id: u32,
    },
    /// The file at path `id` was unlinked.
    Unlink {
        /// When.
        t: f64,
        /// The path's file id.
        id: u32,
    },
    /// The file at `from` moved to `to`, replacing any there (or, with `exchange`, they swapped).
    Rename {
        /// When.
        t: f64,
        /// The old path's file id.
        from: u32,
        /// The new path's file id.
        to: u32,
        /// The two paths swapped.
        exchange: bool,
    },
    /// The file at path `id` has `size` bytes from `t` on.
    Size {
        /// When.
        t: f64,
        /// The path's file id.
        id: u32,
        /// Bytes.
        size: u64,
    },
}

impl Change {
    /// When it happened.
    pub fn time(&self) -> f64 {
        match *self {
            Change::Create { t, .. }
            | Change::Unlink { t, .. }
            | Change::Rename { t, .. }
            | Change::Size { t, .. } => t,
        }
    }

    fn record(self) -> Record {
        match self {
            Change::Create { t, id } => Record::Create { t, id, pid: None },
            Change::Unlink { t, id } => Record::Unlink { t, id, pid: None },
            Change::Rename {
                t,
                from,
                to,
                exchange,
            } => Record::Rename {
                t,
                from,
                to,
                exchange,
                pid: None,
            },
            Change::Size { t, id, size } => Record::Size { t, id, size },
        }
    }
}

/// A trace that cannot be read, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceError {
    /// 1-based line number (0 for whole-file problems).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "trace: {}", self.message)
        } else {
            write!(f, "trace line {}: {}", self.line, self.message)
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TraceError {}

fn error(line: usize, message: impl Into<String>) -> TraceError {
    TraceError {
        line,
        message: message.into(),
    }
}

fn check_time(line: usize, t: f64) -> Result<f64, TraceError> {
    if t.is_finite() && t >= 0.0 {
        Ok(t)
    } else {
        Err(error(line, format!("time {t} must be a finite number ≥ 0")))
    }
}

/// A record that only version 2 has, by name, if `record` is one.
fn version_2_only(record: &Record) -> Option<&'static str> {
    match record {
        Record::File { new: true, .. } => Some("`new` on a file"),
        Record::Create { .. } => Some("a `create` record"),
        Record::Unlink { .. } => Some("an `unlink` record"),
        Record::Rename { .. } => Some("a `rename` record"),
        Record::Size { .. } => Some("a `size` record"),
        _ => None,
    }
}

impl Trace {
    /// Parses a whole trace. Blank lines are ignored.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        let mut header: Option<(u32, f64, Vec<String>)> = None;
        let mut files: Vec<TracedFile> = Vec::new();
        let mut changes: Vec<Change> = Vec::new();
        let mut end: Option<f64> = None;
        let mut last_event = 0.0f64;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let record: Record =
                serde_json::from_str(raw).map_err(|e| error(line, strip_position(&e)))?;
            if end.is_some() {
                return Err(error(line, "nothing may follow the `end` record"));
            }
            if let (Some((VERSION_1, ..)), Some(what)) = (&header, version_2_only(&record)) {
                return Err(error(line, format!("{what} needs version 2")));
            }
            let mut change = |change: Change, last_event: &mut f64| -> Result<(), TraceError> {
                *last_event = last_event.max(check_time(line, change.time())?);
                changes.push(change);
                Ok(())
            };
            match record {
                Record::Header {
                    format,
                    version,
                    period_s,
                    command,
                    ..
                } => {
                    if header.is_some() {
                        return Err(error(line, "a second header"));
                    }
                    if format != FORMAT {
                        return Err(error(line, format!("format `{format}` is not `{FORMAT}`")));
                    }
                    if version != VERSION && version != VERSION_1 {
                        return Err(error(
                            line,
                            format!(
                                "version {version} is not supported (this reader: {VERSION_1} \
                                 and {VERSION})"
                            ),
                        ));
                    }
                    if !(period_s.is_finite() && period_s > 0.0) {
                        return Err(error(line, format!("period_s {period_s} must be positive")));
                    }
                    header = Some((version, period_s, command));
                }
                _ if header.is_none() => {
                    return Err(error(line, "the first record must be the header"));
                }
                Record::File {
                    id,
                    path,
                    size,
                    kind,
                    mmap_shared,
                    new,
                } => {
                    if id as usize != files.len() {
                        return Err(error(
                            line,
                            format!("file id {id} out of order (expected {})", files.len()),
                        ));
                    }
                    if path.is_empty() {
                        return Err(error(line, "empty path"));
                    }
                    files.push(TracedFile {
                        path,
                        size,
                        kind,
                        mmap_shared,
                        new,
                        writes: Vec::new(),
                        extents: Vec::new(),
                    });
                }
                Record::Open { t, id, .. } => {
                    last_event = last_event.max(check_time(line, t)?);
                    known(&files, id, line)?;
                }
                Record::Write {
                    t,
                    id,
                    op,
                    offset,
                    len,
                    ..
                } => {
                    let t = check_time(line, t)?;
                    last_event = last_event.max(t);
                    let v2 = header.as_ref().is_some_and(|h| h.0 == VERSION);
                    if v2 && matches!(op, WriteOp::Rename | WriteOp::Unlink) {
                        return Err(error(
                            line,
                            "in version 2, renames and unlinks are `rename` and `unlink` records",
                        ));
                    }
                    let file = known_mut(&mut files, id, line)?;
                    if file.kind == Kind::ReadOnly {
                        return Err(error(line, format!("write to read-only file id {id}")));
                    }
                    file.writes.push(t);
                    // Only a write's bytes are known; any other update may change them all.
                    file.extents.push(match op {
                        WriteOp::Write => RecordedExtent { offset, len },
                        _ => RecordedExtent {
                            offset: None,
                            len: None,
                        },
                    });
                }
                Record::Create { t, id, .. } => {
                    if known_mut(&mut files, id, line)?.kind == Kind::ReadOnly {
                        return Err(error(line, format!("create of read-only file id {id}")));
                    }
                    change(Change::Create { t, id }, &mut last_event)?;
                }
                Record::Unlink { t, id, .. } => {
                    known(&files, id, line)?;
                    change(Change::Unlink { t, id }, &mut last_event)?;
                }
                Record::Rename {
                    t,
                    from,
                    to,
                    exchange,
                    ..
                } => {
                    known(&files, from, line)?;
                    known(&files, to, line)?;
                    change(
                        Change::Rename {
                            t,
                            from,
                            to,
                            exchange,
                        },
                        &mut last_event,
                    )?;
                }
                Record::Size { t, id, size } => {
                    known(&files, id, line)?;
                    change(Change::Size { t, id, size }, &mut last_event)?;
                }
                Record::End { t } => {
                    let t = check_time(line, t)?;
                    if t < last_event {
                        return Err(error(
                            line,
                            format!("end {t} is before an event at {last_event}"),
                        ));
                    }
                    end = Some(t);
                }
            }
        }
        let (version, period_s, command) = header.ok_or_else(|| error(0, "empty: no header"))?;
        if files.is_empty() {
            return Err(error(0, "no files"));
        }
        for file in &mut files {
            // Stable, so same-time writes keep their extents in the trace's order.
            let mut both: Vec<(f64, RecordedExtent)> =
                file.writes.drain(..).zip(file.extents.drain(..)).collect();
            both.sort_by(|a, b| a.0.total_cmp(&b.0));
            (file.writes, file.extents) = both.into_iter().unzip();
        }
        changes.sort_by(|a, b| a.time().total_cmp(&b.time()));
        Ok(Trace {
            version,
            period_s,
            command,
            files,
            changes,
            duration_s: end.unwrap_or(last_event),
        })
    }

    /// Update records in the trace.
    pub fn write_count(&self) -> usize {
        self.files.iter().map(|f| f.writes.len()).sum()
    }

    /// The data set to replay: in version 1, the traced files with their recorded writes; in
    /// version 2, one file per content (see [`Trace::contents`]).
    pub fn dataset(&self) -> Result<Dataset, DatasetError> {
        let name = if self.command.is_empty() {
            String::from("trace")
        } else {
            format!("trace: {}", self.command.join(" "))
        };
        let files = if self.version == VERSION_1 {
            self.files
                .iter()
                .map(|f| ReplayedFile {
                    spec: spec(f, f.size.max(1), f.kind),
                    writes: f.writes.clone(),
                    extents: f.extents.clone(),
                    life: (0.0, f64::INFINITY),
                    sizes: Vec::new(),
                })
                .collect()
        } else {
            self.contents()
        };
        Dataset::replayed(name, files, self.duration_s)
    }

    /// Version 2's files as contents rather than paths: a file that was at a path when tracing
    /// began, or that a `create` made, lives until it is unlinked or replaced (a `create` at
    /// its path, a `rename` onto it); a `rename` moves it to another path, where it goes on
    /// (it is the same file: what the destination has of it stays valid). Writes and sizes go
    /// to the file at their path at their time; at the same time, changes come first. Records
    /// about a path with no file then are ignored. A file that never lives an instant is left
    /// out. Each is named by its first path and is ReadWrite if any path it had is.
    pub fn contents(&self) -> Vec<ReplayedFile> {
        let mut contents: Vec<ReplayedFile> = Vec::new();
        let born = |id: u32, t: f64, size: u64| {
            let f = &self.files[id as usize];
            ReplayedFile {
                spec: spec(f, size, f.kind),
                writes: Vec::new(),
                extents: Vec::new(),
                life: (t, f64::INFINITY),
                sizes: Vec::new(),
            }
        };
        let mut at: Vec<Option<usize>> = Vec::with_capacity(self.files.len());
        for (id, f) in self.files.iter().enumerate() {
            at.push((!f.new).then_some(contents.len()));
            if !f.new {
                contents.push(born(id as u32, 0.0, f.size));
            }
        }
        let mut writes: Vec<(f64, u32, RecordedExtent)> = Vec::new();
        for (id, f) in self.files.iter().enumerate() {
            let extents = f.extents.iter().copied();
            writes.extend(
                f.writes
                    .iter()
                    .zip(extents)
                    .map(|(&t, e)| (t, id as u32, e)),
            );
        }
        writes.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut writes = writes.into_iter().peekable();
        let kind_of = |id: u32| self.files[id as usize].kind;
        let ends = |contents: &mut Vec<ReplayedFile>, gone: Option<usize>, t: f64| {
            if let Some(c) = gone {
                contents[c].life.1 = t;
            }
        };
        for change in self.changes.iter().map(Some).chain([None]) {
            let until = change.map_or(f64::INFINITY, Change::time);
            while let Some((t, id, extent)) = writes.next_if(|w| w.0 < until) {
                if let Some(c) = at[id as usize] {
                    contents[c].writes.push(t);
                    contents[c].extents.push(extent);
                }
            }
            match change.copied() {
                None => {}
                Some(Change::Create { t, id }) => {
                    ends(&mut contents, at[id as usize], t);
                    at[id as usize] = Some(contents.len());
                    contents.push(born(id, t, 0));
                }
                Some(Change::Unlink { t, id }) => {
                    ends(&mut contents, at[id as usize].take(), t);
                }
                Some(Change::Rename { from, to, .. }) if from == to => {}
                Some(Change::Rename {
                    from,
                    to,
                    exchange: true,
                    ..
                }) => {
                    at.swap(from as usize, to as usize);
                    for (path, c) in [(from, at[from as usize]), (to, at[to as usize])] {
                        if let (Some(c), Kind::ReadWrite) = (c, kind_of(path)) {
                            contents[c].spec.kind = Kind::ReadWrite;
                        }
                    }
                }
                Some(Change::Rename { t, from, to, .. }) => {
                    let Some(moved) = at[from as usize].take() else {
                        continue;
                    };
                    let replaced = at[to as usize].replace(moved);
                    ends(&mut contents, replaced, t);
                    if kind_of(to) == Kind::ReadWrite {
                        contents[moved].spec.kind = Kind::ReadWrite;
                    }
                }
                Some(Change::Size { t, id, size }) => {
                    if let Some(c) = at[id as usize] {
                        contents[c].sizes.push((t, size));
                    }
                }
            }
        }
        contents.retain(|c| c.life.1 > c.life.0);
        contents
    }

    /// Emits the trace as JSON Lines (the inverse of [`Trace::parse`]), in its version.
    pub fn to_jsonl(&self) -> String {
        let header = Record::Header {
            format: FORMAT.to_string(),
            version: self.version,
            period_s: self.period_s,
            command: self.command.clone(),
            pid: None,
        };
        let mut lines = vec![header.to_line()];
        let mut writes: Vec<(f64, u32, RecordedExtent)> = Vec::new();
        for (id, f) in self.files.iter().enumerate() {
            lines.push(
                Record::File {
                    id: id as u32,
                    path: f.path.clone(),
                    size: f.size,
                    kind: f.kind,
                    mmap_shared: f.mmap_shared,
                    new: f.new,
                }
                .to_line(),
            );
            let extents = f.extents.iter().copied();
            writes.extend(
                f.writes
                    .iter()
                    .zip(extents)
                    .map(|(&t, e)| (t, id as u32, e)),
            );
        }
        writes.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut writes = writes.into_iter().peekable();
        // Changes before writes of the same time, as they are replayed.
        for change in self.changes.iter().map(Some).chain([None]) {
            let until = change.map_or(f64::INFINITY, Change::time);
            while let Some((t, id, extent)) = writes.next_if(|w| w.0 < until) {
                let record = Record::Write {
                    t,
                    id,
                    pid: None,
                    op: WriteOp::Write,
                    offset: extent.offset,
                    len: extent.len,
                };
                lines.push(record.to_line());
            }
            if let Some(change) = change {
                lines.push(change.record().to_line());
            }
        }
        lines.push(Record::End { t: self.duration_s }.to_line());
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

fn spec(file: &TracedFile, size: u64, kind: Kind) -> FileSpec {
    FileSpec {
        path: file.path.clone(),
        size,
        kind,
        access_probability: 0.0,
    }
}

fn known(files: &[TracedFile], id: u32, line: usize) -> Result<(), TraceError> {
    if (id as usize) < files.len() {
        Ok(())
    } else {
        Err(error(line, format!("unknown file id {id}")))
    }
}

fn known_mut(
    files: &mut [TracedFile],
    id: u32,
    line: usize,
) -> Result<&mut TracedFile, TraceError> {
    known(files, id, line)?;
    Ok(&mut files[id as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Writes;

    const SAMPLE: &str = r#"{"type":"header","format":"precopy-trace","version":1,"period_s":1.0,"command":["app","-x"]}
{"type":"file","id":0,"path":"/etc/app.conf","size":512,"kind":"ro"}
{"type":"file","id":1,"path":"/var/app/db","size":65536,"kind":"rw"}
{"type":"open","t":0.0,"id":1,"pid":42,"write":true}
{"type":"write","t":0.5,"id":1,"pid":42,"offset":0,"len":4096}
{"type":"write","t":0.25,"id":1,"op":"truncate"}

{"type":"end","t":10.0}
"#;

    #[test]
    fn parses_and_replays() {
        let trace = Trace::parse(SAMPLE).unwrap();
        assert_eq!(trace.files.len(), 2);
        assert_eq!(trace.files[1].writes, [0.25, 0.5]);
        assert_eq!(trace.duration_s, 10.0);
        let data = trace.dataset().unwrap();
        assert_eq!(data.name, "trace: app -x");
        assert_eq!(data.files[0].kind, Kind::ReadOnly);
        assert!(matches!(data.writes, Writes::Recorded(ref w) if w[1].len() == 2));
        // Sorted with their times: the truncate (whole file) first, then the 4 KiB write.
        let whole = RecordedExtent {
            offset: None,
            len: None,
        };
        let write = RecordedExtent {
            offset: Some(0),
            len: Some(4096),
        };
        assert_eq!(data.extents[1], [whole, write]);
    }

    #[test]
    fn round_trips() {
        let trace = Trace::parse(SAMPLE).unwrap();
        let again = Trace::parse(&trace.to_jsonl()).unwrap();
        assert_eq!(trace, again);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "no header"),
            (r#"{"type":"end","t":1}"#, 1, "first record must be the header"),
            (
                r#"{"type":"header","format":"precopy-trace","version":3,"period_s":1}"#,
                1,
                "version 3",
            ),
            (
                "{\"type\":\"header\",\"format\":\"precopy-trace\",\"version\":1,\"period_s\":1}\n{\"type\":\"write\",\"t\":1,\"id\":3}",
                2,
                "unknown file id 3",
            ),
            (
                "{\"type\":\"header\",\"format\":\"precopy-trace\",\"version\":1,\"period_s\":1}\n{\"type\":\"file\",\"id\":0,\"path\":\"/a\",\"size\":1,\"kind\":\"ro\"}\n{\"type\":\"write\",\"t\":1,\"id\":0}",
                3,
                "read-only",
            ),
            (
                "{\"type\":\"header\",\"format\":\"precopy-trace\",\"version\":1,\"period_s\":1}\nnot json",
                2,
                "expected",
            ),
        ];
        for (text, line, needle) in cases.iter().chain(V2_CASES) {
            let err = Trace::parse(text).unwrap_err();
            assert_eq!(err.line, *line, "{text}: {err}");
            assert!(err.message.contains(needle), "{text}: {err}");
        }
    }

    const V1: &str = r#"{"type":"header","format":"precopy-trace","version":1,"period_s":1}"#;
    const V2: &str = r#"{"type":"header","format":"precopy-trace","version":2,"period_s":1}"#;

    /// Version-2 records in a version-1 trace, and what version 2 refuses.
    const V2_CASES: &[(&str, usize, &str)] = &[
        (
            concat!(
                r#"{"type":"header","format":"precopy-trace","version":1,"period_s":1}"#,
                "\n",
                r#"{"type":"file","id":0,"path":"/a","size":1,"kind":"rw","new":true}"#
            ),
            2,
            "`new` on a file needs version 2",
        ),
        (
            concat!(
                r#"{"type":"header","format":"precopy-trace","version":2,"period_s":1}"#,
                "\n",
                r#"{"type":"file","id":0,"path":"/a","size":1,"kind":"ro"}"#,
                "\n",
                r#"{"type":"create","t":1,"id":0}"#
            ),
            3,
            "create of read-only file id 0",
        ),
        (
            concat!(
                r#"{"type":"header","format":"precopy-trace","version":2,"period_s":1}"#,
                "\n",
                r#"{"type":"file","id":0,"path":"/a","size":1,"kind":"rw"}"#,
                "\n",
                r#"{"type":"write","t":1,"id":0,"op":"unlink"}"#
            ),
            3,
            "`rename` and `unlink` records",
        ),
        (
            concat!(
                r#"{"type":"header","format":"precopy-trace","version":2,"period_s":1}"#,
                "\n",
                r#"{"type":"file","id":0,"path":"/a","size":1,"kind":"rw"}"#,
                "\n",
                r#"{"type":"rename","t":1,"from":0,"to":4}"#
            ),
            3,
            "unknown file id 4",
        ),
        (
            concat!(
                r#"{"type":"header","format":"precopy-trace","version":2,"period_s":1}"#,
                "\n",
                r#"{"type":"file","id":0,"path":"/a","size":1,"kind":"rw"}"#,
                "\n",
                r#"{"type":"size","t":-1,"id":0,"size":3}"#
            ),
            3,
            "time -1",
        ),
        (
            concat!(
                r#"{"type":"header","format":"precopy-trace","version":2,"period_s":1}"#,
                "\n",
                r#"{"type":"file","id":0,"path":"/a","size":1,"kind":"rw"}"#,
                "\n",
                r#"{"type":"unlink","t":1,"id":0,"why":"x"}"#
            ),
            3,
            "unknown field `why`",
        ),
    ];

    #[test]
    fn version_2_says_what_happened_to_files() {
        // /a is there at 0 and renamed over /b (which is new) at 2; /c is created at 1, written,
        // and unlinked at 3; /a's content, now at /b, is written at 4 to 10 bytes.
        let text = [
            V2,
            r#"{"type":"file","id":0,"path":"/a","size":5,"kind":"rw"}"#,
            r#"{"type":"file","id":1,"path":"/b","size":0,"kind":"rw","new":true}"#,
            r#"{"type":"file","id":2,"path":"/c","size":0,"kind":"rw","new":true}"#,
            r#"{"type":"write","t":4,"id":1,"offset":5,"len":5}"#,
            r#"{"type":"size","t":4,"id":1,"size":10}"#,
            r#"{"type":"create","t":1,"id":2}"#,
            r#"{"type":"write","t":1.5,"id":2}"#,
            r#"{"type":"rename","t":2,"from":0,"to":1}"#,
            r#"{"type":"write","t":2.5,"id":0}"#,
            r#"{"type":"unlink","t":3,"id":2}"#,
            r#"{"type":"end","t":5}"#,
        ]
        .join("\n");
        let trace = Trace::parse(&text).unwrap();
        assert_eq!(Trace::parse(&trace.to_jsonl()).unwrap(), trace);
        let contents = trace.contents();
        let summary: Vec<_> = contents
            .iter()
            .map(|c| {
                (
                    c.spec.path.as_str(),
                    c.life,
                    c.writes.clone(),
                    c.sizes.clone(),
                )
            })
            .collect();
        // The write to /a at 2.5 finds no file there: ignored.
        assert_eq!(
            summary,
            [
                ("/a", (0.0, f64::INFINITY), vec![4.0], vec![(4.0, 10)]),
                ("/c", (1.0, 3.0), vec![1.5], vec![]),
            ]
        );
        let data = trace.dataset().unwrap();
        assert_eq!(data.lives, [(0.0, f64::INFINITY), (1.0, 3.0)]);
        assert_eq!(data.files[1].size, 0);
        assert_eq!(data.recorded_s, 5.0);
    }

    #[test]
    fn version_1_replays_without_lives_or_sizes() {
        let text = [
            V1,
            r#"{"type":"file","id":0,"path":"/a","size":0,"kind":"rw"}"#,
            r#"{"type":"write","t":1,"id":0,"op":"unlink"}"#,
        ]
        .join("\n");
        let data = Trace::parse(&text).unwrap().dataset().unwrap();
        assert!(data.lives.is_empty() && data.sizes.is_empty());
        assert_eq!(data.files[0].size, 1, "at least 1 byte, as before");
    }
}
