//! Seed 000: a tenant scaled by Prometheus metrics goes to zero when the platform goes quiet
//! and comes back on the next request.
//!
//! The article's keda-tenants chart scales the KubeRocketCI tenants on "the number of HTTP
//! requests to the portal in the last N minutes" (nginx ingress metrics in Prometheus), with
//! `timeInterval: '7200'` as the idle time before zero. Here a real Prometheus scrapes an
//! in-test exporter of `nginx_ingress_controller_requests` (each "request" bumps the counter),
//! the ScaledObject asks for `increase(...[20s])` (20 s standing in for 7200 s), and the real
//! HPA runs behind. Asserted: the tenant stays up while requests are inside the interval,
//! reaches 0 once the interval has passed plus the cooldown, and one request brings it back
//! to 1.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tandem_testkit::services::{HttpFixture, Prometheus};

/// The idle time of the test (the seed's `timeInterval`, shortened).
const INTERVAL_S: u64 = 20;

fn requests(n: u64) -> String {
    format!(
        "# TYPE nginx_ingress_controller_requests counter\n\
         nginx_ingress_controller_requests{{namespace=\"krci\",ingress=\"portal\",status=\"200\"}} {n}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_tenant_scales_to_zero_and_the_next_request_wakes_it() {
    let h = start().await;
    let ns = h.cp.namespace("krci").await.expect("namespace");
    let exporter = HttpFixture::start().await.expect("exporter");
    let mut served = 0;
    exporter.set("/metrics", "text/plain; version=0.0.4", &requests(served));
    let mut prom = Prometheus::start(&[exporter.addr()])
        .await
        .expect("prometheus");
    prom.wait_for_sample("nginx_ingress_controller_requests", Duration::from_secs(30))
        .await
        .expect("first scrape");

    deployment(&h.client, &ns, "portal", 1).await;
    scaled_object(
        &h.client,
        &ns,
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "portal"},
            "spec": {
                "scaleTargetRef": {"name": "portal"},
                "minReplicaCount": 0,
                "maxReplicaCount": 1,
                "pollingInterval": 2,
                "cooldownPeriod": 5,
                "triggers": [{
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": prom.url(),
                        "query": format!(
                            "sum(increase(nginx_ingress_controller_requests{{namespace=\"krci\"}}[{INTERVAL_S}s]))"
                        ),
                        "threshold": "1",
                    },
                }],
            },
        }),
    )
    .await;
    wait_condition(&h.client, &ns, "portal", "Ready", |c| c.is_true()).await;

    // Users at work: a request a second for a while keeps the tenant up.
    for _ in 0..8 {
        served += 1;
        exporter.set("/metrics", "text/plain; version=0.0.4", &requests(served));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    wait_condition(&h.client, &ns, "portal", "Active", |c| c.is_true()).await;
    wait_replicas(&h.client, &ns, "portal", 1).await;

    // Quiet: no request after this instant. The tenant must outlive the interval's requests,
    // then go to zero.
    let quiet = Instant::now();
    wait_replicas(&h.client, &ns, "portal", 0).await;
    let idle = quiet.elapsed();
    assert!(
        idle >= Duration::from_secs(INTERVAL_S / 2),
        "scaled to zero {idle:?} after the last request: the requests still inside the \
         {INTERVAL_S} s interval should have kept it up"
    );
    eprintln!("quiet -> 0 replicas after {:.1}s", idle.as_secs_f64());
    let event = wait_event(&h.client, &ns, "portal", "KEDAScaleTargetDeactivated").await;
    assert!(!event.is_empty());

    // The next request wakes it.
    served += 1;
    exporter.set("/metrics", "text/plain; version=0.0.4", &requests(served));
    let t0 = Instant::now();
    wait_replicas(&h.client, &ns, "portal", 1).await;
    eprintln!(
        "request -> 1 replica after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    wait_event(&h.client, &ns, "portal", "KEDAScaleTargetActivated").await;
}
