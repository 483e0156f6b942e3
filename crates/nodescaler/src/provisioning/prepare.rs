//! Everything computed once per plan before the first pod is tried: dense resource vectors,
//! topology-key value tables, and per NodePool the compatible instance types with their prices,
//! DaemonSet overhead and domain masks.
//!
//! The hot loop then compares `i64`s and `u64` bit masks only; the requirements algebra runs
//! when a pod signature is first seen or a claim is narrowed.

use std::collections::BTreeMap;

use tandem_model::catalog::{CapacityType, Catalog, InstanceType};
use tandem_model::labels::{self, LabelSet};
use tandem_model::pod::HostPort;
use tandem_model::requirements::{Requirement, Requirements};
use tandem_model::resources::{Bytes, MilliCpu, Resources};
use tandem_model::taints::{Taint, tolerates_all};

use super::Reason;
use crate::snapshot::{DaemonSet, NodePool, Snapshot};

/// Index of CPU in a dense vector.
pub const CPU: usize = 0;
/// Index of memory.
pub const MEMORY: usize = 1;
/// Index of the pod count.
pub const PODS: usize = 2;

/// Topology keys tracked as bit masks: zone, capacity type and up to six more.
pub const MAX_KEYS: usize = 8;
/// Domain bit masks, one per tracked key; bit `i` is value `i` of the key's table.
pub type Masks = [u64; MAX_KEYS];
/// Key slot of `topology.kubernetes.io/zone`.
pub const ZONE: usize = 0;
/// Key slot of `karpenter.sh/capacity-type`.
pub const CAPACITY_TYPE: usize = 1;

/// The resource dimensions of one plan: cpu, memory, pods, ephemeral-storage, then every
/// extended resource a pod, DaemonSet or limit mentions (sorted).
#[derive(Debug, Clone, Default)]
pub struct Dims {
    ext: Vec<String>,
}

impl Dims {
    pub fn new(snapshot: &Snapshot) -> Self {
        let mut names = std::collections::BTreeSet::new();
        for p in &snapshot.pods {
            names.extend(p.shape.effective_requests().extended.into_keys());
        }
        for d in &snapshot.daemonsets {
            names.extend(d.shape.effective_requests().extended.into_keys());
        }
        for np in &snapshot.nodepools {
            for k in np.limits.by_resource.keys() {
                if !matches!(
                    k.as_str(),
                    "cpu" | "memory" | "pods" | "ephemeral-storage" | "nodes"
                ) {
                    names.insert(k.clone());
                }
            }
        }
        Dims {
            ext: names.into_iter().collect(),
        }
    }

    pub fn len(&self) -> usize {
        4 + self.ext.len()
    }

    pub fn dense(&self, r: &Resources) -> Vec<i64> {
        let mut v = Vec::with_capacity(self.len());
        v.extend([r.cpu.0, r.memory.0, r.pods, r.ephemeral_storage.0]);
        v.extend(self.ext.iter().map(|n| r.extended(n)));
        v
    }

    pub fn name(&self, i: usize) -> &str {
        match i {
            0 => "cpu",
            1 => "memory",
            2 => "pods",
            3 => "ephemeral-storage",
            _ => self.ext.get(i - 4).map_or("", String::as_str),
        }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        match name {
            "cpu" => Some(0),
            "memory" => Some(1),
            "pods" => Some(2),
            "ephemeral-storage" => Some(3),
            other => self.ext.iter().position(|n| n == other).map(|i| i + 4),
        }
    }

    /// An amount as Kubernetes prints it (`96`, `1536Mi`, `3`).
    pub fn show(&self, i: usize, v: i64) -> String {
        match i {
            0 => MilliCpu(v).to_string(),
            1 | 3 => Bytes(v).to_string(),
            _ => v.to_string(),
        }
    }

    pub fn to_resources(&self, v: &[i64]) -> Resources {
        let mut r = Resources {
            cpu: MilliCpu(v[CPU]),
            memory: Bytes(v[MEMORY]),
            pods: v[PODS],
            ephemeral_storage: Bytes(v[3]),
            ..Resources::default()
        };
        for (i, n) in self.ext.iter().enumerate() {
            if v[4 + i] != 0 {
                r.extended.insert(n.clone(), v[4 + i]);
            }
        }
        r
    }
}

