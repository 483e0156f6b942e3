//! The node layer held at size with churn on the real control plane: figures printed, never
//! asserted.
//!
//! ```text
//! cargo bench -p tandem --bench node_layer_at_size                  # 5,000 nodes, 10 minutes
//! cargo bench -p tandem --bench node_layer_at_size -- 1000 5        # 1,000 nodes, 5 minutes
//! ```
//!
//! A fresh control plane (kube-controller-manager and kube-scheduler at 200 QPS / burst 400)
//! and `tandem run --disable-pod-layer` (release, kwok provider, default client limit). One
//! NodePool of one 32-vCPU kwok type; 100 Deployments of 1,050m pods, 30 pods per node wanted
//! in all (5,000 nodes → 150,000 pods): 30 fill a node's 31,900m allocatable with no room for a
//! 31st, so a surge needs new nodes (with 1-CPU pods each node kept room for a 31st, and a
//! 100-node trial's churn never needed one). Set-up: every pod Ready. Then, each minute, one
//! Deployment in turn is restarted (1 % of the pods replaced: surge first, so its new pods need
//! new nodes, and the old nodes empty out for consolidation). Measured during the churn:
//! the reconcile lag = a new pod first seen Pending and unbound (by this bench's watch) → its
//! `Nominated` Event from Tandem (p50/p95/max); Tandem's RSS (p95, max), CPU in cores, API
//! requests per second and how many waited for its client limiter; and the CPU of every
//! control-plane process and of the whole machine beside them, to say which saturates first.
//! The lag is also split at the moment kube-scheduler marks a pod unschedulable (before it
//! the pod is the scheduler's, after it Tandem's), with the provisioner's plan count and time.
//! `BATCH_IDLE_DURATION`, `BATCH_MAX_DURATION` and `TANDEM_BATCH_CLOSE_WHEN_SETTLED` in the
//! environment reach `tandem run`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use tandem_testkit::{ControlPlane, Options};

const DEPLOYMENTS: usize = 100;
const PODS_PER_NODE: usize = 30;
const INSTANCE_TYPE: &str = "c-32x-amd64-linux";

/// Pending pods first seen (by uid), first seen marked unschedulable by kube-scheduler, and
/// the lags measured when their Nominated Event came.
#[derive(Default)]
struct Lags {
    pending_since: HashMap<String, Instant>,
    unschedulable_since: HashMap<String, Instant>,
    /// Pending → Nominated: what a user waits for.
    measured: Vec<f64>,
    /// Marked unschedulable → Nominated: Tandem's own part (its watch, the batch window, the
    /// plan, the claim and the Event), without kube-scheduler's attempt before it.
    after_scheduler: Vec<f64>,
    recording: bool,
}

/// True when kube-scheduler has given up on the pod for now (`PodScheduled=False`,
/// `Unschedulable`): the moment a pod becomes Tandem's to provision.
fn unschedulable(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        })
}

/// Watches pods and Events of `ns` and records Pending → Nominated lags while `recording`.
fn watch_lags(
    client: &Client,
    ns: &str,
    lags: Arc<Mutex<Lags>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let pod_lags = lags.clone();
    let pod_task = tokio::spawn(async move {
        let mut stream = watcher::watcher(pods, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let Ok(watcher::Event::Apply(pod)) = ev else {
                continue;
            };
            let unbound = pod.spec.as_ref().is_none_or(|s| s.node_name.is_none());
            if unbound && let Some(uid) = pod.metadata.uid.clone() {
                let mut l = pod_lags.lock().expect("lags");
                if l.recording {
                    if unschedulable(&pod) {
                        l.unschedulable_since
                            .entry(uid.clone())
                            .or_insert_with(Instant::now);
                    }
                    l.pending_since.entry(uid).or_insert_with(Instant::now);
                }
            }
        }
    });
    let event_task = tokio::spawn(async move {
        let config = watcher::Config::default().fields("reason=Nominated");
        let mut stream = watcher::watcher(events, config).boxed();
        while let Some(ev) = stream.next().await {
            let Ok(watcher::Event::Apply(event)) = ev else {
                continue;
            };
            let Some(uid) = event.involved_object.uid else {
                continue;
            };
            let mut l = lags.lock().expect("lags");
            if let Some(seen) = l.pending_since.remove(&uid) {
                let lag = seen.elapsed().as_secs_f64();
                l.measured.push(lag);
            }
            if let Some(seen) = l.unschedulable_since.remove(&uid) {
                let lag = seen.elapsed().as_secs_f64();
                l.after_scheduler.push(lag);
            }
        }
    });
    vec![pod_task, event_task]
}

