//! The app's state, the actions that change it, and the reducer (one `use_reducer` at the top).
//!
//! The simulations are not `Clone` (they hold their policy as a trait object), so a running
//! comparison lives behind `Rc<RefCell<…>>` and a `frame` counter tells components it moved.

use std::cell::RefCell;
use std::rc::Rc;

use precopy_core::dataset::Kind;
use precopy_core::PolicyKind;
use yew::Reducible;

use crate::catalogue::{self as shipped, Status};
use crate::config::{Config, Draft, Errors, Field, GroupField, GroupRow, SourceKind};
use crate::evaluation::{EvaluationRun, EvaluationSettings};
use crate::paper::{PaperRun, PaperSettings};
use crate::playback::Comparison;

/// Simulated seconds per wall-clock second the speed menu offers.
pub const SPEEDS: [f64; 6] = [10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0];
/// The speed a run starts with.
pub const DEFAULT_SPEED: f64 = 100.0;
/// Main-thread time one tick of "run to end" or one slice of the paper view may take. (30 ms
/// slices made the paper view no faster and delayed a 50 ms timer by 48 ms instead of 2.)
pub const WORK_BUDGET_MS: f64 = 12.0;
/// A tick never moves the clock by more than this much wall time (e.g. after a hidden tab).
const MAX_TICK_MS: f64 = 100.0;

/// The page's two views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Configure and watch one comparison.
    Simulator,
    /// The paper's figures.
    Paper,
}

/// Everything the page shows.
#[derive(Clone)]
pub struct State {
    /// The form as typed.
    pub draft: Draft,
    /// The form, validated.
    pub checked: Result<Rc<Config>, Rc<Errors>>,
    /// Why the last import failed (names the line).
    pub import_error: Option<String>,
    /// The comparison being watched.
    pub session: Option<Rc<RefCell<Comparison>>>,
    /// The configuration it was started with.
    pub session_config: Option<Rc<Config>>,
    /// Why the last run could not start.
    pub session_error: Option<String>,
    /// Bumped whenever the comparison moves.
    pub frame: u64,
    /// The clock runs.
    pub playing: bool,
    /// "Run to end": as fast as the work budget allows.
    pub fast_forward: bool,
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
    last_tick_ms: Option<f64>,
    /// The view shown.
    pub tab: Tab,
    /// The URL query of the running comparison (the shareable link).
    pub link: Option<String>,
    /// Paper view: seeds per point, as typed.
    pub paper_seeds: String,
    /// Paper view: data-set scale, as typed.
    pub paper_scale: String,
    /// Paper view: the sweep (running or done).
    pub paper: Option<Rc<RefCell<PaperRun>>>,
    /// Paper view: slices keep coming, or workers are at work.
    pub paper_running: bool,
    /// Paper view: web workers computing the sweep (0: slices on the page's thread).
    pub paper_workers: usize,
    /// Paper view: at most this many workers (URL `workers=N`; 0 computes on the page).
    worker_limit: Option<usize>,
    /// Paper view: when the sweep started, and how long it took once done (ms).
    pub paper_timing: (f64, Option<f64>),
    /// Bumped whenever the paper sweep moves.
    pub paper_frame: u64,
    /// Catalogue: the workloads (indices), policies and bandwidths chosen.
    pub eval_workloads: Vec<usize>,
    /// Catalogue: the policies chosen, in `PolicyKind::ALL` order.
    pub eval_policies: Vec<PolicyKind>,
    /// Catalogue: the bandwidths as typed (Mbit/s).
    pub eval_bandwidths: String,
    /// Catalogue: the settings of a run waiting for its traces to load.
    pub eval_pending: Option<EvaluationSettings>,
    /// Catalogue: the evaluation (running or done).
    pub eval: Option<Rc<RefCell<EvaluationRun>>>,
    /// Catalogue: slices keep coming.
    pub eval_running: bool,
    /// Catalogue: why the evaluation stopped, if it failed.
    pub eval_failure: Option<String>,
    /// Bumped whenever the evaluation moves.
    pub eval_frame: u64,
}

