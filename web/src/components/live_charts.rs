use std::rc::Rc;

use precopy_core::{Metrics, Phase, PolicyKind};
use yew::prelude::*;

use super::{Bar, BarChart, ChartBand, LineChart, Series, SvgButton};
use crate::format;
use crate::palette::{policy_label, policy_style};
use crate::playback::Point;
use crate::state::{mark, measure};

/// One policy's data for the live charts.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneSeries {
    /// The policy.
    pub kind: PolicyKind,
    /// Its finished rounds.
    pub points: Rc<Vec<Point>>,
    /// β of its end test, if it has one.
    pub beta: Option<u32>,
    /// Its metrics, once finished.
    pub metrics: Option<Rc<Metrics>>,
    /// Bytes of the data set: U at time 0.
    pub total: u64,
}

/// Props of [`LiveCharts`].
#[derive(Properties, PartialEq)]
pub struct LiveChartsProps {
    /// One entry per compared policy.
    pub lanes: Vec<LaneSeries>,
}

/// The latest β ReadWrite rounds of a lane: the window its end test looks at, split in the
/// older and newer halves it compares.
fn beta_window(lane: &LaneSeries) -> Option<ChartBand> {
    let beta = lane.beta? as usize;
    let rw: Vec<&Point> = lane
        .points
        .iter()
        .filter(|p| p.phase == Phase::ReadWrite)
        .collect();
    if rw.len() < beta {
        return None;
    }
    let window = &rw[rw.len() - beta..];
    let (first, last) = (window.first()?, window.last()?);
    Some(ChartBand {
        x0: first.time,
        x1: last.time,
        divider: Some((window[beta / 2 - 1].time + window[beta / 2].time) / 2.0),
        color: policy_style(lane.kind).color,
        label: format!("β = {beta} window ({})", policy_label(lane.kind)),
    })
}

/// U over time with the β window, cumulative pre-copy and resent bytes, final-copy bytes and
/// downtime per policy. Updated once per finished round.
#[function_component(LiveCharts)]
pub fn live_charts(props: &LiveChartsProps) -> Html {
    // The cost of a chart update, for the benchmark (measured after the DOM is updated).
    mark("charts");
    use_effect(|| measure("charts", "charts"));
    let series = |value: fn(&Point) -> u64, start_at_total: bool| -> Rc<Vec<Series>> {
        Rc::new(
            props
                .lanes
                .iter()
                .map(|l| {
                    let start = (0.0, if start_at_total { l.total as f64 } else { 0.0 });
                    Series {
                        kind: l.kind,
                        points: std::iter::once(start)
                            .chain(l.points.iter().map(|p| (p.time, value(p) as f64)))
                            .collect(),
                    }
                })
                .collect(),
        )
    };
    let bands: Rc<Vec<ChartBand>> = Rc::new(props.lanes.iter().filter_map(beta_window).collect());
    let finished: Vec<(PolicyKind, Rc<Metrics>)> = props
        .lanes
        .iter()
        .filter_map(|l| l.metrics.clone().map(|m| (l.kind, m)))
        .collect();
    let final_bars: Vec<Bar> = finished
        .iter()
        .map(|(kind, m)| Bar {
            kind: *kind,
            value: m.final_bytes as f64,
            text: format!(
                "{} · {} files",
                format::bytes(m.final_bytes),
                format::count(u64::from(m.final_files))
            ),
        })
        .collect();
    let downtime_bars: Vec<Bar> = finished
        .iter()
        .map(|(kind, m)| Bar {
            kind: *kind,
            value: m.downtime_s,
            text: format!("{:.2} s", m.downtime_s),
        })
        .collect();
    html! {
        <div class="chart-grid" id="live-charts">
            <figure class="card chart-card">
                <LineChart id="chart-u" title="U: bytes not yet clean at D" x_label="time (s)" y_label="U"
                    series={series(|p| p.unsent_bytes, true)} bands={bands} />
                <SvgButton id="chart-u" />
            </figure>
            <figure class="card chart-card">
                <LineChart id="chart-precopy" title="Cumulative pre-copy bytes (network load)" x_label="time (s)"
                    y_label="pre-copy bytes" series={series(|p| p.precopy_bytes, false)} />
                <SvgButton id="chart-precopy" />
            </figure>
            <figure class="card chart-card">
                <LineChart id="chart-resent" title="Cumulative resent bytes" x_label="time (s)"
                    y_label="resent bytes" series={series(|p| p.resent_bytes, false)} />
                <SvgButton id="chart-resent" />
            </figure>
            <figure class="card chart-card">
                if finished.is_empty() {
                    <p class="placeholder">{ "Final-copy bytes and downtime appear here once a policy has finished its final copy." }</p>
                } else {
                    <BarChart id="chart-final" title="Final-copy bytes (sent while the application is stopped)" bars={final_bars} />
                    <BarChart id="chart-downtime" title="Downtime (s)" bars={downtime_bars} />
                    <div class="svg-buttons"><SvgButton id="chart-final" /><SvgButton id="chart-downtime" /></div>
                }
            </figure>
        </div>
    }
}
