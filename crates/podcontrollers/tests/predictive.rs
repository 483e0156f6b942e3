//! Predictive provisioning through the whole chain on the real control plane: RabbitMQ → the
//! pod layer (push, poll, forecast) → the state writer → the provisioner → kwok nodes, with
//! the real HPA climbing behind. Both layers run in this process as `tandem run` runs them.
//!
//! - `the_chain_launches_for_the_forecast_before_the_hpa_climbs` (asserts): 8 messages at
//!   `value: 1` → the pod layer activates 0 → 1 and forecasts 8; the HPA's default scale-up
//!   policy needs two syncs (1 → 5 → 8, 15 s apart), yet all 8 NodeClaims exist while the
//!   Deployment is still below 8 — and when the 8 pods run, there are still exactly 8.
//! - `first_pod_running_with_and_without_predictive_provisioning` (a measurement, ignored):
//!   20 runs each way, alternating, of one message → first pod Running, with the per-object
//!   switch `tandem.dev/predictive-provisioning: "false"` for the reactive runs. Run with
//!   `cargo test -p tandem-podcontrollers --test predictive -- --ignored --nocapture`.
//!
//! - `published_to_replicas_and_running_with_polling_and_with_push` (a measurement, ignored):
//!   20 runs each way, alternating, at KEDA's default `pollingInterval: 30`, with the
//!   per-object switch `tandem.dev/push: "false"` for the polling runs: one message →
//!   `spec.replicas` 1 (the pod layer's activation) and → first pod Running (through the node
//!   layer). Run with `cargo test -p tandem-podcontrollers --test predictive
//!   published_to -- --ignored --nocapture`.
//!
//! The node layer acts on every NodePool of its control plane: this binary's tests never run
//! together (the measurements are ignored; run one at a time).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_api::keda::v1alpha1::ScaledObject;
use tandem_api::kwok::KWOKNodeClass;
use tandem_cloud::kwok::{Kubelet, KwokCloud, KwokOptions};
use tandem_controllers::{Controllers, Options};
use tandem_model::catalog::Catalog;
use tandem_state::predictions::Predictions;
use tandem_testkit::wait_for;

/// The node layer (kwok provider, 0 s delays) reading the pod layer's forecasts.
struct NodeLayer {
    _controllers: Controllers,
    kubelet: tokio::task::JoinHandle<()>,
}

impl Drop for NodeLayer {
    fn drop(&mut self) {
        self.kubelet.abort();
    }
}

fn node_layer(client: &Client, predictions: &Predictions) -> NodeLayer {
    // Logs with RUST_LOG=tandem_controllers=info; a second init is a no-op.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let catalog = Arc::new(Catalog::kwok());
    let kubelet = tokio::spawn(Kubelet::new(client.clone()).run());
    let cloud = Arc::new(KwokCloud::with_catalog(
        client.clone(),
        catalog.clone(),
        KwokOptions::default(),
    ));
    let index = tandem_state::Index::new(catalog).with_predictions(predictions);
    let mut options = Options::default();
    options.disruption.poll_interval = Duration::from_secs(1);
    options.disruption.decide.validation_delay_ms = 1_000;
    NodeLayer {
        _controllers: Controllers::spawn_with(client.clone(), cloud, index, options),
        kubelet,
    }
}

/// A KWOKNodeClass and a NodePool of c-2x on-demand nodes (one 1500m pod each).
async fn pool(client: &Client, name: &str, consolidate_after: &str) {
    let class: KWOKNodeClass = serde_json::from_value(json!({
        "apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass",
        "metadata": {"name": name}, "spec": {},
    }))
    .expect("class");
    Api::<KWOKNodeClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .expect("create class");
    let np: NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {"limits": {"cpu": "1000"},
            "disruption": {"consolidateAfter": consolidate_after, "budgets": [{"nodes": "100%"}]},
            "template": {"spec": {
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c-2x-amd64-linux"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": name}}}},
    }))
    .expect("nodepool");
    Api::<NodePool>::all(client.clone())
        .create(&PostParams::default(), &np)
        .await
        .expect("create nodepool");
}

/// A Deployment at 0 replicas whose pods need a node of `pool` each.
async fn workload(client: &Client, ns: &str, name: &str, pool: &str) {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "nodeSelector": {"karpenter.sh/nodepool": pool},
                "containers": [{"name": "c", "image": "registry.invalid/worker:1",
                                "resources": {"requests": {"cpu": "1500m"}}}]}}},
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
}

