//! What a run produced, for people and machines: the JSON document (`--json`), the terminal
//! table ([`table`]) and the self-contained HTML page with SVG charts ([`html`]).
//!
//! Money is accumulated exactly (pico-dollars × milliseconds in `i128`) and converted once, so
//! the same run always prints the same digits. Every float in the JSON is rounded to 6 decimals.

pub mod compare;
pub mod html;
pub mod table;

use std::collections::BTreeMap;

use serde::Serialize;
use tandem_model::catalog::CapacityType;

use crate::cloud::Instance;
use crate::nodelayer::CONSOLIDATION_NOTE;
use crate::sim::{OSCILLATION_WINDOW_MS, Simulation};

/// Pico-dollar·milliseconds per dollar·hour.
const PICO_MS_PER_USD: f64 = 1e12 * 3_600_000.0;

/// The kind of a decision marked on the time axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DecisionKind {
    /// The pod layer (or a manual scale) changed a workload's replicas.
    Scale,
    /// The node layer launched a NodeClaim.
    Launch,
    /// A launch found no capacity in any offering.
    LaunchFailed,
    /// Disruption removed a node.
    Consolidate,
    /// The cloud reclaimed a spot instance.
    Interruption,
}

/// One decision, at a time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Seconds since the start.
    pub t: f64,
    /// What happened.
    pub kind: DecisionKind,
    /// A line for a person.
    pub detail: String,
}

/// One timeline sample (raw units; [`Report`] converts).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Time in ms.
    pub t_ms: i64,
    /// Σ spec.replicas over workloads.
    pub desired_replicas: u32,
    /// Running pods.
    pub running_pods: u32,
    /// Pods not running yet.
    pub pending_pods: u32,
    /// Live nodes (launching included: they are billed).
    pub nodes: u32,
    /// Live nodes by `type/capacity`.
    pub nodes_by_type: BTreeMap<String, u32>,
    /// Messages waiting in all queues.
    pub backlog: f64,
    /// The first non-queue source's value.
    pub metric: Option<f64>,
    /// Σ price of live nodes, pico-dollars per hour.
    pub cost_rate_picos: i64,
    /// Cost so far, pico-dollar·ms.
    pub cost_pico_ms: i128,
}

/// Counters and series the loop accumulates.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accounting {
    pub billed_pico_ms: i128,
    by_type: BTreeMap<(String, CapacityType), (i64, i128)>,
    pub peak_nodes: usize,
    pub peak_pods: usize,
    pub pending_ms: Vec<i64>,
    pub never_ran: u64,
    backlog_max: f64,
    backlog_peak_at: i64,
    drained_at: Option<i64>,
    pub scale_events: u64,
    pub launches: u64,
    pub launch_failures: u64,
    pub ice_errors: u32,
    pub consolidations: u64,
    pub interruptions: u64,
    pub oscillations: u64,
    pub provisioning_passes: u64,
    pub launches_ahead: u64,
    decisions: Vec<Decision>,
    pub timeline: Vec<Sample>,
    unschedulable: Vec<String>,
}

impl Accounting {
    pub fn bill(&mut self, inst: &Instance, from: i64, to: i64) {
        let ms = (to - from).max(0);
        let pico_ms = i128::from(inst.price.as_picos()) * i128::from(ms);
        self.billed_pico_ms += pico_ms;
        let e = self
            .by_type
            .entry((inst.instance_type.clone(), inst.capacity_type))
            .or_default();
        e.0 += ms;
        e.1 += pico_ms;
    }

    pub fn backlog(&mut self, now: i64, backlog: f64) {
        if backlog > self.backlog_max {
            self.backlog_max = backlog;
            self.backlog_peak_at = now;
            self.drained_at = None;
        } else if self.drained_at.is_none() && self.backlog_max > 0.0 && backlog < 1.0 {
            self.drained_at = Some(now);
        }
    }

    pub fn decision(&mut self, now: i64, kind: DecisionKind, detail: String) {
        self.decisions.push(Decision {
            t: secs(now),
            kind,
            detail,
        });
    }

    pub fn unschedulable_note(&mut self, note: String) {
        if self.unschedulable.len() < 5 && !self.unschedulable.contains(&note) {
            self.unschedulable.push(note);
        }
    }
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn usd(pico_ms: i128) -> f64 {
    round6(pico_ms as f64 / PICO_MS_PER_USD)
}

/// Node-hours and cost of one instance type and capacity type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeHours {
    /// Instance type.
    pub instance_type: String,
    /// `on-demand`, `spot` or `reserved`.
    pub capacity_type: String,
    /// Hours billed.
    pub hours: f64,
    /// Dollars.
    pub cost_usd: f64,
}

/// Pending time (creation → Running) of the pods that ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pending {
    /// Median, seconds.
    pub p50: f64,
    /// 95th percentile, seconds.
    pub p95: f64,
    /// Longest, seconds.
    pub max: f64,
    /// Pods counted.
    pub count: usize,
}

