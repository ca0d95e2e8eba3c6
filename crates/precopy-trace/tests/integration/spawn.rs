//! Spawned applications: classification, write counts, process trees, fds, paths, signals.

use precopy_core::dataset::Kind::{ReadOnly as RO, ReadWrite as RW};
use precopy_trace::stop::Exit;

use crate::common::*;

#[test]
fn manifest_is_exactly_the_files_used() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    std::fs::write(dir.join("in.txt"), "input").unwrap();
    std::fs::write(dir.join("untouched"), "x").unwrap();
    let out = sh(
        &dir,
        "read line < in.txt; printf a > out.txt; printf b >> log; printf c >> log; cat in.txt >/dev/null",
    );
    assert_eq!(
        files(&dir, &out),
        [
            row("in.txt", RO, 0),
            row("log", RW, 2),
            row("out.txt", RW, 1)
        ]
    );
    assert_eq!(out.exit, Some(Exit::Code(0)));
    let log = out
        .manifest
        .files
        .iter()
        .find(|f| f.path.ends_with("/log"))
        .unwrap();
    assert_eq!((log.size, log.bytes_written), (2, 2));
    assert!(log.first_access_s <= log.last_access_s);
}

#[test]
fn follows_fork_and_exec_chains() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    let out = sh(
        &dir,
        "{ sh -c 'sh -c \"printf a >> deep\"; printf b >> deep' & wait; }; (printf c >> sub); env printf d >> deep",
    );
    assert_eq!(
        files(&dir, &out),
        [row("deep", RW, 3), row("sub", RW, 1)],
        "{}",
        out.trace
    );
    assert!(
        out.manifest.processes.len() >= 4,
        "{:?}",
        out.manifest.processes
    );
}

#[test]
fn counts_every_thread_of_a_multithreaded_writer() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    let writer = example("writer");
    let args = [
        writer.to_str().unwrap(),
        dir.to_str().unwrap(),
        "400",
        "8",
        "4",
    ];
    let out = trace_in(&dir, &args);
    let rows = files(&dir, &out);
    assert_eq!(rows.len(), 8);
    for (name, kind, calls) in rows {
        assert_eq!((kind, calls), (RW, 50), "{name}");
    }
}

#[test]
fn follows_dup_and_inherited_fds() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    let out = sh(
        &dir,
        "exec 3>> dup.log; printf a >&3; sh -c 'printf b >&3'; exec 4>&3 3>&-; printf c >&4; exec 4>&-; printf d > /dev/null",
    );
    assert_eq!(files(&dir, &out), [row("dup.log", RW, 3)]);
}

