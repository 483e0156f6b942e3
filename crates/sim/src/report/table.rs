//! The summary a person reads in the terminal.

use std::fmt::Write;

use super::Report;

fn duration(secs: f64) -> String {
    let s = secs.round() as i64;
    match s {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Renders the summary table (plain text, fixed-width labels, no colour).
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let row = |out: &mut String, label: &str, value: String| {
        let _ = writeln!(out, "  {label:<22} {value}");
    };
    let _ = writeln!(
        out,
        "{} — seed {}, {} simulated",
        r.scenario,
        r.seed,
        duration(r.duration_seconds)
    );
    row(&mut out, "cost", format!("${:.4}", r.cost_usd));
    row(
        &mut out,
        "node-hours",
        format!("{:.3} h", r.node_hours_total),
    );
    for n in &r.node_hours {
        let _ = writeln!(
            out,
            "    {:<28} {:<10} {:>9.3} h  ${:.4}",
            n.instance_type, n.capacity_type, n.hours, n.cost_usd
        );
    }
    row(
        &mut out,
        "peak",
        format!("{} nodes, {} pods", r.peak_nodes, r.peak_pods),
    );
    let p = &r.pod_pending_seconds;
    row(
        &mut out,
        "pod pending",
        format!(
            "p50 {:.1}s  p95 {:.1}s  max {:.1}s  ({} pods ran, {} deleted before running)",
            p.p50, p.p95, p.max, p.count, r.pods_never_ran
        ),
    );
    let backlog = if r.backlog_max == 0.0 {
        "no queue, or it never filled".to_owned()
    } else {
        format!(
            "max {:.0}, {}",
            r.backlog_max,
            r.backlog_drain_seconds.map_or_else(
                || "not drained".to_owned(),
                |d| format!("drained {} after its peak", duration(d))
            )
        )
    };
    row(&mut out, "queue backlog", backlog);
    row(&mut out, "scale events", r.scale_events.to_string());
    row(
        &mut out,
        "launches",
        format!(
            "{} ({} failed, {} insufficient-capacity errors)",
            r.launches, r.launch_failures, r.insufficient_capacity_errors
        ),
    );
    row(&mut out, "consolidations", r.consolidations.to_string());
    row(&mut out, "interruptions", r.interruptions.to_string());
    row(&mut out, "oscillations", r.oscillations.to_string());
    for n in &r.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(59.4), "59s");
        assert_eq!(duration(61.0), "1m01s");
        assert_eq!(duration(7260.0), "2h01m");
    }
}
