//! `send` and `receive` end to end on loopback, and the faults of issue 5: escaping paths, wrong
//! tokens, garbage frames, a dropped connection, a restarted receiver, an application that exits.
//! The network-namespace test (root only) is at the bottom.

// Each test binary uses some of the shared helpers.
#[allow(dead_code)]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use precopy_proto::handshake::Initiator;
use precopy_proto::record::OPEN_SPACE;
use precopy_proto::{parse, ErrorCode, FileHeader, Key, Message, Meta, Opener, RelPath, Sealer};

const BIN: &str = env!("CARGO_BIN_EXE_migrate-native");
const TOKEN: &str = "test-token-0123456789abcdef";

use common::Daemon;

fn token_file(dir: &Path) -> PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path
}

fn receiver(work: &Path, root: &Path, listen: &str) -> Daemon {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let log = work.join(format!(
        "receiver-{}.log",
        STARTED.fetch_add(1, Ordering::SeqCst)
    ));
    Daemon::start(listen, root, &token_file(work), &log)
}

/// A source tree: `cold` (ReadOnly) and `hot` + `warm` (ReadWrite) files.
/// Regular files under `dir`, at any depth (none if it does not exist yet).
fn regular_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => regular_files(&e.path()),
            Ok(t) if t.is_file() => {
                usize::from(!e.file_name().to_string_lossy().ends_with(".precopy-tmp"))
            }
            _ => 0,
        })
        .sum()
}

fn source_tree(work: &Path, cold: usize, rw: usize, size: usize) -> PathBuf {
    let src = work.join("src");
    for (dir, n) in [("cold", cold), ("hot", 4), ("warm", rw)] {
        std::fs::create_dir_all(src.join(dir)).unwrap();
        for i in 0..n {
            let data: Vec<u8> = (0..size).map(|b| (b * 31 + i * 7) as u8).collect();
            std::fs::write(src.join(dir).join(format!("f{i:03}")), data).unwrap();
        }
    }
    src
}

/// A writer: hot files often, warm files now and then, until killed — or, should a failed
/// `send` leave it behind unnamed, for a couple of minutes.
fn writer_script(src: &Path, rw: usize) -> String {
    format!(
        "cd {} && i=0; while [ $i -lt 5000 ]; do i=$((i+1)); head -c 20000 /dev/urandom > hot/f00$((i%4)); \
         if [ $((i%7)) = 0 ]; then head -c 20000 /dev/urandom > warm/f$(printf %03d $((i%{rw}))); fi; \
         sleep 0.02; done",
        src.display()
    )
}

struct Sent {
    ok: bool,
    json: serde_json::Value,
    stderr: String,
}

fn send(work: &Path, addr: &str, src: &Path, extra: &[&str], app: &[&str]) -> Sent {
    static SENT: AtomicUsize = AtomicUsize::new(0);
    let log = work.join(format!("send-{}.log", SENT.fetch_add(1, Ordering::SeqCst)));
    let out = Command::new(BIN)
        .args(["send", "--to", addr, "--json", "--period", "200ms"])
        .arg("--token-file")
        .arg(token_file(work))
        .arg("--ro")
        .arg(src.join("cold"))
        .arg("--rw")
        .arg(format!(
            "{},{}",
            src.join("hot").display(),
            src.join("warm").display()
        ))
        .args(extra)
        .arg("--")
        .args(app)
        // The application inherits stderr: a file, so no pipe waits for it to exit.
        .stderr(std::fs::File::create(&log).unwrap())
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let pid = json["metrics"]["dataset"]
        .as_str()
        .and_then(|d| d.strip_prefix("pid "))
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|&p| p > 1)
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // Resumed (or left stopped) at the source: end its whole group. Not `kill -KILL -PID`:
        // procps' kill reads "-1…" as -1 and signals every process on the machine.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    Sent {
        ok: out.status.success(),
        json,
        stderr: std::fs::read_to_string(&log).unwrap(),
    }
}

/// Every file under `src` is at `root` + its absolute path, byte for byte.
fn assert_same_tree(src: &Path, root: &Path) {
    let src = src.canonicalize().unwrap();
    common::assert_same_tree(&src, |p| root.join(p.strip_prefix("/").unwrap()));
    assert!(
        !common::has_temporaries(root),
        "a temporary file is left at the destination"
    );
}

