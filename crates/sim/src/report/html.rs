//! The HTML report: one self-contained page (inline CSS and SVG, no script, no external asset)
//! that opens offline in any browser.
//!
//! Charts share one time axis: queue backlog and metric, desired vs running replicas, pending
//! pods, nodes stacked by instance type and capacity type, cost rate and cumulative cost. The
//! node layer's decisions (launch, consolidate, interruption, failed launch) are marked on every
//! chart as thin vertical lines and, with a tooltip each (`<title>`), on a strip of their own.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Decision, DecisionKind, Report};

const W: f64 = 1200.0;
const H: f64 = 230.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 64.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 34.0;

const PALETTE: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#2ca02c",
];

/// HTML-escapes text for element content and attribute values (the comparison page reuses it).
pub fn escape(s: &str) -> String {
    esc(s)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn marker_color(kind: DecisionKind) -> Option<&'static str> {
    match kind {
        DecisionKind::Launch => Some("#2f6fdf"),
        DecisionKind::Consolidate => Some("#e8871e"),
        DecisionKind::Interruption => Some("#d62728"),
        DecisionKind::LaunchFailed => Some("#8c3fbf"),
        DecisionKind::Scale => None,
    }
}

/// A round number ≥ `v` (1, 2, 2.5, 5 × 10ⁿ), so axes read cleanly.
fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let exp = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * exp >= v {
            return m * exp;
        }
    }
    10.0 * exp
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v.abs() >= 10.0 || v.fract() == 0.0 {
        format!("{:.0}", v)
    } else if v.abs() >= 1.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.2}", v)
    }
}

fn fmt_time(secs: f64) -> String {
    let s = secs.round() as i64;
    if s % 3600 == 0 && s > 0 {
        format!("{}h", s / 3600)
    } else {
        format!("{}:{:02}", s / 3600, (s % 3600) / 60)
    }
}

/// A tick step for a time axis of `duration` seconds: about 6–12 ticks.
fn time_step(duration: f64) -> f64 {
    const STEPS: [f64; 10] = [
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 21600.0,
    ];
    STEPS
        .into_iter()
        .find(|s| duration / s <= 12.0)
        .unwrap_or(43200.0)
}

struct Frame {
    duration: f64,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        LEFT + (W - LEFT - RIGHT) * (t / self.duration.max(1.0))
    }
    fn y(&self, v: f64, max: f64) -> f64 {
        H - BOTTOM - (H - TOP - BOTTOM) * (v / max).clamp(0.0, 1.0)
    }
}

/// A data series of a line chart.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<f64>,
    dashed: bool,
    fill: bool,
    right_axis: bool,
}

fn step_path(frame: &Frame, t: &[f64], v: &[f64], max: f64) -> String {
    let mut d = String::new();
    for (i, (ti, vi)) in t.iter().zip(v).enumerate() {
        let (x, y) = (frame.x(*ti), frame.y(*vi, max));
        if i == 0 {
            let _ = write!(d, "M{x:.1},{y:.1}");
        } else {
            let _ = write!(d, "H{x:.1}V{y:.1}");
        }
    }
    d
}

fn axes(
    out: &mut String,
    frame: &Frame,
    max_left: f64,
    unit_left: &str,
    right: Option<(f64, &str)>,
) {
    let _ = write!(out, r##"<g class="grid">"##);
    for i in 0..=4 {
        let v = max_left * f64::from(i) / 4.0;
        let y = frame.y(v, max_left);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(v)
        );
        if let Some((max_r, _)) = right {
            let vr = max_r * f64::from(i) / 4.0;
            let _ = write!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="start">{}</text>"##,
                W - RIGHT + 6.0,
                y + 4.0,
                fmt_num(vr)
            );
        }
    }
    let step = time_step(frame.duration);
    let mut t = 0.0;
    while t <= frame.duration + 0.5 {
        let x = frame.x(t);
        let _ = write!(
            out,
            r##"<line class="tick" x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 4.0,
            H - BOTTOM + 18.0,
            fmt_time(t)
        );
        t += step;
    }
    let _ = write!(
        out,
        r##"<text class="unit" x="8" y="{:.1}">{}</text>"##,
        TOP - 12.0,
        esc(unit_left)
    );
    if let Some((_, unit)) = right {
        let _ = write!(
            out,
            r##"<text class="unit" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - 4.0,
            TOP - 12.0,
            esc(unit)
        );
    }
    out.push_str("</g>");
}

fn markers(out: &mut String, frame: &Frame, decisions: &[Decision]) {
    out.push_str(r#"<g class="markers">"#);
    for d in decisions {
        if let Some(color) = marker_color(d.kind) {
            let x = frame.x(d.t);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="{color}"/>"##,
                H - BOTTOM
            );
        }
    }
    out.push_str("</g>");
}

