//! End to end on the real control plane: emptiness. Seed 000's `inflate` (5 × 1 CPU) scaled
//! 0 → 5 → 0 on a NodePool with `consolidationPolicy: WhenEmpty`, `consolidateAfter: 10s` and a
//! `100%` budget: the empty nodes stay for consolidateAfter after the last pod is gone, then the
//! disruption loop deletes their NodeClaims and termination removes them.
//!
//! The loop polls every second and re-validates after 2 s (upstream: 10 s and 15 s), so the
//! nodes should start going ~12 s after the last pod left.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tandem_controllers::Options;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_nodes_go_after_consolidate_after_and_not_before() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("emptiness").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    common::nodepool(
        &client,
        &ns,
        &class,
        json!({"disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10s",
                              "budgets": [{"nodes": "100%"}]}}),
    )
    .await;
    let mut options = Options::default();
    options.disruption.poll_interval = Duration::from_secs(1);
    options.disruption.decide.validation_delay_ms = 2_000;
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);

    let seed =
        workspace_root().join("examples/seeds/000_1be3bceeb5274a7a/03-deployment-inflate.yaml");
    let deployment: Deployment =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&seed).expect("seed")).expect("yaml");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create inflate");
    let scale = |n: i32| {
        let deployments = deployments.clone();
        async move {
            deployments
                .patch(
                    "inflate",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"replicas": n}})),
                )
                .await
                .expect("scale");
        }
    };
    scale(5).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for("5 inflate pods serving", TIMEOUT, || async {
        let n = common::pods(&pods, "app=inflate")
            .await
            .iter()
            .filter(|p| common::serving(p))
            .count();
        (n == 5).then_some(())
    })
    .await
    .expect("inflate runs");
    let nodes: Api<Node> = Api::all(client.clone());
    let before: Vec<String> = common::pool_nodes(&nodes, &ns)
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert!(!before.is_empty(), "the pool launched nodes");
    // Busy nodes are not touched, however long they have been up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(common::pool_nodes(&nodes, &ns).await.len(), before.len());

    scale(0).await;
    wait_for("inflate pods gone", TIMEOUT, || async {
        common::pods(&pods, "app=inflate")
            .await
            .is_empty()
            .then_some(())
    })
    .await
    .expect("pods removed");
    let gone_at = Instant::now();

    // Not before consolidateAfter: for the first 5 s every node stays, untainted, undeleted.
    while gone_at.elapsed() < Duration::from_secs(5) {
        let now = common::pool_nodes(&nodes, &ns).await;
        assert_eq!(
            now.len(),
            before.len(),
            "a node went before consolidateAfter"
        );
        for n in &now {
            assert!(
                n.metadata.deletion_timestamp.is_none(),
                "{} deleted {:?} after its last pod left",
                n.name_any(),
                gone_at.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let first_deleting = wait_for("a node deleting", TIMEOUT, || async {
        let now = common::pool_nodes(&nodes, &ns).await;
        (now.len() < before.len() || now.iter().any(|n| n.metadata.deletion_timestamp.is_some()))
            .then(|| gone_at.elapsed())
    })
    .await
    .expect("emptiness starts");
    let all_gone = wait_for("every empty node gone", TIMEOUT, || async {
        common::pool_nodes(&nodes, &ns)
            .await
            .is_empty()
            .then(|| gone_at.elapsed())
    })
    .await
    .expect("empty nodes removed");
    eprintln!(
        "emptiness: {} node(s); last pod gone → first node deleting {first_deleting:?}, → all nodes gone {all_gone:?} (consolidateAfter 10 s, validation 2 s, poll 1 s)",
        before.len()
    );
    assert!(
        first_deleting >= Duration::from_secs(9),
        "deleted before consolidateAfter: {first_deleting:?}"
    );
    let terminating = common::events(&client, "default", "DisruptionTerminating", "").await;
    for node in &before {
        assert!(
            terminating
                .iter()
                .any(|e| e.involved_object.name.as_deref() == Some(node.as_str())
                    && e.message.as_deref() == Some("Disrupting Node: Empty")),
            "DisruptionTerminating for {node}"
        );
    }
    drop(running);
}
