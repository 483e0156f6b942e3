//! Which nodes any method may look at, with the numbers the methods sort and filter by.
//!
//! A node is a candidate when it is Ready (initialized; never while initializing or deleting),
//! names its NodePool in `karpenter.sh/nodepool` and that NodePool exists, and no pending pod is
//! nominated to it (core `pkg/controllers/disruption/types.go` `NewCandidate`, reference §5.2).
//! Blocks (do-not-disrupt, PDBs) are recorded, not filtered: expiration ignores them, and the
//! voluntary methods report them as `DisruptionBlocked`.

use tandem_model::catalog::{Catalog, UsdPerHour};
use tandem_model::labels;

use crate::snapshot::{BoundPod, ExistingNode, NodePool, NodeState, PoolDisruption, Snapshot};

/// A node some method may disrupt.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Index into `Snapshot::nodes`.
    pub index: usize,
    /// The node.
    pub node: &'a ExistingNode,
    /// Its NodePool.
    pub nodepool: &'a NodePool,
    /// The NodePool's disruption settings.
    pub settings: PoolDisruption,
    /// Its NodePool's catalog, if the snapshot has it.
    pub catalog: Option<&'a Catalog>,
    /// Price of its current offering; `None` when instance type, zone or capacity type is
    /// unknown (then it is never consolidated).
    pub price: Option<UsdPerHour>,
    /// Pods that must move before it goes (not DaemonSet or mirror pods).
    pub reschedulable: Vec<&'a BoundPod>,
    /// A pod with do-not-disrupt or a PDB that allows no eviction, as a message.
    pub pod_block: Option<String>,
}

impl Candidate<'_> {
    /// Node name.
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// True when no reschedulable pod runs on it.
    pub fn is_empty(&self) -> bool {
        self.reschedulable.is_empty()
    }

    /// True when nothing happened on it for `consolidateAfter` (never when it is `Never`).
    pub fn is_consolidatable(&self, now_ms: i64) -> bool {
        self.settings
            .consolidate_after_ms
            .is_some_and(|after| now_ms - self.node.disruption.last_pod_event_ms >= after)
    }

    /// Why a voluntary (graceful or eventual) method may not take it.
    pub fn voluntary_block(&self) -> Option<String> {
        if self.node.disruption.do_not_disrupt {
            return Some(format!(
                "disruption is blocked through the \"{}\" annotation",
                super::DO_NOT_DISRUPT
            ));
        }
        self.pod_block.clone()
    }

    /// The `karpenter.sh/capacity-type` label.
    pub fn capacity_type(&self) -> Option<&str> {
        self.node
            .labels
            .get(labels::CAPACITY_TYPE)
            .map(String::as_str)
    }

    /// The `node.kubernetes.io/instance-type` label.
    pub fn instance_type(&self) -> Option<&str> {
        self.node
            .labels
            .get(labels::INSTANCE_TYPE)
            .map(String::as_str)
    }

    /// Upstream's consolidation order key (v1.14+): price over the cost of rescheduling, where
    /// each pod costs 1 (no priorities or deletion costs in the snapshot). Larger goes first.
    pub fn savings_ratio(&self) -> f64 {
        let price = self.price.map_or(0.0, UsdPerHour::as_f64);
        price / (1.0 + self.reschedulable.len() as f64)
    }
}

/// The price of the node's current offering, from its NodePool's catalog.
pub fn node_price(catalog: Option<&Catalog>, node: &ExistingNode) -> Option<UsdPerHour> {
    let it = catalog?.get(node.labels.get(labels::INSTANCE_TYPE)?)?;
    let zone = node.labels.get(labels::ZONE)?;
    let ct = node.labels.get(labels::CAPACITY_TYPE)?;
    it.offerings()
        .iter()
        .find(|o| &o.zone == zone && o.capacity_type.as_str() == ct)
        .map(|o| o.price)
}

/// Every candidate of the snapshot, in node order.
pub fn candidates(snapshot: &Snapshot) -> Vec<Candidate<'_>> {
    let mut out = Vec::new();
    for (index, node) in snapshot.nodes.iter().enumerate() {
        if node.state != NodeState::Ready || node.pods.iter().any(|p| p.nominated) {
            continue;
        }
        let Some(nodepool) = node
            .labels
            .get(labels::NODEPOOL)
            .and_then(|name| snapshot.nodepools.iter().find(|np| &np.name == name))
        else {
            continue;
        };
        let catalog = snapshot
            .catalogs
            .get(&nodepool.node_class)
            .map(AsRef::as_ref);
        let reschedulable: Vec<&BoundPod> = node
            .pods
            .iter()
            .filter(|p| p.disruption.is_reschedulable())
            .collect();
        let pod_block = reschedulable.iter().find_map(|p| {
            if p.disruption.do_not_disrupt {
                Some(format!(
                    "pod {}/{} has the \"{}\" annotation",
                    p.namespace,
                    p.name,
                    super::DO_NOT_DISRUPT
                ))
            } else {
                p.disruption.pdb_blocked.as_ref().map(|pdb| {
                    format!(
                        "pdb {pdb} prevents pod evictions (pod {}/{})",
                        p.namespace, p.name
                    )
                })
            }
        });
        out.push(Candidate {
            index,
            node,
            nodepool,
            settings: snapshot.disruption_of(&nodepool.name).into_owned(),
            catalog,
            price: node_price(catalog, node),
            reschedulable,
            pod_block,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::disruption::testing::{cluster, node, workload_pod};
    use crate::snapshot::{PodDisruption, PodOwner};

    #[test]
    fn initializing_deleting_and_nominated_nodes_are_never_candidates() {
        let s = cluster()
            .node(node("ready", "m5.large"))
            .node(node("init", "m5.large").state(NodeState::Initializing))
            .node(node("gone", "m5.large").state(NodeState::Deleting))
            .node(node("nominated", "m5.large").pod(BoundPod {
                nominated: true,
                ..workload_pod("p", 100)
            }));
        let names: Vec<String> = candidates(&s).iter().map(|c| c.name().to_owned()).collect();
        assert_eq!(names, vec!["ready"]);
    }

    #[test]
    fn daemonset_and_mirror_pods_do_not_make_a_node_non_empty() {
        let ds = BoundPod::new("kube-system", "ds", Arc::default(), Default::default()).disruption(
            PodDisruption {
                owner: PodOwner::DaemonSet,
                ..PodDisruption::default()
            },
        );
        let mirror = BoundPod::new("kube-system", "m", Arc::default(), Default::default())
            .disruption(PodDisruption {
                owner: PodOwner::Mirror,
                ..PodDisruption::default()
            });
        let s = cluster().node(node("n", "m5.large").pod(ds).pod(mirror));
        let c = candidates(&s);
        assert!(c[0].is_empty());
        assert!(
            c[0].price.is_some(),
            "m5.large on-demand in us-east-1a has a price"
        );
    }

    #[test]
    fn do_not_disrupt_pods_and_pdbs_block_voluntary_methods_with_a_reason() {
        let blocked = workload_pod("p", 100).disruption(PodDisruption {
            do_not_disrupt: true,
            ..PodDisruption::default()
        });
        let pdb = workload_pod("q", 100).disruption(PodDisruption {
            pdb_blocked: Some("default/web".to_owned()),
            ..PodDisruption::default()
        });
        let s = cluster()
            .node(node("a", "m5.large").pod(blocked))
            .node(node("b", "m5.large").pod(pdb));
        let c = candidates(&s);
        assert!(c[0].voluntary_block().unwrap().contains("do-not-disrupt"));
        assert!(c[1].voluntary_block().unwrap().contains("pdb default/web"));
    }
}
