//! Other processes that have the application's files open are reported.

use std::fs::File;
use std::process::{Command, Stdio};

use precopy_trace::record::Origin;
use precopy_trace::Target;

use crate::common::*;

#[test]
fn reports_a_second_process_sharing_a_file() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    std::fs::write(dir.join("shared"), "s").unwrap();
    // Outside the traced tree: holds `shared` (stdin) and `other` (stdout) open.
    let mut holder = Command::new("sleep")
        .arg("30")
        .stdin(File::open(dir.join("shared")).unwrap())
        .stdout(Stdio::from(File::create(dir.join("other")).unwrap()))
        .spawn()
        .unwrap();
    let command = format!("cd '{}' && printf x >> shared", dir.display());
    let target = || Target::Command(vec!["sh".into(), "-c".into(), command.clone().into()]);
    let out = trace_with(&dir, target(), false);
    let sharer = out
        .manifest
        .sharing
        .iter()
        .find(|s| s.pid == holder.id() as i32)
        .unwrap_or_else(|| panic!("{:?}", out.manifest.sharing));
    assert_eq!(sharer.command, "sleep");
    assert_eq!(sharer.files, [dir.join("shared").display().to_string()]);
    assert!(out.summary().contains("shared with pid"));
    assert_eq!(out.manifest.files.len(), 1);

    let out = trace_with(&dir, target(), true);
    let other = out
        .manifest
        .files
        .iter()
        .find(|f| f.path.ends_with("/other"));
    assert_eq!(other.map(|f| f.origin), Some(Origin::Sharing));
    holder.kill().unwrap();
    holder.wait().unwrap();
}
