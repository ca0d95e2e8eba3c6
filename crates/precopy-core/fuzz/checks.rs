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
        // Small scale: a fuzzed count must not make this allocate gigabytes.
        let _ = groups.dataset(1e-6);
    }
}

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
