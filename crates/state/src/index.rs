//! The synchronous index: one writer applies watch events per kind, readers get immutable
//! [`ClusterState`]s.
//!
//! Each kind keeps its objects by key and follows kube-runtime's relist protocol: `Init` opens
//! a buffer, `InitApply` fills it, `InitDone` swaps it in and marks the kind synced, so a
//! relist never shows readers a half-empty cluster. [`Index::state`] is `synced` only when
//! every kind has been listed once; no decision may run before that.
//!
//! A pending pod's volume zones depend on four kinds (Pod → PersistentVolumeClaim →
//! PersistentVolume or StorageClass), any of which may change after the pod's own event, so
//! they are resolved in [`Index::state`] from compact records (a few map lookups per claim),
//! not stored with the pod.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet as K8sDaemonSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::{StorageClass, VolumeAttachment};
use kube::runtime::watcher::Event;
use tandem_api::aws::v1::EC2NodeClass;
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_api::kwok::KWOKNodeClass;
use tandem_model::catalog::Catalog;
use tandem_model::resources::Resources;
use tandem_nodescaler::selector::LabelSelector;
use tandem_nodescaler::snapshot::{
    BoundPod, ExistingNode, InFlightClaim, NodeDisruption, NodeState, PendingPod, PodDisruption,
    Snapshot,
};

use crate::convert::{self, ClaimClass, ZoneSet};
use crate::intern::Interner;
use crate::pod_view::PodView;

/// One kind's objects, with the relist buffer.
#[derive(Debug)]
struct Kind<T> {
    objects: BTreeMap<String, T>,
    relist: Option<BTreeMap<String, T>>,
    synced: bool,
}

impl<T> Default for Kind<T> {
    fn default() -> Self {
        Kind {
            objects: BTreeMap::new(),
            relist: None,
            synced: false,
        }
    }
}

impl<T> Kind<T> {
    fn apply(&mut self, key: String, value: T) {
        self.objects.insert(key, value);
    }

    fn delete(&mut self, key: &str) {
        self.objects.remove(key);
    }

    /// Replaces every object at once (a finished relist).
    fn reset(&mut self, objects: BTreeMap<String, T>) {
        self.objects = objects;
        self.synced = true;
    }

    fn event<K>(
        &mut self,
        ev: Event<K>,
        key: impl Fn(&K) -> String,
        mut value: impl FnMut(K) -> T,
    ) {
        match ev {
            Event::Init => self.relist = Some(BTreeMap::new()),
            Event::InitApply(obj) => {
                let k = key(&obj);
                self.relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(k, value(obj));
            }
            Event::InitDone => {
                let objects = self.relist.take().unwrap_or_default();
                self.reset(objects);
            }
            Event::Apply(obj) => {
                let k = key(&obj);
                self.apply(k, value(obj));
            }
            Event::Delete(obj) => self.delete(&key(&obj)),
        }
    }
}

/// A pod with what the snapshot needs precomputed at apply time.
#[derive(Debug, Clone)]
pub struct PodRecord {
    /// What the index keeps of the object (see [`PodView`]).
    pub view: Arc<PodView>,
    /// Set when the pod is provisionable (see [`convert::is_provisionable`]). Boxed: most
    /// records are bound pods, and a record's inline size is paid by every slot of the map.
    pub pending: Option<Box<PendingPod>>,
    /// The pod's scheduling constraints, for disruption to simulate where a bound pod goes.
    pub spec: Option<Arc<PendingPod>>,
    /// What the core sees of a bound pod (without its disruption facts, which depend on
    /// PDBs and change without a pod event). Built once per pod event, not per published
    /// state: converting a PodSpec is the costliest part of a state build.
    pub bound: Option<BoundPod>,
}

fn ns_key(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn name_key(meta: &kube::api::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// The values many pods share, kept once (see [`Interner`]).
#[derive(Debug, Default)]
struct Shared {
    labels: Interner<BTreeMap<String, String>>,
    tolerations: Interner<Vec<tandem_model::taints::Toleration>>,
}

/// Converts a Pod once, when its event arrives; the object itself is dropped here. The
/// pod's labels are one shared copy for its view, its scheduling constraints and its bound
/// view, and the same copy as every other pod with equal labels (a ReplicaSet's pods).
fn pod_record(pod: &Pod, shared: &mut Shared) -> PodRecord {
    let creation = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| u64::try_from(t.0.as_microsecond()).unwrap_or(0));
    let labels = shared
        .labels
        .intern(pod.metadata.labels.clone().unwrap_or_default());
    let mut view = PodView::new(pod, labels.clone());
    view.tolerations = shared
        .tolerations
        .intern(Arc::unwrap_or_clone(view.tolerations));
    let converted = || {
        convert::pending_pod(pod, creation).map(|mut p| {
            p.labels = labels.clone();
            p
        })
    };
    let pending = if convert::is_provisionable(pod) {
        converted().map(Box::new)
    } else {
        None
    };
    let spec = if pending.is_none() && view.bound_node().is_some() {
        converted().map(Arc::new)
    } else {
        None
    };
    let bound = view.bound_node().map(|_| convert::bound_pod(pod, labels));
    PodRecord {
        view: Arc::new(view),
        pending,
        spec,
        bound,
    }
}

/// What [`crate::settled`] reads of a pod.
fn settled_facts(rec: &PodRecord) -> crate::settled::PodFacts<'_> {
    let pod = &rec.view;
    let live = pod.live();
    let unbound = pod.node_name.is_none();
    crate::settled::PodFacts {
        replica_set: pod
            .controller()
            .filter(|o| o.kind == "ReplicaSet")
            .map(|o| o.uid.as_str()),
        live,
        provisionable: rec.pending.is_some(),
        undecided: live && unbound && rec.pending.is_none(),
    }
}

/// A PodDisruptionBudget, as disruption needs it.
#[derive(Debug, Clone)]
pub struct PdbRecord {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its selector; `None` selects nothing.
    pub selector: Option<LabelSelector>,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
}

fn pdb_record(pdb: &PodDisruptionBudget) -> PdbRecord {
    PdbRecord {
        namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
        name: pdb.metadata.name.clone().unwrap_or_default(),
        selector: convert::pdb_selector(pdb.spec.as_ref().and_then(|s| s.selector.as_ref())),
        disruptions_allowed: pdb
            .status
            .as_ref()
            .and_then(|s| s.disruptions_allowed)
            .unwrap_or(0),
    }
}

