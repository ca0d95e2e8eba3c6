//! `simulate --json` and `--csv` carry the figures the issue names, and agree with each other.

use std::process::Command;

fn migrate_native(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_migrate-native"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn json_has_the_metrics_and_the_series() {
    let args = [
        "simulate",
        "--scale",
        "0.02",
        "--bandwidth",
        "30Mbps",
        "--seed",
        "5",
    ];
    let json: serde_json::Value =
        serde_json::from_str(&migrate_native(&[&args[..], &["--json"]].concat())).unwrap();
    for key in [
        "precopy_bytes",
        "final_bytes",
        "downtime_s",
        "total_time_s",
        "rounds",
        "end_reason",
        "series",
        "config",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    let rounds = json["rounds"].as_u64().unwrap();
    let series = json["series"].as_array().unwrap();
    assert_eq!(
        series.len() as u64,
        rounds + 1,
        "pre-copy rounds plus the final copy"
    );
    assert_eq!(json["config"]["seed"], 5);

    let csv = migrate_native(&[&args[..], &["--csv"]].concat());
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), series.len() + 1);
    let sent: u64 = series
        .iter()
        .map(|p| p["bytes_sent"].as_u64().unwrap())
        .sum();
    let csv_sent: u64 = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(4).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(sent, csv_sent);
    assert_eq!(
        sent,
        json["precopy_bytes"].as_u64().unwrap() + json["final_bytes"].as_u64().unwrap()
    );
}

#[test]
fn same_seed_same_json() {
    let args = [
        "simulate", "--scale", "0.02", "--policy", "baseline", "--json",
    ];
    assert_eq!(migrate_native(&args), migrate_native(&args));
}

#[test]
fn delta_is_in_the_json_config_only_when_on_and_cuts_the_bytes_sent() {
    let run = |extra: &[&str]| -> serde_json::Value {
        let args = ["simulate", "--scale", "0.05", "--bandwidth", "20", "--json"];
        serde_json::from_str(&migrate_native(&[&args[..], extra].concat())).unwrap()
    };
    let whole = run(&[]);
    assert!(whole["config"].get("delta").is_none());
    assert!(whole["config"]["write_model"].get("write_bytes").is_none());
    let delta = run(&["--delta", "--write-bytes", "8KiB"]);
    assert_eq!(delta["config"]["delta"], true);
    assert_eq!(
        delta["config"]["write_model"]["write_bytes"],
        serde_json::json!({"kind": "constant", "bytes": 8192})
    );
    // 200 KB files written 8 KiB at a time: a resend is the few blocks written (each write
    // touches one or two), not 200 KB.
    let per_resend = |v: &serde_json::Value| {
        v["resent_bytes"].as_u64().unwrap() as f64 / v["resent_files"].as_u64().unwrap() as f64
    };
    assert_eq!(per_resend(&whole), 200_000.0);
    assert!(per_resend(&delta) < 50_000.0, "{}", per_resend(&delta));
}
