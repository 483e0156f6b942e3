//! The immutable input of every node-layer decision.
//!
//! A [`Snapshot`] is everything the provisioner may look at: pending pods with all their
//! scheduling constraints, existing nodes and the pods bound or nominated to them, NodeClaims
//! that are launched but not yet nodes, NodePools, DaemonSets and the instance-type catalog of
//! each NodeClass. The state crate resolves everything that upstream reads from the API server in
//! the middle of a simulation (PVC zones, namespace labels, DaemonSet pod templates) *before* a
//! decision runs, so a decision cannot fail on I/O and gives the same answer whenever it runs.
//!
//! The builders (`PendingPod::new(..).label(..).spread(..)`) exist so that tests and benchmarks
//! construct snapshots in a few lines; every field is also public.

use std::collections::BTreeMap;
use std::sync::Arc;

use tandem_model::catalog::Catalog;
use tandem_model::labels;
use tandem_model::pod::{Container, HostPort, PodShape, Protocol};
use tandem_model::requirements::{Requirement, Requirements};
use tandem_model::resources::{Bytes, MilliCpu, Resources};
use tandem_model::taints::{Taint, Toleration};

use crate::selector::{LabelSelector, Labels};

/// The identity of a pod in a plan: enough for a person and for the shell to find it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A required pod (anti-)affinity term.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodAffinityTerm {
    /// Which pods the term is about.
    pub selector: LabelSelector,
    /// Namespaces the selector applies to; empty means the pod's own namespace.
    pub namespaces: Vec<String>,
    /// The label that defines a domain (`kubernetes.io/hostname`, `topology.kubernetes.io/zone`).
    pub topology_key: String,
}

impl PodAffinityTerm {
    /// A term over the pod's own namespace.
    pub fn new(topology_key: &str, selector: LabelSelector) -> Self {
        PodAffinityTerm {
            selector,
            namespaces: Vec::new(),
            topology_key: topology_key.to_owned(),
        }
    }
}

/// A preferred pod (anti-)affinity term with its weight (1–100).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WeightedPodAffinityTerm {
    /// Weight; heavier terms are relaxed last.
    pub weight: i32,
    /// The term.
    pub term: PodAffinityTerm,
}

/// What the scheduler does when a spread constraint cannot be met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum WhenUnsatisfiable {
    /// A hard constraint.
    #[default]
    DoNotSchedule,
    /// A soft constraint; Karpenter enforces it until relaxation removes it.
    ScheduleAnyway,
}

/// Whether node affinity or taints decide which domains count (`nodeAffinityPolicy`,
/// `nodeTaintsPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeInclusionPolicy {
    /// Only domains the pod could be placed in count.
    Honor,
    /// Every domain counts.
    Ignore,
}

/// A topology spread constraint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopologySpreadConstraint {
    /// The domain label (zone, hostname, capacity type, or any node label).
    pub topology_key: String,
    /// Largest allowed difference between a domain's count and the smallest count.
    pub max_skew: i32,
    /// Hard or soft.
    pub when_unsatisfiable: WhenUnsatisfiable,
    /// Which pods are counted (in the pod's namespace).
    pub selector: LabelSelector,
    /// With fewer eligible domains than this, the global minimum is taken as 0.
    pub min_domains: Option<i32>,
    /// Default `Honor`.
    pub node_affinity_policy: NodeInclusionPolicy,
    /// Default `Ignore`.
    pub node_taints_policy: NodeInclusionPolicy,
}

impl TopologySpreadConstraint {
    /// A hard constraint with Kubernetes' default policies.
    pub fn new(topology_key: &str, max_skew: i32, selector: LabelSelector) -> Self {
        TopologySpreadConstraint {
            topology_key: topology_key.to_owned(),
            max_skew,
            when_unsatisfiable: WhenUnsatisfiable::DoNotSchedule,
            selector,
            min_domains: None,
            node_affinity_policy: NodeInclusionPolicy::Honor,
            node_taints_policy: NodeInclusionPolicy::Ignore,
        }
    }
}

