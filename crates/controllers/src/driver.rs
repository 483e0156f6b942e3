//! The async shells: the provisioner loop and the lifecycle loop. Each reads the latest
//! [`ClusterState`], calls the pure core, and executes; neither decides anything itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::condition::{Condition, ConditionStatus};
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_cloud::CloudProvider;
use tandem_model::catalog::Catalog;
use tandem_nodescaler::provisioning::{Plan, Reason};
use tandem_state::{ClusterState, Index};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::FIELD_MANAGER;
use crate::batcher::{BatchOptions, Batcher};
use crate::create_once;
use crate::events::{Recorder, Regarding};
use crate::lifecycle::{self, Effect, Facts, Input, NodeFacts, TERMINATION_FINALIZER};
use crate::provisioner::nodeclaim_for;
use tandem_nodescaler::provisioning::anticipation::{PREFIX as ANTICIPATED, is_anticipated};

/// Knobs of the controllers; defaults are upstream's.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Batch window.
    pub batch: BatchOptions,
    /// Provisioning options passed to `nodescaler::plan`.
    pub plan: tandem_nodescaler::Options,
    /// Garbage collection of orphaned instances and instance-less claims.
    pub gc: crate::gc::GcOptions,
    /// NodeClaim counters (register them with
    /// [`LifecycleMetrics::register`](crate::metrics::LifecycleMetrics::register) to export them).
    pub metrics: crate::metrics::LifecycleMetrics,
    /// The disruption loop (emptiness, drift, expiration, consolidation).
    pub disruption: crate::disruption::DisruptionOptions,
    /// The interruption loop (the cloud's notices: spot reclaim, maintenance, stops).
    pub interruption: crate::interruption::InterruptionOptions,
    /// Launch calls to the cloud.
    pub launch: LaunchOptions,
}

/// How launch calls to the cloud are bounded.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// How long one `CloudProvider::create` call may take before it counts as a retryable
    /// failure and the claim is launched again (under the same name: creates are idempotent by
    /// claim). Without it a cloud API that never answers held the claim's launch task, and the
    /// claim with it, forever: the launch timeout is checked between calls, never during one.
    /// Default 3 minutes: past the AWS provider's own retries (4 attempts × 30 s), inside the
    /// 5-minute launch timeout.
    pub call_timeout: Duration,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            call_timeout: Duration::from_secs(180),
        }
    }
}

pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) cloud: Arc<dyn CloudProvider>,
    pub(crate) recorder: Recorder,
    pub(crate) options: Options,
    /// The provisioner's recent nominations, which disruption must respect.
    pub(crate) nominations: crate::nominations::Nominations,
    /// Hands created claims to the index before the watch shows them.
    pub(crate) created: tandem_state::CreatedClaims,
}

impl Ctx {
    /// Creates a NodeClaim exactly once ([`create_once::create_claim`]) and hands the stored
    /// object to the index, so the next plan counts it even while the watch lags behind.
    pub(crate) async fn create_claim(
        &self,
        claim: NodeClaim,
    ) -> Result<NodeClaim, create_once::CreateError> {
        let claims: Api<NodeClaim> = Api::all(self.client.clone());
        let created = create_once::create_claim(&claims, claim).await?;
        self.created.record(created.clone());
        Ok(created)
    }
}

/// The running controllers; dropping it stops them.
pub struct Controllers {
    tasks: Vec<JoinHandle<()>>,
    state: watch::Receiver<Arc<ClusterState>>,
}

impl std::fmt::Debug for Controllers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controllers").finish_non_exhaustive()
    }
}

impl Controllers {
    /// Starts the index watches, the provisioner, lifecycle, termination, garbage collection,
    /// interruption and disruption loops on the current runtime.
    pub fn spawn(
        client: Client,
        cloud: Arc<dyn CloudProvider>,
        catalog: Arc<Catalog>,
        options: Options,
    ) -> Self {
        Self::spawn_with(client, cloud, Index::new(catalog), options)
    }

    /// [`Controllers::spawn`] over a prepared index (the AWS provider's adds a catalog per
    /// EC2NodeClass zones). The index watches ReplicaSets when the batch window closes on
    /// settled pods.
    pub fn spawn_with(
        client: Client,
        cloud: Arc<dyn CloudProvider>,
        mut index: Index,
        options: Options,
    ) -> Self {
        if options.batch.close_when_settled {
            index = index.with_replica_sets();
        }
        let created = index.created_claims();
        let state = tandem_state::watch::spawn(client.clone(), index);
        let ctx = Arc::new(Ctx {
            recorder: Recorder::new(client.clone()),
            client,
            cloud,
            options,
            nominations: crate::nominations::Nominations::default(),
            created,
        });
        let tasks = vec![
            tokio::spawn(provision_loop(ctx.clone(), state.clone())),
            tokio::spawn(lifecycle_loop(ctx.clone(), state.clone())),
            tokio::spawn(crate::terminator::termination_loop(
                ctx.clone(),
                state.clone(),
            )),
            tokio::spawn(gc_loop(ctx.clone(), state.clone())),
            tokio::spawn(crate::interruption::interruption_loop(
                ctx.clone(),
                state.clone(),
            )),
            tokio::spawn(crate::disruption::disruption_loop(ctx, state.clone())),
        ];
        Controllers { tasks, state }
    }

