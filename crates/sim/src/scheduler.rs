//! The simulated kube-scheduler: binds a pending pod to a Ready node that has room.
//!
//! nodescaler exposes no placement for existing nodes on its own, so this is a deliberately
//! simple filter, documented here so nobody mistakes it for kube-scheduler:
//! - filters: requests fit the node's free allocatable (`Resources::fits`, pods count
//!   included), every `NoSchedule`/`NoExecute` taint tolerated, `nodeSelector` labels equal,
//!   one required node-affinity term satisfied by the node's labels, host ports free;
//! - not modelled: pod (anti-)affinity, topology spread, preferred terms and scores other than
//!   the one below (the node layer honours them when it plans, and nominated pods go to the node
//!   planned for them first);
//! - score: the pod's nominated node if it fits, else the fitting node with the most free CPU
//!   (kube-scheduler's default `LeastAllocated`), ties by name.

use tandem_model::pod::HostPort;
use tandem_model::requirements::{Operator, Requirements};
use tandem_model::resources::Resources;
use tandem_model::taints::{Taint, TaintEffect, Toleration};
use tandem_nodescaler::selector::Labels;
use tandem_nodescaler::snapshot::PendingPod;

/// True when a node with `labels` satisfies one requirement set (a node-affinity term).
pub fn labels_satisfy(labels: &Labels, term: &Requirements) -> bool {
    term.iter().all(|r| match labels.get(r.key()) {
        Some(v) => r.has(v),
        None => matches!(r.operator(), Operator::NotIn | Operator::DoesNotExist),
    })
}

/// True when the pod may be placed on a node with these labels and taints (ignoring room).
pub fn compatible(pod: &PendingPod, labels: &Labels, taints: &[Taint]) -> bool {
    let tolerated = |t: &Taint| {
        t.effect == TaintEffect::PreferNoSchedule
            || pod
                .tolerations
                .iter()
                .any(|tol: &Toleration| tol.tolerates(t))
    };
    taints.iter().all(tolerated)
        && pod
            .node_selector
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|nv| nv == v))
        && (pod.required_affinity.is_empty()
            || pod
                .required_affinity
                .iter()
                .any(|t| labels_satisfy(labels, t)))
}

/// True when `requests` and `ports` fit into what the node has free.
pub fn fits(
    requests: &Resources,
    ports: &[HostPort],
    free: &Resources,
    used_ports: &[HostPort],
) -> bool {
    requests.fits(free)
        && ports
            .iter()
            .all(|p| used_ports.iter().all(|u| !u.conflicts(p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_model::requirements::Requirement;
    use tandem_model::resources::{Bytes, MilliCpu};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn taints_selectors_and_affinity_filter_nodes() {
        let taint = Taint::new("intent", "workload-split", TaintEffect::NoSchedule);
        let pod = PendingPod::new("ns", "p", Resources::new()).node_selector("intent", "apps");
        let l = labels(&[("intent", "apps")]);
        assert!(!compatible(&pod, &l, std::slice::from_ref(&taint)));
        let pod = pod.tolerate(Toleration::equal("intent", "workload-split", None));
        assert!(compatible(&pod, &l, std::slice::from_ref(&taint)));
        assert!(!compatible(&pod, &labels(&[]), &[]));
        let mut term = Requirements::new();
        term.add(Requirement::in_values("kubernetes.io/arch", ["arm64"]));
        let pod = PendingPod::new("ns", "p", Resources::new()).require(term);
        assert!(compatible(
            &pod,
            &labels(&[("kubernetes.io/arch", "arm64")]),
            &[]
        ));
        assert!(!compatible(
            &pod,
            &labels(&[("kubernetes.io/arch", "amd64")]),
            &[]
        ));
    }

    #[test]
    fn room_is_checked_per_resource() {
        let r = Resources::cpu_memory(MilliCpu(500), Bytes::from_mib(256));
        let free = Resources::cpu_memory(MilliCpu(400), Bytes::from_gib(1));
        assert!(!fits(&r, &[], &free, &[]));
        let free = Resources {
            pods: 1,
            ..Resources::cpu_memory(MilliCpu(500), Bytes::from_gib(1))
        };
        let r = Resources { pods: 1, ..r };
        assert!(fits(&r, &[], &free, &[]));
    }
}
