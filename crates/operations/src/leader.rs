//! Leader election on a Lease, with upstream's timings (client-go / controller-runtime:
//! lease 15 s, renew deadline 10 s, retry every 2 s).
//!
//! Only the leader acts; a follower keeps trying and takes over once the holder has not
//! renewed for the lease duration. A leader that cannot renew within the renew deadline
//! reports [`Role::Lost`] and must stop acting at once (the binary exits, as
//! controller-runtime does), because another replica may take over after the lease duration.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::fence::Fence;

/// Timings of the election; [`Default`] is upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long a lease is valid after its last renewal (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// How often every replica reads (and the leader renews) the lease.
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The parts of a Lease the decision reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// `spec.holderIdentity`; empty or absent means released.
    pub holder: Option<String>,
    /// `spec.renewTime`.
    pub renew_time: Option<Timestamp>,
    /// `spec.leaseDurationSeconds` as the holder wrote it.
    pub lease_duration_seconds: Option<i32>,
}

impl Observed {
    /// Reads the decision's inputs from a Lease.
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Observed {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.map(|t| t.0),
            lease_duration_seconds: spec.lease_duration_seconds,
        }
    }
}

/// What to do with the lease this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No lease exists: create it with us as holder.
    Create,
    /// The lease is free or expired: write us as holder (a new transition).
    Acquire,
    /// We hold it: write a new renew time.
    Renew,
    /// Someone else holds a valid lease.
    Follow {
        /// The current holder.
        holder: String,
    },
}

/// Decides the round. A lease whose renew time plus its own duration (the holder's, falling back
/// to ours) is not after `now` has expired; a lease without a renew time has expired too.
pub fn decide(observed: Option<&Observed>, me: &str, now: Timestamp, timings: &Timings) -> Action {
    let Some(obs) = observed else {
        return Action::Create;
    };
    let Some(holder) = obs.holder.as_deref() else {
        return Action::Acquire;
    };
    if holder == me {
        return Action::Renew;
    }
    let duration = obs
        .lease_duration_seconds
        .filter(|s| *s > 0)
        .map(|s| SignedDuration::from_secs(i64::from(s)))
        .unwrap_or_else(|| signed(timings.lease_duration));
    match obs.renew_time {
        Some(renewed) if renewed.saturating_add(duration).is_ok_and(|end| end > now) => {
            Action::Follow {
                holder: holder.to_owned(),
            }
        }
        _ => Action::Acquire,
    }
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// This replica's standing, published by the [`Elector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not decided yet (before the first successful read).
    Unknown,
    /// Another replica leads.
    Follower {
        /// Who leads.
        holder: String,
    },
    /// We lead: act.
    Leader,
    /// We led and could not renew within the renew deadline: stop acting now.
    Lost,
}

