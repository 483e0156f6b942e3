//! NodePool: what nodes may be launched (template), how many (limits, replicas) and when they
//! may be taken away (disruption).
//!
//! Upstream: core `pkg/apis/v1/nodepool.go`, CRD `karpenter.sh_nodepools.yaml` (v1.14).

use super::NodeClassReference;
use super::requirements::{
    HOSTNAME_MESSAGE, KARPENTER_DOMAIN_MESSAGE, NODEPOOL_LABEL_MESSAGE, Requirement,
    nodepool_requirements, requirement_list_rules,
};
use super::taint::Taint;
use crate::condition::Condition;
use crate::duration::{
    AsWritten, BUDGET_DURATION_PATTERN, GoDuration, NILLABLE_DURATION_PATTERN, NillableDuration,
};
use crate::quantity::ResourceList;
use crate::schema::{LABEL_VALUE_PATTERN, push_rules, rule};
use kube::CustomResource;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Desired state of a NodePool.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "karpenter.sh",
    version = "v1",
    kind = "NodePool",
    plural = "nodepools",
    singular = "nodepool",
    category = "karpenter",
    status = "NodePoolStatus",
    derive = "PartialEq",
    doc = "NodePool is the Schema for the NodePools API",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.nodes"
    ),
    printcolumn(
        name = "NodeClass",
        type_ = "string",
        json_path = ".spec.template.spec.nodeClassRef.name"
    ),
    printcolumn(name = "Nodes", type_ = "string", json_path = ".status.nodes"),
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
        name = "Weight",
        type_ = "integer",
        json_path = ".spec.weight",
        priority = 1
    ),
    printcolumn(
        name = "CPU",
        type_ = "string",
        json_path = ".status.resources.cpu",
        priority = 1
    ),
    printcolumn(
        name = "Memory",
        type_ = "string",
        json_path = ".status.resources.memory",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = node_pool_spec_rules)]
pub struct NodePoolSpec {
    /// Template for the NodeClaims this pool creates; changing it (except requirements)
    /// drifts existing nodes.
    pub template: NodeClaimTemplate,
    /// When and how fast nodes of this pool may be disrupted.
    #[serde(default)]
    #[schemars(extend("default" = { "consolidateAfter": "0s" }))]
    pub disruption: Disruption,
    /// Upper bounds on the pool's total resources (and `nodes`); unset means unbounded.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub limits: ResourceList,
    /// Priority among pools that fit a pod: higher first; unset counts as 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub weight: Option<i32>,
    /// Static pool size (core v1.8+): set means the pool keeps exactly this many nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i64>,
}

/// The spec-level CEL rules of NodePool (static vs dynamic pools).
fn node_pool_spec_rules(schema: &mut Schema) {
    push_rules(
        schema,
        [
            rule(
                "has(self.replicas) == has(oldSelf.replicas)",
                "Cannot transition NodePool between static (replicas set) and dynamic (replicas unset) provisioning modes",
            ),
            rule(
                "!has(self.replicas) || (!has(self.limits) || size(self.limits) == 0 || (size(self.limits) == 1 && 'nodes' in self.limits))",
                "only 'limits.nodes' is supported on static NodePools",
            ),
            rule(
                "!has(self.replicas) || !has(self.weight)",
                "'weight' is not supported on static NodePools",
            ),
        ],
    );
}

/// The template NodeClaims are stamped from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeClaimTemplate {
    /// Labels and annotations copied onto NodeClaims and their Nodes.
    #[serde(default, skip_serializing_if = "NodeClaimTemplateMetadata::is_empty")]
    pub metadata: NodeClaimTemplateMetadata,
    /// The NodeClaim spec, minus `resources` (computed per launch).
    pub spec: NodeClaimTemplateSpec,
}

/// Labels and annotations for launched nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct NodeClaimTemplateMetadata {
    /// Labels put on NodeClaims and Nodes; pods select on them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(inner(length(max = 63), regex(pattern = LABEL_VALUE_PATTERN)))]
    #[schemars(extend(
        "maxProperties" = 100,
        "x-kubernetes-map-type" = "atomic",
        "x-kubernetes-validations" = [
            {
                "rule": "self.all(x, x in [\"karpenter.sh/capacity-type\", \"karpenter.sh/nodepool\"] || !x.find(\"^([^/]+)\").endsWith(\"karpenter.sh\"))",
                "message": KARPENTER_DOMAIN_MESSAGE
            },
            { "rule": "self.all(x, x != \"karpenter.sh/nodepool\")", "message": NODEPOOL_LABEL_MESSAGE },
            { "rule": "self.all(x, x != \"kubernetes.io/hostname\")", "message": HOSTNAME_MESSAGE }
        ]
    ))]
    pub labels: BTreeMap<String, String>,
    /// Annotations put on NodeClaims and Nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-map-type" = "granular"))]
    pub annotations: BTreeMap<String, String>,
}

impl NodeClaimTemplateMetadata {
    /// True when there is nothing to copy; such metadata is omitted on output.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }
}

