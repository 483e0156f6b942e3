//! The interruption loop: polls the cloud's interruption notices and moves pods off the
//! instances that are going away.
//!
//! ```text
//!   cloud.interruptions() ──► Event (SpotInterrupted …) on Node + NodeClaim
//!        │ rebalance recommendation: acknowledge, nothing else
//!        ▼ draining kinds, all nodes of this poll together
//!   cordon ──► launch replacements (nodescaler::disruption::interruption, one plan)
//!          ──► wait until they are Initialized (bounded by `replacement_wait`)
//!          ──► delete the NodeClaims (termination drains) ──► acknowledge
//! ```
//!
//! Upstream deletes the NodeClaim at once; the pods then wait Pending for the provisioner's
//! batch window plus a boot. Here the boot overlaps the warning time. Budgets, `do-not-disrupt`
//! and `consolidateAfter` do not apply: the instance goes away either way. Cordoning
//! (`spec.unschedulable`) rather than the disrupted taint keeps the disruption loop, which
//! removes stray disrupted taints, out of the way while the replacements boot.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use tandem_api::karpenter::NodeClaim;
use tandem_cloud::interruption::Notice;
use tandem_nodescaler::disruption::interruption::replacements;
use tandem_state::ClusterState;
use tokio::sync::watch;

use crate::disruption::{node_ref, wait_initialized};
use crate::driver::{Ctx, claim_ref, ignore_not_found};
use crate::metrics::{Created, Disrupted, MessageType};
use crate::provisioner::nodeclaim_for;

/// Knobs of the interruption loop.
#[derive(Debug, Clone)]
pub struct InterruptionOptions {
    /// Poll the cloud's notices (default true; a provider without notices returns none).
    pub enabled: bool,
    /// Time between two polls (2 s: upstream long-polls SQS for 20 s, but a spot warning
    /// leaves two minutes, so every second of reaction counts).
    pub poll_interval: Duration,
    /// How long the drain waits for the replacements to initialize (60 s: half of a spot
    /// warning, leaving the other half for the pods' graceful termination).
    pub replacement_wait: Duration,
}

impl Default for InterruptionOptions {
    fn default() -> Self {
        InterruptionOptions {
            enabled: true,
            poll_interval: Duration::from_secs(2),
            replacement_wait: Duration::from_secs(60),
        }
    }
}

/// A notice about a node this layer manages, ready to drain.
struct Draining {
    notice: Notice,
    node: String,
    claim: Arc<NodeClaim>,
}

