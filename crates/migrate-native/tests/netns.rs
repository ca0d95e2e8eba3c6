//! Root-only end-to-end tests of `send` and `receive` (CI runs as root; elsewhere each test prints
//! why it skips and passes):
//!
//! - **Two network namespaces** joined by a veth pair, the link limited by `tc` (tbf, 20 Mbit/s,
//!   both ways). A real writer process works on the paper's fixed-size data set scaled down to
//!   110 files of 200 KB (1 ReadOnly : 5 ReadWrite written with p = 0.2 : 5 with p = 0.8), and is
//!   migrated three times from a fresh copy of the tree: with the proposed policy, with the
//!   baseline, and by stopping it and copying the tree with `rsync -a` to an rsync daemon. The
//!   receivers run in one namespace, the senders and the application in the other. Every
//!   destination tree is checked byte for byte against the stopped source, and the figures of the
//!   three are printed (measured downtime, pre-copy bytes, final bytes). Wall-clock figures are
//!   never asserted on: the machine is shared and noisy.
//! - **A full disk at the destination** (a 1 MiB tmpfs as the receiver's root): `send` fails with
//!   a clear error, the application keeps running at the source, the destination holds no partial
//!   file and the source is untouched.
//!
//! Everything a test creates (namespaces, processes, mounts) is removed by a guard's `Drop`, so
//! also when an assertion fails. Only addresses inside the test's own namespaces are used.
//!
//! The writer is this test binary itself: [`writer_process`] turns into the application when
//! `PRECOPY_NETNS_WRITER` names a source tree (run normally, it returns at once).

// Each test binary uses some of the shared helpers.
#[allow(dead_code)]
mod common;

use common::say;

use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, kill_process_group, Pid, Signal, WaitOptions};

const BIN: &str = env!("CARGO_BIN_EXE_migrate-native");
const TOKEN: &str = "netns-test-token-0123456789abcdef";

/// Set to a source tree, this test binary becomes the writer ([`writer_process`]).
const WRITER_ENV: &str = "PRECOPY_NETNS_WRITER";
/// If set, the figures are also written there as JSON.
const REPORT_ENV: &str = "PRECOPY_NETNS_REPORT";

/// The paper's fixed-size data set (SPEC §6) scaled by 0.01: 200 KB files, 1 RO : 5 + 5 RW.
const FILE_SIZE: usize = 200_000;
const RO_FILES: usize = 10;
/// ReadWrite files per access probability.
const RW_FILES: usize = 50;
const GROUPS: [(&str, f64); 2] = [("rw20", 0.2), ("rw80", 0.8)];
/// Writes per second of a file with p = 1 (the simulator's `--intensity`, linear mapping): the
/// paper's 0.01/s with time scaled by 1/30, so the link is as short of bandwidth as in the paper's
/// narrow range while a migration takes tens of seconds.
const INTENSITY: f64 = 0.3;
/// Bytes per write (pwrite at a random 4 KiB-aligned offset).
const WRITE_SIZE: usize = 4096;

const LINK: &str = "20mbit";
const S_ADDR: &str = "10.77.0.1";
const D_ADDR: &str = "10.77.0.2";
const PORT: u16 = 7300;
const RSYNC_PORT: u16 = 8730;
const PERIOD: &str = "500ms";
const BETA: &str = "4";
/// A migration that takes longer than this is killed and the test fails.
const PATIENCE: Duration = Duration::from_secs(300);

/// A program on PATH or in the usual system directories (CI's PATH may lack /sbin).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `None` (and a printed reason) unless we are root and have the tools.
fn root_with(test: &str, tools: &[&str]) -> Option<Vec<PathBuf>> {
    if !rustix::process::geteuid().is_root() {
        common::can_run(test, Some("needs root (network namespaces, tc, mount)"));
        return None;
    }
    let mut found = Vec::new();
    for name in tools {
        match tool(name) {
            Some(path) => found.push(path),
            None => {
                common::can_run(test, Some(&format!("`{name}` is not installed")));
                return None;
            }
        }
    }
    Some(found)
}

fn run(command: &mut Command) -> Result<Output, String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{command:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn pid_of(id: u32) -> Pid {
    Pid::from_raw(id as i32).expect("a pid is positive")
}

/// The state letter of `/proc/PID/stat` (R, S, T…), `None` once the process is gone.
fn state(pid: u32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 2..].chars().next()
}

