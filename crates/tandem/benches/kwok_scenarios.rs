//! Karpenter's KWOK performance suite (reference karpenter.md §10.2), run against `tandem run`
//! on the real control plane with the kwok provider: figures printed beside upstream's
//! thresholds, never asserted.
//!
//! ```text
//! cargo bench -p tandem --bench kwok_scenarios                 # every scenario
//! cargo bench -p tandem --bench kwok_scenarios -- basic wide   # some of them
//! ```
//!
//! Each scenario gets a fresh control plane (kube-controller-manager and kube-scheduler at
//! 200 QPS / burst 400, so that their client limits are not what is measured) and a fresh
//! `tandem run --disable-pod-layer` (release build, kwok provider, default delays, default
//! client limit 200/300), with upstream's perf NodePool: `instance-size Lt 32`,
//! `WhenEmptyOrUnderutilized` after 30 s, budget 100 %. Per phase it prints: the time until
//! every pod is Ready (scale-out) or until the node count has not changed for 60 s
//! (consolidation: the time of the last change); Tandem's p95 RSS (sampled each second) and
//! average CPU in cores; the API requests per second Tandem's client sent (its own
//! `rest_client_requests_total`; the fake kubelets' writes are not Tandem's and not counted);
//! node utilisation = requested / allocatable CPU and memory over the pool's nodes.
//!
//! Drift (scenario `drift`): once the 600 pods run, the NodePool's template gains an
//! annotation, as upstream's test does; the phase lasts until no node from before remains and
//! every pod is Ready again. In `do-not-disrupt`, 100 pods carry
//! `karpenter.sh/do-not-disrupt: "true"` and keep their replicas while the others halve; the
//! nodes that held them before are counted again afterwards.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_model::quantity::Quantity;
use tandem_testkit::{ControlPlane, Options};

/// One Deployment of a scenario.
#[derive(Debug, Clone)]
struct Workload {
    name: String,
    replicas: u32,
    cpu: &'static str,
    memory: &'static str,
    /// `hostname-spread`, `anti-affinity` or nothing.
    shape: Shape,
    /// Pods annotated `karpenter.sh/do-not-disrupt: "true"`; consolidation leaves their
    /// replicas as they are.
    do_not_disrupt: bool,
}

