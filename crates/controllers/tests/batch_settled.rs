//! End to end on the real control plane: with `close_when_settled`, a Deployment's pods get
//! their NodeClaim as soon as all of them exist and kube-scheduler has rejected each, not
//! after the batch window's idle time (set to a minute here, so the two cannot be confused).
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_controllers::Options;
use tandem_controllers::batcher::BatchOptions;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployments_pods_are_planned_once_all_are_there_not_after_the_idle_window() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("settled").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    common::nodepool(&client, &ns, &class, json!({})).await;
    let idle = Duration::from_secs(60);
    let _running = common::start_with(
        &client,
        Arc::new(Catalog::kwok()),
        Options {
            batch: BatchOptions {
                idle,
                max: Duration::from_secs(120),
                close_when_settled: true,
                ..BatchOptions::default()
            },
            ..Options::default()
        },
    );
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "nodeSelector": {"karpenter.sh/nodepool": ns},
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "1"}}}]}}},
    }))
    .expect("deployment");
    let created = Instant::now();
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
    let claims: Api<NodeClaim> = Api::all(client.clone());
    // Well inside the idle window: only the settled rule can have closed the batch.
    let claimed = wait_for("a NodeClaim for the pods", idle / 2, || async {
        (common::pool_claims(&claims, &ns).await > 0).then_some(())
    })
    .await;
    assert!(
        claimed.is_ok(),
        "no NodeClaim {:?} after the Deployment was created (idle window {idle:?})",
        created.elapsed()
    );
    eprintln!(
        "first NodeClaim {:.1} s after the Deployment was created",
        created.elapsed().as_secs_f64()
    );
    // One batch had all four pods: each of them was nominated, and they all run.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for("4 pods serving", Duration::from_secs(120), || async {
        let serving = common::pods(&pods, "app=web").await;
        (serving.iter().filter(|p| common::serving(p)).count() == 4).then_some(())
    })
    .await
    .expect("every pod serves");
    let nominated: std::collections::BTreeSet<String> =
        common::events(&client, &ns, "Nominated", "")
            .await
            .into_iter()
            .filter_map(|e| e.involved_object.name)
            .collect();
    assert_eq!(nominated.len(), 4, "{nominated:?}");
}
