//! Interruption on the real control plane: a spot interruption notice from the kwok provider
//! (the `karpenter.kwok.sh/interruption` Node label) → the replacement is launched and
//! initialized *before* the interrupted node is drained, the pods move to it without a
//! provisioning launch of their own, and the old node and claim go away. A rebalance
//! recommendation only reports.

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt as _};
use prometheus_client::registry::Registry;
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_cloud::kwok::{INTERRUPTION_LABEL, KwokOptions};
use tandem_controllers::Options;
use tandem_controllers::disruption::DisruptionOptions;
use tandem_controllers::metrics::{DisruptionMetrics, LifecycleMetrics};
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);
/// Replacements take this long to turn Ready, so "before the drain" is measurable.
const READY_DELAY: Duration = Duration::from_secs(3);

async fn nodes_of(pods: &Api<Pod>) -> Vec<String> {
    let mut nodes: Vec<String> = common::pods(pods, "app=web")
        .await
        .iter()
        .filter(|p| common::serving(p))
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

async fn label(nodes: &Api<Node>, node: &str, value: &str) {
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {INTERRUPTION_LABEL: value}}})),
        )
        .await
        .expect("label node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_interruption_launches_the_replacement_before_the_drain() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("interrupt").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    // Consolidation off: only the interruption may move the pods.
    common::nodepool(
        &client,
        &ns,
        &class,
        json!({"disruption": {"consolidateAfter": "Never"}}),
    )
    .await;
    let mut registry = Registry::default();
    let lifecycle = LifecycleMetrics::register(&mut registry);
    let disruption = DisruptionMetrics::register(&mut registry);
    let running = common::start_kwok(
        &client,
        Arc::new(Catalog::kwok()),
        Options {
            metrics: lifecycle,
            disruption: DisruptionOptions {
                metrics: disruption,
                ..DisruptionOptions::default()
            },
            ..Options::default()
        },
        KwokOptions {
            ready_delay: READY_DELAY,
            ..KwokOptions::default()
        },
    );

    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "web", "image": "registry.invalid/nginx:1",
                                "resources": {"requests": {"cpu": "500m"}}}]}}},
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create web");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for("2 web pods serving", TIMEOUT, || async {
        let l = common::pods(&pods, "app=web").await;
        (l.iter().filter(|p| common::serving(p)).count() == 2).then_some(())
    })
    .await
    .expect("web serving");
    let doomed = nodes_of(&pods).await;
    assert_eq!(doomed.len(), 1, "one launch for both pods: {doomed:?}");
    let doomed = doomed[0].clone();
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let selector = format!("karpenter.sh/nodepool={ns}");
    let old_claim = claims
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("claims")
        .items
        .into_iter()
        .next()
        .expect("the first claim");

    let nodes: Api<Node> = Api::all(client.clone());
    label(&nodes, &doomed, "spot_interrupted").await;
    let moved_to = wait_for(
        "pods serving on another node, old node gone",
        TIMEOUT,
        || async {
            let now = nodes_of(&pods).await;
            let gone = nodes.get_opt(&doomed).await.ok()?.is_none();
            (gone && now.len() == 1 && now[0] != doomed).then(|| now[0].clone())
        },
    )
    .await
    .expect("pods moved");

    // Exactly one replacement, launched for the interruption, none by provisioning afterwards.
    let left = claims
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("claims")
        .items;
    assert_eq!(left.len(), 1, "only the replacement is left: {left:?}");
    let replacement = &left[0];
    assert_ne!(replacement.name_any(), old_claim.name_any());
    assert_eq!(
        replacement
            .status
            .as_ref()
            .and_then(|s| s.node_name.as_deref()),
        Some(moved_to.as_str())
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert_eq!(
        common::metric_sum(
            &text,
            "karpenter_nodeclaims_created_total{reason=\"spot_interrupted\""
        ),
        1,
        "{text}"
    );
    assert_eq!(
        common::metric_sum(
            &text,
            "karpenter_nodeclaims_created_total{reason=\"provisioning\""
        ),
        1,
        "the evicted pods found the replacement ready, no new launch: {text}"
    );
    assert_eq!(
        common::metric_sum(
            &text,
            "karpenter_interruption_received_messages_total{message_type=\"spot_interrupted\"}"
        ),
        1,
        "{text}"
    );
    assert_eq!(
        common::metric_sum(
            &text,
            "karpenter_nodeclaims_disrupted_total{reason=\"spot_interrupted\""
        ),
        1,
        "{text}"
    );

    // The replacement existed (and had READY_DELAY to boot) before the drain started.
    let terminating = common::events(
        &client,
        "default",
        "TerminatingOnInterruption",
        &old_claim.name_any(),
    )
    .await;
    let drain_started = terminating
        .first()
        .and_then(|e| e.first_timestamp.clone())
        .expect("TerminatingOnInterruption on the old claim")
        .0;
    let launched = replacement
        .metadata
        .creation_timestamp
        .clone()
        .expect("creation")
        .0;
    assert!(
        drain_started.duration_since(launched).as_secs() >= 2,
        "the replacement ({launched}) was launched and booted before the drain ({drain_started})"
    );
    assert!(
        !common::events(&client, "default", "SpotInterrupted", &doomed)
            .await
            .is_empty(),
        "the notice is reported on the Node"
    );

    // A rebalance recommendation is reported and acknowledged; the node stays schedulable.
    label(&nodes, &moved_to, "rebalance_recommendation").await;
    wait_for("the recommendation acknowledged", TIMEOUT, || async {
        let n = nodes.get(&moved_to).await.ok()?;
        (!n.labels().contains_key(INTERRUPTION_LABEL)).then_some(())
    })
    .await
    .expect("label removed by the provider");
    let n = nodes.get(&moved_to).await.expect("node stays");
    assert!(n.metadata.deletion_timestamp.is_none());
    assert_ne!(n.spec.as_ref().and_then(|s| s.unschedulable), Some(true));
    assert!(
        !common::events(&client, "default", "SpotRebalanceRecommendation", &moved_to)
            .await
            .is_empty()
    );
    drop(running);
}
