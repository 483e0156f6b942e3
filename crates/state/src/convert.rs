//! Live Kubernetes objects → the node layer's model types.
//!
//! Everything here is a total function: a field the model cannot represent (an unknown
//! operator, an unparsable quantity) is dropped rather than failing the whole object, because
//! the API server has validated the object already and one odd field must not hide a pod from
//! the provisioner. What "provisionable" means follows upstream `pkg/utils/pod/scheduling.go`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet as K8sDaemonSet;
use k8s_openapi::api::core::v1::{
    Container as K8sContainer, Node, NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim,
    Pod, PodAffinityTerm as K8sAffinityTerm, PodSpec, Taint as K8sTaint,
    Toleration as K8sToleration,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSelector;
use tandem_api::karpenter::NodePool as ApiNodePool;
use tandem_model::pod::{Container, ContainerRestartPolicy, HostPort, PodShape, Protocol};
use tandem_model::quantity::Quantity;
use tandem_model::requirements::{Operator, Requirement, Requirements, SelectorRequirement};
use tandem_model::resources::Resources;
use tandem_model::taints::{Taint, TaintEffect, Toleration, TolerationOperator};
use tandem_nodescaler::selector::{LabelSelector, SelectorExpression, SelectorOperator};
use tandem_nodescaler::snapshot::{
    BoundPod, Budget, BudgetNodes, BudgetReason, ConsolidationPolicy, DaemonSet, Limits, NodePool,
    NodeState, PendingPod, PodAffinityTerm, PoolDisruption, TopologySpreadConstraint,
    WeightedPodAffinityTerm, WhenUnsatisfiable,
};

/// A resource list of the API as model resources.
pub fn resources(list: Option<&BTreeMap<String, K8sQuantity>>) -> Resources {
    let mut out = Resources::new();
    for (name, q) in list.into_iter().flatten() {
        if let Ok(q) = q.0.parse::<Quantity>() {
            out.set(name, &q);
        }
    }
    out
}

fn container(c: &K8sContainer) -> Container {
    let requests = c.resources.as_ref().and_then(|r| {
        // Kubernetes defaults requests to limits when only limits are set.
        r.requests.as_ref().or(r.limits.as_ref())
    });
    Container {
        name: c.name.clone(),
        requests: resources(requests),
        restart_policy: match c.restart_policy.as_deref() {
            Some("Always") => ContainerRestartPolicy::Always,
            _ => ContainerRestartPolicy::Unset,
        },
        host_ports: c
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p.host_port?).ok().filter(|p| *p > 0)?;
                Some(HostPort {
                    ip: p.host_ip.clone().unwrap_or_default(),
                    port,
                    protocol: match p.protocol.as_deref() {
                        Some("UDP") => Protocol::Udp,
                        Some("SCTP") => Protocol::Sctp,
                        _ => Protocol::Tcp,
                    },
                })
            })
            .collect(),
    }
}

/// The parts of a pod spec that decide its size on a node.
pub fn shape(spec: &PodSpec) -> PodShape {
    PodShape {
        containers: spec.containers.iter().map(container).collect(),
        init_containers: spec
            .init_containers
            .iter()
            .flatten()
            .map(container)
            .collect(),
        overhead: resources(spec.overhead.as_ref()),
    }
}

/// A node-selector term as requirements; `None` when an expression cannot be represented
/// (the term then matches nothing, which is what an unknown operator means).
fn term(t: &NodeSelectorTerm) -> Option<Requirements> {
    let mut reqs = Requirements::new();
    for e in t.match_expressions.iter().flatten() {
        let operator: Operator = e.operator.parse().ok()?;
        let api = SelectorRequirement {
            key: e.key.clone(),
            operator,
            values: e.values.clone().unwrap_or_default(),
            min_values: None,
        };
        reqs.add(Requirement::from_api(&api).ok()?);
    }
    Some(reqs)
}

fn selector(s: Option<&K8sSelector>) -> LabelSelector {
    let Some(s) = s else {
        return LabelSelector::default();
    };
    LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions: s
            .match_expressions
            .iter()
            .flatten()
            .filter_map(|e| {
                let operator = match e.operator.as_str() {
                    "In" => SelectorOperator::In,
                    "NotIn" => SelectorOperator::NotIn,
                    "Exists" => SelectorOperator::Exists,
                    "DoesNotExist" => SelectorOperator::DoesNotExist,
                    _ => return None,
                };
                let mut values = e.values.clone().unwrap_or_default();
                values.sort();
                Some(SelectorExpression {
                    key: e.key.clone(),
                    operator,
                    values,
                })
            })
            .collect(),
    }
}

