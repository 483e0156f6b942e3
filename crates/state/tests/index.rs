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
    // A Node object whose kubelet has not reported its status yet: its room is still the
    // claim's, or it would be counted nowhere.
    ix.apply_nodeclaim(claim("joining", Some("kwok://joining")));
    let mut joining = node("joining", "default", false);
    joining.status = None;
    ix.apply_node(joining);
    let s = ix.state();
    let names: Vec<&str> = s
        .snapshot
        .in_flight
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["joining", "launched", "unlaunched"]);
    let unlaunched = &s.snapshot.in_flight[2];
    assert_eq!(unlaunched.nodepool, "default");
    assert_eq!(
        unlaunched.allocatable.cpu.0, 1000,
        "holds what it was made for"
    );
    assert_eq!(
        unlaunched.capacity.cpu.0, 4000,
        "reserves its largest option"
    );
    let launched = &s.snapshot.in_flight[1];
    assert_eq!(launched.allocatable.cpu.0, 1900);
    assert!(s.node_by_provider_id("kwok://registered").is_some());
}

#[test]
fn a_registering_node_is_planned_without_its_passing_taints() {
    let taints = json!([
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
        {"key": "karpenter.sh/unregistered", "effect": "NoExecute"},
        {"key": "example.com/agent-not-ready", "value": "true", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
    ]);
    let with_taints = |name: &str, initialized: bool| {
        let mut n = node(name, "default", initialized);
        n.spec.as_mut().unwrap().taints = Some(serde_json::from_value(taints.clone()).unwrap());
        n
    };
    let mut c = claim("coming", Some("kwok://coming"));
    c.spec.startup_taints = vec![
        serde_json::from_value(
            json!({"key": "example.com/agent-not-ready", "value": "true", "effect": "NoSchedule"}),
        )
        .unwrap(),
    ];
    let mut ix = index();
    ix.mark_synced();
    ix.apply_nodeclaim(c);
    ix.apply_node(with_taints("coming", false));
    ix.apply_node(with_taints("settled", true));
    let s = ix.state();
    let keys = |name: &str| -> Vec<String> {
        let n = s.snapshot.nodes.iter().find(|n| n.name == name).unwrap();
        n.taints.iter().map(|t| t.key.clone()).collect()
    };
    // Coming up: the lifecycle's, Karpenter's and the claim's startup taints pass; its own stay.
    assert_eq!(keys("coming"), ["dedicated"]);
    // Initialized: every taint it still has is its own.
    assert_eq!(keys("settled").len(), 4);
}

#[test]
fn ec2_node_classes_get_the_catalog_of_their_subnet_zones_once_ready() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let mut ix = index().with_zone_catalog(Arc::new(move |zones: &[String]| {
        record.lock().unwrap().push(zones.to_vec());
        Arc::new(Catalog::benchmark_sized(3))
    }));
    ix.mark_synced();
    let class = |ready: &str| -> tandem_api::aws::v1::EC2NodeClass {
        serde_json::from_value(json!({
            "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
            "metadata": {"name": "default"},
            "spec": {"role": "r", "amiSelectorTerms": [{"alias": "al2023@latest"}],
                     "subnetSelectorTerms": [{"id": "subnet-1"}],
                     "securityGroupSelectorTerms": [{"id": "sg-1"}]},
            "status": {"subnets": [{"id": "subnet-2", "zone": "us-east-1b"},
                                   {"id": "subnet-1", "zone": "us-east-1a"}],
                       "conditions": [{"type": "Ready", "status": ready}]}
        }))
        .unwrap()
    };
    ix.apply_ec2_node_class(class("False"));
    let st = ix.state();
    assert!(st.snapshot.catalogs.is_empty(), "not Ready: no catalog");
    assert_eq!(st.node_classes.get("default"), Some(&false));
    ix.apply_ec2_node_class(class("True"));
    let st = ix.state();
    assert_eq!(
        st.snapshot.catalogs.get("default").map(|c| c.len()),
        Some(3)
    );
    assert_eq!(st.node_classes.get("default"), Some(&true));
    assert_eq!(
        seen.lock().unwrap().last().cloned(),
        Some(vec!["us-east-1a".to_owned(), "us-east-1b".to_owned()])
    );
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
    ix.apply_pod(pod);
    let st = ix.state();
    assert_eq!(st.volume_attachments["n1"].len(), 1);
    assert_eq!(
        st.volume_attachments["n1"][0].persistent_volume.as_deref(),
        Some("pv-1")
    );
    assert_eq!(
        st.persistent_volumes_of(&st.pods_by_node["n1"][0]),
        ["pv-1", "pv-2"]
    );
    ix.delete_volume_attachment(&va);
    assert!(ix.state().volume_attachments.is_empty());
}

fn with_meta(mut pod: Pod, meta: serde_json::Value) -> Pod {
    let m: kube::api::ObjectMeta = serde_json::from_value(meta).unwrap();
    pod.metadata.labels = m.labels.or(pod.metadata.labels);
    pod.metadata.annotations = m.annotations;
    pod.metadata.owner_references = m.owner_references;
    pod
}

