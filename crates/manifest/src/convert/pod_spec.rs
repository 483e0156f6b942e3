//! The pod template of any workload kind → nodescaler's [`PendingPod`]: the shape (effective
//! requests, sidecars, overhead, host ports) and every scheduling constraint the provisioner
//! reads (node selector, node affinity, tolerations, pod (anti-)affinity, topology spread).
//!
//! Requests follow the API server's defaulting: a container that sets a limit but no request
//! requests its limit (`SetDefaults_ResourceRequirements`). Field paths in errors are relative to
//! the object root, so they point at the line a person must edit.

use std::collections::BTreeMap;
use std::str::FromStr;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use tandem_model::pod::{Container, HostPort, PodShape, Protocol};
use tandem_model::quantity::Quantity;
use tandem_model::requirements::{Operator, Requirements, SelectorRequirement};
use tandem_model::resources::Resources;
use tandem_model::taints::{TaintEffect, Toleration, TolerationOperator};
use tandem_nodescaler::selector::{LabelSelector, SelectorExpression, SelectorOperator};
use tandem_nodescaler::snapshot::{
    NodeInclusionPolicy, PendingPod, PodAffinityTerm, TopologySpreadConstraint,
    WeightedPodAffinityTerm, WhenUnsatisfiable,
};

use super::FieldError;

/// `karpenter.sh/do-not-disrupt`: a pod with it keeps its node from voluntary disruption.
pub const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";

/// Which kind a workload came from; decides how its replicas behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment: replicas, scaled through `/scale`.
    Deployment,
    /// `apps/v1` StatefulSet: replicas, scaled through `/scale`.
    StatefulSet,
    /// `batch/v1` Job: `parallelism` pods that run to completion.
    Job,
    /// `v1` Pod: exactly one pod.
    Pod,
}

impl WorkloadKind {
    /// The kind as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::Pod => "Pod",
        }
    }
}

/// A workload reduced to what both layers read: how many replicas, and what each one needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Source kind.
    pub kind: WorkloadKind,
    /// Namespace (`default` when unwritten).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.replicas` (API default 1; `parallelism` for a Job; 1 for a Pod).
    pub replicas: u32,
    /// One replica, named after the workload; copies get their own name and uid.
    pub template: PendingPod,
    /// The first app container's image, so a node pulls it once.
    pub image: String,
    /// The template carries `karpenter.sh/do-not-disrupt: "true"`.
    pub do_not_disrupt: bool,
}

/// Converts a workload whose pods come from `spec.template` (Deployment, StatefulSet, Job):
/// the object's namespace and name, `replicas` copies of the template.
///
/// # Errors
/// [`FieldError`] when the template has no spec, or for a quantity or operator that cannot be
/// read.
pub fn from_template(
    kind: WorkloadKind,
    object: &meta::ObjectMeta,
    template: &core::PodTemplateSpec,
    replicas: u32,
) -> Result<Workload, FieldError> {
    let pod = template
        .spec
        .as_ref()
        .ok_or_else(|| FieldError::new("spec.template.spec", "the pod template has no spec"))?;
    convert(
        kind,
        &super::namespace_of(object.namespace.as_ref()),
        object.name.as_deref().unwrap_or_default(),
        replicas,
        template.metadata.as_ref(),
        pod,
        "spec.template.spec",
    )
}

/// Converts a pod template's metadata and spec; `spec_path` prefixes field paths in errors.
///
/// # Errors
/// [`FieldError`] for a quantity or operator that cannot be read.
pub fn convert(
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
    replicas: u32,
    meta: Option<&meta::ObjectMeta>,
    spec: &core::PodSpec,
    spec_path: &str,
) -> Result<Workload, FieldError> {
    let mut pod = PendingPod::new(namespace, name, Resources::new());
    pod.shape = shape(spec, spec_path)?;
    if let Some(labels) = meta.and_then(|m| m.labels.as_ref()) {
        pod.labels = std::sync::Arc::new(labels.clone());
    }
    if let Some(sel) = &spec.node_selector {
        pod.node_selector = sel.clone();
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        pod.tolerations
            .push(toleration(t, &format!("{spec_path}.tolerations[{i}]"))?);
    }
    if let Some(aff) = &spec.affinity {
        affinity(&mut pod, aff, &format!("{spec_path}.affinity"))?;
    }
    for c in spec.topology_spread_constraints.iter().flatten() {
        pod.topology_spread.push(spread(c, &pod.labels));
    }
    let do_not_disrupt = meta
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(DO_NOT_DISRUPT))
        .is_some_and(|v| v == "true");
    let image = spec
        .containers
        .first()
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    Ok(Workload {
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        replicas,
        template: pod,
        image,
        do_not_disrupt,
    })
}

