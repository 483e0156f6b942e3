//! Kafka (KRaft, one node) with a SASL/PLAIN listener: a consumer group's lag on a topic
//! with 3 partitions, activation, the one-consumer-per-partition cap, offsetResetPolicy for
//! a group without committed offsets, SASL credentials, TLS, and a broker that is down.

use super::*;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tandem_testkit::Pki;
use tandem_testkit::services::{Kafka, KafkaUser};

const USER: &str = "tandem";
const PASSWORD: &str = "canary-kafka-secret";
const PER_PARTITION: i32 = 10;

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let res = admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .expect("create topics");
    for r in res {
        r.expect("topic created");
    }
}

async fn produce(bootstrap: &str, topic: &str, partitions: i32) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    for p in 0..partitions {
        for i in 0..PER_PARTITION {
            let payload = format!("m{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .partition(p)
                        .payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
    }
}

/// Commits `offsets` (partition → next offset to read) for `group`, as a consumer that
/// assigned itself the partitions would.
fn commit(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
}

fn kafka(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> TriggerParams {
    let mut md = vec![
        ("bootstrapServers", bootstrap),
        ("consumerGroup", group),
        ("topic", "events"),
    ];
    md.extend_from_slice(extra);
    params("kafka", &md, &[])
}

async fn measured(p: TriggerParams) -> (f64, bool) {
    value(&*build(p).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_lag_activation_cap_offset_reset_sasl_and_down() {
    let start = std::time::Instant::now();
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::generate(pki_dir.path(), "10.96.0.1").expect("pki");
    let serving = pki
        .issue_serving(&["127.0.0.1", "localhost"])
        .expect("serving certificate");
    let mut server = started(
        Kafka::start(
            Some(KafkaUser {
                name: USER.into(),
                password: PASSWORD.into(),
            }),
            Some(&serving),
        )
        .await,
    );
    let b = server.bootstrap();
    create_topic(&b, "events", 3).await;
    create_topic(&b, "other", 1).await;
    produce(&b, "events", 3).await;
    produce(&b, "other", 1).await;
    // Lag per partition: 10 − 4 = 6, 10 − 10 = 0, 10 − 7 = 3; 9 in all.
    commit(&b, "workers", "events", &[(0, 4), (1, 10), (2, 7)]);
    eprintln!(
        "  broker, topics, 40 messages, commits: {:.2?}",
        start.elapsed()
    );

    let g = "workers";
    // The lag, active above activationLagThreshold (strictly).
    assert_eq!(measured(kafka(&b, g, &[])).await, (9.0, true));
    assert_eq!(
        measured(kafka(&b, g, &[("activationLagThreshold", "8")])).await,
        (9.0, true)
    );
    assert_eq!(
        measured(kafka(&b, g, &[("activationLagThreshold", "9")])).await,
        (9.0, false)
    );
    // One consumer per partition at most: 3 partitions × lagThreshold 2 = 6.
    assert_eq!(
        measured(kafka(&b, g, &[("lagThreshold", "2")])).await,
        (6.0, true)
    );
    assert_eq!(
        measured(kafka(
            &b,
            g,
            &[("lagThreshold", "2"), ("allowIdleConsumers", "true")]
        ))
        .await,
        (9.0, true)
    );
    // Two partitions have lag: 2 × 2.
    assert_eq!(
        measured(kafka(
            &b,
            g,
            &[("lagThreshold", "2"), ("limitToPartitionsWithLag", "true")]
        ))
        .await,
        (4.0, true)
    );
    assert_eq!(
        measured(kafka(&b, g, &[("partitionLimitation", "1-2")])).await,
        (3.0, true)
    );
    // No topic: the topics the group committed offsets in ("other" is not one of them).
    let all = params(
        "kafka",
        &[("bootstrapServers", b.as_str()), ("consumerGroup", g)],
        &[],
    );
    let s = build(all).await;
    assert_eq!(
        s.metric_specs().await.expect("specs")[0].name(),
        "s0-kafka-workers-topics"
    );
    assert_eq!(value(&*s).await, (9.0, true));

    // Persistent lag: the second look sees no offset moved, so the metric drops to 0 while
    // the trigger stays active; a commit that moves partition 2 brings its lag back.
    let s = build(kafka(&b, g, &[("excludePersistentLag", "true")])).await;
    assert_eq!(value(&*s).await, (9.0, true));
    assert_eq!(value(&*s).await, (0.0, true));
    commit(&b, g, "events", &[(2, 8)]);
    assert_eq!(value(&*s).await, (2.0, true));

    // A group that never committed: latest → 1 per partition, or 0 when asked; earliest →
    // everything retained.
    let fresh = "fresh";
    assert_eq!(measured(kafka(&b, fresh, &[])).await, (3.0, true));
    assert_eq!(
        measured(kafka(&b, fresh, &[("scaleToZeroOnInvalidOffset", "true")])).await,
        (0.0, false)
    );
    assert_eq!(
        measured(kafka(
            &b,
            fresh,
            &[
                ("offsetResetPolicy", "earliest"),
                ("allowIdleConsumers", "true")
            ]
        ))
        .await,
        (30.0, true)
    );
    // Capped: 3 partitions × 10.
    assert_eq!(
        measured(kafka(
            &b,
            fresh,
            &[("offsetResetPolicy", "earliest"), ("lagThreshold", "5")]
        ))
        .await,
        (15.0, true)
    );

    // A topic that does not exist.
    let s = build(params(
        "kafka",
        &[
            ("bootstrapServers", b.as_str()),
            ("consumerGroup", g),
            ("topic", "missing"),
        ],
        &[],
    ))
    .await;
    let e = measure(&*s).await.expect_err("no such topic");
    assert_clean(&e, "SourceObjectNotFound", "kafka trigger 0", &[]);
    assert!(e.to_string().contains("topic \"missing\""), "{e}");

    // SASL/PLAIN from the TriggerAuthentication: the right password reads the lag, a wrong
    // one is refused with an error that names the trigger and hides the password.
    let sasl = server.sasl_bootstrap().expect("sasl listener");
    let with_auth = |password: &str| {
        params(
            "kafka",
            &[
                ("bootstrapServers", sasl.as_str()),
                ("consumerGroup", g),
                ("topic", "events"),
            ],
            &[
                ("sasl", "plaintext"),
                ("username", USER),
                ("password", password),
            ],
        )
    };
    let t = std::time::Instant::now();
    assert_eq!(measured(with_auth(PASSWORD)).await, (8.0, true));
    let wrong = "canary-wrong-password";
    let e = measure(&*build(with_auth(wrong)).await)
        .await
        .expect_err("wrong password");
    assert_clean(&e, "Unauthorized", "kafka trigger 0", &[wrong, PASSWORD]);
    eprintln!("  SASL checks: {:.2?}", t.elapsed());

    // TLS: the CA from the TriggerAuthentication verifies the broker; without it the system
    // roots do not, and the error says why; unsafeSsl skips the check.
    let ssl = server.ssl_bootstrap().expect("ssl listener");
    let with_tls = |auth: &[(&str, &str)], extra: &[(&str, &str)]| {
        let mut md = vec![
            ("bootstrapServers", ssl.as_str()),
            ("consumerGroup", g),
            ("topic", "events"),
        ];
        md.extend_from_slice(extra);
        params("kafka", &md, auth)
    };
    let t = std::time::Instant::now();
    assert_eq!(
        measured(with_tls(&[("tls", "enable"), ("ca", pki.ca_pem())], &[])).await,
        (8.0, true)
    );
    let e = measure(&*build(with_tls(&[("tls", "enable")], &[])).await)
        .await
        .expect_err("unknown CA");
    assert_clean(&e, "SourceUnreachable", "kafka trigger 0", &[]);
    assert!(e.to_string().contains("certificate verify failed"), "{e}");
    assert_eq!(
        measured(with_tls(&[("tls", "enable")], &[("unsafeSsl", "true")])).await,
        (8.0, true)
    );
    eprintln!("  TLS checks: {:.2?}", t.elapsed());

    // The broker goes down: a clear, retryable error from the scaler that was working.
    let s = build(kafka(&b, g, &[])).await;
    assert_eq!(value(&*s).await, (8.0, true));
    server.stop();
    let t = std::time::Instant::now();
    let e = measure(&*s).await.expect_err("broker down");
    assert_clean(&e, "SourceUnreachable", "kafka trigger 0", &[]);
    assert!(e.is_retryable());
    eprintln!("  down detected in {:.2?}", t.elapsed());
    let e = measure(&*build(kafka(&b, g, &[])).await)
        .await
        .expect_err("broker down, new client");
    assert_clean(&e, "SourceUnreachable", "kafka trigger 0", &[]);
    eprintln!("  whole test: {:.2?}", start.elapsed());
}
