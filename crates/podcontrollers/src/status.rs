//! ScaledObject status as pure functions: conditions with upstream's messages, kept
//! transition times, and the fields the pod layer owns (keda.md §2.2, §2.4).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tandem_api::condition::{Condition, ConditionStatus as ApiStatus};
use tandem_api::keda::v1alpha1::{HealthStatus, ScaledObjectStatus, TriggerActivity};
use tandem_podscaler::activation::{Condition as Cond, ConditionReason, ConditionStatus};
use tandem_podscaler::decision::{Decision, TriggerKind};
use tandem_podscaler::fallback::Health;

/// Ready=False reason for a ScaledObject the pod layer cannot run.
pub const CHECK_FAILED: &str = "ScaledObjectCheckFailed";

/// Upstream's message for a condition reason (`apis/keda/v1alpha1/condition_types.go`).
#[must_use]
pub fn message(reason: ConditionReason) -> &'static str {
    match reason {
        ConditionReason::ScaledObjectReady => {
            "ScaledObject is defined correctly and is ready for scaling"
        }
        ConditionReason::PartialTriggerError => {
            "Some triggers defined in ScaledObject are not working correctly"
        }
        ConditionReason::TriggerError => {
            "Triggers defined in ScaledObject are not working correctly"
        }
        ConditionReason::UnknownState => "State is unknown",
        ConditionReason::ScalerActive => "Scaling is performed because triggers are active",
        ConditionReason::ScalerNotActive => {
            "Scaling is not performed because triggers are not active"
        }
        ConditionReason::ScalerCooldown => "Scaler cooling down because triggers are not active",
        ConditionReason::FallbackExists => {
            "At least one trigger is falling back on this scaled object"
        }
        ConditionReason::NoFallbackFound => "No fallbacks are active on this scaled object",
        ConditionReason::ScaledObjectPaused => "ScaledObject is paused",
        ConditionReason::ScaledObjectUnpaused => "pause annotation removed for ScaledObject",
    }
}

fn api_status(s: ConditionStatus) -> ApiStatus {
    match s {
        ConditionStatus::True => ApiStatus::True,
        ConditionStatus::False => ApiStatus::False,
        ConditionStatus::Unknown => ApiStatus::Unknown,
    }
}

/// One condition, keeping `lastTransitionTime` from `previous` when the status is unchanged.
#[must_use]
pub fn condition(
    type_: &str,
    status: ApiStatus,
    reason: &str,
    message: String,
    previous: &[Condition],
    now: Time,
) -> Condition {
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(now);
    Condition {
        type_: type_.to_owned(),
        status,
        observed_generation: None,
        last_transition_time: Some(since),
        reason: Some(reason.to_owned()),
        message: Some(message),
    }
}

/// The four conditions of a decision. `trigger_error` is the first failing trigger's error
/// text, appended to a Ready message that is not True, so the user sees why.
#[must_use]
pub fn conditions(
    decided: &[Cond],
    trigger_error: Option<&str>,
    previous: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    decided
        .iter()
        .map(|c| {
            let mut text = message(c.reason).to_owned();
            if c.kind.as_str() == "Ready"
                && c.status != ConditionStatus::True
                && let Some(e) = trigger_error
            {
                text = format!("{text}: {e}");
            }
            condition(
                c.kind.as_str(),
                api_status(c.status),
                c.reason.as_str(),
                text,
                previous,
                now.clone(),
            )
        })
        .collect()
}

/// The conditions of a ScaledObject the pod layer refuses to run: Ready=False with
/// `ScaledObjectCheckFailed` and the reason; Active Unknown.
#[must_use]
pub fn check_failed(message: &str, previous: &[Condition], now: &Time) -> Vec<Condition> {
    vec![
        condition(
            "Ready",
            ApiStatus::False,
            CHECK_FAILED,
            message.to_owned(),
            previous,
            now.clone(),
        ),
        condition(
            "Active",
            ApiStatus::Unknown,
            "UnknownState",
            "State is unknown".to_owned(),
            previous,
            now.clone(),
        ),
        condition(
            "Fallback",
            ApiStatus::False,
            "NoFallbackFound",
            "No fallbacks are active on this scaled object".to_owned(),
            previous,
            now.clone(),
        ),
        condition(
            "Paused",
            ApiStatus::False,
            "ScaledObjectUnpaused",
            "pause annotation removed for ScaledObject".to_owned(),
            previous,
            now.clone(),
        ),
    ]
}

