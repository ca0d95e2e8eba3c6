//! Shared helpers: the ptrace probe, a lock (one tracer at a time: a tracer's waitpid(-1) must
//! not reap another test's children), helper programs, and manifest queries.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use precopy_core::dataset::Kind;
use precopy_core::trace::Trace;
use precopy_trace::paths::PathFilter;
use precopy_trace::record::ManifestFile;
use precopy_trace::{record, Target, TraceConfig, TraceError, TraceOutput, WriteMonitor};

static LOCK: Mutex<()> = Mutex::new(());

/// The lock, or `None` (with a message) when ptrace is not available here.
pub fn tracing() -> Option<MutexGuard<'static, ()>> {
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let probe = TraceConfig {
        write_monitor: WriteMonitor::Ptrace,
        ..TraceConfig::new(Target::Command(vec!["true".into()]))
    };
    match record(&probe) {
        Ok(_) => Some(guard),
        Err(e @ TraceError::NotPermitted { .. }) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ptrace is not available here, and under CI=true that is a failure: {e}"
            );
            eprintln!("SKIPPED: ptrace is not available here (tests need root in CI): {e}");
            None
        }
        Err(e) => panic!("probe failed: {e}"),
    }
}

/// A helper program built from this crate's examples.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} not built (cargo test builds examples)",
        path.display()
    );
    path
}

/// Traces `command`, recording only files under `dir`.
pub fn trace_in(dir: &Path, command: &[&str]) -> TraceOutput {
    trace_with(
        dir,
        Target::Command(command.iter().map(OsString::from).collect()),
        false,
    )
}

/// Traces a target, recording only files under `dir` (exact ptrace write monitor).
pub fn trace_with(dir: &Path, target: Target, follow_sharing: bool) -> TraceOutput {
    trace_mode(dir, target, follow_sharing, WriteMonitor::Ptrace)
}

/// Traces a target with this write monitor, recording only files under `dir`.
pub fn trace_mode(
    dir: &Path,
    target: Target,
    follow_sharing: bool,
    write_monitor: WriteMonitor,
) -> TraceOutput {
    let include = vec![format!("{}/**", dir.display())];
    let config = TraceConfig {
        period_s: 0.5,
        filter: PathFilter::new(&include, &[]).unwrap(),
        follow_sharing,
        write_monitor,
        ..TraceConfig::new(target)
    };
    let output = record(&config).unwrap();
    // Every trace must replay.
    if !output.manifest.files.is_empty() {
        let trace = Trace::parse(&output.trace).unwrap_or_else(|e| panic!("{e}\n{}", output.trace));
        trace.dataset().unwrap();
    }
    output
}

/// `sh -c SCRIPT` run in `dir`.
pub fn sh(dir: &Path, script: &str) -> TraceOutput {
    let script = format!("cd '{}' || exit 99\n{script}", dir.display());
    trace_in(dir, &["sh", "-c", &script])
}

/// The manifest as (file name relative to `dir`, kind, write calls), sorted.
pub fn files(dir: &Path, output: &TraceOutput) -> Vec<(String, Kind, u64)> {
    let mut files: Vec<_> = output
        .manifest
        .files
        .iter()
        .map(|f| (relative(dir, f), f.kind, f.write_calls))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

fn relative(dir: &Path, file: &ManifestFile) -> String {
    let dir = dir.canonicalize().unwrap();
    Path::new(&file.path)
        .strip_prefix(&dir)
        .unwrap_or(Path::new(&file.path))
        .display()
        .to_string()
}

/// Shorthand for expected manifest rows.
pub fn row(name: &str, kind: Kind, calls: u64) -> (String, Kind, u64) {
    (name.to_string(), kind, calls)
}

/// A temporary directory with its canonical path (traces hold canonical paths).
pub fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}