fn affinity_term(t: &K8sAffinityTerm) -> PodAffinityTerm {
    PodAffinityTerm {
        selector: selector(t.label_selector.as_ref()),
        namespaces: t.namespaces.clone().unwrap_or_default(),
        topology_key: t.topology_key.clone(),
    }
}

/// A taint effect from its API spelling.
pub fn effect(s: &str) -> Option<TaintEffect> {
    s.parse().ok()
}

/// A node taint as the model's.
pub fn taint(t: &K8sTaint) -> Option<Taint> {
    Some(Taint::new(
        &t.key,
        t.value.as_deref().unwrap_or_default(),
        effect(&t.effect)?,
    ))
}

/// A pod toleration as the model's (the termination controller asks whether a pod tolerates
/// the disrupted taint).
pub fn toleration(t: &K8sToleration) -> Toleration {
    Toleration {
        key: t.key.clone().unwrap_or_default(),
        operator: TolerationOperator::from(t.operator.as_deref().unwrap_or_default()),
        value: t.value.clone().unwrap_or_default(),
        effect: t.effect.as_deref().and_then(effect),
        toleration_seconds: t.toleration_seconds,
    }
}

/// Required node-affinity terms (OR-ed) of a spec.
fn required_affinity(spec: &PodSpec) -> Vec<Requirements> {
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.iter().filter_map(term).collect())
        .unwrap_or_default()
}

/// True when the pod is one the provisioner should find capacity for: not bound, not being
/// deleted, not finished, not gated, not a DaemonSet pod (those are overhead), and reported
/// Unschedulable by kube-scheduler (upstream waits for the scheduler's verdict so that pods
/// which fit existing nodes never trigger a launch).
pub fn is_provisionable(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let status = pod.status.as_ref();
    let unschedulable = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"));
    spec.node_name.is_none()
        && pod.metadata.deletion_timestamp.is_none()
        && !is_terminal(pod)
        && spec.scheduling_gates.as_ref().is_none_or(Vec::is_empty)
        && !is_owned_by(pod, "DaemonSet")
        && status
            .and_then(|s| s.nominated_node_name.as_ref())
            .is_none()
        && unschedulable
}

/// True for a Succeeded or Failed pod.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// True when the pod's controller owner has this kind.
pub fn is_owned_by(pod: &Pod, kind: &str) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == kind && o.controller == Some(true))
}

/// A pending pod as the provisioner sees it; `creation` orders pods of equal size.
pub fn pending_pod(pod: &Pod, creation: u64) -> Option<PendingPod> {
    let spec = pod.spec.as_ref()?;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let preferred_affinity = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|p| {
            p.iter()
                .filter_map(|w| Some((w.weight, term(&w.preference)?)))
                .collect()
        })
        .unwrap_or_default();
    let pod_affinity = spec.affinity.as_ref().and_then(|a| a.pod_affinity.as_ref());
    let anti = spec
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref());
    let required = |terms: Option<&Vec<K8sAffinityTerm>>| -> Vec<PodAffinityTerm> {
        terms.into_iter().flatten().map(affinity_term).collect()
    };
    let preferred = |terms: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
        terms
            .into_iter()
            .flatten()
            .map(|w| WeightedPodAffinityTerm {
                weight: w.weight,
                term: affinity_term(&w.pod_affinity_term),
            })
            .collect::<Vec<_>>()
    };
    Some(PendingPod {
        namespace,
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        creation,
        shape: shape(spec),
        labels: Arc::new(pod.metadata.labels.clone().unwrap_or_default()),
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        required_affinity: required_affinity(spec),
        preferred_affinity,
        tolerations: spec.tolerations.iter().flatten().map(toleration).collect(),
        pod_affinity: required(pod_affinity.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })),
        pod_anti_affinity: required(anti.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })),
        preferred_pod_affinity: preferred(pod_affinity.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })),
        preferred_pod_anti_affinity: preferred(anti.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })),
        topology_spread: spec
            .topology_spread_constraints
            .iter()
            .flatten()
            .map(|c| {
                let mut t = TopologySpreadConstraint::new(
                    &c.topology_key,
                    c.max_skew,
                    selector(c.label_selector.as_ref()),
                );
                if c.when_unsatisfiable == "ScheduleAnyway" {
                    t.when_unsatisfiable = WhenUnsatisfiable::ScheduleAnyway;
                }
                t.min_domains = c.min_domains;
                t
            })
            .collect(),
        volume_zones: Vec::new(),
    })
}

