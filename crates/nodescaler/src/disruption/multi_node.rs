//! Multi-node consolidation: remove many underutilized nodes in one command (core
//! `multinodeconsolidation.go`, reference §5.6).
//!
//! Upstream sorts the candidates, keeps the first 100 and binary-searches the longest prefix
//! whose pods the scheduler can place on the other nodes plus at most one cheaper node. That
//! needs ~7 simulations, but it only ever removes a *prefix* of one order, at most 100 nodes, so
//! a single hard-to-move node early in the order caps the whole pass.
//!
//! Here the delete search is a greedy drain over every candidate, bounded and deterministic:
//!
//! 1. **Pack.** Candidates are taken in one order (least utilized, largest price per
//!    requested CPU, or most expensive; each drain is cheap, so all three run and the set that
//!    saves most wins). Each one's pods, largest first, are placed best-fit on CPU into the free
//!    room of the nodes that stay (an ordered index of free CPU; each pod scans at most
//!    [`SCAN`] entries), within the pool's `Underutilized` budget. A candidate whose pods all
//!    fit joins the removal set; otherwise its placements are undone. A node that took pods
//!    may still go later, carrying them along. Cost: O(pods × log nodes) per order, no
//!    scheduler call.
//! 2. **Verify.** The whole set is simulated once with the real scheduler (taints, affinity,
//!    topology, ports). Nodes whose pods it cannot place without a launch leave the set and the
//!    rest is simulated again, until it holds (at most [`super::Options::max_simulations`]).
//!    If the scheduler finds one cheaper replacement for the set, that is accepted too.
//! 3. **Replace.** When no delete of two or more nodes holds, upstream's prefix binary search
//!    looks for N nodes → 1 cheaper node, over the first
//!    [`super::Options::multi_node_replace_candidates`] in upstream's order; a prefix is only
//!    simulated when some instance type holding all its pods costs less than it does.

use std::collections::BTreeSet;

use super::command::{Disrupt, MethodKind, Reason};
use super::single_node::{cheapest_holder, command, eligible, wants};
use super::{Budgets, Candidate, Context, Method, MultiNodeSearch, Pass, simulate};
use crate::snapshot::{BudgetReason, NodeState, Snapshot};

/// Entries of the free-room index a pod looks at before giving up.
pub const SCAN: usize = 1024;

/// The multi-node consolidation method.
#[derive(Debug, Clone, Copy)]
pub struct MultiNode;

/// Free room (CPU, memory, pod slots) of every Ready node, indexed by free CPU for best fit.
#[derive(Debug, Clone)]
pub struct Rooms {
    free: Vec<[i64; 3]>,
    index: BTreeSet<(i64, usize)>,
    /// Pods moved onto each node by this pass: they move again if that node goes too.
    moved_in: Vec<Vec<[i64; 3]>>,
}

impl Rooms {
    /// The free room of every Ready node of the snapshot.
    pub fn new(snapshot: &Snapshot) -> Self {
        let mut free = Vec::with_capacity(snapshot.nodes.len());
        let mut index = BTreeSet::new();
        for (i, n) in snapshot.nodes.iter().enumerate() {
            let used = n.pods.iter().fold([0i64; 3], |acc, p| {
                [
                    acc[0] + p.requests.cpu.0,
                    acc[1] + p.requests.memory.0,
                    acc[2] + 1,
                ]
            });
            let slots = if n.allocatable.pods > 0 {
                n.allocatable.pods
            } else {
                i64::MAX / 2
            };
            let f = [
                n.allocatable.cpu.0 - used[0],
                n.allocatable.memory.0 - used[1],
                slots - used[2],
            ];
            free.push(f);
            if n.state == NodeState::Ready {
                index.insert((f[0], i));
            }
        }
        let moved_in = vec![Vec::new(); free.len()];
        Rooms {
            free,
            index,
            moved_in,
        }
    }

