//! Garbage collection as a pure decision: instances the cloud runs that no NodeClaim owns,
//! and NodeClaims whose instance the cloud no longer has (reference §4.2; upstream core
//! `pkg/controllers/nodeclaim/garbagecollection`, AWS `pkg/controllers/instance/garbagecollection`).
//!
//! ```text
//!   CloudProvider::list ─┐
//!   NodeClaims, Nodes ───┼─► decide(now) ─► TerminateInstance  (no claim by providerID, nor by
//!                        │                                       the claim name it carries while
//!                        │                                       that claim names no instance;
//!                        │                                       older than the orphan grace)
//!                        └────────────────► DeleteClaim        (launched, instance not listed,
//!                                                                Node missing or not Ready,
//!                                                                launched longer than the claim grace)
//! ```
//!
//! Both graces cover the moment between `create` returning and the claim's status naming the
//! instance, when an instance looks orphaned and a claim looks instance-less but neither is.
//!
//! Deliberately beyond upstream: a claim that launched but never registered is also deleted once
//! the cloud no longer lists its instance. Upstream's core collector only takes registered
//! claims and leaves the others to the 15-minute registration TTL; when the provider already
//! says the instance is gone (a crash during boot, an instance terminated outside Karpenter),
//! waiting 15 minutes only keeps the pods Pending. The crash test (`crates/tandem/tests/crash.rs`)
//! found it.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Intervals and graces; defaults are upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// How often the collector runs (upstream NodeClaim GC: every 2 min).
    pub interval: Duration,
    /// How old an instance without a claim must be before it is terminated (AWS: 30 s).
    pub orphan_grace: Duration,
    /// How long after launch a claim may miss its instance before it is deleted.
    pub claim_grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            interval: Duration::from_secs(120),
            orphan_grace: Duration::from_secs(30),
            claim_grace: Duration::from_secs(15),
        }
    }
}

/// A live instance, as the cloud lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFacts {
    /// Provider ID.
    pub provider_id: String,
    /// The NodeClaim name the instance was launched for.
    pub nodeclaim: String,
    /// When the cloud created it.
    pub created: Timestamp,
}

impl From<&tandem_cloud::Instance> for InstanceFacts {
    /// What the collector needs of an instance the cloud listed.
    fn from(i: &tandem_cloud::Instance) -> Self {
        InstanceFacts {
            provider_id: i.provider_id.clone(),
            nodeclaim: i.nodeclaim.clone(),
            created: i.created,
        }
    }
}

/// A NodeClaim, as the index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimFacts {
    /// Name.
    pub name: String,
    /// status.providerID.
    pub provider_id: Option<String>,
    /// When Launched turned True.
    pub launched_at: Option<Timestamp>,
    /// Being deleted already.
    pub deleting: bool,
    /// Its Node exists and is Ready.
    pub node_ready: bool,
}

/// What to collect.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Terminate an instance no claim owns.
    TerminateInstance {
        /// Provider ID.
        provider_id: String,
    },
    /// Delete a claim whose instance is gone (its finalizer then runs as usual).
    DeleteClaim {
        /// Claim name.
        name: String,
    },
}

fn older_than(since: Timestamp, now: Timestamp, grace: Duration) -> bool {
    now.duration_since(since) >= SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX)
}