/// A pod bound to a node, as room it takes and labels topology counts.
pub fn bound_pod(pod: &Pod, labels: Arc<BTreeMap<String, String>>) -> BoundPod {
    let spec = pod.spec.clone().unwrap_or_default();
    let sh = shape(&spec);
    let mut b = BoundPod::new(
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        labels,
        sh.effective_requests(),
    );
    b.host_ports = sh
        .containers
        .iter()
        .flat_map(|c| c.host_ports.iter().cloned())
        .collect();
    b.anti_affinity = spec
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .map(affinity_term)
        .collect();
    b
}

/// Node life-cycle state: Deleting once deletion started; Initializing while not Ready or, for
/// a node Tandem manages, until it is labelled `karpenter.sh/initialized=true`.
pub fn node_state(node: &Node) -> NodeState {
    if node.metadata.deletion_timestamp.is_some() {
        return NodeState::Deleting;
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let managed = labels.contains_key(tandem_model::labels::NODEPOOL);
    let initialized = labels.get(crate::INITIALIZED_LABEL).map(String::as_str) == Some("true");
    if !ready || (managed && !initialized) {
        NodeState::Initializing
    } else {
        NodeState::Ready
    }
}

/// API requirements (NodePool, NodeClaim) in the model's normal form; unparsable entries are
/// dropped (the API server validated them).
pub fn api_requirements(list: &[tandem_api::karpenter::v1::Requirement]) -> Requirements {
    let mut reqs = Requirements::new();
    for r in list {
        let api: Option<SelectorRequirement> = serde_json::to_value(r)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok());
        if let Some(one) = api.and_then(|a| Requirement::from_api(&a).ok()) {
            reqs.add(one);
        }
    }
    reqs
}

fn api_taints(list: &[tandem_api::karpenter::v1::Taint]) -> Vec<Taint> {
    list.iter()
        .filter_map(|t| {
            let effect = serde_json::to_value(t.effect).ok()?;
            Some(Taint::new(
                &t.key,
                t.value.as_deref().unwrap_or_default(),
                effect.as_str()?.parse().ok()?,
            ))
        })
        .collect()
}

/// A NodePool as provisioning reads it, without usage (the index adds it).
pub fn nodepool(np: &ApiNodePool) -> NodePool {
    let name = np.metadata.name.clone().unwrap_or_default();
    let t = &np.spec.template;
    let mut limits = Limits::none();
    for (k, q) in &np.spec.limits {
        if let Ok(q) = q.as_str().parse::<Quantity>() {
            let amount = if k == tandem_model::resources::CPU {
                q.as_milli()
            } else {
                q.as_value()
            };
            limits = limits.resource(k, amount);
        }
    }
    NodePool {
        name,
        weight: np.spec.weight.unwrap_or(0),
        labels: t.metadata.labels.clone(),
        requirements: api_requirements(&t.spec.requirements),
        taints: api_taints(&t.spec.taints),
        startup_taints: api_taints(&t.spec.startup_taints),
        limits,
        usage: Resources::new(),
        node_count: 0,
        node_class: t.spec.node_class_ref.name.clone(),
    }
}

/// NodeClaim annotation: hash of the NodePool template it was made from (drift detection).
pub const NODEPOOL_HASH: &str = "karpenter.sh/nodepool-hash";