async fn claims(api: &Api<NodeClaim>, pool: &str) -> usize {
    api.list_metadata(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await
        .map(|l| l.items.len())
        .unwrap_or(usize::MAX)
}

async fn running(pods: &Api<Pod>, app: &str) -> usize {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .count()
}

/// The RabbitMQ credentials Secret and TriggerAuthentication every ScaledObject here uses.
/// A measurement run's end: queue drained, ScaledObject and Deployment gone, and the pool's
/// node consolidated, so the next run starts from an empty pool.
async fn end_run(
    client: &Client,
    ns: &str,
    rmq: &tandem_testkit::services::RabbitMq,
    name: &str,
    pool: &str,
) {
    drain(rmq, name).await;
    let objects: Api<ScaledObject> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let _ = objects.delete(name, &DeleteParams::default()).await;
    let _ = deployments.delete(name, &DeleteParams::default()).await;
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for("the pool empty again", TIMEOUT, || async {
        let list = nodes
            .list_metadata(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
            .await
            .ok()?;
        list.items.is_empty().then_some(())
    })
    .await
    .expect("the run's node is consolidated");
}

async fn rabbit_auth(client: &Client, ns: &str, rmq: &tandem_testkit::services::RabbitMq) {
    secret(client, ns, "rabbit", &[("host", &http_host(rmq, PASSWORD))]).await;
    trigger_auth(client, ns, "rabbit-auth", "rabbit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_launches_for_the_forecast_before_the_hpa_climbs() {
    let predictions = Predictions::new();
    let h = start_with(Some(predictions.clone())).await;
    let ns = h.cp.namespace("predictive").await.expect("namespace");
    let rmq = rabbitmq().await;
    rabbit_auth(&h.client, &ns, &rmq).await;
    let pool_name = format!("{ns}-burst");
    pool(&h.client, &pool_name, "30s").await;
    let _nodes = node_layer(&h.client, &predictions);
    workload(&h.client, &ns, "burst", &pool_name).await;
    let mut so = rabbit_so(
        "burst",
        "burst",
        "rabbit-auth",
        "burst",
        json!({"minReplicaCount": 0, "maxReplicaCount": 8}),
    );
    so["spec"]["triggers"][0]["metadata"]["value"] = json!("1");
    // The queue exists before the scaler probes it.
    publish(&rmq, "burst", 0).await;
    scaled_object(&h.client, &ns, so).await;
    wait_condition(&h.client, &ns, "burst", "Ready", |c| c.is_true()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    publish(&rmq, "burst", 8).await;
    let nodeclaims: Api<NodeClaim> = Api::all(h.client.clone());
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), &ns);
    let replicas_when_launched = wait_for("8 claims", TIMEOUT, || async {
        (claims(&nodeclaims, &pool_name).await >= 8).then_some(())?;
        let d = deployments.get("burst").await.ok()?;
        Some(d.spec.and_then(|s| s.replicas).unwrap_or(0))
    })
    .await
    .expect("the forecast's capacity");
    assert!(
        replicas_when_launched < 8,
        "capacity for 8 came while the HPA was still at {replicas_when_launched}"
    );
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), &ns);
    wait_for("8 pods Running", TIMEOUT, || async {
        (running(&pods, "burst").await == 8).then_some(())
    })
    .await
    .expect("the HPA reaches 8 and the pods run");
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        claims(&nodeclaims, &pool_name).await,
        8,
        "the pods took the claims launched for them: no double launch"
    );
    drain(&rmq, "burst").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that takes minutes; run with --ignored --nocapture"]
