//! Crash safety of the node layer: `kill -9` the controller (`tandem run`) at seeded random
//! moments while it launches, consolidates and drains, 100 times (`TANDEM_CRASH_KILLS=N` for a
//! longer, nightly-style run; `TANDEM_CRASH_SEED` for other kill points), restarting it each
//! time. Afterwards, once a last replica has settled: no instance without a claim, no claim
//! without an instance, no pod lost, no finalizer stuck.
//!
//! One test per binary: the node layer acts on every NodePool of its control plane.

#[path = "common/chaos.rs"]
mod chaos;
mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_testkit::{ControlPlane, wait_for};

const SETTLE: Duration = Duration::from_secs(240);
/// Kills per run unless `TANDEM_CRASH_KILLS` says otherwise (issue #14 asks ≥ 100 per CI run).
const DEFAULT_KILLS: u32 = 100;
const FINAL_REPLICAS: usize = 4;

fn start(cp: &ControlPlane, ns: &str, i: u32) -> common::Replica {
    common::Replica::start(
        &format!("crash-{i}"),
        cp.kubeconfig_path(),
        ns,
        cp.dir(),
        &chaos::KILLED_REPLICA_ARGS,
    )
}

/// What is left once everything settled, or why it is not settled yet.
async fn settled(client: &Client, ns: &str) -> Result<String, String> {
    let (claims, instances) = chaos::nothing_leaked(client, ns).await?;
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("app=work"))
        .await
        .map_err(|e| e.to_string())?
        .items;
    let running = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .count();
    if running != FINAL_REPLICAS || pods.len() != FINAL_REPLICAS {
        return Err(format!(
            "{running} of {FINAL_REPLICAS} pods Running ({} pods)",
            pods.len()
        ));
    }
    Ok(format!(
        "{claims} claims = {instances} instances, {running} pods Running"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_during_launch_and_drain_leaks_nothing() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("crash").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::kwok_class(&client, &class).await;
    let pool: NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": ns},
        "spec": {"limits": {"cpu": "1000"}, "template": {"spec": {
            "requirements": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c-2x-amd64-linux"]}],
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
    }))
    .expect("nodepool");
    Api::<NodePool>::all(client.clone())
        .create(&PostParams::default(), &pool)
        .await
        .expect("create nodepool");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "work"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "work"}},
            "template": {"metadata": {"labels": {"app": "work"}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "1500m"}}}]}}},
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    let scale = |n: u64| {
        let deployments = deployments.clone();
        async move {
            deployments
                .patch(
                    "work",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"replicas": n}})),
                )
                .await
                .expect("scale");
        }
    };

    let kills_wanted: u32 = std::env::var("TANDEM_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_KILLS);
    let seed: u64 = std::env::var("TANDEM_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x7a6d_656d);
    let mut rng = common::Lcg(seed);
    let (mut scales, mut node_deletes, mut claim_deletes, mut kills) = (0, 0, 0, 0);
    let mut replica = start(cp, &ns, 0);
    for i in 1..=kills_wanted {
        match rng.next(3) {
            0 => {
                scale(1 + rng.next(6)).await;
                scales += 1;
            }
            1 => {
                let nodes = Api::<Node>::all(client.clone())
                    .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}")))
                    .await
                    .expect("nodes")
                    .items;
                if let Some(n) = nodes.get(rng.next(nodes.len().max(1) as u64) as usize) {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    let _ = Api::<Node>::all(client.clone())
                        .delete(&name, &DeleteParams::default())
                        .await;
                    node_deletes += 1;
                }
            }
            _ => {
                let claims = Api::<NodeClaim>::all(client.clone())
                    .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}")))
                    .await
                    .expect("claims")
                    .items;
                if let Some(c) = claims.get(rng.next(claims.len().max(1) as u64) as usize) {
                    let name = c.metadata.name.clone().unwrap_or_default();
                    let _ = Api::<NodeClaim>::all(client.clone())
                        .delete(&name, &DeleteParams::default())
                        .await;
                    claim_deletes += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.next(2_000))).await;
        replica.signal("-KILL");
        kills += 1;
        drop(replica);
        replica = start(cp, &ns, i);
    }
    scale(FINAL_REPLICAS as u64).await;
    let outcome = wait_for("everything settled", SETTLE, || async {
        settled(&client, &ns).await.ok()
    })
    .await
    .unwrap_or_else(|e| {
        let why = futures_lite_block(settled(&client, &ns));
        let cluster = futures_lite_block(tandem_testkit::describe::node_layer(&client, &ns));
        panic!("{e}: {why:?}\n{cluster}last replica:\n{}", replica.log())
    });
    eprintln!(
        "crash test (seed {seed}): {kills} kill -9 ({scales} scalings, {node_deletes} node \
         deletions, {claim_deletes} claim deletions in between); afterwards {outcome}"
    );
}

/// Runs a future to completion from a panic path inside the runtime.
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
