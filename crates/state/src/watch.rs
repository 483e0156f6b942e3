//! The writer task: one watch per kind feeding the [`Index`], a new [`ClusterState`] published
//! after batches of events.
//!
//! Building a state costs O(pods + nodes), so it is not done per event: events that arrive
//! together are applied together (`ready_chunks`), and while events keep coming the writer
//! publishes at most once per `min_publish_interval`, applying everything that arrived in
//! between. A quiet cluster still sees its first change published at once. Without that, a
//! cluster of 10,000 pods whose kubelets report one pod at a time rebuilt the whole state per
//! status update. Watch errors are retried with kube-runtime's default backoff; the state keeps
//! serving the last good view meanwhile.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt as _, stream};
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::{StorageClass, VolumeAttachment};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_api::kwok::KWOKNodeClass;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::index::{ClusterState, Index};

/// Drops what no decision reads and what makes objects large: `managedFields` (often half a
/// Pod's bytes) and kubectl's last-applied copy of the whole object.
fn strip<K: kube::Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

enum Change {
    // Every object boxed: `ready_chunks(4096)` keeps a buffer of 4,096 `Change`s, each as
    // large as the largest variant; with a Pod inline that one allocation was 9.5 MiB.
    Pod(Box<Event<Pod>>),
    Node(Box<Event<Node>>),
    NodePool(Box<Event<NodePool>>),
    NodeClaim(Box<Event<NodeClaim>>),
    NodeClass(Box<Event<KWOKNodeClass>>),
    Ec2NodeClass(Box<Event<tandem_api::aws::v1::EC2NodeClass>>),
    DaemonSet(Box<Event<DaemonSet>>),
    VolumeAttachment(Box<Event<VolumeAttachment>>),
    PersistentVolumeClaim(Box<Event<PersistentVolumeClaim>>),
    PersistentVolume(Box<Event<PersistentVolume>>),
    StorageClass(Box<Event<StorageClass>>),
    Pdb(Box<Event<PodDisruptionBudget>>),
    ScaledObject(Box<Event<tandem_api::keda::ScaledObject>>),
    ReplicaSet(Box<Event<ReplicaSet>>),
    Predictions(Arc<crate::predictions::PredictionMap>),
    Created(Box<NodeClaim>),
}

fn apply(index: &mut Index, change: Change) {
    match change {
        Change::Predictions(map) => index.set_predictions(map),
        Change::Created(claim) => index.created_nodeclaim(*claim),
        Change::Pod(ev) => index.pod_event(*ev),
        Change::Node(ev) => index.node_event(*ev),
        Change::NodePool(ev) => index.nodepool_event(*ev),
        Change::NodeClaim(ev) => index.nodeclaim_event(*ev),
        Change::NodeClass(ev) => index.node_class_event(*ev),
        Change::Ec2NodeClass(ev) => index.ec2_node_class_event(*ev),
        Change::DaemonSet(ev) => index.daemonset_event(*ev),
        Change::VolumeAttachment(ev) => index.volume_attachment_event(*ev),
        Change::PersistentVolumeClaim(ev) => index.persistent_volume_claim_event(*ev),
        Change::PersistentVolume(ev) => index.persistent_volume_event(*ev),
        Change::StorageClass(ev) => index.storage_class_event(*ev),
        Change::Pdb(ev) => index.pdb_event(*ev),
        Change::ScaledObject(ev) => index.scaled_object_event(*ev),
        Change::ReplicaSet(ev) => index.replica_set_event(*ev),
    }
}

/// Shortest time between two published states while events keep arriving.
pub const DEFAULT_MIN_PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// [`spawn_with`] at [`DEFAULT_MIN_PUBLISH_INTERVAL`].
pub fn spawn(client: Client, index: Index) -> watch::Receiver<Arc<ClusterState>> {
    spawn_with(client, index, DEFAULT_MIN_PUBLISH_INTERVAL)
}

