//! Acceptance tests against real applications (SPEC §7: the unit is a tree, and at the stop the
//! destination equals the source, metadata included):
//!
//! - **PostgreSQL 15 under pgbench (TPC-B)**, started by `send --rw DATADIR` itself, twice: with
//!   `--then stop` (the copy is compared with the stopped source, entry by entry, then started
//!   with `pg_ctl` as it is) and with `--then restart` (the receiver starts it). During pre-copy
//!   the database creates a table, checkpoints and truncates `pgbench_history` (new, truncated
//!   and deleted files). At D: `pg_amcheck` is clean, TPC-B's balance invariants hold, and every
//!   commit a client saw acknowledged is there.
//! - **SQLite in WAL mode**, written continuously by a Python script that also rotates a backup
//!   (create, rename, delete) and truncates its WAL: at D the database is intact and holds the
//!   last row the writer saw committed.
//! - **git**, committing in a loop from a shell (four or five short-lived processes a commit) and
//!   packing and pruning every 40 commits: at D, `git fsck --full --strict` is clean and every
//!   commit the writer saw made is in the history.
//!
//! Root only (PostgreSQL runs as `postgres`, `send` watches with fanotify). Without root, or
//! without the programs (`scripts/setup-test-deps.sh` installs them), a test prints SKIPPED and
//! passes, except under `CI=true`, where it fails. The tests run one at a time: each loads both
//! cores and picks its `--bwlimit` from its data's size.

#[allow(dead_code)]
mod common;

use common::say;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal, WaitOptions};

const BIN: &str = env!("CARGO_BIN_EXE_migrate-native");
const TOKEN: &str = "apps-test-token-0123456789abcdef";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// pgbench's scale: 500,000 accounts, a cluster of about 190 MB with its WAL.
const PGBENCH_SCALE: &str = "5";
/// One pass over the cluster at the chosen `--bwlimit` takes this long, so that pre-copy (which
/// sends everything at least once) overlaps the workload for at least `MIN_PRECOPY_S`.
const PASS_S: f64 = 30.0;
const MIN_PRECOPY_S: f64 = 15.0;
/// `send --max-rounds` (periods of 1 s): if the workload dirties data as fast as the link carries
/// it, pre-copy ends here rather than after `send`'s default of 1,000 rounds. Exactness at the
/// stop is what these tests check, not when the policy stops.
const MAX_ROUNDS: &str = "60";
/// The same for git, whose every gc rewrites its packs: the β test never ends its pre-copy.
const GIT_MAX_ROUNDS: &str = "15";
/// Bound on the polls of [`poll_until`] (50 ms apart, plus each poll's own time).
const POLLS: u32 = 1200;

/// Whether the test can run: root, and every program it needs. Under `CI=true` a missing one
/// fails the test (CI runs as root after `scripts/setup-test-deps.sh`); elsewhere it skips.
fn can_run(test: &str, programs: &[String]) -> bool {
    let missing = if !rustix::process::geteuid().is_root() {
        Some("needs root (PostgreSQL runs as `postgres`, fanotify)".to_string())
    } else {
        programs
            .iter()
            .find(|p| !installed(p))
            .map(|p| format!("`{p}` is not installed (scripts/setup-test-deps.sh installs it)"))
    };
    common::can_run(test, missing.as_deref())
}

fn installed(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .any(|dir| dir.join(program).is_file())
}

/// One test at a time: each one's `--bwlimit` and pre-copy length assume the machine is theirs.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A work directory that the `postgres` user can traverse (tempfile makes it 0700).
fn work_dir() -> tempfile::TempDir {
    let work = tempfile::Builder::new()
        .prefix("precopy-apps-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    work
}

/// A test's start, once it can run: the machine to itself, orphans reaped here, a work directory
/// (gone when the `TempDir` is dropped), its canonical path, and an empty directory `name` in it.
fn start_tree(name: &str) -> (MutexGuard<'static, ()>, tempfile::TempDir, PathBuf, PathBuf) {
    let serial = serial();
    adopt_orphans();
    let dir = work_dir();
    let work = dir.path().canonicalize().unwrap();
    let tree = work.join(name);
    std::fs::create_dir(&tree).unwrap();
    (serial, dir, work, tree)
}

/// Makes this process the reaper of what `send` leaves behind, so that the stopped source
/// application can be killed and reaped here: until it is reaped its pid still answers, and a
/// PostgreSQL started on the copy would take the copied `postmaster.pid` as a live server's.
fn adopt_orphans() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
}

/// Runs a command to completion: its stdout, or why it failed (status and stderr).
fn run(command: &mut Command) -> Result<String, String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{command:?}: {}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Polls `ready` every 50 ms until it says yes, at most [`POLLS`] times. Only for events that
/// have nothing to block on (a server starting to accept connections, a first commit); `ready`
/// returns `Err` to give up at once (e.g. the process that should produce the event is gone).
fn poll_until(what: &str, mut ready: impl FnMut() -> Result<bool, String>) -> Result<(), String> {
    for _ in 0..POLLS {
        if ready()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("gave up waiting for {what} after {POLLS} polls"))
}

