//! Is the simulator honest? The same manifests and the same `kubectl scale` script, once
//! through `tandem simulate` and once through `tandem run` on the real control plane (kwok
//! provider with the simulator's cloud delays: 2 s to launch, 1 s to register, Ready at once).
//! The two must agree on what happened — the same launches and consolidations — and on when:
//! every milestone (4 pods Running, no node left) within one sync period (15 s) of each other.
//!
//! The script: a Deployment of 1500m pods (one per c-2x node) at 0, scaled to 4 at 5 s and to 0
//! at 60 s, against a NodePool with `consolidateAfter: 10s`; 150 s in all. (Scaling to 1 instead
//! makes the outcome depend on the disruption loop's phase: a pass just before the emptied nodes
//! turn consolidatable moves the last pod onto one of them by single-node consolidation, as
//! upstream would, and the runs then agree on the counts but not within 15 s.)

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::Replica;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_api::kwok::KWOKNodeClass;
use tandem_testkit::{ControlPlane, wait_for};

const DURATION_S: u64 = 150;
const SCALES: [(u64, i32); 2] = [(5, 4), (60, 0)];
/// The HPA's sync period: the tolerance the simulator promises.
const SYNC_PERIOD_S: f64 = 15.0;

fn manifests(ns: &str, pool: &str) -> String {
    format!(
        r#"apiVersion: karpenter.kwok.sh/v1alpha1
kind: KWOKNodeClass
metadata:
  name: {pool}
spec: {{}}
---
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: {pool}
spec:
  limits:
    cpu: "100"
  disruption:
    consolidateAfter: 10s
    budgets:
      - nodes: "100%"
  template:
    spec:
      requirements:
        - key: node.kubernetes.io/instance-type
          operator: In
          values: ["c-2x-amd64-linux"]
        - key: karpenter.sh/capacity-type
          operator: In
          values: ["on-demand"]
      nodeClassRef:
        group: karpenter.kwok.sh
        kind: KWOKNodeClass
        name: {pool}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: 0
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 0
      nodeSelector:
        karpenter.sh/nodepool: {pool}
      containers:
        - name: c
          image: registry.invalid/web:1
          resources:
            requests:
              cpu: 1500m
"#
    )
}

fn scenario(ns: &str) -> String {
    let scales: String = SCALES
        .iter()
        .map(|(at, n)| format!("    - {{at: {at}s, target: {ns}/web, replicas: {n}}}\n"))
        .collect();
    format!(
        "name: sim vs live\nseed: 1\nduration: {DURATION_S}s\nsampleEvery: 1s\ncatalog: {{provider: kwok}}\n\
         manifests:\n  - path: manifests.yaml\nworkload:\n  scale:\n{scales}\
         cloud:\n  provisioning: {{min: 2s, max: 2s}}\n  join: {{min: 1s, max: 1s}}\n  imagePull: {{min: 0s, max: 0s}}\n"
    )
}

/// `(t seconds, running pods, nodes)` samples.
type Trajectory = Vec<(f64, u64, u64)>;

/// When a trajectory first satisfies `f` at or after `from` seconds.
fn first(t: &Trajectory, from: f64, f: impl Fn(u64, u64) -> bool) -> Option<f64> {
    t.iter()
        .find(|(at, pods, nodes)| *at >= from && f(*pods, *nodes))
        .map(|(at, _, _)| *at)
}

