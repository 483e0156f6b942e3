//! `autoscaling.keda.sh/paused-replicas: "2"` holds the target at 2 and removes the HPA;
//! removing the annotation gives scaling back to the HPA. Deleting the ScaledObject with
//! `restoreToOriginalReplicaCount` puts the target back where it was before. A paused object
//! leaves its source alone.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use tandem_api::keda::v1alpha1::ScaledObject;
use tandem_testkit::wait_for_object;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_replicas_freeze_the_target_and_removing_it_resumes() {
    let h = start().await;
    let ns = h.cp.namespace("pause").await.expect("namespace");
    let mut rmq = rabbitmq().await;
    publish(&rmq, "tasks", 50).await;
    secret(
        &h.client,
        &ns,
        "rabbit",
        &[("host", &http_host(&rmq, PASSWORD))],
    )
    .await;
    trigger_auth(&h.client, &ns, "rabbit-auth", "rabbit").await;
    deployment(&h.client, &ns, "worker", 3).await;
    scaled_object(
        &h.client,
        &ns,
        rabbit_so(
            "paused",
            "worker",
            "rabbit-auth",
            "tasks",
            json!({"minReplicaCount": 1, "advanced": {"restoreToOriginalReplicaCount": true}}),
        ),
    )
    .await;
    let sos: Api<ScaledObject> = Api::namespaced(h.client.clone(), &ns);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(h.client.clone(), &ns);
    wait_replicas(&h.client, &ns, "worker", 5).await;

    sos.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {
            "autoscaling.keda.sh/paused-replicas": "2"}}})),
    )
    .await
    .expect("annotate");
    wait_replicas(&h.client, &ns, "worker", 2).await;
    wait_for_object(
        &hpas,
        "keda-hpa-paused",
        TIMEOUT,
        |h: Option<&HorizontalPodAutoscaler>| h.is_none(),
    )
    .await
    .expect("the HPA is deleted while paused");
    let paused = wait_condition(&h.client, &ns, "paused", "Paused", |c| c.is_true()).await;
    assert_eq!(paused.reason.as_deref(), Some("ScaledObjectPaused"));
    let status = sos
        .get("paused")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.paused_replica_count, Some(2));
    wait_event(&h.client, &ns, "paused", "ScaledObjectPaused").await;
    // Still 50 messages, several polls later: held at 2.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(replicas(&h.client, &ns, "worker").await, 2);

    sos.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {
            "autoscaling.keda.sh/paused-replicas": null}}})),
    )
    .await
    .expect("remove the annotation");
    wait_replicas(&h.client, &ns, "worker", 5).await;
    wait_condition(&h.client, &ns, "paused", "Paused", |c| !c.is_true()).await;
    hpas.get("keda-hpa-paused").await.expect("the HPA is back");

    // Delete: the finalizer restores the original 3 replicas and removes the HPA.
    sos.delete("paused", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for_object(&sos, "paused", TIMEOUT, |s: Option<&ScaledObject>| {
        s.is_none()
    })
    .await
    .expect("the finalizer is removed");
    wait_replicas(&h.client, &ns, "worker", 3).await;
    assert!(
        hpas.get_opt("keda-hpa-paused")
            .await
            .expect("get")
            .is_none()
    );

    // Paused for a broker's maintenance: the source is left alone, so its outage raises no
    // KEDAScalerFailed while the pause lasts.
    deployment(&h.client, &ns, "consumer", 1).await;
    scaled_object(
        &h.client,
        &ns,
        rabbit_so(
            "maintenance",
            "consumer",
            "rabbit-auth",
            "tasks",
            json!({"minReplicaCount": 1}),
        ),
    )
    .await;
    wait_condition(&h.client, &ns, "maintenance", "Ready", |c| c.is_true()).await;
    sos.patch(
        "maintenance",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {
            "autoscaling.keda.sh/paused-replicas": "1"}}})),
    )
    .await
    .expect("pause");
    wait_condition(&h.client, &ns, "maintenance", "Paused", |c| c.is_true()).await;
    rmq.stop();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(h.client.clone(), &ns)
        .list(&Default::default())
        .await
        .expect("events");
    let failed: Vec<_> = events
        .items
        .iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some("maintenance")
                && e.reason.as_deref() == Some("KEDAScalerFailed")
        })
        .filter_map(|e| e.message.clone())
        .collect();
    assert!(
        failed.is_empty(),
        "a paused object polled its source: {failed:?}"
    );
    assert_eq!(replicas(&h.client, &ns, "consumer").await, 1);
    drop(h);
}