/// `a + b ≤ cap` in every dimension.
#[inline]
pub fn fits(a: &[i64], b: &[i64], cap: &[i64]) -> bool {
    a.iter()
        .zip(b)
        .zip(cap)
        .all(|((x, y), c)| x.saturating_add(*y) <= *c)
}

/// The values of one topology key seen anywhere in the snapshot, at most 64.
#[derive(Debug, Clone, Default)]
pub struct KeyTable {
    pub key: String,
    pub values: Vec<String>,
    index: BTreeMap<String, u32>,
    pub overflow: bool,
}

impl KeyTable {
    fn new(key: &str) -> Self {
        KeyTable {
            key: key.to_owned(),
            ..KeyTable::default()
        }
    }

    fn insert(&mut self, value: &str) {
        if self.index.contains_key(value) {
            return;
        }
        if self.values.len() >= 64 {
            self.overflow = true;
            return;
        }
        self.index.insert(
            value.to_owned(),
            u32::try_from(self.values.len()).unwrap_or(0),
        );
        self.values.push(value.to_owned());
    }

    pub fn bit(&self, value: &str) -> u64 {
        self.index.get(value).map_or(0, |i| 1u64 << i)
    }

    pub fn all(&self) -> u64 {
        if self.values.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.values.len()) - 1
        }
    }

    /// Values allowed by a requirement (all when `None`).
    pub fn allowed(&self, r: Option<&Requirement>) -> u64 {
        match r {
            None => self.all(),
            Some(r) => self
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| r.has(v))
                .fold(0, |m, (i, _)| m | (1u64 << i)),
        }
    }

    /// Values of a mask, in table order.
    pub fn values_of(&self, mask: u64) -> Vec<String> {
        self.values
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1u64 << i) != 0)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The tracked topology keys: slot 0 zone, slot 1 capacity type, then the keys of pod
/// constraints (hostname is not here: its domains are the targets themselves).
#[derive(Debug, Clone)]
pub struct Keys {
    pub tables: Vec<KeyTable>,
}

impl Keys {
    pub fn slot(&self, key: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.key == key)
    }

    /// Registers a key; `None` when all slots are taken.
    pub fn add(&mut self, key: &str) -> Option<usize> {
        if let Some(s) = self.slot(key) {
            return Some(s);
        }
        if self.tables.len() >= MAX_KEYS {
            return None;
        }
        self.tables.push(KeyTable::new(key));
        Some(self.tables.len() - 1)
    }

    /// Masks allowed by a set of requirements (all values for an unconstrained key).
    pub fn masks_of(&self, reqs: &Requirements) -> Masks {
        let mut m = [u64::MAX; MAX_KEYS];
        for (i, t) in self.tables.iter().enumerate() {
            m[i] = t.allowed(reqs.get(&t.key));
        }
        m
    }

    /// Single-value masks from node labels (0 where the label is absent).
    pub fn masks_of_labels(&self, labels: &BTreeMap<String, String>) -> Masks {
        let mut m = [0; MAX_KEYS];
        for (i, t) in self.tables.iter().enumerate() {
            m[i] = labels.get(&t.key).map_or(0, |v| t.bit(v));
        }
        m
    }
}

