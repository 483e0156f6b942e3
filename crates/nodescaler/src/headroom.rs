//! Warm capacity: a NodePool keeps room for a few pods (or a few spare nodes) ready before any
//! pod asks, so a burst's first pods start in seconds instead of after a node boot.
//!
//! Configured by NodePool annotations rather than a new CRD: the users' NodePool YAML stays
//! the one place that says what a pool is, GitOps diffs stay one line, and there is no extra
//! CRD to install, version and grant RBAC for. The price is one shape per pool; a pool that
//! needs several shapes can be split, and a CRD can come later without breaking this.
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     tandem.dev/headroom: "pods=4,cpu=500m,memory=512Mi"   # room for 4 such pods
//!     # or "nodes=2,cpu=2,memory=4Gi": 2 spare nodes, each with at least that much free
//!     tandem.dev/headroom-schedule: "0 8 * * 1-5"            # optional, UTC cron
//!     tandem.dev/headroom-duration: "10h"                    # required with a schedule
//! ```
//!
//! The headroom becomes [`Anticipated`] stand-in pods pinned to the pool (its nodepool label,
//! tolerating its taints), planned after every real pod: real pods take the room first, and
//! the next pass launches again to replenish it. Launches count against the pool's limits like
//! any other. Outside the schedule's window, or with zero pods, there is no headroom, so
//! scale-to-zero stays possible. The shell also hands the stand-ins to disruption as
//! comebacks, so consolidation does not remove the room it just launched.

use thiserror::Error;

use tandem_model::labels;
use tandem_model::quantity::Quantity;
use tandem_model::resources::{Bytes, MilliCpu, Resources};
use tandem_model::taints::Toleration;

use crate::provisioning::anticipation::{Anticipated, AnticipationKind};
use crate::selector::LabelSelector;
use crate::snapshot::{NodePool, PendingPod};

/// The NodePool annotation holding the headroom.
pub const ANNOTATION: &str = "tandem.dev/headroom";
/// Optional five-field UTC cron that opens the headroom's window.
pub const SCHEDULE_ANNOTATION: &str = "tandem.dev/headroom-schedule";
/// How long each window stays open (a Go duration such as `10h`); required with a schedule.
pub const DURATION_ANNOTATION: &str = "tandem.dev/headroom-duration";

/// A NodePool's warm capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headroom {
    /// How many pods (or spare nodes).
    pub count: u32,
    /// True for `nodes=N`: each unit needs a node of its own.
    pub spare_nodes: bool,
    /// Room per unit (`cpu`, `memory`; defaults 1 CPU and 1 GiB).
    pub requests: Resources,
    /// `(cron, window ms)`: headroom only while a window is open; `None`: always.
    pub schedule: Option<(String, i64)>,
}

/// Why a headroom annotation cannot be used; the message names the annotation and the part.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeadroomError {
    /// A `key=value` item that is not one.
    #[error(
        "{ANNOTATION}: {0:?} is not key=value (expected e.g. \"pods=4,cpu=500m,memory=512Mi\")"
    )]
    Item(String),
    /// An unknown key.
    #[error("{ANNOTATION}: unknown key {0:?} (known: pods, nodes, cpu, memory)")]
    Key(String),
    /// A count that is not a non-negative integer.
    #[error("{ANNOTATION}: {key}={value:?} is not a whole number")]
    Count {
        /// `pods` or `nodes`.
        key: String,
        /// What was written.
        value: String,
    },
    /// Both or neither of `pods` and `nodes`.
    #[error("{ANNOTATION}: give exactly one of pods=N or nodes=N")]
    Unit,
    /// A quantity that does not parse or is not positive.
    #[error("{ANNOTATION}: {key}={value:?} is not a positive quantity")]
    Quantity {
        /// `cpu` or `memory`.
        key: String,
        /// What was written.
        value: String,
    },
    /// A schedule without a duration (or the reverse), or a schedule that does not parse.
    #[error("{SCHEDULE_ANNOTATION}/{DURATION_ANNOTATION}: {0}")]
    Schedule(String),
}