fn legend(out: &mut String, items: &[(&str, &str, bool)]) {
    out.push_str(r#"<div class="legend">"#);
    for (name, color, dashed) in items {
        let style = if *dashed {
            "border-top-style:dashed"
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<span><i style="border-color:{color};{style}"></i>{}</span>"#,
            esc(name)
        );
    }
    out.push_str("</div>");
}

#[allow(clippy::too_many_arguments)] // one call per chart reads best with every part named
fn line_chart(
    out: &mut String,
    id: &str,
    title: &str,
    frame: &Frame,
    t: &[f64],
    series: &[Series<'_>],
    units: (&str, Option<&str>),
    decisions: &[Decision],
) {
    let max_of = |right: bool| {
        nice_max(
            series
                .iter()
                .filter(|s| s.right_axis == right)
                .flat_map(|s| s.values.iter().copied())
                .fold(0.0, f64::max),
        )
    };
    let (max_l, max_r) = (max_of(false), max_of(true));
    let _ = write!(
        out,
        r#"<section class="chart" id="{id}"><h2>{}</h2>"#,
        esc(title)
    );
    let items: Vec<(&str, &str, bool)> =
        series.iter().map(|s| (s.name, s.color, s.dashed)).collect();
    legend(out, &items);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        esc(title)
    );
    axes(out, frame, max_l, units.0, units.1.map(|u| (max_r, u)));
    markers(out, frame, decisions);
    for s in series {
        let max = if s.right_axis { max_r } else { max_l };
        let d = step_path(frame, t, &s.values, max);
        if s.fill
            && let (Some(t0), Some(tn)) = (t.first(), t.last())
        {
            let base = frame.y(0.0, max);
            let _ = write!(
                out,
                r#"<path d="{d}V{base:.1}H{:.1}Z" fill="{}" fill-opacity="0.18" stroke="none"/>"#,
                frame.x(*t0),
                s.color
            );
            let _ = tn;
        }
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<path class="series" d="{d}" fill="none" stroke="{}" stroke-width="2"{dash}><title>{}</title></path>"#,
            s.color,
            esc(s.name)
        );
    }
    out.push_str("</svg></section>");
}

fn stacked_chart(out: &mut String, frame: &Frame, r: &Report) {
    let t: Vec<f64> = r.timeline.iter().map(|p| p.t).collect();
    let mut keys: BTreeMap<&str, u32> = BTreeMap::new();
    for p in &r.timeline {
        for (k, v) in &p.nodes_by_type {
            let e = keys.entry(k.as_str()).or_default();
            *e = (*e).max(*v);
        }
    }
    let keys: Vec<&str> = keys.into_keys().collect();
    let max = nice_max(
        r.timeline
            .iter()
            .map(|p| f64::from(p.nodes))
            .fold(0.0, f64::max),
    );
    out.push_str(
        r#"<section class="chart" id="nodes"><h2>Nodes by instance type and capacity type</h2>"#,
    );
    let items: Vec<(&str, &str, bool)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, PALETTE[i % PALETTE.len()], false))
        .collect();
    legend(out, &items);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="nodes by instance type">"#
    );
    axes(out, frame, max, "nodes", None);
    let mut below = vec![0.0; t.len()];
    for (i, k) in keys.iter().enumerate() {
        let above: Vec<f64> = r
            .timeline
            .iter()
            .zip(&below)
            .map(|(p, b)| b + f64::from(p.nodes_by_type.get(*k).copied().unwrap_or(0)))
            .collect();
        // Upper edge left to right, then the lower edge back, as steps.
        let mut d = step_path(frame, &t, &above, max);
        for j in (0..t.len()).rev() {
            let (x, y) = (frame.x(t[j]), frame.y(below[j], max));
            let _ = write!(d, "H{x:.1}V{y:.1}");
            if j > 0 {
                let _ = write!(d, "H{:.1}", frame.x(t[j]));
            }
        }
        d.push('Z');
        let color = PALETTE[i % PALETTE.len()];
        let _ = write!(
            out,
            r#"<path class="layer" d="{d}" fill="{color}" fill-opacity="0.85" stroke="{color}" stroke-width="0.5"><title>{}</title></path>"#,
            esc(k)
        );
        below = above;
    }
    markers(out, frame, &r.decisions);
    out.push_str("</svg></section>");
}

