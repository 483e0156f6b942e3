//! ScaledObject: scale a Deployment/StatefulSet/any `/scale` target on external events,
//! through an HPA named `keda-hpa-<name>` plus 0↔1 activation done by the pod layer.
//!
//! Upstream: keda `apis/keda/v1alpha1/scaledobject_types.go` (@8b4f083c).

use super::{
    DEFAULT_COOLDOWN_PERIOD, DEFAULT_MAX_REPLICA_COUNT, DEFAULT_MIN_REPLICA_COUNT,
    DEFAULT_POLLING_INTERVAL, HealthStatus, ScaleTrigger, TriggerActivity,
};
use crate::condition::Condition;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Desired state of a ScaledObject.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "ScaledObject",
    plural = "scaledobjects",
    singular = "scaledobject",
    shortname = "so",
    namespaced,
    status = "ScaledObjectStatus",
    derive = "PartialEq",
    doc = "ScaledObject is a specification for a ScaledObject resource",
    printcolumn(
        name = "ScaleTargetKind",
        type_ = "string",
        json_path = ".status.scaleTargetKind"
    ),
    printcolumn(
        name = "ScaleTargetName",
        type_ = "string",
        json_path = ".spec.scaleTargetRef.name"
    ),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minReplicaCount"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicaCount"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Active",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Active\")].status"
    ),
    printcolumn(
        name = "Fallback",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Fallback\")].status"
    ),
    printcolumn(
        name = "Paused",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Paused\")].status"
    ),
    printcolumn(
        name = "Triggers",
        type_ = "string",
        json_path = ".status.triggersTypes"
    ),
    printcolumn(
        name = "Authentications",
        type_ = "string",
        json_path = ".status.authenticationsTypes"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)",
    "message": "minReplicaCount must be less than or equal to maxReplicaCount"
}]))]
pub struct ScaledObjectSpec {
    /// The workload to scale; any kind with a `/scale` subresource.
    pub scale_target_ref: ScaleTarget,
    /// Seconds between trigger polls (default 30); governs 0↔1 activation latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub polling_interval: Option<i32>,
    /// Cooldown after creation before the first scale to zero (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub initial_cooldown_period: Option<i32>,
    /// Seconds after the last active trigger before scaling to zero (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cooldown_period: Option<i32>,
    /// Replicas while idle (all triggers inactive); must be below min.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub idle_replica_count: Option<i32>,
    /// Lower bound (default 0 = scale to zero allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replica_count: Option<i32>,
    /// Upper bound (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replica_count: Option<i32>,
    /// HPA name/behavior, restore-on-delete, scalingModifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced: Option<AdvancedConfig>,
    /// The event sources.
    #[schemars(length(min = 1))]
    pub triggers: Vec<ScaleTrigger>,
    /// Replicas to hold when triggers keep failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

impl ScaledObjectSpec {
    /// Polling interval with KEDA's default applied.
    pub fn polling_interval_or_default(&self) -> i32 {
        self.polling_interval.unwrap_or(DEFAULT_POLLING_INTERVAL)
    }
    /// Cooldown with KEDA's default applied.
    pub fn cooldown_period_or_default(&self) -> i32 {
        self.cooldown_period.unwrap_or(DEFAULT_COOLDOWN_PERIOD)
    }
    /// Initial cooldown with KEDA's default (0) applied.
    pub fn initial_cooldown_period_or_default(&self) -> i32 {
        self.initial_cooldown_period.unwrap_or(0)
    }
    /// Minimum replicas with KEDA's default applied.
    pub fn min_replica_count_or_default(&self) -> i32 {
        self.min_replica_count.unwrap_or(DEFAULT_MIN_REPLICA_COUNT)
    }
    /// Maximum replicas with KEDA's default applied.
    pub fn max_replica_count_or_default(&self) -> i32 {
        self.max_replica_count.unwrap_or(DEFAULT_MAX_REPLICA_COUNT)
    }
}

/// The scaled workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTarget {
    /// Workload name (same namespace).
    #[schemars(length(min = 1))]
    pub name: String,
    /// Workload API version (default `apps/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Workload kind (default `Deployment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Container whose environment feeds `*FromEnv` metadata (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_source_container_name: Option<String>,
}

