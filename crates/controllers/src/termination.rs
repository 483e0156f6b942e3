//! Node termination as a pure decision (reference §4.4, upstream core
//! `pkg/controllers/node/termination`): what to do next for a Node that is being deleted and
//! carries the `karpenter.sh/termination` finalizer.
//!
//! ```text
//!   Node deleted ──► claim not deleting? delete it
//!        │      ──► instance gone and Node NotReady? drop the finalizer
//!        ▼
//!   Tainting: karpenter.sh/disrupted:NoSchedule (+ exclude-from-external-load-balancers)
//!        ▼
//!   Draining, tier by tier, each finished before the next:
//!        non-critical ─► non-critical DaemonSet ─► critical ─► critical DaemonSet
//!        (evict through the Eviction API; PDBs answer 429 → retry; do-not-disrupt pods wait;
//!         past terminationTime − pod grace every pod is deleted)
//!        ▼
//!   AwaitingVolumes (VolumeAttachments of the Node; bounded by the termination time)
//!        ▼
//!   TerminatingInstance: CloudProvider::delete, until the instance is NotFound
//!        ▼
//!   Done: remove the Node's finalizer (the claim's own finalizer then goes, see lifecycle)
//! ```
//!
//! Not drained (they neither get evicted nor block the drain): mirror pods (owned by the Node),
//! pods tolerating the disrupted taint (they would land right back), pods stuck terminating
//! more than a minute past their deletionTimestamp, and finished pods (the state crate
//! leaves those out). "Critical" is priorityClassName `system-cluster-critical` or
//! `system-node-critical`.
//!
//! [`step`] takes what the shell observed ([`Facts`]) and the time and returns the [`Phase`] and
//! the [`Effect`]s to execute; it never reads a clock or the network.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Taint put on a node being terminated (or disrupted).
pub const DISRUPTED_TAINT: &str = "karpenter.sh/disrupted";
/// Label added with the taint so load balancers stop sending traffic to the node.
pub const EXCLUDE_FROM_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// NodeClaim annotation: RFC 3339 time by which every pod is deleted (deletion + TGP).
pub const TERMINATION_TIMESTAMP_ANNOTATION: &str = "karpenter.sh/nodeclaim-termination-timestamp";
/// Pod annotation: `"true"` or a Go duration from pod start; the pod is not evicted meanwhile.
pub const DO_NOT_DISRUPT_ANNOTATION: &str = "karpenter.sh/do-not-disrupt";
/// A pod this long past its deletionTimestamp no longer blocks the drain (upstream
/// `IsStuckTerminating`).
pub const STUCK_TERMINATING: Duration = Duration::from_secs(60);
/// Default `terminationGracePeriodSeconds` of a pod.
pub const DEFAULT_POD_GRACE_SECONDS: i64 = 30;

/// A pod bound to the node, as the drain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (the eviction's precondition).
    pub uid: String,
    /// priorityClassName is system-cluster-critical or system-node-critical.
    pub critical: bool,
    /// Controlled by a DaemonSet.
    pub daemon: bool,
    /// A mirror (static) pod: owned by the Node.
    pub mirror: bool,
    /// Tolerates `karpenter.sh/disrupted:NoSchedule`.
    pub tolerates_disrupted: bool,
    /// deletionTimestamp, once the pod is terminating.
    pub deleting: Option<Timestamp>,
    /// The `karpenter.sh/do-not-disrupt` annotation, as written.
    pub do_not_disrupt: Option<String>,
    /// status.startTime (a duration-valued do-not-disrupt counts from here).
    pub started: Option<Timestamp>,
    /// terminationGracePeriodSeconds.
    pub grace_seconds: i64,
    /// The PersistentVolumes it mounts.
    pub volumes: Vec<String>,
}

impl PodFacts {
    fn key(&self) -> PodRef {
        PodRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }

    fn stuck_terminating(&self, now: Timestamp) -> bool {
        self.deleting
            .is_some_and(|d| now.duration_since(d) > signed(STUCK_TERMINATING))
    }

    /// Drained at all: evicted in its tier and waited for.
    fn drainable(&self, now: Timestamp) -> bool {
        !self.mirror && !self.tolerates_disrupted && !self.stuck_terminating(now)
    }