pub(crate) async fn interruption_loop(ctx: Arc<Ctx>, rx: watch::Receiver<Arc<ClusterState>>) {
    let opts = ctx.options.interruption.clone();
    if !opts.enabled {
        return;
    }
    // Provider IDs whose drain is under way: a notice stays unacknowledged until its claim is
    // deleted, so the next polls must not start a second drain.
    let busy: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut tick = tokio::time::interval(opts.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if rx.has_changed().is_err() {
            return;
        }
        let st = rx.borrow().clone();
        if !st.synced {
            continue;
        }
        let notices = match ctx.cloud.interruptions().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "polling interruption notices failed");
                continue;
            }
        };
        let mut draining = Vec::new();
        for notice in notices {
            if lock(&busy).contains(&notice.provider_id) {
                continue;
            }
            if let Some(d) = receive(&ctx, &st, notice).await {
                draining.push(d);
            }
        }
        if draining.is_empty() {
            continue;
        }
        for d in &draining {
            lock(&busy).insert(d.notice.provider_id.clone());
        }
        let (ctx, rx, busy, opts) = (ctx.clone(), rx.clone(), busy.clone(), opts.clone());
        tokio::spawn(async move {
            drain(&ctx, rx, &st, &draining, &opts).await;
            let mut b = lock(&busy);
            for d in &draining {
                b.remove(&d.notice.provider_id);
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts and reports one notice; returns it when its node must be drained, else acknowledges
/// it (a recommendation, an instance this layer does not manage, a claim already deleting).
async fn receive(ctx: &Ctx, st: &ClusterState, notice: Notice) -> Option<Draining> {
    ctx.options
        .disruption
        .metrics
        .interruption_received
        .get_or_create(&MessageType {
            message_type: notice.kind.as_str().to_owned(),
        })
        .inc();
    let node = st.nodes.iter().find(|(_, n)| {
        n.spec.as_ref().and_then(|s| s.provider_id.as_deref()) == Some(&notice.provider_id)
    });
    let claim = st
        .nodeclaims
        .values()
        .find(|c| {
            c.status.as_ref().and_then(|s| s.provider_id.as_deref()) == Some(&notice.provider_id)
        })
        .cloned();
    let (kind, warning) = (notice.kind, notice.kind.drains());
    tracing::info!(provider_id = %notice.provider_id, kind = %kind, "interruption notice");
    if let Some((_, n)) = node {
        ctx.recorder
            .publish(
                &node_ref(n),
                warning,
                kind.event_reason(),
                kind.event_message(),
            )
            .await;
    }
    if let Some(c) = &claim {
        ctx.recorder
            .publish(
                &claim_ref(c),
                warning,
                kind.event_reason(),
                kind.event_message(),
            )
            .await;
    }
    match (node, claim) {
        (Some((name, _)), Some(claim))
            if kind.drains() && claim.metadata.deletion_timestamp.is_none() =>
        {
            Some(Draining {
                notice,
                node: name.clone(),
                claim,
            })
        }
        _ => {
            acknowledge(ctx, &notice).await;
            None
        }
    }
}

async fn acknowledge(ctx: &Ctx, notice: &Notice) {
    if let Err(e) = ctx.cloud.acknowledge(notice).await {
        tracing::warn!(error = %e, provider_id = %notice.provider_id, "acknowledging an interruption notice failed; it will be seen again");
    }
}

/// Cordons the nodes, launches their pods' replacements, waits for them (bounded), deletes the
/// claims and acknowledges the notices.
async fn drain(
    ctx: &Ctx,
    mut rx: watch::Receiver<Arc<ClusterState>>,
    st: &ClusterState,
    draining: &[Draining],
    opts: &InterruptionOptions,
) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let cordon = serde_json::json!({"spec": {"unschedulable": true}});
    for d in draining {
        if let Err(e) = nodes
            .patch(&d.node, &PatchParams::default(), &Patch::Merge(&cordon))
            .await
        {
            tracing::warn!(error = %e, node = %d.node, "cordoning an interrupted node failed");
        }
    }
    let names: Vec<String> = draining.iter().map(|d| d.node.clone()).collect();
    let (snapshot, plan_options) = (st.snapshot.clone(), ctx.options.plan.clone());
    let launches = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        replacements(&snapshot, &refs, &plan_options)
    })
    .await
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e, "planning interruption replacements failed");
        Vec::new()
    });
    let reason = draining
        .first()
        .map_or("interruption", |d| d.notice.kind.as_str());
    let mut launched = BTreeSet::new();
    for launch in &launches {
        let Some(np) = st.nodepools.get(&launch.nodepool) else {
            continue;
        };
        match ctx.create_claim(nodeclaim_for(launch, np)).await {
            Ok(c) => {
                tracing::info!(nodeclaim = %c.name_any(), reason, pods = launch.pods.len(), "launched an interruption replacement");
                ctx.options
                    .metrics
                    .created
                    .get_or_create(&Created {
                        reason: reason.to_owned(),
                        nodepool: launch.nodepool.clone(),
                        min_values_relaxed: "false".into(),
                    })
                    .inc();
                launched.insert(c.name_any());
            }
            Err(e) => {
                tracing::warn!(error = %e, "launching an interruption replacement failed; provisioning will retry once the pods are pending");
            }
        }
    }
    if !launched.is_empty() && !wait_initialized(&mut rx, &launched, opts.replacement_wait).await {
        tracing::warn!(replacements = ?launched, "replacements not initialized in time; draining anyway");
    }
    for d in draining {
        terminate(ctx, d).await;
    }
}

/// Deletes the interrupted claim (the termination controller drains its node) and
/// acknowledges the notice once the deletion is accepted.
async fn terminate(ctx: &Ctx, d: &Draining) {
    let claims: Api<NodeClaim> = Api::all(ctx.client.clone());
    let name = d.claim.name_any();
    let deleted = ignore_not_found(
        claims
            .delete(&name, &DeleteParams::default())
            .await
            .map(|_| ()),
    );
    if let Err(e) = deleted {
        tracing::warn!(error = %e, nodeclaim = %name, "deleting an interrupted nodeclaim failed; the next poll retries");
        return;
    }
    tracing::info!(node = %d.node, nodeclaim = %name, kind = %d.notice.kind, "terminating on interruption");
    let labels = d.claim.labels();
    ctx.options
        .disruption
        .metrics
        .nodeclaims_disrupted
        .get_or_create(&Disrupted {
            reason: d.notice.kind.as_str().to_owned(),
            nodepool: labels
                .get(tandem_model::labels::NODEPOOL)
                .cloned()
                .unwrap_or_default(),
            capacity_type: labels
                .get(tandem_model::labels::CAPACITY_TYPE)
                .cloned()
                .unwrap_or_default(),
        })
        .inc();
    ctx.recorder
        .publish(
            &claim_ref(&d.claim),
            true,
            "TerminatingOnInterruption",
            "Interruption triggered termination for the NodeClaim",
        )
        .await;
    if let Ok(Some(n)) = Api::<Node>::all(ctx.client.clone()).get_opt(&d.node).await {
        ctx.recorder
            .publish(
                &node_ref(&n),
                true,
                "TerminatingOnInterruption",
                "Interruption triggered termination for the Node",
            )
            .await;
    }
    acknowledge(ctx, &d.notice).await;
}