impl State {
    /// The initial state from the page's URL query.
    pub fn from_query(query: &str) -> State {
        let draft = Draft::from_query(query);
        State {
            checked: check(&draft),
            draft,
            import_error: None,
            session: None,
            session_config: None,
            session_error: None,
            frame: 0,
            playing: false,
            fast_forward: false,
            speed: DEFAULT_SPEED,
            last_tick_ms: None,
            tab: if query.contains("view=paper") {
                Tab::Paper
            } else {
                Tab::Simulator
            },
            link: None,
            paper_seeds: "5".into(),
            paper_scale: "1".into(),
            paper: None,
            paper_running: false,
            paper_workers: 0,
            worker_limit: query
                .trim_start_matches('?')
                .split('&')
                .find_map(|kv| kv.strip_prefix("workers="))
                .and_then(|n| n.parse().ok()),
            paper_timing: (0.0, None),
            paper_frame: 0,
            eval_workloads: EvaluationSettings::docs().workloads,
            eval_policies: EvaluationSettings::docs().policies,
            eval_bandwidths: (precopy_core::catalogue::BANDWIDTHS_MBPS
                .map(crate::format::trim_number))
            .join(","),
            eval_pending: None,
            eval: None,
            eval_running: false,
            eval_failure: None,
            eval_frame: 0,
        }
    }

    /// The catalogue's settings, or what is wrong with them.
    pub fn eval_settings(&self) -> Result<EvaluationSettings, String> {
        EvaluationSettings::new(
            &self.eval_workloads,
            &self.eval_bandwidths,
            &self.eval_policies,
        )
    }

    /// The shipped workloads the page needs and has not asked for: the data set picked and those
    /// of a catalogue run waiting to start. The page fetches them (app.rs).
    pub fn workloads_to_fetch(&self) -> Vec<usize> {
        let source = match self.draft.source {
            SourceKind::Workload(i) => Some(i),
            _ => None,
        };
        let pending = self
            .eval_pending
            .iter()
            .flat_map(|p| p.workloads.iter().copied());
        let mut wanted: Vec<usize> = (source.into_iter().chain(pending))
            .filter(|&i| matches!(shipped::status(i), Status::Absent))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
    }

    /// The message for one field, if it is wrong.
    pub fn error(&self, field: Field) -> Option<String> {
        match &self.checked {
            Ok(_) => None,
            Err(errors) => errors
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, m)| m.clone()),
        }
    }

    /// The paper view's settings, or what is wrong with them.
    pub fn paper_settings(&self) -> Result<PaperSettings, String> {
        let seeds = self
            .paper_seeds
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|s| (1..=20).contains(s))
            .ok_or("seeds: a whole number from 1 to 20")?;
        let scale = self
            .paper_scale
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0 && *s <= 2.0)
            .ok_or("scale: a number above 0 and at most 2")?;
        let base = match &self.checked {
            Ok(config) => config.sim,
            Err(_) => return Err("fix the simulator's settings first (they set the model)".into()),
        };
        Ok(PaperSettings { seeds, scale, base })
    }
}

fn check(draft: &Draft) -> Result<Rc<Config>, Rc<Errors>> {
    draft.validate().map(Rc::new).map_err(Rc::new)
}

/// The page's clock, in milliseconds.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// Marks a point on the performance timeline (for the frame-time benchmark).
pub fn mark(name: &str) {
    if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
        // A timeline that refuses a mark only loses a measurement.
        let _ = p.mark(name);
    }
}

/// Measures from `start_mark` to now as `name`, and clears the mark so that the next measure
/// needs a new one.
pub fn measure(name: &str, start_mark: &str) {
    if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
        if p.measure_with_start_mark(name, start_mark).is_ok() {
            p.clear_marks_with_mark_name(start_mark);
        }
    }
}

