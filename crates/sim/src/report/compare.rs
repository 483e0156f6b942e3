//! `tandem simulate --compare`: one scenario under upstream semantics (KEDA polling, the HPA,
//! Karpenter's pending-pod reaction, batching and consolidation) and under Tandem's
//! cross-layer features, side by side, with the differences a user decides on: cost and
//! pending time.

use std::fmt::Write as _;

use serde::Serialize;

use super::Report;
use super::html;

/// Both runs and their differences.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The scenario under upstream semantics.
    pub upstream: Report,
    /// The same scenario with Tandem's features on.
    pub tandem: Report,
    /// Tandem relative to upstream.
    pub difference: Difference,
}

/// Tandem relative to upstream; percentages are `(tandem − upstream) / upstream × 100`
/// (`null` when upstream's figure is 0).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// Cost, $.
    pub cost_usd: f64,
    /// Cost, %.
    pub cost_percent: Option<f64>,
    /// Pod pending time p50, s.
    pub pending_p50_seconds: f64,
    /// Pod pending time p95, s.
    pub pending_p95_seconds: f64,
    /// Pod pending time p95, %.
    pub pending_p95_percent: Option<f64>,
    /// Pod pending time max, s.
    pub pending_max_seconds: f64,
    /// Launches.
    pub launches: i64,
    /// Oscillations.
    pub oscillations: i64,
}

fn percent(tandem: f64, upstream: f64) -> Option<f64> {
    (upstream.abs() > f64::EPSILON).then(|| round2((tandem - upstream) / upstream * 100.0))
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn signed(a: u64, b: u64) -> i64 {
    i64::try_from(a).unwrap_or(i64::MAX) - i64::try_from(b).unwrap_or(i64::MAX)
}

impl Comparison {
    /// Compares two finished runs of one scenario.
    pub fn new(upstream: Report, tandem: Report) -> Self {
        let (u, t) = (&upstream, &tandem);
        let difference = Difference {
            cost_usd: round4(t.cost_usd - u.cost_usd),
            cost_percent: percent(t.cost_usd, u.cost_usd),
            pending_p50_seconds: round2(t.pod_pending_seconds.p50 - u.pod_pending_seconds.p50),
            pending_p95_seconds: round2(t.pod_pending_seconds.p95 - u.pod_pending_seconds.p95),
            pending_p95_percent: percent(t.pod_pending_seconds.p95, u.pod_pending_seconds.p95),
            pending_max_seconds: round2(t.pod_pending_seconds.max - u.pod_pending_seconds.max),
            launches: signed(t.launches, u.launches),
            oscillations: signed(t.oscillations, u.oscillations),
        };
        Comparison {
            upstream,
            tandem,
            difference,
        }
    }

    /// Pretty JSON with a trailing newline, deterministic like [`Report::to_json`].
    pub fn to_json(&self) -> String {
        let mut s =
            serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        s.push('\n');
        s
    }

    /// The rows both runs are compared on: label, upstream, tandem, difference.
    fn rows(&self) -> Vec<[String; 4]> {
        let (u, t, d) = (&self.upstream, &self.tandem, &self.difference);
        let pct = |p: Option<f64>| p.map_or_else(String::new, |p| format!(" ({p:+.1} %)"));
        let (up, tp) = (&u.pod_pending_seconds, &t.pod_pending_seconds);
        vec![
            [
                "cost".into(),
                format!("${:.4}", u.cost_usd),
                format!("${:.4}", t.cost_usd),
                format!("{:+.4} ${}", d.cost_usd, pct(d.cost_percent)),
            ],
            [
                "node-hours".into(),
                format!("{:.3}", u.node_hours_total),
                format!("{:.3}", t.node_hours_total),
                format!("{:+.3}", t.node_hours_total - u.node_hours_total),
            ],
            [
                "pending p50".into(),
                format!("{:.1} s", up.p50),
                format!("{:.1} s", tp.p50),
                format!("{:+.1} s", d.pending_p50_seconds),
            ],
            [
                "pending p95".into(),
                format!("{:.1} s", up.p95),
                format!("{:.1} s", tp.p95),
                format!(
                    "{:+.1} s{}",
                    d.pending_p95_seconds,
                    pct(d.pending_p95_percent)
                ),
            ],
            [
                "pending max".into(),
                format!("{:.1} s", up.max),
                format!("{:.1} s", tp.max),
                format!("{:+.1} s", d.pending_max_seconds),
            ],
            [
                "launches (ahead)".into(),
                format!("{} ({})", u.launches, u.launches_ahead),
                format!("{} ({})", t.launches, t.launches_ahead),
                format!("{:+}", d.launches),
            ],
            [
                "consolidations".into(),
                u.consolidations.to_string(),
                t.consolidations.to_string(),
                format!("{:+}", signed(t.consolidations, u.consolidations)),
            ],
            [
                "oscillations".into(),
                u.oscillations.to_string(),
                t.oscillations.to_string(),
                format!("{:+}", d.oscillations),
            ],
            [
                "peak nodes".into(),
                u.peak_nodes.to_string(),
                t.peak_nodes.to_string(),
                format!(
                    "{:+}",
                    i64::try_from(t.peak_nodes).unwrap_or(0)
                        - i64::try_from(u.peak_nodes).unwrap_or(0)
                ),
            ],
        ]
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} — seed {}: upstream semantics vs Tandem ({})",
            self.tandem.scenario,
            self.tandem.seed,
            self.tandem.features.join(", ")
        );
        let _ = writeln!(
            out,
            "  {:<18} {:>14} {:>14}   difference",
            "", "upstream", "tandem"
        );
        for [label, u, t, d] in self.rows() {
            let _ = writeln!(out, "  {label:<18} {u:>14} {t:>14}   {d}");
        }
        out
    }

    /// One self-contained HTML page: the comparison table, then Tandem's report and
    /// upstream's, each with its charts.
    pub fn html(&self) -> String {
        let tandem = html::render(&self.tandem);
        let upstream = html::render(&self.upstream);
        let body = |page: &str| -> String {
            let start = page.find("</header>").map_or(0, |i| i + "</header>".len());
            let end = page.find("<footer>").unwrap_or(page.len());
            page[start..end].to_owned()
        };
        let mut table = String::from(
            "<section class=\"compare\"><h2>Upstream semantics vs Tandem</h2><table class=\"decisions\"><tr><th></th><th>upstream</th><th>tandem</th><th>difference</th></tr>",
        );
        for row in self.rows() {
            table.push_str("<tr>");
            for cell in row {
                let _ = write!(table, "<td>{}</td>", html::escape(&cell));
            }
            table.push_str("</tr>");
        }
        let _ = write!(
            table,
            "</table><p>Tandem's features in this run: {}. Upstream: KEDA polling, the HPA's climb, Karpenter's batch window and consolidation without the pod layer.</p></section><h2>Tandem</h2>",
            html::escape(&self.tandem.features.join(", "))
        );
        let split = tandem
            .find("</header>")
            .map_or(0, |i| i + "</header>".len());
        let footer = tandem.find("<footer>").unwrap_or(tandem.len());
        let mut out = String::with_capacity(tandem.len() + upstream.len() + table.len());
        out.push_str(&tandem[..split]);
        out.push_str(&table);
        out.push_str(&body(&tandem));
        out.push_str("<h2>Upstream semantics</h2>");
        out.push_str(&body(&upstream));
        out.push_str(&tandem[footer..]);
        out
    }
}
