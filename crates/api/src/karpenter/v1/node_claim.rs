//! NodeClaim: one request for one node, created by a NodePool (or by hand) and carried
//! through launch → registration → initialization by the lifecycle controller.
//!
//! Upstream: core `pkg/apis/v1/nodeclaim.go`, `nodeclaim_status.go`, CRD
//! `karpenter.sh_nodeclaims.yaml` (v1.14). The spec is immutable (`self == oldSelf`).

use super::NodeClassReference;
use super::node_pool::default_expire_after;
use super::requirements::{Requirement, requirement_list_rules};
use super::taint::Taint;
use crate::condition::Condition;
use crate::duration::{AsWritten, GoDuration, NillableDuration};
use crate::quantity::ResourceList;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a NodeClaim; fixed at creation.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "karpenter.sh",
    version = "v1",
    kind = "NodeClaim",
    plural = "nodeclaims",
    singular = "nodeclaim",
    category = "karpenter",
    status = "NodeClaimStatus",
    derive = "PartialEq",
    doc = "NodeClaim is the Schema for the NodeClaims API",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".metadata.labels.node\\.kubernetes\\.io/instance-type"
    ),
    printcolumn(
        name = "Capacity",
        type_ = "string",
        json_path = ".metadata.labels.karpenter\\.sh/capacity-type"
    ),
    printcolumn(
        name = "Zone",
        type_ = "string",
        json_path = ".metadata.labels.topology\\.kubernetes\\.io/zone"
    ),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.nodeName"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "ImageID",
        type_ = "string",
        json_path = ".status.imageID",
        priority = 1
    ),
    printcolumn(
        name = "ID",
        type_ = "string",
        json_path = ".status.providerID",
        priority = 1
    ),
    printcolumn(
        name = "NodePool",
        type_ = "string",
        json_path = ".metadata.labels.karpenter\\.sh/nodepool",
        priority = 1
    ),
    printcolumn(
        name = "NodeClass",
        type_ = "string",
        json_path = ".spec.nodeClassRef.name",
        priority = 1
    ),
    printcolumn(
        name = "Drifted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Drifted\")].status",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{ "rule": "self == oldSelf", "message": "spec is immutable" }]))]
pub struct NodeClaimSpec {
    /// Taints the node must carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub taints: Vec<Taint>,
    /// Taints present at startup that something else removes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub startup_taints: Vec<Taint>,
    /// Label constraints the launched instance must satisfy.
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic", "x-kubernetes-validations" = requirement_list_rules()))]
    pub requirements: Vec<Requirement>,
    /// Resources the node must offer at least (the sum of the pods it was made for).
    #[serde(default, skip_serializing_if = "NodeClaimResources::is_empty")]
    pub resources: NodeClaimResources,
    /// The provider NodeClass.
    pub node_class_ref: NodeClassReference,
    /// Upper bound on draining once deletion starts; unset means unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period: Option<AsWritten<GoDuration>>,
    /// Age after which the claim is replaced; copied from the NodePool template.
    #[serde(default = "default_expire_after")]
    pub expire_after: AsWritten<NillableDuration>,
}

/// Resources a NodeClaim asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct NodeClaimResources {
    /// Minimum resources of the instance.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub requests: ResourceList,
}

impl NodeClaimResources {
    /// True when nothing is requested; such a block is omitted on output.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

/// Observed state of a NodeClaim.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimStatus {
    /// Name of the Node that registered for this claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Cloud provider ID of the instance (`aws:///us-west-2a/i-…`, `kwok://…`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "providerID"
    )]
    pub provider_id: Option<String>,
    /// Image the instance booted from.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "imageID")]
    pub image_id: Option<String>,
    /// Resources of the instance as launched.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub capacity: ResourceList,
    /// Resources left for pods after overhead.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub allocatable: ResourceList,
    /// Launched, Registered, Initialized, Ready, Drifted, Consolidatable, DisruptionReason …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Last time a pod was scheduled to or removed from the node; consolidateAfter counts
    /// from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pod_event_time: Option<Time>,
}
