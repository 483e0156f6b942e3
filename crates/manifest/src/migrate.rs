//! `tandem migrate`: karpenter.sh/v1alpha5 Provisioner and karpenter.k8s.aws/v1alpha1
//! AWSNodeTemplate to karpenter.sh/v1 NodePool and karpenter.k8s.aws/v1 EC2NodeClass.
//!
//! Pure functions over the user's documents (seed 001 is exactly this situation). The mapping
//! keeps behaviour, not just shape: v1alpha5 had no expiry and no consolidation by default, so
//! a Provisioner without `ttlSecondsUntilExpired` becomes `expireAfter: Never` (v1's default
//! 720h would start replacing nodes) and one without `ttlSecondsAfterEmpty` or `consolidation`
//! becomes `consolidateAfter: Never`. Every field with no v1 equivalent gets a warning with its
//! file and line; nothing is dropped silently.

use crate::finding::{Finding, Severity};
use crate::object::ObjectRef;
use crate::source::SourceFile;
use serde_json::{Map, Value, json};

/// Where the node role comes from, which v1 requires and v1alpha5 read from a global setting
/// (`settings.aws.defaultInstanceProfile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeIdentity {
    /// `spec.role`: Karpenter v1 creates the instance profile for this IAM role.
    Role(String),
    /// `spec.instanceProfile`: an existing instance profile, as v1alpha5 used.
    InstanceProfile(String),
}

/// The converted objects and what the user must know about them.
#[derive(Debug, Clone, Default)]
pub struct Migration {
    /// The v1 objects, EC2NodeClasses first (NodePools reference them).
    pub objects: Vec<Value>,
    /// Warnings (fields with no v1 equivalent, changed defaults) and errors (cannot convert).
    pub findings: Vec<Finding>,
}

impl Migration {
    /// Whether some object could not be converted.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// Converts every v1alpha5 Provisioner and v1alpha1 AWSNodeTemplate of the input; other
/// documents are left out of the output (they need no migration).
pub fn migrate(files: &[SourceFile], identity: Option<&NodeIdentity>) -> Migration {
    let mut m = Migration::default();
    let mut classes = Vec::new();
    let mut pools = Vec::new();
    for file in files {
        for doc in &file.documents {
            let Some(obj) = ObjectRef::of(&doc.value) else {
                continue;
            };
            let mut note = |sev: Severity, path: &str, message: String| {
                m.findings.push(Finding {
                    file: file.name.clone(),
                    line: doc.lines.line_of(path).unwrap_or(doc.line),
                    severity: sev,
                    object: Some(obj.display()),
                    field: (!path.is_empty()).then(|| path.to_string()),
                    message,
                });
            };
            match (obj.api_version.as_str(), obj.kind.as_str()) {
                ("karpenter.sh/v1alpha5", "Provisioner") => {
                    pools.push(provisioner(&doc.value, &mut note))
                }
                ("karpenter.k8s.aws/v1alpha1", "AWSNodeTemplate") => {
                    classes.push(aws_node_template(&doc.value, identity, &mut note))
                }
                _ => {}
            }
        }
    }
    m.objects = classes.into_iter().chain(pools).collect();
    m
}

/// Renders the converted objects as multi-document YAML.
pub fn to_yaml(objects: &[Value]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(o).unwrap_or_default());
    }
    out
}

type Note<'a> = dyn FnMut(Severity, &str, String) + 'a;

/// Keeps the object's own name, labels and annotations; drops server-set metadata.
fn metadata(v: &Value) -> Value {
    let mut meta = Map::new();
    if let Some(m) = v.get("metadata").and_then(Value::as_object) {
        for k in ["name", "labels", "annotations"] {
            if let Some(x) = m.get(k) {
                meta.insert(k.to_string(), x.clone());
            }
        }
    }
    Value::Object(meta)
}

fn seconds(n: &Value) -> Option<String> {
    n.as_i64().map(|s| format!("{s}s"))
}

