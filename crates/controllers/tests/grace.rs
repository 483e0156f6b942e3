//! End to end on the real control plane: `karpenter.sh/do-not-disrupt` holds a pod through a
//! drain until the NodeClaim's `terminationGracePeriod` runs out, then the pod is deleted (not
//! evicted) in time for the node's termination time.
//!
//! A NodePool with `terminationGracePeriod: 20s`; two pods on one of its nodes: `free` and
//! `held` (do-not-disrupt, 5 s grace). Deleting the Node evicts `free` at once; `held` stays,
//! the Node gets `FailedDraining` and `TerminationGracePeriodExpiring`, the claim the
//! termination-timestamp annotation; 15 s in (20 s − 5 s grace) `held` is deleted with a
//! `Disrupted` Event, and the node goes.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt as _};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);
const TGP_SECS: u64 = 20;
const HELD_GRACE_SECS: u64 = 5;

fn pod(name: &str, grace: u64, annotations: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "grace"}, "annotations": annotations},
        "spec": {"terminationGracePeriodSeconds": grace,
            "affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"app": "grace"}},
                    "topologyKey": "kubernetes.io/hostname"}}]}},
            "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                            "resources": {"requests": {"cpu": "1"}}}]},
    }))
    .expect("pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_disrupt_pod_waits_until_the_termination_grace_period_runs_out() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("grace").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    let mut template = json!({"spec": {
        "requirements": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}],
        "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}});
    template["spec"]["terminationGracePeriod"] = json!(format!("{TGP_SECS}s"));
    common::nodepool(&client, &ns, &class, json!({"template": template})).await;
    let _running = common::start(&client);

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for p in [
        pod("free", 1, json!({})),
        pod(
            "held",
            HELD_GRACE_SECS,
            json!({"karpenter.sh/do-not-disrupt": "true"}),
        ),
    ] {
        pods.create(&PostParams::default(), &p)
            .await
            .expect("create pod");
    }
    let node_name = wait_for("both pods running on one node", TIMEOUT, || async {
        let list = common::pods(&pods, "app=grace").await;
        let nodes: Vec<String> = list
            .iter()
            .filter(|p| common::serving(p))
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        (nodes.len() == 2 && nodes[0] == nodes[1]).then(|| nodes[0].clone())
    })
    .await
    .expect("free and held share a node");
    let nodes: Api<Node> = Api::all(client.clone());
    let claim = nodes
        .get(&node_name)
        .await
        .expect("node")
        .owner_references()
        .iter()
        .find(|o| o.kind == "NodeClaim")
        .map(|o| o.name.clone())
        .expect("owned by its claim");

    let t0 = Instant::now();
    nodes
        .delete(&node_name, &DeleteParams::default())
        .await
        .expect("delete node");
    wait_for("free evicted", TIMEOUT, || async {
        pods.get_opt("free").await.ok()?.is_none().then_some(())
    })
    .await
    .expect("the pod without do-not-disrupt is evicted");
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let deadline = wait_for("termination timestamp", TIMEOUT, || async {
        let c = claims.get(&claim).await.ok()?;
        c.annotations()
            .get("karpenter.sh/nodeclaim-termination-timestamp")
            .cloned()
    })
    .await
    .expect("the claim carries its termination time");
    let blocked = wait_for("do-not-disrupt reported", TIMEOUT, || async {
        let e = common::events(&client, "default", "FailedDraining", &node_name).await;
        e.into_iter()
            .find(|e| {
                e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("do-not-disrupt") && m.contains("held"))
            })
            .map(|e| e.message.unwrap_or_default())
    })
    .await
    .expect("FailedDraining names the held pod");
    let expiring = common::events(&client, "default", "TerminationGracePeriodExpiring", "").await;
    assert!(
        expiring
            .iter()
            .any(|e| e.involved_object.name.as_deref() == Some(node_name.as_str())),
        "TerminationGracePeriodExpiring on the Node"
    );

    // held is deleted once its grace would otherwise outlast the termination time, not before.
    let deleted_after = wait_for("held deleted", TIMEOUT, || async {
        let p = pods.get_opt("held").await.ok()?;
        match p {
            Some(p) if p.metadata.deletion_timestamp.is_none() => None,
            _ => Some(t0.elapsed()),
        }
    })
    .await
    .expect("the held pod is deleted at the termination grace period");
    let disrupted = wait_for("Disrupted event", TIMEOUT, || async {
        let e = common::events(&client, &ns, "Disrupted", "held").await;
        (!e.is_empty()).then_some(e)
    })
    .await
    .expect("Disrupted on the held pod");
    wait_for("node gone", TIMEOUT, || async {
        nodes
            .get_opt(&node_name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .expect("the node is terminated");
    let gone_after = t0.elapsed();
    eprintln!(
        "termination time {deadline}; {blocked:?}; held deleted after {deleted_after:?} ({:?}), node gone after {gone_after:?}",
        disrupted[0].message
    );
    let earliest = Duration::from_secs(TGP_SECS - HELD_GRACE_SECS - 2);
    assert!(
        deleted_after >= earliest,
        "do-not-disrupt held the pod until terminationGracePeriod − its grace ({deleted_after:?} < {earliest:?})"
    );
}
