//! The disruption loop: the imperative shell around `nodescaler::disruption`.
//!
//! ```text
//!   every poll_interval (10 s):
//!     untaint nodes left with karpenter.sh/disrupted by an abandoned command
//!     decide(snapshot, now) ─► diagnostics ─► DisruptionBlocked / Unconsolidatable events
//!                          └─► Disrupt command:
//!       wait revalidate_after_ms (15 s) ─► validate(command, fresh snapshot, now) or drop it
//!       taint candidates karpenter.sh/disrupted:NoSchedule
//!       create replacement NodeClaims (provisioner::nodeclaim_for) (DisruptionLaunching and
//!       wait until every replacement is Initialized    DisruptionWaitingReadiness on each)
//!         └─ timeout or a replacement deleted: untaint, delete the replacements, drop it
//!       delete the candidates' NodeClaims (DisruptionTerminating; termination drains them)
//!       wait until the state shows them deleting, so the next pass counts them in budgets
//! ```
//!
//! One command runs at a time (upstream's queue runs several; its nodes are marked for
//! deletion meanwhile, which this loop gets by not deciding while a command runs).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_nodescaler::disruption::{self, Diagnostic, Disrupt, Subject};
use tandem_nodescaler::snapshot::NodeState;
use tandem_state::ClusterState;
use tokio::sync::watch;

use crate::driver::{Ctx, claim_ref, ignore_not_found};
use crate::events::Regarding;
use crate::metrics::{Disrupted, DisruptionDecision, DisruptionMetrics};
use crate::provisioner::nodeclaim_for;
use crate::termination::DISRUPTED_TAINT;

/// Knobs of the disruption loop; defaults are upstream's.
#[derive(Debug, Clone)]
pub struct DisruptionOptions {
    /// Run the loop at all.
    pub enabled: bool,
    /// Time between passes: 10 s (core `pollingPeriod`).
    pub poll_interval: Duration,
    /// How long replacements may take to initialize before the command is abandoned: 10 min
    /// (the lower clamp of upstream's queue timeout).
    pub replacement_timeout: Duration,
    /// The pure decision's options; `validation_delay_ms` (15 s) is how long a command waits
    /// before it is re-validated.
    pub decide: disruption::Options,
    /// Counters (register them with [`DisruptionMetrics::register`] to export them).
    pub metrics: DisruptionMetrics,
}

impl Default for DisruptionOptions {
    fn default() -> Self {
        DisruptionOptions {
            enabled: true,
            poll_interval: Duration::from_secs(10),
            replacement_timeout: Duration::from_secs(600),
            decide: disruption::Options::default(),
            metrics: DisruptionMetrics::default(),
        }
    }
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

pub(crate) fn node_ref(n: &Node) -> Regarding {
    Regarding {
        api_version: "v1",
        kind: "Node",
        namespace: String::new(),
        name: n.name_any(),
        uid: n.uid().unwrap_or_default(),
    }
}

fn nodepool_ref(st: &ClusterState, name: &str) -> Option<Regarding> {
    let np = st.nodepools.get(name)?;
    Some(Regarding {
        api_version: "karpenter.sh/v1",
        kind: "NodePool",
        namespace: String::new(),
        name: name.to_owned(),
        uid: np.uid().unwrap_or_default(),
    })
}

/// The NodeClaim of a Node: same provider ID, or `status.nodeName`.
pub(crate) fn claim_of<'a>(st: &'a ClusterState, node: &str) -> Option<&'a Arc<NodeClaim>> {
    let pid = st
        .nodes
        .get(node)
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.provider_id.as_deref());
    st.nodeclaims.values().find(|c| {
        let s = c.status.as_ref();
        (pid.is_some() && s.and_then(|s| s.provider_id.as_deref()) == pid)
            || s.and_then(|s| s.node_name.as_deref()) == Some(node)
    })
}

fn has_disrupted_taint(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter()
                .any(|t| t.key == DISRUPTED_TAINT && t.effect == "NoSchedule")
        })
}

