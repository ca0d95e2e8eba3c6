//! What the `trace` fuzz target checks of any input, shared with the stable replay of its
//! corpus and regressions (`tests/core/fuzz_regressions.rs`), so the two cannot drift apart.

use std::sync::Arc;

use precopy_core::dataset::GroupsFile;
use precopy_core::trace::Trace;
use precopy_core::{Dataset, PolicyKind, SimBuilder, SimConfig, TraceAfter};

/// The trace and data-set parsers return a value or an error, never panic; a parsed trace
/// survives emit → parse unchanged, and builds a data set or names why not; that data set
/// replays (files appearing, vanishing and resizing, writes looped) to finite figures.
pub fn trace_text(text: &str) {
    if let Ok(trace) = Trace::parse(text) {
        let again = Trace::parse(&trace.to_jsonl()).expect("emitted traces parse");
        assert_eq!(again, trace);
        if let Ok(dataset) = trace.dataset() {
            replay(dataset, trace.duration_s);
        }
    }
    if let Ok(groups) = GroupsFile::parse(text) {
        // Small scale: a fuzzed count must not make this allocate gigabytes. A range still
        // gives each of its sizes a file (8 M files from one group once took the fuzzer past
        // its 10 s timeout): the files are counted first, and only a small data set is built
        // (the building is the same loop at any size), to the count.
        let scale = 1e-6;
        if let Ok(count) = Dataset::count_files(&groups.groups, scale) {
            if count <= MOST_FILES_BUILT {
                let built = groups.dataset(scale).map(|d| d.files.len() as u64);
                assert!(
                    built == Ok(count) || (count == 0 && built.is_err()),
                    "counted {count} files, built {built:?}"
                );
            }
        }
    }
}

/// The largest groups data set [`trace_text`] builds (a fraction of a second).
const MOST_FILES_BUILT: u64 = 100_000;

/// Two policies with different ends (fixed iterations; convergence over bytes, waiting for
/// the wire) over the replay, the writes looped for ten trace durations.
fn replay(dataset: Dataset, duration_s: f64) {
    let dataset = Arc::new(dataset);
    for policy in [PolicyKind::Baseline, PolicyKind::Converge] {
        let config = SimConfig {
            bandwidth_bps: 8e6,
            period_s: 1.0,
            max_rounds: 30,
            trace_after: TraceAfter::Loop {
                until_s: Some(duration_s * 10.0),
            },
            ..SimConfig::default()
        };
        // A data set the simulation refuses says why; that is not a failure here.
        let Ok(simulation) = SimBuilder::new(dataset.clone(), policy)
            .config(config)
            .build()
        else {
            continue;
        };
        let m = simulation.run();
        assert!(
            m.downtime_s.is_finite() && m.downtime_s >= 0.0,
            "{policy:?}: downtime {}",
            m.downtime_s
        );
        assert!(
            m.total_time_s.is_finite() && m.total_time_s >= m.downtime_s,
            "{policy:?}: total {} for downtime {}",
            m.total_time_s,
            m.downtime_s
        );
    }
}
