//! The file-access trace format (JSON Lines, version 1): what `migrate-native trace` records and
//! what the simulator replays. Documented in `docs/trace-format.md`.
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

use crate::dataset::{
    strip_position, Dataset, DatasetError, FileSpec, Kind, RecordedExtent, Writes,
};

/// The `format` value of a trace header.
pub const FORMAT: &str = "precopy-trace";
/// The trace format version this crate reads and writes.
pub const VERSION: u32 = 1;

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
    /// The file was renamed over or renamed away.
    Rename,
    /// The file was unlinked.
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
    /// Monitoring period used while recording.
    pub period_s: f64,
    /// Traced command, if any.
    pub command: Vec<String>,
    /// Files, by id.
    pub files: Vec<TracedFile>,
    /// Duration: the `end` record's time, or the last event's.
    pub duration_s: f64,
}

/// One file of a trace, with its update times.
#[derive(Debug, Clone, PartialEq)]
pub struct TracedFile {
    /// Path.
    pub path: String,
    /// Size.
    pub size: u64,
    /// Kind.
    pub kind: Kind,
    /// Writes can be missed (shared writable mapping).
    pub mmap_shared: bool,
    /// Update times, sorted.
    pub writes: Vec<f64>,
    /// Each update's extent, in the order of `writes`.
    pub extents: Vec<RecordedExtent>,
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

impl Trace {
    /// Parses a whole trace. Blank lines are ignored.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        let mut header: Option<(f64, Vec<String>)> = None;
        let mut files: Vec<TracedFile> = Vec::new();
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
                    if version != VERSION {
                        return Err(error(
                            line,
                            format!("version {version} is not supported (this reader: {VERSION})"),
                        ));
                    }
                    if !(period_s.is_finite() && period_s > 0.0) {
                        return Err(error(line, format!("period_s {period_s} must be positive")));
                    }
                    header = Some((period_s, command));
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
        let (period_s, command) = header.ok_or_else(|| error(0, "empty: no header"))?;
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
        Ok(Trace {
            period_s,
            command,
            files,
            duration_s: end.unwrap_or(last_event),
        })
    }

    /// The data set to replay: the traced files with their recorded writes.
    pub fn dataset(&self) -> Result<Dataset, DatasetError> {
        let name = if self.command.is_empty() {
            String::from("trace")
        } else {
            format!("trace: {}", self.command.join(" "))
        };
        let files = self
            .files
            .iter()
            .map(|f| FileSpec {
                path: f.path.clone(),
                size: f.size.max(1),
                kind: f.kind,
                access_probability: 0.0,
            })
            .collect();
        let writes = self.files.iter().map(|f| f.writes.clone()).collect();
        let extents = self.files.iter().map(|f| f.extents.clone()).collect();
        Dataset::with_extents(name, files, Writes::Recorded(writes), extents)
    }

    /// Emits the trace as JSON Lines (the inverse of [`Trace::parse`]).
    pub fn to_jsonl(&self) -> String {
        let mut lines = vec![Record::header(self.period_s, self.command.clone(), None).to_line()];
        let mut writes: Vec<(f64, u32, RecordedExtent)> = Vec::new();
        for (id, f) in self.files.iter().enumerate() {
            lines.push(
                Record::File {
                    id: id as u32,
                    path: f.path.clone(),
                    size: f.size,
                    kind: f.kind,
                    mmap_shared: f.mmap_shared,
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
        for (t, id, extent) in writes {
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
        lines.push(Record::End { t: self.duration_s }.to_line());
        let mut text = lines.join("\n");
        text.push('\n');
        text
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
                r#"{"type":"header","format":"precopy-trace","version":2,"period_s":1}"#,
                1,
                "version 2",
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
        for (text, line, needle) in cases {
            let err = Trace::parse(text).unwrap_err();
            assert_eq!(err.line, *line, "{text}: {err}");
            assert!(err.message.contains(needle), "{text}: {err}");
        }
    }
}