    /// Best fit on CPU among the first [`SCAN`] nodes with enough CPU.
    fn place(&mut self, req: [i64; 3]) -> Option<usize> {
        let i = self
            .index
            .range((req[0], 0)..)
            .take(SCAN)
            .map(|(_, i)| *i)
            .find(|i| self.free[*i][1] >= req[1] && self.free[*i][2] >= req[2])?;
        self.adjust(i, req, -1);
        Some(i)
    }

    fn adjust(&mut self, i: usize, req: [i64; 3], sign: i64) {
        let present = self.index.remove(&(self.free[i][0], i));
        for (f, r) in self.free[i].iter_mut().zip(req) {
            *f += sign * r;
        }
        if present {
            self.index.insert((self.free[i][0], i));
        }
    }

    /// The pods that would move if node `c` went: its reschedulable pods plus those this pass
    /// already moved onto it, largest first.
    fn load(&self, c: &Candidate<'_>) -> Vec<[i64; 3]> {
        let mut reqs: Vec<[i64; 3]> = c
            .reschedulable
            .iter()
            .map(|p| [p.requests.cpu.0, p.requests.memory.0, 1])
            .chain(self.moved_in[c.index].iter().copied())
            .collect();
        reqs.sort_by(|a, b| b.cmp(a));
        reqs
    }

    /// Places the candidate's load in the other nodes' room; on success the room is taken and
    /// the candidate is out of the index, else nothing changes.
    fn drain(&mut self, c: &Candidate<'_>) -> Option<Vec<(usize, [i64; 3])>> {
        let was = self.index.remove(&(self.free[c.index][0], c.index));
        let mut placed = Vec::new();
        for r in self.load(c) {
            if let Some(i) = self.place(r) {
                placed.push((i, r));
            } else {
                self.undo(c, was, &placed);
                return None;
            }
        }
        Some(placed)
    }

    fn undo(&mut self, c: &Candidate<'_>, was: bool, placed: &[(usize, [i64; 3])]) {
        for (i, r) in placed {
            self.adjust(*i, *r, 1);
        }
        if was {
            self.index.insert((self.free[c.index][0], c.index));
        }
    }

    /// Whether the candidate's pods fit in the other nodes' room (nothing changes).
    pub fn fits_elsewhere(&mut self, c: &Candidate<'_>) -> bool {
        let was = self.index.contains(&(self.free[c.index][0], c.index));
        let Some(placed) = self.drain(c) else {
            return false;
        };
        self.undo(c, was, &placed);
        true
    }
}

/// The orders the greedy drain tries; the set that saves most wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Least utilized first (the larger of CPU and memory requested over allocatable).
    Utilization,
    /// Largest price per requested millicore first.
    PricePerCpu,
    /// Most expensive first.
    Price,
}

fn order_key(c: &Candidate<'_>, order: Order) -> f64 {
    let (cpu, mem) = c.reschedulable.iter().fold((0i64, 0i64), |(a, b), p| {
        (a + p.requests.cpu.0, b + p.requests.memory.0)
    });
    let price = c.price.map_or(0.0, |p| p.as_f64());
    match order {
        Order::Utilization => {
            let a = &c.node.allocatable;
            -(cpu as f64 / a.cpu.0.max(1) as f64).max(mem as f64 / a.memory.0.max(1) as f64)
        }
        Order::PricePerCpu => price / (1.0 + cpu as f64),
        Order::Price => price,
    }
}

/// Step 1: the greedy removal set, in the order it was built: one drain per `Order`, the
/// one that saves most (then removes most, then the first order) wins.
pub fn pack<'c>(
    ctx: &Context<'_>,
    cands: &[&'c Candidate<'c>],
    budgets: &Budgets,
) -> Vec<&'c Candidate<'c>> {
    let mut best: Vec<&Candidate<'_>> = Vec::new();
    let mut best_key = (0i64, 0usize);
    for order in [Order::Utilization, Order::PricePerCpu, Order::Price] {
        let set = pack_in(ctx, cands, budgets, order);
        let key = (simulate::price_of(&set).as_picos(), set.len());
        if key > best_key {
            best_key = key;
            best = set;
        }
    }
    best
}

