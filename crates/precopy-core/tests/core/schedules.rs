//! Small cases whose schedules are worked out by hand in the comments.

use precopy_core::dataset::Writes;
use precopy_core::metrics::Transfer;
use precopy_core::{
    ConfigError, Dataset, EndReason, FileSpec, Kind, PolicyKind, RecordedExtent, RoundReport,
    SimBuilder, SimConfig,
};

use super::{build, hand_config, recorded};

const A: u32 = 0;
const B: u32 = 1;
const C: u32 = 2;

fn transfers(report: &RoundReport) -> Vec<(u32, f64, f64)> {
    report
        .transfers
        .iter()
        .map(
            |&Transfer {
                 file, start, end, ..
             }| (file, start, end),
        )
        .collect()
}

/// /a is ReadOnly; /b is written at 0.5 and 1.5; /c at 3.5.
fn abc() -> precopy_core::Dataset {
    recorded(&[
        ("/a", Kind::ReadOnly, &[]),
        ("/b", Kind::ReadWrite, &[0.5, 1.5]),
        ("/c", Kind::ReadWrite, &[3.5]),
    ])
}

#[test]
fn proposed_orders_by_update_expectation() {
    let mut sim = build(abc(), PolicyKind::Proposed, hand_config());
    // Period 0 [0, 2): RO first, then RW with no counts yet (E = 0, ties by size then path).
    // /c would start at 2, the period's end, so it waits. /b's write at 1.5 hits its transfer.
    let r0 = sim.step().unwrap();
    assert_eq!(transfers(&r0), [(A, 0.0, 1.0), (B, 1.0, 2.0)]);
    assert_eq!(r0.dirtied.len(), 1);
    assert_eq!((r0.dirtied[0].file, r0.dirtied[0].at), (B, 1.5));
    assert_eq!(r0.unsent_bytes, 2000);
    assert_eq!(r0.writes, 2);
    // Period 1 [2, 4): p̂(/b) = 2/2 = 1 so E(/b) = 1000 > E(/c) = 0: /c goes first.
    let r1 = sim.step().unwrap();
    assert_eq!(transfers(&r1), [(C, 2.0, 3.0), (B, 3.0, 4.0)]);
    assert_eq!(
        r1.plan.iter().map(|p| (p.file, p.key)).collect::<Vec<_>>(),
        [(C, 0.0), (B, 1000.0)]
    );
    assert_eq!(
        r1.unsent_bytes, 1000,
        "/c written at 3.5 after its transfer started"
    );
    // Period 2 [4, 6): /c again; then nothing is left.
    let r2 = sim.step().unwrap();
    assert_eq!(transfers(&r2), [(C, 4.0, 5.0)]);
    assert_eq!(r2.ended, Some(EndReason::NothingLeft));
    let last = sim.step().unwrap();
    assert!(last.transfers.is_empty());
    assert!(sim.step().is_none());
    let m = sim.metrics();
    assert_eq!(
        (m.precopy_bytes, m.resent_bytes, m.resent_files),
        (5000, 2000, 2)
    );
    assert_eq!((m.final_bytes, m.downtime_s, m.rounds), (0, 0.0, 3));
    assert_eq!(m.total_time_s, 6.0);
}

/// /b: written at 0.5 (before its first send), 1.5 (during it); /c: 2.5 (during its send)
/// and 3.5 (during iteration 2, before its turn at 4: skipped).
fn xen_case() -> precopy_core::Dataset {
    recorded(&[
        ("/a", Kind::ReadOnly, &[]),
        ("/b", Kind::ReadWrite, &[0.5, 1.5]),
        ("/c", Kind::ReadWrite, &[2.5, 3.5]),
    ])
}

