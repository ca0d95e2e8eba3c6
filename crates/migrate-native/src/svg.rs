//! A small line chart as standalone SVG text: the `paper` figures.

use std::fmt::Write;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// (x, y, y's 95% half-interval).
    pub points: Vec<(f64, f64, f64)>,
}

/// Okabe–Ito colours (distinguishable with colour-blindness), each with its own dash and marker
/// as a second cue.
const STYLES: [(&str, &str, Marker); 6] = [
    ("#0072B2", "", Marker::Circle),
    ("#D55E00", "6 3", Marker::Square),
    ("#009E73", "2 3", Marker::Triangle),
    ("#CC79A7", "8 3 2 3", Marker::Diamond),
    ("#E69F00", "4 4", Marker::Circle),
    ("#56B4E9", "1 2", Marker::Square),
];

#[derive(Debug, Clone, Copy)]
enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
}

fn marker(out: &mut String, m: Marker, x: f64, y: f64, colour: &str) {
    let _ = match m {
        Marker::Circle => write!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{colour}"/>"#
        ),
        Marker::Square => write!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="7" height="7" fill="{colour}"/>"#,
            x - 3.5,
            y - 3.5
        ),
        Marker::Triangle => write!(
            out,
            r#"<path d="M{x:.1} {:.1} l4 7 h-8 z" fill="{colour}"/>"#,
            y - 4.0
        ),
        Marker::Diamond => write!(
            out,
            r#"<path d="M{x:.1} {:.1} l4 4 l-4 4 l-4 -4 z" fill="{colour}"/>"#,
            y - 4.0
        ),
    };
}

/// A "nice" tick step for a range.
fn tick_step(span: f64, ticks: f64) -> f64 {
    let raw = span / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the chart.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (w, h) = (720.0, 440.0);
    let (left, right, top, bottom) = (80.0, 170.0, 40.0, 60.0);
    let points = series.iter().flat_map(|s| s.points.iter());
    let x_max = points.clone().map(|p| p.0).fold(0.0, f64::max).max(1e-9);
    let y_max = points.map(|p| p.1 + p.2).fold(0.0, f64::max).max(1e-9);
    let x_step = tick_step(x_max, 10.0);
    let y_step = tick_step(y_max, 6.0);
    let y_top = (y_max / y_step).ceil() * y_step;
    let x_right = (x_max / x_step).ceil() * x_step;
    let px = |x: f64| left + x / x_right * (w - left - right);
    let py = |y: f64| h - bottom - y / y_top * (h - top - bottom);

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(out, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = write!(
        out,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        (left + w - right) / 2.0,
        escape(title)
    );
    let mut y = 0.0;
    while y <= y_top + y_step * 1e-6 {
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            w - right,
            py(y),
            py(y),
            left - 6.0,
            py(y) + 4.0,
            trim(y)
        );
        y += y_step;
    }
    let mut x = 0.0;
    while x <= x_right + x_step * 1e-6 {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            px(x),
            h - bottom + 18.0,
            trim(x)
        );
        x += x_step;
    }
    let _ = write!(
        out,
        r#"<line x1="{left}" x2="{left}" y1="{top}" y2="{:.1}" stroke="black"/><line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/>"#,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (left + w - right) / 2.0,
        h - 18.0,
        escape(x_label)
    );
    let _ = write!(
        out,
        r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (top + h - bottom) / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let (colour, dash, mark) = STYLES[i % STYLES.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y, _)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
            path.join(" ")
        );
        for &(x, y, ci) in &s.points {
            if ci > 0.0 {
                let _ = write!(
                    out,
                    r#"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}"/>"#,
                    px(x),
                    px(x),
                    py(y - ci),
                    py(y + ci)
                );
            }
            marker(&mut out, mark, px(x), py(y), colour);
        }
        let ly = top + 10.0 + 22.0 * i as f64;
        let lx = w - right + 12.0;
        let _ = write!(
            out,
            r#"<line x1="{lx}" x2="{:.1}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
            lx + 30.0
        );
        marker(&mut out, mark, lx + 15.0, ly, colour);
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 36.0,
            ly + 4.0,
            escape(&s.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn trim(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_every_series_and_escapes_text() {
        let series = vec![
            Series {
                label: "a<b".into(),
                points: vec![(5.0, 1.0, 0.1), (10.0, 2.0, 0.0)],
            },
            Series {
                label: "c".into(),
                points: vec![(5.0, 0.5, 0.0)],
            },
        ];
        let svg = line_chart("t & u", "x", "y", &series);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a&lt;b") && svg.contains("t &amp; u"));
        assert_eq!(tick_step(100.0, 10.0), 10.0);
        assert_eq!(tick_step(2.2, 6.0), 0.5);
    }
}