/// A child that is killed (with its process group, if it leads one) when dropped.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = kill_process_group(pid_of(self.0.id()), Signal::KILL);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two namespaces, S (10.77.0.1) and D (10.77.0.2), joined by a veth pair with `tc` limiting
/// both directions. Dropping it kills every process left in them and deletes them (which
/// deletes the veth pair too).
struct Namespaces {
    ip: PathBuf,
    s: String,
    d: String,
}

impl Namespaces {
    fn create(ip: PathBuf, tc: &Path) -> Result<Namespaces, String> {
        let id = std::process::id();
        // The guard exists before the first command: whatever gets made is removed.
        let ns = Namespaces {
            ip,
            s: format!("precopy-s-{id}"),
            d: format!("precopy-d-{id}"),
        };
        let (vs, vd) = (format!("pcms{id}"), format!("pcmd{id}"));
        let ip = |args: &[&str]| run(Command::new(&ns.ip).args(args));
        ip(&["netns", "add", &ns.s])?;
        ip(&["netns", "add", &ns.d])?;
        ip(&[
            "link", "add", &vs, "netns", &ns.s, "type", "veth", "peer", "name", &vd, "netns", &ns.d,
        ])?;
        for (name, dev, addr) in [(&ns.s, &vs, S_ADDR), (&ns.d, &vd, D_ADDR)] {
            ip(&["-n", name, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", name, "link", "set", "lo", "up"])?;
            ip(&["-n", name, "link", "set", dev, "up"])?;
            run(ns.exec(name, tc).args([
                "qdisc", "add", "dev", dev, "root", "tbf", "rate", LINK, "burst", "32kbit",
                "latency", "400ms",
            ]))?;
        }
        Ok(ns)
    }

    /// `ip netns exec NS program`.
    fn exec(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(&self.ip);
        command.args(["netns", "exec", ns]).arg(program);
        command
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.s, &self.d] {
            // Every process in our namespaces is one this test started.
            if let Ok(out) = Command::new(&self.ip).args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<u32>() {
                        let _ = kill_process(pid_of(pid), Signal::KILL);
                    }
                }
            }
            let _ = Command::new(&self.ip).args(["netns", "del", ns]).status();
        }
    }
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// SplitMix64: the writer's and the data's randomness, seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// A fresh source tree under `dir`: `ro/` (ReadOnly) and one directory per access probability.
fn source_tree(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    let mut rng = Rng(42);
    let mut data = vec![0u8; FILE_SIZE];
    let groups = [
        ("ro", RO_FILES),
        (GROUPS[0].0, RW_FILES),
        (GROUPS[1].0, RW_FILES),
    ];
    for (group, n) in groups {
        std::fs::create_dir_all(src.join(group)).unwrap();
        for i in 0..n {
            rng.fill(&mut data);
            std::fs::write(src.join(group).join(format!("f{i:03}")), &data).unwrap();
        }
    }
    src
}

/// Not a test: the application being migrated. With `PRECOPY_NETNS_WRITER` set to a source tree
/// it writes to its ReadWrite files forever, each a Poisson process of rate INTENSITY × p (the
/// simulator's linear mapping); each write is 4 KiB of fresh bytes at a random offset. Run
/// without it (as by `cargo test`), it returns at once.
#[test]
fn writer_process() {
    let Some(src) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let src = PathBuf::from(src);
    let mut files = Vec::new();
    for (group, p) in GROUPS {
        for i in 0..RW_FILES {
            let path = src.join(group).join(format!("f{i:03}"));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            files.push((file, INTENSITY * p));
        }
    }
    let total: f64 = files.iter().map(|(_, rate)| rate).sum();
    let mut rng = Rng(7);
    let mut block = vec![0u8; WRITE_SIZE];
    let start = Instant::now();
    let mut at = 0.0;
    loop {
        // The superposition of the files' processes: gaps of rate `total`, then pick a file in
        // proportion to its rate. Sleeping to absolute times keeps the rate without drift.
        at += -rng.unit().ln() / total;
        let due = Duration::from_secs_f64(at);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let mut pick = rng.unit() * total;
        let file = files
            .iter()
            .find(|(_, rate)| {
                pick -= rate;
                pick <= 0.0
            })
            .map_or(&files[files.len() - 1].0, |(file, _)| file);
        rng.fill(&mut block);
        let offset = rng.next() % (FILE_SIZE / WRITE_SIZE) as u64 * WRITE_SIZE as u64;
        file.write_all_at(&block, offset).unwrap();
    }
}

