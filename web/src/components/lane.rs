use precopy_core::dataset::Kind;
use precopy_core::{Phase, PolicyKind};
use yew::prelude::*;

use super::{marker, FileMapCanvas, MapHandle};
use crate::format;
use crate::map::STATES;
use crate::palette::{policy_label, policy_style, CellState};
use crate::playback::{Lane, NextUp};

/// What a lane panel shows, taken from a [`Lane`] each frame.
#[derive(Clone, PartialEq)]
pub struct LaneView {
    /// The policy.
    pub kind: PolicyKind,
    /// The round being played: (index, phase, start, end).
    pub round: Option<(u32, Phase, f64, f64)>,
    /// U as shown now.
    pub unsent: u64,
    /// Bytes of the data set.
    pub total: u64,
    /// Files per state.
    pub counts: [u32; STATES],
    /// Files appear or vanish in this run (the legend then has their states).
    pub has_lives: bool,
    /// The next files of the round.
    pub next: Vec<NextUp>,
    /// Transfers left in the round.
    pub remaining: usize,
    /// Why pre-copy ended, once it has.
    pub ended: Option<String>,
    /// When the application was stopped.
    pub stopped_at: Option<f64>,
    /// Everything played.
    pub finished: bool,
    /// Monitoring period, seconds.
    pub period_s: f64,
    /// The map.
    pub map: MapHandle,
    /// Files per map cell.
    pub files_per_cell: u32,
    /// Resends are deltas.
    pub delta: bool,
}

impl LaneView {
    /// The view of a lane now.
    pub fn of(lane: &Lane, total: u64, period_s: f64) -> LaneView {
        let map = lane.map();
        let (unsent, counts, files_per_cell, has_lives) = {
            let m = map.borrow();
            (
                m.unsent_bytes(),
                m.counts(),
                m.files_per_cell(),
                m.has_lives(),
            )
        };
        LaneView {
            kind: lane.kind(),
            round: lane.round(),
            unsent,
            total,
            counts,
            has_lives,
            next: lane.next_up(5),
            remaining: lane.remaining_in_round(),
            ended: lane.ended().map(|e| e.to_string()),
            stopped_at: lane.stopped_at(),
            finished: lane.is_finished(),
            period_s,
            map: MapHandle(map),
            files_per_cell,
            delta: lane.delta(),
        }
    }
}

/// A transfer's size cell: the size, and for a delta resend a bar filled to the share of the
/// file that goes, with the bytes in its tooltip.
fn size_cell(n: &NextUp) -> Html {
    if !(n.resend && n.bytes < n.size) {
        return html! { <td class="num">{ format::bytes(n.size) }</td> };
    }
    let share = 100.0 * n.bytes as f64 / n.size.max(1) as f64;
    let title = format!(
        "delta resend: {} of {} ({share:.1}%), the blocks written since its last send",
        format::bytes(n.bytes),
        format::bytes(n.size)
    );
    html! {
        <td class="num delta" {title} data-bytes={n.bytes.to_string()}>
            { format::bytes(n.size) }
            <span class="delta-bar" aria-hidden="true">
                <span style={format!("width:{share:.1}%")}></span>
            </span>
        </td>
    }
}

/// Props of [`LanePanel`].
#[derive(Properties, PartialEq)]
pub struct LanePanelProps {
    /// What to show.
    pub view: LaneView,
    /// Bumped every frame (the canvas redraws what changed).
    pub frame: u64,
}

/// A probability with 3 significant digits, e.g. `0.000412`.
fn significant(p: f64) -> String {
    if p <= 0.0 || !p.is_finite() {
        return "0".into();
    }
    let decimals = (2.0 - p.log10().floor()).max(0.0) as usize;
    format!("{p:.decimals$}")
}

/// Why a file is where it is in the order, in words.
fn why(kind: PolicyKind, phase: Phase, next: &NextUp) -> String {
    if phase == Phase::Final {
        return "not clean at D: goes in the final copy".into();
    }
    if next.kind == Kind::ReadOnly && matches!(phase, Phase::ReadOnly) {
        return "ReadOnly: never updated, so sent first".into();
    }
    match kind {
        PolicyKind::Random => return "random order".into(),
        PolicyKind::Clairvoyant if next.key.is_finite() => {
            return format!(
                "last write at {}; none after it before the stop",
                format::seconds(next.key)
            );
        }
        PolicyKind::Clairvoyant => return "no write before the stop".into(),
        _ => {}
    }
    if !next.key.is_finite() {
        return match (kind, next.resend) {
            (_, true) => "dirty since it was sent: resent in path order".into(),
            _ => "path order".into(),
        };
    }
    let size = next.size as f64;
    match kind {
        PolicyKind::Proposed | PolicyKind::Sweep | PolicyKind::Converge if next.key == 0.0 => {
            "E = p̂ × size = 0: no write seen last period".into()
        }
        PolicyKind::Proposed | PolicyKind::Sweep | PolicyKind::Converge => format!(
            "E = p̂ × size = {} × {} = {}",
            significant(next.key / size),
            format::bytes(next.size),
            format::bytes(next.key.round() as u64)
        ),
        PolicyKind::ProbabilityOnly => format!("p̂ = {}", significant(next.key)),
        PolicyKind::SizeOnly => format!("size {}", format::bytes(next.size)),
        _ => format!("key {:.4}", next.key),
    }
}

