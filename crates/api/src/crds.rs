//! The CustomResourceDefinitions Tandem installs, generated from the Rust types.
//!
//! `all()` is the single source of `config/crds/` (written by `tandem crds --out config/crds`,
//! checked by the golden test). The derive produces most of each schema; `normalize` then
//! brings the output to the shape upstream CRDs have and a real API server expects:
//!
//! - `nullable: true` (added by the derive for every `Option`) is dropped: upstream schemas have
//!   none, and without it the API server prunes an explicit `null` and applies the default
//!   instead of storing `null`.
//! - int-or-string quantities get back their `anyOf: [integer, string]` branches, which the
//!   derive's structural rewrite empties.
//! - kinds whose `spec` upstream does not require (the NodeClasses) do not require it here.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;
use serde_json::Value;

/// Every CRD Tandem serves or reads, sorted by name (`<plural>.<group>`).
pub fn all() -> Vec<CustomResourceDefinition> {
    use crate::{aws, azure, karpenter, keda, kwok, legacy};
    let mut crds = vec![
        keda::v1alpha1::ScaledObject::crd(),
        keda::v1alpha1::ScaledJob::crd(),
        keda::v1alpha1::TriggerAuthentication::crd(),
        keda::v1alpha1::ClusterTriggerAuthentication::crd(),
        karpenter::v1::NodePool::crd(),
        karpenter::v1::NodeClaim::crd(),
        aws::v1::EC2NodeClass::crd(),
        azure::v1beta1::AKSNodeClass::crd(),
        kwok::v1alpha1::KWOKNodeClass::crd(),
        legacy::Provisioner::crd(),
        legacy::AWSNodeTemplate::crd(),
    ];
    for crd in &mut crds {
        normalize(crd);
    }
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds
}

/// Kinds whose top-level `spec` is optional upstream.
const OPTIONAL_SPEC_KINDS: [&str; 3] = ["EC2NodeClass", "AKSNodeClass", "KWOKNodeClass"];

/// The file name a CRD is checked in under: `<group>_<plural>.yaml`, as upstream names them.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// Renders CRDs as one multi-document YAML stream in the given order (each document starts
/// with `---`), for `kubectl apply -f -`.
pub fn to_yaml(crds: &[CustomResourceDefinition]) -> String {
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        out.push_str(&to_yaml_document(crd));
    }
    out
}

/// Renders one CRD as a YAML document (no leading `---`), as checked in under `config/crds/`.
pub fn to_yaml_document(crd: &CustomResourceDefinition) -> String {
    // Serializing a CRD cannot fail: every map key is a string and every number finite.
    serde_yaml_ng::to_string(crd).unwrap_or_default()
}

/// Applies the post-processing described in the module docs.
fn normalize(crd: &mut CustomResourceDefinition) {
    let optional_spec = OPTIONAL_SPEC_KINDS.contains(&crd.spec.names.kind.as_str());
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let Ok(mut value) = serde_json::to_value(&*schema) else {
            continue;
        };
        walk(&mut value);
        if let Some(obj) = value.as_object_mut() {
            obj.remove("title");
            if optional_spec && let Some(Value::Array(required)) = obj.get_mut("required") {
                required.retain(|r| r != "spec");
                if required.is_empty() {
                    obj.remove("required");
                }
            }
        }
        if let Ok(props) = serde_json::from_value::<JSONSchemaProps>(value) {
            *schema = props;
        }
    }
}

/// Recursive part of [`normalize`] over one schema node.
fn walk(node: &mut Value) {
    match node {
        Value::Object(obj) => {
            if obj.get("nullable") == Some(&Value::Bool(true)) {
                obj.remove("nullable");
            }
            if obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
                if obj.contains_key("anyOf") {
                    obj.insert(
                        "anyOf".into(),
                        serde_json::json!([{ "type": "integer" }, { "type": "string" }]),
                    );
                }
                obj.remove("type");
            }
            for child in obj.values_mut() {
                walk(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(walk),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_sorted_and_complete() {
        let names: Vec<_> = all().into_iter().filter_map(|c| c.metadata.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 11);
    }

    #[test]
    fn yaml_stream_has_one_document_per_crd() {
        let crds = all();
        let yaml = to_yaml(&crds);
        assert_eq!(yaml.lines().filter(|l| *l == "---").count(), crds.len());
        assert!(!yaml.contains("nullable"));
    }
}
