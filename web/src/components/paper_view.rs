use std::cell::RefCell;
use std::rc::Rc;

use precopy_core::paper::{Band, Quantity};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::{ChartBand, LineChart, Series};
use crate::export;
use crate::format;
use crate::hooks::use_interval;
use crate::paper::{ours_text, reported_text, PaperRun, FIGURES, POLICIES};
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
    /// Slices keep coming.
    pub running: bool,
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
    use_interval(props.running.then_some(1), work);
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
                        <span>{ format!("{} / {} runs · {:.1} s", done, total, elapsed_ms / 1000.0) }</span>
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
