//! `--pid`: attach to a running process, then detach on SIGINT and leave it running.

use std::process::Command;
use std::time::Duration;

use precopy_core::dataset::Kind;
use precopy_trace::Target;

use crate::common::*;

#[test]
fn attaches_and_detaches_leaving_the_process_running() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    std::fs::write(dir.join("ro"), "x").unwrap();
    // Opens `held` before we attach; writes it every 20 ms for about 1.5 s, then exits 7.
    let script = "exec 3>> held 4< ro; i=0; while [ $i -lt 75 ]; do printf x >&3; sleep 0.02; i=$((i+1)); done; exit 7";
    let mut app = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(&dir)
        .spawn()
        .unwrap();
    let pid = app.id() as i32;
    // Attach once `held` is open (fd 3).
    while std::fs::read_link(format!("/proc/{pid}/fd/3")).is_err() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let tracer_dir = dir.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let tracer = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tx.send(unsafe { libc::pthread_self() }).unwrap();
        trace_with(&tracer_dir, Target::Pid(pid), false)
    });
    let thread = rx.recv().unwrap();
    // Detach once the tracer is attached and the application has written ten more times.
    let status = || std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let traced = || {
        status()
            .lines()
            .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"))
    };
    while !traced() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let written = || std::fs::metadata(dir.join("held")).map_or(0, |m| m.len());
    let at_attach = written();
    while written() < (at_attach + 10).min(75) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Ctrl-C to the tracer (the thread blocked in waitpid).
    // SAFETY: the thread is alive until it is joined below.
    unsafe { libc::pthread_kill(thread, libc::SIGINT) };
    let out = tracer.join().unwrap();
    assert!(out.detached);
    assert_eq!(out.exit, None);
    let rows = files(&dir, &out);
    assert_eq!(rows[0].0, "held");
    assert_eq!(rows[0].1, Kind::ReadWrite);
    assert!(rows[0].2 >= 5, "{rows:?}");
    assert_eq!(rows[1], row("ro", Kind::ReadOnly, 0));
    // The process finished its work normally after the detach.
    let status = app.wait().unwrap();
    assert_eq!(status.code(), Some(7));
    assert_eq!(std::fs::read(dir.join("held")).unwrap().len(), 75);
}