/// The last `n` lines of a log, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (bound and released; nothing else here picks ports at random).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where `receive --root ROOT` keeps a source path: ROOT plus the absolute path.
fn at_destination(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap())
}

/// The `receive` daemon, on loopback, with its root at `WORK/dst` and a token file.
type Receiver = common::Daemon;

fn receiver(work: &Path) -> Receiver {
    let root = work.join("dst");
    std::fs::create_dir(&root).unwrap();
    let token = work.join("token");
    std::fs::write(&token, TOKEN).unwrap();
    Receiver::start("127.0.0.1:0", &root, &token, &work.join("receive.log"))
}

/// `send`'s options here besides the tree: rate, a period of 1 s, the round cap, what follows.
fn send_options<'a>(bwlimit: &'a str, max_rounds: &'a str, then: &'a str) -> [&'a str; 8] {
    [
        "--bwlimit",
        bwlimit,
        "--period",
        "1s",
        "--max-rounds",
        max_rounds,
        "--then",
        then,
    ]
}

/// `send --json … -- APP` running in the background. Its summary is read on a thread so that a
/// full pipe never blocks it; dropped unfinished, it kills `send` and the application's tree.
struct Sending {
    child: Option<Child>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    log: PathBuf,
}

/// What `send` said and did.
struct Sent {
    ok: bool,
    status: String,
    json: serde_json::Value,
    log: PathBuf,
}

impl Sending {
    fn start(receiver: &Receiver, work: &Path, tree: &Path, args: &[&str], app: &[&str]) -> Self {
        let log = work.join("send.log");
        let mut child = Command::new(BIN)
            .args(["send", "--to", &receiver.addr, "--json", "--token-file"])
            .arg(&receiver.token)
            .arg("--rw")
            .arg(tree)
            .args(args)
            .arg("--")
            .args(app)
            .current_dir(work)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // The application's output goes to send's stderr: a file, so nothing waits on it.
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut pipe = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = std::io::Read::read_to_end(&mut pipe, &mut out);
            out
        });
        Sending {
            child: Some(child),
            stdout: Some(stdout),
            log,
        }
    }

    /// `Err` with send's log once `send` has exited: for polls that wait on its application.
    fn alive(&mut self) -> Result<(), String> {
        match self.child.as_mut().unwrap().try_wait().unwrap() {
            None => Ok(()),
            Some(status) => Err(format!(
                "send exited ({status}) first; its log ends:\n{}",
                tail(&self.log, 40)
            )),
        }
    }

    /// The application: the child `send` spawned.
    fn app_pid(&self) -> u32 {
        let send = self.child.as_ref().unwrap().id();
        children_of(send)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("send has no child process: {}", tail(&self.log, 40)))
    }

    /// Waits for `send` to exit.
    fn finish(mut self) -> Sent {
        let status = self.child.take().unwrap().wait().unwrap();
        let out = self.stdout.take().unwrap().join().unwrap();
        Sent {
            ok: status.success(),
            status: status.to_string(),
            json: serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null),
            log: self.log.clone(),
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            for app in children_of(child.id()) {
                drop(KillTree(app));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Sent {
    /// Fails the test unless `send` exited 0 with a verdict of "all … equal".
    fn assert_equal(&self, test: &str) {
        let verdict = self.json["measured"]["verdict"]
            .as_str()
            .unwrap_or_default();
        assert!(
            self.ok,
            "{test}: send exited with {}; its log ends:\n{}",
            self.status,
            tail(&self.log, 40)
        );
        assert!(
            verdict.starts_with("all ") && verdict.contains("equal"),
            "{test}: send exited 0 but its verdict is {verdict:?}"
        );
    }

    fn metric(&self, name: &str) -> f64 {
        self.json["metrics"][name].as_f64().unwrap_or(f64::NAN)
    }

    /// The figures of the run, for the log.
    fn figures(&self) -> String {
        if self.json.is_null() {
            return "no summary from send".into();
        }
        let m = &self.json["metrics"];
        format!(
            "pre-copy {:.1} s ({} rounds, ended: {}), {:.1} MB pre-copied, {:.1} MB in the final \
             copy, downtime {:.2} s",
            self.metric("precopy_time_s"),
            m["rounds"],
            m["end_reason"]["kind"].as_str().unwrap_or("?"),
            self.metric("precopy_bytes") / 1e6,
            self.metric("final_bytes") / 1e6,
            self.json["measured"]["downtime_s"]
                .as_f64()
                .unwrap_or(f64::NAN),
        )
    }
}

/// `send --rw TREE --then stop -- INTERPRETER SCRIPT TREE RECORD`: a writer script that appends
/// what it has committed to RECORD, outside the tree, at a rate that carries the tree as it is
/// now in `pass_s` seconds. Returns the receiver, the sending, RECORD, and the tree's size and
/// rate as words.
fn start_writer(
    work: &Path,
    tree: &Path,
    [interpreter, script]: [&str; 2],
    pass_s: f64,
    max_rounds: &str,
) -> (Receiver, Sending, PathBuf, String) {
    let writer = work.join("writer");
    std::fs::write(&writer, script).unwrap();
    let record = work.join("committed.txt");
    let size = du_bytes(tree) as f64;
    let bwlimit = format!("{:.1}Mbps", size * 8.0 / pass_s / 1e6);
    let receiver = receiver(work);
    let app = [&writer, tree, &record].map(|p| p.display().to_string());
    let sending = Sending::start(
        &receiver,
        work,
        tree,
        &send_options(&bwlimit, max_rounds, "stop"),
        &[interpreter, &app[0], &app[1], &app[2]],
    );
    let about = format!("{:.1} MB, --bwlimit {bwlimit}", size / 1e6);
    (receiver, sending, record, about)
}

/// `(pid, parent pid)` of every process now.
fn processes() -> Vec<(u32, u32)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter_map(|pid| Some((pid, stat_field(pid, 1)?.parse().ok()?)))
        .collect()
}

/// The processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|&(_, ppid)| ppid == parent)
        .map(|(pid, _)| pid)
        .collect()
}