/// Starts the watches and the writer on the current runtime; the receiver always holds the
/// latest state (unsynced until every kind was listed), at most `min_publish_interval` behind
/// the watches. The task ends when every receiver is dropped.
pub fn spawn_with(
    client: Client,
    mut index: Index,
    min_publish_interval: Duration,
) -> watch::Receiver<Arc<ClusterState>> {
    let (tx, rx) = watch::channel(Arc::new(index.state()));
    let cfg = watcher::Config::default;
    let streams = vec![
        watcher::watcher(Api::<Pod>::all(client.clone()), cfg())
            .default_backoff()
            .modify(|p| {
                strip(p);
                crate::convert::strip_pod(p);
            })
            .map(|r| r.map(|e| Change::Pod(Box::new(e))))
            .boxed(),
        watcher::watcher(Api::<Node>::all(client.clone()), cfg())
            .default_backoff()
            .modify(strip)
            .map(|r| r.map(|e| Change::Node(Box::new(e))))
            .boxed(),
        watcher::watcher(Api::<NodePool>::all(client.clone()), cfg())
            .default_backoff()
            .modify(strip)
            .map(|r| r.map(|ev| Change::NodePool(Box::new(ev))))
            .boxed(),
        watcher::watcher(Api::<NodeClaim>::all(client.clone()), cfg())
            .default_backoff()
            .modify(strip)
            .map(|r| r.map(|ev| Change::NodeClaim(Box::new(ev))))
            .boxed(),
        watcher::watcher(Api::<KWOKNodeClass>::all(client.clone()), cfg())
            .default_backoff()
            .modify(strip)
            .map(|r| r.map(|ev| Change::NodeClass(Box::new(ev))))
            .boxed(),
        watcher::watcher(Api::<DaemonSet>::all(client.clone()), cfg())
            .default_backoff()
            .modify(strip)
            .map(|r| r.map(|ev| Change::DaemonSet(Box::new(ev))))
            .boxed(),
        watcher::watcher(Api::<VolumeAttachment>::all(client.clone()), cfg())
            .default_backoff()
            .modify(strip)
            .map(|r| r.map(|ev| Change::VolumeAttachment(Box::new(ev))))
            .boxed(),
        watcher::watcher(Api::<PersistentVolumeClaim>::all(client.clone()), cfg())
            .default_backoff()
            .modify(strip)
            .map(|r| r.map(|ev| Change::PersistentVolumeClaim(Box::new(ev))))
            .boxed(),
        watcher::watcher(Api::<PersistentVolume>::all(client.clone()), cfg())
            .default_backoff()
            .modify(strip)
            .map(|r| r.map(|ev| Change::PersistentVolume(Box::new(ev))))
            .boxed(),
        watcher::watcher(Api::<StorageClass>::all(client.clone()), cfg())
            .default_backoff()
            .modify(strip)
            .map(|r| r.map(|ev| Change::StorageClass(Box::new(ev))))
            .boxed(),
        watcher::watcher(Api::<PodDisruptionBudget>::all(client.clone()), cfg())
            .default_backoff()
            .modify(strip)
            .map(|r| r.map(|ev| Change::Pdb(Box::new(ev))))
            .boxed(),
        // The AWS provider's classes; retries quietly where the CRD is not installed.
        watcher::watcher(
            Api::<tandem_api::aws::v1::EC2NodeClass>::all(client.clone()),
            cfg(),
        )
        .default_backoff()
        .modify(strip)
        .map(|r| r.map(|ev| Change::Ec2NodeClass(Box::new(ev))))
        .boxed(),
        // Pod-layer coordination; the stream retries quietly until the KEDA CRDs exist.
        watcher::watcher(
            Api::<tandem_api::keda::ScaledObject>::all(client.clone()),
            cfg(),
        )
        .default_backoff()
        .modify(strip)
        .map(|r| r.map(|ev| Change::ScaledObject(Box::new(ev))))
        .boxed(),
    ];
    let mut streams = streams;
    if index.wants_replica_sets() {
        // Replica counts only: the pod template is dropped on ingest.
        let replica_sets = watcher::watcher(Api::<ReplicaSet>::all(client), cfg())
            .default_backoff()
            .modify(|rs| {
                strip(rs);
                if let Some(spec) = rs.spec.as_mut() {
                    spec.template = None;
                }
            })
            .map(|r| r.map(|ev| Change::ReplicaSet(Box::new(ev))));
        streams.push(replica_sets.boxed());
    }
    if let Some(rx) = index.take_predictions() {
        // The pod layer's forecasts, in the same batches as the watches (no API server).
        let forecasts = stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok()?;
            let map = rx.borrow_and_update().clone();
            Some((Ok(Change::Predictions(map)), rx))
        });
        streams.push(forecasts.boxed());
    }
    if let Some(rx) = index.take_created_claims() {
        // Claims this process created, taken before the watch shows them (see
        // `crate::created`); in the same batches as the watches.
        let created = stream::unfold(rx, |mut rx| async move {
            let mut claim = rx.recv().await?;
            strip(&mut claim);
            Some((Ok(Change::Created(Box::new(claim))), rx))
        });
        streams.push(created.boxed());
    }
    let mut all = stream::select_all(streams).ready_chunks(4096);
    tokio::spawn(async move {
        let mut last_publish: Option<Instant> = None;
        while let Some(batch) = all.next().await {
            apply_batch(&mut index, batch);
            // Keep applying until the interval since the last publication has passed.
            if let Some(deadline) = last_publish.map(|t| t + min_publish_interval) {
                while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, all.next()).await {
                    apply_batch(&mut index, batch);
                }
            }
            if tx.send(Arc::new(index.state())).is_err() {
                return;
            }
            last_publish = Some(Instant::now());
        }
    });
    rx
}

fn apply_batch(index: &mut Index, batch: Vec<Result<Change, watcher::Error>>) {
    // The shell reads the clock: pod events in this batch are observed now.
    index.set_now(k8s_openapi::jiff::Timestamp::now().as_millisecond());
    for item in batch {
        match item {
            Ok(change) => apply(index, change),
            Err(e) => tracing::warn!(error = %e, "watch failed; retrying"),
        }
    }
}
