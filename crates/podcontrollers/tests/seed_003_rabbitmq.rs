//! Seed 003, live: the seed's Secret / TriggerAuthentication / ScaledObject (namespace and the
//! Secret's host adapted, nothing else), real RabbitMQ over the management API, the product's
//! metrics server behind the aggregation layer, the real HPA controller.
//!
//! 100 messages at `value: 10` → the consumer Deployment reaches 10 replicas through
//! `keda-hpa-<name>`; then (a variant with a short HPA scale-down window, so the test does not
//! wait out the 300 s default) the queue is drained → back to `minReplicaCount: 1`.

mod common;

use common::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tandem_api::keda::v1alpha1::ScaledObject;

const SEED: &str = "../../examples/seeds/003_76bb3cb27d73d62f";

fn seed_doc(file: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(SEED)
        .join(file);
    let mut docs = tandem_testkit::manifest::read_documents(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    docs.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_rabbitmq_queue_scales_consumer_to_ten_and_back_to_one() {
    let h = start().await;
    let ns = h.cp.namespace("pets").await.expect("namespace");
    let rmq = rabbitmq().await;
    publish(&rmq, "orders", 100).await;

    // The seed's Secret, with the host pointing at the loopback RabbitMQ.
    let mut secret_doc = seed_doc("01-secret-rabbitmq-scaler-secret.yaml");
    let name = secret_doc["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    secret_doc["metadata"]["namespace"] = json!(ns);
    secret_doc.as_object_mut().expect("object").remove("data");
    secret_doc["stringData"] = json!({"host": http_host(&rmq, PASSWORD)});
    let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(secret_doc).expect("secret");
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), &ns)
        .create(&Default::default(), &s)
        .await
        .unwrap_or_else(|e| panic!("create Secret {name}: {e}"));

    let mut ta_doc = seed_doc("02-triggerauthentication-trigger-auth-rabbitmq-conn.yaml");
    ta_doc["metadata"]["namespace"] = json!(ns);
    let ta: tandem_api::keda::v1alpha1::TriggerAuthentication =
        serde_json::from_value(ta_doc).expect("trigger authentication");
    Api::<tandem_api::keda::v1alpha1::TriggerAuthentication>::namespaced(h.client.clone(), &ns)
        .create(&Default::default(), &ta)
        .await
        .expect("create TriggerAuthentication");

    deployment(&h.client, &ns, "virtual-worker", 1).await;
    let so_doc = seed_doc("03-scaledobject-virtual-worker-rabbitmq-scaledobject.yaml");
    let so = scaled_object(&h.client, &ns, so_doc).await;
    let so_name = so.metadata.name.clone().expect("name");

    // 100 messages / value 10 = 10 replicas, decided by the real HPA.
    wait_replicas(&h.client, &ns, "virtual-worker", 10).await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(h.client.clone(), &ns);
    let hpa = hpas
        .get(&format!("keda-hpa-{so_name}"))
        .await
        .expect("the HPA is keda-hpa-<name>");
    let metric = &hpa.spec.metrics.expect("metrics")[0];
    assert_eq!(
        metric.external.as_ref().expect("external").metric.name,
        "s0-rabbitmq-orders"
    );
    let ready = wait_condition(&h.client, &ns, &so_name, "Ready", |c| c.is_true()).await;
    assert_eq!(ready.reason.as_deref(), Some("ScaledObjectReady"));
    let live = Api::<ScaledObject>::namespaced(h.client.clone(), &ns)
        .get(&so_name)
        .await
        .expect("get");
    assert_eq!(
        live.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("scaledobject.keda.sh/name")),
        Some(&so_name)
    );
    assert!(
        live.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "finalizer.keda.sh"))
    );
    let status = live.status.expect("status");
    assert_eq!(status.external_metric_names, vec!["s0-rabbitmq-orders"]);
    assert_eq!(status.original_replica_count, Some(1));
    assert_eq!(status.hpa_name, Some(format!("keda-hpa-{so_name}")));
    assert_eq!(
        status.scale_target_gvkr.map(|g| g.resource),
        Some("deployments".into())
    );
    let built = wait_event(&h.client, &ns, &so_name, "KEDAScalersStarted").await;
    assert_eq!(built, "Scaler rabbitmq is built");
    wait_event(&h.client, &ns, &so_name, "ScaledObjectReady").await;

    // Variant: a short scale-down window, then drain.
    Api::<ScaledObject>::namespaced(h.client.clone(), &ns)
        .patch(
            &so_name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"advanced": {"horizontalPodAutoscalerConfig": {
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}}}}}),
            ),
        )
        .await
        .expect("patch behavior");
    drain(&rmq, "orders").await;
    wait_replicas(&h.client, &ns, "virtual-worker", 1).await;
    drop(h);
}
