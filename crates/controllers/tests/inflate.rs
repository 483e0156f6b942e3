//! End to end on the real control plane: seed 000's `inflate` (5 × 1 CPU) scaled 0 → 5 against
//! a NodePool using a KWOKNodeClass; the controllers run in-process, the kwok provider plays
//! kubelet. Then 20 cold runs (each needing a new node) to measure Pending → Running.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_api::kwok::KWOKNodeClass;
use tandem_cloud::kwok::{Kubelet, KwokCloud, KwokOptions};
use tandem_controllers::{Controllers, Options};
use tandem_testkit::{ControlPlane, wait_for, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(120);

async fn running(pods: &Api<Pod>, selector: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflate_scaled_to_five_gets_nodes_and_every_pod_runs() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("inflate").await.expect("namespace");
    let class = format!("{ns}-kwok");
    Api::<KWOKNodeClass>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass",
                "metadata": {"name": class}, "spec": {},
            }))
            .expect("class"),
        )
        .await
        .expect("create class");
    let pools: Api<NodePool> = Api::all(client.clone());
    let pool = |name: &str, weight: i32, extra: serde_json::Value| -> NodePool {
        let consolidate_after = if extra.is_null() { "0s" } else { "Never" };
        let mut reqs = vec![
            json!({"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}),
            json!({"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}),
            json!({"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}),
        ];
        if !extra.is_null() {
            reqs.push(extra);
        }
        serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
            "metadata": {"name": name},
            // The cold runs' pool does not consolidate: each run leaves a bare pod (no
            // controller) on its node, which a cheaper replacement would evict for good.
            "spec": {"weight": weight, "limits": {"cpu": "1000"},
                "disruption": {"consolidateAfter": consolidate_after},
                "template": {"spec": {
                "requirements": reqs,
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
        }))
        .expect("nodepool")
    };
    pools
        .create(
            &PostParams::default(),
            &pool(&ns, 10, serde_json::Value::Null),
        )
        .await
        .expect("create nodepool");
    let runs_pool = format!("{ns}-runs");
    pools
        .create(
            &PostParams::default(),
            &pool(
                &runs_pool,
                1,
                json!({"key": "tandem.dev/run", "operator": "Exists"}),
            ),
        )
        .await
        .expect("create runs nodepool");

    let kubelet = tokio::spawn(Kubelet::new(client.clone()).run());
    let cloud = Arc::new(KwokCloud::new(client.clone(), KwokOptions::default()));
    let catalog = cloud.catalog().clone();
    let controllers = Controllers::spawn(client.clone(), cloud, catalog, Options::default());

    let seed =
        workspace_root().join("examples/seeds/000_1be3bceeb5274a7a/03-deployment-inflate.yaml");
    let text = std::fs::read_to_string(&seed).expect("seed manifest");
    let deployment: Deployment = serde_yaml_ng::from_str(&text).expect("deployment");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create inflate");
    deployments
        .patch(
            "inflate",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("scale to 5");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let up = wait_for("5 inflate pods Running", TIMEOUT, || async {
        let r = running(&pods, "app=inflate").await;
        (r.len() == 5).then_some(r)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; state: {:?}", controllers.state().snapshot.pods.len()));
    eprintln!("inflate 0 → 5 Running in {:?}", started.elapsed());

    // Every pod is on a node a NodeClaim of our pool launched, and those claims are Ready.
    let claims: Vec<NodeClaim> = Api::<NodeClaim>::all(client.clone())
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}")))
        .await
        .expect("claims")
        .items;
    assert!(!claims.is_empty());
    let nodes: Api<Node> = Api::all(client.clone());
    for p in &up {
        let node_name = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .expect("bound");
        let node = nodes.get(&node_name).await.expect("node");
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("karpenter.sh/nodepool"),
            Some(&ns),
            "{node_name}"
        );
        assert!(
            node.spec
                .and_then(|s| s.provider_id)
                .is_some_and(|p| p.starts_with("kwok://"))
        );
    }
    wait_for("claims Ready", TIMEOUT, || async {
        let list = Api::<NodeClaim>::all(client.clone())
            .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}")))
            .await
            .ok()?;
        list.items
            .iter()
            .all(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| tandem_api::condition::find(&s.conditions, "Ready"))
                    .is_some_and(|c| c.is_true())
                    && c.status
                        .as_ref()
                        .and_then(|s| s.node_name.as_ref())
                        .is_some()
            })
            .then_some(())
    })
    .await
    .expect("every claim Launched, Registered, Initialized");
    let status = pools
        .get(&ns)
        .await
        .expect("pool")
        .status
        .expect("pool status");
    assert_eq!(
        status.nodes,
        i64::try_from(claims.len()).unwrap_or_default()
    );
    assert!(status.resources.contains_key("cpu"));

    // Scale back to 0 (node removal is the disruption issue's).
    deployments
        .patch(
            "inflate",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale to 0");
    wait_for("inflate pods gone", TIMEOUT, || async {
        let l = pods
            .list(&ListParams::default().labels("app=inflate"))
            .await
            .ok()?;
        l.items.is_empty().then_some(())
    })
    .await
    .expect("pods removed by the kwok kubelet");

    // Cold runs: each run's pods select a label only a new node of the runs pool can carry.
    let mut times = Vec::new();
    for run in 0..20 {
        let name = format!("run-{run}");
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "run"}},
            "spec": {"nodeSelector": {"tandem.dev/run": format!("r{run}")},
                     "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                     "resources": {"requests": {"cpu": "1"}}}]},
        }))
        .expect("pod");
        let t0 = Instant::now();
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create run pod");
        wait_for("run pod Running", TIMEOUT, || async {
            let p = pods.get(&name).await.ok()?;
            (p.status.and_then(|s| s.phase).as_deref() == Some("Running")).then_some(())
        })
        .await
        .expect("run pod runs");
        times.push(t0.elapsed());
    }
    times.sort();
    let p = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times[i]
    };
    eprintln!(
        "Pending → Running, new node each, 0 s provider delays, {} runs: p50 {:?}, p95 {:?}, min {:?}, max {:?}",
        times.len(),
        p(0.5),
        p(0.95),
        times[0],
        times[times.len() - 1]
    );
    drop(controllers);
    kubelet.abort();
}
