use std::rc::Rc;

use precopy_core::paper::reduction_pct;
use precopy_core::{Metrics, PolicyKind, SimConfig};
use yew::prelude::*;

use crate::export;
use crate::format;
use crate::palette::policy_label;

/// Props of [`ResultsTable`].
#[derive(Properties, PartialEq)]
pub struct ResultsTableProps {
    /// Each compared policy, with its metrics once its final copy has been played.
    pub rows: Vec<(PolicyKind, Option<Rc<Metrics>>)>,
    /// The run's configuration (for the JSON export).
    pub config: SimConfig,
}

fn change(base: Option<f64>, value: f64) -> String {
    match base {
        Some(b) if b > 0.0 => {
            let pct = -reduction_pct(b, value);
            if pct.abs() < 0.05 {
                "±0%".into()
            } else {
                format!("{}{:.0}%", if pct > 0.0 { "+" } else { "−" }, pct.abs())
            }
        }
        _ => String::new(),
    }
}

/// The figures of every finished run, with the exact values in `data-*` attributes, and the
/// CSV / JSON exports.
#[function_component(ResultsTable)]
pub fn results_table(props: &ResultsTableProps) -> Html {
    let finished: Vec<Rc<Metrics>> = props.rows.iter().filter_map(|r| r.1.clone()).collect();
    let baseline = props
        .rows
        .iter()
        .find(|r| r.0 == PolicyKind::Baseline)
        .and_then(|r| r.1.clone());
    let export_csv = {
        let finished = finished.clone();
        Callback::from(move |_| {
            let runs: Vec<&Metrics> = finished.iter().map(|m| m.as_ref()).collect();
            export::download("precopy-rounds.csv", "text/csv", &export::series_csv(&runs)).ok();
        })
    };
    let export_json = {
        let finished = finished.clone();
        let config = props.config;
        Callback::from(move |_| {
            let runs: Vec<&Metrics> = finished.iter().map(|m| m.as_ref()).collect();
            export::download(
                "precopy-runs.json",
                "application/json",
                &export::runs_json(&runs, &config),
            )
            .ok();
        })
    };
    let none = finished.is_empty();
    html! {
        <section class="card results">
            <div class="card-head">
                <h2>{ "Results" }</h2>
                <div class="exports">
                    <button type="button" id="export-csv" class="small" disabled={none} onclick={export_csv}>{ "CSV" }</button>
                    <button type="button" id="export-json" class="small" disabled={none} onclick={export_json}>{ "JSON" }</button>
                </div>
            </div>
            <div class="table-wrap">
            <table id="results-table">
                <thead>
                    <tr>
                        <th>{ "policy" }</th>
                        <th class="num">{ "pre-copy bytes" }</th>
                        <th class="num">{ "final-copy bytes" }</th>
                        <th class="num">{ "downtime" }</th>
                        <th class="num">{ "total time" }</th>
                        <th class="num">{ "rounds" }</th>
                        <th class="num">{ "resent" }</th>
                        <th>{ "pre-copy ended" }</th>
                    </tr>
                </thead>
                <tbody>
                    { for props.rows.iter().map(|(kind, metrics)| match metrics {
                        None => html! {
                            <tr data-policy={kind.name()} data-finished="false">
                                <td>{ policy_label(*kind) }</td>
                                <td colspan="7" class="pending">{ "running…" }</td>
                            </tr>
                        },
                        Some(m) => {
                            let base = baseline.as_ref().filter(|_| *kind != PolicyKind::Baseline);
                            html! {
                                <tr data-policy={kind.name()} data-finished="true"
                                    data-precopy-bytes={m.precopy_bytes.to_string()}
                                    data-final-bytes={m.final_bytes.to_string()}
                                    data-downtime-s={m.downtime_s.to_string()}
                                    data-total-time-s={m.total_time_s.to_string()}
                                    data-precopy-time-s={m.precopy_time_s.to_string()}
                                    data-rounds={m.rounds.to_string()}
                                    data-resent-bytes={m.resent_bytes.to_string()}
                                    data-resent-files={m.resent_files.to_string()}
                                    data-end-reason={m.end_reason.name()}>
                                    <td>{ policy_label(*kind) }</td>
                                    <td class="num">{ format::bytes(m.precopy_bytes) }
                                        <span class="delta">{ change(base.map(|b| b.precopy_bytes as f64), m.precopy_bytes as f64) }</span></td>
                                    <td class="num">{ format::bytes(m.final_bytes) }
                                        <span class="delta">{ change(base.map(|b| b.final_bytes as f64), m.final_bytes as f64) }</span></td>
                                    <td class="num">{ format!("{:.2} s", m.downtime_s) }</td>
                                    <td class="num">{ format::seconds(m.total_time_s) }</td>
                                    <td class="num">{ m.rounds }</td>
                                    <td class="num">{ format!("{} files · {}", format::count(u64::from(m.resent_files)), format::bytes(m.resent_bytes)) }</td>
                                    <td class="reason">{ m.end_reason.to_string() }</td>
                                </tr>
                            }
                        }
                    }) }
                </tbody>
            </table>
            </div>
            if baseline.is_some() && finished.len() > 1 {
                <p class="msg hint">{ "Percentages: change against the baseline (negative is better)." }</p>
            }
        </section>
    }
}
