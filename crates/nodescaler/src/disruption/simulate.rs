//! The scheduling simulation shared by drift and consolidation: remove some nodes, feed their
//! reschedulable pods (with the snapshot's pending pods) to the provisioning scheduler, and read
//! where they would go (reference §5.5). The planner is exactly [`crate::provisioning::plan`].

use std::collections::{BTreeMap, BTreeSet};

use tandem_model::catalog::{CapacityType, UsdPerHour};
use tandem_model::labels;
use tandem_model::pod::{Container, PodShape};
use tandem_model::requirements::Requirement;

use super::candidates::Candidate;
use super::{Context, Options};
use crate::provisioning::{InstanceOption, Launch, Nominate, plan};
use crate::snapshot::{BoundPod, NodeState, PendingPod, Snapshot};

/// Where the removed nodes' pods would go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// NodeClaims that would be launched for them (launches holding only pending pods are left
    /// to provisioning).
    pub replacements: Vec<Launch>,
    /// Removed nodes with a pod on one of the replacements.
    pub launched_from: BTreeSet<String>,
    /// Moved pods that land on existing nodes.
    pub nominations: Vec<Nominate>,
}

/// Why the removed nodes' pods cannot all move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// Nodes whose pods could not move.
    pub nodes: BTreeSet<String>,
    /// The first reason, for a person.
    pub message: String,
}

/// The pending form of a bound pod: its full spec when the snapshot has it, else its requests,
/// labels, host ports and anti-affinity.
pub fn pending_form(bp: &BoundPod) -> PendingPod {
    if let Some(spec) = &bp.disruption.spec {
        return PendingPod::clone(spec);
    }
    let mut pod = PendingPod::new(&bp.namespace, &bp.name, bp.requests.clone());
    pod.shape = PodShape {
        containers: vec![Container {
            host_ports: bp.host_ports.clone(),
            ..Container::new("main", bp.requests.clone())
        }],
        ..PodShape::default()
    };
    pod.labels = std::sync::Arc::clone(&bp.labels);
    pod.pod_anti_affinity = bp.anti_affinity.clone();
    pod
}

/// The provisioning plan for a snapshot without some nodes, with the removed nodes' pods fed
/// back as pending: the one simulation consolidation, drift and interruption share.
#[derive(Debug)]
pub struct Rescheduled {
    /// The snapshot the plan ran on (the removed nodes gone).
    pub sim: Snapshot,
    /// The plan.
    pub plan: crate::provisioning::Plan,
    /// Pod (namespace, name) → the removed node it comes from.
    pub origin: BTreeMap<(String, String), String>,
}

impl Rescheduled {
    /// The removed node a planned pod comes from; `None` for pods that were pending already.
    pub fn origin_of(&self, namespace: &str, name: &str) -> Option<&str> {
        self.origin
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(String::as_str)
    }

    /// The plan's launches that hold a removed node's pod (launches for pending pods only are
    /// left to provisioning), and the removed nodes they take pods from.
    pub fn replacements(&self) -> (Vec<Launch>, BTreeSet<String>) {
        let mut launched_from = BTreeSet::new();
        let launches = self
            .plan
            .launches
            .iter()
            .filter(|l| {
                let mut ours = false;
                for p in &l.pods {
                    if let Some(node) = self.origin_of(&p.namespace, &p.name) {
                        launched_from.insert(node.to_owned());
                        ours = true;
                    }
                }
                ours
            })
            .cloned()
            .collect();
        (launches, launched_from)
    }
}

