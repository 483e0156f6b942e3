//! The scheduling simulation behind [`plan`](super::plan).
//!
//! A *target* is anything a pod can be put on: a fixed one (an existing node or an in-flight
//! NodeClaim; its capacity and domains are what they are) or a claim opened by this plan (its
//! instance-type options shrink and its domains narrow as pods join). Targets are indexed in
//! creation order, which is also their hostname domain.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use tandem_model::labels;
use tandem_model::labels::LabelSet;
use tandem_model::pod::HostPort;
use tandem_model::requirements::Operator;
use tandem_model::requirements::{Requirement, Requirements};
use tandem_model::taints::{Taint, TaintEffect, Toleration, tolerates, tolerates_all};

use super::prepare::{
    self, CAPACITY_TYPE, CPU, Dims, Keys, MAX_KEYS, MEMORY, Masks, Pool, ZONE, fits,
};
use super::topology::{Key, Kind, Topology, for_bits};
use super::{
    Event, InstanceOption, Launch, MinValuesPolicy, Nominate, Options, Packing, Plan, PoolReasons,
    PreferencePolicy, Reason, Unschedulable,
};
use crate::selector::Labels;
use crate::snapshot::{NodeState, PendingPod, Snapshot, WhenUnsatisfiable};

mod rebalance;

/// Taints a registering node carries for a short while; they never block a simulation.
const EPHEMERAL_TAINTS: [&str; 3] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "karpenter.sh/unregistered",
];

/// A pod's node requirements and tolerations in their current (possibly relaxed) form, shared
/// by every pod with the same ones, with their fit against each NodePool computed once.
struct Sig {
    reqs: Requirements,
    dom: Masks,
    care: u8,
    tolerations: Vec<Toleration>,
    pools: Vec<PoolFit>,
}

/// A signature against one NodePool: the instance types its requirements allow (computed even
/// when a taint blocks the pool, so the message can name every problem) and what blocks it.
struct PoolFit {
    types: Vec<bool>,
    reasons: Vec<Reason>,
}

impl PoolFit {
    fn usable(&self) -> Option<&[bool]> {
        self.reasons.is_empty().then_some(self.types.as_slice())
    }
}

/// One pending pod and its relaxation state.
struct PodState<'a> {
    pod: &'a PendingPod,
    req: Vec<i64>,
    ports: Vec<HostPort>,
    /// Groups whose selector selects this pod.
    matches: Vec<u32>,
    /// The subset of `matches` that are anti-affinity groups.
    anti_matches: Vec<u32>,
    req_aff: Vec<u32>,
    req_anti: Vec<u32>,
    pref_aff: Vec<u32>,
    pref_anti: Vec<u32>,
    pref_node: Vec<usize>,
    spreads: Vec<(u32, bool)>,
    term: usize,
    pref_aff_dropped: usize,
    pref_anti_dropped: usize,
    pref_node_dropped: usize,
    anyway_dropped: usize,
    tolerate_prefer_no_schedule: bool,
    sig: u32,
    /// The groups the pod must satisfy in its current form (see [`PodState::compute_active`]).
    active: Vec<u32>,
    last_len: usize,
    placed: bool,
    reasons: Vec<PoolReasons>,
}

impl PodState<'_> {
    /// The groups this pod must satisfy now: required terms, preferred terms not yet relaxed,
    /// and spread constraints not yet relaxed.
    fn compute_active(&self) -> Vec<u32> {
        let mut out = Vec::new();
        out.extend(&self.req_aff);
        out.extend(&self.req_anti);
        out.extend(self.pref_aff.iter().skip(self.pref_aff_dropped));
        out.extend(self.pref_anti.iter().skip(self.pref_anti_dropped));
        let mut anyway_seen = 0;
        for (g, anyway) in &self.spreads {
            if *anyway {
                anyway_seen += 1;
                if anyway_seen <= self.anyway_dropped {
                    continue;
                }
            }
            out.push(*g);
        }
        out
    }
}

/// Why a topology check failed, cheap to build in the hot loop; [`Scheduler::topo_reason`]
/// renders it when a person will read it.
#[derive(Debug, Clone, Copy)]
enum TopoErr {
    /// One of the pod's own groups.
    Own(u32),
    /// A placed pod's required anti-affinity selects this pod.
    Inverse(u32),
}

/// A key slot whose domain must be decided: the candidate domains, ordered by the spread
/// group's counts when there is one.
#[derive(Debug, Clone, Copy, Default)]
struct Choice {
    cand: u64,
    by: Option<u32>,
}

type Choices = [Choice; MAX_KEYS];

/// Something pods can be placed on.
struct Target {
    /// Node or in-flight claim name; `None` for a claim of this plan.
    name: Option<String>,
    /// The claim's pool (index into `pools`).
    pool: usize,
    masks: Masks,
    /// Key slots the target's pods constrain (generic keys are only checked for these).
    care: u8,
    /// Shared with the node it stands for (see `ExistingNode::requirements`); replaced, never
    /// mutated, when a pod narrows a claim.
    reqs: Arc<Requirements>,
    /// True once a pod with node requirements joined the claim.
    reqs_extra: bool,
    taints: Vec<Taint>,
    used: Vec<i64>,
    cap: Vec<i64>,
    ports: Vec<HostPort>,
    pods: Vec<u32>,
    options: Vec<u32>,
    price: i64,
    reserved: Vec<i64>,
    max_room: Vec<i64>,
}

impl Target {
    fn is_claim(&self) -> bool {
        self.name.is_none()
    }
}

/// Where a pod may go, and what it would cost.
struct Fit {
    masks: Masks,
    care: u8,
    price: i64,
    delta: i64,
    /// Room the cheapest holding option leaves unused, as parts per million of its room in
    /// CPU plus in memory: the 2-D best-fit tie-break (lower is tighter).
    waste: i64,
}

/// Where [`Scheduler::evaluate`] looks: an existing target or a new claim of a pool.
#[derive(Clone, Copy)]
enum Place {
    Target(usize),
    New(usize),
}

/// The simulation state.
pub struct Scheduler<'a> {
    snapshot: &'a Snapshot,
    options: &'a Options,
    dims: Dims,
    keys: Keys,
    pools: Vec<Pool<'a>>,
    topology: Topology,
    targets: Vec<Target>,
    fixed: usize,
    pods: Vec<PodState<'a>>,
    sigs: Vec<Sig>,
    sig_index: BTreeMap<String, u32>,
    eligible: RefCell<BTreeMap<(u32, u32), u64>>,
    by_count: BTreeSet<(usize, usize)>,
    /// Claims of this plan by CPU slack (room of the cheapest option minus use): best fit
    /// without a scan of every claim.
    by_slack: BTreeSet<(i64, usize)>,
    events: Vec<Event>,
}

/// How many claims [`Packing::CheapestFit`] prices when a pod fits no claim's slack: the ones
/// closest to holding it (largest CPU slack first).
const GROWTH_CANDIDATES: usize = 16;

/// The claims of this plan opened last, also priced for growth (see [`Scheduler::try_place`]).
const NEWEST_CANDIDATES: usize = 4;

/// Options of a claim priced when growing it: growth that needs a type dearer than the 128
/// cheapest that still hold the claim is not worth pricing (a new claim is cheaper).
const GROWTH_OPTIONS: usize = 128;

/// Claims that hold a pod at no extra cost compared by [`Packing::CheapestFit`] before it
/// takes the tightest (2-D best fit among the tightest CPU fits).
const ZERO_CANDIDATES: usize = 8;

/// Movable pods of one request vector, as (pod, claim) with `usize::MAX` once moved.
type Shape = (Vec<i64>, Vec<(usize, usize)>);

/// Candidate pods of one shape the improvement pass tries per receiver before moving on.
const MOVE_TRIES: usize = 24;

/// Rounds of the improvement pass ([`Scheduler::improve`]); each is one sweep over the claims.
const IMPROVE_ROUNDS: usize = 3;

/// Rounds of swaps between claims idling opposite resources ([`Scheduler::rebalance`]), each
/// followed by one improvement round.
const REBALANCE_ROUNDS: usize = 3;

impl<'a> Scheduler<'a> {
    pub fn new(snapshot: &'a Snapshot, options: &'a Options) -> Self {
        let dims = Dims::new(snapshot);
        let mut extra_keys: Vec<String> = Vec::new();
        for p in &snapshot.pods {
            extra_keys.extend(p.topology_spread.iter().map(|c| c.topology_key.clone()));
            extra_keys.extend(p.pod_affinity.iter().map(|t| t.topology_key.clone()));
            extra_keys.extend(p.pod_anti_affinity.iter().map(|t| t.topology_key.clone()));
            extra_keys.extend(
                p.preferred_pod_affinity
                    .iter()
                    .chain(&p.preferred_pod_anti_affinity)
                    .map(|t| t.term.topology_key.clone()),
            );
        }
        for n in &snapshot.nodes {
            for bp in &n.pods {
                extra_keys.extend(bp.anti_affinity.iter().map(|t| t.topology_key.clone()));
            }
        }
        let mut seen = BTreeSet::new();
        extra_keys.retain(|k| seen.insert(k.clone()));
        let (keys, dropped) = prepare::build_keys(snapshot, &extra_keys);
        let mut events: Vec<Event> = dropped
            .into_iter()
            .chain(
                keys.tables
                    .iter()
                    .filter(|t| t.overflow)
                    .map(|t| t.key.clone()),
            )
            .map(|key| Event::TooManyDomains { key })
            .collect();
        events.dedup();
        let pools = prepare::build_pools(snapshot, &dims, &keys);
        let mut s = Scheduler {
            snapshot,
            options,
            dims,
            keys,
            pools,
            topology: Topology::default(),
            targets: Vec::new(),
            fixed: 0,
            pods: Vec::new(),
            sigs: Vec::new(),
            sig_index: BTreeMap::new(),
            eligible: RefCell::new(BTreeMap::new()),
            by_count: BTreeSet::new(),
            by_slack: BTreeSet::new(),
            events,
        };
        s.build_groups();
        s.build_fixed_targets();
        s.build_pods();
        s
    }

