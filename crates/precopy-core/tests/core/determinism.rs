//! The same seed gives bit-identical results; the golden file pins them (the wasm build checks
//! the same file, so native and browser agree bit for bit).

use precopy_core::reference::{golden_delta_runs, golden_runs, golden_trace_runs};
use precopy_core::Metrics;
use precopy_core::{PolicyKind, Preset, SimBuilder, SimConfig};

#[test]
fn same_seed_same_metrics() {
    let run = |seed| {
        let config = SimConfig {
            bandwidth_bps: 30e6,
            seed,
            ..SimConfig::default()
        };
        SimBuilder::new(Preset::Variable.dataset(0.1).unwrap(), PolicyKind::Proposed)
            .config(config)
            .build()
            .unwrap()
            .run()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn golden_runs_match_the_committed_file() {
    matches_golden_file(&golden_runs().unwrap(), "reference.json");
}

#[test]
fn golden_delta_runs_match_the_committed_file() {
    matches_golden_file(&golden_delta_runs().unwrap(), "delta.json");
}

#[test]
fn golden_trace_runs_match_the_committed_file() {
    matches_golden_file(&golden_trace_runs().unwrap(), "trace.json");
}

fn matches_golden_file(runs: &[Metrics], name: &str) {
    let actual = serde_json::to_string_pretty(runs).unwrap() + "\n";
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert!(
        actual == expected,
        "golden runs in {name} changed; rerun with UPDATE_GOLDEN=1 if intended"
    );
}

#[test]
fn paper_presets_snapshot() {
    let summary: Vec<String> = [Preset::Fixed, Preset::Variable]
        .into_iter()
        .flat_map(|preset| {
            [
                PolicyKind::Baseline,
                PolicyKind::Proposed,
                PolicyKind::Sweep,
            ]
            .map(move |policy| {
                let config = SimConfig {
                    bandwidth_bps: 20e6,
                    seed: 1,
                    ..SimConfig::default()
                };
                let m = SimBuilder::new(preset.dataset(1.0).unwrap(), policy)
                    .config(config)
                    .build()
                    .unwrap()
                    .run();
                format!(
                    "{} {}: pre {} final {} rounds {} {}",
                    preset.name(),
                    m.policy,
                    m.precopy_bytes,
                    m.final_bytes,
                    m.rounds,
                    m.end_reason
                )
            })
        })
        .collect();
    insta::assert_snapshot!(summary.join("\n"));
}
