//! Plain SVG charts: deterministic, dependency-free, exportable as they are.

use std::rc::Rc;

use precopy_core::PolicyKind;
use yew::prelude::*;

use crate::format;
use crate::palette::{policy_label, policy_style, Marker};

const W: f64 = 520.0;
const H: f64 = 290.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 52.0;
const BOTTOM: f64 = 42.0;
/// Markers per line: enough to tell lines apart, few enough to stay cheap.
const MARKERS: usize = 8;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The policy (sets colour, dash and marker).
    pub kind: PolicyKind,
    /// (x, y) points in data units.
    pub points: Vec<(f64, f64)>,
}

/// A shaded x range, e.g. the β window of the end test.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartBand {
    /// Start, in x units.
    pub x0: f64,
    /// End, in x units.
    pub x1: f64,
    /// A divider inside the band (the β window's halves), if any.
    pub divider: Option<f64>,
    /// Tint colour.
    pub color: &'static str,
    /// Text drawn at the band's top.
    pub label: String,
}

/// Props of [`LineChart`].
#[derive(Properties, PartialEq)]
pub struct LineChartProps {
    /// Id of the `<svg>` (for the SVG export).
    pub id: AttrValue,
    /// Title drawn in the chart.
    pub title: AttrValue,
    /// X-axis label with its unit.
    pub x_label: AttrValue,
    /// Y-axis quantity; the byte unit is added.
    pub y_label: AttrValue,
    /// The lines.
    pub series: Rc<Vec<Series>>,
    /// Shaded ranges.
    #[prop_or_default]
    pub bands: Rc<Vec<ChartBand>>,
    /// Right end of the x axis (defaults to the largest x).
    #[prop_or_default]
    pub x_max: Option<f64>,
}

/// The SVG shape of a marker at (x, y).
pub fn marker(shape: Marker, x: f64, y: f64, color: &'static str) -> Html {
    let r = 3.6;
    match shape {
        Marker::Circle => {
            html! { <circle cx={x.to_string()} cy={y.to_string()} r={r.to_string()} fill={color} /> }
        }
        Marker::Ring => html! {
            <circle cx={x.to_string()} cy={y.to_string()} r={r.to_string()} fill="white" stroke={color} stroke-width="1.6" />
        },
        Marker::Square => html! {
            <rect x={(x - r).to_string()} y={(y - r).to_string()} width={(2.0 * r).to_string()}
                height={(2.0 * r).to_string()} fill={color} />
        },
        Marker::Triangle => html! {
            <polygon points={format!("{},{} {},{} {},{}", x, y - r - 0.8, x - r - 0.4, y + r, x + r + 0.4, y + r)} fill={color} />
        },
        Marker::Diamond => html! {
            <polygon points={format!("{},{} {},{} {},{} {},{}", x, y - r - 1.0, x + r + 1.0, y, x, y + r + 1.0, x - r - 1.0, y)} fill={color} />
        },
        Marker::Cross => html! {
            <path d={format!("M{} {}L{} {}M{} {}L{} {}", x - r, y - r, x + r, y + r, x - r, y + r, x + r, y - r)}
                stroke={color} stroke-width="2" />
        },
    }
}

fn legend(kinds: &[PolicyKind]) -> Html {
    let mut x = LEFT;
    html! {
        <g class="legend">
            { for kinds.iter().map(|&kind| {
                let style = policy_style(kind);
                let label = policy_label(kind);
                let at = x;
                x += 44.0 + 6.6 * label.chars().count() as f64;
                html! {
                    <g>
                        <line x1={at.to_string()} y1="36" x2={(at + 26.0).to_string()} y2="36"
                            stroke={style.color} stroke-width="2.2" stroke-dasharray={style.dash} />
                        { marker(style.marker, at + 13.0, 36.0, style.color) }
                        <text x={(at + 31.0).to_string()} y="40" class="legend-text">{ label }</text>
                    </g>
                }
            }) }
        </g>
    }
}

