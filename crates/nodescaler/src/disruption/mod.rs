//! Disruption: which nodes to remove or replace, and why — Karpenter's disruption controller
//! as a pure function of a [`Snapshot`] and `now`.
//!
//! ```text
//!   Snapshot + now ──► candidates (Ready, managed, not nominated; blocks recorded)
//!                 ──► budgets (per NodePool × reason, cron windows in UTC)
//!                 ──► methods, in order; the first that yields a command wins the pass:
//!                       expiration   forceful, no budgets          reason Expired
//!                       emptiness    graceful, one delete          reason Empty
//!                       drift        eventual, replace             reason Drifted
//!                       multi_node   graceful, delete or replace   reason Underutilized
//!                       single_node  graceful, delete or replace   reason Underutilized
//!                 ──► Decision { command: Option<Disrupt>, diagnostics, simulations }
//! ```
//!
//! Every method is a [`Method`]: a predicate over one candidate and a `compute` over all of
//! them, returning data. Nothing here waits: a command carries `revalidate_after_ms`, and the
//! executor calls [`validate`] on a fresh snapshot after that delay (upstream sleeps inside the
//! method). Consolidation re-runs [`crate::provisioning::plan`] on the candidates' pods against
//! the remaining nodes; where we depart from upstream (multi-node search), the module says so.

pub mod budgets;
pub mod candidates;
pub mod command;
pub mod coordination;
pub mod drift;
pub mod emptiness;
pub mod expiration;
pub mod interruption;
pub mod multi_node;
pub mod settled;
pub mod simulate;
pub mod single_node;

#[cfg(test)]
pub(crate) mod testing;

pub use budgets::Budgets;
pub use candidates::Candidate;
pub use command::{Decision, Diagnostic, Disrupt, MethodKind, Reason, Subject, TerminationMode};
pub use settled::Settled;

use crate::provisioning;
use crate::snapshot::Snapshot;

/// The annotation that blocks voluntary disruption of a pod or node.
pub const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";

/// Knobs of a disruption pass; every default cites its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How replacements are planned. Packing defaults to upstream's
    /// [`provisioning::Packing::FewestPods`]: it grows one claim for the moved pods, where
    /// cheapest-fit may open two small ones, and consolidation only accepts one replacement.
    pub provisioning: provisioning::Options,
    /// Delay before a consolidation or emptiness command is re-validated: 15 s (core
    /// `commandValidationDelay`).
    pub validation_delay_ms: i64,
    /// Feature gate `SpotToSpotConsolidation` (upstream default off).
    pub spot_to_spot: bool,
    /// Cheaper options a single-node spot-to-spot replacement needs: 15 (core
    /// `MinInstanceTypesForSpotToSpotConsolidation`).
    pub spot_to_spot_min_options: usize,
    /// Age after which a node whose instance type left the catalog is drifted: 1 h (core
    /// `InstanceTypeNotFound` check).
    pub instance_type_drift_after_ms: i64,
    /// Scheduling simulations a pass may run; the work budget that replaces upstream's wall
    /// clock timeouts (1 min multi-node, 3 min single-node), so the same input gives the same
    /// decision.
    pub max_simulations: usize,
    /// Candidates multi-node's replace search considers (upstream caps the whole method at 100).
    pub multi_node_replace_candidates: usize,
    /// How multi-node consolidation searches.
    pub multi_node_search: MultiNodeSearch,
}

/// How multi-node consolidation looks for nodes to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MultiNodeSearch {
    /// Greedy drain over every candidate, verified by the scheduler, then upstream's prefix
    /// search for a replace ([`multi_node`]).
    #[default]
    Greedy,
    /// Upstream's only search: binary search on a prefix of at most
    /// [`Options::multi_node_replace_candidates`] candidates (kept for comparison).
    PrefixBinarySearch,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            provisioning: provisioning::Options {
                packing: provisioning::Packing::FewestPods,
                ..provisioning::Options::default()
            },
            validation_delay_ms: 15_000,
            spot_to_spot: false,
            spot_to_spot_min_options: 15,
            instance_type_drift_after_ms: 3_600_000,
            max_simulations: 64,
            multi_node_replace_candidates: 100,
            multi_node_search: MultiNodeSearch::Greedy,
        }
    }
}

