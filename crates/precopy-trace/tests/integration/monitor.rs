//! The fanotify write monitor against the exact (ptrace) one: same classification, writes in
//! the right period, writers outside the tree reported as such, and what shared mappings give.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use precopy_core::dataset::Kind;
use precopy_core::trace::Record;
use precopy_trace::{Target, TraceOutput, WriteMonitor};

use crate::common::*;

fn command(args: &[&str]) -> Target {
    Target::Command(args.iter().map(OsString::from).collect())
}

fn sh_target(dir: &Path, script: &str) -> Target {
    let script = format!("cd '{}' || exit 99\n{script}", dir.display());
    command(&["sh", "-c", &script])
}

/// The manifest as (name, kind), sorted.
fn kinds(dir: &Path, out: &TraceOutput) -> Vec<(String, Kind)> {
    files(dir, out)
        .into_iter()
        .map(|(n, k, _)| (n, k))
        .collect()
}

fn records(out: &TraceOutput) -> Vec<Record> {
    out.trace
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `make_target` once per write monitor (in a fresh copy of the setup) and returns both
/// outputs with their directories.
fn both(
    setup: impl Fn(&Path),
    make_target: impl Fn(&Path) -> Target,
) -> [(tempfile::TempDir, std::path::PathBuf, TraceOutput); 2] {
    [WriteMonitor::Ptrace, WriteMonitor::Fanotify].map(|monitor| {
        let (tmp, dir) = temp();
        setup(&dir);
        let out = trace_mode(&dir, make_target(&dir), false, monitor);
        assert_eq!(out.manifest.write_monitor, monitor.name());
        (tmp, dir, out)
    })
}

#[test]
fn both_monitors_classify_the_known_programs_alike() {
    let Some(_lock) = tracing() else { return };
    let writer = example("writer");
    let mapper = example("mapper");
    let scripts = [
        "read line < in.txt; printf a > out.txt; printf b >> log; printf c >> log; cat in.txt >/dev/null",
        "{ sh -c 'sh -c \"printf a >> deep\"; printf b >> deep' & wait; }; (printf c >> sub); env printf d >> deep",
        "exec 3>> dup.log; printf a >&3; sh -c 'printf b >&3'; exec 4>&3 3>&-; printf c >&4; exec 4>&-; printf d > /dev/null",
        "mkdir -p a/b; cd a/b && printf x > ../rel && cd .. && printf y >> ./b/../rel2 && mv rel moved && rm rel2",
        "printf new > tmp && mv -f tmp final && truncate -s 10 big",
    ];
    let setup = |dir: &Path| {
        std::fs::write(dir.join("in.txt"), "input").unwrap();
        std::fs::write(dir.join("untouched"), "x").unwrap();
        std::fs::write(dir.join("big"), vec![b'x'; 1000]).unwrap();
    };
    for script in scripts {
        let [(_a, da, exact), (_b, db, fan)] = both(setup, |dir| sh_target(dir, script));
        assert_eq!(kinds(&da, &exact), kinds(&db, &fan), "{script}");
        // Every file the exact monitor saw written, the fanotify one saw written too.
        for ((name, _, calls), (_, _, fan_calls)) in files(&da, &exact).iter().zip(files(&db, &fan))
        {
            assert_eq!(*calls > 0, fan_calls > 0, "{script}: {name}");
        }
    }
    let [(_a, da, exact), (_b, db, fan)] = both(
        |_| {},
        |dir| {
            command(&[
                writer.to_str().unwrap(),
                dir.to_str().unwrap(),
                "4000",
                "8",
                "4",
            ])
        },
    );
    assert_eq!(kinds(&da, &exact), kinds(&db, &fan));
    for (name, kind, calls) in files(&db, &fan) {
        // 500 writes each: at least one window, never more windows than calls.
        assert!(
            kind == Kind::ReadWrite && (1..=500).contains(&calls),
            "{name}: {calls}"
        );
    }
    let [(_a, da, exact), (_b, db, fan)] = both(
        |_| {},
        |dir| {
            command(&[
                mapper.to_str().unwrap(),
                dir.join("mapped").to_str().unwrap(),
            ])
        },
    );
    assert_eq!(kinds(&da, &exact), kinds(&db, &fan));
    assert!(fan.manifest.files[0].mmap_shared);
}

#[test]
fn a_write_is_reported_in_its_period() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    // Two appends 1.2 s apart: with 0.5 s periods, they cannot share a period.
    let out = trace_mode(
        &dir,
        sh_target(&dir, "printf a >> f; sleep 1.2; printf b >> f"),
        false,
        WriteMonitor::Fanotify,
    );
    let records = records(&out);
    let opens: Vec<f64> = records
        .iter()
        .filter_map(|r| match r {
            Record::Open { t, .. } => Some(*t),
            _ => None,
        })
        .collect();
    let writes: Vec<(f64, Option<u64>)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Write { t, offset, len, .. } => Some((*t, offset.or(*len))),
            _ => None,
        })
        .collect();
    assert_eq!((opens.len(), writes.len()), (2, 2), "{}", out.trace);
    for ((open, (write, extent)), _) in opens.iter().zip(&writes).zip(0..) {
        // Each write comes right after the open that precedes it (the append follows the
        // open at once), so it is counted in the period it happened in.
        assert!(
            *write >= *open - 0.05 && *write - *open < 0.25,
            "open {open} write {write}"
        );
        assert_eq!(*extent, None, "no offsets or lengths in this mode");
    }
    let file = &out.manifest.files[0];
    let periods: Vec<u64> = file.periods.iter().map(|p| p.period).collect();
    let expected: Vec<u64> = writes.iter().map(|(t, _)| (t / 0.5) as u64).collect();
    assert_eq!(periods, expected);
    assert!(periods[1] >= periods[0] + 2, "{periods:?}");
    assert_eq!(file.bytes_written, 0);
}