#[test]
fn loopback_proposed_and_baseline_migrate_identical_trees() {
    for policy in ["proposed", "baseline"] {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("dst");
        let src = source_tree(work.path(), 30, 20, 40_000);
        let daemon = receiver(work.path(), &root, "127.0.0.1:0");
        let script = writer_script(&src, 20);
        let sent = send(
            work.path(),
            &daemon.addr,
            &src,
            &[
                "--policy",
                policy,
                "--beta",
                "4",
                "--bwlimit",
                "40Mbps",
                "--then",
                "stop",
            ],
            &["sh", "-c", &script],
        );
        assert!(sent.ok, "{policy}: {}", sent.stderr);
        assert_same_tree(&src, &root);
        let m = &sent.json["metrics"];
        assert_eq!(m["policy"], policy);
        assert!(m["precopy_bytes"].as_u64().unwrap() >= 30 * 40_000);
        assert!(sent.json["measured"]["verdict"]
            .as_str()
            .unwrap()
            .contains("(54 files, byte for byte"));
        assert!(sent.json["prediction"]["downtime_s"].is_number());
    }
}

/// A file renamed after it was sent, content unchanged (a rotated log), is renamed at the
/// destination too: nothing is sent twice, and the old name is gone there.
#[test]
fn a_renamed_file_is_renamed_at_the_destination_not_sent_again() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let src = source_tree(work.path(), 3, 2, 1_000)
        .canonicalize()
        .unwrap();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(src.join("warm/big"), &big).unwrap();
    // Sent after `big` (ascending size: nothing is written), for 1.6 s: the rename, made as soon
    // as `big` is at the destination, is seen by a walk during pre-copy.
    std::fs::write(src.join("warm/huge"), vec![7u8; 8_000_000]).unwrap();
    let daemon = receiver(work.path(), &root, "127.0.0.1:0");
    let there = root.join(src.join("warm/big").strip_prefix("/").unwrap());
    // Renames the big file once the destination holds it, then writes nothing more.
    let script = format!(
        "cd {} && while [ ! -e {} ]; do sleep 0.01; done; mv warm/big warm/big.1; exec sleep 600",
        src.display(),
        there.display()
    );
    let sent = send(
        work.path(),
        &daemon.addr,
        &src,
        &["--bwlimit", "40Mbps", "--then", "stop"],
        &["sh", "-c", &script],
    );
    assert!(sent.ok, "{}", sent.stderr);
    assert_same_tree(&src, &root);
    assert!(!there.exists(), "the old name is gone at the destination");
    let m = &sent.json["metrics"];
    let sent_bytes = m["precopy_bytes"].as_u64().unwrap() + m["final_bytes"].as_u64().unwrap();
    assert_eq!(
        sent_bytes,
        m["total_bytes"].as_u64().unwrap(),
        "{}",
        sent.json
    );
    assert_eq!(sent.json["measured"]["repaired_files"], 0);
}

/// A connection that speaks the protocol by hand: plaintext frames for the handshake, then
/// records sealed and opened by precopy-proto's own record layer.
struct Raw {
    stream: TcpStream,
    channel: Option<(Sealer, Opener)>,
    /// Bytes read and not used yet; frames opened and not parsed yet.
    read: Vec<u8>,
    opened: Vec<u8>,
}