fn pdb(name: &str, app: &str, allowed: i32) -> k8s_openapi::api::policy::v1::PodDisruptionBudget {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"selector": {"matchLabels": {"app": app}}, "maxUnavailable": 1},
        "status": {"disruptionsAllowed": allowed, "currentHealthy": 1, "desiredHealthy": 1,
                   "expectedPods": 1},
    }))
    .unwrap()
}

#[test]
fn nodes_carry_claim_age_hash_class_and_the_last_pod_event_observed() {
    let mut ix = index();
    ix.mark_synced();
    let np = nodepool("default", "kc");
    ix.apply_nodepool(np.clone());
    let mut c = claim("c1", Some("kwok://n1"));
    c.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_millisecond(1_000).unwrap(),
    ));
    c.metadata.annotations = Some(
        [
            ("karpenter.sh/nodepool-hash".to_owned(), "h1".to_owned()),
            ("karpenter.sh/do-not-disrupt".to_owned(), "true".to_owned()),
        ]
        .into(),
    );
    ix.apply_nodeclaim(c);
    ix.set_now(5_000);
    ix.apply_node(node("n1", "default", true));
    let d = &ix.state().snapshot.nodes[0].disruption;
    assert_eq!(d.created_ms, Some(1_000));
    assert_eq!(
        d.last_pod_event_ms, 1_000,
        "no pod event yet: counts from creation"
    );
    assert_eq!(d.nodepool_hash.as_deref(), Some("h1"));
    assert_eq!(d.node_class.as_deref(), Some("kc"));
    assert!(d.do_not_disrupt);

    ix.set_now(7_000);
    ix.apply_pod(bound("a", "n1"));
    assert_eq!(
        ix.state().snapshot.nodes[0].disruption.last_pod_event_ms,
        7_000
    );
    // A status update of the same pod is not a pod event.
    ix.set_now(8_000);
    ix.apply_pod(bound("a", "n1"));
    assert_eq!(
        ix.state().snapshot.nodes[0].disruption.last_pod_event_ms,
        7_000
    );
    ix.set_now(9_000);
    ix.delete_pod(&bound("a", "n1"));
    // delete_pod bypasses the event path; the watch path records it.
    ix.apply_pod(bound("b", "n1"));
    ix.set_now(11_000);
    ix.pod_event(Event::Delete(bound("b", "n1")));
    assert_eq!(
        ix.state().snapshot.nodes[0].disruption.last_pod_event_ms,
        11_000
    );

    let pool = &ix.state().snapshot.disruption["default"];
    assert_eq!(pool.consolidate_after_ms, Some(0));
    assert_eq!(pool.expire_after_ms, Some(720 * 3_600_000));
    assert_eq!(
        pool.hash.as_deref(),
        Some(tandem_state::convert::nodepool_hash(&np).as_str())
    );
}

#[test]
fn nodepool_disruption_settings_are_read_from_the_spec() {
    use tandem_nodescaler::snapshot::{BudgetNodes, BudgetReason, ConsolidationPolicy};
    let mut ix = index();
    ix.mark_synced();
    let np: NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "p"},
        "spec": {
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10s",
                "budgets": [{"nodes": "1"}, {"nodes": "20%", "reasons": ["Drifted"],
                             "schedule": "0 9 * * *", "duration": "1h"}]},
            "template": {"spec": {"requirements": [], "expireAfter": "Never",
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "kc"}}}},
    }))
    .unwrap();
    ix.apply_nodepool(np);
    let d = &ix.state().snapshot.disruption["p"];
    assert_eq!(d.policy, ConsolidationPolicy::WhenEmpty);
    assert_eq!(d.consolidate_after_ms, Some(10_000));
    assert_eq!(d.expire_after_ms, None);
    assert_eq!(d.budgets.len(), 2);
    assert_eq!(d.budgets[0].nodes, BudgetNodes::Count(1));
    assert_eq!(d.budgets[1].nodes, BudgetNodes::Percent(20));
    assert_eq!(d.budgets[1].reasons, vec![BudgetReason::Drifted]);
    assert_eq!(d.budgets[1].schedule.as_deref(), Some("0 9 * * *"));
    assert_eq!(d.budgets[1].duration_ms, Some(3_600_000));
}