fn shape(spec: &core::PodSpec, spec_path: &str) -> Result<PodShape, FieldError> {
    let mut shape = PodShape::default();
    for (i, c) in spec.containers.iter().enumerate() {
        shape
            .containers
            .push(container(c, &format!("{spec_path}.containers[{i}]"))?);
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let mut out = container(c, &format!("{spec_path}.initContainers[{i}]"))?;
        out.host_ports.clear();
        if c.restart_policy.as_deref() == Some("Always") {
            out = out.sidecar();
        }
        shape.init_containers.push(out);
    }
    if let Some(overhead) = &spec.overhead {
        shape.overhead = resources(overhead, &format!("{spec_path}.overhead"))?;
    }
    Ok(shape)
}

fn container(c: &core::Container, path: &str) -> Result<Container, FieldError> {
    let empty = BTreeMap::new();
    let res = c.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref()).unwrap_or(&empty);
    let limits = res.and_then(|r| r.limits.as_ref()).unwrap_or(&empty);
    // A limit without a request defaults the request (API server defaulting).
    let mut merged = limits.clone();
    merged.extend(requests.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut out = Container::new(
        &c.name,
        resources(&merged, &format!("{path}.resources.requests"))?,
    );
    for p in c.ports.iter().flatten() {
        if let Some(port) = p.host_port.and_then(|h| u16::try_from(h).ok()) {
            out.host_ports.push(HostPort {
                ip: p.host_ip.clone().unwrap_or_default(),
                port,
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => Protocol::Udp,
                    Some("SCTP") => Protocol::Sctp,
                    _ => Protocol::Tcp,
                },
            });
        }
    }
    Ok(out)
}

/// A resource list of quantity strings → [`Resources`].
///
/// # Errors
/// [`FieldError`] at `path.<name>` for a quantity that does not parse.
pub fn resources(
    list: &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    path: &str,
) -> Result<Resources, FieldError> {
    let mut parsed = Vec::with_capacity(list.len());
    for (name, q) in list {
        let q = Quantity::from_str(&q.0)
            .map_err(|e| FieldError::new(format!("{path}.{name}"), e.to_string()))?;
        parsed.push((name.as_str(), q));
    }
    Ok(Resources::from_quantities(
        parsed.iter().map(|(n, q)| (*n, q)),
    ))
}

fn toleration(t: &core::Toleration, path: &str) -> Result<Toleration, FieldError> {
    let effect = match t.effect.as_deref() {
        None | Some("") => None,
        Some(e) => Some(
            TaintEffect::from_str(e)
                .map_err(|err| FieldError::new(format!("{path}.effect"), err.to_string()))?,
        ),
    };
    Ok(Toleration {
        key: t.key.clone().unwrap_or_default(),
        operator: TolerationOperator::from(t.operator.as_deref().unwrap_or("")),
        value: t.value.clone().unwrap_or_default(),
        effect,
        toleration_seconds: t.toleration_seconds,
    })
}

/// One `nodeSelectorTerm` → [`Requirements`] (matchFields are not node labels and are skipped).
fn term(t: &core::NodeSelectorTerm, path: &str) -> Result<Requirements, FieldError> {
    let mut api = Vec::new();
    for (i, e) in t.match_expressions.iter().flatten().enumerate() {
        let operator = Operator::from_str(&e.operator).map_err(|err| {
            FieldError::new(
                format!("{path}.matchExpressions[{i}].operator"),
                err.to_string(),
            )
        })?;
        api.push(SelectorRequirement {
            key: e.key.clone(),
            operator,
            values: e.values.clone().unwrap_or_default(),
            min_values: None,
        });
    }
    Requirements::from_api(&api)
        .map_err(|err| FieldError::new(format!("{path}.matchExpressions"), err.to_string()))
}

