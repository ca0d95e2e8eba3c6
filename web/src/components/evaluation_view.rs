use std::cell::RefCell;
use std::rc::Rc;

use precopy_core::catalogue::NAMES;
use precopy_core::PolicyKind;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::{marker, SvgButton};
use crate::catalogue::{self as shipped, Status};
use crate::evaluation::EvaluationRun;
use crate::format;
use crate::hooks::use_interval;
use crate::palette::{policy_label, policy_style};
use crate::state::Action;

/// An evaluation compared by identity.
#[derive(Clone)]
pub struct EvaluationHandle(pub Rc<RefCell<EvaluationRun>>);

impl PartialEq for EvaluationHandle {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// Props of [`EvaluationView`].
#[derive(Properties, PartialEq)]
pub struct EvaluationViewProps {
    /// Workloads ticked (indices into `NAMES`).
    pub workloads: Vec<usize>,
    /// Policies ticked.
    pub policies: Vec<PolicyKind>,
    /// Bandwidths as typed.
    pub bandwidths: String,
    /// What is wrong with the settings, or why the last run failed.
    pub error: Option<String>,
    /// The settings are valid (a failed run, e.g. a trace that did not load, can be retried).
    pub startable: bool,
    /// Workloads of a run waiting for their traces (indices into `NAMES`).
    pub pending: Option<Vec<usize>>,
    /// The evaluation, once started.
    pub run: Option<EvaluationHandle>,
    /// Slices keep coming.
    pub running: bool,
    /// Bumped when the evaluation moves.
    pub frame: u64,
    /// Actions go through here.
    pub on_action: Callback<Action>,
}

/// The catalogue of real workloads, replayed as docs/real-apps.md does: per workload a table
/// (pre-copy MB / downtime s, beside stop-and-copy) and the pre-copy-against-downtime plot.
/// Owns the interval that asks for the next slice.
#[function_component(EvaluationView)]
pub fn evaluation_view(props: &EvaluationViewProps) -> Html {
    let act = props.on_action.clone();
    let work = {
        let act = act.clone();
        Callback::from(move |()| act.emit(Action::EvalWork))
    };
    use_interval(props.running.then_some(1), work);
    let on_bandwidths = {
        let act = act.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            act.emit(Action::EvalBandwidths(input.value()));
        })
    };
    let run = props.run.as_ref().map(|h| h.0.borrow());
    let (done, total) = run.as_ref().map_or((0, 0), |r| r.progress());
    html! {
        <>
            <section class="card" id="catalogue">
                <h2>{ "Real workloads: the catalogue of docs/real-apps.md" }</h2>
                <p>
                    { "Traces recorded from real applications (scripts/record-workloads.sh), replayed with \
                       the docs' settings: monitoring period 10 s, each trace's writes looped up to \
                       20,000 s so a long migration does not find the application quiet. Each cell is \
                       what the command below prints, and what docs/real-apps.md tabulates." }
                </p>
                <fieldset class="choices">
                    <legend>{ "Workloads" }</legend>
                    { for (0..NAMES.len()).map(|i| {
                        let id = format!("eval-workload-{}", NAMES[i]);
                        html! {
                            <label class="check" for={id.clone()} title={shipped::load_text(i)}>
                                <input type="checkbox" id={id} checked={props.workloads.contains(&i)}
                                    onchange={send(&act, Action::EvalToggleWorkload(i))} />
                                { format!(" {} ", NAMES[i]) }
                                <span class="muted">{ shipped::load_text(i) }</span>
                            </label>
                        }
                    }) }
                </fieldset>
                <fieldset class="choices inline">
                    <legend>{ "Policies" }</legend>
                    { for PolicyKind::ALL.iter().map(|&kind| {
                        let id = format!("eval-policy-{}", kind.name());
                        html! {
                            <label class="check" for={id.clone()}>
                                <input type="checkbox" id={id} checked={props.policies.contains(&kind)}
                                    onchange={send(&act, Action::EvalTogglePolicy(kind))} />
                                { format!(" {}", policy_label(kind)) }
                            </label>
                        }
                    }) }
                </fieldset>
                <div class="paper-settings">
                    <div class="field">
                        <label for="eval-bandwidths">{ "Bandwidths (Mbps)" }</label>
                        <input id="eval-bandwidths" type="text" value={props.bandwidths.clone()} oninput={on_bandwidths} />
                    </div>
                    if props.running || props.pending.is_some() {
                        <button id="eval-stop" type="button" onclick={send(&act, Action::EvalStop)}>{ "Stop" }</button>
                    } else {
                        <button id="eval-start" type="button" class="primary"
                            disabled={!props.startable}
                            onclick={send(&act, Action::EvalStart)}>{ "Run the catalogue" }</button>
                    }
                </div>
                if let Some(pending) = &props.pending {
                    <p class="msg hint loading" id="eval-loading" aria-busy="true">
                        { shipped::loading_text(&pending.iter().copied()
                            .filter(|&i| !matches!(shipped::status(i), Status::Ready(_)))
                            .collect::<Vec<_>>()) }
                    </p>
                }
                if let Some(e) = &props.error {
                    <p class="msg error" id="eval-error" role="alert">{ e }</p>
                }
                if let Some(run) = &run {
                    <div class="progress" id="eval-progress" data-done={done.to_string()} data-total={total.to_string()}
                        data-finished={run.is_done().to_string()}>
                        <progress max={total.to_string()} value={done.to_string()}></progress>
                        <span>{ format!("{done} / {total} runs") }</span>
                    </div>
                    <p class="msg hint">{ "The same figures natively:" }</p>
                    <pre class="command" id="eval-command">{ run.command_line() }</pre>
                }
            </section>
            if let Some(run) = &run {
                { for (0..run.workloads().len()).map(|w| workload_results(run, w)) }
            }
        </>
    }
}

