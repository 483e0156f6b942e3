//! The shape-assignment relaxation: a tighter lower bound than buying each resource apart.
//!
//! The covering LP of the [parent module](super) may buy CPU from one instance type and memory
//! from another (on AWS: CPU from t4g.nanos, memory from r-types), which no plan can do: a pod
//! takes its CPU and its memory from the *same* node. Here pods are grouped into shapes `s`
//! (equal requests, node requirements and hostname anti-affinity groups; `n_s` pods each) and
//! assigned to instance types fractionally:
//!
//! ```text
//!   minimise   Σ_t price_t · x_t
//!   subject to Σ_t y_s,t ≥ n_s                         for every shape s
//!              Σ_s req_s,r · y_s,t ≤ room_t,r · x_t    for every type t and resource r
//!              Σ_{s ∈ g} y_s,t ≤ x_t                   for every type t and anti-affinity group g
//!              Σ_s u_k(req_s,r / room_t,r) · y_s,t ≤ x_t   for every type t, resource r, k = 1…3
//!              Σ_t x_t ≥ 1
//!              x, y ≥ 0,  y_s,t only where s runs on t (requirements, offerings, room)
//! ```
//!
//! Every plan is a feasible point (`y_s,t` = pods of shape `s` on launches of type `t`, `x_t`
//! = those launches; a group's pods repel each other by hostname, so at most one per node),
//! and the price of `t` is its cheapest allowed offering, so the optimum never exceeds the
//! plan's cost. Types another type dominates (no dearer, at least as roomy in every resource,
//! usable by every shape that can use the first) are dropped first: swapping each of their
//! instances for the dominating type keeps a plan feasible at no more cost, so the optimum is
//! unchanged and the LP stays small.
//!
//! The `u_k` rows are cuts from dual feasible functions (Fekete and Schepers): whenever sizes
//! `x_i` sum to at most 1, so do the `u_k(x_i)` — so summed over a type's nodes they hold for
//! every plan. They charge a pod for the room it makes useless: two pods each over half a
//! node's CPU never share it (`u_1` rounds them to a whole node), a pod of 1,500m on a
//! 1,930m node leaves room no 1,000m pod can use. Without them the relaxation fills every
//! node to the last millicore, which small nodes (AWS's 2-vCPU burstable types, priced by
//! their memory) never allow. When pods come in too many distinct request vectors,
//! requests are rounded *down* to a few significant bits until the shapes fit a budget:
//! smaller requests only loosen the LP, so it stays a bound.

use std::collections::BTreeMap;

use good_lp::{Expression, Solution, SolverModel, Variable, microlp, variable, variables};

use tandem_model::labels;
use tandem_model::requirements::{Requirement, Requirements};

use super::{solver_units, usd_per_hour};
use crate::provisioning::prepare::{Dims, Keys, Pool};
use crate::snapshot::{PendingPod, Snapshot};

/// At most this many shapes go to the solver; more are merged by rounding requests down.
const MAX_SHAPES: usize = 160;

/// One group of interchangeable pods.
#[derive(Debug, Clone)]
struct Shape {
    req: Vec<i64>,
    sig: usize,
    groups: Vec<usize>,
    count: usize,
}

/// The optimum of the shape-assignment LP for `pods` (indexes into the snapshot) in `pool`,
/// in dollars per hour, or the solver's message.
pub(super) fn pool_bound(
    snapshot: &Snapshot,
    dims: &Dims,
    keys: &Keys,
    pool: &Pool<'_>,
    pods: &[usize],
) -> Result<f64, String> {
    if pods.is_empty() {
        return Ok(0.0);
    }
    let mut sigs = Signatures::default();
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    let mut members: Vec<(Vec<i64>, usize, Vec<usize>)> = Vec::with_capacity(pods.len());
    for p in pods {
        let pod = &snapshot.pods[*p];
        let req = dims.dense(&pod.shape.effective_requests());
        let sig = sigs.of(pod, pool, keys);
        let mut own: Vec<usize> = hostname_groups(pod)
            .map(|g| {
                let next = groups.len();
                *groups.entry(g).or_insert(next)
            })
            .collect();
        own.sort_unstable();
        own.dedup();
        members.push((req, sig, own));
    }
    let shapes = shapes_within_budget(&members);
    let types: Vec<usize> = useful_types(pool, &shapes, &sigs.types);
    solve(pool, &shapes, &sigs.types, &types, groups.len())
}

