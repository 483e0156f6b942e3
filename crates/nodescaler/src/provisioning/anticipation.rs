//! Provisioning for pods that do not exist yet: the two cross-layer features Karpenter cannot
//! have, because it only ever sees pods after the scheduler gave up on them.
//!
//! - **Predicted** pods: the pod layer has decided (or the HPA is about to decide, from the
//!   metric the pod layer serves it) that a workload goes from R to R' replicas; R' − R pods
//!   will be created within seconds. Planning their capacity now saves the HPA sync, the
//!   ReplicaSet, the scheduler's verdict and the batching window — tens of seconds off every
//!   burst, since a node takes a minute to boot anyway.
//! - **Headroom** pods: a NodePool keeps room for N pods of a given shape (warm capacity).
//!   Real pods take that room first; the next pass finds the headroom short and launches
//!   again, so the room is replenished.
//!
//! Both are [`Anticipated`] entries in the snapshot, expanded into stand-in pods named
//! `anticipated:<source>:<i>` and planned in a **second pass**, after the real pending pods
//! were placed: real pods always win the room and the limits, anticipated pods get what is
//! left. Reconciliation with reality needs no memory: the shell puts into the snapshot only the
//! pods *still* missing (R' minus the pods that exist), and a claim launched for stand-ins is an
//! in-flight claim with free room in the next snapshot, where the real pods are nominated to it
//! instead of launching again. Stand-ins are never nominated anywhere: only their launches
//! come out of the plan.

use tandem_model::resources::Resources;

use super::{Launch, Options, Plan, plan};
use crate::snapshot::{BoundPod, InFlightClaim, PendingPod, PodRef, Snapshot};

/// Name prefix of every stand-in pod; [`is_anticipated`] tells them from real pods.
pub const PREFIX: &str = "anticipated:";

/// Why capacity is planned for pods that do not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnticipationKind {
    /// The pod layer is raising the workload's replicas: these pods are about to be created.
    Predicted,
    /// A NodePool's warm capacity (`tandem.dev/headroom`).
    Headroom,
}

/// Pods to plan room for although they do not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anticipated {
    /// Who asks: `namespace/ScaledObject` for predictions, `headroom/<nodepool>` for headroom.
    pub source: String,
    /// Predicted or headroom.
    pub kind: AnticipationKind,
    /// One pod as it will be (predictions: the target's template; headroom: the configured
    /// shape pinned to its NodePool).
    pub pod: PendingPod,
    /// How many are still missing.
    pub count: u32,
}

/// True for a stand-in of this module (never for a real pod).
pub fn is_anticipated(pod: &PodRef) -> bool {
    pod.name.starts_with(PREFIX)
}

/// Like [`plan`], with the snapshot's [`Anticipated`] pods planned after the real ones.
///
/// The result holds the real pods' nominations and launches as [`plan`] gives them, plus the
/// launches the stand-ins need (their `pods` are the stand-ins, so the shell can tell why a
/// claim exists). Stand-ins that fit on existing or in-flight capacity, or cannot be placed,
/// leave no trace: room that exists is enough, and a headroom the limits refuse is not an
/// error anyone must act on.
pub fn plan_anticipating(snapshot: &Snapshot, options: &Options) -> Plan {
    let real = plan(snapshot, options);
    let stand_ins = stand_ins(snapshot);
    if stand_ins.is_empty() {
        return real;
    }
    let mut second = after(snapshot, &real);
    second.pods = stand_ins;
    let ahead = plan(&second, options);
    let mut out = real;
    out.launches.extend(ahead.launches);
    out.events.extend(ahead.events);
    out
}

/// The stand-in pods, in a creation order after every real pod.
fn stand_ins(snapshot: &Snapshot) -> Vec<PendingPod> {
    let mut order = u64::MAX / 2;
    let mut pods = Vec::new();
    for a in &snapshot.anticipated {
        for i in 0..a.count {
            let mut p = a.pod.clone();
            p.name = format!("{PREFIX}{}:{i}", a.source);
            p.uid = p.name.clone();
            order += 1;
            p.creation = order;
            pods.push(p);
        }
    }
    pods
}

/// The snapshot as it will be once `plan` is carried out: its nominations bound (as nominated
/// pods) and its launches in flight, sized as the cheapest option with the DaemonSet overhead
/// already taken.
fn after(snapshot: &Snapshot, first: &Plan) -> Snapshot {
    let mut next = snapshot.clone();
    next.pods = Vec::new();
    let pending = |r: &PodRef| snapshot.pods.iter().find(|p| p.uid == r.uid);
    for nom in &first.nominations {
        let Some(pod) = pending(&nom.pod) else {
            continue;
        };
        let bound = BoundPod::nominated(pod);
        if let Some(n) = next.nodes.iter_mut().find(|n| n.name == nom.node) {
            n.pods.push(bound);
        } else if let Some(c) = next.in_flight.iter_mut().find(|c| c.name == nom.node) {
            c.pods.push(bound);
        }
    }
    for (i, launch) in first.launches.iter().enumerate() {
        let pods: Vec<BoundPod> = launch
            .pods
            .iter()
            .filter_map(pending)
            .map(BoundPod::nominated)
            .collect();
        if let Some(claim) = in_flight(snapshot, launch, i, pods) {
            next.in_flight.push(claim);
        }
    }
    next
}

