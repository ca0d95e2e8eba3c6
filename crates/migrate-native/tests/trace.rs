//! `migrate-native trace` end to end: outputs, exit status, replay in the simulator, and
//! attach/detach with a real Ctrl-C. The tracer's behaviour in depth is tested in
//! crates/precopy-trace/tests. Needs ptrace (root in CI); skipped with a message without it,
//! except under `CI=true`, where that fails.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use precopy_core::trace::{Change, Trace};

#[allow(dead_code)]
mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_migrate-native"))
}

/// False (with a message) when ptrace is not available here.
fn ptrace_available(dir: &Path) -> bool {
    let out = bin()
        .args(["trace", "--out"])
        .arg(dir.join("probe.jsonl"))
        .args(["--", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("not permitted") {
        let why = format!("ptrace is not available here: {stderr}");
        return common::can_run("migrate-native trace", Some(&why));
    }
    assert!(out.status.success(), "{stderr}");
    true
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn records_a_replayable_trace_and_passes_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    if !ptrace_available(&dir) {
        return;
    }
    // data is there when tracing begins (a trace of files all created while tracing has
    // nothing to migrate at its start, and does not replay).
    std::fs::write(dir.join("data"), "old").unwrap();
    let script = format!(
        "cd '{}' || exit 99; printf a > data; sleep 0.3; printf b >> data; printf c >&2; exit 4",
        dir.display()
    );
    let (trace, manifest) = (dir.join("t.jsonl"), dir.join("m.json"));
    let out = run(bin()
        .args(["trace", "--period", "100ms", "--include"])
        .arg(format!("{}/**", dir.display()))
        .arg("--out")
        .arg(&trace)
        .arg("--manifest")
        .arg(&manifest)
        .args(["--", "sh", "-c", &script]));
    assert_eq!(out.status.code(), Some(4));
    // The application's stderr is untouched; the summary follows it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with('c'), "{stderr}");
    assert!(stderr.contains("1 read-write"), "{stderr}");

    let parsed = Trace::parse(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    assert_eq!(parsed.files.len(), 1);
    assert_eq!(parsed.files[0].writes.len(), 2);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let file = &json["files"][0];
    assert_eq!(file["kind"], "rw");
    assert_eq!(file["write_calls"], 2);
    assert_eq!(file["size"], 2);
    // Two writes 0.3 s apart fall in different 100 ms periods.
    assert_eq!(file["periods"].as_array().unwrap().len(), 2, "{file}");

    let sim = run(bin().args(["simulate", "--dataset"]).arg(&trace));
    assert!(sim.status.success());
}

#[test]
fn ctrl_c_detaches_and_leaves_the_application_running() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    if !ptrace_available(&dir) {
        return;
    }
    let script =
        "i=0; while [ $i -lt 60 ]; do printf x >> ticks; sleep 0.02; i=$((i+1)); done; exit 7";
    let mut app = Command::new("sh")
        .args(["-c", script])
        .current_dir(&dir)
        .spawn()
        .unwrap();
    let tracer = bin()
        .args(["trace", "--pid", &app.id().to_string(), "--include"])
        .arg(format!("{}/**", dir.display()))
        .arg("--out")
        .arg(dir.join("t.jsonl"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let interrupted = Command::new("kill")
        .args(["-INT", &tracer.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let out = tracer.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("detached"), "{stderr}");
    let trace = std::fs::read_to_string(dir.join("t.jsonl")).unwrap();
    let parsed = Trace::parse(&trace).unwrap();
    assert!(parsed.files[0].path.ends_with("/ticks"));
    assert!(!parsed.files[0].writes.is_empty());
    assert_eq!(app.wait().unwrap().code(), Some(7));
    assert_eq!(std::fs::read(dir.join("ticks")).unwrap().len(), 60);
}

#[test]
fn a_missing_pid_is_bad_input() {
    let out = bin()
        .args(["trace", "--pid", "2147483000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process"));
}

#[test]
fn without_root_the_default_monitor_falls_back_to_ptrace() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    if !ptrace_available(&dir) {
        return;
    }
    // As root, drop to `nobody` (no CAP_SYS_ADMIN, so no fanotify); otherwise we already lack it.
    let root = rustix::process::geteuid().is_root();
    let mut cmd = if root {
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_migrate-native"));
        c
    } else {
        bin()
    };
    let script = format!("printf x >> '{}/data'", dir.display());
    let out = run(cmd
        .args(["trace", "--include"])
        .arg(format!("{}/**", dir.display()))
        .arg("--manifest")
        .arg(dir.join("m.json"))
        .arg("--out")
        .arg(dir.join("t.jsonl"))
        .args(["--", "sh", "-c", &script]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("using --write-monitor ptrace"), "{stderr}");
    // The default identification (stop-free where permitted) falls back to ptrace, said so.
    assert!(stderr.contains("using --identify-with ptrace"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m.json")).unwrap()).unwrap();
    assert_eq!(json["write_monitor"], "ptrace");
    assert_eq!(json["identified_with"], "ptrace");
    assert_eq!(json["files"][0]["write_calls"], 1);
    // An explicit choice is kept: no silent fallback.
    if root {
        let explicit = run(Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_migrate-native"))
            .args(["trace", "--write-monitor", "fanotify", "--out"])
            .arg(dir.join("t2.jsonl"))
            .args(["--", "true"]));
        assert!(!explicit.status.success());
        assert!(!dir.join("t2.jsonl").exists());
        let stop_free = run(Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_migrate-native"))
            .args(["trace", "--identify-with", "cgroup", "--out"])
            .arg(dir.join("t3.jsonl"))
            .args(["--", "true"]));
        assert!(!stop_free.status.success());
        assert!(!dir.join("t3.jsonl").exists());
    }
}

/// What happened to the files, by path: the trace's changes (creations, renames, unlinks), with
/// each size change as `size PATH BYTES`.
fn changes(trace: &Trace) -> Vec<String> {
    let name = |id: u32| {
        let path = &trace.files[id as usize].path;
        path.rsplit('/').next().unwrap().to_string()
    };
    trace
        .changes
        .iter()
        .map(|c| match *c {
            Change::Create { id, .. } => format!("create {}", name(id)),
            Change::Unlink { id, .. } => format!("unlink {}", name(id)),
            Change::Rename { from, to, .. } => format!("rename {} {}", name(from), name(to)),
            Change::Size { id, size, .. } => format!("size {} {size}", name(id)),
        })
        .collect()
}

#[test]
fn creations_renames_over_a_file_and_unlinks_are_recorded_alike_in_both_write_monitors() {
    let root = rustix::process::geteuid().is_root();
    let test = "creations_renames_and_unlinks";
    if !common::can_run(test, (!root).then_some("needs root (fanotify)")) {
        return;
    }
    for monitor in ["ptrace", "fanotify"] {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        std::fs::write(dir.join("b"), "old").unwrap();
        // Reads b, creates a.tmp and writes 11 bytes to it, renames it over b, creates log,
        // writes 1 byte to it and unlinks it.
        let script = format!(
            "cd '{}' && cat b >/dev/null && printf new-content > a.tmp && mv a.tmp b \
             && printf x > log && rm log",
            dir.display()
        );
        let trace = dir.join("t.jsonl");
        let out = run(bin()
            // Identified under ptrace (sizes taken at each call); the stop-free mode, whose sizes
            // are taken when its events are read, has its own test (precopy-trace stopfree.rs).
            .args([
                "trace",
                "--identify-with",
                "ptrace",
                "--write-monitor",
                monitor,
            ])
            .arg("--include")
            .arg(format!("{}/**", dir.display()))
            .arg("--out")
            .arg(&trace)
            .args(["--", "sh", "-c", &script]));
        assert!(out.status.success(), "{monitor}");
        let parsed = Trace::parse(&std::fs::read_to_string(&trace).unwrap()).unwrap();
        let lifecycle: Vec<String> = changes(&parsed)
            .into_iter()
            .filter(|c| !c.starts_with("size"))
            .collect();
        assert_eq!(
            lifecycle,
            ["create a.tmp", "rename a.tmp b", "create log", "unlink log"],
            "{monitor}"
        );
        let new: Vec<(&str, bool)> = (parsed.files.iter())
            .map(|f| (f.path.rsplit('/').next().unwrap(), f.new))
            .collect();
        assert_eq!(
            new,
            [("b", false), ("a.tmp", true), ("log", true)],
            "{monitor}"
        );
        assert_eq!(parsed.files[0].size, 3, "{monitor}: b when first seen");
        if monitor == "ptrace" {
            // Every call is seen where it happens: a.tmp grows to 11 bytes before its rename,
            // log to 1 byte before its unlink.
            assert_eq!(
                changes(&parsed),
                [
                    "create a.tmp",
                    "size a.tmp 11",
                    "rename a.tmp b",
                    "create log",
                    "size log 1",
                    "unlink log"
                ]
            );
        }
        // Replayed: the old b until the rename, the new file from its creation on (now at b),
        // log from its creation to its unlink.
        let lives: Vec<(String, bool)> = (parsed.contents().iter())
            .map(|c| {
                let name = c.spec.path.rsplit('/').next().unwrap().to_string();
                (name, c.life.1.is_finite())
            })
            .collect();
        assert_eq!(
            lives,
            [
                ("b".to_string(), true),
                ("a.tmp".to_string(), false),
                ("log".to_string(), true)
            ],
            "{monitor}"
        );
        let sim = run(bin().args(["simulate", "--dataset"]).arg(&trace));
        assert!(sim.status.success(), "{monitor}");
    }
}
