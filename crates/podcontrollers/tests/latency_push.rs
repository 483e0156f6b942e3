//! Measurement, not an assertion: with push wake-ups a ScaledObject reacts to a growing
//! queue long before its `pollingInterval` (here KEDA's default 30 s).
//!
//! 20 runs: each publishes enough messages (`value: 10`) for ≈25 % more replicas (above the
//! HPA's 10 % tolerance) and records the time from the broker's confirm to the target's
//! `spec.replicas` reaching the new count — the source's wake, our poll, the value served and
//! the real HPA's next sync. The target is an OrderedReady StatefulSet, so with no nodes only
//! one pod ever exists however high the count goes; the HPA's scale-up rate limit is lifted
//! through `advanced.horizontalPodAutoscalerConfig.behavior` so that it does not hide our
//! latency. Run with
//! `cargo test -p tandem-podcontrollers --test latency_push -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that takes minutes; run with --ignored --nocapture"]
async fn push_wake_to_hpa_scale_up_latency() {
    let h = start().await;
    let ns = h.cp.namespace("push").await.expect("namespace");
    let rmq = rabbitmq().await;
    publish(&rmq, "work", 10).await;
    let host = format!(
        "amqp://{USER}:{PASSWORD}@127.0.0.1:{}/{VHOST}",
        rmq.amqp_port()
    );
    secret(&h.client, &ns, "rabbit", &[("host", &host)]).await;
    trigger_auth(&h.client, &ns, "rabbit-auth", "rabbit").await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "worker"},
        "spec": {
            "replicas": 1,
            "serviceName": "worker",
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": "worker"}},
            "template": {
                "metadata": {"labels": {"app": "worker"}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/worker:1"}]},
            },
        },
    }))
    .expect("statefulset");
    let statefulsets: Api<StatefulSet> = Api::namespaced(h.client.clone(), &ns);
    statefulsets
        .create(&PostParams::default(), &sts)
        .await
        .expect("create statefulset");
    let mut so = rabbit_so(
        "push",
        "worker",
        "rabbit-auth",
        "work",
        json!({
            "minReplicaCount": 1,
            "maxReplicaCount": 1000,
            "pollingInterval": 30,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleUp": {
                "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Percent", "value": 1000, "periodSeconds": 1}],
            }}}},
        }),
    );
    so["spec"]["scaleTargetRef"] =
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "worker"});
    so["spec"]["triggers"][0]["metadata"]["protocol"] = json!("amqp");
    scaled_object(&h.client, &ns, so).await;
    wait_condition(&h.client, &ns, "push", "Ready", |c| c.is_true()).await;
    // The rabbitmq watcher takes its baseline on its first probe, 1 s after the scaler is
    // built; messages that arrive before that wait for the next poll (a known gap).
    tokio::time::sleep(Duration::from_secs(3)).await;

    let spec_replicas = || async {
        statefulsets
            .get("worker")
            .await
            .expect("get statefulset")
            .spec
            .and_then(|s| s.replicas)
            .unwrap_or(0)
    };
    let mut current = 1;
    let mut samples = Vec::new();
    for run in 0..20 {
        let want = (current + 1).max((current * 5 + 3) / 4);
        publish(
            &rmq,
            "work",
            usize::try_from((want - current) * 10).expect("positive"),
        )
        .await;
        let t0 = Instant::now();
        while spec_replicas().await < want {
            assert!(t0.elapsed() < TIMEOUT, "replicas never reached {want}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        samples.push(t0.elapsed());
        eprintln!(
            "run {run}: {current} -> {want} replicas in {:.2}s",
            t0.elapsed().as_secs_f64()
        );
        current = want;
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64();
    eprintln!(
        "published -> HPA scaled up, pollingInterval 30 s with push: n={} p50={:.2}s p95={:.2}s max={:.2}s",
        samples.len(),
        at(0.5),
        at(0.95),
        at(1.0)
    );
    drop(h);
}