impl Raw {
    fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw {
            stream,
            channel: None,
            read: Vec::new(),
            opened: Vec::new(),
        }
    }

    /// Sends frame bytes, sealed once the handshake is done.
    fn write(&mut self, frames: &[u8]) {
        let wire = match self.channel.as_mut() {
            Some((sealer, _)) => {
                let mut wire = Vec::new();
                sealer.seal(frames, None, &mut wire).unwrap();
                wire
            }
            None => frames.to_vec(),
        };
        let _ = self.stream.write_all(&wire);
    }

    fn send(&mut self, message: &Message<'_>) {
        let mut wire = Vec::new();
        message.emit(&mut wire).unwrap();
        self.write(&wire);
    }

    /// The next frame, or `None` once the peer closed (or sent what does not open).
    fn recv(&mut self) -> Option<Frame> {
        let mut piece = [0u8; 4096];
        let mut out = vec![0u8; OPEN_SPACE];
        loop {
            if let Some((_, opener)) = self.channel.as_mut() {
                while let Ok(Some((used, n))) = opener.open(&self.read, &mut out) {
                    self.opened.extend_from_slice(&out[..n]);
                    self.read.drain(..used);
                }
            }
            let frames = match self.channel {
                Some(_) => &self.opened,
                None => &self.read,
            };
            if let Ok(Some((message, used))) = parse(frames) {
                let frame = match message {
                    Message::Welcome { noise } => Frame::Welcome(noise),
                    Message::Error { code, .. } => Frame::Error(code),
                    _ => Frame::Other,
                };
                match self.channel {
                    Some(_) => self.opened.drain(..used),
                    None => self.read.drain(..used),
                };
                return Some(frame);
            }
            match self.stream.read(&mut piece) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.read.extend_from_slice(&piece[..n]),
            }
        }
    }
}

/// Connects and does the handshake by hand; `Some(code)` if the receiver refused it.
fn raw_session(addr: &str, token: &str) -> (Raw, Option<ErrorCode>) {
    let key = Key::from_token(token.as_bytes()).unwrap();
    let mut raw = Raw::connect(addr);
    let (initiator, hello) = Initiator::start(&key);
    raw.send(&Message::Hello { noise: hello });
    match raw.recv() {
        Some(Frame::Welcome(welcome)) => {
            raw.channel = Some(initiator.finish(&welcome).expect("the receiver's welcome"));
            (raw, None)
        }
        Some(Frame::Error(code)) => (raw, Some(code)),
        _ => (raw, Some(ErrorCode::Other(0))),
    }
}

enum Frame {
    Welcome([u8; 48]),
    Error(ErrorCode),
    Other,
}

/// A FileStart for `path` with the path bytes patched in after encoding (the encoder itself
/// refuses such paths).
fn file_start_raw(path: &[u8]) -> Vec<u8> {
    let placeholder = vec![b'x'; path.len()];
    let mut wire = Vec::new();
    Message::FileStart(FileHeader {
        id: 1,
        path: RelPath::new(&placeholder).unwrap(),
        meta: Meta {
            mode: 0o644,
            ..Meta::default()
        },
        size: 4,
    })
    .emit(&mut wire)
    .unwrap();
    wire[10 + 8 + 2..10 + 8 + 2 + path.len()].copy_from_slice(path);
    wire
}

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

#[test]
fn escaping_paths_are_refused_and_nothing_is_written_outside() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    let daemon = receiver(work.path(), &root, "127.0.0.1:0");
    let outside_rel = outside
        .strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let dotdot = format!("../../../../../../{outside_rel}/evil");
    let absolute = format!("{}/evil", outside.display());
    for path in [
        dotdot.as_str(),
        absolute.as_str(),
        "a/../../evil",
        "escape/evil",
    ] {
        let (mut raw, refused) = raw_session(&daemon.addr, TOKEN);
        assert_eq!(refused, None);
        raw.write(&file_start_raw(path.as_bytes()));
        raw.send(&Message::Chunk(b"evil"));
        match raw.recv() {
            Some(Frame::Error(code)) => assert!(
                matches!(code, ErrorCode::Path | ErrorCode::Protocol),
                "{path}: {code:?}"
            ),
            _ => panic!("{path}: no error frame"),
        }
        assert!(raw.recv().is_none(), "{path}: connection left open");
    }
    assert!(empty(&outside), "something was written outside the root");
}

#[test]
fn a_wrong_or_missing_token_closes_the_connection_and_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let daemon = receiver(work.path(), &root, "127.0.0.1:0");
    let (mut raw, refused) = raw_session(&daemon.addr, "another-token-0123456789");
    assert_eq!(refused, Some(ErrorCode::Auth));
    raw.write(&file_start_raw(b"owned"));
    assert!(raw.recv().is_none());
    // No handshake at all: straight to a file, in plaintext.
    let mut raw = Raw::connect(&daemon.addr);
    raw.write(&file_start_raw(b"owned"));
    assert!(matches!(
        raw.recv(),
        Some(Frame::Error(ErrorCode::Protocol)) | None
    ));
    assert!(raw.recv().is_none());
    assert!(empty(&root));
    // The sender reports a receiver that does not know its token.
    std::fs::write(work.path().join("wrong"), "yet-another-token-0123456789").unwrap();
    let src = source_tree(work.path(), 1, 1, 10);
    let out = Command::new(BIN)
        .args(["send", "--to", &daemon.addr, "--token-file"])
        .arg(work.path().join("wrong"))
        .arg("--ro")
        .arg(src.join("cold"))
        .args(["--", "sleep", "30"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("authentication failed"));
    assert!(empty(&root));
}