fn provisioner(v: &Value, note: &mut Note<'_>) -> Value {
    let empty = Map::new();
    let spec = v.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    let mut template_meta = Map::new();
    let mut tspec = Map::new();
    let mut pool = Map::new();
    let mut disruption = Map::new();

    for (key, val) in spec {
        let path = format!("spec.{key}");
        match key.as_str() {
            "labels" => drop(template_meta.insert("labels".into(), val.clone())),
            "annotations" => drop(template_meta.insert("annotations".into(), val.clone())),
            "taints" | "startupTaints" => drop(tspec.insert(key.clone(), val.clone())),
            "requirements" => {
                let reqs: Vec<Value> = val
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let mut r = r.clone();
                        if r.get("key").and_then(Value::as_str) == Some("karpenter.sh/provisioner-name") {
                            r["key"] = json!("karpenter.sh/nodepool");
                        }
                        r
                    })
                    .collect();
                tspec.insert("requirements".into(), Value::Array(reqs));
            }
            "providerRef" => {
                let name = val.get("name").cloned().unwrap_or(json!(""));
                tspec.insert("nodeClassRef".into(), json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": name}));
            }
            "ttlSecondsAfterEmpty" => {
                if let Some(d) = seconds(val) {
                    disruption.insert("consolidationPolicy".into(), json!("WhenEmpty"));
                    disruption.insert("consolidateAfter".into(), json!(d));
                }
            }
            "consolidation" => {
                if val.get("enabled").and_then(Value::as_bool) == Some(true) {
                    disruption.insert("consolidationPolicy".into(), json!("WhenEmptyOrUnderutilized"));
                    disruption.insert("consolidateAfter".into(), json!("0s"));
                }
            }
            "ttlSecondsUntilExpired" => {
                if let Some(d) = seconds(val) {
                    tspec.insert("expireAfter".into(), json!(d));
                }
            }
            "limits" => {
                if let Some(r) = val.get("resources") {
                    pool.insert("limits".into(), r.clone());
                }
            }
            "weight" => drop(pool.insert("weight".into(), val.clone())),
            "kubeletConfiguration" => note(
                Severity::Warning,
                &path,
                "no NodePool equivalent: in v1 kubelet settings live in the EC2NodeClass (spec.kubelet); move them to the EC2NodeClass this NodePool references".into(),
            ),
            "provider" => note(
                Severity::Error,
                &path,
                "an inline provider has no v1 equivalent: write its settings as an EC2NodeClass and reference it with providerRef, then migrate again".into(),
            ),
            other => note(Severity::Warning, &path, format!("{other} has no v1 equivalent and is dropped")),
        }
    }
    if !spec.contains_key("providerRef") && !spec.contains_key("provider") {
        note(
            Severity::Error,
            "spec.providerRef",
            "a v1 NodePool needs a nodeClassRef: add providerRef naming the AWSNodeTemplate".into(),
        );
    }
    if !tspec.contains_key("expireAfter") {
        tspec.insert("expireAfter".into(), json!("Never"));
        note(
            Severity::Note,
            "spec",
            "no ttlSecondsUntilExpired: expireAfter is set to Never to keep v1alpha5's behaviour (v1 would default to 720h)".into(),
        );
    }
    if !disruption.contains_key("consolidationPolicy") {
        disruption.insert("consolidationPolicy".into(), json!("WhenEmpty"));
        disruption.insert("consolidateAfter".into(), json!("Never"));
        note(
            Severity::Note,
            "spec",
            "neither ttlSecondsAfterEmpty nor consolidation: consolidateAfter is Never to keep v1alpha5's behaviour (v1 would consolidate at once)".into(),
        );
    }
    tspec.entry("requirements").or_insert(json!([]));
    let mut template = Map::new();
    if !template_meta.is_empty() {
        template.insert("metadata".into(), Value::Object(template_meta));
    }
    template.insert("spec".into(), Value::Object(tspec));
    pool.insert("template".into(), Value::Object(template));
    pool.insert("disruption".into(), Value::Object(disruption));
    json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": metadata(v), "spec": pool})
}

/// A v1alpha1 selector map becomes v1 selector terms: `aws-ids` lists ids, anything else is tags.
fn selector_terms(sel: &Value) -> Value {
    let Some(map) = sel.as_object() else {
        return json!([]);
    };
    if let Some(ids) = map.get("aws-ids").and_then(Value::as_str) {
        return Value::Array(ids.split(',').map(|id| json!({"id": id.trim()})).collect());
    }
    json!([{"tags": sel}])
}