/// What can happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A text field changed.
    Edit(Field, String),
    /// The data-set source changed.
    SetSource(SourceKind),
    /// The p̂ estimator changed.
    SetEstimator(String),
    /// A policy was ticked or unticked.
    TogglePolicy(PolicyKind),
    /// Delta resends were switched on or off.
    SetDelta(bool),
    /// A group's kind changed.
    SetGroupKind(usize, Kind),
    /// A row was added to the groups table.
    AddGroup,
    /// A row was removed from the groups table.
    RemoveGroup(usize),
    /// A file was read: a trace or a groups file.
    Imported {
        /// The file's name.
        name: String,
        /// Its text.
        text: String,
    },
    /// Build the comparison from the form and play it.
    Run,
    /// Resume the clock.
    Play,
    /// Stop the clock.
    Pause,
    /// Move to the next round end of any policy.
    Step,
    /// Play to the end as fast as possible.
    Finish,
    /// Back to time 0 with the same configuration.
    Reset,
    /// One animation tick.
    Tick,
    /// A new speed.
    SetSpeed(f64),
    /// Switch views.
    ShowTab(Tab),
    /// Paper view: seeds field changed.
    PaperSeeds(String),
    /// Paper view: scale field changed.
    PaperScale(String),
    /// Paper view: start (or restart) the sweep.
    PaperStart,
    /// Paper view: stop the sweep.
    PaperStop,
    /// Paper view: one slice of work.
    PaperWork,
    /// Paper view: a worker's reply (one run's result, or an error).
    PaperReply(String),
    /// Paper view: the workers could not start; compute on the page instead.
    PaperWorkersFailed,
    /// Catalogue: a workload was ticked or unticked.
    EvalToggleWorkload(usize),
    /// Catalogue: a policy was ticked or unticked.
    EvalTogglePolicy(PolicyKind),
    /// Catalogue: the bandwidths changed.
    EvalBandwidths(String),
    /// Catalogue: start (or restart) the evaluation.
    EvalStart,
    /// Catalogue: stop it.
    EvalStop,
    /// Catalogue: one slice of work.
    EvalWork,
    /// A shipped workload's trace loaded or failed to (`catalogue::status` says which).
    WorkloadLoaded,
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            Action::Edit(field, value) => {
                edit(&mut s.draft, field, value);
                s.checked = check(&s.draft);
            }
            Action::SetSource(source) => {
                if let SourceKind::Workload(i) = source {
                    shipped::retry(i);
                }
                s.draft.source = source;
                s.checked = check(&s.draft);
            }
            Action::SetEstimator(name) => {
                s.draft.estimator = name;
                s.checked = check(&s.draft);
            }
            Action::SetDelta(on) => {
                s.draft.delta = on;
                s.checked = check(&s.draft);
            }
            Action::TogglePolicy(kind) => {
                toggle_policy(&mut s.draft.policies, kind);
                s.checked = check(&s.draft);
            }
            Action::SetGroupKind(row, kind) => {
                if let Some(g) = s.draft.groups.get_mut(row) {
                    g.kind = kind;
                    if kind == Kind::ReadOnly {
                        g.probability = "0".into();
                    }
                }
                s.checked = check(&s.draft);
            }
            Action::AddGroup => {
                s.draft.groups.push(GroupRow {
                    name: format!("g{}", s.draft.groups.len() + 1),
                    count: "100".into(),
                    size: "200KB".into(),
                    kind: Kind::ReadWrite,
                    probability: "0.5".into(),
                });
                s.checked = check(&s.draft);
            }
            Action::RemoveGroup(row) => {
                if row < s.draft.groups.len() {
                    s.draft.groups.remove(row);
                }
                s.checked = check(&s.draft);
            }
            Action::Imported { name, text } => {
                s.import_error = s.draft.import(&name, &text).err();
                s.checked = check(&s.draft);
            }
            Action::Run => match s.checked.clone() {
                Ok(config) => start(&mut s, config, true),
                Err(_) => s.session_error = Some("fix the highlighted fields first".into()),
            },
            Action::Reset => {
                if let Some(config) = s.session_config.clone() {
                    start(&mut s, config, false);
                }
            }
            Action::Play => {
                s.playing = s.session.is_some();
                s.last_tick_ms = None;
            }
            Action::Pause => {
                s.playing = false;
                s.fast_forward = false;
            }
            Action::Step => {
                s.playing = false;
                s.fast_forward = false;
                if let Some(session) = &s.session {
                    session.borrow_mut().step_round();
                    s.frame += 1;
                }
            }
            Action::Finish => {
                s.playing = s.session.is_some();
                s.fast_forward = true;
            }
            Action::Tick => tick(&mut s),
            Action::SetSpeed(speed) => s.speed = speed,
            Action::ShowTab(tab) => s.tab = tab,
            Action::PaperSeeds(text) => s.paper_seeds = text,
            Action::PaperScale(text) => s.paper_scale = text,
            Action::PaperStart => {
                let workers = available_workers().min(s.worker_limit.unwrap_or(usize::MAX));
                start_paper(&mut s, workers);
            }
            Action::PaperWorkersFailed => start_paper(&mut s, 0),
            Action::PaperReply(text) => {
                if let (true, Some(run)) = (s.paper_running, &s.paper) {
                    match crate::paper::parse_reply(&text) {
                        Some((job, precopy, final_bytes)) => {
                            let mut run = run.borrow_mut();
                            run.record(job, precopy, final_bytes);
                            if run.is_done() {
                                s.paper_running = false;
                                s.paper_timing.1 = Some(now_ms() - s.paper_timing.0);
                            }
                            s.paper_frame += 1;
                        }
                        None => start_paper(&mut s, 0),
                    }
                }
            }
            Action::PaperStop => s.paper_running = false,
            Action::EvalToggleWorkload(i) => {
                toggle(&mut s.eval_workloads, i);
                s.eval_workloads.sort_unstable();
            }
            Action::EvalTogglePolicy(kind) => toggle_policy(&mut s.eval_policies, kind),
            Action::EvalBandwidths(text) => s.eval_bandwidths = text,
            Action::EvalStart => {
                match s.eval_settings() {
                    Ok(settings) => {
                        settings.workloads.iter().for_each(|&i| shipped::retry(i));
                        s.eval_pending = Some(settings);
                        s.eval_running = false;
                        s.eval_failure = None;
                        start_eval_when_loaded(&mut s);
                    }
                    Err(e) => s.eval_failure = Some(e),
                }
                s.eval_frame += 1;
            }
            Action::WorkloadLoaded => {
                s.checked = check(&s.draft);
                start_eval_when_loaded(&mut s);
            }
            Action::EvalStop => {
                s.eval_running = false;
                s.eval_pending = None;
            }
            Action::EvalWork => {
                if let (true, Some(run)) = (s.eval_running, &s.eval) {
                    let mut run = run.borrow_mut();
                    if let Err(e) = run.work(WORK_BUDGET_MS, &now_ms) {
                        s.eval_failure = Some(e);
                        s.eval_running = false;
                    }
                    if run.is_done() {
                        s.eval_running = false;
                    }
                    s.eval_frame += 1;
                }
            }
            Action::PaperWork => {
                if let (true, 0, Some(run)) = (s.paper_running, s.paper_workers, &s.paper) {
                    let mut run = run.borrow_mut();
                    run.work(WORK_BUDGET_MS, &now_ms);
                    if run.is_done() {
                        s.paper_running = false;
                        s.paper_timing.1 = Some(now_ms() - s.paper_timing.0);
                    }
                    s.paper_frame += 1;
                }
            }
        }
        Rc::new(s)
    }
}

