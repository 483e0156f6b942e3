//! Drift: a node that no longer matches its NodePool is replaced (core `drift.go`, NodeClaim
//! drift detection, reference §5.10), within the `Drifted` budgets. Detection, in upstream's
//! order:
//!
//! 1. `NodePoolDrifted`: the NodeClaim's `karpenter.sh/nodepool-hash` differs from the pool's
//!    current hash (both present);
//! 2. `NodeClassDrift`: the claim was launched from another NodeClass than the pool's
//!    `nodeClassRef` now names (seed 003: pointing a pool at a new AKSNodeClass rolls its nodes);
//! 3. `RequirementsDrifted`: a node label the pool's requirements or template labels no longer
//!    allow;
//! 4. `InstanceTypeNotFound`: older than 1 h and its instance type left the catalog;
//! 5. whatever the cloud provider reports.
//!
//! Empty drifted nodes go first, all that fit the budget in one delete; otherwise the oldest
//! drifted node whose pods can be rescheduled is replaced by whatever the scheduler launches for
//! them (any number of NodeClaims, as upstream). Drift is "eventual": do-not-disrupt pods and
//! PDBs block it (the snapshot carries no `terminationGracePeriod` that would lift that).

use tandem_model::labels;

use super::command::{Disrupt, MethodKind, Reason, TerminationMode};
use super::{Budgets, Candidate, Context, Method, Pass, simulate};
use crate::snapshot::BudgetReason;

/// The drift method.
#[derive(Debug, Clone, Copy)]
pub struct Drift;

/// Why the candidate is drifted, if it is.
pub fn drifted(c: &Candidate<'_>, ctx: &Context<'_>) -> Option<String> {
    let d = &c.node.disruption;
    if let (Some(want), Some(have)) = (&c.settings.hash, &d.nodepool_hash)
        && want != have
    {
        return Some("NodePoolDrifted".to_owned());
    }
    if d.node_class
        .as_ref()
        .is_some_and(|nc| *nc != c.nodepool.node_class)
    {
        return Some("NodeClassDrift".to_owned());
    }
    let labels_drifted = c
        .nodepool
        .requirements
        .iter()
        .any(|r| c.node.labels.get(r.key()).is_some_and(|v| !r.has(v)))
        || c.nodepool
            .labels
            .iter()
            .any(|(k, v)| c.node.labels.get(k).is_some_and(|have| have != v));
    if labels_drifted {
        return Some("RequirementsDrifted".to_owned());
    }
    if d.created_ms
        .is_some_and(|t| ctx.now_ms - t >= ctx.options.instance_type_drift_after_ms)
        && let (Some(catalog), Some(it)) = (c.catalog, c.node.labels.get(labels::INSTANCE_TYPE))
        && catalog.get(it).is_none()
    {
        return Some("InstanceTypeNotFound".to_owned());
    }
    d.provider_drift.clone()
}

impl Method for Drift {
    fn kind(&self) -> MethodKind {
        MethodKind::Drift
    }

    fn reason(&self) -> Reason {
        Reason::Drifted
    }

    fn should_disrupt(&self, c: &Candidate<'_>, ctx: &Context<'_>) -> bool {
        drifted(c, ctx).is_some()
    }

    fn compute(
        &self,
        ctx: &Context<'_>,
        budgets: &mut Budgets,
        pass: &mut Pass,
    ) -> Option<Disrupt> {
        let mut drifted: Vec<&Candidate<'_>> = ctx
            .candidates
            .iter()
            .filter(|c| self.should_disrupt(c, ctx))
            .collect();
        drifted.sort_by(|a, b| {
            (!a.is_empty(), a.node.disruption.created_ms, a.name()).cmp(&(
                !b.is_empty(),
                b.node.disruption.created_ms,
                b.name(),
            ))
        });
        let mut empty = Vec::new();
        for c in drifted {
            if let Some(why) = c.voluntary_block() {
                pass.blocked(c.name(), why);
                continue;
            }
            if budgets.remaining(&c.nodepool.name, BudgetReason::Drifted) == 0 {
                pass.budget_blocked(&c.nodepool.name, Reason::Drifted);
                continue;
            }
            if c.is_empty() {
                budgets.take(&c.nodepool.name, BudgetReason::Drifted);
                empty.push(c);
                continue;
            }
            if !empty.is_empty() {
                break;
            }
            if pass.simulations >= ctx.options.max_simulations {
                break;
            }
            pass.simulations += 1;
            match simulate::simulate(ctx, &[c.index]) {
                Ok(moved) => {
                    return Some(command(&[c], moved.replacements, moved.nominations));
                }
                Err(stuck) => pass.blocked(c.name(), stuck.message),
            }
        }
        (!empty.is_empty()).then(|| command(&empty, Vec::new(), Vec::new()))
    }
}