/// A pod waiting for a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (the last sort tie-break).
    pub uid: String,
    /// Creation order (smaller is older); the tie-break after CPU and memory.
    pub creation: u64,
    /// Containers and overhead; requests and host ports come from here.
    pub shape: PodShape,
    /// The pod's labels (what selectors see). Shared: the live index keeps one copy per pod
    /// for its bound-pod view and this.
    pub labels: Arc<Labels>,
    /// `spec.nodeSelector`.
    pub node_selector: Labels,
    /// Required node-affinity terms, OR-ed; empty means none.
    pub required_affinity: Vec<Requirements>,
    /// Preferred node-affinity terms with weights.
    pub preferred_affinity: Vec<(i32, Requirements)>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// Required pod affinity.
    pub pod_affinity: Vec<PodAffinityTerm>,
    /// Required pod anti-affinity.
    pub pod_anti_affinity: Vec<PodAffinityTerm>,
    /// Preferred pod affinity.
    pub preferred_pod_affinity: Vec<WeightedPodAffinityTerm>,
    /// Preferred pod anti-affinity.
    pub preferred_pod_anti_affinity: Vec<WeightedPodAffinityTerm>,
    /// Topology spread constraints.
    pub topology_spread: Vec<TopologySpreadConstraint>,
    /// Zones the pod's bound PersistentVolumes allow (already intersected); empty means any.
    pub volume_zones: Vec<String>,
}

impl PendingPod {
    /// A pod with one container requesting `requests`; uid defaults to `namespace/name`.
    pub fn new(namespace: &str, name: &str, requests: Resources) -> Self {
        PendingPod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: format!("{namespace}/{name}"),
            creation: 0,
            shape: PodShape {
                containers: vec![Container::new("main", requests)],
                ..PodShape::default()
            },
            labels: Arc::default(),
            node_selector: Labels::new(),
            required_affinity: Vec::new(),
            preferred_affinity: Vec::new(),
            tolerations: Vec::new(),
            pod_affinity: Vec::new(),
            pod_anti_affinity: Vec::new(),
            preferred_pod_affinity: Vec::new(),
            preferred_pod_anti_affinity: Vec::new(),
            topology_spread: Vec::new(),
            volume_zones: Vec::new(),
        }
    }

    /// The pod's identity.
    pub fn to_ref(&self) -> PodRef {
        PodRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }

    /// Sets the UID.
    pub fn uid(mut self, uid: &str) -> Self {
        self.uid = uid.to_owned();
        self
    }

    /// Sets the creation order.
    pub fn created(mut self, creation: u64) -> Self {
        self.creation = creation;
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        Arc::make_mut(&mut self.labels).insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a `nodeSelector` entry.
    pub fn node_selector(mut self, key: &str, value: &str) -> Self {
        self.node_selector.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a required node-affinity term (OR-ed with the others).
    pub fn require(mut self, term: Requirements) -> Self {
        self.required_affinity.push(term);
        self
    }

    /// Adds a preferred node-affinity term.
    pub fn prefer(mut self, weight: i32, term: Requirements) -> Self {
        self.preferred_affinity.push((weight, term));
        self
    }

    /// Adds a toleration.
    pub fn tolerate(mut self, toleration: Toleration) -> Self {
        self.tolerations.push(toleration);
        self
    }

    /// Adds required pod affinity to pods matching `selector` within `topology_key`.
    pub fn affinity(mut self, topology_key: &str, selector: LabelSelector) -> Self {
        self.pod_affinity
            .push(PodAffinityTerm::new(topology_key, selector));
        self
    }

    /// Adds required pod anti-affinity to pods matching `selector` within `topology_key`.
    pub fn anti_affinity(mut self, topology_key: &str, selector: LabelSelector) -> Self {
        self.pod_anti_affinity
            .push(PodAffinityTerm::new(topology_key, selector));
        self
    }

    /// Adds preferred pod affinity.
    pub fn prefer_affinity(
        mut self,
        weight: i32,
        topology_key: &str,
        selector: LabelSelector,
    ) -> Self {
        self.preferred_pod_affinity.push(WeightedPodAffinityTerm {
            weight,
            term: PodAffinityTerm::new(topology_key, selector),
        });
        self
    }

    /// Adds preferred pod anti-affinity.
    pub fn prefer_anti_affinity(
        mut self,
        weight: i32,
        topology_key: &str,
        selector: LabelSelector,
    ) -> Self {
        self.preferred_pod_anti_affinity
            .push(WeightedPodAffinityTerm {
                weight,
                term: PodAffinityTerm::new(topology_key, selector),
            });
        self
    }

    /// Adds a hard topology spread constraint.
    pub fn spread(self, topology_key: &str, max_skew: i32, selector: LabelSelector) -> Self {
        self.spread_constraint(TopologySpreadConstraint::new(
            topology_key,
            max_skew,
            selector,
        ))
    }

    /// Adds any topology spread constraint.
    pub fn spread_constraint(mut self, constraint: TopologySpreadConstraint) -> Self {
        self.topology_spread.push(constraint);
        self
    }

    /// Binds a TCP host port on the first container.
    pub fn host_port(mut self, port: u16) -> Self {
        if let Some(c) = self.shape.containers.first_mut() {
            c.host_ports.push(HostPort {
                ip: String::new(),
                port,
                protocol: Protocol::Tcp,
            });
        }
        self
    }

    /// Restricts the pod to the zones of its bound volumes.
    pub fn volume_zone(mut self, zone: &str) -> Self {
        self.volume_zones.push(zone.to_owned());
        self
    }
}

/// A pod already bound (or nominated) to a node or in-flight NodeClaim: it uses room and counts
/// for topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundPod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels; shared, since thousands of replicas carry the same set.
    pub labels: Arc<Labels>,
    /// Effective requests.
    pub requests: Resources,
    /// Host ports it binds.
    pub host_ports: Vec<HostPort>,
    /// Its required anti-affinity: new pods it selects must stay out of its domains.
    pub anti_affinity: Vec<PodAffinityTerm>,
    /// True when only nominated (not yet bound) by an earlier plan.
    pub nominated: bool,
    /// What disruption needs to know about it; the default is a plain, evictable workload pod.
    pub disruption: PodDisruption,
}

