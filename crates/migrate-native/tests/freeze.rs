//! The final copy freezes the application with its cgroup (issue 13): it makes no progress while
//! frozen, and neither it nor its parent can tell. The application is `WATCHED`: a parent that
//! records every `waitpid` result it gets for its child (WUNTRACED | WCONTINUED: a SIGSTOP or
//! SIGCONT would show), and a child that records every signal it receives and counts, in a file,
//! until told to quit by a file (so no signal is needed to end it).
//!
//! Needs root (cgroups) and python3: without them each test prints "SKIPPED: …", and under
//! `CI=true` fails instead.

#[allow(dead_code)]
mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use precopy_net::app::App;
use precopy_trace::cgroup::{self, Cgroup};

const BIN: &str = env!("CARGO_BIN_EXE_migrate-native");
const TOKEN: &str = "freeze-test-token-0123456789abcdef";

/// `python3 -c WATCHED DIR`: writes DIR/count (atomically, by rename) about every millisecond,
/// DIR/signals (one line per signal the counting child gets) and DIR/waits (one line per
/// `waitpid` result of its parent); ends when DIR/quit exists.
const WATCHED: &str = r#"
import os, signal, sys, time
d = sys.argv[1]
def log(name, line):
    with open(os.path.join(d, name), "a") as f:
        f.write(line + "\n")
child = os.fork()
if child == 0:
    for s in signal.valid_signals():
        try:
            signal.signal(s, lambda n, _: log("signals", signal.Signals(n).name))
        except (OSError, ValueError, RuntimeError):
            pass  # SIGKILL, SIGSTOP and the C library's own cannot be caught
    i = 0
    while not os.path.exists(os.path.join(d, "quit")):
        i += 1
        with open(os.path.join(d, "count.tmp"), "w") as f:
            f.write(str(i))
        os.replace(os.path.join(d, "count.tmp"), os.path.join(d, "count"))
        time.sleep(0.001)
    os._exit(0)
while True:
    _, status = os.waitpid(child, os.WUNTRACED | os.WCONTINUED)
    if os.WIFSTOPPED(status):
        log("waits", "stopped %d" % os.WSTOPSIG(status))
    elif os.WIFCONTINUED(status):
        log("waits", "continued")
    else:
        log("waits", "exited %d" % os.waitstatus_to_exitcode(status))
        break
"#;

/// Root, python3 and a cgroup v2 hierarchy, or a skip (a failure under `CI=true`).
fn can_run(test: &str) -> bool {
    let lacking = if !rustix::process::geteuid().is_root() {
        Some("needs root (cgroups)".to_string())
    } else if Command::new("python3").arg("-c").arg("").status().is_err() {
        Some("python3 is not installed".to_string())
    } else {
        cgroup::mount().err().map(|e| e.to_string())
    };
    common::can_run(test, lacking.as_deref())
}

/// A fresh directory for the watched program, or `None` if the test is to skip (see [`can_run`]).
fn tempdir_if_can_run(test: &str) -> Option<tempfile::TempDir> {
    can_run(test).then(|| tempfile::tempdir().unwrap())
}

fn watched_argv(dir: &Path) -> Vec<String> {
    vec![
        "python3".into(),
        "-c".into(),
        WATCHED.into(),
        dir.display().to_string(),
    ]
}

/// `WATCHED DIR` as a plain child of the test.
fn watched_command(dir: &Path) -> Command {
    let argv = watched_argv(dir);
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}

