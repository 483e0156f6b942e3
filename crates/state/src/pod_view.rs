//! What the index keeps of a Pod once its record is built: the few fields termination, the
//! per-pod metrics, workload counting and disruption read, instead of the whole object.
//!
//! A k8s-openapi `Pod` is about 2.4 KB before anything it points to (its `PodSpec` alone has a
//! field for every knob of the API), and a stripped one still carried its containers, status
//! conditions and tolerations: ≈ 6 KB a pod, kept for every pod of the cluster beside the
//! converted scheduling view. The scheduling constraints live in the record's `PendingPod`;
//! this is the rest, a few hundred bytes, so 150,000 pods fit the node layer's memory target.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use tandem_model::taints::Toleration;
use tandem_nodescaler::snapshot::PodOwner;

use crate::convert;

/// One owner reference, as the index reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `apiVersion`, for the owner path the `karpenter_pods_state` metric names.
    pub api_version: String,
    /// `kind`: ReplicaSet, StatefulSet, DaemonSet, Node …
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Object uid (a ReplicaSet's counts are looked up by it).
    pub uid: String,
    /// `controller: true`: the one owner that manages the pod.
    pub controller: bool,
}

/// A pod's identity, placement, life cycle and the disruption facts read from its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`: evictions are made for this very pod.
    pub uid: String,
    /// `spec.nodeName`, when set and not empty.
    pub node_name: Option<String>,
    /// `status.phase`.
    pub phase: Option<String>,
    /// Its `Ready` condition is `True`.
    pub ready: bool,
    /// `metadata.labels`, shared with the record's bound-pod view (PDB selectors read them).
    pub labels: Arc<BTreeMap<String, String>>,
    /// `metadata.ownerReferences`, in order.
    pub owners: Vec<Owner>,
    /// `spec.priorityClassName`: critical pods are drained last.
    pub priority_class_name: Option<String>,
    /// Carries the `kubernetes.io/config.mirror` annotation (a static pod's mirror).
    pub mirror_annotation: bool,
    /// The `karpenter.sh/do-not-disrupt` annotation's value, when present.
    pub do_not_disrupt: Option<String>,
    /// `spec.tolerations`, converted; shared like the labels (most pods carry the same two
    /// defaults for not-ready and unreachable nodes).
    pub tolerations: Arc<Vec<Toleration>>,
    /// `metadata.deletionTimestamp`.
    pub deletion: Option<Timestamp>,
    /// `status.startTime`.
    pub started: Option<Timestamp>,
    /// `spec.terminationGracePeriodSeconds`.
    pub grace_seconds: Option<i64>,
    /// The PersistentVolumeClaims it mounts, by name in its namespace
    /// (see [`convert::pod_claims`]).
    pub claims: Vec<String>,
}

impl PodView {
    /// Reads the view from the object, sharing `labels` with whoever else keeps them.
    pub fn new(pod: &Pod, labels: Arc<BTreeMap<String, String>>) -> Self {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let annotations = meta.annotations.as_ref();
        PodView {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            node_name: spec
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            phase: status.and_then(|s| s.phase.clone()),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True"),
            labels,
            owners: meta
                .owner_references
                .iter()
                .flatten()
                .map(|o| Owner {
                    api_version: o.api_version.clone(),
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                    uid: o.uid.clone(),
                    controller: o.controller == Some(true),
                })
                .collect(),
            priority_class_name: spec.and_then(|s| s.priority_class_name.clone()),
            mirror_annotation: annotations
                .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror")),
            do_not_disrupt: annotations
                .and_then(|a| a.get(tandem_nodescaler::disruption::DO_NOT_DISRUPT))
                .cloned(),
            tolerations: Arc::new(
                spec.and_then(|s| s.tolerations.as_ref())
                    .into_iter()
                    .flatten()
                    .map(convert::toleration)
                    .collect(),
            ),
            deletion: meta.deletion_timestamp.as_ref().map(|t| t.0),
            started: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
            grace_seconds: spec.and_then(|s| s.termination_grace_period_seconds),
            claims: convert::pod_claims(pod),
        }
    }