/// One timeline point as the JSON shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelinePoint {
    /// Seconds since the start.
    pub t: f64,
    /// Σ desired replicas.
    pub desired_replicas: u32,
    /// Running pods.
    pub running_pods: u32,
    /// Pods created but not running.
    pub pending_pods: u32,
    /// Live nodes.
    pub nodes: u32,
    /// Queue backlog.
    pub backlog: f64,
    /// The metric source's value, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<f64>,
    /// Dollars per hour of the live nodes.
    pub cost_rate: f64,
    /// Dollars so far.
    pub cost_usd: f64,
    /// Live nodes by `type/capacity`.
    pub nodes_by_type: BTreeMap<String, u32>,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The master seed that reproduces this report.
    pub seed: u64,
    /// Simulated seconds.
    pub duration_seconds: f64,
    /// Total cost.
    pub cost_usd: f64,
    /// Node-hours by instance type and capacity type.
    pub node_hours: Vec<NodeHours>,
    /// Σ node-hours.
    pub node_hours_total: f64,
    /// Most live nodes at once.
    pub peak_nodes: usize,
    /// Most pods at once.
    pub peak_pods: usize,
    /// Pending time of pods that ran.
    pub pod_pending_seconds: Pending,
    /// Pods deleted before they ever ran.
    pub pods_never_ran: u64,
    /// Largest queue backlog.
    pub backlog_max: f64,
    /// From the largest backlog to an empty queue, seconds (`null`: never drained).
    pub backlog_drain_seconds: Option<f64>,
    /// Replica changes (pod layer and manual).
    pub scale_events: u64,
    /// NodeClaims launched.
    pub launches: u64,
    /// Launches that found no capacity.
    pub launch_failures: u64,
    /// Insufficient-capacity errors across all attempts.
    pub insufficient_capacity_errors: u32,
    /// Nodes removed by disruption.
    pub consolidations: u64,
    /// Spot interruptions.
    pub interruptions: u64,
    /// Launches within 10 minutes after a consolidation in the same NodePool.
    pub oscillations: u64,
    /// Provisioning decisions taken.
    pub provisioning_passes: u64,
    /// Launches made ahead of pods (predictive provisioning, headroom).
    pub launches_ahead: u64,
    /// The cross-layer features this run had on (`coordination`, `predictive`, `push`,
    /// `headroom`); empty is upstream's semantics.
    pub features: Vec<String>,
    /// Caveats of this simulator and of this run.
    pub notes: Vec<String>,
    /// Decisions on the time axis.
    pub decisions: Vec<Decision>,
    /// Samples over time.
    pub timeline: Vec<TimelinePoint>,
}

/// The cross-layer features an input turns on, in a fixed order.
pub fn features(input: &crate::SimInput) -> Vec<String> {
    [
        ("coordination", input.coordination_ceiling_ms.is_some()),
        ("predictive", input.predictive),
        ("push", input.push),
        ("headroom", !input.headroom.is_empty()),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| (*name).to_owned())
    .collect()
}

fn percentile(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    secs(sorted[rank - 1])
}

/// Builds the report of a finished (or stopped) run.
pub(crate) fn build(sim: &Simulation) -> Report {
    let a = &sim.acct;
    let input = sim.input();
    let mut pending = a.pending_ms.clone();
    pending.sort_unstable();
    let node_hours: Vec<NodeHours> = a
        .by_type
        .iter()
        .map(|((t, c), (ms, pico))| NodeHours {
            instance_type: t.clone(),
            capacity_type: c.as_str().to_owned(),
            hours: round6(*ms as f64 / 3_600_000.0),
            cost_usd: usd(*pico),
        })
        .collect();
    let mut notes = vec![
        CONSOLIDATION_NOTE.to_owned(),
        format!(
            "oscillation: a launch within {} minutes after a consolidation in the same NodePool",
            OSCILLATION_WINDOW_MS / 60_000
        ),
        "scheduler: resources, taints, nodeSelector and required node affinity; pod (anti-)affinity and spread are honoured by the node layer's plan only".to_owned(),
    ];
    notes.extend(
        a.unschedulable
            .iter()
            .map(|u| format!("unschedulable: {u}")),
    );
    Report {
        scenario: input.name.clone(),
        seed: input.seed,
        duration_seconds: secs(input.duration_ms),
        cost_usd: usd(a.billed_pico_ms),
        node_hours_total: round6(node_hours.iter().map(|n| n.hours).sum()),
        node_hours,
        peak_nodes: a.peak_nodes,
        peak_pods: a.peak_pods,
        pod_pending_seconds: Pending {
            p50: percentile(&pending, 0.5),
            p95: percentile(&pending, 0.95),
            max: pending.last().map_or(0.0, |m| secs(*m)),
            count: pending.len(),
        },
        pods_never_ran: a.never_ran,
        backlog_max: round6(a.backlog_max),
        backlog_drain_seconds: a.drained_at.map(|d| secs(d - a.backlog_peak_at)),
        scale_events: a.scale_events,
        launches: a.launches,
        launch_failures: a.launch_failures,
        insufficient_capacity_errors: a.ice_errors,
        consolidations: a.consolidations,
        interruptions: a.interruptions,
        oscillations: a.oscillations,
        provisioning_passes: a.provisioning_passes,
        launches_ahead: a.launches_ahead,
        features: features(input),
        notes,
        decisions: a.decisions.clone(),
        timeline: a
            .timeline
            .iter()
            .map(|s| TimelinePoint {
                t: secs(s.t_ms),
                desired_replicas: s.desired_replicas,
                running_pods: s.running_pods,
                pending_pods: s.pending_pods,
                nodes: s.nodes,
                backlog: round6(s.backlog),
                metric: s.metric.map(round6),
                cost_rate: round6(s.cost_rate_picos as f64 / 1e12),
                cost_usd: usd(s.cost_pico_ms),
                nodes_by_type: s.nodes_by_type.clone(),
            })
            .collect(),
    }
}

impl Report {
    /// The JSON document, pretty-printed, with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v = [1_000, 2_000, 3_000, 4_000];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert_eq!(percentile(&v, 0.95), 4.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn one_dollar_an_hour_for_an_hour_is_one_dollar() {
        assert_eq!(usd(1_000_000_000_000 * 3_600_000), 1.0);
    }
}
