//! `send --rw DIR` migrates a tree whose membership changes while the application runs: at the
//! stop the destination D (= ROOT/<source path>) must equal the stopped source S entry by entry
//! (kind, content, symlink target, mode & 0o7777, uid, gid, mtime), or `send` must fail and name
//! what differs.
//!
//! - Property tests: an application started by `send` runs a random script of file-system
//!   operations in a loop during pre-copy; afterwards S (stopped) and D are compared. Once with
//!   every path keeping its kind, once with paths changing kind.
//! - Faults: a missing root, FIFOs and sockets, an unreadable file, a file that becomes a
//!   directory and back (after it reached D, and between a round's walk and its sending), a
//!   file that becomes a symlink to a file outside the roots, a sparse file, hard links.
//!
//! Root-only parts print "SKIPPED: …" without root, and fail under `CI=true`.

#[allow(dead_code)]
mod common;

use common::{can_run, say};

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

const BIN: &str = env!("CARGO_BIN_EXE_migrate-native");
const TOKEN: &str = "tree-test-token-0123456789abcdef";
/// Bound on event polls (10 ms apart): a pid file, a marker.
const POLLS: u32 = 3000;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A `receive` on loopback with its root at `WORK/dst`.
type Receiver = common::Daemon;

fn token_file(work: &Path) -> PathBuf {
    let path = work.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    set_mode(&path, 0o644);
    path
}

fn receiver(work: &Path) -> Receiver {
    Receiver::start(
        "127.0.0.1:0",
        &work.join("dst"),
        &token_file(work),
        &work.join("receive.log"),
    )
}

impl Receiver {
    /// The `*.precopy-tmp` files under the root once `sessions` connections have ended. A
    /// session goes on for a moment after `send` exits (the last batch is committed), and ends
    /// with one log line ("receive: PEER: …").
    fn leftovers(&self, sessions: usize) -> Vec<PathBuf> {
        let ended = || {
            self.log()
                .lines()
                .filter(|l| l.starts_with("receive: 127.0.0.1:"))
                .count()
        };
        let mut polls = 0;
        while ended() < sessions {
            polls += 1;
            assert!(
                polls < POLLS,
                "the receiver has not ended {sessions} session(s): {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        temporaries(&self.root)
    }
}

/// Where the receiver keeps `src`.
fn at_d(root: &Path, src: &Path) -> PathBuf {
    root.join(src.canonicalize().unwrap().strip_prefix("/").unwrap())
}

/// The application `send` starts: `sh -c BODY` that first writes its pid to a file, so the test
/// ends its process group (it is a session leader) whatever `send` did with it.
struct App {
    pidfile: PathBuf,
    body: String,
    started: Cell<bool>,
}

impl App {
    fn new(dir: &Path, body: String) -> App {
        App {
            pidfile: dir.join("app.pid"),
            body,
            started: Cell::new(false),
        }
    }

    /// An application that only sleeps: for tests about the tree, not about what the
    /// application does.
    fn sleeper(dir: &Path) -> App {
        App::new(dir, "exec sleep 3600".into())
    }

    fn argv(&self) -> Vec<String> {
        let pid = self.pidfile.display();
        vec![
            "sh".into(),
            "-c".into(),
            format!(
                "echo $$ > '{pid}.tmp' && mv '{pid}.tmp' '{pid}'; {}",
                self.body
            ),
        ]
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pidfile)
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if !self.started.get() {
            return;
        }
        // `send` spawned it before it ended: the pid file appears (atomically) soon if not yet.
        for _ in 0..POLLS {
            if let Some(pid) = self.pid().and_then(rustix::process::Pid::from_raw) {
                // Stopped (`--then stop`) or running: SIGKILL ends it either way.
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What `send` did.
struct Run {
    code: Option<i32>,
    json: serde_json::Value,
    stderr: String,
}

/// `send --to ADDR --json --token-file F ARGS -- APP`, with `--period 200ms` unless ARGS has
/// one, APP `true` if none, as `nobody` if asked (root bypasses permissions).
fn send(work: &Path, addr: &str, args: &[OsString], app: Option<&App>, as_nobody: bool) -> Run {
    let mut command = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            BIN,
        ]);
        c
    } else {
        Command::new(BIN)
    };
    let log = work.join("send.log");
    command
        .args(["send", "--to", addr, "--json"])
        .args(if args.iter().any(|a| a == "--period") {
            &[][..]
        } else {
            &["--period", "200ms"][..]
        })
        .arg("--token-file")
        .arg(work.join("token"))
        .args(args)
        .arg("--")
        .args(app.map_or(vec!["true".to_string()], App::argv))
        // The application inherits stderr: a file, so no pipe waits for it to exit.
        .stderr(std::fs::File::create(&log).unwrap());
    if let Some(app) = app {
        app.started.set(true);
    }
    let out = command.output().unwrap();
    Run {
        code: out.status.code(),
        json: serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
        stderr: std::fs::read_to_string(&log).unwrap(),
    }
}

fn arg(text: impl Into<OsString>) -> OsString {
    text.into()
}

/// `--rw SRC --then stop EXTRA…`: a migration that leaves the application stopped at the source,
/// so that S holds still for the comparison with D.
fn rw_then_stop(src: &Path, extra: &[OsString]) -> Vec<OsString> {
    let mut args = vec![arg("--rw"), arg(src), arg("--then"), arg("stop")];
    args.extend_from_slice(extra);
    args
}

/// What one entry of a tree is, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    File { size: u64, hash: [u8; 32] },
    Dir,
    Symlink(PathBuf),
    Special,
}

impl std::fmt::Display for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::File { size, hash } => write!(
                f,
                "file of {size} bytes (blake3 {:02x}{:02x}{:02x}{:02x}…)",
                hash[0], hash[1], hash[2], hash[3]
            ),
            Content::Dir => write!(f, "directory"),
            Content::Symlink(target) => write!(f, "symlink to {}", target.display()),
            Content::Special => write!(f, "FIFO, socket or device"),
        }
    }
}