/// Whether a child of the test still runs.
fn running(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

fn count(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join("count"))
        .ok()?
        .parse()
        .ok()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// Waits (polling, without a time limit: the condition is an event) until `done` holds;
/// `alive` says whether waiting still makes sense.
fn wait_until(what: &str, mut alive: impl FnMut() -> bool, mut done: impl FnMut() -> bool) {
    while !done() {
        assert!(alive(), "gave up waiting for {what}: the program is gone");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The program running on its own (not under test): a clock that only moves while time passes
/// for processes that are not frozen.
struct Witness {
    child: Child,
    dir: tempfile::TempDir,
}

impl Witness {
    fn start() -> Witness {
        let dir = tempfile::tempdir().unwrap();
        let child = watched_command(dir.path()).spawn().unwrap();
        let mut witness = Witness { child, dir };
        witness.advance(1);
        witness
    }

    /// Returns once the witness has counted `n` more.
    fn advance(&mut self, n: u64) {
        let dir = self.dir.path();
        let from = count(dir).unwrap_or(0);
        let child = &mut self.child;
        wait_until(
            "the witness",
            || running(child),
            || count(dir).is_some_and(|c| c >= from + n),
        );
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.path().join("quit"), "");
        let _ = self.child.wait();
    }
}

fn null() -> std::os::fd::OwnedFd {
    std::fs::File::create("/dev/null").unwrap().into()
}

/// Waits for the watched program's first count, while `alive`.
fn first_count(dir: &Path, alive: impl FnMut() -> bool) {
    wait_until("the first count", alive, || count(dir).is_some());
}

/// Lets the watched program end by itself and returns what its parent saw.
fn quit(dir: &Path, alive: impl FnMut() -> bool) -> String {
    std::fs::write(dir.join("quit"), "").unwrap();
    wait_until("the program's end", alive, || {
        read(dir, "waits").contains("exited")
    });
    read(dir, "waits")
}

/// `WATCHED DIR` spawned by `App` (in a cgroup of its own), once it has counted; returns it and
/// its cgroup's path.
fn spawn_watched(dir: &Path) -> (App, PathBuf) {
    let mut app = App::spawn(&watched_argv(dir), null()).unwrap();
    let group = app.cgroup().unwrap().path().to_path_buf();
    first_count(dir, || app.exited().is_none());
    (app, group)
}

#[test]
fn a_frozen_application_makes_no_progress_and_never_knows() {
    let Some(tmp) = tempdir_if_can_run("a_frozen_application_makes_no_progress_and_never_knows")
    else {
        return;
    };
    let dir = tmp.path();
    let (mut app, group) = spawn_watched(dir);
    assert!(
        app.stopping().contains("cgroup freezer"),
        "{}",
        app.stopping()
    );
    let mut witness = Witness::start();
    for _ in 0..3 {
        app.stop().unwrap();
        assert!(read(&group, "cgroup.events").contains("frozen 1"));
        let at_stop = count(dir);
        // Long enough for the application to have counted 50 more, had it run.
        witness.advance(50);
        assert_eq!(count(dir), at_stop, "it counted while frozen");
        assert!(read(&group, "cgroup.events").contains("frozen 1"));
        app.resume().unwrap();
        wait_until(
            "a count after the thaw",
            || app.exited().is_none(),
            || count(dir) > at_stop,
        );
    }
    let waits = quit(dir, || app.exited().is_none());
    assert_eq!(waits, "exited 0\n", "its parent saw a stop or a continue");
    assert_eq!(read(dir, "signals"), "", "it received a signal");
    drop(app);
    assert!(!group.exists(), "the cgroup is removed at the end");
}

#[test]
fn left_frozen_it_stays_stopped_and_no_cgroup_is_left() {
    let Some(tmp) = tempdir_if_can_run("left_frozen_it_stays_stopped_and_no_cgroup_is_left") else {
        return;
    };
    let dir = tmp.path();
    let (mut app, group) = spawn_watched(dir);
    let members = app.cgroup().unwrap().procs().unwrap();
    app.stop().unwrap();
    let at_stop = count(dir);
    // `send --then stop` ends here: the application is left stopped, by a signal now.
    app.release().unwrap();
    assert!(!group.exists(), "the cgroup is removed");
    wait_until(
        "every process to stop",
        || true,
        || {
            members.iter().all(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
                stat[stat.rfind(')').unwrap()..].starts_with(") T")
            })
        },
    );
    assert_eq!(count(dir), at_stop, "it ran between the thaw and the stop");
    app.kill().unwrap();
}

#[test]
fn an_attached_tree_is_moved_in_and_back_out() {
    let Some(tmp) = tempdir_if_can_run("an_attached_tree_is_moved_in_and_back_out") else {
        return;
    };
    let dir = tmp.path();
    let mut child = watched_command(dir).spawn().unwrap();
    let pid = child.id();
    let before = cgroup::of_pid(pid).unwrap();
    first_count(dir, || running(&mut child));
    let mut app = App::attach(pid);
    let group = app.cgroup().unwrap().path().to_path_buf();
    assert!(app.cgroup().unwrap().created());
    assert_ne!(group, before);
    // The parent and its counting child, each with all its threads.
    assert_eq!(app.cgroup().unwrap().procs().unwrap().len(), 2);
    app.stop().unwrap();
    let at_stop = count(dir);
    Witness::start().advance(50);
    assert_eq!(count(dir), at_stop, "it counted while frozen");
    app.resume().unwrap();
    app.release().unwrap();
    assert!(!group.exists(), "the cgroup is removed");
    assert_eq!(
        cgroup::of_pid(pid).unwrap(),
        before,
        "moved back where it was"
    );
    let waits = quit(dir, || running(&mut child));
    assert_eq!(waits, "exited 0\n");
    assert_eq!(read(dir, "signals"), "");
}

#[test]
fn a_tree_alone_in_its_cgroup_is_frozen_there() {
    let Some(tmp) = tempdir_if_can_run("a_tree_alone_in_its_cgroup_is_frozen_there") else {
        return;
    };
    let dir = tmp.path();
    let own = Cgroup::for_spawn().unwrap();
    let join = own.join_fd().unwrap();
    let mut command = watched_command(dir);
    // SAFETY: the hook makes one write(2).
    unsafe { command.pre_exec(cgroup::join_hook(&join)) };
    let mut child = command.spawn().unwrap();
    first_count(dir, || running(&mut child));
    let mut app = App::attach(child.id());
    assert_eq!(app.cgroup().unwrap().path(), own.path());
    assert!(!app.cgroup().unwrap().created());
    app.stop().unwrap();
    app.resume().unwrap();
    app.release().unwrap();
    assert!(own.path().exists(), "a cgroup we did not make is left");
    let waits = quit(dir, || running(&mut child));
    assert_eq!(waits, "exited 0\n");
}

/// A migration's set-up: `WORK/app` (the application's directory, empty), a token and a receiver.
struct Migration {
    work: PathBuf,
    dir: PathBuf,
    token: PathBuf,
    daemon: common::Daemon,
    /// Last: the receiver ends before its root goes.
    _tmp: tempfile::TempDir,
}

impl Migration {
    fn new() -> Migration {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().canonicalize().unwrap();
        let dir = work.join("app");
        std::fs::create_dir(&dir).unwrap();
        let token = work.join("token");
        std::fs::write(&token, TOKEN).unwrap();
        let log = work.join("receive.log");
        let daemon = common::Daemon::start("127.0.0.1:0", &work.join("dst"), &token, &log);
        Migration {
            work,
            dir,
            token,
            daemon,
            _tmp: tmp,
        }
    }

    /// `send --to ADDR --json --period 200ms --token-file TOKEN`, the rest for the test to add.
    fn send(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .args([
                "send",
                "--to",
                &self.daemon.addr,
                "--json",
                "--period",
                "200ms",
            ])
            .arg("--token-file")
            .arg(&self.token);
        command
    }
}

/// The application's pid, as `send --json` reports it.
fn reported_pid(json: &serde_json::Value) -> u32 {
    json["metrics"]["dataset"]
        .as_str()
        .and_then(|d| d.strip_prefix("pid "))
        .and_then(|p| p.parse().ok())
        .unwrap()
}

/// `send --rw DIR EXTRA -- WATCHED DIR`, resumed at the source afterwards.
fn send_watched(test: &str, extra: &[&str]) {
    if !can_run(test) {
        return;
    }
    let migration = Migration::new();
    let (work, dir, daemon) = (&migration.work, migration.dir.as_path(), &migration.daemon);
    // Something to pre-copy besides the counter, which is there from the start: the migration
    // may be over before the program has counted.
    std::fs::write(dir.join("data"), vec![7u8; 2_000_000]).unwrap();
    std::fs::write(dir.join("count"), "0").unwrap();
    let (stdout, stderr) = (work.join("send.json"), work.join("send.log"));
    let mut send = migration
        .send()
        .args(["--bwlimit", "40Mbps", "--then", "resume"])
        .arg("--rw")
        .arg(dir)
        .args(extra)
        .arg("--")
        .args(watched_argv(dir))
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // Under the tracer (`--live --identify-with ptrace`), send stays until the application
    // ends: the migration is over once it prints its summary.
    let mut summary = None;
    wait_until(
        "send's summary",
        || true,
        || {
            summary = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&stdout).unwrap())
                .ok()
                .or_else(|| send.try_wait().unwrap().map(|_| serde_json::Value::Null));
            summary.is_some()
        },
    );
    let log = || std::fs::read_to_string(&stderr).unwrap();
    let json = summary.unwrap();
    assert!(json.is_object(), "{}", log());
    assert!(
        log().contains("stop the application with the cgroup freezer"),
        "{}",
        log()
    );
    let pid = reported_pid(&json);
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    // The copy is the source at the stop; the source counted on after the resume.
    let there = |p: &Path| daemon.root.join(p.strip_prefix("/").unwrap());
    let copied = count(&there(dir)).unwrap();
    wait_until("a count after the resume", alive, || {
        count(dir).is_some_and(|c| c > copied)
    });
    let waits = quit(dir, alive);
    assert!(send.wait().unwrap().success(), "{}", log());
    assert_eq!(waits, "exited 0\n", "its parent saw a stop or a continue");
    assert_eq!(read(dir, "signals"), "", "it received a signal");
    let made = cgroup::of_pid(std::process::id())
        .unwrap()
        .join(format!("precopy-{}-0", send.id()));
    assert!(!made.exists(), "send left its cgroup behind");
}

