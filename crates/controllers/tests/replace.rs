//! End to end on the real control plane: consolidation by replacement. A `ballast` pod
//! (6 CPU) and a `web` pod (1 CPU) share one node; once the ballast is gone the node is far too
//! big, so consolidation launches a cheaper node, waits for it to initialize, and only then
//! deletes the big one; `web` ends up serving on the smaller node.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tandem_controllers::Options;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);
const CPU_LABEL: &str = "karpenter.kwok.sh/instance-cpu";

fn pod(name: &str, cpu: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                 "resources": {"requests": {"cpu": cpu}}}]},
    }))
    .expect("pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_node_is_replaced_by_a_cheaper_one() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("replace").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    // On-demand only: a spot node is replaced by a cheaper spot one only with the
    // SpotToSpotConsolidation gate (off, as upstream's default).
    let mut body = json!({"disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized",
                                         "consolidateAfter": "5s", "budgets": [{"nodes": "100%"}]}});
    body["template"] = json!({"spec": {
        "requirements": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
        "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}});
    common::nodepool(&client, &ns, &class, body).await;
    let mut options = Options::default();
    options.disruption.poll_interval = Duration::from_secs(1);
    options.disruption.decide.validation_delay_ms = 2_000;
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);

    // A ReplicaSet-owned pod would be recreated; web is a Deployment so it can move.
    let web: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": pod("web", "1").spec}},
    }))
    .expect("web");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod("ballast", "6"))
        .await
        .expect("ballast");
    Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &web)
        .await
        .expect("web");
    let serving_on = |app: &'static str| {
        let pods = pods.clone();
        async move {
            common::pods(&pods, &format!("app={app}"))
                .await
                .into_iter()
                .filter(common::serving)
                .find_map(|p| p.spec.and_then(|s| s.node_name))
        }
    };
    let (big, web_node) = wait_for("ballast and web serving", TIMEOUT, || async {
        Some((serving_on("ballast").await?, serving_on("web").await?))
    })
    .await
    .expect("both run");
    assert_eq!(big, web_node, "one launch for both pods");
    let nodes: Api<Node> = Api::all(client.clone());
    let cpus = |n: &Node| {
        n.labels()
            .get(CPU_LABEL)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let big_cpus = cpus(&nodes.get(&big).await.expect("big node"));

    pods.delete("ballast", &DeleteParams::default())
        .await
        .expect("delete ballast");
    wait_for("ballast gone", TIMEOUT, || async {
        pods.get_opt("ballast")
            .await
            .ok()
            .and_then(|p| p.is_none().then_some(()))
    })
    .await
    .expect("ballast removed");
    let started = Instant::now();
    let small = wait_for(
        "web on a smaller node, the big one gone",
        TIMEOUT,
        || async {
            let on = serving_on("web").await?;
            let gone = nodes.get_opt(&big).await.ok()?.is_none();
            (gone && on != big).then_some(on)
        },
    )
    .await
    .expect("replaced");
    let took = started.elapsed();
    let small_cpus = cpus(&nodes.get(&small).await.expect("small node"));
    eprintln!(
        "replace: {big} ({big_cpus} CPU) → {small} ({small_cpus} CPU) in {took:?} after the ballast left"
    );
    assert!(small_cpus < big_cpus, "{small_cpus} < {big_cpus}");
    drop(running);
}
