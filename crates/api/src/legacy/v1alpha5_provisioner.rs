//! `karpenter.sh/v1alpha5` Provisioner, the predecessor of NodePool (read only).
//!
//! Upstream: core `pkg/apis/crds/karpenter.sh_provisioners.yaml` as last shipped. Requirements
//! had no minValues/Gte/Lte and durations were integer seconds (`ttlSecondsAfterEmpty`).

use crate::condition::Condition;
use crate::karpenter::v1::{Operator, Taint};
use crate::quantity::ResourceList;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Desired state of a Provisioner.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "karpenter.sh",
    version = "v1alpha5",
    kind = "Provisioner",
    plural = "provisioners",
    singular = "provisioner",
    category = "karpenter",
    status = "ProvisionerStatus",
    derive = "PartialEq",
    derive = "Default",
    deprecated = "karpenter.sh/v1alpha5 Provisioner is read only in Tandem; convert it with `tandem migrate` to a karpenter.sh/v1 NodePool",
    doc = "Provisioner is the Schema for the Provisioners API (deprecated; read only)",
    printcolumn(
        name = "Template",
        type_ = "string",
        json_path = ".spec.providerRef.name"
    ),
    printcolumn(
        name = "Weight",
        type_ = "string",
        json_path = ".spec.weight",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionerSpec {
    /// Annotations for launched nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Labels for launched nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Taints for launched nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Taints present at startup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub startup_taints: Vec<Taint>,
    /// Label constraints (v1alpha5 shape: no minValues).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<LegacyRequirement>,
    /// Kubelet settings (moved to EC2NodeClass `kubelet` in v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_configuration: Option<LegacyKubeletConfiguration>,
    /// Inline provider settings (pre-AWSNodeTemplate); kept as free-form JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub provider: Option<serde_json::Value>,
    /// Reference to an AWSNodeTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<ProviderRef>,
    /// Seconds a node may be empty before removal (→ `consolidationPolicy: WhenEmpty`,
    /// `consolidateAfter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_empty: Option<i64>,
    /// Seconds until a node expires (→ `expireAfter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_until_expired: Option<i64>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LegacyLimits>,
    /// Priority among provisioners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub weight: Option<i32>,
    /// Consolidation switch (→ `WhenEmptyOrUnderutilized`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consolidation: Option<Consolidation>,
}

/// A v1alpha5 requirement (core NodeSelectorRequirement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LegacyRequirement {
    /// Label key.
    pub key: String,
    /// Operator (In, NotIn, Exists, DoesNotExist, Gt, Lt).
    pub operator: Operator,
    /// Values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// v1alpha5 kubelet settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // Same fields as the kubelet's, carried over unchanged by migrate.
pub struct LegacyKubeletConfiguration {
    #[serde(
        default,
        rename = "clusterDNS",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_dns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_pods: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub pods_per_core: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_reserved: Option<ResourceList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_reserved: Option<ResourceList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_hard: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_soft: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_soft_grace_period: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_max_pod_grace_period: Option<i32>,
    #[serde(
        default,
        rename = "imageGCHighThresholdPercent",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 100))]
    pub image_gc_high_threshold_percent: Option<i32>,
    #[serde(
        default,
        rename = "imageGCLowThresholdPercent",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 100))]
    pub image_gc_low_threshold_percent: Option<i32>,
    #[serde(
        default,
        rename = "cpuCFSQuota",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_cfs_quota: Option<bool>,
}

/// Reference to the provider's node template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// Template name.
    pub name: String,
    /// Template kind (AWSNodeTemplate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Template API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// v1alpha5 limits wrapper.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct LegacyLimits {
    /// Resource caps.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub resources: ResourceList,
}

/// v1alpha5 consolidation switch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Consolidation {
    /// Consolidation on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Observed state of a Provisioner.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionerStatus {
    /// Last time the provisioner launched capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Resources of the provisioner's nodes.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub resources: ResourceList,
}
