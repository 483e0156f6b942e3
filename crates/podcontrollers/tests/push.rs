//! Push wake-ups: a source that reports growth makes the pod layer poll at once, so a
//! ScaledObject with a 600 s `pollingInterval` still scales out on new messages. The wait is
//! bounded well below the interval (generously: the machine is shared), so only a wake
//! can explain the scale-out.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::json;
use tandem_testkit::wait_for_object;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growth_reported_by_the_source_is_acted_on_before_the_poll() {
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
    deployment(&h.client, &ns, "worker", 1).await;
    let mut so = rabbit_so(
        "push",
        "worker",
        "rabbit-auth",
        "work",
        json!({"minReplicaCount": 1, "pollingInterval": 600}),
    );
    so["spec"]["triggers"][0]["metadata"]["protocol"] = json!("amqp");
    scaled_object(&h.client, &ns, so).await;
    wait_condition(&h.client, &ns, "push", "Ready", |c| c.is_true()).await;
    // Let the source's watcher take its baseline (its first probe, 1 s after the build).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replicas(&h.client, &ns, "worker").await, 1);

    publish(&rmq, "work", 30).await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), &ns);
    wait_for_object(
        &deployments,
        "worker",
        Duration::from_secs(200),
        |d: Option<&Deployment>| {
            d.and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas) == Some(4)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("40 messages -> 4 replicas long before the 600 s poll: {e}"));
    drop(h);
}
