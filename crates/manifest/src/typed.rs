//! The typed parse: a document that passed the schema must also deserialize into the exact Rust
//! type the controllers read, or Tandem would accept what it cannot act on.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A deserialization failure at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedError {
    /// Dotted path of the field, as findings print it.
    pub path: String,
    /// What serde said, cleaned up for a person.
    pub message: String,
}

/// Deserializes `value` into `T`, reporting the path of the first failing field.
pub fn parse_as<T: DeserializeOwned>(value: &Value) -> Result<T, TypedError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e
            .path()
            .iter()
            .map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => format!("[{index}]"),
                serde_path_to_error::Segment::Map { key } => format!(".{key}"),
                serde_path_to_error::Segment::Enum { variant } => format!(".{variant}"),
                serde_path_to_error::Segment::Unknown => String::new(),
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string();
        TypedError {
            path,
            message: e.into_inner().to_string(),
        }
    })
}

/// Parses one of Tandem's own kinds into its `tandem_api` type.
pub fn parse_object(api_version: &str, kind: &str, value: &Value) -> Result<(), TypedError> {
    use tandem_api as api;
    match (api_version, kind) {
        ("keda.sh/v1alpha1", "ScaledObject") => {
            parse_as::<api::keda::ScaledObject>(value).map(drop)
        }
        ("keda.sh/v1alpha1", "ScaledJob") => parse_as::<api::keda::ScaledJob>(value).map(drop),
        ("keda.sh/v1alpha1", "TriggerAuthentication") => {
            parse_as::<api::keda::TriggerAuthentication>(value).map(drop)
        }
        ("keda.sh/v1alpha1", "ClusterTriggerAuthentication") => {
            parse_as::<api::keda::ClusterTriggerAuthentication>(value).map(drop)
        }
        ("karpenter.sh/v1", "NodePool") => parse_as::<api::karpenter::NodePool>(value).map(drop),
        ("karpenter.sh/v1", "NodeClaim") => parse_as::<api::karpenter::NodeClaim>(value).map(drop),
        ("karpenter.k8s.aws/v1", "EC2NodeClass") => {
            parse_as::<api::aws::EC2NodeClass>(value).map(drop)
        }
        ("karpenter.azure.com/v1beta1", "AKSNodeClass") => {
            parse_as::<api::azure::AKSNodeClass>(value).map(drop)
        }
        ("karpenter.kwok.sh/v1alpha1", "KWOKNodeClass") => {
            parse_as::<api::kwok::KWOKNodeClass>(value).map(drop)
        }
        ("karpenter.sh/v1alpha5", "Provisioner") => {
            parse_as::<api::legacy::Provisioner>(value).map(drop)
        }
        ("karpenter.k8s.aws/v1alpha1", "AWSNodeTemplate") => {
            parse_as::<api::legacy::AWSNodeTemplate>(value).map(drop)
        }
        _ => Ok(()),
    }
}

/// Parses a built-in workload kind into its k8s-openapi type. Numbers written where Kubernetes
/// wants a quantity string (`cpu: 1`) are accepted, as kubectl accepts them.
pub fn parse_builtin(api_version: &str, kind: &str, value: &Value) -> Result<(), TypedError> {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    let v = quantities_as_strings(value.clone());
    match (api_version, kind) {
        ("v1", "Pod") => parse_as::<core::Pod>(&v).map(drop),
        ("apps/v1", "Deployment") => parse_as::<apps::Deployment>(&v).map(drop),
        ("apps/v1", "StatefulSet") => parse_as::<apps::StatefulSet>(&v).map(drop),
        ("apps/v1", "DaemonSet") => parse_as::<apps::DaemonSet>(&v).map(drop),
        ("apps/v1", "ReplicaSet") => parse_as::<apps::ReplicaSet>(&v).map(drop),
        ("batch/v1", "Job") => parse_as::<batch::Job>(&v).map(drop),
        ("batch/v1", "CronJob") => parse_as::<batch::CronJob>(&v).map(drop),
        _ => Ok(()),
    }
}

/// Turns numbers inside `resources.requests`/`limits` and pod `overhead` into strings, which is
/// how the API server reads them (a quantity is int-or-string on the wire).
pub fn quantities_as_strings(mut value: Value) -> Value {
    fn walk(v: &mut Value, quantity_map: bool) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    let is_q = matches!(
                        k.as_str(),
                        "requests" | "limits" | "overhead" | "capacity" | "allocatable"
                    );
                    if quantity_map && let Value::Number(n) = child {
                        *child = Value::String(n.to_string());
                        continue;
                    }
                    walk(child, is_q);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, false)),
            _ => {}
        }
    }
    walk(&mut value, false);
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_quantities_become_strings() {
        let v = quantities_as_strings(
            json!({"spec": {"containers": [{"resources": {"requests": {"cpu": 1}}}], "replicas": 3}}),
        );
        assert_eq!(
            v,
            json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}], "replicas": 3}})
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        let v = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "five", "selector": {}, "template": {}}});
        let err = parse_builtin("apps/v1", "Deployment", &v).unwrap_err();
        assert_eq!(err.path, "spec.replicas");
    }
}
