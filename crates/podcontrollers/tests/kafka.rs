//! A ScaledObject with a `kafka` trigger on the live pod layer: a real KRaft broker, the real
//! HPA. A group with no lag takes the target to 0; 30 messages of lag on 3 partitions activate
//! it, and the HPA stops at 3 replicas (one consumer per partition: the metric is capped at
//! partitions × lagThreshold = 15) rather than the ceil(30 / 5) = 6 the raw lag would ask for.

mod common;

use common::*;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::json;
use std::time::Duration;
use tandem_testkit::services::Kafka;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_lag_activates_the_target_and_the_hpa_stops_at_one_consumer_per_partition() {
    let h = start().await;
    let ns = h.cp.namespace("kafka").await.expect("namespace");
    let broker = match Kafka::start(None, None).await {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let b = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create()
        .expect("admin");
    for r in admin
        .create_topics(
            &[NewTopic::new("orders", 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic")
    {
        r.expect("topic created");
    }
    // The group has read everything there is (nothing yet): committed 0 everywhere, lag 0.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "billing")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("orders", p, Offset::Offset(0))
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");

    deployment(&h.client, &ns, "billing", 1).await;
    scaled_object(
        &h.client,
        &ns,
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "billing"},
            "spec": {
                "scaleTargetRef": {"name": "billing"},
                "pollingInterval": 2,
                "cooldownPeriod": 5,
                "minReplicaCount": 0,
                "maxReplicaCount": 10,
                "triggers": [{"type": "kafka", "metadata": {
                    "bootstrapServers": b, "consumerGroup": "billing", "topic": "orders",
                    "lagThreshold": "5",
                }}],
            },
        }),
    )
    .await;
    wait_replicas(&h.client, &ns, "billing", 0).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create()
        .expect("producer");
    for p in 0..3 {
        for i in 0..10 {
            let payload = format!("order-{p}-{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to("orders")
                        .partition(p)
                        .payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
    }
    let activated = wait_event(&h.client, &ns, "billing", "KEDAScaleTargetActivated").await;
    assert_eq!(
        activated,
        format!("Scaled Deployment {ns}/billing from 0 to 1, triggered by s0-kafka-orders")
    );
    wait_replicas(&h.client, &ns, "billing", 3).await;
    // It stays at 3: the capped metric never asks for a 4th consumer.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(replicas(&h.client, &ns, "billing").await, 3);
}