async fn bench(nodes: usize, minutes: u64) {
    let cp = ControlPlane::start_with(Options {
        component_client_limit: Some((200, 400)),
        ..Options::default()
    })
    .await
    .expect("control plane");
    let client = cp.client().expect("client");
    let ns = cp.namespace("at-size").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::kwok_class(&client, &class).await;
    let pool: tandem_api::karpenter::NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": ns},
        "spec": {
            "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": "30s", "budgets": [{"nodes": "10%"}]},
            "template": {"spec": {
                "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                    "values": [INSTANCE_TYPE]}],
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
    }))
    .expect("nodepool");
    Api::<tandem_api::karpenter::NodePool>::all(client.clone())
        .create(&PostParams::default(), &pool)
        .await
        .expect("create nodepool");
    let mut tandem = common::Replica::start(
        "node-layer-at-size",
        cp.kubeconfig_path(),
        &ns,
        cp.dir(),
        &["--disable-leader-election", "--disable-pod-layer"],
    );
    let pid = tandem.child.id();
    let others = common::cpu_watched(&cp).await;
    let apiserver = others
        .iter()
        .find(|(name, _)| *name == "kube-apiserver")
        .map(|&(_, pid)| pid);

    // Set-up: all pods Ready.
    let pods_total = nodes * PODS_PER_NODE;
    let per = pods_total / DEPLOYMENTS;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let setup = Instant::now();
    let setup_clock = common::CpuClock::start(&others);
    for i in 0..DEPLOYMENTS {
        let labels = json!({"app": format!("d{i}")});
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("d{i}")},
            "spec": {"replicas": per, "selector": {"matchLabels": labels},
                "strategy": {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}},
                "template": {"metadata": {"labels": labels}, "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "1050m", "memory": "1Gi"}}}]}}},
        }))
        .expect("deployment");
        deployments
            .create(&PostParams::default(), &d)
            .await
            .expect("create deployment");
    }
    let ready = || async {
        deployments
            .list(&Default::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter_map(|d| d.status.as_ref()?.ready_replicas)
                    .map(|r| usize::try_from(r).unwrap_or(0))
                    .sum::<usize>()
            })
            .unwrap_or(0)
    };
    let mut last_report = Instant::now();
    loop {
        let n = ready().await;
        if n >= pods_total {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(60) {
            let (rss, _) = common::process_figures(pid);
            eprintln!(
                "node_layer_at_size: {n} of {pods_total} pods Ready after {:.0} s; tandem {rss:.0} MiB",
                setup.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        if setup.elapsed() > Duration::from_secs(3 * 3600) {
            eprintln!("node_layer_at_size: giving up the set-up at {n} pods");
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let setup_time = setup.elapsed();
    let setup_shares = setup_clock.shares(setup_time.as_secs_f64());
    let setup_rss = common::process_figures(pid).0;
    eprintln!(
        "node_layer_at_size: set-up done in {:.0} s, tandem {setup_rss:.0} MiB",
        setup_time.as_secs_f64()
    );

    // Churn.
    let lags = Arc::new(Mutex::new(Lags::default()));
    let watchers = watch_lags(&client, &ns, lags.clone());
    tokio::time::sleep(Duration::from_secs(5)).await; // the watches' initial lists
    lags.lock().expect("lags").recording = true;
    let requests = |with: &'static str| {
        common::metric_sum(tandem.metrics, "rest_client_requests_total{", with)
    };
    let (requests0, cpu0) = (requests("").await, common::process_figures(pid).1);
    let clock = common::CpuClock::start(&others);
    let waits_over_1ms = || async {
        common::metric_sum(
            tandem.metrics,
            "rest_client_rate_limiter_duration_seconds_count",
            "",
        )
        .await
            - common::metric_sum(
                tandem.metrics,
                "rest_client_rate_limiter_duration_seconds_bucket{",
                "le=\"0.001\"",
            )
            .await
    };
    let waits0 = waits_over_1ms().await;
    let plan_figures = || async {
        let metric = "karpenter_scheduler_scheduling_duration_seconds";
        let with = "controller=\"provisioner\"";
        (
            common::metric_sum(tandem.metrics, &format!("{metric}_count{{"), with).await,
            common::metric_sum(tandem.metrics, &format!("{metric}_sum{{"), with).await,
        )
    };
    let plans0 = plan_figures().await;
    let churn = Instant::now();
    let mut rss = Vec::new();
    let mut api_rss = Vec::new();
    let mut restarted = 0usize;
    while churn.elapsed() < Duration::from_secs(minutes * 60) {
        let i = restarted % DEPLOYMENTS;
        deployments
            .patch(
                &format!("d{i}"),
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"template": {"metadata": {"annotations": {
                    "bench/restart": restarted.to_string()}}}}})),
            )
            .await
            .expect("restart a deployment");
        restarted += 1;
        let minute = Instant::now();
        while minute.elapsed() < Duration::from_secs(60) {
            rss.push(common::process_figures(pid).0);
            if let Some(p) = apiserver {
                api_rss.push(common::process_figures(p).0);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let wall = churn.elapsed().as_secs_f64();
    let cpu = (common::process_figures(pid).1 - cpu0) / wall;
    let shares = clock.shares(wall);
    let request_rate = (requests("").await - requests0) / wall;
    let waits = waits_over_1ms().await - waits0;
    let (plans, plan_seconds) = {
        let now = plan_figures().await;
        (now.0 - plans0.0, now.1 - plans0.1)
    };
    let (mut measured, mut after_scheduler, unmatched) = {
        let l = lags.lock().expect("lags");
        (
            l.measured.clone(),
            l.after_scheduler.clone(),
            l.pending_since.len(),
        )
    };
    after_scheduler.sort_by(f64::total_cmp);
    for w in watchers {
        w.abort();
    }
    measured.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    api_rss.sort_by(f64::total_cmp);
    let memory = cp.memory().await;
    // `tandem run` reads these from its environment, which it inherits from the bench.
    let batch = [
        "BATCH_IDLE_DURATION",
        "BATCH_MAX_DURATION",
        "TANDEM_BATCH_CLOSE_WHEN_SETTLED",
    ]
    .map(|k| {
        format!(
            "{k}={}",
            std::env::var(k).unwrap_or_else(|_| "default".into())
        )
    })
    .join(" ");
    println!(
        "\nnode layer at size: {nodes} nodes wanted ({INSTANCE_TYPE}), {pods_total} pods in \
         {DEPLOYMENTS} Deployments, tandem run --disable-pod-layer on the real control plane \
         (batch window: {batch})\n\
         set-up: all pods Ready in {:.0} s; tandem RSS then {setup_rss:.0} MiB; CPU (cores): \
         {setup_shares}\n\
         churn: {restarted} Deployments restarted over {:.0} s ({per} pods each, surge first)\n\
         Pending → Nominated: {} pods, p50 {:.2} s, p95 {:.2} s, max {:.2} s ({unmatched} new \
         pods never nominated: bound to room that was already there)\n\
         of which after kube-scheduler marked them unschedulable (Tandem's part): {} pods, p50 \
         {:.2} s, p95 {:.2} s, max {:.2} s\n\
         provisioner plans: {plans:.0}, {plan_seconds:.2} s in all, mean {:.3} s\n\
         tandem: RSS p95 {:.0} MiB (max {:.0}), CPU {cpu:.2} cores, {request_rate:.1} API \
         requests/s, {waits:.0} waited > 1 ms for the client limiter\n\
         where the CPU went (cores): {shares}\n\
         kube-apiserver: RSS p95 {:.0} MiB; control plane now: {:?}",
        setup_time.as_secs_f64(),
        wall,
        measured.len(),
        common::percentile(&measured, 0.5),
        common::percentile(&measured, 0.95),
        measured.last().copied().unwrap_or(0.0),
        after_scheduler.len(),
        common::percentile(&after_scheduler, 0.5),
        common::percentile(&after_scheduler, 0.95),
        after_scheduler.last().copied().unwrap_or(0.0),
        plan_seconds / plans.max(1.0),
        common::percentile(&rss, 0.95),
        rss.last().copied().unwrap_or(0.0),
        common::percentile(&api_rss, 0.95),
        memory
            .components
            .iter()
            .map(|(name, rss, _)| format!("{name} {} MiB", rss / (1 << 20)))
            .collect::<Vec<_>>(),
    );
    // SIGTERM, so that a build with `--features tandem/dhat-heap` writes its heap profile
    // (`TANDEM_DHAT_OUT`) as it exits.
    tandem.signal("-TERM");
    let _ = tandem.child.wait();
}

fn main() {
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<u64>().ok())
        .collect();
    let nodes = numbers.first().copied().unwrap_or(5_000) as usize;
    let minutes = numbers.get(1).copied().unwrap_or(10);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench(nodes, minutes));
}
