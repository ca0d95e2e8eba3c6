//! One paper-scale run of each main policy (11,000 files, to the end test and final copy).
//! The whole paper sweep and the 1,000,000-file run are timed by `scripts/bench-core.sh`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use precopy_core::{PolicyKind, Preset, SimBuilder, SimConfig};

fn paper_run(c: &mut Criterion) {
    let mut group = c.benchmark_group("paper_run");
    group.sample_size(20);
    for preset in Preset::ALL {
        let dataset = preset.dataset(1.0).unwrap();
        for policy in [
            PolicyKind::Baseline,
            PolicyKind::Proposed,
            PolicyKind::Sweep,
        ] {
            for mbps in [10.0, 50.0] {
                let id = BenchmarkId::new(format!("{}/{}", preset.name(), policy.name()), mbps);
                group.bench_with_input(id, &mbps, |b, &mbps| {
                    b.iter(|| {
                        let config = SimConfig {
                            bandwidth_bps: mbps * 1e6,
                            ..SimConfig::default()
                        };
                        SimBuilder::new(dataset.clone(), policy)
                            .config(config)
                            .build()
                            .unwrap()
                            .run()
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, paper_run);
criterion_main!(benches);
