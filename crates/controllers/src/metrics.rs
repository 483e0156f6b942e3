//! The node layer's Prometheus metrics under upstream's names (`karpenter_…`), computed from
//! the published [`ClusterState`] so they can never disagree with what the controllers saw.
//!
//! Gauges are rebuilt whole on every [`NodeLayerMetrics::observe`]: a NodePool or Node that
//! disappeared takes its series with it, as upstream's state metrics do.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tandem_api::quantity::ResourceList;
use tandem_state::ClusterState;

type FloatGauge = Gauge<f64, AtomicU64>;

/// Labels of the NodePool gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolResource {
    /// NodePool name.
    pub nodepool: String,
    /// `cpu`, `memory`, `pods`, `nodes` …
    pub resource_type: String,
}

/// Labels of the per-node gauges (a subset of upstream's: the well-known labels we index).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeResource {
    /// Node name.
    pub node_name: String,
    /// `karpenter.sh/nodepool` of the node, empty when not managed.
    pub nodepool: String,
    /// `true` when a NodePool owns the node.
    pub managed: String,
    /// Resource name.
    pub resource_type: String,
}

/// The gauges; clone-cheap handles registered once in a [`Registry`].
#[derive(Debug, Clone, Default)]
pub struct NodeLayerMetrics {
    nodepool_usage: Family<PoolResource, FloatGauge>,
    nodepool_limit: Family<PoolResource, FloatGauge>,
    node_allocatable: Family<NodeResource, FloatGauge>,
    node_count: Gauge,
    synced: Gauge,
    unschedulable: Gauge,
}

impl NodeLayerMetrics {
    /// Registers every gauge (names without the `_total`/unit suffix handling: these are
    /// plain gauges, as upstream's).
    pub fn register(registry: &mut Registry) -> Self {
        let m = NodeLayerMetrics::default();
        registry.register(
            "karpenter_nodepools_usage",
            "The amount of resources provisioned by a NodePool.",
            m.nodepool_usage.clone(),
        );
        registry.register(
            "karpenter_nodepools_limit",
            "The NodePool's limits (spec.limits).",
            m.nodepool_limit.clone(),
        );
        registry.register(
            "karpenter_nodes_allocatable",
            "Node allocatable resources.",
            m.node_allocatable.clone(),
        );
        registry.register(
            "karpenter_cluster_state_node_count",
            "Current count of nodes in cluster state.",
            m.node_count.clone(),
        );
        registry.register(
            "karpenter_cluster_state_synced",
            "1 when the cluster state is synced with the API server, else 0.",
            m.synced.clone(),
        );
        registry.register(
            "karpenter_scheduler_unschedulable_pods_count",
            "Pods the last snapshot holds as pending for the provisioner.",
            m.unschedulable.clone(),
        );
        m
    }

    /// Recomputes every gauge from one state.
    pub fn observe(&self, st: &ClusterState) {
        self.nodepool_usage.clear();
        self.nodepool_limit.clear();
        self.node_allocatable.clear();
        for (name, np) in &st.nodepools {
            let usage = np.status.as_ref().map(|s| &s.resources);
            set_all(&self.nodepool_usage, name, usage);
            set_all(&self.nodepool_limit, name, Some(&np.spec.limits));
        }
        for (name, node) in &st.nodes {
            let pool = node
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("karpenter.sh/nodepool"))
                .cloned()
                .unwrap_or_default();
            let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
            for (resource, q) in alloc.into_iter().flatten() {
                if let Some(v) = value(&q.0) {
                    self.node_allocatable
                        .get_or_create(&NodeResource {
                            node_name: name.clone(),
                            managed: (!pool.is_empty()).to_string(),
                            nodepool: pool.clone(),
                            resource_type: resource.clone(),
                        })
                        .set(v);
                }
            }
        }
        self.node_count
            .set(i64::try_from(st.nodes.len()).unwrap_or(i64::MAX));
        self.synced.set(i64::from(st.synced));
        self.unschedulable
            .set(i64::try_from(st.snapshot.pods.len()).unwrap_or(i64::MAX));
    }
}

fn set_all(family: &Family<PoolResource, FloatGauge>, pool: &str, list: Option<&ResourceList>) {
    for (resource, q) in list.into_iter().flatten() {
        if let Some(v) = value(q.as_str()) {
            family
                .get_or_create(&PoolResource {
                    nodepool: pool.to_owned(),
                    resource_type: resource.clone(),
                })
                .set(v);
        }
    }
}

/// Labels of `karpenter_nodeclaims_disrupted_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Disrupted {
    /// `empty`, `drifted`, `expired`, `underutilized`.
    pub reason: String,
    /// NodePool of the claim.
    pub nodepool: String,
    /// `spot` or `on-demand`.
    pub capacity_type: String,
}