/// An axis's extent: before there is any (a run's first instant, nothing sent yet), 0 to 1, so
/// that the tick labels, shown to 4 decimals, do not all read 0.
fn span(max: f64) -> f64 {
    if max > 1e-3 {
        max
    } else {
        1.0
    }
}

/// A line chart with axes, units, a legend and per-policy dash and marker.
#[function_component(LineChart)]
pub fn line_chart(props: &LineChartProps) -> Html {
    let all = props.series.iter().flat_map(|s| s.points.iter());
    let (x_data, y_data) = all.fold((0.0f64, 0.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let x_ticks = format::ticks(span(props.x_max.unwrap_or(x_data)));
    let (unit, unit_name) = format::byte_unit(y_data);
    let y_ticks = format::ticks(span(y_data / unit));
    let x_max = *x_ticks.last().unwrap_or(&1.0);
    let y_max = *y_ticks.last().unwrap_or(&1.0) * unit;
    let px = move |x: f64| LEFT + (W - LEFT - RIGHT) * x / x_max;
    let py = move |y: f64| H - BOTTOM - (H - TOP - BOTTOM) * y / y_max;
    let kinds: Vec<PolicyKind> = props.series.iter().map(|s| s.kind).collect();
    html! {
        <svg id={props.id.clone()} class="chart" viewBox={format!("0 0 {W} {H}")} role="img"
            aria-label={props.title.clone()} xmlns="http://www.w3.org/2000/svg"
            font-family="system-ui, sans-serif" font-size="11">
            <text x="8" y="16" class="chart-title" font-size="13" font-weight="600">{ props.title.clone() }</text>
            { legend(&kinds) }
            { for props.bands.iter().enumerate().map(|(i, b)| {
                let (x0, x1) = (px(b.x0), px(b.x1.max(b.x0)));
                // One label line per band, so that bands over the same rounds stay readable.
                let label_y = TOP + 11.0 + 12.0 * i as f64;
                html! {
                    <g class="band">
                        <rect x={x0.to_string()} y={TOP.to_string()} width={(x1 - x0).max(1.0).to_string()}
                            height={(H - TOP - BOTTOM).to_string()} fill={b.color} fill-opacity="0.10" />
                        if let Some(d) = b.divider {
                            <line x1={px(d).to_string()} x2={px(d).to_string()} y1={TOP.to_string()}
                                y2={(H - BOTTOM).to_string()} stroke={b.color} stroke-dasharray="2 2" stroke-opacity="0.6" />
                        }
                        // Labels of bands in the right half hang to the left of the band's end.
                        if x0 > (LEFT + W) / 2.0 {
                            <text x={(x1 - 3.0).to_string()} y={label_y.to_string()} fill={b.color}
                                font-size="10" text-anchor="end">{ b.label.clone() }</text>
                        } else {
                            <text x={(x0 + 3.0).to_string()} y={label_y.to_string()} fill={b.color}
                                font-size="10">{ b.label.clone() }</text>
                        }
                    </g>
                }
            }) }
            { for y_ticks.iter().map(|&t| {
                let y = py(t * unit);
                html! {
                    <g class="tick">
                        <line x1={LEFT.to_string()} x2={(W - RIGHT).to_string()} y1={y.to_string()} y2={y.to_string()}
                            stroke="#e3e6ea" />
                        <text x={(LEFT - 6.0).to_string()} y={(y + 4.0).to_string()} text-anchor="end" fill="#4a5361">
                            { format::trim_number(t) }
                        </text>
                    </g>
                }
            }) }
            { for x_ticks.iter().map(|&t| {
                let x = px(t);
                html! {
                    <g class="tick">
                        <line x1={x.to_string()} x2={x.to_string()} y1={(H - BOTTOM).to_string()}
                            y2={(H - BOTTOM + 4.0).to_string()} stroke="#4a5361" />
                        <text x={x.to_string()} y={(H - BOTTOM + 16.0).to_string()} text-anchor="middle" fill="#4a5361">
                            { format::trim_number(t) }
                        </text>
                    </g>
                }
            }) }
            <line x1={LEFT.to_string()} x2={(W - RIGHT).to_string()} y1={(H - BOTTOM).to_string()}
                y2={(H - BOTTOM).to_string()} stroke="#4a5361" />
            <line x1={LEFT.to_string()} x2={LEFT.to_string()} y1={TOP.to_string()} y2={(H - BOTTOM).to_string()}
                stroke="#4a5361" />
            <text x={((LEFT + W - RIGHT) / 2.0).to_string()} y={(H - 6.0).to_string()} text-anchor="middle"
                fill="#1d2430">{ props.x_label.clone() }</text>
            <text transform={format!("translate(14 {}) rotate(-90)", (TOP + H - BOTTOM) / 2.0)}
                text-anchor="middle" fill="#1d2430">{ format!("{} ({unit_name})", props.y_label) }</text>
            { for props.series.iter().enumerate().map(|(i, s)| {
                let style = policy_style(s.kind);
                let points: String = s.points.iter()
                    .map(|&(x, y)| format!("{:.1},{:.1} ", px(x), py(y)))
                    .collect();
                let stride = s.points.len().div_ceil(MARKERS).max(1);
                // Offset each line's markers so that overlapping lines still show all of them.
                let offset = (i * stride / kinds.len().max(1)) % stride;
                html! {
                    <g class="series" data-policy={s.kind.name()}>
                        <polyline points={points} fill="none" stroke={style.color} stroke-width="2"
                            stroke-dasharray={style.dash} stroke-linejoin="round" />
                        { for s.points.iter().skip(offset).step_by(stride)
                            .map(|&(x, y)| marker(style.marker, px(x), py(y), style.color)) }
                    </g>
                }
            }) }
        </svg>
    }
}

/// One bar of a [`BarChart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The policy.
    pub kind: PolicyKind,
    /// Its value.
    pub value: f64,
    /// The value as text, drawn after the bar.
    pub text: String,
}

/// Props of [`BarChart`].
#[derive(Properties, PartialEq)]
pub struct BarChartProps {
    /// Id of the `<svg>`.
    pub id: AttrValue,
    /// Title drawn in the chart.
    pub title: AttrValue,
    /// The bars, one per policy.
    pub bars: Vec<Bar>,
}

/// Horizontal bars, one per policy, each named and valued in text (colour is only a help).
#[function_component(BarChart)]
pub fn bar_chart(props: &BarChartProps) -> Html {
    let row = 26.0;
    let label_w = 110.0;
    let text_w = 110.0;
    let height = 30.0 + row * props.bars.len().max(1) as f64 + 8.0;
    let max = props.bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let scale = |v: f64| {
        if max > 0.0 {
            (W - label_w - text_w - RIGHT) * v / max
        } else {
            0.0
        }
    };
    html! {
        <svg id={props.id.clone()} class="chart bars" viewBox={format!("0 0 {W} {height}")} role="img"
            aria-label={props.title.clone()} xmlns="http://www.w3.org/2000/svg"
            font-family="system-ui, sans-serif" font-size="11">
            <text x="8" y="16" font-size="13" font-weight="600">{ props.title.clone() }</text>
            { for props.bars.iter().enumerate().map(|(i, b)| {
                let style = policy_style(b.kind);
                let y = 30.0 + row * i as f64;
                let w = scale(b.value);
                html! {
                    <g data-policy={b.kind.name()}>
                        <text x={(label_w - 8.0).to_string()} y={(y + 13.0).to_string()} text-anchor="end" fill="#1d2430">
                            { policy_label(b.kind) }
                        </text>
                        <rect x={label_w.to_string()} y={(y + 3.0).to_string()} width={w.max(1.0).to_string()}
                            height={(row - 9.0).to_string()} fill={style.color} />
                        { marker(style.marker, label_w + w.max(1.0) + 8.0, y + 11.5, style.color) }
                        <text x={(label_w + w + 18.0).to_string()} y={(y + 15.0).to_string()} fill="#1d2430">
                            { b.text.clone() }
                        </text>
                    </g>
                }
            }) }
        </svg>
    }
}