/// A callback (for any event) that sends `action`.
fn send<E>(act: &Callback<Action>, action: Action) -> Callback<E> {
    let act = act.clone();
    Callback::from(move |_: E| act.emit(action.clone()))
}

/// One workload's table and plot (rows appear as their cells finish).
fn workload_results(run: &EvaluationRun, w: usize) -> Html {
    let settings = run.settings();
    let workload = &run.workloads()[w];
    let bandwidths = &settings.bandwidths_bps;
    let id = format!("tradeoff-{}", workload.name);
    let rows = (0..bandwidths.len()).filter_map(|b| {
        let cells: Option<Vec<_>> = (0..settings.policies.len())
            .map(|p| run.cell(w, b, p))
            .collect();
        cells.map(|cells| (b, cells))
    });
    let rows: Vec<_> = rows.collect();
    let lines: Vec<Line> = (settings.policies.iter().enumerate())
        .map(|(p, &kind)| {
            let points = rows
                .iter()
                .map(|(b, cells)| {
                    let f = cells[p];
                    let share = f.downtime_s / f.stop_and_copy_s().max(f64::MIN_POSITIVE);
                    (bandwidths[*b] / 1e6, f.precopy_bytes as f64, share)
                })
                .collect();
            (kind, points)
        })
        .collect();
    html! {
        <section class="card workload-results" data-workload={workload.name.clone()}>
            <h3>{ workload.name.clone() }</h3>
            <p class="msg hint">{ workload.describe() }</p>
            <div class="table-scroll">
                <table class="eval-table">
                    <thead><tr>
                        <th>{ "Mbit/s" }</th><th>{ "stop-and-copy" }</th>
                        { for settings.policies.iter().map(|&k| html! { <th>{ policy_label(k) }</th> }) }
                    </tr></thead>
                    <tbody>
                        { for rows.iter().map(|(b, cells)| html! {
                            <tr data-bandwidth={format::mbps(bandwidths[*b])}>
                                <td>{ format::mbps(bandwidths[*b]) }</td>
                                <td>{ format!("0 / {:.1}", cells[0].stop_and_copy_s()) }</td>
                                { for cells.iter().map(|f| html! {
                                    <td data-policy={f.policy.clone()} data-precopy-bytes={f.precopy_bytes.to_string()}
                                        data-downtime-s={f.downtime_s.to_string()}
                                        title={format!("pre-copy {}, final copy {}, {} rounds, ended: {}",
                                            format::bytes(f.precopy_bytes), format::bytes(f.final_bytes), f.rounds, f.end_reason)}>
                                        { format!("{:.1} / {:.2}", f.precopy_bytes as f64 / 1e6, f.downtime_s) }
                                    </td>
                                }) }
                            </tr>
                        }) }
                    </tbody>
                </table>
            </div>
            <p class="msg hint">{ "Each cell: pre-copy MB / downtime s. Stop-and-copy sends everything with the application stopped." }</p>
            if !rows.is_empty() {
                <figure class="chart-card">
                    { tradeoff_chart(&id, &workload.name, &lines) }
                    <SvgButton id={id} />
                </figure>
            }
        </section>
    }
}

/// 10^e bytes as an axis label: `10 MB`, `1 GB`.
fn decade(e: i32) -> String {
    let (unit, name) = match e {
        9.. => (9, "GB"),
        6.. => (6, "MB"),
        3.. => (3, "KB"),
        _ => (0, "B"),
    };
    format!("{} {name}", 10u64.pow(e.max(0) as u32 - unit))
}

const W: f64 = 560.0;
const H: f64 = 320.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 128.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 42.0;

