//! Interruption: the cloud is taking instances away (spot reclaim, maintenance, a stop), so
//! their nodes are drained whatever budgets, `do-not-disrupt` or `consolidateAfter` say — the
//! pods leave either way (upstream: CordonAndDrain, forceful, no budgets).
//!
//! Upstream deletes the NodeClaim at once and lets provisioning find room for the evicted pods
//! after its batch window; the replacement boots while the pods wait Pending. Tandem plans the
//! replacements first, from the same scheduling simulation consolidation uses, so the executor
//! can launch them the moment the notice arrives and drain once they are up (within the
//! notice's warning time): the pods move instead of waiting.

use crate::provisioning::{self, Launch};
use crate::snapshot::Snapshot;

use super::simulate::reschedule;

/// The NodeClaims to launch for the reschedulable pods of `nodes` (Node names) when those
/// nodes go away together: pods that fit on the remaining nodes or on claims in flight get no
/// launch, pods that fit nowhere get none either (provisioning reports them once they are
/// Pending). Names not in the snapshot are ignored.
pub fn replacements(
    snapshot: &Snapshot,
    nodes: &[&str],
    provisioning: &provisioning::Options,
) -> Vec<Launch> {
    let remove: Vec<usize> = snapshot
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| nodes.contains(&n.name.as_str()))
        .map(|(i, _)| i)
        .collect();
    if remove.is_empty() {
        return Vec::new();
    }
    reschedule(snapshot, provisioning, &remove).replacements().0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disruption::testing::{cluster, node, workload_pod};

    #[test]
    fn an_interrupted_nodes_pods_get_a_replacement_holding_exactly_them() {
        let snap = cluster()
            .node(
                node("doomed", "m5.large")
                    .pod(workload_pod("a", 700))
                    .pod(workload_pod("b", 700)),
            )
            .node(node("full", "m5.large").pod(workload_pod("c", 1800)));
        let launches = replacements(&snap, &["doomed"], &provisioning::Options::default());
        assert_eq!(launches.len(), 1, "{launches:?}");
        let mut pods: Vec<&str> = launches[0].pods.iter().map(|p| p.name.as_str()).collect();
        pods.sort_unstable();
        assert_eq!(pods, ["a", "b"]);
    }

    #[test]
    fn pods_that_fit_elsewhere_need_no_replacement() {
        let snap = cluster()
            .node(node("doomed", "m5.large").pod(workload_pod("a", 500)))
            .node(node("roomy", "m5.xlarge").pod(workload_pod("c", 500)));
        assert!(replacements(&snap, &["doomed"], &provisioning::Options::default()).is_empty());
    }

    #[test]
    fn unknown_nodes_and_empty_nodes_launch_nothing() {
        let snap = cluster().node(node("empty", "m5.large"));
        let o = provisioning::Options::default();
        assert!(replacements(&snap, &["gone"], &o).is_empty());
        assert!(replacements(&snap, &["empty"], &o).is_empty());
    }

    #[test]
    fn two_nodes_interrupted_together_share_the_plan() {
        let snap = cluster()
            .node(node("x", "m5.large").pod(workload_pod("a", 900)))
            .node(node("y", "m5.large").pod(workload_pod("b", 900)));
        let launches = replacements(&snap, &["x", "y"], &provisioning::Options::default());
        let pods: usize = launches.iter().map(|l| l.pods.len()).sum();
        assert_eq!(pods, 2, "both nodes' pods are replaced: {launches:?}");
        assert!(
            launches.len() <= 2,
            "one plan for both, not one launch per pod: {launches:?}"
        );
    }
}