    fn key_of(&self, name: &str) -> Key {
        if name == labels::HOSTNAME {
            Key::Host
        } else {
            self.keys.slot(name).map_or(Key::Untracked, Key::Slot)
        }
    }

    fn build_groups(&mut self) {
        let snapshot = self.snapshot;
        for p in &snapshot.pods {
            let own = || vec![p.namespace.clone()];
            for c in &p.topology_spread {
                let kind = Kind::Spread {
                    max_skew: c.max_skew.max(1),
                    min_domains: c.min_domains,
                    honor_affinity: c.node_affinity_policy
                        == crate::snapshot::NodeInclusionPolicy::Honor,
                    honor_taints: c.node_taints_policy
                        == crate::snapshot::NodeInclusionPolicy::Honor,
                };
                let key = self.key_of(&c.topology_key);
                self.topology
                    .intern(kind, &c.topology_key, key, &c.selector, own());
            }
            let terms = p
                .pod_affinity
                .iter()
                .map(|t| (Kind::Affinity, t))
                .chain(p.pod_anti_affinity.iter().map(|t| (Kind::Anti, t)))
                .chain(
                    p.preferred_pod_affinity
                        .iter()
                        .map(|t| (Kind::Affinity, &t.term)),
                )
                .chain(
                    p.preferred_pod_anti_affinity
                        .iter()
                        .map(|t| (Kind::Anti, &t.term)),
                );
            for (kind, t) in terms {
                let key = self.key_of(&t.topology_key);
                let ns = if t.namespaces.is_empty() {
                    own()
                } else {
                    t.namespaces.clone()
                };
                self.topology
                    .intern(kind, &t.topology_key, key, &t.selector, ns);
            }
        }
        for n in &snapshot.nodes {
            for bp in &n.pods {
                for t in &bp.anti_affinity {
                    let key = self.key_of(&t.topology_key);
                    let ns = if t.namespaces.is_empty() {
                        vec![bp.namespace.clone()]
                    } else {
                        t.namespaces.clone()
                    };
                    self.topology
                        .intern(Kind::Anti, &t.topology_key, key, &t.selector, ns);
                }
            }
        }
    }

    fn group_of(
        &mut self,
        kind: Kind,
        key_name: &str,
        sel: &crate::selector::LabelSelector,
        ns: Vec<String>,
    ) -> u32 {
        let key = self.key_of(key_name);
        self.topology.intern(kind, key_name, key, sel, ns)
    }

    fn build_fixed_targets(&mut self) {
        let snapshot = self.snapshot;
        let n = self.dims.len();
        // (initialized, name, target) — upstream sorts initialized nodes first, then by name.
        let mut fixed: Vec<(bool, String, Target, Vec<&crate::snapshot::BoundPod>)> = Vec::new();
        for node in snapshot
            .nodes
            .iter()
            .filter(|n| n.state != NodeState::Deleting)
        {
            let pool = node
                .labels
                .get(labels::NODEPOOL)
                .and_then(|np| self.pools.iter().position(|p| p.name == np));
            let initializing = node.state == NodeState::Initializing;
            let taints: Vec<Taint> = node
                .taints
                .iter()
                .filter(|t| {
                    !initializing
                        || !(EPHEMERAL_TAINTS.contains(&t.key.as_str())
                            || pool.is_some_and(|p| {
                                self.pools[p]
                                    .spec
                                    .startup_taints
                                    .iter()
                                    .any(|s| s.same_slot(t))
                            }))
                })
                .cloned()
                .collect();
            let mut used = vec![0i64; n];
            let mut ports = Vec::new();
            for bp in &node.pods {
                add(&mut used, &self.dims.dense(&bp.requests));
                ports.extend(bp.host_ports.iter().cloned());
            }
            let t = Target {
                name: Some(node.name.clone()),
                pool: pool.unwrap_or(usize::MAX),
                masks: self.keys.masks_of_labels(&node.labels),
                care: 0,
                reqs: node.requirements(),
                reqs_extra: false,
                taints,
                used,
                cap: self.dims.dense(&node.allocatable),
                ports,
                pods: Vec::new(),
                options: Vec::new(),
                price: 0,
                reserved: Vec::new(),
                max_room: Vec::new(),
            };
            fixed.push((
                !initializing,
                node.name.clone(),
                t,
                node.pods.iter().collect(),
            ));
        }
        for c in &snapshot.in_flight {
            let pool = self.pools.iter().position(|p| p.name == c.nodepool);
            let mut used = vec![0i64; n];
            let mut ports = Vec::new();
            for bp in &c.pods {
                add(&mut used, &self.dims.dense(&bp.requests));
                ports.extend(bp.host_ports.iter().cloned());
            }
            let mut reqs = c.requirements.clone();
            if let Some(p) = pool {
                reqs = reqs.intersect(&self.pools[p].reqs);
            }
            let t = Target {
                name: Some(c.name.clone()),
                pool: pool.unwrap_or(usize::MAX),
                masks: self.keys.masks_of(&reqs),
                care: 0,
                reqs: Arc::new(reqs),
                reqs_extra: false,
                taints: pool
                    .map(|p| self.pools[p].taints.to_vec())
                    .unwrap_or_default(),
                used,
                cap: self.dims.dense(&c.allocatable),
                ports,
                pods: Vec::new(),
                options: Vec::new(),
                price: 0,
                reserved: Vec::new(),
                max_room: Vec::new(),
            };
            fixed.push((false, c.name.clone(), t, c.pods.iter().collect()));
        }
        fixed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut memo: BTreeMap<(&str, &Labels), Vec<u32>> = BTreeMap::new();
        for (_, _, t, bound) in fixed {
            let host = self.targets.len();
            let masks = t.masks;
            self.targets.push(t);
            for bp in bound {
                let groups = memo
                    .entry((bp.namespace.as_str(), bp.labels.as_ref()))
                    .or_insert_with(|| self.topology.selecting(&bp.namespace, &bp.labels))
                    .clone();
                for g in groups {
                    self.topology.groups[g as usize].record(host, &masks, 1, false);
                }
                for term in &bp.anti_affinity {
                    let ns = if term.namespaces.is_empty() {
                        vec![bp.namespace.clone()]
                    } else {
                        term.namespaces.clone()
                    };
                    let g = self.group_of(Kind::Anti, &term.topology_key, &term.selector, ns);
                    self.topology.groups[g as usize].record(host, &masks, 1, true);
                }
            }
        }
        self.fixed = self.targets.len();
    }

