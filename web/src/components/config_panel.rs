use std::rc::Rc;

use precopy_core::catalogue::NAMES;
use precopy_core::dataset::Preset;
use precopy_core::units::parse_bandwidth;
use precopy_core::PolicyKind;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::{marker, GroupsEditor, TextField};
use crate::catalogue::{self as shipped, Status};
use crate::config::{Draft, Errors, Field, SourceKind};
use crate::format;
use crate::palette::{policy_label, policy_style};
use crate::state::Action;

/// Props of [`ConfigPanel`].
#[derive(Properties, PartialEq)]
pub struct ConfigPanelProps {
    /// The form as typed.
    pub draft: Draft,
    /// Validation problems (empty when the form is valid).
    pub errors: Rc<Errors>,
    /// Why the last import failed.
    pub import_error: Option<String>,
    /// Every change goes through here.
    pub on_action: Callback<Action>,
}

fn error_of(errors: &Errors, field: Field) -> Option<String> {
    errors
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, m)| m.clone())
}

fn preset_text(preset: Preset) -> &'static str {
    match preset {
        Preset::Fixed => {
            "11,000 files of 200 KB: 1,000 ReadOnly; 10,000 ReadWrite, half written with \
             probability 0.2, half with 0.8."
        }
        Preset::Variable => {
            "Sizes 100 KB to 1,000 KB; per size 100 ReadOnly and 1,000 ReadWrite files \
             (half at 0.2, half at 0.8)."
        }
    }
}

/// The line under the menu for workload `i`: what ran and its size once loaded, else that it
/// is loading or why it failed. `data-state` (loading, ready, failed) is for the tests.
fn workload_summary(i: usize) -> Html {
    let (state, class, text) = match shipped::status(i) {
        Status::Ready(w) => ("ready", "hint", w.describe()),
        Status::Absent | Status::Loading => {
            ("loading", "hint loading", shipped::loading_text(&[i]))
        }
        Status::Failed(e) => ("failed", "error", e),
    };
    let role = (state == "failed").then_some("alert");
    html! {
        <p class={classes!("msg", class)} id="workload-summary" data-state={state} {role}
            aria-busy={(state == "loading").to_string()}>{ text }</p>
    }
}

/// Position of a rate on the logarithmic slider: log10(Mbps), 0 (1 Mbps) to 3 (1000 Mbps).
fn slider_position(text: &str) -> f64 {
    parse_bandwidth(text).map_or(1.0, |bps| (bps / 1e6).log10().clamp(0.0, 3.0))
}

/// A slider position as a rate a person would type: 2 significant digits.
fn slider_value(position: f64) -> String {
    let mbps = 10f64.powf(position);
    let digits = 10f64.powf(mbps.log10().floor() - 1.0);
    format::trim_number(((mbps / digits).round() * digits).clamp(1.0, 1000.0))
}

