//! A pod's volume zones, resolved by the index from its claims, their PersistentVolumes and
//! StorageClasses (upstream `pkg/scheduling/volumetopology.go`), without a server.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::watcher::Event;
use serde_json::json;
use tandem_model::catalog::Catalog;
use tandem_nodescaler::snapshot::PendingPod;
use tandem_state::{ClusterState, Index};

const ZONE: &str = "topology.kubernetes.io/zone";

fn index() -> Index {
    let mut ix = Index::new(Arc::new(Catalog::kwok()));
    ix.mark_synced();
    ix
}

/// An unschedulable pod in `ns` mounting `claims` (and an ephemeral volume `scratch` when
/// `ephemeral`).
fn pod_with(name: &str, claims: &[&str], ephemeral: bool) -> Pod {
    let mut volumes: Vec<serde_json::Value> = claims
        .iter()
        .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
        .collect();
    if ephemeral {
        volumes.push(
            json!({"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}}}),
        );
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": name},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}],
                 "volumes": volumes},
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]},
    }))
    .unwrap()
}

fn pod(name: &str, claims: &[&str]) -> Pod {
    pod_with(name, claims, false)
}

/// A claim bound to `volume` (`""`: unbound) asking for `class` (`None`: unset).
fn pvc(name: &str, volume: &str, class: Option<&str>) -> PersistentVolumeClaim {
    let mut spec = json!({"accessModes": ["ReadWriteOnce"],
                          "resources": {"requests": {"storage": "1Gi"}}});
    if !volume.is_empty() {
        spec["volumeName"] = json!(volume);
    }
    if let Some(c) = class {
        spec["storageClassName"] = json!(c);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns"}, "spec": spec,
    }))
    .unwrap()
}

/// A PersistentVolume usable from `zones`.
fn pv(name: &str, zones: &[&str]) -> PersistentVolume {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": "/data"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": ZONE, "operator": "In", "values": zones}]}]}}},
    }))
    .unwrap()
}

/// A StorageClass provisioning into `zones` (any when empty), created at `created`.
fn class(name: &str, zones: &[&str], default: bool, created: &str) -> StorageClass {
    let mut sc = json!({
        "metadata": {"name": name, "creationTimestamp": created},
        "provisioner": "csi.example", "volumeBindingMode": "WaitForFirstConsumer",
    });
    if !zones.is_empty() {
        sc["allowedTopologies"] =
            json!([{"matchLabelExpressions": [{"key": ZONE, "values": zones}]}]);
    }
    if default {
        sc["metadata"]["annotations"] =
            json!({"storageclass.kubernetes.io/is-default-class": "true"});
    }
    serde_json::from_value(sc).unwrap()
}

fn pending<'a>(st: &'a ClusterState, name: &str) -> Option<&'a PendingPod> {
    st.snapshot.pods.iter().find(|p| p.name == name)
}

fn zones_of(ix: &Index, name: &str) -> Option<Vec<String>> {
    pending(&ix.state(), name).map(|p| p.volume_zones.clone())
}

#[test]
fn bound_claim_pins_the_pod_to_its_volumes_zone() {
    let mut ix = index();
    ix.apply_persistent_volume(pv("pv-1", &["test-zone-c"]));
    ix.apply_persistent_volume_claim(pvc("data", "pv-1", Some("")));
    ix.apply_pod(pod("db", &["data"]));
    assert_eq!(zones_of(&ix, "db").unwrap(), ["test-zone-c"]);
}

#[test]
fn unbound_claim_takes_its_storage_class_allowed_topologies() {
    let mut ix = index();
    ix.apply_storage_class(class(
        "zonal",
        &["test-zone-b", "test-zone-d"],
        false,
        "2024-01-01T00:00:00Z",
    ));
    ix.apply_persistent_volume_claim(pvc("data", "", Some("zonal")));
    ix.apply_pod(pod("db", &["data"]));
    assert_eq!(zones_of(&ix, "db").unwrap(), ["test-zone-b", "test-zone-d"]);
}

#[test]
fn claim_naming_no_class_takes_the_newest_default_class() {
    let mut ix = index();
    ix.apply_storage_class(class("old", &["test-zone-a"], true, "2024-01-01T00:00:00Z"));
    ix.apply_storage_class(class("new", &["test-zone-b"], true, "2024-06-01T00:00:00Z"));
    ix.apply_storage_class(class(
        "other",
        &["test-zone-c"],
        false,
        "2025-01-01T00:00:00Z",
    ));
    ix.apply_persistent_volume_claim(pvc("data", "", None));
    ix.apply_pod(pod("db", &["data"]));
    assert_eq!(zones_of(&ix, "db").unwrap(), ["test-zone-b"]);
    // An empty class name is not "unset": only a pre-made volume binds it, in any zone.
    ix.apply_persistent_volume_claim(pvc("data", "", Some("")));
    assert!(zones_of(&ix, "db").unwrap().is_empty());
}

#[test]
fn claim_naming_no_class_without_a_default_is_unconstrained() {
    let mut ix = index();
    ix.apply_storage_class(class(
        "zonal",
        &["test-zone-a"],
        false,
        "2024-01-01T00:00:00Z",
    ));
    ix.apply_persistent_volume_claim(pvc("data", "", None));
    ix.apply_pod(pod("db", &["data"]));
    assert!(zones_of(&ix, "db").unwrap().is_empty());
}

