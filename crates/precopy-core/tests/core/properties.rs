//! Invariants that hold for every policy, data set and parameter choice.

use precopy_core::{
    Dataset, Group, Kind, PolicyKind, RateMapping, SimBuilder, SimConfig, SizeSpec, Status,
    WriteModel,
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
