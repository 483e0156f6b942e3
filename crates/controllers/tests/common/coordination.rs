//! Two NodePools and ScaledObject-scaled Deployments for the coordination tests: one pool
//! coordinated with the pod layer, one opted out with the annotation.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::NodePool;

/// Creates NodePool `name` of c-2x on-demand kwok nodes, `consolidateAfter` as given, a 100 %
/// budget, and the opt-out annotation unless `coordinated`.
pub async fn pool(
    client: &Client,
    name: &str,
    class: &str,
    coordinated: bool,
    consolidate_after: &str,
) {
    let mut annotations = serde_json::Map::new();
    if !coordinated {
        annotations.insert(
            "tandem.dev/coordinate-with-pod-layer".into(),
            json!("false"),
        );
    }
    let np: NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"limits": {"cpu": "1000"},
            "disruption": {"consolidateAfter": consolidate_after, "budgets": [{"nodes": "100%"}]},
            "template": {"spec": {
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c-2x-amd64-linux"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
    }))
    .expect("nodepool");
    Api::<NodePool>::all(client.clone())
        .create(&PostParams::default(), &np)
        .await
        .expect("create nodepool");
}

pub async fn workload(client: &Client, ns: &str, name: &str, pool: &str) {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "nodeSelector": {"karpenter.sh/nodepool": pool},
                "containers": [{"name": "c", "image": "registry.invalid/worker:1",
                                "resources": {"requests": {"cpu": "1500m"}}}]}}},
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
    let so: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"scaleTargetRef": {"name": name}, "minReplicaCount": 1,
            "triggers": [{"type": "cron", "metadata": {
                "timezone": "UTC", "start": "0 8 * * *", "end": "0 9 * * *",
                "desiredReplicas": "3"}}]},
    }))
    .expect("scaledobject");
    let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "keda.sh",
        "v1alpha1",
        "ScaledObject",
    ));
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
        .create(&PostParams::default(), &so)
        .await
        .expect("create scaledobject");
}

pub async fn scale(client: &Client, ns: &str, name: &str, n: i32) {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": n}})),
        )
        .await
        .expect("scale");
}

pub async fn count(api: &Api<Node>, pool: &str) -> usize {
    api.list_metadata(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await
        .map(|l| l.items.len())
        .unwrap_or(usize::MAX)
}

pub async fn serving(pods: &Api<Pod>, app: &str) -> usize {
    super::pods(pods, &format!("app={app}"))
        .await
        .iter()
        .filter(|p| super::serving(p))
        .count()
}
