//! The workload catalogue (issue 14): the shipped traces replay, and the recording script's
//! parts still run (at a few seconds each, as root).

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{can_run, say};

/// The catalogue, in the recording script's order, and what each application visibly does to
/// its files, which its shipped trace (version 2) must say: record types, and `never-opened`
/// for files of its `--tree` there when tracing began that it never opened.
const SAYS: [(&str, &[&str]); 6] = [
    // WAL segments recycled by renames; template databases' files never opened.
    ("postgres", &["rename", "size", "never-opened"]),
    // AOF rewrites: a temporary file renamed into place, the old incremental files unlinked.
    ("redis", &["create", "rename", "unlink", "size"]),
    // The WAL grows and is truncated at each checkpoint.
    ("sqlite", &["size"]),
    // Objects and the compiler's temporary files; sources and docs never opened.
    ("build", &["create", "unlink", "size", "never-opened"]),
    // index.lock renamed over index, loose objects deleted by gc.
    (
        "git",
        &["create", "rename", "unlink", "size", "never-opened"],
    ),
    // The access log rotated (renamed by another process) and created anew.
    ("nginx", &["create", "rename", "size"]),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `simulate --json` of a trace with `converge` at 20 Mbit/s, its writes looped for 600 s.
fn replay(trace: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_migrate-native"))
        .args(["simulate", "--policy", "converge", "--bandwidth", "20"])
        .args(["--loop-trace", "600s", "--json", "--dataset"])
        .arg(trace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        trace.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `file` records of a compressed trace whose path had a file when tracing began (not
/// `"new":true`, trace version 2), and its `write` records, counted from `zstd -dc` (not from
/// our reader).
fn records(trace: &Path) -> (u64, u64) {
    let out = Command::new("zstd").arg("-dc").arg(trace).output().unwrap();
    assert!(out.status.success(), "zstd -dc {}", trace.display());
    let text = String::from_utf8(out.stdout).unwrap();
    let count = |kind: &str| {
        let tag = format!("\"type\":\"{kind}\"");
        let lines = text.lines().filter(|l| l.contains(&tag));
        lines.filter(|l| !l.contains("\"new\":true")).count() as u64
    };
    (count("file"), count("write"))
}

/// The trace's version, and its record types with `never-opened` for a `file` record there
/// when tracing began that no `open` record names, from `zstd -dc` and a JSON parser (not
/// from our reader).
fn says(trace: &Path) -> (u64, std::collections::BTreeSet<String>) {
    let out = Command::new("zstd").arg("-dc").arg(trace).output().unwrap();
    assert!(out.status.success(), "zstd -dc {}", trace.display());
    let records: Vec<serde_json::Value> = (String::from_utf8(out.stdout).unwrap().lines())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let opened: std::collections::BTreeSet<u64> = (records.iter())
        .filter(|r| r["type"] == "open")
        .filter_map(|r| r["id"].as_u64())
        .collect();
    let mut types: std::collections::BTreeSet<String> = (records.iter())
        .map(|r| r["type"].as_str().unwrap().to_string())
        .collect();
    if (records.iter()).any(|r| {
        r["type"] == "file"
            && r["new"] != true
            && !r["id"].as_u64().is_some_and(|id| opened.contains(&id))
    }) {
        types.insert("never-opened".to_string());
    }
    (records[0]["version"].as_u64().unwrap(), types)
}

/// Checks one recorded trace: every file there when tracing began is in the replay (those
/// created while tracing join it later), something is written, two replays
/// agree bit for bit, and pre-copy plus the final copy moved at least every byte once.
fn check_trace(trace: &Path) {
    let (files, writes) = records(trace);
    assert!(
        files > 0 && writes > 0,
        "{}: {files} files, {writes} writes",
        trace.display()
    );
    let run = replay(trace);
    assert_eq!(
        run,
        replay(trace),
        "{}: replay is not deterministic",
        trace.display()
    );
    assert_eq!(run["files"].as_u64(), Some(files), "{}", trace.display());
    let moved = run["precopy_bytes"].as_u64().unwrap() + run["final_bytes"].as_u64().unwrap();
    assert!(
        moved >= run["total_bytes"].as_u64().unwrap(),
        "{}: {run}",
        trace.display()
    );
}

#[test]
fn shipped_traces_replay_deterministically() {
    const TEST: &str = "shipped_traces_replay_deterministically";
    let zstd = Command::new("zstd").arg("--version").output().is_ok();
    if !can_run(TEST, (!zstd).then_some("zstd is not installed")) {
        return;
    }
    for (name, expected) in SAYS {
        let trace = repo().join(format!("data/traces/{name}.jsonl.zst"));
        let size = std::fs::metadata(&trace).unwrap().len();
        assert!(size <= 1_000_000, "{}: {size} bytes", trace.display());
        let (version, types) = says(&trace);
        assert_eq!(version, 2, "{}: record it again", trace.display());
        for what in expected {
            assert!(types.contains(*what), "{name}: no {what} in {types:?}");
        }
        check_trace(&trace);
    }
}

#[test]
fn a_compressed_trace_replays_as_the_plain_one_whatever_its_name() {
    const TEST: &str = "a_compressed_trace_replays_as_the_plain_one_whatever_its_name";
    let zstd = Command::new("zstd").arg("--version").output().is_ok();
    if !can_run(TEST, (!zstd).then_some("zstd is not installed")) {
        return;
    }
    let plain = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cmd/files.in/trace.jsonl");
    let dir = tempfile::tempdir().unwrap();
    // No .zst in the name: the reader goes by the zstd magic, not the extension.
    let packed = dir.path().join("trace.jsonl");
    let status = Command::new("zstd")
        .args(["-q", "-o"])
        .arg(&packed)
        .arg(&plain)
        .status()
        .unwrap();
    assert!(status.success());
    assert_ne!(
        std::fs::read(&packed).unwrap(),
        std::fs::read(&plain).unwrap()
    );
    assert_eq!(replay(&packed), replay(&plain));
}

#[test]
fn recording_script_parts_run_at_small_scale() {
    const TEST: &str = "recording_script_parts_run_at_small_scale";
    // The script needs root: fanotify, and PostgreSQL under its own user.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if !can_run(TEST, (!root).then_some("needs root")) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(repo().join("scripts/record-workloads.sh"))
        .env("DURATION", "3")
        .env("SCALE", "1")
        .env("ROTATE", "1")
        .env("OUT", out.path())
        .env("BIN", env!("CARGO_BIN_EXE_migrate-native"))
        .status()
        .unwrap();
    assert!(status.success(), "record-workloads.sh: {status}");
    for (name, _) in SAYS {
        let trace = out.path().join(format!("{name}.jsonl.zst"));
        check_trace(&trace);
        say(&format!(
            "{TEST}: {name}: {:?} (files, writes)",
            records(&trace)
        ));
    }
}