fn decision_strip(out: &mut String, frame: &Frame, decisions: &[Decision]) {
    let h = 54.0;
    out.push_str(r#"<section class="chart" id="decisions"><h2>Node-layer decisions</h2>"#);
    legend(
        out,
        &[
            ("launch", "#2f6fdf", false),
            ("consolidate", "#e8871e", false),
            ("interruption", "#d62728", false),
            ("launch failed", "#8c3fbf", false),
        ],
    );
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" role="img" aria-label="decisions">"#
    );
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#999"/>"##,
        W - RIGHT,
        h - 14.0,
        h - 14.0
    );
    for d in decisions {
        let Some(color) = marker_color(d.kind) else {
            continue;
        };
        let row = match d.kind {
            DecisionKind::Launch => 0.0,
            DecisionKind::Consolidate => 1.0,
            _ => 2.0,
        };
        let x = frame.x(d.t);
        let y = 6.0 + row * 11.0;
        let _ = write!(
            out,
            r#"<rect x="{:.1}" y="{y:.1}" width="3" height="10" fill="{color}"><title>{} s: {}</title></rect>"#,
            x - 1.5,
            d.t,
            esc(&d.detail)
        );
    }
    out.push_str("</svg></section>");
}

/// Renders the report page.
pub fn render(r: &Report) -> String {
    let frame = Frame {
        duration: r.duration_seconds,
    };
    let t: Vec<f64> = r.timeline.iter().map(|p| p.t).collect();
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Tandem simulation — {}</title><style>{CSS}</style></head><body><header><h1>{}</h1><p class="sub">tandem simulate · seed {} · {} simulated · {} samples</p></header>"#,
        esc(&r.scenario),
        esc(&r.scenario),
        r.seed,
        fmt_time(r.duration_seconds),
        r.timeline.len()
    );
    let p = &r.pod_pending_seconds;
    let cards = [
        ("cost", format!("${:.2}", r.cost_usd)),
        ("node-hours", format!("{:.2}", r.node_hours_total)),
        ("peak nodes", r.peak_nodes.to_string()),
        ("peak pods", r.peak_pods.to_string()),
        (
            "pending p50 / p95",
            format!("{:.0}s / {:.0}s", p.p50, p.p95),
        ),
        ("pending max", format!("{:.0}s", p.max)),
        ("backlog max", format!("{:.0}", r.backlog_max)),
        (
            "drain time",
            r.backlog_drain_seconds
                .map_or_else(|| "—".to_owned(), |d| format!("{d:.0}s")),
        ),
        ("launches", r.launches.to_string()),
        ("consolidations", r.consolidations.to_string()),
        ("interruptions", r.interruptions.to_string()),
        ("oscillations", r.oscillations.to_string()),
    ];
    out.push_str(r#"<div class="cards">"#);
    for (label, value) in cards {
        let _ = write!(
            out,
            r#"<div class="card"><b>{}</b><span>{}</span></div>"#,
            esc(&value),
            esc(label)
        );
    }
    out.push_str("</div>");

    decision_strip(&mut out, &frame, &r.decisions);
    let backlog: Vec<f64> = r.timeline.iter().map(|p| p.backlog).collect();
    let metric: Vec<f64> = r.timeline.iter().map(|p| p.metric.unwrap_or(0.0)).collect();
    let has_metric = r.timeline.iter().any(|p| p.metric.is_some());
    let mut source_series = vec![Series {
        name: "queue backlog (messages)",
        color: "#4e79a7",
        values: backlog,
        dashed: false,
        fill: true,
        right_axis: false,
    }];
    if has_metric {
        source_series.push(Series {
            name: "metric value (right axis)",
            color: "#b07aa1",
            values: metric,
            dashed: false,
            fill: false,
            right_axis: true,
        });
    }
    line_chart(
        &mut out,
        "source",
        "Queue depth and metric",
        &frame,
        &t,
        &source_series,
        ("messages", has_metric.then_some("metric")),
        &r.decisions,
    );
    line_chart(
        &mut out,
        "replicas",
        "Desired vs running replicas",
        &frame,
        &t,
        &[
            Series {
                name: "desired replicas",
                color: "#f28e2b",
                values: r
                    .timeline
                    .iter()
                    .map(|p| f64::from(p.desired_replicas))
                    .collect(),
                dashed: true,
                fill: false,
                right_axis: false,
            },
            Series {
                name: "running pods",
                color: "#59a14f",
                values: r
                    .timeline
                    .iter()
                    .map(|p| f64::from(p.running_pods))
                    .collect(),
                dashed: false,
                fill: true,
                right_axis: false,
            },
        ],
        ("pods", None),
        &r.decisions,
    );
    line_chart(
        &mut out,
        "pending",
        "Pending pods",
        &frame,
        &t,
        &[Series {
            name: "pending pods (created, not running)",
            color: "#e15759",
            values: r
                .timeline
                .iter()
                .map(|p| f64::from(p.pending_pods))
                .collect(),
            dashed: false,
            fill: true,
            right_axis: false,
        }],
        ("pods", None),
        &r.decisions,
    );
    stacked_chart(&mut out, &frame, r);
    line_chart(
        &mut out,
        "cost",
        "Cost rate and cumulative cost",
        &frame,
        &t,
        &[
            Series {
                name: "cost rate ($/h)",
                color: "#76b7b2",
                values: r.timeline.iter().map(|p| p.cost_rate).collect(),
                dashed: false,
                fill: true,
                right_axis: false,
            },
            Series {
                name: "cumulative cost ($, right axis)",
                color: "#9c755f",
                values: r.timeline.iter().map(|p| p.cost_usd).collect(),
                dashed: false,
                fill: false,
                right_axis: true,
            },
        ],
        ("$/h", Some("$")),
        &r.decisions,
    );

    out.push_str(r#"<section class="tables"><div><h2>Node-hours</h2><table><tr><th>instance type</th><th>capacity</th><th>hours</th><th>cost</th></tr>"#);
    for n in &r.node_hours {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>${:.4}</td></tr>",
            esc(&n.instance_type),
            esc(&n.capacity_type),
            n.hours,
            n.cost_usd
        );
    }
    let _ = write!(
        out,
        "<tr class=\"total\"><td>total</td><td></td><td>{:.3}</td><td>${:.4}</td></tr></table>",
        r.node_hours_total, r.cost_usd
    );
    out.push_str("<h2>Notes</h2><ul>");
    for n in &r.notes {
        let _ = write!(out, "<li>{}</li>", esc(n));
    }
    out.push_str("</ul></div><div><h2>Decisions</h2><table class=\"decisions\"><tr><th>t</th><th>kind</th><th>detail</th></tr>");
    const MAX_ROWS: usize = 300;
    for d in r.decisions.iter().take(MAX_ROWS) {
        let kind = serde_json::to_value(d.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"k-{kind}\">{kind}</td><td>{}</td></tr>",
            fmt_time_precise(d.t),
            esc(&d.detail)
        );
    }
    if r.decisions.len() > MAX_ROWS {
        let _ = write!(
            out,
            "<tr><td colspan=\"3\">… {} more in the JSON report</td></tr>",
            r.decisions.len() - MAX_ROWS
        );
    }
    out.push_str("</table></div></section><footer>Generated by <code>tandem simulate</code>. Same scenario and seed give the same report.</footer></body></html>\n");
    out
}

