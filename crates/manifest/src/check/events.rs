//! `consolidate-after-vs-event-period`: a NodePool's `consolidateAfter` against the rhythm of the
//! events its pods serve, as the cluster's metrics history shows it (live mode only).
//!
//! Seed 002: "Tune consolidateAfter to be slightly longer than your expected event oscillation
//! period." The files say what the timers are; only history says how far apart the events
//! are. The history is each ScaledObject's activity over time (`keda_scaler_active`, which KEDA
//! and Tandem both export, read from Prometheus by the shell). Between two events the pods
//! leave once the pod layer's window has passed (the longer of `cooldownPeriod` and the HPA's
//! scale-down stabilization), and the nodes go `consolidateAfter` later. When that happens
//! before the next event arrives, every event waits for new nodes: the launch-after-consolidation
//! oscillation, in numbers from the user's own cluster.
//!
//! Gaps longer than [`LONG_GAP_MS`] are idle periods worth paying nothing for (the point of
//! scaling to zero), and are not counted against the rule.

use std::collections::BTreeMap;

use tandem_podscaler::comeback::window_secs;

use super::fit::Fits;
use super::{CheckFinding, Inputs, Rule, Severity};

/// Gaps between events longer than this are idle periods, not a rhythm to keep nodes through.
pub const LONG_GAP_MS: i64 = 30 * 60_000;

/// Fewer gaps than this are no rhythm.
pub const MIN_GAPS: usize = 2;

/// `(ms since the epoch, active)` samples in time order, per ScaledObject `(namespace, name)`.
pub type Samples = BTreeMap<(String, String), Vec<(i64, bool)>>;

/// Each ScaledObject's activity over a time range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// Samples per ScaledObject.
    pub samples: Samples,
    /// The range looked at, for messages (`the last 24h`).
    pub range: String,
}

/// The idle gaps between events, ms: from the last active sample of one event to the first of
/// the next. The time before the first event and after the last one are not gaps.
pub fn gaps(samples: &[(i64, bool)]) -> Vec<i64> {
    let mut out = Vec::new();
    let mut last_active: Option<i64> = None;
    let mut idle = false;
    for &(t, active) in samples {
        if active {
            if idle && let Some(end) = last_active {
                out.push(t - end);
            }
            last_active = Some(t);
            idle = false;
        } else if last_active.is_some() {
            idle = true;
        }
    }
    out
}

/// The `q` quantile (0..=1) of `values` by the nearest-rank method; `None` when empty.
fn quantile(values: &[i64], q: f64) -> Option<i64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = (q * v.len() as f64).ceil() as usize;
    v.get(rank.saturating_sub(1).min(v.len().saturating_sub(1)))
        .copied()
}

/// `1m 30s`, `45s`, `7m`.
fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match (s / 60, s % 60) {
        (0, sec) => format!("{sec}s"),
        (min, 0) => format!("{min}m"),
        (min, sec) => format!("{min}m {sec}s"),
    }
}

