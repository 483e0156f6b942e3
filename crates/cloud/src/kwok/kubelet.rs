//! The kubelet the kwok provider plays for its Nodes (controlplane.md §5, kwok's stages):
//! Ready condition, Lease heartbeats, pods Running with a pod IP, deleted pods removed once
//! their grace period is over.
//!
//! It is stateless apart from timers: what it acts on is read from the API server through two
//! watches (Nodes labelled `kwok.x-k8s.io/node=fake`, bound Pods), so it can be restarted at any
//! time. Every write is idempotent; a failed one is retried on the next tick.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt as _};
use serde_json::json;
use tokio::time::Instant;

use super::{
    FAKE_NODE_LABEL, FIELD_MANAGER, NEVER_READY_ANNOTATION, READY_AFTER_ANNOTATION,
    TERMINATED_ANNOTATION, address, node_ip,
};

/// Every this many ticks (5 s at the default 200 ms tick), Pending pods bound to kwok nodes
/// are looked at again.
const RESYNC_TICKS: u32 = 25;

/// Namespace of node heartbeat leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The fake kubelet of every kwok Node; run it with [`Kubelet::run`].
#[derive(Clone)]
pub struct Kubelet {
    client: Client,
    lease_renew: Duration,
    tick: Duration,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("lease_renew", &self.lease_renew)
            .field("tick", &self.tick)
            .finish_non_exhaustive()
    }
}

impl Kubelet {
    /// A kubelet renewing leases every 10 s (a real kubelet's 40 s lease / 4) and checking
    /// timers every 200 ms.
    pub fn new(client: Client) -> Self {
        Kubelet {
            client,
            lease_renew: Duration::from_secs(10),
            tick: Duration::from_millis(200),
        }
    }

