//! End to end on the real control plane: the cloud misbehaves under the node layer (kwok
//! failure injection, issue #14 "Cloud and source faults"), and pods still land with nothing
//! launched twice and nothing leaked.
//!
//! 1. **Insufficient capacity on the cheapest offering**: the claim's next instance type is
//!    launched instead; one claim.
//! 2. **Insufficient capacity on every offering the pods fit**: each attempt's claim gets an
//!    `InsufficientCapacityError` Event and is deleted, the pod waits, launches are not
//!    retried in a storm (the cloud's `create` calls are counted); once capacity returns the
//!    pod lands.
//! 3. **Throttling** (`RequestLimitExceeded`, retryable): the same claim is launched again,
//!    no second claim.
//! 4. **A cloud API that never answers**: each launch call is abandoned after the call timeout
//!    (2 s here) and retried for the same claim; once the API answers, the pod lands.
//!
//! At the end every claim has its Node and every Node its claim. One test per binary: the
//! controllers act on every NodePool of the control plane they watch.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_cloud::{Error, OfferingRef};
use tandem_controllers::{LaunchOptions, Options};
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);
const SMALL: &str = "c-2x-amd64-linux";
const LARGE: &str = "c-4x-amd64-linux";
const ZONE: &str = "test-zone-a";

fn offering(instance_type: &str) -> OfferingRef {
    OfferingRef {
        instance_type: instance_type.into(),
        zone: ZONE.into(),
        capacity_type: "on-demand".into(),
    }
}

/// A one-replica Deployment `name` whose pod requests `cpu`.
async fn workload(client: &Client, ns: &str, name: &str, cpu: &str) {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                "resources": {"requests": {"cpu": cpu}}}]}}},
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
}

/// The instance type of the node `app`'s serving pod runs on, once it serves.
async fn landed(pods: &Api<Pod>, nodes: &Api<Node>, app: &str) -> String {
    wait_for(&format!("{app} serving"), TIMEOUT, || async {
        let pod = common::pods(pods, &format!("app={app}"))
            .await
            .into_iter()
            .find(common::serving)?;
        let node = nodes.get(&pod.spec?.node_name?).await.ok()?;
        node.labels()
            .get("node.kubernetes.io/instance-type")
            .cloned()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_faults_delay_pods_but_never_duplicate_or_leak_capacity() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("cloudfaults").await.expect("namespace");
    common::node_class(&client, &ns).await;
    common::nodepool(
        &client,
        &ns,
        &ns,
        json!({"disruption": {"consolidateAfter": "Never"}, "template": {"spec": {
            "requirements": [
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [SMALL, LARGE]},
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [ZONE]},
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": ns}}}}),
    )
    .await;
    let options = Options {
        launch: LaunchOptions {
            call_timeout: Duration::from_secs(2),
        },
        ..Options::default()
    };
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);
    let cloud = running.cloud.clone();

    // Every claim the pool ever had, from a watch (a claim deleted within a second counts).
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let watch = tokio::spawn({
        let seen = seen.clone();
        let config = watcher::Config::default().labels(&format!("karpenter.sh/nodepool={ns}"));
        watcher(claims.clone(), config)
            .applied_objects()
            .for_each(move |c| {
                if let Ok(c) = c {
                    seen.lock().expect("lock").insert(c.name_any());
                }
                async {}
            })
    });
    let seen_count = || seen.lock().expect("lock").len();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let nodes: Api<Node> = Api::all(client.clone());

    // 1. The cheapest offering has no capacity: the claim's next type launches.
    cloud.insufficient_capacity(offering(SMALL));
    workload(&client, &ns, "web", "1").await;
    assert_eq!(landed(&pods, &nodes, "web").await, LARGE);
    assert_eq!(seen_count(), 1, "one claim for web");

    // 2. No capacity for anything a 3-CPU pod fits (only the large type; web's node is full).
    cloud.insufficient_capacity(offering(LARGE));
    let calls_before = cloud.create_calls();
    workload(&client, &ns, "big", "3").await;
    let events: Api<Event> = Api::all(client.clone());
    let ice_events = || async {
        events
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("InsufficientCapacityError"))
            .filter(|e| e.message.as_deref().is_some_and(|m| m.contains(LARGE)))
            .map(|e| e.count.unwrap_or(1))
            .sum::<i32>()
    };
    wait_for("InsufficientCapacityError Events", TIMEOUT, || async {
        (ice_events().await >= 2).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let window = Duration::from_secs(10);
    let calls_at = cloud.create_calls();
    tokio::time::sleep(window).await;
    let calls_in_window = cloud.create_calls() - calls_at;
    let attempts = seen_count() - 1;
    eprintln!(
        "insufficient capacity: {} create calls ({calls_in_window} in {window:?}), {attempts} claims tried, {} Events",
        cloud.create_calls() - calls_before,
        ice_events().await
    );
    // A retry storm would be hundreds; the provisioner re-plans once per batch window.
    assert!(
        calls_in_window <= 30,
        "{calls_in_window} launch calls in {window:?}: a retry storm"
    );
    assert!(
        common::pods(&pods, "app=big")
            .await
            .iter()
            .all(|p| !common::serving(p)),
        "big cannot run without capacity"
    );
    assert_eq!(
        common::pool_nodes(&nodes, &ns).await.len(),
        1,
        "no node launched without capacity"
    );
    cloud.capacity_restored(&offering(LARGE));
    assert_eq!(landed(&pods, &nodes, "big").await, LARGE);

    // 3. Throttled once (retryable): the same claim launches on the next try.
    let claims_before = seen_count();
    cloud.fail_next_launch(Error::CreateFailed {
        message: "RequestLimitExceeded: Request limit exceeded.".into(),
    });
    let calls_before = cloud.create_calls();
    workload(&client, &ns, "third", "3").await;
    landed(&pods, &nodes, "third").await;
    assert_eq!(seen_count(), claims_before + 1, "one claim for third");
    assert!(
        cloud.create_calls() - calls_before >= 2,
        "the throttled call was retried"
    );

    // 4. The cloud API hangs: every call is abandoned after 2 s and made again for the same
    // claim; nothing launches until it answers.
    cloud.hang_launches(true);
    let calls_before = cloud.create_calls();
    workload(&client, &ns, "fourth", "3").await;
    wait_for("two abandoned launch calls", TIMEOUT, || async {
        (cloud.create_calls() - calls_before >= 2).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seen_count(), claims_before + 2, "one claim for fourth");
    assert_eq!(common::pool_nodes(&nodes, &ns).await.len(), 3);
    cloud.hang_launches(false);
    landed(&pods, &nodes, "fourth").await;
    assert_eq!(
        seen_count(),
        claims_before + 2,
        "still one claim for fourth"
    );

    // Nothing leaked: four pods, four claims, four nodes, each claim with its node.
    let live = claims
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}")))
        .await
        .expect("claims")
        .items;
    let claim_nodes: BTreeSet<String> = live
        .iter()
        .filter_map(|c| c.status.as_ref()?.node_name.clone())
        .collect();
    let pool_nodes: BTreeSet<String> = common::pool_nodes(&nodes, &ns)
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(live.len(), 4, "{live:?}");
    assert_eq!(claim_nodes, pool_nodes);
    watch.abort();
    drop(running);
}
