//! Secrets from TriggerAuthentications never leave `tandem run` (issue #14, "Security"): not in
//! its log, not in Events, not in ScaledObject or HPA objects, not on `/metrics`.
//!
//! Two canary values (a wrong credential and a right one, sharing a stem no random hex can
//! match) are put in one Secret and handed, through TriggerAuthentications (`secretTargetRef`),
//! to the RabbitMQ, Redis, PostgreSQL and metrics-api scalers, on the paths where a leak is
//! most likely: errors. Against real servers: RabbitMQ refusing a password carried in the
//! management URL and one sent over AMQP, a `host` that is not a URL (a parameter error about
//! a secret value), Redis refusing a password, PostgreSQL refusing a `password` parameter and
//! a `connection` string, a metrics API refusing a bearer token and an API key sent in the
//! query string, and a metrics API that echoes the token back in its answer (the error must
//! show it masked). Next to them the same servers with the right canary succeed, so the
//! success paths are scanned too. `tandem run` logs at debug level (client libraries
//! included), the external metrics API is registered so the real HPA controller reads it, and
//! every object polls each second.
//!
//! Once every failing ScaledObject has reported its failure (Ready=False naming it, a Warning
//! Event, several counted errors) and the working ones are Ready, the whole log, every Event
//! of the namespace (both Event APIs, the HPA controller's Events included), the
//! ScaledObjects, the HPAs and `/metrics` (plus the probes) are searched for the canaries'
//! stem and their base64 forms (as in a Basic authorization header). Controls make sure the
//! test fails for the right reason: the log holds debug lines, each failure was reported with
//! the expected wording, and the Secret itself still holds the canaries.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{Replica, get};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tandem_api::keda::v1alpha1::{ScaledObject, TriggerAuthentication};
use tandem_testkit::services::{HttpFixture, Postgres, RabbitMq, Redis};
use tandem_testkit::{ControlPlane, wait_for};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// In every canary; `q`, `x` and `z` are not hex, so no uid or hash can contain it by chance.
const STEM: &str = "qzx7canary";
/// The wrong credential: what every failing trigger sends.
const WRONG: &str = "qzx7canary-wrong-pw";
/// The right credential: the servers' password and token, sent by the working triggers.
const RIGHT: &str = "qzx7canary-right-pw";
const USER: &str = "app";
const VHOST: &str = "vh";
const QUEUE: &str = "jobs";
const TIMEOUT: Duration = Duration::from_secs(60);

/// One ScaledObject of the test: its trigger and, for a failing one, words its failure
/// report must contain (`None`: it must work).
struct Case {
    name: &'static str,
    trigger: Value,
    failure: Option<&'static str>,
}

/// `PUT /api/queues/<vhost>/<queue>` on the management API: the working RabbitMQ trigger
/// needs a queue, and this test binary has no AMQP client.
async fn declare_queue(rmq: &RabbitMq) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", rmq.http_port()))
        .await
        .expect("connect to the management API");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{RIGHT}"));
    let body = r#"{"durable":true}"#;
    s.write_all(
        format!(
            "PUT /api/queues/{VHOST}/{QUEUE} HTTP/1.1\r\nHost: localhost\r\n\
             Authorization: Basic {basic}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("send PUT");
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.expect("read answer");
    let code = answer.split_whitespace().nth(1).unwrap_or_default();
    assert!(code == "201" || code == "204", "declare queue: {answer}");
}

/// Every object of `resource` in `ns` as JSON, whole (no field dropped by a typed model).
async fn dump(client: &Client, ns: &str, resource: &ApiResource) -> (usize, String) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
    let list = api
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list {}: {e}", resource.plural));
    let text = serde_json::to_string_pretty(&list.items).expect("serialize");
    (list.items.len(), text)
}

