//! Emptiness: nodes without reschedulable pods (DaemonSet and mirror pods do not count) for at
//! least `consolidateAfter` are deleted, as many as the `Empty` budgets allow, in one command
//! (core `emptiness.go`, reference §5.4). Both consolidation policies allow it; `Never`
//! disables it. The executor re-validates after 15 s.

use super::command::{Disrupt, MethodKind, Reason, TerminationMode};
use super::{Budgets, Candidate, Context, Method, Pass, simulate};
use crate::snapshot::BudgetReason;

/// The emptiness method.
#[derive(Debug, Clone, Copy)]
pub struct Emptiness;

impl Method for Emptiness {
    fn kind(&self) -> MethodKind {
        MethodKind::Emptiness
    }

    fn reason(&self) -> Reason {
        Reason::Empty
    }

    fn should_disrupt(&self, c: &Candidate<'_>, ctx: &Context<'_>) -> bool {
        c.is_empty() && c.is_consolidatable(ctx.now_ms)
    }

    fn compute(
        &self,
        ctx: &Context<'_>,
        budgets: &mut Budgets,
        pass: &mut Pass,
    ) -> Option<Disrupt> {
        let mut empty: Vec<&Candidate<'_>> = ctx
            .candidates
            .iter()
            .filter(|c| self.should_disrupt(c, ctx))
            .collect();
        // Longest-empty first, then by name.
        empty.sort_by(|a, b| {
            (a.node.disruption.last_pod_event_ms, a.name())
                .cmp(&(b.node.disruption.last_pod_event_ms, b.name()))
        });
        let mut chosen = Vec::new();
        for c in empty {
            if let Some(why) = c.voluntary_block() {
                pass.blocked(c.name(), why);
                continue;
            }
            if !budgets.take(&c.nodepool.name, BudgetReason::Empty) {
                pass.budget_blocked(&c.nodepool.name, Reason::Empty);
                continue;
            }
            chosen.push(c);
        }
        if chosen.is_empty() {
            return None;
        }
        Some(Disrupt {
            candidates: chosen.iter().map(|c| c.name().to_owned()).collect(),
            replacements: Vec::new(),
            nominations: Vec::new(),
            reason: Reason::Empty,
            method: MethodKind::Emptiness,
            mode: TerminationMode::Graceful,
            revalidate_after_ms: ctx.options.validation_delay_ms,
            cost_before: simulate::price_of(&chosen),
            cost_after: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::disruption::testing::{cluster, node, workload_pod};
    use crate::disruption::{Diagnostic, Options, Subject, decide, validate};
    use crate::snapshot::{
        BoundPod, Budget, BudgetNodes, ConsolidationPolicy, NodeDisruption, PodDisruption,
        PodOwner, PoolDisruption,
    };

    fn idle_since(name: &str, t: i64) -> crate::snapshot::ExistingNode {
        node(name, "m5.large").disruption(NodeDisruption {
            last_pod_event_ms: t,
            ..NodeDisruption::default()
        })
    }

    fn after(ms: i64, policy: ConsolidationPolicy, budget: u32) -> PoolDisruption {
        PoolDisruption {
            policy,
            consolidate_after_ms: Some(ms),
            budgets: vec![Budget::nodes(BudgetNodes::Percent(budget))],
            ..PoolDisruption::default()
        }
    }

    #[test]
    fn empty_node_past_consolidate_after_is_disrupted() {
        let ds = BoundPod::new("kube-system", "ds", Arc::default(), Default::default()).disruption(
            PodDisruption {
                owner: PodOwner::DaemonSet,
                ..PodDisruption::default()
            },
        );
        let s = cluster()
            .node(idle_since("a", 0).pod(ds))
            .node(idle_since("b", 0).pod(workload_pod("p", 100)))
            .pool_disruption(
                "default",
                after(30_000, ConsolidationPolicy::WhenEmpty, 100),
            );
        let opts = Options::default();
        assert!(decide(&s, 29_999, &opts).command.is_none());
        let cmd = decide(&s, 30_000, &opts).command.unwrap();
        assert_eq!(cmd.candidates, vec!["a"]);
        assert_eq!(cmd.reason, Reason::Empty);
        assert!(cmd.is_delete());
        assert_eq!(cmd.revalidate_after_ms, 15_000);
        assert_eq!(validate(&cmd, &s, 45_000, &opts), Ok(()));
        // A pod landed meanwhile: the command is dropped.
        let mut fresh = s.clone();
        fresh.nodes[0].pods.push(workload_pod("late", 100));
        assert!(validate(&cmd, &fresh, 45_000, &opts).is_err());
    }

    #[test]
    fn all_empty_nodes_within_budget_go_in_one_command_longest_empty_first() {
        let mut s = cluster().pool_disruption(
            "default",
            after(0, ConsolidationPolicy::WhenEmptyOrUnderutilized, 30),
        );
        for i in 0..10 {
            s = s.node(idle_since(&format!("n{i}"), 100 - i));
        }
        let d = decide(&s, 1_000, &Options::default());
        assert_eq!(d.command.unwrap().candidates, vec!["n9", "n8", "n7"]);
        assert!(
            d.diagnostics.contains(&Diagnostic::Blocked {
                subject: Subject::NodePool("default".to_owned()),
                message:
                    "No allowed disruptions for disruption reason Empty due to blocking budget"
                        .to_owned()
            })
        );
    }

    #[test]
    fn consolidate_after_never_and_node_do_not_disrupt_keep_empty_nodes() {
        let s = cluster().node(idle_since("a", 0)).pool_disruption(
            "default",
            PoolDisruption {
                consolidate_after_ms: None,
                expire_after_ms: None,
                ..PoolDisruption::default()
            },
        );
        assert!(decide(&s, 1 << 40, &Options::default()).command.is_none());
        let s = cluster().node(node("a", "m5.large").disruption(NodeDisruption {
            do_not_disrupt: true,
            ..NodeDisruption::default()
        }));
        let d = decide(&s, 1_000, &Options::default());
        assert!(d.command.is_none());
        assert!(
            matches!(&d.diagnostics[0], Diagnostic::Blocked { message, .. } if message.contains("do-not-disrupt"))
        );
    }
}