fn fmt_time_precise(secs: f64) -> String {
    let s = secs.round() as i64;
    format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

const CSS: &str = "
:root{--fg:#1d2433;--muted:#667085;--line:#e4e7ec;--bg:#f7f8fa}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;font:14px/1.45 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
header h1{margin:0;font-size:22px}
.sub{margin:2px 0 16px;color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(6,1fr);gap:10px;margin-bottom:18px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card b{display:block;font-size:20px}
.card span{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.chart{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px 4px;margin-bottom:14px}
.chart h2{font-size:15px;margin:0 0 2px}
.chart svg{width:100%;height:auto;display:block}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px;color:var(--muted);margin-bottom:2px}
.legend i{display:inline-block;width:18px;height:0;border-top:3px solid;margin-right:6px;vertical-align:middle}
.grid line{stroke:#eef0f3}
.grid line.tick{stroke:#c9ced6}
.grid text{font-size:11px;fill:#667085}
.grid text.unit{font-size:11px;fill:#98a2b3}
.markers line{stroke-width:1;stroke-opacity:.35}
.tables{display:grid;grid-template-columns:1fr 1.6fr;gap:14px}
.tables>div{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.tables h2{font-size:15px;margin:4px 0 8px}
table{border-collapse:collapse;width:100%;font-size:12px}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);vertical-align:top}
tr.total td{font-weight:600}
.decisions td:first-child{font-variant-numeric:tabular-nums;white-space:nowrap}
.k-launch{color:#2f6fdf}.k-consolidate{color:#e8871e}.k-interruption{color:#d62728}.k-launchFailed{color:#8c3fbf}.k-scale{color:#667085}
footer{color:var(--muted);font-size:12px;margin-top:14px}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes_and_escaping() {
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(2.2), 2.5);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
        assert_eq!(time_step(3600.0), 300.0);
        assert_eq!(fmt_time(5400.0), "1:30");
        assert_eq!(fmt_time(7200.0), "2h");
    }
}