impl BoundPod {
    /// A bound pod with labels and requests.
    pub fn new(namespace: &str, name: &str, labels: Arc<Labels>, requests: Resources) -> Self {
        BoundPod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            labels,
            requests,
            host_ports: Vec::new(),
            anti_affinity: Vec::new(),
            nominated: false,
            disruption: PodDisruption::default(),
        }
    }

    /// Sets what disruption knows about the pod.
    pub fn disruption(mut self, disruption: PodDisruption) -> Self {
        self.disruption = disruption;
        self
    }

    /// A pending pod as it weighs on the node it is nominated to: its requests, labels, host
    /// ports and anti-affinity, marked nominated (disruption never calls such a node empty).
    pub fn nominated(pod: &PendingPod) -> Self {
        let mut b = BoundPod::new(
            &pod.namespace,
            &pod.name,
            Arc::clone(&pod.labels),
            pod.shape.effective_requests(),
        );
        b.host_ports = pod.shape.host_ports();
        b.anti_affinity = pod.pod_anti_affinity.clone();
        b.nominated = true;
        b
    }
}

/// Who owns a bound pod, as far as disruption cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum PodOwner {
    /// A workload pod (ReplicaSet, StatefulSet, Job, bare pod): it must be rescheduled before
    /// its node goes.
    #[default]
    Workload,
    /// A DaemonSet pod: it goes with its node and does not make a node non-empty.
    DaemonSet,
    /// A static (mirror) pod: owned by the node itself.
    Mirror,
}

/// The disruption facts of a bound pod, resolved by the state crate (annotations, PDBs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodDisruption {
    /// Owner kind: DaemonSet and mirror pods are not rescheduled.
    pub owner: PodOwner,
    /// `karpenter.sh/do-not-disrupt: "true"` on an active pod: blocks voluntary disruption.
    pub do_not_disrupt: bool,
    /// Set when a PodDisruptionBudget does not allow evicting the pod now (no disruption
    /// allowed, or more than one PDB selects it), with the PDB's `namespace/name` or the reason.
    pub pdb_blocked: Option<String>,
    /// The pod's full scheduling constraints, used to simulate where it goes when its node is
    /// removed. `None`: requests, labels, host ports and anti-affinity of the bound pod only (no
    /// tolerations or node affinity).
    pub spec: Option<Arc<PendingPod>>,
}