#[test]
fn send_freezes_the_application_for_the_final_copy_unseen() {
    send_watched(
        "send_freezes_the_application_for_the_final_copy_unseen",
        &[],
    );
}

#[test]
fn send_freezes_a_traced_application_unseen() {
    send_watched(
        "send_freezes_a_traced_application_unseen",
        &["--live", "--identify-with", "ptrace"],
    );
}

#[test]
fn send_freezes_an_application_identified_stop_free_unseen() {
    send_watched(
        "send_freezes_an_application_identified_stop_free_unseen",
        &["--live", "--identify-with", "cgroup"],
    );
}

/// `(ppid, state)` of a process, `None` once it is gone.
fn parent_and_state(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 2..].split(' ');
    let state = fields.next()?.chars().next()?;
    Some((fields.next()?.parse().ok()?, state))
}

/// Stop-free, nothing of send outlives the migration: send exits after it, and the application,
/// resumed, runs on (reparented, its output where `--app-output` said) until the test kills it.
#[test]
fn after_a_stop_free_migration_send_exits_and_the_application_runs_on() {
    let test = "after_a_stop_free_migration_send_exits_and_the_application_runs_on";
    if !can_run(test) {
        return;
    }
    let migration = Migration::new();
    let (work, dir) = (&migration.work, migration.dir.as_path());
    // The application's output: a line from its shell, then the counting program's.
    let output = work.join("app.out");
    let mut argv = vec!["sh".to_string(), "-c".into()];
    argv.push(r#"echo started; exec "$@""#.into());
    argv.push("sh".into());
    argv.extend(watched_argv(dir));
    let stderr = work.join("send.log");
    let send = migration
        .send()
        .args(["--identify", "300ms", "--identify-with", "cgroup"])
        .args(["--then", "resume", "--live", "--rw"])
        .arg(dir)
        .arg("--app-output")
        .arg(&output)
        .arg("--")
        .args(&argv)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let send_pid = send.id();
    // Returns once send has exited and nothing holds its stdout.
    let sent = send.wait_with_output().unwrap();
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(sent.status.success(), "{log}");
    assert!(log.contains("stop-free"), "{log}");
    assert!(!log.contains("send ends when it does"), "{log}");
    let json: serde_json::Value = serde_json::from_slice(&sent.stdout).unwrap();
    let pid = reported_pid(&json);
    // send has exited: the application is not its child any more, and it runs on.
    let (parent, state) = parent_and_state(pid).expect("the application is gone");
    assert_ne!(parent, send_pid, "still send's child");
    assert_ne!(state, 'Z', "the application ended with send");
    let at_exit = count(dir).unwrap();
    wait_until(
        "a count after send exited",
        || parent_and_state(pid).is_some_and(|(_, s)| s != 'Z'),
        || count(dir).is_some_and(|c| c > at_exit),
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "started\n");
    // The test ends it: the counting child and its parent.
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    for p in children
        .split_whitespace()
        .map(|c| c.parse::<u32>().unwrap())
        .chain([pid])
    {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(p as i32).unwrap(),
            rustix::process::Signal::KILL,
        )
        .unwrap();
    }
    wait_until(
        "the application's end",
        || true,
        || parent_and_state(pid).is_none_or(|(_, s)| s == 'Z'),
    );
}
