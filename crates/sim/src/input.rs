//! Everything a run needs, already converted: the shell builds this from a scenario file and the
//! user's manifests (`tandem_manifest::convert`), tests and benchmarks build it in code.

use std::collections::BTreeMap;
use std::sync::Arc;

use tandem_model::catalog::Catalog;
use tandem_nodescaler::Options;
use tandem_nodescaler::disruption;
use tandem_nodescaler::snapshot::{
    self as snap, BudgetNodes, ConsolidationPolicy, NodePool, PendingPod, PoolDisruption,
};
use tandem_podscaler::decision::ScaledObjectConfig;

use crate::cloud::CloudConfig;
use crate::pattern::Pattern;

/// A NodePool with the disruption settings the simulator applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInput {
    /// What provisioning reads.
    pub pool: NodePool,
    /// `consolidateAfter` in ms; `None` is `Never`.
    pub consolidate_after_ms: Option<i64>,
    /// Budgets without a schedule that limit emptiness: `(count, percent)`, the minimum wins;
    /// empty means upstream's default 10%.
    pub budgets: Vec<Budget>,
}

impl PoolInput {
    /// The disruption settings the simulator applies: `consolidateAfter` and the budgets above,
    /// upstream's default policy (`WhenEmptyOrUnderutilized`), no expiry (runs are hours long)
    /// and no hash (nothing drifts unless [`SimInput::pool_disruption`] says so).
    pub fn disruption(&self) -> PoolDisruption {
        PoolDisruption {
            policy: ConsolidationPolicy::WhenEmptyOrUnderutilized,
            consolidate_after_ms: self.consolidate_after_ms,
            budgets: if self.budgets.is_empty() {
                PoolDisruption::default().budgets
            } else {
                self.budgets
                    .iter()
                    .map(|b| {
                        snap::Budget::nodes(match *b {
                            Budget::Count(n) => BudgetNodes::Count(n),
                            Budget::Percent(p) => BudgetNodes::Percent(p),
                        })
                    })
                    .collect()
            },
            expire_after_ms: None,
            hash: None,
        }
    }
}

/// A disruption budget's `nodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// At most this many nodes at once.
    Count(u32),
    /// At most this percentage of the pool's nodes, rounded up.
    Percent(u32),
}

impl Budget {
    /// Nodes allowed to be disrupting out of `total`.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            Budget::Count(n) => n as usize,
            Budget::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

/// A workload whose pods the simulated ReplicaSet creates and deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadInput {
    /// `namespace/name`, as reports print it.
    pub key: String,
    /// Replicas at the start.
    pub replicas: u32,
    /// One replica; copies get `<name>-<n>` names and their own uid.
    pub template: PendingPod,
    /// Image, pulled once per node.
    pub image: String,
}

/// What a trigger reads.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// A queue: messages arrive by `arrivals` (per second) and each Running pod of the target
    /// workload takes `per_pod_rate` per second. The trigger reads the backlog plus the
    /// messages in flight (those processed in the last second).
    Queue {
        /// Arrivals per second over time.
        arrivals: Pattern,
        /// Messages one Running pod processes per second.
        per_pod_rate: f64,
        /// Index of the consuming workload.
        consumer: usize,
        /// Messages waiting at the start.
        initial: f64,
    },
    /// A Prometheus-like gauge: the trigger reads the pattern's value.
    Metric {
        /// The value over time.
        value: Pattern,
    },
    /// A cron window: `desired` replicas inside any `[start, end)`, else 0.
    Cron {
        /// Windows in ms of simulated time.
        windows: Vec<(i64, i64)>,
        /// `desiredReplicas`.
        desired: f64,
    },
}

/// An event source, named for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInput {
    /// Name shown in the report.
    pub name: String,
    /// What it is.
    pub kind: SourceKind,
}

/// A ScaledObject and where its triggers read from.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalerInput {
    /// `namespace/name`.
    pub key: String,
    /// Index of the target workload.
    pub target: usize,
    /// `pollingInterval` in ms.
    pub polling_interval_ms: i64,
    /// The pod layer's input.
    pub config: ScaledObjectConfig,
    /// Per trigger (same order as `config.triggers`): the source index, or `None` for a trigger
    /// nothing feeds (its fetch fails, as an unreachable scaler's would).
    pub sources: Vec<Option<usize>>,
}

/// A manual `kubectl scale` at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManualScale {
    /// When.
    pub at_ms: i64,
    /// Workload index.
    pub workload: usize,
    /// New replicas.
    pub replicas: u32,
}

