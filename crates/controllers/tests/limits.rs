//! End to end on the real control plane: a NodePool with `limits.cpu: 4` and ten 1-CPU pods.
//! Launches stop at the limit (the capacity of the pool's claims never exceeds 4 CPU, and no
//! claim is added while the rest wait); the pods left Pending carry a `FailedScheduling`
//! Event saying the limit is why, and the NodePool a `NodePoolLimitReached` Event.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_model::quantity::Quantity;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Names and total CPU capacity (millicores) of the pool's claims; an unlaunched claim counts
/// what it requested (the provisioner reserved at least that).
async fn claims_of(client: &Client, pool: &str) -> (Vec<String>, i64) {
    let list = Api::<NodeClaim>::all(client.clone())
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await
        .expect("claims")
        .items;
    let mut milli = 0;
    let mut names = Vec::new();
    for c in &list {
        names.push(c.metadata.name.clone().unwrap_or_default());
        let status = c.status.clone().unwrap_or_default();
        let cpu = status
            .capacity
            .get("cpu")
            .or_else(|| c.spec.resources.requests.get("cpu"))
            .and_then(|q| q.as_str().parse::<Quantity>().ok())
            .map_or(0, |q| q.as_milli());
        milli += cpu;
    }
    names.sort();
    (names, milli)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodepool_cpu_limit_stops_launches_and_says_why() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("limits").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    // Consolidation off: this test is about limits, and replacing nodes at the limit would
    // change the claim set it watches for stability.
    common::nodepool(
        &client,
        &ns,
        &class,
        json!({"limits": {"cpu": "4"}, "disruption": {"consolidateAfter": "Never"}}),
    )
    .await;
    let _running = common::start(&client);

    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "ten"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "ten"}},
            "template": {"metadata": {"labels": {"app": "ten"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                "resources": {"requests": {"cpu": "1"}}}]}}},
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // Some pods run on what the limit allows; the others wait with the limit as their reason.
    let (running, pending) = wait_for("pods split at the limit", TIMEOUT, || async {
        let list = common::pods(&pods, "app=ten").await;
        let running = list.iter().filter(|p| common::serving(p)).count();
        let pending: Vec<String> = list
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none())
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let said = common::events(&client, &ns, "FailedScheduling", "")
            .await
            .into_iter()
            .filter(|e| e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("karpenter"))
            .filter(|e| {
                e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("limit on cpu would be exceeded"))
            })
            .count();
        (running > 0 && running + pending.len() == 10 && said > 0).then_some((running, pending))
    })
    .await
    .expect("pods Running up to the limit, the rest Pending with a reason");
    let pool_events = wait_for("NodePool event", TIMEOUT, || async {
        let e = common::events(&client, "default", "NodePoolLimitReached", &ns).await;
        (!e.is_empty()).then_some(e)
    })
    .await
    .expect("NodePoolLimitReached on the NodePool");
    eprintln!(
        "{running} Running, {} Pending; NodePool event: {:?}",
        pending.len(),
        pool_events[0].message
    );

    // Claims launched before the limit was hit may still be registering: wait until every claim
    // is Ready and the number of bound pods held still for one poll, then count again.
    let last = std::sync::Mutex::new(None::<usize>);
    let (running, pending) = wait_for("claims Ready and pods settled", TIMEOUT, || async {
        let claims = Api::<NodeClaim>::all(client.clone())
            .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}")))
            .await
            .ok()?
            .items;
        let all_ready = claims.iter().all(|c| {
            c.status
                .as_ref()
                .and_then(|s| tandem_api::condition::find(&s.conditions, "Ready"))
                .is_some_and(|c| c.is_true())
        });
        let list = common::pods(&pods, "app=ten").await;
        let running = list.iter().filter(|p| common::serving(p)).count();
        let pending: Vec<String> = list
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none())
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let steady = {
            let mut prev = last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let steady = *prev == Some(running);
            *prev = Some(running);
            steady
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        (all_ready && steady && running + pending.len() == 10).then_some((running, pending))
    })
    .await
    .expect("claims Ready, pods bound up to the limit");
    eprintln!("settled: {running} Running, {} Pending", pending.len());

    // Launches have stopped: the claims stay the same and within the limit while pods wait.
    let (before, milli) = claims_of(&client, &ns).await;
    assert!(
        milli <= 4000,
        "claims hold {milli}m CPU, over the 4 CPU limit"
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (after, milli_after) = claims_of(&client, &ns).await;
    assert_eq!(before, after, "no claim launched past the limit");
    assert_eq!(milli, milli_after);
    let still_pending = common::pods(&pods, "app=ten")
        .await
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none())
        .count();
    assert_eq!(still_pending, pending.len(), "the rest stay Pending");
    assert!(running <= 4, "at most 4 one-CPU pods fit 4 CPU");
    let status = Api::<tandem_api::karpenter::NodePool>::all(client.clone())
        .get(&ns)
        .await
        .expect("pool")
        .status
        .expect("status");
    let used = status
        .resources
        .get("cpu")
        .and_then(|q| q.as_str().parse::<Quantity>().ok())
        .map_or(0, |q| q.as_milli());
    assert!(used <= 4000, "NodePool status.resources.cpu {used}m ≤ 4");
}
