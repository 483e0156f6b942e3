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
        let mut pod_store = Pods::default();
        let mut pod_stream = watcher::watcher(
            pods.clone(),
            watcher::Config::default().fields("spec.nodeName!="),
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
                    Some(Ok(ev)) => {
                        if let Some(pod) = pod_store.apply(ev) {
                            tried.insert(pod.uid.clone(), Instant::now());
                            self.pod(pod, &node_store, &mut work);
                        }
                    }
                    Some(Err(_)) => {}
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
                    for pod in pod_store.live.values() {
                        // To start, or to make Ready again.
                        let due = matches!(pod.phase.as_deref(), None | Some("Pending"))
                            || pod.not_ready;
                        let recent = tried.get(&pod.uid).is_some_and(|at| at.elapsed() < period);
                        if pod.deleted_at.is_some() {
                            self.pod(pod.clone(), &node_store, &mut work);
                        } else if resync && due && !recent && work.has_room() {
                            self.pod(pod.clone(), &node_store, &mut work);
                            tried.insert(pod.uid.clone(), Instant::now());
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
    fn pod(&self, pod: Arc<BoundPod>, nodes: &Store<Node>, work: &mut Work) {
        let Some(node) = nodes.get(&reflector::ObjectRef::new(&pod.node)) else {
            return;
        };
        let key = Key::Pod(pod.uid.clone());
        let kubelet = self.clone();
        work.start(key, async move {
            kubelet.pod_work(&pod, &node).await;
            Done::Nothing
        });
    }

    /// Running for a new pod on one of our nodes; Ready again for a Running pod marked NotReady;
    /// removal once a deleted pod's grace is over.
    async fn pod_work(&self, pod: &BoundPod, node: &Node) {
        let (ns, name, node_name) = (&pod.namespace, &pod.name, &pod.node);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if let Some(deleted) = pod.deleted_at {
            if deleted <= Timestamp::now() {
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(pod.uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                if let Err(e) = api.delete(name, &dp).await {
                    tracing::debug!(error = %e, pod = %format!("{ns}/{name}"), "kwok: pod removal failed");
                }
            }
            return;
        }
        if node.annotations().contains_key(TERMINATED_ANNOTATION) {
            return;
        }
        let phase = pod.phase.as_deref();
        if phase == Some("Running") && pod.not_ready && node_ready(node) {
            // The node lifecycle controller marked it NotReady while the node's lease was
            // stale; a kubelet's status manager asserts readiness again once it is back.
            self.ready_again(&api, name).await;
            return;
        }
        if !matches!(phase, None | Some("Pending")) {
            return;
        }
        let now = Time(Timestamp::now());
        let pod_ip = address([198, 19, 0, 0], 17, &pod.uid);
        let host_ip = node_ip(node_name);
        let containers: Vec<serde_json::Value> = pod
            .containers
            .iter()
            .map(|(container, image)| {
                json!({
                    "name": container, "image": image, "imageID": "",
                    "containerID": format!("kwok://{container}"),
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
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(error = %e, pod = %format!("{ns}/{name}"), "kwok: pod start failed");
        }
    }
}

impl Kubelet {
    /// Sets a Running pod's `Ready` condition back to True (strategic merge keys conditions
    /// by type, so the others stay).
    async fn ready_again(&self, api: &Api<Pod>, name: &str) {
        let now = Time(Timestamp::now());
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
        if let Err(e) = api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            tracing::debug!(error = %e, pod = %name, "kwok: pod readiness not restored");
        }
    }
}

/// What this kubelet reads of a bound Pod. It holds every bound pod of the cluster, and a
/// k8s-openapi Pod costs tens of KB even stripped of what is not read (a profile at 9,000
/// pods put this store at a third of the process's heap while it kept whole Pods).
#[derive(Debug, Clone, PartialEq)]
struct BoundPod {
    namespace: String,
    name: String,
    uid: String,
    /// `spec.nodeName`.
    node: String,
    /// `metadata.deletionTimestamp` plus nothing: the pod goes once it has passed.
    deleted_at: Option<Timestamp>,
    /// `status.phase`.
    phase: Option<String>,
    /// Its `Ready` condition is False (as the node lifecycle controller leaves it).
    not_ready: bool,
    /// Container names and images, for the statuses a start writes.
    containers: Vec<(String, String)>,
}

impl BoundPod {
    /// None for a pod without a node (the watch selects bound pods, so only a malformed one).
    fn of(pod: Pod) -> Option<BoundPod> {
        let spec = pod.spec?;
        let status = pod.status;
        Some(BoundPod {
            namespace: pod.metadata.namespace.unwrap_or_default(),
            uid: pod
                .metadata
                .uid
                .or_else(|| pod.metadata.name.clone())
                .unwrap_or_default(),
            name: pod.metadata.name.unwrap_or_default(),
            node: spec.node_name?,
            deleted_at: pod.metadata.deletion_timestamp.map(|t| t.0),
            not_ready: not_ready(status.as_ref()),
            phase: status.and_then(|s| s.phase),
            // By reference, not `into_iter()`: collecting from the owned Vec would reuse its
            // allocation in place, keeping a 2 KB k8s-openapi Container's room per pod alive
            // for a 48-byte pair (18 MiB at 9,000 pods, the largest site of the heap profile).
            containers: spec
                .containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect(),
        })
    }
}

/// The bound pods by `namespace/name`, kept from the watch as a reflector keeps its store: a
/// relist (`Init` … `InitDone`) replaces them at its end, so pods deleted while the watch was
/// down are dropped.
#[derive(Debug, Default)]
struct Pods {
    live: std::collections::HashMap<String, Arc<BoundPod>>,
    relist: Option<std::collections::HashMap<String, Arc<BoundPod>>>,
}

impl Pods {
    /// Applies one watch event; returns the pod to act on (an added, changed or relisted one).
    fn apply(&mut self, ev: Event<Pod>) -> Option<Arc<BoundPod>> {
        let key = |pod: &Pod| {
            format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default()
            )
        };
        match ev {
            Event::Init => {
                self.relist = Some(std::collections::HashMap::new());
                None
            }
            Event::InitApply(pod) => {
                let k = key(&pod);
                let pod = Arc::new(BoundPod::of(pod)?);
                self.relist
                    .get_or_insert_with(Default::default)
                    .insert(k, pod.clone());
                Some(pod)
            }
            Event::InitDone => {
                if let Some(fresh) = self.relist.take() {
                    self.live = fresh;
                }
                None
            }
            Event::Apply(pod) => {
                let k = key(&pod);
                let pod = Arc::new(BoundPod::of(pod)?);
                self.live.insert(k, pod.clone());
                Some(pod)
            }
            Event::Delete(pod) => {
                self.live.remove(&key(&pod));
                None
            }
        }
    }
}

/// A pod whose `Ready` condition is False (as the node lifecycle controller leaves it).
fn not_ready(status: Option<&k8s_openapi::api::core::v1::PodStatus>) -> bool {
    let conditions = status.and_then(|s| s.conditions.as_deref());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, ready: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                "labels": {"app": "a"}, "annotations": {"big": "x".repeat(1000)}},
            "spec": {"nodeName": "n1", "containers": [
                {"name": "c", "image": "pause", "env": [{"name": "A", "value": "b"}]}]},
            "status": {"phase": phase, "podIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": ready}]},
        }))
        .unwrap()
    }

    #[test]
    fn a_bound_pod_keeps_what_the_kubelet_reads() {
        let p = BoundPod::of(pod("a", "Running", "False")).unwrap();
        assert_eq!(
            p,
            BoundPod {
                namespace: "ns".into(),
                name: "a".into(),
                uid: "uid-a".into(),
                node: "n1".into(),
                deleted_at: None,
                phase: Some("Running".into()),
                not_ready: true,
                containers: vec![("c".into(), "pause".into())],
            }
        );
        let mut unbound = pod("b", "Pending", "False");
        unbound.spec.as_mut().unwrap().node_name = None;
        assert_eq!(BoundPod::of(unbound), None);
    }

    #[test]
    fn a_relist_replaces_the_pods_at_its_end() {
        let mut pods = Pods::default();
        assert!(
            pods.apply(Event::Apply(pod("a", "Pending", "False")))
                .is_some()
        );
        assert!(
            pods.apply(Event::Apply(pod("b", "Running", "True")))
                .is_some()
        );
        assert!(
            pods.apply(Event::Delete(pod("b", "Running", "True")))
                .is_none()
        );
        assert_eq!(pods.live.len(), 1);
        // The watch broke; "a" was deleted meanwhile, "c" appeared.
        pods.apply(Event::Init);
        let c = pods.apply(Event::InitApply(pod("c", "Pending", "False")));
        assert_eq!(c.map(|c| c.name.clone()).as_deref(), Some("c"));
        assert!(pods.live.contains_key("ns/a"), "kept until the relist ends");
        pods.apply(Event::InitDone);
        assert_eq!(pods.live.keys().collect::<Vec<_>>(), ["ns/c"]);
    }
}
