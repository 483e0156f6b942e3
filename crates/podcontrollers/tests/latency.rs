//! Measurement, not an assertion: how long from "messages published" to "replicas changed",
//! over 20 runs, reported as p50/p95 on stderr.
//!
//! Each run starts at 0 replicas with an empty queue (amqp protocol, so the count is exact
//! at once; `pollingInterval: 1`), publishes 30 messages at `value: 10` and records
//! - activation: publish → `spec.replicas ≥ 1` (our poll, KEDA's 0 → 1 on `/scale`);
//! - HPA: publish → `spec.replicas = 3` (the real HPA reading our metrics server);
//!
//! then drains and waits for 0 (`cooldownPeriod: 0`). Publishes are spread over the polling
//! phase, so activation is expected near half an interval plus the poll's own work. Run with
//! `cargo test -p tandem-podcontrollers --test latency -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Time since `t0` at which `check` first holds for the replicas (polled every 100 ms).
async fn until(
    client: &kube::Client,
    ns: &str,
    t0: Instant,
    check: impl Fn(i32) -> bool,
) -> Duration {
    loop {
        if check(replicas(client, ns, "worker").await) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < TIMEOUT, "replicas never changed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    eprintln!(
        "{what}: n={} p50={:.2}s p95={:.2}s min={:.2}s max={:.2}s",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64(),
        percentile(&samples, 0.95).as_secs_f64(),
        samples[0].as_secs_f64(),
        samples[samples.len() - 1].as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that takes minutes; run with --ignored --nocapture"]
async fn published_to_replicas_changed_latency() {
    let h = start().await;
    let ns = h.cp.namespace("latency").await.expect("namespace");
    let rmq = rabbitmq().await;
    publish(&rmq, "work", 0).await;
    let host = format!(
        "amqp://{USER}:{PASSWORD}@127.0.0.1:{}/{VHOST}",
        rmq.amqp_port()
    );
    secret(&h.client, &ns, "rabbit", &[("host", &host)]).await;
    trigger_auth(&h.client, &ns, "rabbit-auth", "rabbit").await;
    deployment(&h.client, &ns, "worker", 0).await;
    let mut so = rabbit_so(
        "latency",
        "worker",
        "rabbit-auth",
        "work",
        json!({"minReplicaCount": 0, "cooldownPeriod": 0, "pollingInterval": 1}),
    );
    so["spec"]["triggers"][0]["metadata"]["protocol"] = json!("amqp");
    scaled_object(&h.client, &ns, so).await;
    wait_condition(&h.client, &ns, "latency", "Ready", |c| c.is_true()).await;

    let (mut activation, mut hpa) = (Vec::new(), Vec::new());
    for run in 0..20 {
        wait_replicas(&h.client, &ns, "worker", 0).await;
        // Publishing right after the poll that scaled to 0 would phase-lock every run to
        // one pollingInterval; a fixed spread over the interval samples every phase.
        tokio::time::sleep(Duration::from_millis((run as u64 * 337) % 1000)).await;
        // The clock starts once the broker has confirmed every message.
        publish(&rmq, "work", 30).await;
        let t0 = Instant::now();
        activation.push(until(&h.client, &ns, t0, |r| r >= 1).await);
        hpa.push(until(&h.client, &ns, t0, |r| r == 3).await);
        eprintln!(
            "run {run}: activation {:.2}s, hpa {:.2}s",
            activation[run].as_secs_f64(),
            hpa[run].as_secs_f64()
        );
        drain(&rmq, "work").await;
    }
    report("published -> replicas >= 1 (activation)", activation);
    report("published -> replicas = 3 (HPA)", hpa);
    drop(h);
}