impl Workload {
    fn protected(self) -> Workload {
        Workload {
            do_not_disrupt: true,
            ..self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Plain,
    HostnameSpread,
    AntiAffinity,
}

/// Upstream's thresholds for a phase: time, p95 memory MB, average CPU cores, utilisation
/// floors (CPU, memory).
#[derive(Debug, Clone, Copy)]
struct Threshold {
    time: Duration,
    memory_mb: f64,
    cpu: f64,
    utilisation: Option<(f64, f64)>,
}

/// A scenario: its workloads, the scale-out thresholds and, when upstream has one, the
/// consolidation phase (every workload scaled to `consolidate_to` of its replicas).
#[derive(Debug, Clone)]
struct Scenario {
    name: &'static str,
    workloads: Vec<Workload>,
    scale_out: Threshold,
    consolidation: Option<(f64, Threshold)>,
    /// A drift phase (the NodePool template changed) after the scale-out.
    drift: Option<Threshold>,
}

fn workload(
    name: &str,
    replicas: u32,
    cpu: &'static str,
    memory: &'static str,
    shape: Shape,
) -> Workload {
    Workload {
        name: name.to_owned(),
        replicas,
        cpu,
        memory,
        shape,
        do_not_disrupt: false,
    }
}

const fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "basic",
            workloads: vec![
                workload("small", 500, "900m", "3100Mi", Shape::Plain),
                workload("large", 500, "3500m", "28Gi", Shape::Plain),
            ],
            scale_out: Threshold {
                time: minutes(2),
                memory_mb: 260.0,
                cpu: 0.50,
                utilisation: Some((0.53, 0.65)),
            },
            consolidation: Some((
                0.7,
                Threshold {
                    time: minutes(20),
                    memory_mb: 260.0,
                    cpu: 0.25,
                    utilisation: None,
                },
            )),
            drift: None,
        },
        Scenario {
            name: "hostname-spread",
            workloads: vec![workload(
                "spread",
                1000,
                "900m",
                "3100Mi",
                Shape::HostnameSpread,
            )],
            scale_out: Threshold {
                time: minutes(5),
                memory_mb: 680.0,
                cpu: 1.15,
                utilisation: Some((0.38, 0.40)),
            },
            consolidation: Some((
                0.7,
                Threshold {
                    time: minutes(35),
                    memory_mb: 575.0,
                    cpu: 1.00,
                    utilisation: None,
                },
            )),
            drift: None,
        },
        Scenario {
            name: "anti-affinity",
            workloads: vec![workload(
                "apart",
                500,
                "900m",
                "3100Mi",
                Shape::AntiAffinity,
            )],
            scale_out: Threshold {
                time: minutes(5),
                memory_mb: 620.0,
                cpu: 0.90,
                utilisation: Some((0.38, 0.40)),
            },
            consolidation: None,
            drift: None,
        },
        Scenario {
            name: "wide",
            workloads: (0..30)
                .map(|i| {
                    // 1,000 pods over 30 Deployments: ten of 34, twenty of 33.
                    let replicas = if i < 10 { 34 } else { 33 };
                    workload(
                        &format!("wide-{i}"),
                        replicas,
                        "900m",
                        "3100Mi",
                        Shape::Plain,
                    )
                })
                .collect(),
            scale_out: Threshold {
                time: minutes(5),
                memory_mb: 370.0,
                cpu: 0.70,
                utilisation: Some((0.20, 0.20)),
            },
            consolidation: Some((
                0.7,
                Threshold {
                    time: minutes(40),
                    memory_mb: 340.0,
                    cpu: 0.30,
                    utilisation: None,
                },
            )),
            drift: None,
        },
        Scenario {
            name: "do-not-disrupt",
            workloads: vec![
                workload("small", 500, "950m", "3900Mi", Shape::HostnameSpread),
                workload("large", 500, "3800m", "31Gi", Shape::Plain),
                workload("protected", 100, "950m", "450Mi", Shape::Plain).protected(),
            ],
            scale_out: Threshold {
                time: minutes(4),
                memory_mb: 645.0,
                cpu: 1.10,
                utilisation: Some((0.38, 0.40)),
            },
            consolidation: Some((
                0.5,
                Threshold {
                    time: minutes(35),
                    memory_mb: 585.0,
                    cpu: 0.80,
                    utilisation: None,
                },
            )),
            drift: None,
        },
        Scenario {
            name: "drift",
            workloads: vec![
                workload("spread", 300, "950m", "3900Mi", Shape::HostnameSpread),
                workload("standard", 300, "3800m", "31Gi", Shape::Plain),
            ],
            scale_out: Threshold {
                time: minutes(5),
                memory_mb: 425.0,
                cpu: 0.70,
                utilisation: None,
            },
            consolidation: None,
            drift: Some(Threshold {
                time: minutes(50),
                memory_mb: 470.0,
                cpu: 1.05,
                utilisation: None,
            }),
        },
    ]
}

fn deployment(w: &Workload) -> Deployment {
    let labels = json!({"app": w.name});
    let mut spec = json!({
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": w.cpu, "memory": w.memory}}}],
    });
    match w.shape {
        Shape::Plain => {}
        Shape::HostnameSpread => {
            spec["topologySpreadConstraints"] = json!([{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": labels}}]);
        }
        Shape::AntiAffinity => {
            spec["affinity"] = json!({"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": labels}}]}});
        }
    }
    let mut metadata = json!({"labels": labels});
    if w.do_not_disrupt {
        metadata["annotations"] = json!({"karpenter.sh/do-not-disrupt": "true"});
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": w.name},
        "spec": {"replicas": w.replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": metadata, "spec": spec}},
    }))
    .expect("a valid Deployment")
}

/// Requests Tandem's client has sent, from its `/metrics`.
async fn requests_sent(metrics_port: u16) -> f64 {
    common::metric_sum(metrics_port, "rest_client_requests_total{", "").await
}

/// What one phase measured.
#[derive(Debug)]
struct Figures {
    time: Duration,
    rss_p95: f64,
    cpu: f64,
    requests_per_second: f64,
    utilisation: (f64, f64),
    nodes: usize,
    pods: u32,
    /// Average cores of every other process on the machine the phase loads (the control
    /// plane's, this bench's own), and of the whole machine: which one saturates first.
    shares: common::CpuShares,
}