#[test]
fn a_writer_outside_the_tree_is_reported_as_such() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    std::fs::write(dir.join("shared"), "s").unwrap();
    // The application only reads `shared`; it tells us when it has it open, then waits for
    // `go` (at most about 60 s, so a failed test cannot leave it running).
    let target = sh_target(
        &dir,
        "exec 3< shared; : > ready; i=0; while [ ! -e go ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; cat <&3 > /dev/null",
    );
    let tracer_dir = dir.clone();
    let tracer =
        std::thread::spawn(move || trace_mode(&tracer_dir, target, false, WriteMonitor::Fanotify));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("ready").exists() {
        assert!(Instant::now() < deadline, "the application never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut outside = Command::new("sh")
        .args(["-c", "printf x >> shared"])
        .current_dir(&dir)
        .spawn()
        .unwrap();
    let outsider = outside.id();
    assert!(outside.wait().unwrap().success());
    std::fs::write(dir.join("go"), "").unwrap();
    let out = tracer.join().unwrap();
    let shared = out
        .manifest
        .files
        .iter()
        .find(|f| f.path.ends_with("/shared"))
        .unwrap();
    assert_eq!(shared.other_writers, [outsider], "{:?}", shared);
    assert!(!out.manifest.processes.contains(&(outsider as i32)));
    assert_eq!(shared.periods.iter().map(|p| p.others).sum::<u64>(), 1);
    // The file changed under the application: it must be migrated as ReadWrite.
    assert_eq!(shared.kind, Kind::ReadWrite);
    assert!(out.trace.contains(&format!(r#""pid":{outsider}"#)));
    assert!(out.summary().contains("outside the traced tree"));
}

#[test]
fn writes_through_a_shared_mapping_are_not_reported() {
    let Some(_lock) = tracing() else { return };
    let (_tmp, dir) = temp();
    let mapper = example("mapper");
    let file = dir.join("mapped");
    std::fs::write(&file, vec![0u8; 4096]).unwrap();
    let out = trace_mode(
        &dir,
        command(&[mapper.to_str().unwrap(), file.to_str().unwrap()]),
        false,
        WriteMonitor::Fanotify,
    );
    // The mapper sets the length (ftruncate: a stop, recorded as a truncate), then fills 4096
    // bytes through the mapping. The stores make no FAN_MODIFY: only the ftruncate is
    // counted; the file is flagged mmap_shared, so the count is known to be a lower bound.
    let m = &out.manifest.files[0];
    assert!(m.mmap_shared && m.kind == Kind::ReadWrite, "{m:?}");
    assert_eq!(m.write_calls, 1, "{m:?}");
    assert!(out.trace.contains(r#""op":"truncate""#), "{}", out.trace);
    assert_eq!(std::fs::read(&file).unwrap(), vec![b'x'; 4096]);
}
