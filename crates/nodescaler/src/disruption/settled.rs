//! A settled cluster is not consolidated again: upstream's "consolidated state".
//!
//! Emptiness, multi-node and single-node consolidation are the expensive methods (a scheduling
//! simulation per candidate they try), and on most passes nothing has changed since the last
//! one found nothing to do. Upstream Karpenter marks the cluster state unconsolidated on every
//! pod, node and NodeClaim change, and each consolidation method skips its work while the state
//! is the one it last found nothing in, with a forced re-evaluation every five minutes for what
//! it cannot watch (an offering that became available again).
//!
//! Here the same rule is a pure function of the decision's inputs: a pass that found nothing to
//! consolidate records the snapshot and the facts it read from the clock (which candidates are
//! past `consolidateAfter`, which pod-layer comebacks are still active, what each budget
//! allows). A later pass over an equal snapshot with equal clock facts, within
//! [`REFRESH_MS`], reuses that outcome — its diagnostics included — instead of simulating. So a
//! shell needs no change tracking of its own, and the simulator and the controllers skip exactly
//! the same passes.

use std::sync::Arc;

use super::budgets::Budgets;
use super::candidates::Candidate;
use super::command::Diagnostic;
use crate::snapshot::Snapshot;

/// A settled outcome is trusted for at most this long (upstream's five minutes).
pub const REFRESH_MS: i64 = 5 * 60_000;

/// The facts consolidation reads from the clock rather than from the snapshot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClockFacts {
    /// Per candidate, in candidate order: past its pool's `consolidateAfter`.
    consolidatable: Vec<bool>,
    /// Per comeback, in snapshot order: still inside its window.
    comebacks: Vec<bool>,
    /// What each budget allows now (schedules open and close).
    budgets: Budgets,
}

impl ClockFacts {
    /// What each budget allows now, before any method takes from it.
    pub(crate) fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// The facts at `now_ms`.
    pub(crate) fn at(snapshot: &Snapshot, candidates: &[Candidate<'_>], now_ms: i64) -> Self {
        ClockFacts {
            consolidatable: candidates
                .iter()
                .map(|c| c.is_consolidatable(now_ms))
                .collect(),
            comebacks: snapshot
                .comebacks
                .iter()
                .map(|c| c.until_ms > now_ms && c.count > 0)
                .collect(),
            budgets: Budgets::compute(snapshot, now_ms),
        }
    }
}

/// What the last pass that found nothing to consolidate saw; handed back to the next pass.
///
/// Empty (the default) until such a pass: then every pass simulates, which is what a caller
/// that keeps no state gets from [`super::decide`].
#[derive(Clone, Default)]
pub struct Settled(Option<Arc<Seen>>);

struct Seen {
    at_ms: i64,
    snapshot: Snapshot,
    clock: ClockFacts,
    diagnostics: Vec<Diagnostic>,
}

impl Settled {
    /// The recorded diagnostics when the outcome still holds for this pass: same snapshot,
    /// same clock facts, recorded less than [`REFRESH_MS`] ago.
    pub(crate) fn holds(
        &self,
        snapshot: &Snapshot,
        clock: &ClockFacts,
        now_ms: i64,
    ) -> Option<&[Diagnostic]> {
        let seen = self.0.as_deref()?;
        (now_ms >= seen.at_ms
            && now_ms - seen.at_ms < REFRESH_MS
            && seen.clock == *clock
            && seen.snapshot == *snapshot)
            .then_some(seen.diagnostics.as_slice())
    }

    /// Records a pass that found nothing to consolidate.
    pub(crate) fn record(
        snapshot: &Snapshot,
        clock: ClockFacts,
        now_ms: i64,
        diagnostics: Vec<Diagnostic>,
    ) -> Self {
        Settled(Some(Arc::new(Seen {
            at_ms: now_ms,
            snapshot: snapshot.clone(),
            clock,
            diagnostics,
        })))
    }

    /// When the recorded pass ran, if any.
    pub fn since_ms(&self) -> Option<i64> {
        self.0.as_ref().map(|s| s.at_ms)
    }
}

/// Two outcomes are the same when they record the same pass: same instant, clock facts,
/// diagnostics and snapshot (the same record compares by pointer first). Deterministic
/// decisions on the same input compare equal, as their tests ask.
impl PartialEq for Settled {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                Arc::ptr_eq(a, b)
                    || (a.at_ms == b.at_ms
                        && a.clock == b.clock
                        && a.diagnostics == b.diagnostics
                        && a.snapshot == b.snapshot)
            }
            _ => false,
        }
    }
}