/// A stable hash of the NodePool template without its requirements (what upstream hashes to
/// detect drift), stamped on NodeClaims as `karpenter.sh/nodepool-hash`. FNV-1a over the
/// canonical JSON; not byte-identical to upstream's hashstructure, which only Tandem reads back.
pub fn nodepool_hash(np: &ApiNodePool) -> String {
    let mut t = serde_json::to_value(&np.spec.template).unwrap_or_default();
    if let Some(spec) = t.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.remove("requirements");
    }
    let text = t.to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.to_string()
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A NodePool's disruption settings: `spec.disruption` (`Balanced` is treated as
/// `WhenEmptyOrUnderutilized`), `template.spec.expireAfter` and the template hash.
pub fn pool_disruption(np: &ApiNodePool) -> PoolDisruption {
    use tandem_api::karpenter::v1::{ConsolidationPolicy as P, DisruptionReason as R};
    let d = &np.spec.disruption;
    let budgets = d
        .budgets
        .iter()
        .filter_map(|b| {
            let nodes = match b.nodes.strip_suffix('%') {
                Some(p) => BudgetNodes::Percent(p.parse().ok()?),
                None => BudgetNodes::Count(b.nodes.parse().ok()?),
            };
            Some(Budget {
                nodes,
                schedule: b.schedule.clone(),
                duration_ms: b.duration.as_ref().map(|d| duration_ms(d.value().0)),
                reasons: b
                    .reasons
                    .iter()
                    .map(|r| match r {
                        R::Empty => BudgetReason::Empty,
                        R::Drifted => BudgetReason::Drifted,
                        R::Underutilized => BudgetReason::Underutilized,
                    })
                    .collect(),
            })
        })
        .collect();
    PoolDisruption {
        policy: match d.consolidation_policy {
            P::WhenEmpty => ConsolidationPolicy::WhenEmpty,
            P::WhenEmptyOrUnderutilized | P::Balanced => {
                ConsolidationPolicy::WhenEmptyOrUnderutilized
            }
        },
        consolidate_after_ms: d.consolidate_after.value().as_duration().map(duration_ms),
        budgets,
        expire_after_ms: np
            .spec
            .template
            .spec
            .expire_after
            .value()
            .as_duration()
            .map(duration_ms),
        hash: Some(nodepool_hash(np)),
    }
}

/// True when the object carries `karpenter.sh/do-not-disrupt: "true"`.
pub fn do_not_disrupt(meta: &kube::api::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(tandem_nodescaler::disruption::DO_NOT_DISRUPT))
        .is_some_and(|v| v == "true")
}

/// A PodDisruptionBudget's selector; `None` (a null selector) selects no pod.
pub fn pdb_selector(s: Option<&K8sSelector>) -> Option<LabelSelector> {
    s.map(|s| selector(Some(s)))
}

/// A DaemonSet's template as per-node overhead.
pub fn daemonset(ds: &K8sDaemonSet) -> Option<DaemonSet> {
    let spec = ds.spec.as_ref()?.template.spec.as_ref()?;
    Some(DaemonSet {
        namespace: ds.metadata.namespace.clone().unwrap_or_default(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        shape: shape(spec),
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        required_affinity: required_affinity(spec),
        tolerations: spec.tolerations.iter().flatten().map(toleration).collect(),
    })
}

/// The zones some volumes allow a pod into.
///
/// `Only` with an empty set means no zone at all: the pod's volumes contradict each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneSet {
    /// Any zone: nothing restricts it.
    Any,
    /// Only these zones.
    Only(BTreeSet<String>),
}

impl ZoneSet {
    /// The zones both allow (a pod must satisfy all of its volumes).
    #[must_use]
    pub fn intersect(self, other: &ZoneSet) -> ZoneSet {
        match (self, other) {
            (ZoneSet::Any, o) => o.clone(),
            (s, ZoneSet::Any) => s,
            (ZoneSet::Only(a), ZoneSet::Only(b)) => {
                ZoneSet::Only(a.intersection(b).cloned().collect())
            }
        }
    }

    /// The zones either allows (OR-ed selector terms).
    #[must_use]
    pub fn union(self, other: ZoneSet) -> ZoneSet {
        match (self, other) {
            (ZoneSet::Only(mut a), ZoneSet::Only(b)) => {
                a.extend(b);
                ZoneSet::Only(a)
            }
            _ => ZoneSet::Any,
        }
    }

    /// The union of OR-ed terms; no term at all restricts nothing.
    fn any_of(terms: impl IntoIterator<Item = ZoneSet>) -> ZoneSet {
        terms
            .into_iter()
            .reduce(ZoneSet::union)
            .unwrap_or(ZoneSet::Any)
    }
}

/// True for a label key that names a node's zone: the well-known key, its deprecated
/// `failure-domain.beta.kubernetes.io/zone` alias, and CSI drivers' own topology keys
/// (`topology.ebs.csi.aws.com/zone`, `topology.disk.csi.azure.com/zone`, `topology.gke.io/zone`),
/// whose values are zone names too. Upstream maps the AWS EBS key to the zone label in
/// `NormalizedLabels`; volumes provisioned by a CSI driver carry only the driver's key.
pub fn is_zone_key(key: &str) -> bool {
    tandem_model::labels::normalize_key(key) == tandem_model::labels::ZONE
        || (key.starts_with("topology.") && key.ends_with("/zone"))
}