#[test]
fn baseline_skips_files_dirtied_again_before_their_turn() {
    let mut sim = build(xen_case(), PolicyKind::Baseline, hand_config());
    // Iteration 1 sends everything in path order.
    let r0 = sim.step().unwrap();
    assert_eq!(
        transfers(&r0),
        [(A, 0.0, 1.0), (B, 1.0, 2.0), (C, 2.0, 3.0)]
    );
    assert_eq!(r0.unsent_bytes, 2000);
    // Iteration 2: dirty set {/b, /c}; /c is written at 3.5 before its turn at 4: skipped.
    let r1 = sim.step().unwrap();
    assert_eq!(transfers(&r1), [(B, 3.0, 4.0)]);
    assert_eq!(r1.skipped, 1);
    assert_eq!((r1.start, r1.end), (3.0, 4.0));
    // Iteration 3 sends /c; nothing is left.
    let r2 = sim.step().unwrap();
    assert_eq!(transfers(&r2), [(C, 4.0, 5.0)]);
    assert_eq!(r2.ended, Some(EndReason::NothingLeft));
}

#[test]
fn baseline_stops_at_its_iteration_limit() {
    let mut config = hand_config();
    config.params.baseline_iterations = 2;
    let m = build(xen_case(), PolicyKind::Baseline, config).run();
    assert_eq!(m.end_reason, EndReason::IterationLimit { iterations: 2 });
    // /c was skipped in iteration 2: it is the final copy, 1 s on the link.
    assert_eq!((m.final_bytes, m.final_files, m.downtime_s), (1000, 1, 1.0));
    assert_eq!((m.precopy_time_s, m.total_time_s), (4.0, 5.0));
}

/// /a is written at 0.5; /b appears at 1.2 and is written at 1.0, 1.5 and 2.5; /c vanishes at
/// 0.5. Engine ids: /a 0 and /c 1 from the start, /b 2 once a walk finds it.
fn comings_and_goings() -> precopy_core::Simulation {
    let dataset = recorded(&[
        ("/a", Kind::ReadWrite, &[0.5]),
        ("/b", Kind::ReadWrite, &[1.0, 1.5, 2.5]),
        ("/c", Kind::ReadWrite, &[]),
    ]);
    SimBuilder::new(dataset, PolicyKind::Proposed)
        .config(hand_config())
        .life(1, 1.2, f64::INFINITY)
        .life(2, 0.0, 0.5)
        .build()
        .unwrap()
}

#[test]
fn files_join_and_leave_when_a_walk_or_a_transfer_finds_them() {
    let mut sim = comings_and_goings();
    // Period 0: /a goes at 0 and its write at 0.5 dirties it; /c's turn comes at 1, it is gone:
    // it leaves, sent never. /b appeared at 1.2: the walk at the round's end, at 2, finds it
    // (1000 bytes joined, unsent; its writes before that are not seen), so U counts it.
    let r0 = sim.step().unwrap();
    assert_eq!(transfers(&r0), [(0, 0.0, 1.0)]);
    assert_eq!((r0.unsent_bytes, r0.writes), (2000, 1));
    assert_eq!(r0.ended, None);
    // Period 1: p̂(/a) = 1 puts /a (E = 1000) after /b (E = 0); /b's write at 2.5 dirties it.
    let r1 = sim.step().unwrap();
    assert_eq!(transfers(&r1), [(2, 2.0, 3.0), (0, 3.0, 4.0)]);
    assert_eq!((r1.writes, r1.unsent_bytes), (1, 1000));
    // U went 2000, 1000: no plateau for the β test (β = 2); period 2 sends /b again, and nothing
    // is left.
    assert_eq!(r1.ended, None);
    let r2 = sim.step().unwrap();
    assert_eq!(transfers(&r2), [(2, 4.0, 5.0)]);
    assert_eq!(r2.ended, Some(EndReason::NothingLeft));
    let last = sim.step().unwrap();
    assert!(last.transfers.is_empty());
    assert_eq!(sim.dataset_index(2), 1);
    assert_eq!(sim.files()[1].size, 0, "/c left");
}

