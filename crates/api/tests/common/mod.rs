//! Helpers shared by the integration tests: reading YAML streams and checking that a typed
//! round trip loses nothing.

#![allow(dead_code)]

use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Every YAML document of a stream, as JSON values (empty documents skipped).
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("YAML document parses"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// All `*.yaml`/`*.yml` files under `dir`, sorted, recursively.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Whether a value carries no information (absent, null, `[]`, `{}`): serializers may drop it.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Panics unless every field of `input` is present with the same value in `output`.
///
/// `output` may add defaulted fields. A number in the input may come back as its decimal
/// text (quantities are written as strings); empty collections may be dropped.
pub fn assert_nothing_lost(input: &Value, output: &Value, path: &str) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                let here = format!("{path}.{k}");
                match o.get(k) {
                    Some(ov) => assert_nothing_lost(v, ov, &here),
                    None => assert!(is_empty(v), "{here}: {v} was lost"),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            assert_eq!(i.len(), o.len(), "{path}: list length changed");
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                assert_nothing_lost(iv, ov, &format!("{path}[{n}]"));
            }
        }
        (Value::Number(n), Value::String(s)) => {
            assert_eq!(
                n.to_string(),
                *s,
                "{path}: number came back as a different text"
            );
        }
        (i, o) => assert!(
            i == o || is_empty(i) && is_empty(o),
            "{path}: {i} became {o}"
        ),
    }
}

/// Deserializes `value` as `T`, serializes it back and checks nothing was lost; returns the
/// typed object for further assertions.
pub fn round_trip<T>(value: &Value, what: &str) -> T
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what}: does not deserialize: {e}"));
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_nothing_lost(value, &back, what);
    typed
}

/// Round-trips one object through the type its apiVersion/kind names; `false` if the kind
/// is not one of this crate's.
pub fn round_trip_known(value: &Value, what: &str) -> bool {
    use tandem_api::{aws, azure, karpenter, keda, kwok, legacy};
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("keda.sh/v1alpha1", "ScaledObject") => drop(round_trip::<keda::ScaledObject>(value, what)),
        ("keda.sh/v1alpha1", "ScaledJob") => drop(round_trip::<keda::ScaledJob>(value, what)),
        ("keda.sh/v1alpha1", "TriggerAuthentication") => {
            drop(round_trip::<keda::TriggerAuthentication>(value, what))
        }
        ("keda.sh/v1alpha1", "ClusterTriggerAuthentication") => drop(round_trip::<
            keda::ClusterTriggerAuthentication,
        >(value, what)),
        ("karpenter.sh/v1", "NodePool") => drop(round_trip::<karpenter::NodePool>(value, what)),
        ("karpenter.sh/v1", "NodeClaim") => drop(round_trip::<karpenter::NodeClaim>(value, what)),
        ("karpenter.k8s.aws/v1", "EC2NodeClass") => {
            drop(round_trip::<aws::EC2NodeClass>(value, what))
        }
        ("karpenter.azure.com/v1beta1", "AKSNodeClass") => {
            drop(round_trip::<azure::AKSNodeClass>(value, what))
        }
        ("karpenter.kwok.sh/v1alpha1", "KWOKNodeClass") => {
            drop(round_trip::<kwok::KWOKNodeClass>(value, what))
        }
        ("karpenter.sh/v1alpha5", "Provisioner") => {
            drop(round_trip::<legacy::Provisioner>(value, what))
        }
        ("karpenter.k8s.aws/v1alpha1", "AWSNodeTemplate") => {
            drop(round_trip::<legacy::AWSNodeTemplate>(value, what))
        }
        _ => return false,
    }
    true
}