/// The zones one selector term allows: the intersection of its `In` expressions on a zone key.
/// Other operators and keys (`NotIn`, hostname, region) say nothing the model can use about
/// zones, so they are ignored rather than read as "no zone".
fn term_zones<'a>(exprs: impl IntoIterator<Item = (&'a str, &'a [String])>) -> ZoneSet {
    exprs
        .into_iter()
        .filter(|(key, _)| is_zone_key(key))
        .fold(ZoneSet::Any, |acc, (_, values)| {
            acc.intersect(&ZoneSet::Only(values.iter().cloned().collect()))
        })
}

/// The zones a PersistentVolume can be used from: its `spec.nodeAffinity.required` terms
/// (OR-ed, so their zones are united; upstream `volumetopology.go` reads only the first term,
/// which wrongly pins a volume valid in two zones to one of them).
pub fn persistent_volume_zones(pv: &PersistentVolume) -> ZoneSet {
    let terms = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    ZoneSet::any_of(terms.iter().map(|t| {
        term_zones(
            t.match_expressions
                .iter()
                .flatten()
                .filter(|e| e.operator == "In")
                .map(|e| (e.key.as_str(), e.values.as_deref().unwrap_or_default())),
        )
    }))
}

/// The zones a StorageClass provisions into: its `allowedTopologies` terms (OR-ed; every
/// expression is an implicit `In`).
pub fn storage_class_zones(sc: &StorageClass) -> ZoneSet {
    ZoneSet::any_of(sc.allowed_topologies.iter().flatten().map(|t| {
        term_zones(
            t.match_label_expressions
                .iter()
                .flatten()
                .map(|e| (e.key.as_str(), e.values.as_slice())),
        )
    }))
}

/// Annotation that makes a StorageClass the cluster's default, and its beta spelling, which
/// Kubernetes still honours (`component-helpers/storage/volume` `IsDefaultAnnotation`).
pub const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// True when the StorageClass is marked the default: claims that name no class get it.
pub fn is_default_storage_class(sc: &StorageClass) -> bool {
    sc.metadata.annotations.as_ref().is_some_and(|a| {
        DEFAULT_CLASS_ANNOTATIONS
            .iter()
            .any(|k| a.get(*k).is_some_and(|v| v == "true"))
    })
}

/// Which StorageClass an unbound claim is provisioned by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimClass {
    /// `storageClassName` unset: the default class (the API server's DefaultStorageClass
    /// admission sets it at creation, and the PV controller later, once a default exists).
    Default,
    /// `storageClassName: ""`: no class; only a pre-made volume can bind it.
    NoClass,
    /// A named class.
    Named(String),
}

/// The StorageClass a PersistentVolumeClaim asks for.
pub fn claim_class(pvc: &PersistentVolumeClaim) -> ClaimClass {
    match pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
    {
        None => ClaimClass::Default,
        Some("") => ClaimClass::NoClass,
        Some(name) => ClaimClass::Named(name.to_owned()),
    }
}

/// The PersistentVolume a claim is bound to (`spec.volumeName`), if any.
pub fn claim_volume(pvc: &PersistentVolumeClaim) -> Option<String> {
    pvc.spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty())
}

/// The PersistentVolumeClaims a pod mounts, by name in its namespace: `persistentVolumeClaim`
/// volumes name theirs, a generic `ephemeral` volume's claim is `<pod>-<volume>` (created by
/// the ephemeral volume controller).
pub fn pod_claims(pod: &Pod) -> Vec<String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| match (&v.persistent_volume_claim, &v.ephemeral) {
            (Some(c), _) => Some(c.claim_name.clone()),
            (None, Some(_)) => Some(format!("{pod_name}-{}", v.name)),
            (None, None) => None,
        })
        .collect()
}

