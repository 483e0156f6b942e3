//! The pod layer at 10× KEDA's perf-test size on the real API server: figures printed, never
//! asserted.
//!
//! ```text
//! cargo bench -p tandem --bench pod_layer_at_size            # 10,000 ScaledObjects
//! cargo bench -p tandem --bench pod_layer_at_size -- 2000    # another count
//! ```
//!
//! A fresh control plane (HPA sync every 15 s as upstream; kube-controller-manager at 200 QPS)
//! holds N Deployments at 0 replicas, each with a ScaledObject polled every 30 s, triggers
//! mixed a third each: `cron` (in-process), `metrics-api` (a local HTTP server) and `redis`
//! list length (a real Redis on 127.0.0.1), all idle. Then `tandem run --disable-node-layer`
//! (release build, default client limit 200 QPS / burst 300) starts and the bench prints:
//! the time until it has created all N HPAs; then over three polling intervals of steady
//! state: the scale-loop lag (`keda_internal_scale_loop_latency_seconds` of every object,
//! sampled every 5 s: p50/p95/p99/max), the status writes per second (PATCH requests from
//! its own `rest_client_requests_total`; nothing changes, so it should be 0), all requests per
//! second, whether the client limiter ever made a request wait, CPU in cores, RSS, and the
//! HPA count. Before the window it waits until Tandem's status writes have stopped for a
//! polling interval (start-up ends with one write per object when its HPA first syncs), and a
//! watch of the ScaledObjects says which status fields changed in the settling and in the
//! window: the witness for "no status write when nothing changed".

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use tandem_testkit::services::{HttpFixture, Redis};
use tandem_testkit::{ControlPlane, Options};

fn trigger(i: usize, fixture: &HttpFixture, redis: &Redis) -> serde_json::Value {
    match i % 3 {
        0 => json!({"type": "cron", "metadata": {"timezone": "UTC",
            "start": "0 3 * * *", "end": "5 3 * * *", "desiredReplicas": "1"}}),
        1 => json!({"type": "metrics-api", "metadata": {"url": fixture.url("/value"),
            "valueLocation": "value", "targetValue": "10", "activationTargetValue": "5"}}),
        _ => json!({"type": "redis", "metadata": {"address": redis.address(),
            "listName": format!("queue-{i}"), "listLength": "5"}}),
    }
}

async fn create_all(client: &Client, ns: &str, n: usize, fixture: &HttpFixture, redis: &Redis) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let objects: Api<tandem_api::keda::ScaledObject> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(0..n)
        .map(|i| {
            let (deployments, objects) = (deployments.clone(), objects.clone());
            let trigger = trigger(i, fixture, redis);
            async move {
                let d: Deployment = serde_json::from_value(json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": format!("w{i}")},
                    "spec": {"replicas": 0, "selector": {"matchLabels": {"app": format!("w{i}")}},
                        "template": {"metadata": {"labels": {"app": format!("w{i}")}}, "spec": {
                            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}},
                }))
                .expect("deployment");
                deployments
                    .create(&PostParams::default(), &d)
                    .await
                    .expect("create deployment");
                let so = serde_json::from_value(json!({
                    "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                    "metadata": {"name": format!("w{i}")},
                    "spec": {"scaleTargetRef": {"name": format!("w{i}")}, "minReplicaCount": 0,
                        "pollingInterval": 30, "triggers": [trigger]},
                }))
                .expect("scaledobject");
                objects
                    .create(&PostParams::default(), &so)
                    .await
                    .expect("create scaledobject");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

/// What changed in ScaledObject statuses, by phase and field, seen by the bench's own watch.
#[derive(Default)]
struct StatusChanges {
    phase: &'static str,
    last: HashMap<String, serde_json::Value>,
    counts: BTreeMap<(&'static str, String), usize>,
}

/// The fields that differ between two statuses: top-level keys by name, conditions by type and
/// field (`conditions[HPAActive].message`), so a report names what a write changed.
fn changed_fields(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (old, new) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        let (a, b) = (&old.get(key), &new.get(key));
        if a == b {
            continue;
        }
        if key != "conditions" {
            out.push(key.clone());
            continue;
        }
        let by_type = |v: &Option<&serde_json::Value>| -> BTreeMap<String, serde_json::Value> {
            v.and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .map(|c| (c["type"].as_str().unwrap_or("-").to_owned(), c.clone()))
                .collect()
        };
        let (a, b) = (by_type(a), by_type(b));
        let mut types: Vec<&String> = a.keys().chain(b.keys()).collect();
        types.sort();
        types.dedup();
        for t in types {
            match (a.get(t), b.get(t)) {
                (Some(x), Some(y)) if x != y => {
                    for f in changed_fields(x, y) {
                        out.push(format!("conditions[{t}].{f}"));
                    }
                }
                (Some(_), Some(_)) => {}
                _ => out.push(format!("conditions[{t}]")),
            }
        }
    }
    out
}

/// Watches the ScaledObjects of `ns` and counts changed status fields under the current phase.
fn watch_status_changes(
    client: &Client,
    ns: &str,
    changes: Arc<Mutex<StatusChanges>>,
) -> tokio::task::JoinHandle<()> {
    let api: Api<tandem_api::keda::ScaledObject> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let (Ok(watcher::Event::Apply(so)) | Ok(watcher::Event::InitApply(so))) = ev else {
                continue;
            };
            let name = so.metadata.name.clone().unwrap_or_default();
            let status = serde_json::to_value(&so.status).unwrap_or_default();
            let mut c = changes.lock().expect("status changes");
            let phase = c.phase;
            if let Some(old) = c.last.insert(name, status.clone()) {
                for field in changed_fields(&old, &status) {
                    *c.counts.entry((phase, field)).or_default() += 1;
                }
            }
        }
    })
}

