//! Invariants that hold for every policy, data set and parameter choice.

use precopy_core::{
    Dataset, Group, Kind, PolicyKind, RateMapping, SimBuilder, SimConfig, SizeSpec, Status,
    WriteBytes, WriteModel,
};
use proptest::prelude::*;

fn group() -> impl Strategy<Value = Group> {
    (1u32..30, 1u64..50, 0.0f64..=1.0, any::<bool>()).prop_map(|(count, kb, p, ro)| Group {
        name: "g".into(),
        count,
        size: SizeSpec::Fixed(kb * 1000),
        kind: if ro { Kind::ReadOnly } else { Kind::ReadWrite },
        probability: if ro { 0.0 } else { p },
    })
}

fn config() -> impl Strategy<Value = SimConfig> {
    (
        0.05f64..50.0,
        0.1f64..20.0,
        1u32..6,
        0.0f64..2.0,
        any::<u64>(),
        any::<bool>(),
        0.0f64..0.01,
    )
        .prop_map(
            |(mbps, period, half_beta, intensity, seed, linear, overhead)| {
                let mut config = SimConfig {
                    bandwidth_bps: mbps * 1e6,
                    period_s: period,
                    overhead_s: overhead,
                    seed,
                    write_model: WriteModel {
                        mapping: if linear {
                            RateMapping::Linear
                        } else {
                            RateMapping::PerWindow
                        },
                        intensity,
                        ..WriteModel::default()
                    },
                    max_rounds: 400,
                    ..SimConfig::default()
                };
                config.params.beta = half_beta * 2;
                config
            },
        )
}