fn ms(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    t.0.as_millisecond()
}

/// A VolumeAttachment, as termination needs it: the node waits for these to go before its
/// instance is terminated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeAttachmentRecord {
    /// Object name.
    pub name: String,
    /// Node it attaches to.
    pub node: String,
    /// `spec.source.persistentVolumeName` (inline volumes have none).
    pub persistent_volume: Option<String>,
}

fn volume_attachment_record(va: &VolumeAttachment) -> VolumeAttachmentRecord {
    VolumeAttachmentRecord {
        name: va.metadata.name.clone().unwrap_or_default(),
        node: va.spec.node_name.clone(),
        persistent_volume: va.spec.source.persistent_volume_name.clone(),
    }
}

/// A PersistentVolumeClaim, as volume topology and termination need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The PersistentVolume it is bound to (`spec.volumeName`).
    pub volume: Option<String>,
    /// The class that provisions it while unbound.
    pub class: ClaimClass,
}

fn claim_record(pvc: &PersistentVolumeClaim) -> ClaimRecord {
    ClaimRecord {
        volume: convert::claim_volume(pvc),
        class: convert::claim_class(pvc),
    }
}

/// A StorageClass, as volume topology needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageClassRecord {
    /// Zones its `allowedTopologies` provision into.
    pub zones: ZoneSet,
    /// Marked the default class (see [`convert::is_default_storage_class`]).
    pub default: bool,
    /// Creation time, ms since the epoch: of several defaults, the newest wins.
    pub created_ms: i64,
}

fn storage_class_record(sc: &StorageClass) -> StorageClassRecord {
    StorageClassRecord {
        zones: convert::storage_class_zones(sc),
        default: convert::is_default_storage_class(sc),
        created_ms: sc.metadata.creation_timestamp.as_ref().map_or(0, ms),
    }
}

/// What readers see: the provisioning snapshot plus the live objects the lifecycle and
/// termination controllers act on. Immutable; a new one is published after every change.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// True once every kind was listed; before that nothing may be decided.
    pub synced: bool,
    /// Every pending pod's ReplicaSet has all the pods it wants and kube-scheduler has ruled
    /// on each of them (see [`crate::settled`]); false unless the index watches ReplicaSets.
    pub pending_settled: bool,
    /// The input of `nodescaler::plan`.
    pub snapshot: Arc<Snapshot>,
    /// NodePools by name.
    pub nodepools: BTreeMap<String, Arc<NodePool>>,
    /// NodeClaims by name.
    pub nodeclaims: BTreeMap<String, Arc<NodeClaim>>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, Arc<Node>>,
    /// Pods bound to each node, by node name.
    pub pods_by_node: BTreeMap<String, Vec<Arc<PodView>>>,
    /// Every other pod: unbound, or finished (for the per-pod metrics).
    pub other_pods: Vec<Arc<PodView>>,
    /// Ready NodeClasses by name.
    pub node_classes: BTreeMap<String, bool>,
    /// VolumeAttachments by node name.
    pub volume_attachments: BTreeMap<String, Vec<VolumeAttachmentRecord>>,
    /// The PersistentVolume each bound PersistentVolumeClaim uses, by `namespace/name`.
    pub claim_volumes: BTreeMap<String, String>,
}

impl ClusterState {
    /// The PersistentVolumes a pod mounts through its claims (`persistentVolumeClaim` and
    /// generic ephemeral volumes, whose claim is named `<pod>-<volume>`), where bound.
    pub fn persistent_volumes_of(&self, pod: &PodView) -> Vec<String> {
        let ns = &pod.namespace;
        pod.claims
            .iter()
            .filter_map(|claim| self.claim_volumes.get(&format!("{ns}/{claim}")).cloned())
            .collect()
    }

    /// The Node whose `spec.providerID` is `provider_id`.
    pub fn node_by_provider_id(&self, provider_id: &str) -> Option<&Arc<Node>> {
        self.nodes
            .values()
            .find(|n| n.spec.as_ref().and_then(|s| s.provider_id.as_deref()) == Some(provider_id))
    }
}

/// Taints a node Tandem launched carries only while it comes up: the node lifecycle's
/// `not-ready` / `unreachable`, Karpenter's `unregistered` (upstream `KnownEphemeralTaints`)
/// and its claim's `startupTaints`. The scheduling simulation must not read them as the node's
/// own, or every pending pod meant for a registering node looks unplaceable and gets a second
/// claim (a 1,000-pod hostname-spread scale-out created 1,633 claims).
const EPHEMERAL_TAINTS: [&str; 3] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "karpenter.sh/unregistered",
];

fn passing_taint(taint: &tandem_model::taints::Taint, claim: Option<&NodeClaim>) -> bool {
    EPHEMERAL_TAINTS.contains(&taint.key.as_str())
        || claim.is_some_and(|c| {
            c.spec.startup_taints.iter().any(|s| {
                s.key == taint.key && s.value.as_deref().unwrap_or_default() == taint.value
            })
        })
}

/// The instance types an EC2NodeClass whose subnets are in these zones can launch; the AWS
/// provider supplies it (offerings limited to the zones, refused offerings unavailable), so the
/// state crate stays provider-agnostic.
pub type ZoneCatalog = Arc<dyn Fn(&[String]) -> Arc<Catalog> + Send + Sync>;

/// An EC2NodeClass as snapshots need it: Ready or not, and the zones of its resolved subnets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2ClassRecord {
    /// The class's Ready condition is True.
    pub ready: bool,
    /// Zones of `status.subnets`.
    pub zones: Vec<String>,
}

/// How long disruption keeps room for anticipated pods after the snapshot that wanted it;
/// every snapshot renews it while they are still wanted.
const ANTICIPATION_HOLD_MS: i64 = 60_000;

