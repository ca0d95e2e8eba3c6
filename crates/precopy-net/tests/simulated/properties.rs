//! The core's invariants (`precopy-core/tests/core/properties.rs`) on the real sender's round
//! reports, under generated workloads in which files also appear and vanish mid-run.
//!
//! The expected values come from the scenario, never from the sender: the consistency rule
//! (a copy is clean iff no write hit the file after its last transfer started) applied to the
//! workload's write times and the transfers the reports list.

use precopy_core::workload::WriteClock;
use precopy_core::{
    Dataset, EndReason, Group, Kind, Phase, PolicyKind, PolicyParams, RateMapping, RoundReport,
    SizeSpec, WriteModel,
};
use proptest::prelude::*;

use super::{Live, Run};

fn group(index: usize) -> impl Strategy<Value = Group> {
    (1u32..6, 1u64..40, 0.0f64..=1.0, any::<bool>()).prop_map(move |(count, kb, p, ro)| Group {
        name: format!("g{index}"),
        count,
        size: SizeSpec::Fixed(kb * 1000),
        kind: if ro { Kind::ReadOnly } else { Kind::ReadWrite },
        probability: if ro { 0.0 } else { p },
    })
}

fn groups() -> impl Strategy<Value = Vec<Group>> {
    (group(0), group(1), group(2), 1usize..=3).prop_map(|(a, b, c, n)| {
        let mut groups = vec![a, b, c];
        groups.truncate(n);
        groups
    })
}

fn run() -> impl Strategy<Value = Run> {
    (
        prop::sample::select(PolicyKind::ALL.to_vec()),
        (0.02f64..0.5, 0.5f64..5.0, 0.05f64..5.0),
        (1u32..4, 0.0f64..3.0, any::<u64>()),
    )
        .prop_map(
            |(policy, (mbps, period_s, poll_s), (half_beta, intensity, seed))| Run {
                policy,
                params: PolicyParams {
                    beta: half_beta * 2,
                    baseline_iterations: 5,
                    ..PolicyParams::default()
                },
                bandwidth_bps: mbps * 1e6,
                period_s,
                poll_s,
                max_rounds: 30,
                seed,
                model: WriteModel {
                    mapping: RateMapping::Linear,
                    intensity,
                    ..WriteModel::default()
                },
            },
        )
}

/// When each file appears and vanishes: most are there from the start and stay.
fn lives(files: usize) -> impl Strategy<Value = Vec<(f64, f64)>> {
    let life = prop_oneof![
        3 => Just((0.0, f64::INFINITY)),
        1 => (0.1f64..20.0).prop_map(|at| (at, f64::INFINITY)),
        1 => (0.1f64..20.0).prop_map(|at| (0.0, at)),
        1 => (0.1f64..10.0, 0.1f64..10.0).prop_map(|(at, lasts)| (at, at + lasts)),
    ];
    prop::collection::vec(life, files)
}

fn scenario() -> impl Strategy<Value = (Dataset, Vec<(f64, f64)>, Run)> {
    groups()
        .prop_flat_map(|groups| {
            let dataset = Dataset::from_groups("p", &groups, 1.0).unwrap();
            let n = dataset.files.len();
            (Just(dataset), lives(n), run())
        })
        // At least one file is there at the start.
        .prop_filter("a file at the start", |(_, lives, _)| {
            lives.iter().any(|l| l.0 == 0.0 && l.1 > 0.0)
        })
}

/// The scenario's files: sizes, lives and every write the application makes before the stop.
struct Truth {
    sizes: Vec<u64>,
    lives: Vec<(f64, f64)>,
    writes: Vec<Vec<f64>>,
}

impl Truth {
    fn new(dataset: &Dataset, lives: &[(f64, f64)], run: &Run, stop: f64) -> Truth {
        let clock = WriteClock::new(dataset, &run.model, run.seed);
        let writes = (0..dataset.files.len())
            .map(|f| {
                let (appears, vanishes) = lives[f];
                let mut stream = clock.stream(f as u32).clone();
                let mut times = Vec::new();
                while let Some(t) = stream.peek().filter(|&t| t <= stop.min(vanishes)) {
                    // A file there from the start has all its writes; one that appears, those after.
                    if appears == 0.0 || t > appears {
                        times.push(t);
                    }
                    stream.advance();
                }
                times
            })
            .collect();
        Truth {
            sizes: dataset.files.iter().map(|f| f.size).collect(),
            lives: lives.to_vec(),
            writes,
        }
    }

    /// Whether file `f` is there at `t`.
    fn present(&self, f: usize, t: f64) -> bool {
        let (appears, vanishes) = self.lives[f];
        appears <= t && t < vanishes
    }

    /// Whether a write hit `f` in (`after`, `until`].
    fn written(&self, f: usize, after: f64, until: f64) -> Option<f64> {
        self.writes[f]
            .iter()
            .copied()
            .find(|&w| w > after && w <= until)
    }
}

