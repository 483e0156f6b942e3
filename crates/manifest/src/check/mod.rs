//! `tandem check`: cross-layer lints over manifest files.
//!
//! `validate` judges each object alone; the mistakes seed 002 warns about live *between* the
//! layers: a ScaledObject's timers against a NodePool's `consolidateAfter`, `maxReplicaCount` ×
//! pod requests against NodePool limits, a pod template against every NodePool's labels, taints
//! and instance types. Each rule is a pure function over the converted objects ([`Inputs`]) in a
//! module per concept, and every [`CheckFinding`] names all objects involved and a concrete fix.
//!
//! ```text
//!   SourceFile ──► inputs (convert + file:line of each object) ──► fit      (pools a pod can use)
//!                                                               ├─► fit::rules  no-matching-nodepool, unfittable-pod,
//!                                                               │               replicas-exceed-nodepool-limits
//!                                                               ├─► timers      cooldown-vs-consolidate-after
//!                                                               ├─► requests    missing-requests
//!                                                               ├─► zero        scale-to-zero-without-headroom
//!                                                               └─► events      consolidate-after-vs-event-period
//!                                                                               (live: + metrics history)
//! ```
//!
//! The node-layer rules ask the provisioning core itself (`tandem_nodescaler::plan`) whether
//! one pod of a workload fits a NodePool, so `check`, `plan` and the live controllers agree.

pub mod events;
pub mod fit;
pub mod inputs;
pub mod requests;
pub mod timers;
pub mod zero;

use std::fmt;

pub use inputs::{Inputs, Located};

use crate::convert::ConvertError;
use crate::source::SourceFile;

/// How bad a finding is. Only errors make `tandem check` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The configuration cannot work as written (pods that can never run).
    Error,
    /// It works, but costs money, latency or capacity the user probably did not mean to spend.
    Warning,
    /// Worth knowing; a deliberate choice for many users.
    Info,
}

impl Severity {
    /// Lower-case name, as text and JSON print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// The rules, with their stable ids (scripts and suppressions key on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// A NodePool consolidates nodes sooner than the pod layer may bring their pods back.
    CooldownVsConsolidateAfter,
    /// `maxReplicaCount` × pod requests exceed the limits of every NodePool the pods can use.
    ReplicasExceedNodepoolLimits,
    /// No NodePool's labels, requirements and taints admit the pod.
    NoMatchingNodepool,
    /// A scaled target's container has no CPU or memory request.
    MissingRequests,
    /// NodePools admit the pod, but no instance type they allow can hold it.
    UnfittablePod,
    /// A served target scales to zero, and nothing keeps capacity warm for its first request.
    ScaleToZeroWithoutHeadroom,
    /// A NodePool removes nodes before the next event typically comes (live mode: from the
    /// metrics history).
    ConsolidateAfterVsEventPeriod,
}

impl Rule {
    /// The stable id.
    pub fn id(self) -> &'static str {
        match self {
            Rule::CooldownVsConsolidateAfter => "cooldown-vs-consolidate-after",
            Rule::ReplicasExceedNodepoolLimits => "replicas-exceed-nodepool-limits",
            Rule::NoMatchingNodepool => "no-matching-nodepool",
            Rule::MissingRequests => "missing-requests",
            Rule::UnfittablePod => "unfittable-pod",
            Rule::ScaleToZeroWithoutHeadroom => "scale-to-zero-without-headroom",
            Rule::ConsolidateAfterVsEventPeriod => "consolidate-after-vs-event-period",
        }
    }
}

/// One object a finding involves, located in the input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectLoc {
    /// Kind (`NodePool`).
    pub kind: String,
    /// Namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// The file as the user named it.
    pub file: String,
    /// 1-based line of the field the finding is about (or of the object).
    pub line: usize,
}

impl fmt::Display for ObjectLoc {
    /// `Kind ns/name (file:line)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name)?,
            None => write!(f, "{} {}", self.kind, self.name)?,
        }
        write!(f, " ({}:{})", self.file, self.line)
    }
}

/// One cross-layer finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFinding {
    /// Which rule.
    pub rule: Rule,
    /// How bad.
    pub severity: Severity,
    /// Every object involved, the one to edit first.
    pub objects: Vec<ObjectLoc>,
    /// What is wrong and what it does at run time.
    pub message: String,
    /// What to change, concretely.
    pub fix: String,
}