fn affinity(pod: &mut PendingPod, a: &core::Affinity, path: &str) -> Result<(), FieldError> {
    if let Some(na) = &a.node_affinity {
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            for (i, t) in req.node_selector_terms.iter().enumerate() {
                let p = format!(
                    "{path}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}]"
                );
                pod.required_affinity.push(term(t, &p)?);
            }
        }
        for (i, w) in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            let p = format!(
                "{path}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference"
            );
            pod.preferred_affinity
                .push((w.weight, term(&w.preference, &p)?));
        }
    }
    if let Some(pa) = &a.pod_affinity {
        for t in pa
            .required_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
        {
            pod.pod_affinity.push(affinity_term(t));
        }
        for w in pa
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
        {
            pod.preferred_pod_affinity.push(WeightedPodAffinityTerm {
                weight: w.weight,
                term: affinity_term(&w.pod_affinity_term),
            });
        }
    }
    if let Some(pa) = &a.pod_anti_affinity {
        for t in pa
            .required_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
        {
            pod.pod_anti_affinity.push(affinity_term(t));
        }
        for w in pa
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
        {
            pod.preferred_pod_anti_affinity
                .push(WeightedPodAffinityTerm {
                    weight: w.weight,
                    term: affinity_term(&w.pod_affinity_term),
                });
        }
    }
    Ok(())
}

fn affinity_term(t: &core::PodAffinityTerm) -> PodAffinityTerm {
    PodAffinityTerm {
        selector: t.label_selector.as_ref().map(selector).unwrap_or_default(),
        namespaces: t.namespaces.clone().unwrap_or_default(),
        topology_key: t.topology_key.clone(),
    }
}

/// A `metav1.LabelSelector` → nodescaler's selector (values sorted, unknown operators never
/// match, as the API server would have refused them).
pub fn selector(s: &meta::LabelSelector) -> LabelSelector {
    let match_expressions = s
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            let mut values = e.values.clone().unwrap_or_default();
            values.sort();
            SelectorExpression {
                key: e.key.clone(),
                operator: match e.operator.as_str() {
                    "In" => SelectorOperator::In,
                    "NotIn" => SelectorOperator::NotIn,
                    "Exists" => SelectorOperator::Exists,
                    _ => SelectorOperator::DoesNotExist,
                },
                values,
            }
        })
        .collect();
    LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions,
    }
}

fn spread(
    c: &core::TopologySpreadConstraint,
    own_labels: &BTreeMap<String, String>,
) -> TopologySpreadConstraint {
    let mut sel = c.label_selector.as_ref().map(selector).unwrap_or_default();
    // matchLabelKeys: the pod's own values of those keys join the selector.
    for key in c.match_label_keys.iter().flatten() {
        if let Some(v) = own_labels.get(key) {
            sel.match_labels.insert(key.clone(), v.clone());
        }
    }
    let policy = |p: Option<&String>, default| match p.map(String::as_str) {
        Some("Honor") => NodeInclusionPolicy::Honor,
        Some("Ignore") => NodeInclusionPolicy::Ignore,
        _ => default,
    };
    TopologySpreadConstraint {
        topology_key: c.topology_key.clone(),
        max_skew: c.max_skew,
        when_unsatisfiable: if c.when_unsatisfiable == "ScheduleAnyway" {
            WhenUnsatisfiable::ScheduleAnyway
        } else {
            WhenUnsatisfiable::DoNotSchedule
        },
        selector: sel,
        min_domains: c.min_domains,
        node_affinity_policy: policy(c.node_affinity_policy.as_ref(), NodeInclusionPolicy::Honor),
        node_taints_policy: policy(c.node_taints_policy.as_ref(), NodeInclusionPolicy::Ignore),
    }
}

/// A replica count from the API's `i32`, never negative.
pub(crate) fn replicas(n: Option<i32>, default: u32) -> u32 {
    n.map_or(default, |n| u32::try_from(n).unwrap_or(0))
}
