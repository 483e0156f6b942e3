//! What every pod-layer scenario needs: the shared control plane with the product's external
//! metrics server registered behind the aggregation layer, the pod layer running, RabbitMQ,
//! and helpers to publish, drain and wait. Each scenario is its own test binary, so each has
//! its own control plane and can register the product's server as the one APIService.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use serde_json::json;
use tandem_api::keda::v1alpha1::{ScaledObject, TriggerAuthentication};
use tandem_podcontrollers::{
    MetricValues, MetricsServer, Options, PodLayer, TlsConfig, serve_external_metrics,
};
use tandem_testkit::services::RabbitMq;
use tandem_testkit::{ControlPlane, wait_for, wait_for_object};

/// Generous: the machine is small and shared.
pub const TIMEOUT: Duration = Duration::from_secs(300);
pub const USER: &str = "app";
pub const PASSWORD: &str = "orders-rmq-secret";
pub const VHOST: &str = "orders-vh";

pub struct Harness {
    pub cp: &'static ControlPlane,
    pub client: Client,
    pub layer: PodLayer,
    pub server: MetricsServer,
    /// The pod layer's KEDA metrics, registered here as `tandem run` registers them.
    pub registry: std::sync::Arc<prometheus_client::registry::Registry>,
}

impl Harness {
    /// The metrics as `/metrics` would print them.
    pub fn scrape(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encode metrics");
        out
    }
}

/// Control plane, the product's metrics server registered as
/// `v1beta1.external.metrics.k8s.io`, and the pod layer.
pub async fn start() -> Harness {
    start_with(None).await
}

/// Like [`start`], the pod layer publishing its forecasts to `predictions`.
pub async fn start_with(predictions: Option<tandem_state::predictions::Predictions>) -> Harness {
    let cp = ControlPlane::shared()
        .await
        .unwrap_or_else(|e| panic!("control plane: {e}"));
    let client = cp.client().expect("client");
    let pki = cp.pki();
    let [svc, ip] = tandem_testkit::external_metrics_serving_names();
    let cert = pki.issue_serving(&[&svc, &ip]).expect("serving cert");
    let values = MetricValues::new();
    let server = serve_external_metrics(
        "127.0.0.1:0".parse().expect("addr"),
        TlsConfig {
            cert_chain_der: vec![cert.cert_der],
            key_pkcs8_der: cert.key_der,
            client_ca_der: vec![pki.front_proxy_ca_der().to_vec()],
        },
        values.clone(),
    )
    .await
    .unwrap_or_else(|e| panic!("metrics server: {e}"));
    tandem_testkit::register_external_metrics(&client, pki, server.local_addr().port(), TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("register the product's metrics server: {e}"));
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = tandem_podcontrollers::metrics::PodLayerMetrics::register(&mut registry);
    let layer = PodLayer::spawn(
        client.clone(),
        Options {
            values,
            predictions,
            metrics,
            ..Options::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("pod layer: {e}"));
    Harness {
        cp,
        client,
        layer,
        server,
        registry: std::sync::Arc::new(registry),
    }
}

/// RabbitMQ with a user and vhost.
pub async fn rabbitmq() -> RabbitMq {
    let rmq = RabbitMq::start()
        .await
        .unwrap_or_else(|e| panic!("rabbitmq (install with hack/services.sh): {e}"));
    rmq.add_user_and_vhost(USER, PASSWORD, VHOST)
        .await
        .unwrap_or_else(|e| panic!("rabbitmq user: {e}"));
    rmq
}

/// The management API URL with credentials, as the seed's Secret holds it.
pub fn http_host(rmq: &RabbitMq, password: &str) -> String {
    format!(
        "http://{USER}:{password}@127.0.0.1:{}/{VHOST}",
        rmq.http_port()
    )
}

async fn channel(rmq: &RabbitMq) -> (lapin::Connection, lapin::Channel) {
    let url = rmq.amqp_url(USER, PASSWORD, VHOST);
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    (conn, ch)
}

/// Declares `queue` (durable) and publishes `n` messages with confirms.
pub async fn publish(rmq: &RabbitMq, queue: &str, n: usize) {
    let (conn, ch) = channel(rmq).await;
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

/// Empties `queue`.
pub async fn drain(rmq: &RabbitMq, queue: &str) {
    let (conn, ch) = channel(rmq).await;
    ch.queue_purge(queue.into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
    let _ = conn.close(200, "done".into()).await;
}

/// A Deployment whose pods never need to run (replica counts are what we assert).
pub async fn deployment(client: &Client, ns: &str, name: &str, replicas: i32) {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/worker:1"}]},
            },
        },
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
}

/// A Secret with string data.
pub async fn secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let s: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .expect("create secret");
}