impl ScaleTarget {
    /// API version with KEDA's default applied.
    pub fn api_version_or_default(&self) -> &str {
        self.api_version.as_deref().unwrap_or("apps/v1")
    }
    /// Kind with KEDA's default applied.
    pub fn kind_or_default(&self) -> &str {
        self.kind.as_deref().unwrap_or("Deployment")
    }
}

/// Advanced ScaledObject settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedConfig {
    /// Settings of the generated HPA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizontal_pod_autoscaler_config: Option<HorizontalPodAutoscalerConfig>,
    /// On delete, set the target back to the replicas it had before KEDA took over.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restore_to_original_replica_count: bool,
    /// Combine triggers with a formula into one composite metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_modifiers: Option<ScalingModifiers>,
}

/// Settings of the HPA the pod layer owns.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct HorizontalPodAutoscalerConfig {
    /// HPA name (default `keda-hpa-<scaledobject>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Copied verbatim into the HPA's `spec.behavior`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// A formula over named triggers, exposed to the HPA as `composite-metric`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingModifiers {
    /// expr-lang formula over trigger names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    /// Target value (a float as a string; must be > 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Activation threshold (a float as a string; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_target: Option<String>,
    /// `AverageValue` (default) or `Value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["AverageValue", "Value"]))]
    pub metric_type: Option<String>,
}

/// What to do when triggers keep failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    /// Failures (per metric) before fallback starts.
    #[schemars(range(min = 0))]
    pub failure_threshold: i32,
    /// Replicas to hold during fallback.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// How `replicas` combines with the current count (CRD default `static`).
    #[serde(default)]
    pub behavior: FallbackBehavior,
}

/// Fallback behaviours (keda.md §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FallbackBehavior {
    /// Exactly `replicas`.
    #[default]
    Static,
    /// Keep the current count.
    CurrentReplicas,
    /// The higher of current and `replicas`.
    CurrentReplicasIfHigher,
    /// The lower of current and `replicas`.
    CurrentReplicasIfLower,
    /// Evaluate the scalingModifiers formula with failing triggers at their fallback.
    ScalingModifiers,
}

/// Observed state of a ScaledObject.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectStatus {
    /// Resolved target kind, e.g. `apps/v1.Deployment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target_kind: Option<String>,
    /// Resolved target group/version/kind/resource.
    #[serde(
        default,
        rename = "scaleTargetGVKR",
        skip_serializing_if = "Option::is_none"
    )]
    pub scale_target_gvkr: Option<GroupVersionKindResource>,
    /// Target replicas seen at first reconcile, restored on delete if asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_replica_count: Option<i32>,
    /// Last time any trigger was active; cooldown counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_time: Option<Time>,
    /// External metric names served to the HPA (`s0-…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_metric_names: Vec<String>,
    /// Resource metrics (`cpu`, `memory`) in the HPA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_metric_names: Vec<String>,
    /// `composite-metric` when scalingModifiers are active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite_scaler_name: Option<String>,
    /// Ready, Active, Fallback, Paused, HPAActive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per-metric health, for fallback.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub health: BTreeMap<String, HealthStatus>,
    /// Replica count held by the `paused-replicas` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_replica_count: Option<i32>,
    /// Name of the HPA in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_name: Option<String>,
    /// Comma-joined unique trigger types (printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers_types: Option<String>,
    /// Comma-joined unique authenticationRef names (printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentications_types: Option<String>,
    /// Per external metric: is its trigger active.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub triggers_activity: BTreeMap<String, TriggerActivity>,
}

/// A fully resolved scale target type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupVersionKindResource {
    /// API group (empty for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name.
    pub resource: String,
}