/// Drops from a watched Pod what no node-layer decision, drain or metric reads, before it is
/// stored: k8s-openapi's structs are wide (one service-account `projected` volume is ≈ 3 KB,
/// a container ≈ 2 KB before its strings), and a heap profile of 9,000 pods had their volumes,
/// containers and container statuses as the largest sites. Kept: metadata, scheduling fields
/// (selectors, affinity, tolerations, spread, priority, gates, overhead, nodeName), per
/// container its name, resources, host ports and restart policy (sidecars), the volumes that
/// name claims (`pod_claims`), and the status phase, conditions, nominated node and start time.
pub fn strip_pod(pod: &mut Pod) {
    if let Some(spec) = pod.spec.as_mut() {
        if let Some(volumes) = spec.volumes.as_mut() {
            volumes.retain(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some());
            volumes.shrink_to_fit();
        }
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            let ports = c.ports.take().map(|ports| {
                ports
                    .into_iter()
                    .filter(|p| p.host_port.is_some_and(|h| h > 0))
                    .collect::<Vec<_>>()
            });
            *c = K8sContainer {
                name: std::mem::take(&mut c.name),
                resources: c.resources.take(),
                ports: ports.filter(|p| !p.is_empty()),
                restart_policy: c.restart_policy.take(),
                ..K8sContainer::default()
            };
        }
        spec.ephemeral_containers = None;
    }
    if let Some(status) = pod.status.as_mut() {
        status.container_statuses = None;
        status.init_container_statuses = None;
        status.ephemeral_container_statuses = None;
        status.resource_claim_statuses = None;
        status.host_ips = None;
        status.pod_ips = None;
        status.pod_ip = None;
    }
}