#[test]
fn garbage_and_truncated_frames_get_an_error_and_the_daemon_survives() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let daemon = receiver(work.path(), &root, "127.0.0.1:0");
    let inputs: [&[u8]; 7] = [
        b"GET / HTTP/1.1\r\n\r\n",
        b"PCMG\x04\x11\xff\xff\xff\xff",
        b"PCMG\x04\x01\x00\x00\x00\x30abc",
        // Version-1, -2 and -3 peers.
        b"PCMG\x01\x01\x00\x00\x00\x20abc",
        b"PCMG\x02\x01\x00\x00\x00\x20abc",
        b"PCMG\x03\x01\x00\x00\x00\x30abc",
        &[0u8; 100_000],
    ];
    for input in inputs {
        let mut raw = Raw::connect(&daemon.addr);
        raw.write(input);
        let _ = raw.stream.shutdown(std::net::Shutdown::Write);
        // An error frame or a plain close, never a hang or a crash.
        let _ = raw.recv();
    }
    // After a bad session mid-handshake, a good one still works.
    let (mut raw, refused) = raw_session(&daemon.addr, TOKEN);
    assert_eq!(refused, None);
    raw.send(&Message::Bye);
    let src = source_tree(work.path(), 3, 2, 1000);
    let sent = send(work.path(), &daemon.addr, &src, &[], &["sleep", "30"]);
    assert!(sent.ok, "{}", sent.stderr);
    assert_same_tree(&src, &root);
}

/// Forwards connections to `to`; cuts the first one after `cut` bytes from the client.
fn cutting_proxy(to: String, cut: usize) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cut_done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cut_done);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(&to) else {
                return;
            };
            let limit = if flag.swap(true, Ordering::SeqCst) {
                usize::MAX
            } else {
                cut
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                let mut passed = 0;
                loop {
                    let n = match client.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n.min(limit - passed),
                    };
                    if server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    passed += n;
                    if passed >= limit {
                        break;
                    }
                }
                let _ = server.shutdown(std::net::Shutdown::Both);
                let _ = client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (addr, cut_done)
}

#[test]
fn a_connection_dropped_mid_file_is_resumed() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let src = source_tree(work.path(), 10, 4, 300_000);
    let daemon = receiver(work.path(), &root, "127.0.0.1:0");
    // 1 MB in: in the middle of the fourth file.
    let (proxy, _) = cutting_proxy(daemon.addr.clone(), 1_000_000);
    let sent = send(
        work.path(),
        &proxy,
        &src,
        &["--beta", "2"],
        &["sleep", "30"],
    );
    assert!(sent.ok, "{}", sent.stderr);
    assert!(sent.json["measured"]["reconnects"].as_u64().unwrap() >= 1);
    assert_same_tree(&src, &root);
}

#[test]
fn a_restarted_receiver_resumes_without_resending_verified_files() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let src = source_tree(work.path(), 40, 2, 100_000);
    let first = receiver(work.path(), &root, "127.0.0.1:0");
    let addr = first.addr.clone();
    let sender = {
        let (work, addr, src) = (work.path().to_path_buf(), addr.clone(), src.clone());
        std::thread::spawn(move || {
            send(
                &work,
                &addr,
                &src,
                &["--bwlimit", "8Mbps", "--beta", "2"],
                &["sleep", "60"],
            )
        })
    };
    // 4.6 MB at 1 MB/s: kill the receiver once 20 of the 46 files are in place (renamed there
    // when committed), start a new one on the same port.
    while regular_files(&root) < 20 {
        assert!(
            !sender.is_finished(),
            "send ended before the receiver was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(first);
    let second = receiver(work.path(), &root, &addr);
    let sent = sender.join().unwrap();
    assert!(sent.ok, "{}", sent.stderr);
    assert!(sent.json["measured"]["reconnects"].as_u64().unwrap() >= 1);
    assert_same_tree(&src, &root);
    let log = std::fs::read_to_string(&second.log).unwrap();
    let stored: u64 = log
        .split(" files stored, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary in the second receiver's log: {log}"));
    assert!(
        stored < 3_500_000,
        "the new receiver got {stored} bytes: verified files were resent"
    );
}

