//! End to end on the real control plane: a replacement that never initializes. A drifted
//! node's replacement is launched by a kwok provider whose nodes never turn Ready; after the
//! replacement timeout the command is dropped: the candidate is untainted and keeps its pod,
//! the replacement claim is deleted, and retries never pile up claims. Once nodes turn Ready
//! again, drift completes.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_controllers::Options;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

fn disrupted(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key == "karpenter.sh/disrupted"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacements_that_never_initialize_are_given_up_and_the_candidate_untainted() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("distimeout").await.expect("namespace");
    let (old_class, new_class) = (format!("{ns}-a"), format!("{ns}-b"));
    common::node_class(&client, &old_class).await;
    common::node_class(&client, &new_class).await;
    common::nodepool(
        &client,
        &ns,
        &old_class,
        json!({"disruption": {"consolidateAfter": "Never", "budgets": [{"nodes": "100%"}]}}),
    )
    .await;
    let mut options = Options::default();
    options.disruption.poll_interval = Duration::from_secs(1);
    options.disruption.replacement_timeout = Duration::from_secs(3);
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

    running.cloud.never_ready(true);
    Api::<NodePool>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"template": {"spec": {"nodeClassRef": {"name": new_class}}}}}),
            ),
        )
        .await
        .expect("drift the pool");

    let nodes: Api<Node> = Api::all(client.clone());
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let pool_claims = || async {
        claims
            .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}")))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .map(|c| c.name_any())
            .collect::<BTreeSet<String>>()
    };
    // Watch 15 s: tainted, then untainted again; never deleted; at most one replacement at a
    // time; the pod stays.
    let started = Instant::now();
    let (mut tainted_at, mut untainted_at) = (None, None);
    let mut replacements = BTreeSet::new();
    let mut most_claims = 0;
    while started.elapsed() < Duration::from_secs(15) {
        let n = nodes.get(&old).await.expect("the candidate stays");
        assert!(
            n.metadata.deletion_timestamp.is_none(),
            "candidate deleted though its replacement never initialized"
        );
        if disrupted(&n) {
            tainted_at.get_or_insert(started.elapsed());
        } else if tainted_at.is_some() {
            untainted_at.get_or_insert(started.elapsed());
        }
        let live = pool_claims().await;
        most_claims = most_claims.max(live.len());
        replacements.extend(live.into_iter().filter(|c| *c != old));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(serving_on().await, vec![old.clone()], "the pod stayed");
    let (tainted_at, untainted_at) = (
        tainted_at.expect("candidate tainted"),
        untainted_at.expect("candidate untainted after the timeout"),
    );
    eprintln!(
        "replacement timeout 3 s: tainted at {tainted_at:?}, untainted at {untainted_at:?}, {} replacement(s) tried, at most {most_claims} claims at once",
        replacements.len()
    );
    assert!(!replacements.is_empty());
    assert!(most_claims <= 2, "replacements piled up: {most_claims}");

    // Nodes turn Ready again: the next attempt succeeds.
    running.cloud.never_ready(false);
    wait_for("drift completes", TIMEOUT, || async {
        let on = serving_on().await;
        let gone = nodes.get_opt(&old).await.ok()?.is_none();
        (gone && on.len() == 1 && on[0] != old).then_some(())
    })
    .await
    .expect("drift completes once replacements initialize");
    drop(running);
}