    /// The latest published state (for tests and health checks).
    pub fn state(&self) -> Arc<ClusterState> {
        self.state.borrow().clone()
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn pod_ref(p: &tandem_nodescaler::snapshot::PodRef) -> Regarding {
    Regarding {
        api_version: "v1",
        kind: "Pod",
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        uid: p.uid.clone(),
    }
}

fn nodepool_ref(np: &NodePool) -> Regarding {
    Regarding {
        api_version: "karpenter.sh/v1",
        kind: "NodePool",
        namespace: String::new(),
        name: np.metadata.name.clone().unwrap_or_default(),
        uid: np.metadata.uid.clone().unwrap_or_default(),
    }
}

pub(crate) fn claim_ref(c: &NodeClaim) -> Regarding {
    Regarding {
        api_version: "karpenter.sh/v1",
        kind: "NodeClaim",
        namespace: String::new(),
        name: c.metadata.name.clone().unwrap_or_default(),
        uid: c.metadata.uid.clone().unwrap_or_default(),
    }
}

/// How long the provisioner waits for the claims it created to show in its watch before it
/// plans again.
const AWAIT_CREATED_CLAIMS: Duration = Duration::from_secs(30);

async fn provision_loop(ctx: Arc<Ctx>, mut rx: watch::Receiver<Arc<ClusterState>>) {
    let mut batcher = Batcher::new(ctx.options.batch);
    let mut awaiting: BTreeSet<String> = BTreeSet::new();
    let mut awaiting_since = Instant::now();
    let mut last_status: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut anticipated: Vec<(String, u32)> = Vec::new();
    let mut anticipated_at = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        let st = rx.borrow().clone();
        if !st.synced {
            continue;
        }
        nodepool_status(&ctx, &st, &mut last_status).await;
        // The claims of the last plan must be in the index before the next plan counts them.
        // The index takes each created claim from its create call's answer at once
        // (`tandem_state::created`); what waits here is a creation whose answer was lost (it
        // may exist) until the watch shows it.
        awaiting.retain(|n| !st.nodeclaims.contains_key(n));
        // Planning without them would launch their pods again; so wait as long as a broken
        // watch takes to come back (its backoff tops at 30 s). 10 s was not enough for 830
        // claims created at once on a loaded API server: 93 of 1,000 pods got a second claim.
        if !awaiting.is_empty() {
            if awaiting_since.elapsed() < AWAIT_CREATED_CLAIMS {
                continue;
            }
            tracing::warn!(
                missing = awaiting.len(),
                "created nodeclaims not seen by the watch after {AWAIT_CREATED_CLAIMS:?}; planning without them"
            );
            awaiting.clear();
        }
        let pending = st.snapshot.pods.iter().map(|p| p.uid.as_str());
        let batch_closed = batcher.observe(pending, st.pending_settled, Instant::now());
        // Anticipated pods (forecasts, headroom) skip the batch window: planning them early is
        // their point. Planned again when they change, and every retry period while they stay
        // (headroom taken by real pods is replenished).
        let wanted: Vec<(String, u32)> = st
            .snapshot
            .anticipated
            .iter()
            .map(|a| (a.source.clone(), a.count))
            .collect();
        let ahead = !wanted.is_empty()
            && (wanted != anticipated || anticipated_at.elapsed() >= ctx.options.batch.retry);
        if !batch_closed && !ahead {
            continue;
        }
        anticipated = wanted;
        anticipated_at = Instant::now();
        let started = Instant::now();
        let plan =
            tandem_nodescaler::provisioning::plan_anticipating(&st.snapshot, &ctx.options.plan);
        // What a launch was decided on, for `RUST_LOG=tandem_controllers=debug`.
        if !plan.launches.is_empty() && tracing::enabled!(tracing::Level::DEBUG) {
            let snap = &st.snapshot;
            for n in &snap.nodes {
                tracing::debug!(node = %n.name, state = ?n.state, cpu = n.allocatable.cpu.0, pods = n.pods.len(), taints = ?n.taints.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), "plan input: node");
            }
            for c in &snap.in_flight {
                tracing::debug!(claim = %c.name, cpu = c.allocatable.cpu.0, pods = c.pods.len(), "plan input: in-flight claim");
            }
            for p in &snap.pods {
                tracing::debug!(pod = %p.name, "plan input: pending pod");
            }
            for a in &snap.anticipated {
                tracing::debug!(source = %a.source, count = a.count, "plan input: anticipated");
            }
        }
        ctx.options
            .metrics
            .scheduling_duration
            .get_or_create(&crate::metrics::SchedulingController {
                controller: "provisioner".into(),
            })
            .observe(started.elapsed().as_secs_f64());
        awaiting = execute_plan(&ctx, &st, &plan).await;
        awaiting_since = Instant::now();
    }
}

/// API writes of one plan in flight at once: claim creations, then Events. One at a time, a
/// 1,000-pod scale-out spent three minutes waiting on ~2,000 sequential round trips (one
/// NodeClaim and one `Nominated` Event each); the client's rate limit still bounds the rate.
const PLAN_WRITES_IN_FLIGHT: usize = 32;

