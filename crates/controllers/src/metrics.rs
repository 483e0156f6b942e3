//! The node layer's Prometheus metrics under upstream's names (`karpenter_…`), computed from
//! the published [`ClusterState`] so they can never disagree with what the controllers saw.
//!
//! Gauges are rebuilt whole on every [`NodeLayerMetrics::observe`]: a NodePool or Node that
//! disappeared takes its series with it, as upstream's state metrics do.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
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

/// Labels of `karpenter_pods_state`: one series per pod, with the facts of the node it is
/// bound to (empty when unbound), as upstream's pod metrics controller exports them.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PodState {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Self link of the first owner (`/apis/apps/v1/namespaces/ns/replicasets/x`), or empty.
    pub owner: String,
    /// `spec.nodeName`.
    pub node: String,
    /// `true` once bound.
    pub scheduled: String,
    /// `karpenter.sh/nodepool` of the node.
    pub nodepool: String,
    /// `topology.kubernetes.io/zone` of the node.
    pub zone: String,
    /// `kubernetes.io/arch` of the node.
    pub arch: String,
    /// `karpenter.sh/capacity-type` of the node.
    pub capacity_type: String,
    /// `node.kubernetes.io/instance-type` of the node.
    pub instance_type: String,
    /// `status.phase`.
    pub phase: String,
    /// The pod's Ready condition (`true`/`false`).
    pub ready: String,
    /// `true` when the node belongs to a NodePool.
    pub managed: String,
}