/// A complete, converted simulation input.
#[derive(Debug, Clone)]
pub struct SimInput {
    /// Scenario name for the report.
    pub name: String,
    /// Master seed.
    pub seed: u64,
    /// Simulated duration in ms.
    pub duration_ms: i64,
    /// Timeline sampling period in ms.
    pub sample_every_ms: i64,
    /// Catalog per NodeClass name.
    pub catalogs: BTreeMap<String, Arc<Catalog>>,
    /// NodePools.
    pub pools: Vec<PoolInput>,
    /// Workloads.
    pub workloads: Vec<WorkloadInput>,
    /// ScaledObjects.
    pub scalers: Vec<ScalerInput>,
    /// Event sources.
    pub sources: Vec<SourceInput>,
    /// Manual scale events.
    pub manual: Vec<ManualScale>,
    /// The simulated cloud.
    pub cloud: CloudConfig,
    /// Provisioning options.
    pub options: Options,
    /// Karpenter's batch idle window (1 s).
    pub batch_idle_ms: i64,
    /// Karpenter's batch max window (10 s).
    pub batch_max_ms: i64,
    /// HPA sync period (kube-controller-manager `--horizontal-pod-autoscaler-sync-period`,
    /// 15 s).
    pub hpa_sync_ms: i64,
    /// Disruption controller poll (Karpenter: 10 s).
    pub disruption_every_ms: i64,
    /// Disruption options (validation delay, spot-to-spot gate, work budget).
    pub disruption: disruption::Options,
    /// Disruption settings per NodePool name, replacing [`PoolInput::disruption`] (policy,
    /// budgets with schedules, `expireAfter`).
    pub pool_disruption: BTreeMap<String, PoolDisruption>,
    /// Pod-layer coordination: consolidation keeps room for pods a ScaledObject scaled away
    /// within its cooldown / stabilization window, held at most this long; `None` turns it
    /// off (upstream's behaviour). Default 10 minutes.
    pub coordination_ceiling_ms: Option<i64>,
    /// NodePools that opted out of coordination (`tandem.dev/coordinate-with-pod-layer:
    /// "false"`).
    pub uncoordinated_pools: std::collections::BTreeSet<String>,
    /// Predictive provisioning: when the pod layer reads a metric that sends a workload up,
    /// the node layer plans capacity for the pods still to come at once (no batch window, no
    /// waiting for the HPA's climb). Off is upstream's behaviour.
    pub predictive: bool,
    /// Push triggers: a queue that receives messages while its consumer is at zero wakes the
    /// pod layer within a second instead of at the next poll. Off is upstream's behaviour.
    pub push: bool,
    /// Warm capacity per NodePool index (`tandem.dev/headroom`).
    pub headroom: Vec<(usize, tandem_nodescaler::headroom::Headroom)>,
}

impl SimInput {
    /// The same input under upstream semantics (KEDA + HPA + Karpenter): no coordination, no
    /// predictive provisioning, no push, no headroom. `--compare` runs both.
    pub fn upstream(&self) -> SimInput {
        SimInput {
            coordination_ceiling_ms: None,
            predictive: false,
            push: false,
            headroom: Vec::new(),
            ..self.clone()
        }
    }

    /// An input with no pools, workloads or sources and upstream's timings.
    pub fn new(name: &str, seed: u64, duration_ms: i64) -> Self {
        SimInput {
            name: name.to_owned(),
            seed,
            duration_ms,
            sample_every_ms: default_sample_every(duration_ms),
            catalogs: BTreeMap::new(),
            pools: Vec::new(),
            workloads: Vec::new(),
            scalers: Vec::new(),
            sources: Vec::new(),
            manual: Vec::new(),
            cloud: CloudConfig::default(),
            options: Options::default(),
            batch_idle_ms: 1_000,
            batch_max_ms: 10_000,
            hpa_sync_ms: 15_000,
            disruption_every_ms: 10_000,
            disruption: disruption::Options::default(),
            pool_disruption: BTreeMap::new(),
            coordination_ceiling_ms: Some(600_000),
            uncoordinated_pools: std::collections::BTreeSet::new(),
            predictive: true,
            push: true,
            headroom: Vec::new(),
        }
    }
}

/// About 720 samples per run, at least one every 5 s and a whole number of seconds.
pub fn default_sample_every(duration_ms: i64) -> i64 {
    ((duration_ms / 720) / 1000 * 1000).max(5_000)
}