/// `HPAActive` from the HPA's `ScalingActive` condition (keda.md §2.4): True `HPAActive`,
/// True `ScalingDisabled` when the HPA stands aside because the target is at 0, else False
/// with the HPA's reason (`HPAMetricsUnavailable` when it gives none). `None` until the HPA
/// reports the condition.
#[must_use]
pub fn hpa_active(
    hpa: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
    previous: &[Condition],
    now: &Time,
) -> Option<Condition> {
    let c = hpa
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "ScalingActive")?;
    let reason = c.reason.as_deref().filter(|r| !r.is_empty());
    let (status, reason) = match (c.status.as_str(), reason) {
        ("True", _) => (ApiStatus::True, "HPAActive"),
        (_, Some("ScalingDisabled")) => (ApiStatus::True, "ScalingDisabled"),
        (_, Some(r)) => (ApiStatus::False, r),
        (_, None) => (ApiStatus::False, "HPAMetricsUnavailable"),
    };
    Some(condition(
        "HPAActive",
        status,
        reason,
        c.message.clone().unwrap_or_default(),
        previous,
        now.clone(),
    ))
}

/// `status.health` from podscaler's health record.
#[must_use]
pub fn health(h: &Health) -> BTreeMap<String, HealthStatus> {
    h.entries
        .iter()
        .map(|(name, e)| {
            (
                name.clone(),
                HealthStatus {
                    number_of_failures: Some(i32::try_from(e.failures).unwrap_or(i32::MAX)),
                    status: Some(e.status.as_str().to_owned()),
                },
            )
        })
        .collect()
}