/// What every method reads.
#[derive(Debug)]
pub struct Context<'a> {
    /// The snapshot.
    pub snapshot: &'a Snapshot,
    /// Now, ms since the epoch.
    pub now_ms: i64,
    /// Options.
    pub options: &'a Options,
    /// Every candidate, in node order.
    pub candidates: Vec<Candidate<'a>>,
}

/// What methods add to a pass besides a command.
#[derive(Debug, Default)]
pub struct Pass {
    /// Diagnostics.
    pub diagnostics: Vec<Diagnostic>,
    /// Simulations run so far.
    pub simulations: usize,
}

impl Pass {
    /// Records a `DisruptionBlocked` about a node.
    pub fn blocked(&mut self, node: &str, message: String) {
        self.diagnostics.push(Diagnostic::Blocked {
            subject: Subject::Node(node.to_owned()),
            message,
        });
    }

    /// Records a `DisruptionBlocked` about a NodePool's budget, once per pool and reason.
    pub fn budget_blocked(&mut self, nodepool: &str, reason: Reason) {
        let d = Diagnostic::Blocked {
            subject: Subject::NodePool(nodepool.to_owned()),
            message: format!(
                "No allowed disruptions for disruption reason {reason} due to blocking budget"
            ),
        };
        if !self.diagnostics.contains(&d) {
            self.diagnostics.push(d);
        }
    }

    /// Records an `Unconsolidatable` about a node.
    pub fn unconsolidatable(&mut self, node: &str, message: String) {
        self.diagnostics.push(Diagnostic::Unconsolidatable {
            node: node.to_owned(),
            message,
        });
    }
}

