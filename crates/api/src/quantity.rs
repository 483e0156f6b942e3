//! Resource quantities as users write them in YAML: `cpu: 1`, `cpu: 1k`, `memory: 500Gi`.
//!
//! Kubernetes' `resource.Quantity` accepts a JSON string or number, and its schema is
//! `x-kubernetes-int-or-string`. We carry the text exactly as written (numbers become their
//! decimal text) and leave arithmetic to `tandem-model`, which owns the parser. The schema adds
//! the upstream quantity pattern so the API server rejects `lots` the way Karpenter's CRD does.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// The Kubernetes quantity regex as upstream CRDs embed it (karpenter.md §2.1).
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// A resource quantity, kept as text.
///
/// Numbers in YAML (`cpu: 64`, `cpu: 0.5`) deserialize to their text, so `64` and `"64"` are
/// the same value; output is always a string, which the API server accepts for int-or-string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Quantity(pub String);

/// A resource name → quantity map (`limits`, `resources.requests`, `status.capacity`), ordered
/// so output and iteration are deterministic.
pub type ResourceList = BTreeMap<String, Quantity>;

impl Quantity {
    /// The quantity as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Quantity {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Quantity {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<k8s_openapi::apimachinery::pkg::api::resource::Quantity> for Quantity {
    fn from(q: k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> Self {
        Self(q.0)
    }
}

impl From<Quantity> for k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    fn from(q: Quantity) -> Self {
        Self(q.0)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity as a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Quantity, E> {
                Ok(Quantity(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                if v.is_finite() {
                    Ok(Quantity(v.to_string()))
                } else {
                    Err(E::custom("a quantity must be a finite number"))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [{ "type": "integer" }, { "type": "string" }],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_strings_deserialize_to_text() {
        let m: ResourceList =
            serde_yaml_ng::from_str("cpu: 64\nmemory: 500Gi\nhalf: 0.5\nk: 1k\nneg: -1").unwrap();
        assert_eq!(m["cpu"].as_str(), "64");
        assert_eq!(m["memory"].as_str(), "500Gi");
        assert_eq!(m["half"].as_str(), "0.5");
        assert_eq!(m["k"].as_str(), "1k");
        assert_eq!(m["neg"].as_str(), "-1");
    }

    #[test]
    fn serializes_as_string() {
        let q: Quantity = serde_json::from_str("64").unwrap();
        assert_eq!(serde_json::to_string(&q).unwrap(), "\"64\"");
    }

    #[test]
    fn rejects_other_json_kinds() {
        assert!(serde_json::from_str::<Quantity>("true").is_err());
        assert!(serde_json::from_str::<Quantity>("[1]").is_err());
    }
}
