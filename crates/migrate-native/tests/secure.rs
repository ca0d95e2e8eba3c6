//! The encrypted channel of issue 12, end to end on loopback: what an observer on the path sees,
//! what an attacker who alters, drops, repeats or reorders records achieves, and how peers
//! without the token, of an older version or without encryption are refused.

// Each test binary uses some of the shared helpers.
#[allow(dead_code)]
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use precopy_proto::handshake::{Initiator, MESSAGE_LEN};
use precopy_proto::record::{record_len, OPEN_SPACE};
use precopy_proto::{parse, ErrorCode, Key, Message, Opener, HEADER_LEN};

const BIN: &str = env!("CARGO_BIN_EXE_migrate-native");
const TOKEN: &str = "secure-test-token-0123456789";
const MARKER: &[u8] = b"MARKER-of-issue-12-never-in-clear";

use common::Daemon;

fn token_file(dir: &Path, token: &str) -> PathBuf {
    let path = dir.join(format!("token-{}", token.len()));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

fn receiver(work: &Path, root: &Path) -> Daemon {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let log = work.join(format!(
        "receiver-{}.log",
        STARTED.fetch_add(1, Ordering::SeqCst)
    ));
    Daemon::start("127.0.0.1:0", root, &token_file(work, TOKEN), &log)
}

/// Files of `size` bytes whose content repeats the marker (a secret an observer must not read);
/// one of them has the marker in its name too.
fn secret_tree(work: &Path, files: usize, size: usize) -> PathBuf {
    let src = work.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..files {
        let mut data = Vec::with_capacity(size);
        while data.len() < size {
            data.extend_from_slice(MARKER);
            data.extend_from_slice(format!(" {i} {} ", data.len()).as_bytes());
        }
        data.truncate(size);
        std::fs::write(src.join(format!("f{i:02}")), data).unwrap();
    }
    std::fs::write(
        src.join(String::from_utf8(MARKER.to_vec()).unwrap()),
        b"named",
    )
    .unwrap();
    src.canonicalize().unwrap()
}

struct Sent {
    ok: bool,
    json: serde_json::Value,
    stderr: String,
}

fn send(work: &Path, addr: &str, src: &Path, token: &str, extra: &[&str]) -> Sent {
    let out = Command::new(BIN)
        .args(["send", "--to", addr, "--json", "--period", "200ms"])
        .arg("--token-file")
        .arg(token_file(work, token))
        .arg("--rw")
        .arg(src)
        .args(["--then", "stop", "--reconnect", "10s"])
        .args(extra)
        .args(["--", "sleep", "60"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    if let Some(pid) = json["metrics"]["dataset"]
        .as_str()
        .and_then(|d| d.strip_prefix("pid "))
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|&p| p > 1)
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    Sent {
        ok: out.status.success(),
        json,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The destination holds exactly the source, byte for byte, and no temporary file.
fn assert_same_tree(src: &Path, root: &Path) {
    common::assert_same_tree(src, |p| root.join(p.strip_prefix("/").unwrap()));
    assert!(!common::has_temporaries(root), "a temporary file is left");
}

/// What a proxy does to the sender's records on its first connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tamper {
    None,
    /// One bit of record N's ciphertext.
    Flip(usize),
    Drop(usize),
    Duplicate(usize),
    /// Record N + 1 before record N.
    Reorder(usize),
}

impl Tamper {
    fn at(self) -> Option<usize> {
        match self {
            Tamper::None => None,
            Tamper::Flip(at) | Tamper::Drop(at) | Tamper::Duplicate(at) | Tamper::Reorder(at) => {
                Some(at)
            }
        }
    }
}

/// A proxy between S and D that records every byte both ways and tampers with the sender's
/// records (cut at their boundaries by `record_len`, as an attacker on the path can) on its first
/// connection.
struct Proxy {
    addr: String,
    recorded: Arc<Mutex<Vec<u8>>>,
    tampered: Arc<AtomicBool>,
}

fn proxy(to: String, tamper: Tamper) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let tampered = Arc::new(AtomicBool::new(false));
    let (rec, done) = (Arc::clone(&recorded), Arc::clone(&tampered));
    std::thread::spawn(move || {
        let mut first = true;
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(&to) else {
                return;
            };
            let tamper = if std::mem::take(&mut first) {
                tamper
            } else {
                Tamper::None
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let back = Arc::clone(&rec);
            std::thread::spawn(move || relay_back(s2, c2, back));
            let (rec, done) = (Arc::clone(&rec), Arc::clone(&done));
            std::thread::spawn(move || relay_records(client, server, tamper, rec, done));
        }
    });
    Proxy {
        addr,
        recorded,
        tampered,
    }
}

fn relay_back(mut from: TcpStream, mut to: TcpStream, recorded: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 65536];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        recorded.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// S → D: the hello frame as it is, then record by record.
fn relay_records(
    mut from: TcpStream,
    mut to: TcpStream,
    tamper: Tamper,
    recorded: Arc<Mutex<Vec<u8>>>,
    tampered: Arc<AtomicBool>,
) {
    let mut buf = Vec::new();
    let mut piece = [0u8; 65536];
    let mut hello_left = HEADER_LEN + MESSAGE_LEN;
    let mut index = 0;
    let mut held: Option<Vec<u8>> = None;
    loop {
        let n = match from.read(&mut piece) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        recorded.lock().unwrap().extend_from_slice(&piece[..n]);
        buf.extend_from_slice(&piece[..n]);
        let mut out = Vec::new();
        let hello = hello_left.min(buf.len());
        out.extend(buf.drain(..hello));
        hello_left -= hello;
        while let (0, Ok(Some(len))) = (hello_left, record_len(&buf)) {
            let mut record: Vec<u8> = buf.drain(..len).collect();
            match tamper {
                Tamper::Flip(at) if index == at => record[len / 2] ^= 0x10,
                Tamper::Drop(at) if index == at => record.clear(),
                Tamper::Duplicate(at) if index == at => record = record.repeat(2),
                Tamper::Reorder(at) if index == at => {
                    held = Some(std::mem::take(&mut record));
                }
                Tamper::Reorder(at) if index == at + 1 => {
                    record.extend(held.take().unwrap());
                }
                _ => {}
            }
            if tamper.at() == Some(index) {
                tampered.store(true, Ordering::SeqCst);
            }
            out.extend(record);
            index += 1;
        }
        if to.write_all(&out).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_observer_on_the_path_never_sees_file_contents_names_or_the_token() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let src = secret_tree(work.path(), 4, 200_000);
    let daemon = receiver(work.path(), &root);
    let proxy = proxy(daemon.addr.clone(), Tamper::None);
    let sent = send(
        work.path(),
        &proxy.addr,
        &src,
        TOKEN,
        &["--compress", "off"],
    );
    assert!(sent.ok, "{}", sent.stderr);
    assert_same_tree(&src, &root);
    let recorded = proxy.recorded.lock().unwrap().clone();
    assert!(
        recorded.len() > 800_000,
        "{} bytes recorded",
        recorded.len()
    );
    assert!(
        !contains(&recorded, MARKER),
        "the marker crossed the wire in clear"
    );
    assert!(
        !contains(&recorded, TOKEN.as_bytes()),
        "the token crossed the wire"
    );
    // Not even the frames' magic after the two handshake frames.
    assert_eq!(
        recorded
            .windows(4)
            .filter(|w| *w == precopy_proto::MAGIC)
            .count(),
        2
    );
}

#[test]
fn an_altered_dropped_repeated_or_reordered_record_ends_the_session_and_send_resumes() {
    // Record 30 is well inside the files (each 200 kB spans four records).
    for tamper in [
        Tamper::Flip(30),
        Tamper::Drop(30),
        Tamper::Duplicate(30),
        Tamper::Reorder(30),
    ] {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("dst");
        let src = secret_tree(work.path(), 20, 200_000);
        let daemon = receiver(work.path(), &root);
        let proxy = proxy(daemon.addr.clone(), tamper);
        let sent = send(work.path(), &proxy.addr, &src, TOKEN, &[]);
        assert!(
            proxy.tampered.load(Ordering::SeqCst),
            "{tamper:?}: never applied"
        );
        assert!(sent.ok, "{tamper:?}: {}", sent.stderr);
        assert!(
            sent.json["measured"]["reconnects"].as_u64().unwrap() >= 1,
            "{tamper:?}"
        );
        assert_same_tree(&src, &root);
        let log = daemon.log();
        assert!(
            log.contains("a record failed authentication"),
            "{tamper:?}: {log}"
        );
    }
}

/// Reads one frame's code and message, in plaintext or through `opener`.
fn error_frame(stream: &mut TcpStream, mut opener: Option<&mut Opener>) -> (ErrorCode, String) {
    let (mut raw, mut frames) = (Vec::new(), Vec::new());
    let mut out = vec![0u8; OPEN_SPACE];
    let mut piece = [0u8; 4096];
    loop {
        if let Some(opener) = opener.as_mut() {
            while let Ok(Some((used, n))) = opener.open(&raw, &mut out) {
                frames.extend_from_slice(&out[..n]);
                raw.drain(..used);
            }
        } else {
            frames = raw.clone();
        }
        match parse(&frames) {
            Ok(Some((Message::Error { code, message }, _))) => return (code, message.into()),
            Ok(Some((other, _))) => panic!("a {} frame instead of an error", other.name()),
            Ok(None) => {}
            Err(e) => panic!("{e}"),
        }
        match stream.read(&mut piece) {
            Ok(0) | Err(_) => panic!("closed without an error frame"),
            Ok(n) => raw.extend_from_slice(&piece[..n]),
        }
    }
}

#[test]
fn peers_without_the_token_of_an_old_version_or_without_encryption_are_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dst");
    let src = secret_tree(work.path(), 2, 1000);
    let daemon = receiver(work.path(), &root);
    let connect = || {
        let stream = TcpStream::connect(&daemon.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    };

    // A sender with another token.
    let sent = send(
        work.path(),
        &daemon.addr,
        &src,
        "another-token-0123456789abc",
        &[],
    );
    assert!(!sent.ok);
    assert!(
        sent.stderr.contains("authentication failed"),
        "{}",
        sent.stderr
    );

    // A version-2 sender: its hello was a 32-byte nonce.
    let mut stream = connect();
    let mut hello = b"PCMG\x02\x01\x00\x00\x00\x20".to_vec();
    hello.extend_from_slice(&[7; 32]);
    stream.write_all(&hello).unwrap();
    let (code, message) = error_frame(&mut stream, None);
    assert_eq!(code, ErrorCode::Protocol);
    assert!(message.contains("protocol version 2"), "{message}");

    // A version-3 sender: the same handshake, but no deltas.
    let mut stream = connect();
    let mut hello = b"PCMG\x03\x01\x00\x00\x00\x30".to_vec();
    hello.extend_from_slice(&[7; 48]);
    stream.write_all(&hello).unwrap();
    let (code, message) = error_frame(&mut stream, None);
    assert_eq!(code, ErrorCode::Protocol);
    assert!(message.contains("protocol version 3"), "{message}");

    // A plaintext sender: frames straight away.
    let mut stream = connect();
    let mut frame = Vec::new();
    Message::Bye.emit(&mut frame).unwrap();
    stream.write_all(&frame).unwrap();
    let (code, message) = error_frame(&mut stream, None);
    assert_eq!(code, ErrorCode::Protocol);
    assert!(message.contains("does not encrypt"), "{message}");

    // A sender that does the handshake, then goes on in plaintext.
    let mut stream = connect();
    let key = Key::from_token(TOKEN.as_bytes()).unwrap();
    let (initiator, noise) = Initiator::start(&key);
    let mut hello = Vec::new();
    Message::Hello { noise }.emit(&mut hello).unwrap();
    stream.write_all(&hello).unwrap();
    let mut welcome = [0u8; HEADER_LEN + MESSAGE_LEN];
    stream.read_exact(&mut welcome).unwrap();
    let Ok(Some((Message::Welcome { noise }, _))) = parse(&welcome) else {
        panic!("no welcome");
    };
    let (_, mut opener) = initiator.finish(&noise).unwrap();
    // "PC" taken as a record's length is 20,547 bytes: send that many.
    stream.write_all(&frame.repeat(2100)).unwrap();
    let (code, message) = error_frame(&mut stream, Some(&mut opener));
    assert_eq!(code, ErrorCode::Protocol);
    assert!(message.contains("the peer does not encrypt"), "{message}");
    assert!(!root.exists() || std::fs::read_dir(&root).unwrap().next().is_none());

    // The receiver's log names them too (the last session's line may still be on its way: its
    // refusal was checked above).
    let log = daemon.log();
    for cause in [
        "authentication failed",
        "protocol version 2",
        "protocol version 3",
        "a plaintext bye frame where the encrypted handshake's hello belongs",
    ] {
        assert!(log.contains(cause), "{cause}: {log}");
    }

    // A version-3 receiver (played here) answers a version-4 hello with its own refusal.
    let old = TcpListener::bind("127.0.0.1:0").unwrap();
    let old_addr = old.local_addr().unwrap().to_string();
    let refuse = std::thread::spawn(move || {
        let (mut peer, _) = old.accept().unwrap();
        let mut hello = [0u8; HEADER_LEN + MESSAGE_LEN];
        peer.read_exact(&mut hello).unwrap();
        let text = b"bad frame from the peer: protocol version 4 not supported (this side: 3)";
        let mut error = b"PCMG\x03\x7f".to_vec();
        error.extend_from_slice(&(4 + text.len() as u32).to_be_bytes());
        error.extend_from_slice(&1u16.to_be_bytes());
        error.extend_from_slice(&(text.len() as u16).to_be_bytes());
        error.extend_from_slice(text);
        peer.write_all(&error).unwrap();
    });
    let sent = send(work.path(), &old_addr, &src, TOKEN, &[]);
    refuse.join().unwrap();
    assert!(!sent.ok);
    assert!(
        sent.stderr
            .contains("the peer speaks protocol version 3, this side 4"),
        "{}",
        sent.stderr
    );
}
