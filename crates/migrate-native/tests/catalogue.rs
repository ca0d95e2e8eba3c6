//! The workload catalogue as the web app computes it (`precopy_core::catalogue`, the traces
//! decompressed by `ruzstd` as in the browser) against the CLI (`migrate-native sweep`, which
//! decompresses with libzstd and builds its configuration from its own arguments), and the
//! golden figures of every shipped trace.
//!
//! After the traces change, regenerate the golden file (the browser tests read it too) with
//!     UPDATE_GOLDEN=1 cargo test -p migrate-native --test catalogue

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use precopy_core::catalogue::{self, Figures, Workload};
use precopy_core::PolicyKind;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A shipped workload, read the way the web app reads the copy it fetches (ruzstd).
fn workload(name: &str) -> Workload {
    let dir = repo().join("data/traces");
    let packed = std::fs::read(dir.join(format!("{name}.jsonl.zst"))).unwrap();
    let mut text = String::new();
    ruzstd::decoding::StreamingDecoder::new(packed.as_slice())
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap();
    Workload::parse(name, &text, &log).unwrap()
}

#[test]
fn the_catalogue_names_every_shipped_trace() {
    let mut shipped: Vec<String> = std::fs::read_dir(repo().join("data/traces"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".jsonl.zst").map(str::to_string)
        })
        .collect();
    shipped.sort();
    let mut named = catalogue::NAMES.map(String::from).to_vec();
    named.sort();
    assert_eq!(
        named, shipped,
        "precopy_core::catalogue::NAMES must list data/traces/*.jsonl.zst"
    );
    for name in catalogue::NAMES {
        let log = repo().join(format!("data/traces/{name}.log"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            !catalogue::Recording::parse(&text).load.is_empty(),
            "{}: no `load:` line to describe the workload",
            log.display()
        );
    }
}

#[test]
fn the_docs_settings_are_real_apps_sh_defaults() {
    let script = std::fs::read_to_string(repo().join("scripts/real-apps.sh")).unwrap();
    let policies: Vec<&str> = catalogue::POLICIES.iter().map(|p| p.name()).collect();
    let bandwidths: Vec<String> = catalogue::BANDWIDTHS_MBPS
        .iter()
        .map(|b| b.to_string())
        .collect();
    for default in [
        format!("PERIOD=${{PERIOD:-{}s}}", catalogue::PERIOD_S),
        format!("LOOP=${{LOOP:-{}s}}", catalogue::LOOP_UNTIL_S),
        format!("POLICIES=${{POLICIES:-{}}}", policies.join(",")),
        format!("BANDWIDTHS=${{BANDWIDTHS:-{}}}", bandwidths.join(",")),
    ] {
        assert!(
            script.contains(&default),
            "scripts/real-apps.sh no longer has `{default}`: the web app's catalogue settings \
             (precopy_core::catalogue) must follow it"
        );
    }
}

/// The web's computation of one workload at one bandwidth equals the CLI's `sweep` output for
/// the command the web page shows. (CSV, read with `str::parse`: serde_json's default float
/// parser may miss the last bit.)
#[test]
fn the_web_computation_equals_sweep() {
    let policies = [PolicyKind::Proposed, PolicyKind::Converge];
    let line = catalogue::command_line(&["sqlite"], &policies, &[20.0]);
    let args: Vec<&str> = line.split(' ').skip(1).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_migrate-native"))
        .current_dir(repo())
        .args(&args)
        .args(["--format", "csv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), policies.len(), "{text}");
    let sqlite = workload("sqlite");
    for (row, policy) in rows.iter().zip(policies) {
        let field = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        let number = |name: &str| field(name).parse::<f64>().unwrap();
        let web = sqlite.run(policy, 20e6).unwrap();
        assert_eq!(field("policy"), web.policy);
        assert_eq!(number("bandwidth_mbps"), web.bandwidth_mbps);
        assert_eq!(number("period_s"), catalogue::PERIOD_S);
        assert_eq!(
            number("precopy_bytes"),
            web.precopy_bytes as f64,
            "{policy:?}"
        );
        assert_eq!(number("final_bytes"), web.final_bytes as f64, "{policy:?}");
        assert_eq!(
            number("resent_bytes"),
            web.resent_bytes as f64,
            "{policy:?}"
        );
        assert_eq!(number("downtime_s"), web.downtime_s, "{policy:?}");
        assert_eq!(number("total_time_s"), web.total_time_s, "{policy:?}");
        assert_eq!(number("rounds"), f64::from(web.rounds), "{policy:?}");
        assert_eq!(field("end_reasons"), format!("{}:1", web.end_reason));
    }
}

/// Every shipped trace parses and replays to the committed figures (the browser tests compare
/// their own replay with the same file).
#[test]
fn every_shipped_trace_replays_to_its_golden_figures() {
    let runs: Vec<Vec<Figures>> = catalogue::NAMES
        .iter()
        .map(|name| catalogue::golden_runs(&workload(name)).unwrap())
        .collect();
    let actual = serde_json::to_string_pretty(&runs).unwrap() + "\n";
    let path = repo().join("crates/precopy-core/tests/golden/catalogue.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .expect("golden file (UPDATE_GOLDEN=1 cargo test -p migrate-native --test catalogue)");
    assert!(
        actual == expected,
        "the shipped traces' figures differ from {}; if the traces or the replay changed on \
         purpose: UPDATE_GOLDEN=1 cargo test -p migrate-native --test catalogue",
        path.display()
    );
}