fn simulate(dir: &std::path::Path) -> (serde_json::Value, Trajectory) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["simulate", "--json"])
        .arg(dir.join("scenario.yaml"))
        .output()
        .expect("run tandem simulate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let traj = report["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|p| {
            (
                p["t"].as_f64().unwrap_or(0.0),
                p["runningPods"].as_u64().unwrap_or(0),
                p["nodes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    (report, traj)
}

async fn create_all(client: &Client, text: &str) {
    for doc in text.split("\n---\n") {
        let v: serde_json::Value = serde_yaml_ng::from_str(doc).expect("yaml");
        match v["kind"].as_str() {
            Some("KWOKNodeClass") => {
                let o: KWOKNodeClass = serde_json::from_value(v).expect("class");
                Api::<KWOKNodeClass>::all(client.clone())
                    .create(&PostParams::default(), &o)
                    .await
                    .expect("create class");
            }
            Some("NodePool") => {
                let o: NodePool = serde_json::from_value(v).expect("pool");
                Api::<NodePool>::all(client.clone())
                    .create(&PostParams::default(), &o)
                    .await
                    .expect("create pool");
            }
            Some("Deployment") => {
                let ns = v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let o: Deployment = serde_json::from_value(v).expect("deployment");
                Api::<Deployment>::namespaced(client.clone(), &ns)
                    .create(&PostParams::default(), &o)
                    .await
                    .expect("create deployment");
            }
            other => panic!("unexpected kind {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_and_the_live_system_agree_on_a_scale_script() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("simlive").await.expect("namespace");
    let pool = format!("{ns}-web");
    let dir = tempfile::tempdir().expect("dir");
    let text = manifests(&ns, &pool);
    std::fs::write(dir.path().join("manifests.yaml"), &text).expect("write");
    std::fs::write(dir.path().join("scenario.yaml"), scenario(&ns)).expect("write");
    let (report, sim) = simulate(dir.path());

    let run = Replica::start(
        "simlive",
        cp.kubeconfig_path(),
        &ns,
        cp.dir(),
        &[
            "--disable-pod-layer",
            "--kwok-launch-delay",
            "2s",
            "--kwok-registration-delay",
            "1s",
        ],
    );
    wait_for("tandem run leads", Duration::from_secs(60), || async {
        run.led().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", run.log()));
    create_all(&client, &text).await;
    let t0 = Instant::now();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let nodes: Api<Node> = Api::all(client.clone());
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let selector = format!("karpenter.sh/nodepool={pool}");
    let (mut live, mut seen_claims, mut seen_nodes) =
        (Trajectory::new(), BTreeSet::new(), BTreeSet::new());
    let mut script = SCALES.iter().peekable();
    while t0.elapsed() < Duration::from_secs(DURATION_S) {
        let t = t0.elapsed().as_secs_f64();
        if let Some((at, n)) = script.peek()
            && t >= *at as f64
        {
            deployments
                .patch(
                    "web",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"replicas": n}})),
                )
                .await
                .expect("scale");
            script.next();
        }
        let running = pods
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
            .count();
        let node_names = common::pool_node_names(&nodes, &pool).await;
        for c in claims
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            seen_claims.extend(c.metadata.name);
        }
        seen_nodes.extend(node_names.iter().cloned());
        live.push((t, running as u64, node_names.len() as u64));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let end_nodes = live.last().map_or(0, |s| s.2);
    let removed = seen_nodes.len() as u64 - end_nodes;

    let summary = format!(
        "simulated: launches {}, consolidations {}\nlive: claims {}, nodes removed {}\nsim {:?}\nlive {:?}\n{}",
        report["launches"],
        report["consolidations"],
        seen_claims.len(),
        removed,
        sim.iter().step_by(5).collect::<Vec<_>>(),
        live.iter().step_by(10).collect::<Vec<_>>(),
        run.log()
    );
    assert_eq!(
        report["launches"].as_u64(),
        Some(seen_claims.len() as u64),
        "{summary}"
    );
    assert_eq!(
        report["consolidations"].as_u64(),
        Some(removed),
        "{summary}"
    );
    for (what, from, f) in [
        (
            "4 pods Running",
            0.0,
            (|p: u64, _n: u64| p == 4) as fn(u64, u64) -> bool,
        ),
        ("no node left", 60.0, |p: u64, n: u64| p == 0 && n == 0),
    ] {
        let (s, l) = (first(&sim, from, f), first(&live, from, f));
        let (Some(s), Some(l)) = (s, l) else {
            panic!("{what}: simulated {s:?}, live {l:?}\n{summary}");
        };
        eprintln!("{what}: simulated at {s:.1}s, live at {l:.1}s");
        assert!(
            (s - l).abs() <= SYNC_PERIOD_S,
            "{what}: simulated at {s:.1}s, live at {l:.1}s\n{summary}"
        );
    }
}