/// Starts the catalogue run waiting for its traces once all have loaded; if one failed, says why
/// instead.
fn start_eval_when_loaded(s: &mut State) {
    let Some(settings) = &s.eval_pending else {
        return;
    };
    // The view's list of traces still loading changes too.
    s.eval_frame += 1;
    let mut workloads = Vec::new();
    for &i in &settings.workloads {
        match shipped::status(i) {
            Status::Ready(w) => workloads.push(w),
            Status::Absent | Status::Loading => return,
            Status::Failed(e) => {
                s.eval_failure = Some(e);
                s.eval_pending = None;
                return;
            }
        }
    }
    let settings = s.eval_pending.take().expect("checked above");
    s.eval = Some(Rc::new(RefCell::new(EvaluationRun::new(
        settings, workloads,
    ))));
    s.eval_running = true;
}

/// Adds `item` if missing, removes it if there.
fn toggle<T: PartialEq>(list: &mut Vec<T>, item: T) {
    match list.iter().position(|x| *x == item) {
        Some(at) => {
            list.remove(at);
        }
        None => list.push(item),
    }
}

/// Ticks or unticks a policy, keeping the display order.
fn toggle_policy(chosen: &mut Vec<PolicyKind>, kind: PolicyKind) {
    toggle(chosen, kind);
    let ticked = std::mem::take(chosen);
    *chosen = (PolicyKind::ALL.into_iter())
        .filter(|p| ticked.contains(p))
        .collect();
}

/// Web workers for the paper view: one per core, up to 4; none on a single core (the page's
/// own thread then computes in slices).
fn available_workers() -> usize {
    let cores = web_sys::window().map_or(1.0, |w| w.navigator().hardware_concurrency());
    if cores >= 2.0 {
        (cores as usize).min(4)
    } else {
        0
    }
}

/// Starts the paper sweep from scratch with `workers` web workers (0: slices).
fn start_paper(s: &mut State, workers: usize) {
    if let Ok(settings) = s.paper_settings() {
        if let Ok(run) = PaperRun::new(settings) {
            s.paper = Some(Rc::new(RefCell::new(run)));
            s.paper_running = true;
            s.paper_workers = workers;
            s.paper_timing = (now_ms(), None);
            s.paper_frame += 1;
        }
    }
}

