//! Memory of `tandem run` at scale, as a report (ignored by default; figures printed, never
//! asserted): `cargo test -p tandem --test footprint -- --ignored --nocapture`.
//!
//! - 1,000 ScaledObjects (cron triggers; `TANDEM_FOOTPRINT_TRIGGERS=mixed` for cron,
//!   metrics-api and redis a third each, as `pod_layer_at_size`), each on its own Deployment,
//!   with the pod layer's HPAs.
//! - then 1,000 kwok nodes carrying 10,000 pods for the node layer's state.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_testkit::services::{HttpFixture, Redis};
use tandem_testkit::{ControlPlane, wait_for};

/// Resident set and its peak of a process, in MiB, from /proc.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a report: creates 2,000 objects; run with --ignored --nocapture"]
async fn memory_with_a_thousand_scaled_objects() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("footprint").await.expect("namespace");
    let controller = common::Replica::start(
        "footprint",
        cp.kubeconfig_path(),
        &ns,
        cp.dir(),
        &["--disable-leader-election", "--disable-node-layer"],
    );
    let idle = {
        tokio::time::sleep(Duration::from_secs(3)).await;
        rss_mib(controller.child.id())
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let objects = Api::<tandem_api::keda::ScaledObject>::namespaced(client.clone(), &ns);
    const N: usize = 1_000;
    let mixed = std::env::var("TANDEM_FOOTPRINT_TRIGGERS").is_ok_and(|v| v == "mixed");
    let sources = if mixed {
        let fixture = HttpFixture::start().await.expect("http fixture");
        fixture.set("/value", "application/json", r#"{"value": 0}"#);
        Some((fixture, Redis::start(None).await.expect("redis")))
    } else {
        None
    };
    let cron = json!({"type": "cron", "metadata": {"timezone": "UTC",
        "start": "0 3 * * *", "end": "5 3 * * *", "desiredReplicas": "1"}});
    for i in 0..N {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("w{i}")},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": format!("w{i}")}},
                "template": {"metadata": {"labels": {"app": format!("w{i}")}}, "spec": {
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}},
        }))
        .expect("deployment");
        deployments
            .create(&PostParams::default(), &d)
            .await
            .expect("create deployment");
        let trigger = match (&sources, i % 3) {
            (Some((fixture, _)), 1) => json!({"type": "metrics-api", "metadata": {
                "url": fixture.url("/value"), "valueLocation": "value",
                "targetValue": "10", "activationTargetValue": "5"}}),
            (Some((_, redis)), 2) => json!({"type": "redis", "metadata": {
                "address": redis.address(), "listName": format!("queue-{i}"),
                "listLength": "5"}}),
            _ => cron.clone(),
        };
        let so = serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": format!("w{i}")},
            "spec": {"scaleTargetRef": {"name": format!("w{i}")}, "minReplicaCount": 0,
                "pollingInterval": 30,
                "triggers": [trigger]},
        }))
        .expect("scaledobject");
        objects
            .create(&PostParams::default(), &so)
            .await
            .expect("create scaledobject");
    }
    let hpas = Api::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>::namespaced(
        client.clone(),
        &ns,
    );
    wait_for("1,000 HPAs", Duration::from_secs(600), || async {
        let n = hpas
            .list_metadata(&ListParams::default())
            .await
            .ok()?
            .items
            .len();
        (n == N).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", controller.log()));
    tokio::time::sleep(Duration::from_secs(35)).await; // one more polling interval for all
    let (rss, peak) = rss_mib(controller.child.id());
    eprintln!(
        "footprint: tandem run (pod layer) idle {:.1} MiB; with {N} ScaledObjects ({} triggers) \
         and their HPAs {rss:.1} MiB RSS, peak {peak:.1} MiB",
        idle.0,
        if mixed {
            "cron, metrics-api, redis"
        } else {
            "cron"
        },
    );
    stop_for_profile(controller);
}

/// Stops `tandem run` with SIGTERM and waits for it, so that a build with `--features
/// dhat-heap` writes its heap profile (`TANDEM_DHAT_OUT`) as it exits.
fn stop_for_profile(mut controller: common::Replica) {
    controller.signal("-TERM");
    let _ = controller.child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a report: launches 1,000 kwok nodes for 10,000 pods; run with --ignored --nocapture"]
async fn memory_with_a_thousand_nodes_and_ten_thousand_pods() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("footprint-nodes").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::kwok_class(&client, &class).await;
    Api::<tandem_api::karpenter::NodePool>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
                "metadata": {"name": ns},
                "spec": {"template": {"spec": {
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c-1x-amd64-linux"]}],
                    "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
            }))
            .expect("nodepool"),
        )
        .await
        .expect("create nodepool");
    let controller = common::Replica::start(
        "footprint-nodes",
        cp.kubeconfig_path(),
        &ns,
        cp.dir(),
        &["--disable-leader-election", "--disable-pod-layer"],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = rss_mib(controller.child.id());
    // 10 pods of 90m fill a 1-vCPU kwok node: 10,000 pods need 1,000 nodes.
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "many"},
        "spec": {"replicas": 10_000, "selector": {"matchLabels": {"app": "many"}},
            "template": {"metadata": {"labels": {"app": "many"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "90m", "memory": "64Mi"}}}]}}},
    }))
    .expect("deployment");
    let started = std::time::Instant::now();
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
    // The Deployment's status, not a list of 10,000 pods per poll: the report must not load
    // the API server it measures against.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    wait_for("10,000 pods Ready", Duration::from_secs(1_800), || async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let d = deployments.get_status("many").await.ok()?;
        (d.status?.ready_replicas? == 10_000).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", controller.log()));
    let elapsed = started.elapsed();
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .list_metadata(&ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}")))
        .await
        .expect("nodes")
        .items
        .len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss, peak) = rss_mib(controller.child.id());
    eprintln!(
        "footprint: tandem run (node layer, kwok provider playing kubelet) idle {:.1} MiB; \
         {nodes} nodes, 10,000 pods Running after {:.0} s: {rss:.1} MiB RSS, peak {peak:.1} MiB",
        idle.0,
        elapsed.as_secs_f64()
    );
    stop_for_profile(controller);
}