    fn build_pods(&mut self) {
        let snapshot = self.snapshot;
        let ignore = self.options.preference_policy == PreferencePolicy::Ignore;
        let mut memo: BTreeMap<(&str, &Labels), Vec<u32>> = BTreeMap::new();
        for p in &snapshot.pods {
            let own = vec![p.namespace.clone()];
            let ns_of = |t: &crate::snapshot::PodAffinityTerm| {
                if t.namespaces.is_empty() {
                    own.clone()
                } else {
                    t.namespaces.clone()
                }
            };
            let req_aff = p
                .pod_affinity
                .iter()
                .map(|t| self.group_of(Kind::Affinity, &t.topology_key, &t.selector, ns_of(t)))
                .collect();
            let req_anti = p
                .pod_anti_affinity
                .iter()
                .map(|t| self.group_of(Kind::Anti, &t.topology_key, &t.selector, ns_of(t)))
                .collect();
            let mut pref_aff: Vec<(i32, usize, u32)> = p
                .preferred_pod_affinity
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let g = self.group_of(
                        Kind::Affinity,
                        &t.term.topology_key,
                        &t.term.selector,
                        ns_of(&t.term),
                    );
                    (-t.weight, i, g)
                })
                .collect();
            pref_aff.sort();
            let mut pref_anti: Vec<(i32, usize, u32)> = p
                .preferred_pod_anti_affinity
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let g = self.group_of(
                        Kind::Anti,
                        &t.term.topology_key,
                        &t.term.selector,
                        ns_of(&t.term),
                    );
                    (-t.weight, i, g)
                })
                .collect();
            pref_anti.sort();
            let mut pref_node: Vec<(i32, usize)> = p
                .preferred_affinity
                .iter()
                .enumerate()
                .map(|(i, (w, _))| (-*w, i))
                .collect();
            pref_node.sort();
            let spreads: Vec<(u32, bool)> = p
                .topology_spread
                .iter()
                .map(|c| {
                    let kind = Kind::Spread {
                        max_skew: c.max_skew.max(1),
                        min_domains: c.min_domains,
                        honor_affinity: c.node_affinity_policy
                            == crate::snapshot::NodeInclusionPolicy::Honor,
                        honor_taints: c.node_taints_policy
                            == crate::snapshot::NodeInclusionPolicy::Honor,
                    };
                    let key = self.key_of(&c.topology_key);
                    let g =
                        self.topology
                            .intern(kind, &c.topology_key, key, &c.selector, own.clone());
                    (g, c.when_unsatisfiable == WhenUnsatisfiable::ScheduleAnyway)
                })
                .collect();
            let anyway = spreads.iter().filter(|(_, a)| *a).count();
            let matches = memo
                .entry((p.namespace.as_str(), &p.labels))
                .or_insert_with(|| self.topology.selecting(&p.namespace, &p.labels))
                .clone();
            let anti_matches = matches
                .iter()
                .copied()
                .filter(|g| self.topology.groups[*g as usize].kind == Kind::Anti)
                .collect();
            let req = self.dims.dense(&p.shape.effective_requests());
            let mut st = PodState {
                pod: p,
                req,
                ports: p.shape.host_ports(),
                matches,
                anti_matches,
                req_aff,
                req_anti,
                pref_node_dropped: if ignore { pref_node.len() } else { 0 },
                pref_aff_dropped: if ignore { pref_aff.len() } else { 0 },
                pref_anti_dropped: if ignore { pref_anti.len() } else { 0 },
                anyway_dropped: if ignore { anyway } else { 0 },
                pref_aff: pref_aff.into_iter().map(|(_, _, g)| g).collect(),
                pref_anti: pref_anti.into_iter().map(|(_, _, g)| g).collect(),
                pref_node: pref_node.into_iter().map(|(_, i)| i).collect(),
                spreads,
                term: 0,
                tolerate_prefer_no_schedule: false,
                sig: 0,
                active: Vec::new(),
                last_len: usize::MAX,
                placed: false,
                reasons: Vec::new(),
            };
            st.sig = self.sig_for(&st);
            st.active = st.compute_active();
            self.pods.push(st);
        }
    }

    /// The pod's current node requirements: nodeSelector ∩ the current required term ∩ the
    /// heaviest preferred term not yet relaxed ∩ its volumes' zones.
    fn requirements_of(&self, st: &PodState<'_>) -> Requirements {
        let p = st.pod;
        let mut r = Requirements::from_labels(
            p.node_selector
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if let Some(t) = p.required_affinity.get(st.term) {
            r.add_all(t);
        }
        if let Some(i) = st.pref_node.get(st.pref_node_dropped)
            && let Some((_, t)) = p.preferred_affinity.get(*i)
        {
            r.add_all(t);
        }
        if !p.volume_zones.is_empty() {
            r.add(Requirement::in_values(
                labels::ZONE,
                p.volume_zones.iter().map(String::as_str),
            ));
        }
        r
    }

    fn sig_for(&mut self, st: &PodState<'_>) -> u32 {
        let reqs = self.requirements_of(st);
        let mut tolerations = st.pod.tolerations.clone();
        if st.tolerate_prefer_no_schedule {
            tolerations.push(Toleration::exists("", Some(TaintEffect::PreferNoSchedule)));
        }
        let key = format!("{reqs:?}|{tolerations:?}");
        if let Some(id) = self.sig_index.get(&key) {
            return *id;
        }
        let dom = self.keys.masks_of(&reqs);
        let mut care = 0u8;
        for (k, t) in self.keys.tables.iter().enumerate() {
            if reqs.contains_key(&t.key) {
                care |= 1 << k;
            }
        }
        let pools = self
            .pools
            .iter()
            .map(|pool| pool_fit(pool, &reqs, &dom, &tolerations))
            .collect();
        let id = u32::try_from(self.sigs.len()).unwrap_or(u32::MAX);
        self.sigs.push(Sig {
            reqs,
            dom,
            care,
            tolerations,
            pools,
        });
        self.sig_index.insert(key, id);
        id
    }

    /// Runs the simulation and builds the plan.
    pub fn run(mut self) -> Plan {
        let mut order: Vec<u32> = (0..self.pods.len())
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        // Upstream's queue: CPU, memory, creation, uid. CheapestFit first orders by the pod's
        // dominant share of the batch's demand (so memory-heavy pods are not all left for the
        // end, where they would only find CPU-bound claims), then as upstream.
        let total = self.pods.iter().fold([1i64, 1i64], |acc, st| {
            [
                acc[0].saturating_add(st.req[CPU]),
                acc[1].saturating_add(st.req[MEMORY]),
            ]
        });
        let dominant = |st: &PodState<'_>| -> i128 {
            let c = i128::from(st.req[CPU]) * i128::from(total[1]);
            let m = i128::from(st.req[MEMORY]) * i128::from(total[0]);
            c.max(m)
        };
        let cheapest = self.options.packing == Packing::CheapestFit;
        // Pods that need a node of their own (required hostname anti-affinity) go first, so
        // the nodes they force exist while the other pods can still fill them.
        let own_node = |st: &PodState<'_>| {
            st.req_anti
                .iter()
                .any(|g| self.topology.groups[*g as usize].key == Key::Host)
        };
        order.sort_by(|a, b| {
            let (pa, pb) = (&self.pods[*a as usize], &self.pods[*b as usize]);
            let by_share = if cheapest {
                own_node(pb)
                    .cmp(&own_node(pa))
                    .then_with(|| dominant(pb).cmp(&dominant(pa)))
            } else {
                std::cmp::Ordering::Equal
            };
            by_share
                .then_with(|| pb.req[CPU].cmp(&pa.req[CPU]))
                .then_with(|| pb.req[MEMORY].cmp(&pa.req[MEMORY]))
                .then_with(|| pa.pod.creation.cmp(&pb.pod.creation))
                .then_with(|| pa.pod.uid.cmp(&pb.pod.uid))
        });
        let mut queue: VecDeque<u32> = order.into();
        while let Some(&p) = queue.front() {
            if self.pods[p as usize].last_len == queue.len() {
                break;
            }
            queue.pop_front();
            if !self.place_relaxing(p as usize) {
                queue.push_back(p);
                self.pods[p as usize].last_len = queue.len();
            }
        }
        if self.options.packing == Packing::CheapestFit {
            for _ in 0..IMPROVE_ROUNDS {
                if !self.improve() {
                    break;
                }
            }
            for _ in 0..REBALANCE_ROUNDS {
                if !self.rebalance() {
                    break;
                }
                self.improve();
            }
        }
        self.finish()
    }

    /// True when pod `p` may be moved by the improvement pass: no host ports, and every group
    /// it owns or is selected by is either zone-like (a move within the same domain changes no
    /// count) or a hostname spread (checked per receiver in [`Scheduler::move_masks`]).
    fn movable(&self, p: usize) -> bool {
        let st = &self.pods[p];
        let ok = |g: &u32| {
            let group = &self.topology.groups[*g as usize];
            matches!(
                (group.key, group.kind),
                (Key::Slot(_), _) | (Key::Host, Kind::Spread { .. })
            )
        };
        st.ports.is_empty() && st.active.iter().all(ok) && st.matches.iter().all(ok)
    }

    /// The receiver's domains under which movable pod `p` can move from claim `from` to claim
    /// `to` keeping every constraint it takes part in valid whatever order the pods are bound
    /// in: a zone-like domain stays the same (an undecided receiver is decided to the donor's
    /// domain, as a joining pod would decide it), and hostname spread counts stay within the
    /// max skew. `None` when no such domains exist. `leaving` is a pod that leaves `to` in the
    /// same step (a swap): its hostname counts are taken off the receiver's.
    fn move_masks(
        &self,
        p: usize,
        from: usize,
        to: usize,
        leaving: Option<usize>,
    ) -> Option<Masks> {
        let (a, b) = (&self.targets[from], &self.targets[to]);
        let st = &self.pods[p];
        let mut m = b.masks;
        for g in st.matches.iter().chain(&st.active) {
            let group = &self.topology.groups[*g as usize];
            match (group.key, group.kind) {
                (Key::Slot(k), _) => {
                    if a.masks[k] == m[k] {
                        continue;
                    }
                    if a.masks[k].count_ones() == 1 && m[k] & a.masks[k] != 0 {
                        m[k] = a.masks[k];
                    } else {
                        return None;
                    }
                }
                (Key::Host, Kind::Spread { max_skew, .. }) => {
                    let selected = st.matches.contains(g);
                    let left = leaving.is_some_and(|q| self.pods[q].matches.contains(g));
                    if group.count(to) + i32::from(selected) - i32::from(left) > max_skew {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        Some(m)
    }

    /// Whether pod `p` may run on claim `to`'s cheapest option, its requirements included:
    /// what a pod moved by the improvement pass or swapped by the rebalancing must satisfy
    /// (its domains are [`Scheduler::move_masks`]'s part).
    fn runs_on_first_option(&self, p: usize, to: usize) -> bool {
        let t = &self.targets[to];
        let Some(first) = t.options.first().map(|o| *o as usize) else {
            return false;
        };
        let sig = &self.sigs[self.pods[p].sig as usize];
        let Some(types) = sig.pools[t.pool].usable() else {
            return false;
        };
        types.get(first).copied().unwrap_or(false)
            && (!t.reqs_extra
                || compatible(&t.reqs, &sig.reqs, Some(&self.pools[t.pool].well_known)))
    }

    /// One round of the improvement pass: every claim (receiver), most slack first, takes
    /// movable pods from claims that cost more than it, as long as they fit its cheapest
    /// option's room (its price does not change); the donors are then re-priced on the
    /// cheapest type that holds what is left. The plan's cost never rises. True when a pod
    /// moved.
    fn improve(&mut self) -> bool {
        let claims: Vec<usize> = (self.fixed..self.targets.len()).collect();
        if claims.len() < 2 {
            return false;
        }
        // Movable pods grouped by request vector (replicas share one), biggest first.
        let mut by_shape: BTreeMap<Vec<i64>, Vec<(usize, usize)>> = BTreeMap::new();
        for &c in &claims {
            for &p in &self.targets[c].pods {
                if self.movable(p as usize) {
                    by_shape
                        .entry(self.pods[p as usize].req.clone())
                        .or_default()
                        .push((p as usize, c));
                }
            }
        }
        if by_shape.is_empty() {
            return false;
        }
        let mut shapes: Vec<Shape> = by_shape.into_iter().collect();
        shapes.sort_by(|a, b| {
            b.0[CPU]
                .cmp(&a.0[CPU])
                .then_with(|| b.0[MEMORY].cmp(&a.0[MEMORY]))
                .then_with(|| a.0.cmp(&b.0))
        });
        let mut receivers: Vec<(i64, usize)> = claims
            .iter()
            .map(|&c| {
                (
                    -slack(&self.pools[self.targets[c].pool], &self.targets[c]),
                    c,
                )
            })
            .collect();
        receivers.sort();
        let mut moved_any = false;
        let mut donors: BTreeSet<usize> = BTreeSet::new();
        for (_, r) in receivers {
            let pool_idx = self.targets[r].pool;
            let Some(first) = self.targets[r].options.first().map(|o| *o as usize) else {
                continue;
            };
            let room = self.pools[pool_idx].types[first].room.clone();
            let r_price = self.targets[r].price;
            for (shape, slots) in shapes.iter_mut() {
                let mut tries = 0;
                for slot in slots.iter_mut() {
                    if tries >= MOVE_TRIES || !fits(&self.targets[r].used, shape, &room) {
                        break;
                    }
                    let (p, from) = *slot;
                    if from == r || from == usize::MAX || self.targets[from].price <= r_price {
                        continue;
                    }
                    tries += 1;
                    if !self.runs_on_first_option(p, r) {
                        continue;
                    }
                    let Some(masks) = self.move_masks(p, from, r, None) else {
                        continue;
                    };
                    if masks != self.targets[r].masks {
                        let same_price = self.pools[pool_idx].types[first].price_under(&masks)
                            == Some(r_price)
                            && self.pools[pool_idx].types[first]
                                .generic_ok(&masks, self.targets[r].care);
                        if !same_price {
                            continue;
                        }
                        let old = self.targets[r].masks;
                        self.rerecord(r, &old, &masks);
                        self.targets[r].masks = masks;
                    }
                    self.move_pod(p, from, r);
                    donors.insert(from);
                    slot.1 = usize::MAX;
                    moved_any = true;
                }
                slots.retain(|(_, c)| *c != usize::MAX);
            }
        }
        for d in donors {
            self.reprice(d);
        }
        moved_any
    }

    fn move_pod(&mut self, p: usize, from: usize, to: usize) {
        self.detach(p, from);
        self.attach(p, to);
    }

    /// Takes pod `p` off claim `from` (its options stay: [`Scheduler::reprice`] shrinks them).
    fn detach(&mut self, p: usize, from: usize) {
        self.record_pod(p, from, -1);
        let req = &self.pods[p].req;
        let pid = u32::try_from(p).unwrap_or(u32::MAX);
        let a = &mut self.targets[from];
        for (u, r) in a.used.iter_mut().zip(req) {
            *u -= r;
        }
        a.pods.retain(|q| *q != pid);
    }

    /// Puts pod `p` on claim `to`, keeping the options that still hold the claim and that the
    /// pod may run on.
    fn attach(&mut self, p: usize, to: usize) {
        let b = &mut self.targets[to];
        add(&mut b.used, &self.pods[p].req);
        b.pods.push(u32::try_from(p).unwrap_or(u32::MAX));
        let pool = &self.pools[b.pool];
        let all = vec![true; pool.types.len()];
        let types = self.sigs[self.pods[p].sig as usize].pools[b.pool]
            .usable()
            .unwrap_or(&all);
        b.options = surviving_options(pool, &b.options, types, &b.used, &b.masks, b.care);
        self.record_pod(p, to, 1);
    }

    /// Recomputes a claim's options from all of its pool's types after pods left it (smaller
    /// types may hold it now), within what it has reserved against limits.
    fn reprice(&mut self, t: usize) {
        let target = &self.targets[t];
        let pool = &self.pools[target.pool];
        let mut types = vec![true; pool.types.len()];
        let mut sigs: Vec<u32> = target
            .pods
            .iter()
            .map(|p| self.pods[*p as usize].sig)
            .collect();
        sigs.sort_unstable();
        sigs.dedup();
        for s in sigs {
            match self.sigs[s as usize].pools[target.pool].usable() {
                Some(ok) => {
                    for (a, b) in types.iter_mut().zip(ok) {
                        *a &= *b;
                    }
                }
                None => return,
            }
        }
        let budget: Vec<i64> = pool
            .remaining
            .iter()
            .zip(&target.reserved)
            .map(|(r, res)| if *r == i64::MAX { i64::MAX } else { r + res })
            .collect();
        let all: Vec<u32> = (0..pool.types.len())
            .filter(|i| within(&pool.types[*i].capacity, &budget))
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        let mut options =
            surviving_options(pool, &all, &types, &target.used, &target.masks, target.care);
        if target.ports.iter().any(|_| true) {
            options.retain(|o| {
                port_conflict(&pool.types[*o as usize].daemon_ports, &target.ports).is_none()
            });
        }
        if options.is_empty() {
            return;
        }
        let price = pool.types[options[0] as usize]
            .price_under(&target.masks)
            .unwrap_or(target.price);
        if price > target.price {
            return;
        }
        let target = &mut self.targets[t];
        let pool = &mut self.pools[target.pool];
        target.options = options;
        target.price = price;
        refresh_reservation(pool, target, self.options.max_instance_types);
    }

    /// Tries the pod, relaxing one preference after each failure; true when placed.
    fn place_relaxing(&mut self, p: usize) -> bool {
        loop {
            match self.try_place(p) {
                Ok(()) => {
                    self.pods[p].placed = true;
                    self.pods[p].reasons.clear();
                    return true;
                }
                Err(reasons) => {
                    self.pods[p].reasons = reasons;
                    match self.relax(p) {
                        Some(relaxed) => {
                            let pod = self.pods[p].pod.to_ref();
                            self.events.push(Event::PreferenceRelaxed { pod, relaxed });
                        }
                        None => return false,
                    }
                }
            }
        }
    }

    /// One relaxation step in upstream's order (core `preferences.go`); `None` when nothing is
    /// left to relax.
    fn relax(&mut self, p: usize) -> Option<String> {
        let any_pns = self.pools.iter().any(|pl| pl.has_prefer_no_schedule);
        let st = &mut self.pods[p];
        let pod = st.pod;
        let what = if pod.required_affinity.len() > st.term + 1 {
            st.term += 1;
            format!("required node affinity term {}", st.term)
        } else if st.pref_aff_dropped < st.pref_aff.len() {
            st.pref_aff_dropped += 1;
            "preferred pod affinity term".to_owned()
        } else if st.pref_anti_dropped < st.pref_anti.len() {
            st.pref_anti_dropped += 1;
            "preferred pod anti-affinity term".to_owned()
        } else if st.pref_node_dropped < st.pref_node.len() {
            st.pref_node_dropped += 1;
            "preferred node affinity term".to_owned()
        } else if st.anyway_dropped < st.spreads.iter().filter(|(_, a)| *a).count() {
            st.anyway_dropped += 1;
            "ScheduleAnyway topology spread constraint".to_owned()
        } else if any_pns && !st.tolerate_prefer_no_schedule {
            st.tolerate_prefer_no_schedule = true;
            "PreferNoSchedule taints".to_owned()
        } else {
            return None;
        };
        let pod = self.pods[p].pod;
        let st = std::mem::replace(&mut self.pods[p], placeholder(pod));
        let sig = self.sig_for(&st);
        self.pods[p] = st;
        self.pods[p].sig = sig;
        self.pods[p].active = self.pods[p].compute_active();
        Some(what)
    }

    /// Places the pod once (no relaxation): fixed targets, then claims of this plan, then a new
    /// claim. On failure returns the reason per NodePool.
    fn try_place(&mut self, p: usize) -> Result<(), Vec<PoolReasons>> {
        for t in 0..self.fixed {
            if let Ok(fit) = self.evaluate(p, Place::Target(t)) {
                self.commit(p, t, fit);
                return Ok(());
            }
        }
        let mut best: Option<(i64, usize, Fit)> = None;
        match self.options.packing {
            Packing::FewestPods => {
                let order: Vec<usize> = self.by_count.iter().map(|(_, t)| *t).collect();
                for t in order {
                    if let Ok(fit) = self.evaluate(p, Place::Target(t)) {
                        best = Some((fit.delta, t, fit));
                        break;
                    }
                }
            }
            Packing::CheapestFit => {
                // Best fit: the claim with the least CPU slack that holds the pod at no extra
                // cost; else the cheapest growth among the claims closest to holding it.
                let cpu = self.pods[p].req[CPU];
                let mut zero_fits = 0;
                for &(_, t) in self.by_slack.range((cpu, 0)..) {
                    if let Some(fit) = self.evaluate_claim(p, t, true) {
                        if best.as_ref().is_none_or(|(_, _, b)| fit.waste < b.waste) {
                            best = Some((fit.delta, t, fit));
                        }
                        zero_fits += 1;
                        if zero_fits >= ZERO_CANDIDATES {
                            break;
                        }
                    }
                }
                if best.is_none() {
                    let above = self.by_slack.range((cpu, 0)..).take(GROWTH_CANDIDATES / 2);
                    let below = self
                        .by_slack
                        .range(..(cpu, 0))
                        .rev()
                        .take(GROWTH_CANDIDATES);
                    // The claims opened last too: pods come sorted, so the newest claim is
                    // the one still filling, and at scale the slack window above fills with
                    // claims that cannot grow (1,000 pods went one per node without this).
                    let newest = (self.fixed..self.targets.len())
                        .rev()
                        .take(NEWEST_CANDIDATES)
                        .map(|t| (0, t));
                    let candidates: Vec<usize> = above
                        .copied()
                        .chain(below.copied())
                        .chain(newest)
                        .map(|(_, t)| t)
                        .collect();
                    for (i, &t) in candidates.iter().enumerate() {
                        if candidates[..i].contains(&t) {
                            continue;
                        }
                        if let Some(fit) = self.evaluate_claim(p, t, false)
                            && best
                                .as_ref()
                                .is_none_or(|(d, _, b)| (fit.delta, fit.waste) < (*d, b.waste))
                        {
                            best = Some((fit.delta, t, fit));
                        }
                    }
                }
            }
        }
        if let Some((_, t, fit)) =
            best.take_if(|(d, _, _)| *d == 0 || self.options.packing == Packing::FewestPods)
        {
            self.commit(p, t, fit);
            return Ok(());
        }
        let mut reasons = Vec::new();
        for pool in 0..self.pools.len() {
            match self.evaluate(p, Place::New(pool)) {
                Ok(fit) => {
                    if let Some((d, t, claim_fit)) = best
                        && d <= fit.price
                    {
                        self.commit(p, t, claim_fit);
                    } else {
                        self.open(p, pool, fit);
                    }
                    return Ok(());
                }
                Err(r) => reasons.push(PoolReasons {
                    nodepool: self.pools[pool].name.to_owned(),
                    reasons: r,
                }),
            }
        }
        if let Some((_, t, fit)) = best {
            self.commit(p, t, fit);
            return Ok(());
        }
        if self.pools.is_empty() {
            reasons.push(PoolReasons {
                nodepool: String::new(),
                reasons: vec![Reason::NoNodePool],
            });
        }
        Err(reasons)
    }

    /// Checks whether pod `p` can go to `place`, and at what price.
    fn evaluate(&self, p: usize, place: Place) -> Result<Fit, Vec<Reason>> {
        let sig_id = self.pods[p].sig;
        match place {
            Place::Target(t) if !self.targets[t].is_claim() => {
                self.evaluate_fixed(p, t).ok_or_else(Vec::new)
            }
            Place::Target(t) => self.evaluate_claim(p, t, false).ok_or_else(Vec::new),
            Place::New(pool) => {
                let fit = &self.sigs[sig_id as usize].pools[pool];
                match fit.usable() {
                    Some(types) => self.evaluate_new(p, pool, types),
                    None => {
                        let mut reasons = fit.reasons.clone();
                        let pl = &self.pools[pool];
                        if fit.types.iter().any(|t| *t) {
                            let st = &self.pods[p];
                            let zero = vec![0i64; st.req.len()];
                            let holds = pl
                                .types
                                .iter()
                                .zip(&fit.types)
                                .any(|(t, ok)| *ok && fits(&zero, &st.req, &t.room));
                            if !holds {
                                reasons.push(prepare::resource_reason(
                                    &self.dims, pl, &fit.types, &st.req,
                                ));
                            }
                        }
                        Err(reasons)
                    }
                }
            }
        }
    }

    /// Whether pod `p` fits on fixed target `t` as it is (no narrowing); reasons are not
    /// collected because upstream reports only NodePool reasons.
    fn evaluate_fixed(&self, p: usize, t: usize) -> Option<Fit> {
        let st = &self.pods[p];
        let target = &self.targets[t];
        if !fits(&target.used, &st.req, &target.cap) {
            return None;
        }
        let sig = &self.sigs[st.sig as usize];
        if !target
            .taints
            .iter()
            .all(|taint| tolerates(&sig.tolerations, taint))
            || !compatible(&target.reqs, &sig.reqs, None)
            || port_conflict(&target.ports, &st.ports).is_some()
        {
            return None;
        }
        let masks = target.masks;
        let (m, choose) = self.topology_check(p, t, masks).ok()?;
        if m != masks || choose.iter().any(|c| c.cand.count_ones() > 1) {
            return None;
        }
        Some(Fit {
            masks,
            care: 0,
            price: 0,
            delta: 0,
            waste: 0,
        })
    }

    /// Whether pod `p` fits on claim `t` of this plan, with the claim's new domains and price.
    /// With `zero_only`, only the claim's cheapest option is tried, so only a fit that leaves
    /// the price unchanged is found (the fast path of the best-fit scan).
    fn evaluate_claim(&self, p: usize, t: usize, zero_only: bool) -> Option<Fit> {
        let st = &self.pods[p];
        let target = &self.targets[t];
        let quick_room = if zero_only {
            let first = *target.options.first()? as usize;
            &self.pools[target.pool].types[first].room
        } else {
            &target.max_room
        };
        if !fits(&target.used, &st.req, quick_room) {
            return None;
        }
        let sig = &self.sigs[st.sig as usize];
        let types = sig.pools[target.pool].usable()?;
        if (target.reqs_extra || !sig.reqs.is_empty())
            && !compatible(
                &target.reqs,
                &sig.reqs,
                Some(&self.pools[target.pool].well_known),
            )
        {
            return None;
        }
        if port_conflict(&target.ports, &st.ports).is_some() {
            return None;
        }
        let mut masks = target.masks;
        for (m, d) in masks.iter_mut().zip(&sig.dom) {
            *m &= d;
        }
        let care = target.care | sig.care;
        let (masks, choose) = self.topology_check(p, t, masks).ok()?;
        let pool = &self.pools[target.pool];
        let found = self.choose_domains(masks, &choose, |m| {
            let sorted =
                m[ZONE] == target.masks[ZONE] && m[CAPACITY_TYPE] == target.masks[CAPACITY_TYPE];
            let take = if zero_only { 1 } else { GROWTH_OPTIONS };
            best_option(
                pool,
                target.options.iter().take(take).map(|o| *o as usize),
                types,
                &target.used,
                &st.req,
                &st.ports,
                Some((&pool.remaining, &target.reserved)),
                m,
                care,
                sorted,
            )
        });
        let (masks, (option, price)) = found?;
        if zero_only && price != target.price {
            return None;
        }
        if pool.has_min_values {
            self.check_min_values(p, t, &masks, care).ok()?;
        }
        Some(Fit {
            masks,
            care: care | choose_care(&choose),
            price,
            delta: price - target.price,
            waste: waste(&pool.types[option].room, &target.used, &st.req),
        })
    }

    fn evaluate_new(&self, p: usize, pool_idx: usize, types: &[bool]) -> Result<Fit, Vec<Reason>> {
        let pool = &self.pools[pool_idx];
        if pool.catalog.is_none() {
            return Err(vec![Reason::NoCatalog(pool.spec.node_class.clone())]);
        }
        let st = &self.pods[p];
        let sig = &self.sigs[st.sig as usize];
        let zero = vec![0i64; st.req.len()];
        let usable: Vec<bool> = pool
            .types
            .iter()
            .zip(types)
            .map(|(t, ok)| {
                *ok && fits(&zero, &st.req, &t.room) && within(&t.capacity, &pool.remaining)
            })
            .collect();
        if pool.nodes_remaining <= 0 || !usable.iter().any(|u| *u) {
            return Err(vec![prepare::resource_reason(
                &self.dims, pool, types, &st.req,
            )]);
        }
        if let Some(hp) = st
            .ports
            .iter()
            .enumerate()
            .find(|(i, a)| st.ports[..*i].iter().any(|b| a.conflicts(b)))
            .map(|(_, a)| a.clone())
        {
            return Err(vec![Reason::HostPort(hp)]);
        }
        let mut masks = pool.masks;
        for (m, d) in masks.iter_mut().zip(&sig.dom) {
            *m &= d;
        }
        let care = sig.care;
        let host = self.targets.len();
        let (masks, choose) = self
            .topology_check(p, host, masks)
            .map_err(|e| vec![self.topo_reason(e)])?;
        let n = pool.types.len();
        let found = self.choose_domains(masks, &choose, |m| {
            let sorted =
                m[ZONE] == pool.masks[ZONE] && m[CAPACITY_TYPE] == pool.masks[CAPACITY_TYPE];
            best_option(
                pool,
                0..n,
                &usable,
                &zero,
                &st.req,
                &st.ports,
                None,
                m,
                care,
                sorted,
            )
        });
        let (masks, (option, price)) = found.ok_or_else(|| {
            vec![Reason::Topology(
                "no instance type offers a domain the pod's topology constraints allow".to_owned(),
            )]
        })?;
        Ok(Fit {
            masks,
            care: care | choose_care(&choose),
            price,
            delta: price,
            waste: waste(&pool.types[option].room, &zero, &st.req),
        })
    }

    /// Upstream's minValues check for a claim of a pool that has one: the options left after
    /// adding the pod, cheapest first, must keep `minValues` distinct values within the first
    /// `max_instance_types`.
    fn check_min_values(&self, p: usize, t: usize, masks: &Masks, care: u8) -> Result<(), Reason> {
        if self.options.min_values_policy == MinValuesPolicy::BestEffort {
            return Ok(());
        }
        let target = &self.targets[t];
        let st = &self.pods[p];
        let pool = &self.pools[target.pool];
        let sig = &self.sigs[st.sig as usize];
        let Some(types) = sig.pools[target.pool].usable() else {
            return Ok(());
        };
        let mut used = target.used.clone();
        add(&mut used, &st.req);
        let opts = surviving_options(pool, &target.options, types, &used, masks, care);
        let reqs = target.reqs.intersect(&sig.reqs);
        let its: Vec<&Requirements> = opts
            .iter()
            .take(self.options.max_instance_types)
            .filter_map(|o| pool.instance_type(&pool.types[*o as usize]))
            .map(|it| it.requirements())
            .collect();
        reqs.min_values_needed(its)
            .map(|_| ())
            .map_err(Reason::MinValues)
    }

    /// Checks the pod's active topology groups and the anti-affinity of placed pods against a
    /// target with host domain `host` and domain masks `masks`. Returns the narrowed masks and,
    /// per key slot, the ordered single-domain candidates when a domain must be chosen.
    fn topology_check(
        &self,
        p: usize,
        host: usize,
        masks: Masks,
    ) -> Result<(Masks, Choices), TopoErr> {
        let mut m = masks;
        let mut choose: Choices = [Choice::default(); MAX_KEYS];
        let mut pin = [false; MAX_KEYS];
        let mut spread_order: [Option<u32>; MAX_KEYS] = [None; MAX_KEYS];
        for &g in &self.pods[p].active {
            let selfm = self.pods[p].matches.contains(&g);
            let group = &self.topology.groups[g as usize];
            match (group.key, group.kind) {
                (Key::Untracked, _) => return Err(TopoErr::Own(g)),
                (Key::Host, Kind::Affinity) => {
                    if !(group.count(host) > 0 || (group.any == 0 && selfm)) {
                        return Err(TopoErr::Own(g));
                    }
                }
                (Key::Host, Kind::Anti) => {
                    if group.count(host) > 0 {
                        return Err(TopoErr::Own(g));
                    }
                }
                (Key::Host, Kind::Spread { max_skew, .. }) => {
                    if group.count(host) + i32::from(selfm) > max_skew {
                        return Err(TopoErr::Own(g));
                    }
                }
                (Key::Slot(k), Kind::Affinity) => {
                    let with = group.occupied();
                    if with & m[k] != 0 {
                        m[k] &= with;
                    } else if group.any == 0 && selfm && m[k] != 0 {
                        pin[k] = true;
                    } else {
                        return Err(TopoErr::Own(g));
                    }
                }
                (Key::Slot(k), Kind::Anti) => {
                    m[k] &= !group.occupied();
                    if m[k] == 0 {
                        return Err(TopoErr::Own(g));
                    }
                    // Decide the domain now: an undecided claim would block every domain it
                    // could still end in (upstream leaves it open, which is why its benchmark
                    // avoids zonal anti-affinity).
                    pin[k] = true;
                }
                (
                    Key::Slot(k),
                    Kind::Spread {
                        max_skew,
                        min_domains,
                        ..
                    },
                ) => {
                    let eligible = self.eligible_domains(p, g);
                    let group = &self.topology.groups[g as usize];
                    let min = if min_domains.is_some_and(|md| (eligible.count_ones() as i32) < md)
                        || eligible == 0
                    {
                        0
                    } else {
                        let mut min = i32::MAX;
                        for_bits(eligible, |d| min = min.min(group.count(d)));
                        min
                    };
                    let mut allowed = 0u64;
                    for_bits(m[k], |d| {
                        if group.count(d) + i32::from(selfm) - min <= max_skew {
                            allowed |= 1u64 << d;
                        }
                    });
                    m[k] = allowed;
                    if allowed == 0 {
                        return Err(TopoErr::Own(g));
                    }
                    pin[k] = true;
                    spread_order[k] = Some(g);
                }
            }
        }
        for g in &self.pods[p].anti_matches {
            let group = &self.topology.groups[*g as usize];
            let blocked = match group.key {
                Key::Host => group.owner(host) > 0,
                Key::Slot(k) => {
                    m[k] &= !group.owned();
                    pin[k] = true;
                    m[k] == 0
                }
                Key::Untracked => false,
            };
            if blocked {
                return Err(TopoErr::Inverse(*g));
            }
        }
        for k in 0..MAX_KEYS {
            if pin[k] && m[k].count_ones() > 1 {
                choose[k] = Choice {
                    cand: m[k],
                    by: spread_order[k],
                };
            }
        }
        Ok((m, choose))
    }

    /// Picks, for every key that needs a single domain, the first candidate (fewest selected
    /// pods first, then table order) under which `probe` finds an option; returns the final
    /// masks and the probe's result.
    fn choose_domains<T>(
        &self,
        masks: Masks,
        choose: &Choices,
        mut probe: impl FnMut(&Masks) -> Option<T>,
    ) -> Option<(Masks, T)> {
        let mut m = masks;
        for (k, c) in choose.iter().enumerate() {
            if c.cand == 0 {
                continue;
            }
            let mut order = [(0i32, 0u8); 64];
            let mut len = 0;
            for_bits(c.cand, |d| {
                let count =
                    c.by.map_or(0, |g| self.topology.groups[g as usize].count(d));
                order[len] = (count, u8::try_from(d).unwrap_or(63));
                len += 1;
            });
            order[..len].sort_unstable();
            let mut picked = false;
            for (_, d) in &order[..len] {
                let mut trial = m;
                trial[k] = 1u64 << d;
                if probe(&trial).is_some() {
                    m = trial;
                    picked = true;
                    break;
                }
            }
            if !picked {
                return None;
            }
        }
        probe(&m).map(|r| (m, r))
    }

    fn topo_reason(&self, e: TopoErr) -> Reason {
        match e {
            TopoErr::Own(g) => {
                let group = &self.topology.groups[g as usize];
                let (what, why) = match group.kind {
                    Kind::Spread { max_skew, .. } => (
                        "topology spread",
                        format!("no domain within max skew {max_skew}"),
                    ),
                    Kind::Affinity => (
                        "pod affinity",
                        "no matching pod in a reachable domain".to_owned(),
                    ),
                    Kind::Anti => (
                        "pod anti-affinity",
                        "every reachable domain has a matching pod".to_owned(),
                    ),
                };
                Reason::Topology(format!(
                    "{what} on {} ({}): {why}",
                    group.key_name, group.selector
                ))
            }
            TopoErr::Inverse(g) => {
                let group = &self.topology.groups[g as usize];
                Reason::Topology(format!(
                    "a placed pod's anti-affinity on {} ({}) excludes every reachable domain",
                    group.key_name, group.selector
                ))
            }
        }
    }

    /// Domains a spread group counts for the pod's minimum (core `domainMinCount` over
    /// `podDomains`): those of NodePools and nodes the pod could use, per the node-affinity and
    /// node-taints policies.
    fn eligible_domains(&self, p: usize, g: u32) -> u64 {
        let sig_id = self.pods[p].sig;
        if let Some(m) = self.eligible.borrow().get(&(sig_id, g)) {
            return *m;
        }
        let group = &self.topology.groups[g as usize];
        let Key::Slot(k) = group.key else {
            return 0;
        };
        let Kind::Spread {
            honor_affinity,
            honor_taints,
            ..
        } = group.kind
        else {
            return 0;
        };
        let sig = &self.sigs[sig_id as usize];
        let mut e = 0u64;
        for pool in &self.pools {
            if honor_taints && tolerates_all(&sig.tolerations, pool.taints).is_err() {
                continue;
            }
            if honor_affinity
                && pool
                    .reqs
                    .compatible_allowing(&sig.reqs, &pool.well_known)
                    .is_err()
            {
                continue;
            }
            e |= pool.masks[k];
        }
        for t in &self.targets[..self.fixed] {
            if honor_taints && tolerates_all(&sig.tolerations, &t.taints).is_err() {
                continue;
            }
            e |= t.masks[k];
        }
        if honor_affinity {
            e &= sig.dom[k];
        }
        self.eligible.borrow_mut().insert((sig_id, g), e);
        e
    }

    /// Puts pod `p` on target `t` (fixed or claim).
    fn commit(&mut self, p: usize, t: usize, fit: Fit) {
        if self.targets[t].is_claim() {
            let old = self.targets[t].masks;
            if fit.masks != old {
                self.rerecord(t, &old, &fit.masks);
            }
            let st = &self.pods[p];
            let sig = &self.sigs[st.sig as usize];
            let target = &mut self.targets[t];
            let pool = &mut self.pools[target.pool];
            self.by_count.remove(&(target.pods.len(), t));
            self.by_slack.remove(&(slack(pool, target), t));
            target.masks = fit.masks;
            target.care |= fit.care;
            add(&mut target.used, &st.req);
            if !sig.reqs.is_empty() {
                target.reqs = Arc::new(target.reqs.intersect(&sig.reqs));
                target.reqs_extra = true;
            }
            target.ports.extend(st.ports.iter().cloned());
            let types: &[bool] = sig.pools[target.pool].usable().unwrap_or(&[]);
            if fit.masks[ZONE] == old[ZONE] && fit.masks[CAPACITY_TYPE] == old[CAPACITY_TYPE] {
                // Prices under the claim's domains are unchanged: filter in place, order kept.
                let (used, masks, care) = (&target.used, &target.masks, target.care);
                target.options.retain(|o| {
                    let i = *o as usize;
                    let pt = &pool.types[i];
                    types.get(i).copied().unwrap_or(false)
                        && pt.room.iter().zip(used).all(|(r, u)| u <= r)
                        && pt.generic_ok(masks, care)
                });
            } else {
                target.options = surviving_options(
                    pool,
                    &target.options,
                    types,
                    &target.used,
                    &target.masks,
                    target.care,
                );
            }
            target.price = fit.price;
            refresh_reservation(pool, target, self.options.max_instance_types);
            target.pods.push(u32::try_from(p).unwrap_or(u32::MAX));
            self.by_count.insert((target.pods.len(), t));
            self.by_slack.insert((slack(pool, target), t));
        } else {
            let st = &self.pods[p];
            let target = &mut self.targets[t];
            add(&mut target.used, &st.req);
            target.ports.extend(st.ports.iter().cloned());
            target.pods.push(u32::try_from(p).unwrap_or(u32::MAX));
        }
        self.record_pod(p, t, 1);
    }

    /// Opens a new claim of `pool` for pod `p`.
    fn open(&mut self, p: usize, pool_idx: usize, fit: Fit) {
        let t = self.targets.len();
        let st = &self.pods[p];
        let sig = &self.sigs[st.sig as usize];
        let pool = &mut self.pools[pool_idx];
        let types: &[bool] = sig.pools[pool_idx].usable().unwrap_or(&[]);
        let all: Vec<u32> = (0..pool.types.len())
            .filter(|i| within(&pool.types[*i].capacity, &pool.remaining))
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        let used = st.req.clone();
        let options = surviving_options(pool, &all, types, &used, &fit.masks, fit.care);
        let mut ports: Vec<HostPort> = st.ports.clone();
        for o in &options {
            for hp in &pool.types[*o as usize].daemon_ports {
                if !ports.contains(hp) {
                    ports.push(hp.clone());
                }
            }
        }
        let mut target = Target {
            name: None,
            pool: pool_idx,
            masks: fit.masks,
            care: fit.care,
            reqs: Arc::new(pool.reqs.intersect(&sig.reqs)),
            reqs_extra: !sig.reqs.is_empty(),
            taints: Vec::new(),
            used,
            cap: Vec::new(),
            ports,
            pods: vec![u32::try_from(p).unwrap_or(u32::MAX)],
            options,
            price: fit.price,
            reserved: vec![0; self.dims.len()],
            max_room: Vec::new(),
        };
        pool.nodes_remaining = pool.nodes_remaining.saturating_sub(1);
        refresh_reservation(pool, &mut target, self.options.max_instance_types);
        self.by_slack.insert((slack(pool, &target), t));
        self.targets.push(target);
        self.by_count.insert((1, t));
        self.record_pod(p, t, 1);
    }

    /// Records (or, with `delta = -1`, unrecords) pod `p` on target `t` in every group that
    /// selects it and every required anti-affinity group it owns.
    fn record_pod(&mut self, p: usize, t: usize, delta: i32) {
        let masks = self.targets[t].masks;
        let st = &self.pods[p];
        for g in &st.matches {
            self.topology.groups[*g as usize].record(t, &masks, delta, false);
        }
        for g in &st.req_anti {
            self.topology.groups[*g as usize].record(t, &masks, delta, true);
        }
    }

    /// A claim's domains narrowed: move its pods' counts from the old masks to the new ones, so
    /// a zone decided by a later pod counts for the earlier ones too.
    fn rerecord(&mut self, t: usize, old: &Masks, new: &Masks) {
        let pods = self.targets[t].pods.clone();
        for p in pods {
            let st = &self.pods[p as usize];
            for g in &st.matches {
                let group = &mut self.topology.groups[*g as usize];
                group.record(t, old, -1, false);
                group.record(t, new, 1, false);
            }
            for g in &st.req_anti {
                let group = &mut self.topology.groups[*g as usize];
                group.record(t, old, -1, true);
                group.record(t, new, 1, true);
            }
        }
    }

    fn finish(mut self) -> Plan {
        let mut plan = Plan::default();
        let mut nominated: Vec<(usize, Nominate)> = Vec::new();
        for t in &self.targets[..self.fixed] {
            for p in &t.pods {
                let pod = self.pods[*p as usize].pod;
                nominated.push((
                    *p as usize,
                    Nominate {
                        pod: pod.to_ref(),
                        node: t.name.clone().unwrap_or_default(),
                    },
                ));
            }
        }
        nominated.sort_by_key(|(p, _)| *p);
        plan.nominations = nominated.into_iter().map(|(_, n)| n).collect();
        for t in self.fixed..self.targets.len() {
            let launch = self.launch(t, plan.launches.len());
            match launch {
                Ok(l) => plan.launches.push(l),
                Err(e) => {
                    for p in self.targets[t].pods.clone() {
                        let st = &mut self.pods[p as usize];
                        st.placed = false;
                        st.reasons = vec![PoolReasons {
                            nodepool: self.pools[self.targets[t].pool].name.to_owned(),
                            reasons: vec![Reason::MinValues(e.clone())],
                        }];
                    }
                }
            }
        }
        for st in &self.pods {
            if !st.placed {
                plan.unschedulable.push(Unschedulable {
                    pod: st.pod.to_ref(),
                    by_nodepool: st.reasons.clone(),
                });
            }
        }
        plan.events = std::mem::take(&mut self.events);
        plan
    }

    /// Turns claim `t` into a launch: options by price under its final domains, truncated;
    /// requirements narrowed to what those options offer.
    fn launch(
        &mut self,
        t: usize,
        index: usize,
    ) -> Result<Launch, tandem_model::requirements::MinValuesError> {
        let target = &self.targets[t];
        let pool = &self.pools[target.pool];
        let mut opts: Vec<(i64, usize)> = target
            .options
            .iter()
            .filter_map(|o| {
                let pt = &pool.types[*o as usize];
                pt.price_under(&target.masks)
                    .map(|price| (price, *o as usize))
            })
            .collect();
        opts.sort();
        let mut reqs = Requirements::clone(&target.reqs);
        if pool.has_min_values {
            let its: Vec<&Requirements> = opts
                .iter()
                .filter_map(|(_, o)| pool.instance_type(&pool.types[*o]))
                .map(|it| it.requirements())
                .collect();
            match reqs.min_values_needed(its.iter().copied()) {
                Ok(n) if n <= self.options.max_instance_types => {}
                Ok(n) => {
                    let error = tandem_model::requirements::MinValuesError {
                        key: String::from("instance types"),
                        required: u32::try_from(n).unwrap_or(u32::MAX),
                        found: self.options.max_instance_types,
                    };
                    if self.options.min_values_policy == MinValuesPolicy::Strict {
                        return Err(error);
                    }
                    self.events.push(Event::MinValuesRelaxed {
                        launch: index,
                        error,
                    });
                }
                Err(error) => {
                    if self.options.min_values_policy == MinValuesPolicy::Strict {
                        return Err(error);
                    }
                    self.events.push(Event::MinValuesRelaxed {
                        launch: index,
                        error,
                    });
                }
            }
        }
        opts.truncate(self.options.max_instance_types.max(1));
        let mut zones = 0u64;
        let mut cts = 0u64;
        let mut instance_types = Vec::with_capacity(opts.len());
        for (price, o) in &opts {
            let pt = &pool.types[*o];
            for (z, c, _) in &pt.offers {
                if target.masks[ZONE] & (1u64 << z) != 0
                    && target.masks[CAPACITY_TYPE] & (1u64 << c) != 0
                {
                    zones |= 1u64 << z;
                    cts |= 1u64 << c;
                }
            }
            instance_types.push(InstanceOption {
                name: pool
                    .instance_type(pt)
                    .map(|it| it.name().to_owned())
                    .unwrap_or_default(),
                price: tandem_model::catalog::UsdPerHour::from_picos(*price),
            });
        }
        reqs.add(Requirement::in_values(
            labels::INSTANCE_TYPE,
            instance_types.iter().map(|o| o.name.as_str()),
        ));
        reqs.add(Requirement::in_values(
            labels::ZONE,
            self.keys.tables[ZONE].values_of(zones),
        ));
        reqs.add(Requirement::in_values(
            labels::CAPACITY_TYPE,
            self.keys.tables[CAPACITY_TYPE].values_of(cts),
        ));
        for k in 2..self.keys.tables.len() {
            if target.care & (1 << k) != 0 {
                let table = &self.keys.tables[k];
                reqs.add(Requirement::in_values(
                    &table.key,
                    table.values_of(target.masks[k]),
                ));
            }
        }
        let mut requests = target.used.clone();
        if let Some((_, o)) = opts.first() {
            add(&mut requests, &pool.types[*o].daemon);
        }
        Ok(Launch {
            nodepool: pool.name.to_owned(),
            requirements: reqs,
            price: instance_types.first().map(|o| o.price).unwrap_or_default(),
            instance_types,
            pods: target
                .pods
                .iter()
                .map(|p| self.pods[*p as usize].pod.to_ref())
                .collect(),
            requests: self.dims.to_resources(&requests),
        })
    }
}

/// A stand-in while a pod state is moved out to recompute its signature.
fn placeholder(pod: &PendingPod) -> PodState<'_> {
    PodState {
        pod,
        req: Vec::new(),
        ports: Vec::new(),
        matches: Vec::new(),
        anti_matches: Vec::new(),
        req_aff: Vec::new(),
        req_anti: Vec::new(),
        pref_aff: Vec::new(),
        pref_anti: Vec::new(),
        pref_node: Vec::new(),
        spreads: Vec::new(),
        term: 0,
        pref_aff_dropped: 0,
        pref_anti_dropped: 0,
        pref_node_dropped: 0,
        anyway_dropped: 0,
        tolerate_prefer_no_schedule: false,
        sig: 0,
        active: Vec::new(),
        last_len: 0,
        placed: false,
        reasons: Vec::new(),
    }
}

/// Whether a pod signature can use a NodePool, and with which of its instance types.
fn pool_fit(
    pool: &Pool<'_>,
    reqs: &Requirements,
    dom: &Masks,
    tolerations: &[Toleration],
) -> PoolFit {
    let mut reasons = Vec::new();
    if pool.catalog.is_none() {
        reasons.push(Reason::NoCatalog(pool.spec.node_class.clone()));
        return PoolFit {
            types: Vec::new(),
            reasons,
        };
    }
    if let Err(e) = tolerates_all(tolerations, pool.taints) {
        reasons.push(Reason::Taint(e));
    }
    if let Err(e) = pool.reqs.compatible_allowing(reqs, &pool.well_known) {
        reasons.push(Reason::Requirements(e));
        return PoolFit {
            types: Vec::new(),
            reasons,
        };
    }
    let types: Vec<bool> = pool
        .types
        .iter()
        .map(|t| {
            pool.instance_type(t)
                .is_some_and(|it| it.requirements().intersects(reqs))
                && t.price_under(dom).is_some()
        })
        .collect();
    if !types.iter().any(|t| *t) {
        reasons.push(Reason::NoCompatibleInstanceType(
            pool.reqs.intersect(reqs).to_string(),
        ));
    }
    PoolFit { types, reasons }
}

/// The cheapest option (index, price) among `candidates` that the signature allows, that holds
/// `used + req`, and that offers a domain in `masks`. With `sorted`, candidates are already in
/// price order under `masks` and the first hit is returned.
#[allow(clippy::too_many_arguments)]
fn best_option(
    pool: &Pool<'_>,
    candidates: impl Iterator<Item = usize>,
    types: &[bool],
    used: &[i64],
    req: &[i64],
    ports: &[HostPort],
    budget: Option<(&[i64], &[i64])>,
    masks: &Masks,
    care: u8,
    sorted: bool,
) -> Option<(usize, i64)> {
    let mut best: Option<(usize, i64)> = None;
    for o in candidates {
        if !types.get(o).copied().unwrap_or(false) {
            continue;
        }
        let pt = &pool.types[o];
        if !fits(used, req, &pt.room) || !pt.generic_ok(masks, care) {
            continue;
        }
        if let Some((remaining, reserved)) = budget
            && !within_budget(&pt.capacity, remaining, reserved)
        {
            continue;
        }
        if !ports.is_empty() && port_conflict(&pt.daemon_ports, ports).is_some() {
            continue;
        }
        if let Some(price) = pt.price_under(masks) {
            if sorted {
                return Some((o, price));
            }
            if best.is_none_or(|(_, b)| price < b) {
                best = Some((o, price));
            }
        }
    }
    best
}

fn choose_care(choose: &Choices) -> u8 {
    choose
        .iter()
        .enumerate()
        .filter(|(_, c)| c.cand != 0)
        .fold(0, |acc, (k, _)| acc | (1u8 << k))
}

/// The options of a claim that still hold `used`, are allowed by the signature and offer a
/// domain in `masks`, in price order under `masks` (ties by pool order).
fn surviving_options(
    pool: &Pool<'_>,
    options: &[u32],
    types: &[bool],
    used: &[i64],
    masks: &Masks,
    care: u8,
) -> Vec<u32> {
    let zero = vec![0i64; used.len()];
    let mut out: Vec<(i64, u32)> = options
        .iter()
        .filter_map(|o| {
            let i = *o as usize;
            let pt = &pool.types[i];
            if !types.get(i).copied().unwrap_or(false)
                || !fits(used, &zero, &pt.room)
                || !pt.generic_ok(masks, care)
            {
                return None;
            }
            pt.price_under(masks).map(|price| (price, *o))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, o)| o).collect()
}

/// Re-reserves the largest capacity among the claim's options against the pool's limits,
/// giving back what shrinking options no longer need; also refreshes the quick-reject room.
fn refresh_reservation(pool: &mut Pool<'_>, target: &mut Target, window: usize) {
    let n = target.reserved.len();
    if pool.remaining.iter().any(|r| *r != i64::MAX) {
        let (remaining, reserved) = (&pool.remaining, &target.reserved);
        target
            .options
            .retain(|o| within_budget(&pool.types[*o as usize].capacity, remaining, reserved));
    }
    let mut max_cap = vec![0i64; n];
    let mut max_room = vec![i64::MIN; n];
    for (i, o) in target.options.iter().enumerate() {
        let pt = &pool.types[*o as usize];
        if i < window {
            for (m, c) in max_cap.iter_mut().zip(&pt.capacity) {
                *m = (*m).max(*c);
            }
        }
        for (m, r) in max_room.iter_mut().zip(&pt.room) {
            *m = (*m).max(*r);
        }
    }
    for ((rem, old), new) in pool
        .remaining
        .iter_mut()
        .zip(&target.reserved)
        .zip(&max_cap)
    {
        if *rem != i64::MAX {
            *rem = *rem + old - new;
        }
    }
    target.reserved = max_cap;
    target.max_room = max_room;
}

/// Unused room of `room` after `used + req`, in parts per million of CPU plus of memory.
fn waste(room: &[i64], used: &[i64], req: &[i64]) -> i64 {
    [CPU, MEMORY]
        .iter()
        .map(|&r| {
            let free = i128::from(room[r] - used[r] - req[r]).max(0);
            let total = i128::from(room[r].max(1));
            i64::try_from(free * 1_000_000 / total).unwrap_or(i64::MAX)
        })
        .sum()
}

/// CPU room of the claim's cheapest option minus what its pods use.
fn slack(pool: &Pool<'_>, target: &Target) -> i64 {
    target.options.first().map_or(i64::MIN, |o| {
        pool.types[*o as usize].room[CPU] - target.used[CPU]
    })
}

fn add(a: &mut [i64], b: &[i64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.saturating_add(*y);
    }
}

/// `cap ≤ remaining + reserved` in every dimension: what a claim may still grow into.
fn within_budget(cap: &[i64], remaining: &[i64], reserved: &[i64]) -> bool {
    cap.iter()
        .zip(remaining)
        .zip(reserved)
        .all(|((c, r), res)| *r == i64::MAX || *c <= r.saturating_add(*res))
}

/// `cap ≤ remaining` in every limited dimension.
fn within(cap: &[i64], remaining: &[i64]) -> bool {
    cap.iter().zip(remaining).all(|(c, r)| c <= r)
}

/// Upstream `Compatible` as a yes/no, without building an error: every incoming key is
/// defined by `have` (or allowed undefined, or only excludes values), and shared keys
/// intersect.
fn compatible(have: &Requirements, incoming: &Requirements, allow: Option<&LabelSet>) -> bool {
    incoming.iter().all(|r| {
        have.contains_key(r.key())
            || allow.is_some_and(|a| a.contains(r.key()))
            || matches!(r.operator(), Operator::NotIn | Operator::DoesNotExist)
    }) && have.intersects(incoming)
}

fn port_conflict(have: &[HostPort], want: &[HostPort]) -> Option<HostPort> {
    want.iter()
        .find(|w| have.iter().any(|h| h.conflicts(w)))
        .cloned()
}
