//! What a failing node-layer test prints about the cluster: every pod of its namespace, every
//! node and every NodeClaim with the fields that say why a pod is not Running (binding,
//! scheduler verdict, taints, readiness, claim conditions). A timeout alone says nothing about
//! a race seen once in CI; this says where the chain stopped.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use std::fmt::Write as _;

/// One line per pod of `namespace`, per node and per NodeClaim; list errors are reported inline
/// (the caller is already failing).
pub async fn node_layer(client: &Client, namespace: &str) -> String {
    let mut out = String::new();
    match Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(pods) => {
            for p in &pods.items {
                let _ = writeln!(out, "pod {}", pod_line(p));
            }
        }
        Err(e) => {
            let _ = writeln!(out, "pods: {e}");
        }
    }
    match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(nodes) => {
            for n in &nodes.items {
                let _ = writeln!(out, "node {}", node_line(n));
            }
        }
        Err(e) => {
            let _ = writeln!(out, "nodes: {e}");
        }
    }
    let gvk = GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim");
    let claims: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
    match claims.list(&ListParams::default()).await {
        Ok(list) => {
            for c in &list.items {
                let _ = writeln!(out, "nodeclaim {}", claim_line(c));
            }
        }
        Err(e) => {
            let _ = writeln!(out, "nodeclaims: {e}");
        }
    }
    out
}

fn pod_line(p: &Pod) -> String {
    let status = p.status.as_ref();
    let scheduled = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .map(|c| {
            format!(
                "{}/{}: {}",
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            )
        });
    format!(
        "{} phase={:?} node={:?} nominated={:?} deleting={} scheduled={:?}",
        p.metadata.name.as_deref().unwrap_or(""),
        status.and_then(|s| s.phase.as_deref()),
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        status.and_then(|s| s.nominated_node_name.as_deref()),
        p.metadata.deletion_timestamp.is_some(),
        scheduled
    )
}

fn node_line(n: &Node) -> String {
    let spec = n.spec.as_ref();
    let taints: Vec<String> = spec
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone());
    format!(
        "{} provider={:?} ready={:?} unschedulable={} deleting={} finalizers={:?} taints={taints:?}",
        n.metadata.name.as_deref().unwrap_or(""),
        spec.and_then(|s| s.provider_id.as_deref()),
        ready,
        spec.and_then(|s| s.unschedulable).unwrap_or(false),
        n.metadata.deletion_timestamp.is_some(),
        n.metadata.finalizers.as_deref().unwrap_or_default()
    )
}

fn claim_line(c: &DynamicObject) -> String {
    let status = c.data.get("status");
    let conditions: Vec<String> = status
        .and_then(|s| s.get("conditions"))
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={}",
                c.get("type").and_then(|v| v.as_str()).unwrap_or("?"),
                c.get("status").and_then(|v| v.as_str()).unwrap_or("?")
            )
        })
        .collect();
    format!(
        "{} provider={:?} node={:?} deleting={} conditions={conditions:?}",
        c.metadata.name.as_deref().unwrap_or(""),
        status
            .and_then(|s| s.get("providerID"))
            .and_then(|v| v.as_str()),
        status
            .and_then(|s| s.get("nodeName"))
            .and_then(|v| v.as_str()),
        c.metadata.deletion_timestamp.is_some()
    )
}