async fn first_pod_running_with_and_without_predictive_provisioning() {
    let predictions = Predictions::new();
    let h = start_with(Some(predictions.clone())).await;
    let ns =
        h.cp.namespace("predictive-latency")
            .await
            .expect("namespace");
    let rmq = rabbitmq().await;
    rabbit_auth(&h.client, &ns, &rmq).await;
    let pool_name = format!("{ns}-burst");
    pool(&h.client, &pool_name, "0s").await;
    let _nodes = node_layer(&h.client, &predictions);
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), &ns);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    // 20 runs each way; `TANDEM_RUNS` overrides the total.
    let runs: usize = std::env::var("TANDEM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    for run in 0..runs {
        let predictive = run % 2 == 0;
        let name = format!("w{run}");
        workload(&h.client, &ns, &name, &pool_name).await;
        let mut so = rabbit_so(
            &name,
            &name,
            "rabbit-auth",
            &name,
            json!({"minReplicaCount": 0, "maxReplicaCount": 1}),
        );
        if !predictive {
            so["metadata"]["annotations"] = json!({"tandem.dev/predictive-provisioning": "false"});
        }
        // The queue exists before the scaler probes it.
        publish(&rmq, &name, 0).await;
        scaled_object(&h.client, &ns, so).await;
        wait_condition(&h.client, &ns, &name, "Ready", |c| c.is_true()).await;
        // The push watcher takes its baseline a second after the scaler is built.
        tokio::time::sleep(Duration::from_secs(3)).await;
        publish(&rmq, &name, 1).await;
        let t0 = Instant::now();
        tracing::info!(run, predictive, "published");
        while running(&pods, &name).await == 0 {
            assert!(t0.elapsed() < TIMEOUT, "run {run}: no pod ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = t0.elapsed();
        eprintln!(
            "run {run} ({}): first pod Running {:.2}s after publish",
            if predictive { "predictive" } else { "reactive" },
            took.as_secs_f64()
        );
        if predictive {
            with.push(took);
        } else {
            without.push(took);
        }
        end_run(&h.client, &ns, &rmq, &name, &pool_name).await;
    }
    for (label, mut samples) in [("predictive", with), ("reactive", without)] {
        samples.sort();
        let at =
            |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64();
        eprintln!(
            "message published -> first pod Running, {label}: n={} p50={:.2}s p95={:.2}s max={:.2}s",
            samples.len(),
            at(0.5),
            at(0.95),
            at(1.0)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that takes minutes; run with --ignored --nocapture"]
async fn published_to_replicas_and_running_with_polling_and_with_push() {
    let predictions = Predictions::new();
    let h = start_with(Some(predictions.clone())).await;
    let ns = h.cp.namespace("push-latency").await.expect("namespace");
    let rmq = rabbitmq().await;
    rabbit_auth(&h.client, &ns, &rmq).await;
    let pool_name = format!("{ns}-burst");
    pool(&h.client, &pool_name, "0s").await;
    let _nodes = node_layer(&h.client, &predictions);
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), &ns);
    // (replicas changed, first pod Running) per mode.
    let mut samples: [(Vec<Duration>, Vec<Duration>); 2] = Default::default();
    let runs: usize = std::env::var("TANDEM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    for run in 0..runs {
        let push = run % 2 == 0;
        let name = format!("p{run}");
        workload(&h.client, &ns, &name, &pool_name).await;
        let mut so = rabbit_so(
            &name,
            &name,
            "rabbit-auth",
            &name,
            json!({"minReplicaCount": 0, "maxReplicaCount": 1, "pollingInterval": 30}),
        );
        if !push {
            so["metadata"]["annotations"] = json!({"tandem.dev/push": "false"});
        }
        publish(&rmq, &name, 0).await;
        scaled_object(&h.client, &ns, so).await;
        wait_condition(&h.client, &ns, &name, "Ready", |c| c.is_true()).await;
        // The push watcher takes its baseline a second after the scaler is built. The message
        // then comes at a spread phase of the 30 s poll (the first poll runs at creation, so
        // without it every polling run would wait ~27 s): 3 s + 0..29 s, the same for each
        // pair of runs.
        let phase = 3 + (run as u64 / 2 * 13) % 30;
        tokio::time::sleep(Duration::from_secs(phase)).await;
        publish(&rmq, &name, 1).await;
        let t0 = Instant::now();
        let mut replicas_at = None;
        loop {
            if replicas_at.is_none()
                && deployments
                    .get(&name)
                    .await
                    .ok()
                    .and_then(|d| d.spec?.replicas)
                    .is_some_and(|r| r >= 1)
            {
                replicas_at = Some(t0.elapsed());
            }
            if replicas_at.is_some() && running(&pods, &name).await > 0 {
                break;
            }
            assert!(t0.elapsed() < TIMEOUT, "run {run}: no pod ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let running_at = t0.elapsed();
        let replicas_at = replicas_at.unwrap_or(running_at);
        let mode = if push { "push" } else { "polling" };
        eprintln!(
            "run {run} ({mode}): replicas changed {:.2}s, first pod Running {:.2}s after publish",
            replicas_at.as_secs_f64(),
            running_at.as_secs_f64()
        );
        let slot = &mut samples[usize::from(!push)];
        slot.0.push(replicas_at);
        slot.1.push(running_at);
        end_run(&h.client, &ns, &rmq, &name, &pool_name).await;
    }
    for (mode, (replicas, running)) in ["push", "polling"].into_iter().zip(samples) {
        for (what, mut s) in [
            ("replicas changed", replicas),
            ("first pod Running", running),
        ] {
            s.sort();
            let at = |p: f64| s[((s.len() as f64 - 1.0) * p).round() as usize].as_secs_f64();
            eprintln!(
                "message published -> {what}, {mode}: n={} p50={:.2}s p95={:.2}s max={:.2}s",
                s.len(),
                at(0.5),
                at(0.95),
                at(1.0)
            );
        }
    }
}
