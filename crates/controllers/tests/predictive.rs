//! Predictive provisioning, the node layer's half, on the real control plane: a forecast from
//! the pod layer ("`burst` is heading to 4 replicas") launches capacity while the Deployment
//! has no pod at all; when the pods appear they take exactly those claims — not one more
//! NodeClaim than the reactive path would launch for the same 4 pods.
//!
//! The forecast is published the way `tandem run`'s pod layer publishes it (the shared
//! `Predictions` map the state writer subscribes to); the whole chain with the pod layer is
//! `crates/tandem/tests/predictive.rs`.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_cloud::kwok::{Kubelet, KwokCloud, KwokOptions};
use tandem_controllers::{Controllers, Options};
use tandem_model::catalog::Catalog;
use tandem_state::predictions::{Prediction, Predictions};
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forecast_launches_capacity_before_the_pods_exist_and_they_take_it() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("predictive").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    let pool = format!("{ns}-burst");
    common::coordination::pool(&client, &pool, &class, true, "30s").await;

    // The Deployment exists at 0 replicas: one 1500m pod per c-2x node.
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "burst"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "burst"}},
            "template": {"metadata": {"labels": {"app": "burst"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "nodeSelector": {"karpenter.sh/nodepool": pool},
                "containers": [{"name": "c", "image": "registry.invalid/worker:1",
                                "resources": {"requests": {"cpu": "1500m"}}}]}}},
    }))
    .expect("deployment");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");

    let predictions = Predictions::new();
    let catalog = Arc::new(Catalog::kwok());
    let kubelet = tokio::spawn(Kubelet::new(client.clone()).run());
    let cloud = Arc::new(KwokCloud::with_catalog(
        client.clone(),
        catalog.clone(),
        KwokOptions::default(),
    ));
    let index = tandem_state::Index::new(catalog).with_predictions(&predictions);
    let controllers = Controllers::spawn_with(client.clone(), cloud, index, Options::default());

    // The pod layer's forecast, with the pod the template makes (as the worker builds it).
    let template: Pod = serde_json::from_value(json!({
        "metadata": {"name": "burst", "namespace": ns, "labels": {"app": "burst"}},
        "spec": d.spec.as_ref().and_then(|s| s.template.spec.clone()),
    }))
    .expect("pod");
    let now = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    predictions.set(
        &format!("{ns}/burst"),
        Some(Prediction {
            target: (ns.clone(), "Deployment".into(), "burst".into()),
            template: tandem_state::convert::pending_pod(&template, 0).expect("template"),
            heading_to: 4,
            until_ms: now + 120_000,
        }),
    );
    let nodeclaims: Api<NodeClaim> = Api::all(client.clone());
    wait_for("4 claims for the forecast", TIMEOUT, || async {
        (common::pool_claims(&nodeclaims, &pool).await == 4).then_some(())
    })
    .await
    .expect("the forecast launches capacity");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    assert!(
        common::pods(&pods, "app=burst").await.is_empty(),
        "capacity came before any pod"
    );

    // The pods appear (the HPA's write): they run on those claims' nodes, nothing more
    // launches — not even after the batch window and its retry.
    common::coordination::scale(&client, &ns, "burst", 4).await;
    wait_for("4 pods serving", TIMEOUT, || async {
        (common::coordination::serving(&pods, "burst").await == 4).then_some(())
    })
    .await
    .expect("pods run");
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        common::pool_claims(&nodeclaims, &pool).await,
        4,
        "no double launch"
    );

    // The forecast ends with the pods there: still nothing new.
    predictions.set(&format!("{ns}/burst"), None);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(common::pool_claims(&nodeclaims, &pool).await, 4);
    drop(controllers);
    kubelet.abort();
}
