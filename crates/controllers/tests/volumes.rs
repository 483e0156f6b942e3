//! End to end on the real control plane: a drained node waits for its VolumeAttachments to go
//! before its instance is terminated.
//!
//! A pod gets a node from the controllers; a VolumeAttachment naming that node is created (as
//! a CSI attacher would). Deleting the Node drains it, then holds: the claim says
//! `Drained=True` and `VolumesDetached=Unknown/AwaitingVolumeDetachment`, the Node gets an
//! `AwaitingVolumeDetachment` Event, and the instance stays. Once the attachment is deleted
//! (the volume detached), the instance is terminated and the Node goes.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt as _};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_cloud::CloudProvider as _;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

fn condition(c: &NodeClaim, type_: &str) -> Option<(String, String)> {
    let cond = tandem_api::condition::find(&c.status.as_ref()?.conditions, type_)?;
    Some((
        cond.status.to_string(),
        cond.reason.clone().unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drained_node_waits_for_its_volume_attachments() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("volumes").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    common::nodepool(&client, &ns, &class, json!({})).await;
    let running = common::start(&client);

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "one"},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                 "resources": {"requests": {"cpu": "1"}}}]},
    }))
    .expect("pod");
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
    let nodes: Api<Node> = Api::all(client.clone());
    let claim = nodes
        .get(&node_name)
        .await
        .expect("node")
        .owner_references()
        .iter()
        .find(|o| o.kind == "NodeClaim")
        .map(|o| o.name.clone())
        .expect("owned by its claim");

    let vas: Api<VolumeAttachment> = Api::all(client.clone());
    let va_name = format!("{ns}-va");
    vas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
            "metadata": {"name": va_name},
            "spec": {"attacher": "csi.tandem.test", "nodeName": node_name,
                     "source": {"persistentVolumeName": format!("{ns}-pv")}},
        }))
        .expect("va"),
    )
    .await
    .expect("create volume attachment");

    nodes
        .delete(&node_name, &DeleteParams::default())
        .await
        .expect("delete node");
    let claims: Api<NodeClaim> = Api::all(client.clone());
    wait_for("awaiting volume detachment", TIMEOUT, || async {
        let c = claims.get(&claim).await.ok()?;
        let drained = condition(&c, "Drained")?;
        let volumes = condition(&c, "VolumesDetached")?;
        (drained == ("True".into(), "Drained".into())
            && volumes == ("Unknown".into(), "AwaitingVolumeDetachment".into()))
            .then_some(())
    })
    .await
    .expect("the claim reports Drained and AwaitingVolumeDetachment");
    wait_for("AwaitingVolumeDetachment event", TIMEOUT, || async {
        let e = common::events(&client, "default", "AwaitingVolumeDetachment", &node_name).await;
        (!e.is_empty()).then_some(())
    })
    .await
    .expect("AwaitingVolumeDetachment on the Node");
    // Held: several termination steps pass and the instance is still there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        running
            .cloud
            .get(&tandem_cloud::kwok_provider_id(&node_name))
            .await
            .is_ok(),
        "the instance is not terminated while a volume is attached"
    );
    assert!(nodes.get_opt(&node_name).await.expect("get").is_some());

    vas.delete(&va_name, &DeleteParams::default())
        .await
        .expect("detach");
    wait_for("node and claim gone", TIMEOUT, || async {
        let node_gone = nodes.get_opt(&node_name).await.ok()?.is_none();
        let claim_gone = claims.get_opt(&claim).await.ok()?.is_none();
        (node_gone && claim_gone).then_some(())
    })
    .await
    .expect("terminated once the volume is detached");
    drop(running);
}