/// `root` and its descendants now, by parent pid.
fn tree_of(root: u32) -> BTreeSet<u32> {
    let all = processes();
    let mut tree: BTreeSet<u32> = all
        .iter()
        .map(|&(pid, _)| pid)
        .filter(|&p| p == root)
        .collect();
    let mut grew = !tree.is_empty();
    while grew {
        grew = false;
        for &(pid, ppid) in &all {
            if tree.contains(&ppid) && tree.insert(pid) {
                grew = true;
            }
        }
    }
    tree
}

/// Field `index` of `/proc/PID/stat` after the command name (0 = state, 1 = ppid).
fn stat_field(pid: u32, index: usize) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    rest.split(' ').nth(index).map(str::to_string)
}

fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, signal);
    }
}

/// An application's process tree (its root and descendants by parent pid), SIGKILLed when
/// dropped. Not its process group: PostgreSQL's children each call setsid(), so the postmaster's
/// group holds the postmaster alone. The tree is frozen with SIGSTOP until no new member appears
/// (it cannot fork away while collected); the drop returns once every member is dead, reaping
/// those that are ours, so none holds the files, the port or PostgreSQL's shared memory.
struct KillTree(u32);

impl Drop for KillTree {
    fn drop(&mut self) {
        let mut members = BTreeSet::new();
        loop {
            let fresh: Vec<u32> = tree_of(self.0).difference(&members).copied().collect();
            if fresh.is_empty() {
                break;
            }
            for pid in fresh {
                signal(pid, Signal::STOP);
                members.insert(pid);
            }
        }
        for &pid in &members {
            signal(pid, Signal::KILL);
        }
        for &pid in &members {
            let _ = poll_until("a killed process to die", || {
                Ok(matches!(
                    stat_field(pid, 0).as_deref(),
                    None | Some("Z" | "X")
                ))
            });
            if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing the destination with the stopped source

/// Every difference between the tree at `src` and its copy at `dst`, entries named in `skip`
/// aside: contents by `diff -r`, and kind, mode, owner, mtime, symlink target and presence of
/// every entry (the root included) by [`metadata_differences`], since `diff -r` ignores those.
fn tree_differences(src: &Path, dst: &Path, skip: &[&str]) -> Vec<String> {
    let mut diff = Command::new("diff");
    diff.args(["-r", "--no-dereference"]);
    for name in skip {
        diff.args(["-x", name]);
    }
    let out = diff.arg(src).arg(dst).output().unwrap();
    let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .map(|l| format!("diff: {l}"))
        .collect();
    metadata_differences(src, dst, Path::new("."), skip, &mut found);
    found
}

/// One entry's metadata, as compared.
struct Meta {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    target: Option<PathBuf>,
}

fn meta(path: &Path) -> std::io::Result<Meta> {
    let m = std::fs::symlink_metadata(path)?;
    let t = m.file_type();
    let kind = if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_file() {
        "file"
    } else {
        "special file"
    };
    Ok(Meta {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime: (m.mtime(), m.mtime_nsec()),
        target: t
            .is_symlink()
            .then(|| std::fs::read_link(path))
            .transpose()?,
    })
}

/// Appends to `out` how `dst/rel` differs from `src/rel` in metadata, and recurses into
/// directories, naming entries that exist on one side only.
fn metadata_differences(src: &Path, dst: &Path, rel: &Path, skip: &[&str], out: &mut Vec<String>) {
    let (s, d) = match (meta(&src.join(rel)), meta(&dst.join(rel))) {
        (Ok(s), Ok(d)) => (s, d),
        (Ok(_), Err(e)) => return out.push(format!("{}: missing at D ({e})", rel.display())),
        (Err(e), _) => return out.push(format!("{}: unreadable at S ({e})", rel.display())),
    };
    let r = rel.display();
    if s.kind != d.kind {
        return out.push(format!("{r}: a {} at S, a {} at D", s.kind, d.kind));
    }
    if s.mode != d.mode {
        out.push(format!(
            "{r}: mode {:04o} at S, {:04o} at D",
            s.mode, d.mode
        ));
    }
    if (s.uid, s.gid) != (d.uid, d.gid) {
        out.push(format!(
            "{r}: owner {}:{} at S, {}:{} at D",
            s.uid, s.gid, d.uid, d.gid
        ));
    }
    if s.mtime != d.mtime {
        out.push(format!(
            "{r}: mtime {}.{:09} at S, {}.{:09} at D",
            s.mtime.0, s.mtime.1, d.mtime.0, d.mtime.1
        ));
    }
    if s.target != d.target {
        out.push(format!(
            "{r}: symlink to {:?} at S, to {:?} at D",
            s.target, d.target
        ));
    }
    if s.kind != "directory" {
        return;
    }
    let names = |dir: &Path| -> BTreeSet<std::ffi::OsString> {
        std::fs::read_dir(dir.join(rel))
            .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default()
    };
    let (at_s, at_d) = (names(src), names(dst));
    for name in at_s.union(&at_d) {
        if skip.iter().any(|s| OsStr::new(s) == name) {
            continue;
        }
        let child = rel.join(name);
        if !at_d.contains(name) {
            out.push(format!("{}: only at S", child.display()));
        } else if !at_s.contains(name) {
            out.push(format!("{}: only at D", child.display()));
        } else {
            metadata_differences(src, dst, &child, skip, out);
        }
    }
}

/// Fails the test, listing the first differences, unless the trees are equal.
fn assert_same_tree(test: &str, src: &Path, dst: &Path, skip: &[&str]) {
    let found = tree_differences(src, dst, skip);
    assert!(
        found.is_empty(),
        "{test}: the copy at D differs from the stopped source at S ({} differences; S = {}, D = \
         {}):\n{}",
        found.len(),
        src.display(),
        dst.display(),
        found
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

fn pg(program: &str) -> PathBuf {
    Path::new(PG_BIN).join(program)
}

/// `program` run as the `postgres` user: the server and `pg_ctl` refuse to run as root.
fn as_postgres(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
        .arg(program);
    command
}

/// The server's options: TCP on 127.0.0.1 only and no Unix socket. A socket directory would
/// either sit inside the migrated tree (a socket file `send` has to carry, and a stale one at D)
/// or outside it (a path that a restart at D maps under the receiver's root, where it does not
/// exist); with none, the same command line works at S and, mapped, at D.
fn server_options(port: u16) -> Vec<String> {
    [
        "-p",
        &port.to_string(),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
    ]
    .map(str::to_string)
    .to_vec()
}

/// A new directory owned by the `postgres` user.
fn postgres_dir(path: &Path, mode: u32) -> PathBuf {
    std::fs::create_dir(path).unwrap();
    run(Command::new("chown").arg("postgres:postgres").arg(path)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_path_buf()
}

/// A server started with `pg_ctl`, or just a data directory someone else's server may run on:
/// dropped, `pg_ctl stop -m immediate` ends whatever server runs there.
struct PgCtl {
    data: PathBuf,
}

impl PgCtl {
    /// `pg_ctl start -w`: returns once the server accepts connections.
    fn start(data: &Path, port: u16, log: &Path) -> Result<PgCtl, String> {
        let server = PgCtl {
            data: data.to_path_buf(),
        };
        let options = server_options(port)
            .into_iter()
            .map(|o| if o.ends_with('=') { o + "''" } else { o })
            .collect::<Vec<_>>()
            .join(" ");
        run(as_postgres(pg("pg_ctl"))
            .arg("-D")
            .arg(data)
            .arg("-l")
            .arg(log)
            .args(["-o", &options, "-w", "start"])
            .current_dir("/"))
        .map_err(|e| format!("{e}\nserver log:\n{}", tail(log, 30)))?;
        Ok(server)
    }

    fn stop(&self, mode: &str) -> Result<String, String> {
        run(as_postgres(pg("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "stop"])
            .current_dir("/"))
    }
}

impl Drop for PgCtl {
    fn drop(&mut self) {
        let _ = self.stop("immediate");
    }
}

/// Runs SQL with psql (one implicit transaction unless it says BEGIN … COMMIT); the rows, `|`
/// between columns.
fn sql(port: u16, query: &str) -> Result<String, String> {
    run(Command::new(pg("psql"))
        .args(["-XqAt", "-v", "ON_ERROR_STOP=1", "-d", "postgres"])
        .args(client_args(port))
        .args(["-c", query]))
    .map(|out| out.trim().to_string())
}

fn sql_numbers(port: u16, query: &str) -> Result<Vec<i64>, String> {
    let row = sql(port, query)?;
    row.split('|')
        .map(|v| v.parse().map_err(|_| format!("{query}: got {row:?}")))
        .collect()
}

/// How every client reaches the server on `port`: TCP on 127.0.0.1, as the superuser.
fn client_args(port: u16) -> [String; 6] {
    ["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"].map(String::from)
}

fn accepting(port: u16) -> bool {
    Command::new(pg("pg_isready"))
        .args(["-q", "-t", "5"])
        .args(client_args(port))
        .status()
        .is_ok_and(|s| s.success())
}

/// A cluster with pgbench's tables, made (and cleanly shut down) before the migration: its
/// size sets `--bwlimit`, which `send` needs before it starts the server.
fn prepare_cluster(work: &Path) -> PathBuf {
    let data = postgres_dir(&work.join("pgdata"), 0o700);
    run(as_postgres(pg("initdb"))
        .args(["-k", "-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .current_dir("/"))
    .unwrap();
    let port = free_port();
    let server = PgCtl::start(&data, port, &work.join("logs/prepare.log")).unwrap();
    run(Command::new(pg("pgbench"))
        .args(["-i", "-s", PGBENCH_SCALE])
        .args(client_args(port))
        .arg("postgres"))
    .unwrap();
    server.stop("fast").unwrap();
    data
}

fn du_bytes(path: &Path) -> u64 {
    let out = run(Command::new("du").arg("-sb").arg(path)).unwrap();
    out.split_whitespace().next().unwrap().parse().unwrap()
}

/// pgbench (TPC-B, 4 clients) for up to 600 s, logging every transaction it saw committed. It
/// ends by itself once the source server dies (its clients abort), writing its logs.
fn start_pgbench(port: u16, work: &Path) -> Child {
    Command::new(pg("pgbench"))
        .args([
            "-c",
            "4",
            "-j",
            "2",
            "-T",
            "600",
            "-n",
            "-l",
            "--log-prefix",
        ])
        .arg(work.join("pgbench"))
        .args(client_args(port))
        .arg("postgres")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(work.join("pgbench.out")).unwrap())
        .stderr(std::fs::File::create(work.join("pgbench.err")).unwrap())
        .spawn()
        .unwrap()
}

/// Transactions pgbench logged as committed (`client tx latency_us script epoch us`; failed or
/// skipped ones have a word for the latency).
fn pgbench_committed(work: &Path) -> u64 {
    let mut committed = 0;
    for entry in std::fs::read_dir(work).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("pgbench.") || name.ends_with(".out") || name.ends_with(".err") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        committed += text
            .lines()
            .filter(|l| {
                l.split(' ')
                    .nth(2)
                    .is_some_and(|t| t.parse::<u64>().is_ok())
            })
            .count() as u64;
    }
    committed
}

/// A client that commits 1, 2, 3… into `acks`, one autocommitted INSERT each over one psql
/// session, and counts the commits the server acknowledged ("INSERT 0 1" comes after the commit,
/// which `synchronous_commit = on` made durable). Every acknowledged number must be at D: the
/// exact form of "committed ⇒ present", which pgbench's buffered logs cannot give.
struct AckClient {
    child: Child,
    thread: JoinHandle<()>,
    acked: Arc<AtomicU64>,
}

impl AckClient {
    fn start(port: u16, work: &Path) -> AckClient {
        let mut child = Command::new(pg("psql"))
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", "postgres"])
            .args(client_args(port))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(work.join("acks.err")).unwrap())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let acked = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&acked);
        let thread = std::thread::spawn(move || {
            let mut line = String::new();
            for n in 1.. {
                let statement = format!("INSERT INTO acks VALUES ({n});\n");
                if input.write_all(statement.as_bytes()).is_err() {
                    return;
                }
                line.clear();
                if output.read_line(&mut line).unwrap_or(0) == 0 || line.trim() != "INSERT 0 1" {
                    return;
                }
                count.store(n, Ordering::SeqCst);
            }
        });
        AckClient {
            child,
            thread,
            acked,
        }
    }

    /// Once the source server is gone (psql loses its connection and exits): the last number
    /// acknowledged.
    fn finish(mut self) -> u64 {
        self.thread.join().unwrap();
        let _ = self.child.wait();
        self.acked.load(Ordering::SeqCst)
    }
}

/// The source's balances and history at the TRUNCATE, taken in the same transaction.
struct AtTruncate {
    /// sum(abalance) = sum(bbalance) = sum(tbalance) = sum(delta) there (TPC-B starts at zero).
    balance: i64,
    /// History rows the TRUNCATE removed: pgbench's transactions before it.
    history_rows: i64,
}

/// The statements run during pre-copy, concurrently with pgbench and the ack client: wait until
/// pgbench commits, then CHECKPOINT, then TRUNCATE pgbench_history (a new relation file; the
/// old one is emptied, then deleted at the next checkpoint). TPC-B's invariant sum(abalance) =
/// sum(bbalance) = sum(tbalance) = sum(history.delta) no longer holds after a TRUNCATE, so the
/// same transaction first locks the four tables (in the order pgbench's transactions take them,
/// so no deadlock) and records the sums: afterwards each balance sum minus that value equals
/// sum(delta) over the new history. Cheaper than resetting 500,000 balances, and as exact.
fn during_precopy(port: u16) -> Result<AtTruncate, String> {
    poll_until("pgbench's first commit", || {
        Ok(sql_numbers(port, "SELECT count(*) FROM pgbench_history")?[0] > 0)
    })?;
    sql(port, "CHECKPOINT")?;
    let at = sql_numbers(
        port,
        "BEGIN; LOCK TABLE pgbench_accounts, pgbench_tellers, pgbench_branches, pgbench_history \
         IN ACCESS EXCLUSIVE MODE; SELECT (SELECT sum(abalance) FROM pgbench_accounts), \
         (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(tbalance) FROM \
         pgbench_tellers), (SELECT sum(delta) FROM pgbench_history), (SELECT count(*) FROM \
         pgbench_history); TRUNCATE pgbench_history; COMMIT;",
    )?;
    if at[..4].iter().any(|&sum| sum != at[0]) {
        return Err(format!(
            "TPC-B's sums differ at the source before the TRUNCATE: {at:?}"
        ));
    }
    Ok(AtTruncate {
        balance: at[0],
        history_rows: at[4],
    })
}

/// What the clients saw at the source.
struct Workload {
    at_truncate: AtTruncate,
    acked: u64,
    pgbench_committed: u64,
}

/// The invariants of the migrated database, through the server that runs on D's copy:
/// `pg_amcheck` finds nothing (heap and every index, all databases), the TPC-B sums agree
/// (see [`during_precopy`]), every acknowledged ack is there, and history holds at least one row
/// for every transaction pgbench logged as committed (rows before the TRUNCATE counted then).
fn check_database(test: &str, port: u16, seen: &Workload) {
    let amcheck = run(Command::new(pg("pg_amcheck"))
        .args(client_args(port))
        .args(["--all", "--heapallindexed", "--install-missing"]))
    .unwrap_or_else(|e| panic!("{test}: pg_amcheck at D: {e}"));
    assert!(
        amcheck.trim().is_empty(),
        "{test}: pg_amcheck at D:\n{amcheck}"
    );
    let sums = sql_numbers(
        port,
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(bbalance) FROM \
         pgbench_branches), (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT \
         coalesce(sum(delta), 0) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)",
    )
    .unwrap_or_else(|e| panic!("{test}: at D: {e}"));
    let since = [sums[0], sums[1], sums[2]].map(|s| s - seen.at_truncate.balance);
    assert!(
        since.iter().all(|&s| s == sums[3]),
        "{test}: TPC-B's invariant is broken at D: since the TRUNCATE the accounts, branches and \
         tellers changed by {since:?}, the history by {}",
        sums[3]
    );
    let history = (seen.at_truncate.history_rows + sums[4]) as u64;
    assert!(
        history >= seen.pgbench_committed,
        "{test}: pgbench logged {} committed transactions, D has {history} history rows for them \
         ({} before the TRUNCATE, {} after)",
        seen.pgbench_committed,
        seen.at_truncate.history_rows,
        sums[4]
    );
    let present = sql_numbers(
        port,
        &format!("SELECT count(*) FROM acks WHERE n <= {}", seen.acked),
    )
    .unwrap_or_else(|e| panic!("{test}: at D: {e}"))[0] as u64;
    assert_eq!(
        present, seen.acked,
        "{test}: the server acknowledged inserts 1..={} at S; {} of them are at D",
        seen.acked, present
    );
}

/// The PostgreSQL test: a cluster under pgbench migrated by `send --then THEN`; `send` starts
/// the server, so it is the application whose process tree is stopped.
fn postgres_under_pgbench(test: &str, then: &str) {
    let server_programs = [
        "initdb",
        "postgres",
        "pg_ctl",
        "psql",
        "pgbench",
        "pg_isready",
    ];
    let mut programs: Vec<String> = server_programs
        .into_iter()
        .chain(["pg_amcheck"])
        .map(|p| pg(p).display().to_string())
        .collect();
    programs.extend(["setpriv", "diff", "du", "chown"].map(String::from));
    if !can_run(test, &programs) {
        return;
    }
    let _serial = serial();
    adopt_orphans();
    let work = work_dir();
    let work = work.path();
    postgres_dir(&work.join("logs"), 0o755);
    let data = prepare_cluster(work).canonicalize().unwrap();
    let size = du_bytes(&data);
    let bwlimit = format!("{:.1}Mbps", size as f64 * 8.0 / PASS_S / 1e6);
    let receiver = receiver(work);
    let copy = at_destination(&receiver.root, &data);

    let port = free_port();
    let mut app = vec![
        "setpriv".to_string(),
        "--reuid=postgres".into(),
        "--regid=postgres".into(),
        "--init-groups".into(),
        pg("postgres").display().to_string(),
        "-D".into(),
        data.display().to_string(),
    ];
    app.extend(server_options(port));
    let app: Vec<&str> = app.iter().map(String::as_str).collect();
    let mut sending = Sending::start(
        &receiver,
        work,
        &data,
        &send_options(&bwlimit, MAX_ROUNDS, then),
        &app,
    );
    poll_until("PostgreSQL under send to accept connections", || {
        sending.alive().map(|()| accepting(port))
    })
    .unwrap_or_else(|e| panic!("{test}: {e}"));
    let source = KillTree(sending.app_pid());
    // A table created during pre-copy: new relation files.
    sql(port, "CREATE TABLE acks (n bigint PRIMARY KEY)").unwrap();
    let pgbench = start_pgbench(port, work);
    let acks = AckClient::start(port, work);
    let statements = std::thread::spawn(move || during_precopy(port));

    let sent = sending.finish();
    say(&format!(
        "{test}: cluster {:.1} MB, --bwlimit {bwlimit}: {}",
        size as f64 / 1e6,
        sent.figures()
    ));
    // The source dies (at once if --then stop left it stopped): the clients see their
    // connections end, so pgbench writes its logs and exits and the statements return.
    drop(source);
    let mut pgbench = pgbench;
    let _ = pgbench.wait();
    let acked = acks.finish();
    let statements = statements.join().unwrap();
    let seen = Workload {
        at_truncate: statements.unwrap_or_else(|e| {
            panic!(
                "{test}: the CHECKPOINT and TRUNCATE did not complete before the stop (pre-copy \
                 too short?): {e}"
            )
        }),
        acked,
        pgbench_committed: pgbench_committed(work),
    };
    say(&format!(
        "{test}: at S: {acked} ack inserts acknowledged, {} pgbench transactions logged committed",
        seen.pgbench_committed
    ));

    sent.assert_equal(test);
    let precopy_s = sent.metric("precopy_time_s");
    assert!(
        precopy_s >= MIN_PRECOPY_S,
        "{test}: pre-copy lasted {precopy_s:.1} s, less than the {MIN_PRECOPY_S} s of workload \
         this test means to migrate under (lower the --bwlimit, now {bwlimit})"
    );
    assert!(acked > 0, "{test}: no insert was acknowledged at S");

    let (server, port) = if then == "restart" {
        // The receiver started the same command on the copy: same port, data directory mapped.
        let server = PgCtl { data: copy.clone() };
        poll_until(
            "the restarted PostgreSQL at D to accept connections",
            || Ok(accepting(port)),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{test}: {e}; the receiver's log ends:\n{}",
                tail(&receiver.log, 30)
            )
        });
        let served = sql(port, "SHOW data_directory").unwrap();
        assert_eq!(
            Path::new(&served).canonicalize().ok(),
            copy.canonicalize().ok(),
            "{test}: the server on port {port} serves {served}, not D's copy"
        );
        (server, port)
    } else {
        // postmaster.pid aside: it names the source's process, which is not migrated.
        assert_same_tree(test, &data, &copy, &["postmaster.pid"]);
        let port = free_port();
        let server = PgCtl::start(&copy, port, &work.join("logs/destination.log"))
            .unwrap_or_else(|e| panic!("{test}: PostgreSQL does not start on D's copy: {e}"));
        (server, port)
    };
    check_database(test, port, &seen);
    server.stop("fast").unwrap();
}

#[test]
fn postgres_under_pgbench_then_stop_copy_equals_the_source_and_holds_every_commit() {
    postgres_under_pgbench("postgres_then_stop", "stop");
}

#[test]
fn postgres_under_pgbench_restarted_at_the_destination_serves_every_commit() {
    postgres_under_pgbench("postgres_then_restart", "restart");
}

// ---------------------------------------------------------------------------------------------
// SQLite

/// The SQLite application: commits rows 1, 2, 3… (one transaction each, WAL mode, about 100 a
/// second: a steady writer, not a flood that no link keeps up with) and appends each number to
/// a record outside the migrated tree once its COMMIT returned. Every 1,000 rows, the first time
/// after 50 (well before any stop), it truncates the WAL and rotates a backup (VACUUM INTO a new
/// file, renamed over the old one): files created, renamed over others, truncated and deleted
/// while it runs.
const SQLITE_WRITER: &str = r#"
import os, sqlite3, sys, time
tree, record = sys.argv[1], sys.argv[2]
db = sqlite3.connect(os.path.join(tree, "app.db"), isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
with open(record, "a", buffering=1) as out:
    n = 0
    while True:
        n += 1
        db.execute("INSERT INTO t VALUES (?, randomblob(100))", (n,))
        out.write(f"{n}\n")
        time.sleep(0.01)
        if n % 1000 == 50:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            scratch = os.path.join(tree, "backup.db.new")
            db.execute("VACUUM INTO ?", (scratch,))
            os.replace(scratch, os.path.join(tree, "backup.db"))
"#;

/// The last number the writer recorded as committed (a line is complete once it ends in \n).
fn last_committed(record: &Path) -> u64 {
    let text = std::fs::read_to_string(record).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

fn sqlite(db: &Path, query: &str) -> String {
    run(Command::new("sqlite3").arg(db).arg(query))
        .unwrap_or_else(|e| panic!("sqlite3 at D: {e}"))
        .trim()
        .to_string()
}

#[test]
fn sqlite_in_wal_mode_written_during_the_migration_keeps_every_committed_row() {
    const TEST: &str = "sqlite_wal";
    if !can_run(TEST, &["python3", "sqlite3", "diff"].map(String::from)) {
        return;
    }
    let (_serial, _work, work, tree) = start_tree("db");
    // 20,000 rows of 500 bytes to start with (negative keys, apart from the writer's).
    run(Command::new("sqlite3").arg(tree.join("app.db")).arg(
        "PRAGMA journal_mode=WAL; CREATE TABLE t (n INTEGER PRIMARY KEY, pad BLOB); WITH RECURSIVE \
         c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) INSERT INTO t SELECT \
         -i, randomblob(500) FROM c;",
    ))
    .unwrap();
    let (receiver, mut sending, record, about) =
        start_writer(&work, &tree, ["python3", SQLITE_WRITER], 5.0, MAX_ROUNDS);
    poll_until("the writer's first commit", || {
        sending.alive().map(|()| last_committed(&record) > 0)
    })
    .unwrap_or_else(|e| panic!("{TEST}: {e}"));
    let writer = KillTree(sending.app_pid());
    let sent = sending.finish();
    let last = last_committed(&record);
    say(&format!(
        "{TEST}: database {about}: {}; last row committed at S: {last}",
        sent.figures()
    ));
    sent.assert_equal(TEST);
    // Compared while the writer is still stopped, then it goes.
    let copy = at_destination(&receiver.root, &tree);
    assert_same_tree(TEST, &tree, &copy, &[]);
    drop(writer);
    assert_eq!(sqlite(&copy.join("app.db"), "PRAGMA integrity_check"), "ok");
    let present = sqlite(
        &copy.join("app.db"),
        &format!("SELECT count(*) FROM t WHERE n BETWEEN 1 AND {last}"),
    );
    assert_eq!(
        present,
        last.to_string(),
        "{TEST}: the writer saw rows 1..={last} committed at S; D has {present} of them"
    );
    if copy.join("backup.db").exists() {
        assert_eq!(
            sqlite(&copy.join("backup.db"), "PRAGMA integrity_check"),
            "ok"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// git

/// The git application: commits in a loop, about 15 a second (a file rewritten each time, one
/// deleted every 7th), appending each commit's id to a record outside the migrated tree once
/// `git commit` returned, and every 40 commits packs the repository and prunes its loose objects
/// (`git gc`: packs and indexes written through temporary files and renamed, loose objects and
/// their directories deleted, lock files created and renamed over refs). Four or five
/// short-lived processes a commit: the process tree is never the same twice.
const GIT_WRITER: &str = r#"
set -eu
cd "$1"
i=0
while :; do
    i=$((i + 1))
    head -c 3000 /dev/urandom | base64 > "f$((i % 40)).txt"
    if [ $((i % 7)) -eq 0 ]; then rm -f "f$(((i + 3) % 40)).txt"; fi
    git add -A
    git commit -q -m "commit $i"
    git rev-parse HEAD >> "$2"
    if [ $((i % 40)) -eq 0 ]; then git gc -q --prune=now; fi
    sleep 0.05
done
"#;

fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    run(Command::new("git").arg("-C").arg(repo).args(args)).map(|out| out.trim().to_string())
}

#[test]
fn git_committing_and_packing_during_the_migration_arrives_whole_with_every_commit() {
    const TEST: &str = "git";
    if !can_run(TEST, &["git", "sh", "base64", "diff"].map(String::from)) {
        return;
    }
    let (_serial, _work, work, tree) = start_tree("repo");
    // A repository of 200 files of 16 KiB of text in one commit: something to pre-copy.
    let seed = "git init -q . && git config user.name precopy && git config user.email \
                precopy@localhost && git config gc.auto 0 && for i in $(seq 200); do head -c \
                12000 /dev/urandom | base64 > seed$i.txt; done && git add -A && git commit -qm seed";
    run(Command::new("sh").args(["-c", seed]).current_dir(&tree)).unwrap();
    // One pass in 2 s: the packs that each gc rewrites are most of what the link carries.
    let (receiver, mut sending, record, about) =
        start_writer(&work, &tree, ["sh", GIT_WRITER], 2.0, GIT_MAX_ROUNDS);
    // Past the first gc: packs made and loose objects deleted while pre-copy runs.
    let commits = |record: &Path| std::fs::read_to_string(record).unwrap_or_default();
    poll_until("the writer's first gc", || {
        sending
            .alive()
            .map(|()| commits(&record).lines().count() > 40)
    })
    .unwrap_or_else(|e| panic!("{TEST}: {e}"));
    let writer = KillTree(sending.app_pid());
    let sent = sending.finish();
    // Complete lines only: the writer may have been frozen inside an append.
    let recorded = commits(&record);
    let recorded = recorded.rsplit_once('\n').map_or("", |(whole, _)| whole);
    let last = recorded.lines().last().unwrap_or_default().to_string();
    say(&format!(
        "{TEST}: repository {about}: {}; {} commits recorded at S",
        sent.figures(),
        recorded.lines().count()
    ));
    sent.assert_equal(TEST);
    // Compared while the writer is still stopped, then it goes.
    let copy = at_destination(&receiver.root, &tree);
    assert_same_tree(TEST, &tree, &copy, &[]);
    drop(writer);
    // git's own invariants at D: every object reachable and intact, and every commit the writer
    // saw made is in the history (HEAD may be one further: frozen before its id was recorded).
    git(&copy, &["fsck", "--full", "--strict", "--no-progress"])
        .unwrap_or_else(|e| panic!("{TEST}: git fsck at D: {e}"));
    git(&copy, &["merge-base", "--is-ancestor", &last, "HEAD"]).unwrap_or_else(|e| {
        panic!("{TEST}: the last recorded commit {last} is not in D's history: {e}")
    });
    let at_d: usize = git(&copy, &["rev-list", "--count", "HEAD"])
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        at_d > recorded.lines().count(),
        "{TEST}: D's history has {at_d} commits; the writer recorded {} after the seed",
        recorded.lines().count()
    );
}