/// The command that starts the writer on `src`.
fn writer_argv() -> Vec<String> {
    vec![
        std::env::current_exe().unwrap().display().to_string(),
        "writer_process".into(),
        "--exact".into(),
        "--test-threads=1".into(),
    ]
}

fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(temporaries(&path));
        } else if path.to_string_lossy().ends_with(".precopy-tmp") {
            found.push(path);
        }
    }
    found
}

/// Where `send` puts a source file: the root plus its absolute path.
fn under(root: &Path) -> impl Fn(&Path) -> PathBuf + '_ {
    move |path| root.join(path.strip_prefix("/").unwrap())
}

/// Waits for a child, killing it after `PATIENCE`.
fn wait_for(mut child: Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} took more than {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `receive` (in `ns`, or here) and waits for its address line.
fn receiver(mut command: Command, work: &Path, root: &Path, listen: &str) -> (Owned, String) {
    let token = work.join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let log = std::fs::File::create(work.join(format!("receive-{}.log", listen.replace(':', "_"))))
        .unwrap();
    let mut child = command
        .args(["receive", "--listen", listen, "--root"])
        .arg(root)
        .arg("--token-file")
        .arg(&token)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let addr = common::listening_addr(&mut child);
    (Owned(child), addr)
}

/// One row of the figures.
#[derive(Debug, serde::Serialize)]
struct Row {
    method: String,
    downtime_s: f64,
    precopy_bytes: u64,
    final_bytes: u64,
    total_time_s: f64,
    rounds: u64,
    ended: String,
    simulated_downtime_s: Option<f64>,
    /// The manifest check after the downtime, the application still stopped (send only).
    verify_s: Option<f64>,
}

/// Migrates a fresh tree with `send --policy policy` from S to the receiver at D.
fn migrate_with_send(ns: &Namespaces, work: &Path, root: &Path, policy: &str) -> Row {
    let dir = work.join(policy);
    let src = source_tree(&dir);
    let log_path = dir.join("send.log");
    let mut child = ns
        .exec(&ns.s, BIN)
        .args(["send", "--to", &format!("{D_ADDR}:{PORT}"), "--json"])
        .args(["--policy", policy, "--period", PERIOD, "--beta", BETA])
        .args(["--max-rounds", "120", "--then", "stop"])
        .arg("--token-file")
        .arg(work.join("token"))
        .arg("--ro")
        .arg(src.join("ro"))
        .arg("--rw")
        .arg(format!(
            "{},{}",
            src.join(GROUPS[0].0).display(),
            src.join(GROUPS[1].0).display()
        ))
        .arg("--")
        .args(writer_argv())
        .env(WRITER_ENV, &src)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    // Read stdout on a thread so a chatty sender never blocks on a full pipe.
    let mut out = Vec::new();
    let mut pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        std::io::Read::read_to_end(&mut pipe, &mut out).unwrap();
        out
    });
    let status = wait_for(child, &format!("send --policy {policy}"));
    let out = reader.join().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
    // Left stopped at the source (`--then stop`): the source is as it was at stop time.
    let app = json["metrics"]["dataset"]
        .as_str()
        .and_then(|d| d.strip_prefix("pid "))
        .and_then(|p| p.parse::<u32>().ok());
    let _app = app.map(KillGroup);
    assert!(status.success(), "send --policy {policy} failed:\n{log}");
    let (files, _) = common::assert_same_tree(&src, under(root));
    assert_eq!(files, (RO_FILES + 2 * RW_FILES) as u64);
    assert!(temporaries(root).is_empty(), "temporary files left at D");
    assert!(json["measured"]["verdict"]
        .as_str()
        .unwrap_or_default()
        .contains("(110 files, byte for byte"));
    let m = &json["metrics"];
    Row {
        method: policy.into(),
        downtime_s: json["measured"]["downtime_s"].as_f64().unwrap(),
        precopy_bytes: m["precopy_bytes"].as_u64().unwrap(),
        final_bytes: m["final_bytes"].as_u64().unwrap(),
        total_time_s: m["total_time_s"].as_f64().unwrap(),
        rounds: m["rounds"].as_u64().unwrap(),
        ended: m["end_reason"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        simulated_downtime_s: json["prediction"]["downtime_s"].as_f64(),
        verify_s: json["measured"]["verify_s"].as_f64(),
    }
}