/// A TriggerAuthentication reading `host` from a Secret key.
pub async fn trigger_auth(client: &Client, ns: &str, name: &str, secret: &str) {
    let ta: TriggerAuthentication = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
        "metadata": {"name": name},
        "spec": {"secretTargetRef": [{"parameter": "host", "name": secret, "key": "host"}]},
    }))
    .expect("trigger authentication");
    Api::<TriggerAuthentication>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &ta)
        .await
        .expect("create trigger authentication");
}

/// Creates a ScaledObject from JSON (namespace set here).
pub async fn scaled_object(client: &Client, ns: &str, mut doc: serde_json::Value) -> ScaledObject {
    doc["metadata"]["namespace"] = json!(ns);
    let so: ScaledObject = serde_json::from_value(doc).expect("scaled object");
    Api::<ScaledObject>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &so)
        .await
        .unwrap_or_else(|e| panic!("create scaled object: {e}"))
}

/// A rabbitmq QueueLength ScaledObject on `target`, authenticated through `auth`.
pub fn rabbit_so(
    name: &str,
    target: &str,
    auth: &str,
    queue: &str,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut doc = json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"name": target},
            "pollingInterval": 2,
            "triggers": [{
                "type": "rabbitmq",
                "metadata": {"protocol": "http", "queueName": queue, "mode": "QueueLength", "value": "10"},
                "authenticationRef": {"name": auth},
            }],
        },
    });
    if let (Some(spec), Some(extra)) = (doc["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    doc
}

/// Waits until the Deployment's `spec.replicas` is `want`.
pub async fn wait_replicas(client: &Client, ns: &str, name: &str, want: i32) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    wait_for_object(&api, name, TIMEOUT, |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.as_ref())
            .and_then(|s| s.replicas)
            .is_some_and(|r| r == want)
    })
    .await
    .unwrap_or_else(|e| panic!("Deployment {ns}/{name} reaches {want} replicas: {e}"));
}

/// The Deployment's `spec.replicas` now.
pub async fn replicas(client: &Client, ns: &str, name: &str) -> i32 {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .expect("get deployment")
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(0)
}

/// Waits until the ScaledObject's condition `type_` satisfies `check`; returns it.
pub async fn wait_condition(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    check: impl Fn(&tandem_api::condition::Condition) -> bool,
) -> tandem_api::condition::Condition {
    let api: Api<ScaledObject> = Api::namespaced(client.clone(), ns);
    let so = wait_for_object(&api, name, TIMEOUT, |so: Option<&ScaledObject>| {
        so.and_then(|s| s.status.as_ref())
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
            .is_some_and(&check)
    })
    .await
    .unwrap_or_else(|e| panic!("ScaledObject {ns}/{name} condition {type_}: {e}"));
    so.and_then(|s| s.status)
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == type_))
        .expect("condition")
}

/// Waits for an Event about `object` with `reason`; returns its message.
pub async fn wait_event(client: &Client, ns: &str, object: &str, reason: &str) -> String {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("Event {reason} on {ns}/{object}"), TIMEOUT, || {
        let api = api.clone();
        async move {
            let events = api.list(&ListParams::default()).await.ok()?;
            events.items.into_iter().find_map(|e| {
                (e.reason.as_deref() == Some(reason)
                    && e.involved_object.name.as_deref() == Some(object))
                .then(|| e.message.unwrap_or_default())
            })
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}