    /// `namespace/name`, the index's key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Finished: phase `Succeeded` or `Failed`.
    pub fn is_terminal(&self) -> bool {
        matches!(self.phase.as_deref(), Some("Succeeded" | "Failed"))
    }

    /// The node it occupies: bound and not finished.
    pub fn bound_node(&self) -> Option<&str> {
        self.node_name.as_deref().filter(|_| !self.is_terminal())
    }

    /// Counts toward its owner's replicas: not being deleted and not finished.
    pub fn live(&self) -> bool {
        self.deletion.is_none() && !self.is_terminal()
    }

    /// Its controller owner.
    pub fn controller(&self) -> Option<&Owner> {
        self.owners.iter().find(|o| o.controller)
    }

    /// True when its controller owner has this kind.
    pub fn owned_by(&self, kind: &str) -> bool {
        self.owners.iter().any(|o| o.controller && o.kind == kind)
    }

    /// A static pod's mirror: annotated so, or owned by its Node.
    pub fn mirror(&self) -> bool {
        self.mirror_annotation || self.owned_by("Node")
    }

    /// Who owns it, as disruption sees a bound pod: DaemonSet pods and mirror (static) pods go
    /// with their node.
    pub fn owner_kind(&self) -> PodOwner {
        if self.mirror() {
            PodOwner::Mirror
        } else if self.owned_by("DaemonSet") {
            PodOwner::DaemonSet
        } else {
            PodOwner::Workload
        }
    }

    /// `karpenter.sh/do-not-disrupt: "true"`.
    pub fn do_not_disrupt(&self) -> bool {
        self.do_not_disrupt.as_deref() == Some("true")
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
    fn the_view_reads_what_the_index_needs() {
        let p = pod(json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1",
                "labels": {"app": "web"},
                "annotations": {"karpenter.sh/do-not-disrupt": "true"},
                "deletionTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "n"},
                    {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "s",
                     "controller": true}]},
            "spec": {"nodeName": "n1", "priorityClassName": "system-node-critical",
                "terminationGracePeriodSeconds": 5,
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "containers": [{"name": "c"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}]},
            "status": {"phase": "Running", "startTime": "2026-01-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True"}]}
        }));
        let labels = Arc::new(p.metadata.labels.clone().unwrap_or_default());
        let v = PodView::new(&p, labels);
        assert_eq!(v.key(), "shop/web-0");
        assert_eq!(v.uid, "u1");
        assert_eq!(v.bound_node(), Some("n1"));
        assert!(v.ready && v.do_not_disrupt() && !v.live());
        assert_eq!(v.controller().map(|o| o.kind.as_str()), Some("StatefulSet"));
        assert!(v.owned_by("StatefulSet") && !v.owned_by("Node"));
        assert!(
            !v.mirror(),
            "a Node owner that is not the controller is no mirror"
        );
        assert_eq!(v.owner_kind(), PodOwner::Workload);
        assert_eq!(v.owners[0].api_version, "v1");
        assert_eq!(
            v.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
        assert_eq!(v.tolerations.len(), 1);
        assert!(v.deletion.is_some() && v.started.is_some());
        assert_eq!(v.grace_seconds, Some(5));
        assert_eq!(v.claims, ["data-web-0"]);
        assert_eq!(v.labels["app"], "web");
    }

    #[test]
    fn a_finished_pod_occupies_no_node_and_an_empty_node_name_is_none() {
        let done = pod(json!({
            "metadata": {"name": "j", "namespace": "ns"},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Succeeded"}
        }));
        let v = PodView::new(&done, Arc::default());
        assert_eq!(v.node_name.as_deref(), Some("n1"));
        assert_eq!(v.bound_node(), None);
        let unbound = pod(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": "", "containers": []}
        }));
        assert_eq!(PodView::new(&unbound, Arc::default()).node_name, None);
    }
}
