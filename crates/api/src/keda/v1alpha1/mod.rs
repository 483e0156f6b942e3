//! `keda.sh/v1alpha1`: ScaledObject, ScaledJob, TriggerAuthentication and
//! ClusterTriggerAuthentication, with KEDA 2.x fields (keda.md §1, §2, §8).
//!
//! KEDA's defaults (polling 30 s, cooldown 300 s, min 0, max 100 …) are applied in code, not
//! by the CRD, and whether a field was set at all matters (webhook warnings, the idle/min
//! quirk of keda.md §4.1). So those fields stay `Option` and each kind offers accessors that
//! apply the default, rather than serde defaults that would erase the difference.

mod scaled_job;
mod scaled_object;
mod trigger_authentication;

pub use scaled_job::*;
pub use scaled_object::*;
pub use trigger_authentication::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// API group of this module's kinds.
pub const GROUP: &str = "keda.sh";

/// KEDA's default polling interval in seconds (code default, `scaledobject_types.go`).
pub const DEFAULT_POLLING_INTERVAL: i32 = 30;
/// KEDA's default cooldown in seconds.
pub const DEFAULT_COOLDOWN_PERIOD: i32 = 300;
/// KEDA's default minimum replicas.
pub const DEFAULT_MIN_REPLICA_COUNT: i32 = 0;
/// KEDA's default maximum replicas (also the HPA's maxReplicas when unset).
pub const DEFAULT_MAX_REPLICA_COUNT: i32 = 100;

/// One event source: `type` picks the scaler, `metadata` configures it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTrigger {
    /// Scaler type, e.g. `prometheus`, `aws-sqs-queue`, `rabbitmq`, `cpu`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    pub type_: String,
    /// Optional name, unique within the object; usable in scalingModifiers formulas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Serve the HPA from the last polled value instead of querying on each HPA request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_cached_metrics: bool,
    /// Scaler parameters; upstream is `map[string]string`, so values are strings
    /// (`queueLength: "5"`).
    pub metadata: BTreeMap<String, String>,
    /// Where secrets for this trigger come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_ref: Option<AuthenticationRef>,
    /// `AverageValue`, `Value` or `Utilization` (cpu/memory); unset means AverageValue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<String>,
}

/// Reference to a (Cluster)TriggerAuthentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthenticationRef {
    /// Name of the object.
    pub name: String,
    /// `TriggerAuthentication` (default) or `ClusterTriggerAuthentication`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["TriggerAuthentication", "ClusterTriggerAuthentication"]))]
    pub kind: Option<String>,
}

impl AuthenticationRef {
    /// The referenced kind with KEDA's default applied.
    pub fn kind_or_default(&self) -> &str {
        self.kind.as_deref().unwrap_or("TriggerAuthentication")
    }
}

/// Whether one external metric's trigger is currently active.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerActivity {
    /// The trigger's activation threshold is exceeded.
    #[serde(default)]
    pub is_active: bool,
}

/// Health of one metric, counted for fallback.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    /// Consecutive failures; fallback starts above `failureThreshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_failures: Option<i32>,
    /// `Happy` or `Failing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}