/// What coordination needs of a ScaledObject: its target and its window
/// (`max(cooldownPeriod, scale-down stabilization)`, both defaulting to 300 s as upstream).
pub fn scaled_target(so: &tandem_api::keda::ScaledObject) -> crate::workloads::ScaledTarget {
    let ns = so.metadata.namespace.clone().unwrap_or_default();
    let spec = &so.spec;
    let cooldown = spec.cooldown_period.unwrap_or(300);
    let stabilization = spec
        .advanced
        .as_ref()
        .and_then(|a| a.horizontal_pod_autoscaler_config.as_ref())
        .and_then(|h| h.behavior.as_ref())
        .and_then(|b| b.scale_down.as_ref())
        .and_then(|r| r.stabilization_window_seconds)
        .unwrap_or(300);
    let kind = spec
        .scale_target_ref
        .kind
        .clone()
        .unwrap_or_else(|| "Deployment".to_owned());
    crate::workloads::ScaledTarget {
        scaled_object: format!("{ns}/{}", so.metadata.name.as_deref().unwrap_or_default()),
        target: (ns, kind, spec.scale_target_ref.name.clone()),
        window_secs: u32::try_from(cooldown.max(stabilization)).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pending_pod_carries_requests_selectors_affinity_tolerations_and_spread() {
        let p = pod(json!({
            "metadata": {"name": "a", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
            "spec": {
                "nodeSelector": {"kubernetes.io/arch": "amd64"},
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                                "ports": [{"containerPort": 80, "hostPort": 8080}]}],
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}]}]}},
                    "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "x"}}}]}},
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "x"}}}],
            },
        }));
        let pp = pending_pod(&p, 7).unwrap();
        assert_eq!(pp.uid, "u1");
        assert_eq!(pp.creation, 7);
        let req = pp.shape.effective_requests();
        assert_eq!(req.cpu.0, 500);
        assert_eq!(req.memory.0, 1 << 30);
        assert_eq!(pp.shape.containers[0].host_ports[0].port, 8080);
        assert_eq!(pp.node_selector["kubernetes.io/arch"], "amd64");
        assert_eq!(pp.required_affinity.len(), 1);
        assert!(pp.required_affinity[0].has("karpenter.sh/capacity-type", "spot"));
        assert_eq!(pp.tolerations[0].operator, TolerationOperator::Exists);
        assert_eq!(
            pp.pod_anti_affinity[0].topology_key,
            "kubernetes.io/hostname"
        );
        assert_eq!(
            pp.topology_spread[0].when_unsatisfiable,
            WhenUnsatisfiable::ScheduleAnyway
        );
    }

    #[test]
    fn only_unschedulable_unbound_live_pods_are_provisionable() {
        let base = json!({
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]},
        });
        assert!(is_provisionable(&pod(base.clone())));
        let mut not_yet = base.clone();
        not_yet["status"]["conditions"] = json!([]);
        assert!(!is_provisionable(&pod(not_yet)));
        let mut bound = base.clone();
        bound["spec"]["nodeName"] = json!("n");
        assert!(!is_provisionable(&pod(bound)));
        let mut ds = base.clone();
        ds["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet",
            "name": "d", "uid": "x", "controller": true}]);
        assert!(!is_provisionable(&pod(ds)));
        let mut deleting = base;
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert!(!is_provisionable(&pod(deleting)));
    }

    #[test]
    fn nodepool_limits_are_in_model_units() {
        let np: ApiNodePool = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
            "metadata": {"name": "default"},
            "spec": {
                "limits": {"cpu": "4", "memory": "1Gi", "nodes": "3"},
                "template": {"metadata": {"labels": {"team": "a"}}, "spec": {
                    "requirements": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}],
                    "taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}],
                    "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "kc"}}},
            },
        }))
        .unwrap();
        let m = nodepool(&np);
        assert_eq!(m.limits.by_resource["cpu"], 4000);
        assert_eq!(m.limits.by_resource["memory"], 1 << 30);
        assert_eq!(m.limits.by_resource["nodes"], 3);
        assert_eq!(m.node_class, "kc");
        assert_eq!(m.labels["team"], "a");
        assert!(m.requirements.has("kubernetes.io/arch", "amd64"));
        assert_eq!(m.taints[0].to_string(), "dedicated=x:NoSchedule");
    }

    fn zones(z: &[&str]) -> ZoneSet {
        ZoneSet::Only(z.iter().map(|s| (*s).to_owned()).collect())
    }

    fn pv(terms: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "pv"},
            "spec": {"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/x"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": terms}}},
        }))
        .unwrap()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> serde_json::Value {
        json!({"key": key, "operator": op, "values": values})
    }

    #[test]
    fn persistent_volume_zones_read_every_zone_key_and_ignore_hostname() {
        let z = "topology.kubernetes.io/zone";
        let one = pv(json!([{"matchExpressions": [
            expr(z, "In", &["a", "b"]),
            expr("kubernetes.io/hostname", "In", &["n1"])]}]));
        assert_eq!(persistent_volume_zones(&one), zones(&["a", "b"]));
        let legacy = pv(json!([{"matchExpressions": [
            expr("failure-domain.beta.kubernetes.io/zone", "In", &["a"])]}]));
        assert_eq!(persistent_volume_zones(&legacy), zones(&["a"]));
        let csi = pv(json!([{"matchExpressions": [
            expr("topology.ebs.csi.aws.com/zone", "In", &["a", "c"]),
            expr(z, "In", &["c", "d"])]}]));
        assert_eq!(
            persistent_volume_zones(&csi),
            zones(&["c"]),
            "expressions of one term are AND-ed"
        );
    }

    #[test]
    fn persistent_volume_terms_are_or_ed_and_an_unzoned_term_allows_any_zone() {
        let z = "topology.kubernetes.io/zone";
        let two = pv(json!([
            {"matchExpressions": [expr(z, "In", &["a"])]},
            {"matchExpressions": [expr(z, "In", &["b"])]}]));
        assert_eq!(persistent_volume_zones(&two), zones(&["a", "b"]));
        let open = pv(json!([
            {"matchExpressions": [expr(z, "In", &["a"])]},
            {"matchExpressions": [expr("kubernetes.io/hostname", "In", &["n1"])]}]));
        assert_eq!(persistent_volume_zones(&open), ZoneSet::Any);
        let not_in = pv(json!([{"matchExpressions": [expr(z, "NotIn", &["a"])]}]));
        assert_eq!(persistent_volume_zones(&not_in), ZoneSet::Any);
        let none: PersistentVolume =
            serde_json::from_value(json!({"metadata": {"name": "pv"}, "spec": {}})).unwrap();
        assert_eq!(persistent_volume_zones(&none), ZoneSet::Any);
    }

    fn class(v: serde_json::Value) -> StorageClass {
        let mut base = json!({"metadata": {"name": "sc"}, "provisioner": "csi.example"});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn storage_class_zones_come_from_allowed_topologies() {
        let sc = class(json!({"allowedTopologies": [
            {"matchLabelExpressions": [{"key": "topology.kubernetes.io/zone", "values": ["b"]}]},
            {"matchLabelExpressions": [{"key": "topology.gke.io/zone", "values": ["c"]}]}]}));
        assert_eq!(storage_class_zones(&sc), zones(&["b", "c"]));
        assert_eq!(storage_class_zones(&class(json!({}))), ZoneSet::Any);
        assert!(!is_default_storage_class(&sc));
    }

    #[test]
    fn default_class_is_marked_by_either_annotation() {
        let ga = class(json!({"metadata": {"name": "sc", "annotations":
            {"storageclass.kubernetes.io/is-default-class": "true"}}}));
        let beta = class(json!({"metadata": {"name": "sc", "annotations":
            {"storageclass.beta.kubernetes.io/is-default-class": "true"}}}));
        let off = class(json!({"metadata": {"name": "sc", "annotations":
            {"storageclass.kubernetes.io/is-default-class": "false"}}}));
        assert!(is_default_storage_class(&ga));
        assert!(is_default_storage_class(&beta));
        assert!(!is_default_storage_class(&off));
    }

    #[test]
    fn claim_class_tells_unset_from_empty() {
        let pvc = |spec: serde_json::Value| -> PersistentVolumeClaim {
            serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": spec})).unwrap()
        };
        assert_eq!(claim_class(&pvc(json!({}))), ClaimClass::Default);
        assert_eq!(
            claim_class(&pvc(json!({"storageClassName": ""}))),
            ClaimClass::NoClass
        );
        assert_eq!(
            claim_class(&pvc(json!({"storageClassName": "fast"}))),
            ClaimClass::Named("fast".into())
        );
        assert_eq!(claim_volume(&pvc(json!({"volumeName": ""}))), None);
        assert_eq!(
            claim_volume(&pvc(json!({"volumeName": "pv-1"}))).as_deref(),
            Some("pv-1")
        );
    }

    #[test]
    fn a_stripped_pod_converts_as_the_whole_one() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u",
                "annotations": {"karpenter.sh/do-not-disrupt": "true"}},
            "spec": {
                "containers": [{"name": "app", "image": "nginx", "command": ["nginx"],
                    "env": [{"name": "A", "value": "b"}],
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                    "ports": [{"containerPort": 80}, {"containerPort": 8080, "hostPort": 8080}],
                    "volumeMounts": [{"name": "token", "mountPath": "/var/run"}]}],
                "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "100m"}}}],
                "volumes": [
                    {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "nodeSelector": {"zone": "a"}},
            "status": {"phase": "Pending", "podIP": "10.0.0.1",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
                "containerStatuses": [{"name": "app", "image": "nginx", "imageID": "", "ready": false,
                    "restartCount": 0}]},
        }))
        .unwrap();
        let before = pending_pod(&pod, 1);
        let claims = pod_claims(&pod);
        strip_pod(&mut pod);
        assert_eq!(format!("{:?}", pending_pod(&pod, 1)), format!("{before:?}"));
        assert!(is_provisionable(&pod));
        assert_eq!(pod_claims(&pod), claims);
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.volumes.as_ref().map(Vec::len), Some(1));
        let app = &spec.containers[0];
        assert_eq!((app.image.as_deref(), app.env.as_ref()), (None, None));
        assert_eq!(app.ports.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            spec.init_containers.as_ref().unwrap()[0]
                .restart_policy
                .as_deref(),
            Some("Always")
        );
        let status = pod.status.as_ref().unwrap();
        assert!(status.container_statuses.is_none() && status.pod_ip.is_none());
        assert!(do_not_disrupt(&pod.metadata));
    }

    #[test]
    fn pod_claims_name_claim_volumes_and_ephemeral_claims() {
        let p = pod(json!({
            "metadata": {"name": "web-0", "namespace": "ns"},
            "spec": {"containers": [{"name": "c"}], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "cfg", "configMap": {"name": "x"}}]},
        }));
        assert_eq!(pod_claims(&p), ["data", "web-0-scratch"]);
    }

    #[test]
    fn zone_sets_intersect_and_unite() {
        assert_eq!(ZoneSet::Any.intersect(&zones(&["a"])), zones(&["a"]));
        assert_eq!(
            zones(&["a", "b"]).intersect(&ZoneSet::Any),
            zones(&["a", "b"])
        );
        assert_eq!(zones(&["a"]).intersect(&zones(&["b"])), zones(&[]));
        assert_eq!(zones(&["a"]).union(zones(&["b"])), zones(&["a", "b"]));
        assert_eq!(zones(&["a"]).union(ZoneSet::Any), ZoneSet::Any);
        assert!(is_zone_key("topology.disk.csi.azure.com/zone"));
        assert!(!is_zone_key("topology.k8s.aws/zone-id"));
        assert!(!is_zone_key("kubernetes.io/hostname"));
    }
}