#[test]
fn lives_outside_the_data_set_or_backwards_are_refused() {
    let life = |file, appears, vanishes| {
        SimBuilder::new(abc(), PolicyKind::Proposed)
            .life(file, appears, vanishes)
            .build()
            .unwrap_err()
    };
    for (file, appears, vanishes) in [(3, 0.0, 1.0), (0, 2.0, 1.0), (0, -1.0, 1.0)] {
        let expected = ConfigError::Life {
            file,
            appears,
            vanishes,
        };
        assert_eq!(life(file, appears, vanishes), expected);
    }
    assert!(matches!(life(0, f64::NAN, 1.0), ConfigError::Life { .. }));
    let none_at_start = (0..3).fold(SimBuilder::new(abc(), PolicyKind::Proposed), |b, f| {
        b.life(f, 1.0, f64::INFINITY)
    });
    assert_eq!(
        none_at_start.build().unwrap_err(),
        ConfigError::NoFileAtStart
    );
}

/// /b is written every 0.5 s: U stays at 1000 and the β test (β = 2) fires.
fn hot_case() -> precopy_core::Dataset {
    let times: Vec<f64> = (1..=200).map(|i| f64::from(i) * 0.5).collect();
    recorded(&[("/a", Kind::ReadOnly, &[]), ("/b", Kind::ReadWrite, &times)])
}

#[test]
fn proposed_stops_when_u_flattens() {
    let m = build(hot_case(), PolicyKind::Proposed, hand_config()).run();
    // Period 0 is the RO phase; periods 1 and 2 record U = 1000 twice: ratio 1.
    assert_eq!(
        m.end_reason,
        EndReason::Beta {
            ratio: 1.0,
            beta: 2,
            tolerance: 0.01
        }
    );
    assert_eq!(m.rounds, 3);
    assert_eq!(m.precopy_bytes, 4000);
    // Stopped at 6; /b (sent at 4, written at 4.5) goes in the final copy.
    assert_eq!(
        (m.final_bytes, m.precopy_time_s, m.downtime_s),
        (1000, 6.0, 1.0)
    );
}

#[test]
fn qemu_stops_when_dirty_bytes_fit_the_downtime_limit() {
    let mut config = hand_config();
    config.params.downtime_limit_s = 1.0; // 1000 bytes at 8000 bit/s
    let m = build(hot_case(), PolicyKind::Qemu, config).run();
    assert_eq!(
        m.end_reason,
        EndReason::Converged {
            remaining_bytes: 1000,
            limit_bytes: 1000
        }
    );
    assert_eq!((m.rounds, m.precopy_time_s, m.final_bytes), (1, 2.0, 1000));
}

#[test]
fn sweep_sends_everything_left_and_sweeps_until_u_stops_shrinking() {
    let mut sim = build(abc(), PolicyKind::Sweep, hand_config());
    sim.step().unwrap();
    // Period 1: /c and /b take 2 s, exactly one period: the first sweep sends both.
    let r1 = sim.step().unwrap();
    assert_eq!(transfers(&r1), [(C, 2.0, 3.0), (B, 3.0, 4.0)]);
    // U went from 2000 to 1000 (/c written at 3.5), so a second sweep follows at once,
    // ending as soon as /c is on the wire, not at the period's end.
    assert_eq!(r1.ended, None);
    let r2 = sim.step().unwrap();
    assert_eq!(transfers(&r2), [(C, 4.0, 5.0)]);
    assert_eq!((r2.start, r2.end), (4.0, 5.0));
    assert_eq!(r2.ended, Some(EndReason::NothingLeft));
    let m = sim.run();
    assert_eq!(
        (m.precopy_bytes, m.final_bytes, m.total_time_s),
        (5000, 0, 5.0)
    );
}

