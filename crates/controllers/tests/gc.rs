//! End to end on the real control plane: garbage collection, with short intervals.
//!
//! 1. An instance launched for a NodeClaim that does not exist (a controller that crashed
//!    between `create` and writing the claim, or a claim removed by hand) is terminated once
//!    its grace has passed: its kwok Node goes away.
//! 2. A registered NodeClaim whose instance vanished outside Tandem (its Node removed with the
//!    finalizer stripped) is deleted, and its own finalizer lets it go.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt as _};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_cloud::CloudProvider as _;
use tandem_controllers::Options;
use tandem_controllers::gc::GcOptions;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_instances_and_instanceless_claims_are_collected() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("gc").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    common::nodepool(&client, &ns, &class, json!({})).await;
    let options = Options {
        gc: GcOptions {
            interval: Duration::from_secs(1),
            orphan_grace: Duration::from_secs(3),
            claim_grace: Duration::from_secs(2),
        },
        ..Options::default()
    };
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);
    let nodes: Api<Node> = Api::all(client.clone());
    let claims: Api<NodeClaim> = Api::all(client.clone());

    // 1. An instance whose claim never made it to the API server.
    let ghost: NodeClaim = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": format!("{ns}-ghost"), "labels": {"karpenter.sh/nodepool": ns}},
        "spec": {
            "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                              "values": ["c-2x-amd64-linux"]}],
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}},
    }))
    .expect("claim");
    let instance = running.cloud.create(&ghost).await.expect("launch");
    let node_name = instance
        .provider_id
        .trim_start_matches("kwok://")
        .to_owned();
    assert!(nodes.get_opt(&node_name).await.expect("get").is_some());
    let t0 = Instant::now();
    wait_for("orphan terminated", TIMEOUT, || async {
        nodes
            .get_opt(&node_name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .expect("the orphaned instance is terminated");
    let took = t0.elapsed();
    eprintln!("orphaned instance {node_name} terminated after {took:?} (grace 3 s)");
    assert!(
        took >= Duration::from_secs(2),
        "not before its grace (created just before t0)"
    );
    assert!(matches!(
        running.cloud.get(&instance.provider_id).await,
        Err(tandem_cloud::Error::NodeClaimNotFound { .. })
    ));

    // 2. A claim whose instance vanished behind Tandem's back.
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "one"},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                 "resources": {"requests": {"cpu": "1"}}}]},
    }))
    .expect("pod");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let node_name = wait_for("pod running", TIMEOUT, || async {
        let p = pods.get("one").await.ok()?;
        if !common::serving(&p) {
            return None;
        }
        p.spec?.node_name
    })
    .await
    .expect("pod runs on a launched node");
    let node = nodes.get(&node_name).await.expect("node");
    let claim = node
        .owner_references()
        .iter()
        .find(|o| o.kind == "NodeClaim")
        .map(|o| o.name.clone())
        .expect("owned by its claim");
    wait_for("claim registered", TIMEOUT, || async {
        let c = claims.get(&claim).await.ok()?;
        c.status
            .as_ref()
            .and_then(|s| tandem_api::condition::find(&s.conditions, "Registered"))
            .is_some_and(|c| c.is_true())
            .then_some(())
    })
    .await
    .expect("registered");
    nodes
        .patch(
            &node_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("strip finalizer");
    nodes
        .delete(&node_name, &DeleteParams::default())
        .await
        .expect("delete node");
    let t0 = Instant::now();
    wait_for("instance-less claim collected", TIMEOUT, || async {
        claims.get_opt(&claim).await.ok()?.is_none().then_some(())
    })
    .await
    .expect("the claim whose instance is gone is deleted");
    eprintln!(
        "claim {claim} without an instance collected after {:?}",
        t0.elapsed()
    );
    drop(running);
}