/// Samples Tandem's RSS every second while a phase runs.
struct Sampler {
    pid: u32,
    started: Instant,
    cpu_at_start: f64,
    requests_at_start: f64,
    metrics_port: u16,
    rss: std::sync::Arc<std::sync::Mutex<Vec<f64>>>,
    task: tokio::task::JoinHandle<()>,
    clock: common::CpuClock,
}

impl Sampler {
    /// `others`: the processes besides Tandem whose CPU the phase reports (the control
    /// plane's and this bench's).
    async fn start(pid: u32, metrics_port: u16, others: &[(&'static str, u32)]) -> Sampler {
        let rss = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let samples = rss.clone();
        let task = tokio::spawn(async move {
            loop {
                let (now, _) = common::process_figures(pid);
                samples.lock().expect("samples").push(now);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Sampler {
            pid,
            started: Instant::now(),
            cpu_at_start: common::process_figures(pid).1,
            requests_at_start: requests_sent(metrics_port).await,
            metrics_port,
            rss,
            task,
            clock: common::CpuClock::start(others),
        }
    }

    /// Figures of the phase, `time` being what the phase reports as its duration; CPU and
    /// request rates are over the whole phase (including a consolidation's quiet minute).
    async fn finish(
        self,
        time: Duration,
        utilisation: (f64, f64),
        nodes: usize,
        pods: u32,
    ) -> Figures {
        self.task.abort();
        let wall = self.started.elapsed().as_secs_f64().max(1e-3);
        let cpu = (common::process_figures(self.pid).1 - self.cpu_at_start) / wall;
        let requests = requests_sent(self.metrics_port).await - self.requests_at_start;
        let mut rss = self.rss.lock().expect("samples").clone();
        rss.sort_by(f64::total_cmp);
        let rss_p95 = rss
            .get(((rss.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0);
        Figures {
            time,
            rss_p95,
            cpu,
            requests_per_second: requests / wall,
            utilisation,
            nodes,
            pods,
            shares: self.clock.shares(wall),
        }
    }
}

/// The pool's nodes and requested / allocatable CPU and memory over them.
async fn utilisation(client: &Client, pool: &str, workloads: &[Workload]) -> ((f64, f64), usize) {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await
        .expect("list nodes")
        .items;
    let parse = |q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
        q.and_then(|q| q.0.parse::<Quantity>().ok())
            .map_or(0.0, |q| q.as_nanos() as f64 / 1e9)
    };
    let (mut cpu, mut memory) = (0.0, 0.0);
    for node in &nodes {
        let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        cpu += parse(allocatable.and_then(|a| a.get("cpu")));
        memory += parse(allocatable.and_then(|a| a.get("memory")));
    }
    let (mut want_cpu, mut want_memory) = (0.0, 0.0);
    for w in workloads {
        let q = |s: &str| {
            s.parse::<Quantity>()
                .map_or(0.0, |q| q.as_nanos() as f64 / 1e9)
        };
        want_cpu += f64::from(w.replicas) * q(w.cpu);
        want_memory += f64::from(w.replicas) * q(w.memory);
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    (
        (ratio(want_cpu, cpu), ratio(want_memory, memory)),
        nodes.len(),
    )
}

async fn ready_pods(deployments: &Api<Deployment>) -> u32 {
    deployments
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter_map(|d| d.status.as_ref()?.ready_replicas)
                .map(|r| u32::try_from(r).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

async fn run(scenario: &Scenario) -> Vec<(String, Figures, Threshold)> {
    let cp = ControlPlane::start_with(Options {
        component_client_limit: Some((200, 400)),
        ..Options::default()
    })
    .await
    .expect("control plane");
    let client = cp.client().expect("client");
    let ns = cp.namespace("perf").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::kwok_class(&client, &class).await;
    let pool: tandem_api::karpenter::NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": ns},
        "spec": {
            "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": "30s", "budgets": [{"nodes": "100%"}]},
            "template": {"spec": {
                "requirements": [{"key": "karpenter.kwok.sh/instance-size", "operator": "Lt", "values": ["32"]}],
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
    }))
    .expect("nodepool");
    Api::<tandem_api::karpenter::NodePool>::all(client.clone())
        .create(&PostParams::default(), &pool)
        .await
        .expect("create nodepool");
    let tandem = common::Replica::start(
        scenario.name,
        cp.kubeconfig_path(),
        &ns,
        cp.dir(),
        &["--disable-leader-election", "--disable-pod-layer"],
    );
    let pid = tandem.child.id();
    let others = common::cpu_watched(&cp).await;
    for _ in 0..100 {
        if tandem.log().contains("leading; starting") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let nodes: Api<Node> = Api::all(client.clone());
    let mut out = Vec::new();

    // Scale-out.
    let total: u32 = scenario.workloads.iter().map(|w| w.replicas).sum();
    let sampler = Sampler::start(pid, tandem.metrics, &others).await;
    for w in &scenario.workloads {
        deployments
            .create(&PostParams::default(), &deployment(w))
            .await
            .expect("create deployment");
    }
    let deadline = scenario.scale_out.time * 4;
    loop {
        if ready_pods(&deployments).await >= total || sampler.started.elapsed() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let took = sampler.started.elapsed();
    let ready = ready_pods(&deployments).await;
    let (util, n) = utilisation(&client, &ns, &scenario.workloads).await;
    let figures = sampler.finish(took, util, n, ready).await;
    // `TANDEM_BENCH_LOG=DIR` keeps each scenario's whole tandem log after its scale-out, for
    // finding where the time went.
    if let Ok(dir) = std::env::var("TANDEM_BENCH_LOG") {
        let path = std::path::Path::new(&dir).join(format!("{}-scale-out.log", scenario.name));
        if let Err(e) = std::fs::write(&path, tandem.log()) {
            eprintln!("writing {}: {e}", path.display());
        }
    }
    if ready < total {
        eprintln!(
            "{}: only {ready} of {total} pods Ready after {:.0} s; tandem log tail:\n{}",
            scenario.name,
            took.as_secs_f64(),
            tail(&tandem.log())
        );
    }
    out.push((
        format!("{} scale-out", scenario.name),
        figures,
        scenario.scale_out,
    ));

    // Consolidation.
    if let Some((fraction, threshold)) = scenario.consolidation {
        let kept: Vec<Workload> = scenario
            .workloads
            .iter()
            .map(|w| Workload {
                replicas: if w.do_not_disrupt {
                    w.replicas
                } else {
                    (f64::from(w.replicas) * fraction).round() as u32
                },
                ..w.clone()
            })
            .collect();
        let total: u32 = kept.iter().map(|w| w.replicas).sum();
        let protected_nodes = protected_nodes(&client, &ns, &scenario.workloads).await;
        let sampler = Sampler::start(pid, tandem.metrics, &others).await;
        for w in &kept {
            deployments
                .patch(
                    &w.name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"replicas": w.replicas}})),
                )
                .await
                .expect("scale down");
        }
        let quiet = Duration::from_secs(60);
        let mut last = (
            common::pool_node_names(&nodes, &ns).await.len(),
            sampler.started.elapsed(),
        );
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = common::pool_node_names(&nodes, &ns).await.len();
            if now != last.0 {
                last = (now, sampler.started.elapsed());
            } else if sampler.started.elapsed() - last.1 >= quiet
                && ready_pods(&deployments).await >= total
            {
                break;
            }
            if sampler.started.elapsed() > threshold.time * 2 {
                eprintln!(
                    "{}: consolidation still moving after {:.0} s",
                    scenario.name,
                    sampler.started.elapsed().as_secs_f64()
                );
                break;
            }
        }
        let ready = ready_pods(&deployments).await;
        let (util, n) = utilisation(&client, &ns, &kept).await;
        let figures = sampler.finish(last.1, util, n, ready).await;
        if !protected_nodes.is_empty() {
            let names = common::pool_node_names(&nodes, &ns).await;
            eprintln!(
                "{}: {} of the {} nodes that held do-not-disrupt pods are still there",
                scenario.name,
                protected_nodes.intersection(&names).count(),
                protected_nodes.len()
            );
        }
        out.push((
            format!("{} consolidation", scenario.name),
            figures,
            threshold,
        ));
    }

    if let Some(threshold) = scenario.drift {
        out.push((
            format!("{} drift", scenario.name),
            drift(
                &client,
                &ns,
                (pid, tandem.metrics),
                &others,
                scenario,
                threshold,
            )
            .await,
            threshold,
        ));
    }
    drop(tandem);
    out
}

/// Changes the NodePool's template and waits until every node from before is gone and every
/// pod is Ready again (or twice upstream's time has passed).
async fn drift(
    client: &Client,
    pool: &str,
    (pid, metrics): (u32, u16),
    others: &[(&'static str, u32)],
    scenario: &Scenario,
    threshold: Threshold,
) -> Figures {
    let nodes: Api<Node> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), pool);
    let total: u32 = scenario.workloads.iter().map(|w| w.replicas).sum();
    // Upstream lets the cluster settle for 30 s before it changes the template.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let before = common::pool_node_names(&nodes, pool).await;
    let sampler = Sampler::start(pid, metrics, others).await;
    Api::<tandem_api::karpenter::NodePool>::all(client.clone())
        .patch(
            pool,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"template": {"metadata": {
                "annotations": {"test-drift-trigger": "drift-1"}}}}})),
        )
        .await
        .expect("change the NodePool template");
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = common::pool_node_names(&nodes, pool).await;
        let left = before.intersection(&now).count();
        if left == 0 && ready_pods(&deployments).await >= total {
            break;
        }
        if sampler.started.elapsed() > threshold.time * 2 {
            eprintln!(
                "{}: {left} of {} drifted nodes still there after {:.0} s",
                scenario.name,
                before.len(),
                sampler.started.elapsed().as_secs_f64()
            );
            break;
        }
    }
    let took = sampler.started.elapsed();
    let ready = ready_pods(&deployments).await;
    let (util, n) = utilisation(client, pool, &scenario.workloads).await;
    sampler.finish(took, util, n, ready).await
}