/// Publishes an event about a node and its claim.
async fn node_event(ctx: &Ctx, st: &ClusterState, node: &str, reason: &str, message: &str) {
    if let Some(n) = st.nodes.get(node) {
        ctx.recorder
            .publish(&node_ref(n), false, reason, message)
            .await;
    }
    if let Some(c) = claim_of(st, node) {
        ctx.recorder
            .publish(&claim_ref(c), false, reason, message)
            .await;
    }
}

async fn publish_diagnostics(ctx: &Ctx, st: &ClusterState, diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        match d {
            Diagnostic::Blocked {
                subject: Subject::Node(node),
                message,
            } => node_event(ctx, st, node, "DisruptionBlocked", message).await,
            Diagnostic::Blocked {
                subject: Subject::NodePool(pool),
                message,
            } => {
                if let Some(r) = nodepool_ref(st, pool) {
                    ctx.recorder
                        .publish(&r, false, "DisruptionBlocked", message)
                        .await;
                }
            }
            Diagnostic::Unconsolidatable { node, message } => {
                node_event(ctx, st, node, "Unconsolidatable", message).await;
            }
        }
    }
}

/// Adds (`on`) or removes the disrupted taint, guarded by the Node's resourceVersion and
/// retried on conflict.
async fn set_taint(ctx: &Ctx, node: &str, on: bool) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut last = Ok(());
    for _ in 0..5 {
        let n = match nodes.get_opt(node).await? {
            Some(n) => n,
            None => return Ok(()),
        };
        if has_disrupted_taint(&n) == on {
            return Ok(());
        }
        let mut taints: Vec<serde_json::Value> = n
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !(t.key == DISRUPTED_TAINT && t.effect == "NoSchedule"))
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect();
        if on {
            taints.push(json!({"key": DISRUPTED_TAINT, "effect": "NoSchedule"}));
        }
        let patch = json!({
            "metadata": {"resourceVersion": n.resource_version()},
            "spec": {"taints": taints},
        });
        match nodes
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => last = Err(kube::Error::Api(s)),
            Err(e) => return Err(e),
        }
    }
    last
}

