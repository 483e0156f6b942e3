//! The kubelet the kwok provider plays for its Nodes (controlplane.md §5, kwok's stages):
//! Ready condition, Lease heartbeats, pods Running with a pod IP, deleted pods removed once
//! their grace period is over.
//!
//! It is stateless apart from timers: what it acts on is read from the API server through two
//! watches (Nodes labelled `kwok.x-k8s.io/node=fake`, bound Pods), so it can be restarted at any
//! time. Every write is idempotent; a failed one is retried on the next tick.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;

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

/// Writes to the API server in flight at once.
pub const MAX_IN_FLIGHT: usize = 64;

/// Pod writes among them: the rest is kept for node writes (Ready and lease renewals), since a
/// burst of pod starts must not hold up the heartbeats, or on a saturated API server the
/// leases of 1,000 nodes go stale, the node lifecycle controller marks the nodes' pods
/// NotReady, and the scale-out looks slower than it is. (Node writes may use every slot:
/// more writes in flight in all would only load the API server more.)
pub const MAX_POD_WRITES: usize = 48;

/// What a write is for: at most one in flight per key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Ready(String),
    Lease(String),
    Pod(String),
}

/// What a finished write tells the loop.
enum Done {
    Renewed(String, Instant),
    Nothing,
}

/// The writes in flight and the lease renewal times.
#[derive(Default)]
struct Work {
    in_flight: FuturesUnordered<BoxFuture<'static, (Key, Done)>>,
    busy: BTreeSet<Key>,
    /// Pod writes among `in_flight`.
    pods: usize,
    renewed: BTreeMap<String, Instant>,
}

impl Work {
    /// Room for a pod write.
    fn has_room(&self) -> bool {
        self.pods < MAX_POD_WRITES && self.has_node_room()
    }

    /// Room for a node write (Ready or a lease renewal).
    fn has_node_room(&self) -> bool {
        self.in_flight.len() < MAX_IN_FLIGHT
    }

    /// Starts `write` unless one for `key` is in flight or there is no room (a tick retries).
    fn start(&mut self, key: Key, write: impl std::future::Future<Output = Done> + Send + 'static) {
        let pod = matches!(key, Key::Pod(_));
        let room = if pod {
            self.has_room()
        } else {
            self.has_node_room()
        };
        if !room || !self.busy.insert(key.clone()) {
            return;
        }
        if pod {
            self.pods += 1;
        }
        self.in_flight
            .push(Box::pin(async move { (key, write.await) }));
    }

