//! `minReplicaCount: 0`: an empty queue takes the target to 0 after the (short) cooldown,
//! messages bring it back: KEDA's activation 0 → 1, then the real HPA 1 → N. Credentials
//! come through a ClusterTriggerAuthentication.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_queue_scales_to_zero_and_messages_activate_it_again() {
    let h = start().await;
    let ns = h.cp.namespace("zero").await.expect("namespace");
    let rmq = rabbitmq().await;
    publish(&rmq, "jobs", 0).await;
    // Credentials through a ClusterTriggerAuthentication, its Secret in the operator
    // namespace (`keda`, the default of `Options::cluster_object_namespace`).
    tandem_testkit::manifest::ensure_namespace(&h.client, "keda")
        .await
        .expect("namespace keda");
    secret(
        &h.client,
        "keda",
        "rabbit",
        &[("host", &http_host(&rmq, PASSWORD))],
    )
    .await;
    let cta: tandem_api::keda::v1alpha1::ClusterTriggerAuthentication =
        serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ClusterTriggerAuthentication",
            "metadata": {"name": "rabbit-cluster-auth"},
            "spec": {"secretTargetRef": [{"parameter": "host", "name": "rabbit", "key": "host"}]},
        }))
        .expect("cluster trigger authentication");
    kube::Api::<tandem_api::keda::v1alpha1::ClusterTriggerAuthentication>::all(h.client.clone())
        .create(&Default::default(), &cta)
        .await
        .expect("create ClusterTriggerAuthentication");
    deployment(&h.client, &ns, "worker", 1).await;
    let mut so = rabbit_so(
        "zero",
        "worker",
        "rabbit-cluster-auth",
        "jobs",
        json!({"minReplicaCount": 0, "cooldownPeriod": 5}),
    );
    so["spec"]["triggers"][0]["authenticationRef"]["kind"] = json!("ClusterTriggerAuthentication");
    scaled_object(&h.client, &ns, so).await;

    wait_replicas(&h.client, &ns, "worker", 0).await;
    let deactivated = wait_event(&h.client, &ns, "zero", "KEDAScaleTargetDeactivated").await;
    assert_eq!(
        deactivated,
        format!("Deactivated Deployment {ns}/worker from 1 to 0")
    );
    let active = wait_condition(&h.client, &ns, "zero", "Active", |c| !c.is_true()).await;
    assert_eq!(active.reason.as_deref(), Some("ScalerNotActive"));
    // At 0 the real HPA stands aside; HPAActive mirrors that.
    wait_condition(&h.client, &ns, "zero", "HPAActive", |c| {
        c.is_true() && c.reason.as_deref() == Some("ScalingDisabled")
    })
    .await;

    // 25 messages: KEDA activates to 1, the HPA takes it to ceil(25 / 10) = 3.
    publish(&rmq, "jobs", 25).await;
    let activated = wait_event(&h.client, &ns, "zero", "KEDAScaleTargetActivated").await;
    assert_eq!(
        activated,
        format!("Scaled Deployment {ns}/worker from 0 to 1, triggered by s0-rabbitmq-jobs")
    );
    wait_replicas(&h.client, &ns, "worker", 3).await;
    wait_condition(&h.client, &ns, "zero", "Active", |c| c.is_true()).await;
    wait_condition(&h.client, &ns, "zero", "HPAActive", |c| {
        c.is_true() && c.reason.as_deref() == Some("HPAActive")
    })
    .await;
    drop(h);
}