/// Labels of `karpenter_voluntary_disruption_decisions_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DisruptionDecision {
    /// `delete` or `replace`.
    pub decision: String,
    /// `empty`, `drifted`, `expired`, `underutilized`.
    pub reason: String,
    /// `empty`, `drift`, `expiration`, `multi`, `single`.
    pub consolidation_type: String,
}

/// The disruption loop's counters; clone-cheap handles. Unregistered (the default) they count
/// into nothing visible.
#[derive(Debug, Clone, Default)]
pub struct DisruptionMetrics {
    /// `karpenter_nodeclaims_disrupted_total`: candidates whose NodeClaim was deleted.
    pub nodeclaims_disrupted: Family<Disrupted, Counter>,
    /// `karpenter_voluntary_disruption_decisions_total`: commands executed past validation.
    pub decisions: Family<DisruptionDecision, Counter>,
}

impl DisruptionMetrics {
    /// Registers both counters (the `_total` suffix is added by the encoder).
    pub fn register(registry: &mut Registry) -> Self {
        let m = DisruptionMetrics::default();
        registry.register(
            "karpenter_nodeclaims_disrupted",
            "Number of nodeclaims disrupted, by reason, nodepool and capacity type.",
            m.nodeclaims_disrupted.clone(),
        );
        registry.register(
            "karpenter_voluntary_disruption_decisions",
            "Number of disruption decisions performed.",
            m.decisions.clone(),
        );
        m
    }
}

/// Labels of `karpenter_nodeclaims_created_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Created {
    /// Why: `provisioning` for the provisioner's launches, the disruption reason for
    /// replacements.
    pub reason: String,
    /// NodePool.
    pub nodepool: String,
    /// `true` when minValues was relaxed (never today: Tandem keeps minValues strict).
    pub min_values_relaxed: String,
}

/// Labels of `karpenter_nodeclaims_terminated_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Terminated {
    /// NodePool.
    pub nodepool: String,
    /// `karpenter.sh/capacity-type` of the claim.
    pub capacity_type: String,
    /// `topology.kubernetes.io/zone` of the claim.
    pub zone: String,
}

/// The NodeClaim counters of the provisioner and the lifecycle loop; clone-cheap handles.
#[derive(Debug, Clone, Default)]
pub struct LifecycleMetrics {
    /// `karpenter_nodeclaims_created_total`.
    pub created: Family<Created, Counter>,
    /// `karpenter_nodeclaims_terminated_total`: claims whose instance is gone and whose
    /// finalizer came off.
    pub terminated: Family<Terminated, Counter>,
}

impl LifecycleMetrics {
    /// Registers both counters (the `_total` suffix is added by the encoder).
    pub fn register(registry: &mut Registry) -> Self {
        let m = LifecycleMetrics::default();
        registry.register(
            "karpenter_nodeclaims_created",
            "Number of nodeclaims created, by reason and nodepool.",
            m.created.clone(),
        );
        registry.register(
            "karpenter_nodeclaims_terminated",
            "Number of nodeclaims terminated, by nodepool, capacity type and zone.",
            m.terminated.clone(),
        );
        m
    }
}

/// A quantity as the float upstream exports (cores for cpu, bytes for memory).
fn value(text: &str) -> Option<f64> {
    let q: tandem_model::quantity::Quantity = text.parse().ok()?;
    // Precision loss above 2^53 nano-units is irrelevant for a gauge.
    #[allow(clippy::cast_precision_loss)]
    Some(q.as_nanos() as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_exported_in_base_units() {
        assert_eq!(value("500m"), Some(0.5));
        assert_eq!(value("2Gi"), Some(2_147_483_648.0));
        assert_eq!(value("lots"), None);
    }

    #[test]
    fn an_empty_state_exports_zero_counts() {
        let mut registry = Registry::default();
        let m = NodeLayerMetrics::register(&mut registry);
        m.observe(&ClusterState::default());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        assert!(
            out.contains("karpenter_cluster_state_node_count 0"),
            "{out}"
        );
        assert!(out.contains("karpenter_cluster_state_synced 0"), "{out}");
    }

    #[test]
    fn disruption_counters_use_upstream_names() {
        let mut registry = Registry::default();
        let m = DisruptionMetrics::register(&mut registry);
        m.nodeclaims_disrupted
            .get_or_create(&Disrupted {
                reason: "empty".into(),
                nodepool: "p".into(),
                capacity_type: "spot".into(),
            })
            .inc();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        assert!(
            out.contains(
                "karpenter_nodeclaims_disrupted_total{reason=\"empty\",nodepool=\"p\",capacity_type=\"spot\"} 1"
            ),
            "{out}"
        );
    }
}
