//! `karpenter.sh/v1`: NodePool and NodeClaim, Karpenter core's provider-neutral API.
//!
//! Field names, defaults, printer columns and CEL rules follow core v1.14 (karpenter.md §1–§3);
//! the AWS-only label-domain rule that the AWS-shipped CRDs add is left out because Tandem
//! serves every provider from one CRD.

mod node_claim;
mod node_pool;
mod requirements;
mod taint;

pub use node_claim::{NodeClaim, NodeClaimResources, NodeClaimSpec, NodeClaimStatus};
pub use node_pool::{
    Budget, ConsolidationPolicy, Disruption, DisruptionReason, NodeClaimTemplate,
    NodeClaimTemplateMetadata, NodeClaimTemplateSpec, NodePool, NodePoolSpec, NodePoolStatus,
};
pub use requirements::{Operator, Requirement};
pub use taint::{Taint, TaintEffect};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of this module's kinds.
pub const GROUP: &str = "karpenter.sh";

/// Points a NodePool or NodeClaim at its provider-specific NodeClass (EC2NodeClass,
/// AKSNodeClass, KWOKNodeClass …), which carries everything cloud-specific.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct NodeClassReference {
    /// API group of the NodeClass, e.g. `karpenter.k8s.aws`.
    #[schemars(regex(pattern = r"^[^/]*$"))]
    #[schemars(extend("x-kubernetes-validations" = [{ "rule": "self != ''", "message": "group may not be empty" }]))]
    pub group: String,
    /// Kind of the NodeClass, e.g. `EC2NodeClass`.
    #[schemars(extend("x-kubernetes-validations" = [{ "rule": "self != ''", "message": "kind may not be empty" }]))]
    pub kind: String,
    /// Name of the NodeClass (cluster-scoped).
    #[schemars(extend("x-kubernetes-validations" = [{ "rule": "self != ''", "message": "name may not be empty" }]))]
    pub name: String,
}
