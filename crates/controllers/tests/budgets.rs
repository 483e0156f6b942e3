//! End to end on the real control plane: a disruption budget with a schedule window. The pool
//! allows 100 % of its nodes to go, except during the window of a second budget
//! `{nodes: "0", schedule: "*/2 * * * *", duration: 1m}` — even UTC minutes, in which nothing
//! may be disrupted. Empty nodes made in an even minute stay (with a `DisruptionBlocked` Event
//! on the NodePool) until the window closes at the odd minute, then go.
//!
//! Cron has minute granularity, so the test waits for the start of an even minute (up to two
//! minutes) before it empties the nodes.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::{Timestamp, tz::TimeZone};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tandem_controllers::Options;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(150);

/// (minute, second) of a UTC time.
fn minute_second(t: Timestamp) -> (i8, i8) {
    let z = t.to_zoned(TimeZone::UTC);
    (z.minute(), z.second())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_budget_window_blocks_disruption_until_it_closes() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("budgets").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    common::nodepool(
        &client,
        &ns,
        &class,
        json!({"disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "0s",
            "budgets": [
                {"nodes": "100%"},
                {"nodes": "0", "schedule": "*/2 * * * *", "duration": "1m"}]}}),
    )
    .await;
    let mut registry = prometheus_client::registry::Registry::default();
    let mut options = Options::default();
    options.disruption.metrics =
        tandem_controllers::metrics::DisruptionMetrics::register(&mut registry);
    options.disruption.poll_interval = Duration::from_secs(1);
    options.disruption.decide.validation_delay_ms = 2_000;
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);

    // Three nodes: one 1500m pod each on 2-CPU types.
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "work"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "work"}},
            "template": {"metadata": {"labels": {"app": "work"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "nodeSelector": {"node.kubernetes.io/instance-type": "c-2x-amd64-linux"},
                "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                "resources": {"requests": {"cpu": "1500m"}}}]}}},
    }))
    .expect("deployment");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create work");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for("3 pods serving", TIMEOUT, || async {
        let n = common::pods(&pods, "app=work")
            .await
            .iter()
            .filter(|p| common::serving(p))
            .count();
        (n == 3).then_some(())
    })
    .await
    .expect("work runs");
    let nodes: Api<Node> = Api::all(client.clone());
    let known: Vec<String> = common::pool_nodes(&nodes, &ns)
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(known.len(), 3, "one node per pod");

    // Into the blocked window with at least 40 s of it left.
    wait_for("an even UTC minute", TIMEOUT, || async {
        let (m, s) = minute_second(Timestamp::now());
        (m % 2 == 0 && s < 20).then_some(())
    })
    .await
    .expect("clock");
    deployments
        .patch(
            "work",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale to 0");

    // Until every node is gone, note when each was first seen deleting (or gone).
    let mut first_seen: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut most_eligible = 0;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let now = Timestamp::now();
        let live = common::pool_nodes(&nodes, &ns).await;
        if live.is_empty() {
            for name in &known {
                first_seen.entry(name.clone()).or_insert(now);
            }
            break;
        }
        // Blocked by the budget, the empty nodes are still eligible.
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        let eligible = common::metric_sum(
            &text,
            "karpenter_voluntary_disruption_eligible_nodes{reason=\"empty\"}",
        );
        most_eligible = most_eligible.max(eligible);
        for n in live
            .iter()
            .filter(|n| n.metadata.deletion_timestamp.is_some())
        {
            first_seen.entry(n.name_any()).or_insert(now);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the nodes did not go after the window closed: {}",
            tandem_testkit::describe::node_layer(&client, &ns).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (node, at) in &first_seen {
        let (m, s) = minute_second(*at);
        assert!(
            m % 2 == 1 || s <= 2,
            "{node} started deleting at minute {m} second {s}, inside the blocked window"
        );
    }
    assert_eq!(
        most_eligible, 3,
        "the three empty nodes were eligible while blocked"
    );
    let blocked = common::events(&client, "default", "DisruptionBlocked", &ns).await;
    assert!(
        !blocked.is_empty(),
        "the blocked window is reported on the NodePool"
    );
    drop(running);
}
