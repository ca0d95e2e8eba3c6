//! The root component: one `use_reducer` holds the state; children get data and callbacks.

use std::rc::Rc;

use precopy_core::units::format_bytes;
use yew::prelude::*;

use crate::components::{
    ConfigPanel, Controls, EvaluationHandle, EvaluationView, LanePanel, LaneSeries, LaneView,
    LiveCharts, PaperHandle, PaperView, ResultsTable,
};
use crate::state::{measure, now_ms, Action, State, Tab};

/// The page heading.
pub const TITLE: &str = "Pre-copy migration simulator";

fn location_search() -> String {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default()
}

/// Puts the run's configuration in the address bar, so the link reproduces it.
fn set_query(query: &str) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        // Only the address bar is lost if this fails.
        let _ = history.replace_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&format!("?{query}")),
        );
    }
}

#[function_component(Intro)]
fn intro() -> Html {
    html! {
        <section class="card intro">
            <h2>{ "What you are looking at" }</h2>
            <p>{ "An application's files move from host S to host D while it keeps running (pre-copy). \
                  A file written after its copy started is dirty and must be sent again. At the end the \
                  application stops and everything not cleanly at D is sent: the final copy, whose size \
                  sets the downtime." }</p>
            <ul>
                <li><strong>{ "baseline" }</strong>{ " (Xen-style): every file in path order, then the dirtied ones again, for 10 iterations." }</li>
                <li><strong>{ "proposed" }</strong>{ " (the paper): ReadOnly files first, then ReadWrite files in ascending update expectation E = p̂ × size; pre-copy stops when U, the bytes not yet clean at D, levels off (the β test)." }</li>
            </ul>
            <p>{ "Press " }<strong>{ "Run" }</strong>{ " to watch the chosen policies side by side on the chosen data set, or open " }
               <strong>{ "Paper & real workloads" }</strong>{ " to reproduce the paper's comparison across bandwidths, or to run the workloads recorded from real applications." }</p>
        </section>
    }
}

/// While playing, the charts take new rounds at most this often (ms): at high speeds rounds
/// finish many times a second, and redrawing the SVG for each would crowd the frame budget.
const CHART_REFRESH_MS: f64 = 250.0;

/// The chart data last handed to the charts.
#[derive(Default)]
struct ChartCache {
    at: f64,
    identity: usize,
    finished: usize,
    lanes: Vec<LaneSeries>,
}

