use std::cell::RefCell;
use std::rc::Rc;

use precopy_core::paper::{Band, Quantity};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{HtmlInputElement, MessageEvent, Worker};
use yew::prelude::*;

use super::{ChartBand, LineChart, Series};
use crate::export;
use crate::format;
use crate::hooks::use_interval;
use crate::paper::{ours_text, reported_text, PaperRun, FIGURES, POLICIES, READY};
use crate::state::{now_ms, Action};

/// A paper sweep compared by identity.
#[derive(Clone)]
pub struct PaperHandle(pub Rc<RefCell<PaperRun>>);

impl PartialEq for PaperHandle {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// Props of [`PaperView`].
#[derive(Properties, PartialEq)]
pub struct PaperViewProps {
    /// Seeds per point, as typed.
    pub seeds: String,
    /// Scale, as typed.
    pub scale: String,
    /// What is wrong with the settings, if anything.
    pub error: Option<String>,
    /// The sweep, once started.
    pub run: Option<PaperHandle>,
    /// Slices keep coming, or workers are at work.
    pub running: bool,
    /// Web workers to use (0: slices on this thread).
    pub workers: usize,
    /// Start time, and duration once done (ms).
    pub timing: (f64, Option<f64>),
    /// Bumped when the sweep moves.
    pub frame: u64,
    /// Actions go through here.
    pub on_action: Callback<Action>,
}

/// The paper's Figures 2–5 computed here, in slices, with the claims beside ours. Owns the
/// interval that asks for the next slice.
#[function_component(PaperView)]
pub fn paper_view(props: &PaperViewProps) -> Html {
    let act = props.on_action.clone();
    let work = {
        let act = act.clone();
        Callback::from(move |()| act.emit(Action::PaperWork))
    };
    // 1 ms: the browser clamps it to what keeps rendering and input flowing between slices.
    use_interval((props.running && props.workers == 0).then_some(1), work);
    use_workers(
        props.run.clone().filter(|_| props.running),
        props.workers,
        act.clone(),
    );
    let input = |make: fn(String) -> Action| {
        let act = act.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            act.emit(make(input.value()));
        })
    };
    let start = {
        let act = act.clone();
        Callback::from(move |_| act.emit(Action::PaperStart))
    };
    let stop = {
        let act = act.clone();
        Callback::from(move |_| act.emit(Action::PaperStop))
    };
    let run = props.run.as_ref().map(|h| h.0.borrow());
    let (done, total) = run.as_ref().map_or((0, 0), |r| r.progress());
    let elapsed_ms = match props.timing {
        (_, Some(d)) => d,
        (start, None) if props.running => now_ms() - start,
        _ => 0.0,
    };
    let finished = run.as_ref().is_some_and(|r| r.is_done());
    let csv = run.as_ref().map(|r| r.csv());
    let export_csv = Callback::from(move |_| {
        if let Some(text) = &csv {
            export::download("precopy-paper.csv", "text/csv", text).ok();
        }
    });
    let narrow = Rc::new(vec![ChartBand {
        x0: 5.0,
        x1: 30.0,
        divider: None,
        color: "#4a5361",
        label: "narrow: 5–30 Mbps".into(),
    }]);
    html! {
        <div class="paper">
            <section class="card">
                <h2>{ "Reproduce the paper's Figures 2–5" }</h2>
                <p>
                    { "Pre-copy bytes (network load) and final-copy bytes (downtime) of the baseline, the \
                       proposed method and our sweep variant, against bandwidth 5 to 100 Mbps in steps of 5, \
                       on both of the paper's data sets, averaged over seeds 1 to n. The model parameters \
                       (period, β, write intensity, p̂ estimator, overhead) are those of the Simulator tab." }
                </p>
                <div class="paper-settings">
                    <div class="field">
                        <label for="paper-seeds">{ "Seeds per point" }</label>
                        <input id="paper-seeds" type="text" value={props.seeds.clone()} oninput={input(Action::PaperSeeds)} />
                    </div>
                    <div class="field">
                        <label for="paper-scale">{ "Scale" }</label>
                        <input id="paper-scale" type="text" value={props.scale.clone()} oninput={input(Action::PaperScale)} />
                    </div>
                    if props.running {
                        <button id="paper-stop" type="button" onclick={stop}>{ "Stop" }</button>
                    } else {
                        <button id="paper-start" type="button" class="primary" disabled={props.error.is_some()}
                            onclick={start}>{ if run.is_some() { "Compute again" } else { "Compute the figures" } }</button>
                    }
                    <button type="button" id="paper-csv" class="small" disabled={!finished} onclick={export_csv}>{ "CSV" }</button>
                </div>
                if let Some(e) = &props.error {
                    <p class="msg error" role="alert">{ e }</p>
                }
                if total > 0 {
                    <div class="progress" id="paper-progress" data-done={done.to_string()} data-total={total.to_string()}
                        data-finished={finished.to_string()} data-elapsed-ms={format!("{elapsed_ms:.0}")}>
                        <progress max={total.to_string()} value={done.to_string()}></progress>
                        <span>{ format!("{} / {} runs · {:.1} s · {}", done, total, elapsed_ms / 1000.0,
                            if props.workers > 0 { format!("{} web workers", props.workers) }
                            else { "on this page's thread, in slices".to_string() }) }</span>
                    </div>
                }
            </section>
            if let Some(run) = &run {
                <div class="chart-grid">
                    { for FIGURES.iter().map(|&(number, preset, quantity)| {
                        let series: Vec<Series> = POLICIES.iter()
                            .map(|&kind| Series { kind, points: run.means(preset, kind, quantity) })
                            .collect();
                        let what = match quantity {
                            Quantity::PrecopyBytes => "pre-copy bytes (network load)",
                            Quantity::FinalBytes => "final-copy bytes (downtime)",
                        };
                        let id = format!("figure-{number}");
                        html! {
                            <figure class="card chart-card">
                                <LineChart id={id.clone()} title={format!("Figure {number}: {} data set, {what}", preset.name())}
                                    x_label="bandwidth (Mbps)" y_label={quantity.label()} series={Rc::new(series)}
                                    bands={narrow.clone()} x_max={Some(100.0)} />
                                <SvgButton id={id} />
                            </figure>
                        }
                    }) }
                </div>
                <section class="card">
                    <h2>{ "The paper's claims and ours (proposed vs baseline)" }</h2>
                    <div class="table-scroll">
                    <table id="claims-table">
                        <thead><tr>
                            <th>{ "data set" }</th><th>{ "quantity" }</th><th>{ "bandwidths" }</th>
                            <th>{ "paper" }</th><th>{ "ours" }</th><th>{ "holds" }</th>
                        </tr></thead>
                        <tbody>
                            { for run.assessments().iter().map(|(claim, a)| html! {
                                <tr>
                                    <td>{ claim.dataset.name() }</td>
                                    <td>{ claim.quantity.label() }</td>
                                    <td>{ match claim.band { Band::All => "5–100 Mbps", b => b.label() } }</td>
                                    <td>{ reported_text(claim.reported) }</td>
                                    <td>{ a.as_ref().map_or("…".to_string(), ours_text) }</td>
                                    <td class={classes!(a.as_ref().map(|a| if a.holds { "yes" } else { "no" }))}>
                                        { a.as_ref().map_or("…", |a| if a.holds { "✓ yes" } else { "✗ no" }) }
                                    </td>
                                </tr>
                            }) }
                        </tbody>
                    </table>
                    </div>
                    <p class="msg hint">
                        { format!("Ours: the smallest and largest change of the proposed method against the \
                                   baseline over the band, means of {} seed(s), data sets at scale {}. A reduction \
                                   claim holds when the proposed method is ahead at every bandwidth of the band and \
                                   the ranges overlap; \"about equal\" holds within ±15%.",
                                  run.settings().seeds, format::trim_number(run.settings().scale)) }
                    </p>
                </section>
            }
        </div>
    }
}

