//! The `session` fuzz target's committed inputs, replayed; its seeds are the scripted sessions.

use std::path::Path;

use super::script::wire;
use super::scripted::sessions;
use super::session_property::check;

fn fuzz_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn committed_fuzz_inputs_replay() {
    let mut replayed = 0;
    for dir in ["corpus/session", "regressions/session"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir)) else {
            continue;
        };
        for entry in entries {
            check(&std::fs::read(entry.unwrap().path()).unwrap());
            replayed += 1;
        }
    }
    assert!(
        replayed >= sessions().len(),
        "only {replayed} committed inputs"
    );
}

/// The seed corpus is the scripted sessions' frames; `PRECOPY_WRITE_CORPUS=1` rewrites it after
/// a format change.
#[test]
fn seeds_are_the_scripted_sessions() {
    let dir = fuzz_dir().join("corpus/session");
    let write = std::env::var_os("PRECOPY_WRITE_CORPUS").is_some();
    for (name, frames) in sessions() {
        let path = dir.join(&name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, wire(&frames)).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == wire(&frames),
            "{name} is stale: PRECOPY_WRITE_CORPUS=1"
        );
    }
}
