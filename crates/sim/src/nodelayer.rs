//! The one adapter between the simulator and the node layer (`tandem-nodescaler`).
//!
//! Everything the simulator asks of the node layer goes through here, so when nodescaler's API
//! moves (it is young) or gains `disruption`, only this file changes:
//! - [`Batcher`]: Karpenter's provisioning batch window (`BATCH_IDLE_DURATION` 1 s,
//!   `BATCH_MAX_DURATION` 10 s, core `pkg/controllers/provisioning/batcher.go`);
//! - [`provision`]: `nodescaler::plan` over a snapshot the simulator builds;
//! - [`disrupt`]: `nodescaler::disruption::decide` (expiration, emptiness, drift, multi- and
//!   single-node consolidation within budgets) and [`validate`] after the command's delay; the
//!   simulator executes the command as the queue does: deletes at once, replacements launched
//!   first and the candidates removed once every replacement is Ready ([`CONSOLIDATION_NOTE`] says so in every report).

use tandem_nodescaler::disruption::{self, Decision, Disrupt, Rejected};
use tandem_nodescaler::snapshot::Snapshot;
use tandem_nodescaler::{Options, Plan};

/// Printed in every report: how disruption is simulated.
pub const CONSOLIDATION_NOTE: &str = "consolidation: nodescaler::disruption (emptiness, drift, \
     multi- and single-node), re-validated after 15 s; pods of a removed node are recreated \
     and scheduled anew";

/// Plans capacity for the snapshot's pending pods, then for its anticipated ones (predicted
/// pods and headroom; none under upstream semantics, where this is exactly `plan`).
pub fn provision(snapshot: &Snapshot, options: &Options) -> Plan {
    tandem_nodescaler::provisioning::plan_anticipating(snapshot, options)
}

/// Karpenter's batcher: a window opens at the first trigger, each trigger extends it by the
/// idle duration, and it closes at the idle deadline or at the max duration, whichever is first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Batcher {
    open: Option<(i64, i64)>,
}

impl Batcher {
    /// Records a trigger at `now`; returns when to check the window if it just opened.
    pub fn trigger(&mut self, now: i64, idle_ms: i64) -> Option<i64> {
        match &mut self.open {
            Some((_, last)) => {
                *last = now;
                None
            }
            None => {
                self.open = Some((now, now));
                Some(now + idle_ms)
            }
        }
    }

    /// At a check: `Ok(())` when the window closed (and resets), else `Err(next check)`.
    pub fn check(&mut self, now: i64, idle_ms: i64, max_ms: i64) -> Result<(), i64> {
        let Some((start, last)) = self.open else {
            return Ok(());
        };
        let due = (last + idle_ms).min(start + max_ms);
        if now >= due {
            self.open = None;
            Ok(())
        } else {
            Err(due)
        }
    }
}

/// One disruption pass: exactly the function the controllers call, handed the previous
/// pass's [`Decision::settled`] as they do (an unchanged cluster is not consolidated again).
pub fn disrupt(
    snapshot: &Snapshot,
    now: i64,
    options: &disruption::Options,
    settled: &disruption::Settled,
) -> Decision {
    disruption::decide_settled(snapshot, now, options, settled)
}

/// Re-checks a command after its validation delay, as the executor does.
pub fn validate(
    command: &Disrupt,
    fresh: &Snapshot,
    now: i64,
    options: &disruption::Options,
) -> Result<(), Rejected> {
    disruption::validate(command, fresh, now, options)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::input::{Budget, PoolInput};
    use tandem_model::catalog::Catalog;
    use tandem_model::labels;
    use tandem_nodescaler::snapshot::{ExistingNode, NodeDisruption, NodePool};

    #[test]
    fn empty_node_past_consolidate_after_is_removed_within_budget() {
        let catalog = Arc::new(Catalog::kwok());
        let it = catalog.types()[0].clone();
        let zone = it.offerings()[0].zone.clone();
        let pool = PoolInput {
            pool: NodePool::new("p", "c"),
            consolidate_after_ms: Some(60_000),
            budgets: vec![],
        };
        let mut s = Snapshot::new()
            .catalog("c", catalog.clone())
            .nodepool(pool.pool.clone())
            .pool_disruption("p", pool.disruption());
        for i in 0..11 {
            s = s.node(
                ExistingNode::new(&format!("n{i:02}"), it.allocatable().clone())
                    .label(labels::NODEPOOL, "p")
                    .label(labels::INSTANCE_TYPE, it.name())
                    .label(labels::ZONE, &zone)
                    .label(labels::CAPACITY_TYPE, "on-demand")
                    .disruption(NodeDisruption::default()),
            );
        }
        let opts = disruption::Options::default();
        // 10% of 11 nodes, rounded up: 2.
        let cmd = disrupt(&s, 60_000, &opts, &Default::default())
            .command
            .unwrap();
        assert_eq!(cmd.candidates, vec!["n00", "n01"]);
        assert!(
            disrupt(&s, 59_999, &opts, &Default::default())
                .command
                .is_none()
        );
        let all = PoolInput {
            budgets: vec![Budget::Percent(100)],
            ..pool
        };
        let s = s.pool_disruption("p", all.disruption());
        assert_eq!(
            disrupt(&s, 60_000, &opts, &Default::default())
                .command
                .unwrap()
                .candidates
                .len(),
            11
        );
    }

    #[test]
    fn batch_window_closes_after_idle_or_max() {
        let mut b = Batcher::default();
        assert_eq!(b.trigger(0, 1_000), Some(1_000));
        assert_eq!(b.trigger(500, 1_000), None);
        assert_eq!(b.check(1_000, 1_000, 10_000), Err(1_500));
        assert_eq!(b.check(1_500, 1_000, 10_000), Ok(()));
        // A steady trickle is cut at the max window.
        b.trigger(0, 1_000);
        for t in (0..=9_900).step_by(900) {
            b.trigger(t, 1_000);
        }
        assert_eq!(b.check(10_000, 1_000, 10_000), Ok(()));
    }
}
