//! Where the target's replica count is heading: the pod layer's half of predictive
//! provisioning (the node layer's half is `nodescaler::provisioning::anticipation`).
//!
//! Upstream, a burst reaches nodes in steps: KEDA's poll activates 0 → 1; the HPA reads the
//! metric at its next sync (up to 15 s later) and climbs by its scale-up policy (default: the
//! larger of +4 pods and +100 % per 15 s), so 0 → 50 takes five syncs; each step's pods wait
//! for the scheduler's verdict and Karpenter's batch window before a node is even asked for.
//! The pod layer knows the end of that climb the moment it reads the metric: the HPA formula
//! per trigger, clamped to min/max, is exactly the count the HPA is walking towards. That count
//! is the forecast; the node layer plans capacity for it at once.

use crate::activation::Pause;
use crate::decision::{Decision, ScaledObjectConfig};

/// Whether predictive provisioning is on for a ScaledObject (annotation value `"false"` turns
/// it off; anything else, or no annotation, keeps it on).
pub const ANNOTATION: &str = "tandem.dev/predictive-provisioning";

/// The replica count the target is heading to after this tick, when it is above
/// `current_pods` (the pods that exist): `None` when nothing more is coming.
///
/// The count is the largest per-metric HPA proposal (or the scalingModifiers composite's),
/// clamped to `[max(minReplicaCount, 1), maxReplicaCount]`, and never below the tick's own
/// desired replicas. An inactive or paused object forecasts nothing: the pod layer will not
/// scale it, whatever the metric says.
pub fn heading_to(
    config: &ScaledObjectConfig,
    decision: &Decision,
    current_pods: u32,
) -> Option<u32> {
    if config.annotations.pause != Pause::None || config.annotations.paused_scale_out {
        return None;
    }
    let mut target = decision.desired_replicas;
    if decision.active {
        let proposals = decision
            .composite
            .iter()
            .chain(
                decision
                    .triggers
                    .iter()
                    .filter(|_| decision.composite.is_none()),
            )
            .filter_map(|t| t.replicas);
        if let Some(best) = proposals.max() {
            let floor = config.activation.min_replicas.max(1);
            let ceiling = config.activation.max_replicas.max(floor);
            target = target.max(best.clamp(floor, ceiling));
        }
    }
    (target > current_pods).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TimeMs;
    use crate::activation::ActivationConfig;
    use crate::decision::{
        Observation, PodLayerState, TriggerConfig, TriggerKind, TriggerObservation, decide,
    };
    use crate::fallback::TargetType;

    /// Seed 002's consumer: queueLength 5, 0..50.
    fn seed_002() -> ScaledObjectConfig {
        ScaledObjectConfig {
            activation: ActivationConfig {
                min_replicas: 0,
                max_replicas: 50,
                cooldown_secs: 300,
                ..ActivationConfig::default()
            },
            triggers: vec![TriggerConfig {
                metric_name: "s0-aws-sqs-queue-orders".into(),
                name: None,
                kind: TriggerKind::External {
                    target: 5.0,
                    target_type: TargetType::AverageValue,
                    activation_threshold: 0.0,
                },
            }],
            fallback: None,
            behavior: None,
            modifiers: None,
            annotations: Default::default(),
            created_at: TimeMs(0),
        }
    }

    fn tick(cfg: &ScaledObjectConfig, current: u32, messages: f64) -> Decision {
        let obs = Observation {
            current_replicas: current,
            status_replicas: current,
            ready_pods: current,
            triggers: vec![TriggerObservation {
                value: Some(messages),
                is_active: None,
            }],
        };
        decide(cfg, &obs, &PodLayerState::default(), TimeMs(1_000)).1
    }

    #[test]
    fn activation_from_zero_forecasts_where_the_hpa_will_go() {
        let cfg = seed_002();
        let d = tick(&cfg, 0, 250.0);
        assert_eq!(d.desired_replicas, 1, "KEDA itself only activates");
        assert_eq!(heading_to(&cfg, &d, 0), Some(50));
        // 1,000 messages would be 200 pods: maxReplicaCount holds it at 50.
        assert_eq!(heading_to(&cfg, &tick(&cfg, 0, 1_000.0), 0), Some(50));
        // Pods that exist already are not forecast again.
        assert_eq!(heading_to(&cfg, &tick(&cfg, 0, 250.0), 50), None);
    }

    #[test]
    fn the_climb_is_forecast_past_the_hpa_rate_limit() {
        let cfg = seed_002();
        let d = tick(&cfg, 5, 250.0);
        assert!(
            d.desired_replicas < 50,
            "the HPA climbs by policy: {}",
            d.desired_replicas
        );
        assert_eq!(heading_to(&cfg, &d, 5), Some(50));
    }

    #[test]
    fn idle_paused_or_shrinking_objects_forecast_nothing() {
        let cfg = seed_002();
        assert_eq!(heading_to(&cfg, &tick(&cfg, 0, 0.0), 0), None);
        assert_eq!(heading_to(&cfg, &tick(&cfg, 10, 5.0), 10), None);
        let mut paused = seed_002();
        paused.annotations.pause = Pause::Frozen;
        assert_eq!(heading_to(&paused, &tick(&paused, 0, 250.0), 0), None);
        let mut no_out = seed_002();
        no_out.annotations.paused_scale_out = true;
        assert_eq!(heading_to(&no_out, &tick(&no_out, 0, 250.0), 0), None);
    }
}
