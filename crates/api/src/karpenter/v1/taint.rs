//! Taints as NodePools and NodeClaims declare them (core v1 `Taint` with upstream patterns).
//!
//! A local type rather than `k8s_openapi`'s so the schema carries the key/value patterns and
//! the effect enum the Karpenter CRDs enforce.

use crate::schema::QUALIFIED_NAME_PATTERN;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A taint to put on nodes launched from a NodePool (or still present at startup, for
/// `startupTaints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    /// The taint key.
    #[schemars(length(min = 1), regex(pattern = QUALIFIED_NAME_PATTERN))]
    pub key: String,
    /// The taint value; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUALIFIED_NAME_PATTERN))]
    pub value: Option<String>,
    /// What the taint does to pods that do not tolerate it.
    pub effect: TaintEffect,
    /// When the taint was added; only meaningful for NoExecute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<Time>,
}

/// Taint effects, as in core v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    /// New pods that do not tolerate the taint are not scheduled.
    NoSchedule,
    /// The scheduler avoids the node if it can.
    PreferNoSchedule,
    /// Running pods that do not tolerate the taint are evicted.
    NoExecute,
}