/// Reads and writes one Lease for one identity.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
    fence: Option<Arc<Fence>>,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Elector {
    /// An elector for Lease `namespace/name` as `identity` (unique per replica: upstream uses
    /// hostname plus a random suffix).
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timings: Timings,
    ) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timings,
            fence: None,
        }
    }

    /// Keeps `fence` up to date: armed until the renew deadline after each renewal, revoked
    /// when leadership is lost (see [`crate::fence`]).
    #[must_use]
    pub fn with_fence(mut self, fence: Arc<Fence>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Runs the election until the task is dropped or leadership is lost, publishing the role.
    /// Returns after publishing [`Role::Lost`]: a replica that lost the lease must not rejoin
    /// with state it built while leading.
    pub async fn run(self, role: watch::Sender<Role>) {
        let mut last_renewal: Option<tokio::time::Instant> = None;
        let revoke = |fence: &Option<Arc<Fence>>| {
            if let Some(f) = fence {
                f.revoke();
            }
        };
        loop {
            let started = tokio::time::Instant::now();
            let outcome = self.round().await;
            let now = tokio::time::Instant::now();
            match outcome {
                Ok(Role::Leader) => {
                    last_renewal = Some(now);
                    if let Some(f) = &self.fence {
                        f.renewed(started, self.timings.renew_deadline);
                    }
                    role.send_if_modified(|r| replace(r, Role::Leader));
                }
                Ok(other) => {
                    if last_renewal.is_some() {
                        // Someone else holds the lease we held: leadership is gone.
                        revoke(&self.fence);
                        role.send_replace(Role::Lost);
                        return;
                    }
                    role.send_if_modified(|r| replace(r, other));
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "leader election round failed");
                    if let Some(at) = last_renewal
                        && now.duration_since(at) >= self.timings.renew_deadline
                    {
                        revoke(&self.fence);
                        role.send_replace(Role::Lost);
                        return;
                    }
                }
            }
            tokio::time::sleep(self.timings.retry_period).await;
        }
    }

    /// One read–decide–write round; the role it leaves us in.
    pub async fn round(&self) -> Result<Role, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let now = Timestamp::now();
        let action = decide(
            current.as_ref().map(Observed::of).as_ref(),
            &self.identity,
            now,
            &self.timings,
        );
        match action {
            Action::Follow { holder } => Ok(Role::Follower { holder }),
            Action::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(now, None, 0)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Role::Leader),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(Role::Unknown),
                    Err(e) => Err(e),
                }
            }
            Action::Acquire | Action::Renew => {
                let Some(mut lease) = current else {
                    return Ok(Role::Unknown);
                };
                let old = lease.spec.take().unwrap_or_default();
                let transitions = old.lease_transitions.unwrap_or(0);
                lease.spec = Some(if action == Action::Renew {
                    self.spec(now, old.acquire_time.map(|t| t.0), transitions)
                } else {
                    self.spec(now, None, transitions.saturating_add(1))
                });
                // `replace` carries the resourceVersion we read: a concurrent writer makes it 409.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(Role::Leader),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(Role::Unknown),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Gives the lease up (holder cleared) if we hold it, so a successor need not wait for it
    /// to expire: upstream's release-on-cancel.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.take().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }

    fn spec(&self, now: Timestamp, acquired: Option<Timestamp>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.timings.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquired.unwrap_or(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

fn replace(slot: &mut Role, new: Role) -> bool {
    if *slot == new {
        false
    } else {
        *slot = new;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    fn held(holder: &str, renewed: i64, duration: Option<i32>) -> Observed {
        Observed {
            holder: Some(holder.to_owned()),
            renew_time: Some(at(renewed)),
            lease_duration_seconds: duration,
        }
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(
            decide(None, "a", at(0), &Timings::default()),
            Action::Create
        );
    }

    #[test]
    fn our_lease_is_renewed_even_when_late() {
        let obs = held("a", 0, Some(15));
        assert_eq!(
            decide(Some(&obs), "a", at(100), &Timings::default()),
            Action::Renew
        );
    }

    #[test]
    fn a_valid_foreign_lease_is_followed_until_it_expires() {
        let obs = held("b", 0, Some(15));
        let t = Timings::default();
        assert_eq!(
            decide(Some(&obs), "a", at(14), &t),
            Action::Follow { holder: "b".into() }
        );
        assert_eq!(decide(Some(&obs), "a", at(15), &t), Action::Acquire);
    }

    #[test]
    fn the_holders_duration_wins_over_ours() {
        let obs = held("b", 0, Some(60));
        assert_eq!(
            decide(Some(&obs), "a", at(30), &Timings::default()),
            Action::Follow { holder: "b".into() }
        );
        let unset = held("b", 0, None);
        assert_eq!(
            decide(Some(&unset), "a", at(30), &Timings::default()),
            Action::Acquire
        );
    }

    #[test]
    fn a_released_or_never_renewed_lease_is_acquired() {
        let released = Observed::default();
        assert_eq!(
            decide(Some(&released), "a", at(0), &Timings::default()),
            Action::Acquire
        );
        let never = Observed {
            holder: Some("b".into()),
            ..Observed::default()
        };
        assert_eq!(
            decide(Some(&never), "a", at(0), &Timings::default()),
            Action::Acquire
        );
    }
}