/// Creates the plan's NodeClaims and publishes its Events; returns the created claim names.
async fn execute_plan(ctx: &Ctx, st: &ClusterState, plan: &Plan) -> BTreeSet<String> {
    let mut created = BTreeSet::new();
    // Futures built up front (not a closure over the stream): the provisioner's task must stay
    // `Send`, which a closure over borrowed launches cannot prove to the compiler.
    let creations: Vec<_> = plan
        .launches
        .iter()
        .filter_map(|launch| {
            let np = st.nodepools.get(&launch.nodepool)?;
            let claim = nodeclaim_for(launch, np);
            Some(Box::pin(
                async move { (launch, ctx.create_claim(claim).await) },
            ))
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(creations)
        .buffer_unordered(PLAN_WRITES_IN_FLIGHT)
        .collect()
        .await;
    let mut events: Vec<(Regarding, bool, &'static str, String)> = Vec::new();
    for (launch, result) in results {
        match result {
            Ok(c) => {
                let name = c.metadata.name.clone().unwrap_or_default();
                let ahead = launch.pods.iter().filter(|p| is_anticipated(p)).count();
                for pod in launch.pods.iter().filter(|p| !is_anticipated(p)) {
                    ctx.nominations.record(&pod.uid, &name, Instant::now());
                }
                tracing::info!(nodeclaim = %name, nodepool = %launch.nodepool, pods = launch.pods.len() - ahead, anticipated = ahead, "created nodeclaim");
                let reason = match launch.pods.iter().find(|p| is_anticipated(p)) {
                    _ if ahead < launch.pods.len() => "provisioning",
                    Some(p) if p.name.starts_with(&format!("{ANTICIPATED}headroom/")) => "headroom",
                    _ => "predictive",
                };
                for pod in launch.pods.iter().filter(|p| !is_anticipated(p)) {
                    events.push((
                        pod_ref(pod),
                        false,
                        "Nominated",
                        format!("Pod should schedule on: nodeclaim/{name}"),
                    ));
                }
                ctx.options
                    .metrics
                    .created
                    .get_or_create(&crate::metrics::Created {
                        reason: reason.into(),
                        nodepool: launch.nodepool.clone(),
                        min_values_relaxed: "false".into(),
                    })
                    .inc();
                created.insert(name);
            }
            // It may exist: wait for the watch as for a created one, so the next plan does
            // not launch its pods again.
            Err(create_once::CreateError::Uncertain { name, source }) => {
                tracing::warn!(error = %source, nodeclaim = %name, nodepool = %launch.nodepool, "creating nodeclaim: no answer; it may exist");
                created.insert(name);
            }
            Err(e) => {
                tracing::warn!(error = %e, nodepool = %launch.nodepool, "creating nodeclaim failed")
            }
        }
    }
    for nom in &plan.nominations {
        ctx.nominations
            .record(&nom.pod.uid, &nom.node, Instant::now());
        let target = if st.nodes.contains_key(&nom.node) {
            format!("node/{}", nom.node)
        } else {
            format!("nodeclaim/{}", nom.node)
        };
        events.push((
            pod_ref(&nom.pod),
            false,
            "Nominated",
            format!("Pod should schedule on: {target}"),
        ));
    }
    for u in &plan.unschedulable {
        events.push((
            pod_ref(&u.pod),
            true,
            "FailedScheduling",
            format!("Failed to schedule pod, {u}"),
        ));
    }
    let publications: Vec<_> = events
        .into_iter()
        .map(|(about, warning, reason, message)| {
            let recorder = &ctx.recorder;
            Box::pin(async move { recorder.publish(&about, warning, reason, &message).await })
        })
        .collect();
    futures::stream::iter(publications)
        .buffer_unordered(PLAN_WRITES_IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    let mut limited: BTreeMap<String, String> = BTreeMap::new();
    for u in &plan.unschedulable {
        for p in &u.by_nodepool {
            for r in &p.reasons {
                if let Reason::Limit { .. } = r {
                    limited.insert(p.nodepool.clone(), r.to_string());
                }
            }
        }
    }
    for (pool, why) in limited {
        if let Some(np) = st.nodepools.get(&pool) {
            ctx.recorder
                .publish(
                    &nodepool_ref(np),
                    true,
                    "NodePoolLimitReached",
                    &format!("cannot launch for pending pods: {why}"),
                )
                .await;
        }
    }
    created
}

/// `status.resources` (capacity of the pool's nodes and launched claims) and `status.nodes`,
/// written by server-side apply when they change.
async fn nodepool_status(
    ctx: &Ctx,
    st: &ClusterState,
    last: &mut BTreeMap<String, serde_json::Value>,
) {
    let api: Api<NodePool> = Api::all(ctx.client.clone());
    for (name, np) in &st.nodepools {
        let usage = st
            .snapshot
            .nodepools
            .iter()
            .find(|p| &p.name == name)
            .map(|p| (p.usage.clone(), p.node_count))
            .unwrap_or_default();
        let resources: BTreeMap<String, String> = usage
            .0
            .to_quantities()
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        let status = json!({"resources": resources, "nodes": usage.1});
        if last.get(name) == Some(&status) {
            continue;
        }
        let body = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
                          "metadata": {"name": name}, "status": status});
        match api
            .patch_status(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            Ok(_) => {
                last.insert(name.clone(), status);
            }
            Err(e) => tracing::debug!(error = %e, nodepool = %name, "nodepool status not written"),
        }
        let _ = np;
    }
}

fn condition_true(claim: &NodeClaim, type_: &str) -> Option<Timestamp> {
    claim
        .status
        .as_ref()
        .and_then(|s| tandem_api::condition::find(&s.conditions, type_))
        .filter(|c| c.is_true())
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .map_or_else(Timestamp::now, |t| t.0)
        })
}

/// What the lifecycle machine needs to know about a claim.
/// The Nodes by `spec.providerID`, built once per pass: looking each claim's Node up by a scan
/// made a lifecycle pass quadratic (1,000 claims × 1,000 nodes on every state change).
fn nodes_by_provider_id(st: &ClusterState) -> std::collections::HashMap<&str, &Arc<Node>> {
    st.nodes
        .values()
        .filter_map(|n| Some((n.spec.as_ref()?.provider_id.as_deref()?, n)))
        .collect()
}

/// The claim's Node, if it registered.
fn node_of<'a>(
    claim: &NodeClaim,
    by_provider: &std::collections::HashMap<&str, &'a Arc<Node>>,
) -> Option<&'a Arc<Node>> {
    let provider_id = claim.status.as_ref()?.provider_id.as_deref()?;
    by_provider.get(provider_id).copied()
}

fn facts(claim: &NodeClaim, node: Option<&Node>) -> Facts {
    let status = claim.status.clone().unwrap_or_default();
    let launched = match (&status.provider_id, condition_true(claim, "Launched")) {
        (Some(p), Some(at)) => Some((p.clone(), at)),
        _ => None,
    };
    let node = node.map(|n| node_facts(n, claim));
    Facts {
        has_finalizer: claim
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == TERMINATION_FINALIZER),
        deleting: claim.metadata.deletion_timestamp.is_some(),
        created: claim
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0),
        launched,
        registered: condition_true(claim, "Registered").is_some(),
        initialized: condition_true(claim, "Initialized").is_some(),
        node,
        instance_gone: false,
    }
}