/// Plans the snapshot with the nodes at `remove` (indexes into `Snapshot::nodes`) gone and
/// their reschedulable pods pending.
pub fn reschedule(
    snapshot: &Snapshot,
    provisioning: &crate::provisioning::Options,
    remove: &[usize],
) -> Rescheduled {
    let removed: BTreeSet<usize> = remove.iter().copied().collect();
    let mut sim = Snapshot {
        pods: snapshot.pods.clone(),
        nodes: Vec::with_capacity(snapshot.nodes.len()),
        in_flight: snapshot.in_flight.clone(),
        nodepools: snapshot.nodepools.clone(),
        daemonsets: snapshot.daemonsets.clone(),
        catalogs: snapshot.catalogs.clone(),
        disruption: BTreeMap::new(),
        comebacks: Vec::new(),
        uncoordinated_pools: std::collections::BTreeSet::new(),
        anticipated: Vec::new(),
    };
    let mut origin = BTreeMap::new();
    let mut next = u64::try_from(sim.pods.len()).unwrap_or(u64::MAX);
    for (i, n) in snapshot.nodes.iter().enumerate() {
        if !removed.contains(&i) {
            sim.nodes.push(n.clone());
            continue;
        }
        if let Some(np) = n
            .labels
            .get(labels::NODEPOOL)
            .and_then(|p| sim.nodepools.iter_mut().find(|np| &np.name == p))
        {
            np.node_count -= 1;
            np.usage = np.usage.saturating_sub(&n.allocatable);
        }
        for bp in n.pods.iter().filter(|p| p.disruption.is_reschedulable()) {
            let mut pod = pending_form(bp);
            next += 1;
            pod.creation = next;
            origin.insert((pod.namespace.clone(), pod.name.clone()), n.name.clone());
            sim.pods.push(pod);
        }
    }
    let plan = plan(&sim, provisioning);
    Rescheduled { sim, plan, origin }
}

/// Simulates removing `remove` (indexes into `Snapshot::nodes`).
pub fn simulate(ctx: &Context<'_>, remove: &[usize]) -> Result<Moved, Stuck> {
    let r = reschedule(ctx.snapshot, &ctx.options.provisioning, remove);
    let (sim, plan) = (&r.sim, &r.plan);
    let ready: BTreeSet<&str> = sim
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Ready)
        .map(|n| n.name.as_str())
        .collect();
    let mut stuck = Stuck {
        nodes: BTreeSet::new(),
        message: String::new(),
    };
    for u in &plan.unschedulable {
        if let Some(node) = r.origin_of(&u.pod.namespace, &u.pod.name) {
            if stuck.message.is_empty() {
                stuck.message = format!("pod {} cannot be rescheduled: {u}", u.pod);
            }
            stuck.nodes.insert(node.to_owned());
        }
    }
    for nom in &plan.nominations {
        if let Some(node) = r.origin_of(&nom.pod.namespace, &nom.pod.name)
            && !ready.contains(nom.node.as_str())
        {
            if stuck.message.is_empty() {
                stuck.message = format!(
                    "pod {} would schedule on {}, which is not initialized",
                    nom.pod, nom.node
                );
            }
            stuck.nodes.insert(node.to_owned());
        }
    }
    if !stuck.nodes.is_empty() {
        return Err(stuck);
    }
    let nominations = plan
        .nominations
        .iter()
        .filter(|n| r.origin_of(&n.pod.namespace, &n.pod.name).is_some())
        .cloned()
        .collect();
    let (replacements, launched_from) = r.replacements();
    Ok(Moved {
        replacements,
        launched_from,
        nominations,
    })
}

/// The price a launch may end up paying for `instance_type`: the most expensive offering the
/// requirements allow, of the capacity type it would launch with (reserved, then spot, then
/// on-demand), as upstream's "worst launch price".
fn worst_price(ctx: &Context<'_>, launch: &Launch, instance_type: &str) -> Option<UsdPerHour> {
    let np = ctx
        .snapshot
        .nodepools
        .iter()
        .find(|np| np.name == launch.nodepool)?;
    let it = ctx
        .snapshot
        .catalogs
        .get(&np.node_class)?
        .get(instance_type)?;
    let offers: Vec<_> = it
        .offerings()
        .iter()
        .filter(|o| o.available && o.matches(&launch.requirements))
        .collect();
    let ct = [
        CapacityType::Reserved,
        CapacityType::Spot,
        CapacityType::OnDemand,
    ]
    .into_iter()
    .find(|ct| offers.iter().any(|o| o.capacity_type == *ct))?;
    offers
        .iter()
        .filter(|o| o.capacity_type == ct)
        .map(|o| o.price)
        .max()
}

