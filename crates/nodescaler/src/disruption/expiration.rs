//! Expiration: a node older than its NodePool's `expireAfter` (default 720 h, `Never`
//! disables) is deleted forcefully (core `pkg/controllers/nodeclaim/expiration`, reference
//! §5.1). Upstream deletes it from its own controller, outside the disruption loop, so neither
//! budgets nor do-not-disrupt hold it back; its pods go Pending and provisioning replaces the
//! capacity, and the drain still respects PDBs until the termination grace period ends.

use super::command::{Disrupt, MethodKind, Reason, TerminationMode};
use super::{Budgets, Candidate, Context, Method, Pass, simulate};

/// The expiration method.
#[derive(Debug, Clone, Copy)]
pub struct Expiration;

impl Method for Expiration {
    fn kind(&self) -> MethodKind {
        MethodKind::Expiration
    }

    fn reason(&self) -> Reason {
        Reason::Expired
    }

    fn should_disrupt(&self, c: &Candidate<'_>, ctx: &Context<'_>) -> bool {
        c.settings
            .expire_after_ms
            .zip(c.node.disruption.created_ms)
            .is_some_and(|(after, created)| ctx.now_ms - created >= after)
    }

    fn compute(&self, ctx: &Context<'_>, _: &mut Budgets, _: &mut Pass) -> Option<Disrupt> {
        let mut expired: Vec<&Candidate<'_>> = ctx
            .candidates
            .iter()
            .filter(|c| self.should_disrupt(c, ctx))
            .collect();
        if expired.is_empty() {
            return None;
        }
        expired.sort_by(|a, b| {
            (a.node.disruption.created_ms, a.name()).cmp(&(b.node.disruption.created_ms, b.name()))
        });
        Some(Disrupt {
            candidates: expired.iter().map(|c| c.name().to_owned()).collect(),
            replacements: Vec::new(),
            nominations: Vec::new(),
            reason: Reason::Expired,
            method: MethodKind::Expiration,
            mode: TerminationMode::Forceful,
            revalidate_after_ms: 0,
            cost_before: simulate::price_of(&expired),
            cost_after: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disruption::testing::{cluster, node, workload_pod};
    use crate::disruption::{Options, decide};
    use crate::snapshot::{NodeDisruption, PodDisruption, PoolDisruption};

    const HOUR: i64 = 3_600_000;

    #[test]
    fn node_older_than_expire_after_is_deleted_forcefully_despite_do_not_disrupt() {
        let protected = workload_pod("p", 100).disruption(PodDisruption {
            do_not_disrupt: true,
            ..PodDisruption::default()
        });
        let s = cluster().node(node("old", "m5.large").pod(protected)).node(
            node("young", "m5.large").disruption(NodeDisruption {
                created_ms: Some(700 * HOUR),
                ..NodeDisruption::default()
            }),
        );
        let d = decide(&s, 720 * HOUR, &Options::default());
        let cmd = d.command.unwrap();
        assert_eq!(cmd.candidates, vec!["old"]);
        assert_eq!(cmd.reason, Reason::Expired);
        assert_eq!(cmd.mode, TerminationMode::Forceful);
        assert!(
            decide(&s, 720 * HOUR - 1, &Options::default())
                .command
                .is_none_or(|c| c.reason != Reason::Expired)
        );
    }

    #[test]
    fn node_of_unknown_age_never_expires() {
        let s = cluster()
            .node(node("n", "m5.large").disruption(NodeDisruption::default()))
            .pool_disruption(
                "default",
                PoolDisruption {
                    consolidate_after_ms: None,
                    ..PoolDisruption::default()
                },
            );
        assert!(
            decide(&s, 10_000 * HOUR, &Options::default())
                .command
                .is_none()
        );
    }

    #[test]
    fn expire_after_never_keeps_nodes_forever() {
        let s = cluster()
            .node(node("old", "m5.large").pod(workload_pod("p", 100)))
            .pool_disruption(
                "default",
                PoolDisruption {
                    expire_after_ms: None,
                    consolidate_after_ms: None,
                    ..PoolDisruption::default()
                },
            );
        assert!(
            decide(&s, 10_000 * HOUR, &Options::default())
                .command
                .is_none()
        );
    }
}