    fn finish(&mut self, (key, done): (Key, Done)) {
        if matches!(key, Key::Pod(_)) {
            self.pods -= 1;
        }
        self.busy.remove(&key);
        if let Done::Renewed(node, at) = done {
            self.renewed.insert(node, at);
        }
    }
}

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
    ///
    /// Writes go out concurrently, up to `MAX_IN_FLIGHT` (64) at once, one at a time per Node or
    /// Pod: a real cluster has one kubelet per node working in parallel, and one at a time here
    /// made 1,000 fake nodes start ≈ 2 pods per second.
    pub async fn run(self) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let pods: Api<Pod> = Api::all(self.client.clone());
        let (node_store, node_writer) = reflector::store();
        let mut node_stream = reflector::reflector(
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
        let mut pod_stream = reflector::reflector(
            pod_writer,
            watcher::watcher(
                pods.clone(),
                watcher::Config::default().fields("spec.nodeName!="),
            )
            .modify(|p| p.metadata.managed_fields = None),
        )
        .default_backoff()
        .boxed();
        let mut work = Work::default();
        let mut ticks: u32 = 0;
        let mut tried: BTreeMap<String, Instant> = BTreeMap::new();
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = node_stream.next(), if work.has_node_room() => match ev {
                    Some(Ok(Event::Apply(node) | Event::InitApply(node))) => {
                        self.node_tick(Arc::new(node), &mut work);
                    }
                    Some(_) => {}
                    None => return,
                },
                ev = pod_stream.next(), if work.has_room() => match ev {
                    Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => {
                        if let Some(uid) = pod.metadata.uid.clone() {
                            tried.insert(uid, Instant::now());
                        }
                        self.pod(Arc::new(pod), &node_store, &mut work);
                    }
                    Some(_) => {}
                    None => return,
                },
                Some(done) = work.in_flight.next() => work.finish(done),
                _ = ticker.tick() => {
                    for node in node_store.state() {
                        self.node_tick(node, &mut work);
                    }
                    let live: std::collections::BTreeSet<String> =
                        node_store.state().iter().map(|n| n.name_any()).collect();
                    work.renewed.retain(|k, _| live.contains(k));
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
                        // To start, or to make Ready again.
                        let due = matches!(
                            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                            None | Some("Pending")
                        ) || not_ready(&pod);
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        let recent = tried.get(&uid).is_some_and(|at| at.elapsed() < period);
                        if pod.metadata.deletion_timestamp.is_some() {
                            self.pod(pod, &node_store, &mut work);
                        } else if resync && due && !recent && work.has_room() {
                            self.pod(pod, &node_store, &mut work);
                            tried.insert(uid, Instant::now());
                        }
                    }
                }
            }
        }
    }

    /// Ready condition once due, and the lease.
    fn node_tick(&self, node: Arc<Node>, work: &mut Work) {
        let name = node.name_any();
        let annotations = node.annotations();
        if annotations.contains_key(TERMINATED_ANNOTATION) {
            return;
        }
        let ready = node_ready(&node);
        let due = annotations
            .get(READY_AFTER_ANNOTATION)
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_none_or(|t| t <= Timestamp::now());
        if !ready && due && !annotations.contains_key(NEVER_READY_ANNOTATION) {
            let kubelet = self.clone();
            let n = name.clone();
            work.start(Key::Ready(name.clone()), async move {
                kubelet.mark_ready(&n).await;
                Done::Nothing
            });
        }
        let stale = work
            .renewed
            .get(&name)
            .is_none_or(|t| t.elapsed() >= self.lease_renew);
        if stale {
            let kubelet = self.clone();
            work.start(Key::Lease(name.clone()), async move {
                let at = Instant::now();
                if kubelet.renew_lease(&node).await {
                    Done::Renewed(name, at)
                } else {
                    Done::Nothing
                }
            });
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

    /// Starts the pod's work (if any is due and none is in flight for it).
    fn pod(&self, pod: Arc<Pod>, nodes: &Store<Node>, work: &mut Work) {
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return;
        };
        let Some(node) = nodes.get(&reflector::ObjectRef::new(&node_name)) else {
            return;
        };
        let key = Key::Pod(pod.metadata.uid.clone().unwrap_or_else(|| pod.name_any()));
        let kubelet = self.clone();
        work.start(key, async move {
            kubelet.pod_work(&pod, &node, &node_name).await;
            Done::Nothing
        });
    }

    /// Running for a new pod on one of our nodes; Ready again for a Running pod marked NotReady;
    /// removal once a deleted pod's grace is over.
    async fn pod_work(&self, pod: &Pod, node: &Node, node_name: &str) {
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
        if phase == Some("Running") && not_ready(pod) && node_ready(node) {
            // The node lifecycle controller marked it NotReady while the node's lease was
            // stale; a kubelet's status manager asserts readiness again once it is back.
            self.ready_again(&api, pod).await;
            return;
        }
        if !matches!(phase, None | Some("Pending")) {
            return;
        }
        let now = Time(Timestamp::now());
        let pod_ip = address(
            [198, 19, 0, 0],
            17,
            &pod.metadata.uid.clone().unwrap_or(name.clone()),
        );
        let host_ip = node_ip(node_name);
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

impl Kubelet {
    /// Sets a Running pod's `Ready` condition back to True (strategic merge keys conditions
    /// by type, so the others stay).
    async fn ready_again(&self, api: &Api<Pod>, pod: &Pod) {
        let now = Time(Timestamp::now());
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
        if let Err(e) = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            tracing::debug!(error = %e, pod = %pod.name_any(), "kwok: pod readiness not restored");
        }
    }
}

/// A pod whose `Ready` condition is False (as the node lifecycle controller leaves it).
fn not_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_deref());
    ready_status(
        conditions
            .unwrap_or_default()
            .iter()
            .map(|c| (&*c.type_, &*c.status)),
    ) == Some("False")
}

/// A node whose `Ready` condition is True.
fn node_ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref());
    ready_status(
        conditions
            .unwrap_or_default()
            .iter()
            .map(|c| (&*c.type_, &*c.status)),
    ) == Some("True")
}

/// The status of the `Ready` condition among `(type, status)` pairs.
fn ready_status<'a>(mut conditions: impl Iterator<Item = (&'a str, &'a str)>) -> Option<&'a str> {
    conditions.find(|(t, _)| *t == "Ready").map(|(_, s)| s)
}
