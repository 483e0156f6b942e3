//! ScaledJob: create Jobs from a template as events arrive, one Job per unit of work.
//!
//! Upstream: keda `apis/keda/v1alpha1/scaledjob_types.go` (@8b4f083c).

use super::{DEFAULT_MAX_REPLICA_COUNT, DEFAULT_POLLING_INTERVAL, ScaleTrigger, TriggerActivity};
use crate::condition::Condition;
use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// KEDA's default for both job history limits.
pub const DEFAULT_JOBS_HISTORY_LIMIT: i32 = 100;

/// Desired state of a ScaledJob.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "ScaledJob",
    plural = "scaledjobs",
    singular = "scaledjob",
    shortname = "sj",
    namespaced,
    status = "ScaledJobStatus",
    derive = "PartialEq",
    doc = "ScaledJob is the Schema for the scaledjobs API",
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
pub struct ScaledJobSpec {
    /// The Job template (batch/v1 JobSpec); pod restartPolicy defaults to OnFailure.
    pub job_target_ref: JobSpec,
    /// Seconds between polls (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub polling_interval: Option<i32>,
    /// Finished successful Jobs kept (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub successful_jobs_history_limit: Option<i32>,
    /// Finished failed Jobs kept (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failed_jobs_history_limit: Option<i32>,
    /// Container whose environment feeds `*FromEnv` metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_source_container_name: Option<String>,
    /// Jobs kept running even without events (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replica_count: Option<i32>,
    /// Maximum concurrent Jobs (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replica_count: Option<i32>,
    /// Deprecated form of `rollout.strategy`; wins when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["gradual", "immediate"]))]
    pub rollout_strategy: Option<String>,
    /// What happens to running Jobs when the ScaledJob changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// How many Jobs to create for a queue length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_strategy: Option<ScalingStrategy>,
    /// The event sources.
    #[schemars(length(min = 1))]
    pub triggers: Vec<ScaleTrigger>,
}

impl ScaledJobSpec {
    /// Polling interval with KEDA's default applied.
    pub fn polling_interval_or_default(&self) -> i32 {
        self.polling_interval.unwrap_or(DEFAULT_POLLING_INTERVAL)
    }
    /// Maximum Jobs with KEDA's default applied.
    pub fn max_replica_count_or_default(&self) -> i32 {
        self.max_replica_count.unwrap_or(DEFAULT_MAX_REPLICA_COUNT)
    }
    /// Minimum Jobs with KEDA's default applied; clamped to the maximum as KEDA does.
    pub fn min_replica_count_or_default(&self) -> i32 {
        self.min_replica_count
            .unwrap_or(0)
            .min(self.max_replica_count_or_default())
    }
    /// Successful-history limit with KEDA's default applied.
    pub fn successful_jobs_history_limit_or_default(&self) -> i32 {
        self.successful_jobs_history_limit
            .unwrap_or(DEFAULT_JOBS_HISTORY_LIMIT)
    }
    /// Failed-history limit with KEDA's default applied.
    pub fn failed_jobs_history_limit_or_default(&self) -> i32 {
        self.failed_jobs_history_limit
            .unwrap_or(DEFAULT_JOBS_HISTORY_LIMIT)
    }
}

/// Rollout settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// `gradual` keeps old Jobs; anything else deletes them on update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["gradual", "immediate"]))]
    pub strategy: Option<String>,
    /// Deletion propagation for old Jobs (default `background`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["foreground", "background"]))]
    pub propagation_policy: Option<String>,
}

/// Job-count strategy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingStrategy {
    /// `default`, `custom`, `accurate` or `eager`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["default", "custom", "accurate", "eager"]))]
    pub strategy: Option<String>,
    /// `custom`: subtracted from the queue length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_scaling_queue_length_deduction: Option<i32>,
    /// `custom`: fraction of running Jobs subtracted (a float as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_scaling_running_job_percentage: Option<String>,
    /// Pod conditions that must all be True for a Job to count as not pending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_pod_conditions: Vec<String>,
    /// How several triggers combine: `min`, `avg`, `sum` or `max` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["min", "avg", "sum", "max"]))]
    pub multiple_scalers_calculation: Option<String>,
}

/// Observed state of a ScaledJob.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaledJobStatus {
    /// Last time any trigger was active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_time: Option<Time>,
    /// Ready, Active, Paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Paused state as a string; upstream's JSON key is capitalised (`Paused`).
    #[serde(default, rename = "Paused", skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
    /// Comma-joined unique trigger types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers_types: Option<String>,
    /// Comma-joined unique authenticationRef names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentications_types: Option<String>,
    /// External metric names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_metric_names: Vec<String>,
    /// Per external metric: is its trigger active.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub triggers_activity: BTreeMap<String, TriggerActivity>,
}