impl Headroom {
    /// Reads the annotation value, with the schedule and its window (already converted to ms
    /// by the shell, which owns Go-duration parsing).
    pub fn parse(
        value: &str,
        schedule: Option<&str>,
        window_ms: Option<i64>,
    ) -> Result<Headroom, HeadroomError> {
        let mut pods = None;
        let mut nodes = None;
        let mut requests = Resources::cpu_memory(MilliCpu(1_000), Bytes::from_mib(1_024));
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, val) = item
                .split_once('=')
                .ok_or_else(|| HeadroomError::Item(item.to_owned()))?;
            let (key, val) = (key.trim(), val.trim());
            let count = || {
                val.parse::<u32>().map_err(|_| HeadroomError::Count {
                    key: key.to_owned(),
                    value: val.to_owned(),
                })
            };
            let quantity = || {
                val.parse::<Quantity>()
                    .ok()
                    .filter(|q| q.as_milli() > 0)
                    .ok_or_else(|| HeadroomError::Quantity {
                        key: key.to_owned(),
                        value: val.to_owned(),
                    })
            };
            match key {
                "pods" => pods = Some(count()?),
                "nodes" => nodes = Some(count()?),
                "cpu" | "memory" => requests.set(key, &quantity()?),
                other => return Err(HeadroomError::Key(other.to_owned())),
            }
        }
        let (count, spare_nodes) = match (pods, nodes) {
            (Some(n), None) => (n, false),
            (None, Some(n)) => (n, true),
            _ => return Err(HeadroomError::Unit),
        };
        let schedule = match (schedule, window_ms) {
            (None, None) => None,
            (Some(s), Some(ms)) if ms > 0 => {
                crate::disruption::budgets::window_open(s, ms, 0).map_err(|()| {
                    HeadroomError::Schedule(format!("{s:?} is not a five-field cron"))
                })?;
                Some((s.to_owned(), ms))
            }
            (Some(_), Some(_)) => {
                return Err(HeadroomError::Schedule(
                    "the duration must be positive".into(),
                ));
            }
            (Some(_), None) => {
                return Err(HeadroomError::Schedule(format!(
                    "a schedule needs {DURATION_ANNOTATION}"
                )));
            }
            (None, Some(_)) => {
                return Err(HeadroomError::Schedule(format!(
                    "a duration needs {SCHEDULE_ANNOTATION}"
                )));
            }
        };
        Ok(Headroom {
            count,
            spare_nodes,
            requests,
            schedule,
        })
    }

    /// The stand-ins the pool needs at `now_ms`, or `None` outside the window or at zero.
    pub fn anticipated(&self, pool: &NodePool, now_ms: i64) -> Option<Anticipated> {
        if self.count == 0 {
            return None;
        }
        if let Some((cron, window)) = &self.schedule
            && !crate::disruption::budgets::window_open(cron, *window, now_ms).unwrap_or(false)
        {
            return None;
        }
        let mut pod = PendingPod::new("tandem-headroom", &pool.name, self.requests.clone())
            .label(ANNOTATION, &pool.name)
            .node_selector(labels::NODEPOOL, &pool.name);
        pod.tolerations = pool
            .taints
            .iter()
            .chain(&pool.startup_taints)
            .map(|t| Toleration::equal(&t.key, &t.value, Some(t.effect)))
            .collect();
        if self.spare_nodes {
            pod = pod.anti_affinity(
                labels::HOSTNAME,
                LabelSelector::labels([(ANNOTATION, pool.name.as_str())]),
            );
        }
        Some(Anticipated {
            source: format!("headroom/{}", pool.name),
            kind: AnticipationKind::Headroom,
            pod,
            count: self.count,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tandem_model::catalog::Catalog;
    use tandem_model::taints::{Taint, TaintEffect};

    use super::*;
    use crate::provisioning::anticipation::is_anticipated;
    use crate::provisioning::{Options, plan_anticipating};
    use crate::snapshot::{ExistingNode, Snapshot, requests};

    /// 2026-11-25T00:00:00Z, a Wednesday.
    const MIDNIGHT: i64 = 1_795_564_800_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn parses_pods_nodes_and_schedules_and_names_what_is_wrong() {
        let h = Headroom::parse("pods=4,cpu=500m,memory=512Mi", None, None).unwrap();
        assert_eq!((h.count, h.spare_nodes), (4, false));
        assert_eq!(h.requests, requests(500, 512));
        let n = Headroom::parse("nodes=2", Some("0 8 * * 1-5"), Some(10 * HOUR)).unwrap();
        assert_eq!((n.count, n.spare_nodes), (2, true));
        assert_eq!(n.requests, requests(1_000, 1_024));
        let err = |v: &str| Headroom::parse(v, None, None).unwrap_err().to_string();
        assert!(err("pods=four").contains("pods=\"four\" is not a whole number"));
        assert!(err("pods=1,cpu=-1").contains("cpu=\"-1\" is not a positive quantity"));
        assert!(err("pods=1,gpu=1").contains("unknown key \"gpu\""));
        assert!(err("pods=1,nodes=1").contains("exactly one of"));
        assert!(err("cpu=1").contains("exactly one of"));
        assert!(err("pods").contains("is not key=value"));
        let sched = Headroom::parse("pods=1", Some("0 8 * * 1-5"), None).unwrap_err();
        assert!(
            sched
                .to_string()
                .contains("needs tandem.dev/headroom-duration")
        );
        let bad = Headroom::parse("pods=1", Some("every morning"), Some(HOUR)).unwrap_err();
        assert!(bad.to_string().contains("not a five-field cron"), "{bad}");
    }

    fn pool() -> NodePool {
        NodePool::new("warm", "default").taint(Taint::new("team", "a", TaintEffect::NoSchedule))
    }

    fn snap(h: &Headroom, now: i64) -> Snapshot {
        let mut s = Snapshot::new()
            .catalog("default", Arc::new(Catalog::kwok()))
            .nodepool(pool());
        s.anticipated.extend(h.anticipated(&pool(), now));
        s
    }

    #[test]
    fn headroom_launches_on_its_own_pool_and_follows_the_window() {
        let h = Headroom::parse(
            "pods=3,cpu=1,memory=1Gi",
            Some("0 8 * * 1-5"),
            Some(10 * HOUR),
        )
        .unwrap();
        let inside = plan_anticipating(&snap(&h, MIDNIGHT + 9 * HOUR), &Options::default());
        let stand_ins: usize = inside.launches.iter().map(|l| l.pods.len()).sum();
        assert_eq!(stand_ins, 3);
        assert!(inside.launches.iter().all(|l| l.nodepool == "warm"));
        assert!(
            inside
                .launches
                .iter()
                .flat_map(|l| &l.pods)
                .all(is_anticipated)
        );
        let night = plan_anticipating(&snap(&h, MIDNIGHT + 20 * HOUR), &Options::default());
        assert!(
            night.launches.is_empty(),
            "scale to zero outside the window"
        );
        let zero = Headroom::parse("pods=0", None, None).unwrap();
        assert!(zero.anticipated(&pool(), MIDNIGHT).is_none());
    }

    #[test]
    fn spare_nodes_each_get_a_node_and_existing_room_counts() {
        let h = Headroom::parse("nodes=2,cpu=1,memory=1Gi", None, None).unwrap();
        let p = plan_anticipating(&snap(&h, MIDNIGHT), &Options::default());
        assert_eq!(p.launches.len(), 2);
        // A warm node with room already: one launch fewer.
        let mut s = snap(&h, MIDNIGHT);
        s.nodes.push(
            ExistingNode::new("warm-1", {
                let mut r = requests(4_000, 8_192);
                r.pods = 110;
                r
            })
            .label(labels::NODEPOOL, "warm")
            .taint(Taint::new("team", "a", TaintEffect::NoSchedule)),
        );
        assert_eq!(plan_anticipating(&s, &Options::default()).launches.len(), 1);
    }
}
