//! Helpers shared by the integration tests that run `receive`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A `receive` daemon, killed and reaped when dropped.
pub struct Daemon {
    child: Child,
    /// Where it listens.
    pub addr: String,
    /// Its `--root`.
    pub root: PathBuf,
    /// Its stderr.
    pub log: PathBuf,
    /// Its `--token-file`.
    pub token: PathBuf,
}

impl Daemon {
    /// `receive --listen LISTEN --root ROOT --token-file TOKEN`, its stderr in `log`; returns once
    /// it listens.
    pub fn start(listen: &str, root: &Path, token: &Path, log: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_migrate-native"))
            .args(["receive", "--listen", listen, "--root"])
            .arg(root)
            .arg("--token-file")
            .arg(token)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let addr = listening_addr(&mut child);
        Daemon {
            child,
            addr,
            root: root.to_path_buf(),
            log: log.to_path_buf(),
            token: token.to_path_buf(),
        }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes to the real stderr: the test harness captures `print!` and `eprint!`, and figures and
/// skip messages must show in CI's log.
pub fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Whether a test that needs something (root, a program) can run: under `CI=true` a lack is a
/// failure, elsewhere a skip.
pub fn can_run(test: &str, lacking: Option<&str>) -> bool {
    match lacking {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: {why}; under CI=true this is a failure")
        }
        Some(why) => {
            say(&format!("SKIPPED: {test}: {why}"));
            false
        }
    }
}

/// Reads the address a just-started `receive` prints first ("listening on ADDR").
pub fn listening_addr(receiver: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(receiver.stdout.take().expect("receive's stdout is piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("receive said {line:?}"))
        .to_string()
}

/// Whether a receiver's temporary file is left anywhere under `dir`.
#[allow(dead_code)] // not every test crate that includes this module checks for them
pub fn has_temporaries(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let path = e.unwrap().path();
        if path.is_dir() {
            has_temporaries(&path)
        } else {
            path.to_string_lossy().ends_with(".precopy-tmp")
        }
    })
}

/// Every file under `src` is at `there(path)`, byte for byte; returns files and bytes.
pub fn assert_same_tree(src: &Path, there: impl Fn(&Path) -> PathBuf) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let ours = std::fs::read(&path).unwrap();
            let theirs = std::fs::read(there(&path)).unwrap_or_default();
            assert!(
                ours == theirs,
                "{} differs at the destination",
                path.display()
            );
            files += 1;
            bytes += ours.len() as u64;
        }
    }
    assert!(files > 0);
    (files, bytes)
}
