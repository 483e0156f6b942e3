//! The discrete-event loop: the virtual clock, the cluster's state and one handler per event.
//!
//! ```text
//!   SourceTick (1 s) ─► queues fill and drain        Poll / HpaSync ─► podlayer::tick
//!   Manual ─► kubectl scale                          SetReplicas ─► reconcile (ReplicaSet)
//!   Schedule ─► scheduler binds pending pods ─► PodStarted (image pull)
//!            └► unschedulable ─► Batcher ─► BatchCheck ─► nodelayer::provision ─► cloud.launch
//!   NodeReady ─► Schedule        Disruption (10 s) ─► nodelayer::disrupt ─► Terminate
//!                                  (replacements launched first; candidates go once they are Ready)
//!   Interrupt (spot warning) ─► evict, cordon ─► Terminate after the notice
//!   Sample ─► timeline           End ─► stop
//! ```
//!
//! All state lives in ordered maps keyed by monotonically assigned ids, so iteration order — and
//! therefore every decision and the report — depends only on the input and the seed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tandem_model::catalog::{CapacityType, Catalog};
use tandem_model::labels;
use tandem_model::pod::HostPort;
use tandem_model::requirements::Requirements;
use tandem_model::resources::Resources;
use tandem_model::taints::Taint;
use tandem_nodescaler::disruption::Disrupt;
use tandem_nodescaler::provisioning::Launch;
use tandem_nodescaler::provisioning::anticipation::{
    Anticipated, AnticipationKind, is_anticipated,
};
use tandem_nodescaler::selector::Labels;
use tandem_nodescaler::snapshot::{
    BoundPod, Comeback, ExistingNode, InFlightClaim, NodeDisruption, NodeState, PendingPod,
    PodDisruption, Snapshot,
};
use tandem_podscaler::TimeMs;
use tandem_podscaler::comeback::{self, ReplicaChange};

use crate::cloud::{Cloud, Instance};
use crate::input::{SimInput, SourceKind};
use crate::nodelayer::{self, Batcher};
use crate::podlayer::{self, ScalerState, Tick};
use crate::queue::EventQueue;
use crate::report::{Accounting, DecisionKind, Sample};
use crate::scheduler;

/// A launch after a consolidation in the same NodePool within this long counts as an
/// oscillation (the seed-002 gotcha: consolidation fighting the pod layer).
pub const OSCILLATION_WINDOW_MS: i64 = 600_000;

/// How often pods that nothing could place are offered to the provisioner again.
const PROVISION_RETRY_MS: i64 = 60_000;

/// How long disruption keeps room launched ahead (predicted pods, headroom) after the pass
/// that saw it wanted; every pass renews it while it is still wanted.
const ANTICIPATION_HOLD_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    SourceTick,
    Poll(usize),
    /// A push wake-up: a poll out of turn that does not move the poll cadence.
    PushPoll(usize),
    HpaSync(usize),
    Manual(usize),
    Schedule,
    BatchCheck,
    ProvisionRetry,
    NodeReady(u64),
    PodStarted(u64, u64),
    Disruption,
    Interrupt(u64),
    Terminate(u64),
    Validate,
    Sample,
    End,
}

#[derive(Debug, Clone)]
struct Pod {
    workload: usize,
    name: String,
    /// The pod as its template made it (name, uid, creation set): shared by every snapshot
    /// that shows it, pending or bound.
    spec: Arc<PendingPod>,
    created: i64,
    node: Option<u64>,
    nominated: Option<u64>,
    running_at: Option<i64>,
    token: u64,
    offered: bool,
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Launching,
    Ready,
    Deleting,
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    pool: usize,
    instance: Instance,
    labels: Labels,
    /// Its labels as requirements, kept across snapshots (a node's labels never change here).
    label_requirements: tandem_nodescaler::snapshot::LabelRequirements,
    taints: Vec<Taint>,
    allocatable: Resources,
    capacity: Resources,
    launched: i64,
    life: Life,
    pods: BTreeSet<u64>,
    nominated: BTreeSet<u64>,
    used: Resources,
    ports: Vec<HostPort>,
    images: BTreeSet<usize>,
    last_pod_event: i64,
}

#[derive(Debug, Clone)]
struct WorkloadState {
    replicas: u32,
    pods: BTreeSet<u64>,
    running: u32,
    serial: u64,
    labels: Arc<Labels>,
    requests: Resources,
    ports: Vec<HostPort>,
    /// Replica counts over time, for the pod layer's comebacks (pruned to the ceiling).
    history: Vec<ReplicaChange>,
}

#[derive(Debug, Clone, Copy, Default)]
struct SourceState {
    backlog: f64,
    value: f64,
    in_window: bool,
}

/// A running simulation. Build it with [`Simulation::new`], advance it with [`Simulation::step`]
/// or [`Simulation::run`], and read the [`crate::Report`].
pub struct Simulation {
    input: SimInput,
    now: i64,
    queue: EventQueue<Ev>,
    cloud: Cloud,
    pods: BTreeMap<u64, Pod>,
    nodes: BTreeMap<u64, Node>,
    next_id: u64,
    workloads: Vec<WorkloadState>,
    scalers: Vec<ScalerState>,
    sources: Vec<SourceState>,
    batcher: Batcher,
    schedule_queued: bool,
    retry_queued: bool,
    last_consolidation: BTreeMap<usize, i64>,
    /// Disruption commands waiting for their replacements: (candidates, replacements).
    replacing: Vec<(Vec<u64>, Vec<u64>)>,
    /// A command waiting out its validation delay; the disruption loop waits with it.
    validating: Option<Disrupt>,
    /// The last disruption pass's settled consolidation, handed to the next pass.
    settled: tandem_nodescaler::disruption::Settled,
    /// Per ScaledObject: where its target is heading (predictive provisioning).
    heading: Vec<Option<u32>>,
    pub(crate) acct: Accounting,
    done: bool,
}