fn aws_node_template(v: &Value, identity: Option<&NodeIdentity>, note: &mut Note<'_>) -> Value {
    let empty = Map::new();
    let spec = v.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    let mut out = Map::new();
    let family = spec
        .get("amiFamily")
        .and_then(Value::as_str)
        .unwrap_or("AL2")
        .to_string();
    for (key, val) in spec {
        let path = format!("spec.{key}");
        match key.as_str() {
            "subnetSelector" => drop(out.insert("subnetSelectorTerms".into(), selector_terms(val))),
            "securityGroupSelector" => drop(out.insert("securityGroupSelectorTerms".into(), selector_terms(val))),
            "amiSelector" => drop(out.insert("amiSelectorTerms".into(), selector_terms(val))),
            "instanceProfile" => drop(out.insert("instanceProfile".into(), val.clone())),
            "amiFamily" => {}
            "tags" | "userData" | "blockDeviceMappings" | "metadataOptions" | "detailedMonitoring" | "context" => {
                out.insert(key.clone(), val.clone());
            }
            "launchTemplate" => note(
                Severity::Error,
                &path,
                "launch templates are not supported in v1: express their settings (AMI, user data, block devices, security groups) in the EC2NodeClass".into(),
            ),
            other => note(Severity::Warning, &path, format!("{other} has no v1 equivalent and is dropped")),
        }
    }
    if !out.contains_key("amiSelectorTerms") {
        let alias = match family.as_str() {
            "AL2" => Some("al2@latest"),
            "AL2023" => Some("al2023@latest"),
            "Bottlerocket" => Some("bottlerocket@latest"),
            _ => None,
        };
        match alias {
            Some(a) => {
                out.insert("amiSelectorTerms".into(), json!([{"alias": a}]));
                note(
                    Severity::Note,
                    "spec",
                    format!(
                        "amiFamily {family} (the v1alpha1 default is AL2) becomes amiSelectorTerms alias {a}; pin a version instead of @latest for production"
                    ),
                );
            }
            None => {
                note(
                    Severity::Error,
                    "spec.amiFamily",
                    format!(
                        "amiFamily {family} without amiSelector cannot be expressed as an alias: add amiSelectorTerms by hand"
                    ),
                );
            }
        }
    } else {
        out.insert("amiFamily".into(), json!(family));
    }
    if !out.contains_key("instanceProfile") {
        match identity {
            Some(NodeIdentity::Role(r)) => drop(out.insert("role".into(), json!(r))),
            Some(NodeIdentity::InstanceProfile(p)) => drop(out.insert("instanceProfile".into(), json!(p))),
            None => note(
                Severity::Error,
                "spec",
                "v1 needs the node identity that v1alpha5 took from settings.aws.defaultInstanceProfile: pass --instance-profile NAME (the same profile) or --role NAME".into(),
            ),
        }
    }
    json!({"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": metadata(v), "spec": out})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::from_text;

    fn run(text: &str, id: Option<&NodeIdentity>) -> Migration {
        migrate(&[from_text("in.yaml", text)], id)
    }

    #[test]
    fn ttl_after_empty_becomes_when_empty() {
        let m = run(
            "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner\nmetadata: {name: p}\nspec:\n  providerRef: {name: d}\n  ttlSecondsAfterEmpty: 30\n  ttlSecondsUntilExpired: 2592000\n",
            None,
        );
        let spec = &m.objects[0]["spec"];
        assert_eq!(
            spec["disruption"],
            json!({"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30s"})
        );
        assert_eq!(spec["template"]["spec"]["expireAfter"], json!("2592000s"));
        assert_eq!(
            spec["template"]["spec"]["nodeClassRef"],
            json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "d"})
        );
        assert!(!m.has_errors());
    }

    #[test]
    fn defaults_keep_v1alpha5_behaviour() {
        let m = run(
            "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner\nmetadata: {name: p}\nspec:\n  providerRef: {name: d}\n",
            None,
        );
        let spec = &m.objects[0]["spec"];
        assert_eq!(spec["template"]["spec"]["expireAfter"], json!("Never"));
        assert_eq!(spec["disruption"]["consolidateAfter"], json!("Never"));
    }

    #[test]
    fn consolidation_enabled_becomes_underutilized() {
        let m = run(
            "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner\nmetadata: {name: p}\nspec:\n  providerRef: {name: d}\n  consolidation: {enabled: true}\n  limits: {resources: {cpu: 100}}\n  weight: 5\n",
            None,
        );
        let spec = &m.objects[0]["spec"];
        assert_eq!(
            spec["disruption"]["consolidationPolicy"],
            json!("WhenEmptyOrUnderutilized")
        );
        assert_eq!(spec["limits"], json!({"cpu": 100}));
        assert_eq!(spec["weight"], json!(5));
    }

    #[test]
    fn aws_ids_become_id_terms_and_identity_is_required() {
        let text = "apiVersion: karpenter.k8s.aws/v1alpha1\nkind: AWSNodeTemplate\nmetadata: {name: d}\nspec:\n  subnetSelector: {aws-ids: \"subnet-1, subnet-2\"}\n  securityGroupSelector: {team: a}\n";
        let m = run(text, None);
        assert!(m.has_errors(), "no identity given");
        let m = run(text, Some(&NodeIdentity::Role("NodeRole".into())));
        assert!(!m.has_errors());
        let spec = &m.objects[0]["spec"];
        assert_eq!(
            spec["subnetSelectorTerms"],
            json!([{"id": "subnet-1"}, {"id": "subnet-2"}])
        );
        assert_eq!(
            spec["securityGroupSelectorTerms"],
            json!([{"tags": {"team": "a"}}])
        );
        assert_eq!(spec["role"], json!("NodeRole"));
        assert_eq!(spec["amiSelectorTerms"], json!([{"alias": "al2@latest"}]));
    }

    #[test]
    fn unconvertible_fields_are_named() {
        let m = run(
            "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner\nmetadata: {name: p}\nspec:\n  provider: {subnetSelector: {a: b}}\n",
            None,
        );
        assert!(m.findings.iter().any(|f| f.severity == Severity::Error
            && f.field.as_deref() == Some("spec.provider")
            && f.line == 5));
    }
}