/// The loop; returns when the state channel closes.
pub(crate) async fn disruption_loop(ctx: Arc<Ctx>, mut rx: watch::Receiver<Arc<ClusterState>>) {
    let opts = ctx.options.disruption.clone();
    if !opts.enabled {
        return;
    }
    let mut tick = tokio::time::interval(opts.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Handed from pass to pass: an unchanged cluster is not consolidated again (upstream's
    // consolidated state; see `disruption::settled`).
    let mut settled = disruption::Settled::default();
    loop {
        tick.tick().await;
        if rx.has_changed().is_err() {
            return;
        }
        let st = rx.borrow_and_update().clone();
        if !st.synced {
            continue;
        }
        untaint_leftovers(&ctx, &st).await;
        // A pass runs up to max_simulations scheduling simulations: keep it off the runtime's
        // worker threads.
        let decision = {
            let snapshot = ctx.nominations.apply(&st, std::time::Instant::now());
            let o = opts.decide.clone();
            let last = settled.clone();
            match tokio::task::spawn_blocking(move || {
                disruption::decide_settled(&snapshot, now_ms(), &o, &last)
            })
            .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "disruption pass failed");
                    continue;
                }
            }
        };
        settled = decision.settled.clone();
        publish_diagnostics(&ctx, &st, &decision.diagnostics).await;
        // Reasons whose methods did not run this pass (an earlier one decided) drop out
        // rather than keep a stale count.
        opts.metrics.eligible.clear();
        for (reason, n) in &decision.eligible {
            opts.metrics
                .eligible
                .get_or_create(&crate::metrics::DisruptionReason {
                    reason: reason.as_str().to_lowercase(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        let Some(command) = decision.command else {
            continue;
        };
        tracing::info!(
            method = command.method.as_str(),
            reason = %command.reason,
            candidates = ?command.candidates,
            replacements = command.replacements.len(),
            "disruption command decided"
        );
        // As upstream requeues at once after a command: the next drifted or expired node
        // need not wait out a poll interval (a 600-node drift took one node per 10 s).
        if execute(&ctx, &mut rx, &command, &opts).await {
            tick.reset_immediately();
        }
    }
}

/// A node with the disrupted taint that is not being deleted belongs to no running command
/// (only one runs, and not during a pass): the taint comes off.
async fn untaint_leftovers(ctx: &Ctx, st: &ClusterState) {
    for (name, n) in &st.nodes {
        let deleting = n.metadata.deletion_timestamp.is_some()
            || claim_of(st, name).is_some_and(|c| c.metadata.deletion_timestamp.is_some());
        if !deleting && has_disrupted_taint(n) {
            tracing::info!(node = %name, "removing the disrupted taint of an abandoned command");
            if let Err(e) = set_taint(ctx, name, false).await {
                tracing::warn!(error = %e, node = %name, "untainting failed");
            }
        }
    }
}

async fn untaint_all(ctx: &Ctx, nodes: &[String]) {
    for node in nodes {
        if let Err(e) = set_taint(ctx, node, false).await {
            tracing::warn!(error = %e, node = %node, "untainting failed; the next pass retries");
        }
    }
}

/// Drops a command after its replacements were launched: the candidates are untainted and the
/// replacements deleted, since the candidates stay. Left behind, each retry of a command whose
/// replacements never initialize would add one more.
async fn abandon(ctx: &Ctx, tainted: &[String], replacements: &BTreeSet<String>) {
    untaint_all(ctx, tainted).await;
    let claims: Api<NodeClaim> = Api::all(ctx.client.clone());
    for name in replacements {
        if let Err(e) = ignore_not_found(
            claims
                .delete(name, &DeleteParams::default())
                .await
                .map(|_| ()),
        ) {
            tracing::warn!(error = %e, nodeclaim = %name, "deleting an unused replacement failed");
        }
    }
}

fn initialized(c: &NodeClaim) -> bool {
    c.status
        .as_ref()
        .and_then(|s| tandem_api::condition::find(&s.conditions, "Initialized"))
        .is_some_and(tandem_api::condition::Condition::is_true)
}

/// Runs one command to the candidates' deletion, or drops it; true when a candidate is being
/// deleted.
async fn execute(
    ctx: &Ctx,
    rx: &mut watch::Receiver<Arc<ClusterState>>,
    command: &Disrupt,
    opts: &DisruptionOptions,
) -> bool {
    let reason = command.reason.as_str();
    if command.revalidate_after_ms > 0 {
        let delay = u64::try_from(command.revalidate_after_ms).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let fresh = rx.borrow().clone();
        let snapshot = ctx.nominations.apply(&fresh, std::time::Instant::now());
        let (cmd, o) = (command.clone(), opts.decide.clone());
        let verdict = tokio::task::spawn_blocking(move || {
            disruption::validate(&cmd, &snapshot, now_ms(), &o)
        })
        .await;
        match verdict {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::info!(error = %e, candidates = ?command.candidates, "abandoning disruption command");
                return false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "disruption validation failed");
                return false;
            }
        }
    }
    let st = rx.borrow().clone();
    let reason_label = reason.to_lowercase();
    opts.metrics
        .decisions
        .get_or_create(&DisruptionDecision {
            decision: if command.is_delete() {
                "delete"
            } else {
                "replace"
            }
            .to_owned(),
            reason: reason_label.clone(),
            consolidation_type: command.method.as_str().to_owned(),
        })
        .inc();
    let mut tainted = Vec::new();
    for node in &command.candidates {
        if let Err(e) = set_taint(ctx, node, true).await {
            tracing::warn!(error = %e, node = %node, "tainting a candidate failed; abandoning");
            untaint_all(ctx, &tainted).await;
            return false;
        }
        tainted.push(node.clone());
    }
    let claims: Api<NodeClaim> = Api::all(ctx.client.clone());
    let mut replacements = BTreeSet::new();
    for launch in &command.replacements {
        let Some(np) = st.nodepools.get(&launch.nodepool) else {
            tracing::warn!(nodepool = %launch.nodepool, "replacement's nodepool is gone; abandoning");
            untaint_all(ctx, &tainted).await;
            return false;
        };
        match ctx.create_claim(nodeclaim_for(launch, np)).await {
            Ok(c) => {
                tracing::info!(nodeclaim = %c.name_any(), reason, "launched a replacement");
                // Upstream publishes both on the replacement it waits for.
                ctx.recorder
                    .publish(
                        &claim_ref(&c),
                        false,
                        "DisruptionLaunching",
                        &format!("Launching NodeClaim: {reason}"),
                    )
                    .await;
                ctx.recorder
                    .publish(
                        &claim_ref(&c),
                        false,
                        "DisruptionWaitingReadiness",
                        "Waiting on readiness to continue disruption",
                    )
                    .await;
                replacements.insert(c.name_any());
            }
            Err(e) => {
                tracing::warn!(error = %e, "creating a replacement failed; abandoning");
                abandon(ctx, &tainted, &replacements).await;
                return false;
            }
        }
    }
    if !replacements.is_empty()
        && !wait_initialized(rx, &replacements, opts.replacement_timeout).await
    {
        tracing::warn!(replacements = ?replacements, "replacements did not initialize; abandoning");
        abandon(ctx, &tainted, &replacements).await;
        return false;
    }
    let st = rx.borrow().clone();
    let mut deleted = Vec::new();
    for node in &command.candidates {
        let Some(claim) = claim_of(&st, node) else {
            tracing::warn!(node = %node, "candidate has no nodeclaim; leaving it");
            continue;
        };
        let message = format!("Disrupting Node: {reason}");
        if let Some(n) = st.nodes.get(node) {
            ctx.recorder
                .publish(&node_ref(n), false, "DisruptionTerminating", &message)
                .await;
        }
        ctx.recorder
            .publish(
                &claim_ref(claim),
                false,
                "DisruptionTerminating",
                &format!("Disrupting NodeClaim: {reason}"),
            )
            .await;
        let name = claim.name_any();
        tracing::info!(node = %node, nodeclaim = %name, reason, "disrupting");
        match ignore_not_found(
            claims
                .delete(&name, &DeleteParams::default())
                .await
                .map(|_| ()),
        ) {
            Ok(()) => {
                let label = |k: &str| claim.labels().get(k).cloned().unwrap_or_default();
                opts.metrics
                    .nodeclaims_disrupted
                    .get_or_create(&Disrupted {
                        reason: reason_label.clone(),
                        nodepool: label(tandem_model::labels::NODEPOOL),
                        capacity_type: label(tandem_model::labels::CAPACITY_TYPE),
                    })
                    .inc();
                deleted.push(node.clone());
            }
            Err(e) => {
                tracing::warn!(error = %e, nodeclaim = %name, "deleting a candidate failed");
                untaint_all(ctx, std::slice::from_ref(node)).await;
            }
        }
    }
    wait_deleting(rx, &deleted).await;
    !deleted.is_empty()
}

/// True once every replacement claim is Initialized; false on timeout or when one is deleted.
pub(crate) async fn wait_initialized(
    rx: &mut watch::Receiver<Arc<ClusterState>>,
    names: &BTreeSet<String>,
    timeout: Duration,
) -> bool {
    let start = Instant::now();
    let mut seen = BTreeSet::new();
    while start.elapsed() < timeout {
        {
            let st = rx.borrow_and_update().clone();
            let mut done = true;
            for name in names {
                match st.nodeclaims.get(name) {
                    Some(c) if c.metadata.deletion_timestamp.is_some() => return false,
                    Some(c) => {
                        seen.insert(name.clone());
                        done &= initialized(c);
                    }
                    // Gone after it was seen: deleted (e.g. no capacity).
                    None if seen.contains(name) => return false,
                    None => done = false,
                }
            }
            if done {
                return true;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
    }
    false
}

/// Waits (up to 30 s) until the state shows every deleted candidate as deleting or gone, so
/// the next pass counts them against budgets instead of picking them again.
async fn wait_deleting(rx: &mut watch::Receiver<Arc<ClusterState>>, nodes: &[String]) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        {
            let st = rx.borrow_and_update().clone();
            let settled = nodes.iter().all(|n| {
                st.snapshot
                    .nodes
                    .iter()
                    .find(|x| &x.name == n)
                    .is_none_or(|x| x.state == NodeState::Deleting)
            });
            if settled {
                return;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
    }
}
