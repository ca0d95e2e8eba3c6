//! Version-2 traces replayed: files appear at their creation, vanish at their unlink or when a
//! rename replaces them, a renamed file keeps what the destination has of it, and sizes follow
//! the trace. The figures are worked out by hand in the comments.

use precopy_core::trace::Trace;
use precopy_core::{EndReason, Metrics, PolicyKind, SimBuilder, TraceAfter};

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
    let looped = run(TraceAfter::Loop);
    assert_eq!(
        looped.end_reason,
        EndReason::IterationLimit { iterations: 10 }
    );
    assert_eq!((looped.precopy_bytes, looped.final_bytes), (10_000, 1000));
    assert_eq!(looped.downtime_s, 1.0);
}
