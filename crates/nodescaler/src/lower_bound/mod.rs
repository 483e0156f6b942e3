//! A lower bound on the hourly cost of a plan's launches: the LP relaxation of "buy instances
//! of a NodePool's types so that their room covers the pods the plan put in that pool".
//!
//! Per NodePool `P` with launched pods `S_P`:
//!
//! ```text
//!   minimise   Σ_t price_t · x_t                       (t: P's instance types, cheapest
//!                                                        offering P allows)
//!   subject to Σ_t room_t,r · x_t ≥ Σ_{p∈S_P} request_p,r    for every resource r
//!              Σ_t x_t ≥ K_P                               (only with Cuts::ResourcesAndNodes)
//!              x_t ≥ 0
//! ```
//!
//! `room` is allocatable minus the DaemonSet overhead of that type, exactly what the planner
//! packs against. Every plan's launches in `P` are an integral feasible point of this LP (each
//! launch is one instance of a type that holds its pods), so the LP optimum never exceeds the
//! plan's cost for the same pod-to-pool assignment, and the sum over pools bounds the plan.
//! `K_P`, the node-count cut, is the largest set of pods in `S_P` that pairwise exclude each
//! other by required hostname anti-affinity (pods that own a term which selects them all):
//! they need distinct nodes in any plan. It is valid and makes the bound tighter on workloads
//! like the scheduling benchmark, where a fifth of the pods repel each other.
//!
//! Solved with `good_lp` over `microlp`, a pure-Rust simplex, in cores, GiB and dollars so the
//! coefficients stay well scaled.

use std::collections::BTreeMap;

use good_lp::{Expression, Solution, SolverModel, Variable, microlp, variable, variables};
use thiserror::Error;

use tandem_model::labels;

use crate::provisioning::Plan;
use crate::provisioning::prepare::{self, CPU, Dims, MEMORY};
use crate::snapshot::Snapshot;

mod shapes;

/// Which constraints the relaxation includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cuts {
    /// Resource covering only (the textbook bound).
    #[default]
    Resources,
    /// Resource covering plus the hostname anti-affinity node-count cut.
    ResourcesAndNodes,
    /// The shape-assignment relaxation (the private `lower_bound::shapes` module): a pod's resources come from
    /// one type, and a hostname anti-affinity group puts at most one pod on a node. Tighter on
    /// real catalogs, where the covering LP mixes resources from different types.
    Shapes,
}

/// The bound for one NodePool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolBound {
    /// NodePool name.
    pub nodepool: String,
    /// Pods the plan launched in it.
    pub pods: usize,
    /// The node-count cut used (0 with [`Cuts::Resources`]).
    pub min_nodes: usize,
    /// LP optimum in dollars per hour.
    pub usd_per_hour: f64,
}

/// The bound for a whole plan.
#[derive(Debug, Clone, PartialEq)]
pub struct LowerBound {
    /// Sum over NodePools, dollars per hour.
    pub usd_per_hour: f64,
    /// Per NodePool, in the plan's order of first use.
    pub per_pool: Vec<PoolBound>,
}

/// Why the bound could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LowerBoundError {
    /// A launch names a NodePool the snapshot does not have.
    #[error("launch names unknown nodepool {0:?}")]
    UnknownNodePool(String),
    /// The solver failed (infeasible: the pool's types cannot cover the demand).
    #[error("solving the lp for nodepool {nodepool:?} failed: {message}")]
    Solve {
        /// NodePool name.
        nodepool: String,
        /// The solver's message.
        message: String,
    },
}

/// The LP lower bound of the plan's launch cost (see the [module documentation](self)).
pub fn lower_bound(
    plan: &Plan,
    snapshot: &Snapshot,
    cuts: Cuts,
) -> Result<LowerBound, LowerBoundError> {
    let dims = Dims::new(snapshot);
    let (keys, _) = prepare::build_keys(snapshot, &[]);
    let pools = prepare::build_pools(snapshot, &dims, &keys);
    let by_uid: BTreeMap<&str, usize> = snapshot
        .pods
        .iter()
        .enumerate()
        .map(|(i, p)| (p.uid.as_str(), i))
        .collect();
    let mut order: Vec<&str> = Vec::new();
    let mut pods_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for l in &plan.launches {
        if !pods_of.contains_key(l.nodepool.as_str()) {
            order.push(&l.nodepool);
        }
        let entry = pods_of.entry(&l.nodepool).or_default();
        entry.extend(
            l.pods
                .iter()
                .filter_map(|p| by_uid.get(p.uid.as_str()).copied()),
        );
    }
    let mut out = LowerBound {
        usd_per_hour: 0.0,
        per_pool: Vec::new(),
    };
    for name in order {
        let pool = pools
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| LowerBoundError::UnknownNodePool(name.to_owned()))?;
        let pods = pods_of.get(name).map_or(&[][..], Vec::as_slice);
        let min_nodes = match cuts {
            Cuts::Resources => 0,
            Cuts::ResourcesAndNodes | Cuts::Shapes => hostname_exclusive(snapshot, pods),
        };
        let value = match cuts {
            Cuts::Shapes => shapes::pool_bound(snapshot, &dims, &keys, pool, pods),
            Cuts::Resources | Cuts::ResourcesAndNodes => {
                covering(snapshot, &dims, pool, pods, min_nodes)
            }
        }
        .map_err(|message| LowerBoundError::Solve {
            nodepool: name.to_owned(),
            message,
        })?;
        out.usd_per_hour += value;
        out.per_pool.push(PoolBound {
            nodepool: name.to_owned(),
            pods: pods.len(),
            min_nodes,
            usd_per_hour: value,
        });
    }
    Ok(out)
}

