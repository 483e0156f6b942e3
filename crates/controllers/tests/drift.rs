//! End to end on the real control plane: drift, seed 003's case. A NodePool's
//! `nodeClassRef` moves to another KWOKNodeClass; every node launched from the old one is
//! drifted and replaced (replacement Initialized before the old claim is deleted), the pods
//! end up serving on new nodes, and with a budget of `nodes: "1"` at most one node carries the
//! `karpenter.sh/disrupted` taint at any time.
//!
//! `consolidateAfter: Never` keeps emptiness and consolidation out of the picture, so every
//! disruption seen is drift's.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tandem_api::karpenter::NodePool;
use tandem_controllers::Options;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(240);
const REPLICAS: usize = 3;
const CLASS_LABEL: &str = "karpenter.kwok.sh/kwoknodeclass";

fn disrupted(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key == "karpenter.sh/disrupted"))
}

/// Samples the pool's nodes every 100 ms; keeps the most carrying the disrupted taint at once.
fn watch_disrupted(nodes: Api<Node>, pool: String) -> (Arc<AtomicUsize>, Arc<AtomicBool>) {
    let max = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (m, s) = (max.clone(), stop.clone());
    tokio::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            let n = common::pool_nodes(&nodes, &pool)
                .await
                .iter()
                .filter(|n| disrupted(n))
                .count();
            m.fetch_max(n, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (max, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_node_class_replaces_every_node_one_at_a_time() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("drift").await.expect("namespace");
    let old_class = format!("{ns}-default");
    let new_class = format!("{ns}-default-azurelinux");
    common::node_class(&client, &old_class).await;
    common::node_class(&client, &new_class).await;
    common::nodepool(
        &client,
        &ns,
        &old_class,
        json!({"disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized",
                              "consolidateAfter": "Never", "budgets": [{"nodes": "1"}]}}),
    )
    .await;
    let mut options = Options::default();
    options.disruption.poll_interval = Duration::from_secs(1);
    options.disruption.decide.validation_delay_ms = 2_000;
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);

    // One pod per node (hostname anti-affinity), so the pool has REPLICAS nodes.
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "kubernetes.io/hostname",
                     "labelSelector": {"matchLabels": {"app": "web"}}}]}},
                "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                "resources": {"requests": {"cpu": "1"}}}]}}},
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create web");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let serving_nodes = || async {
        common::pods(&pods, "app=web")
            .await
            .into_iter()
            .filter(common::serving)
            .filter_map(|p| p.spec.and_then(|s| s.node_name))
            .collect::<BTreeSet<String>>()
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let old: BTreeSet<String> = wait_for("web serving on 3 nodes", TIMEOUT, || async {
        let on = serving_nodes().await;
        (on.len() == REPLICAS).then_some(on)
    })
    .await
    .expect("web runs");
    for n in common::pool_nodes(&nodes, &ns).await {
        assert_eq!(
            n.labels().get(CLASS_LABEL),
            Some(&old_class),
            "{}",
            n.name_any()
        );
    }

    let (max_disrupted, stop) = watch_disrupted(nodes.clone(), ns.clone());
    let started = Instant::now();
    Api::<NodePool>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"template": {"spec": {"nodeClassRef": {"name": new_class}}}}}),
            ),
        )
        .await
        .expect("move the pool to the new class");

    let new: BTreeSet<String> = wait_for("every node replaced", TIMEOUT, || async {
        let list = common::pool_nodes(&nodes, &ns).await;
        let all_new = list.iter().all(|n| {
            n.labels().get(CLASS_LABEL) == Some(&new_class) && !old.contains(&n.name_any())
        });
        let on = serving_nodes().await;
        (all_new && on.len() == REPLICAS && on.is_disjoint(&old)).then_some(on)
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; disrupted at most {} at once",
            max_disrupted.load(Ordering::Relaxed)
        )
    });
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let max = max_disrupted.load(Ordering::Relaxed);
    eprintln!(
        "drift: {} nodes replaced in {took:?} ({:?} per node), at most {max} disrupted at once; new nodes {new:?}",
        old.len(),
        took / u32::try_from(old.len()).unwrap_or(1)
    );
    assert_eq!(
        max, 1,
        "budget nodes: 1 allows one disrupted node at a time"
    );
    for n in common::pool_nodes(&nodes, &ns).await {
        assert!(!disrupted(&n), "{} left tainted", n.name_any());
    }
    let terminating = common::events(&client, "default", "DisruptionTerminating", "").await;
    for node in &old {
        assert!(
            terminating
                .iter()
                .any(|e| e.involved_object.name.as_deref() == Some(node.as_str())
                    && e.message.as_deref() == Some("Disrupting Node: Drifted")),
            "DisruptionTerminating for {node}"
        );
    }
    // The replacements' claims (kwok names nodes after their claims) announced themselves.
    let launching = common::events(&client, "default", "DisruptionLaunching", "").await;
    for claim in &new {
        assert!(
            launching.iter().any(
                |e| e.involved_object.name.as_deref() == Some(claim.as_str())
                    && e.message.as_deref() == Some("Launching NodeClaim: Drifted")
            ),
            "DisruptionLaunching for {claim}"
        );
    }
    drop(running);
}