    /// 0..=3: the drain tier (non-critical, non-critical DaemonSet, critical, critical
    /// DaemonSet).
    fn tier(&self) -> usize {
        usize::from(self.critical) * 2 + usize::from(self.daemon)
    }
}

/// Which pod an effect is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The Node being terminated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// Name.
    pub name: String,
    /// spec.providerID.
    pub provider_id: Option<String>,
    /// Carries `karpenter.sh/termination`.
    pub has_finalizer: bool,
    /// Has a deletionTimestamp.
    pub deleting: bool,
    /// Carries `karpenter.sh/disrupted:NoSchedule`.
    pub tainted: bool,
    /// Ready condition True.
    pub ready: bool,
    /// The cloud reports the instance gone (`NodeClaimNotFound`).
    pub instance_gone: bool,
    /// VolumeAttachments naming this node.
    pub attachments: Vec<Attachment>,
}

/// A VolumeAttachment of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Object name.
    pub name: String,
    /// The PersistentVolume attached, if it is one.
    pub persistent_volume: Option<String>,
}

/// The Node's NodeClaim, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimFacts {
    /// Name.
    pub name: String,
    /// deletionTimestamp.
    pub deleting: Option<Timestamp>,
    /// spec.terminationGracePeriod.
    pub termination_grace_period: Option<Duration>,
    /// The termination-timestamp annotation, parsed.
    pub termination_time: Option<Timestamp>,
}

impl ClaimFacts {
    /// When every pod must be gone: the annotation, or deletion + terminationGracePeriod.
    pub fn termination_time(&self) -> Option<Timestamp> {
        self.termination_time.or_else(|| {
            let tgp = self.termination_grace_period?;
            self.deleting?.checked_add(signed(tgp)).ok()
        })
    }
}

/// What the shell observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The Node.
    pub node: NodeFacts,
    /// Its NodeClaim (by providerID), if any.
    pub claim: Option<ClaimFacts>,
    /// Non-terminal pods bound to the Node.
    pub pods: Vec<PodFacts>,
}

/// Where the node's termination is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Not being deleted, or not ours: nothing to do.
    NotTerminating,
    /// Pods are still to leave: how many are waiting, and how many of them may not be evicted
    /// yet (do-not-disrupt).
    Draining {
        /// Drainable pods still on the node (in every tier).
        waiting: usize,
        /// Pods of the current tier whose do-not-disrupt annotation holds them.
        blocked: usize,
    },
    /// Drained; VolumeAttachments still name the node.
    AwaitingVolumes,
    /// Drained; the instance is being terminated.
    TerminatingInstance,
    /// The instance is gone: the finalizer comes off.
    Done,
}

/// Which object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum About {
    /// The Node.
    Node,
    /// The Node and its NodeClaim (one Event each).
    NodeAndClaim,
    /// A pod.
    Pod(PodRef),
}

/// Work for the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Delete the NodeClaim (upstream deletes the claim of a deleted Node).
    DeleteClaim {
        /// Claim name.
        name: String,
    },
    /// Write the termination-timestamp annotation on the claim.
    SetTerminationTime {
        /// Claim name.
        claim: String,
        /// deletion + terminationGracePeriod.
        at: Timestamp,
    },
    /// Add the disrupted taint and the exclude-from-external-load-balancers label.
    Taint,
    /// Evict through the Eviction API (UID precondition); 429 means a PDB said no.
    Evict(PodRef),
    /// Delete the pod, bypassing PDBs and do-not-disrupt: the termination time is near.
    ForceDelete {
        /// The pod.
        pod: PodRef,
        /// Grace period to delete with (what is left before the termination time, ≥ 1 s).
        grace_seconds: i64,
    },
    /// Set a condition on the claim (`Drained`, `VolumesDetached`, `InstanceTerminating`).
    ClaimCondition {
        /// Type.
        type_: &'static str,
        /// True/False/Unknown.
        status: &'static str,
        /// Reason.
        reason: &'static str,
    },
    /// Terminate the instance (NotFound is success).
    DeleteInstance {
        /// Provider ID.
        provider_id: String,
    },
    /// Remove the termination finalizer from the Node.
    RemoveFinalizer,
    /// Publish an Event.
    Event {
        /// The object.
        about: About,
        /// Warning or Normal.
        warning: bool,
        /// Upstream reason.
        reason: &'static str,
        /// Message.
        message: String,
    },
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// Whether a pod's do-not-disrupt annotation holds it now: `"true"`, or a positive Go duration
/// not yet elapsed since the pod started. Anything else does not hold it (upstream ignores
/// invalid values with a warning).
pub fn do_not_disrupt_holds(
    value: Option<&str>,
    started: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    let Some(v) = value else {
        return false;
    };
    if v == "true" {
        return true;
    }
    match tandem_api::duration::GoDuration::parse(v) {
        Ok(d) if !d.0.is_zero() => started
            .and_then(|s| s.checked_add(signed(d.0)).ok())
            .is_none_or(|until| now < until),
        _ => false,
    }
}

