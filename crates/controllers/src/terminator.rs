//! The termination shell: for every Node being deleted with Tandem's finalizer, gather
//! [`termination::Facts`] from the latest state (and the cloud's word on the instance), call
//! [`termination::step`] and execute its effects through the API server and the
//! CloudProvider. It decides nothing itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, EvictParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt as _};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_model::taints::{Taint, TaintEffect};
use tandem_state::{ClusterState, PodView};
use tokio::sync::watch;

use crate::driver::{Ctx, claim_ref, ignore_not_found, set_condition, write_claim_status};
use crate::events::Regarding;
use crate::lifecycle::TERMINATION_FINALIZER;
use crate::termination::{
    self, About, Attachment, ClaimFacts, DEFAULT_POD_GRACE_SECONDS, DISRUPTED_TAINT,
    EXCLUDE_FROM_LB_LABEL, Effect, Facts, NodeFacts, PodFacts, PodRef,
    TERMINATION_TIMESTAMP_ANNOTATION,
};

/// A node is stepped again at most this often (evictions refused by a PDB are retried at this
/// pace; upstream's eviction queue backs off from 100 ms to 10 s).
const RESTEP: Duration = Duration::from_secs(1);

/// Per node: `None` while its effects run, `Some(when)` once they finished.
type Busy = Arc<Mutex<BTreeMap<String, Option<Instant>>>>;

pub(crate) async fn termination_loop(ctx: Arc<Ctx>, mut rx: watch::Receiver<Arc<ClusterState>>) {
    let busy: Busy = Arc::new(Mutex::new(BTreeMap::new()));
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        let st = rx.borrow().clone();
        if !st.synced {
            continue;
        }
        let mut b = busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        b.retain(|name, _| st.nodes.contains_key(name));
        for (name, node) in &st.nodes {
            let ours = node.finalizers().iter().any(|f| f == TERMINATION_FINALIZER);
            if node.metadata.deletion_timestamp.is_none() || !ours {
                continue;
            }
            match b.get(name) {
                Some(None) => continue,
                Some(Some(at)) if at.elapsed() < RESTEP => continue,
                _ => {}
            }
            b.insert(name.clone(), None);
            let ctx = ctx.clone();
            let busy = busy.clone();
            let st = st.clone();
            let node = node.clone();
            let name = name.clone();
            tokio::spawn(async move {
                terminate(&ctx, &st, &node).await;
                busy.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(name, Some(Instant::now()));
            });
        }
    }
}

fn node_ref(n: &Node) -> Regarding {
    Regarding {
        api_version: "v1",
        kind: "Node",
        namespace: String::new(),
        name: n.name_any(),
        uid: n.metadata.uid.clone().unwrap_or_default(),
    }
}

fn pod_ref(p: &PodRef) -> Regarding {
    Regarding {
        api_version: "v1",
        kind: "Pod",
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        uid: p.uid.clone(),
    }
}

fn pod_facts(st: &ClusterState, pod: &PodView) -> PodFacts {
    let disrupted = Taint::new(DISRUPTED_TAINT, "", TaintEffect::NoSchedule);
    PodFacts {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        critical: matches!(
            pod.priority_class_name.as_deref(),
            Some("system-cluster-critical" | "system-node-critical")
        ),
        daemon: pod.owned_by("DaemonSet"),
        mirror: pod.mirror_annotation || pod.owners.iter().any(|o| o.kind == "Node"),
        tolerates_disrupted: pod.tolerations.iter().any(|t| t.tolerates(&disrupted)),
        deleting: pod.deletion,
        do_not_disrupt: pod.do_not_disrupt.clone(),
        started: pod.started,
        grace_seconds: pod.grace_seconds.unwrap_or(DEFAULT_POD_GRACE_SECONDS),
        volumes: st.persistent_volumes_of(pod),
    }
}

/// The Node's claim: by providerID, else by the owner reference registration put on the Node
/// (same name and UID).
fn claim_of<'a>(st: &'a ClusterState, node: &Node) -> Option<&'a Arc<NodeClaim>> {
    let pid = node.spec.as_ref().and_then(|s| s.provider_id.as_deref());
    let by_id = pid.and_then(|pid| {
        st.nodeclaims
            .values()
            .find(|c| c.status.as_ref().and_then(|s| s.provider_id.as_deref()) == Some(pid))
    });
    by_id.or_else(|| {
        let owner = node
            .owner_references()
            .iter()
            .find(|o| o.kind == "NodeClaim")?;
        st.nodeclaims
            .get(&owner.name)
            .filter(|c| c.metadata.uid.as_deref() == Some(owner.uid.as_str()))
    })
}

