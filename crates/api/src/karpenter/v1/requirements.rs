//! Node requirements with `minValues`, the selector language of NodePools and NodeClaims.
//!
//! Upstream type: `NodeSelectorRequirementWithMinValues` (core `pkg/apis/v1/nodeclaim.go`).
//! The API server enforces shape (operator enum, key pattern, the CEL rules below); the
//! algebra over requirements lives in `tandem-model`.

use crate::schema::{LABEL_VALUE_PATTERN, QUALIFIED_NAME_PATTERN, rule};
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Messages and rules shared by NodePool and NodeClaim requirement lists (karpenter.md §2.2).
pub(crate) fn requirement_list_rules() -> Vec<Value> {
    vec![
        rule(
            "self.all(x, x.operator == 'In' ? x.values.size() != 0 : true)",
            "requirements with operator 'In' must have a value defined",
        ),
        rule(
            "self.all(x, (x.operator == 'Gt' || x.operator == 'Lt' || x.operator == 'Gte' || x.operator == 'Lte') ? (x.values.size() == 1 && int(x.values[0]) >= 0) : true)",
            "requirements operator 'Gt', 'Lt', 'Gte', or 'Lte' must have a single positive integer value",
        ),
        rule(
            "self.all(x, (x.operator == 'In' && has(x.minValues)) ? x.values.size() >= x.minValues : true)",
            "requirements with 'minValues' must have at least that many values specified in the 'values' field",
        ),
    ]
}

/// CEL on a single label key: the `karpenter.sh` domain is reserved except for the two keys
/// users may select on.
pub(crate) const KARPENTER_DOMAIN_RULE: &str = r#"self in ["karpenter.sh/capacity-type", "karpenter.sh/nodepool"] || !self.find("^([^/]+)").endsWith("karpenter.sh")"#;
/// Message of [`KARPENTER_DOMAIN_RULE`].
pub(crate) const KARPENTER_DOMAIN_MESSAGE: &str = r#"label domain "karpenter.sh" is restricted"#;
/// CEL on a single label key: the hostname label is the node's, never a selector.
pub(crate) const HOSTNAME_RULE: &str = r#"self != "kubernetes.io/hostname""#;
/// Message of [`HOSTNAME_RULE`].
pub(crate) const HOSTNAME_MESSAGE: &str = r#"label "kubernetes.io/hostname" is restricted"#;
/// CEL on a single NodePool label key: Karpenter sets `karpenter.sh/nodepool` itself.
pub(crate) const NODEPOOL_LABEL_RULE: &str = r#"self != "karpenter.sh/nodepool""#;
/// Message of [`NODEPOOL_LABEL_RULE`].
pub(crate) const NODEPOOL_LABEL_MESSAGE: &str = r#"label "karpenter.sh/nodepool" is restricted"#;

/// The schema transform for a NodePool template's requirement list: NodeClaims may carry the
/// `karpenter.sh/nodepool` key (Karpenter writes it), NodePools may not, so NodePool adds one
/// key rule on top of the shared [`Requirement`] schema, in upstream's position.
pub(crate) fn nodepool_requirements(schema: &mut Schema) {
    let key = schema
        .get_mut("items")
        .and_then(|items| items.get_mut("properties"))
        .and_then(|props| props.get_mut("key"))
        .and_then(|key| key.get_mut("x-kubernetes-validations"))
        .and_then(Value::as_array_mut);
    if let Some(rules) = key {
        let at = rules.len().min(1);
        rules.insert(at, rule(NODEPOOL_LABEL_RULE, NODEPOOL_LABEL_MESSAGE));
    }
}

/// One requirement on a node label: `key operator values`, optionally demanding at least
/// `minValues` distinct values survive (instance-type flexibility for spot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    /// The label key the requirement selects on.
    #[schemars(length(max = 316), regex(pattern = QUALIFIED_NAME_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": KARPENTER_DOMAIN_RULE, "message": KARPENTER_DOMAIN_MESSAGE },
        { "rule": HOSTNAME_RULE, "message": HOSTNAME_MESSAGE },
    ]))]
    pub key: String,
    /// How `values` relate to the label.
    pub operator: Operator,
    /// The values; a single non-negative integer for Gt/Lt/Gte/Lte, none for
    /// Exists/DoesNotExist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(max = 63), regex(pattern = LABEL_VALUE_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub values: Vec<String>,
    /// Minimum number of distinct values the scheduler must keep open for this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 50))]
    pub min_values: Option<i32>,
}

/// The requirement operators Karpenter supports (Gte/Lte since core v1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Operator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The label's integer value is greater than the single value.
    Gt,
    /// The label's integer value is less than the single value.
    Lt,
    /// The label's integer value is greater than or equal to the single value.
    Gte,
    /// The label's integer value is less than or equal to the single value.
    Lte,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flow_and_block_value_lists() {
        let r: Requirement = serde_yaml_ng::from_str(
            "key: karpenter.k8s.aws/instance-category\noperator: In\nvalues: [\"c\", \"m\"]",
        )
        .unwrap();
        assert_eq!(r.operator, Operator::In);
        assert_eq!(r.values, ["c", "m"]);
        let r: Requirement = serde_yaml_ng::from_str("key: a\noperator: Exists").unwrap();
        assert!(r.values.is_empty());
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"key": "a", "operator": "Exists"})
        );
    }

    #[test]
    fn unknown_operator_is_rejected() {
        assert!(serde_yaml_ng::from_str::<Requirement>("key: a\noperator: Equals").is_err());
    }
}
