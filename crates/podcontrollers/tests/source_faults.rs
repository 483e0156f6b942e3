//! Event sources that break: one answers 503, one never answers, one answers garbage. Each
//! ScaledObject on a broken source falls back to its `fallback.replicas` (condition
//! `Fallback=True`), is polled at its `pollingInterval` and no faster (requests counted at the
//! source: no retry storm), and a healthy ScaledObject next to them keeps scaling. Healing a
//! source ends its fallback.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tandem_testkit::services::{Fault, HttpFixture};

const POLLING_SECONDS: u64 = 2;

fn metrics_api_so(name: &str, url: &str, fallback: bool) -> serde_json::Value {
    let mut doc = json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"name": name},
            "pollingInterval": POLLING_SECONDS,
            "minReplicaCount": 1,
            "maxReplicaCount": 10,
            "triggers": [{
                "type": "metrics-api",
                "metadata": {"url": url, "valueLocation": "value", "targetValue": "10"},
            }],
        },
    });
    if fallback {
        doc["spec"]["fallback"] = json!({"failureThreshold": 3, "replicas": 5});
    }
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_sources_fall_back_without_retry_storms_and_spare_the_healthy_one() {
    let h = start().await;
    let ns = h.cp.namespace("source-faults").await.expect("namespace");
    let source = HttpFixture::start().await.expect("http fixture");
    let broken = [
        ("down", Fault::Status("503 Service Unavailable")),
        ("hang", Fault::Hang),
        ("garbage", Fault::Garbage),
    ];
    let names = ["healthy", "down", "hang", "garbage"];
    for name in names {
        source.set(&format!("/{name}"), "application/json", r#"{"value": 30}"#);
        deployment(&h.client, &ns, name, 1).await;
        let so = metrics_api_so(name, &source.url(&format!("/{name}")), name != "healthy");
        scaled_object(&h.client, &ns, so).await;
    }
    // Every source answers 30 against a target of 10.
    for name in names {
        wait_replicas(&h.client, &ns, name, 3).await;
    }

    for (name, fault) in broken {
        source.fail(&format!("/{name}"), fault);
    }
    for (name, _) in broken {
        wait_replicas(&h.client, &ns, name, 5).await;
        wait_condition(&h.client, &ns, name, "Fallback", |c| c.is_true()).await;
    }
    wait_event(&h.client, &ns, "down", "ScaledObjectFallbackActivated").await;

    // The request rate while broken: one per polling interval, however the source fails (a
    // hanging one holds a request until the client's timeout, which only slows polling down).
    let window = Duration::from_secs(20);
    let before: Vec<u64> = names
        .iter()
        .map(|n| source.requests_to(&format!("/{n}")))
        .collect();
    tokio::time::sleep(window).await;
    let most = window.as_secs() / POLLING_SECONDS + 2;
    let mut figures = Vec::new();
    for (name, before) in names.iter().zip(before) {
        let made = source.requests_to(&format!("/{name}")) - before;
        figures.push(format!("{name} {made}"));
        assert!(
            made <= most,
            "{name}: {made} requests in {window:?} at a {POLLING_SECONDS} s polling interval \
             (at most {most}): a retry storm"
        );
        assert!(
            made >= 2,
            "{name}: only {made} requests in {window:?}: polling stopped"
        );
    }

    // The healthy one still follows its source.
    source.set("/healthy", "application/json", r#"{"value": 70}"#);
    wait_replicas(&h.client, &ns, "healthy", 7).await;
    wait_condition(&h.client, &ns, "healthy", "Ready", |c| c.is_true()).await;
    wait_condition(&h.client, &ns, "healthy", "Fallback", |c| !c.is_true()).await;

    // Healing a source ends its fallback; the others stay in it.
    source.heal("/down");
    wait_condition(&h.client, &ns, "down", "Fallback", |c| !c.is_true()).await;
    wait_condition(&h.client, &ns, "down", "Ready", |c| c.is_true()).await;
    for name in ["hang", "garbage"] {
        wait_condition(&h.client, &ns, name, "Fallback", |c| c.is_true()).await;
    }
    drop(h);
}