/// The covering LP's optimum for `pods` in `pool` (see the [module documentation](self)).
fn covering(
    snapshot: &Snapshot,
    dims: &Dims,
    pool: &prepare::Pool<'_>,
    pods: &[usize],
    min_nodes: usize,
) -> Result<f64, String> {
    let mut demand = vec![0i64; dims.len()];
    for p in pods {
        let r = dims.dense(&snapshot.pods[*p].shape.effective_requests());
        for (d, x) in demand.iter_mut().zip(r) {
            *d = d.saturating_add(x);
        }
    }
    let mut vars = variables!();
    let xs: Vec<(Variable, &prepare::PoolType)> = pool
        .types
        .iter()
        .map(|t| (vars.add(variable().min(0.0)), t))
        .collect();
    let objective: Expression = xs.iter().map(|(x, t)| usd_per_hour(t) * *x).sum();
    let mut model = vars.minimise(objective.clone()).using(microlp);
    for (i, d) in demand.iter().enumerate() {
        if *d <= 0 {
            continue;
        }
        let lhs: Expression = xs
            .iter()
            .map(|(x, t)| solver_units(i, t.room[i].max(0)) * *x)
            .sum();
        model.add_constraint(lhs.geq(solver_units(i, *d)));
    }
    if min_nodes > 0 {
        let count: Expression = xs.iter().map(|(x, _)| *x).sum();
        model.add_constraint(count.geq(min_nodes as f64));
    }
    let solution = model.solve().map_err(|e| e.to_string())?;
    Ok(solution.eval(&objective).max(0.0))
}

/// Resource `i`'s amount `v` in the units the solver sees: cores, GiB, counts (coefficients
/// of similar size keep the simplex stable).
fn solver_units(i: usize, v: i64) -> f64 {
    match i {
        CPU => v as f64 / 1000.0,
        MEMORY => v as f64 / f64::from(1u32 << 30),
        _ => v as f64,
    }
}

/// The type's cheapest allowed offering in dollars per hour (every plan pays at least that).
fn usd_per_hour(t: &prepare::PoolType) -> f64 {
    t.offers.first().map_or(f64::MAX, |o| o.2 as f64 / 1e12)
}

/// The largest set of `pods` that pairwise exclude each other by a required hostname
/// anti-affinity term they all own and that selects them all.
fn hostname_exclusive(snapshot: &Snapshot, pods: &[usize]) -> usize {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for p in pods {
        let pod = &snapshot.pods[*p];
        for term in &pod.pod_anti_affinity {
            let ns_ok = term.namespaces.is_empty() || term.namespaces.contains(&pod.namespace);
            if term.topology_key == labels::HOSTNAME && ns_ok && term.selector.matches(&pod.labels)
            {
                let key = format!(
                    "{:?}|{:?}|{}",
                    term.selector, term.namespaces, pod.namespace
                );
                *counts.entry(key).or_default() += 1;
            }
        }
    }
    counts.values().copied().max().unwrap_or(0)
}

/// Plan cost divided by the resource-only LP bound (1.0 is optimal; the target is ≤ 1.05).
/// An empty plan, or a bound that cannot be computed, gives 1.0 and infinity respectively.
pub fn cost_ratio(plan: &Plan, snapshot: &Snapshot) -> f64 {
    cost_ratio_with(plan, snapshot, Cuts::Resources)
}

/// [`cost_ratio`] with a choice of cuts.
pub fn cost_ratio_with(plan: &Plan, snapshot: &Snapshot, cuts: Cuts) -> f64 {
    let cost = plan.cost().as_f64();
    if plan.launches.is_empty() {
        return 1.0;
    }
    match lower_bound(plan, snapshot, cuts) {
        Ok(b) if b.usd_per_hour > 0.0 => cost / b.usd_per_hour,
        _ => f64::INFINITY,
    }
}