/// Warns for each (ScaledObject with a rhythm, NodePool its target's pods land on) whose
/// `consolidateAfter` removes the nodes before the typical next event.
pub fn consolidate_after_vs_event_period(
    inputs: &Inputs,
    fits: &Fits,
    activity: &Activity,
) -> Vec<CheckFinding> {
    let mut out = Vec::new();
    for (so, w) in inputs.scaled_targets() {
        let key = (so.value.namespace.clone(), so.value.name.clone());
        let Some(samples) = activity.samples.get(&key) else {
            continue;
        };
        let Some(wi) = inputs.workloads.iter().position(|x| std::ptr::eq(x, w)) else {
            continue;
        };
        let rhythm: Vec<i64> = gaps(samples)
            .into_iter()
            .filter(|g| *g <= LONG_GAP_MS)
            .collect();
        if rhythm.len() < MIN_GAPS {
            continue;
        }
        let window_ms = i64::from(window_secs(&so.value.config, u32::MAX)) * 1000;
        // How long the pods' nodes sit without them before the next event.
        let idle: Vec<i64> = rhythm.iter().map(|g| g - window_ms).collect();
        let (Some(median_gap), Some(median_idle), Some(p75_idle)) = (
            quantile(&rhythm, 0.5),
            quantile(&idle, 0.5),
            quantile(&idle, 0.75),
        ) else {
            continue;
        };
        if median_idle <= 0 {
            // The pods are still there when the next event comes: nothing for nodes to do.
            continue;
        }
        for pi in fits.landing(wi) {
            let p = &inputs.nodepools[pi];
            let Some(after) = p.value.disruption.consolidate_after else {
                continue;
            };
            let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
            if after_ms >= median_idle {
                continue;
            }
            let suggested_min = (p75_idle / 1000).div_euclid(60) + 1;
            let relaunched = idle.iter().filter(|i| **i > after_ms).count();
            out.push(CheckFinding {
                rule: Rule::ConsolidateAfterVsEventPeriod,
                severity: Severity::Warning,
                objects: vec![
                    p.at("spec.disruption.consolidateAfter"),
                    so.at("spec.cooldownPeriod"),
                    w.at(""),
                ],
                message: format!(
                    "{} saw {} events {} apart (median over {} gaps in {}); its pods leave \
                     {} after an event ends (cooldownPeriod / HPA scale-down stabilization) \
                     and {} removes their nodes {} later (consolidateAfter), so in {} of the \
                     {} gaps the nodes were gone before the next event and its pods waited \
                     for new ones",
                    so.display(),
                    rhythm.len() + 1,
                    duration(median_gap),
                    rhythm.len(),
                    activity.range,
                    duration(window_ms),
                    p.display(),
                    duration(after_ms),
                    relaunched,
                    rhythm.len(),
                ),
                fix: format!(
                    "set spec.disruption.consolidateAfter of {} to {suggested_min}m, slightly \
                     longer than the observed idle time between events ({} for three gaps in \
                     four), or keep warm capacity for the first pods with the NodePool \
                     annotation tandem.dev/headroom",
                    p.display(),
                    duration(p75_idle),
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fit;
    use super::super::test_support::{
        SPOT_POOL, deployment, inputs, join, scaled_object, spot_pod,
    };
    use super::*;

    /// Active for `on` ms every `every` ms from 0 to `until`, sampled every 30 s.
    fn bursts(every: i64, on: i64, until: i64) -> Vec<(i64, bool)> {
        (0..=until / 30_000)
            .map(|i| {
                let t = i * 30_000;
                (t, t % every < on)
            })
            .collect()
    }

    fn found(pool: &str, samples: Vec<(i64, bool)>) -> Vec<CheckFinding> {
        let i = inputs(&join(&[
            pool,
            &deployment(&spot_pod("256m", "512Mi")),
            &scaled_object(
                "  cooldownPeriod: 60\n  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        scaleDown:\n          stabilizationWindowSeconds: 60\n",
            ),
        ]));
        let mut activity = Activity {
            range: "the last 6h".into(),
            ..Activity::default()
        };
        let so = &i.scaled_objects[0].value;
        activity
            .samples
            .insert((so.namespace.clone(), so.name.clone()), samples);
        consolidate_after_vs_event_period(&i, &fit::fits(&i), &activity)
    }

    #[test]
    fn gaps_run_from_the_end_of_one_event_to_the_start_of_the_next() {
        let s = [
            (0, false),
            (10, true),
            (20, true),
            (30, false),
            (40, false),
            (50, true),
            (60, false),
        ];
        assert_eq!(gaps(&s), vec![30]);
        assert!(gaps(&[(0, true), (10, true)]).is_empty());
        assert_eq!(quantile(&[5, 1, 3, 2, 4], 0.5), Some(3));
        assert_eq!(quantile(&[5, 1, 3, 2, 4], 0.75), Some(4));
        assert_eq!(duration(90_000), "1m 30s");
    }

    #[test]
    fn seed_002_bursts_every_12_minutes_against_a_1m_consolidate_after() {
        // Bursts of 4 min every 12 min for 6 h: 8 min gaps; the pods leave 1 min after each.
        let f = found(SPOT_POOL, bursts(12 * 60_000, 4 * 60_000, 6 * 3_600_000));
        assert_eq!(f.len(), 1, "{f:#?}");
        let f = &f[0];
        assert_eq!(f.rule.id(), "consolidate-after-vs-event-period");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("8m 30s apart"), "{}", f.message);
        assert!(f.message.contains("in 30 of the 30 gaps"), "{}", f.message);
        assert!(
            f.fix.contains("consolidateAfter of NodePool spot to 8m"),
            "{}",
            f.fix
        );
        assert_eq!(
            f.objects
                .iter()
                .map(|o| o.kind.as_str())
                .collect::<Vec<_>>(),
            ["NodePool", "ScaledObject", "Deployment"]
        );
    }

    #[test]
    fn a_long_enough_consolidate_after_rare_events_or_no_rhythm_are_fine() {
        let every_12m = bursts(12 * 60_000, 4 * 60_000, 6 * 3_600_000);
        let pool = SPOT_POOL.replace("consolidateAfter: 1m", "consolidateAfter: 10m");
        assert!(found(&pool, every_12m.clone()).is_empty());
        // Hourly events: idle periods worth consolidating.
        assert!(found(SPOT_POOL, bursts(3_600_000, 5 * 60_000, 6 * 3_600_000)).is_empty());
        // One gap is no rhythm.
        assert!(found(SPOT_POOL, bursts(12 * 60_000, 4 * 60_000, 13 * 60_000)).is_empty());
        // Gaps shorter than the pod layer's window: the pods never leave.
        assert!(found(SPOT_POOL, bursts(2 * 60_000, 90_000, 3_600_000)).is_empty());
    }
}
