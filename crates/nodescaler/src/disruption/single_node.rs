//! Single-node consolidation: one underutilized node at a time, deleted when its pods fit on
//! the other nodes, or replaced by one strictly cheaper node (core `singlenodeconsolidation.go`,
//! reference §5.5, §5.7). Candidates go in upstream's order (price over rescheduling cost,
//! descending); the first valid command wins.
//!
//! Unlike upstream, which simulates every candidate until a 3-minute timeout, a candidate is
//! only simulated when a resource-only check says a delete or a cheaper replacement is
//! possible at all: its pods fit in the free room of the other nodes, or some instance type of
//! its NodePool that holds them costs less than it does. The others are reported
//! `Unconsolidatable` without running the scheduler, and the simulations a pass may run are
//! counted ([`super::Options::max_simulations`]), not timed.

use tandem_model::catalog::UsdPerHour;

use super::command::{Disrupt, MethodKind, Reason, TerminationMode};
use super::multi_node::Rooms;
use super::{Budgets, Candidate, Context, Method, Pass, simulate};
use crate::snapshot::{BudgetReason, ConsolidationPolicy};

/// The single-node consolidation method.
#[derive(Debug, Clone, Copy)]
pub struct SingleNode;

/// Whether consolidation (single or multi) wants the candidate (reference §5.5 ShouldDisrupt).
pub fn wants(c: &Candidate<'_>, ctx: &Context<'_>) -> bool {
    c.settings.policy == ConsolidationPolicy::WhenEmptyOrUnderutilized
        && !c.is_empty()
        && c.price.is_some()
        && c.is_consolidatable(ctx.now_ms)
}

/// The candidates consolidation may take now, in upstream's order, blocked ones reported.
pub fn eligible<'c>(
    ctx: &'c Context<'_>,
    budgets: &Budgets,
    pass: &mut Pass,
) -> Vec<&'c Candidate<'c>> {
    let mut out: Vec<&Candidate<'_>> = Vec::new();
    for c in ctx.candidates.iter().filter(|c| wants(c, ctx)) {
        if let Some(why) = c.voluntary_block() {
            pass.blocked(c.name(), why);
        } else if budgets.remaining(&c.nodepool.name, BudgetReason::Underutilized) == 0 {
            pass.budget_blocked(&c.nodepool.name, Reason::Underutilized);
        } else {
            out.push(c);
        }
    }
    out.sort_by(|a, b| {
        b.savings_ratio()
            .total_cmp(&a.savings_ratio())
            .then_with(|| a.name().cmp(b.name()))
    });
    out
}