impl Eq for Settled {}

impl std::fmt::Debug for Settled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settled")
            .field("since_ms", &self.since_ms())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disruption::testing::{aws, node, workload_pod};
    use crate::disruption::{Options, Reason, decide_settled};
    use crate::snapshot::{BoundPod, PendingPod};
    use crate::snapshot::{NodeDisruption, NodePool, PoolDisruption};
    use tandem_model::labels;
    use tandem_model::requirements::Requirement;

    /// A pod that fits anywhere by its requests but may only run on its own node.
    fn pinned(name: &str, node: &str) -> BoundPod {
        let mut pod = workload_pod(name, 500);
        let spec = PendingPod::clone(pod.disruption.spec.as_deref().expect("spec"))
            .node_selector(labels::HOSTNAME, node);
        pod.disruption.spec = Some(Arc::new(spec));
        pod
    }

    /// Two m5.large nodes with a pinned pod each, in a pool that allows only on-demand
    /// m5.large: consolidation simulates every candidate (the requests would fit) and finds
    /// nothing.
    fn nothing_to_do() -> Snapshot {
        Snapshot::new()
            .catalog("default", aws())
            .nodepool(
                NodePool::new("default", "default")
                    .require(Requirement::in_values(labels::INSTANCE_TYPE, ["m5.large"]))
                    .require(Requirement::in_values(labels::CAPACITY_TYPE, ["on-demand"])),
            )
            .node(node("a", "m5.large").pod(pinned("p", "a")))
            .node(node("b", "m5.large").pod(pinned("q", "b")))
    }

    #[test]
    fn a_settled_cluster_is_not_simulated_again_until_it_changes() {
        let o = Options::default();
        let s = nothing_to_do();
        let first = decide_settled(&s, 1_000, &o, &Settled::default());
        assert!(first.command.is_none(), "{:?}", first.command);
        assert!(first.simulations > 0, "{first:?}");
        assert_eq!(first.settled.since_ms(), Some(1_000));

        let again = decide_settled(&s, 11_000, &o, &first.settled);
        assert_eq!(again.simulations, 0, "nothing changed: nothing simulated");
        assert_eq!(
            again.diagnostics, first.diagnostics,
            "the diagnostics are replayed"
        );
        assert_eq!(again.eligible, first.eligible);
        assert_eq!(again.settled, first.settled);

        // A pod went away: node b is empty now, and the pass sees it at once.
        let mut changed = s.clone();
        changed.nodes[1].pods.clear();
        let after = decide_settled(&changed, 21_000, &o, &again.settled);
        let cmd = after.command.expect("the empty node goes");
        assert_eq!(
            (cmd.candidates, cmd.reason),
            (vec!["b".to_owned()], Reason::Empty)
        );

        // Upstream's five-minute refresh: simulated again even though nothing changed.
        let refreshed = decide_settled(&s, 1_000 + REFRESH_MS, &o, &first.settled);
        assert!(refreshed.simulations > 0);
        assert_eq!(refreshed.settled.since_ms(), Some(1_000 + REFRESH_MS));
    }

    #[test]
    fn a_node_ageing_past_consolidate_after_unsettles_the_cluster() {
        let o = Options::default();
        let s = nothing_to_do()
            .node(node("idle", "m5.large").disruption(NodeDisruption {
                created_ms: Some(0),
                last_pod_event_ms: 0,
                node_class: Some("default".to_owned()),
                ..NodeDisruption::default()
            }))
            .pool_disruption(
                "default",
                PoolDisruption {
                    consolidate_after_ms: Some(30_000),
                    ..PoolDisruption::default()
                },
            );
        let early = decide_settled(&s, 10_000, &o, &Settled::default());
        assert!(early.command.is_none());
        assert!(early.settled.since_ms().is_some());
        // The same snapshot, but the clock moved past consolidateAfter.
        let late = decide_settled(&s, 30_000, &o, &early.settled);
        let cmd = late.command.expect("the idle node goes");
        assert_eq!(cmd.candidates, vec!["idle".to_owned()]);
        assert_eq!(
            late.settled,
            Settled::default(),
            "a pass that decided is not settled"
        );
    }
}