#[derive(Debug, Clone)]
struct Seen {
    content: Content,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    nlink: u64,
}

/// Every entry under `top` (itself as ""), never following a symlink.
fn snapshot(top: &Path) -> BTreeMap<PathBuf, Seen> {
    let mut seen = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        // `top.join("")` would end in a slash, which follows a symlink.
        let path = if rel.as_os_str().is_empty() {
            top.to_path_buf()
        } else {
            top.join(&rel)
        };
        let meta =
            std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let kind = meta.file_type();
        let content = if kind.is_file() {
            let mut hasher = blake3::Hasher::new();
            std::io::copy(&mut std::fs::File::open(&path).unwrap(), &mut hasher).unwrap();
            Content::File {
                size: meta.len(),
                hash: *hasher.finalize().as_bytes(),
            }
        } else if kind.is_dir() {
            for child in std::fs::read_dir(&path).unwrap() {
                todo.push(rel.join(child.unwrap().file_name()));
            }
            Content::Dir
        } else if kind.is_symlink() {
            Content::Symlink(std::fs::read_link(&path).unwrap())
        } else {
            Content::Special
        };
        seen.insert(
            rel,
            Seen {
                content,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                nlink: meta.nlink(),
            },
        );
    }
    seen
}

fn shown(rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.display().to_string()
    }
}

/// Every way the tree at `dst` differs from the one at `src` (not nlink, atime or ctime).
fn differences(src: &Path, dst: &Path) -> Vec<String> {
    let (s, d) = (snapshot(src), snapshot(dst));
    let mut found = Vec::new();
    for (rel, a) in &s {
        let name = shown(rel);
        let Some(b) = d.get(rel) else {
            found.push(format!("{name}: {} at S, missing at D", a.content));
            continue;
        };
        if a.content != b.content {
            found.push(format!("{name}: {} at S, {} at D", a.content, b.content));
            continue;
        }
        if a.mode != b.mode {
            found.push(format!("{name}: mode {:o} at S, {:o} at D", a.mode, b.mode));
        }
        if (a.uid, a.gid) != (b.uid, b.gid) {
            found.push(format!(
                "{name}: owner {}:{} at S, {}:{} at D",
                a.uid, a.gid, b.uid, b.gid
            ));
        }
        if a.mtime != b.mtime {
            found.push(format!(
                "{name}: mtime {}.{:09} at S, {}.{:09} at D",
                a.mtime.0, a.mtime.1, b.mtime.0, b.mtime.1
            ));
        }
    }
    for (rel, b) in &d {
        if !s.contains_key(rel) {
            found.push(format!("{}: {} at D only", shown(rel), b.content));
        }
    }
    found
}

/// `*.precopy-tmp` files under `dir` (never following symlinks).
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            found.extend(temporaries(&entry.path()));
        } else if entry
            .file_name()
            .to_string_lossy()
            .ends_with(".precopy-tmp")
        {
            found.push(entry.path());
        }
    }
    found
}