/// Pods' node requirements, each distinct set mapped to the pool's types it allows.
#[derive(Default)]
struct Signatures {
    index: BTreeMap<String, usize>,
    types: Vec<Vec<bool>>,
}

impl Signatures {
    /// The signature of `pod`: its nodeSelector, volume zones and required node-affinity terms
    /// (any of them), without preferred terms, which the planner may drop.
    fn of(&mut self, pod: &PendingPod, pool: &Pool<'_>, keys: &Keys) -> usize {
        let mut base = Requirements::from_labels(
            pod.node_selector
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if !pod.volume_zones.is_empty() {
            base.add(Requirement::in_values(
                labels::ZONE,
                pod.volume_zones.iter().map(String::as_str),
            ));
        }
        let terms: Vec<Requirements> = if pod.required_affinity.is_empty() {
            vec![base]
        } else {
            pod.required_affinity
                .iter()
                .map(|t| {
                    let mut r = base.clone();
                    r.add_all(t);
                    r
                })
                .collect()
        };
        let key = format!("{terms:?}");
        if let Some(i) = self.index.get(&key) {
            return *i;
        }
        let allowed = pool
            .types
            .iter()
            .map(|t| {
                terms.iter().any(|reqs| {
                    pool.instance_type(t)
                        .is_some_and(|it| it.requirements().intersects(reqs))
                        && t.price_under(&keys.masks_of(reqs)).is_some()
                })
            })
            .collect();
        self.types.push(allowed);
        self.index.insert(key, self.types.len() - 1);
        self.types.len() - 1
    }
}

/// Keys of the required hostname anti-affinity terms `pod` owns that select `pod` itself: the
/// pods sharing a key pairwise exclude each other from a node.
fn hostname_groups(pod: &PendingPod) -> impl Iterator<Item = String> + '_ {
    pod.pod_anti_affinity.iter().filter_map(move |term| {
        let ns_ok = term.namespaces.is_empty() || term.namespaces.contains(&pod.namespace);
        (term.topology_key == labels::HOSTNAME && ns_ok && term.selector.matches(&pod.labels)).then(
            || {
                format!(
                    "{:?}|{:?}|{}",
                    term.selector, term.namespaces, pod.namespace
                )
            },
        )
    })
}

/// Pods merged into shapes: exact requests when that gives at most [`MAX_SHAPES`], otherwise
/// requests rounded down to ever fewer significant bits.
fn shapes_within_budget(members: &[(Vec<i64>, usize, Vec<usize>)]) -> Vec<Shape> {
    let mut shapes = Vec::new();
    for bits in [None, Some(4), Some(3), Some(2), Some(1)] {
        let mut merged: BTreeMap<(Vec<i64>, usize, Vec<usize>), usize> = BTreeMap::new();
        for (req, sig, groups) in members {
            let req = match bits {
                None => req.clone(),
                Some(b) => req.iter().map(|v| round_down(*v, b)).collect(),
            };
            *merged.entry((req, *sig, groups.clone())).or_default() += 1;
        }
        shapes = merged
            .into_iter()
            .map(|((req, sig, groups), count)| Shape {
                req,
                sig,
                groups,
                count,
            })
            .collect();
        if shapes.len() <= MAX_SHAPES {
            break;
        }
    }
    shapes
}

/// `v` rounded down to its `bits` most significant bits (never up: a smaller request only
/// loosens the relaxation).
fn round_down(v: i64, bits: u32) -> i64 {
    if v <= 0 {
        return v.max(0);
    }
    let width = 64 - v.leading_zeros();
    if width <= bits {
        return v;
    }
    let drop = width - bits;
    (v >> drop) << drop
}

/// Whether shape `s` can run on pool type `t`.
fn runs_on(pool: &Pool<'_>, sig_types: &[Vec<bool>], s: &Shape, t: usize) -> bool {
    sig_types[s.sig][t] && s.req.iter().zip(&pool.types[t].room).all(|(r, c)| r <= c)
}

