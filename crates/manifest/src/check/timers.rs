//! `cooldown-vs-consolidate-after`: the two layers' timers, side by side (seed 002's gotcha).
//!
//! After a scale-down, the pod layer reverses it at once if the load returns, and a load that
//! just fell is the load most likely to return. The window in which it does so is the longer of
//! the ScaledObject's `cooldownPeriod` and the HPA's scale-down stabilization window (300 s by
//! default): the timers the user tuned to the load's rhythm (`podscaler::comeback::window_secs`,
//! the same window Tandem's coordination uses). A NodePool whose `consolidateAfter` is shorter
//! removes the freed nodes inside that window, and the returning pods wait for new ones: the
//! oscillation seed 002 describes ("2-5 minutes is safer than 1 minute").

use tandem_podscaler::comeback::window_secs;
use tandem_podscaler::hpa::DEFAULT_DOWNSCALE_STABILIZATION_SECS;

use super::fit::Fits;
use super::{CheckFinding, Inputs, Rule, Severity};

/// Warns for each (ScaledObject, NodePool its target's pods can land on) pair whose
/// `consolidateAfter` is shorter than the pod layer's comeback window. Pools with
/// `consolidateAfter: Never` do not consolidate and are fine.
pub fn cooldown_vs_consolidate_after(inputs: &Inputs, fits: &Fits) -> Vec<CheckFinding> {
    let mut out = Vec::new();
    for (so, w) in inputs.scaled_targets() {
        let Some(wi) = inputs.workloads.iter().position(|x| std::ptr::eq(x, w)) else {
            continue;
        };
        let config = &so.value.config;
        let window = u64::from(window_secs(config, u32::MAX));
        let cooldown = config.activation.cooldown_secs;
        let stabilization = config
            .behavior
            .as_ref()
            .and_then(|b| b.scale_down.as_ref())
            .and_then(|r| r.stabilization_window_secs)
            .unwrap_or(DEFAULT_DOWNSCALE_STABILIZATION_SECS);
        for pi in fits.landing(wi) {
            let p = &inputs.nodepools[pi];
            let Some(after) = p.value.disruption.consolidate_after else {
                continue;
            };
            if after.as_secs() >= window {
                continue;
            }
            let minutes = window.div_ceil(60);
            let tandem = if p.value.coordinated {
                "KEDA + Karpenter do nothing about it, Tandem's pod-layer coordination holds \
                 such nodes for up to 10 min of the window"
            } else {
                "the NodePool opted out of Tandem's pod-layer coordination, so nothing holds \
                 such nodes"
            };
            out.push(CheckFinding {
                rule: Rule::CooldownVsConsolidateAfter,
                severity: Severity::Warning,
                objects: vec![
                    p.at("spec.disruption.consolidateAfter"),
                    so.at("spec.cooldownPeriod"),
                    w.at(""),
                ],
                message: format!(
                    "{} can remove a node {} s after its pods leave (consolidateAfter), but {} \
                     brings scaled-down pods of {} back for up to {window} s (cooldownPeriod \
                     {cooldown} s, HPA scale-down stabilization {stabilization} s): under \
                     fluctuating load the freed nodes are removed and relaunched, and the \
                     returning pods wait for new nodes; {tandem}",
                    p.display(),
                    after.as_secs(),
                    so.display(),
                    w.display(),
                ),
                fix: format!(
                    "set spec.disruption.consolidateAfter of {} to at least {minutes}m (longer \
                     than the pod layer's {window} s window and than the expected gap between \
                     bursts), or shorten the ScaledObject's cooldownPeriod and \
                     advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.\
                     stabilizationWindowSeconds if the load really does not come back",
                    p.display()
                ),
            });
        }
    }
    out.extend(absent_targets(inputs));
    out
}