/// `Ready` of a ScaledObject: (status, message).
async fn ready(api: &Api<DynamicObject>, name: &str) -> Option<(String, String)> {
    let so = api.get(name).await.ok()?;
    let c = so.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    Some((
        c["status"].as_str()?.to_owned(),
        c["message"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// The value of a `/metrics` series line starting with `prefix`.
fn series(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Where in `text` any needle occurs: the line, for the failure message.
fn leaks<'a>(text: &'a str, needles: &[String]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| needles.iter().any(|n| l.contains(n.as_str())))
        .take(20)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_authentication_secrets_never_leave_the_process() {
    let started = std::time::Instant::now();
    let (cp, rmq, redis, pg, refusing, serving) = tokio::join!(
        ControlPlane::shared(),
        RabbitMq::start(),
        Redis::start(Some(RIGHT)),
        Postgres::start(RIGHT),
        HttpFixture::start(),
        HttpFixture::start(),
    );
    let cp = cp.expect("control plane");
    let rmq = rmq.expect("rabbitmq (install with hack/services.sh)");
    let redis = redis.expect("redis (install with hack/services.sh)");
    let pg = pg.expect("postgresql (install with hack/services.sh)");
    let (refusing, serving) = (refusing.expect("fixture"), serving.expect("fixture"));
    rmq.add_user_and_vhost(USER, RIGHT, VHOST)
        .await
        .expect("rabbitmq user");
    declare_queue(&rmq).await;
    refusing.require_bearer("a-token-nobody-sends");
    serving.require_bearer(RIGHT);
    serving.set("/ok", "application/json", r#"{"value": 3}"#);
    // A server that echoes the credential back where a number should be.
    serving.set(
        "/echo",
        "application/json",
        &format!(r#"{{"value": "{RIGHT}"}}"#),
    );

    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("secrets").await.expect("namespace");

    // The external metrics API behind the aggregation layer, so the HPA controller reads it.
    let certs = common::metrics_server_certs(cp, "secrets-certs");
    let server_port = common::free_port().to_string();
    let replica = Replica::start(
        "secrets",
        cp.kubeconfig_path(),
        &ns,
        cp.dir(),
        &[
            "--disable-leader-election",
            "--disable-node-layer",
            "--log-level",
            "debug",
            "--metrics-server-cert-dir",
            certs.to_str().expect("utf-8"),
            "--metrics-server-port",
            &server_port,
        ],
    );
    tandem_testkit::register_external_metrics(
        &client,
        cp.pki(),
        server_port.parse().expect("port"),
        TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("APIService: {e}\n{}", replica.log()));

    // One Secret holds every credential; each TriggerAuthentication maps some of its keys.
    let rmq_http = |pw: &str| format!("http://{USER}:{pw}@127.0.0.1:{}/{VHOST}", rmq.http_port());
    let pg_url = |pw: &str| {
        format!(
            "postgresql://postgres:{pw}@127.0.0.1:{}/postgres",
            pg.port()
        )
    };
    let data = json!({
        "user": USER,
        "wrong": WRONG,
        "right": RIGHT,
        "rmq-host-wrong": rmq_http(WRONG),
        "rmq-host-right": rmq_http(RIGHT),
        "rmq-host-invalid": format!("{WRONG} is not a URL"),
        "pg-connection-wrong": format!("{}?sslmode=disable", pg_url(WRONG)),
        "pg-connection-right": format!(
            "host=127.0.0.1 port={} user=postgres password={RIGHT} dbname=postgres sslmode=disable",
            pg.port()
        ),
    });
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": data,
    }))
    .expect("secret");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    let auths: Api<TriggerAuthentication> = Api::namespaced(client.clone(), &ns);
    for (name, refs) in [
        ("host-wrong", vec![("host", "rmq-host-wrong")]),
        ("host-right", vec![("host", "rmq-host-right")]),
        ("host-invalid", vec![("host", "rmq-host-invalid")]),
        (
            "user-wrong",
            vec![("username", "user"), ("password", "wrong")],
        ),
        ("password-wrong", vec![("password", "wrong")]),
        ("password-right", vec![("password", "right")]),
        (
            "connection-wrong",
            vec![("connection", "pg-connection-wrong")],
        ),
        (
            "connection-right",
            vec![("connection", "pg-connection-right")],
        ),
        ("bearer-wrong", vec![("bearerToken", "wrong")]),
        ("bearer-right", vec![("bearerToken", "right")]),
        ("apikey-wrong", vec![("apiKey", "wrong")]),
    ] {
        let refs: Vec<Value> = refs
            .iter()
            .map(|(parameter, key)| json!({"parameter": parameter, "name": "creds", "key": key}))
            .collect();
        let ta: TriggerAuthentication = serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": name},
            "spec": {"secretTargetRef": refs},
        }))
        .expect("trigger authentication");
        auths
            .create(&PostParams::default(), &ta)
            .await
            .expect("create trigger authentication");
    }

    let rabbit = |auth: &str, host: Option<String>| {
        let mut metadata = json!({"queueName": QUEUE, "mode": "QueueLength", "value": "5"});
        if let Some(h) = host {
            metadata["host"] = json!(h);
        }
        json!({"type": "rabbitmq", "metadata": metadata, "authenticationRef": {"name": auth}})
    };
    let redis_trigger = |auth: &str| {
        json!({"type": "redis", "authenticationRef": {"name": auth},
            "metadata": {"address": redis.address(), "listName": "work", "listLength": "5"}})
    };
    let postgres = |auth: &str, fields: bool| {
        let mut metadata = json!({"query": "SELECT 3", "targetQueryValue": "1"});
        if fields {
            for (k, v) in [
                ("host", "127.0.0.1".to_owned()),
                ("port", pg.port().to_string()),
                ("userName", "postgres".to_owned()),
                ("dbName", "postgres".to_owned()),
                ("sslmode", "disable".to_owned()),
            ] {
                metadata[k] = json!(v);
            }
        }
        json!({"type": "postgresql", "metadata": metadata, "authenticationRef": {"name": auth}})
    };
    let api = |fixture: &HttpFixture, path: &str, auth: &str, modes: Value| {
        let mut metadata = json!({"url": fixture.url(path), "valueLocation": "value",
            "targetValue": "1"});
        if let (Some(m), Some(extra)) = (metadata.as_object_mut(), modes.as_object()) {
            m.extend(extra.clone());
        }
        json!({"type": "metrics-api", "metadata": metadata, "authenticationRef": {"name": auth}})
    };
    let amqp = format!("amqp://127.0.0.1:{}/{VHOST}", rmq.amqp_port());
    let refused = Some("refused the credentials");
    let cases = [
        Case {
            name: "rabbitmq-http-wrong",
            trigger: rabbit("host-wrong", None),
            failure: refused,
        },
        Case {
            name: "rabbitmq-amqp-wrong",
            trigger: rabbit("user-wrong", Some(amqp)),
            failure: refused,
        },
        Case {
            name: "rabbitmq-host-invalid",
            trigger: rabbit("host-invalid", None),
            failure: Some("invalid parameter host"),
        },
        Case {
            name: "rabbitmq-right",
            trigger: rabbit("host-right", None),
            failure: None,
        },
        Case {
            name: "redis-wrong",
            trigger: redis_trigger("password-wrong"),
            failure: refused,
        },
        Case {
            name: "redis-right",
            trigger: redis_trigger("password-right"),
            failure: None,
        },
        Case {
            name: "postgresql-password-wrong",
            trigger: postgres("password-wrong", true),
            failure: refused,
        },
        Case {
            name: "postgresql-connection-wrong",
            trigger: postgres("connection-wrong", false),
            failure: refused,
        },
        Case {
            name: "postgresql-right",
            trigger: postgres("connection-right", false),
            failure: None,
        },
        Case {
            name: "metrics-api-bearer-wrong",
            trigger: api(
                &refusing,
                "/ok",
                "bearer-wrong",
                json!({"authModes": "bearer"}),
            ),
            failure: refused,
        },
        Case {
            name: "metrics-api-apikey-wrong",
            trigger: api(
                &refusing,
                "/ok",
                "apikey-wrong",
                json!({"authModes": "apiKey", "method": "query"}),
            ),
            failure: refused,
        },
        Case {
            name: "metrics-api-echo",
            trigger: api(
                &serving,
                "/echo",
                "bearer-right",
                json!({"authModes": "bearer"}),
            ),
            // The echoed token reaches the error text and is masked there.
            failure: Some(r#""[redacted]" at "value" is not a number"#),
        },
        Case {
            name: "metrics-api-right",
            trigger: api(
                &serving,
                "/ok",
                "bearer-right",
                json!({"authModes": "bearer"}),
            ),
            failure: None,
        },
    ];

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let objects: Api<ScaledObject> = Api::namespaced(client.clone(), &ns);
    for c in &cases {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": c.name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": c.name}},
                "template": {"metadata": {"labels": {"app": c.name}}, "spec": {
                    "containers": [{"name": "app", "image": "registry.invalid/worker:1"}]}}},
        }))
        .expect("deployment");
        deployments
            .create(&PostParams::default(), &d)
            .await
            .expect("create deployment");
        let so: ScaledObject = serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": c.name, "namespace": ns},
            "spec": {"scaleTargetRef": {"name": c.name}, "pollingInterval": 1,
                "minReplicaCount": 1, "maxReplicaCount": 5, "triggers": [c.trigger]},
        }))
        .expect("scaled object");
        objects
            .create(&PostParams::default(), &so)
            .await
            .unwrap_or_else(|e| panic!("create ScaledObject {}: {e}", c.name));
    }

    // Controls: every failure is reported where users look, as what it is; the working ones
    // are Ready.
    let so_resource = ApiResource::erase::<ScaledObject>(&());
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &so_resource);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    for c in &cases {
        let want = if c.failure.is_some() { "False" } else { "True" };
        let waited = wait_for(&format!("{} Ready={want}", c.name), TIMEOUT, || async {
            ready(&dynamic, c.name).await.filter(|(s, _)| s == want)
        })
        .await;
        let Ok((_, message)) = waited else {
            let now = ready(&dynamic, c.name).await;
            panic!(
                "{}: Ready is {now:?}, not {want}\n{}",
                c.name,
                replica.log()
            );
        };
        let Some(words) = c.failure else { continue };
        assert!(
            message.contains(words),
            "{}: Ready=False should say {words:?}: {message}",
            c.name
        );
        let event = wait_for(
            &format!("a Warning Event on {}", c.name),
            TIMEOUT,
            || async {
                events
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|e| {
                        e.type_.as_deref() == Some("Warning")
                            && e.involved_object.name.as_deref() == Some(c.name)
                    })
                    .and_then(|e| e.message)
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(event.contains(words), "{}: Event {event:?}", c.name);
    }
    // Several failed polls of each failing measurement (the invalid host never gets that far).
    let metrics = wait_for(
        "3 errors counted per failing ScaledObject",
        TIMEOUT,
        || async {
            let (_, text) = get(replica.metrics, "/metrics").await?;
            let failing = cases
                .iter()
                .filter(|c| c.failure.is_some() && c.name != "rabbitmq-host-invalid");
            failing
                .map(|c| format!("namespace=\"{ns}\",scaledObject=\"{}\"", c.name))
                .all(|labels| {
                    let prefix = format!("keda_scaled_object_errors_total{{{labels}}} ");
                    series(&text, &prefix).is_some_and(|n| n >= 3.0)
                })
                .then_some(text)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", replica.log()));
    for c in cases.iter().filter(|c| c.failure.is_none()) {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("keda_scaler_metrics_value{")
                    && l.contains(&format!("scaledObject=\"{}\"", c.name))),
            "{}: no value on /metrics:\n{metrics}",
            c.name
        );
    }
    assert!(serving.requests() > 0 && refusing.requests() > 0);

    // The scan. The stem catches every canary, whole or in part; base64 catches them inside
    // a Basic authorization header or an encoded Secret.
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    let mut needles = vec![STEM.to_owned()];
    for pw in [WRONG, RIGHT] {
        needles.extend([b64(pw.to_owned()), b64(format!("{USER}:{pw}"))]);
    }
    let log = replica.log();
    assert!(
        log.lines().count() > 100 && log.contains("\"level\":\"DEBUG\""),
        "the log should hold debug lines:\n{log}"
    );
    let (_, metrics) = get(replica.metrics, "/metrics").await.expect("metrics");
    let (_, healthz) = get(replica.probes, "/healthz").await.expect("healthz");
    let (_, readyz) = get(replica.probes, "/readyz").await.expect("readyz");
    let (n_events, events_text) = dump(&client, &ns, &ApiResource::erase::<Event>(&())).await;
    // The same Events as events.k8s.io/v1 shows them (`note`, `regarding`, `series`).
    let new_events = ApiResource::erase::<k8s_openapi::api::events::v1::Event>(&());
    let (_, new_events_text) = dump(&client, &ns, &new_events).await;
    let (n_objects, objects_text) = dump(&client, &ns, &so_resource).await;
    let (n_hpas, hpas_text) = dump(
        &client,
        &ns,
        &ApiResource::erase::<HorizontalPodAutoscaler>(&()),
    )
    .await;
    assert!(n_events >= cases.len(), "{events_text}");
    assert_eq!(n_objects, cases.len());
    assert!(n_hpas > 0, "no HPA to scan");
    let mut found = Vec::new();
    for (what, text) in [
        ("the log", &log),
        ("Events", &events_text),
        ("Events (events.k8s.io)", &new_events_text),
        ("ScaledObjects", &objects_text),
        ("HPAs", &hpas_text),
        ("/metrics", &metrics),
        ("/healthz", &healthz),
        ("/readyz", &readyz),
    ] {
        for line in leaks(text, &needles) {
            found.push(format!("{what}: {line}"));
        }
    }
    assert!(
        found.is_empty(),
        "a TriggerAuthentication secret leaked:\n{}",
        found.join("\n")
    );

    // Sanity: the canaries are where they belong, so their absence above means something.
    let stored = secrets.get("creds").await.expect("get secret");
    let values: Vec<String> = stored
        .data
        .unwrap_or_default()
        .values()
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .collect();
    assert!(values.iter().any(|v| v == WRONG) && values.iter().any(|v| v == RIGHT));
    assert!(values.iter().filter(|v| v.contains(STEM)).count() >= 7);
    eprintln!(
        "secrets: {} ScaledObjects, {n_events} Events, {n_hpas} HPAs, {} log lines scanned \
         clean in {:.0} s",
        cases.len(),
        log.lines().count(),
        started.elapsed().as_secs_f64()
    );
}