fn pack_in<'c>(
    ctx: &Context<'_>,
    cands: &[&'c Candidate<'c>],
    budgets: &Budgets,
    by: Order,
) -> Vec<&'c Candidate<'c>> {
    let mut order: Vec<(f64, &Candidate<'_>)> =
        cands.iter().map(|c| (order_key(c, by), *c)).collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.name().cmp(b.1.name())));
    let mut rooms = Rooms::new(ctx.snapshot);
    let mut budgets = budgets.clone();
    let mut set = Vec::new();
    for (_, c) in order {
        if budgets.remaining(&c.nodepool.name, BudgetReason::Underutilized) == 0 {
            continue;
        }
        if let Some(placed) = rooms.drain(c) {
            rooms.moved_in[c.index].clear();
            for (i, r) in placed {
                rooms.moved_in[i].push(r);
            }
            budgets.take(&c.nodepool.name, BudgetReason::Underutilized);
            set.push(c);
        }
    }
    set
}

impl Method for MultiNode {
    fn kind(&self) -> MethodKind {
        MethodKind::MultiNode
    }

    fn reason(&self) -> Reason {
        Reason::Underutilized
    }

    fn should_disrupt(&self, c: &Candidate<'_>, ctx: &Context<'_>) -> bool {
        wants(c, ctx)
    }

    fn compute(
        &self,
        ctx: &Context<'_>,
        budgets: &mut Budgets,
        pass: &mut Pass,
    ) -> Option<Disrupt> {
        let cands = eligible(ctx, budgets, pass);
        if cands.len() < 2 {
            return None;
        }
        // 2. Verify the greedy set, shrinking it to what the scheduler confirms.
        let mut set = match ctx.options.multi_node_search {
            MultiNodeSearch::Greedy => pack(ctx, &cands, budgets),
            MultiNodeSearch::PrefixBinarySearch => Vec::new(),
        };
        while set.len() >= 2 && pass.simulations < ctx.options.max_simulations {
            pass.simulations += 1;
            let indexes: Vec<usize> = set.iter().map(|c| c.index).collect();
            let drop: BTreeSet<String> = match simulate::simulate(ctx, &indexes) {
                Ok(moved) => {
                    match simulate::consolidate(ctx, &set, moved.replacements, ctx.options) {
                        Ok(replacements) => {
                            return Some(take(ctx, budgets, &set, replacements, moved.nominations));
                        }
                        Err(_) => moved.launched_from,
                    }
                }
                Err(stuck) => stuck.nodes,
            };
            let before = set.len();
            set.retain(|c| !drop.contains(c.name()));
            if set.len() == before {
                // Nothing to blame: halve, keeping the easiest half.
                set.truncate(before / 2);
            }
        }
        // 3. Upstream's search for N nodes → 1 cheaper node over a prefix of its order.
        let mut prefix: Vec<&Candidate<'_>> = Vec::new();
        let mut room = budgets.clone();
        for c in &cands {
            if prefix.len() >= ctx.options.multi_node_replace_candidates {
                break;
            }
            if room.take(&c.nodepool.name, BudgetReason::Underutilized) {
                prefix.push(c);
            }
        }
        let (mut lo, mut hi) = (2usize, prefix.len());
        let mut best = None;
        while lo <= hi && pass.simulations < ctx.options.max_simulations {
            let mid = (lo + hi) / 2;
            let chosen = &prefix[..mid];
            if ctx.options.multi_node_search == MultiNodeSearch::Greedy
                && cheapest_holder(chosen).is_none_or(|p| p >= simulate::price_of(chosen))
            {
                // The greedy drain already looked for deletes; a replace needs one node that
                // holds every pod for less, and no instance type does.
                hi = mid - 1;
                continue;
            }
            pass.simulations += 1;
            let indexes: Vec<usize> = chosen.iter().map(|c| c.index).collect();
            let ok = simulate::simulate(ctx, &indexes)
                .map_err(|s| s.message)
                .and_then(|moved| {
                    simulate::consolidate(ctx, chosen, moved.replacements, ctx.options)
                        .map(|launches| (launches, moved.nominations))
                });
            match ok {
                Ok(found) => {
                    best = Some((mid, found));
                    lo = mid + 1;
                }
                Err(_) => hi = mid - 1,
            }
        }
        best.map(|(n, (replacements, nominations))| {
            take(ctx, budgets, &prefix[..n], replacements, nominations)
        })
    }
}