impl PodDisruption {
    /// True when the pod must find another node before its node is removed.
    pub fn is_reschedulable(&self) -> bool {
        self.owner == PodOwner::Workload
    }
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum NodeState {
    /// Ready and initialized.
    #[default]
    Ready,
    /// Registered but not initialized: its NodePool's startup taints and the usual not-ready
    /// taints are expected to go away, so they do not block pods.
    Initializing,
    /// Being deleted: never a target, and its pods do not count for topology (they are moving).
    Deleting,
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingNode {
    /// Node name (also its hostname domain).
    pub name: String,
    /// Labels (zone, capacity type, instance type, NodePool …).
    pub labels: Labels,
    /// Taints.
    pub taints: Vec<Taint>,
    /// Allocatable resources.
    pub allocatable: Resources,
    /// Pods bound or nominated to it, DaemonSet pods included.
    pub pods: Vec<BoundPod>,
    /// Life-cycle state.
    pub state: NodeState,
    /// What disruption needs to know about it (NodeClaim age, hash, annotations).
    pub disruption: NodeDisruption,
    /// Its labels as requirements, computed once and shared by the clones of the node: a
    /// disruption pass builds a scheduler per candidate it simulates, each over every node.
    pub label_requirements: LabelRequirements,
}

/// A node's labels as [`Requirements`], cached with the labels they were computed from.
///
/// Shared by every clone of the node (a disruption pass clones the snapshot for each
/// simulation). `labels` stays a public field, so a hit is checked against the labels it was
/// made from: a node whose labels were changed after the first use is converted afresh.
/// Never part of a node's identity: two nodes compare equal whatever their caches hold.
#[derive(Clone, Default)]
pub struct LabelRequirements(Arc<std::sync::OnceLock<(Labels, Arc<Requirements>)>>);

impl LabelRequirements {
    /// The requirements of `labels`: from the cache when it was made from the same labels.
    pub fn of(&self, labels: &Labels) -> Arc<Requirements> {
        let convert = || {
            Arc::new(Requirements::from_labels(
                labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ))
        };
        let (from, reqs) = self.0.get_or_init(|| (labels.clone(), convert()));
        if from == labels {
            Arc::clone(reqs)
        } else {
            convert()
        }
    }
}

impl PartialEq for LabelRequirements {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for LabelRequirements {}

impl std::fmt::Debug for LabelRequirements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LabelRequirements")
    }
}

/// The disruption facts of a node and its NodeClaim.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeDisruption {
    /// NodeClaim creation time, ms since the epoch (expiration and drift age); `None` when
    /// unknown, and then the node neither expires nor ages into `InstanceTypeNotFound`, so a
    /// shell that does not fill it cannot expire the whole cluster at once.
    pub created_ms: Option<i64>,
    /// Last time a pod was bound to or removed from the node, or when it initialized, ms since
    /// the epoch: `consolidateAfter` counts from here (upstream `Consolidatable` condition).
    pub last_pod_event_ms: i64,
    /// `karpenter.sh/do-not-disrupt: "true"` on the Node or NodeClaim: blocks every voluntary
    /// method (not expiration).
    pub do_not_disrupt: bool,
    /// The NodeClaim's `karpenter.sh/nodepool-hash` annotation.
    pub nodepool_hash: Option<String>,
    /// The name of the NodeClass the NodeClaim was launched from (`spec.nodeClassRef.name`).
    pub node_class: Option<String>,
    /// Drift the cloud provider reports (`AMIDrift`, `SubnetDrift` …), if any.
    pub provider_drift: Option<String>,
}

impl ExistingNode {
    /// A ready node; its hostname label is set from the name.
    pub fn new(name: &str, allocatable: Resources) -> Self {
        let mut labels = Labels::new();
        labels.insert(labels::HOSTNAME.to_owned(), name.to_owned());
        ExistingNode {
            name: name.to_owned(),
            labels,
            taints: Vec::new(),
            allocatable,
            pods: Vec::new(),
            state: NodeState::Ready,
            disruption: NodeDisruption::default(),
            label_requirements: LabelRequirements::default(),
        }
    }

    /// The node's labels as requirements (`In [value]` per label), cached across clones.
    pub fn requirements(&self) -> Arc<Requirements> {
        self.label_requirements.of(&self.labels)
    }

