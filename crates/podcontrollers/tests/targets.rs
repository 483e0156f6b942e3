//! Scale targets are found through discovery and scaled through `/scale`, whatever their
//! kind: a StatefulSet scales like a Deployment, and a kind without `/scale` is refused with
//! a condition that says so.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tandem_api::keda::v1alpha1::ScaledObject;
use tandem_testkit::wait_for_object;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_scales_through_scale_and_a_kind_without_scale_is_refused() {
    let h = start().await;
    let ns = h.cp.namespace("targets").await.expect("namespace");
    let rmq = rabbitmq().await;
    publish(&rmq, "rows", 30).await;
    secret(
        &h.client,
        &ns,
        "rabbit",
        &[("host", &http_host(&rmq, PASSWORD))],
    )
    .await;
    trigger_auth(&h.client, &ns, "rabbit-auth", "rabbit").await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db-worker"},
        "spec": {
            "replicas": 1,
            "serviceName": "db-worker",
            "selector": {"matchLabels": {"app": "db-worker"}},
            "template": {
                "metadata": {"labels": {"app": "db-worker"}},
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
        "sts",
        "db-worker",
        "rabbit-auth",
        "rows",
        json!({"minReplicaCount": 1}),
    );
    so["spec"]["scaleTargetRef"] =
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db-worker"});
    scaled_object(&h.client, &ns, so).await;

    // 30 / 10 = 3, by the real HPA on the StatefulSet.
    wait_for_object(
        &statefulsets,
        "db-worker",
        TIMEOUT,
        |s: Option<&StatefulSet>| {
            s.and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas) == Some(3)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("StatefulSet reaches 3 replicas: {e}"));
    let hpa = Api::<HorizontalPodAutoscaler>::namespaced(h.client.clone(), &ns)
        .get("keda-hpa-sts")
        .await
        .expect("hpa");
    assert_eq!(hpa.spec.scale_target_ref.kind, "StatefulSet");
    assert_eq!(
        hpa.spec.scale_target_ref.api_version.as_deref(),
        Some("apps/v1")
    );
    let status = Api::<ScaledObject>::namespaced(h.client.clone(), &ns)
        .get("sts")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(
        status.scale_target_kind.as_deref(),
        Some("apps/v1.StatefulSet")
    );

    // A ConfigMap has no /scale.
    let mut so = rabbit_so("no-scale", "settings", "rabbit-auth", "rows", json!({}));
    so["spec"]["scaleTargetRef"] =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "settings"});
    scaled_object(&h.client, &ns, so).await;
    let ready = wait_condition(&h.client, &ns, "no-scale", "Ready", |c| {
        c.status == tandem_api::condition::ConditionStatus::False
    })
    .await;
    let message = ready.message.unwrap_or_default();
    assert!(
        message.contains("spec.scaleTargetRef") && message.contains("/scale"),
        "{message}"
    );
    drop(h);
}