#[test]
fn an_application_that_exits_during_precopy_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let src = source_tree(work.path(), 20, 2, 200_000);
    let daemon = receiver(work.path(), &root, "127.0.0.1:0");
    let sent = send(
        work.path(),
        &daemon.addr,
        &src,
        &["--bwlimit", "4Mbps"],
        &["sh", "-c", "sleep 0.3; exit 3"],
    );
    assert!(!sent.ok);
    assert!(
        sent.stderr.contains("exited during pre-copy") && sent.stderr.contains("exit status: 3"),
        "{}",
        sent.stderr
    );
}

#[test]
fn without_a_file_list_the_files_are_identified_live_stop_free() {
    identified_live("cgroup");
}

#[test]
fn without_a_file_list_the_files_are_identified_live_under_ptrace() {
    identified_live("ptrace");
}

/// `send -- CMD` with no file list, identifying `--identify-with identify_with`.
fn identified_live(identify_with: &str) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let src = source_tree(work.path(), 30, 0, 40_000);
    let src = src.canonicalize().unwrap();
    let daemon = receiver(work.path(), &root, "127.0.0.1:0");
    // Reads the cold files and writes the hot ones; once the first cold file is at the
    // destination (pre-copy began: the identification window is over), creates a new file; then
    // ends when the test takes `hold` away, after the stop. At 4 Mbit/s the other cold files
    // take seconds more: the new file is there before the stop, whatever the β test or U = 0
    // would say after the ReadOnly phase. Its life is that event, not a number of loops: on a
    // loaded machine identification and pre-copy outlasted 400 of them (it exited 0.1 s into
    // pre-copy). Should the test fail first, the temporary directory goes, `hold` with it.
    let hold = work.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    let first_at_destination = root.join(src.join("cold/f000").strip_prefix("/").unwrap());
    let script = format!(
        "cd {} && cat cold/* > /dev/null; i=0; while [ -e {} ]; do i=$((i+1)); \
         head -c 20000 /dev/urandom > hot/f00$((i%4)); \
         [ ! -e late ] && [ -e {} ] && echo new > late; sleep 0.02; done",
        src.display(),
        hold.display(),
        first_at_destination.display()
    );
    let mut send = Command::new(BIN)
        .args(["send", "--to", &daemon.addr, "--json", "--period", "200ms"])
        .args(["--beta", "4", "--bwlimit", "4Mbps", "--identify", "1s"])
        .args(["--identify-with", identify_with])
        .arg("--include")
        .arg(format!("{}/**", src.display()))
        .arg("--token-file")
        .arg(token_file(work.path()))
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The application may end once send is done with it: when send says it goes on under
    // send's tracer (send then stays until it ends), or when send has ended.
    let lines = BufReader::new(send.stderr.take().unwrap());
    let stderr = std::thread::spawn({
        let hold = hold.clone();
        move || {
            let mut stderr = String::new();
            for line in lines.split(b'\n') {
                let line = String::from_utf8_lossy(&line.unwrap()).into_owned();
                if line.contains("goes on at the source") {
                    let _ = std::fs::remove_file(&hold);
                }
                stderr.push_str(&line);
                stderr.push('\n');
            }
            let _ = std::fs::remove_file(&hold);
            stderr
        }
    });
    let mut stdout = Vec::new();
    let read = send.stdout.take().unwrap().read_to_end(&mut stdout);
    let status = send.wait().unwrap();
    let stderr = stderr.join().unwrap();
    read.unwrap();
    if stderr.contains("not permitted") {
        common::can_run(
            "send -- CMD",
            Some(&format!("ptrace is not available: {stderr}")),
        );
        return;
    }
    assert!(status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert!(
        stderr.contains("identified 34 file(s) in the first 1.0 s (4 read-write)"),
        "{stderr}"
    );
    // The tree as it was at the stop: every file opened before it, verified by the receiver,
    // the one first opened after the window included.
    let verdict = json["measured"]["verdict"].as_str().unwrap();
    assert!(verdict.contains("(35 files, byte for byte"), "{verdict}");
    let late = root.join(src.join("late").strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(late).unwrap(), b"new\n");
    // The cold files are unchanged since: byte for byte at D.
    common::assert_same_tree(&src.join("cold"), |p| {
        root.join(p.strip_prefix("/").unwrap())
    });
    assert!(json["metrics"]["precopy_bytes"].as_u64().unwrap() >= 30 * 40_000);
    if identify_with == "ptrace" {
        // send stayed until the application ended (its tracer must).
        assert!(
            stderr.contains("the application ended (exit code 0)"),
            "{stderr}"
        );
    } else {
        // Nothing of send outlives the migration: it left the application running.
        assert!(stderr.contains("stop-free"), "{stderr}");
        assert!(!stderr.contains("the application ended"), "{stderr}");
        let pid = json["metrics"]["dataset"].as_str().unwrap()["pid ".len()..].to_string();
        let running = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat[stat.rfind(')').unwrap()..].starts_with(") Z"))
        };
        // The test's directory must outlive the application: wait for its end.
        while running() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    assert!(!stderr.contains("not migrated"), "{stderr}");
}

