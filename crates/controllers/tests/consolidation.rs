//! End to end on the real control plane: underutilized consolidation, and do-not-disrupt.
//!
//! Three 4-CPU nodes are made by a `ballast` Deployment (3 × 2500m, one per node); a `web`
//! Deployment (3 × 1 CPU) lands one pod on each. One more pod, `keep`, with
//! `karpenter.sh/do-not-disrupt: "true"`, shares a node with a web pod. Deleting the ballast
//! leaves every node about a third full: consolidation removes the nodes it may (the pods fit
//! on fewer nodes), never the one `keep` runs on, and every pod ends up serving; a PDB
//! (`minAvailable: 2`) on web means web never loses its last serving replica meanwhile.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tandem_controllers::Options;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(180);

async fn pool_nodes(nodes: &Api<Node>, pool: &str) -> BTreeSet<String> {
    nodes
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(ResourceExt::name_any)
        .collect()
}

fn deployment(name: &str, replicas: usize, cpu: &str, spread: bool) -> Deployment {
    let mut spec = json!({
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                        "resources": {"requests": {"cpu": cpu}}}]});
    if spread {
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname",
             "labelSelector": {"matchLabels": {"app": name}}}]}});
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    }))
    .expect("deployment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underutilized_nodes_are_consolidated_except_where_a_pod_forbids_it() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("consolidation").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    common::nodepool(
        &client,
        &ns,
        &class,
        json!({"disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized",
                              "consolidateAfter": "5s", "budgets": [{"nodes": "100%"}]}}),
    )
    .await;
    let mut options = Options::default();
    options.disruption.poll_interval = Duration::from_secs(1);
    options.disruption.decide.validation_delay_ms = 2_000;
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let nodes: Api<Node> = Api::all(client.clone());
    deployments
        .create(
            &PostParams::default(),
            &deployment("ballast", 3, "2500m", true),
        )
        .await
        .expect("ballast");
    let serving_on = |app: &'static str| {
        let pods = pods.clone();
        async move {
            common::pods(&pods, &format!("app={app}"))
                .await
                .into_iter()
                .filter(common::serving)
                .filter_map(|p| p.spec.and_then(|s| s.node_name))
                .collect::<Vec<String>>()
        }
    };
    wait_for("ballast on 3 nodes", TIMEOUT, || async {
        (serving_on("ballast").await.len() == 3).then_some(())
    })
    .await
    .expect("ballast runs");
    deployments
        .create(&PostParams::default(), &deployment("web", 3, "1", false))
        .await
        .expect("web");
    wait_for("web serving", TIMEOUT, || async {
        (serving_on("web").await.len() == 3).then_some(())
    })
    .await
    .expect("web runs");
    let keep: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "keep", "labels": {"app": "keep"},
                     "annotations": {"karpenter.sh/do-not-disrupt": "true"}},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                 "resources": {"requests": {"cpu": "100m"}}}]},
    }))
    .expect("keep");
    pods.create(&PostParams::default(), &keep)
        .await
        .expect("create keep");
    let keep_node = wait_for("keep serving", TIMEOUT, || async {
        serving_on("keep").await.into_iter().next()
    })
    .await
    .expect("keep runs");
    let before = pool_nodes(&nodes, &ns).await;
    assert!(before.len() >= 3, "{before:?}");

    // web keeps at least 2 of its 3 replicas through any eviction, and a watcher records the
    // fewest serving from here on: consolidation must never take its last one.
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": "web"},
                "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            }))
            .expect("pdb"),
        )
        .await
        .expect("create pdb");
    let fewest = Arc::new(AtomicUsize::new(usize::MAX));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (pods, fewest, watching) = (pods.clone(), fewest.clone(), watching.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let n = common::pods(&pods, "app=web")
                    .await
                    .iter()
                    .filter(|p| common::serving(p))
                    .count();
                fewest.fetch_min(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    deployments
        .delete("ballast", &DeleteParams::default())
        .await
        .expect("delete ballast");
    wait_for("ballast gone", TIMEOUT, || async {
        common::pods(&pods, "app=ballast")
            .await
            .is_empty()
            .then_some(())
    })
    .await
    .expect("ballast removed");
    let started = Instant::now();
    let after = wait_for("fewer nodes, every pod serving", TIMEOUT, || async {
        let now = pool_nodes(&nodes, &ns).await;
        let web = serving_on("web").await;
        let keep = serving_on("keep").await;
        (now.len() < before.len() && web.len() == 3 && keep.len() == 1).then_some(now)
    })
    .await
    .expect("consolidated");
    eprintln!(
        "consolidation: {} → {} nodes in {:?} after the ballast left (consolidateAfter 5 s, validation 2 s)",
        before.len(),
        after.len(),
        started.elapsed()
    );
    // Let any further command run, then check the do-not-disrupt pod never moved.
    tokio::time::sleep(Duration::from_secs(10)).await;
    watching.store(false, Ordering::Relaxed);
    let _ = watcher.await;
    let fewest = fewest.load(Ordering::Relaxed);
    eprintln!("consolidation: fewest web replicas serving throughout: {fewest}");
    assert!(
        fewest >= 1 && fewest != usize::MAX,
        "web never lost its last serving replica (PDB minAvailable 2): fewest {fewest}"
    );
    assert_eq!(
        serving_on("keep").await,
        vec![keep_node.clone()],
        "the do-not-disrupt pod stayed on its node"
    );
    assert!(pool_nodes(&nodes, &ns).await.contains(&keep_node));
    let blocked = common::events(&client, "default", "DisruptionBlocked", &keep_node).await;
    assert!(
        blocked.iter().any(|e| e
            .message
            .as_deref()
            .is_some_and(|m| m.contains("do-not-disrupt"))),
        "DisruptionBlocked on {keep_node}: {:?}",
        blocked
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
    );
    drop(running);
}