/// The same comparison, as info, for a ScaledObject whose target is not in the input: its pods
/// are unknown, so each untainted NodePool (one any pod can land on) with a shorter
/// `consolidateAfter` is named conditionally.
fn absent_targets(inputs: &Inputs) -> Vec<CheckFinding> {
    let mut out = Vec::new();
    for so in &inputs.scaled_objects {
        if inputs.target_of(&so.value).is_some() {
            continue;
        }
        let window = u64::from(window_secs(&so.value.config, u32::MAX));
        let mut pools: Vec<&super::Located<crate::convert::NodePool>> =
            inputs.nodepools.iter().collect();
        pools.retain(|p| {
            p.value.pool.taints.is_empty()
                && p.value
                    .disruption
                    .consolidate_after
                    .is_some_and(|d| d.as_secs() < window)
        });
        if pools.is_empty() {
            continue;
        }
        let target = format!(
            "{} {}/{}",
            so.value.target_kind, so.value.namespace, so.value.target_name
        );
        let names: Vec<String> = pools
            .iter()
            .map(|p| {
                format!(
                    "{} ({} s)",
                    p.display(),
                    p.value
                        .disruption
                        .consolidate_after
                        .map_or(0, |d| d.as_secs())
                )
            })
            .collect();
        let mut objects = vec![so.at("spec.scaleTargetRef")];
        objects.extend(
            pools
                .iter()
                .map(|p| p.at("spec.disruption.consolidateAfter")),
        );
        out.push(CheckFinding {
            rule: Rule::CooldownVsConsolidateAfter,
            severity: Severity::Info,
            objects,
            message: format!(
                "{target}, scaled by {}, is not in the input; if its pods land on {}, those \
                 nodes are consolidated sooner than the {window} s in which the pod layer brings \
                 scaled-down pods back, and returning pods wait for new nodes",
                so.display(),
                names.join(", ")
            ),
            fix: format!(
                "check {target} with its manifest; if it runs on these NodePools, set their \
                 spec.disruption.consolidateAfter to at least {}m",
                window.div_ceil(60)
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::check_inputs;
    use super::super::test_support::{
        SPOT_POOL, deployment, inputs, join, scaled_object, spot_pod,
    };
    use super::*;

    fn found(pool: &str, so_extra: &str) -> Vec<CheckFinding> {
        let i = inputs(&join(&[
            pool,
            &deployment(&spot_pod("256m", "512Mi")),
            &scaled_object(so_extra),
        ]));
        check_inputs(&i)
            .into_iter()
            .filter(|f| f.rule == Rule::CooldownVsConsolidateAfter)
            .collect()
    }

    #[test]
    fn seed_002_timers_are_reported_with_the_hpa_window() {
        let f = found(SPOT_POOL, "  cooldownPeriod: 60\n");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message.contains("a node 60 s after"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("up to 300 s"), "{}", f[0].message);
        assert!(f[0].fix.contains("at least 5m"), "{}", f[0].fix);
        assert_eq!(f[0].objects[0].kind, "NodePool");
        assert_eq!(f[0].objects[1].kind, "ScaledObject");
        assert_eq!(f[0].objects[2].kind, "Deployment");
    }

    #[test]
    fn a_long_enough_consolidate_after_or_never_is_fine() {
        let pool = SPOT_POOL.replace("consolidateAfter: 1m", "consolidateAfter: 5m");
        assert!(found(&pool, "  cooldownPeriod: 60\n").is_empty());
        let never = SPOT_POOL.replace("consolidateAfter: 1m", "consolidateAfter: Never");
        assert!(found(&never, "").is_empty());
    }

    #[test]
    fn a_short_hpa_window_and_cooldown_leave_only_a_cooldown_longer_than_the_delay() {
        let behavior = "  cooldownPeriod: 30\n  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        scaleDown:\n          stabilizationWindowSeconds: 30\n";
        assert!(found(SPOT_POOL, behavior).is_empty());
        let longer = behavior.replace("cooldownPeriod: 30", "cooldownPeriod: 120");
        let f = found(SPOT_POOL, &longer);
        assert_eq!(f.len(), 1);
        assert!(f[0].fix.contains("at least 2m"), "{}", f[0].fix);
    }

    #[test]
    fn an_absent_target_names_untainted_short_pools_as_info() {
        let untainted = SPOT_POOL.replace(
            "      taints:\n      - key: intent\n        value: workload-split\n        effect: NoSchedule\n",
            "",
        );
        let i = inputs(&join(&[&untainted, &scaled_object("")]));
        let f: Vec<_> = cooldown_vs_consolidate_after(&i, &super::super::fit::fits(&i));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Info);
        assert!(
            f[0].message.contains("is not in the input"),
            "{}",
            f[0].message
        );
        let i = inputs(&join(&[SPOT_POOL, &scaled_object("")]));
        assert!(cooldown_vs_consolidate_after(&i, &super::super::fit::fits(&i)).is_empty());
    }

    #[test]
    fn pools_the_pods_cannot_use_are_not_compared() {
        let other = SPOT_POOL.replace("intent: apps", "intent: other");
        assert!(found(&other, "").is_empty());
    }
}