/// The fields of the status that follow from the decision alone; the caller adds identity
/// (target, HPA name, original replicas) and conditions.
#[must_use]
pub fn from_decision(
    config: &tandem_podscaler::decision::ScaledObjectConfig,
    decision: &Decision,
    health_record: &Health,
) -> ScaledObjectStatus {
    let mut status = ScaledObjectStatus::default();
    for t in &config.triggers {
        match t.kind {
            TriggerKind::External { .. } => {
                if config.modifiers.is_none() {
                    status.external_metric_names.push(t.metric_name.clone());
                }
            }
            TriggerKind::Resource { .. } => {
                status.resource_metric_names.push(t.metric_name.clone())
            }
        }
    }
    if config.modifiers.is_some() {
        status.composite_scaler_name =
            Some(tandem_podscaler::modifiers::COMPOSITE_METRIC_NAME.to_owned());
        status.external_metric_names =
            vec![tandem_podscaler::modifiers::COMPOSITE_METRIC_NAME.to_owned()];
    }
    status.health = health(health_record);
    status.triggers_activity = decision
        .triggers
        .iter()
        .filter(|t| t.target_type.is_some())
        .map(|t| {
            (
                t.metric_name.clone(),
                TriggerActivity {
                    is_active: t.active,
                },
            )
        })
        .collect();
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use tandem_podscaler::activation::ConditionType;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let before = vec![condition(
            "Ready",
            ApiStatus::True,
            "ScaledObjectReady",
            "x".into(),
            &[],
            t(1),
        )];
        let same = condition(
            "Ready",
            ApiStatus::True,
            "ScaledObjectReady",
            "y".into(),
            &before,
            t(9),
        );
        assert_eq!(same.last_transition_time, Some(t(1)));
        let flipped = condition(
            "Ready",
            ApiStatus::False,
            "TriggerError",
            "z".into(),
            &before,
            t(9),
        );
        assert_eq!(flipped.last_transition_time, Some(t(9)));
    }

    #[test]
    fn a_failing_ready_condition_carries_the_trigger_error() {
        let decided = [Cond {
            kind: ConditionType::Ready,
            status: ConditionStatus::False,
            reason: ConditionReason::TriggerError,
        }];
        let c = conditions(
            &decided,
            Some("rabbitmq trigger 0: unauthorized"),
            &[],
            &t(1),
        );
        assert_eq!(c[0].reason.as_deref(), Some("TriggerError"));
        assert_eq!(
            c[0].message.as_deref(),
            Some(
                "Triggers defined in ScaledObject are not working correctly: rabbitmq trigger 0: unauthorized"
            )
        );
    }

    #[test]
    fn status_lists_metrics_health_and_activity_from_the_decision() {
        use tandem_podscaler::activation::ActivationConfig;
        use tandem_podscaler::decision::{
            Observation, PodLayerState, ScaledObjectConfig, TriggerConfig, TriggerObservation,
            decide,
        };
        use tandem_podscaler::fallback::TargetType;
        let config = ScaledObjectConfig {
            activation: ActivationConfig::default(),
            triggers: vec![
                TriggerConfig {
                    metric_name: "s0-rabbitmq-q".into(),
                    name: None,
                    kind: TriggerKind::External {
                        target: 10.0,
                        target_type: TargetType::AverageValue,
                        activation_threshold: 0.0,
                    },
                },
                TriggerConfig {
                    metric_name: "cpu".into(),
                    name: None,
                    kind: TriggerKind::Resource { target: 50 },
                },
            ],
            fallback: None,
            behavior: None,
            modifiers: None,
            annotations: Default::default(),
            created_at: tandem_podscaler::TimeMs(0),
        };
        let obs = Observation {
            current_replicas: 1,
            status_replicas: 1,
            ready_pods: 1,
            triggers: vec![TriggerObservation::failed(), TriggerObservation::value(0.0)],
        };
        let (state, d) = decide(
            &config,
            &obs,
            &PodLayerState::default(),
            tandem_podscaler::TimeMs(1),
        );
        let st = from_decision(&config, &d, &state.health);
        assert_eq!(st.external_metric_names, vec!["s0-rabbitmq-q"]);
        assert_eq!(st.resource_metric_names, vec!["cpu"]);
        let h = &st.health["s0-rabbitmq-q"];
        assert_eq!(
            (h.number_of_failures, h.status.as_deref()),
            (Some(1), Some("Failing"))
        );
        assert!(!st.triggers_activity["s0-rabbitmq-q"].is_active);
        assert!(!st.triggers_activity.contains_key("cpu"));
    }

    #[test]
    fn hpa_active_mirrors_scaling_active() {
        let hpa = |status: &str, reason: &str| {
            serde_json::from_value::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(
                serde_json::json!({
                    "metadata": {"name": "h"},
                    "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3},
                    "status": {"desiredReplicas": 1, "conditions": [{
                        "type": "ScalingActive", "status": status, "reason": reason,
                        "message": "m"}]},
                }),
            )
            .unwrap()
        };
        let r = |h| {
            let c = hpa_active(&h, &[], &t(1)).unwrap();
            (c.status, c.reason.unwrap())
        };
        assert_eq!(
            r(hpa("True", "ValidMetricFound")),
            (ApiStatus::True, "HPAActive".into())
        );
        assert_eq!(
            r(hpa("False", "ScalingDisabled")),
            (ApiStatus::True, "ScalingDisabled".into())
        );
        assert_eq!(
            r(hpa("False", "FailedGetExternalMetric")),
            (ApiStatus::False, "FailedGetExternalMetric".into())
        );
        assert_eq!(
            r(hpa("False", "")),
            (ApiStatus::False, "HPAMetricsUnavailable".into())
        );
    }

    #[test]
    fn check_failed_says_why_in_ready() {
        let c = check_failed("spec.triggers[0].type: no rule", &[], &t(1));
        assert_eq!(c[0].type_, "Ready");
        assert_eq!(c[0].status, ApiStatus::False);
        assert_eq!(c[0].reason.as_deref(), Some(CHECK_FAILED));
        assert_eq!(
            c[0].message.as_deref(),
            Some("spec.triggers[0].type: no rule")
        );
    }
}
