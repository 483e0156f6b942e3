//! The index without a server: feed objects, assert on the published state.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::Event;
use serde_json::json;
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_api::kwok::KWOKNodeClass;
use tandem_model::catalog::Catalog;
use tandem_nodescaler::snapshot::NodeState;
use tandem_state::Index;

fn index() -> Index {
    Index::new(Arc::new(Catalog::kwok()))
}

fn pending(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": name},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]},
    }))
    .unwrap()
}

fn bound(name: &str, node: &str) -> Pod {
    let mut p = pending(name);
    p.spec.as_mut().unwrap().node_name = Some(node.into());
    p.status = None;
    p
}

fn nodepool(name: &str, class: &str) -> NodePool {
    serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {"limits": {"cpu": "8"}, "template": {"spec": {
            "requirements": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}],
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
    }))
    .unwrap()
}

fn node(name: &str, pool: &str, initialized: bool) -> Node {
    let mut labels = json!({"karpenter.sh/nodepool": pool, "kubernetes.io/hostname": name});
    if initialized {
        labels["karpenter.sh/initialized"] = json!("true");
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"providerID": format!("kwok://{name}")},
        "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "32"},
                   "allocatable": {"cpu": "1900m", "memory": "4Gi", "pods": "32"},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .unwrap()
}

fn claim(name: &str, provider_id: Option<&str>) -> NodeClaim {
    let mut v = json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": name, "labels": {"karpenter.sh/nodepool": "default"}},
        "spec": {
            "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                              "values": ["c-1x-amd64-linux", "c-4x-amd64-linux"]}],
            "resources": {"requests": {"cpu": "1"}},
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "kc"}},
    });
    if let Some(p) = provider_id {
        v["status"] =
            json!({"providerID": p, "capacity": {"cpu": "2"}, "allocatable": {"cpu": "1900m"}});
    }
    serde_json::from_value(v).unwrap()
}

fn class(name: &str) -> KWOKNodeClass {
    serde_json::from_value(json!({
        "apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass",
        "metadata": {"name": name}, "spec": {},
    }))
    .unwrap()
}

#[test]
fn state_is_unsynced_until_every_kind_was_listed() {
    let mut ix = index();
    ix.apply_pod(pending("a"));
    assert!(!ix.state().synced);
    ix.pod_event(Event::Init);
    ix.pod_event(Event::InitDone);
    assert!(!ix.state().synced, "other kinds not listed yet");
    ix.mark_synced();
    assert!(ix.state().synced);
}

#[test]
fn relist_is_buffered_until_init_done_then_replaces_everything() {
    let mut ix = index();
    ix.mark_synced();
    ix.apply_pod(pending("old"));
    ix.pod_event(Event::Init);
    ix.pod_event(Event::InitApply(pending("new")));
    let during = ix.state();
    assert_eq!(during.snapshot.pods.len(), 1);
    assert_eq!(
        during.snapshot.pods[0].name, "old",
        "readers see the old view mid-relist"
    );
    ix.pod_event(Event::InitDone);
    let after = ix.state();
    assert_eq!(after.snapshot.pods.len(), 1);
    assert_eq!(after.snapshot.pods[0].name, "new");
}

