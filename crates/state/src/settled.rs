//! Whether the pending pods are all there: every pod their ReplicaSets want exists, and
//! kube-scheduler has ruled on each unbound one. Then no pod of theirs is still coming and
//! the provisioning batch may close at once instead of waiting out its idle window.
//!
//! Upstream's window closes 1 s after the last pending pod appeared (at most 10 s after the
//! first). On a loaded API server the scheduler rejects a 300-pod burst over seconds, so the
//! first pods wait for the last ones plus the idle second; at 1,000 nodes that window was most
//! of the 4.6 s median between a pod's `Unschedulable` verdict and its `Nominated` Event
//! (`node_layer_at_size`). Knowing that nothing else is coming, the batch has every pod it would
//! have had, without the wait. Pods of any other owner keep the timer: their count is unknown.

use std::collections::{BTreeMap, BTreeSet};

/// What the rule reads of one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodFacts<'a> {
    /// UID of its controller owner when that is a ReplicaSet.
    pub replica_set: Option<&'a str>,
    /// Not terminal and not being deleted: it counts toward its ReplicaSet's replicas.
    pub live: bool,
    /// Unbound with kube-scheduler's `Unschedulable` verdict: the provisioner's to place.
    pub provisionable: bool,
    /// Unbound, live and without a verdict yet (or gated, or nominated for preemption): the
    /// scheduler may still bind it, or hand it to the provisioner later.
    pub undecided: bool,
}

/// True when there are provisionable pods, each owned by a ReplicaSet in `desired` (UID →
/// `spec.replicas`), and every such ReplicaSet has all its live pods with no undecided one.
pub fn pending_settled<'a>(
    pods: impl IntoIterator<Item = PodFacts<'a>> + Clone,
    desired: &BTreeMap<String, i32>,
) -> bool {
    let mut owners = BTreeSet::new();
    for p in pods.clone().into_iter().filter(|p| p.provisionable) {
        match p.replica_set {
            Some(rs) if desired.contains_key(rs) => {
                owners.insert(rs);
            }
            _ => return false,
        }
    }
    if owners.is_empty() {
        return false;
    }
    let mut live: BTreeMap<&str, i64> = BTreeMap::new();
    for p in pods {
        let Some(rs) = p.replica_set.filter(|rs| owners.contains(rs)) else {
            continue;
        };
        if p.undecided {
            return false;
        }
        if p.live {
            *live.entry(rs).or_default() += 1;
        }
    }
    owners
        .iter()
        .all(|rs| live.get(rs).copied().unwrap_or(0) >= i64::from(desired[*rs]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod<'a>(rs: Option<&'a str>, state: &str) -> PodFacts<'a> {
        PodFacts {
            replica_set: rs,
            live: state != "deleting",
            provisionable: state == "pending",
            undecided: state == "undecided",
        }
    }

    #[test]
    fn settled_only_when_every_wanted_pod_exists_and_was_ruled_on() {
        let desired: BTreeMap<String, i32> = [("a".into(), 3), ("b".into(), 1)].into();
        let check = |pods: &[PodFacts]| pending_settled(pods.iter().copied(), &desired);
        // (pods, settled)
        let table: Vec<(Vec<PodFacts>, bool)> = vec![
            (vec![], false),
            (
                vec![pod(Some("a"), "bound"), pod(Some("a"), "bound")],
                false,
            ),
            // Two of three pods exist: the third is still coming.
            (
                vec![pod(Some("a"), "pending"), pod(Some("a"), "pending")],
                false,
            ),
            // All three: one bound to room already there, two pending.
            (
                vec![
                    pod(Some("a"), "bound"),
                    pod(Some("a"), "pending"),
                    pod(Some("a"), "pending"),
                ],
                true,
            ),
            // One the scheduler has not ruled on yet.
            (
                vec![
                    pod(Some("a"), "undecided"),
                    pod(Some("a"), "pending"),
                    pod(Some("a"), "pending"),
                ],
                false,
            ),
            // A deleting pod does not count: its replacement is still coming.
            (
                vec![
                    pod(Some("a"), "deleting"),
                    pod(Some("a"), "pending"),
                    pod(Some("a"), "pending"),
                ],
                false,
            ),
            // An unknown ReplicaSet, or an owner of another kind: the timer decides.
            (vec![pod(Some("c"), "pending")], false),
            (vec![pod(None, "pending"), pod(Some("b"), "pending")], false),
            // Another ReplicaSet's undecided pod does not hold this one back.
            (
                vec![pod(Some("b"), "pending"), pod(Some("a"), "undecided")],
                true,
            ),
        ];
        for (pods, settled) in table {
            assert_eq!(check(&pods), settled, "{pods:?}");
        }
    }
}