fn policy() -> impl Strategy<Value = PolicyKind> {
    prop::sample::select(PolicyKind::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_run_keeps_the_invariants(
        groups in prop::collection::vec(group(), 1..4),
        config in config(),
        policy in policy(),
    ) {
        let dataset = Dataset::from_groups("p", &groups, 1.0).unwrap();
        let total: u64 = dataset.total_bytes();
        let ro_bytes = dataset.bytes_of(Kind::ReadOnly);
        let mut sim = SimBuilder::new(dataset, policy).config(config).build().unwrap();
        let mut last_time = 0.0;
        let mut unsent_at_stop = None;
        while let Some(report) = sim.step() {
            // U is exactly the bytes of files that still have to go.
            let u: u64 = sim.files().iter().filter(|f| f.status.needs_send()).map(|f| f.size).sum();
            prop_assert_eq!(report.unsent_bytes, u);
            prop_assert!(report.end >= report.start && report.start >= last_time);
            last_time = report.end;
            if report.ended.is_some() {
                unsent_at_stop = Some(u);
            }
        }
        let m = sim.metrics().clone();
        // Every file is cleanly at the destination after the final copy.
        prop_assert!(sim.files().iter().all(|f| f.status == Status::Clean && f.sends > 0));
        // The final copy is exactly what was not clean when the application stopped.
        prop_assert_eq!(Some(m.final_bytes), unsent_at_stop);
        prop_assert!(m.precopy_bytes >= ro_bytes);
        prop_assert!(m.precopy_bytes + m.final_bytes >= total);
        prop_assert!(m.precopy_bytes - m.resent_bytes <= total);
        prop_assert!(m.downtime_s >= 0.0 && m.total_time_s >= m.precopy_time_s);
        prop_assert_eq!(m.series.len() as u32, m.rounds + 1);
    }
}

fn write_bytes() -> impl Strategy<Value = WriteBytes> {
    prop_oneof![
        Just(WriteBytes::Whole),
        (1u64..100_000).prop_map(|bytes| WriteBytes::Constant { bytes }),
        (1u64..20_000, 0u64..80_000).prop_map(|(min, span)| WriteBytes::Uniform {
            min,
            max: min + span
        }),
        (1u64..50_000).prop_map(|mean| WriteBytes::Exponential { mean }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn delta_resends_cost_at_most_the_size_and_every_byte_is_counted(
        groups in prop::collection::vec(group(), 1..4),
        config in config(),
        policy in policy(),
        write_bytes in write_bytes(),
        block_bytes in 1u64..20_000,
    ) {
        let dataset = Dataset::from_groups("p", &groups, 1.0).unwrap();
        let sizes: Vec<u64> = dataset.files.iter().map(|f| f.size).collect();
        let config = SimConfig {
            delta: true,
            block_bytes,
            write_model: WriteModel { write_bytes, ..config.write_model },
            ..config
        };
        let mut sim = SimBuilder::new(dataset, policy).config(config).build().unwrap();
        let (mut on_link, mut cost_at_stop) = (0, None);
        while let Some(report) = sim.step() {
            let mut round_bytes = 0;
            for t in &report.transfers {
                let size = sizes[t.file as usize];
                if t.resend {
                    prop_assert!(t.bytes <= size, "{} > {}", t.bytes, size);
                } else {
                    prop_assert_eq!(t.bytes, size, "a first send is whole");
                }
                // The link carries the bytes, not the size.
                let seconds = t.bytes as f64 * 8.0 / config.bandwidth_bps + config.overhead_s;
                prop_assert!((t.end - t.start - seconds).abs() <= 1e-9 * t.end.max(1.0));
                round_bytes += t.bytes;
            }
            prop_assert_eq!(report.bytes_sent, round_bytes);
            prop_assert!(report.unsent_cost <= report.unsent_bytes);
            on_link += round_bytes;
            if report.ended.is_some() {
                cost_at_stop = Some(report.unsent_cost);
            }
        }
        let m = sim.metrics();
        prop_assert_eq!(m.precopy_bytes + m.final_bytes, on_link);
        // The final copy sends exactly what the engine said it would cost at the stop.
        prop_assert_eq!(Some(m.final_bytes), cost_at_stop);
        prop_assert!(sim.files().iter().all(|f| f.status == Status::Clean && f.sends > 0));
    }

    #[test]
    fn without_delta_the_write_size_changes_nothing_and_whole_writes_make_delta_a_no_op(
        groups in prop::collection::vec(group(), 1..4),
        config in config(),
        policy in policy(),
        write_bytes in write_bytes(),
    ) {
        let dataset = std::sync::Arc::new(Dataset::from_groups("p", &groups, 1.0).unwrap());
        let run = |config: SimConfig| {
            SimBuilder::new(dataset.clone(), policy).config(config).build().unwrap().run()
        };
        let paper = run(config);
        let sized = SimConfig {
            write_model: WriteModel { write_bytes, ..config.write_model },
            ..config
        };
        prop_assert_eq!(&run(sized), &paper);
        let whole_delta = SimConfig { delta: true, ..config };
        prop_assert_eq!(&run(whole_delta), &paper);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Compressed R to 1, every transfer takes 1/R of its time (its overhead apart), and the
    /// run is that of a link R times faster, round for round (ratio 1 is the golden file's).
    #[test]
    fn a_compression_ratio_divides_every_transfer_time(
        groups in prop::collection::vec(group(), 1..4),
        config in config(),
        policy in policy(),
        ratio in 1.0f64..8.0,
        delta in any::<bool>(),
    ) {
        let dataset = std::sync::Arc::new(Dataset::from_groups("p", &groups, 1.0).unwrap());
        let reports = |config: SimConfig| {
            let mut sim = SimBuilder::new(dataset.clone(), policy).config(config).build().unwrap();
            std::iter::from_fn(|| sim.step()).collect::<Vec<_>>()
        };
        let config = SimConfig { delta, ..config };
        let compressed = reports(SimConfig { compress_ratio: ratio, ..config });
        let faster = reports(SimConfig { bandwidth_bps: config.bandwidth_bps * ratio, ..config });
        // Debug prints each float exactly, and a plan's NaN keys alike (they are not `==`).
        prop_assert_eq!(format!("{compressed:?}"), format!("{faster:?}"));
        for t in compressed.iter().flat_map(|r| &r.transfers) {
            let uncompressed = t.bytes as f64 * 8.0 / config.bandwidth_bps;
            let took = t.end - t.start - config.overhead_s;
            // Rounding: a few units in the last place of the times involved.
            let slack = 1e-12 * ratio * (t.end + uncompressed + 1.0);
            prop_assert!((took * ratio - uncompressed).abs() <= slack, "{:?}", t);
        }
    }
}