fn command(
    cands: &[&Candidate<'_>],
    replacements: Vec<crate::provisioning::Launch>,
    nominations: Vec<crate::provisioning::Nominate>,
) -> Disrupt {
    Disrupt {
        nominations,
        candidates: cands.iter().map(|c| c.name().to_owned()).collect(),
        cost_before: simulate::price_of(cands),
        cost_after: simulate::cost_of(&replacements),
        replacements,
        reason: Reason::Drifted,
        method: MethodKind::Drift,
        mode: TerminationMode::Eventual,
        revalidate_after_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disruption::testing::{cluster, node, workload_pod};
    use crate::disruption::{Options, decide};
    use crate::snapshot::{NodeDisruption, PoolDisruption};
    use tandem_model::requirements::Requirement;

    fn no_consolidation() -> PoolDisruption {
        PoolDisruption {
            consolidate_after_ms: None,
            hash: Some("v2".to_owned()),
            ..PoolDisruption::default()
        }
    }

    fn hashed(name: &str, hash: &str) -> crate::snapshot::ExistingNode {
        node(name, "m5.large").disruption(NodeDisruption {
            nodepool_hash: Some(hash.to_owned()),
            node_class: Some("default".to_owned()),
            ..NodeDisruption::default()
        })
    }

    #[test]
    fn node_with_a_stale_nodepool_hash_is_replaced() {
        let s = cluster()
            .node(hashed("old", "v1").pod(workload_pod("p", 1500)))
            .node(hashed("new", "v2"))
            .pool_disruption("default", no_consolidation());
        let cmd = decide(&s, 0, &Options::default()).command.unwrap();
        assert_eq!(cmd.reason, Reason::Drifted);
        assert_eq!(cmd.candidates, vec!["old"]);
        // "new" is empty but consolidation is off; the pod needs room "new" has.
        assert!(
            cmd.replacements.is_empty(),
            "the pod fits on the up-to-date node"
        );
    }

    #[test]
    fn node_class_ref_change_drifts_nodes_launched_from_the_old_class() {
        // Seed 003: the pool now points at another NodeClass.
        let mut s = cluster()
            .node(hashed("a", "v2").pod(workload_pod("p", 100)))
            .pool_disruption("default", no_consolidation());
        s.nodepools[0].node_class = "custom".to_owned();
        s.catalogs
            .insert("custom".to_owned(), super::super::testing::aws());
        let cmd = decide(&s, 0, &Options::default()).command.unwrap();
        assert_eq!(cmd.candidates, vec!["a"]);
        assert_eq!(cmd.replacements.len(), 1);
        assert_eq!(cmd.mode, TerminationMode::Eventual);
    }

    #[test]
    fn requirement_the_node_no_longer_satisfies_drifts_it_empty_first() {
        let mut s = cluster()
            .node(hashed("busy", "v2").pod(workload_pod("p", 100)))
            .node(hashed("idle", "v2"))
            .pool_disruption("default", no_consolidation());
        s.nodepools[0]
            .requirements
            .add(Requirement::in_values(labels::CAPACITY_TYPE, ["spot"]));
        let cmd = decide(&s, 0, &Options::default()).command.unwrap();
        assert_eq!(cmd.candidates, vec!["idle"]);
        assert!(cmd.is_delete());
    }

    #[test]
    fn drift_respects_its_budget() {
        let s = cluster()
            .node(hashed("a", "v1"))
            .node(hashed("b", "v1"))
            .pool_disruption("default", no_consolidation());
        // 10% of 2 nodes rounds up to 1.
        let cmd = decide(&s, 0, &Options::default()).command.unwrap();
        assert_eq!(cmd.candidates, vec!["a"]);
    }
}