/// The root component.
#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer(|| State::from_query(&location_search()));
    let charts = use_mut_ref(ChartCache::default);
    let on_action = {
        let state = state.clone();
        Callback::from(move |action: Action| state.dispatch(action))
    };
    use_effect_with(state.link.clone(), |link| {
        if let Some(query) = link {
            set_query(query);
        }
    });
    // Traces are fetched only when needed: the workload picked (also from the URL) and those of
    // a catalogue run. Each arrival re-checks the form and may start the catalogue.
    use_effect_with(state.workloads_to_fetch(), {
        let on_action = on_action.clone();
        move |wanted| {
            for &i in wanted {
                let on_action = on_action.clone();
                crate::catalogue::request(i, move || on_action.emit(Action::WorkloadLoaded));
            }
        }
    });
    // Closes the frame opened by the last tick: the measure covers the reducer, the render and
    // the canvas drawing (children's effects run before this one).
    use_effect_with(state.frame, |_| measure("frame", "tick"));

    let tab_button = |tab: Tab, id: &'static str, label: &'static str| {
        let on_action = on_action.clone();
        html! {
            <button {id} type="button" role="tab" aria-selected={(state.tab == tab).to_string()}
                class={classes!("tab", (state.tab == tab).then_some("active"))}
                onclick={Callback::from(move |_| on_action.emit(Action::ShowTab(tab)))}>{ label }</button>
        }
    };
    let errors = match &state.checked {
        Ok(_) => Default::default(),
        Err(errors) => errors.clone(),
    };

    let simulator = {
        let session = state.session.as_ref().map(|s| s.borrow());
        let main = match (&session, &state.session_config) {
            (Some(cmp), Some(config)) => {
                let (name, files, total) = cmp.dataset();
                let views: Vec<LaneView> = cmp
                    .lanes()
                    .iter()
                    .map(|l| LaneView::of(l, total, config.sim.period_s))
                    .collect();
                let series = {
                    let mut cache = charts.borrow_mut();
                    let identity = Rc::as_ptr(state.session.as_ref().expect("a session")) as usize;
                    let finished = cmp.lanes().iter().filter(|l| l.is_finished()).count();
                    let now = now_ms();
                    let stale = cache.identity != identity
                        || cache.finished != finished
                        || !state.playing
                        || now - cache.at >= CHART_REFRESH_MS;
                    if stale {
                        *cache = ChartCache {
                            at: now,
                            identity,
                            finished,
                            lanes: cmp
                                .lanes()
                                .iter()
                                .map(|l| LaneSeries {
                                    kind: l.kind(),
                                    points: l.points(),
                                    beta: l.beta(),
                                    metrics: l.metrics(),
                                    total,
                                })
                                .collect(),
                        };
                    }
                    cache.lanes.clone()
                };
                let rows: Vec<_> = cmp
                    .lanes()
                    .iter()
                    .map(|l| (l.kind(), l.metrics()))
                    .collect();
                let link = state
                    .link
                    .clone()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default();
                html! {
                    <>
                        <section class="run-head">
                            <p class="run-summary">
                                { format!("{name}: {} files, {} at {} Mbps, seed {}",
                                    crate::format::count(files as u64), format_bytes(total as f64),
                                    crate::format::mbps(config.sim.bandwidth_bps), config.sim.seed) }
                                if config.sim.compress_ratio != 1.0 {
                                    { format!(", compressed {} to 1", config.sim.compress_ratio) }
                                }
                                { " · " }<a id="share-link" href={link}>{ "link to this run" }</a>
                            </p>
                            <Controls playing={state.playing} fast_forward={state.fast_forward}
                                done={cmp.is_done()} speed={state.speed} clock={cmp.clock()}
                                on_action={on_action.clone()} />
                        </section>
                        <div class={classes!("lanes", (views.len() == 1).then_some("single"))}>
                            { for views.into_iter().map(|view| html! {
                                <LanePanel {view} frame={state.frame} />
                            }) }
                        </div>
                        <LiveCharts lanes={series} />
                        <ResultsTable {rows} config={config.sim} />
                    </>
                }
            }
            _ => html! { <Intro /> },
        };
        html! {
            <div class="layout">
                <aside class="sidebar">
                    <ConfigPanel draft={state.draft.clone()} errors={errors}
                        import_error={state.import_error.clone()} on_action={on_action.clone()} />
                </aside>
                <main class="main">
                    if let Some(e) = &state.session_error {
                        <p class="msg error banner" role="alert">{ e }</p>
                    }
                    { main }
                </main>
            </div>
        }
    };

    html! {
        <div class="app">
            <header class="topbar">
                <div class="brand">
                    <h1>{ TITLE }</h1>
                    <p class="tagline">{ "Moving an application's files while it runs: which order keeps network load and downtime low?" }</p>
                </div>
                <nav class="tabs" role="tablist">
                    { tab_button(Tab::Simulator, "tab-simulator", "Simulator") }
                    { tab_button(Tab::Paper, "tab-paper", "Paper & real workloads") }
                </nav>
            </header>
            if state.tab == Tab::Simulator {
                { simulator }
            } else {
                <main class="main wide">
                    <PaperView seeds={state.paper_seeds.clone()} scale={state.paper_scale.clone()}
                        error={state.paper_settings().err()}
                        run={state.paper.clone().map(PaperHandle)} running={state.paper_running}
                        workers={state.paper_workers}
                        timing={state.paper_timing} frame={state.paper_frame} on_action={on_action.clone()} />
                    <EvaluationView workloads={state.eval_workloads.clone()} policies={state.eval_policies.clone()}
                        bandwidths={state.eval_bandwidths.clone()}
                        error={state.eval_failure.clone().or_else(|| state.eval_settings().err())}
                        startable={state.eval_settings().is_ok()}
                        pending={state.eval_pending.as_ref().map(|p| p.workloads.clone())}
                        run={state.eval.clone().map(EvaluationHandle)} running={state.eval_running}
                        frame={state.eval_frame} on_action={on_action.clone()} />
                </main>
            }
        </div>
    }
}
