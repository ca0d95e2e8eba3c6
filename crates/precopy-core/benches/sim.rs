//! One paper-scale run of each main policy (11,000 files, to the end test and final copy).
//! One exponential draw, the write processes' inner loop, by the ziggurat and by inversion.
//! The whole paper sweep and the 1,000,000-file run are timed by `scripts/bench-core.sh`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use precopy_core::workload::exp1;
use precopy_core::{PolicyKind, Preset, SimBuilder, SimConfig};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

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

/// 1,000 draws each, chained into a sum as a stream chains them into write times.
fn exp_draw(c: &mut Criterion) {
    let mut group = c.benchmark_group("exp_draw_x1000");
    let mut rng = Pcg64Mcg::seed_from_u64(1);
    group.bench_function("ziggurat", |b| {
        b.iter(|| (0..1000).fold(0.0, |t, _| t + exp1(black_box(&mut rng))))
    });
    group.bench_function("inversion", |b| {
        b.iter(|| {
            (0..1000).fold(0.0, |t, _| {
                let u: f64 = black_box(&mut rng).random();
                t - libm::log(1.0 - u)
            })
        })
    });
    group.finish();
}

criterion_group!(benches, paper_run, exp_draw);
criterion_main!(benches);