async fn facts(ctx: &Ctx, st: &ClusterState, node: &Node) -> Facts {
    let name = node.name_any();
    let provider_id = node.spec.as_ref().and_then(|s| s.provider_id.clone());
    let instance_gone = match &provider_id {
        Some(pid) => matches!(
            ctx.cloud.get(pid).await,
            Err(tandem_cloud::Error::NodeClaimNotFound { .. })
        ),
        None => true,
    };
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let claim = claim_of(st, node).map(|c| ClaimFacts {
        name: c.name_any(),
        deleting: c.metadata.deletion_timestamp.as_ref().map(|t| t.0),
        termination_grace_period: c
            .spec
            .termination_grace_period
            .as_ref()
            .map(|d| d.value().0),
        termination_time: c
            .annotations()
            .get(TERMINATION_TIMESTAMP_ANNOTATION)
            .and_then(|t| t.parse().ok()),
    });
    Facts {
        node: NodeFacts {
            name: name.clone(),
            provider_id,
            has_finalizer: node.finalizers().iter().any(|f| f == TERMINATION_FINALIZER),
            deleting: node.metadata.deletion_timestamp.is_some(),
            tainted: taints
                .iter()
                .any(|t| t.key == DISRUPTED_TAINT && t.effect == "NoSchedule"),
            ready: node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True"),
            instance_gone,
            attachments: st
                .volume_attachments
                .get(&name)
                .into_iter()
                .flatten()
                .map(|a| Attachment {
                    name: a.name.clone(),
                    persistent_volume: a.persistent_volume.clone(),
                })
                .collect(),
        },
        claim,
        pods: st
            .pods_by_node
            .get(&name)
            .into_iter()
            .flatten()
            .map(|p| pod_facts(st, p))
            .collect(),
    }
}

/// One termination step for one node.
async fn terminate(ctx: &Ctx, st: &ClusterState, node: &Node) {
    let f = facts(ctx, st, node).await;
    let (phase, effects) = termination::step(&f, Timestamp::now());
    let name = node.name_any();
    tracing::debug!(node = %name, ?phase, effects = effects.len(), "termination step");
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let claims: Api<NodeClaim> = Api::all(ctx.client.clone());
    let claim = claim_of(st, node);
    let mut status = claim.and_then(|c| c.status.clone()).unwrap_or_default();
    let mut status_dirty = false;
    let mut evictions = Vec::new();
    let mut failed = false;
    for effect in effects {
        let result: Result<(), kube::Error> = match effect {
            Effect::DeleteClaim { name: claim_name } => {
                tracing::info!(node = %name, nodeclaim = %claim_name, "node deleted: deleting its nodeclaim");
                ignore_not_found(
                    claims
                        .delete(&claim_name, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                )
            }
            Effect::SetTerminationTime { claim, at } => ignore_not_found(
                claims
                    .patch(
                        &claim,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"metadata": {"annotations": {
                            TERMINATION_TIMESTAMP_ANNOTATION: at.to_string()}}})),
                    )
                    .await
                    .map(|_| ()),
            ),
            Effect::Taint => taint(&nodes, node).await,
            Effect::Evict(pod) => {
                evictions.push(pod);
                Ok(())
            }
            Effect::ForceDelete { pod, grace_seconds } => {
                let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace);
                let dp = DeleteParams {
                    grace_period_seconds: u32::try_from(grace_seconds).ok(),
                    preconditions: Some(Preconditions {
                        uid: Some(pod.uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&pod.name, &dp).await {
                    Ok(_) => {
                        tracing::info!(node = %name, pod = %pod, grace_seconds, "pod deleted: node termination time")
                    }
                    Err(e) => tracing::debug!(error = %e, pod = %pod, "pod deletion failed"),
                }
                Ok(())
            }
            Effect::ClaimCondition {
                type_,
                status: s,
                reason,
            } => {
                let same =
                    tandem_api::condition::find(&status.conditions, type_).is_some_and(|c| {
                        c.status.to_string() == s && c.reason.as_deref() == Some(reason)
                    });
                if !same {
                    set_condition(&mut status.conditions, type_, s, reason, "");
                    status_dirty = true;
                }
                Ok(())
            }
            Effect::DeleteInstance { provider_id } => match ctx.cloud.delete(&provider_id).await {
                Ok(()) => {
                    tracing::info!(node = %name, provider_id, "node drained: instance terminated");
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(error = %e, node = %name, "instance termination failed; retrying");
                    failed = true;
                    break;
                }
            },
            Effect::RemoveFinalizer => {
                let rest: Vec<String> = node
                    .finalizers()
                    .iter()
                    .filter(|f| *f != TERMINATION_FINALIZER)
                    .cloned()
                    .collect();
                tracing::info!(node = %name, "node terminated: removing its finalizer");
                ignore_not_found(
                    nodes
                        .patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(&json!({"metadata": {
                                "finalizers": rest,
                                "resourceVersion": node.resource_version(),
                            }})),
                        )
                        .await
                        .map(|_| ()),
                )
            }
            Effect::Event {
                about,
                warning,
                reason,
                message,
            } => {
                match about {
                    About::Node => {
                        ctx.recorder
                            .publish(&node_ref(node), warning, reason, &message)
                            .await;
                    }
                    About::NodeAndClaim => {
                        ctx.recorder
                            .publish(&node_ref(node), warning, reason, &message)
                            .await;
                        if let Some(c) = claim {
                            ctx.recorder
                                .publish(&claim_ref(c), warning, reason, &message)
                                .await;
                        }
                    }
                    About::Pod(p) => {
                        ctx.recorder
                            .publish(&pod_ref(&p), warning, reason, &message)
                            .await;
                    }
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, node = %name, "termination effect failed; retrying on the next pass");
            failed = true;
            break;
        }
    }
    // Evictions go out together, and only once the taint is on (no replacement lands here).
    if !failed {
        futures::future::join_all(evictions.iter().map(|p| evict(ctx, node, p))).await;
    }
    if status_dirty && let Some(c) = claim {
        write_claim_status(&claims, &c.name_any(), &status).await;
    }
}