/// One disruption method (core `pkg/controllers/disruption/types.go` `Method`).
pub trait Method {
    /// Which method this is.
    fn kind(&self) -> MethodKind;
    /// The reason its commands carry.
    fn reason(&self) -> Reason;
    /// Whether the method wants this candidate at all (before blocks and budgets).
    fn should_disrupt(&self, candidate: &Candidate<'_>, ctx: &Context<'_>) -> bool;
    /// The method's command, if any, within `budgets`.
    fn compute(&self, ctx: &Context<'_>, budgets: &mut Budgets, pass: &mut Pass)
    -> Option<Disrupt>;
}

/// The methods in the order a pass tries them.
pub fn methods() -> [&'static dyn Method; 5] {
    [
        // Forceful and outside budgets: upstream runs it in its own controller, so nothing
        // else may hold it back.
        &expiration::Expiration,
        // Cheapest to decide and never launches anything (upstream v1.5+ runs it first).
        &emptiness::Emptiness,
        // Replaces nodes that no longer match their NodePool, within Drifted budgets.
        &drift::Drift,
        // Many nodes at once: the largest saving per command.
        &multi_node::MultiNode,
        // One node at a time, for what multi-node could not combine.
        &single_node::SingleNode,
    ]
}

/// Runs one disruption pass: see the [module documentation](self). Keeps no state: every
/// pass simulates (see [`decide_settled`] for the loop a controller runs).
pub fn decide(snapshot: &Snapshot, now_ms: i64, options: &Options) -> Decision {
    decide_settled(snapshot, now_ms, options, &Settled::default())
}

/// Runs one disruption pass, skipping the consolidation methods when `settled` (the previous
/// pass's [`Decision::settled`]) shows they found nothing on the same cluster: see
/// [`settled`]. Expiration and drift always run.
pub fn decide_settled(
    snapshot: &Snapshot,
    now_ms: i64,
    options: &Options,
    settled: &Settled,
) -> Decision {
    let all = candidates::candidates(snapshot);
    let clock = settled::ClockFacts::at(snapshot, &all, now_ms);
    let reused = settled.holds(snapshot, &clock, now_ms);
    let mut pass = Pass::default();
    // Consolidation's own diagnostics, kept apart so a settled pass can replay them.
    let mut consolidation: Vec<Diagnostic> = Vec::new();
    let placed = if reused.is_some() {
        None
    } else {
        coordination::place(snapshot, now_ms, &options.provisioning)
    };
    let held = coordination::held_nodes(snapshot, placed.as_ref());
    for (node, why) in &held {
        if all.iter().any(|c| c.name() == node) {
            consolidation.push(Diagnostic::Blocked {
                subject: Subject::Node(node.clone()),
                message: why.clone(),
            });
        }
    }
    let unheld: Vec<Candidate<'_>> = all
        .iter()
        .filter(|c| !held.contains_key(c.name()))
        .cloned()
        .collect();
    let ctx = Context {
        snapshot,
        now_ms,
        options,
        candidates: all,
    };
    let ctx_unheld = Context {
        snapshot,
        now_ms,
        options,
        candidates: unheld,
    };
    let mut command = None;
    let mut eligible = std::collections::BTreeMap::new();
    let mut consolidating_methods_ran = 0;
    for method in methods() {
        let consolidating = matches!(
            method.kind(),
            MethodKind::Emptiness | MethodKind::MultiNode | MethodKind::SingleNode
        );
        let ctx = if consolidating { &ctx_unheld } else { &ctx };
        let wanted = ctx
            .candidates
            .iter()
            .filter(|c| method.should_disrupt(c, ctx))
            .count();
        let n = eligible.entry(method.reason()).or_insert(0);
        *n = (*n).max(wanted);
        if consolidating && reused.is_some() {
            continue;
        }
        consolidating_methods_ran += usize::from(consolidating);
        let before = pass.diagnostics.len();
        let mut budgets = clock.budgets().clone();
        let decided = method
            .compute(ctx, &mut budgets, &mut pass)
            .and_then(|cmd| {
                match coordination::deferral(snapshot, placed.as_ref(), &cmd, &options.provisioning)
                {
                    Some(why) => {
                        for node in &cmd.candidates {
                            pass.blocked(node, why.clone());
                        }
                        None
                    }
                    None => Some(cmd),
                }
            });
        if consolidating {
            consolidation.extend(pass.diagnostics.drain(before..));
        }
        if decided.is_some() {
            command = decided;
            break;
        }
    }
    let next = match reused {
        Some(replayed) => {
            consolidation = replayed.to_vec();
            settled.clone()
        }
        // Every consolidation method ran and none decided: the cluster is settled.
        None if command.is_none() && consolidating_methods_ran == 3 => {
            consolidation.sort();
            consolidation.dedup();
            Settled::record(snapshot, clock, now_ms, consolidation.clone())
        }
        None => Settled::default(),
    };
    let mut diagnostics = pass.diagnostics;
    diagnostics.append(&mut consolidation);
    diagnostics.sort();
    diagnostics.dedup();
    Decision {
        command,
        diagnostics,
        simulations: pass.simulations,
        eligible,
        settled: next,
    }
}

/// Why a command no longer holds after its validation delay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// A candidate is no longer a candidate, or the method no longer wants it (upstream
    /// "churn").
    #[error("node {0} is no longer a candidate")]
    Churn(String),
    /// A budget no longer allows it.
    #[error("budget of nodepool {0} no longer allows disrupting node {1}")]
    Budget(String, String),
    /// The re-simulation no longer gives the same kind of command.
    #[error("scheduling simulation changed: {0}")]
    Scheduling(String),
}

