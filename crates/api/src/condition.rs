//! The status condition shared by every kind, in the shape of Kubernetes' `metav1.Condition`.
//!
//! Karpenter writes full `metav1.Condition`s (lastTransitionTime, reason and message always
//! set); KEDA writes only type, status, reason and message, and omits the reason on its initial
//! `Unknown` conditions. One type reads both: only `type` and `status` are required, the rest is
//! optional and kept exactly as found so a status read and written back is unchanged.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Pattern of a condition `type` (a qualified name), as in `metav1.Condition`.
pub const CONDITION_TYPE_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

/// Pattern of a condition `reason`; empty is allowed because KEDA's initial conditions and
/// Karpenter's NodeClaim CRD allow it.
pub const CONDITION_REASON_PATTERN: &str = r"^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?|)$";

/// One observation about an object (`Ready`, `Active`, `Launched`, `Drifted` …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's name; unique within one object's list.
    #[serde(rename = "type")]
    #[schemars(length(max = 316), regex(pattern = CONDITION_TYPE_PATTERN))]
    pub type_: String,
    /// Whether the condition holds.
    pub status: ConditionStatus,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
    /// When `status` last changed; Karpenter's timers (e.g. Initialized → consolidateAfter)
    /// count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Machine-readable CamelCase cause, used as the Event reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), regex(pattern = CONDITION_REASON_PATTERN))]
    pub reason: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub message: Option<String>,
}

impl Condition {
    /// Whether this condition is `True`; what printer columns and readiness checks test.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// The tri-state of a condition, spelled as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not yet known (initial value in KEDA and Karpenter).
    Unknown,
}

impl fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        })
    }
}

/// Finds the condition of the given type; lists are keyed by type upstream.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keda_conditions_without_timestamps() {
        let c: Condition = serde_yaml_ng::from_str("type: Ready\nstatus: Unknown").unwrap();
        assert_eq!(c.status, ConditionStatus::Unknown);
        assert_eq!(c.reason, None);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"type": "Ready", "status": "Unknown"})
        );
    }

    #[test]
    fn reads_karpenter_conditions_with_every_field() {
        let yaml = "type: Launched\nstatus: \"True\"\nreason: Launched\nmessage: \"\"\n\
                    lastTransitionTime: \"2024-01-01T01:01:01Z\"\nobservedGeneration: 1";
        let c: Condition = serde_yaml_ng::from_str(yaml).unwrap();
        assert!(c.is_true());
        assert_eq!(c.message.as_deref(), Some(""));
        assert_eq!(c.observed_generation, Some(1));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["lastTransitionTime"], "2024-01-01T01:01:01Z");
    }

    #[test]
    fn find_by_type() {
        let list: Vec<Condition> = serde_yaml_ng::from_str(
            "- {type: Ready, status: \"False\"}\n- {type: Active, status: \"True\"}",
        )
        .unwrap();
        assert!(find(&list, "Active").is_some_and(Condition::is_true));
        assert!(find(&list, "Paused").is_none());
    }
}