#[test]
fn snapshot_has_pending_pods_nodes_with_their_pods_and_pool_usage() {
    let mut ix = index();
    ix.mark_synced();
    ix.apply_node_class(class("kc"));
    ix.apply_nodepool(nodepool("default", "kc"));
    ix.apply_node(node("n1", "default", true));
    ix.apply_node(node("n2", "default", false));
    ix.apply_pod(pending("p1"));
    ix.apply_pod(bound("b1", "n1"));
    let s = ix.state();
    let snap = &s.snapshot;
    assert_eq!(snap.pods.len(), 1);
    assert_eq!(snap.pods[0].name, "p1");
    assert_eq!(snap.nodes.len(), 2);
    let n1 = snap.nodes.iter().find(|n| n.name == "n1").unwrap();
    assert_eq!(n1.state, NodeState::Ready);
    assert_eq!(n1.pods.len(), 1);
    assert_eq!(n1.allocatable.cpu.0, 1900);
    let n2 = snap.nodes.iter().find(|n| n.name == "n2").unwrap();
    assert_eq!(
        n2.state,
        NodeState::Initializing,
        "managed but not initialized"
    );
    let pool = &snap.nodepools[0];
    assert_eq!(pool.usage.cpu.0, 4000);
    assert_eq!(pool.node_count, 2);
    assert!(snap.catalogs.contains_key("kc"));
    assert_eq!(s.pods_by_node["n1"].len(), 1);
    ix.delete_pod(&pending("p1"));
    assert!(ix.state().snapshot.pods.is_empty());
}

#[test]
fn claims_without_a_node_are_in_flight_and_registered_ones_are_not() {
    let mut ix = index();
    ix.mark_synced();
    ix.apply_nodeclaim(claim("unlaunched", None));
    ix.apply_nodeclaim(claim("launched", Some("kwok://launched")));
    ix.apply_nodeclaim(claim("registered", Some("kwok://registered")));
    ix.apply_node(node("registered", "default", true));
    let s = ix.state();
    let names: Vec<&str> = s
        .snapshot
        .in_flight
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["launched", "unlaunched"]);
    let unlaunched = &s.snapshot.in_flight[1];
    assert_eq!(unlaunched.nodepool, "default");
    assert_eq!(
        unlaunched.allocatable.cpu.0, 1000,
        "holds what it was made for"
    );
    assert_eq!(
        unlaunched.capacity.cpu.0, 4000,
        "reserves its largest option"
    );
    let launched = &s.snapshot.in_flight[0];
    assert_eq!(launched.allocatable.cpu.0, 1900);
    assert!(s.node_by_provider_id("kwok://registered").is_some());
}

#[test]
fn pools_whose_class_is_not_ready_get_no_catalog() {
    let mut ix = index();
    ix.mark_synced();
    let mut c = class("kc");
    c.status = Some(
        serde_json::from_value(json!({"conditions": [
        {"type": "Ready", "status": "False"}]}))
        .unwrap(),
    );
    ix.apply_node_class(c);
    ix.apply_nodepool(nodepool("default", "kc"));
    assert!(ix.state().snapshot.catalogs.is_empty());
}

#[test]
fn volume_attachments_are_kept_by_node_and_pods_resolve_their_volumes() {
    let mut ix = index();
    ix.mark_synced();
    let va: k8s_openapi::api::storage::v1::VolumeAttachment = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
        "metadata": {"name": "va-1"},
        "spec": {"attacher": "csi.example", "nodeName": "n1",
                 "source": {"persistentVolumeName": "pv-1"}},
    }))
    .unwrap();
    ix.apply_volume_attachment(va.clone());
    let pvc = |name: &str, volume: &str| -> k8s_openapi::api::core::v1::PersistentVolumeClaim {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"volumeName": volume},
        }))
        .unwrap()
    };
    ix.apply_persistent_volume_claim(pvc("data", "pv-1"));
    ix.apply_persistent_volume_claim(pvc("web-0-scratch", "pv-2"));
    ix.apply_persistent_volume_claim(pvc("unbound", ""));
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}], "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "missing", "persistentVolumeClaim": {"claimName": "unbound"}},
            {"name": "cfg", "configMap": {"name": "x"}}]},
    }))
    .unwrap();
    let st = ix.state();
    assert_eq!(st.volume_attachments["n1"].len(), 1);
    assert_eq!(
        st.volume_attachments["n1"][0].persistent_volume.as_deref(),
        Some("pv-1")
    );
    assert_eq!(st.persistent_volumes_of(&pod), ["pv-1", "pv-2"]);
    ix.delete_volume_attachment(&va);
    assert!(ix.state().volume_attachments.is_empty());
}