/// How long the workers may take to send their first result before the page computes alone.
const WORKER_WATCHDOG_MS: u32 = 10_000;

/// Runs the sweep on `workers` web workers while `run` is set; the component owns them, so a
/// new run, stopping, finishing or unmounting terminates them.
#[hook]
fn use_workers(run: Option<PaperHandle>, workers: usize, act: Callback<Action>) {
    use_effect_with((run, workers), move |(run, workers)| {
        let mut started = Vec::new();
        let mut watchdog = None;
        if let (Some(run), true) = (run, *workers > 0) {
            // A worker whose WebAssembly fails to start raises no error event: if nothing has
            // come back after a while, compute on the page instead.
            let (run_for_check, act_for_check) = (run.clone(), act.clone());
            watchdog = Some(gloo_timers::callback::Timeout::new(
                WORKER_WATCHDOG_MS,
                move || {
                    if run_for_check.0.borrow().progress().0 == 0 {
                        act_for_check.emit(Action::PaperWorkersFailed);
                    }
                },
            ));
            let tasks = run.0.borrow().tasks(*workers);
            for task in tasks {
                // The worker's loader shim, written by Trunk next to index.html.
                let Ok(worker) = Worker::new("./paper-worker_loader.js") else {
                    act.emit(Action::PaperWorkersFailed);
                    break;
                };
                let reply = {
                    let act = act.clone();
                    let worker = worker.clone();
                    Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                        let text = e.data().as_string().unwrap_or_default();
                        if text != READY {
                            act.emit(Action::PaperReply(text));
                        } else if worker.post_message(&task.as_str().into()).is_err() {
                            act.emit(Action::PaperWorkersFailed);
                        }
                    })
                };
                let failed = {
                    let act = act.clone();
                    Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                        act.emit(Action::PaperWorkersFailed)
                    })
                };
                worker.set_onmessage(Some(reply.as_ref().unchecked_ref()));
                worker.set_onerror(Some(failed.as_ref().unchecked_ref()));
                started.push((worker, reply, failed));
            }
        }
        move || {
            drop(watchdog);
            for (worker, _, _) in &started {
                worker.terminate();
            }
        }
    });
}

/// Props of [`SvgButton`].
#[derive(Properties, PartialEq)]
pub struct SvgButtonProps {
    /// Id of the chart's `<svg>`; also the file name.
    pub id: AttrValue,
}

/// Saves one chart as an SVG file.
#[function_component(SvgButton)]
pub fn svg_button(props: &SvgButtonProps) -> Html {
    let id = props.id.clone();
    let onclick = Callback::from(move |_| {
        if let Some(svg) = export::svg_of(&id) {
            export::download(&format!("{id}.svg"), "image/svg+xml", &svg).ok();
        }
    });
    html! {
        <button type="button" class="small svg-export" title="save this chart as SVG" {onclick}>{ "SVG" }</button>
    }
}