/// Checks one live run against the scenario; `Err` names the first broken invariant.
fn check(live: &Live, truth: &Truth, run: &Run) -> Result<(), TestCaseError> {
    let reports = &live.reports;
    let ids = &live.files;
    let (last, precopy) = reports.split_last().unwrap();
    prop_assert_eq!(last.phase, Phase::Final);
    // Transfer starts so far, by id.
    let mut starts: Vec<Vec<f64>> = vec![Vec::new(); ids.len()];
    let mut u_before: u64 = (0..truth.sizes.len())
        .filter(|&f| truth.present(f, 0.0))
        .map(|f| truth.sizes[f])
        .sum();
    let mut start_before = 0.0;
    // When the last walk looked: a pre-copy round walks at its end, the final copy at its start.
    let mut walked = 0.0;
    for (r, report) in reports.iter().enumerate() {
        let (start, end) = (report.start, report.end);
        prop_assert!(end >= start && start >= start_before);
        // Files joined by this round's walk: their bytes are dirtied bytes.
        let walks_at = if report.phase == Phase::Final {
            start
        } else {
            end
        };
        let joined: u64 = (0..truth.sizes.len())
            .filter(|&f| truth.lives[f].0 > walked && truth.present(f, walks_at))
            .map(|f| truth.sizes[f])
            .sum();
        walked = walks_at;
        // Dirtied bytes: each dirtied file was clean, and a write made after its last transfer
        // started was seen no earlier than it was made.
        for t in &report.transfers {
            prop_assert_eq!(t.bytes, truth.sizes[ids[t.file as usize]]);
            starts[t.file as usize].push(t.start);
        }
        let mut dirtied = joined;
        for d in &report.dirtied {
            let f = ids[d.file as usize];
            let since = starts[d.file as usize].iter().rev().find(|&&s| s < d.at);
            let made = since.and_then(|&s| truth.written(f, s, d.at));
            prop_assert!(made.is_some(), "{:?}: no write since its transfer", d);
            dirtied += truth.sizes[f];
        }
        prop_assert_eq!(report.bytes_dirtied, dirtied, "round {}", r);
        // U is exactly the bytes of the files there at the round's end (its walk found the new
        // ones and the vanished ones) and not cleanly at the destination.
        let u: u64 = (0..ids.len())
            .filter(|&id| truth.present(ids[id], end))
            .filter(|&id| {
                starts[id]
                    .last()
                    .is_none_or(|&s| truth.written(ids[id], s, end).is_some())
            })
            .map(|id| truth.sizes[ids[id]])
            .sum();
        prop_assert_eq!(report.unsent_bytes, u, "round {}", r);
        prop_assert_eq!(report.unsent_cost, report.unsent_bytes);
        // The same, round to round: bytes come in dirtied and leave sent, or with their file.
        prop_assert!(u_before + report.bytes_dirtied >= report.bytes_sent + report.unsent_bytes);
        u_before = report.unsent_bytes;
        start_before = start;
    }
    // Pre-copy ends once, after its last round, for the reason the numbers give.
    let ended: Vec<EndReason> = precopy.iter().filter_map(|r| r.ended).collect();
    prop_assert_eq!(ended.len(), 1);
    let stop = precopy.last().unwrap();
    match stop.ended.unwrap() {
        EndReason::NothingLeft => prop_assert_eq!(stop.unsent_bytes, 0),
        EndReason::SafetyCap { rounds } => {
            prop_assert_eq!(rounds, run.max_rounds);
            prop_assert_eq!(precopy.len() as u32, run.max_rounds);
        }
        EndReason::Beta {
            ratio,
            beta,
            tolerance,
        } => {
            prop_assert_eq!(beta, run.params.beta);
            beta_holds_first_at_the_end(precopy, beta, tolerance, ratio)?;
        }
        _ => prop_assert!(stop.unsent_bytes > 0),
    }
    // The final copy leaves nothing behind, and the destination was found equal.
    prop_assert_eq!(last.unsent_bytes, 0);
    prop_assert!(live.outcome.measured.verdict.starts_with("all "));
    Ok(())
}

/// The β test over the ReadWrite rounds' U: it holds after the last round, with the ratio
/// reported, and after no earlier one.
fn beta_holds_first_at_the_end(
    precopy: &[RoundReport],
    beta: u32,
    tolerance: f64,
    reported: f64,
) -> Result<(), TestCaseError> {
    let (beta, half) = (beta as usize, beta as usize / 2);
    let history: Vec<f64> = precopy
        .iter()
        .filter(|r| r.phase == Phase::ReadWrite)
        .map(|r| r.unsent_cost as f64)
        .collect();
    let ratio = |end: usize| {
        let window = &history[end - beta..end];
        let oldest: f64 = window[..half].iter().sum();
        let newest: f64 = window[half..].iter().sum();
        (oldest > 0.0).then(|| newest / oldest)
    };
    let band = 1.0 - tolerance..=1.0 + tolerance;
    let holds = |ratio: Option<f64>| ratio.is_some_and(|q| band.contains(&q));
    prop_assert!(history.len() >= beta);
    prop_assert_eq!(ratio(history.len()), Some(reported));
    prop_assert!(holds(Some(reported)));
    for end in beta..history.len() {
        prop_assert!(
            !holds(ratio(end)),
            "the test held after ReadWrite round {}",
            end
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn live_rounds_keep_the_invariants((dataset, lives, run) in scenario()) {
        let mut world = run.world(dataset.clone());
        for (f, &(appears, vanishes)) in lives.iter().enumerate() {
            world = world.life(f, appears, vanishes);
        }
        let live = run.live(world);
        let stop = live.reports.last().unwrap().start;
        let truth = Truth::new(&dataset, &lives, &run, stop);
        check(&live, &truth, &run)?;
    }
}