#[test]
fn without_root_the_default_write_monitor_falls_back_to_polling() {
    if !rustix::process::geteuid().is_root() {
        common::can_run(
            "without_root_the_default_write_monitor_falls_back_to_polling",
            Some("needs root to drop to an unprivileged user"),
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let src = source_tree(work.path(), 3, 2, 1_000);
    let daemon = receiver(work.path(), &root, "127.0.0.1:0");
    // Readable by `nobody`: the tree, the token.
    let open = |p: &Path, mode| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap()
    };
    open(work.path(), 0o755);
    open(&token_file(work.path()), 0o644);
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            BIN,
        ])
        .args(["send", "--to", &daemon.addr, "--json", "--period", "200ms"])
        .arg("--token-file")
        .arg(work.path().join("token"))
        .arg("--rw")
        .arg(&src)
        .args(["--", "sleep", "5"])
        // The application inherits stderr: a file, so no pipe waits for it to exit.
        .stderr(std::fs::File::create(work.path().join("send.log")).unwrap())
        .output()
        .unwrap();
    let stderr = std::fs::read_to_string(work.path().join("send.log")).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("polling the files instead"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["measured"]["verdict"]
        .as_str()
        .unwrap()
        .contains("(9 files, byte for byte"));
    assert_same_tree(&src, &root);
}

/// A page of a file mapped shared and writable, for stores the write monitor cannot see.
struct Mapped {
    ptr: *mut u8,
    len: usize,
    _file: std::fs::File,
}

impl Mapped {
    fn new(path: &Path) -> Mapped {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let len = 4096;
        // SAFETY: a fresh shared mapping of an open file at least `len` long, unmapped on drop.
        #[allow(unsafe_code)]
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &file,
                0,
            )
        }
        .unwrap();
        Mapped {
            ptr: ptr.cast(),
            len,
            _file: file,
        }
    }

    fn store(&mut self, at: usize, byte: u8) {
        assert!(at < self.len);
        // SAFETY: `at` is inside the mapping, which nothing else in this process touches.
        #[allow(unsafe_code)]
        unsafe {
            self.ptr.add(at).write_volatile(byte)
        };
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, not used after this.
        #[allow(unsafe_code)]
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}