/// One policy: its state line, file map, and what goes next.
#[function_component(LanePanel)]
pub fn lane_panel(props: &LanePanelProps) -> Html {
    let v = &props.view;
    let style = policy_style(v.kind);
    let phase_text = match (v.finished, v.round) {
        (true, _) => "done".to_string(),
        (false, Some((_, phase, _, _))) => phase.label().to_string(),
        (false, None) => "waiting".to_string(),
    };
    let round_text = match v.round {
        Some((_, Phase::Final, start, end)) => format!(
            "application stopped at {}; final copy until {}",
            format::seconds(start),
            format::seconds(end)
        ),
        Some((i, Phase::Iteration, start, end)) => format!(
            "iteration {} · {} → {}",
            i + 1,
            format::seconds(start),
            format::seconds(end)
        ),
        Some((i, _, start, end)) => format!(
            "period {} (T = {}) · {} → {}",
            i + 1,
            format::trim_number(v.period_s),
            format::seconds(start),
            format::seconds(end)
        ),
        None => String::new(),
    };
    let share = if v.total > 0 {
        100.0 * v.unsent as f64 / v.total as f64
    } else {
        0.0
    };
    let phase = v.round.map_or(Phase::Final, |r| r.1);
    html! {
        <article class="lane" data-policy={v.kind.name()} data-finished={v.finished.to_string()}>
            <header class="lane-head" style={format!("border-top-color:{}", style.color)}>
                <h3>
                    <svg class="swatch" width="28" height="12" aria-hidden="true">
                        <line x1="1" y1="6" x2="27" y2="6" stroke={style.color} stroke-width="2.5"
                            stroke-dasharray={style.dash} />
                        { marker(style.marker, 14.0, 6.0, style.color) }
                    </svg>
                    { policy_label(v.kind) }
                </h3>
                <span class="phase-badge" data-phase={phase_text.clone()}>{ phase_text }</span>
            </header>
            <p class="lane-desc">{ v.kind.describe() }</p>
            <dl class="lane-stats">
                <div><dt>{ "U (not yet clean at D)" }</dt>
                    <dd class="u" data-unsent-bytes={v.unsent.to_string()}>
                        { format!("{} · {share:.1}%", format::bytes(v.unsent)) }</dd></div>
                <div><dt>{ "round" }</dt><dd>{ if round_text.is_empty() { "—".to_string() } else { round_text } }</dd></div>
            </dl>
            if let Some(reason) = &v.ended {
                <p class="end-reason" data-end-reason={reason.clone()}>
                    <strong>{ "Pre-copy ended: " }</strong>{ reason }
                    if let Some(at) = v.stopped_at { { format!(" (at {})", format::seconds(at)) } }
                </p>
            }
            <FileMapCanvas map={v.map.clone()} frame={props.frame}
                label={format!("file map of {}", v.kind.name())} />
            <ul class="legend states" aria-label="file states">
                { for CellState::ALL.iter()
                    .filter(|s| v.has_lives || !matches!(s, CellState::Absent | CellState::Gone))
                    .map(|s| html! {
                    <li data-state={s.label()}>
                        <span class={classes!("chip", format!("chip-{}", *s as u8))} style={format!("background-color:{}", s.color())}></span>
                        { s.label() }{ " " }<span class="n">{ format::count(u64::from(v.counts[*s as usize])) }</span>
                    </li>
                }) }
            </ul>
            if !v.finished && !v.next.is_empty() {
                <div class="next-up">
                    <h4>{ format!("Next in this round ({} left)", format::count(v.remaining as u64)) }</h4>
                    <table>
                        <thead><tr><th>{ "file" }</th><th>{ "size" }</th><th>{ "why here" }</th></tr></thead>
                        <tbody>
                            { for v.next.iter().map(|n| html! {
                                <tr class={classes!(n.resend.then_some("resend"))}>
                                    <td class="path" title={n.path.clone()}>
                                        <span class={classes!("kind", if n.kind == Kind::ReadOnly { "ro" } else { "rw" })}>
                                            { if n.kind == Kind::ReadOnly { "RO" } else { "RW" } }
                                        </span>
                                        { n.path.clone() }
                                        if n.resend { <span class="tag">{ "resend" }</span> }
                                    </td>
                                    { size_cell(n) }
                                    <td>{ why(v.kind, phase, n) }</td>
                                </tr>
                            }) }
                        </tbody>
                    </table>
                    if v.delta {
                        <p class="legend delta-legend">
                            <span class="delta-bar" aria-hidden="true"><span style="width:30%"></span></span>
                            { " share of a resend's file that goes: only the blocks written since its last send" }
                        </p>
                    }
                </div>
            }
        </article>
    }
}