/// The disrupted taint and the exclude-from-external-load-balancers label, guarded by the
/// Node's resourceVersion so a concurrent taint change is never overwritten.
async fn taint(nodes: &Api<Node>, node: &Node) -> Result<(), kube::Error> {
    let mut taints: Vec<serde_json::Value> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect();
    taints.push(json!({"key": DISRUPTED_TAINT, "effect": "NoSchedule"}));
    let patch = json!({
        "metadata": {
            "labels": {EXCLUDE_FROM_LB_LABEL: "karpenter"},
            "resourceVersion": node.resource_version(),
        },
        "spec": {"taints": taints},
    });
    nodes
        .patch(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(|_| ())
}

/// How long one eviction may take. kube's client retries 429 (what a PDB that allows no
/// disruption answers) on its own, with backoff, for minutes; past this the eviction counts as
/// refused, so the step ends, the refusal is reported and other work (a forced deletion at the
/// termination time) is not held up.
const EVICTION_PATIENCE: Duration = Duration::from_secs(2);

/// One eviction through the policy/v1 Eviction subresource, with the pod's UID as the
/// precondition. A refusal (429 from a PDB) is reported as upstream does (`FailedDraining` on
/// the Node) and retried on a later step.
async fn evict(ctx: &Ctx, node: &Node, pod: &PodRef) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace);
    let ep = EvictParams {
        delete_options: Some(DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(pod.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        }),
        ..EvictParams::default()
    };
    let Ok(answer) = tokio::time::timeout(EVICTION_PATIENCE, api.evict(&pod.name, &ep)).await
    else {
        tracing::debug!(pod = %pod, "eviction still refused after retries; trying again later");
        ctx.recorder
            .publish(
                &node_ref(node),
                true,
                "FailedDraining",
                &format!(
                    "Failed to drain node, evicting pod {pod} violates a PDB (or the API server is busy): still refused after {}s",
                    EVICTION_PATIENCE.as_secs()
                ),
            )
            .await;
        return;
    };
    match answer {
        Ok(_) => {
            tracing::info!(node = %node.name_any(), pod = %pod, "evicted");
            ctx.recorder
                .publish(
                    &pod_ref(pod),
                    false,
                    "Evicted",
                    "Evicted pod: the node is being terminated",
                )
                .await;
        }
        // Gone already, or another pod by that name: nothing to evict.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(kube::Error::Api(s)) if s.code == 429 => {
            tracing::debug!(pod = %pod, "eviction refused by a PodDisruptionBudget; retrying");
            ctx.recorder
                .publish(
                    &node_ref(node),
                    true,
                    "FailedDraining",
                    &format!("Failed to drain node, evicting pod {pod} violates a PDB"),
                )
                .await;
        }
        Err(e) => {
            tracing::warn!(error = %e, pod = %pod, "eviction failed; retrying");
            ctx.recorder
                .publish(
                    &node_ref(node),
                    true,
                    "FailedDraining",
                    &format!("Failed to drain node, evicting pod {pod}: {e}"),
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::termination::DO_NOT_DISRUPT_ANNOTATION;

    /// The index's view of a pod with this spec and metadata.
    fn pod(spec: serde_json::Value, meta: serde_json::Value) -> PodView {
        let mut metadata = json!({"name": "p", "namespace": "ns", "uid": "u"});
        if let (Some(m), Some(extra)) = (metadata.as_object_mut(), meta.as_object()) {
            m.extend(extra.clone());
        }
        let mut s = json!({"containers": [{"name": "c"}]});
        if let (Some(m), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
            m.extend(extra.clone());
        }
        let p: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
                                      "metadata": metadata, "spec": s}))
        .unwrap();
        PodView::new(&p, Arc::default())
    }

    #[test]
    fn a_node_finds_its_claim_by_provider_id_or_owner() {
        let claim = |name: &str, uid: &str, pid: Option<&str>| -> Arc<NodeClaim> {
            Arc::new(
                serde_json::from_value(json!({
                    "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
                    "metadata": {"name": name, "uid": uid},
                    "spec": {"requirements": [], "nodeClassRef": {"group": "g", "kind": "K", "name": "n"}},
                    "status": {"providerID": pid},
                }))
                .unwrap(),
            )
        };
        let mut st = ClusterState::default();
        st.nodeclaims
            .insert("a".into(), claim("a", "uid-a", Some("kwok://a")));
        st.nodeclaims.insert("b".into(), claim("b", "uid-b", None));
        let node = |pid: &str, owner: serde_json::Value| -> Node {
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n", "ownerReferences": owner},
                "spec": {"providerID": pid}}))
            .unwrap()
        };
        let owner = |name: &str, uid: &str| json!([{"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim", "name": name, "uid": uid}]);
        let name = |n: &Node| claim_of(&st, n).map(|c| c.name_any());
        assert_eq!(name(&node("kwok://a", json!([]))).as_deref(), Some("a"));
        assert_eq!(
            name(&node("kwok://x", owner("b", "uid-b"))).as_deref(),
            Some("b")
        );
        assert_eq!(
            name(&node("kwok://x", owner("b", "other-uid"))),
            None,
            "a claim of the same name but another UID is not this node's"
        );
    }

    #[test]
    fn pods_are_classified_as_the_drain_needs() {
        let st = ClusterState::default();
        let plain = pod_facts(&st, &pod(json!({}), json!({})));
        assert!(!plain.critical && !plain.daemon && !plain.mirror && !plain.tolerates_disrupted);
        assert_eq!(plain.grace_seconds, DEFAULT_POD_GRACE_SECONDS);

        let critical = pod_facts(
            &st,
            &pod(
                json!({"priorityClassName": "system-node-critical"}),
                json!({}),
            ),
        );
        assert!(critical.critical);

        let owner = |kind: &str| {
            json!({"ownerReferences": [{"apiVersion": "v1", "kind": kind, "name": "o",
                                        "uid": "o", "controller": true}]})
        };
        assert!(pod_facts(&st, &pod(json!({}), owner("DaemonSet"))).daemon);
        assert!(!pod_facts(&st, &pod(json!({}), owner("ReplicaSet"))).daemon);
        assert!(pod_facts(&st, &pod(json!({}), owner("Node"))).mirror);
        let mirror = json!({"annotations": {"kubernetes.io/config.mirror": "x"}});
        assert!(pod_facts(&st, &pod(json!({}), mirror)).mirror);

        // Tolerating everything, or the disrupted taint, keeps a pod off the drain; tolerating
        // another key does not.
        let tol = |t: serde_json::Value| {
            pod_facts(&st, &pod(json!({"tolerations": [t]}), json!({}))).tolerates_disrupted
        };
        assert!(tol(json!({"operator": "Exists"})));
        assert!(tol(
            json!({"key": DISRUPTED_TAINT, "operator": "Exists", "effect": "NoSchedule"})
        ));
        assert!(!tol(
            json!({"key": DISRUPTED_TAINT, "operator": "Exists", "effect": "NoExecute"})
        ));
        assert!(!tol(json!({"key": "other", "operator": "Exists"})));

        let held = pod_facts(
            &st,
            &pod(
                json!({"terminationGracePeriodSeconds": 5}),
                json!({"annotations": {DO_NOT_DISRUPT_ANNOTATION: "true"}}),
            ),
        );
        assert_eq!(held.do_not_disrupt.as_deref(), Some("true"));
        assert_eq!(held.grace_seconds, 5);
    }
}