/// The pool's types some shape can run on and no other type dominates.
fn useful_types(pool: &Pool<'_>, shapes: &[Shape], sig_types: &[Vec<bool>]) -> Vec<usize> {
    let compat: Vec<Vec<bool>> = (0..pool.types.len())
        .map(|t| {
            shapes
                .iter()
                .map(|s| runs_on(pool, sig_types, s, t))
                .collect()
        })
        .collect();
    let price = |t: usize| pool.types[t].offers.first().map(|o| o.2);
    let candidates: Vec<usize> = (0..pool.types.len())
        .filter(|t| price(*t).is_some() && compat[*t].iter().any(|c| *c))
        .collect();
    let dominates = |u: usize, t: usize| {
        let (pu, pt) = (price(u), price(t));
        let roomier = pool.types[u]
            .room
            .iter()
            .zip(&pool.types[t].room)
            .all(|(a, b)| a >= b);
        let serves = compat[u].iter().zip(&compat[t]).all(|(a, b)| *a || !*b);
        if !(pu <= pt && roomier && serves) {
            return false;
        }
        // Equal in every respect: the lower index stays.
        let equal = pu == pt && pool.types[u].room == pool.types[t].room && compat[u] == compat[t];
        !equal || u < t
    };
    candidates
        .iter()
        .copied()
        .filter(|t| !candidates.iter().any(|u| *u != *t && dominates(*u, *t)))
        .collect()
}

/// Orders `k` of the dual feasible functions whose cuts the LP gets (1: over a half, 2: over a
/// third, 3: over a quarter of a node). Higher orders charge less than the plain row.
const DFF_ORDERS: i64 = 3;

/// Fekete and Schepers' dual feasible function `u_k` of the size `req / room`, exactly, as a
/// fraction `(numerator, denominator)`: the size itself when `(k + 1) · size` is whole, else
/// `⌊(k + 1) · size⌋ / k`. Any sizes summing to at most 1 have `u_k` values summing to at
/// most 1, which makes `Σ u_k · y ≤ x` valid for every plan. `None` for an empty request or
/// room (charged nothing).
fn dff_fraction(k: i64, req: i64, room: i64) -> Option<(i128, i128)> {
    if req <= 0 || room <= 0 {
        return None;
    }
    let scaled = i128::from(k + 1) * i128::from(req);
    let room = i128::from(room);
    Some(if scaled % room == 0 {
        (i128::from(req), room)
    } else {
        (scaled / room, i128::from(k))
    })
}

/// `u_k(req / room)` as the solver's coefficient.
fn dff(k: i64, req: i64, room: i64) -> f64 {
    dff_fraction(k, req, room).map_or(0.0, |(num, den)| num as f64 / den as f64)
}

/// Whether `u_k(req / room)` exceeds `req / room` (exactly, in integers), i.e. the cut charges
/// the pod more than the resource row does.
fn dff_exceeds_share(k: i64, req: i64, room: i64) -> bool {
    dff_fraction(k, req, room)
        .is_some_and(|(num, den)| num * i128::from(room) > i128::from(req) * den)
}