/// Collects the value tables of every tracked key from the whole snapshot.
pub fn build_keys(snapshot: &Snapshot, extra_keys: &[String]) -> (Keys, Vec<String>) {
    let mut keys = Keys {
        tables: vec![
            KeyTable::new(labels::ZONE),
            KeyTable::new(labels::CAPACITY_TYPE),
        ],
    };
    let mut dropped = Vec::new();
    for k in extra_keys {
        if k != labels::HOSTNAME && keys.add(k).is_none() {
            dropped.push(k.clone());
        }
    }
    let mut tables = std::mem::take(&mut keys.tables);
    for ct in [
        CapacityType::OnDemand,
        CapacityType::Spot,
        CapacityType::Reserved,
    ] {
        tables[CAPACITY_TYPE].insert(ct.as_str());
    }
    let add_reqs = |tables: &mut Vec<KeyTable>, reqs: &Requirements| {
        for t in tables.iter_mut() {
            if let Some(r) = reqs.get(&t.key)
                && !r.is_complement()
            {
                for v in r.values() {
                    t.insert(v);
                }
            }
        }
    };
    for np in &snapshot.nodepools {
        add_reqs(&mut tables, &np.requirements);
        for t in tables.iter_mut() {
            if let Some(v) = np.labels.get(&t.key) {
                t.insert(v);
            }
        }
    }
    for catalog in snapshot.catalogs.values() {
        for it in catalog.types() {
            for o in it.offerings() {
                tables[ZONE].insert(&o.zone);
            }
            add_reqs(&mut tables, it.requirements());
        }
    }
    for n in &snapshot.nodes {
        for t in tables.iter_mut() {
            if let Some(v) = n.labels.get(&t.key) {
                t.insert(v);
            }
        }
    }
    for c in &snapshot.in_flight {
        add_reqs(&mut tables, &c.requirements);
    }
    keys.tables = tables;
    (keys, dropped)
}

/// One instance type as one NodePool sees it.
#[derive(Debug, Clone)]
pub struct PoolType {
    /// Index into the catalog's types.
    pub it: usize,
    /// Allocatable minus DaemonSet overhead: what pods may use.
    pub room: Vec<i64>,
    /// Raw capacity, charged against limits.
    pub capacity: Vec<i64>,
    /// DaemonSet overhead (requests) on this type.
    pub daemon: Vec<i64>,
    /// Host ports the DaemonSets bind.
    pub daemon_ports: Vec<HostPort>,
    /// Available offerings the NodePool allows, as (zone bit, capacity-type bit, price),
    /// cheapest first.
    pub offers: Vec<(u8, u8, i64)>,
    /// Domains this type can provide, per key.
    pub dom: Masks,
}

impl PoolType {
    /// The cheapest offering allowed by `masks`, if any.
    #[inline]
    pub fn price_under(&self, masks: &Masks) -> Option<i64> {
        self.offers
            .iter()
            .find(|(z, c, _)| {
                masks[ZONE] & (1u64 << z) != 0 && masks[CAPACITY_TYPE] & (1u64 << c) != 0
            })
            .map(|(_, _, p)| *p)
    }

    /// True when the type can provide a domain of every generic key in `care` (a bit per key
    /// slot: the keys the claim's pods constrain).
    #[inline]
    pub fn generic_ok(&self, masks: &Masks, care: u8) -> bool {
        care >> 2 == 0 || (2..MAX_KEYS).all(|k| care & (1 << k) == 0 || self.dom[k] & masks[k] != 0)
    }
}

/// A NodePool prepared for the simulation.
#[derive(Debug, Clone)]
pub struct Pool<'a> {
    pub name: &'a str,
    pub spec: &'a NodePool,
    /// Requirements ∩ template labels ∩ `karpenter.sh/nodepool In [name]`.
    pub reqs: Requirements,
    pub taints: &'a [Taint],
    pub catalog: Option<&'a Catalog>,
    pub well_known: LabelSet,
    /// Compatible types, cheapest (allowed offering) first, then by name.
    pub types: Vec<PoolType>,
    /// Union of the types' domains per key (what a new claim may still choose).
    pub masks: Masks,
    /// Remaining limit per dimension (`i64::MAX` when unlimited) and for the node count.
    pub remaining: Vec<i64>,
    pub nodes_remaining: i64,
    pub has_min_values: bool,
    pub has_prefer_no_schedule: bool,
}

impl<'a> Pool<'a> {
    pub fn instance_type(&self, t: &PoolType) -> Option<&'a InstanceType> {
        self.catalog.and_then(|c| c.types().get(t.it))
    }
}

/// Prepares the NodePools in upstream's order: weight descending, then name descending
/// (core `NodePoolList.OrderByWeight`).
pub fn build_pools<'a>(snapshot: &'a Snapshot, dims: &Dims, keys: &Keys) -> Vec<Pool<'a>> {
    let mut order: Vec<&NodePool> = snapshot.nodepools.iter().collect();
    order.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| b.name.cmp(&a.name)));
    order
        .into_iter()
        .map(|np| build_pool(snapshot, np, dims, keys))
        .collect()
}