/// The gauges; clone-cheap handles registered once in a [`Registry`].
#[derive(Debug, Clone, Default)]
pub struct NodeLayerMetrics {
    pods_state: Family<PodState, Gauge>,
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
            "The amount of resources provisioned by a NodePool",
            m.nodepool_usage.clone(),
        );
        registry.register(
            "karpenter_nodepools_limit",
            "The NodePool's limits (spec.limits)",
            m.nodepool_limit.clone(),
        );
        registry.register(
            "karpenter_nodes_allocatable",
            "Node allocatable resources",
            m.node_allocatable.clone(),
        );
        registry.register(
            "karpenter_cluster_state_node_count",
            "Current count of nodes in cluster state",
            m.node_count.clone(),
        );
        registry.register(
            "karpenter_cluster_state_synced",
            "1 when the cluster state is synced with the API server, else 0",
            m.synced.clone(),
        );
        registry.register(
            "karpenter_pods_state",
            "Pod state: one series per pod, labelled by its node's pool, zone, architecture, \
             capacity type and instance type, and its phase",
            m.pods_state.clone(),
        );
        registry.register(
            "karpenter_scheduler_unschedulable_pods_count",
            "Pods the last snapshot holds as pending for the provisioner",
            m.unschedulable.clone(),
        );
        m
    }

    /// Recomputes every gauge from one state.
    pub fn observe(&self, st: &ClusterState) {
        self.nodepool_usage.clear();
        self.nodepool_limit.clear();
        self.node_allocatable.clear();
        self.pods_state.clear();
        let bound = st.pods_by_node.values().flatten();
        for pod in bound.chain(st.other_pods.iter()) {
            let node = pod.node_name.as_deref();
            let labels = node
                .and_then(|n| st.nodes.get(n))
                .and_then(|n| n.metadata.labels.as_ref());
            self.pods_state
                .get_or_create(&pod_state(pod, node, labels))
                .set(1);
        }
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

fn pod_state(
    pod: &tandem_state::PodView,
    node: Option<&str>,
    node_labels: Option<&std::collections::BTreeMap<String, String>>,
) -> PodState {
    let label = |k: &str| {
        node_labels
            .and_then(|l| l.get(k))
            .cloned()
            .unwrap_or_default()
    };
    let namespace = pod.namespace.clone();
    let owner = pod
        .owners
        .first()
        .map(|o| {
            format!(
                "/apis/{}/namespaces/{namespace}/{}s/{}",
                o.api_version,
                o.kind.to_lowercase(),
                o.name
            )
        })
        .unwrap_or_default();
    let nodepool = label(tandem_model::labels::NODEPOOL);
    PodState {
        name: pod.name.clone(),
        namespace,
        owner,
        node: node.unwrap_or_default().to_owned(),
        scheduled: node.is_some().to_string(),
        managed: (!nodepool.is_empty()).to_string(),
        nodepool,
        zone: label(tandem_model::labels::ZONE),
        arch: label(tandem_model::labels::ARCH),
        capacity_type: label(tandem_model::labels::CAPACITY_TYPE),
        instance_type: label(tandem_model::labels::INSTANCE_TYPE),
        phase: pod.phase.clone().unwrap_or_default(),
        ready: pod.ready.to_string(),
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

/// Labels of `karpenter_voluntary_disruption_eligible_nodes`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DisruptionReason {
    /// `empty`, `drifted`, `expired`, `underutilized`.
    pub reason: String,
}

/// Labels of `karpenter_interruption_received_messages_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageType {
    /// Upstream's message kind (`spot_interrupted`, `rebalance_recommendation` …).
    pub message_type: String,
}

/// The disruption and interruption loops' counters; clone-cheap handles. Unregistered (the
/// default) they count into nothing visible.
#[derive(Debug, Clone, Default)]
pub struct DisruptionMetrics {
    /// `karpenter_interruption_received_messages_total`: notices received, by kind.
    pub interruption_received: Family<MessageType, Counter>,
    /// `karpenter_voluntary_disruption_eligible_nodes`: candidates each reason's methods
    /// wanted in the last pass.
    pub eligible: Family<DisruptionReason, Gauge>,
    /// `karpenter_nodeclaims_disrupted_total`: candidates whose NodeClaim was deleted.
    pub nodeclaims_disrupted: Family<Disrupted, Counter>,
    /// `karpenter_voluntary_disruption_decisions_total`: commands executed past validation.
    pub decisions: Family<DisruptionDecision, Counter>,
}

impl DisruptionMetrics {
    /// Registers the counters (the `_total` suffix is added by the encoder).
    pub fn register(registry: &mut Registry) -> Self {
        let m = DisruptionMetrics::default();
        registry.register(
            "karpenter_nodeclaims_disrupted",
            "Number of nodeclaims disrupted, by reason, nodepool and capacity type",
            m.nodeclaims_disrupted.clone(),
        );
        registry.register(
            "karpenter_voluntary_disruption_eligible_nodes",
            "Nodes a disruption reason's methods wanted in the last pass, before blocks and budgets",
            m.eligible.clone(),
        );
        registry.register(
            "karpenter_interruption_received_messages",
            "Count of interruption messages received, by message type",
            m.interruption_received.clone(),
        );
        registry.register(
            "karpenter_voluntary_disruption_decisions",
            "Number of disruption decisions performed",
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

/// Labels of `karpenter_scheduler_scheduling_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SchedulingController {
    /// `provisioner` (the only scheduling simulation the provisioner runs).
    pub controller: String,
}

/// Upstream's duration buckets (seconds): 5 ms … 60 s.
const DURATION_BUCKETS: [f64; 18] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0,
    50.0, 60.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The NodeClaim counters of the provisioner and the lifecycle loop, and the provisioner's
/// scheduling-simulation duration; clone-cheap handles.
#[derive(Debug, Clone)]
pub struct LifecycleMetrics {
    /// `karpenter_scheduler_scheduling_duration_seconds`: one observation per plan.
    pub scheduling_duration: Family<SchedulingController, Histogram, fn() -> Histogram>,
    /// `karpenter_nodeclaims_created_total`.
    pub created: Family<Created, Counter>,
    /// `karpenter_nodeclaims_terminated_total`: claims whose instance is gone and whose
    /// finalizer came off.
    pub terminated: Family<Terminated, Counter>,
}

impl Default for LifecycleMetrics {
    fn default() -> Self {
        LifecycleMetrics {
            scheduling_duration: Family::new_with_constructor(duration_histogram),
            created: Family::default(),
            terminated: Family::default(),
        }
    }
}

impl LifecycleMetrics {
    /// Registers the counters (the `_total` suffix is added by the encoder) and the histogram.
    pub fn register(registry: &mut Registry) -> Self {
        let m = LifecycleMetrics::default();
        registry.register(
            "karpenter_scheduler_scheduling_duration_seconds",
            "Duration of the scheduling simulation the provisioner runs per batch",
            m.scheduling_duration.clone(),
        );
        registry.register(
            "karpenter_nodeclaims_created",
            "Number of nodeclaims created, by reason and nodepool",
            m.created.clone(),
        );
        registry.register(
            "karpenter_nodeclaims_terminated",
            "Number of nodeclaims terminated, by nodepool, capacity type and zone",
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
    fn pods_state_has_one_series_per_pod_with_its_node_facts() {
        use k8s_openapi::api::core::v1::{Node, Pod};
        use std::sync::Arc;
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {
                "karpenter.sh/nodepool": "default", "topology.kubernetes.io/zone": "z-a",
                "kubernetes.io/arch": "amd64", "karpenter.sh/capacity-type": "spot",
                "node.kubernetes.io/instance-type": "c-2x"}}}))
        .unwrap();
        let bound: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d", "uid": "u"}]},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap();
        let pending: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-2", "namespace": "shop"},
            "spec": {"containers": []}, "status": {"phase": "Pending"}}))
        .unwrap();
        let mut st = ClusterState::default();
        st.nodes.insert("n1".into(), Arc::new(node));
        let view = |p: &Pod| Arc::new(tandem_state::PodView::new(p, Arc::default()));
        st.pods_by_node.insert("n1".into(), vec![view(&bound)]);
        st.other_pods.push(view(&pending));
        let mut registry = Registry::default();
        let m = NodeLayerMetrics::register(&mut registry);
        m.observe(&st);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        assert!(
            out.contains(
                "karpenter_pods_state{name=\"web-1\",namespace=\"shop\",\
                 owner=\"/apis/apps/v1/namespaces/shop/replicasets/web-7d\",node=\"n1\",\
                 scheduled=\"true\",nodepool=\"default\",zone=\"z-a\",arch=\"amd64\",\
                 capacity_type=\"spot\",instance_type=\"c-2x\",phase=\"Running\",\
                 ready=\"true\",managed=\"true\"} 1"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "karpenter_pods_state{name=\"web-2\",namespace=\"shop\",owner=\"\",node=\"\",\
                 scheduled=\"false\",nodepool=\"\",zone=\"\",arch=\"\",capacity_type=\"\",\
                 instance_type=\"\",phase=\"Pending\",ready=\"false\",managed=\"false\"} 1"
            ),
            "{out}"
        );
        // A pod that is gone takes its series with it.
        st.other_pods.clear();
        m.observe(&st);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        assert!(!out.contains("web-2"), "{out}");
    }

    #[test]
    fn the_scheduling_histogram_uses_upstream_name_and_buckets() {
        let mut registry = Registry::default();
        let m = LifecycleMetrics::register(&mut registry);
        m.scheduling_duration
            .get_or_create(&SchedulingController {
                controller: "provisioner".into(),
            })
            .observe(0.02);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        assert!(
            out.contains(
                "karpenter_scheduler_scheduling_duration_seconds_bucket{le=\"0.025\",controller=\"provisioner\"} 1"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "karpenter_scheduler_scheduling_duration_seconds_bucket{le=\"0.01\",controller=\"provisioner\"} 0"
            ),
            "{out}"
        );
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