#[test]
fn resolves_relative_paths_after_chdir() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    let out = sh(
        &dir,
        "cd a/b && printf x > ../rel && cd .. && printf y >> ./b/../rel2 && mv rel moved && rm rel2",
    );
    let rows = files(&dir, &out);
    // rel: created, written, renamed; moved: renamed onto; rel2: written, unlinked.
    assert_eq!(
        rows,
        [
            row("a/moved", RW, 1),
            row("a/rel", RW, 2),
            row("a/rel2", RW, 2)
        ]
    );
    assert!(out.trace.contains(r#""type":"rename""#));
    assert!(out.trace.contains(r#""type":"unlink""#));
    let moved = out
        .manifest
        .files
        .iter()
        .find(|f| f.path.ends_with("moved"))
        .unwrap();
    assert!(moved.exists && moved.size == 1);
}

#[test]
fn records_rename_and_truncate() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    std::fs::write(dir.join("big"), vec![b'x'; 1000]).unwrap();
    let out = sh(
        &dir,
        "printf new > tmp && mv -f tmp final && truncate -s 10 big",
    );
    let rows = files(&dir, &out);
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["big", "final", "tmp"]);
    assert!(rows.iter().all(|r| r.1 == RW), "{rows:?}");
    let big = out
        .manifest
        .files
        .iter()
        .find(|f| f.path.ends_with("big"))
        .unwrap();
    assert_eq!(big.size, 10);
    assert!(out.trace.contains(r#""op":"truncate""#), "{}", out.trace);
}

#[test]
fn flags_shared_writable_mappings() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    let mapper = example("mapper");
    let file = dir.join("mapped");
    let out = trace_in(&dir, &[mapper.to_str().unwrap(), file.to_str().unwrap()]);
    let m = &out.manifest.files[0];
    assert!(m.mmap_shared && m.kind == RW && m.size == 4096, "{m:?}");
    assert!(out.trace.contains(r#""mmap_shared":true"#));
}

#[test]
fn passes_exit_status_and_signals_through() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    assert_eq!(sh(&dir, "exit 3").exit, Some(Exit::Code(3)));
    assert_eq!(sh(&dir, "kill -TERM $$").exit, Some(Exit::Signal(15)));
    // A handled signal runs its handler; a stopped child is continued (group stop).
    let out = sh(
        &dir,
        "trap 'printf t >> trap' USR1; kill -USR1 $$; sleep 0.2 & p=$!; kill -STOP $p; kill -CONT $p; wait $p; printf $? >> trap",
    );
    assert_eq!(std::fs::read_to_string(dir.join("trap")).unwrap(), "t0");
    assert_eq!(out.exit, Some(Exit::Code(0)));
}

#[test]
fn a_missing_command_exits_127() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    let out = trace_in(&dir, &["/nonexistent/program"]);
    assert_eq!(out.exit, Some(Exit::Code(127)));
}

#[test]
fn children_of_other_threads_are_left_to_them() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    let tracer_dir = dir.clone();
    let tracer = std::thread::spawn(move || sh(&tracer_dir, "sleep 1"));
    // While the tracer waits for its tracees, this thread runs children of its own: the
    // tracer must not reap them (their wait would fail with ECHILD).
    for _ in 0..20 {
        let status = std::process::Command::new("true").status();
        assert!(status.as_ref().is_ok_and(|s| s.success()), "{status:?}");
    }
    assert_eq!(tracer.join().unwrap().exit, Some(Exit::Code(0)));
}

#[test]
fn an_observer_sees_the_start_and_every_event_as_it_happens() {
    use precopy_trace::decode::FileEvent;
    use precopy_trace::{paths::PathFilter, record_observed, Observed, Target, TraceConfig};
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    std::fs::write(dir.join("in"), "x").unwrap();
    let script = format!(
        "cd '{}' && cat in > /dev/null && printf a >> out",
        dir.display()
    );
    let config = TraceConfig {
        filter: PathFilter::new(&[format!("{}/**", dir.display())], &[]).unwrap(),
        write_monitor: precopy_trace::WriteMonitor::Ptrace,
        ..TraceConfig::new(Target::Command(vec![
            "sh".into(),
            "-c".into(),
            script.into(),
        ]))
    };
    let mut seen = Vec::new();
    let out = record_observed(&config, &mut |o| {
        seen.push(match o {
            Observed::Started { pid } => format!("started {pid}"),
            Observed::Fallback { why } | Observed::IdentifyFallback { why } => panic!("{why}"),
            Observed::File { event, .. } => match event {
                FileEvent::Opened { path, write, .. } => format!("open {path} {write}"),
                FileEvent::Updated { path, op, .. } => format!("{op:?} {path}"),
                FileEvent::MappedShared { path, .. } => format!("mapped {path}"),
                FileEvent::Created { path, .. } => format!("create {path}"),
                FileEvent::Unlinked { path, .. } => format!("unlink {path}"),
                FileEvent::Renamed { from, to, .. } => format!("rename {from} {to}"),
            },
        })
    })
    .unwrap();
    let root: i32 = seen[0].strip_prefix("started ").unwrap().parse().unwrap();
    assert!(out.manifest.processes.contains(&root), "{seen:?}");
    let d = dir.display();
    assert_eq!(
        seen[1..],
        [
            format!("open {d}/in false"),
            format!("create {d}/out"),
            format!("open {d}/out true"),
            format!("Write {d}/out"),
        ]
    );
}