fn take(
    ctx: &Context<'_>,
    budgets: &mut Budgets,
    set: &[&Candidate<'_>],
    replacements: Vec<crate::provisioning::Launch>,
    nominations: Vec<crate::provisioning::Nominate>,
) -> Disrupt {
    for c in set {
        budgets.take(&c.nodepool.name, BudgetReason::Underutilized);
    }
    command(ctx, set, replacements, nominations, MethodKind::MultiNode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disruption::testing::{cluster, node, workload_pod};
    use crate::disruption::{Options, decide, validate};
    use crate::snapshot::{Budget, BudgetNodes, PoolDisruption};

    fn all_at_once() -> PoolDisruption {
        PoolDisruption {
            budgets: vec![Budget::nodes(BudgetNodes::Percent(100))],
            ..PoolDisruption::default()
        }
    }

    #[test]
    fn several_lightly_loaded_nodes_are_deleted_together() {
        let mut s = cluster().pool_disruption("default", all_at_once());
        s = s.node(
            node("full", "m5.2xlarge")
                .pod(workload_pod("f0", 3000))
                .pod(workload_pod("f1", 1000)),
        );
        for i in 0..4 {
            s = s.node(
                node(&format!("light{i}"), "m5.large").pod(workload_pod(&format!("p{i}"), 500)),
            );
        }
        let opts = Options::default();
        let cmd = decide(&s, 0, &opts).command.unwrap();
        assert_eq!(cmd.method, MethodKind::MultiNode);
        assert!(cmd.is_delete());
        assert!(cmd.candidates.len() >= 3, "{:?}", cmd.candidates);
        assert!(cmd.savings() > 0);
        assert_eq!(validate(&cmd, &s, 15_000, &opts), Ok(()));
    }

    #[test]
    fn several_nodes_are_replaced_by_one_cheaper_node() {
        let mut s = cluster().pool_disruption("default", all_at_once());
        for i in 0..3 {
            s = s.node(
                node(&format!("n{i}"), "m5.xlarge")
                    .pod(workload_pod(&format!("a{i}"), 1500))
                    .pod(workload_pod(&format!("b{i}"), 1500)),
            );
        }
        let d = decide(&s, 0, &Options::default());
        let cmd = d.command.unwrap_or_else(|| panic!("{:?}", d.diagnostics));
        assert_eq!(cmd.reason, Reason::Underutilized);
        assert!(cmd.cost_after < cmd.cost_before, "{cmd:?}");
        assert!(cmd.replacements.len() <= 1);
    }

    #[test]
    fn budget_caps_the_removal_set() {
        let mut s = cluster().pool_disruption(
            "default",
            PoolDisruption {
                budgets: vec![Budget::nodes(BudgetNodes::Count(2))],
                ..PoolDisruption::default()
            },
        );
        s = s.node(node("full", "m5.4xlarge").pod(workload_pod("f", 1000)));
        for i in 0..6 {
            s = s.node(node(&format!("l{i}"), "m5.large").pod(workload_pod(&format!("p{i}"), 200)));
        }
        let cmd = decide(&s, 0, &Options::default()).command.unwrap();
        assert_eq!(cmd.candidates.len(), 2);
    }
}