/// Turns a simulation into a consolidation command for `cands`: a delete when no replacement
/// is needed, a replace by one strictly cheaper NodeClaim, else why not (reference §5.5).
pub fn consolidate(
    ctx: &Context<'_>,
    cands: &[&Candidate<'_>],
    mut replacements: Vec<Launch>,
    options: &Options,
) -> Result<Vec<Launch>, String> {
    match replacements.len() {
        0 => return Ok(Vec::new()),
        1 => {}
        n => return Err(format!("Can't remove without creating {n} candidates")),
    }
    let Some(mut launch) = replacements.pop() else {
        return Ok(Vec::new());
    };
    let current: UsdPerHour = cands
        .iter()
        .filter_map(|c| c.price)
        .fold(UsdPerHour::default(), UsdPerHour::saturating_add);
    let all_spot = cands.iter().all(|c| c.capacity_type() == Some("spot"));
    let allows_spot = launch.requirements.allows(labels::CAPACITY_TYPE, "spot");
    let spot_to_spot = all_spot && allows_spot;
    if spot_to_spot && !options.spot_to_spot {
        return Err(
            "SpotToSpotConsolidation is disabled, can't replace a spot node with a spot node"
                .to_owned(),
        );
    }
    if allows_spot {
        // Upstream pins a replacement that could be spot to spot, so it never falls back to a
        // dearer on-demand offering.
        launch
            .requirements
            .add(Requirement::in_values(labels::CAPACITY_TYPE, ["spot"]));
    }
    let mut options_kept: Vec<(UsdPerHour, InstanceOption)> = launch
        .instance_types
        .iter()
        .filter_map(|o| {
            let worst = worst_price(ctx, &launch, &o.name)?;
            (worst < current).then(|| (worst, o.clone()))
        })
        .collect();
    if cands.len() > 1 {
        // filterOutSameInstanceType: N nodes → 1 node of a type they already run must beat
        // the cheapest of those nodes.
        let same: Option<UsdPerHour> = cands
            .iter()
            .filter(|c| {
                c.instance_type()
                    .is_some_and(|t| options_kept.iter().any(|(_, o)| o.name == t))
            })
            .filter_map(|c| c.price)
            .min();
        if let Some(limit) = same {
            options_kept.retain(|(worst, _)| *worst < limit);
        }
    }
    if options_kept.is_empty() {
        return Err("Can't replace with a cheaper node".to_owned());
    }
    if spot_to_spot && cands.len() == 1 {
        let min = options.spot_to_spot_min_options;
        if options_kept.len() < min {
            return Err(format!(
                "SpotToSpotConsolidation requires {min} cheaper instance type options than the current candidate to consolidate, got {}",
                options_kept.len()
            ));
        }
        options_kept.truncate(min);
    }
    // Re-price each option under the (possibly pinned) requirements, cheapest first.
    let np_catalog = ctx
        .snapshot
        .nodepools
        .iter()
        .find(|np| np.name == launch.nodepool)
        .and_then(|np| ctx.snapshot.catalogs.get(&np.node_class));
    let mut priced: Vec<InstanceOption> = options_kept
        .into_iter()
        .map(|(worst, o)| {
            let price = np_catalog
                .and_then(|c| c.get(&o.name))
                .and_then(|it| it.cheapest_offering(&launch.requirements))
                .map_or(worst, |off| off.price);
            InstanceOption {
                name: o.name,
                price,
            }
        })
        .collect();
    priced.sort_by(|a, b| a.price.cmp(&b.price).then_with(|| a.name.cmp(&b.name)));
    let names: Vec<&str> = priced.iter().map(|o| o.name.as_str()).collect();
    launch
        .requirements
        .add(Requirement::in_values(labels::INSTANCE_TYPE, names));
    launch.price = priced.first().map_or(launch.price, |o| o.price);
    launch.instance_types = priced;
    Ok(vec![launch])
}

/// Hourly price of launches (their cheapest options).
pub fn cost_of(launches: &[Launch]) -> UsdPerHour {
    launches
        .iter()
        .fold(UsdPerHour::default(), |acc, l| acc.saturating_add(l.price))
}

/// Hourly price of candidates.
pub fn price_of(cands: &[&Candidate<'_>]) -> UsdPerHour {
    cands
        .iter()
        .filter_map(|c| c.price)
        .fold(UsdPerHour::default(), UsdPerHour::saturating_add)
}