fn build_pool<'a>(snapshot: &'a Snapshot, np: &'a NodePool, dims: &Dims, keys: &Keys) -> Pool<'a> {
    let mut reqs = np.requirements.clone();
    for (k, v) in &np.labels {
        reqs.add(Requirement::in_values(k, [v.as_str()]));
    }
    reqs.add(Requirement::in_values(labels::NODEPOOL, [np.name.as_str()]));
    let catalog = snapshot.catalogs.get(&np.node_class).map(|c| c.as_ref());
    let well_known = catalog.map_or_else(LabelSet::core, |c| c.well_known_labels().clone());
    let n = dims.len();
    let mut remaining = vec![i64::MAX; n];
    let usage = dims.dense(&np.usage);
    let mut nodes_remaining = i64::MAX;
    let mut in_flight_capacity = vec![0i64; n];
    let mut in_flight_nodes = 0i64;
    for c in snapshot.in_flight.iter().filter(|c| c.nodepool == np.name) {
        let cap = dims.dense(&c.capacity);
        for (a, b) in in_flight_capacity.iter_mut().zip(cap) {
            *a = a.saturating_add(b);
        }
        in_flight_nodes += 1;
    }
    for (name, limit) in &np.limits.by_resource {
        if name == "nodes" {
            nodes_remaining = limit - np.node_count - in_flight_nodes;
        } else if let Some(i) = dims.index(name) {
            remaining[i] = limit - usage[i] - in_flight_capacity[i];
        }
    }
    let mut pool = Pool {
        name: &np.name,
        spec: np,
        reqs,
        taints: &np.taints,
        catalog,
        well_known,
        types: Vec::new(),
        masks: [0; MAX_KEYS],
        remaining,
        nodes_remaining,
        has_min_values: np.requirements.has_min_values(),
        has_prefer_no_schedule: np
            .taints
            .iter()
            .any(|t| t.effect == tandem_model::taints::TaintEffect::PreferNoSchedule),
    };
    let Some(catalog) = catalog else {
        return pool;
    };
    let pool_masks = keys.masks_of(&pool.reqs);
    let daemons = daemon_candidates(&snapshot.daemonsets, &pool);
    for (it_idx, it) in catalog.types().iter().enumerate() {
        if !it.requirements().intersects(&pool.reqs) {
            continue;
        }
        let mut offers: Vec<(u8, u8, i64)> = it
            .offerings()
            .iter()
            .filter(|o| o.available && o.matches(&pool.reqs))
            .filter_map(|o| {
                let z = keys.tables[ZONE].bit(&o.zone);
                let c = keys.tables[CAPACITY_TYPE].bit(o.capacity_type.as_str());
                (z != 0 && c != 0).then(|| {
                    (
                        u8::try_from(z.trailing_zeros()).unwrap_or(0),
                        u8::try_from(c.trailing_zeros()).unwrap_or(0),
                        o.price.as_picos(),
                    )
                })
            })
            .collect();
        if offers.is_empty() {
            continue;
        }
        offers.sort_by_key(|(z, c, p)| (*p, *z, *c));
        let mut dom = [0u64; MAX_KEYS];
        for (z, c, _) in &offers {
            dom[ZONE] |= 1u64 << z;
            dom[CAPACITY_TYPE] |= 1u64 << c;
        }
        for (k, t) in keys.tables.iter().enumerate().skip(2) {
            if !pool.reqs.contains_key(&t.key) && !it.requirements().contains_key(&t.key) {
                // Nodes of this type do not carry the label: in no domain of this key.
                continue;
            }
            dom[k] = t.allowed(it.requirements().get(&t.key)) & pool_masks[k];
        }
        let mut daemon = vec![0i64; dims.len()];
        let mut daemon_ports = Vec::new();
        for (ds, terms) in &daemons {
            if terms.iter().any(|r| it.requirements().intersects(r)) {
                let req = dims.dense(&ds.shape.effective_requests());
                for (a, b) in daemon.iter_mut().zip(req) {
                    *a = a.saturating_add(b);
                }
                daemon_ports.extend(ds.shape.host_ports());
            }
        }
        let alloc = dims.dense(it.allocatable());
        let room: Vec<i64> = alloc
            .iter()
            .zip(&daemon)
            .map(|(a, d)| a.saturating_sub(*d))
            .collect();
        pool.types.push(PoolType {
            it: it_idx,
            room,
            capacity: dims.dense(it.capacity()),
            daemon,
            daemon_ports,
            offers,
            dom,
        });
    }
    pool.types.sort_by(|a, b| {
        let pa = a.offers.first().map_or(i64::MAX, |o| o.2);
        let pb = b.offers.first().map_or(i64::MAX, |o| o.2);
        pa.cmp(&pb).then_with(|| {
            let na = catalog.types().get(a.it).map_or("", |t| t.name());
            let nb = catalog.types().get(b.it).map_or("", |t| t.name());
            na.cmp(nb)
        })
    });
    for t in &pool.types {
        for k in 0..MAX_KEYS {
            pool.masks[k] |= t.dom[k];
        }
    }
    for (m, allowed) in pool.masks.iter_mut().zip(pool_masks) {
        *m &= allowed;
    }
    pool
}