/// Re-checks `command` against a fresh snapshot (reference §5.8): every candidate is still a
/// candidate the method wants and not blocked, budgets still allow them, and for consolidation
/// the re-simulation again needs no launch (delete) or one whose options are a subset of the
/// command's (replace).
pub fn validate(
    command: &Disrupt,
    fresh: &Snapshot,
    now_ms: i64,
    options: &Options,
) -> Result<(), Rejected> {
    let ctx = Context {
        snapshot: fresh,
        now_ms,
        options,
        candidates: candidates::candidates(fresh),
    };
    let Some(method) = methods().into_iter().find(|m| m.kind() == command.method) else {
        return Ok(());
    };
    let mut budgets = Budgets::compute(fresh, now_ms);
    let mut chosen = Vec::new();
    for name in &command.candidates {
        let Some(c) = ctx.candidates.iter().find(|c| c.name() == name) else {
            return Err(Rejected::Churn(name.clone()));
        };
        if !method.should_disrupt(c, &ctx)
            || (command.mode != TerminationMode::Forceful && c.voluntary_block().is_some())
        {
            return Err(Rejected::Churn(name.clone()));
        }
        if let Some(r) = command.reason.budget_reason()
            && !budgets.take(&c.nodepool.name, r)
        {
            return Err(Rejected::Budget(c.nodepool.name.clone(), name.clone()));
        }
        chosen.push(c);
    }
    let placed = coordination::place(fresh, now_ms, &options.provisioning);
    if let Some(why) =
        coordination::deferral(fresh, placed.as_ref(), command, &options.provisioning)
    {
        return Err(Rejected::Scheduling(why));
    }
    if command.reason != Reason::Underutilized {
        return Ok(());
    }
    let indexes: Vec<usize> = chosen.iter().map(|c| c.index).collect();
    let moved =
        simulate::simulate(&ctx, &indexes).map_err(|stuck| Rejected::Scheduling(stuck.message))?;
    let launches = simulate::consolidate(&ctx, &chosen, moved.replacements, options)
        .map_err(Rejected::Scheduling)?;
    match (command.replacements.first(), launches.first()) {
        (None, None) => Ok(()),
        (Some(before), Some(now)) => {
            let subset = now
                .instance_types
                .iter()
                .all(|o| before.instance_types.iter().any(|b| b.name == o.name));
            if subset {
                Ok(())
            } else {
                Err(Rejected::Scheduling(
                    "replacement options are no longer a subset of the original".to_owned(),
                ))
            }
        }
        (None, Some(_)) => Err(Rejected::Scheduling(
            "the pods no longer fit without a replacement".to_owned(),
        )),
        (Some(_), None) => Err(Rejected::Scheduling(
            "the pods now fit without a replacement".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disruption::testing::{cluster, node, workload_pod};
    use crate::snapshot::{Budget, BudgetNodes, NodeDisruption, NodeState, PoolDisruption};

    fn settings(budget: BudgetNodes) -> PoolDisruption {
        PoolDisruption {
            budgets: vec![Budget::nodes(budget)],
            hash: Some("v2".to_owned()),
            ..PoolDisruption::default()
        }
    }

    #[test]
    fn methods_run_in_priority_order_and_the_first_command_wins() {
        let drifted = node("drifted", "m5.large")
            .pod(workload_pod("p", 100))
            .disruption(NodeDisruption {
                created_ms: Some(0),
                nodepool_hash: Some("v1".to_owned()),
                node_class: Some("default".to_owned()),
                ..NodeDisruption::default()
            });
        let s = cluster()
            .node(node("empty", "m5.large"))
            .node(drifted)
            .node(node("busy", "m5.xlarge").pod(workload_pod("q", 100)))
            .pool_disruption("default", settings(BudgetNodes::Percent(100)));
        let opts = Options::default();
        let first = decide(&s, 0, &opts).command.unwrap();
        assert_eq!(
            (first.method, first.candidates.clone()),
            (MethodKind::Emptiness, vec!["empty".to_owned()])
        );
        let mut s = s;
        s.nodes.remove(0);
        let second = decide(&s, 0, &opts).command.unwrap();
        assert_eq!(second.method, MethodKind::Drift);
        assert_eq!(second.candidates, vec!["drifted"]);
    }

    #[test]
    fn validation_rejects_a_command_once_its_budget_is_used_elsewhere() {
        let s = cluster()
            .node(node("big", "m5.xlarge").pod(workload_pod("a", 1000)))
            .node(node("small", "m5.large").pod(workload_pod("b", 200)))
            .pool_disruption("default", settings(BudgetNodes::Count(1)));
        let opts = Options::default();
        let cmd = decide(&s, 0, &opts).command.unwrap();
        assert_eq!(cmd.reason, Reason::Underutilized);
        let mut fresh = s.clone();
        fresh = fresh.node(node("leaving", "m5.large").state(NodeState::Deleting));
        assert!(matches!(
            validate(&cmd, &fresh, 15_000, &opts),
            Err(Rejected::Budget(..))
        ));
    }
}
