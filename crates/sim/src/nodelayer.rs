//! The one adapter between the simulator and the node layer (`tandem-nodescaler`).
//!
//! Everything the simulator asks of the node layer goes through here, so when nodescaler's API
//! moves (it is young) or gains `disruption`, only this file changes:
//! - [`Batcher`]: Karpenter's provisioning batch window (`BATCH_IDLE_DURATION` 1 s,
//!   `BATCH_MAX_DURATION` 10 s, core `pkg/controllers/provisioning/batcher.go`);
//! - [`provision`]: `nodescaler::plan` over a snapshot the simulator builds;
//! - [`emptiness`]: a minimal, clearly-named stand-in for disruption: a node without pods for
//!   `consolidateAfter` is removed, within the NodePool's budgets. Underutilization,
//!   multi-node consolidation, drift and expiration are not simulated yet
//!   ([`CONSOLIDATION_NOTE`] says so in every report).

use tandem_nodescaler::snapshot::Snapshot;
use tandem_nodescaler::{Options, Plan};

use crate::input::{Budget, PoolInput};

/// Printed in every report until `nodescaler::disruption` exists.
pub const CONSOLIDATION_NOTE: &str =
    "consolidation: emptiness only until nodescaler::disruption lands";

/// Plans capacity for the snapshot's pending pods.
pub fn provision(snapshot: &Snapshot, options: &Options) -> Plan {
    tandem_nodescaler::plan(snapshot, options)
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

/// The minimal emptiness method.
pub mod emptiness {
    use super::{Budget, PoolInput};

    /// A node as emptiness sees it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Candidate {
        /// Node id.
        pub id: u64,
        /// Pool index.
        pub pool: usize,
        /// No pods bound or nominated.
        pub empty: bool,
        /// Last time a pod was added to or removed from it (or it became Ready).
        pub last_pod_event_ms: i64,
        /// Already being disrupted (counts against budgets).
        pub disrupting: bool,
    }

    /// Nodes to remove now: empty for at least their pool's `consolidateAfter`, at most as many
    /// per pool as its tightest budget allows (default 10%, rounded up), oldest-empty first.
    pub fn select(nodes: &[Candidate], pools: &[PoolInput], now: i64) -> Vec<u64> {
        let mut out = Vec::new();
        for (p, pool) in pools.iter().enumerate() {
            let Some(after) = pool.consolidate_after_ms else {
                continue;
            };
            let in_pool: Vec<&Candidate> = nodes.iter().filter(|n| n.pool == p).collect();
            let total = in_pool.len();
            let disrupting = in_pool.iter().filter(|n| n.disrupting).count();
            let allowed = if pool.budgets.is_empty() {
                Budget::Percent(10).allowed(total)
            } else {
                pool.budgets
                    .iter()
                    .map(|b| b.allowed(total))
                    .min()
                    .unwrap_or(0)
            }
            .saturating_sub(disrupting);
            let mut ready: Vec<&&Candidate> = in_pool
                .iter()
                .filter(|n| n.empty && !n.disrupting && now - n.last_pod_event_ms >= after)
                .collect();
            ready.sort_by_key(|n| (n.last_pod_event_ms, n.id));
            out.extend(ready.into_iter().take(allowed).map(|n| n.id));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::emptiness::{Candidate, select};
    use super::*;
    use tandem_nodescaler::snapshot::NodePool;

    fn pool(after: Option<i64>, budgets: Vec<Budget>) -> PoolInput {
        PoolInput {
            pool: NodePool::new("p", "c"),
            consolidate_after_ms: after,
            budgets,
        }
    }

    fn node(id: u64, empty: bool, last: i64) -> Candidate {
        Candidate {
            id,
            pool: 0,
            empty,
            last_pod_event_ms: last,
            disrupting: false,
        }
    }

    #[test]
    fn empty_node_past_consolidate_after_is_removed_within_budget() {
        let nodes: Vec<Candidate> = (0..11).map(|i| node(i, i < 5, 0)).collect();
        // 10% of 11 nodes, rounded up: 2.
        assert_eq!(
            select(&nodes, &[pool(Some(60_000), vec![])], 60_000),
            vec![0, 1]
        );
        assert!(select(&nodes, &[pool(Some(60_000), vec![])], 59_999).is_empty());
        assert!(select(&nodes, &[pool(None, vec![])], 1 << 40).is_empty());
        let all = select(&nodes, &[pool(Some(0), vec![Budget::Percent(100)])], 0);
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
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