/// What to collect now: see the [module documentation](self). Sorted, so the same input gives
/// the same order.
pub fn decide(
    instances: &[InstanceFacts],
    claims: &[ClaimFacts],
    options: &GcOptions,
    now: Timestamp,
) -> Vec<Action> {
    let claimed_ids: BTreeSet<&str> = claims
        .iter()
        .filter_map(|c| c.provider_id.as_deref())
        .collect();
    // Claims that may still own an instance by name: their status names none yet. A claim that
    // names its instance owns that one only; another carrying its name is a second launch (a
    // create retried after its answer was lost, an eventually consistent lookup that missed
    // the first instance) and would otherwise run, billed, as long as the claim lives.
    let unnamed_claims: BTreeSet<&str> = claims
        .iter()
        .filter(|c| c.provider_id.is_none())
        .map(|c| c.name.as_str())
        .collect();
    let listed: BTreeSet<&str> = instances.iter().map(|i| i.provider_id.as_str()).collect();
    let mut out = Vec::new();
    for i in instances {
        let owned = claimed_ids.contains(i.provider_id.as_str())
            || unnamed_claims.contains(i.nodeclaim.as_str());
        if !owned && older_than(i.created, now, options.orphan_grace) {
            out.push(Action::TerminateInstance {
                provider_id: i.provider_id.clone(),
            });
        }
    }
    for c in claims {
        let (Some(pid), Some(at)) = (&c.provider_id, c.launched_at) else {
            continue;
        };
        if !c.deleting
            && !c.node_ready
            && !listed.contains(pid.as_str())
            && older_than(at, now, options.claim_grace)
        {
            out.push(Action::DeleteClaim {
                name: c.name.clone(),
            });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn instance(name: &str, created: i64) -> InstanceFacts {
        InstanceFacts {
            provider_id: format!("kwok://{name}"),
            nodeclaim: name.into(),
            created: t(created),
        }
    }

    fn claim(name: &str) -> ClaimFacts {
        ClaimFacts {
            name: name.into(),
            provider_id: Some(format!("kwok://{name}")),
            launched_at: Some(t(0)),
            deleting: false,
            node_ready: true,
        }
    }

    #[test]
    fn orphaned_instance_is_terminated_after_its_grace() {
        let o = GcOptions::default();
        let instances = [instance("a", 0), instance("orphan", 0)];
        let claims = [claim("a")];
        assert!(
            decide(&instances, &claims, &o, t(29)).is_empty(),
            "in grace"
        );
        assert_eq!(
            decide(&instances, &claims, &o, t(30)),
            [Action::TerminateInstance {
                provider_id: "kwok://orphan".into()
            }]
        );
    }

    #[test]
    fn instance_owned_by_name_before_status_names_it_is_kept() {
        // create returned, the claim's status does not carry the providerID yet.
        let mut c = claim("a");
        c.provider_id = None;
        c.launched_at = None;
        assert!(decide(&[instance("a", 0)], &[c], &GcOptions::default(), t(600)).is_empty());
    }

    #[test]
    fn a_second_instance_launched_for_a_claim_that_names_another_is_terminated() {
        let o = GcOptions::default();
        let twin = InstanceFacts {
            provider_id: "kwok://a-twin".into(),
            nodeclaim: "a".into(),
            created: t(0),
        };
        let instances = [instance("a", 0), twin];
        assert!(decide(&instances, &[claim("a")], &o, t(29)).is_empty());
        assert_eq!(
            decide(&instances, &[claim("a")], &o, t(30)),
            [Action::TerminateInstance {
                provider_id: "kwok://a-twin".into()
            }]
        );
    }

    #[test]
    fn claim_whose_instance_is_gone_is_deleted() {
        let o = GcOptions::default();
        let mut gone = claim("gone");
        gone.node_ready = false;
        let claims = [claim("a"), gone.clone()];
        let instances = [instance("a", 0)];
        assert!(
            decide(&instances, &claims, &o, t(14)).is_empty(),
            "in grace"
        );
        assert_eq!(
            decide(&instances, &claims, &o, t(15)),
            [Action::DeleteClaim {
                name: "gone".into()
            }]
        );
        // Not while its Node is still Ready, not when deleting.
        let mut ready = gone.clone();
        ready.node_ready = true;
        let mut deleting = gone.clone();
        deleting.deleting = true;
        for c in [ready, deleting] {
            assert!(decide(&instances, &[claim("a"), c], &o, t(60)).is_empty());
        }
    }
}
