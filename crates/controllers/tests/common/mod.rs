//! What the node-layer e2e tests share: a KWOKNodeClass, a NodePool on it, the controllers and
//! the kwok kubelet running in-process against the shared control plane.

#![allow(dead_code)]

pub mod coordination;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::NodePool;
use tandem_api::kwok::KWOKNodeClass;
use tandem_cloud::kwok::{Kubelet, KwokCloud, KwokOptions};
use tandem_controllers::{Controllers, Options};
use tandem_model::catalog::Catalog;
use tokio::task::JoinHandle;

/// The controllers, the kwok kubelet and the provider, stopped on drop.
pub struct Running {
    pub controllers: Controllers,
    pub cloud: Arc<KwokCloud>,
    kubelet: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kubelet.abort();
    }
}

/// Starts the kwok kubelet, the provider and the controllers.
pub fn start(client: &Client) -> Running {
    start_with(client, Arc::new(Catalog::kwok()), Options::default())
}

/// Like [`start`], with the kwok provider launching from `catalog` (the AWS one, for seeds
/// whose NodePools select AWS labels) and the controllers' `options`.
pub fn start_with(client: &Client, catalog: Arc<Catalog>, options: Options) -> Running {
    start_kwok(client, catalog, options, KwokOptions::default())
}

/// Like [`start_with`], with the kwok provider's boot timings.
pub fn start_kwok(
    client: &Client,
    catalog: Arc<Catalog>,
    options: Options,
    kwok: KwokOptions,
) -> Running {
    // Logs with RUST_LOG=tandem_controllers=debug; a second init is a no-op.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let kubelet = tokio::spawn(Kubelet::new(client.clone()).run());
    let cloud = Arc::new(KwokCloud::with_catalog(
        client.clone(),
        catalog.clone(),
        kwok,
    ));
    let controllers = Controllers::spawn(client.clone(), cloud.clone(), catalog, options);
    Running {
        controllers,
        cloud,
        kubelet,
    }
}

/// Creates the KWOKNodeClass `name`.
pub async fn node_class(client: &Client, name: &str) {
    Api::<KWOKNodeClass>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass",
                "metadata": {"name": name}, "spec": {},
            }))
            .expect("class"),
        )
        .await
        .expect("create class");
}

/// Creates a NodePool `name` on class `class` for linux/amd64 spot or on-demand capacity, with
/// `spec` merged over `spec.template.spec` and `pool` over `spec`.
pub async fn nodepool(client: &Client, name: &str, class: &str, pool: serde_json::Value) {
    let mut body = json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {"limits": {"cpu": "1000"}, "template": {"spec": {
            "requirements": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]},
            ],
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
    });
    if let (Some(spec), Some(extra)) = (body["spec"].as_object_mut(), pool.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    let np: NodePool = serde_json::from_value(body).expect("nodepool");
    Api::<NodePool>::all(client.clone())
        .create(&PostParams::default(), &np)
        .await
        .expect("create nodepool");
}

/// True for a Running pod whose Ready condition is True and that is not being deleted.
pub fn serving(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True")
}

/// The pods matching `selector`.
pub async fn pods(api: &Api<Pod>, selector: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Events in `namespace` with `reason` (any when empty) about an object named `name` (any name when empty).
pub async fn events(client: &Client, namespace: &str, reason: &str, name: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| reason.is_empty() || e.reason.as_deref() == Some(reason))
        .filter(|e| name.is_empty() || e.involved_object.name.as_deref() == Some(name))
        .collect()
}

/// The Nodes of NodePool `pool` (empty when the list fails: callers poll).
pub async fn pool_nodes(
    nodes: &Api<k8s_openapi::api::core::v1::Node>,
    pool: &str,
) -> Vec<k8s_openapi::api::core::v1::Node> {
    nodes
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// How many NodeClaims NodePool `pool` has (`usize::MAX` when the list fails: callers poll).
pub async fn pool_claims(api: &Api<tandem_api::karpenter::NodeClaim>, pool: &str) -> usize {
    api.list_metadata(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await
        .map(|l| l.items.len())
        .unwrap_or(usize::MAX)
}

/// The sum of the values of every sample in Prometheus `text` whose line starts with `prefix`
/// (a metric name and the start of its labels).
pub fn metric_sum(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
