//! Coordination with the pod layer: an emptiness or consolidation command is deferred while it
//! would take away room the pod layer is likely to need again within its own window.
//!
//! The pod layer puts [`Comeback`]s into the snapshot: pods a workload scaled away recently
//! and can bring back at once (KEDA's cooldown, the HPA's scale-down stabilization). Before a
//! command for reason `Empty` or `Underutilized` runs, the comeback pods are placed twice with
//! the provisioning core: on the cluster as it is, and on the cluster after the command (its
//! candidates gone, their pods moved). If fewer of them find room without a launch afterwards,
//! the command would cause exactly the launch-after-consolidation oscillation of seed 002, and
//! it waits. Holds end at their `until_ms`, so a node is kept for a bounded time. Expiration
//! and drift are never deferred: they are about the node, not about its load.

use std::collections::BTreeSet;

use super::command::{Disrupt, Reason};
use super::simulate::reschedule;
use crate::provisioning::{self, plan};
use crate::snapshot::{Comeback, PendingPod, Snapshot};

/// Name prefix of the stand-in pods, so placements can be told apart from real pods.
const PREFIX: &str = "comeback:";

/// The comeback pods active at `now_ms` for the pools the command touches, as pending pods
/// placed after every real pod.
fn stand_ins(snapshot: &Snapshot, now_ms: i64) -> (Vec<PendingPod>, Vec<&Comeback>) {
    let active: Vec<&Comeback> = snapshot
        .comebacks
        .iter()
        .filter(|c| c.until_ms > now_ms && c.count > 0)
        .collect();
    let mut pods = Vec::new();
    let mut order = u64::MAX - 1_000_000;
    for c in &active {
        for i in 0..c.count {
            let mut p = c.pod.clone();
            p.name = format!("{PREFIX}{}:{i}", c.workload);
            p.uid = p.name.clone();
            order += 1;
            p.creation = order;
            pods.push(p);
        }
    }
    (pods, active)
}

/// An instant for a message, to the second. Absolute rather than "within N s": the message
/// stays the same from pass to pass, so it is one Event (not one per pass) and a settled
/// pass can replay it (see [`super::settled`]).
fn instant(ms: i64) -> String {
    jiff_croner::Timestamp::from_second(ms.div_euclid(1000))
        .map_or_else(|_| format!("{ms} ms"), |t| t.to_string())
}

fn placed_count(plan: &provisioning::Plan) -> usize {
    plan.nominations
        .iter()
        .filter(|n| n.pod.name.starts_with(PREFIX))
        .count()
}

/// The active comeback pods placed on the cluster as it is: the one scheduling simulation a
/// pass's holds and deferrals all start from.
pub struct Placed<'a> {
    active: Vec<&'a Comeback>,
    /// The snapshot with the stand-in pods added, for the "after" simulations.
    with: Snapshot,
    plan: provisioning::Plan,
}

/// Places the comeback pods active at `now_ms`; `None` when there are none (then nothing is
/// held or deferred, and no simulation runs).
pub fn place<'a>(
    snapshot: &'a Snapshot,
    now_ms: i64,
    provisioning: &provisioning::Options,
) -> Option<Placed<'a>> {
    let (pods, active) = stand_ins(snapshot, now_ms);
    if pods.is_empty() {
        return None;
    }
    let mut with = snapshot.clone();
    with.pods.extend(pods);
    let plan = plan(&with, provisioning);
    Some(Placed { active, with, plan })
}

/// The nodes the comeback pods would land on today, each with the deferral message: the pass
/// leaves them out of emptiness and consolidation, so other nodes (and other pools) are still
/// considered. Pools that opted out hold nothing.
pub fn held_nodes(
    snapshot: &Snapshot,
    placed: Option<&Placed<'_>>,
) -> std::collections::BTreeMap<String, String> {
    let mut held = std::collections::BTreeMap::new();
    let Some(placed) = placed else {
        return held;
    };
    for nom in placed
        .plan
        .nominations
        .iter()
        .filter(|n| n.pod.name.starts_with(PREFIX))
    {
        let Some(node) = snapshot.nodes.iter().find(|n| n.name == nom.node) else {
            continue;
        };
        if node
            .labels
            .get(tandem_model::labels::NODEPOOL)
            .is_some_and(|p| snapshot.uncoordinated_pools.contains(p))
        {
            continue;
        }
        let workload = nom
            .pod
            .name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.rsplit_once(':'))
            .map_or("", |(w, _)| w);
        let Some(until) = placed
            .active
            .iter()
            .find(|c| c.workload == workload)
            .map(|c| c.until_ms)
        else {
            continue;
        };
        held.entry(node.name.clone()).or_insert_with(|| {
            format!(
                "kept for pods the pod layer may bring back ({workload}) until {}",
                instant(until)
            )
        });
    }
    held
}