/// A launch of the first pass as an in-flight claim: allocatable is what the cheapest option
/// has left for pods after the DaemonSets, capacity the largest option's (what limits reserve).
fn in_flight(
    snapshot: &Snapshot,
    launch: &Launch,
    index: usize,
    pods: Vec<BoundPod>,
) -> Option<InFlightClaim> {
    let pool = snapshot
        .nodepools
        .iter()
        .find(|p| p.name == launch.nodepool)?;
    let catalog = snapshot.catalogs.get(&pool.node_class)?;
    let cheapest = catalog.get(&launch.instance_types.first()?.name)?;
    let mut pod_requests = Resources::new();
    for p in &pods {
        pod_requests.add_assign(&p.requests);
    }
    // launch.requests = pods + DaemonSet overhead on the cheapest option.
    let mut allocatable = cheapest.allocatable().clone();
    allocatable.sub_assign(&launch.requests);
    allocatable.add_assign(&pod_requests);
    let mut capacity = Resources::new();
    for o in &launch.instance_types {
        if let Some(t) = catalog.get(&o.name) {
            capacity = capacity.max(t.capacity());
        }
    }
    Some(InFlightClaim {
        name: format!("{PREFIX}launch-{index}"),
        nodepool: launch.nodepool.clone(),
        requirements: launch.requirements.clone(),
        allocatable,
        capacity,
        pods,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tandem_model::catalog::Catalog;

    use super::*;
    use crate::snapshot::{NodePool, requests};

    fn base() -> Snapshot {
        Snapshot::new()
            .catalog("default", Arc::new(Catalog::kwok()))
            .nodepool(NodePool::new("default", "default"))
    }

    fn predicted(count: u32) -> Anticipated {
        Anticipated {
            source: "default/consumer".into(),
            kind: AnticipationKind::Predicted,
            pod: PendingPod::new("default", "consumer", requests(1_000, 1_024)),
            count,
        }
    }

    fn stand_in_count(plan: &Plan) -> usize {
        plan.launches
            .iter()
            .flat_map(|l| &l.pods)
            .filter(|p| is_anticipated(p))
            .count()
    }

    #[test]
    fn predicted_pods_get_launches_before_they_exist() {
        let mut snap = base();
        snap.anticipated.push(predicted(10));
        let p = plan_anticipating(&snap, &Options::default());
        assert_eq!(stand_in_count(&p), 10);
        assert!(p.nominations.is_empty());
        assert!(p.unschedulable.is_empty());
        // The plain planner knows nothing of them.
        assert!(plan(&snap, &Options::default()).launches.is_empty());
    }

    #[test]
    fn real_pods_are_planned_first_and_stand_ins_use_their_spare_room() {
        let mut snap = base().replicas(
            3,
            &PendingPod::new("default", "real", requests(1_000, 1_024)),
        );
        snap.anticipated.push(predicted(1));
        let alone = plan(&snap, &Options::default());
        let both = plan_anticipating(&snap, &Options::default());
        assert_eq!(both.launches[..alone.launches.len()], alone.launches[..]);
        assert_eq!(both.nominations, alone.nominations);
    }

    #[test]
    fn a_claim_launched_for_stand_ins_takes_the_real_pods_next_time() {
        // Tick 1: 4 pods predicted → launches.
        let mut snap = base();
        snap.anticipated.push(predicted(4));
        let first = plan_anticipating(&snap, &Options::default());
        let launched: usize = first.launches.len();
        assert!(launched >= 1);
        // Tick 2: the claims are in flight, the 4 pods exist and are pending, nothing missing.
        let mut next = base().replicas(
            4,
            &PendingPod::new("default", "consumer", requests(1_000, 1_024)),
        );
        // As the state crate shows a claim not launched yet: it holds what it was made for.
        for (i, l) in first.launches.iter().enumerate() {
            next.in_flight.push(InFlightClaim {
                name: format!("claim-{i}"),
                nodepool: l.nodepool.clone(),
                requirements: l.requirements.clone(),
                allocatable: l.requests.clone(),
                capacity: l.requests.clone(),
                pods: Vec::new(),
            });
        }
        let second = plan_anticipating(&next, &Options::default());
        assert!(second.launches.is_empty(), "no double launch: {second:?}");
        assert_eq!(second.nominations.len(), 4);
    }

    #[test]
    fn limits_go_to_real_pods_first() {
        let pool = NodePool::new("default", "default")
            .limits(crate::snapshot::Limits::none().cpu_cores(4));
        let mut snap = Snapshot::new()
            .catalog("default", Arc::new(Catalog::kwok()))
            .nodepool(pool)
            .replicas(
                3,
                &PendingPod::new("default", "real", requests(1_000, 1_024)),
            );
        snap.anticipated.push(predicted(8));
        let p = plan_anticipating(&snap, &Options::default());
        let real: usize = p
            .launches
            .iter()
            .flat_map(|l| &l.pods)
            .filter(|r| !is_anticipated(r))
            .count();
        assert_eq!(real, 3, "{p:?}");
        assert!(p.unschedulable.is_empty());
        let cpu: i64 = p
            .launches
            .iter()
            .map(|l| {
                Catalog::kwok()
                    .get(&l.instance_types[0].name)
                    .unwrap()
                    .capacity()
                    .cpu
                    .0
            })
            .sum();
        assert!(cpu <= 4_000, "limit kept: {cpu}m");
    }

    #[test]
    fn nothing_anticipated_is_exactly_the_plain_plan() {
        let snap = base().replicas(5, &PendingPod::new("default", "real", requests(500, 512)));
        assert_eq!(
            plan_anticipating(&snap, &Options::default()),
            plan(&snap, &Options::default())
        );
    }
}