fn edit(draft: &mut Draft, field: Field, value: String) {
    let target = match field {
        Field::Scale => &mut draft.scale,
        Field::Bandwidth => &mut draft.bandwidth,
        Field::Beta => &mut draft.beta,
        Field::Period => &mut draft.period,
        Field::Intensity => &mut draft.intensity,
        Field::Alpha => &mut draft.alpha,
        Field::Seed => &mut draft.seed,
        Field::Overhead => &mut draft.overhead_ms,
        Field::WriteBytes => &mut draft.write_bytes,
        Field::CompressRatio => &mut draft.compress_ratio,
        Field::After => &mut draft.after,
        Field::Group(row, column) => {
            let Some(g) = draft.groups.get_mut(row) else {
                return;
            };
            match column {
                GroupField::Name => &mut g.name,
                GroupField::Count => &mut g.count,
                GroupField::Size => &mut g.size,
                GroupField::Probability => &mut g.probability,
            }
        }
        Field::Policies | Field::Dataset => return,
    };
    *target = value;
}

fn start(s: &mut State, config: Rc<Config>, play: bool) {
    match Comparison::new(&config) {
        Ok(comparison) => {
            s.session = Some(Rc::new(RefCell::new(comparison)));
            s.session_error = None;
            s.link = Some(s.draft.to_query());
            s.session_config = Some(config);
            s.playing = play;
            s.fast_forward = false;
            s.last_tick_ms = None;
            s.frame += 1;
        }
        Err(e) => s.session_error = Some(e),
    }
}

fn tick(s: &mut State) {
    let (true, Some(session)) = (s.playing, &s.session) else {
        return;
    };
    mark("tick");
    let now = now_ms();
    let elapsed = s
        .last_tick_ms
        .map_or(16.0, |last| (now - last).min(MAX_TICK_MS));
    s.last_tick_ms = Some(now);
    let mut comparison = session.borrow_mut();
    if s.fast_forward {
        while !comparison.is_done() && now_ms() - now < WORK_BUDGET_MS {
            comparison.step_round();
        }
    } else {
        comparison.advance_by(elapsed / 1000.0 * s.speed);
    }
    if comparison.is_done() {
        s.playing = false;
        s.fast_forward = false;
    }
    s.frame += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn reduce(state: Rc<State>, actions: impl IntoIterator<Item = Action>) -> Rc<State> {
        actions.into_iter().fold(state, Reducible::reduce)
    }

    #[wasm_bindgen_test]
    fn a_bad_value_blocks_run_until_fixed() {
        let state = Rc::new(State::from_query(""));
        let state = reduce(state, [Action::Edit(Field::Beta, "3".into()), Action::Run]);
        assert!(state.error(Field::Beta).is_some());
        assert!(state.session.is_none());
        let state = reduce(state, [Action::Edit(Field::Beta, "4".into()), Action::Run]);
        assert!(state.error(Field::Beta).is_none());
        assert!(state.session.is_some() && state.playing);
        assert!(state.link.as_deref().unwrap().contains("beta=4"));
    }

    #[wasm_bindgen_test]
    fn step_finish_and_reset() {
        let state = Rc::new(State::from_query("scale=0.02&policies=proposed,baseline"));
        let state = reduce(state, [Action::Run, Action::Pause, Action::Step]);
        let clock = state.session.as_ref().unwrap().borrow().clock();
        assert!(clock > 0.0 && !state.playing);
        let mut state = reduce(state, [Action::Finish]);
        while state.playing {
            state = reduce(state, [Action::Tick]);
        }
        assert!(state.session.as_ref().unwrap().borrow().is_done());
        let state = reduce(state, [Action::Reset]);
        let session = state.session.as_ref().unwrap().borrow();
        assert_eq!(session.clock(), 0.0);
        assert_eq!(session.lanes().len(), 2);
    }

    #[wasm_bindgen_test]
    fn policies_keep_display_order() {
        let state = Rc::new(State::from_query(""));
        let state = reduce(
            state,
            [
                Action::TogglePolicy(PolicyKind::Clairvoyant),
                Action::TogglePolicy(PolicyKind::Sweep),
                Action::TogglePolicy(PolicyKind::Baseline),
            ],
        );
        assert_eq!(
            state.draft.policies,
            [
                PolicyKind::Proposed,
                PolicyKind::Sweep,
                PolicyKind::Clairvoyant
            ]
        );
    }
}