/// Why `command` must wait for the pod layer, or `None` when it may run. Pure; runs one
/// scheduling simulation beyond [`place`]'s, and none when no comeback is active.
pub fn deferral(
    snapshot: &Snapshot,
    placed: Option<&Placed<'_>>,
    command: &Disrupt,
    provisioning: &provisioning::Options,
) -> Option<String> {
    if !matches!(command.reason, Reason::Empty | Reason::Underutilized) {
        return None;
    }
    let placed = placed?;
    let remove: Vec<usize> = snapshot
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| command.candidates.contains(&n.name))
        .filter(|(_, n)| {
            n.labels
                .get(tandem_model::labels::NODEPOOL)
                .is_none_or(|p| !snapshot.uncoordinated_pools.contains(p))
        })
        .map(|(i, _)| i)
        .collect();
    if remove.is_empty() {
        return None;
    }
    let room_before = placed_count(&placed.plan);
    if room_before == 0 {
        return None;
    }
    // The stand-ins come after every real pod, so the nodes keep their indexes.
    let after = reschedule(&placed.with, provisioning, &remove);
    let room_after = placed_count(&after.plan);
    if room_after >= room_before {
        return None;
    }
    let workloads: BTreeSet<&str> = placed.active.iter().map(|c| c.workload.as_str()).collect();
    let until = placed.active.iter().map(|c| c.until_ms).max().unwrap_or(0);
    Some(format!(
        "the pod layer may bring back {} pods ({}) until {}; {} of them would need a new node",
        room_before,
        workloads.into_iter().collect::<Vec<_>>().join(", "),
        instant(until),
        room_before - room_after
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disruption::command::{MethodKind, TerminationMode};
    use crate::disruption::testing::{cluster, node, workload_pod};
    use crate::snapshot::requests;
    use tandem_model::catalog::UsdPerHour;

    /// The pass's two steps in one, as the tests ask them.
    fn deferral(
        snap: &Snapshot,
        cmd: &Disrupt,
        now_ms: i64,
        o: &provisioning::Options,
    ) -> Option<String> {
        super::deferral(snap, place(snap, now_ms, o).as_ref(), cmd, o)
    }

    fn held_nodes(
        snap: &Snapshot,
        now_ms: i64,
        o: &provisioning::Options,
    ) -> std::collections::BTreeMap<String, String> {
        super::held_nodes(snap, place(snap, now_ms, o).as_ref())
    }

    fn delete(nodes: &[&str], reason: Reason) -> Disrupt {
        Disrupt {
            candidates: nodes.iter().map(|n| (*n).to_owned()).collect(),
            replacements: Vec::new(),
            nominations: Vec::new(),
            reason,
            method: MethodKind::Emptiness,
            mode: TerminationMode::Graceful,
            revalidate_after_ms: 0,
            cost_before: UsdPerHour::default(),
            cost_after: UsdPerHour::default(),
        }
    }

    fn comeback(count: u32, until_ms: i64) -> Comeback {
        Comeback {
            workload: "shop/worker".into(),
            pod: PendingPod::new("shop", "worker", requests(1500, 256)),
            count,
            until_ms,
        }
    }

    fn two_nodes_one_empty() -> Snapshot {
        cluster()
            .node(node("busy", "m5.large").pod(workload_pod("a", 1800)))
            .node(node("empty", "m5.large"))
    }

    #[test]
    fn an_empty_node_the_pod_layer_will_refill_waits() {
        let mut snap = two_nodes_one_empty();
        snap.comebacks.push(comeback(1, 60_000));
        let why = deferral(
            &snap,
            &delete(&["empty"], Reason::Empty),
            1_000,
            &provisioning::Options::default(),
        )
        .expect("deferred");
        assert!(
            why.contains("bring back 1 pods (shop/worker) until 1970-01-01T00:01:00Z"),
            "{why}"
        );
    }

    #[test]
    fn the_node_the_comebacks_would_use_is_held_and_named() {
        let mut snap = two_nodes_one_empty();
        snap.comebacks.push(comeback(1, 60_000));
        let held = held_nodes(&snap, 1_000, &provisioning::Options::default());
        assert_eq!(held.keys().collect::<Vec<_>>(), ["empty"]);
        assert!(
            held["empty"].contains("may bring back (shop/worker) until 1970-01-01T00:01:00Z"),
            "{held:?}"
        );
        snap.uncoordinated_pools.insert("default".into());
        assert!(held_nodes(&snap, 1_000, &provisioning::Options::default()).is_empty());
    }

    #[test]
    fn no_hold_past_its_end_or_without_comebacks() {
        let mut snap = two_nodes_one_empty();
        let cmd = delete(&["empty"], Reason::Empty);
        let o = provisioning::Options::default();
        assert_eq!(deferral(&snap, &cmd, 1_000, &o), None);
        snap.comebacks.push(comeback(1, 60_000));
        assert_eq!(deferral(&snap, &cmd, 60_000, &o), None, "the hold ended");
    }

    #[test]
    fn room_elsewhere_lets_the_command_run() {
        // The comeback pod fits on `roomy` whether or not `empty` goes.
        let mut snap = cluster()
            .node(node("roomy", "m5.xlarge"))
            .node(node("empty", "m5.large"));
        snap.comebacks.push(comeback(1, 60_000));
        let o = provisioning::Options::default();
        assert_eq!(
            deferral(&snap, &delete(&["empty"], Reason::Empty), 1_000, &o),
            None
        );
    }

    #[test]
    fn expiration_drift_and_opted_out_pools_are_never_deferred() {
        let mut snap = two_nodes_one_empty();
        snap.comebacks.push(comeback(1, 60_000));
        let o = provisioning::Options::default();
        assert_eq!(
            deferral(&snap, &delete(&["empty"], Reason::Expired), 1_000, &o),
            None
        );
        assert_eq!(
            deferral(&snap, &delete(&["empty"], Reason::Drifted), 1_000, &o),
            None
        );
        snap.uncoordinated_pools.insert("default".into());
        assert_eq!(
            deferral(&snap, &delete(&["empty"], Reason::Empty), 1_000, &o),
            None
        );
    }
}
