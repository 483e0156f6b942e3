//! Small helpers for schema attributes the derive cannot express directly.
//!
//! Kept private: the public contract is the generated CRD, not these helpers.

use schemars::Schema;
use serde_json::{Value, json};

/// Pattern of a label key / requirement key / taint key (a qualified name), from upstream.
pub(crate) const QUALIFIED_NAME_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(\/))?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$";

/// Pattern of a label value / requirement value, from upstream.
pub(crate) const LABEL_VALUE_PATTERN: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/// Builds one `x-kubernetes-validations` entry.
pub(crate) fn rule(rule: &str, message: &str) -> Value {
    json!({ "rule": rule, "message": message })
}

/// Appends CEL rules to a schema's `x-kubernetes-validations`, creating the list if needed.
pub(crate) fn push_rules(schema: &mut Schema, rules: impl IntoIterator<Item = Value>) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let entry = obj
        .entry("x-kubernetes-validations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = entry {
        list.extend(rules);
    }
}
