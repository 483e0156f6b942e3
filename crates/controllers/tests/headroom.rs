//! Warm capacity on the real control plane: a NodePool with `tandem.dev/headroom` gets nodes
//! before any pod asks; pods that arrive start on them at once, the room is launched again,
//! disruption leaves it alone, and removing the annotation lets it go (scale to zero).
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_controllers::Options;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headroom_keeps_warm_nodes_that_pods_use_at_once_and_is_replenished() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("headroom").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    let pool = format!("{ns}-warm");
    // c-2x nodes (2 CPU): room for one 1-CPU pod each after the kubelet's reservations.
    let np: NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": pool, "annotations": {"tandem.dev/headroom": "pods=2,cpu=1,memory=1Gi"}},
        "spec": {"limits": {"cpu": "1000"},
            "disruption": {"consolidateAfter": "0s", "budgets": [{"nodes": "100%"}]},
            "template": {"spec": {
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c-2x-amd64-linux"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
    }))
    .expect("nodepool");
    let pools: Api<NodePool> = Api::all(client.clone());
    pools
        .create(&PostParams::default(), &np)
        .await
        .expect("create nodepool");
    let mut options = Options::default();
    options.disruption.poll_interval = Duration::from_secs(1);
    options.disruption.decide.validation_delay_ms = 1_000;
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);

    // Warm nodes with no pod on them.
    let nodes: Api<Node> = Api::all(client.clone());
    let warm = wait_for("two warm nodes Ready", TIMEOUT, || async {
        let ready: Vec<String> = common::pool_nodes(&nodes, &pool)
            .await
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        (ready.len() == 2).then_some(ready)
    })
    .await
    .expect("headroom launches before any pod exists");
    let nodeclaims: Api<NodeClaim> = Api::all(client.clone());
    // Disruption runs every second with consolidateAfter 0s: empty nodes would go at once.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        common::pool_nodes(&nodes, &pool).await.len(),
        2,
        "the warm nodes stay"
    );
    assert_eq!(
        common::pool_claims(&nodeclaims, &pool).await,
        2,
        "and nothing more is launched"
    );

    // Two pods arrive: they run on the warm nodes, and two more warm nodes follow.
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "burst"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "burst"}},
            "template": {"metadata": {"labels": {"app": "burst"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "nodeSelector": {"karpenter.sh/nodepool": pool},
                "containers": [{"name": "c", "image": "registry.invalid/worker:1",
                                "resources": {"requests": {"cpu": "1", "memory": "512Mi"}}}]}}},
    }))
    .expect("deployment");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let on = wait_for("both pods serving", TIMEOUT, || async {
        let list = common::pods(&pods, "app=burst").await;
        let serving: Vec<String> = list
            .iter()
            .filter(|p| common::serving(p))
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        (serving.len() == 2).then_some(serving)
    })
    .await
    .expect("pods run");
    for node in &on {
        assert!(
            warm.contains(node),
            "{node} is not one of the warm nodes {warm:?}"
        );
    }
    wait_for("the headroom replenished", TIMEOUT, || async {
        (common::pool_nodes(&nodes, &pool).await.len() == 4).then_some(())
    })
    .await
    .expect("two more warm nodes");

    // No headroom: the spare nodes go, the pods' nodes stay.
    pools
        .patch(
            &pool,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"tandem.dev/headroom": null}}})),
        )
        .await
        .expect("remove the annotation");
    wait_for("back to the pods' two nodes", TIMEOUT, || async {
        (common::pool_nodes(&nodes, &pool).await.len() == 2).then_some(())
    })
    .await
    .expect("the spare nodes are consolidated once the headroom is gone");
    let serving = common::pods(&pods, "app=burst")
        .await
        .iter()
        .filter(|p| common::serving(p))
        .count();
    assert_eq!(serving, 2);
    drop(running);
}