/// Kills a process group when dropped (and reaps its leader if it became our child).
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = kill_process_group(pid_of(self.0), Signal::KILL);
        let _ = kill_process(pid_of(self.0), Signal::KILL);
        let _ = rustix::process::waitpid(Some(pid_of(self.0)), WaitOptions::empty());
    }
}

/// Makes this process the reaper of the applications `send` leaves behind. Without it, a
/// stopped application whose `send` exits is in an orphaned process group, and the kernel sends
/// it SIGHUP and SIGCONT: under `nohup` it would go on writing before the test compares the
/// trees.
fn adopt_orphans() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
}

/// Stop-then-rsync: the writer runs a while, is stopped, the tree goes with `rsync -a` to the
/// daemon at D, and it is resumed. Downtime: from the stop to rsync's exit.
fn migrate_with_rsync(ns: &Namespaces, rsync: &Path, work: &Path) -> Row {
    let dir = work.join("rsync");
    let src = source_tree(&dir);
    let dst = dir.join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    let conf = dir.join("rsyncd.conf");
    std::fs::write(
        &conf,
        format!(
            "use chroot = false\nuid = root\ngid = root\nlog file = {}\n[dst]\npath = {}\n\
             read only = false\n",
            dir.join("rsyncd.log").display(),
            dst.display()
        ),
    )
    .unwrap();
    let _daemon = Owned(
        ns.exec(&ns.d, rsync)
            .arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", conf.display()))
            .arg(format!("--address={D_ADDR}"))
            .arg(format!("--port={RSYNC_PORT}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let module = format!("rsync://{D_ADDR}:{RSYNC_PORT}/dst/");
    let deadline = Instant::now() + Duration::from_secs(20);
    while run(ns.exec(&ns.s, rsync).arg(&module)).is_err() {
        assert!(Instant::now() < deadline, "the rsync daemon did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let argv = writer_argv();
    let writer = Owned(
        ns.exec(&ns.s, &argv[0])
            .args(&argv[1..])
            .env(WRITER_ENV, &src)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    // `ip netns exec` execs the command: the child's pid is the writer's.
    let pid = writer.0.id();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        matches!(state(pid), Some('R' | 'S' | 'D')),
        "the writer is not running"
    );
    let stop = Instant::now();
    kill_process_group(pid_of(pid), Signal::STOP).unwrap();
    while state(pid) != Some('T') {
        std::thread::sleep(Duration::from_millis(1));
    }
    let copy = ns
        .exec(&ns.s, rsync)
        .arg("-a")
        .arg(format!("{}/", src.display()))
        .arg(&module)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_for(copy, "rsync");
    let downtime = stop.elapsed().as_secs_f64();
    assert!(status.success(), "rsync failed: {status}");
    // Checked while the writer is still stopped, then resumed (and ended with the guard).
    let (_, bytes) = common::assert_same_tree(&src, |p| dst.join(p.strip_prefix(&src).unwrap()));
    kill_process_group(pid_of(pid), Signal::CONT).unwrap();
    Row {
        method: "stop + rsync".into(),
        downtime_s: downtime,
        precopy_bytes: 0,
        final_bytes: bytes,
        total_time_s: downtime,
        rounds: 0,
        ended: "-".into(),
        simulated_downtime_s: None,
        verify_s: None,
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[test]
fn namespaces_proposed_baseline_and_rsync_migrate_a_writer_over_a_limited_link() {
    const TEST: &str = "namespaces_proposed_baseline_and_rsync_migrate_a_writer";
    let Some(tools) = root_with(TEST, &["ip", "tc", "rsync"]) else {
        return;
    };
    let (ip, tc, rsync) = (tools[0].clone(), &tools[1], &tools[2]);
    let ns = match Namespaces::create(ip, tc) {
        Ok(ns) => ns,
        Err(e) if e.contains("netns add") => {
            let why = format!("cannot create network namespaces here ({e})");
            common::can_run(TEST, Some(&why));
            return;
        }
        Err(e) => panic!("setting up the namespaces: {e}"),
    };
    adopt_orphans();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let (_receiver, addr) = receiver(
        ns.exec(&ns.d, BIN),
        work.path(),
        &root,
        &format!("{D_ADDR}:{PORT}"),
    );
    assert_eq!(addr, format!("{D_ADDR}:{PORT}"));
    let rows = vec![
        migrate_with_send(&ns, work.path(), &root, "proposed"),
        migrate_with_send(&ns, work.path(), &root, "baseline"),
        migrate_with_rsync(&ns, rsync, work.path()),
    ];
    let total = (FILE_SIZE * (RO_FILES + 2 * RW_FILES)) as u64;
    let mut table = format!(
        "\nnetns figures: link {LINK} (tbf), {} files, {} ({RO_FILES} RO, {RW_FILES} RW at p = \
         0.2, {RW_FILES} at p = 0.8), intensity {INTENSITY}/s, period {PERIOD}, beta {BETA}\n\
         {:<14} {:>10} {:>10} {:>14} {:>12} {:>11} {:>7} {:<16} {:>14}\n",
        RO_FILES + 2 * RW_FILES,
        mb(total),
        "method",
        "downtime",
        "verify",
        "pre-copy",
        "final",
        "total",
        "rounds",
        "ended",
        "sim. downtime"
    );
    for r in &rows {
        table += &format!(
            "{:<14} {:>8.3} s {:>10} {:>14} {:>12} {:>9.1} s {:>7} {:<16} {:>14}\n",
            r.method,
            r.downtime_s,
            r.verify_s.map_or("-".into(), |s| format!("{s:.3} s")),
            mb(r.precopy_bytes),
            mb(r.final_bytes),
            r.total_time_s,
            r.rounds,
            r.ended,
            r.simulated_downtime_s
                .map_or("-".into(), |s| format!("{s:.3} s"))
        );
    }
    say(&table);
    if let Some(path) = std::env::var_os(REPORT_ENV) {
        std::fs::write(path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    }
}

#[test]
fn a_full_disk_at_the_destination_fails_clearly_and_the_application_keeps_running() {
    const TEST: &str = "a_full_disk_at_the_destination_fails_clearly";
    if root_with(TEST, &["mount", "umount"]).is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    std::fs::create_dir_all(&root).unwrap();
    if let Err(e) = run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&root))
    {
        common::can_run(TEST, Some(&format!("cannot mount a tmpfs here ({e})")));
        return;
    }
    let _mount = Mount(root.clone());
    // 3.6 MB for a disk of 1 MiB: about five files fit.
    let src = work.path().join("src");
    let mut rng = Rng(9);
    let mut data = vec![0u8; FILE_SIZE];
    for (group, n) in [("ro", 3), ("rw", 15)] {
        std::fs::create_dir_all(src.join(group)).unwrap();
        for i in 0..n {
            rng.fill(&mut data);
            std::fs::write(src.join(group).join(format!("f{i:03}")), &data).unwrap();
        }
    }
    let before: Vec<(PathBuf, Vec<u8>)> = ["ro", "rw"]
        .iter()
        .flat_map(|g| std::fs::read_dir(src.join(g)).unwrap())
        .map(|e| e.unwrap().path())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    let (_receiver, addr) = receiver(Command::new(BIN), work.path(), &root, "127.0.0.1:0");
    let pidfile = work.path().join("app.pid");
    let script = format!("echo $$ > {}; exec sleep 600", pidfile.display());
    let log_path = work.path().join("send.log");
    let child = Command::new(BIN)
        .args(["send", "--to", &addr, "--period", "200ms"])
        .arg("--token-file")
        .arg(work.path().join("token"))
        .arg("--ro")
        .arg(src.join("ro"))
        .arg("--rw")
        .arg(src.join("rw"))
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let status = wait_for(child, "send to a full disk");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _app = KillGroup(pid);
    assert!(!status.success(), "send succeeded onto a full disk:\n{log}");
    assert!(
        log.contains("No space left on device"),
        "the error does not say the disk is full:\n{log}"
    );
    assert!(
        log.contains("keeps running at the source"),
        "no word about the application:\n{log}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        matches!(state(pid), Some('R' | 'S')),
        "the application is not running at the source: state {:?}",
        state(pid)
    );
    // Nothing partial at D: no temporary file, and every file there is whole.
    assert_eq!(temporaries(&root), Vec::<PathBuf>::new());
    let mut whole = 0;
    for (path, data) in &before {
        if let Ok(there) = std::fs::read(under(&root)(path)) {
            assert!(&there == data, "{} is partial at D", path.display());
            whole += 1;
        }
        // Nothing lost at S.
        assert!(&std::fs::read(path).unwrap() == data);
    }
    assert!(
        whole < before.len(),
        "everything fit: the disk was not full"
    );
}
