//! `minReplicaCount: 0`: an empty queue takes the target to 0 after the (short) cooldown,
//! messages bring it back: KEDA's activation 0 → 1, then the real HPA 1 → N.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_queue_scales_to_zero_and_messages_activate_it_again() {
    let h = start().await;
    let ns = h.cp.namespace("zero").await.expect("namespace");
    let rmq = rabbitmq().await;
    publish(&rmq, "jobs", 0).await;
    secret(
        &h.client,
        &ns,
        "rabbit",
        &[("host", &http_host(&rmq, PASSWORD))],
    )
    .await;
    trigger_auth(&h.client, &ns, "rabbit-auth", "rabbit").await;
    deployment(&h.client, &ns, "worker", 1).await;
    scaled_object(
        &h.client,
        &ns,
        rabbit_so(
            "zero",
            "worker",
            "rabbit-auth",
            "jobs",
            json!({"minReplicaCount": 0, "cooldownPeriod": 5}),
        ),
    )
    .await;

    wait_replicas(&h.client, &ns, "worker", 0).await;
    let deactivated = wait_event(&h.client, &ns, "zero", "KEDAScaleTargetDeactivated").await;
    assert_eq!(
        deactivated,
        format!("Deactivated Deployment {ns}/worker from 1 to 0")
    );
    let active = wait_condition(&h.client, &ns, "zero", "Active", |c| !c.is_true()).await;
    assert_eq!(active.reason.as_deref(), Some("ScalerNotActive"));

    // 25 messages: KEDA activates to 1, the HPA takes it to ceil(25 / 10) = 3.
    publish(&rmq, "jobs", 25).await;
    let activated = wait_event(&h.client, &ns, "zero", "KEDAScaleTargetActivated").await;
    assert_eq!(
        activated,
        format!("Scaled Deployment {ns}/worker from 0 to 1, triggered by s0-rabbitmq-jobs")
    );
    wait_replicas(&h.client, &ns, "worker", 3).await;
    wait_condition(&h.client, &ns, "zero", "Active", |c| c.is_true()).await;
    drop(h);
}