/// A store through a shared mapping is invisible to the write monitor, and lands in a page that
/// an earlier store left dirty and writable, so by itself it would not change the file's times.
/// Made after the file's only send, its size unchanged, it must still reach the destination:
/// the send write-protected the page, so the store changes the file's stamp, which the next walk
/// finds, and the file is sent again.
#[test]
fn a_store_through_a_mapping_after_the_last_send_is_caught_and_resent() {
    let work = tempfile::tempdir().unwrap();
    // The destination on another file system where there is one (/dev/shm): the receiver's
    // `syncfs` would write the source's page back too, write-protecting it, and hide the store.
    let elsewhere = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let root = elsewhere.path().join("dst");
    let src = source_tree(work.path(), 40, 2, 50_000);
    let target = src.join("cold/f000");
    let mut mapped = Mapped::new(&target);
    mapped.store(0, b'a');
    // Old enough for its stamp to vouch for it when it is sent (`stamp::RACY`).
    std::thread::sleep(Duration::from_millis(1200));
    let daemon = receiver(work.path(), &root, "127.0.0.1:0");
    let sender = {
        let (work, addr, src) = (work.path().to_path_buf(), daemon.addr.clone(), src.clone());
        // Path order, one pass: cold/f000 goes first, then 2.3 MB at 0.5 MB/s.
        std::thread::spawn(move || {
            send(
                &work,
                &addr,
                &src,
                &[
                    "--policy",
                    "baseline",
                    "--bwlimit",
                    "4Mbps",
                    "--then",
                    "stop",
                ],
                &["sleep", "60"],
            )
        })
    };
    let at_destination = root.join(target.canonicalize().unwrap().strip_prefix("/").unwrap());
    while !at_destination.exists() {
        assert!(!sender.is_finished(), "send ended before cold/f000 arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    mapped.store(1, b'b');
    let sent = sender.join().unwrap();
    assert!(sent.ok, "{}", sent.stderr);
    // A walk finds the store's new stamp — the one at the end of the round that sent it, or the
    // one at the stop — and the file goes again, in pre-copy or in the final copy.
    let metrics = &sent.json["metrics"];
    let again =
        metrics["resent_files"].as_u64().unwrap() + metrics["final_files"].as_u64().unwrap();
    assert_eq!(again, 1, "{}", sent.json);
    assert_eq!(&std::fs::read(&at_destination).unwrap()[..2], b"ab");
    assert_same_tree(&src, &root);
}

#[test]
fn a_running_process_is_attached_for_identification_then_left_running() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let src = source_tree(work.path(), 3, 0, 10_000);
    let src = src.canonicalize().unwrap();
    let daemon = receiver(work.path(), &root, "127.0.0.1:0");
    // Holds one cold file open from the start; reads the others and writes the hot ones in a loop.
    let script = format!(
        "cd {} && exec 3< cold/f000; while true; do cat cold/f001 cold/f002 > /dev/null; \
         head -c 10000 /dev/urandom > hot/f000; sleep 0.05; done",
        src.display()
    );
    let mut app = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Attach once the shell holds cold/f000 open (its fd 3).
    let held = src.join("cold/f000");
    while std::fs::read_link(format!("/proc/{}/fd/3", app.id())).ok() != Some(held.clone()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = work.path().join("send-attached.log");
    let out = Command::new(BIN)
        .args(["send", "--to", &daemon.addr, "--json", "--period", "200ms"])
        .args([
            "--beta",
            "4",
            "--identify",
            "1s",
            "--pid",
            &app.id().to_string(),
        ])
        .arg("--include")
        .arg(format!("{}/**", src.display()))
        .arg("--token-file")
        .arg(token_file(work.path()))
        .stderr(std::fs::File::create(&log).unwrap())
        .output()
        .unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    let running = app.try_wait().unwrap().is_none();
    let _ = app.kill();
    let _ = app.wait();
    if stderr.contains("not permitted") {
        common::can_run(
            "send --pid",
            Some(&format!("ptrace is not available: {stderr}")),
        );
        return;
    }
    assert!(out.status.success(), "{stderr}");
    // f000 (open since before the attach), f001, f002 and the hot file it writes.
    assert!(
        stderr.contains("identified 4 file(s) in the first 1.0 s (1 read-write)"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let verdict = json["measured"]["verdict"].as_str().unwrap();
    assert!(verdict.contains("(4 files, byte for byte"), "{verdict}");
    common::assert_same_tree(&src.join("cold"), |p| {
        root.join(p.strip_prefix("/").unwrap())
    });
    // Detached after the window and resumed after the final copy: it runs on at the source.
    assert!(running, "the application did not survive the migration");
}
