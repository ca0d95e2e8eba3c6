//! Stop-free identification (`Identify::Cgroup`): the tracer's known programs classify as under
//! ptrace, and a process outside the application's cgroup is not taken for the application.
//! Needs root (fanotify, cgroups and the proc connector): without it each test prints why it is
//! skipped, and fails instead under `CI=true`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use precopy_core::dataset::Kind;
use precopy_trace::paths::PathFilter;
use precopy_trace::{record, Identify, Target, TraceConfig, TraceOutput};

use crate::common::*;

/// Runs `sh -c SCRIPT` in `dir` identified `identify`; `None` (with a note) where the stop-free
/// mode is not permitted.
fn identify(dir: &Path, script: &str, identify: Identify) -> Option<TraceOutput> {
    let script = format!("cd '{}' || exit 99\n{script}", dir.display());
    let command = ["sh", "-c", &script].map(OsString::from).to_vec();
    let config = TraceConfig {
        filter: PathFilter::new(&[format!("{}/**", dir.display())], &[]).unwrap(),
        identify,
        ..TraceConfig::new(Target::Command(command))
    };
    match record(&config) {
        Ok(output) => Some(output),
        Err(e) if identify == Identify::Cgroup && !root() => {
            let why = format!("stop-free identification needs root: {e}");
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "under CI: {why}"
            );
            eprintln!("SKIPPED: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// The trace of a stop-free run, or `None` (with a note) where it is not permitted and not CI.
fn permitted(output: Result<TraceOutput, precopy_trace::TraceError>) -> Option<TraceOutput> {
    match output {
        Ok(output) => Some(output),
        Err(e) if !root() && std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED: stop-free identification needs root: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn kinds(dir: &Path, output: &TraceOutput) -> BTreeMap<String, Kind> {
    files(dir, output)
        .into_iter()
        .map(|(name, kind, _)| (name, kind))
        .collect()
}

/// The scripts of spawn.rs, and the helper programs, each run once per mode.
#[test]
fn the_known_programs_classify_as_under_ptrace() {
    let Some(_lock) = tracing() else { return };
    let writer = example("writer");
    let scripts = [
        "read line < in.txt; printf a > out.txt; printf b >> log; printf c >> log; cat in.txt >/dev/null".to_string(),
        "{ sh -c 'sh -c \"printf a >> deep\"; printf b >> deep' & wait; }; (printf c >> sub); env printf d >> deep".to_string(),
        "exec 3>> dup.log; printf a >&3; sh -c 'printf b >&3'; exec 4>&3 3>&-; printf c >&4; exec 4>&-".to_string(),
        // No rename: this mode names a file as it was when its event was read (docs/tracer.md).
        "mkdir -p a/b && cd a/b && printf x > ../rel && cd .. && printf y >> ./b/../rel2".to_string(),
        ": > created; cat in.txt > copy; exec 5<> held; exec 5>&-".to_string(),
        format!("{} . 400 8 4", writer.display()),
        // Threads that open files themselves, and execs.
        "python3 -c \"import threading as t; w = t.Thread(target=lambda: open('thread.out', 'w').write('x')); r = t.Thread(target=lambda: open('in.txt').read()); w.start(); r.start(); w.join(); r.join()\"".to_string(),
        "sh -c 'exec printf z > execd'; exec cat in.txt > /dev/null".to_string(),
    ];
    for script in &scripts {
        let (_ptrace_tmp, ptrace_dir) = temp();
        let (_free_tmp, free_dir) = temp();
        for dir in [&ptrace_dir, &free_dir] {
            std::fs::write(dir.join("in.txt"), "input\n").unwrap();
        }
        let under_ptrace = identify(&ptrace_dir, script, Identify::Ptrace).unwrap();
        let Some(stop_free) = identify(&free_dir, script, Identify::Cgroup) else {
            return;
        };
        assert_eq!(stop_free.manifest.identified_with, "cgroup");
        assert_eq!(
            kinds(&free_dir, &stop_free),
            kinds(&ptrace_dir, &under_ptrace),
            "{script}\n{}",
            stop_free.trace
        );
        assert_eq!(stop_free.exit, under_ptrace.exit, "{script}");
    }
}

/// Files written at once after their open, before the reader can have put `FAN_MODIFY` on them
/// (the open's event is read later): their writes are in the trace all the same, told by the
/// modification time. A file only read, last modified long before, has none.
#[test]
fn a_write_before_the_files_mark_is_counted() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    let input = dir.join("in.txt");
    std::fs::write(&input, "input\n").unwrap();
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    (std::fs::File::options().write(true).open(&input).unwrap())
        .set_modified(long_ago)
        .unwrap();
    let script = "for i in 1 2 3 4 5 6 7 8; do printf x > once$i; done; cat in.txt > /dev/null";
    let Some(output) = identify(&dir, script, Identify::Cgroup) else {
        return;
    };
    let found = files(&dir, &output);
    let written: Vec<_> = (found.iter())
        .filter(|(name, kind, writes)| {
            name.starts_with("once") && *kind == Kind::ReadWrite && *writes >= 1
        })
        .collect();
    assert_eq!(written.len(), 8, "{found:?}");
    assert!(
        found.contains(&row("in.txt", Kind::ReadOnly, 0)),
        "{found:?}"
    );
}

/// A process outside the application's cgroup writes a file the application reads: the write
/// is not the application's.
#[test]
fn a_write_by_another_process_is_not_the_applications() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    std::fs::write(dir.join("shared"), "x").unwrap();
    // The application reads `shared`, then waits for `go`; we write `shared` and `other`
    // meanwhile, then let it end.
    let script =
        "cat shared > /dev/null; printf ready > ready; while [ ! -e go ]; do sleep 0.01; done";
    let dir2 = dir.clone();
    let outsider = std::thread::spawn(move || {
        while !dir2.join("ready").exists() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::write(dir2.join("shared"), "changed").unwrap();
        std::fs::write(dir2.join("other"), "not the application's").unwrap();
        std::fs::write(dir2.join("go"), "").unwrap();
    });
    let Some(output) = identify(&dir, script, Identify::Cgroup) else {
        return;
    };
    outsider.join().unwrap();
    let found = kinds(&dir, &output);
    assert_eq!(found.get("shared"), Some(&Kind::ReadOnly), "{found:?}");
    assert_eq!(found.get("ready"), Some(&Kind::ReadWrite), "{found:?}");
    assert!(!found.contains_key("other"), "{found:?}");
    assert!(!found.contains_key("go"), "{found:?}");
    assert!(output.manifest.outside_events > 0);
}

/// Hundreds of processes that each write a file and are gone (exited and reaped) at once, on a
/// busy reader: every file is placed, none is lost (the race the fork notices close).
#[test]
fn short_lived_processes_are_all_placed() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    std::fs::write(dir.join("in.txt"), "input\n").unwrap();
    const CHILDREN: usize = 300;
    let script = format!(
        "i=0; while [ $i -lt {CHILDREN} ]; do i=$((i+1)); sh -c \"printf x > f$i; cat in.txt\" > /dev/null; done"
    );
    let Some(output) = identify(&dir, &script, Identify::Cgroup) else {
        return;
    };
    let found = kinds(&dir, &output);
    let written = found.values().filter(|k| **k == Kind::ReadWrite).count();
    assert_eq!(written, CHILDREN, "{found:?}");
    assert_eq!(found.get("in.txt"), Some(&Kind::ReadOnly));
    assert_eq!(found.len(), CHILDREN + 1);
    assert_eq!(output.manifest.forks_lost, 0);
}

/// One process creates a file, renames it over one it read, creates another and unlinks it:
/// the trace says so, as under ptrace (the directory events). The process waits on a FIFO
/// until the unlink is seen, so it is alive when its events are attributed.
#[test]
fn creations_renames_and_unlinks_are_told_without_stops() {
    use precopy_core::trace::Trace;
    use precopy_trace::decode::FileEvent;
    use precopy_trace::{record_observed, Observed};

    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    std::fs::write(dir.join("b"), "old").unwrap();
    let go = dir.join("go");
    nix::unistd::mkfifo(&go, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let program = "import os\n\
        open('b').read()\n\
        with open('a.tmp', 'w') as f: f.write('new-content')\n\
        os.rename('a.tmp', 'b')\n\
        with open('log', 'w') as f: f.write('x')\n\
        os.unlink('log')\n\
        open('go').read()\n";
    let script = format!("cd '{}' && exec python3 -c \"{program}\"", dir.display());
    let config = TraceConfig {
        filter: PathFilter::new(&[format!("{}/**", dir.display())], &[]).unwrap(),
        identify: Identify::Cgroup,
        ..TraceConfig::new(Target::Command(
            ["sh", "-c", &script].map(OsString::from).to_vec(),
        ))
    };
    let log = dir.join("log").display().to_string();
    let output = record_observed(&config, &mut |observed| {
        if let Observed::File {
            event: FileEvent::Unlinked { path, .. },
            ..
        } = observed
        {
            if *path == log {
                // Blocks until the program opens the FIFO: on a thread of its own.
                let go = go.clone();
                std::thread::spawn(move || std::fs::write(go, "go"));
            }
        }
    });
    let Some(output) = permitted(output) else {
        return;
    };
    assert_eq!(output.exit, Some(precopy_trace::stop::Exit::Code(0)));
    let trace = Trace::parse(&output.trace).unwrap();
    assert_eq!(
        lifecycle(&trace),
        ["create a.tmp", "rename a.tmp b", "create log", "unlink log"],
        "{}",
        output.trace
    );
    let b = trace.files.iter().find(|f| f.path.ends_with("/b")).unwrap();
    assert!(!b.new, "b was there when tracing began\n{}", output.trace);
}

/// The lifecycle records of a trace, by file name: "create a", "rename a b", "unlink a".
fn lifecycle(trace: &precopy_core::trace::Trace) -> Vec<String> {
    use precopy_core::trace::Change;
    let name = |id: u32| trace.files[id as usize].path.rsplit('/').next().unwrap();
    (trace.changes.iter())
        .filter_map(|c| match *c {
            Change::Create { id, .. } => Some(format!("create {}", name(id))),
            Change::Unlink { id, .. } => Some(format!("unlink {}", name(id))),
            Change::Rename { from, to, .. } => Some(format!("rename {} {}", name(from), name(to))),
            Change::Size { .. } => None,
        })
        .collect()
}

/// A service's log rotated as logrotate does it: another process renames the log the
/// application writes, then the application opens a new one. The rename is the application's
/// file moving, whoever made it, so the trace has it (it was dropped as an outsider's event,
/// and the rotated log replayed as a file written from nowhere). The application waits on
/// FIFOs, so each step happens after the one before is seen.
#[test]
fn a_rename_of_the_applications_file_by_another_process_is_told() {
    use precopy_core::trace::Trace;
    use precopy_trace::decode::FileEvent;
    use precopy_trace::{record_observed, Observed};

    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    for fifo in ["rotated", "done"] {
        nix::unistd::mkfifo(&dir.join(fifo), nix::sys::stat::Mode::S_IRWXU).unwrap();
    }
    let script = format!(
        "cd '{}' && printf a >> log && read x < rotated && printf b >> log && read x < done",
        dir.display()
    );
    let config = TraceConfig {
        filter: PathFilter::new(&[format!("{}/**", dir.display())], &[]).unwrap(),
        identify: Identify::Cgroup,
        ..TraceConfig::new(Target::Command(
            ["sh", "-c", &script].map(OsString::from).to_vec(),
        ))
    };
    let (log, rotated) = (dir.join("log"), dir.join("log.1"));
    let mut created = 0;
    let output = record_observed(&config, &mut |observed| {
        if let Observed::File {
            event: FileEvent::Created { path, .. },
            ..
        } = observed
        {
            if *path == log.display().to_string() {
                created += 1;
                // FIFO writes block until the program opens them: on threads of their own.
                let (log, rotated, dir) = (log.clone(), rotated.clone(), dir.clone());
                std::thread::spawn(move || match created {
                    1 => {
                        std::fs::rename(log, rotated).unwrap();
                        std::fs::write(dir.join("rotated"), "go\n").unwrap();
                    }
                    _ => std::fs::write(dir.join("done"), "go\n").unwrap(),
                });
            }
        }
    });
    let Some(output) = permitted(output) else {
        return;
    };
    assert_eq!(output.exit, Some(precopy_trace::stop::Exit::Code(0)));
    let trace = Trace::parse(&output.trace).unwrap();
    assert_eq!(
        lifecycle(&trace),
        ["create log", "rename log log.1", "create log"],
        "{}",
        output.trace
    );
    assert!(output.manifest.outside_events > 0);
}

/// `--tree`: the files of a directory are in the trace from its start, opened or not, and
/// the unlink of one the application never opened is followed, in both identification modes.
#[test]
fn a_trees_files_are_in_the_trace_opened_or_not() {
    use precopy_core::trace::Trace;

    let Some(_lock) = tracing() else { return };
    for mode in [Identify::Ptrace, Identify::Cgroup] {
        let (_tmp, dir) = temp();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("read"), "r").unwrap();
        std::fs::write(dir.join("sub/cold"), "never opened").unwrap();
        std::fs::write(dir.join("stale"), "removed unopened").unwrap();
        let script = format!(
            "cd '{}' && cat read > /dev/null && rm stale && printf n > new",
            dir.display()
        );
        let config = TraceConfig {
            filter: PathFilter::new(&[format!("{}/**", dir.display())], &[]).unwrap(),
            identify: mode,
            trees: vec![dir.clone()],
            ..TraceConfig::new(Target::Command(
                ["sh", "-c", &script].map(OsString::from).to_vec(),
            ))
        };
        let output = match precopy_trace::record(&config) {
            Ok(output) => output,
            Err(e) if mode == Identify::Cgroup && !root() => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "under CI: {e}"
                );
                eprintln!("SKIPPED: stop-free identification needs root: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let trace = Trace::parse(&output.trace).unwrap();
        let files: Vec<(String, u64, Kind, bool)> = (trace.files.iter())
            .map(|f| {
                let name = f.path.strip_prefix(&format!("{}/", dir.display())).unwrap();
                (name.to_string(), f.size, f.kind, f.new)
            })
            .collect();
        assert_eq!(
            files,
            [
                ("read".to_string(), 1, Kind::ReadOnly, false),
                ("stale".to_string(), 16, Kind::ReadOnly, false),
                ("sub/cold".to_string(), 12, Kind::ReadOnly, false),
                ("new".to_string(), 0, Kind::ReadWrite, true),
            ],
            "{mode:?}\n{}",
            output.trace
        );
        assert_eq!(
            lifecycle(&trace),
            ["unlink stale", "create new"],
            "{mode:?}\n{}",
            output.trace
        );
    }
}