/// One policy through its bandwidths: (Mbit/s, pre-copy bytes, downtime / stop-and-copy's).
type Line = (PolicyKind, Vec<(f64, f64, f64)>);

/// Pre-copy bytes (log) against downtime as a share of stop-and-copy's, one line per policy
/// through its bandwidths, the first labelled: the docs' plot.
fn tradeoff_chart(id: &str, name: &str, lines: &[Line]) -> Html {
    let xs = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .filter(|&x| x > 0.0);
    let (min, max) = xs.fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let lo = if min.is_finite() {
        min.log10().floor()
    } else {
        0.0
    };
    let hi = if max > 0.0 {
        max.log10().ceil().max(lo + 1.0)
    } else {
        lo + 1.0
    };
    let px = |x: f64| LEFT + (x.max(10f64.powf(lo)).log10() - lo) / (hi - lo) * (W - LEFT - RIGHT);
    let py = |y: f64| TOP + (1.0 - y.min(1.0)) * (H - TOP - BOTTOM);
    let decades = (lo as i32)..=(hi as i32);
    html! {
        <svg id={id.to_string()} class="chart tradeoff" viewBox={format!("0 0 {W} {H}")} role="img"
            aria-label={format!("{name}: pre-copy bytes against downtime")} xmlns="http://www.w3.org/2000/svg"
            font-family="system-ui, sans-serif" font-size="11">
            <text x="8" y="16" font-size="13" font-weight="600">
                { format!("{name}: pre-copy bytes against downtime") }
            </text>
            { for decades.map(|e| {
                let x = px(10f64.powi(e));
                html! {
                    <g class="tick">
                        <line x1={x.to_string()} x2={x.to_string()} y1={TOP.to_string()} y2={(H - BOTTOM).to_string()} stroke="#e3e6ea" />
                        <text x={x.to_string()} y={(H - BOTTOM + 16.0).to_string()} text-anchor="middle" fill="#4a5361">
                            { decade(e) }
                        </text>
                    </g>
                }
            }) }
            { for [0.0, 0.25, 0.5, 0.75, 1.0].iter().map(|&f| {
                let y = py(f);
                html! {
                    <g class="tick">
                        <line x1={LEFT.to_string()} x2={(W - RIGHT).to_string()} y1={y.to_string()} y2={y.to_string()} stroke="#e3e6ea" />
                        <text x={(LEFT - 6.0).to_string()} y={(y + 4.0).to_string()} text-anchor="end" fill="#4a5361">
                            { format!("{:.0} %", 100.0 * f) }
                        </text>
                    </g>
                }
            }) }
            <text x={((LEFT + W - RIGHT) / 2.0).to_string()} y={(H - 6.0).to_string()} text-anchor="middle"
                fill="#1d2430">{ "pre-copy bytes (log scale)" }</text>
            <text transform={format!("translate(14 {}) rotate(-90)", (TOP + H - BOTTOM) / 2.0)}
                text-anchor="middle" fill="#1d2430">{ "downtime / stop-and-copy's" }</text>
            { for lines.iter().enumerate().map(|(i, (kind, points))| {
                let style = policy_style(*kind);
                let path: String = points.iter().map(|&(_, x, y)| format!("{:.1},{:.1} ", px(x), py(y))).collect();
                let ly = TOP + 16.0 * i as f64;
                html! {
                    <g class="series" data-policy={kind.name()}>
                        <polyline points={path} fill="none" stroke={style.color} stroke-width="1.8"
                            stroke-dasharray={style.dash} />
                        { for points.iter().map(|&(b, x, y)| html! {
                            <g>
                                { marker(style.marker, px(x), py(y), style.color) }
                                <title>{ format!("{} at {} Mbit/s: {}, downtime {:.0} % of stop-and-copy's",
                                    kind.name(), format::trim_number(b), format::bytes(x as u64), 100.0 * y) }</title>
                            </g>
                        }) }
                        if let Some(&(b, x, y)) = points.first() {
                            <text x={(px(x) + 5.0).to_string()} y={(py(y) - 5.0).to_string()} fill={style.color}
                                font-size="9">{ format::trim_number(b) }</text>
                        }
                        { marker(style.marker, W - RIGHT + 16.0, ly + 5.0, style.color) }
                        <text x={(W - RIGHT + 26.0).to_string()} y={(ly + 9.0).to_string()}>{ policy_label(*kind) }</text>
                    </g>
                }
            }) }
            <text x={(W - RIGHT + 10.0).to_string()} y={(TOP + 16.0 * lines.len() as f64 + 12.0).to_string()} font-size="9">
                { "lines run from the" }
            </text>
            <text x={(W - RIGHT + 10.0).to_string()} y={(TOP + 16.0 * lines.len() as f64 + 24.0).to_string()} font-size="9">
                { "labelled bandwidth up" }
            </text>
        </svg>
    }
}
