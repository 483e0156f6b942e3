//! Pod-layer coordination on the real control plane. Two Deployments, each scaled by a
//! ScaledObject (default cooldown and stabilization: a 300 s window), each on its own NodePool
//! with `consolidateAfter: 0s`; one pool opts out with `tandem.dev/coordinate-with-pod-layer:
//! "false"`. Both scale 3 → 1: the opted-out pool loses its two empty nodes at once, as
//! Karpenter would; the coordinated pool keeps them (a `DisruptionBlocked` Event says why), and
//! when its Deployment goes back to 3 the pods run on them without a single new launch — the
//! seed-002 oscillation, gone.
//!
//! The pod layer itself is not running here: the ScaledObjects are read for their targets and
//! windows, the replica changes are seen in the pods, which is all the node layer uses.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use tandem_api::karpenter::NodeClaim;
use tandem_controllers::Options;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consolidation_keeps_room_for_pods_the_pod_layer_may_bring_back() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("coordination").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    let (kept, free) = (format!("{ns}-kept"), format!("{ns}-free"));
    common::coordination::pool(&client, &kept, &class, true, "0s").await;
    common::coordination::pool(&client, &free, &class, false, "0s").await;
    let mut options = Options::default();
    options.disruption.poll_interval = Duration::from_secs(1);
    options.disruption.decide.validation_delay_ms = 2_000;
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);

    common::coordination::workload(&client, &ns, "bursty", &kept).await;
    common::coordination::workload(&client, &ns, "plain", &free).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for("6 pods serving", TIMEOUT, || async {
        (common::coordination::serving(&pods, "bursty").await == 3
            && common::coordination::serving(&pods, "plain").await == 3)
            .then_some(())
    })
    .await
    .expect("both run");
    let nodes: Api<Node> = Api::all(client.clone());
    assert_eq!(
        (
            common::coordination::count(&nodes, &kept).await,
            common::coordination::count(&nodes, &free).await
        ),
        (3, 3)
    );

    common::coordination::scale(&client, &ns, "bursty", 1).await;
    common::coordination::scale(&client, &ns, "plain", 1).await;
    // The opted-out pool behaves as Karpenter: its empty nodes go.
    wait_for("the opted-out pool down to 1 node", TIMEOUT, || async {
        (common::coordination::count(&nodes, &free).await == 1).then_some(())
    })
    .await
    .expect("the opted-out pool consolidates");
    // Give the coordinated pool as many passes again; its nodes stay, and say why.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        common::coordination::count(&nodes, &kept).await,
        3,
        "the coordinated pool kept its nodes for the pods that may come back"
    );
    let blocked = common::events(&client, "default", "DisruptionBlocked", "").await;
    assert!(
        blocked
            .iter()
            .any(|e| e.message.as_deref().is_some_and(
                |m| m.contains("may bring back") && m.contains(&format!("{ns}/bursty"))
            )),
        "a deferral Event names the ScaledObject: {:?}",
        blocked
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
    );

    // The load returns: the pods land on the kept nodes, nothing is launched.
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let claims_before = claims
        .list_metadata(&ListParams::default().labels(&format!("karpenter.sh/nodepool={kept}")))
        .await
        .expect("claims")
        .items
        .len();
    common::coordination::scale(&client, &ns, "bursty", 3).await;
    wait_for("3 bursty pods serving again", TIMEOUT, || async {
        (common::coordination::serving(&pods, "bursty").await == 3).then_some(())
    })
    .await
    .expect("back to 3");
    let claims_after = claims
        .list_metadata(&ListParams::default().labels(&format!("karpenter.sh/nodepool={kept}")))
        .await
        .expect("claims")
        .items
        .len();
    assert_eq!(
        (claims_before, claims_after),
        (3, 3),
        "no node was launched for the returning pods"
    );
    drop(running);
}