/// The index; owned by one task (the writer).
pub struct Index {
    node_class_catalog: Arc<Catalog>,
    /// Catalog per EC2NodeClass zones; without it EC2NodeClasses use `node_class_catalog`.
    zone_catalog: Option<ZoneCatalog>,
    /// EC2NodeClasses; not part of `synced` (a kwok cluster may not serve the kind).
    ec2_node_classes: Kind<Ec2ClassRecord>,
    pods: Kind<PodRecord>,
    nodes: Kind<Arc<Node>>,
    nodepools: Kind<Arc<NodePool>>,
    nodeclaims: Kind<Arc<NodeClaim>>,
    node_classes: Kind<bool>,
    daemonsets: Kind<tandem_nodescaler::snapshot::DaemonSet>,
    volume_attachments: Kind<VolumeAttachmentRecord>,
    claims: Kind<ClaimRecord>,
    /// Zones each PersistentVolume can be used from, by name.
    persistent_volumes: Kind<ZoneSet>,
    storage_classes: Kind<StorageClassRecord>,
    pdbs: Kind<PdbRecord>,
    /// ScaledObjects, for pod-layer coordination; not part of `synced` (a cluster without
    /// the KEDA CRDs has none, and the node layer must still act).
    scaled_objects: Kind<crate::workloads::ScaledTarget>,
    /// `spec.replicas` of ReplicaSets by UID, for [`crate::settled`]; watched only when asked
    /// for ([`Index::with_replica_sets`]) and not part of `synced`.
    replica_sets: Kind<i32>,
    watch_replica_sets: bool,
    /// Live pods per scale target and the history of their count.
    workloads: crate::workloads::Workloads,
    /// Labels and tolerations the pods share.
    shared: Shared,
    /// The writer's clock, ms since the epoch: when the events being applied were observed.
    now_ms: i64,
    /// Per node, when a pod was last bound to it or left it, as observed by this index.
    pod_events: BTreeMap<String, i64>,
    /// The pod layer's forecasts (predictive provisioning), as last received.
    predictions: Arc<crate::predictions::PredictionMap>,
    /// Where forecasts come from; taken by the writer task when it starts.
    predictions_rx: Option<tokio::sync::watch::Receiver<Arc<crate::predictions::PredictionMap>>>,
    /// Claims this process created that the watch has not shown yet (see [`crate::created`]).
    unconfirmed: crate::created::Unconfirmed,
    /// Where created claims come from; taken by the writer task when it starts.
    created_rx: Option<tokio::sync::mpsc::UnboundedReceiver<NodeClaim>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("pods", &self.pods.objects.len())
            .field("nodes", &self.nodes.objects.len())
            .field("nodeclaims", &self.nodeclaims.objects.len())
            .field("zone_catalog", &self.zone_catalog.is_some())
            .finish_non_exhaustive()
    }
}