fn node_facts(n: &Node, claim: &NodeClaim) -> NodeFacts {
    let taints = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    NodeFacts {
        name: n.metadata.name.clone().unwrap_or_default(),
        ready: n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True"),
        // Upstream counts the known ephemeral taints with the startup taints: a Ready node
        // whose `not-ready` taint the node lifecycle controller has not removed yet is not
        // initialized, so the planner keeps ignoring that taint instead of launching again.
        startup_taints: taints
            .iter()
            .any(|t| EPHEMERAL_TAINTS.contains(&t.key.as_str()))
            || claim.spec.startup_taints.iter().any(|st| {
                taints
                    .iter()
                    .any(|t| t.key == st.key && format!("{:?}", st.effect) == t.effect)
            }),
        deleting: n.metadata.deletion_timestamp.is_some(),
    }
}

/// Taints the node lifecycle (and Karpenter) put on every new node and take off by
/// themselves (upstream `scheduling.KnownEphemeralTaints`).
const EPHEMERAL_TAINTS: [&str; 3] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "karpenter.sh/unregistered",
];

/// Per claim: `None` while effects run, [`Done`] once they finished.
type Busy = Arc<Mutex<BTreeMap<String, Option<Done>>>>;

/// The first wait before a claim whose view has not changed is stepped again.
const REPEAT_FIRST: Duration = Duration::from_secs(2);
/// The longest such wait.
const REPEAT_MAX: Duration = Duration::from_secs(60);

/// A claim whose effects finished while the index showed it (and its Node) at `seen`.
///
/// The same view is not stepped again before `wait` has passed, and each repeat on an
/// unchanged view doubles `wait` (2 s up to 60 s). A fixed 2 s fed a spiral (#15's drift
/// scenario, 450 claims at once): once the API server was slow to deliver watch events, every
/// claim repeated its last step every 2 s from a stale view — finalizers, status, deletes
/// (31 k PATCH and 11 k DELETE for 675 claims) — which slowed the API server further, until
/// launched claims were deleted for a launch timeout they had not hit.
///
/// When every write of that step was accepted, `settled` holds its effects' kinds: a repeat on
/// the same view that decides the same effects has nothing to write (the writes are done; the
/// watch has not shown them yet) and is skipped. On a loaded API server the watch ran tens of
/// seconds late and each repeat re-sent the same status and Node patches: ~31 status applies
/// per claim in #15's drift scenario.
#[derive(Debug, Clone)]
struct Done {
    seen: String,
    at: Instant,
    wait: Duration,
    settled: Option<Vec<&'static str>>,
}

/// What the lifecycle loop does with a claim on this pass, from what it remembers of the
/// claim's last step ([`Busy`]) and the view (`rv`, the claim's and its Node's resource
/// versions) it has now.
#[derive(Debug, PartialEq)]
enum Pass {
    /// Effects are running, or the same view was stepped less than `wait` ago.
    Skip,
    /// Step the claim: after this, an unchanged view waits `wait`; `settled` is carried from a
    /// previous step on the same view whose writes were all accepted.
    Step {
        wait: Duration,
        settled: Option<Vec<&'static str>>,
    },
}

/// The pass for a claim whose last step left `prev` (`None`: never stepped or forgotten;
/// `Some(None)`: its effects are running), seen at `rv` at `now`. A new view is stepped at
/// once; the same view again only after the last wait, which then doubles up to
/// [`REPEAT_MAX`].
fn next_pass(prev: Option<&Option<Done>>, rv: &str, now: Instant) -> Pass {
    match prev {
        Some(None) => Pass::Skip,
        Some(Some(done)) if done.seen == rv => {
            if now.saturating_duration_since(done.at) < done.wait {
                Pass::Skip
            } else {
                Pass::Step {
                    wait: (done.wait * 2).min(REPEAT_MAX),
                    settled: done.settled.clone(),
                }
            }
        }
        _ => Pass::Step {
            wait: REPEAT_FIRST,
            settled: None,
        },
    }
}

