//! End to end on the real control plane: expiration. A NodePool with `expireAfter: 20s` and
//! `consolidateAfter: Never`: its node is deleted once its NodeClaim is 20 s old (not before),
//! the pod goes Pending and the provisioner gives it a new node.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_controllers::Options;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_older_than_expire_after_is_replaced() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("expiration").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    let mut body = json!({"disruption": {"consolidateAfter": "Never"}});
    body["template"] = json!({"spec": {
        "expireAfter": "20s",
        "requirements": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}],
        "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}});
    common::nodepool(&client, &ns, &class, body).await;
    let mut options = Options::default();
    options.disruption.poll_interval = Duration::from_secs(1);
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);

    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                "resources": {"requests": {"cpu": "1"}}}]}}},
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create web");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let serving_on = || async {
        common::pods(&pods, "app=web")
            .await
            .into_iter()
            .filter(common::serving)
            .filter_map(|p| p.spec.and_then(|s| s.node_name))
            .collect::<Vec<String>>()
    };
    let old = wait_for("web serving", TIMEOUT, || async {
        serving_on().await.into_iter().next()
    })
    .await
    .expect("web runs");
    let created = Api::<NodeClaim>::all(client.clone())
        .get(&old)
        .await
        .expect("the node's claim (kwok names nodes after claims)")
        .metadata
        .creation_timestamp
        .expect("created")
        .0;
    let nodes: Api<Node> = Api::all(client.clone());
    let deleting_age = wait_for("the node deleting", TIMEOUT, || async {
        let n = nodes.get_opt(&old).await.ok()?;
        match n {
            Some(n) if n.metadata.deletion_timestamp.is_none() => None,
            _ => Some(Timestamp::now().duration_since(created)),
        }
    })
    .await
    .expect("expired");
    let moved = wait_for("web serving elsewhere", TIMEOUT, || async {
        serving_on().await.into_iter().find(|n| *n != old)
    })
    .await
    .expect("replaced");
    eprintln!(
        "expiration: {old} deleted at claim age {deleting_age:?} (expireAfter 20 s); pod now on {moved}"
    );
    let secs = deleting_age.as_secs_f64();
    assert!(secs >= 19.0, "expired early: {secs} s");
    let terminating = common::events(&client, "default", "DisruptionTerminating", &old).await;
    assert!(
        terminating
            .iter()
            .any(|e| e.message.as_deref() == Some("Disrupting Node: Expired")),
        "DisruptionTerminating for {old}"
    );
    drop(running);
}