#[test]
fn changed_or_deleted_volume_shows_in_the_next_state() {
    let mut ix = index();
    ix.apply_persistent_volume(pv("pv-1", &["test-zone-a"]));
    ix.apply_persistent_volume_claim(pvc("data", "pv-1", Some("")));
    ix.apply_pod(pod("db", &["data"]));
    assert_eq!(zones_of(&ix, "db").unwrap(), ["test-zone-a"]);

    ix.apply_persistent_volume(pv("pv-1", &["test-zone-d"]));
    assert_eq!(zones_of(&ix, "db").unwrap(), ["test-zone-d"]);

    ix.delete_persistent_volume(&pv("pv-1", &[]));
    assert_eq!(
        zones_of(&ix, "db"),
        None,
        "a claim bound to a missing volume cannot be mounted anywhere"
    );

    ix.persistent_volume_event(Event::Init);
    ix.persistent_volume_event(Event::InitApply(pv("pv-1", &["test-zone-b"])));
    ix.persistent_volume_event(Event::InitDone);
    assert_eq!(zones_of(&ix, "db").unwrap(), ["test-zone-b"]);
}

#[test]
fn claim_binding_switches_from_class_zones_to_volume_zones() {
    let mut ix = index();
    ix.apply_storage_class(class(
        "zonal",
        &["test-zone-a", "test-zone-b"],
        false,
        "2024-01-01T00:00:00Z",
    ));
    ix.apply_persistent_volume_claim(pvc("data", "", Some("zonal")));
    ix.apply_pod(pod("db", &["data"]));
    assert_eq!(zones_of(&ix, "db").unwrap(), ["test-zone-a", "test-zone-b"]);
    ix.apply_persistent_volume(pv("pvc-123", &["test-zone-b"]));
    ix.apply_persistent_volume_claim(pvc("data", "pvc-123", Some("zonal")));
    assert_eq!(zones_of(&ix, "db").unwrap(), ["test-zone-b"]);
}

#[test]
fn zones_intersect_over_the_pods_volumes_including_ephemeral_ones() {
    let mut ix = index();
    ix.apply_persistent_volume(pv("pv-1", &["test-zone-a", "test-zone-b"]));
    ix.apply_persistent_volume_claim(pvc("data", "pv-1", Some("")));
    ix.apply_storage_class(class(
        "zonal",
        &["test-zone-b", "test-zone-c"],
        false,
        "2024-01-01T00:00:00Z",
    ));
    ix.apply_persistent_volume_claim(pvc("db-scratch", "", Some("zonal")));
    ix.apply_pod(pod_with("db", &["data"], true));
    assert_eq!(zones_of(&ix, "db").unwrap(), ["test-zone-b"]);
}

#[test]
fn volumes_with_no_zone_in_common_keep_the_pod_out_of_the_pending_set() {
    let mut ix = index();
    ix.apply_persistent_volume(pv("pv-a", &["test-zone-a"]));
    ix.apply_persistent_volume(pv("pv-b", &["test-zone-b"]));
    ix.apply_persistent_volume_claim(pvc("one", "pv-a", Some("")));
    ix.apply_persistent_volume_claim(pvc("two", "pv-b", Some("")));
    ix.apply_pod(pod("db", &["one", "two"]));
    ix.apply_pod(pod("plain", &[]));
    let st = ix.state();
    assert!(pending(&st, "db").is_none());
    assert!(pending(&st, "plain").is_some());
}

#[test]
fn pod_waits_outside_the_pending_set_until_its_claim_and_class_exist() {
    let mut ix = index();
    ix.apply_pod(pod_with("db", &[], true));
    assert_eq!(zones_of(&ix, "db"), None, "ephemeral claim not created yet");
    ix.apply_persistent_volume_claim(pvc("db-scratch", "", Some("zonal")));
    assert_eq!(zones_of(&ix, "db"), None, "its class does not exist yet");
    ix.apply_storage_class(class("zonal", &[], false, "2024-01-01T00:00:00Z"));
    assert_eq!(zones_of(&ix, "db").unwrap(), Vec::<String>::new());
    ix.delete_persistent_volume_claim(&pvc("db-scratch", "", None));
    assert_eq!(zones_of(&ix, "db"), None);
}

#[test]
fn bound_pods_carry_their_volume_zones_for_disruption() {
    let mut ix = index();
    ix.apply_persistent_volume(pv("pv-1", &["test-zone-c"]));
    ix.apply_persistent_volume_claim(pvc("data", "pv-1", Some("")));
    let mut p = pod("db", &["data"]);
    p.spec.as_mut().unwrap().node_name = Some("n1".into());
    p.status = None;
    ix.apply_pod(p);
    ix.apply_node(
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {ZONE: "test-zone-c"}},
            "status": {"allocatable": {"cpu": "2"}, "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap(),
    );
    let st = ix.state();
    let bound = &st.snapshot.nodes[0].pods[0];
    let spec = bound.disruption.spec.as_ref().expect("a bound pod's spec");
    assert_eq!(spec.volume_zones, ["test-zone-c"]);
}