/// When a step on the same view decides the same effect kinds as the last one whose writes
/// were all accepted (`settled`), there is nothing to write: the [`Done`] to remember instead
/// of running them (waiting for the watch to show the writes). `None`: run the effects.
fn already_done(pass: Pass, kinds: &[&'static str], rv: String, now: Instant) -> Option<Done> {
    match pass {
        Pass::Step {
            wait,
            settled: Some(settled),
        } if settled == kinds => Some(Done {
            seen: rv,
            at: now,
            wait,
            settled: Some(settled),
        }),
        _ => None,
    }
}

async fn lifecycle_loop(ctx: Arc<Ctx>, mut rx: watch::Receiver<Arc<ClusterState>>) {
    // Claims with effects running, and claims whose effects finished at a resourceVersion the
    // index has not moved past yet (so a stale view does not repeat them at once).
    let busy: Busy = Arc::new(Mutex::new(BTreeMap::new()));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        let st = rx.borrow().clone();
        if !st.synced {
            continue;
        }
        let now = Timestamp::now();
        let by_provider = nodes_by_provider_id(&st);
        for (name, claim) in &st.nodeclaims {
            let node = node_of(claim, &by_provider).cloned();
            // What the step reads: the claim and its Node, by resource version.
            let rv = format!(
                "{}/{}",
                claim
                    .metadata
                    .resource_version
                    .as_deref()
                    .unwrap_or_default(),
                node.as_ref()
                    .and_then(|n| n.metadata.resource_version.as_deref())
                    .unwrap_or_default()
            );
            {
                let mut b = busy
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let pass = next_pass(b.get(name), &rv, Instant::now());
                let Pass::Step { wait, .. } = pass else {
                    continue;
                };
                let mut f = facts(claim, node.as_deref());
                // A deleted claim whose Node is gone waits for the cloud to say NotFound; that
                // answer needs a call, made in the task.
                let ask_cloud = f.deleting && f.has_finalizer && f.node.is_none();
                let effects = if ask_cloud {
                    Vec::new()
                } else {
                    let (_, effects) = lifecycle::step(Input::Observed(f.clone()), now);
                    if effects.is_empty() {
                        b.remove(name);
                        continue;
                    }
                    let kinds: Vec<&'static str> = effects.iter().map(Effect::kind).collect();
                    if let Some(done) = already_done(pass, &kinds, rv.clone(), Instant::now()) {
                        // Done already at this view: wait for the watch to show it.
                        b.insert(name.clone(), Some(done));
                        continue;
                    }
                    effects
                };
                b.insert(name.clone(), None);
                let ctx = ctx.clone();
                let busy = busy.clone();
                let claim = claim.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    let effects = if let (true, Some((pid, _))) = (ask_cloud, &f.launched) {
                        f.instance_gone = matches!(
                            ctx.cloud.get(pid).await,
                            Err(tandem_cloud::Error::NodeClaimNotFound { .. })
                        );
                        lifecycle::step(Input::Observed(f), Timestamp::now()).1
                    } else if ask_cloud {
                        lifecycle::step(Input::Observed(f), Timestamp::now()).1
                    } else {
                        effects
                    };
                    // Only the claim's Node, not the whole state: hundreds of launches in
                    // flight each held a state version alive (RSS 208 → 351 MiB at 1,000 pods).
                    let kinds: Vec<&'static str> = effects.iter().map(Effect::kind).collect();
                    let accepted = execute(&ctx, &claim, node.as_deref(), effects).await;
                    let done = Done {
                        seen: rv,
                        at: Instant::now(),
                        wait,
                        // A step that asked the cloud polls it again: never taken as done.
                        settled: (accepted && !ask_cloud).then_some(kinds),
                    };
                    busy.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(name, Some(done));
                });
            }
        }
    }
}

/// Executes one step's effects for a claim, feeding launch results back into the machine.
/// True when every write was accepted and no launch failed (nothing to retry at this view).
async fn execute(
    ctx: &Ctx,
    claim: &NodeClaim,
    claim_node: Option<&Node>,
    effects: Vec<Effect>,
) -> bool {
    let name = claim.metadata.name.clone().unwrap_or_default();
    let claims: Api<NodeClaim> = Api::all(ctx.client.clone());
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut status = claim.status.clone().unwrap_or_default();
    let mut status_dirty = false;
    let mut launch_failed = false;
    if tracing::enabled!(target: "tandem_controllers::lifecycle", tracing::Level::DEBUG) {
        let kinds: Vec<&str> = effects.iter().map(Effect::kind).collect();
        tracing::debug!(target: "tandem_controllers::lifecycle", nodeclaim = %name, effects = ?kinds, "lifecycle step");
    }
    let mut queue: std::collections::VecDeque<Effect> = effects.into();
    while let Some(effect) = queue.pop_front() {
        let result: Result<(), kube::Error> = match effect {
            Effect::AddFinalizer => {
                let mut f = claim.metadata.finalizers.clone().unwrap_or_default();
                f.push(TERMINATION_FINALIZER.to_owned());
                claims
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"metadata": {"finalizers": f}})),
                    )
                    .await
                    .map(|_| ())
            }
            Effect::Launch => {
                let timeout = ctx.options.launch.call_timeout;
                let created = tokio::time::timeout(timeout, ctx.cloud.create(claim))
                    .await
                    .unwrap_or_else(|_| {
                        Err(tandem_cloud::Error::CreateFailed {
                            message: format!(
                                "the cloud did not answer the launch within {}s",
                                timeout.as_secs_f64()
                            ),
                        })
                    });
                let input = match created {
                    Ok(i) => Input::LaunchSucceeded(Box::new(i)),
                    Err(e) => {
                        tracing::warn!(error = %e, nodeclaim = %name, "launch failed");
                        launch_failed = true;
                        Input::LaunchFailed {
                            category: e.category(),
                            retryable: e.is_retryable(),
                            message: e.to_string(),
                        }
                    }
                };
                let (_, more) = lifecycle::step(input, Timestamp::now());
                queue.extend(more);
                Ok(())
            }
            Effect::RecordLaunch(instance) => {
                let instance = *instance;
                status.provider_id = Some(instance.provider_id.clone());
                let q = |r: &tandem_model::resources::Resources| {
                    r.to_quantities()
                        .into_iter()
                        .map(|(k, v)| (k, tandem_api::quantity::Quantity(v.to_string())))
                        .collect()
                };
                status.capacity = q(&instance.capacity);
                status.allocatable = q(&instance.allocatable);
                status_dirty = true;
                let mut labels = instance.labels.clone();
                labels.remove(tandem_model::labels::HOSTNAME);
                for (k, v) in claim.metadata.labels.clone().unwrap_or_default() {
                    labels.insert(k, v);
                }
                claims
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"metadata": {"labels": labels}})),
                    )
                    .await
                    .map(|_| ())
            }
            Effect::Conditions(list) => {
                for c in list {
                    set_condition(
                        &mut status.conditions,
                        c.type_,
                        c.status,
                        c.reason,
                        &c.message,
                    );
                }
                status_dirty = true;
                Ok(())
            }
            Effect::SyncNode { node } => {
                status.node_name = Some(node.clone());
                status_dirty = true;
                let current = claim_node.filter(|n| n.metadata.name.as_deref() == Some(&node));
                sync_node(&nodes, claim, current, &node).await
            }
            Effect::MarkNodeInitialized { node } => nodes
                .patch(
                    &node,
                    &PatchParams::default(),
                    &Patch::Merge(
                        &json!({"metadata": {"labels": {tandem_state::INITIALIZED_LABEL: "true"}}}),
                    ),
                )
                .await
                .map(|_| ()),
            Effect::DeleteClaim { reason } => {
                tracing::info!(nodeclaim = %name, reason, "deleting nodeclaim");
                ignore_not_found(
                    claims
                        .delete(&name, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                )
            }
            Effect::DeleteNode { node } => ignore_not_found(
                nodes
                    .delete(&node, &DeleteParams::default())
                    .await
                    .map(|_| ()),
            ),
            Effect::DeleteInstance { provider_id } => {
                if let Err(e) = ctx.cloud.delete(&provider_id).await {
                    tracing::warn!(error = %e, nodeclaim = %name, "instance termination failed; retrying");
                    return false;
                }
                Ok(())
            }
            Effect::RemoveFinalizer => {
                let f: Vec<String> = claim
                    .metadata
                    .finalizers
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|f| f != TERMINATION_FINALIZER)
                    .collect();
                let removed = ignore_not_found(
                    claims
                        .patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(&json!({"metadata": {"finalizers": f}})),
                        )
                        .await
                        .map(|_| ()),
                );
                if removed.is_ok() {
                    let label = |key: &str| {
                        claim
                            .metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(key))
                            .cloned()
                            .unwrap_or_default()
                    };
                    ctx.options
                        .metrics
                        .terminated
                        .get_or_create(&crate::metrics::Terminated {
                            nodepool: label("karpenter.sh/nodepool"),
                            capacity_type: label("karpenter.sh/capacity-type"),
                            zone: label("topology.kubernetes.io/zone"),
                        })
                        .inc();
                }
                removed
            }
            Effect::Event {
                warning,
                reason,
                message,
            } => {
                ctx.recorder
                    .publish(&claim_ref(claim), warning, reason, &message)
                    .await;
                Ok(())
            }
        };
        if let Err(e) = result {
            if matches!(&e, kube::Error::Api(s) if s.code == 409) {
                // A write under an optimistic lock met a newer object: the next pass has it.
                tracing::debug!(error = %e, nodeclaim = %name, "lifecycle effect met a newer object; retrying on the next pass");
            } else {
                tracing::warn!(error = %e, nodeclaim = %name, "lifecycle effect failed; retrying on the next pass");
            }
            return false;
        }
    }
    if status_dirty {
        let conds: BTreeMap<String, String> = status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.to_string()))
            .collect();
        let (s, reason) = if lifecycle::ready(&conds) {
            ("True", "Ready")
        } else {
            ("False", "NotReady")
        };
        set_condition(&mut status.conditions, "Ready", s, reason, "");
        // A step repeated on a Node that changed for another reason (a kubelet heartbeat)
        // sets the conditions the claim already has: no write, or each heartbeat of each
        // registering node was a status PATCH (≈90 requests per claim in #15's drift scale-out).
        if claim.status.as_ref() != Some(&status)
            && !write_claim_status(&claims, &name, &status).await
        {
            return false;
        }
    }
    !launch_failed
}

