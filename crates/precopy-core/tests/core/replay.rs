//! Version-2 traces replayed: files appear at their creation, vanish at their unlink or when a
//! rename replaces them, a renamed file keeps what the destination has of it, and sizes follow
//! the trace. The figures are worked out by hand in the comments.

use precopy_core::dataset::Writes;
use precopy_core::trace::Trace;
use precopy_core::{Dataset, EndReason, FileSpec, Metrics, PolicyKind, SimBuilder, TraceAfter};
use proptest::prelude::*;

use super::hand_config;

/// /d/a.conf (ReadOnly, 1000 B), /d/data (2000 B) and /d/log (1000 B) are there at 0;
/// /d/data.tmp is created at 0.5 and written to 3000 B at 0.6; /d/log is written at 3.5 and
/// unlinked at 3.8; the old /d/data is written at 4.5; at 6.5 /d/data.tmp is renamed over
/// /d/data. The trace ends at 10.
const TRACE: &str = include_str!("../golden/lifetimes.jsonl");

/// After the rename, the file now at /d/data is written at 6.8 and at 9.5, where it grows to
/// 4000 B.
const LATER_WRITES: &str = r#"{"type":"write","t":6.8,"id":1,"pid":7,"offset":0,"len":10}
{"type":"write","t":9.5,"id":1,"pid":7,"offset":3000,"len":1000}
{"type":"size","t":9.5,"id":1,"size":4000}
{"type":"end","t":10.0}
"#;

fn replay(text: &str, iterations: u32) -> Metrics {
    let dataset = Trace::parse(text).unwrap().dataset().unwrap();
    // 8000 bit/s: 1000 bytes take 1 s.
    let mut config = hand_config();
    config.params.baseline_iterations = iterations;
    SimBuilder::new(dataset, PolicyKind::Baseline)
        .config(config)
        .build()
        .unwrap()
        .run()
}

#[test]
fn a_rename_over_a_file_keeps_what_the_destination_has() {
    // Iteration 1 [0, 4], path order: a.conf [0, 1], data [1, 3], log [3, 4]: 4000 B. At its
    // end, log (written at 3.5, after its send began) has been unlinked at 3.8: it is held,
    // dirty, until a walk. data.tmp (created at 0.5) is not seen yet: U = 1000.
    // Iteration 2 [4, 7]: the walk at 4 lets log go (U = 0) and finds data.tmp, at its size
    // then, 3000 B (U = 3000); it goes [4, 7]. At 4.5 the old data was written (dirty: 2000),
    // and at 6.5 data.tmp, on the wire since 4 and unchanged, was renamed over it: the old data
    // is gone (held until a walk), the file now at /d/data is the one just sent. U = 2000.
    // Iteration 3 at 7: the walk lets the old data go; nothing is left (U = 0).
    // Pre-copy: 4000 + 3000 = 7000 B, nothing resent; final copy: nothing.
    let m = replay(TRACE, 10);
    assert_eq!(m.end_reason, EndReason::NothingLeft);
    assert_eq!((m.precopy_bytes, m.resent_bytes), (7000, 0));
    assert_eq!(
        (m.final_bytes, m.downtime_s, m.precopy_time_s),
        (0, 0.0, 7.0)
    );
}

#[test]
fn a_renamed_file_written_later_goes_again_at_its_new_size() {
    // As above up to iteration 2, but the renamed file (now /d/data) is written at 6.8, after
    // its send began at 4: at 7, U = 2000 (the old data, held) + 3000.
    // Iteration 3 [7, 10]: the walk lets the old data go (U = 3000); the renamed file, last
    // written at 6.8 (before the iteration began: not skipped), goes [7, 10]. At 9.5 it is
    // written and grows to 4000 B: U = 4000. Three iterations: the limit.
    // Final copy: 4000 B, [10, 14]: 4 s of downtime.
    // Pre-copy: 4000 + 3000 + 3000 = 10000 B, of which the 3000-byte resend.
    let text = TRACE.replace("{\"type\":\"end\",\"t\":10.0}\n", LATER_WRITES);
    let m = replay(&text, 3);
    assert_eq!(m.end_reason, EndReason::IterationLimit { iterations: 3 });
    assert_eq!((m.precopy_bytes, m.resent_bytes), (10_000, 3000));
    assert_eq!((m.final_bytes, m.downtime_s), (4000, 4.0));
    assert_eq!((m.precopy_time_s, m.total_time_s), (10.0, 14.0));
}

#[test]
fn a_looped_trace_keeps_writing_after_it_ends() {
    // /x (1000 B) is written at 0.5; the trace lasts 1 s. Iteration 1 sends /x [0, 1], the
    // write at 0.5 dirties it; iteration 2 sends it again [1, 2].
    let text = r#"{"type":"header","format":"precopy-trace","version":1,"period_s":1.0}
{"type":"file","id":0,"path":"/x","size":1000,"kind":"rw"}
{"type":"write","t":0.5,"id":0}
{"type":"end","t":1.0}
"#;
    let run = |after| {
        let mut config = hand_config();
        config.trace_after = after;
        let dataset = Trace::parse(text).unwrap().dataset().unwrap();
        SimBuilder::new(dataset, PolicyKind::Baseline)
            .config(config)
            .build()
            .unwrap()
            .run()
    };
    // Quiet: nothing is written after 1, so nothing is left at 2.
    let quiet = run(TraceAfter::Quiet);
    assert_eq!(quiet.end_reason, EndReason::NothingLeft);
    assert_eq!((quiet.precopy_bytes, quiet.final_bytes), (2000, 0));
    // Loop: writes at 0.5, 1.5, 2.5, …: each iteration [k - 1, k] is hit at k - 0.5, after
    // its send began and after the iteration began (never skipped). Ten iterations send
    // 10 × 1000 B; the final copy sends /x once more.
    let looped = run(TraceAfter::Loop { until_s: None });
    assert_eq!(
        looped.end_reason,
        EndReason::IterationLimit { iterations: 10 }
    );
    assert_eq!((looped.precopy_bytes, looped.final_bytes), (10_000, 1000));
    assert_eq!(looped.downtime_s, 1.0);
}