async fn bench(n: usize) {
    let cp = ControlPlane::start_with(Options {
        hpa_sync_period: Duration::from_secs(15),
        component_client_limit: Some((200, 400)),
        // Which requests Tandem makes in the steady state, by verb and resource.
        audit_log: true,
        ..Options::default()
    })
    .await
    .expect("control plane");
    let client = cp.client().expect("client");
    let ns = cp.namespace("scaled-objects").await.expect("namespace");
    let fixture = HttpFixture::start().await.expect("http fixture");
    fixture.set("/value", "application/json", r#"{"value": 0}"#);
    let redis = Redis::start(None).await.expect("redis");

    let created = Instant::now();
    create_all(&client, &ns, n, &fixture, &redis).await;
    eprintln!(
        "pod_layer_at_size: {n} Deployments and ScaledObjects created in {:.0} s",
        created.elapsed().as_secs_f64()
    );

    let changes = Arc::new(Mutex::new(StatusChanges {
        phase: "start-up",
        ..StatusChanges::default()
    }));
    let status_watch = watch_status_changes(&client, &ns, changes.clone());
    let tandem = common::Replica::start(
        "pod-layer-at-size",
        cp.kubeconfig_path(),
        &ns,
        cp.dir(),
        &["--disable-leader-election", "--disable-node-layer"],
    );
    let pid = tandem.child.id();
    let started = Instant::now();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
    // Paged as a client should at this size; a failed page counts what came before it.
    let count_hpas = || async {
        let mut count = 0;
        let mut params = ListParams::default().limit(1_000);
        while let Ok(page) = hpas.list_metadata(&params).await {
            count += page.items.len();
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        count
    };
    let mut have = 0;
    while started.elapsed() < Duration::from_secs(1_200) {
        have = count_hpas().await;
        if have >= n {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let startup = started.elapsed();
    eprintln!(
        "pod_layer_at_size: {have} HPAs after {:.0} s; waiting for their first syncs",
        startup.as_secs_f64()
    );
    // The HPA controller's first sync of each new HPA sets ScalingActive, which the next poll
    // copies into the ScaledObject's HPAActive condition: a write that belongs to start-up.
    // A fixed 60 s left hundreds of those in the window at 3,000 objects; so wait until every
    // HPA has synced, then one polling interval and a margin.
    let synced_hpas = || async {
        let mut count = 0;
        let mut params = ListParams::default().limit(1_000);
        while let Ok(page) = hpas.list(&params).await {
            count += page
                .items
                .iter()
                .filter(|h| {
                    h.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "ScalingActive"))
                })
                .count();
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        count
    };
    let syncing = Instant::now();
    while syncing.elapsed() < Duration::from_secs(900) && synced_hpas().await < n {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    eprintln!(
        "pod_layer_at_size: every HPA synced {:.0} s later; waiting for the status writes to settle",
        syncing.elapsed().as_secs_f64()
    );
    let patches = |port| async move {
        common::metric_values(port, "rest_client_requests_total{", "method=\"PATCH\"")
            .await
            .iter()
            .sum::<f64>()
    };
    // Start-up ends with the writes that copy each HPA's first sync into its ScaledObject; they
    // queue behind the client limiter, so wait until a whole polling interval (and a margin)
    // passes without a PATCH before the window is read as steady state.
    changes.lock().expect("status changes").phase = "settling";
    let settling = Instant::now();
    let settle_patches0 = patches(tandem.metrics).await;
    loop {
        let before = patches(tandem.metrics).await;
        tokio::time::sleep(Duration::from_secs(35)).await;
        if patches(tandem.metrics).await == before || settling.elapsed() > Duration::from_secs(900)
        {
            break;
        }
    }
    let settle_patches = patches(tandem.metrics).await - settle_patches0;
    let settling_time = settling.elapsed();
    eprintln!(
        "pod_layer_at_size: status writes settled {:.0} s after the last HPA sync \
         ({settle_patches:.0} PATCHes meanwhile)",
        settling_time.as_secs_f64()
    );
    changes.lock().expect("status changes").phase = "window";

    // Steady state: three polling intervals.
    let window = Duration::from_secs(90);
    let all = |port| async move {
        common::metric_values(port, "rest_client_requests_total{", "")
            .await
            .iter()
            .sum::<f64>()
    };
    let audit = cp.audit_log_path().expect("audit log").to_owned();
    let audit0 = std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0);
    let (patch0, all0) = (patches(tandem.metrics).await, all(tandem.metrics).await);
    let cpu0 = common::process_figures(pid).1;
    let t0 = Instant::now();
    let mut lags = Vec::new();
    let mut rss = Vec::new();
    while t0.elapsed() < window {
        lags.extend(
            common::metric_values(
                tandem.metrics,
                "keda_internal_scale_loop_latency_seconds{",
                "type=\"scaledobject\"",
            )
            .await,
        );
        rss.push(common::process_figures(pid).0);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (common::process_figures(pid).1 - cpu0) / wall;
    let patch_rate = (patches(tandem.metrics).await - patch0) / wall;
    let request_rate = (all(tandem.metrics).await - all0) / wall;
    let waited = common::metric_values(
        tandem.metrics,
        "rest_client_rate_limiter_duration_seconds_bucket{",
        "le=\"0.001\"",
    )
    .await;
    let total_waits = common::metric_values(
        tandem.metrics,
        "rest_client_rate_limiter_duration_seconds_count",
        "",
    )
    .await;
    let by_kind = tandem_requests(&audit, audit0);
    lags.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    let hpa_count = count_hpas().await;
    let ms = |v: f64| v * 1000.0;
    println!(
        "\npod layer at size: {n} ScaledObjects (cron / metrics-api / redis), pollingInterval 30 s, \
         tandem run --disable-node-layer on the real API server\n\
         start-up: {have} HPAs created in {:.1} s\n\
         scale-loop lag over {} samples: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         status writes (PATCH): {patch_rate:.2}/s; all API requests: {request_rate:.2}/s; \
         requests that waited for the client limiter (> 1 ms): {:.0} of {:.0} since start\n\
         CPU {cpu:.3} cores; RSS p95 {:.1} MiB (max {:.1}); HPAs {hpa_count}",
        startup.as_secs_f64(),
        lags.len(),
        ms(common::percentile(&lags, 0.50)),
        ms(common::percentile(&lags, 0.95)),
        ms(common::percentile(&lags, 0.99)),
        ms(lags.last().copied().unwrap_or(0.0)),
        total_waits.iter().sum::<f64>() - waited.iter().sum::<f64>(),
        total_waits.iter().sum::<f64>(),
        common::percentile(&rss, 0.95),
        rss.last().copied().unwrap_or(0.0),
    );
    status_watch.abort();
    println!(
        "settling: {:.0} s after every HPA synced, {settle_patches:.0} status PATCHes",
        settling_time.as_secs_f64()
    );
    println!("status fields changed (the bench's watch of the ScaledObjects), by phase:");
    for ((phase, field), count) in &changes.lock().expect("status changes").counts {
        println!("  {phase:>9} {field:<40} {count:>8}");
    }
    println!(
        "Tandem's requests in the window, from the API server's audit log (per second, objects):"
    );
    for ((verb, resource), (count, objects)) in by_kind.iter().rev().take(12) {
        println!(
            "  {verb:>10} {resource:<40} {:>8.2}/s {objects:>6}",
            *count as f64 / wall
        );
    }
}

/// Tandem's requests (user agent `tandem/…`) in the audit log from byte `from` on: by verb,
/// response code and resource, their count and how many distinct objects they touched, most frequent last.
fn tandem_requests(audit: &std::path::Path, from: u64) -> Vec<((String, String), (usize, usize))> {
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::{BufRead as _, Seek as _};
    let Ok(mut file) = std::fs::File::open(audit) else {
        return Vec::new();
    };
    if file.seek(std::io::SeekFrom::Start(from)).is_err() {
        return Vec::new();
    }
    let mut seen: BTreeMap<(String, String), (usize, BTreeSet<String>)> = BTreeMap::new();
    for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if !event["userAgent"]
            .as_str()
            .is_some_and(|a| a.starts_with("tandem/"))
        {
            continue;
        }
        let object = &event["objectRef"];
        let resource = match object["subresource"].as_str() {
            Some(sub) => format!("{}/{sub}", object["resource"].as_str().unwrap_or("-")),
            None => object["resource"].as_str().unwrap_or("-").to_owned(),
        };
        let verb = format!(
            "{} {}",
            event["verb"].as_str().unwrap_or("-"),
            event["responseStatus"]["code"].as_u64().unwrap_or(0)
        );
        let entry = seen.entry((verb, resource)).or_default();
        entry.0 += 1;
        entry
            .1
            .insert(object["name"].as_str().unwrap_or("").to_owned());
    }
    let mut out: Vec<_> = seen
        .into_iter()
        .map(|(k, (count, objects))| (k, (count, objects.len())))
        .collect();
    out.sort_by_key(|(_, (count, _))| *count);
    out
}

fn main() {
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(10_000);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench(n));
}