/// Builds and solves the LP over the kept types.
fn solve(
    pool: &Pool<'_>,
    shapes: &[Shape],
    sig_types: &[Vec<bool>],
    types: &[usize],
    groups: usize,
) -> Result<f64, String> {
    let mut vars = variables!();
    let xs: Vec<Variable> = types
        .iter()
        .map(|_| vars.add(variable().min(0.0)))
        .collect();
    // y[s] = (type position, variable) for every type the shape runs on.
    let ys: Vec<Vec<(usize, Variable)>> = shapes
        .iter()
        .map(|s| {
            types
                .iter()
                .enumerate()
                .filter(|(_, t)| runs_on(pool, sig_types, s, **t))
                .map(|(k, _)| (k, vars.add(variable().min(0.0))))
                .collect()
        })
        .collect();
    if let Some(s) = ys.iter().position(Vec::is_empty) {
        return Err(format!(
            "{} pods of one shape fit no instance type of the pool",
            shapes[s].count
        ));
    }
    let price = |t: usize| usd_per_hour(&pool.types[t]);
    let objective: Expression = xs.iter().zip(types).map(|(x, t)| price(*t) * *x).sum();
    let mut model = vars.minimise(objective.clone()).using(microlp);
    for (s, row) in shapes.iter().zip(&ys) {
        let placed: Expression = row.iter().map(|(_, y)| *y).sum();
        model.add_constraint(placed.geq(s.count as f64));
    }
    let dims = pool.types.first().map_or(0, |t| t.room.len());
    for (k, t) in types.iter().enumerate() {
        // The shapes that may run on this type, with their variable, found once per type.
        let on_t: Vec<(&Shape, Variable)> = shapes
            .iter()
            .zip(&ys)
            .filter_map(|(s, row)| row.iter().find(|(j, _)| *j == k).map(|(_, y)| (s, *y)))
            .collect();
        for r in 0..dims {
            if on_t.iter().all(|(s, _)| s.req[r] <= 0) {
                continue;
            }
            let used: Expression = on_t
                .iter()
                .map(|(s, y)| solver_units(r, s.req[r]) * *y)
                .sum();
            let room = solver_units(r, pool.types[*t].room[r].max(0)) * xs[k];
            model.add_constraint(used.leq(room));
            let cap = pool.types[*t].room[r];
            for order in 1..=DFF_ORDERS {
                // Only a row that charges some shape more than its plain share adds anything.
                if !on_t
                    .iter()
                    .any(|(s, _)| dff_exceeds_share(order, s.req[r], cap))
                {
                    continue;
                }
                let charged: Expression = on_t
                    .iter()
                    .map(|(s, y)| dff(order, s.req[r], cap) * *y)
                    .sum();
                model.add_constraint(charged.leq(xs[k]));
            }
        }
        for g in 0..groups {
            let members: Vec<Variable> = on_t
                .iter()
                .filter(|(s, _)| s.groups.contains(&g))
                .map(|(_, y)| *y)
                .collect();
            if members.is_empty() {
                continue;
            }
            let sum: Expression = members.into_iter().sum();
            model.add_constraint(sum.leq(xs[k]));
        }
    }
    // At least one node: without it, one small pod would be charged a fraction of a type
    // holding several.
    let count: Expression = xs.iter().copied().sum();
    model.add_constraint(count.geq(1.0));
    let solution = model.solve().map_err(|e| e.to_string())?;
    Ok(solution.eval(&objective).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::{dff, dff_exceeds_share, round_down};
    use proptest::prelude::*;

    #[test]
    fn dff_rounds_big_items_up_and_small_ones_away() {
        // u_1: over half a node is a whole node, under half is nothing, a half stays a half.
        assert_eq!(dff(1, 1500, 1930), 1.0);
        assert_eq!(dff(1, 900, 1930), 0.0);
        assert_eq!(dff(1, 965, 1930), 0.5);
        // u_2: between a third and two thirds counts a half.
        assert_eq!(dff(2, 1000, 1930), 0.5);
        assert!(dff_exceeds_share(1, 1500, 1930));
        assert!(!dff_exceeds_share(1, 900, 1930));
        assert!(!dff_exceeds_share(3, 0, 1930));
        assert_eq!(dff(2, 5, 0), 0.0);
    }

    proptest! {
        /// The property the cuts rest on: items that fit one node together have `u_k` values
        /// summing to at most 1.
        #[test]
        fn dff_of_items_sharing_a_node_sums_to_at_most_one(
            room in 1i64..10_000,
            parts in proptest::collection::vec(1i64..10_000, 1..8),
            k in 1i64..=3,
        ) {
            // Scale the parts down until they fit the room together.
            let total: i64 = parts.iter().sum();
            let items: Vec<i64> = parts.iter().map(|p| p * room / total.max(room)).collect();
            prop_assume!(items.iter().sum::<i64>() <= room);
            let charged: f64 = items.iter().map(|i| dff(k, *i, room)).sum();
            prop_assert!(charged <= 1.0 + 1e-9, "{items:?} in {room}: {charged}");
        }
    }

    #[test]
    fn rounding_keeps_the_top_bits_and_never_rounds_up() {
        assert_eq!(round_down(0b1011_0111, 3), 0b1010_0000);
        assert_eq!(round_down(5, 3), 5);
        assert_eq!(round_down(1, 1), 1);
        assert_eq!(round_down(-3, 2), 0);
        for v in [1, 7, 100, 250, 1_073_741_824, 4_294_967_295] {
            for b in 1..5 {
                let r = round_down(v, b);
                assert!(r <= v && r > v / 2, "{v} {b} {r}");
            }
        }
    }
}