/// The nodes running pods of the do-not-disrupt workloads.
async fn protected_nodes(client: &Client, ns: &str, workloads: &[Workload]) -> BTreeSet<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut out = BTreeSet::new();
    for w in workloads.iter().filter(|w| w.do_not_disrupt) {
        let listed = pods
            .list(&ListParams::default().labels(&format!("app={}", w.name)))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        out.extend(
            listed
                .into_iter()
                .filter_map(|p| p.spec.and_then(|s| s.node_name)),
        );
    }
    out
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows: Vec<(String, Figures, Threshold)> = Vec::new();
    for scenario in scenarios() {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == scenario.name) {
            continue;
        }
        eprintln!("kwok_scenarios: running {}", scenario.name);
        let measured = runtime.block_on(run(&scenario));
        for (name, f, _) in &measured {
            eprintln!("  {name}: {f:?}");
        }
        rows.extend(measured);
    }
    println!(
        "\n{:<28} {:>6} {:>6} {:>16} {:>18} {:>14} {:>9} {:>24}",
        "phase",
        "pods",
        "nodes",
        "time s (upstr.)",
        "p95 RSS MiB (up.)",
        "CPU cores (up.)",
        "API req/s",
        "util cpu/mem (floor)"
    );
    for (name, f, t) in &rows {
        let floor = t
            .utilisation
            .map_or_else(|| "—".to_owned(), |(c, m)| format!("{c:.2}/{m:.2}"));
        println!(
            "{:<28} {:>6} {:>6} {:>8.1} ({:>5}) {:>9.1} ({:>5.0}) {:>7.2} ({:>4.2}) {:>9.1} {:>5.2}/{:.2} ({floor})",
            name,
            f.pods,
            f.nodes,
            f.time.as_secs_f64(),
            t.time.as_secs(),
            f.rss_p95,
            t.memory_mb,
            f.cpu,
            t.cpu,
            f.requests_per_second,
            f.utilisation.0,
            f.utilisation.1,
        );
    }
    println!("\nwhere the machine's CPU went (average cores over each phase; tandem above):");
    for (name, f, _) in &rows {
        println!("{name:<28} {}", f.shares);
    }
}
