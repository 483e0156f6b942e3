//! The kwok provider on the real control plane: a launch becomes a Node that turns Ready, pods
//! bound to it run (and are Ready again after the node lifecycle controller marked them
//! NotReady), deleted pods go away, a terminated instance is gone, and injected faults
//! surface as typed errors.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_api::kwok::KWOKNodeClass;
use tandem_cloud::kwok::{Kubelet, KwokCloud, KwokOptions};
use tandem_cloud::{CloudProvider, Error, OfferingRef};
use tandem_testkit::{ControlPlane, wait_for, wait_for_object};

const TIMEOUT: Duration = Duration::from_secs(60);

fn claim(name: &str, class: &str) -> NodeClaim {
    serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": name, "labels": {"karpenter.sh/nodepool": "test"}},
        "spec": {
            "requirements": [
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c-2x-amd64-linux"]},
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
            ],
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class},
        },
    }))
    .expect("claim")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launched_node_turns_ready_runs_pods_and_is_gone_after_delete() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("kwok").await.expect("namespace");
    let classes: Api<KWOKNodeClass> = Api::all(client.clone());
    let class = format!("{ns}-class");
    classes
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
    let kubelet = tokio::spawn(Kubelet::new(client.clone()).run());
    let cloud = KwokCloud::new(
        client.clone(),
        KwokOptions {
            ready_delay: Duration::from_millis(300),
            ..KwokOptions::default()
        },
    );

    let name = format!("{ns}-a");
    let instance = cloud.create(&claim(&name, &class)).await.expect("create");
    assert_eq!(instance.instance_type, "c-2x-amd64-linux");
    assert_eq!(instance.provider_id, format!("kwok://{name}"));
    let again = cloud.create(&claim(&name, &class)).await.expect("again");
    assert_eq!(
        (
            &again.provider_id,
            &again.instance_type,
            &again.zone,
            &again.capacity
        ),
        (
            &instance.provider_id,
            &instance.instance_type,
            &instance.zone,
            &instance.capacity
        ),
        "create is idempotent by claim name"
    );
    assert!(
        cloud
            .list()
            .await
            .expect("list")
            .iter()
            .any(|i| i.provider_id == instance.provider_id)
    );

    let nodes: Api<Node> = Api::all(client.clone());
    wait_for_object(&nodes, &name, TIMEOUT, |n: Option<&Node>| {
        n.and_then(|n| {
            n.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")
                .cloned()
        })
        .is_some_and(|c| c.status == "True")
    })
    .await
    .expect("node turns Ready");

    // A pod bound straight to the node (the unregistered taint would keep the scheduler away).
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"nodeName": name, "terminationGracePeriodSeconds": 1,
                 "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "c", "image": "registry.invalid/x:1"}]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let running = wait_for_object(&pods, "p", TIMEOUT, |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.phase.clone()).as_deref() == Some("Running")
    })
    .await
    .expect("pod runs")
    .expect("pod exists");
    let ip = running.status.and_then(|s| s.pod_ip).expect("pod ip");
    assert!(ip.starts_with("198.19."), "{ip}");
    // What the node lifecycle controller does when a lease goes stale: Ready=False on the
    // pod. With the node Ready, the kubelet asserts readiness again, as a kubelet's status
    // manager would.
    let ready = |p: Option<&Pod>| -> Option<String> {
        p?.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status.clone())
    };
    wait_for_object(&pods, "p", TIMEOUT, |p: Option<&Pod>| {
        ready(p).as_deref() == Some("True")
    })
    .await
    .expect("pod Ready");
    pods.patch_status(
        "p",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "NodeNotReady"}]}})),
    )
    .await
    .expect("mark NotReady");
    wait_for_object(&pods, "p", TIMEOUT, |p: Option<&Pod>| {
        ready(p).as_deref() == Some("True")
    })
    .await
    .expect("the kubelet marks the pod Ready again");
    pods.delete("p", &DeleteParams::default())
        .await
        .expect("delete pod");
    wait_for_object(&pods, "p", TIMEOUT, |p: Option<&Pod>| p.is_none())
        .await
        .expect("deleted pod is removed after its grace period");

    cloud.delete(&instance.provider_id).await.expect("delete");
    cloud
        .delete(&instance.provider_id)
        .await
        .expect("delete again is success");
    wait_for("instance gone", TIMEOUT, || async {
        cloud
            .get(&instance.provider_id)
            .await
            .err()
            .filter(Error::is_not_found)
    })
    .await
    .expect("get reports NotFound");

    // Faults.
    cloud.fail_next_launch(Error::CreateFailed {
        message: "injected".into(),
    });
    assert!(matches!(
        cloud.create(&claim(&format!("{ns}-b"), &class)).await,
        Err(Error::CreateFailed { .. })
    ));
    for zone in ["test-zone-a", "test-zone-b", "test-zone-c", "test-zone-d"] {
        cloud.insufficient_capacity(OfferingRef {
            instance_type: "c-2x-amd64-linux".into(),
            zone: zone.into(),
            capacity_type: "on-demand".into(),
        });
    }
    assert!(matches!(
        cloud.create(&claim(&format!("{ns}-c"), &class)).await,
        Err(Error::InsufficientCapacity { .. })
    ));
    assert!(matches!(
        cloud
            .create(&claim(&format!("{ns}-d"), "no-such-class"))
            .await,
        Err(Error::InsufficientCapacity { .. })
    ));
    kubelet.abort();
}