    /// Sets what disruption knows about the node.
    pub fn disruption(mut self, disruption: NodeDisruption) -> Self {
        self.disruption = disruption;
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a taint.
    pub fn taint(mut self, taint: Taint) -> Self {
        self.taints.push(taint);
        self
    }

    /// Adds a bound pod.
    pub fn pod(mut self, pod: BoundPod) -> Self {
        self.pods.push(pod);
        self
    }

    /// Sets the state.
    pub fn state(mut self, state: NodeState) -> Self {
        self.state = state;
        self
    }
}

/// A NodeClaim that is launched (or being launched) but whose node has not registered yet.
///
/// Its pods are those an earlier plan nominated to it. Upstream treats these like nodes, and so
/// do we: a claim whose zone is still open (several zones allowed) can take pods that do not care
/// about zone, but never pods whose constraints would have to narrow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightClaim {
    /// NodeClaim name (also its hostname domain until the node registers).
    pub name: String,
    /// Owning NodePool.
    pub nodepool: String,
    /// What the claim is known to satisfy (zone, capacity type, instance type, labels).
    pub requirements: Requirements,
    /// Allocatable of the launched type (or the smallest option when not yet known).
    pub allocatable: Resources,
    /// Capacity of the launched type (or the largest option), charged against NodePool limits.
    pub capacity: Resources,
    /// Pods nominated to it.
    pub pods: Vec<BoundPod>,
}

/// NodePool limits per resource; an absent resource is unlimited. The `nodes` entry limits the
/// node count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    /// Limit per resource name, in the unit of [`Resources`] (millicores for CPU, bytes, counts).
    pub by_resource: BTreeMap<String, i64>,
}

impl Limits {
    /// No limits.
    pub fn none() -> Self {
        Self::default()
    }

    /// Limits CPU to `cores` whole cores (`limits.cpu: 64`).
    pub fn cpu_cores(mut self, cores: i64) -> Self {
        self.by_resource
            .insert("cpu".to_owned(), MilliCpu::from_cores(cores).0);
        self
    }

    /// Limits memory.
    pub fn memory(mut self, memory: Bytes) -> Self {
        self.by_resource.insert("memory".to_owned(), memory.0);
        self
    }

    /// Limits the number of nodes.
    pub fn nodes(mut self, nodes: i64) -> Self {
        self.by_resource.insert("nodes".to_owned(), nodes);
        self
    }

    /// Limits any resource by name.
    pub fn resource(mut self, name: &str, amount: i64) -> Self {
        self.by_resource.insert(name.to_owned(), amount);
        self
    }
}

/// A NodePool, reduced to what provisioning reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePool {
    /// Name.
    pub name: String,
    /// Weight; higher is tried first.
    pub weight: i32,
    /// Template labels (nodes get them; they act as `In [value]` requirements).
    pub labels: Labels,
    /// Template requirements.
    pub requirements: Requirements,
    /// Taints every node carries; pods must tolerate them.
    pub taints: Vec<Taint>,
    /// Taints removed after start-up; they do not block pods.
    pub startup_taints: Vec<Taint>,
    /// Limits.
    pub limits: Limits,
    /// Capacity of the pool's registered nodes, charged against `limits`. The planner adds the
    /// capacity of the pool's in-flight claims itself, so the state crate must not count them
    /// here.
    pub usage: Resources,
    /// Number of registered nodes, charged against a `nodes` limit (in-flight claims are added
    /// by the planner, as for `usage`).
    pub node_count: i64,
    /// NodeClass name; selects the catalog.
    pub node_class: String,
}

impl NodePool {
    /// A NodePool with no requirements, taints or limits.
    pub fn new(name: &str, node_class: &str) -> Self {
        NodePool {
            name: name.to_owned(),
            weight: 0,
            labels: Labels::new(),
            requirements: Requirements::new(),
            taints: Vec::new(),
            startup_taints: Vec::new(),
            limits: Limits::none(),
            usage: Resources::new(),
            node_count: 0,
            node_class: node_class.to_owned(),
        }
    }

    /// Sets the weight.
    pub fn weight(mut self, weight: i32) -> Self {
        self.weight = weight;
        self
    }

    /// Adds a template label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a requirement (intersected with any on the same key).
    pub fn require(mut self, requirement: Requirement) -> Self {
        self.requirements.add(requirement);
        self
    }

    /// Adds a taint.
    pub fn taint(mut self, taint: Taint) -> Self {
        self.taints.push(taint);
        self
    }

    /// Adds a startup taint.
    pub fn startup_taint(mut self, taint: Taint) -> Self {
        self.startup_taints.push(taint);
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the current usage.
    pub fn usage(mut self, usage: Resources, node_count: i64) -> Self {
        self.usage = usage;
        self.node_count = node_count;
        self
    }
}

/// A DaemonSet: its pod lands on every new node it can schedule onto, so its requests are
/// overhead of every such node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSet {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The pod template's containers.
    pub shape: PodShape,
    /// `nodeSelector` of the template.
    pub node_selector: Labels,
    /// Required node-affinity terms (OR-ed) of the template.
    pub required_affinity: Vec<Requirements>,
    /// Tolerations of the template.
    pub tolerations: Vec<Toleration>,
}