/// Builds the consolidation command for `cands` and `launches`.
pub fn command(
    ctx: &Context<'_>,
    cands: &[&Candidate<'_>],
    replacements: Vec<crate::provisioning::Launch>,
    nominations: Vec<crate::provisioning::Nominate>,
    method: MethodKind,
) -> Disrupt {
    Disrupt {
        nominations,
        candidates: cands.iter().map(|c| c.name().to_owned()).collect(),
        cost_before: simulate::price_of(cands),
        cost_after: simulate::cost_of(&replacements),
        replacements,
        reason: Reason::Underutilized,
        method,
        mode: TerminationMode::Graceful,
        revalidate_after_ms: ctx.options.validation_delay_ms,
    }
}

/// The cheapest price at which one of the candidates' NodePools can launch a type whose
/// allocatable holds all their pods (CPU and memory only): a lower bound on any replacement.
pub fn cheapest_holder(cands: &[&Candidate<'_>]) -> Option<UsdPerHour> {
    let (cpu, mem) = cands
        .iter()
        .flat_map(|c| c.reschedulable.iter())
        .fold((0, 0), |(a, b), p| {
            (a + p.requests.cpu.0, b + p.requests.memory.0)
        });
    cands
        .iter()
        .filter_map(|c| {
            let catalog = c.catalog?;
            let mut reqs = c.nodepool.requirements.clone();
            for (k, v) in &c.nodepool.labels {
                reqs.add(tandem_model::requirements::Requirement::in_values(
                    k,
                    [v.as_str()],
                ));
            }
            catalog
                .types()
                .iter()
                .filter(|it| it.allocatable().cpu.0 >= cpu && it.allocatable().memory.0 >= mem)
                .filter(|it| it.requirements().intersects(&reqs))
                .filter_map(|it| it.cheapest_offering(&reqs).map(|o| o.price))
                .min()
        })
        .min()
}

impl Method for SingleNode {
    fn kind(&self) -> MethodKind {
        MethodKind::SingleNode
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
        if cands.is_empty() {
            return None;
        }
        let mut rooms = Rooms::new(ctx.snapshot);
        for c in cands {
            let deletable = rooms.fits_elsewhere(c);
            let replaceable = c
                .price
                .zip(cheapest_holder(&[c]))
                .is_some_and(|(now, cheapest)| cheapest < now);
            if !deletable && !replaceable {
                pass.unconsolidatable(c.name(), "Can't replace with a cheaper node".to_owned());
                continue;
            }
            if pass.simulations >= ctx.options.max_simulations {
                break;
            }
            pass.simulations += 1;
            let result = simulate::simulate(ctx, &[c.index])
                .map_err(|stuck| stuck.message)
                .and_then(|moved| {
                    simulate::consolidate(ctx, &[c], moved.replacements, ctx.options)
                        .map(|launches| (launches, moved.nominations))
                });
            match result {
                Ok((replacements, nominations)) => {
                    budgets.take(&c.nodepool.name, BudgetReason::Underutilized);
                    return Some(command(
                        ctx,
                        &[c],
                        replacements,
                        nominations,
                        MethodKind::SingleNode,
                    ));
                }
                Err(message) => pass.unconsolidatable(c.name(), message),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disruption::testing::{cluster, node, workload_pod};
    use crate::disruption::{Diagnostic, Options, decide, validate};
    use crate::snapshot::{PodDisruption, PoolDisruption};

    #[test]
    fn underutilized_node_whose_pods_fit_elsewhere_is_deleted() {
        let s = cluster()
            .node(node("big", "m5.xlarge").pod(workload_pod("a", 1000)))
            .node(node("small", "m5.large").pod(workload_pod("b", 200)));
        let opts = Options::default();
        let d = decide(&s, 0, &opts);
        let cmd = d.command.unwrap();
        assert_eq!(cmd.reason, Reason::Underutilized);
        assert!(cmd.is_delete());
        assert_eq!(cmd.candidates.len(), 1);
        assert!(cmd.savings() > 0);
        assert_eq!(validate(&cmd, &s, 15_000, &opts), Ok(()));
    }

    #[test]
    fn lone_oversized_node_is_replaced_by_one_cheaper_node() {
        let s = cluster().node(node("huge", "m5.4xlarge").pod(workload_pod("a", 500)));
        let cmd = decide(&s, 0, &Options::default()).command.unwrap();
        assert_eq!(cmd.method, MethodKind::SingleNode);
        assert_eq!(cmd.replacements.len(), 1);
        assert!(cmd.cost_after < cmd.cost_before);
        // Pinned to spot: the candidate is on-demand and the pool allows spot.
        assert!(
            !cmd.replacements[0]
                .requirements
                .allows(tandem_model::labels::CAPACITY_TYPE, "on-demand")
        );
    }

    #[test]
    fn well_packed_node_is_unconsolidatable_without_a_simulation() {
        let mut s = cluster().node(
            node("full", "m5.large")
                .pod(workload_pod("a", 900))
                .pod(workload_pod("b", 900)),
        );
        // Nothing cheaper to move to: the pool only has this type, on demand.
        for (key, value) in [
            (tandem_model::labels::INSTANCE_TYPE, "m5.large"),
            (tandem_model::labels::CAPACITY_TYPE, "on-demand"),
        ] {
            s.nodepools[0]
                .requirements
                .add(tandem_model::requirements::Requirement::in_values(
                    key,
                    [value],
                ));
        }
        let d = decide(&s, 0, &Options::default());
        assert!(d.command.is_none());
        assert_eq!(d.simulations, 0);
        assert!(d.diagnostics.contains(&Diagnostic::Unconsolidatable {
            node: "full".to_owned(),
            message: "Can't replace with a cheaper node".to_owned()
        }));
    }

    #[test]
    fn spot_to_spot_needs_the_gate_and_fifteen_cheaper_options() {
        let spot = |n| {
            node(n, "m5.4xlarge")
                .label(tandem_model::labels::CAPACITY_TYPE, "spot")
                .pod(workload_pod("a", 500))
        };
        let s = cluster().node(spot("s"));
        let d = decide(&s, 0, &Options::default());
        assert!(d.command.is_none());
        assert!(d.diagnostics.iter().any(|x| matches!(x,
            Diagnostic::Unconsolidatable { message, .. } if message.contains("SpotToSpotConsolidation is disabled"))));
        let gate = Options {
            spot_to_spot: true,
            ..Options::default()
        };
        let cmd = decide(&s, 0, &gate).command.unwrap();
        assert_eq!(cmd.replacements[0].instance_types.len(), 15);
        assert!(cmd.cost_after < cmd.cost_before);
    }

    #[test]
    fn when_empty_policy_and_do_not_disrupt_pods_prevent_consolidation() {
        let s = cluster()
            .node(node("big", "m5.xlarge").pod(workload_pod("a", 100)))
            .node(node("b", "m5.xlarge").pod(workload_pod("b", 100)))
            .pool_disruption(
                "default",
                PoolDisruption {
                    policy: ConsolidationPolicy::WhenEmpty,
                    ..PoolDisruption::default()
                },
            );
        assert!(decide(&s, 0, &Options::default()).command.is_none());
        let protected = workload_pod("a", 100).disruption(PodDisruption {
            do_not_disrupt: true,
            ..PodDisruption::default()
        });
        let s = cluster().node(node("only", "m5.4xlarge").pod(protected));
        let d = decide(&s, 0, &Options::default());
        assert!(d.command.is_none());
        assert!(matches!(&d.diagnostics[0], Diagnostic::Blocked { .. }));
    }
}