/// The configuration form: data set, link and model, policies, and the Run button.
#[function_component(ConfigPanel)]
pub fn config_panel(props: &ConfigPanelProps) -> Html {
    let draft = &props.draft;
    let errors = &props.errors;
    let act = props.on_action.clone();
    let edit = |field: Field| {
        let act = act.clone();
        Callback::from(move |value: String| act.emit(Action::Edit(field, value)))
    };
    let on_source = {
        let act = act.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            if let Some(source) = SourceKind::from_name(&select.value()) {
                act.emit(Action::SetSource(source));
            }
        })
    };
    let on_slider = {
        let act = act.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let position = input.value().parse::<f64>().unwrap_or(1.0);
            act.emit(Action::Edit(Field::Bandwidth, slider_value(position)));
        })
    };
    let on_estimator = {
        let act = act.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            act.emit(Action::SetEstimator(select.value()));
        })
    };
    let on_file = {
        let act = act.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let Some(file) = input.files().and_then(|list| list.get(0)) else {
                return;
            };
            let file = gloo_file::File::from(file);
            let act = act.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let name = file.name();
                match gloo_file::futures::read_as_text(&file).await {
                    Ok(text) => act.emit(Action::Imported { name, text }),
                    Err(e) => act.emit(Action::Imported {
                        name,
                        text: format!("unreadable: {e}"),
                    }),
                }
            });
            // Choosing the same file again must fire `change` again.
            input.set_value("");
        })
    };
    let on_run = {
        let act = act.clone();
        Callback::from(move |_| act.emit(Action::Run))
    };
    let sources = [
        (SourceKind::Preset(Preset::Fixed), "Fixed-size (paper)"),
        (
            SourceKind::Preset(Preset::Variable),
            "Variable-size (paper)",
        ),
        (SourceKind::Custom, "Custom groups"),
        (SourceKind::Trace, "Imported trace"),
    ];
    let option = |kind: SourceKind, label: String| {
        html! { <option value={kind.name()} selected={draft.source == kind}>{ label }</option> }
    };
    let is_trace = matches!(draft.source, SourceKind::Trace | SourceKind::Workload(_));
    let is_workload = matches!(draft.source, SourceKind::Workload(_));
    let loading = matches!(draft.source, SourceKind::Workload(i)
        if matches!(shipped::status(i), Status::Absent | Status::Loading));
    let dataset_error = error_of(errors, Field::Dataset);
    let policy_error = error_of(errors, Field::Policies);
    let problems = errors.len();

    html! {
        <form class="config" onsubmit={Callback::from(|e: SubmitEvent| e.prevent_default())}>
            <section class="panel-section">
                <h2>{ "Data set" }</h2>
                <div class="field">
                    <label for="dataset">{ "Files to migrate" }</label>
                    <select id="dataset" onchange={on_source}>
                        { for sources.iter().map(|&(kind, label)| option(kind, label.into())) }
                        <optgroup label="Real applications (recorded traces)">
                            { for (0..NAMES.len()).map(|i| option(SourceKind::Workload(i),
                                format!("{}: {}", NAMES[i], shipped::load_text(i)))) }
                        </optgroup>
                    </select>
                    if let SourceKind::Preset(preset) = draft.source {
                        <p class="msg hint">{ preset_text(preset) }</p>
                    }
                    if let SourceKind::Workload(i) = draft.source {
                        { workload_summary(i) }
                    }
                </div>
                if !is_trace {
                    <TextField id="scale" label="Scale" value={draft.scale.clone()}
                        error={error_of(errors, Field::Scale)} unit="× files"
                        hint="1 = the paper's size; 0.1 keeps a tenth of each group"
                        on_input={edit(Field::Scale)} />
                }
                if draft.source == SourceKind::Custom {
                    <GroupsEditor groups={draft.groups.clone()} errors={errors.clone()}
                        on_action={act.clone()} />
                }
                if draft.source == SourceKind::Trace {
                    if let Some(trace) = &draft.trace {
                        <p class="msg hint" id="trace-summary">
                            { format!("{}: {} files, {} writes over {}",
                                trace.file_name,
                                trace.trace.files.len(),
                                trace.trace.write_count(),
                                format::seconds(trace.trace.duration_s)) }
                        </p>
                    }
                }
                if is_trace {
                    <TextField id="after" label="After the trace" value={draft.after.clone()}
                        error={error_of(errors, Field::After)}
                        hint="quiet (nothing more), loop (its writes repeat), or a time to loop to; 20000s as in docs/real-apps.md"
                        on_input={edit(Field::After)} />
                }
                if matches!(draft.source, SourceKind::Custom | SourceKind::Trace) {
                    <div class="field">
                        <label for="import-file">{ "Import a file" }</label>
                        <input id="import-file" type="file" accept=".json,.jsonl,.txt" onchange={on_file} />
                        <p class="msg hint">{ "A trace from `migrate-native trace` (JSON Lines) or a groups file (JSON)." }</p>
                    </div>
                }
                if let Some(e) = &props.import_error {
                    <p class="msg error" id="import-error" role="alert">{ e }</p>
                }
                // A workload's loading or failure is its summary's (above), not repeated here.
                if let (Some(e), false) = (dataset_error, is_workload) {
                    <p class="msg error" id="dataset-error" role="alert">{ e }</p>
                }
            </section>

            <section class="panel-section">
                <h2>{ "Link and model" }</h2>
                <div class={classes!("field", error_of(errors, Field::Bandwidth).is_some().then_some("invalid"))}>
                    <label for="bandwidth">{ "Bandwidth" }</label>
                    <div class="input-row">
                        <input id="bandwidth-slider" type="range" min="0" max="3" step="0.01"
                            aria-label="Bandwidth, logarithmic slider"
                            value={slider_position(&draft.bandwidth).to_string()} oninput={on_slider} />
                        <input id="bandwidth" class="short" type="text" spellcheck="false"
                            value={draft.bandwidth.clone()}
                            aria-invalid={error_of(errors, Field::Bandwidth).is_some().to_string()}
                            oninput={
                                let on = edit(Field::Bandwidth);
                                Callback::from(move |e: InputEvent| {
                                    let input: HtmlInputElement = e.target_unchecked_into();
                                    on.emit(input.value());
                                })
                            } />
                        <span class="unit">{ "Mbps" }</span>
                    </div>
                    if let Some(e) = error_of(errors, Field::Bandwidth) {
                        <p class="msg error" id="bandwidth-msg" role="alert">{ e }</p>
                    } else {
                        <p class="msg hint">{ "1 to 1000 Mbps (slider is logarithmic)" }</p>
                    }
                </div>
                <div class="field-grid">
                    <TextField id="period" label="Monitoring period T" value={draft.period.clone()}
                        error={error_of(errors, Field::Period)} unit="s" on_input={edit(Field::Period)} />
                    <TextField id="beta" label="β (end test)" value={draft.beta.clone()}
                        error={error_of(errors, Field::Beta)} hint="even, ≥ 2"
                        on_input={edit(Field::Beta)} />
                    <TextField id="intensity" label="Write intensity" value={draft.intensity.clone()}
                        error={error_of(errors, Field::Intensity)} unit="/s" hint="writes/s at p = 1"
                        on_input={edit(Field::Intensity)} />
                    <TextField id="overhead" label="Per-file overhead" value={draft.overhead_ms.clone()}
                        error={error_of(errors, Field::Overhead)} unit="ms"
                        on_input={edit(Field::Overhead)} />
                    <div class="field span-2">
                        <label for="estimator">{ "p̂ estimator" }</label>
                        <select id="estimator" onchange={on_estimator}>
                            <option value="share" selected={draft.estimator == "share"}>{ "share of last period (paper)" }</option>
                            <option value="ewma" selected={draft.estimator == "ewma"}>{ "EWMA of shares" }</option>
                            <option value="cumulative" selected={draft.estimator == "cumulative"}>{ "cumulative share" }</option>
                        </select>
                    </div>
                    if draft.estimator == "ewma" {
                        <TextField id="alpha" label="EWMA α" value={draft.alpha.clone()}
                            error={error_of(errors, Field::Alpha)} on_input={edit(Field::Alpha)} />
                    }
                    <TextField id="seed" label="Seed" value={draft.seed.clone()}
                        error={error_of(errors, Field::Seed)} on_input={edit(Field::Seed)} />
                    <div class="field span-2">
                        <label class="check">
                            <input id="delta" type="checkbox" checked={draft.delta}
                                onchange={
                                    let act = act.clone();
                                    Callback::from(move |e: Event| {
                                        let input: HtmlInputElement = e.target_unchecked_into();
                                        act.emit(Action::SetDelta(input.checked()));
                                    })
                                } />
                            { " Delta resends" }
                        </label>
                        <p class="msg hint">{ "A resend costs the 8 KiB blocks written since the file's last send, not its size (off: the paper)." }</p>
                    </div>
                    <TextField id="write-bytes" label="Write size" value={draft.write_bytes.clone()}
                        error={error_of(errors, Field::WriteBytes)}
                        hint="bytes a write dirties: whole, 8KiB, 1KB..64KB or exp:16KiB"
                        on_input={edit(Field::WriteBytes)} />
                    <TextField id="compress-ratio" label="Compression ratio" value={draft.compress_ratio.clone()}
                        error={error_of(errors, Field::CompressRatio)}
                        hint="R to 1: a transfer puts 1/R of its bytes on the wire (1: none, the paper)"
                        on_input={edit(Field::CompressRatio)} />
                </div>
            </section>

            <section class="panel-section">
                <h2>{ "Policies to compare" }</h2>
                <ul class="policies">
                    { for PolicyKind::ALL.iter().map(|&kind| {
                        let style = policy_style(kind);
                        let act = act.clone();
                        let checked = draft.policies.contains(&kind);
                        let id = format!("policy-{}", kind.name());
                        html! {
                            <li>
                                <input type="checkbox" id={id.clone()} {checked}
                                    onchange={Callback::from(move |_| act.emit(Action::TogglePolicy(kind)))} />
                                <label for={id} title={kind.describe()}>
                                    <svg class="swatch" width="28" height="12" aria-hidden="true">
                                        <line x1="1" y1="6" x2="27" y2="6" stroke={style.color}
                                            stroke-width="2.5" stroke-dasharray={style.dash} />
                                        { marker(style.marker, 14.0, 6.0, style.color) }
                                    </svg>
                                    <span class="policy-name">{ policy_label(kind) }</span>
                                    <span class="policy-desc">{ kind.describe() }</span>
                                </label>
                            </li>
                        }
                    }) }
                </ul>
                if let Some(e) = policy_error {
                    <p class="msg error" id="policies-msg" role="alert">{ e }</p>
                }
            </section>

            <div class="run-bar">
                <button id="run" type="button" class="primary" disabled={problems > 0} onclick={on_run}>
                    { "Run" }
                </button>
                if problems > 0 {
                    <span class="msg error" id="run-blocked">
                        { match problems {
                            1 if loading => "Waiting for the trace".to_string(),
                            1 => "Fix 1 field to run".to_string(),
                            _ => format!("Fix {problems} fields to run"),
                        } }
                    </span>
                }
            </div>
        </form>
    }
}