impl DaemonSet {
    /// A DaemonSet with one container and no constraints.
    pub fn new(namespace: &str, name: &str, requests: Resources) -> Self {
        DaemonSet {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            shape: PodShape {
                containers: vec![Container::new("main", requests)],
                ..PodShape::default()
            },
            node_selector: Labels::new(),
            required_affinity: Vec::new(),
            tolerations: Vec::new(),
        }
    }

    /// Adds a toleration.
    pub fn tolerate(mut self, toleration: Toleration) -> Self {
        self.tolerations.push(toleration);
        self
    }

    /// Adds a `nodeSelector` entry.
    pub fn node_selector(mut self, key: &str, value: &str) -> Self {
        self.node_selector.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// Everything a provisioning decision reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Pods to place.
    pub pods: Vec<PendingPod>,
    /// Nodes.
    pub nodes: Vec<ExistingNode>,
    /// Launched NodeClaims without a node yet.
    pub in_flight: Vec<InFlightClaim>,
    /// NodePools.
    pub nodepools: Vec<NodePool>,
    /// DaemonSets.
    pub daemonsets: Vec<DaemonSet>,
    /// Instance types per NodeClass name; shared because catalogs are large and immutable.
    pub catalogs: BTreeMap<String, Arc<Catalog>>,
    /// Disruption settings per NodePool name; a pool without an entry has upstream's defaults
    /// ([`PoolDisruption::default`]). Provisioning does not read them.
    pub disruption: BTreeMap<String, PoolDisruption>,
    /// Pods the pod layer may bring back soon (see [`Comeback`]); consolidation keeps room
    /// for them. Provisioning does not read them.
    pub comebacks: Vec<Comeback>,
    /// NodePools that opted out of pod-layer coordination
    /// (annotation `tandem.dev/coordinate-with-pod-layer: "false"`).
    pub uncoordinated_pools: std::collections::BTreeSet<String>,
    /// Pods that do not exist yet but need room: predicted by the pod layer or kept as a
    /// NodePool's headroom. Only [`crate::provisioning::plan_anticipating`] reads them.
    pub anticipated: Vec<crate::provisioning::anticipation::Anticipated>,
}

/// NodePool annotation that turns pod-layer coordination off for the pool when `"false"`.
pub const COORDINATION_ANNOTATION: &str = "tandem.dev/coordinate-with-pod-layer";

/// Pods a workload scaled away recently and may bring back: the pod layer is still inside the
/// window (cooldown, HPA scale-down stabilization) in which it reverses a scale-down without
/// waiting, so the capacity those pods used is likely to be needed again. The cross-layer fact
/// neither KEDA nor Karpenter has: Karpenter consolidates the freed nodes after
/// `consolidateAfter`, KEDA brings the pods back, and new nodes boot (seed 002's oscillation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comeback {
    /// The workload (`namespace/ScaledObject`), for the deferral message.
    pub workload: String,
    /// One pod as its template would create it.
    pub pod: PendingPod,
    /// How many may come back (the recent peak minus the current replicas).
    pub count: u32,
    /// Until when (ms since the epoch); past it the hold is gone whatever the pod layer does,
    /// so a node is never kept for an unbounded time.
    pub until_ms: i64,
}

/// `spec.disruption.consolidationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ConsolidationPolicy {
    /// Only empty nodes are removed.
    WhenEmpty,
    /// Empty nodes are removed and underutilized ones consolidated (upstream default).
    #[default]
    WhenEmptyOrUnderutilized,
}

/// A budget's `nodes`: a count or a percentage of the pool's nodes (rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BudgetNodes {
    /// At most this many nodes disrupting at once.
    Count(u32),
    /// At most this percentage of the pool's nodes, rounded up.
    Percent(u32),
}

/// The reasons a budget may be restricted to (`budgets[].reasons`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BudgetReason {
    /// Emptiness.
    Empty,
    /// Drift.
    Drifted,
    /// Consolidation.
    Underutilized,
}