/// The DaemonSets that tolerate the pool's taints and whose node requirements the pool's
/// template allows (undefined well-known labels allowed), with the OR-terms that survive;
/// the per-type check then only intersects with each type's requirements.
fn daemon_candidates<'a>(
    daemonsets: &'a [DaemonSet],
    pool: &Pool<'_>,
) -> Vec<(&'a DaemonSet, Vec<Requirements>)> {
    daemonsets
        .iter()
        .filter(|ds| tolerates_all(&ds.tolerations, pool.taints).is_ok())
        .filter_map(|ds| {
            let base = Requirements::from_labels(
                ds.node_selector
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            let terms: Vec<Requirements> = if ds.required_affinity.is_empty() {
                vec![base]
            } else {
                ds.required_affinity
                    .iter()
                    .map(|t| base.intersect(t))
                    .collect()
            };
            let ok: Vec<Requirements> = terms
                .into_iter()
                .filter(|r| pool.reqs.compatible_allowing(r, &pool.well_known).is_ok())
                .collect();
            (!ok.is_empty()).then_some((ds, ok))
        })
        .collect()
}

/// The reason no type of `pool` (among `types`) can hold `req`, or exceed limits.
pub fn resource_reason(dims: &Dims, pool: &Pool<'_>, types: &[bool], req: &[i64]) -> Reason {
    let compatible: Vec<&PoolType> = pool
        .types
        .iter()
        .zip(types)
        .filter(|(_, ok)| **ok)
        .map(|(t, _)| t)
        .collect();
    for (i, want) in req.iter().enumerate() {
        let max = compatible.iter().map(|t| t.room[i]).max().unwrap_or(0);
        if *want > max {
            let need = want + compatible.first().map_or(0, |t| t.daemon[i]);
            return Reason::NoInstanceTypeHas {
                resource: dims.name(i).to_owned(),
                amount: dims.show(i, need),
            };
        }
    }
    let holding: Vec<&&PoolType> = compatible
        .iter()
        .filter(|t| fits(req, &vec![0; req.len()], &t.room))
        .collect();
    if holding.is_empty() {
        let parts: Vec<String> = (0..dims.len())
            .filter(|i| req[*i] > 0 && *i != PODS)
            .map(|i| format!("{} {}", dims.show(i, req[i]), dims.name(i)))
            .collect();
        return Reason::NoInstanceTypeHolds(parts.join(" and "));
    }
    if pool.nodes_remaining <= 0 {
        return Reason::Limit {
            resource: "nodes".to_owned(),
            remaining: pool.nodes_remaining.max(0).to_string(),
        };
    }
    for i in 0..dims.len() {
        let min = holding.iter().map(|t| t.capacity[i]).min().unwrap_or(0);
        if min > pool.remaining[i] {
            return Reason::Limit {
                resource: dims.name(i).to_owned(),
                remaining: dims.show(i, pool.remaining[i].max(0)),
            };
        }
    }
    Reason::NoInstanceTypeHolds(String::from("the pod and the claim's other pods"))
}