impl Index {
    /// An empty, unsynced index whose KWOKNodeClasses launch from `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Index {
            node_class_catalog: catalog,
            zone_catalog: None,
            ec2_node_classes: Kind::default(),
            pods: Kind::default(),
            nodes: Kind::default(),
            nodepools: Kind::default(),
            nodeclaims: Kind::default(),
            node_classes: Kind::default(),
            daemonsets: Kind::default(),
            volume_attachments: Kind::default(),
            claims: Kind::default(),
            persistent_volumes: Kind::default(),
            storage_classes: Kind::default(),
            pdbs: Kind::default(),
            scaled_objects: Kind::default(),
            replica_sets: Kind::default(),
            watch_replica_sets: false,
            workloads: crate::workloads::Workloads::default(),
            shared: Shared::default(),
            now_ms: 0,
            pod_events: BTreeMap::new(),
            predictions: Arc::default(),
            predictions_rx: None,
            unconfirmed: crate::created::Unconfirmed::default(),
            created_rx: None,
        }
    }

    /// The sender through which the controllers hand over the NodeClaims they create, so
    /// the next state counts them before the watch shows them (see [`crate::created`]). One
    /// channel per index: a second call replaces the first.
    pub fn created_claims(&mut self) -> crate::created::CreatedClaims {
        let (tx, rx) = crate::created::CreatedClaims::channel();
        self.created_rx = Some(rx);
        tx
    }

    /// The created claims' receiver, for the writer task (once).
    pub fn take_created_claims(
        &mut self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<NodeClaim>> {
        self.created_rx.take()
    }

    /// Takes a NodeClaim this process just created (the create call's answer) until the watch
    /// shows it: not when the watch already did, or showed it deleted.
    pub fn created_nodeclaim(&mut self, nc: NodeClaim) {
        let name = name_key(&nc.metadata);
        let claim = Arc::new(nc);
        let known = self.nodeclaims.objects.contains_key(&name);
        if self.unconfirmed.take(&name, &claim, known, self.now_ms) {
            self.nodeclaims.apply(name, claim);
        }
    }

    /// Folds the pod layer's forecasts into every snapshot (predictive provisioning).
    pub fn with_predictions(mut self, predictions: &crate::predictions::Predictions) -> Self {
        self.predictions_rx = Some(predictions.subscribe());
        self
    }

    /// Watch ReplicaSets, so a state says when its pending pods are all there
    /// ([`ClusterState::pending_settled`]).
    pub fn with_replica_sets(mut self) -> Self {
        self.watch_replica_sets = true;
        self
    }

    /// Whether the writer should watch ReplicaSets.
    pub fn wants_replica_sets(&self) -> bool {
        self.watch_replica_sets
    }

    /// Applies a ReplicaSet watch event (its UID and `spec.replicas`, 1 when unset).
    pub fn replica_set_event(&mut self, ev: Event<k8s_openapi::api::apps::v1::ReplicaSet>) {
        self.replica_sets.event(
            ev,
            |rs| rs.metadata.uid.clone().unwrap_or_default(),
            |rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        );
    }

    /// The forecasts' receiver, for the writer task (once).
    pub fn take_predictions(
        &mut self,
    ) -> Option<tokio::sync::watch::Receiver<Arc<crate::predictions::PredictionMap>>> {
        self.predictions_rx.take()
    }

    /// Replaces the forecasts.
    pub fn set_predictions(&mut self, map: Arc<crate::predictions::PredictionMap>) {
        self.predictions = map;
    }

    /// The pods still to come (forecasts minus the pods that exist, unexpired) and the headroom
    /// of each NodePool in `pools` (the snapshot's, already converted) at the writer's clock.
    fn anticipated(
        &self,
        pools: &[tandem_nodescaler::snapshot::NodePool],
    ) -> Vec<tandem_nodescaler::provisioning::anticipation::Anticipated> {
        use tandem_nodescaler::provisioning::anticipation::{Anticipated, AnticipationKind};
        let mut out = Vec::new();
        for (so, p) in self.predictions.iter() {
            if p.until_ms <= self.now_ms {
                continue;
            }
            let have = self.workloads.pod_count(&p.target);
            if p.heading_to > have {
                out.push(Anticipated {
                    source: so.clone(),
                    kind: AnticipationKind::Predicted,
                    pod: p.template.clone(),
                    count: p.heading_to - have,
                });
            }
        }
        for pool in pools {
            let Some(np) = self.nodepools.objects.get(&pool.name) else {
                continue;
            };
            // A bad annotation is reported when the NodePool is applied.
            if let Ok(Some(h)) =
                tandem_manifest::convert::nodepool::headroom(np.metadata.annotations.as_ref())
            {
                out.extend(h.anticipated(pool, self.now_ms));
            }
        }
        out
    }

    /// Sets the time the next events are observed at (ms since the epoch); the writer calls it
    /// before each batch, so the index itself never reads a clock.
    pub fn set_now(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        for name in self.unconfirmed.expire(now_ms) {
            self.nodeclaims.delete(&name);
        }
    }

    fn pod_moved(&mut self, old: Option<&str>, new: Option<&str>) {
        if old == new {
            return;
        }
        for node in [old, new].into_iter().flatten() {
            let at = self
                .pod_events
                .entry(node.to_owned())
                .or_insert(self.now_ms);
            *at = (*at).max(self.now_ms);
        }
    }

    /// Applies a Pod watch event, noting when each node gained or lost a pod.
    pub fn pod_event(&mut self, ev: Event<Pod>) {
        match ev {
            Event::Apply(p) => {
                let key = ns_key(&p.metadata);
                let rec = pod_record(&p, &mut self.shared);
                let old = self.bound_node_of(&key);
                self.pod_moved(old.as_deref(), rec.view.bound_node());
                self.workloads
                    .observe(&key, &rec.view, false, self.now_ms, || {
                        convert::pending_pod(&p, 0)
                    });
                self.pods.apply(key, rec);
            }
            Event::Delete(p) => {
                let key = ns_key(&p.metadata);
                let old = self.bound_node_of(&key);
                self.pod_moved(old.as_deref(), None);
                let view =
                    PodView::new(&p, Arc::new(p.metadata.labels.clone().unwrap_or_default()));
                self.workloads
                    .observe(&key, &view, true, self.now_ms, || None);
                self.pods.delete(&key);
            }
            Event::InitDone => {
                let fresh = self.pods.relist.take().unwrap_or_default();
                let mut moves: Vec<(Option<String>, Option<String>)> = Vec::new();
                for (k, r) in &self.pods.objects {
                    let new = fresh.get(k).and_then(|f| f.view.bound_node());
                    moves.push((
                        r.view.bound_node().map(str::to_owned),
                        new.map(str::to_owned),
                    ));
                }
                for (k, f) in &fresh {
                    if !self.pods.objects.contains_key(k) {
                        moves.push((None, f.view.bound_node().map(str::to_owned)));
                    }
                }
                for (old, new) in moves {
                    self.pod_moved(old.as_deref(), new.as_deref());
                }
                self.pods.reset(fresh);
                let pods = self.pods.objects.iter().map(|(k, r)| {
                    let template = || {
                        let p = r.pending.as_deref().or(r.spec.as_deref());
                        p.cloned()
                    };
                    (k.as_str(), r.view.as_ref(), template)
                });
                self.workloads.reset(pods, self.now_ms);
            }
            ev @ (Event::Init | Event::InitApply(_)) => {
                let shared = &mut self.shared;
                self.pods
                    .event(ev, |p| ns_key(&p.metadata), |p| pod_record(&p, shared));
            }
        }
    }

    /// The node the indexed pod `key` occupies.
    fn bound_node_of(&self, key: &str) -> Option<String> {
        self.pods
            .objects
            .get(key)
            .and_then(|r| r.view.bound_node().map(str::to_owned))
    }

    /// Applies a ScaledObject watch event.
    pub fn scaled_object_event(&mut self, ev: Event<tandem_api::keda::ScaledObject>) {
        self.scaled_objects.event(
            ev,
            |so| ns_key(&so.metadata),
            |so| convert::scaled_target(&so),
        );
    }

    /// Applies a PodDisruptionBudget watch event.
    pub fn pdb_event(&mut self, ev: Event<PodDisruptionBudget>) {
        self.pdbs
            .event(ev, |p| ns_key(&p.metadata), |p| pdb_record(&p));
    }

    /// Adds or replaces a PodDisruptionBudget.
    pub fn apply_pdb(&mut self, pdb: PodDisruptionBudget) {
        self.pdb_event(Event::Apply(pdb));
    }

    /// Adds or replaces a Pod.
    pub fn apply_pod(&mut self, pod: Pod) {
        self.pod_event(Event::Apply(pod));
    }

    /// Removes a Pod.
    pub fn delete_pod(&mut self, pod: &Pod) {
        self.pods.delete(&ns_key(&pod.metadata));
    }

    /// Replaces all Pods (a completed list).
    pub fn reset_pods(&mut self, pods: Vec<Pod>) {
        self.pods.reset(
            pods.into_iter()
                .map(|p| (ns_key(&p.metadata), pod_record(&p, &mut self.shared)))
                .collect(),
        );
    }

    /// Applies a Node watch event. After a relist, nodes without an observed pod event count
    /// from now: pods that left them before the index started are unknown, so their
    /// `consolidateAfter` starts over rather than early.
    pub fn node_event(&mut self, ev: Event<Node>) {
        let relisted = matches!(ev, Event::InitDone);
        if let Event::Delete(n) = &ev {
            self.pod_events.remove(&name_key(&n.metadata));
        }
        self.nodes.event(ev, |n| name_key(&n.metadata), Arc::new);
        if relisted {
            for name in self.nodes.objects.keys() {
                self.pod_events.entry(name.clone()).or_insert(self.now_ms);
            }
        }
    }

    /// Adds or replaces a Node.
    pub fn apply_node(&mut self, node: Node) {
        self.node_event(Event::Apply(node));
    }

    /// Removes a Node.
    pub fn delete_node(&mut self, node: &Node) {
        self.nodes.delete(&name_key(&node.metadata));
    }

    /// Replaces all Nodes.
    pub fn reset_nodes(&mut self, nodes: Vec<Node>) {
        self.nodes.reset(
            nodes
                .into_iter()
                .map(|n| (name_key(&n.metadata), Arc::new(n)))
                .collect(),
        );
    }

    /// Applies a NodePool watch event.
    pub fn nodepool_event(&mut self, ev: Event<NodePool>) {
        if let Event::Apply(np) | Event::InitApply(np) = &ev
            && let Err(e) =
                tandem_manifest::convert::nodepool::headroom(np.metadata.annotations.as_ref())
        {
            tracing::warn!(
                nodepool = np.metadata.name.as_deref().unwrap_or_default(),
                field = %e.field,
                "ignoring the NodePool's headroom: {}",
                e.message
            );
        }
        self.nodepools
            .event(ev, |n| name_key(&n.metadata), Arc::new);
    }

    /// Adds or replaces a NodePool.
    pub fn apply_nodepool(&mut self, np: NodePool) {
        self.nodepool_event(Event::Apply(np));
    }

    /// Removes a NodePool.
    pub fn delete_nodepool(&mut self, np: &NodePool) {
        self.nodepools.delete(&name_key(&np.metadata));
    }

    /// Replaces all NodePools.
    pub fn reset_nodepools(&mut self, list: Vec<NodePool>) {
        self.nodepools.reset(
            list.into_iter()
                .map(|n| (name_key(&n.metadata), Arc::new(n)))
                .collect(),
        );
    }

    /// Applies a NodeClaim watch event; the watch confirms (or removes) created claims.
    pub fn nodeclaim_event(&mut self, ev: Event<NodeClaim>) {
        let relisted = matches!(ev, Event::InitDone);
        match &ev {
            Event::Apply(c) | Event::InitApply(c) => self.unconfirmed.seen(&name_key(&c.metadata)),
            Event::Delete(c) => self
                .unconfirmed
                .deleted(&name_key(&c.metadata), self.now_ms),
            Event::Init | Event::InitDone => {}
        }
        self.nodeclaims
            .event(ev, |n| name_key(&n.metadata), Arc::new);
        if relisted {
            let objects = &self.nodeclaims.objects;
            let keep = self.unconfirmed.after_relist(|n| objects.contains_key(n));
            for (name, claim) in keep {
                self.nodeclaims.apply(name, claim);
            }
        }
    }

    /// Adds or replaces a NodeClaim.
    pub fn apply_nodeclaim(&mut self, nc: NodeClaim) {
        self.nodeclaim_event(Event::Apply(nc));
    }

    /// Removes a NodeClaim.
    pub fn delete_nodeclaim(&mut self, nc: &NodeClaim) {
        self.nodeclaims.delete(&name_key(&nc.metadata));
    }

    /// Replaces all NodeClaims.
    pub fn reset_nodeclaims(&mut self, list: Vec<NodeClaim>) {
        self.nodeclaims.reset(
            list.into_iter()
                .map(|n| (name_key(&n.metadata), Arc::new(n)))
                .collect(),
        );
    }

    /// Applies a KWOKNodeClass watch event.
    pub fn node_class_event(&mut self, ev: Event<KWOKNodeClass>) {
        self.node_classes
            .event(ev, |n| name_key(&n.metadata), |n| node_class_ready(&n));
    }

    /// EC2NodeClasses get their catalog from `f` (called with the class's zones).
    pub fn with_zone_catalog(mut self, f: ZoneCatalog) -> Self {
        self.zone_catalog = Some(f);
        self
    }

    /// Applies an EC2NodeClass watch event.
    pub fn ec2_node_class_event(&mut self, ev: Event<EC2NodeClass>) {
        self.ec2_node_classes
            .event(ev, |n| name_key(&n.metadata), |n| ec2_class_record(&n));
    }

    /// Adds or replaces an EC2NodeClass.
    pub fn apply_ec2_node_class(&mut self, nc: EC2NodeClass) {
        self.ec2_node_class_event(Event::Apply(nc));
    }

    /// Adds or replaces a KWOKNodeClass.
    pub fn apply_node_class(&mut self, nc: KWOKNodeClass) {
        self.node_class_event(Event::Apply(nc));
    }

    /// Replaces all KWOKNodeClasses.
    pub fn reset_node_classes(&mut self, list: Vec<KWOKNodeClass>) {
        self.node_classes.reset(
            list.iter()
                .map(|n| (name_key(&n.metadata), node_class_ready(n)))
                .collect(),
        );
    }

    /// Applies a DaemonSet watch event.
    pub fn daemonset_event(&mut self, ev: Event<K8sDaemonSet>) {
        match ev {
            Event::Apply(ds) | Event::InitApply(ds) if convert::daemonset(&ds).is_none() => {
                self.daemonsets.delete(&ns_key(&ds.metadata));
            }
            ev => self.daemonsets.event(
                ev,
                |d| ns_key(&d.metadata),
                |d| {
                    convert::daemonset(&d).unwrap_or_else(|| {
                        tandem_nodescaler::snapshot::DaemonSet::new("", "", Resources::new())
                    })
                },
            ),
        }
    }

    /// Replaces all DaemonSets.
    pub fn reset_daemonsets(&mut self, list: Vec<K8sDaemonSet>) {
        self.daemonsets.reset(
            list.iter()
                .filter_map(|d| Some((ns_key(&d.metadata), convert::daemonset(d)?)))
                .collect(),
        );
    }

    /// Applies a VolumeAttachment watch event.
    pub fn volume_attachment_event(&mut self, ev: Event<VolumeAttachment>) {
        self.volume_attachments.event(
            ev,
            |v| name_key(&v.metadata),
            |v| volume_attachment_record(&v),
        );
    }

    /// Adds or replaces a VolumeAttachment.
    pub fn apply_volume_attachment(&mut self, va: VolumeAttachment) {
        self.volume_attachment_event(Event::Apply(va));
    }

    /// Removes a VolumeAttachment.
    pub fn delete_volume_attachment(&mut self, va: &VolumeAttachment) {
        self.volume_attachments.delete(&name_key(&va.metadata));
    }

    /// Applies a PersistentVolumeClaim watch event (only its bound volume and class are kept).
    pub fn persistent_volume_claim_event(&mut self, ev: Event<PersistentVolumeClaim>) {
        self.claims
            .event(ev, |c| ns_key(&c.metadata), |c| claim_record(&c));
    }

    /// Adds or replaces a PersistentVolumeClaim.
    pub fn apply_persistent_volume_claim(&mut self, pvc: PersistentVolumeClaim) {
        self.persistent_volume_claim_event(Event::Apply(pvc));
    }

    /// Removes a PersistentVolumeClaim.
    pub fn delete_persistent_volume_claim(&mut self, pvc: &PersistentVolumeClaim) {
        self.claims.delete(&ns_key(&pvc.metadata));
    }

    /// Applies a PersistentVolume watch event (only the zones it can be used from are kept).
    pub fn persistent_volume_event(&mut self, ev: Event<PersistentVolume>) {
        self.persistent_volumes.event(
            ev,
            |v| name_key(&v.metadata),
            |v| convert::persistent_volume_zones(&v),
        );
    }

    /// Adds or replaces a PersistentVolume.
    pub fn apply_persistent_volume(&mut self, pv: PersistentVolume) {
        self.persistent_volume_event(Event::Apply(pv));
    }

    /// Removes a PersistentVolume.
    pub fn delete_persistent_volume(&mut self, pv: &PersistentVolume) {
        self.persistent_volumes.delete(&name_key(&pv.metadata));
    }

    /// Applies a StorageClass watch event.
    pub fn storage_class_event(&mut self, ev: Event<StorageClass>) {
        self.storage_classes
            .event(ev, |c| name_key(&c.metadata), |c| storage_class_record(&c));
    }

    /// Adds or replaces a StorageClass.
    pub fn apply_storage_class(&mut self, sc: StorageClass) {
        self.storage_class_event(Event::Apply(sc));
    }

    /// Removes a StorageClass.
    pub fn delete_storage_class(&mut self, sc: &StorageClass) {
        self.storage_classes.delete(&name_key(&sc.metadata));
    }

    /// The class claims that name none get: of the classes marked default, the newest, ties
    /// broken by name (Kubernetes' `GetDefaultClass`).
    fn default_storage_class(&self) -> Option<&StorageClassRecord> {
        self.storage_classes
            .objects
            .iter()
            .filter(|(_, c)| c.default)
            .max_by(|(an, a), (bn, b)| a.created_ms.cmp(&b.created_ms).then_with(|| bn.cmp(an)))
            .map(|(_, c)| c)
    }

    /// The zones a pod's claims allow, intersected over its volumes, the way upstream
    /// `pkg/scheduling/volumetopology.go` reads them: a bound claim's PersistentVolume node
    /// affinity, else the StorageClass it names (the default class when it names none;
    /// `storageClassName: ""` binds only pre-made volumes, so it restricts nothing).
    ///
    /// `None` while a claim, its volume or its named class is not in the cluster yet.
    /// Upstream's `ValidatePersistentVolumeClaims` ignores such a pod, and kube-scheduler's
    /// VolumeBinding plugin rejects it on every node as unresolvable, so no launched node could
    /// take it; a generic ephemeral volume's claim is created by the ephemeral volume
    /// controller within moments of the pod, and the next state sees it.
    fn volume_zones(
        &self,
        namespace: &str,
        claims: &[String],
        default_class: Option<&StorageClassRecord>,
    ) -> Option<ZoneSet> {
        claims.iter().try_fold(ZoneSet::Any, |acc, claim| {
            let rec = self.claims.objects.get(&format!("{namespace}/{claim}"))?;
            let zones = match (&rec.volume, &rec.class) {
                (Some(pv), _) => self.persistent_volumes.objects.get(pv)?,
                (None, ClaimClass::Named(name)) => &self.storage_classes.objects.get(name)?.zones,
                (None, ClaimClass::Default) => default_class.map_or(&ZoneSet::Any, |c| &c.zones),
                (None, ClaimClass::NoClass) => &ZoneSet::Any,
            };
            Some(acc.intersect(zones))
        })
    }

    /// A pending pod with its volume zones, or `None` when it must stay out of the pending set:
    /// a claim is not resolvable yet (see [`Index::volume_zones`]), or its volumes allow no
    /// zone in common (no node anywhere can mount them all; upstream's scheduler finds the
    /// pod's requirements incompatible and launches nothing for it either).
    fn pending_with_volumes(
        &self,
        rec: &PodRecord,
        pending: &PendingPod,
        default_class: Option<&StorageClassRecord>,
    ) -> Option<PendingPod> {
        if rec.view.claims.is_empty() {
            return Some(pending.clone());
        }
        match self.volume_zones(&pending.namespace, &rec.view.claims, default_class)? {
            ZoneSet::Any => Some(pending.clone()),
            ZoneSet::Only(zones) if zones.is_empty() => None,
            ZoneSet::Only(zones) => {
                let mut p = pending.clone();
                p.volume_zones = zones.into_iter().collect();
                Some(p)
            }
        }
    }

    /// A bound pod's constraints with its volume zones, so that disruption never simulates it
    /// onto a node in a zone its volumes cannot reach. A running pod whose claims are not
    /// resolvable (or contradict) keeps its constraints as they are: it runs, so its volumes
    /// were mountable where it is.
    fn bound_spec_with_volumes(
        &self,
        rec: &PodRecord,
        default_class: Option<&StorageClassRecord>,
    ) -> Option<Arc<PendingPod>> {
        let spec = rec.spec.as_ref()?;
        if rec.view.claims.is_empty() {
            return Some(spec.clone());
        }
        match self.volume_zones(&spec.namespace, &rec.view.claims, default_class) {
            Some(ZoneSet::Only(zones)) if !zones.is_empty() => {
                let mut s = PendingPod::clone(spec);
                s.volume_zones = zones.into_iter().collect();
                Some(Arc::new(s))
            }
            _ => Some(spec.clone()),
        }
    }

    /// Marks every kind synced without a list; for tests that feed objects by hand.
    pub fn mark_synced(&mut self) {
        self.pods.synced = true;
        self.nodes.synced = true;
        self.nodepools.synced = true;
        self.nodeclaims.synced = true;
        self.node_classes.synced = true;
        self.daemonsets.synced = true;
        self.volume_attachments.synced = true;
        self.claims.synced = true;
        self.persistent_volumes.synced = true;
        self.storage_classes.synced = true;
        self.pdbs.synced = true;
    }

    /// True once every kind has been listed.
    pub fn synced(&self) -> bool {
        self.pods.synced
            && self.nodes.synced
            && self.nodepools.synced
            && self.nodeclaims.synced
            && self.node_classes.synced
            && self.daemonsets.synced
            && self.volume_attachments.synced
            && self.claims.synced
            && self.persistent_volumes.synced
            && self.storage_classes.synced
            && self.pdbs.synced
    }

    /// Why no PodDisruptionBudget lets this pod be evicted now, if one does not: a PDB of its
    /// namespace selecting it allows no disruption, or more than one selects it (the Eviction
    /// API refuses those).
    fn pdb_block(&self, pod: &PodView) -> Option<String> {
        let ns = pod.namespace.as_str();
        let labels = pod.labels.as_ref();
        let matching: Vec<&PdbRecord> = self
            .pdbs
            .objects
            .values()
            .filter(|p| p.namespace == ns && p.selector.as_ref().is_some_and(|s| s.matches(labels)))
            .collect();
        match matching.as_slice() {
            [] => None,
            [one] if one.disruptions_allowed > 0 => None,
            [one] => Some(format!("{}/{}", one.namespace, one.name)),
            many => Some(format!(
                "{} (more than one PDB selects the pod)",
                many.iter()
                    .map(|p| format!("{}/{}", p.namespace, p.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn pod_disruption(
        &self,
        rec: &PodRecord,
        default_class: Option<&StorageClassRecord>,
    ) -> PodDisruption {
        PodDisruption {
            owner: rec.view.owner_kind(),
            do_not_disrupt: rec.view.do_not_disrupt(),
            pdb_blocked: self.pdb_block(&rec.view),
            spec: self.bound_spec_with_volumes(rec, default_class),
        }
    }

    /// Builds the immutable state readers see.
    pub fn state(&self) -> ClusterState {
        let nodes = &self.nodes.objects;
        let mut pods_by_node: BTreeMap<String, Vec<Arc<PodView>>> = BTreeMap::new();
        let mut records_by_node: BTreeMap<&str, Vec<&PodRecord>> = BTreeMap::new();
        let mut pending = Vec::new();
        let mut other_pods = Vec::new();
        let default_class = self.default_storage_class();
        for rec in self.pods.objects.values() {
            if let Some(p) = &rec.pending
                && let Some(p) = self.pending_with_volumes(rec, p, default_class)
            {
                pending.push(p);
            }
            if let Some(node) = rec.view.bound_node() {
                pods_by_node
                    .entry(node.to_owned())
                    .or_default()
                    .push(rec.view.clone());
                records_by_node.entry(node).or_default().push(rec);
            } else {
                other_pods.push(rec.view.clone());
            }
        }
        let claims_by_provider_id: BTreeMap<&str, &NodeClaim> = self
            .nodeclaims
            .objects
            .values()
            .filter_map(|c| Some((c.status.as_ref()?.provider_id.as_deref()?, c.as_ref())))
            .collect();
        let mut snapshot = Snapshot::new();
        snapshot.pods = pending;
        let mut usage: BTreeMap<String, (Resources, i64)> = BTreeMap::new();
        let mut registered_ids = std::collections::BTreeSet::new();
        for (name, node) in nodes {
            let labels = node.metadata.labels.clone().unwrap_or_default();
            let status = node.status.as_ref();
            // A Node that has not reported what it can hold yet (kubelets create the object,
            // then patch its status) leaves its claim in flight, or its room would be counted
            // nowhere and the next plan would launch a second node for the same pods.
            let reported = status
                .and_then(|s| s.allocatable.as_ref())
                .is_some_and(|a| !a.is_empty());
            if let Some(pid) = node.spec.as_ref().and_then(|s| s.provider_id.clone())
                && reported
            {
                registered_ids.insert(pid);
            }
            let capacity = convert::resources(status.and_then(|s| s.capacity.as_ref()));
            if let Some(pool) = labels.get(tandem_model::labels::NODEPOOL) {
                let u = usage.entry(pool.clone()).or_default();
                u.0.add_assign(&capacity);
                u.1 += 1;
            }
            let mut existing = ExistingNode::new(
                name,
                convert::resources(status.and_then(|s| s.allocatable.as_ref())),
            );
            existing.labels.extend(labels);
            existing.taints = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .into_iter()
                .flatten()
                .filter_map(convert::taint)
                .collect();
            existing.state = convert::node_state(node);
            existing.pods = records_by_node
                .get(name.as_str())
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    Some(
                        r.bound
                            .clone()?
                            .disruption(self.pod_disruption(r, default_class)),
                    )
                })
                .collect();
            let claim = node
                .spec
                .as_ref()
                .and_then(|s| s.provider_id.as_deref())
                .and_then(|p| claims_by_provider_id.get(p).copied());
            if existing.state == NodeState::Initializing
                && existing.labels.contains_key(tandem_model::labels::NODEPOOL)
            {
                existing.taints.retain(|t| !passing_taint(t, claim));
            }
            existing.disruption = self.node_disruption(name, node, claim);
            snapshot.nodes.push(existing);
        }
        for (name, claim) in &self.nodeclaims.objects {
            if claim.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let status = claim.status.clone().unwrap_or_default();
            if status
                .provider_id
                .as_ref()
                .is_some_and(|p| registered_ids.contains(p))
            {
                continue;
            }
            snapshot
                .in_flight
                .push(self.in_flight(name, claim, &status));
        }
        for (name, np) in &self.nodepools.objects {
            if np.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let mut m = convert::nodepool(np);
            if let Some((res, count)) = usage.remove(name) {
                m.usage = res;
                m.node_count = count;
            }
            snapshot.nodepools.push(m);
            snapshot
                .disruption
                .insert(name.clone(), convert::pool_disruption(np));
        }
        snapshot.daemonsets = self.daemonsets.objects.values().cloned().collect();
        let targets: Vec<_> = self.scaled_objects.objects.values().cloned().collect();
        snapshot.comebacks = self.workloads.comebacks(&targets, self.now_ms);
        snapshot.anticipated = self.anticipated(&snapshot.nodepools);
        // Room launched ahead is kept by disruption like room for comebacks, while wanted:
        // headroom as planned, forecasts for every pod not yet bound — a pod created a moment
        // ago is pending, and the node launched for it must not look empty meanwhile.
        use tandem_nodescaler::provisioning::anticipation::AnticipationKind;
        for a in &snapshot.anticipated {
            if a.kind == AnticipationKind::Headroom {
                snapshot
                    .comebacks
                    .push(tandem_nodescaler::snapshot::Comeback {
                        workload: a.source.clone(),
                        pod: a.pod.clone(),
                        count: a.count,
                        until_ms: self.now_ms + ANTICIPATION_HOLD_MS,
                    });
            }
        }
        for (so, p) in self.predictions.iter() {
            let bound = self.workloads.bound_count(&p.target);
            if p.until_ms > self.now_ms && p.heading_to > bound {
                snapshot
                    .comebacks
                    .push(tandem_nodescaler::snapshot::Comeback {
                        workload: so.clone(),
                        pod: p.template.clone(),
                        count: p.heading_to - bound,
                        until_ms: self.now_ms + ANTICIPATION_HOLD_MS,
                    });
            }
        }
        snapshot.uncoordinated_pools = self
            .nodepools
            .objects
            .iter()
            .filter(|(_, np)| {
                np.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(tandem_nodescaler::snapshot::COORDINATION_ANNOTATION))
                    .is_some_and(|v| v == "false")
            })
            .map(|(name, _)| name.clone())
            .collect();
        for (name, ready) in &self.node_classes.objects {
            if *ready {
                snapshot
                    .catalogs
                    .insert(name.clone(), self.node_class_catalog.clone());
            }
        }
        let mut node_classes = self.node_classes.objects.clone();
        for (name, class) in &self.ec2_node_classes.objects {
            node_classes.insert(name.clone(), class.ready);
            if class.ready {
                let catalog = match &self.zone_catalog {
                    Some(f) => f(&class.zones),
                    None => self.node_class_catalog.clone(),
                };
                snapshot.catalogs.insert(name.clone(), catalog);
            }
        }
        let pending_settled = self.watch_replica_sets
            && !snapshot.pods.is_empty()
            && crate::settled::pending_settled(
                self.pods.objects.values().map(settled_facts),
                &self.replica_sets.objects,
            );
        ClusterState {
            synced: self.synced(),
            pending_settled,
            snapshot: Arc::new(snapshot),
            nodepools: self.nodepools.objects.clone(),
            nodeclaims: self.nodeclaims.objects.clone(),
            nodes: nodes.clone(),
            pods_by_node,
            other_pods,
            node_classes,
            volume_attachments: {
                let mut by_node: BTreeMap<String, Vec<VolumeAttachmentRecord>> = BTreeMap::new();
                for va in self.volume_attachments.objects.values() {
                    by_node.entry(va.node.clone()).or_default().push(va.clone());
                }
                by_node
            },
            claim_volumes: self
                .claims
                .objects
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.volume.clone()?)))
                .collect(),
        }
    }

    /// What disruption knows about a node: its claim's age, hash, class and do-not-disrupt,
    /// and the last time a pod came or went (or it initialized, or was created).
    fn node_disruption(
        &self,
        name: &str,
        node: &Node,
        claim: Option<&NodeClaim>,
    ) -> NodeDisruption {
        let created_ms = claim
            .and_then(|c| c.metadata.creation_timestamp.as_ref())
            .or(node.metadata.creation_timestamp.as_ref())
            .map(ms);
        let initialized_ms = claim
            .and_then(|c| c.status.as_ref())
            .and_then(|s| tandem_api::condition::find(&s.conditions, "Initialized"))
            .filter(|c| c.is_true())
            .and_then(|c| c.last_transition_time.as_ref())
            .map(ms);
        let last_pod_event_ms = [
            created_ms,
            initialized_ms,
            self.pod_events.get(name).copied(),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(self.now_ms);
        NodeDisruption {
            created_ms,
            last_pod_event_ms,
            do_not_disrupt: convert::do_not_disrupt(&node.metadata)
                || claim.is_some_and(|c| convert::do_not_disrupt(&c.metadata)),
            nodepool_hash: claim
                .and_then(|c| c.metadata.annotations.as_ref())
                .and_then(|a| a.get(convert::NODEPOOL_HASH))
                .cloned(),
            node_class: claim.map(|c| c.spec.node_class_ref.name.clone()),
            provider_drift: None,
        }
    }

    /// A claim that has no Node yet: what it is known to satisfy and how big it can be.
    fn in_flight(
        &self,
        name: &str,
        claim: &NodeClaim,
        status: &tandem_api::karpenter::v1::NodeClaimStatus,
    ) -> InFlightClaim {
        let mut requirements = convert::api_requirements(&claim.spec.requirements);
        let labels = claim.metadata.labels.clone().unwrap_or_default();
        requirements.add_all(&tandem_model::requirements::Requirements::from_labels(
            labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ));
        let to_res = |list: &tandem_api::quantity::ResourceList| {
            let mut r = Resources::new();
            for (k, q) in list {
                if let Ok(q) = q.as_str().parse() {
                    r.set(k, &q);
                }
            }
            r
        };
        let requests = to_res(&claim.spec.resources.requests);
        let (allocatable, capacity) = if status.allocatable.is_empty() {
            // Not launched yet: it holds what it was made for, and may become the largest of
            // its options, which is what limits must reserve.
            let mut cap = Resources::new();
            if let Some(types) = requirements.get(tandem_model::labels::INSTANCE_TYPE) {
                for t in types.values() {
                    if let Some(it) = self.node_class_catalog.get(t) {
                        cap = cap.max(it.capacity());
                    }
                }
            }
            (requests, cap)
        } else {
            (to_res(&status.allocatable), to_res(&status.capacity))
        };
        InFlightClaim {
            name: name.to_owned(),
            nodepool: labels
                .get(tandem_model::labels::NODEPOOL)
                .cloned()
                .unwrap_or_default(),
            requirements,
            allocatable,
            capacity,
            pods: Vec::new(),
        }
    }
}

fn ec2_class_record(nc: &EC2NodeClass) -> Ec2ClassRecord {
    let status = nc.status.as_ref();
    Ec2ClassRecord {
        ready: status
            .and_then(|s| tandem_api::condition::find(&s.conditions, "Ready"))
            .is_some_and(tandem_api::condition::Condition::is_true),
        zones: status
            .map(|s| {
                let mut z: Vec<String> = s.subnets.iter().map(|s| s.zone.clone()).collect();
                z.sort();
                z.dedup();
                z
            })
            .unwrap_or_default(),
    }
}

fn node_class_ready(nc: &KWOKNodeClass) -> bool {
    nc.status
        .as_ref()
        .and_then(|s| tandem_api::condition::find(&s.conditions, "Ready"))
        .is_none_or(tandem_api::condition::Condition::is_true)
}
