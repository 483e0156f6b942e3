//! Pod-layer coordination on the real control plane. Two Deployments, each scaled by a
//! ScaledObject (default cooldown and stabilization: a 300 s window), each on its own NodePool
//! with `consolidateAfter: 0s`; one pool opts out with `tandem.dev/coordinate-with-pod-layer:
//! "false"`. Both scale 3 → 1: the opted-out pool loses its two empty nodes at once, as
//! Karpenter would; the coordinated pool keeps them (a `DisruptionBlocked` Event says why), and
//! when its Deployment goes back to 3 the pods run on them without a single new launch — the
//! seed-002 oscillation, gone.
//!
//! The pod layer itself is not running here: the ScaledObjects are read for their targets and
//! windows, the replica changes are seen in the pods, which is all the node layer uses.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_controllers::Options;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

async fn pool(client: &Client, name: &str, class: &str, coordinated: bool) {
    let mut annotations = serde_json::Map::new();
    if !coordinated {
        annotations.insert(
            "tandem.dev/coordinate-with-pod-layer".into(),
            json!("false"),
        );
    }
    let np: NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"limits": {"cpu": "1000"},
            "disruption": {"consolidateAfter": "0s", "budgets": [{"nodes": "100%"}]},
            "template": {"spec": {
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c-2x-amd64-linux"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
    }))
    .expect("nodepool");
    Api::<NodePool>::all(client.clone())
        .create(&PostParams::default(), &np)
        .await
        .expect("create nodepool");
}

async fn workload(client: &Client, ns: &str, name: &str, pool: &str) {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "nodeSelector": {"karpenter.sh/nodepool": pool},
                "containers": [{"name": "c", "image": "registry.invalid/worker:1",
                                "resources": {"requests": {"cpu": "1500m"}}}]}}},
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
    let so: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"scaleTargetRef": {"name": name}, "minReplicaCount": 1,
            "triggers": [{"type": "cron", "metadata": {
                "timezone": "UTC", "start": "0 8 * * *", "end": "0 9 * * *",
                "desiredReplicas": "3"}}]},
    }))
    .expect("scaledobject");
    let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "keda.sh",
        "v1alpha1",
        "ScaledObject",
    ));
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
        .create(&PostParams::default(), &so)
        .await
        .expect("create scaledobject");
}

async fn scale(client: &Client, ns: &str, name: &str, n: i32) {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": n}})),
        )
        .await
        .expect("scale");
}

async fn count(api: &Api<Node>, pool: &str) -> usize {
    api.list_metadata(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await
        .map(|l| l.items.len())
        .unwrap_or(usize::MAX)
}

async fn serving(pods: &Api<Pod>, app: &str) -> usize {
    common::pods(pods, &format!("app={app}"))
        .await
        .iter()
        .filter(|p| common::serving(p))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consolidation_keeps_room_for_pods_the_pod_layer_may_bring_back() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("coordination").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    let (kept, free) = (format!("{ns}-kept"), format!("{ns}-free"));
    pool(&client, &kept, &class, true).await;
    pool(&client, &free, &class, false).await;
    let mut options = Options::default();
    options.disruption.poll_interval = Duration::from_secs(1);
    options.disruption.decide.validation_delay_ms = 2_000;
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);

    workload(&client, &ns, "bursty", &kept).await;
    workload(&client, &ns, "plain", &free).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for("6 pods serving", TIMEOUT, || async {
        (serving(&pods, "bursty").await == 3 && serving(&pods, "plain").await == 3).then_some(())
    })
    .await
    .expect("both run");
    let nodes: Api<Node> = Api::all(client.clone());
    assert_eq!(
        (count(&nodes, &kept).await, count(&nodes, &free).await),
        (3, 3)
    );

    scale(&client, &ns, "bursty", 1).await;
    scale(&client, &ns, "plain", 1).await;
    // The opted-out pool behaves as Karpenter: its empty nodes go.
    wait_for("the opted-out pool down to 1 node", TIMEOUT, || async {
        (count(&nodes, &free).await == 1).then_some(())
    })
    .await
    .expect("the opted-out pool consolidates");
    // Give the coordinated pool as many passes again; its nodes stay, and say why.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        count(&nodes, &kept).await,
        3,
        "the coordinated pool kept its nodes for the pods that may come back"
    );
    let blocked = common::events(&client, "default", "DisruptionBlocked", "").await;
    assert!(
        blocked
            .iter()
            .any(|e| e.message.as_deref().is_some_and(
                |m| m.contains("may bring back") && m.contains(&format!("{ns}/bursty"))
            )),
        "a deferral Event names the ScaledObject: {:?}",
        blocked
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
    );

    // The load returns: the pods land on the kept nodes, nothing is launched.
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let claims_before = claims
        .list_metadata(&ListParams::default().labels(&format!("karpenter.sh/nodepool={kept}")))
        .await
        .expect("claims")
        .items
        .len();
    scale(&client, &ns, "bursty", 3).await;
    wait_for("3 bursty pods serving again", TIMEOUT, || async {
        (serving(&pods, "bursty").await == 3).then_some(())
    })
    .await
    .expect("back to 3");
    let claims_after = claims
        .list_metadata(&ListParams::default().labels(&format!("karpenter.sh/nodepool={kept}")))
        .await
        .expect("claims")
        .items
        .len();
    assert_eq!(
        (claims_before, claims_after),
        (3, 3),
        "no node was launched for the returning pods"
    );
    drop(running);
}