/// The NodeClaim spec as a NodePool templates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimTemplateSpec {
    /// Taints put on launched nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub taints: Vec<Taint>,
    /// Taints expected at startup and removed by something else (e.g. a CNI); Karpenter
    /// ignores them when deciding whether pods fit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub startup_taints: Vec<Taint>,
    /// Constraints on the labels of launched nodes (instance type, zone, capacity type …).
    #[schemars(length(max = 100), transform = nodepool_requirements)]
    #[schemars(extend("x-kubernetes-list-type" = "atomic", "x-kubernetes-validations" = requirement_list_rules()))]
    pub requirements: Vec<Requirement>,
    /// The provider NodeClass; group and kind are immutable, name may change (drift).
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": "self.group == oldSelf.group", "message": "nodeClassRef.group is immutable" },
        { "rule": "self.kind == oldSelf.kind", "message": "nodeClassRef.kind is immutable" }
    ]))]
    pub node_class_ref: NodeClassReference,
    /// Upper bound on draining a node being deleted; pods are force-removed after it.
    /// Unset means drain waits forever (upstream default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period: Option<AsWritten<GoDuration>>,
    /// Age after which nodes are replaced (forceful); `Never` disables expiry.
    #[serde(default = "default_expire_after")]
    pub expire_after: AsWritten<NillableDuration>,
}

/// Upstream default of `expireAfter` (karpenter.md §3.1): 30 days, spelled `720h`.
pub(crate) fn default_expire_after() -> AsWritten<NillableDuration> {
    AsWritten::from_parts(
        "720h",
        NillableDuration::Duration(Duration::from_secs(720 * 3600)),
    )
}

/// Upstream default of `consolidateAfter` when the disruption block is absent: `0s`.
fn default_consolidate_after() -> AsWritten<NillableDuration> {
    AsWritten::from_parts("0s", NillableDuration::Duration(Duration::ZERO))
}

/// Disruption controls for a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Disruption {
    /// How long a node must be without pod churn before consolidation considers it;
    /// `Never` disables consolidation (including emptiness).
    #[serde(default = "default_consolidate_after")]
    #[schemars(regex(pattern = NILLABLE_DURATION_PATTERN))]
    pub consolidate_after: AsWritten<NillableDuration>,
    /// Which nodes consolidation may act on.
    #[serde(default)]
    pub consolidation_policy: ConsolidationPolicy,
    /// Rate limits on voluntary disruption; the minimum over active budgets applies.
    #[serde(default = "default_budgets")]
    #[schemars(length(max = 50))]
    #[schemars(extend(
        "x-kubernetes-list-type" = "atomic",
        "x-kubernetes-validations" = [{
            "rule": "self.all(x, has(x.schedule) == has(x.duration))",
            "message": "'schedule' must be set with 'duration'"
        }]
    ))]
    pub budgets: Vec<Budget>,
}

impl Default for Disruption {
    /// What the API server fills in for a NodePool without `spec.disruption`.
    fn default() -> Self {
        Self {
            consolidate_after: default_consolidate_after(),
            consolidation_policy: ConsolidationPolicy::default(),
            budgets: default_budgets(),
        }
    }
}

/// Upstream default budgets: at most 10% of a pool's nodes disrupted at once.
fn default_budgets() -> Vec<Budget> {
    vec![Budget::default()]
}

/// Which nodes consolidation may remove or replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
pub enum ConsolidationPolicy {
    /// Only nodes without workload pods.
    WhenEmpty,
    /// Empty nodes, and nodes whose pods fit elsewhere or on a cheaper replacement (default).
    #[default]
    WhenEmptyOrUnderutilized,
    /// Like `WhenEmptyOrUnderutilized`, but a move must save enough for the disruption it
    /// causes (core v1.14).
    Balanced,
}

/// One disruption budget: at most `nodes` disrupting, optionally only inside a cron window and
/// only for some reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// The reasons this budget limits; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub reasons: Vec<DisruptionReason>,
    /// A count (`5`) or a percentage of the pool's nodes (`10%`, rounded up).
    #[serde(default = "default_budget_nodes")]
    #[schemars(regex(pattern = r"^((100|[0-9]{1,2})%|[0-9]+)$"))]
    pub nodes: String,
    /// Five-field cron (UTC) or macro at which the budget's window opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(@(annually|yearly|monthly|weekly|daily|midnight|hourly))|((.+)\s(.+)\s(.+)\s(.+)\s(.+))$"
    ))]
    pub schedule: Option<String>,
    /// How long the window stays open after each `schedule` hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = BUDGET_DURATION_PATTERN))]
    pub duration: Option<AsWritten<GoDuration>>,
}

impl Default for Budget {
    /// Upstream's single default budget, `nodes: 10%`.
    fn default() -> Self {
        Self {
            reasons: Vec::new(),
            nodes: default_budget_nodes(),
            schedule: None,
            duration: None,
        }
    }
}

/// Upstream default of a budget's `nodes`.
fn default_budget_nodes() -> String {
    "10%".to_owned()
}

/// Reasons for voluntary disruption that budgets can single out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DisruptionReason {
    /// Consolidation of nodes whose pods fit elsewhere.
    Underutilized,
    /// Removal of nodes without workload pods.
    Empty,
    /// Replacement of nodes that no longer match their pool or class.
    Drifted,
}

/// Observed state of a NodePool.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolStatus {
    /// Total resources of the pool's nodes, checked against `limits`.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub resources: ResourceList,
    /// Number of nodes in the pool; the scale subresource's status replicas.
    #[serde(default)]
    pub nodes: i64,
    /// The NodeClass generation the pool was last validated against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_class_observed_generation: Option<i64>,
    /// `Ready` (= `ValidationSucceeded` and `NodeClassReady`), `NodeRegistrationHealthy` …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