/// Writes a claim's whole status by server-side apply (manager `tandem`); every writer sends
/// the full status, so no field of an earlier apply is dropped. False when it was not written
/// (logged).
pub(crate) async fn write_claim_status(
    claims: &Api<NodeClaim>,
    name: &str,
    status: &tandem_api::karpenter::v1::NodeClaimStatus,
) -> bool {
    let body = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
                      "metadata": {"name": name}, "status": status});
    if let Err(e) = claims
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        tracing::warn!(error = %e, nodeclaim = %name, "nodeclaim status not written");
        return false;
    }
    true
}

pub(crate) fn ignore_not_found(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    }
}

/// Sets a condition, keeping its transition time when the status does not change.
pub(crate) fn set_condition(
    list: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    let status = match status {
        "True" => ConditionStatus::True,
        "False" => ConditionStatus::False,
        _ => ConditionStatus::Unknown,
    };
    let now = Some(Time(Timestamp::now()));
    if let Some(c) = list.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = now;
        }
        c.status = status;
        c.reason = Some(reason.to_owned());
        c.message = Some(message.to_owned());
    } else {
        list.push(Condition {
            type_: type_.to_owned(),
            status,
            observed_generation: None,
            last_transition_time: now,
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
        });
    }
}

/// Registration sync: the claim's labels and taints on the Node, the unregistered taint gone,
/// the termination finalizer on, the Node owned by the claim and labelled registered.
async fn sync_node(
    nodes: &Api<Node>,
    claim: &NodeClaim,
    node: Option<&Node>,
    name: &str,
) -> Result<(), kube::Error> {
    let Some(patch) = node_sync_patch(claim, node) else {
        return Ok(());
    };
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// What registering a Node writes onto it: the claim's labels and `karpenter.sh/registered`,
/// the claim's taints and startup taints, the termination finalizer and the claim as owner,
/// without the kwok provider's unregistered taint. `None` when the Node has all of it already.
///
/// The taints are a whole list in a merge patch, computed from this process's view of the
/// Node, which on a loaded API server is seconds to minutes old; so the patch carries that
/// view's resourceVersion (upstream writes it with an optimistic lock too), and a Node changed
/// since is refused with 409 instead of getting back a taint another controller just changed
/// (44 such refusals in one KWOK drift scale-out). And a Node that has it all is not written:
/// every re-step of a registering claim used to send the whole patch again.
pub(crate) fn node_sync_patch(claim: &NodeClaim, node: Option<&Node>) -> Option<serde_json::Value> {
    let mut labels = claim.metadata.labels.clone().unwrap_or_default();
    labels.insert("karpenter.sh/registered".into(), "true".into());
    let current_taints: Vec<serde_json::Value> = node
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect();
    let mut taints: Vec<serde_json::Value> = current_taints
        .iter()
        .filter(|t| t["key"] != tandem_cloud::kwok::UNREGISTERED_TAINT)
        .cloned()
        .collect();
    for t in claim.spec.taints.iter().chain(&claim.spec.startup_taints) {
        let v = json!({"key": t.key, "value": t.value, "effect": t.effect});
        let dup = taints
            .iter()
            .any(|x| x["key"] == v["key"] && x["effect"] == v["effect"]);
        if !dup {
            taints.push(v);
        }
    }
    let mut finalizers = node
        .and_then(|n| n.metadata.finalizers.clone())
        .unwrap_or_default();
    let has_finalizer = finalizers.iter().any(|f| f == TERMINATION_FINALIZER);
    if !has_finalizer {
        finalizers.push(TERMINATION_FINALIZER.to_owned());
    }
    let mut meta = json!({
        "labels": labels,
        "finalizers": finalizers,
        "ownerReferences": [{"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "name": claim.metadata.name, "uid": claim.metadata.uid, "blockOwnerDeletion": true}],
    });
    if let Some(node) = node {
        let node_labels = node.metadata.labels.clone().unwrap_or_default();
        let labelled = labels.iter().all(|(k, v)| node_labels.get(k) == Some(v));
        let owned = node.metadata.owner_references.as_ref().is_some_and(|o| {
            o.iter()
                .any(|r| Some(&r.uid) == claim.metadata.uid.as_ref())
        });
        if labelled && owned && has_finalizer && taints == current_taints {
            return None;
        }
        if let Some(rv) = &node.metadata.resource_version {
            meta["resourceVersion"] = json!(rv);
        }
    }
    Some(json!({"metadata": meta, "spec": {"taints": taints}}))
}

/// Every `gc.interval`: the cloud's instances against the claims, through [`crate::gc::decide`].
async fn gc_loop(ctx: Arc<Ctx>, rx: watch::Receiver<Arc<ClusterState>>) {
    let options = ctx.options.gc;
    let mut tick = tokio::time::interval(options.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !rx.borrow().synced {
            continue;
        }
        let instances = match ctx.cloud.list().await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "listing instances for garbage collection failed");
                continue;
            }
        };
        // The state is read after the list: a claim created meanwhile is seen, not collected.
        let st = rx.borrow().clone();
        let instances: Vec<crate::gc::InstanceFacts> = instances.iter().map(Into::into).collect();
        let by_provider = nodes_by_provider_id(&st);
        let claims: Vec<crate::gc::ClaimFacts> = st
            .nodeclaims
            .values()
            .map(|c| {
                let f = facts(c, node_of(c, &by_provider).map(AsRef::as_ref));
                crate::gc::ClaimFacts {
                    name: c.metadata.name.clone().unwrap_or_default(),
                    provider_id: c.status.as_ref().and_then(|s| s.provider_id.clone()),
                    launched_at: f.launched.map(|(_, at)| at),
                    deleting: f.deleting,
                    node_ready: f.node.is_some_and(|n| n.ready),
                }
            })
            .collect();
        let claims_api: Api<NodeClaim> = Api::all(ctx.client.clone());
        for action in crate::gc::decide(&instances, &claims, &options, Timestamp::now()) {
            match action {
                crate::gc::Action::TerminateInstance { provider_id } => {
                    tracing::info!(
                        provider_id,
                        "garbage collection: terminating an instance no nodeclaim owns"
                    );
                    if let Err(e) = ctx.cloud.delete(&provider_id).await {
                        tracing::warn!(error = %e, provider_id, "garbage collection: termination failed");
                    }
                }
                crate::gc::Action::DeleteClaim { name } => {
                    tracing::info!(nodeclaim = %name, "garbage collection: deleting a nodeclaim whose instance is gone");
                    if let Err(e) = ignore_not_found(
                        claims_api
                            .delete(&name, &DeleteParams::default())
                            .await
                            .map(|_| ()),
                    ) {
                        tracing::warn!(error = %e, nodeclaim = %name, "garbage collection: deletion failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(seen: &str, at: Instant, wait: Duration, settled: Option<Vec<&'static str>>) -> Done {
        Done {
            seen: seen.to_owned(),
            at,
            wait,
            settled,
        }
    }

    /// Running effects are never doubled; a new view steps at once with the first wait; the
    /// same view waits, then steps with the wait doubled (up to the cap) and what it settled.
    #[test]
    fn a_claim_is_stepped_again_on_a_new_view_or_after_a_doubling_wait() {
        let t0 = Instant::now();
        assert_eq!(next_pass(Some(&None), "1/1", t0), Pass::Skip);
        let first = Pass::Step {
            wait: REPEAT_FIRST,
            settled: None,
        };
        assert_eq!(next_pass(None, "1/1", t0), first);
        let last = Some(done(
            "1/1",
            t0,
            Duration::from_secs(4),
            Some(vec!["Conditions"]),
        ));
        assert_eq!(next_pass(Some(&last), "2/1", t0), first, "new view");
        assert_eq!(
            next_pass(Some(&last), "1/1", t0 + Duration::from_secs(3)),
            Pass::Skip
        );
        assert_eq!(
            next_pass(Some(&last), "1/1", t0 + Duration::from_secs(4)),
            Pass::Step {
                wait: Duration::from_secs(8),
                settled: Some(vec!["Conditions"]),
            }
        );
        let long = Some(done("1/1", t0, Duration::from_secs(45), None));
        assert_eq!(
            next_pass(Some(&long), "1/1", t0 + Duration::from_secs(50)),
            Pass::Step {
                wait: REPEAT_MAX,
                settled: None,
            }
        );
    }

    /// #15's drift run re-sent ~31 status applies per claim while the watch lagged: a repeat
    /// on the same view deciding what was already written is remembered, not run; other
    /// effects, or a step whose writes failed (nothing settled), run.
    #[test]
    fn a_repeat_of_accepted_writes_on_the_same_view_is_not_run() {
        let t0 = Instant::now();
        let last = Some(done(
            "1/1",
            t0,
            Duration::from_secs(2),
            Some(vec!["Conditions", "SyncNode"]),
        ));
        let later = t0 + Duration::from_secs(2);
        let pass = || next_pass(Some(&last), "1/1", later);
        let held = already_done(pass(), &["Conditions", "SyncNode"], "1/1".into(), later)
            .expect("the same writes are not sent again");
        assert_eq!((held.seen.as_str(), held.at), ("1/1", later));
        assert_eq!(
            held.wait,
            Duration::from_secs(4),
            "and the wait still doubles"
        );
        assert_eq!(held.settled, Some(vec!["Conditions", "SyncNode"]));
        assert!(already_done(pass(), &["Conditions", "DeleteNode"], "1/1".into(), later).is_none());
        let failed = Some(done("1/1", t0, Duration::from_secs(2), None));
        let pass = next_pass(Some(&failed), "1/1", later);
        assert!(already_done(pass, &["Conditions", "SyncNode"], "1/1".into(), later).is_none());
        assert!(already_done(Pass::Skip, &["Conditions"], "1/1".into(), later).is_none());
    }

    fn claim() -> NodeClaim {
        serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": {"name": "pool-abcde", "uid": "claim-uid",
                "labels": {"karpenter.sh/nodepool": "pool", "team": "a"}},
            "spec": {
                "taints": [{"key": "dedicated", "value": "a", "effect": "NoSchedule"}],
                "startupTaints": [{"key": "agent-not-ready", "effect": "NoSchedule"}],
                "requirements": [],
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "k"}},
        }))
        .expect("claim")
    }

    fn node(rv: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "pool-abcde", "resourceVersion": rv,
                "labels": {"kubernetes.io/hostname": "pool-abcde"}},
            "spec": {"providerID": "kwok://pool-abcde", "taints": taints},
        }))
        .expect("node")
    }

    /// The Node as the API server stores it after `patch` (labels merged, lists replaced).
    fn patched(mut node: Node, patch: &serde_json::Value, rv: &str) -> Node {
        let meta = &patch["metadata"];
        let labels = node.metadata.labels.get_or_insert_with(Default::default);
        for (k, v) in meta["labels"].as_object().expect("labels") {
            labels.insert(k.clone(), v.as_str().expect("label").to_owned());
        }
        node.metadata.finalizers = serde_json::from_value(meta["finalizers"].clone()).ok();
        node.metadata.owner_references =
            serde_json::from_value(meta["ownerReferences"].clone()).ok();
        node.spec.as_mut().expect("spec").taints =
            serde_json::from_value(patch["spec"]["taints"].clone()).ok();
        node.metadata.resource_version = Some(rv.to_owned());
        node
    }

    fn keys(patch: &serde_json::Value) -> Vec<&str> {
        patch["spec"]["taints"]
            .as_array()
            .expect("taints")
            .iter()
            .map(|t| t["key"].as_str().expect("key"))
            .collect()
    }

    #[test]
    fn a_node_is_synced_once_under_its_resource_version_and_then_left_alone() {
        let claim = claim();
        let fresh = node(
            "10",
            json!([{"key": "karpenter.sh/unregistered", "effect": "NoExecute"},
                   {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]),
        );
        let patch = node_sync_patch(&claim, Some(&fresh)).expect("a new node needs a sync");
        assert_eq!(
            patch["metadata"]["resourceVersion"], "10",
            "optimistic lock"
        );
        assert_eq!(
            patch["metadata"]["labels"]["karpenter.sh/registered"],
            "true"
        );
        assert_eq!(patch["metadata"]["labels"]["team"], "a");
        assert_eq!(
            patch["metadata"]["finalizers"],
            json!([TERMINATION_FINALIZER])
        );
        assert_eq!(patch["metadata"]["ownerReferences"][0]["uid"], "claim-uid");
        assert_eq!(
            keys(&patch),
            [
                "node.kubernetes.io/not-ready",
                "dedicated",
                "agent-not-ready"
            ]
        );

        // Synced: nothing more to write, however often the claim is stepped again.
        let synced = patched(fresh, &patch, "11");
        assert_eq!(node_sync_patch(&claim, Some(&synced)), None);
        // The node-lifecycle controller removes its not-ready taint: still nothing to write
        // (a stale list would put it back).
        let mut ready = synced.clone();
        ready
            .spec
            .as_mut()
            .unwrap()
            .taints
            .as_mut()
            .unwrap()
            .retain(|t| t.key != "node.kubernetes.io/not-ready");
        assert_eq!(node_sync_patch(&claim, Some(&ready)), None);
        // A label of the claim's missing again (someone removed it): written back, locked.
        let mut unlabelled = ready;
        unlabelled.metadata.resource_version = Some("12".into());
        unlabelled.metadata.labels.as_mut().unwrap().remove("team");
        let again = node_sync_patch(&claim, Some(&unlabelled)).expect("label restored");
        assert_eq!(again["metadata"]["resourceVersion"], "12");
        assert_eq!(keys(&again), ["dedicated", "agent-not-ready"]);
    }

    #[test]
    fn a_node_not_in_view_yet_is_patched_without_a_lock() {
        let patch = node_sync_patch(&claim(), None).expect("patch");
        assert!(patch["metadata"].get("resourceVersion").is_none());
        assert_eq!(keys(&patch), ["dedicated", "agent-not-ready"]);
    }
}