#[test]
fn clairvoyant_never_sends_a_file_that_will_be_written_before_its_stop() {
    let mut sim = build(abc(), PolicyKind::Clairvoyant, hand_config());
    // One pass takes 3 s: the stop is the next period end, 4. /b's last write before it is 1.5
    // and /c's is 3.5, so period 0 sends only /a, period 1 only /b.
    let r0 = sim.step().unwrap();
    assert_eq!(transfers(&r0), [(A, 0.0, 1.0)]);
    let r1 = sim.step().unwrap();
    assert_eq!(transfers(&r1), [(B, 2.0, 3.0)]);
    assert_eq!(r1.ended, Some(EndReason::Horizon { at: 4.0 }));
    let m = sim.run();
    assert_eq!(
        (m.precopy_bytes, m.resent_bytes, m.final_bytes),
        (2000, 0, 1000)
    );
}

#[test]
fn transfers_never_overlap_and_phases_follow_the_paper() {
    let mut sim = build(abc(), PolicyKind::Proposed, hand_config());
    let mut phases = Vec::new();
    let mut last_end = 0.0;
    while let Some(report) = sim.step() {
        phases.push(report.phase);
        for t in &report.transfers {
            assert!(t.start >= last_end, "{t:?} overlaps");
            last_end = t.end;
        }
    }
    use precopy_core::Phase::*;
    assert_eq!(phases, [ReadOnly, ReadWrite, ReadWrite, Final]);
}

/// /r (ReadOnly, 5000 B) fills period 0 alone (period 5 s). Meanwhile /x (1000 B) is written
/// twice and /y (3000 B) once: p̂(x) = 2/3, p̂(y) = 1/3, E(x) = 667 < E(y) = 1000.
fn ablation_plan(policy: PolicyKind) -> Vec<(u32, f64)> {
    let files = vec![
        FileSpec {
            path: "/r".into(),
            size: 5000,
            kind: Kind::ReadOnly,
            access_probability: 0.0,
        },
        FileSpec {
            path: "/x".into(),
            size: 1000,
            kind: Kind::ReadWrite,
            access_probability: 0.0,
        },
        FileSpec {
            path: "/y".into(),
            size: 3000,
            kind: Kind::ReadWrite,
            access_probability: 0.0,
        },
    ];
    let writes = Writes::Recorded(vec![vec![], vec![1.0, 2.0], vec![3.0]]);
    let dataset = Dataset::new("ablation".into(), files, writes).unwrap();
    let config = SimConfig {
        period_s: 5.0,
        ..hand_config()
    };
    let mut sim = build(dataset, policy, config);
    let r0 = sim.step().unwrap();
    assert_eq!(transfers(&r0), [(0, 0.0, 5.0)]);
    let r1 = sim.step().unwrap();
    r1.plan.iter().map(|p| (p.file, p.key)).collect()
}

#[test]
fn ablations_order_by_their_own_key() {
    let (x, y) = (1, 2);
    let close = |plan: Vec<(u32, f64)>, expected: [(u32, f64); 2]| {
        assert_eq!(plan.len(), 2);
        for (got, want) in plan.iter().zip(expected) {
            assert_eq!(got.0, want.0, "{plan:?}");
            assert!((got.1 - want.1).abs() < 1e-9, "{plan:?}");
        }
    };
    close(
        ablation_plan(PolicyKind::Proposed),
        [(x, 2000.0 / 3.0), (y, 1000.0)],
    );
    close(
        ablation_plan(PolicyKind::ProbabilityOnly),
        [(y, 1.0 / 3.0), (x, 2.0 / 3.0)],
    );
    close(
        ablation_plan(PolicyKind::SizeOnly),
        [(x, 1000.0), (y, 3000.0)],
    );
    let random_files = || -> Vec<u32> {
        let plan = ablation_plan(PolicyKind::Random);
        assert!(plan.iter().all(|p| p.1.is_nan()), "random order has no key");
        plan.iter().map(|p| p.0).collect()
    };
    let mut files = random_files();
    assert_eq!(files, random_files(), "seeded");
    files.sort_unstable();
    assert_eq!(files, [x, y]);
}