#[test]
fn bound_pods_carry_owner_do_not_disrupt_pdb_blocks_and_their_spec() {
    use tandem_nodescaler::snapshot::PodOwner;
    let mut ix = index();
    ix.mark_synced();
    ix.apply_node(node("n1", "default", true));
    let ds = with_meta(
        bound("ds", "n1"),
        json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d",
                                     "uid": "u", "controller": true}]}),
    );
    let keep = with_meta(
        bound("keep", "n1"),
        json!({"annotations": {"karpenter.sh/do-not-disrupt": "true"}}),
    );
    let guarded = with_meta(bound("guarded", "n1"), json!({"labels": {"app": "g"}}));
    let free = with_meta(bound("free", "n1"), json!({"labels": {"app": "f"}}));
    for p in [ds, keep, guarded, free] {
        ix.apply_pod(p);
    }
    ix.apply_pdb(pdb("g-pdb", "g", 0));
    ix.apply_pdb(pdb("f-pdb", "f", 1));
    let st = ix.state();
    let pods = &st.snapshot.nodes[0].pods;
    let by = |n: &str| &pods.iter().find(|p| p.name == n).unwrap().disruption;
    assert_eq!(by("ds").owner, PodOwner::DaemonSet);
    assert!(by("keep").do_not_disrupt);
    assert_eq!(by("guarded").pdb_blocked.as_deref(), Some("ns/g-pdb"));
    assert_eq!(by("free").pdb_blocked, None);
    assert!(!by("free").do_not_disrupt);
    let spec = by("free")
        .spec
        .as_ref()
        .expect("bound pods keep their spec");
    assert_eq!(spec.shape.effective_requests().cpu.0, 1000);
    // A second PDB selecting the same pod blocks it: the Eviction API refuses such pods.
    ix.apply_pdb(pdb("f-pdb-2", "f", 1));
    let st = ix.state();
    let free = st.snapshot.nodes[0]
        .pods
        .iter()
        .find(|p| p.name == "free")
        .unwrap();
    assert!(free.disruption.pdb_blocked.is_some());
}

/// Names of the claims the state holds in flight.
fn in_flight(ix: &Index) -> Vec<String> {
    ix.state()
        .snapshot
        .in_flight
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

#[test]
fn created_claims_count_before_the_watch_shows_them_and_the_watch_stays_the_authority() {
    let mut ix = index();
    ix.mark_synced();
    ix.set_now(1_000);
    // The provisioner's create calls answered; the watch has shown none of it yet.
    ix.created_nodeclaim(claim("a", None));
    ix.created_nodeclaim(claim("b", None));
    ix.created_nodeclaim(claim("c", None));
    assert_eq!(in_flight(&ix), ["a", "b", "c"], "counted at once");

    // The watch shows `a` changed (its finalizer, say): the watch's object replaces it.
    let mut a = claim("a", None);
    a.metadata.finalizers = Some(vec!["karpenter.sh/termination".into()]);
    ix.nodeclaim_event(Event::Apply(a));
    // A second answer for `a` (a retried call) does not replace what the watch showed.
    ix.created_nodeclaim(claim("a", None));
    assert_eq!(
        ix.state().nodeclaims["a"].metadata.finalizers,
        Some(vec!["karpenter.sh/termination".into()])
    );

    // The watch shows `b` deleted (a launch refused at once); a late answer for it must not
    // bring it back.
    ix.nodeclaim_event(Event::Delete(claim("b", None)));
    ix.created_nodeclaim(claim("b", None));
    assert_eq!(in_flight(&ix), ["a", "c"]);

    // A relist that started before `c` was created does not list it: it stays while young.
    ix.nodeclaim_event(Event::Init);
    ix.nodeclaim_event(Event::InitApply(claim("a", None)));
    ix.nodeclaim_event(Event::InitDone);
    assert_eq!(in_flight(&ix), ["a", "c"]);

    // A claim the watch never shows is dropped after the time limit; confirmed ones stay.
    ix.set_now(1_000 + tandem_state::created::UNSEEN_TTL_MS - 1);
    assert_eq!(in_flight(&ix), ["a", "c"]);
    ix.set_now(1_000 + tandem_state::created::UNSEEN_TTL_MS);
    assert_eq!(in_flight(&ix), ["a"]);
    // Creations go on counting as before.
    ix.created_nodeclaim(claim("d", None));
    assert_eq!(in_flight(&ix), ["a", "d"]);
}

#[test]
fn pending_pods_are_settled_once_their_replica_set_has_them_all_and_each_was_ruled_on() {
    let owned = |pod: Pod| {
        with_meta(
            pod,
            json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "web-abc", "uid": "rs-1", "controller": true}]}),
        )
    };
    let replica_set = |replicas: i32| -> k8s_openapi::api::apps::v1::ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "ns", "uid": "rs-1"},
            "spec": {"replicas": replicas, "selector": {}},
        }))
        .unwrap()
    };
    let mut ix = index().with_replica_sets();
    ix.mark_synced();
    ix.replica_set_event(Event::Apply(replica_set(3)));
    ix.apply_pod(owned(bound("a", "n1")));
    ix.apply_pod(owned(pending("b")));
    // Two of three pods exist.
    assert!(!ix.state().pending_settled);
    // The third exists but the scheduler has not ruled on it.
    let mut undecided = owned(pending("c"));
    undecided.status = None;
    ix.apply_pod(undecided);
    assert!(!ix.state().pending_settled);
    ix.apply_pod(owned(pending("c")));
    assert!(ix.state().pending_settled);
    // Scaled up: more are coming.
    ix.replica_set_event(Event::Apply(replica_set(4)));
    assert!(!ix.state().pending_settled);
    // Without the ReplicaSet watch nothing is ever settled: the batch keeps its timer.
    let mut plain = index();
    plain.mark_synced();
    plain.replica_set_event(Event::Apply(replica_set(1)));
    plain.apply_pod(owned(pending("d")));
    assert!(!plain.state().pending_settled);
}