impl Simulation {
    /// A simulation at time 0 with the initial replicas created and every periodic event queued.
    pub fn new(input: SimInput) -> Self {
        let cloud = Cloud::new(input.cloud.clone(), input.seed);
        let workloads = input
            .workloads
            .iter()
            .map(|w| WorkloadState {
                replicas: w.replicas,
                pods: BTreeSet::new(),
                running: 0,
                serial: 0,
                labels: Arc::clone(&w.template.labels),
                requests: w.template.shape.effective_requests(),
                ports: w.template.shape.host_ports(),
                history: vec![ReplicaChange {
                    at: TimeMs(0),
                    replicas: w.replicas,
                }],
            })
            .collect();
        let mut sim = Simulation {
            now: 0,
            queue: EventQueue::default(),
            cloud,
            pods: BTreeMap::new(),
            nodes: BTreeMap::new(),
            next_id: 0,
            workloads,
            scalers: vec![ScalerState::default(); input.scalers.len()],
            sources: input
                .sources
                .iter()
                .map(|s| SourceState {
                    backlog: match s.kind {
                        SourceKind::Queue { initial, .. } => initial,
                        _ => 0.0,
                    },
                    ..SourceState::default()
                })
                .collect(),
            batcher: Batcher::default(),
            schedule_queued: false,
            retry_queued: false,
            last_consolidation: BTreeMap::new(),
            replacing: Vec::new(),
            validating: None,
            settled: Default::default(),
            heading: vec![None; input.scalers.len()],
            acct: Accounting::default(),
            done: false,
            input,
        };
        if !sim.sources.is_empty() {
            sim.push(0, Ev::SourceTick);
        }
        for i in 0..sim.input.scalers.len() {
            sim.push(0, Ev::Poll(i));
            sim.push(sim.input.hpa_sync_ms, Ev::HpaSync(i));
        }
        for i in 0..sim.input.manual.len() {
            sim.push(sim.input.manual[i].at_ms, Ev::Manual(i));
        }
        sim.push(sim.input.disruption_every_ms, Ev::Disruption);
        sim.push(0, Ev::Sample);
        sim.push(sim.input.duration_ms, Ev::End);
        for w in 0..sim.workloads.len() {
            sim.reconcile(w);
        }
        sim
    }

    /// Current simulated time in ms.
    pub fn now(&self) -> TimeMs {
        TimeMs(self.now)
    }

    /// The input.
    pub fn input(&self) -> &SimInput {
        &self.input
    }

    /// True once the run reached its duration.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn push(&mut self, at: i64, ev: Ev) {
        self.queue.push(TimeMs(at), ev);
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Handles the next event; returns false once the run is over.
    pub fn step(&mut self) -> bool {
        if self.done {
            return false;
        }
        let Some((at, ev)) = self.queue.pop() else {
            self.finish();
            return false;
        };
        self.now = at.0;
        match ev {
            Ev::SourceTick => self.source_tick(),
            Ev::Poll(i) => self.pod_layer(i, Tick::Poll, true),
            Ev::PushPoll(i) => self.pod_layer(i, Tick::Poll, false),
            Ev::HpaSync(i) => self.pod_layer(i, Tick::HpaSync, true),
            Ev::Manual(i) => {
                let m = self.input.manual[i];
                self.set_replicas(m.workload, m.replicas, "kubectl scale");
            }
            Ev::Schedule => self.schedule(),
            Ev::BatchCheck => {
                match self.batcher.check(
                    self.now,
                    self.input.batch_idle_ms,
                    self.input.batch_max_ms,
                ) {
                    Ok(()) => self.provision(),
                    Err(next) => self.push(next, Ev::BatchCheck),
                }
            }
            Ev::ProvisionRetry => {
                self.retry_queued = false;
                if self
                    .pods
                    .values()
                    .any(|p| p.node.is_none() && p.nominated.is_none())
                {
                    self.provision();
                }
            }
            Ev::NodeReady(id) => self.node_ready(id),
            Ev::PodStarted(pod, token) => self.pod_started(pod, token),
            Ev::Disruption => self.disruption(),
            Ev::Interrupt(id) => self.interrupt(id),
            Ev::Terminate(id) => self.terminate(id),
            Ev::Validate => self.validate(),
            Ev::Sample => self.sample(),
            Ev::End => {
                self.finish();
                return false;
            }
        }
        true
    }

    /// Runs to the end, calling `progress` with the simulated time after each event.
    pub fn run_with(&mut self, mut progress: impl FnMut(TimeMs)) -> crate::Report {
        while self.step() {
            progress(TimeMs(self.now));
        }
        crate::report::build(self)
    }