/// /a (ReadWrite) and /b (ReadOnly), 10 blocks of 8 KiB each, over 65,536 bit/s: one block a
/// second. /a is written at 12 s (bytes 0..100: block 0), 13 s (20,000..30,000: blocks 2 and 3)
/// and 21.5 s (`third`).
fn delta_case(third: RecordedExtent) -> (precopy_core::Dataset, SimConfig) {
    let spec = |path: &str, kind| FileSpec {
        path: path.into(),
        size: 10 * 8192,
        kind,
        access_probability: 0.0,
    };
    let at = |offset, len| RecordedExtent {
        offset: Some(offset),
        len: Some(len),
    };
    let dataset = Dataset::with_extents(
        "delta".into(),
        vec![spec("/a", Kind::ReadWrite), spec("/b", Kind::ReadOnly)],
        Writes::Recorded(vec![vec![12.0, 13.0, 21.5], vec![]]),
        vec![vec![at(0, 100), at(20_000, 10_000), third], vec![]],
    )
    .unwrap();
    let config = SimConfig {
        bandwidth_bps: 65_536.0,
        delta: true,
        ..SimConfig::default()
    };
    (dataset, config)
}

fn sends(report: &RoundReport) -> Vec<(u32, f64, f64, u64)> {
    let t = report.transfers.iter();
    t.map(|t| (t.file, t.start, t.end, t.bytes)).collect()
}

#[test]
fn a_delta_resend_costs_the_blocks_written_since_the_last_send() {
    // The third write, 81,000..81,920, lies in the last block (9).
    let last_block = RecordedExtent {
        offset: Some(81_000),
        len: Some(920),
    };
    let (dataset, config) = delta_case(last_block);
    let mut sim = build(dataset, PolicyKind::Baseline, config);
    // Iteration 1: both files whole, 10 s each.
    let r0 = sim.step().unwrap();
    assert_eq!(
        sends(&r0),
        [(A, 0.0, 10.0, 81_920), (B, 10.0, 20.0, 81_920)]
    );
    // /a's writes at 12 and 13 s dirtied blocks 0, 2 and 3: U is its size, the cost 3 blocks.
    assert_eq!((r0.unsent_bytes, r0.unsent_cost), (81_920, 3 * 8192));
    // Iteration 2: those 3 blocks, 3 s; the write at 21.5 s comes after the start.
    let r1 = sim.step().unwrap();
    assert_eq!(sends(&r1), [(A, 20.0, 23.0, 3 * 8192)]);
    assert_eq!(r1.unsent_cost, 8192);
    // Iteration 3: block 9 alone; nothing is left.
    let r2 = sim.step().unwrap();
    assert_eq!(sends(&r2), [(A, 23.0, 24.0, 8192)]);
    assert_eq!(r2.ended, Some(EndReason::NothingLeft));
    sim.step().unwrap();
    let m = sim.metrics();
    assert_eq!((m.precopy_bytes, m.resent_bytes), (196_608, 32_768));
    assert_eq!((m.final_bytes, m.total_time_s), (0, 24.0));
}

#[test]
fn an_update_of_unknown_extent_resends_the_whole_file() {
    let truncate = RecordedExtent {
        offset: None,
        len: None,
    };
    let (dataset, config) = delta_case(truncate);
    let mut sim = build(dataset, PolicyKind::Baseline, config);
    sim.step().unwrap();
    assert_eq!(sends(&sim.step().unwrap()), [(A, 20.0, 23.0, 3 * 8192)]);
    assert_eq!(sends(&sim.step().unwrap()), [(A, 23.0, 33.0, 81_920)]);
}

#[test]
fn without_delta_the_same_writes_resend_whole_files() {
    let (dataset, config) = delta_case(RecordedExtent {
        offset: Some(0),
        len: Some(1),
    });
    let config = SimConfig {
        delta: false,
        ..config
    };
    let mut sim = build(dataset, PolicyKind::Baseline, config);
    sim.step().unwrap();
    assert_eq!(sends(&sim.step().unwrap()), [(A, 20.0, 30.0, 81_920)]);
    assert_eq!(sends(&sim.step().unwrap()), [(A, 30.0, 40.0, 81_920)]);
}
