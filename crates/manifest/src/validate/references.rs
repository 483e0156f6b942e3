//! References between objects of the same input: what a ScaledObject, a TriggerAuthentication or
//! a NodePool names must exist, be of the right kind, and carry what is asked of it.
//!
//! A referenced object that is not in the input may well exist in the cluster (seed 003 uses the
//! `default` AKSNodeClass that AKS ships), so a missing target is a warning; a target that is in
//! the input but wrong (a key the Secret lacks, two ScaledObjects on one workload) is an error.
//! A NodeClass of another kind with the same name only adds a hint: inputs often hold several
//! clusters' manifests (the seeds do), so it may well be meant for another cluster.

use super::{Ctx, Located, get};
use crate::finding::Finding;
use crate::object::ObjectRef;
use serde_json::Value;
use std::collections::BTreeMap;

type Key<'a> = (&'a str, &'a str, &'a str);

/// Checks every reference of every object in `objects`.
pub(crate) fn check(objects: &[Located<'_>], out: &mut Vec<Finding>) {
    let mut index: BTreeMap<Key<'_>, Located<'_>> = BTreeMap::new();
    for o in objects {
        let key = (
            o.object.kind.as_str(),
            scope(o.object),
            o.object.name.as_str(),
        );
        if let Some(prev) = index.insert(key, *o) {
            let mut ctx = ctx_of(o, out);
            ctx.note(
                "",
                format!(
                    "defined again (first at {}:{}); applied in order, this one replaces it",
                    prev.file, prev.doc.line
                ),
            );
        }
    }
    let mut targets: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for o in objects {
        let v = &o.doc.value;
        match (o.object.group(), o.object.kind.as_str()) {
            ("keda.sh", "ScaledObject" | "ScaledJob") => {
                triggers_auth(o, v, &index, out);
                if o.object.kind == "ScaledObject" {
                    scale_target(o, v, &index, &mut targets, out);
                }
            }
            ("keda.sh", "TriggerAuthentication") => secrets(o, v, &index, out),
            ("karpenter.sh", "NodePool") => {
                node_class(o, get(v, "spec.template.spec.nodeClassRef"), &index, out)
            }
            ("karpenter.sh", "NodeClaim") => {
                node_class(o, get(v, "spec.nodeClassRef"), &index, out)
            }
            ("karpenter.sh", "Provisioner") => {
                if let Some(name) = get(v, "spec.providerRef.name").and_then(Value::as_str)
                    && !index.contains_key(&("AWSNodeTemplate", "", name))
                {
                    ctx_of(o, out).warn("spec.providerRef.name", format!("AWSNodeTemplate {name:?} is not in the input; it must exist in the cluster"));
                }
            }
            _ => {}
        }
    }
}

/// The namespace part of an object's key: empty for cluster-scoped kinds.
fn scope(o: &ObjectRef) -> &str {
    const CLUSTER: &[&str] = &[
        "NodePool",
        "NodeClaim",
        "EC2NodeClass",
        "AKSNodeClass",
        "KWOKNodeClass",
        "Provisioner",
        "AWSNodeTemplate",
        "ClusterTriggerAuthentication",
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
        "StorageClass",
    ];
    if CLUSTER.contains(&o.kind.as_str()) {
        ""
    } else {
        o.effective_namespace()
    }
}

fn ctx_of<'a>(o: &Located<'a>, out: &'a mut Vec<Finding>) -> Ctx<'a> {
    Ctx {
        file: o.file,
        doc: o.doc,
        object: Some(o.object.display()),
        out,
    }
}

fn triggers_auth(
    o: &Located<'_>,
    v: &Value,
    index: &BTreeMap<Key<'_>, Located<'_>>,
    out: &mut Vec<Finding>,
) {
    let Some(triggers) = get(v, "spec.triggers").and_then(Value::as_array) else {
        return;
    };
    let ns = o.object.effective_namespace();
    for (i, t) in triggers.iter().enumerate() {
        let Some(r) = t.get("authenticationRef") else {
            continue;
        };
        let path = format!("spec.triggers[{i}].authenticationRef");
        let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
        let kind = r
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("TriggerAuthentication");
        let found = match kind {
            "ClusterTriggerAuthentication" => {
                index.get(&("ClusterTriggerAuthentication", "", name))
            }
            _ => index.get(&("TriggerAuthentication", ns, name)),
        };
        let mut ctx = ctx_of(o, out);
        let Some(auth) = found else {
            let other = if kind == "ClusterTriggerAuthentication" {
                index.contains_key(&("TriggerAuthentication", ns, name)).then_some("a TriggerAuthentication of that name exists: set kind: TriggerAuthentication")
            } else {
                index.contains_key(&("ClusterTriggerAuthentication", "", name)).then_some("a ClusterTriggerAuthentication of that name exists: set kind: ClusterTriggerAuthentication")
            };
            match other {
                Some(hint) => ctx.error(
                    &path,
                    format!("{kind} {name:?} is not in namespace {ns}; {hint}"),
                ),
                None => ctx.warn(
                    &path,
                    format!("{kind} {ns}/{name} is not in the input; it must exist in the cluster"),
                ),
            }
            continue;
        };
        // Parameters the trigger leaves to its authentication must be provided by it.
        let ty = t.get("type").and_then(Value::as_str).unwrap_or_default();
        let md = t.get("metadata");
        let has = |k: &str| {
            md.and_then(|m| m.get(k)).is_some()
                || md.and_then(|m| m.get(format!("{k}FromEnv"))).is_some()
        };
        let needed: &[&str] = match ty {
            "rabbitmq" => &["host"],
            "aws-sqs-queue" => &["awsRegion"],
            _ => &[],
        };
        let provided = auth_params(&auth.doc.value);
        let pod_identity = get(&auth.doc.value, "spec.podIdentity.provider")
            .and_then(Value::as_str)
            .is_some_and(|p| p != "none");
        for p in needed {
            // Pod identity supplies credentials and region, never a broker address.
            let from_identity = pod_identity && *p != "host";
            if !(has(p) || provided.iter().any(|x| x == p) || from_identity) {
                ctx.error(
                    &format!("spec.triggers[{i}].metadata"),
                    format!("{p} is missing: neither the metadata nor {kind} {name:?} gives parameter {p:?}"),
                );
            }
        }
    }
}

/// The parameter names a TriggerAuthentication provides.
fn auth_params(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for list in [
        "secretTargetRef",
        "configMapTargetRef",
        "env",
        "boundServiceAccountToken",
    ] {
        for item in get(v, &format!("spec.{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(p) = item.get("parameter").and_then(Value::as_str) {
                out.push(p.to_string());
            }
        }
    }
    for vault in [
        "hashiCorpVault",
        "azureKeyVault",
        "gcpSecretManager",
        "awsSecretManager",
    ] {
        for item in get(v, &format!("spec.{vault}.secrets"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(p) = item.get("parameter").and_then(Value::as_str) {
                out.push(p.to_string());
            }
        }
    }
    out
}

fn scale_target(
    o: &Located<'_>,
    v: &Value,
    index: &BTreeMap<Key<'_>, Located<'_>>,
    targets: &mut BTreeMap<(String, String, String), String>,
    out: &mut Vec<Finding>,
) {
    let Some(r) = get(v, "spec.scaleTargetRef") else {
        return;
    };
    let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
    let kind = r
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Deployment");
    let ns = o.object.effective_namespace();
    let mut ctx = ctx_of(o, out);
    let key = (ns.to_string(), kind.to_string(), name.to_string());
    if let Some(other) = targets.insert(key, o.object.name.clone()) {
        ctx.error(
            "spec.scaleTargetRef",
            format!(
                "workload {name:?} of kind {kind} is already managed by ScaledObject {other:?}"
            ),
        );
    }
    if !index.contains_key(&(kind, ns, name)) {
        ctx.warn(
            "spec.scaleTargetRef.name",
            format!("{kind} {ns}/{name} is not in the input; it must exist in the cluster"),
        );
    }
}

fn secrets(
    o: &Located<'_>,
    v: &Value,
    index: &BTreeMap<Key<'_>, Located<'_>>,
    out: &mut Vec<Finding>,
) {
    let ns = o.object.effective_namespace();
    for (list, kind, data_fields) in [
        ("secretTargetRef", "Secret", ["data", "stringData"]),
        ("configMapTargetRef", "ConfigMap", ["data", "binaryData"]),
    ] {
        for (i, item) in get(v, &format!("spec.{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
            let key = item.get("key").and_then(Value::as_str).unwrap_or_default();
            let mut ctx = ctx_of(o, out);
            let Some(target) = index.get(&(kind, ns, name)) else {
                ctx.warn(
                    &format!("spec.{list}[{i}].name"),
                    format!("{kind} {ns}/{name} is not in the input; it must exist in the cluster"),
                );
                continue;
            };
            let has_key = data_fields
                .iter()
                .any(|f| target.doc.value.get(*f).and_then(|d| d.get(key)).is_some());
            if !has_key {
                ctx.error(
                    &format!("spec.{list}[{i}].key"),
                    format!("{kind} {ns}/{name} has no key {key:?}"),
                );
            }
        }
    }
}

fn node_class(
    o: &Located<'_>,
    r: Option<&Value>,
    index: &BTreeMap<Key<'_>, Located<'_>>,
    out: &mut Vec<Finding>,
) {
    let Some(r) = r else { return };
    let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or_default();
    let path = if o.object.kind == "NodePool" {
        "spec.template.spec.nodeClassRef.name"
    } else {
        "spec.nodeClassRef.name"
    };
    if index.contains_key(&(kind, "", name)) {
        return;
    }
    let others: Vec<&str> = super::karpenter::NODE_CLASSES
        .iter()
        .filter(|(_, k)| *k != kind && index.contains_key(&(k, "", name)))
        .map(|(_, k)| *k)
        .collect();
    let hint = if others.is_empty() {
        String::new()
    } else {
        format!(
            " (a {} of that name is: check nodeClassRef.group and kind)",
            others.join(" and ")
        )
    };
    ctx_of(o, out).warn(
        path,
        format!("{kind} {name:?} is not in the input; it must exist in the cluster{hint}"),
    );
}