/// One entry of `spec.disruption.budgets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// How many nodes may be disrupting.
    pub nodes: BudgetNodes,
    /// Five-field cron (UTC) that opens the budget's window; `None`: always active.
    pub schedule: Option<String>,
    /// Window length after each schedule hit, ms.
    pub duration_ms: Option<i64>,
    /// Reasons it applies to; empty means all.
    pub reasons: Vec<BudgetReason>,
}

impl Budget {
    /// An always-active budget for every reason.
    pub fn nodes(nodes: BudgetNodes) -> Self {
        Budget {
            nodes,
            schedule: None,
            duration_ms: None,
            reasons: Vec::new(),
        }
    }
}

/// A NodePool's disruption settings (`spec.disruption`, `template.spec.expireAfter`) and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolDisruption {
    /// Consolidation policy.
    pub policy: ConsolidationPolicy,
    /// `consolidateAfter` in ms; `None` is `Never` (no emptiness, no consolidation).
    pub consolidate_after_ms: Option<i64>,
    /// Budgets; an empty list allows everything (the API defaults it to `nodes: 10%`, and so
    /// does [`PoolDisruption::default`]).
    pub budgets: Vec<Budget>,
    /// `expireAfter` in ms; `None` is `Never`.
    pub expire_after_ms: Option<i64>,
    /// The NodePool's current `karpenter.sh/nodepool-hash`; `None` skips the hash drift check.
    pub hash: Option<String>,
}

impl Default for PoolDisruption {
    /// Upstream's API defaults: `WhenEmptyOrUnderutilized`, `consolidateAfter: 0s`,
    /// `budgets: [{nodes: 10%}]`, `expireAfter: 720h`.
    fn default() -> Self {
        PoolDisruption {
            policy: ConsolidationPolicy::WhenEmptyOrUnderutilized,
            consolidate_after_ms: Some(0),
            budgets: vec![Budget::nodes(BudgetNodes::Percent(10))],
            expire_after_ms: Some(720 * 3_600_000),
            hash: None,
        }
    }
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the catalog of a NodeClass.
    pub fn catalog(mut self, node_class: &str, catalog: Arc<Catalog>) -> Self {
        self.catalogs.insert(node_class.to_owned(), catalog);
        self
    }

    /// Adds a NodePool.
    pub fn nodepool(mut self, nodepool: NodePool) -> Self {
        self.nodepools.push(nodepool);
        self
    }

    /// Adds a pending pod; its creation order is its position unless already set.
    pub fn pod(mut self, mut pod: PendingPod) -> Self {
        if pod.creation == 0 {
            pod.creation = u64::try_from(self.pods.len()).unwrap_or(u64::MAX);
        }
        self.pods.push(pod);
        self
    }

    /// Adds `n` copies of `template`, named `<name>-<i>`, in creation order.
    pub fn replicas(mut self, n: usize, template: &PendingPod) -> Self {
        for i in 0..n {
            let mut pod = template.clone();
            pod.name = format!("{}-{i}", template.name);
            pod.uid = format!("{}/{}", pod.namespace, pod.name);
            pod.creation = u64::try_from(self.pods.len()).unwrap_or(u64::MAX);
            self.pods.push(pod);
        }
        self
    }

    /// Adds a node.
    pub fn node(mut self, node: ExistingNode) -> Self {
        self.nodes.push(node);
        self
    }

    /// Adds an in-flight NodeClaim.
    pub fn in_flight(mut self, claim: InFlightClaim) -> Self {
        self.in_flight.push(claim);
        self
    }

    /// Sets the disruption settings of a NodePool.
    pub fn pool_disruption(mut self, nodepool: &str, disruption: PoolDisruption) -> Self {
        self.disruption.insert(nodepool.to_owned(), disruption);
        self
    }

    /// The disruption settings of a NodePool (upstream defaults when absent).
    pub fn disruption_of(&self, nodepool: &str) -> std::borrow::Cow<'_, PoolDisruption> {
        self.disruption.get(nodepool).map_or_else(
            || std::borrow::Cow::Owned(PoolDisruption::default()),
            std::borrow::Cow::Borrowed,
        )
    }

    /// Adds a DaemonSet.
    pub fn daemonset(mut self, daemonset: DaemonSet) -> Self {
        self.daemonsets.push(daemonset);
        self
    }
}

/// CPU and memory requests from millicores and MiB, the terse form tests use.
pub fn requests(cpu_milli: i64, memory_mib: i64) -> Resources {
    Resources::cpu_memory(MilliCpu(cpu_milli), Bytes::from_mib(memory_mib))
}