    /// Runs to the end.
    pub fn run(&mut self) -> crate::Report {
        self.run_with(|_| {})
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.now = self.input.duration_ms;
        self.sample();
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            if let Some(n) = self.nodes.get(&id) {
                let (launched, inst) = (n.launched, n.instance.clone());
                self.acct.bill(&inst, launched, self.now);
            }
        }
        self.done = true;
    }

    // ---- event sources -------------------------------------------------------------------

    fn source_tick(&mut self) {
        for (i, src) in self.input.sources.iter().enumerate() {
            let st = &mut self.sources[i];
            match &src.kind {
                SourceKind::Queue {
                    arrivals,
                    per_pod_rate,
                    consumer,
                    ..
                } => {
                    st.backlog += arrivals.value_at(TimeMs(self.now));
                    let running = self.workloads.get(*consumer).map_or(0, |w| w.running);
                    let processed = (f64::from(running) * per_pod_rate).min(st.backlog);
                    st.backlog -= processed;
                    // Messages being processed stay counted for the second they take, as SQS
                    // (ApproximateNumberOfMessagesNotVisible, scaleOnInFlight) and RabbitMQ
                    // (unacknowledged) count them.
                    st.value = (st.backlog + processed).floor();
                }
                SourceKind::Metric { value } => st.value = value.value_at(TimeMs(self.now)),
                SourceKind::Cron { windows, desired } => {
                    st.in_window = windows.iter().any(|(a, b)| *a <= self.now && self.now < *b);
                    st.value = if st.in_window { *desired } else { 0.0 };
                }
            }
        }
        let backlog: f64 = self.queue_backlog();
        self.acct.backlog(self.now, backlog);
        if self.input.push {
            self.push_wake_ups();
        }
        self.push(self.now + 1_000, Ev::SourceTick);
    }

    /// Push triggers: a consumer at zero whose queue holds messages is polled now, at most
    /// once per source tick (1 s), as a push-capable scaler's notification would.
    fn push_wake_ups(&mut self) {
        let mut wake = Vec::new();
        for (i, scaler) in self.input.scalers.iter().enumerate() {
            if self.workloads[scaler.target].replicas > 0 {
                continue;
            }
            let woken = scaler.sources.iter().flatten().any(|s| {
                matches!(self.input.sources[*s].kind, SourceKind::Queue { .. })
                    && self.sources[*s].value > 0.0
            });
            if woken {
                wake.push(i);
            }
        }
        for i in wake {
            self.push(self.now, Ev::PushPoll(i));
        }
    }

    fn queue_backlog(&self) -> f64 {
        self.input
            .sources
            .iter()
            .zip(&self.sources)
            .filter(|(s, _)| matches!(s.kind, SourceKind::Queue { .. }))
            .map(|(_, st)| st.backlog)
            .sum()
    }

    fn metric_value(&self) -> Option<f64> {
        self.input
            .sources
            .iter()
            .zip(&self.sources)
            .find(|(s, _)| !matches!(s.kind, SourceKind::Queue { .. }))
            .map(|(_, st)| st.value)
    }

    // ---- pod layer -----------------------------------------------------------------------

    fn pod_layer(&mut self, i: usize, tick: Tick, reschedule: bool) {
        let scaler = &self.input.scalers[i];
        let target = scaler.target;
        let mut values = Vec::with_capacity(scaler.sources.len());
        let mut own = Vec::with_capacity(scaler.sources.len());
        for s in &scaler.sources {
            match s {
                Some(s) => {
                    let st = self.sources[*s];
                    values.push(Some(st.value));
                    own.push(match self.input.sources[*s].kind {
                        SourceKind::Cron { .. } => Some(st.in_window),
                        _ => None,
                    });
                }
                None => {
                    values.push(None);
                    own.push(None);
                }
            }
        }
        let w = &self.workloads[target];
        let replicas = (
            w.replicas,
            u32::try_from(w.pods.len()).unwrap_or(u32::MAX),
            w.running,
        );
        let outcome = podlayer::tick(
            &mut self.scalers[i],
            &scaler.config,
            tick,
            &values,
            &own,
            replicas,
            TimeMs(self.now),
        );
        let every = match tick {
            Tick::Poll => scaler.polling_interval_ms,
            Tick::HpaSync => self.input.hpa_sync_ms,
        };
        let key = scaler.key.clone();
        if reschedule {
            self.push(
                self.now + every.max(1),
                if tick == Tick::Poll {
                    Ev::Poll(i)
                } else {
                    Ev::HpaSync(i)
                },
            );
        }
        if self.input.predictive {
            let was = self.heading[i];
            self.heading[i] = outcome.heading_to;
            if outcome.heading_to.is_some() && outcome.heading_to != was {
                self.acct.decision(
                    self.now,
                    DecisionKind::Scale,
                    format!(
                        "{key}: heading to {} replicas: capacity planned now (predictive)",
                        outcome.heading_to.unwrap_or(0)
                    ),
                );
                self.provision();
            }
        }
        if let Some(n) = outcome.set {
            let by = match tick {
                Tick::Poll => format!("{key} (poll)"),
                Tick::HpaSync => format!("keda-hpa-{key} (HPA)"),
            };
            self.set_replicas(target, n, &by);
        }
    }

    fn set_replicas(&mut self, w: usize, n: u32, by: &str) {
        let from = self.workloads[w].replicas;
        if from == n {
            return;
        }
        self.workloads[w].replicas = n;
        let keep_ms = self.input.coordination_ceiling_ms.unwrap_or(0);
        let history = &mut self.workloads[w].history;
        history.push(ReplicaChange {
            at: TimeMs(self.now),
            replicas: n,
        });
        // Keep the change in effect at the start of the longest window, and everything after.
        while history.len() > 1 && history[1].at.as_millis() < self.now - keep_ms {
            history.remove(0);
        }
        let key = self.input.workloads[w].key.clone();
        self.acct.decision(
            self.now,
            DecisionKind::Scale,
            format!("{key}: {from} → {n} replicas by {by}"),
        );
        self.acct.scale_events += 1;
        self.reconcile(w);
    }

    // ---- ReplicaSet ----------------------------------------------------------------------

    fn reconcile(&mut self, w: usize) {
        let want = self.workloads[w].replicas as usize;
        let have = self.workloads[w].pods.len();
        if have < want {
            for _ in have..want {
                let id = self.id();
                let ws = &mut self.workloads[w];
                ws.serial += 1;
                let name = format!("{}-{}", self.input.workloads[w].template.name, ws.serial);
                ws.pods.insert(id);
                let mut spec: PendingPod = self.input.workloads[w].template.clone();
                spec.name.clone_from(&name);
                spec.uid = id.to_string();
                spec.creation = id;
                self.pods.insert(
                    id,
                    Pod {
                        workload: w,
                        name,
                        spec: Arc::new(spec),
                        created: self.now,
                        node: None,
                        nominated: None,
                        running_at: None,
                        token: 0,
                        offered: false,
                    },
                );
            }
            self.acct.peak_pods = self.acct.peak_pods.max(self.pods.len());
            self.request_schedule();
        } else if have > want {
            // ReplicaSet victim order (controller.ActivePods, simplified): unscheduled first,
            // then not yet running, then running; newest first within each.
            let mut victims: Vec<(u8, i64, u64)> = self.workloads[w]
                .pods
                .iter()
                .filter_map(|id| self.pods.get(id).map(|p| (id, p)))
                .map(|(id, p)| {
                    let rank = if p.node.is_none() {
                        0
                    } else if p.running_at.is_none() {
                        1
                    } else {
                        2
                    };
                    (rank, -p.created, *id)
                })
                .collect();
            victims.sort_unstable();
            for (_, _, id) in victims.into_iter().take(have - want) {
                self.delete_pod(id);
            }
        }
    }

    fn delete_pod(&mut self, id: u64) {
        let Some(pod) = self.pods.remove(&id) else {
            return;
        };
        let ws = &mut self.workloads[pod.workload];
        ws.pods.remove(&id);
        if pod.running_at.is_some() {
            ws.running = ws.running.saturating_sub(1);
        } else {
            self.acct.never_ran += 1;
        }
        let requests = ws.requests.clone();
        let ports = ws.ports.clone();
        if let Some(n) = pod.nominated.and_then(|n| self.nodes.get_mut(&n)) {
            n.nominated.remove(&id);
        }
        if let Some(n) = pod.node.and_then(|n| self.nodes.get_mut(&n)) {
            n.pods.remove(&id);
            n.used.sub_assign(&requests);
            for p in &ports {
                if let Some(i) = n.ports.iter().position(|u| u == p) {
                    n.ports.remove(i);
                }
            }
            n.last_pod_event = self.now;
        }
    }

    // ---- scheduler -----------------------------------------------------------------------

    fn request_schedule(&mut self) {
        if !self.schedule_queued {
            self.schedule_queued = true;
            self.push(self.now, Ev::Schedule);
        }
    }

    fn node_fits(&self, node: &Node, w: usize) -> bool {
        let ws = &self.workloads[w];
        let mut free = node.allocatable.clone();
        free.sub_assign(&node.used);
        node.life == Life::Ready
            && scheduler::compatible(
                &self.input.workloads[w].template,
                &node.labels,
                &node.taints,
            )
            && scheduler::fits(&ws.requests, &ws.ports, &free, &node.ports)
    }

    fn schedule(&mut self) {
        self.schedule_queued = false;
        let pending: Vec<u64> = self
            .pods
            .iter()
            .filter(|(_, p)| p.node.is_none())
            .map(|(id, _)| *id)
            .collect();
        let mut full: BTreeSet<usize> = BTreeSet::new();
        let mut new_unschedulable = false;
        for id in pending {
            let Some(pod) = self.pods.get(&id) else {
                continue;
            };
            let w = pod.workload;
            let nominated = pod.nominated.filter(|n| self.nodes.contains_key(n));
            let mut target = nominated.filter(|n| {
                self.nodes
                    .get(n)
                    .is_some_and(|node| self.node_fits(node, w))
            });
            if target.is_none() && !full.contains(&w) {
                let mut best: Option<(i64, &str, u64)> = None;
                for (nid, node) in &self.nodes {
                    if !self.node_fits(node, w) {
                        continue;
                    }
                    let free_cpu = node.allocatable.cpu.0 - node.used.cpu.0;
                    let better = best.is_none_or(|(c, name, _)| {
                        free_cpu > c || (free_cpu == c && node.name.as_str() < name)
                    });
                    if better {
                        best = Some((free_cpu, node.name.as_str(), *nid));
                    }
                }
                target = best.map(|(_, _, n)| n);
                if target.is_none() {
                    full.insert(w);
                }
            }
            match target {
                Some(n) => self.bind(id, n),
                None => {
                    let waiting_on_claim = nominated.is_some_and(|n| {
                        self.nodes
                            .get(&n)
                            .is_some_and(|x| x.life == Life::Launching)
                    });
                    if let Some(p) = self.pods.get_mut(&id)
                        && !waiting_on_claim
                        && !p.offered
                    {
                        p.offered = true;
                        p.nominated = None;
                        new_unschedulable = true;
                    }
                }
            }
        }
        if new_unschedulable
            && let Some(at) = self.batcher.trigger(self.now, self.input.batch_idle_ms)
        {
            self.push(at, Ev::BatchCheck);
        }
    }

    fn bind(&mut self, id: u64, n: u64) {
        let Some(pod) = self.pods.get_mut(&id) else {
            return;
        };
        let w = pod.workload;
        if let Some(old) = pod.nominated.take()
            && old != n
            && let Some(node) = self.nodes.get_mut(&old)
        {
            node.nominated.remove(&id);
        }
        pod.node = Some(n);
        pod.token += 1;
        let token = pod.token;
        let ws = &self.workloads[w];
        let Some(node) = self.nodes.get_mut(&n) else {
            return;
        };
        node.nominated.remove(&id);
        node.pods.insert(id);
        node.used.add_assign(&ws.requests);
        node.ports.extend(ws.ports.iter().cloned());
        node.last_pod_event = self.now;
        let cached = !node.images.insert(w);
        let delay = self.cloud.start_delay(cached);
        self.push(self.now + delay, Ev::PodStarted(id, token));
    }

    fn pod_started(&mut self, id: u64, token: u64) {
        let Some(pod) = self.pods.get_mut(&id) else {
            return;
        };
        if pod.token != token || pod.node.is_none() || pod.running_at.is_some() {
            return;
        }
        pod.running_at = Some(self.now);
        let pending = self.now - pod.created;
        self.workloads[pod.workload].running += 1;
        self.acct.pending_ms.push(pending);
    }

    // ---- node layer ----------------------------------------------------------------------

    fn bound_pod(&self, id: u64, nominated: bool, with_spec: bool) -> Option<BoundPod> {
        let pod = self.pods.get(&id)?;
        let ws = &self.workloads[pod.workload];
        let t = &self.input.workloads[pod.workload].template;
        let mut b = BoundPod::new(
            &t.namespace,
            &pod.name,
            Arc::clone(&ws.labels),
            ws.requests.clone(),
        );
        b.host_ports = ws.ports.clone();
        b.anti_affinity = t.pod_anti_affinity.clone();
        b.nominated = nominated;
        if with_spec {
            b.disruption = PodDisruption {
                spec: Some(Arc::clone(&pod.spec)),
                ..PodDisruption::default()
            };
        }
        Some(b)
    }

    /// The snapshot disruption reads: the provisioning one plus each pod's spec, each node's
    /// NodeClaim facts and each pool's disruption settings.
    fn disruption_snapshot(&mut self) -> Snapshot {
        let mut snap = self.snapshot_for(true);
        snap.comebacks = self.comebacks();
        // Room launched ahead is held like room for comebacks until the pods use it.
        for a in std::mem::take(&mut snap.anticipated) {
            snap.comebacks.push(Comeback {
                workload: a.source,
                pod: a.pod,
                count: a.count,
                until_ms: self.now + ANTICIPATION_HOLD_MS,
            });
        }
        snap.uncoordinated_pools = self.input.uncoordinated_pools.clone();
        for p in &self.input.pools {
            let d = self
                .input
                .pool_disruption
                .get(&p.pool.name)
                .cloned()
                .unwrap_or_else(|| p.disruption());
            snap.disruption.insert(p.pool.name.clone(), d);
        }
        snap
    }

    /// The pods each ScaledObject may bring back (empty with coordination off).
    fn comebacks(&self) -> Vec<Comeback> {
        let Some(ceiling_ms) = self.input.coordination_ceiling_ms else {
            return Vec::new();
        };
        let ceiling = u32::try_from(ceiling_ms / 1000).unwrap_or(u32::MAX);
        let mut out = Vec::new();
        for scaler in &self.input.scalers {
            let w = &self.workloads[scaler.target];
            let window = comeback::window_secs(&scaler.config, ceiling);
            if let Some((count, until)) =
                comeback::comebacks(&w.history, w.replicas, window, TimeMs(self.now))
            {
                out.push(Comeback {
                    workload: scaler.key.clone(),
                    pod: self.input.workloads[scaler.target].template.clone(),
                    count,
                    until_ms: until.as_millis(),
                });
            }
        }
        out
    }

    fn snapshot(&mut self) -> Snapshot {
        self.snapshot_for(false)
    }

    /// The provisioning snapshot; with `disruption`, also each bound pod's spec and each
    /// node's NodeClaim facts.
    fn snapshot_for(&mut self, disruption: bool) -> Snapshot {
        let mut snap = Snapshot::new();
        for p in self.pods.values() {
            if p.node.is_some() || p.nominated.is_some_and(|n| self.nodes.contains_key(&n)) {
                continue;
            }
            snap.pods.push(PendingPod::clone(&p.spec));
        }
        let mut usage: Vec<(Resources, i64)> = vec![(Resources::new(), 0); self.input.pools.len()];
        for node in self.nodes.values() {
            // Specs only for pods on nodes: disruption moves those, never an in-flight claim's.
            let disruption = disruption && node.life != Life::Launching;
            let mut pods: Vec<BoundPod> = node
                .pods
                .iter()
                .filter_map(|id| self.bound_pod(*id, false, disruption))
                .collect();
            pods.extend(
                node.nominated
                    .iter()
                    .filter_map(|id| self.bound_pod(*id, true, disruption)),
            );
            match node.life {
                Life::Launching => snap.in_flight.push(InFlightClaim {
                    name: node.name.clone(),
                    nodepool: self.input.pools[node.pool].pool.name.clone(),
                    requirements: Requirements::clone(&node.label_requirements.of(&node.labels)),
                    allocatable: node.allocatable.clone(),
                    capacity: node.capacity.clone(),
                    pods,
                }),
                Life::Ready | Life::Deleting => {
                    let u = &mut usage[node.pool];
                    u.0.add_assign(&node.capacity);
                    u.1 += 1;
                    let mut e = ExistingNode::new(&node.name, node.allocatable.clone());
                    e.labels = node.labels.clone();
                    e.label_requirements = node.label_requirements.clone();
                    e.taints = node.taints.clone();
                    e.pods = pods;
                    e.state = if node.life == Life::Ready {
                        NodeState::Ready
                    } else {
                        NodeState::Deleting
                    };
                    if disruption {
                        e.disruption = NodeDisruption {
                            created_ms: Some(node.launched),
                            last_pod_event_ms: node.last_pod_event,
                            ..NodeDisruption::default()
                        };
                    }
                    snap.nodes.push(e);
                }
            }
        }
        for (i, p) in self.input.pools.iter().enumerate() {
            let mut pool = p.pool.clone();
            pool.usage = usage[i].0.clone();
            pool.node_count = usage[i].1;
            snap.nodepools.push(pool);
        }
        let classes: Vec<(String, Arc<Catalog>)> = self
            .input
            .catalogs
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        for (class, base) in classes {
            let view = self.cloud.view(&class, &base, self.now);
            snap.catalogs.insert(class, view);
        }
        snap.anticipated = self.anticipated();
        snap
    }

    /// Pods still to come (predicted) and each pool's headroom, for the node layer.
    fn anticipated(&self) -> Vec<Anticipated> {
        let mut out = Vec::new();
        for (i, scaler) in self.input.scalers.iter().enumerate() {
            let Some(to) = self.heading[i] else {
                continue;
            };
            let w = &self.workloads[scaler.target];
            let have = u32::try_from(w.pods.len()).unwrap_or(u32::MAX);
            if to > have {
                out.push(Anticipated {
                    source: scaler.key.clone(),
                    kind: AnticipationKind::Predicted,
                    pod: self.input.workloads[scaler.target].template.clone(),
                    count: to - have,
                });
            }
        }
        for (pool, headroom) in &self.input.headroom {
            if let Some(p) = self.input.pools.get(*pool) {
                out.extend(headroom.anticipated(&p.pool, self.now));
            }
        }
        out
    }

    fn provision(&mut self) {
        let snap = self.snapshot();
        if snap.pods.is_empty() && snap.anticipated.is_empty() {
            return;
        }
        let plan = nodelayer::provision(&snap, &self.input.options);
        self.acct.provisioning_passes += 1;
        let by_name: BTreeMap<String, u64> = self
            .nodes
            .iter()
            .map(|(id, n)| (n.name.clone(), *id))
            .collect();
        for nom in &plan.nominations {
            let (Ok(pod), Some(node)) = (nom.pod.uid.parse::<u64>(), by_name.get(&nom.node)) else {
                continue;
            };
            if let (Some(p), Some(n)) = (self.pods.get_mut(&pod), self.nodes.get_mut(node)) {
                p.nominated = Some(*node);
                n.nominated.insert(pod);
            }
        }
        let retry = !plan.unschedulable.is_empty();
        for launch in &plan.launches {
            let pods: Vec<u64> = launch
                .pods
                .iter()
                .filter_map(|p| p.uid.parse().ok())
                .collect();
            if launch.pods.iter().any(is_anticipated) {
                self.acct.launches_ahead += 1;
            }
            match self.launch(launch, &pods) {
                Some(Some(_)) | None => {}
                Some(None) => {
                    let options = launch.instance_types.len();
                    self.acct.decision(
                        self.now,
                        DecisionKind::LaunchFailed,
                        format!(
                            "{}: insufficient capacity for all {options} instance types",
                            launch.nodepool,
                        ),
                    );
                    for id in pods {
                        if let Some(p) = self.pods.get_mut(&id) {
                            p.offered = false;
                        }
                    }
                    if let Some(at) = self.batcher.trigger(self.now, self.input.batch_idle_ms) {
                        self.push(at, Ev::BatchCheck);
                    }
                }
            }
        }
        if !plan.unschedulable.is_empty() {
            let first = &plan.unschedulable[0];
            self.acct
                .unschedulable_note(format!("{}: {first}", first.pod));
        }
        if retry && !self.retry_queued {
            self.retry_queued = true;
            self.push(self.now + PROVISION_RETRY_MS, Ev::ProvisionRetry);
        }
        self.request_schedule();
    }

    /// Launches a NodeClaim for `pods`: `None` when its pool or catalog is unknown,
    /// `Some(None)` when no offering had capacity, else the new node.
    fn launch(&mut self, launch: &Launch, pods: &[u64]) -> Option<Option<u64>> {
        let pool = self
            .input
            .pools
            .iter()
            .position(|p| p.pool.name == launch.nodepool)?;
        let class = self.input.pools[pool].pool.node_class.clone();
        let base = self.input.catalogs.get(&class).cloned()?;
        let catalog = self.cloud.view(&class, &base, self.now);
        let options: Vec<String> = launch
            .instance_types
            .iter()
            .map(|o| o.name.clone())
            .collect();
        let mut ice = 0;
        let got = self
            .cloud
            .launch(&catalog, &options, &launch.requirements, self.now, &mut ice);
        self.acct.ice_errors += ice;
        Some(got.map(|inst| self.create_node(pool, &catalog, inst, &launch.requirements, pods)))
    }

    fn create_node(
        &mut self,
        pool: usize,
        catalog: &Catalog,
        inst: Instance,
        requirements: &Requirements,
        pods: &[u64],
    ) -> u64 {
        let id = self.id();
        let p = &self.input.pools[pool];
        let name = format!("{}-{id}", p.pool.name);
        let taints = p.pool.taints.clone();
        let mut labels: Labels = p.pool.labels.clone();
        let t = catalog.get(&inst.instance_type);
        for r in requirements
            .iter()
            .chain(t.map(|t| t.requirements().iter()).into_iter().flatten())
        {
            if !r.is_complement()
                && let Some(v) = r.values().iter().next()
            {
                labels
                    .entry(r.key().to_owned())
                    .or_insert_with(|| v.clone());
            }
        }
        labels.insert(labels::INSTANCE_TYPE.to_owned(), inst.instance_type.clone());
        labels.insert(labels::ZONE.to_owned(), inst.zone.clone());
        labels.insert(
            labels::CAPACITY_TYPE.to_owned(),
            inst.capacity_type.as_str().to_owned(),
        );
        labels.insert(labels::NODEPOOL.to_owned(), p.pool.name.clone());
        labels.insert(labels::HOSTNAME.to_owned(), name.clone());
        let (allocatable, capacity) = t.map_or_else(
            || (Resources::new(), Resources::new()),
            |t| (t.allocatable().clone(), t.capacity().clone()),
        );
        let recent = self
            .last_consolidation
            .get(&pool)
            .is_some_and(|at| self.now - at <= OSCILLATION_WINDOW_MS);
        if recent {
            self.acct.oscillations += 1;
        }
        self.acct.launches += 1;
        self.acct.decision(
            self.now,
            DecisionKind::Launch,
            format!(
                "{name}: {} {} in {} ({}/h) for {} pods",
                inst.instance_type,
                inst.capacity_type,
                inst.zone,
                inst.price,
                pods.len()
            ),
        );
        let (prov, join) = self.cloud.launch_delays();
        self.push(self.now + prov + join, Ev::NodeReady(id));
        if let Some(after) = self.cloud.interruption_after(inst.capacity_type) {
            self.push(self.now + after, Ev::Interrupt(id));
        }
        let mut nominated = BTreeSet::new();
        for pod in pods {
            if let Some(p) = self.pods.get_mut(pod) {
                p.nominated = Some(id);
                nominated.insert(*pod);
            }
        }
        self.nodes.insert(
            id,
            Node {
                name,
                pool,
                taints,
                instance: inst,
                labels,
                label_requirements: Default::default(),
                allocatable,
                capacity,
                launched: self.now,
                life: Life::Launching,
                pods: BTreeSet::new(),
                nominated,
                used: Resources::new(),
                ports: Vec::new(),
                images: BTreeSet::new(),
                last_pod_event: self.now,
            },
        );
        self.acct.peak_nodes = self.acct.peak_nodes.max(self.nodes.len());
        id
    }

    fn node_ready(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.life != Life::Launching {
            return;
        }
        node.life = Life::Ready;
        node.last_pod_event = self.now;
        self.finish_replacements();
        self.request_schedule();
    }

    /// Removes the candidates of commands whose replacements are all Ready; gives the
    /// candidates back when a replacement is gone (interrupted before it was Ready).
    fn finish_replacements(&mut self) {
        let mut i = 0;
        while i < self.replacing.len() {
            let (_, repl) = &self.replacing[i];
            let gone = repl.iter().any(|r| !self.nodes.contains_key(r));
            let ready = repl
                .iter()
                .all(|r| self.nodes.get(r).is_some_and(|n| n.life == Life::Ready));
            if !gone && !ready {
                i += 1;
                continue;
            }
            let (cands, _) = self.replacing.swap_remove(i);
            for c in cands {
                if gone {
                    if let Some(n) = self.nodes.get_mut(&c) {
                        n.life = Life::Ready;
                    }
                } else {
                    self.terminate(c);
                }
            }
        }
    }

    fn disruption(&mut self) {
        self.finish_replacements();
        // Headroom is replenished on the disruption loop's cadence as well as on every
        // provisioning pass: real pods take the room between passes.
        if !self.input.headroom.is_empty() || self.heading.iter().any(Option::is_some) {
            self.provision();
        }
        if self.validating.is_none() {
            let snap = self.disruption_snapshot();
            let decision =
                nodelayer::disrupt(&snap, self.now, &self.input.disruption, &self.settled);
            self.settled = decision.settled;
            match decision.command {
                Some(cmd) if cmd.revalidate_after_ms > 0 => {
                    self.push(self.now + cmd.revalidate_after_ms, Ev::Validate);
                    self.validating = Some(cmd);
                }
                Some(cmd) => self.execute(&cmd),
                None => {}
            }
        }
        self.push(self.now + self.input.disruption_every_ms, Ev::Disruption);
    }

    /// After the validation delay: the command runs only if it still holds on a fresh
    /// snapshot (upstream `commandValidationDelay`, then re-simulation).
    fn validate(&mut self) {
        let Some(cmd) = self.validating.take() else {
            return;
        };
        let snap = self.disruption_snapshot();
        if nodelayer::validate(&cmd, &snap, self.now, &self.input.disruption).is_ok() {
            self.execute(&cmd);
        }
    }

    /// Executes a disruption command as upstream's queue does: replacements first, candidates
    /// cordoned (no new pods) and deleted once every replacement is Ready; a delete at once.
    fn execute(&mut self, cmd: &Disrupt) {
        let by_name: BTreeMap<&str, u64> = self
            .nodes
            .iter()
            .map(|(id, n)| (n.name.as_str(), *id))
            .collect();
        let ids: Vec<u64> = cmd
            .candidates
            .iter()
            .filter_map(|c| by_name.get(c.as_str()).copied())
            .collect();
        for id in &ids {
            if let Some(n) = self.nodes.get(id) {
                let detail = format!(
                    "{}: {} {} {} by {} ({} replacement(s), {}/h → {}/h)",
                    n.name,
                    n.instance.instance_type,
                    n.instance.capacity_type,
                    cmd.reason,
                    cmd.method.as_str(),
                    cmd.replacements.len(),
                    cmd.cost_before,
                    cmd.cost_after,
                );
                self.last_consolidation.insert(n.pool, self.now);
                self.acct.consolidations += 1;
                self.acct
                    .decision(self.now, DecisionKind::Consolidate, detail);
            }
        }
        if cmd.replacements.is_empty() {
            for id in ids {
                self.terminate(id);
            }
            return;
        }
        let mut launched = Vec::new();
        for l in &cmd.replacements {
            match self.launch(l, &[]) {
                Some(Some(id)) => launched.push(id),
                _ => {
                    // Upstream fails the command and untaints the candidates; a replacement
                    // already launched stays as spare capacity until emptiness removes it.
                    self.acct.launch_failures += 1;
                    return;
                }
            }
        }
        for id in &ids {
            if let Some(n) = self.nodes.get_mut(id) {
                n.life = Life::Deleting;
            }
        }
        self.replacing.push((ids, launched));
    }

    fn interrupt(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.life == Life::Deleting {
            return;
        }
        node.life = Life::Deleting;
        let bound: Vec<u64> = node.pods.iter().copied().collect();
        let nominated: Vec<u64> = std::mem::take(&mut node.nominated).into_iter().collect();
        let detail = format!(
            "{}: {} spot reclaimed, {} pods evicted",
            node.name,
            node.instance.instance_type,
            bound.len()
        );
        self.acct.interruptions += 1;
        self.acct
            .decision(self.now, DecisionKind::Interruption, detail);
        for pid in nominated {
            if let Some(p) = self.pods.get_mut(&pid) {
                p.nominated = None;
                p.offered = false;
            }
        }
        let mut touched = BTreeSet::new();
        for pid in bound {
            if let Some(p) = self.pods.get(&pid) {
                touched.insert(p.workload);
            }
            self.delete_pod(pid);
        }
        for w in touched {
            self.reconcile(w);
        }
        self.request_schedule();
        let notice = self.cloud.config().interruption_notice_ms;
        self.push(self.now + notice, Ev::Terminate(id));
    }

    fn terminate(&mut self, id: u64) {
        let Some(node) = self.nodes.remove(&id) else {
            return;
        };
        self.acct.bill(&node.instance, node.launched, self.now);
        let mut touched = BTreeSet::new();
        for pid in node.nominated {
            if let Some(p) = self.pods.get_mut(&pid) {
                p.nominated = None;
                p.offered = false;
            }
        }
        for pid in node.pods {
            if let Some(p) = self.pods.get(&pid) {
                touched.insert(p.workload);
            }
            self.delete_pod(pid);
        }
        for w in touched {
            self.reconcile(w);
        }
        self.request_schedule();
    }

    // ---- observation ---------------------------------------------------------------------

    fn sample(&mut self) {
        let mut by_type: BTreeMap<String, u32> = BTreeMap::new();
        let mut rate: i64 = 0;
        let mut accrued: i128 = 0;
        for n in self.nodes.values() {
            *by_type
                .entry(type_key(
                    &n.instance.instance_type,
                    n.instance.capacity_type,
                ))
                .or_default() += 1;
            rate = rate.saturating_add(n.instance.price.as_picos());
            accrued += i128::from(n.instance.price.as_picos()) * i128::from(self.now - n.launched);
        }
        let running: u32 = self.workloads.iter().map(|w| w.running).sum();
        let desired: u32 = self.workloads.iter().map(|w| w.replicas).sum();
        let pods = self.pods.len();
        let sample = Sample {
            t_ms: self.now,
            desired_replicas: desired,
            running_pods: running,
            pending_pods: u32::try_from(pods)
                .unwrap_or(u32::MAX)
                .saturating_sub(running),
            nodes: u32::try_from(self.nodes.len()).unwrap_or(u32::MAX),
            nodes_by_type: by_type,
            backlog: self.queue_backlog(),
            metric: self.metric_value(),
            cost_rate_picos: rate,
            cost_pico_ms: self.acct.billed_pico_ms + accrued,
        };
        self.acct.timeline.push(sample);
        if self.now < self.input.duration_ms {
            let next = (self.now + self.input.sample_every_ms).min(self.input.duration_ms);
            if next < self.input.duration_ms {
                self.push(next, Ev::Sample);
            }
        }
    }

    /// Checks the invariants a run must keep; `Err` describes the first one broken.
    ///
    /// No pod is lost (each workload has exactly its replicas as pods, each bound pod is on a
    /// live node that lists it, each node's used resources are the sum of its pods'), and no
    /// instance leaks (every live node is launching, ready or deleting on the way out, and
    /// nominated pods point at live nodes).
    pub fn check_invariants(&self) -> Result<(), String> {
        for (w, ws) in self.workloads.iter().enumerate() {
            if ws.pods.len() != ws.replicas as usize {
                return Err(format!(
                    "{}: {} pods for {} replicas",
                    self.input.workloads[w].key,
                    ws.pods.len(),
                    ws.replicas
                ));
            }
            let running = ws
                .pods
                .iter()
                .filter(|id| self.pods.get(id).is_some_and(|p| p.running_at.is_some()))
                .count();
            if running != ws.running as usize {
                return Err(format!(
                    "{}: running count drifted",
                    self.input.workloads[w].key
                ));
            }
        }
        for (id, p) in &self.pods {
            if let Some(n) = p.node {
                let Some(node) = self.nodes.get(&n) else {
                    return Err(format!("pod {} bound to a gone node", p.name));
                };
                if !node.pods.contains(id) {
                    return Err(format!("pod {} missing from its node", p.name));
                }
            }
            if let Some(n) = p.nominated
                && !self
                    .nodes
                    .get(&n)
                    .is_some_and(|node| node.nominated.contains(id))
            {
                return Err(format!(
                    "pod {} nominated to a node that does not hold it",
                    p.name
                ));
            }
        }
        for node in self.nodes.values() {
            let mut used = Resources::new();
            for id in &node.pods {
                let Some(p) = self.pods.get(id) else {
                    return Err(format!("{} holds a deleted pod", node.name));
                };
                used.add_assign(&self.workloads[p.workload].requests);
            }
            if used != node.used {
                return Err(format!("{}: used resources drifted", node.name));
            }
            if !node.used.fits(&node.allocatable) {
                return Err(format!("{}: overcommitted", node.name));
            }
        }
        Ok(())
    }

    /// Live nodes (launching, ready or deleting).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Existing pods.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Capacity type of each live node, for tests.
    pub fn capacity_types(&self) -> Vec<CapacityType> {
        self.nodes
            .values()
            .map(|n| n.instance.capacity_type)
            .collect()
    }
}

/// `type/capacity`, the key of node-hours and of the stacked node chart.
pub fn type_key(instance_type: &str, capacity: CapacityType) -> String {
    format!("{instance_type}/{capacity}")
}
