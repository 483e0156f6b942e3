//! RabbitMQ with the management plugin: amqp and http protocols, a non-default vhost.

use super::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tandem_testkit::services::RabbitMq;

const USER: &str = "app";
const PASSWORD: &str = "canary-rmq-secret";
const VHOST: &str = "orders-vh";

async fn publish(url: &str, queue: &str, n: usize) {
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare");
    for i in 0..n {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            format!("m{i}").as_bytes(),
            lapin::BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn rabbitmq_amqp_and_http_value_activation_push_auth_and_down() {
    let mut rmq = started(RabbitMq::start().await);
    started(rmq.add_user_and_vhost(USER, PASSWORD, VHOST).await);
    let amqp = rmq.amqp_url(USER, PASSWORD, VHOST);
    publish(&amqp, "jobs", 5).await;

    // Host without credentials; username/password come from the authentication.
    let host_amqp = format!("amqp://127.0.0.1:{}/{VHOST}", rmq.amqp_port());
    let host_http = format!("http://127.0.0.1:{}/{VHOST}", rmq.http_port());
    let creds: &[(&str, &str)] = &[("username", USER), ("password", PASSWORD)];
    let t = |host: &str, activation: &str, auth: &[(&str, &str)]| {
        params(
            "rabbitmq",
            &[
                ("host", host),
                ("queueName", "jobs"),
                ("mode", "QueueLength"),
                ("value", "2"),
                ("activationValue", activation),
            ],
            auth,
        )
    };

    // amqp: exact at once.
    let s = build(t(&host_amqp, "0", creds)).await;
    assert_eq!(value(&*s).await, (5.0, true));
    assert_eq!(
        value(&*build(t(&host_amqp, "5", creds)).await).await,
        (5.0, false)
    );
    // http: the management API's counts lag by a second or two.
    let h = build(t(&host_http, "4", creds)).await;
    assert_eq!(
        value_eventually(&*h, 5.0, Duration::from_secs(20)).await,
        (5.0, true)
    );
    // vhostName overrides the vhost in the URL; useRegex sums matching queues (http only).
    publish(&amqp, "jobs-2", 2).await;
    let regex = params(
        "rabbitmq",
        &[
            (
                "host",
                format!("http://127.0.0.1:{}", rmq.http_port()).as_str(),
            ),
            ("vhostName", VHOST),
            ("queueName", "^jobs.*"),
            ("useRegex", "true"),
            ("value", "1"),
        ],
        creds,
    );
    value_eventually(&*build(regex).await, 7.0, Duration::from_secs(20)).await;

    // Push: a publish wakes the watch well before any 30 s poll.
    let mut w = s.watch().expect("rabbitmq has a watch");
    tokio::time::sleep(Duration::from_millis(1500)).await; // let it take its baseline
    publish(&amqp, "jobs", 1).await;
    let took = next_wake(&mut w, Duration::from_secs(10)).await;
    eprintln!("  rabbitmq push wake {took:?} after publish");

    // Wrong credential, both protocols.
    let bad: &[(&str, &str)] = &[("username", USER), ("password", "canary-wrong-pw")];
    for host in [&host_amqp, &host_http] {
        let e = measure(&*build(t(host, "0", bad)).await).await.unwrap_err();
        assert_clean(
            &e,
            "Unauthorized",
            "rabbitmq trigger 0",
            &["canary-wrong-pw", PASSWORD],
        );
    }
    // A queue that does not exist.
    let missing = params(
        "rabbitmq",
        &[
            ("host", host_http.as_str()),
            ("queueName", "nope"),
            ("value", "1"),
        ],
        creds,
    );
    assert_clean(
        &measure(&*build(missing).await).await.unwrap_err(),
        "SourceObjectNotFound",
        "rabbitmq trigger 0",
        &[PASSWORD],
    );

    // Down.
    rmq.stop();
    for host in [&host_amqp, &host_http] {
        let e = measure(&*build(t(host, "0", creds)).await)
            .await
            .unwrap_err();
        assert_clean(&e, "SourceUnreachable", "rabbitmq trigger 0", &[PASSWORD]);
    }
}
