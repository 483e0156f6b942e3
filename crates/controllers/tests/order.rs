//! End to end on the real control plane: a node drains in upstream's tiers, each gone before
//! the next starts: ordinary pods, then DaemonSet pods, then critical pods
//! (`system-cluster-critical`). A pod tolerating `karpenter.sh/disrupted:NoSchedule` is not
//! evicted at all and does not hold the node.
//!
//! Every pod has a 3 s grace, which the kwok kubelet honours, so the tiers are seconds apart.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt as _};
use serde_json::json;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A pod of the group; `cpu` sizes it (the first one sizes the node the others join).
fn pod(name: &str, cpu: &str, extra: serde_json::Value) -> Pod {
    let mut spec = json!({"terminationGracePeriodSeconds": 3,
        "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"group": "order"}},
             "topologyKey": "kubernetes.io/hostname"}]}},
        "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                        "resources": {"requests": {"cpu": cpu}}}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"group": "order"}}, "spec": spec}))
    .expect("pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_evicts_ordinary_then_daemonset_then_critical_pods() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("order").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    common::nodepool(&client, &ns, &class, json!({})).await;
    let _running = common::start(&client);

    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
                "terminationGracePeriodSeconds": 3,
                "containers": [{"name": "c", "image": "registry.invalid/agent:1",
                                "resources": {"requests": {"cpu": "100m"}}}]}}},
    }))
    .expect("daemonset");
    Api::<DaemonSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &ds)
        .await
        .expect("create daemonset");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // Required co-location: the first pod may go anywhere (its 2.5 CPU get a node with room
    // to spare), the others follow it. Created one after another so that the first is placed
    // before the others look for it.
    for p in [
        pod("app", "2500m", json!({})),
        pod(
            "critical",
            "250m",
            json!({"priorityClassName": "system-cluster-critical"}),
        ),
        pod(
            "tolerant",
            "250m",
            json!({"tolerations": [{"key": "karpenter.sh/disrupted", "operator": "Exists"}]}),
        ),
    ] {
        let name = p.name_any();
        pods.create(&PostParams::default(), &p)
            .await
            .expect("create pod");
        wait_for("pod running", TIMEOUT, || async {
            common::serving(&pods.get(&name).await.ok()?).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let node_name = pods
        .get("app")
        .await
        .expect("app")
        .spec
        .and_then(|s| s.node_name)
        .expect("bound");
    let agent = wait_for("daemonset pod on the node", TIMEOUT, || async {
        pods.list(&ListParams::default().labels("app=agent"))
            .await
            .ok()?
            .items
            .into_iter()
            .find(|p| {
                common::serving(p)
                    && p.spec.as_ref().and_then(|s| s.node_name.as_deref())
                        == Some(node_name.as_str())
            })
            .map(|p| p.name_any())
    })
    .await
    .expect("the DaemonSet runs a pod on the node");

    // Watch when each pod starts terminating.
    let seen: Arc<Mutex<BTreeMap<String, Duration>>> = Arc::default();
    let t0 = Instant::now();
    let watcher = {
        let (seen, pods) = (seen.clone(), pods.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(list) = pods.list(&ListParams::default()).await {
                    let live: Vec<String> = list.items.iter().map(|p| p.name_any()).collect();
                    let mut s = seen.lock().unwrap();
                    for p in &list.items {
                        if p.metadata.deletion_timestamp.is_some() {
                            s.entry(p.name_any()).or_insert_with(|| t0.elapsed());
                        }
                    }
                    // A pod that vanished between two samples started terminating by then.
                    for name in ["app", "critical"] {
                        if !live.iter().any(|l| l == name) {
                            s.entry(name.to_owned()).or_insert_with(|| t0.elapsed());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .delete(&node_name, &DeleteParams::default())
        .await
        .expect("delete node");
    wait_for("node gone", TIMEOUT, || async {
        nodes
            .get_opt(&node_name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .expect("the node drains and goes");
    watcher.abort();
    let seen = seen.lock().unwrap().clone();
    eprintln!("terminating since node deletion: {seen:?}");
    let at = |name: &str| {
        *seen
            .get(name)
            .unwrap_or_else(|| panic!("{name} was never evicted: {seen:?}"))
    };
    let (app, daemon, critical) = (at("app"), at(&agent), at("critical"));
    // Each tier starts only once the previous one is gone (3 s grace each).
    assert!(
        daemon >= app + Duration::from_secs(2),
        "DaemonSet pod after the ordinary pod: {seen:?}"
    );
    assert!(
        critical >= daemon + Duration::from_secs(2),
        "critical pod after the DaemonSet pod: {seen:?}"
    );
    assert!(
        !seen.contains_key("tolerant"),
        "the pod tolerating the disrupted taint is not evicted: {seen:?}"
    );
}
