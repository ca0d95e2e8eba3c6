//! Other processes using the application's files (SPEC §1: moving the application affects
//! them). [`scan`] reads `/proc/*/fd` and `/proc/*/maps`; [`sharers`] and [`closure`] are pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::paths::PathFilter;

/// The regular files one process has open or mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessFiles {
    /// Process id.
    pub pid: i32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
    /// Path → open or mapped for writing.
    pub files: BTreeMap<String, bool>,
}

/// A process outside the traced tree that uses some of the recorded files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharingProcess {
    /// Process id.
    pub pid: i32,
    /// Command name.
    pub command: String,
    /// The recorded files it has open or mapped.
    pub files: Vec<String>,
}

/// Every process's open and mapped regular files, except the `skip`ped ones (the traced tree
/// and this process). Processes we may not inspect are passed over.
pub fn scan(skip: &BTreeSet<i32>) -> Vec<ProcessFiles> {
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = proc_dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| !skip.contains(pid) && *pid != std::process::id() as i32)
        .collect();
    pids.sort_unstable();
    pids.into_iter().filter_map(process_files).collect()
}

fn process_files(pid: i32) -> Option<ProcessFiles> {
    let command = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let mut files = BTreeMap::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in fds.flatten() {
            let Ok(path) = std::fs::read_link(entry.path()) else {
                continue;
            };
            if !std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let fdinfo = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
            let writable = std::fs::read_to_string(fdinfo).ok().is_some_and(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
                    .is_some_and(|f| f & libc::O_ACCMODE != libc::O_RDONLY)
            });
            let slot = files
                .entry(path.to_string_lossy().into_owned())
                .or_insert(false);
            *slot |= writable;
        }
    }
    if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        for (path, writable) in maps.lines().filter_map(mapped_file) {
            let slot = files.entry(path.to_string()).or_insert(false);
            *slot |= writable;
        }
    }
    Some(ProcessFiles {
        pid,
        command: command.trim_end().to_string(),
        files,
    })
}

/// The file of a `/proc/PID/maps` line, and whether it is mapped shared and writable.
fn mapped_file(line: &str) -> Option<(&str, bool)> {
    let perms = line.split_whitespace().nth(1)?;
    let path = &line[line.find(" /")? + 1..];
    Some((
        path,
        perms.get(1..2) == Some("w") && perms.get(3..4) == Some("s"),
    ))
}

/// The processes that have any of `files` open or mapped, with those files.
pub fn sharers(processes: &[ProcessFiles], files: &BTreeSet<String>) -> Vec<SharingProcess> {
    processes
        .iter()
        .filter_map(|p| {
            let shared: Vec<String> = p
                .files
                .keys()
                .filter(|f| files.contains(*f))
                .cloned()
                .collect();
            (!shared.is_empty()).then(|| SharingProcess {
                pid: p.pid,
                command: p.command.clone(),
                files: shared,
            })
        })
        .collect()
}

/// `--follow-sharing`: the transitive closure. Files of processes sharing a file join the set
/// (if `filter` allows them), which may bring in more processes. Returns the sharers of the
/// final set and the files added (path → opened for writing by a sharer).
pub fn closure(
    processes: &[ProcessFiles],
    files: &BTreeSet<String>,
    filter: &PathFilter,
) -> (Vec<SharingProcess>, BTreeMap<String, bool>) {
    let mut all = files.clone();
    let mut added = BTreeMap::new();
    loop {
        let before = all.len();
        for p in processes {
            if p.files.keys().any(|f| all.contains(f)) {
                for (path, writable) in &p.files {
                    if !files.contains(path) && filter.allows(path) {
                        all.insert(path.clone());
                        *added.entry(path.clone()).or_insert(false) |= *writable;
                    }
                }
            }
        }
        if all.len() == before {
            return (sharers(processes, &all), added);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: i32, files: &[(&str, bool)]) -> ProcessFiles {
        ProcessFiles {
            pid,
            command: format!("p{pid}"),
            files: files.iter().map(|(f, w)| (f.to_string(), *w)).collect(),
        }
    }

    #[test]
    fn parses_maps_lines() {
        let lib = "7f00-7f01 r-xp 00000000 08:01 1234          /usr/lib/libc.so.6";
        assert_eq!(mapped_file(lib), Some(("/usr/lib/libc.so.6", false)));
        let db = "7f00-7f01 rw-s 00000000 08:01 99 /data/my db (deleted)";
        assert_eq!(mapped_file(db), Some(("/data/my db (deleted)", true)));
        assert_eq!(
            mapped_file("7f00-7f01 rw-p 00000000 00:00 0   [heap]"),
            None
        );
    }

    #[test]
    fn finds_sharers_and_their_closure() {
        let procs = [
            process(1, &[("/a", false), ("/b", true)]),
            process(2, &[("/b", false), ("/c", true)]),
            process(3, &[("/z", false)]),
        ];
        let ours: BTreeSet<String> = ["/a".to_string()].into();
        let direct = sharers(&procs, &ours);
        assert_eq!(direct.len(), 1);
        assert_eq!(
            (direct[0].pid, &direct[0].files[..]),
            (1, &["/a".to_string()][..])
        );
        let (all, added) = closure(&procs, &ours, &PathFilter::default());
        assert_eq!(all.iter().map(|s| s.pid).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(added, [("/b".into(), true), ("/c".into(), true)].into());
        let only_b = PathFilter::new(&[], &["/c".into()]).unwrap();
        let (all, added) = closure(&procs, &ours, &only_b);
        assert_eq!(all.len(), 2);
        assert_eq!(added.len(), 1);
    }
}