/// The last lines of a log, for failure messages.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The pid `send --json` reports for the application.
fn reported_pid(json: &serde_json::Value) -> Option<i32> {
    json["metrics"]["dataset"]
        .as_str()?
        .strip_prefix("pid ")?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// 1. The property test.

/// The application of the property test: runs the operations of SCRIPT (one a line, paths
/// relative to SRC) in order, again and again until stopped, and after every pass writes the
/// number of passes to MARKER (outside the tree). An operation that fails (its path changed
/// kind, was renamed away…) is skipped. It never goes through a symlink, so it cannot touch
/// anything outside SRC.
const OPS_PY: &str = r#"
import os, shutil, stat, sys, time
src, script, marker = sys.argv[1:4]
ops = [line.split() for line in open(script) if line.strip()]
os.chdir(src)

def data(n, seed):
    if seed % 5 == 0:
        return bytes(n)  # whole blocks of zeros: holes at D
    base = bytes((seed + i * 7) & 255 for i in range(256))
    return (base * (n // 256 + 1))[:n]

def no_link_on_the_way(path):
    parts = path.split('/')
    for i in range(1, len(parts)):
        if os.path.islink('/'.join(parts[:i])):
            raise OSError('a symlink on the way')

NOFOLLOW = os.O_WRONLY | os.O_NOFOLLOW

def run(op, a):
    for p in a[:2]:
        no_link_on_the_way(p)
    if op == 'create':
        fd = os.open(a[0], NOFOLLOW | os.O_CREAT | os.O_TRUNC, 0o644)
        try: os.write(fd, data(int(a[1]), int(a[2])))
        finally: os.close(fd)
    elif op == 'write':
        fd = os.open(a[0], NOFOLLOW)
        try: os.pwrite(fd, data(int(a[2]), int(a[3])), int(a[1]))
        finally: os.close(fd)
    elif op == 'append':
        fd = os.open(a[0], NOFOLLOW | os.O_APPEND)
        try:
            n = int(a[1])
            if os.fstat(fd).st_size + n > 65536:  # files stay <= 64 KiB
                os.ftruncate(fd, 0)
            os.write(fd, data(n, int(a[2])))
        finally: os.close(fd)
    elif op == 'truncate':
        fd = os.open(a[0], NOFOLLOW)
        try: os.ftruncate(fd, int(a[1]))
        finally: os.close(fd)
    elif op == 'rename': os.rename(a[0], a[1])
    elif op == 'unlink': os.unlink(a[0])
    elif op == 'mkdir': os.mkdir(a[0])
    elif op == 'rmdir': os.rmdir(a[0])
    elif op == 'symlink':
        no_link_on_the_way(a[1])
        os.symlink(a[0], a[1])
    elif op == 'chmod':
        kind = os.lstat(a[0]).st_mode
        if not stat.S_ISLNK(kind):  # chmod would follow it
            # The owner keeps access (a path may have changed kind since the script was made).
            os.chmod(a[0], int(a[1], 8) | (0o700 if stat.S_ISDIR(kind) else 0o600))
    elif op == 'chown': os.chown(a[0], int(a[1]), int(a[2]), follow_symlinks=False)
    elif op == 'utime':
        t = int(a[1]) * 10**9 + int(a[2])
        os.utime(a[0], ns=(t, t), follow_symlinks=False)
    elif op == 'flip':  # a file becomes a directory holding one, a directory a file
        if stat.S_ISDIR(os.lstat(a[0]).st_mode):
            shutil.rmtree(a[0])
            with open(a[0], 'x') as f: f.write('file\n')
        else:
            os.unlink(a[0])
            os.mkdir(a[0])
            with open(a[0] + '/inner', 'x') as f: f.write('dir\n')
    else:
        raise SystemExit('unknown operation ' + op)

passes = 0
while True:
    for op in ops:
        try:
            run(op[0], op[1:])
        except OSError:
            pass
        time.sleep(0.002)
    passes += 1
    with open(marker + '.tmp', 'w') as f:
        f.write(str(passes))
    os.replace(marker + '.tmp', marker)
"#;

/// What the generator believes is at a path after the operations so far (first pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
    Link,
}

/// An entry of the initial tree.
#[derive(Debug, Clone)]
enum Init {
    File { path: String, len: u64, seed: u32 },
    Dir { path: String },
    Link { target: String, path: String },
}

/// Entries of the generated tree, its root included; with the ballast files, at most 50.
const MAX_ENTRIES: usize = 46;
/// Files of 64 KiB no operation touches, so that the initial tree takes a while to send.
const BALLAST: u32 = 4;
const MAX_FILE: u64 = 64 * 1024;
const FILE_MODES: [u32; 6] = [0o600, 0o640, 0o755, 0o644, 0o4755, 0o2750];
const DIR_MODES: [u32; 6] = [0o755, 0o700, 0o2755, 0o1777, 0o3775, 0o1755];
const OWNERS: [(u32, u32); 4] = [(65534, 65534), (0, 65534), (65534, 0), (0, 0)];

/// The generator's model of the tree ("" is the root).
struct Model {
    nodes: BTreeMap<String, Node>,
    made: u32,
    /// Paths removed or renamed away: reused, a path can change kind.
    gone: Vec<String>,
    reuse: bool,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn depth(path: &str) -> usize {
    if path.is_empty() {
        0
    } else {
        path.split('/').count()
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn within(path: &str, dir: &str) -> bool {
    path == dir || path.starts_with(&format!("{dir}/"))
}

/// `list[pick % len]`, if any.
fn pick(list: &[String], pick: impl Into<u64>) -> Option<String> {
    (!list.is_empty()).then(|| list[(pick.into() % list.len() as u64) as usize].clone())
}

impl Model {
    fn new(reuse: bool) -> Model {
        Model {
            nodes: BTreeMap::from([(String::new(), Node::Dir)]),
            made: 0,
            gone: Vec::new(),
            reuse,
        }
    }

    fn paths(&self, keep: impl Fn(&str, Node) -> bool) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(p, &n)| keep(p, n))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn files(&self) -> Vec<String> {
        self.paths(|_, n| matches!(n, Node::File(_)))
    }

    /// Directories a new entry may go in (entries stay within 3 levels).
    fn parents(&self) -> Vec<String> {
        self.paths(|p, n| n == Node::Dir && depth(p) < 3)
    }

    /// A path for a new entry: a fresh name in a directory, or (reusing) a path that was
    /// removed, so that it comes back as another kind.
    fn place(&mut self, dir_pick: u16, how: u32, prefix: &str) -> Option<String> {
        if self.nodes.len() >= MAX_ENTRIES {
            return None;
        }
        if self.reuse && how % 3 == 0 {
            let free: Vec<String> = self
                .gone
                .iter()
                .filter(|p| {
                    !self.nodes.contains_key(*p)
                        && self.nodes.get(parent(p)) == Some(&Node::Dir)
                        && depth(p) <= 3
                })
                .cloned()
                .collect();
            if let Some(path) = pick(&free, how / 3) {
                return Some(path);
            }
        }
        let dir = pick(&self.parents(), dir_pick)?;
        self.made += 1;
        Some(join(&dir, &format!("{prefix}{}", self.made)))
    }

    fn remove(&mut self, path: &str) {
        self.nodes.retain(|p, _| !within(p, path));
        self.gone.push(path.to_string());
    }

    fn rename(&mut self, from: &str, to: &str) {
        self.nodes.retain(|p, _| !within(p, to));
        let moved: Vec<(String, Node)> = self
            .nodes
            .iter()
            .filter(|(p, _)| within(p, from))
            .map(|(p, &n)| (format!("{to}{}", &p[from.len()..]), n))
            .collect();
        self.nodes.retain(|p, _| !within(p, from));
        self.nodes.extend(moved);
        self.gone.push(from.to_string());
    }
}

/// The initial tree and the script (one operation a line) from a case's raw numbers. The model
/// follows the first pass, so most of its operations apply; later passes meet a changed tree.
fn plan(
    raw_tree: &[(u8, u16, u32)],
    raw_ops: &[(u8, u16, u16, u32)],
    reuse: bool,
    chown: bool,
) -> (Vec<Init>, String) {
    let mut model = Model::new(reuse);
    let mut init = Vec::new();
    for &(kind, at, n) in raw_tree {
        let Some(path) = model.place(at, 1, "n") else {
            break;
        };
        match kind % 4 {
            0 | 1 => {
                let len = u64::from(n) % (MAX_FILE + 1);
                model.nodes.insert(path.clone(), Node::File(len));
                init.push(Init::File { path, len, seed: n });
            }
            2 => {
                model.nodes.insert(path.clone(), Node::Dir);
                init.push(Init::Dir { path });
            }
            _ => {
                let target = link_target(&model, &path, n);
                model.nodes.insert(path.clone(), Node::Link);
                init.push(Init::Link { target, path });
            }
        }
    }
    let mut script = String::new();
    let mut line = |text: String| {
        script.push_str(&text);
        script.push('\n');
    };
    let py = |p: &str| {
        if p.is_empty() {
            ".".to_string()
        } else {
            p.to_string()
        }
    };
    for (i, &(op, a, b, c)) in raw_ops.iter().enumerate() {
        let seed = i as u32 * 7 + c % 1000;
        match op % if reuse { 14 } else { 13 } {
            0 => {
                if let Some(path) = model.place(a, c, "c") {
                    let len = u64::from(c) % (MAX_FILE + 1);
                    model.nodes.insert(path.clone(), Node::File(len));
                    line(format!("create {path} {len} {seed}"));
                }
            }
            1 => {
                if let Some(path) = pick(&model.files(), a) {
                    let Some(&Node::File(len)) = model.nodes.get(&path) else {
                        unreachable!()
                    };
                    let at = u64::from(b) % (len + 1);
                    let n = (1 + u64::from(c) % 4096).min(MAX_FILE - at).max(1);
                    model
                        .nodes
                        .insert(path.clone(), Node::File(len.max(at + n)));
                    line(format!("write {path} {at} {n} {seed}"));
                }
            }
            2 => {
                if let Some(path) = pick(&model.files(), a) {
                    let Some(&Node::File(len)) = model.nodes.get(&path) else {
                        unreachable!()
                    };
                    let n = 1 + u64::from(c) % 2048;
                    let len = if len + n > MAX_FILE { n } else { len + n };
                    model.nodes.insert(path.clone(), Node::File(len));
                    line(format!("append {path} {n} {seed}"));
                }
            }
            3 => {
                if let Some(path) = pick(&model.files(), a) {
                    let len = u64::from(c) % (MAX_FILE + 1);
                    model.nodes.insert(path.clone(), Node::File(len));
                    line(format!("truncate {path} {len}"));
                }
            }
            4 => {
                // A file renamed over another file, or to a new path.
                let files = model.files();
                if let Some(from) = pick(&files, a) {
                    let over = pick(&files, b).filter(|to| *to != from && c % 3 == 0);
                    if let Some(to) = over.or_else(|| model.place(b, c / 3, "r")) {
                        model.rename(&from, &to);
                        line(format!("rename {from} {to}"));
                    }
                }
            }
            5 => {
                let dirs = model.paths(|p, n| n == Node::Dir && !p.is_empty());
                if let Some(from) = pick(&dirs, a) {
                    let places: Vec<String> = model
                        .parents()
                        .into_iter()
                        .filter(|p| !within(p, &from))
                        .collect();
                    if let Some(dir) = pick(&places, b) {
                        model.made += 1;
                        let to = join(&dir, &format!("m{}", model.made));
                        model.rename(&from, &to);
                        line(format!("rename {from} {to}"));
                    }
                }
            }
            6 => {
                let removable = model.paths(|_, n| n != Node::Dir);
                if let Some(path) = pick(&removable, a) {
                    model.remove(&path);
                    line(format!("unlink {path}"));
                }
            }
            7 => {
                if let Some(path) = model.place(a, c, "d") {
                    model.nodes.insert(path.clone(), Node::Dir);
                    line(format!("mkdir {path}"));
                }
            }
            8 => {
                let empty = model.paths(|p, n| {
                    n == Node::Dir
                        && !p.is_empty()
                        && !model.nodes.keys().any(|q| q != p && within(q, p))
                });
                if let Some(path) = pick(&empty, a) {
                    model.remove(&path);
                    line(format!("rmdir {path}"));
                }
            }
            9 => {
                if let Some(path) = model.place(a, c, "l") {
                    let target = link_target(&model, &path, u32::from(b));
                    model.nodes.insert(path.clone(), Node::Link);
                    line(format!("symlink {target} {path}"));
                }
            }
            10 => {
                let targets = model.paths(|_, n| n != Node::Link);
                if let Some(path) = pick(&targets, a) {
                    let modes = if model.nodes[&path] == Node::Dir {
                        DIR_MODES
                    } else {
                        FILE_MODES
                    };
                    let mode = modes[c as usize % modes.len()];
                    line(format!("chmod {} {mode:o}", py(&path)));
                }
            }
            13 => {
                // A path that flips between file and directory at every pass of the script.
                let flippable =
                    model.paths(|p, n| !p.is_empty() && n != Node::Link && depth(p) < 3);
                if let Some(path) = pick(&flippable, a) {
                    if model.nodes[&path] == Node::Dir {
                        model.remove(&path);
                        model.nodes.insert(path.clone(), Node::File(5));
                    } else {
                        model.nodes.insert(path.clone(), Node::Dir);
                        model.nodes.insert(format!("{path}/inner"), Node::File(5));
                    }
                    line(format!("flip {path}"));
                }
            }
            op => {
                let all = model.paths(|_, _| true);
                if let Some(path) = pick(&all, a) {
                    if op == 11 && chown {
                        let (uid, gid) = OWNERS[c as usize % OWNERS.len()];
                        line(format!("chown {} {uid} {gid}", py(&path)));
                    } else {
                        // An old mtime, nanoseconds included.
                        let secs = 1_000_000_000 + u64::from(c) % 100_000_000;
                        let nanos = u64::from(b) * 15_259 % 1_000_000_000;
                        line(format!("utime {} {secs} {nanos}", py(&path)));
                    }
                }
            }
        }
    }
    (init, script)
}

/// A relative symlink target for a link at `path`: an entry of the tree (which may go later),
/// or a name that never exists.
fn link_target(model: &Model, path: &str, n: u32) -> String {
    let entries = model.paths(|p, _| !p.is_empty());
    match pick(&entries, n / 4).filter(|_| n % 4 != 0) {
        Some(entry) => format!("{}{entry}", "../".repeat(depth(parent(path)))),
        None => format!("nowhere-{n}"),
    }
}

fn content(len: u64, seed: u32) -> Vec<u8> {
    if seed % 5 == 0 {
        return vec![0; len as usize];
    }
    (0..len)
        .map(|i| (u64::from(seed) + i * 13 + i / 4096) as u8)
        .collect()
}

fn build(src: &Path, init: &[Init]) -> u64 {
    std::fs::create_dir(src).unwrap();
    let mut bytes = 0;
    for entry in init {
        match entry {
            Init::File { path, len, seed } => {
                std::fs::write(src.join(path), content(*len, *seed)).unwrap();
                bytes += len;
            }
            Init::Dir { path } => std::fs::create_dir(src.join(path)).unwrap(),
            Init::Link { target, path } => {
                std::os::unix::fs::symlink(target, src.join(path)).unwrap()
            }
        }
    }
    bytes
}

fn python_works() -> bool {
    Command::new("python3")
        .args(["-c", "pass"])
        .status()
        .is_ok_and(|s| s.success())
}

/// One case: the application runs the script during a real migration, then S and D compare.
fn migrate_while_operating(
    raw_tree: &[(u8, u16, u32)],
    raw_ops: &[(u8, u16, u16, u32)],
    reuse: bool,
) -> Result<(), TestCaseError> {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    // chown needs root: without it the script has none (a failure under CI=true).
    let chown = is_root() || {
        can_run("chown in the script", Some("needs root"));
        false
    };
    let (init, script) = plan(raw_tree, raw_ops, reuse, chown);
    let mut bytes = build(&src, &init);
    // Whatever the random tree holds, the first round lasts about 3 s (see --bwlimit): the
    // script runs during pre-copy. No operation names these files.
    for i in 0..BALLAST {
        std::fs::write(src.join(format!("ballast{i}")), content(MAX_FILE, i + 1)).unwrap();
        bytes += MAX_FILE;
    }
    let (ops, script_file, marker) = (
        work.path().join("ops.py"),
        work.path().join("script"),
        work.path().join("passes"),
    );
    std::fs::write(&ops, OPS_PY).unwrap();
    std::fs::write(&script_file, &script).unwrap();
    let rx = receiver(work.path());
    let app = App::new(
        work.path(),
        format!(
            "exec python3 '{}' '{}' '{}' '{}'",
            ops.display(),
            src.display(),
            script_file.display(),
            marker.display()
        ),
    );
    // The initial tree takes about 3 s to send: pre-copy overlaps many passes of the script.
    let bwlimit = bytes as f64 * 8.0 / 3.0;
    let run = send(
        work.path(),
        &rx.addr,
        &rw_then_stop(
            &src,
            &[
                arg("--bwlimit"),
                arg(format!("{bwlimit:.0}bps")),
                arg("--max-rounds"),
                arg("20"),
            ],
        ),
        Some(&app),
        false,
    );
    let case = format!("initial tree {init:?}\nscript:\n{script}");
    prop_assert_eq!(
        run.code,
        Some(0),
        "send failed:\n{}\n{}",
        tail(&run.stderr),
        case
    );
    // With --then stop the application is stopped now: a pass it finished was before the stop.
    let passes = std::fs::read_to_string(&marker).unwrap_or_default();
    prop_assert!(
        passes.trim().parse::<u32>().is_ok_and(|p| p >= 1),
        "the application never finished a pass of its script before the stop\n{}",
        tail(&run.stderr)
    );
    prop_assert_eq!(reported_pid(&run.json), app.pid());
    let found = differences(&src, &at_d(&rx.root, &src));
    prop_assert!(
        found.is_empty(),
        "D differs from the stopped S ({} passes of the script ran):\n{}\n{}\nsend said: {}",
        passes.trim(),
        found.join("\n"),
        case,
        run.json["measured"]["verdict"]
    );
    let left = rx.leftovers(1);
    prop_assert!(left.is_empty(), "temporary files left: {left:?}");
    say(&format!(
        "case: {} entries at the stop, {} passes of {} operations, {} rounds",
        snapshot(&src).len(),
        passes.trim(),
        script.lines().count(),
        run.json["metrics"]["rounds"]
    ));
    Ok(())
}

/// [`migrate_while_operating`] if python3 (the application) is there: else a skip, a failure
/// under `CI=true`.
fn case_if_python(
    test: &str,
    raw_tree: &[(u8, u16, u32)],
    raw_ops: &[(u8, u16, u16, u32)],
    reuse: bool,
) -> Result<(), TestCaseError> {
    if !can_run(test, (!python_works()).then_some("needs python3")) {
        return Ok(());
    }
    migrate_while_operating(raw_tree, raw_ops, reuse)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 4,
        // Each case is a real migration of several seconds, and timing decides whether some
        // cases fail: no shrinking (the failing case is shown whole), the same cases every run.
        max_shrink_iters: 0,
        rng_seed: RngSeed::Fixed(0x7472_6565),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn raw_tree() -> impl Strategy<Value = Vec<(u8, u16, u32)>> {
    prop::collection::vec(any::<(u8, u16, u32)>(), 3..=24)
}

fn raw_ops() -> impl Strategy<Value = Vec<(u8, u16, u16, u32)>> {
    prop::collection::vec(any::<(u8, u16, u16, u32)>(), 8..=40)
}

proptest! {
    #![proptest_config(config())]

    /// Every path keeps its kind: files, directories and symlinks come and go, are renamed
    /// (a file over another, a directory with its subtree), written, truncated, chmodded,
    /// chowned (root) and given old mtimes while pre-copy runs.
    #[test]
    fn operations_during_precopy_leave_d_equal_to_the_stopped_source(
        tree in raw_tree(),
        ops in raw_ops(),
    ) {
        case_if_python("operations_during_precopy", &tree, &ops, false)?;
    }

    /// As above, and paths change kind: removed paths come back as another kind, and `flip`
    /// turns a file into a directory holding a file, or a directory into a file, at every
    /// pass of the script.
    #[test]
    fn operations_that_change_a_paths_kind_leave_d_equal_to_the_stopped_source(
        tree in raw_tree(),
        ops in raw_ops(),
    ) {
        case_if_python("operations_that_change_kinds", &tree, &ops, true)?;
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Faults.

/// `send` exited 0; else the failure shows the end of its log.
#[track_caller]
fn assert_sent(run: &Run) {
    assert_eq!(run.code, Some(0), "{}", tail(&run.stderr));
}

/// D equals S entry by entry; else the failure lists every difference.
#[track_caller]
fn assert_d_equals_s(src: &Path, d: &Path) {
    let found = differences(src, d);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// `WORK/src` holding one file (its directories made): where most fault tests start.
fn src_holding(work: &Path, file: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let src = work.join("src");
    let path = src.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    src
}

#[test]
fn a_root_that_does_not_exist_is_named_with_exit_code_2() {
    let work = tempfile::tempdir().unwrap();
    let rx = receiver(work.path());
    let missing = work.path().join("no-such-dir");
    let run = send(
        work.path(),
        &rx.addr,
        &[arg("--rw"), arg(&missing)],
        None,
        false,
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(&missing.display().to_string()),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(rx.leftovers(0), [] as [PathBuf; 0]);
}

/// A tree with a FIFO and a UNIX socket in it, besides files, a directory and a symlink.
fn tree_with_specials(src: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), b"a file").unwrap();
    std::fs::write(src.join("sub/b"), vec![7u8; 10_000]).unwrap();
    std::os::unix::fs::symlink("../a", src.join("sub/link")).unwrap();
    let (fifo, socket) = (src.join("sub/fifo"), src.join("socket"));
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    // The socket file stays after the listener is closed.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    (fifo, socket)
}

#[test]
fn fifos_and_sockets_are_refused_by_name_or_left_out_with_skip_special() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let (fifo, socket) = tree_with_specials(&src);
    let rx = receiver(work.path());
    let d = at_d(&rx.root, &src);

    let app = App::sleeper(work.path());
    let run = send(
        work.path(),
        &rx.addr,
        &[arg("--rw"), arg(&src)],
        Some(&app),
        false,
    );
    assert!(!matches!(run.code, Some(0) | None), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    for special in [&fifo, &socket] {
        let named = special.display().to_string();
        assert!(run.stderr.contains(&named), "{named}: {}", run.stderr);
    }
    assert!(!d.exists(), "refused, yet something is at D");
    assert_eq!(rx.leftovers(1), [] as [PathBuf; 0]);
    drop(app);

    let app = App::sleeper(work.path());
    let run = send(
        work.path(),
        &rx.addr,
        &[arg("--rw"), arg(&src), arg("--skip-special")],
        Some(&app),
        false,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let skipped = run.json["measured"]["skipped"].to_string();
    for special in [&fifo, &socket] {
        let named = special.display().to_string();
        assert!(skipped.contains(&named), "{named} not in {skipped}");
    }
    // Everything else is there, equal.
    assert_eq!(
        differences(&src, &d),
        [
            "socket: FIFO, socket or device at S, missing at D",
            "sub/fifo: FIFO, socket or device at S, missing at D",
        ]
    );
    assert_eq!(rx.leftovers(2), [] as [PathBuf; 0]);
}

#[test]
fn an_unreadable_file_is_named_and_nothing_partial_is_left() {
    let test = "an_unreadable_file_is_named";
    let lacking = (!is_root()).then_some("needs root to run send as an unprivileged user");
    if !can_run(test, lacking) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // `nobody` needs to reach the tree, the token and the application's pid file.
    set_mode(work.path(), 0o755);
    let src = src_holding(work.path(), "readable", vec![1u8; 50_000]);
    let secret = src.join("secret");
    std::fs::write(&secret, b"no one may read this").unwrap();
    set_mode(&secret, 0o000);
    let app_dir = work.path().join("app");
    std::fs::create_dir(&app_dir).unwrap();
    set_mode(&app_dir, 0o777);
    let rx = receiver(work.path());
    let app = App::sleeper(&app_dir);
    let run = send(
        work.path(),
        &rx.addr,
        &rw_then_stop(&src, &[]),
        Some(&app),
        true,
    );
    assert!(!matches!(run.code, Some(0) | None), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&secret.display().to_string()),
        "the unreadable file is not named: {}",
        run.stderr
    );
    let d = at_d(&rx.root, &src);
    assert!(!d.join("secret").exists(), "the unreadable file is at D");
    assert_eq!(rx.leftovers(1), [] as [PathBuf; 0]);
}

/// A migration of `src` (holding `hot`, 100 kB) whose application, as soon as `arrived` (a
/// path under S) is a regular file at D, runs `change` (sh, in S), writes a marker and goes
/// idle. Until then it rewrites `hot` in place (0.4 s on the wire at 2 Mbit/s), so U never drops
/// to 0 and, with β = 1000, pre-copy goes on however long `arrived` takes to reach D; once the
/// application is idle U drops to 0 and pre-copy ends. Returns the run, the receiver and D.
fn change_once_arrived(
    work: &Path,
    src: &Path,
    arrived: &str,
    change: &str,
) -> (Run, Receiver, PathBuf) {
    std::fs::write(src.join("hot"), vec![9u8; 100_000]).unwrap();
    let rx = receiver(work);
    let wait = format!(
        "while [ ! -f '{d}/{arrived}' ]; do \
         dd if=/dev/urandom of=hot bs=100000 count=1 conv=notrunc status=none; sleep 0.01; \
         done",
        d = at_d(&rx.root, src).display()
    );
    let args = rw_then_stop(
        src,
        &[arg("--bwlimit"), arg("2Mbps"), arg("--beta"), arg("1000")],
    );
    let missed = format!("during pre-copy ({arrived} never reached D?)");
    let change = Change {
        wait: &wait,
        change,
        missed: &missed,
    };
    send_changing(work, src, rx, &args, change)
}

/// What the application of [`send_changing`] does in S, and when.
struct Change<'a> {
    /// sh: returns once it is time for the change.
    wait: &'a str,
    /// sh: the change.
    change: &'a str,
    /// When the change should have happened, for the failure message.
    missed: &'a str,
}

/// `send ARGS` whose application, in S, waits for its moment, makes the change, writes a marker
/// and goes idle. The change must have happened (else the test would prove nothing) and `send`
/// must not have panicked. Returns the run, the receiver and D.
fn send_changing(
    work: &Path,
    src: &Path,
    rx: Receiver,
    args: &[OsString],
    change: Change,
) -> (Run, Receiver, PathBuf) {
    let d = at_d(&rx.root, src);
    let done = work.join("changed");
    let body = format!(
        "cd '{src}' || exit 1; {wait}; {change}; : > '{done}'; exec sleep 3600",
        src = src.display(),
        wait = change.wait,
        change = change.change,
        done = done.display()
    );
    let app = App::new(work, body);
    let run = send(work, &rx.addr, args, Some(&app), false);
    assert!(
        done.exists(),
        "the change did not happen {}: {}",
        change.missed,
        tail(&run.stderr)
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    (run, rx, d)
}

/// `WORK/src` holding `file`; once it is at D the application runs `change`, which gives
/// `changed` another kind at S. The migration must succeed with `changed` of that kind
/// (`is_new_kind`) at D, D equal to S, no temporary file left.
fn kind_changed_once_arrived(
    file: &str,
    content: &[u8],
    change: &str,
    changed: &str,
    is_new_kind: fn(&std::fs::Metadata) -> bool,
) {
    let work = tempfile::tempdir().unwrap();
    let src = src_holding(work.path(), file, content);
    let (run, rx, d) = change_once_arrived(work.path(), &src, file, change);
    assert_sent(&run);
    let there = std::fs::symlink_metadata(d.join(changed)).unwrap();
    assert!(
        is_new_kind(&there),
        "{changed} at D: {:?}",
        there.file_type()
    );
    assert_d_equals_s(&src, &d);
    assert_eq!(rx.leftovers(1), [] as [PathBuf; 0]);
}

/// The application replaces the file `f` by a directory (`rm f; mkdir f; echo x > f/inner`) as
/// soon as `f` has arrived at D, i.e. during pre-copy; the tree at D must follow.
#[test]
fn a_file_replaced_by_a_directory_mid_migration_is_a_directory_at_d() {
    let change = "rm f; mkdir f; echo x > f/inner";
    let content = b"a file, for now";
    kind_changed_once_arrived("f", content, change, "f", std::fs::Metadata::is_dir);
}

/// The reverse: a directory whose file has arrived at D becomes a file at S.
#[test]
fn a_directory_replaced_by_a_file_mid_migration_is_a_file_at_d() {
    let change = "rm -r d; echo now a file > d";
    let content = b"in a directory, for now";
    kind_changed_once_arrived("d/inner", content, change, "d", std::fs::Metadata::is_file);
}

/// Bytes of `big` in [`change_within_a_round`].
const BIG: u64 = 250_000;

/// A migration of `src` (`--rw`) and of `WORK/big` (`--ro`, 250 kB: 1 s at the 2 Mbit/s limit),
/// in one long round (period 5 s): the ReadOnly `big` goes first, then the files of `src`. The
/// application runs `change` (sh, in S) as soon as `big` has begun to arrive at D, i.e. after
/// the round's walk and before `src`'s files are sent, and writes a marker. Returns the run, the
/// receiver and D.
fn change_within_a_round(work: &Path, src: &Path, change: &str) -> (Run, Receiver, PathBuf) {
    let big = work.join("big");
    std::fs::write(&big, content(BIG, 3)).unwrap();
    let rx = receiver(work);
    // `big` arrives as `.XXXXXX.precopy-tmp` beside where it goes, the first file to.
    let wait = format!(
        "until ls -a '{big_dir}' 2>/dev/null | grep -q '\\.precopy-tmp$'; do \
         sleep 0.01; done",
        big_dir = at_d(&rx.root, work).display()
    );
    let args = [
        arg("--rw"),
        arg(src),
        arg("--ro"),
        arg(&big),
        arg("--then"),
        arg("stop"),
        arg("--period"),
        arg("5s"),
        arg("--bwlimit"),
        arg("2Mbps"),
        arg("--max-rounds"),
        arg("1"),
    ];
    let change = Change {
        wait: &wait,
        change,
        missed: "while big was sent",
    };
    send_changing(work, src, rx, &args, change)
}

/// A directory becomes a file between the round's walk and the sending of a file in it: the
/// file is gone (opening it fails with ENOTDIR, not ENOENT), which is no error.
#[test]
fn a_directory_replaced_by_a_file_within_a_round_is_no_error() {
    let work = tempfile::tempdir().unwrap();
    let src = src_holding(work.path(), "d/inner", b"sent after big");
    let (run, rx, d) = change_within_a_round(work.path(), &src, "rm -r d; echo x > d");
    assert_sent(&run);
    assert_d_equals_s(&src, &d);
    assert_eq!(rx.leftovers(1), [] as [PathBuf; 0]);
}

/// A file becomes a symlink to a file outside every root between the round's walk and its
/// sending: `send` must not read through the symlink (it runs as root: that would copy any file
/// of the source host to D). Pre-copy sends `big` and then nothing for `x` (it is no longer a
/// file); had `x` been read through the link, the outside file's bytes would have been sent.
#[test]
fn a_file_replaced_by_a_symlink_within_a_round_is_not_read_through_it() {
    let work = tempfile::tempdir().unwrap();
    let src = src_holding(work.path(), "x", b"an ordinary file");
    let secret = work.path().join("secret");
    std::fs::write(&secret, b"outside every root: never to be sent").unwrap();
    let change = format!("rm x; ln -s '{}' x", secret.display());
    let (run, rx, d) = change_within_a_round(work.path(), &src, &change);
    assert_sent(&run);
    let precopy_bytes = run.json["metrics"]["precopy_bytes"].as_u64().unwrap();
    assert_eq!(
        precopy_bytes,
        BIG,
        "pre-copy sent {} bytes besides big: {} is {} bytes long; send read it through the \
         symlink x and stored it at D as x",
        precopy_bytes - BIG,
        secret.display(),
        std::fs::metadata(&secret).unwrap().len()
    );
    assert_d_equals_s(&src, &d);
    assert_eq!(rx.leftovers(1), [] as [PathBuf; 0]);
}

/// `send --rw SRC --then stop` with an application that only sleeps: it must succeed with D equal
/// to S. Returns the receiver and D.
fn migrate_stopping_a_sleeper(work: &Path, src: &Path) -> (Receiver, PathBuf) {
    let rx = receiver(work);
    let app = App::sleeper(work);
    let run = send(work, &rx.addr, &rw_then_stop(src, &[]), Some(&app), false);
    assert_sent(&run);
    let d = at_d(&rx.root, src);
    assert_d_equals_s(src, &d);
    (rx, d)
}

#[test]
fn a_sparse_file_arrives_equal_and_sparse() {
    const SIZE: u64 = 1 << 30;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let sparse = src.join("sparse");
    let made = Command::new("truncate")
        .args(["-s", "1G"])
        .arg(&sparse)
        .status()
        .unwrap();
    assert!(made.success());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap();
    file.write_all_at(&[0xab; 3000], 0).unwrap();
    file.write_all_at(b"in the middle", SIZE / 2 + 5).unwrap();
    file.write_all_at(&[0xcd; 5000], SIZE - 5000).unwrap();
    drop(file);
    let (rx, d) = migrate_stopping_a_sleeper(work.path(), &src);
    let there = std::fs::metadata(d.join("sparse")).unwrap();
    assert_eq!(there.len(), SIZE);
    // 3 data blocks plus metadata, against 262,144 blocks if it were dense.
    assert!(
        there.blocks() * 512 < 1 << 20,
        "{} bytes allocated at D for {} bytes of data",
        there.blocks() * 512,
        3000 + 13 + 5000
    );
    assert_eq!(rx.leftovers(1), [] as [PathBuf; 0]);
}

/// The documented limit: hard links are not preserved. A pair of names for one inode arrives as
/// two separate files, each with the content (and metadata) of the inode; `nlink` is 1 at D.
#[test]
fn hard_links_arrive_as_separate_equal_files() {
    let work = tempfile::tempdir().unwrap();
    let src = src_holding(work.path(), "one", vec![42u8; 20_000]);
    std::fs::create_dir(src.join("sub")).unwrap();
    std::fs::hard_link(src.join("one"), src.join("sub/two")).unwrap();
    std::fs::write(src.join("alone"), b"x").unwrap();
    let (rx, d) = migrate_stopping_a_sleeper(work.path(), &src);
    let s = snapshot(&src);
    let there = snapshot(&d);
    let (one, two) = (Path::new("one"), Path::new("sub/two"));
    assert_eq!(s[one].nlink, 2);
    assert_eq!(there[one].content, there[two].content);
    assert_eq!((there[one].nlink, there[two].nlink), (1, 1));
    let inode = |p: &str| std::fs::metadata(d.join(p)).unwrap().ino();
    assert_ne!(inode("one"), inode("sub/two"));
    assert_eq!(rx.leftovers(1), [] as [PathBuf; 0]);
}

/// `WORK/src` holding one file, a receiver, and an application that only sleeps.
fn one_file_and_a_sleeper(work: &Path) -> (PathBuf, Receiver, App) {
    (
        src_holding(work, "data", b"data"),
        receiver(work),
        App::sleeper(work),
    )
}

/// `--before-stop` runs at the source before the stop: what it writes under a root is in the
/// final copy. Its output goes to stderr, so `--json` on stdout stays whole.
#[test]
fn the_before_stop_command_runs_before_the_stop_and_its_writes_arrive() {
    let work = tempfile::tempdir().unwrap();
    let (src, rx, app) = one_file_and_a_sleeper(work.path());
    let marker = src.join("checkpoint");
    let hook = format!(
        "echo said on stdout; echo checkpointed > '{}'",
        marker.display()
    );
    let run = send(
        work.path(),
        &rx.addr,
        &rw_then_stop(&src, &[arg("--before-stop"), arg(hook)]),
        Some(&app),
        false,
    );
    assert_sent(&run);
    assert!(run.json["measured"]["before_stop_s"].as_f64().unwrap() > 0.0);
    assert!(
        run.stderr.contains("said on stdout"),
        "{}",
        tail(&run.stderr)
    );
    let d = at_d(&rx.root, &src);
    assert_eq!(
        std::fs::read(d.join("checkpoint")).unwrap(),
        b"checkpointed\n"
    );
    assert_eq!(differences(&src, &d), [] as [String; 0]);
}

/// A `--before-stop` command that fails stops nothing: send exits non-zero naming it, and the
/// application runs on at the source (its state in /proc is not `T`, stopped).
#[test]
fn a_failing_before_stop_command_stops_nothing_and_is_named() {
    let work = tempfile::tempdir().unwrap();
    let (src, rx, app) = one_file_and_a_sleeper(work.path());
    let run = send(
        work.path(),
        &rx.addr,
        &[arg("--rw"), arg(&src), arg("--before-stop"), arg("exit 3")],
        Some(&app),
        false,
    );
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("--before-stop \"exit 3\" failed")
            && run.stderr.contains("nothing was stopped"),
        "{}",
        tail(&run.stderr)
    );
    let pid = app.pid().expect("the application started");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state = stat.rsplit(')').next().unwrap().split_whitespace().next();
    assert!(matches!(state, Some("S" | "R")), "state {state:?}: {stat}");
}