#[test]
fn a_version_1_trace_replays_as_its_files_and_writes_did_before() {
    // Version 1's replay was `Dataset::with_extents` over the file records (at least 1 byte)
    // and their writes; it still is, to the bit, whatever the policy.
    let text = r#"{"type":"header","format":"precopy-trace","version":1,"period_s":1.0}
{"type":"file","id":0,"path":"/z","size":0,"kind":"rw"}
{"type":"file","id":1,"path":"/a","size":3000,"kind":"rw"}
{"type":"file","id":2,"path":"/r","size":500,"kind":"ro"}
{"type":"write","t":0.5,"id":1,"offset":0,"len":10}
{"type":"write","t":0.7,"id":0,"op":"unlink"}
{"type":"write","t":2.5,"id":1,"len":10}
{"type":"write","t":3.5,"id":1,"op":"rename"}
{"type":"end","t":4.0}
"#;
    let trace = Trace::parse(text).unwrap();
    let files = trace
        .files
        .iter()
        .map(|f| FileSpec {
            path: f.path.clone(),
            size: f.size.max(1),
            kind: f.kind,
            access_probability: 0.0,
        })
        .collect();
    let writes = Writes::Recorded(trace.files.iter().map(|f| f.writes.clone()).collect());
    let extents = trace.files.iter().map(|f| f.extents.clone()).collect();
    let before = Dataset::with_extents("trace".into(), files, writes, extents).unwrap();
    for policy in PolicyKind::ALL {
        for delta in [false, true] {
            let mut config = hand_config();
            config.delta = delta;
            let run = |dataset| {
                SimBuilder::new(dataset, policy)
                    .config(config)
                    .build()
                    .unwrap()
                    .run()
            };
            assert_eq!(run(trace.dataset().unwrap()), run(before.clone()));
        }
    }
}

/// A version-2 line about files `0..files` at a time on a 0.5 s grid.
fn v2_line(files: u32) -> impl Strategy<Value = String> {
    let id = 0..files;
    let t = (0u32..20).prop_map(|half| f64::from(half) / 2.0);
    prop_oneof![
        (t.clone(), id.clone())
            .prop_map(|(t, id)| format!(r#"{{"type":"create","t":{t},"id":{id}}}"#)),
        (t.clone(), id.clone())
            .prop_map(|(t, id)| format!(r#"{{"type":"unlink","t":{t},"id":{id}}}"#)),
        (t.clone(), id.clone(), id.clone(), any::<bool>()).prop_map(|(t, from, to, exchange)| {
            format!(r#"{{"type":"rename","t":{t},"from":{from},"to":{to},"exchange":{exchange}}}"#)
        }),
        (t.clone(), id.clone(), 0u64..5000).prop_map(|(t, id, size)| format!(
            r#"{{"type":"size","t":{t},"id":{id},"size":{size}}}"#
        )),
        (t, id, 0u64..5000).prop_map(|(t, id, len)| {
            format!(r#"{{"type":"write","t":{t},"id":{id},"offset":0,"len":{len}}}"#)
        }),
    ]
}

fn v2_trace() -> impl Strategy<Value = String> {
    (1u32..5).prop_flat_map(|files| {
        let file = (any::<bool>(), 0u64..5000);
        (
            proptest::collection::vec(file, files as usize),
            proptest::collection::vec(v2_line(files), 0..25),
        )
            .prop_map(|(specs, lines)| {
                let header =
                    r#"{"type":"header","format":"precopy-trace","version":2,"period_s":1.0}"#;
                let files = specs.iter().enumerate().map(|(id, (new, size))| {
                    format!(
                        r#"{{"type":"file","id":{id},"path":"/f{id}","size":{size},"kind":"rw","new":{new}}}"#
                    )
                });
                [header.to_string()]
                    .into_iter()
                    .chain(files)
                    .chain(lines)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any such trace parses, survives emit → parse, and replays (or is refused for having no
    /// file at its start) the same twice under every policy, quiet or looped, with every byte
    /// it sends accounted: U ends at 0 after the final copy.
    #[test]
    fn version_2_traces_round_trip_and_replay(text in v2_trace(), delta in any::<bool>()) {
        let trace = Trace::parse(&text).unwrap();
        prop_assert_eq!(&Trace::parse(&trace.to_jsonl()).unwrap(), &trace);
        // No file ever lives: nothing to replay, and it says so.
        let Ok(dataset) = trace.dataset() else {
            prop_assert!(trace.contents().is_empty());
            return Ok(());
        };
        let dataset = std::sync::Arc::new(dataset);
        for after in TraceAfter::ALL {
            for policy in PolicyKind::ALL {
                let mut config = hand_config();
                config.trace_after = after;
                config.delta = delta;
                let build = || SimBuilder::new(std::sync::Arc::clone(&dataset), policy).config(config).build();
                let Ok(mut sim) = build() else {
                    prop_assert!(dataset.lives.iter().all(|l| l.0 > 0.0) || trace.duration_s == 0.0);
                    continue;
                };
                while sim.step().is_some() {}
                prop_assert_eq!(sim.unsent_bytes(), 0);
                prop_assert_eq!(sim.metrics(), &build().unwrap().run());
            }
        }
    }
}
