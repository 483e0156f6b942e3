//! End to end on the real control plane: seed 004 (`examples/seeds/004_27f72e644f865756`),
//! ten nginx pods of 500m on the seed's NodePool, launched from the AWS us-east-1 catalog by
//! the kwok provider. Every pod runs, and the NodeClaims the controllers created are what
//! `tandem_nodescaler::plan` chooses for the same pods and NodePool: as many claims, the same
//! prices (the cheapest type holding each group), the same pod counts per claim.
//!
//! The one change to the seed: the NodePool's `nodeClassRef` names a KWOKNodeClass instead of
//! the EC2NodeClass, since the test has no EC2; requirements, limits and pods are unchanged.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_model::catalog::{Catalog, UsdPerHour};
use tandem_model::labels;
use tandem_nodescaler::snapshot::Snapshot;
use tandem_testkit::{ControlPlane, wait_for, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(120);
const SEED: &str = "examples/seeds/004_27f72e644f865756";

fn manifest(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(workspace_root().join(SEED).join(file)).expect("seed file");
    serde_yaml_ng::from_str(&text).expect("yaml")
}

/// The price of the offering a launched claim got (its type, zone and capacity type labels).
fn claim_price(catalog: &Catalog, claim: &NodeClaim) -> (String, UsdPerHour) {
    let l = claim.metadata.labels.clone().unwrap_or_default();
    let get = |k: &str| l.get(k).cloned().unwrap_or_default();
    let name = get(labels::INSTANCE_TYPE);
    let it = catalog.get(&name).expect("launched type is in the catalog");
    let price = it
        .offerings()
        .iter()
        .find(|o| {
            o.zone == get(labels::ZONE) && o.capacity_type.as_str() == get(labels::CAPACITY_TYPE)
        })
        .map(|o| o.price)
        .expect("launched offering");
    (name, price)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_004_nginx_runs_on_the_claims_plan_chooses() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("seed-004").await.expect("namespace");
    let catalog = Arc::new(Catalog::aws_us_east_1().expect("aws catalog"));

    common::node_class(&client, "default").await;
    let mut pool = manifest("01-nodepool-default.yaml");
    pool["spec"]["template"]["spec"]["nodeClassRef"] = serde_json::json!({
        "group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"});
    let pool: NodePool = serde_json::from_value(pool).expect("nodepool");
    let pools: Api<NodePool> = Api::all(client.clone());
    pools
        .create(&PostParams::default(), &pool)
        .await
        .expect("create nodepool");
    let _running = common::start_with(
        &client,
        catalog.clone(),
        tandem_controllers::Options::default(),
    );

    let deployment: Deployment =
        serde_json::from_value(manifest("03-deployment-nginx.yaml")).expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create nginx");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let up = wait_for("10 nginx Running", TIMEOUT, || async {
        let list = common::pods(&pods, "app=nginx").await;
        let n = list.iter().filter(|p| common::serving(p)).count();
        (n == 10).then_some(list)
    })
    .await
    .expect("every nginx pod runs");

    // What the controllers launched.
    let claims = Api::<NodeClaim>::all(client.clone())
        .list(&ListParams::default().labels("karpenter.sh/nodepool=default"))
        .await
        .expect("claims")
        .items;
    let mut pods_per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &up {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .expect("bound");
        *pods_per_node.entry(node).or_default() += 1;
    }
    let mut got: Vec<(UsdPerHour, usize, String)> = claims
        .iter()
        .map(|c| {
            let (name, price) = claim_price(&catalog, c);
            let node = c
                .status
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            (price, pods_per_node.get(&node).copied().unwrap_or(0), name)
        })
        .collect();
    got.sort();

    // What plan chooses for the same NodePool and pods, all pending at once.
    let api_pool = pools.get("default").await.expect("pool");
    let mut snap = Snapshot::new()
        .catalog("default", catalog.clone())
        .nodepool(tandem_state::convert::nodepool(&api_pool));
    for (i, p) in up.iter().enumerate() {
        let pending = tandem_state::convert::pending_pod(p, u64::try_from(i).unwrap_or(0))
            .expect("pod converts");
        snap.pods.push(pending);
    }
    let plan = tandem_nodescaler::plan(&snap, &tandem_nodescaler::Options::default());
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    let mut want: Vec<(UsdPerHour, usize, String)> = plan
        .launches
        .iter()
        .map(|l| {
            let first = l.instance_types.first().map(|o| o.name.clone());
            (l.price, l.pods.len(), first.unwrap_or_default())
        })
        .collect();
    want.sort();
    eprintln!("launched: {got:?}\nplanned:  {want:?}");
    let strip = |v: &[(UsdPerHour, usize, String)]| -> Vec<(UsdPerHour, usize)> {
        v.iter().map(|(p, n, _)| (*p, *n)).collect()
    };
    assert_eq!(
        strip(&got),
        strip(&want),
        "the claims created have the planned prices and pod counts"
    );
}