impl fmt::Display for CheckFinding {
    /// One block: `severity[rule]: message`, the objects indented, then `fix: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}[{}]: {}",
            self.severity.as_str(),
            self.rule.id(),
            self.message
        )?;
        for o in &self.objects {
            writeln!(f, "  --> {o}")?;
        }
        write!(f, "  fix: {}", self.fix)
    }
}

/// Runs every rule over already-read files. Pure: no I/O (the catalogs are compiled in).
///
/// Findings come rule by rule in [`Rule`] order, then in input order of their first object.
///
/// # Errors
/// The objects that cannot be converted (`tandem validate` explains them).
pub fn check(files: &[SourceFile]) -> Result<Vec<CheckFinding>, Vec<ConvertError>> {
    let inputs = Inputs::read(files)?;
    Ok(check_inputs(&inputs))
}

/// Runs every rule over converted inputs.
pub fn check_inputs(inputs: &Inputs) -> Vec<CheckFinding> {
    let fits = fit::fits(inputs);
    let mut out = Vec::new();
    out.extend(timers::cooldown_vs_consolidate_after(inputs, &fits));
    out.extend(fit::replicas_exceed_nodepool_limits(inputs, &fits));
    out.extend(fit::no_matching_nodepool(inputs, &fits));
    out.extend(requests::missing_requests(inputs));
    out.extend(fit::unfittable_pod(inputs, &fits));
    out.extend(zero::scale_to_zero_without_headroom(inputs));
    out
}

/// Every rule, plus the ones only a live cluster's history can feed
/// (`consolidate-after-vs-event-period`).
pub fn check_live(inputs: &Inputs, activity: &events::Activity) -> Vec<CheckFinding> {
    let mut out = check_inputs(inputs);
    out.extend(events::consolidate_after_vs_event_period(
        inputs,
        &fit::fits(inputs),
        activity,
    ));
    out
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::Inputs;
    use crate::source::from_text;

    /// Inputs from one YAML text (documents separated by `---`).
    pub fn inputs(text: &str) -> Inputs {
        Inputs::read(&[from_text("t.yaml", text)]).expect("test input converts")
    }

    /// A spot NodePool like seed 002's (label intent=apps, taint intent=workload-split).
    pub const SPOT_POOL: &str = r#"
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: spot
spec:
  disruption:
    consolidationPolicy: WhenEmptyOrUnderutilized
    consolidateAfter: 1m
  limits:
    cpu: "1000"
  template:
    metadata:
      labels:
        intent: apps
    spec:
      nodeClassRef:
        group: karpenter.k8s.aws
        kind: EC2NodeClass
        name: default
      requirements:
      - key: karpenter.sh/capacity-type
        operator: In
        values: ["spot"]
      taints:
      - key: intent
        value: workload-split
        effect: NoSchedule
"#;

    /// A Deployment `w` in `ns` with the given pod spec lines (indented for `spec.template.spec`).
    pub fn deployment(pod_spec: &str) -> String {
        format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: w
  namespace: ns
spec:
  replicas: 0
  selector:
    matchLabels:
      app: w
  template:
    metadata:
      labels:
        app: w
    spec:
{pod_spec}"#
        )
    }

    /// Tolerates the spot pool's taint and selects its label; `cpu`/`memory` requests.
    pub fn spot_pod(cpu: &str, memory: &str) -> String {
        format!(
            r#"      nodeSelector:
        intent: apps
      tolerations:
      - key: intent
        operator: Equal
        value: workload-split
        effect: NoSchedule
      containers:
      - name: c
        image: busybox
        resources:
          requests:
            cpu: {cpu}
            memory: {memory}
"#
        )
    }

    /// A ScaledObject `so` in `ns` targeting `w`, with extra spec lines (2-space indented).
    pub fn scaled_object(extra: &str) -> String {
        format!(
            r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: so
  namespace: ns
spec:
  scaleTargetRef:
    name: w
{extra}  triggers:
  - type: cron
    metadata:
      timezone: UTC
      start: "0 8 * * *"
      end: "0 18 * * *"
      desiredReplicas: "3"
"#
        )
    }

    /// Joins documents.
    pub fn join(docs: &[&str]) -> String {
        docs.join("\n---\n")
    }
}