/// One step of node termination: see the [module documentation](self).
pub fn step(f: &Facts, now: Timestamp) -> (Phase, Vec<Effect>) {
    let node = &f.node;
    if !node.deleting || !node.has_finalizer {
        return (Phase::NotTerminating, Vec::new());
    }
    let mut effects = Vec::new();
    let claim = f.claim.as_ref();
    if let Some(c) = claim
        && c.deleting.is_none()
    {
        effects.push(Effect::DeleteClaim {
            name: c.name.clone(),
        });
    }
    // An instance that is already gone leaves nothing to drain on a node that is not Ready.
    if node.instance_gone && !node.ready {
        effects.push(Effect::RemoveFinalizer);
        return (Phase::Done, effects);
    }
    let termination_time = claim.and_then(ClaimFacts::termination_time);
    if let (Some(c), Some(at)) = (claim, termination_time)
        && c.termination_time.is_none()
    {
        effects.push(Effect::SetTerminationTime {
            claim: c.name.clone(),
            at,
        });
    }
    if !node.tainted {
        effects.push(Effect::Taint);
    }
    let expired = termination_time.is_some_and(|t| now >= t);
    if let Some(t) = termination_time
        && !f.pods.is_empty()
    {
        effects.push(Effect::Event {
            about: About::NodeAndClaim,
            warning: true,
            reason: "TerminationGracePeriodExpiring",
            message: format!("All pods will be deleted by {t}"),
        });
    }

    // Pods whose grace would outlast the termination time are deleted now, whatever holds them.
    let mut forced = Vec::new();
    if let Some(t) = termination_time {
        for p in &f.pods {
            let grace = SignedDuration::from_secs(p.grace_seconds.max(0));
            let due = now.checked_add(grace).is_ok_and(|end| end >= t);
            if p.deleting.is_none() && !p.mirror && due {
                let left = t.duration_since(now).as_secs().max(1);
                forced.push(p.uid.clone());
                effects.push(Effect::ForceDelete {
                    pod: p.key(),
                    grace_seconds: left.min(p.grace_seconds.max(1)),
                });
                effects.push(Effect::Event {
                    about: About::Pod(p.key()),
                    warning: false,
                    reason: "Disrupted",
                    message: format!(
                        "Deleting the pod to accommodate the terminationTime {t} of the node"
                    ),
                });
            }
        }
    }

    let drainable: Vec<&PodFacts> = f.pods.iter().filter(|p| p.drainable(now)).collect();
    if let Some(tier) = drainable.iter().map(|p| p.tier()).min() {
        let mut blocked = Vec::new();
        for p in drainable.iter().filter(|p| p.tier() == tier) {
            if p.deleting.is_some() || forced.contains(&p.uid) {
                continue;
            }
            if do_not_disrupt_holds(p.do_not_disrupt.as_deref(), p.started, now) {
                blocked.push(p.key().to_string());
                continue;
            }
            effects.push(Effect::Evict(p.key()));
        }
        if !blocked.is_empty() {
            let shown: Vec<&str> = blocked.iter().take(5).map(String::as_str).collect();
            let more = blocked.len().saturating_sub(shown.len());
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            effects.push(Effect::Event {
                about: About::Node,
                warning: true,
                reason: "FailedDraining",
                message: format!(
                    "Failed to drain node, pods with the {DO_NOT_DISRUPT_ANNOTATION} annotation are waiting: {}{tail}",
                    shown.join(", ")
                ),
            });
        }
        effects.push(Effect::ClaimCondition {
            type_: "Drained",
            status: "Unknown",
            reason: "Draining",
        });
        let phase = Phase::Draining {
            waiting: drainable.len(),
            blocked: blocked.len(),
        };
        return (phase, effects);
    }
    effects.push(Effect::ClaimCondition {
        type_: "Drained",
        status: "True",
        reason: "Drained",
    });

    // Volumes of pods that are not drained stay attached; waiting for them would never end
    // (upstream `filterVolumeAttachments`).
    let kept: std::collections::BTreeSet<&str> = f
        .pods
        .iter()
        .filter(|p| !p.drainable(now))
        .flat_map(|p| p.volumes.iter().map(String::as_str))
        .collect();
    let attached: Vec<&Attachment> = node
        .attachments
        .iter()
        .filter(|a| {
            a.persistent_volume
                .as_deref()
                .is_none_or(|pv| !kept.contains(pv))
        })
        .collect();
    if !attached.is_empty() && !expired {
        effects.push(Effect::ClaimCondition {
            type_: "VolumesDetached",
            status: "Unknown",
            reason: "AwaitingVolumeDetachment",
        });
        effects.push(Effect::Event {
            about: About::Node,
            warning: false,
            reason: "AwaitingVolumeDetachment",
            message: format!(
                "Awaiting deletion of bound VolumeAttachments ({})",
                attached
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        return (Phase::AwaitingVolumes, effects);
    }
    effects.push(if !attached.is_empty() {
        Effect::ClaimCondition {
            type_: "VolumesDetached",
            status: "False",
            reason: "TerminationGracePeriodElapsed",
        }
    } else {
        Effect::ClaimCondition {
            type_: "VolumesDetached",
            status: "True",
            reason: "VolumesDetached",
        }
    });

    match &node.provider_id {
        Some(pid) if !node.instance_gone => {
            effects.push(Effect::DeleteInstance {
                provider_id: pid.clone(),
            });
            effects.push(Effect::ClaimCondition {
                type_: "InstanceTerminating",
                status: "True",
                reason: "InstanceTerminating",
            });
            (Phase::TerminatingInstance, effects)
        }
        _ => {
            effects.push(Effect::RemoveFinalizer);
            (Phase::Done, effects)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn node() -> NodeFacts {
        NodeFacts {
            name: "n".into(),
            provider_id: Some("kwok://n".into()),
            has_finalizer: true,
            deleting: true,
            tainted: true,
            ready: true,
            instance_gone: false,
            attachments: vec![],
        }
    }

    fn claim() -> ClaimFacts {
        ClaimFacts {
            name: "c".into(),
            deleting: Some(t(0)),
            termination_grace_period: None,
            termination_time: None,
        }
    }

    fn pod(name: &str) -> PodFacts {
        PodFacts {
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            critical: false,
            daemon: false,
            mirror: false,
            tolerates_disrupted: false,
            deleting: None,
            do_not_disrupt: None,
            started: Some(t(-100)),
            grace_seconds: 30,
            volumes: vec![],
        }
    }

    fn facts(pods: Vec<PodFacts>) -> Facts {
        Facts {
            node: node(),
            claim: Some(claim()),
            pods,
        }
    }

    fn evicted(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Evict(p) => Some(p.name.clone()),
                _ => None,
            })
            .collect()
    }

    fn forced(effects: &[Effect]) -> Vec<(String, i64)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::ForceDelete { pod, grace_seconds } => {
                    Some((pod.name.clone(), *grace_seconds))
                }
                _ => None,
            })
            .collect()
    }

    fn reasons(effects: &[Effect]) -> Vec<&'static str> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Event { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn node_not_deleting_or_not_ours_is_left_alone() {
        let mut f = facts(vec![pod("a")]);
        f.node.deleting = false;
        assert_eq!(step(&f, t(1)), (Phase::NotTerminating, vec![]));
        let mut f = facts(vec![pod("a")]);
        f.node.has_finalizer = false;
        assert_eq!(step(&f, t(1)), (Phase::NotTerminating, vec![]));
    }

    #[test]
    fn deleted_node_deletes_its_claim_taints_and_evicts() {
        let mut f = facts(vec![pod("a"), pod("b")]);
        f.claim.as_mut().unwrap().deleting = None;
        f.node.tainted = false;
        let (phase, e) = step(&f, t(1));
        assert_eq!(
            phase,
            Phase::Draining {
                waiting: 2,
                blocked: 0
            }
        );
        assert_eq!(e[0], Effect::DeleteClaim { name: "c".into() });
        assert_eq!(e[1], Effect::Taint);
        assert_eq!(evicted(&e), ["a", "b"]);
    }

    #[test]
    fn tiers_drain_in_upstream_order() {
        let mut ds = pod("ds");
        ds.daemon = true;
        let mut crit = pod("crit");
        crit.critical = true;
        let mut crit_ds = pod("crit-ds");
        crit_ds.critical = true;
        crit_ds.daemon = true;
        let all = vec![crit_ds.clone(), crit.clone(), ds.clone(), pod("app")];
        let order: Vec<(Vec<PodFacts>, Vec<&str>)> = vec![
            (all.clone(), vec!["app"]),
            (vec![crit_ds.clone(), crit.clone(), ds.clone()], vec!["ds"]),
            (vec![crit_ds.clone(), crit.clone()], vec!["crit"]),
            (vec![crit_ds.clone()], vec!["crit-ds"]),
        ];
        for (pods, want) in order {
            let (_, e) = step(&facts(pods), t(1));
            assert_eq!(evicted(&e), want);
        }
        // A terminating pod of an earlier tier holds the later tiers back without a new eviction.
        let mut going = pod("app");
        going.deleting = Some(t(0));
        let (phase, e) = step(&facts(vec![going, ds]), t(1));
        assert!(evicted(&e).is_empty());
        assert_eq!(
            phase,
            Phase::Draining {
                waiting: 2,
                blocked: 0
            }
        );
    }

    #[test]
    fn mirror_tolerating_and_stuck_pods_are_not_drained() {
        let mut mirror = pod("mirror");
        mirror.mirror = true;
        let mut tolerant = pod("tolerant");
        tolerant.tolerates_disrupted = true;
        let mut stuck = pod("stuck");
        stuck.deleting = Some(t(0));
        let (phase, e) = step(&facts(vec![mirror, tolerant, stuck]), t(61));
        assert_eq!(phase, Phase::TerminatingInstance);
        assert!(evicted(&e).is_empty());
        assert!(e.contains(&Effect::DeleteInstance {
            provider_id: "kwok://n".into()
        }));
    }

    #[test]
    fn do_not_disrupt_pods_wait_and_say_so() {
        let mut held = pod("held");
        held.do_not_disrupt = Some("true".into());
        let (phase, e) = step(&facts(vec![held, pod("free")]), t(1));
        assert_eq!(
            phase,
            Phase::Draining {
                waiting: 2,
                blocked: 1
            }
        );
        assert_eq!(evicted(&e), ["free"]);
        assert_eq!(reasons(&e), ["FailedDraining"]);
    }

    #[test]
    fn do_not_disrupt_values() {
        let start = Some(t(0));
        assert!(do_not_disrupt_holds(Some("true"), start, t(1_000_000)));
        assert!(do_not_disrupt_holds(Some("10m"), start, t(599)));
        assert!(!do_not_disrupt_holds(Some("10m"), start, t(600)));
        assert!(!do_not_disrupt_holds(Some("false"), start, t(1)));
        assert!(!do_not_disrupt_holds(Some("soon"), start, t(1)));
        assert!(!do_not_disrupt_holds(Some("0s"), start, t(1)));
        assert!(!do_not_disrupt_holds(None, start, t(1)));
        assert!(
            do_not_disrupt_holds(Some("1m"), None, t(1)),
            "not started yet: the clock has not begun"
        );
    }

    #[test]
    fn termination_grace_period_forces_pods_out_in_time() {
        let mut f = facts(vec![]);
        f.claim.as_mut().unwrap().termination_grace_period = Some(Duration::from_secs(120));
        let mut held = pod("held");
        held.do_not_disrupt = Some("true".into());
        let mut quick = pod("quick");
        quick.grace_seconds = 5;
        quick.do_not_disrupt = Some("true".into());
        f.pods = vec![held, quick];
        // At 10 s: deadline 120 s; held's 30 s grace is not due yet, nor quick's.
        let (_, e) = step(&f, t(10));
        assert!(forced(&e).is_empty());
        assert!(e.contains(&Effect::SetTerminationTime {
            claim: "c".into(),
            at: t(120)
        }));
        assert!(reasons(&e).contains(&"TerminationGracePeriodExpiring"));
        // At 95 s: 95 + 30 ≥ 120, so held goes with the 25 s that are left; quick still waits.
        f.claim.as_mut().unwrap().termination_time = Some(t(120));
        let (_, e) = step(&f, t(95));
        assert_eq!(forced(&e), [("held".to_owned(), 25)]);
        assert!(reasons(&e).contains(&"Disrupted"));
        assert!(
            !e.iter()
                .any(|e| matches!(e, Effect::SetTerminationTime { .. }))
        );
        // Past the deadline: everything left goes with the minimum grace of 1 s.
        let (_, e) = step(&f, t(130));
        assert_eq!(
            forced(&e),
            [("held".to_owned(), 1), ("quick".to_owned(), 1)]
        );
    }

    #[test]
    fn drained_node_waits_for_volumes_until_the_deadline() {
        let va = |name: &str, pv: &str| Attachment {
            name: name.into(),
            persistent_volume: Some(pv.into()),
        };
        let mut f = facts(vec![]);
        f.node.attachments = vec![va("va-1", "pv-1"), va("va-2", "pv-2")];
        let (phase, e) = step(&f, t(1));
        assert_eq!(phase, Phase::AwaitingVolumes);
        assert_eq!(reasons(&e), ["AwaitingVolumeDetachment"]);
        // A volume of a pod that is not drained (it tolerates the taint) is not waited for.
        let mut tolerant = pod("tolerant");
        tolerant.tolerates_disrupted = true;
        tolerant.volumes = vec!["pv-1".into(), "pv-2".into()];
        let mut g = f.clone();
        g.pods = vec![tolerant];
        assert_eq!(step(&g, t(1)).0, Phase::TerminatingInstance);
        f.claim.as_mut().unwrap().termination_time = Some(t(60));
        let (phase, e) = step(&f, t(61));
        assert_eq!(phase, Phase::TerminatingInstance);
        assert!(e.contains(&Effect::ClaimCondition {
            type_: "VolumesDetached",
            status: "False",
            reason: "TerminationGracePeriodElapsed"
        }));
    }

    #[test]
    fn instance_terminated_then_finalizer_removed() {
        let (phase, e) = step(&facts(vec![]), t(1));
        assert_eq!(phase, Phase::TerminatingInstance);
        assert!(!e.contains(&Effect::RemoveFinalizer));
        let mut f = facts(vec![]);
        f.node.instance_gone = true;
        let (phase, e) = step(&f, t(2));
        assert_eq!(phase, Phase::Done);
        assert_eq!(e.last(), Some(&Effect::RemoveFinalizer));
        assert!(!e.iter().any(|e| matches!(e, Effect::DeleteInstance { .. })));
    }

    #[test]
    fn gone_instance_of_a_not_ready_node_skips_the_drain() {
        let mut f = facts(vec![pod("a")]);
        f.node.instance_gone = true;
        f.node.ready = false;
        f.node.tainted = false;
        let (phase, e) = step(&f, t(1));
        assert_eq!(phase, Phase::Done);
        assert_eq!(e, [Effect::RemoveFinalizer]);
    }

    #[test]
    fn node_without_claim_or_provider_id_still_terminates() {
        let f = Facts {
            node: NodeFacts {
                provider_id: None,
                ..node()
            },
            claim: None,
            pods: vec![],
        };
        let (phase, e) = step(&f, t(1));
        assert_eq!(phase, Phase::Done);
        assert_eq!(e.last(), Some(&Effect::RemoveFinalizer));
    }
}
