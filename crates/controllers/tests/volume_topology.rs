//! End to end on the real control plane: a pod whose volume can only be used in one zone gets
//! a node in that zone, and kube-scheduler binds it there (its VolumeBinding plugin checks the
//! volume's zone against the node's labels, so a node in another zone would leave it Pending).
//!
//! Two pods, pending at once, on a NodePool that allows every zone of the kwok catalog
//! (`test-zone-a`…`d`, equal prices, so without a volume constraint the plan takes the first,
//! `test-zone-a`):
//! - `static` mounts a claim pre-bound to a hostPath PersistentVolume whose node affinity
//!   requires `test-zone-c` (`storageClassName: ""`): its claim must be in `test-zone-c`.
//! - `provisioned` mounts an unbound claim of a `WaitForFirstConsumer` StorageClass whose
//!   `allowedTopologies` is `test-zone-b`: its claim must be in `test-zone-b`. Nothing on this
//!   control plane provisions volumes, so the test plays the external provisioner: once
//!   kube-scheduler has picked the node (the claim's `volume.kubernetes.io/selected-node`
//!   annotation), it creates a PersistentVolume in that node's zone, pre-bound to the claim,
//!   the PV controller binds it and the scheduler finishes binding the pod.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt as _};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tandem_api::karpenter::NodeClaim;
use tandem_model::labels::ZONE;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);
/// Set by kube-scheduler on a `WaitForFirstConsumer` claim: provision for this node.
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const STATIC_ZONE: &str = "test-zone-c";
const CLASS_ZONE: &str = "test-zone-b";

fn object<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("object")
}

fn pod(name: &str, claim: &str) -> Pod {
    object(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                 "resources": {"requests": {"cpu": "1"}},
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]},
    }))
}

fn claim(name: &str, class: &str, volume: Option<&str>) -> PersistentVolumeClaim {
    let mut spec = json!({"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                          "resources": {"requests": {"storage": "1Gi"}}});
    if let Some(v) = volume {
        spec["volumeName"] = json!(v);
    }
    object(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name}, "spec": spec,
    }))
}

/// A hostPath volume usable only from `zone`, pre-bound to claim `ns/claim`.
fn volume(name: &str, zone: &str, class: &str, ns: &str, claim: &str) -> PersistentVolume {
    object(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": "csi.tandem.test"}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": class,
                 "hostPath": {"path": format!("/tmp/{name}")},
                 "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                              "namespace": ns, "name": claim},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": ZONE, "operator": "In", "values": [zone]}]}]}}},
    }))
}

/// Unwraps a wait, or fails with where the node layer stopped.
async fn or_describe<T>(client: &Client, ns: &str, r: tandem_testkit::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!(
            "{e}\n{}",
            tandem_testkit::describe::node_layer(client, ns).await
        ),
    }
}

/// The zone label of a node and of the NodeClaim that owns it.
async fn zones_of(client: &Client, node: &str) -> (String, String) {
    let node = Api::<Node>::all(client.clone())
        .get(node)
        .await
        .expect("node");
    let claim = node
        .owner_references()
        .iter()
        .find(|o| o.kind == "NodeClaim")
        .map(|o| o.name.clone())
        .expect("owned by its claim");
    let claim = Api::<NodeClaim>::all(client.clone())
        .get(&claim)
        .await
        .expect("claim");
    let zone = |l: &std::collections::BTreeMap<String, String>| l.get(ZONE).cloned();
    (
        zone(node.labels()).unwrap_or_default(),
        zone(claim.labels()).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_nodes_in_the_zone_their_volumes_allow() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("volume-topology").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    common::nodepool(&client, &ns, &class, json!({})).await;
    let _running = common::start(&client);
    let pp = PostParams::default();

    // A pre-made volume in one zone, its claim bound to it.
    let static_pv = format!("{ns}-static");
    Api::<PersistentVolume>::all(client.clone())
        .create(&pp, &volume(&static_pv, STATIC_ZONE, "", &ns, "static"))
        .await
        .expect("create static volume");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    claims
        .create(&pp, &claim("static", "", Some(&static_pv)))
        .await
        .expect("create static claim");

    // A class that provisions into one zone, on first consumer; its claim unbound.
    let storage_class = format!("{ns}-zonal");
    Api::<StorageClass>::all(client.clone())
        .create(
            &pp,
            &object(json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": storage_class},
                "provisioner": "csi.tandem.test", "volumeBindingMode": "WaitForFirstConsumer",
                "allowedTopologies": [{"matchLabelExpressions": [
                    {"key": ZONE, "values": [CLASS_ZONE]}]}],
            })),
        )
        .await
        .expect("create storage class");
    claims
        .create(&pp, &claim("provisioned", &storage_class, None))
        .await
        .expect("create provisioned claim");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for (name, c) in [("static", "static"), ("provisioned", "provisioned")] {
        pods.create(&pp, &pod(name, c)).await.expect("create pod");
    }

    // Play the external provisioner: a volume in the zone of the node the scheduler picked.
    let selected = wait_for(
        "node selected for the provisioned claim",
        TIMEOUT,
        || async {
            claims
                .get("provisioned")
                .await
                .ok()?
                .annotations()
                .get(SELECTED_NODE)
                .cloned()
        },
    )
    .await;
    let selected = or_describe(&client, &ns, selected).await;
    let (selected_zone, _) = zones_of(&client, &selected).await;
    Api::<PersistentVolume>::all(client.clone())
        .create(
            &pp,
            &volume(
                &format!("{ns}-provisioned"),
                &selected_zone,
                &storage_class,
                &ns,
                "provisioned",
            ),
        )
        .await
        .expect("provision volume");

    for (name, zone) in [("static", STATIC_ZONE), ("provisioned", CLASS_ZONE)] {
        let running = wait_for(&format!("pod {name} running"), TIMEOUT, || async {
            let p = pods.get(name).await.ok()?;
            if !common::serving(&p) {
                return None;
            }
            p.spec?.node_name
        })
        .await;
        let node = or_describe(&client, &ns, running).await;
        assert_eq!(
            zones_of(&client, &node).await,
            (zone.to_owned(), zone.to_owned()),
            "pod {name}'s node and claim are in the zone its volume allows"
        );
    }
}