    /// Runs until the task is dropped or aborted; watch errors are retried with backoff.
    pub async fn run(self) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let pods: Api<Pod> = Api::all(self.client.clone());
        let (node_store, node_writer) = reflector::store();
        let node_stream = reflector::reflector(
            node_writer,
            watcher::watcher(
                nodes.clone(),
                watcher::Config::default().labels(&format!("{FAKE_NODE_LABEL}=fake")),
            )
            .modify(|n| n.metadata.managed_fields = None),
        )
        .default_backoff()
        .boxed();
        let (pod_store, pod_writer) = reflector::store();
        let pod_stream = reflector::reflector(
            pod_writer,
            watcher::watcher(
                pods.clone(),
                watcher::Config::default().fields("spec.nodeName!="),
            )
            .modify(|p| p.metadata.managed_fields = None),
        )
        .default_backoff()
        .boxed();
        let mut node_stream = node_stream;
        let mut pod_stream = pod_stream;
        let mut renewed: BTreeMap<String, Instant> = BTreeMap::new();
        let mut ticks: u32 = 0;
        let mut tried: BTreeMap<String, Instant> = BTreeMap::new();
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = node_stream.next() => match ev {
                    Some(Ok(Event::Apply(node) | Event::InitApply(node))) => {
                        self.node_tick(&node, &mut renewed).await;
                    }
                    Some(_) => {}
                    None => return,
                },
                ev = pod_stream.next() => match ev {
                    Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => {
                        self.pod(&pod, &node_store).await;
                        if let Some(uid) = pod.metadata.uid.clone() {
                            tried.insert(uid, Instant::now());
                        }
                    }
                    Some(_) => {}
                    None => return,
                },
                _ = ticker.tick() => {
                    for node in node_store.state() {
                        self.node_tick(&node, &mut renewed).await;
                    }
                    let live: std::collections::BTreeSet<String> =
                        node_store.state().iter().map(|n| n.name_any()).collect();
                    renewed.retain(|k, _| live.contains(k));
                    // Deleted pods finish here; every RESYNC_TICKS, bound pods still Pending
                    // start here too: a pod listed before its node's list completed (the node
                    // store fills at the end of a relist, e.g. right after a controller
                    // restart) was skipped when its event arrived, and nothing else would
                    // revisit it. Not every tick: a burst's fresh pods are the events' work.
                    // A pod tried within the last resync period is left alone: in a burst its
                    // start may simply not be observed yet, and a second patch only adds load.
                    ticks = ticks.wrapping_add(1);
                    let resync = ticks.is_multiple_of(RESYNC_TICKS);
                    let period = self.tick * RESYNC_TICKS;
                    if resync {
                        tried.retain(|_, at| at.elapsed() < period * 4);
                    }
                    for pod in pod_store.state() {
                        let pending = matches!(
                            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                            None | Some("Pending")
                        );
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        let recent = tried.get(&uid).is_some_and(|at| at.elapsed() < period);
                        if pod.metadata.deletion_timestamp.is_some() {
                            self.pod(&pod, &node_store).await;
                        } else if resync && pending && !recent {
                            self.pod(&pod, &node_store).await;
                            tried.insert(uid, Instant::now());
                        }
                    }
                }
            }
        }
    }

    /// Ready condition once due, and the lease.
    async fn node_tick(&self, node: &Node, renewed: &mut BTreeMap<String, Instant>) {
        let name = node.name_any();
        let annotations = node.annotations();
        if annotations.contains_key(TERMINATED_ANNOTATION) {
            return;
        }
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let due = annotations
            .get(READY_AFTER_ANNOTATION)
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_none_or(|t| t <= Timestamp::now());
        if !ready && due && !annotations.contains_key(NEVER_READY_ANNOTATION) {
            self.mark_ready(&name).await;
        }
        let stale = renewed
            .get(&name)
            .is_none_or(|t| t.elapsed() >= self.lease_renew);
        if stale && self.renew_lease(node).await {
            renewed.insert(name, Instant::now());
        }
    }

    async fn mark_ready(&self, name: &str) {
        let api: Api<Node> = Api::all(self.client.clone());
        let now = Time(Timestamp::now());
        let conditions: Vec<serde_json::Value> = [
            ("Ready", "True", "KubeletReady"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ]
        .iter()
        .map(|(t, s, r)| {
            json!({"type": t, "status": s, "reason": r, "message": "kwok",
                   "lastHeartbeatTime": now, "lastTransitionTime": now})
        })
        .collect();
        // Strategic merge keys conditions by type.
        let patch = json!({"status": {"conditions": conditions}});
        if let Err(e) = api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            tracing::debug!(error = %e, node = name, "kwok: marking node ready failed");
        }
    }

    async fn renew_lease(&self, node: &Node) -> bool {
        let name = node.name_any();
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": LEASE_NAMESPACE,
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": name,
                    "uid": node.metadata.uid.clone().unwrap_or_default(),
                }],
            },
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": 40,
                "renewTime": MicroTime(Timestamp::now()),
            },
        });
        leases
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&lease),
            )
            .await
            .is_ok()
    }

    /// Running for a new pod on one of our nodes; removal once a deleted pod's grace is over.
    async fn pod(&self, pod: &Pod, nodes: &Store<Node>) {
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return;
        };
        let Some(node) = nodes.get(&reflector::ObjectRef::new(&node_name)) else {
            return;
        };
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if let Some(deleted) = &pod.metadata.deletion_timestamp {
            if deleted.0 <= Timestamp::now() {
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: pod.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                if let Err(e) = api.delete(&name, &dp).await {
                    tracing::debug!(error = %e, pod = %format!("{ns}/{name}"), "kwok: pod removal failed");
                }
            }
            return;
        }
        if node.annotations().contains_key(TERMINATED_ANNOTATION) {
            return;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if !matches!(phase, None | Some("Pending")) {
            return;
        }
        let now = Time(Timestamp::now());
        let pod_ip = address(
            [198, 19, 0, 0],
            17,
            &pod.metadata.uid.clone().unwrap_or(name.clone()),
        );
        let host_ip = node_ip(&node_name);
        let containers: Vec<serde_json::Value> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                json!({
                    "name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                    "containerID": format!("kwok://{}", c.name),
                    "ready": true, "started": true, "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                })
            })
            .collect();
        let conditions: Vec<serde_json::Value> = [
            "PodScheduled",
            "Initialized",
            "PodReadyToStartContainers",
            "ContainersReady",
            "Ready",
        ]
        .iter()
        .map(|t| json!({"type": t, "status": "True", "lastTransitionTime": now}))
        .collect();
        let patch = json!({"status": {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "containerStatuses": containers,
        }});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(error = %e, pod = %format!("{ns}/{name}"), "kwok: pod start failed");
        }
    }
}
