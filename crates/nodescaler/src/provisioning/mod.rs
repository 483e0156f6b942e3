//! Provisioning: which pending pods fit on capacity that exists or is on its way, which new
//! NodeClaims to launch for the rest, and why the remainder cannot be placed.
//!
//! ```text
//!   Snapshot ──► prepare (pools × instance types, DaemonSet overhead, limits,
//!                          topology groups and domains, pod signatures)
//!            ──► queue ([CheapestFit: own-node pods, dominant share ↓,] CPU ↓, memory ↓,
//!                       creation ↑, uid ↑)
//!                  │ per pod, strictest form first:
//!                  │   1. existing nodes and in-flight claims   → Nominate
//!                  │   2. NodeClaims opened earlier in this plan (packing rule below)
//!                  │   3. a new NodeClaim from the first NodePool by weight that can hold it
//!                  │   on failure: relax one preference and retry; when nothing is left to
//!                  │   relax, push to the back; stop when a full cycle makes no progress
//!            ──► finalize: options by price, truncated; requirements = NodePool ∩ pods
//!            ──► Plan { nominations, launches, unschedulable (reason per NodePool), events }
//! ```
//!
//! The pass order, the queue, preference relaxation, topology domains and limits follow
//! Karpenter (core `pkg/controllers/provisioning/scheduling/`, reference §6). Where we do better
//! or differently, the item says so:
//!
//! - **Packing.** Upstream adds a pod to the in-flight claim with the fewest pods that can take
//!   it ([`Packing::FewestPods`], kept for comparison). The default, [`Packing::CheapestFit`],
//!   adds it where the plan's price rises least: among claims whose cheapest holding type does
//!   not change, the tightest (best fit on CPU, then on unused room in CPU and memory); else the
//!   cheapest growth of the claims closest to holding it, unless a new claim is cheaper. It
//!   queues pods that need a node of their own (required hostname anti-affinity) first and the
//!   rest by dominant share of the batch's demand, then upstream's order (CPU, memory, creation,
//!   uid), so forced nodes exist while other pods can fill them and memory-heavy pods are not
//!   all left for CPU-bound claims. A final pass moves pods whose constraints stay satisfied
//!   (same zone, hostname spread within max skew) from dearer claims into cheaper claims' spare
//!   room and re-prices the donors on the cheapest type that still holds them; the plan's cost
//!   never rises. Launch prices are always the cheapest option that holds the claim's pods.
//! - **Limits.** A claim reserves, per resource, the largest capacity among the options it
//!   will actually launch with (the first [`Options::max_instance_types`] by price), so
//!   whichever option the cloud picks the NodePool stays within its limits, counting in-flight
//!   claims and every launch of the plan. Upstream reserves the largest of *all* options at
//!   creation and never gives it back, which on a real catalog (24 TiB `u-*` types) exhausts a
//!   memory limit after a few hundred claims; here options that no longer fit the claim's budget
//!   are dropped and the reservation follows the options as they shrink.
//! - **Topology.** A pod on a claim whose zone is still open counts for zone spread and affinity
//!   only once the claim's zone is decided, as upstream; unlike upstream, the counts are updated
//!   when a later pod decides it, and anti-affinity counts every zone the claim could still end
//!   in, so it is never violated.
//! - **Determinism.** Every set is ordered; every choice has a total tie-break. Same snapshot,
//!   same options: same plan, same messages.

pub mod anticipation;
pub(crate) mod prepare;
mod scheduler;
mod topology;

use std::fmt;

use thiserror::Error;

use tandem_model::catalog::UsdPerHour;
use tandem_model::pod::HostPort;
use tandem_model::requirements::{Incompatible, MinValuesError, Requirements};
use tandem_model::resources::Resources;
use tandem_model::taints::UntoleratedTaint;

use crate::snapshot::{PodRef, Snapshot};

/// How pods are assigned to the NodeClaims this plan opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Packing {
    /// Upstream's rule: the in-flight claim with the fewest pods that can take the pod
    /// (first-fit over claims sorted by pod count), else a new claim.
    FewestPods,
    /// The claim where the plan's price rises least; a new claim when that is cheaper still.
    #[default]
    CheapestFit,
}

/// Whether preferences (preferred affinities, `ScheduleAnyway` spread) are honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreferencePolicy {
    /// Enforce preferences first and relax them one at a time on failure (upstream default).
    #[default]
    Respect,
    /// Ignore preferences entirely (upstream `PREFERENCE_POLICY=Ignore`).
    Ignore,
}

/// What to do when a NodeClaim's options cannot meet a `minValues`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinValuesPolicy {
    /// The pod cannot use the claim (upstream default).
    #[default]
    Strict,
    /// Launch anyway and report it as an event.
    BestEffort,
}

/// Knobs of a provisioning decision; every default cites its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Instance-type options kept per NodeClaim, cheapest first: 60, as AWS CreateFleet
    /// truncates (core's `MaxInstanceTypes` is 600 since v1.10).
    pub max_instance_types: usize,
    /// See [`Packing`].
    pub packing: Packing,
    /// See [`PreferencePolicy`].
    pub preference_policy: PreferencePolicy,
    /// See [`MinValuesPolicy`].
    pub min_values_policy: MinValuesPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_instance_types: 60,
            packing: Packing::CheapestFit,
            preference_policy: PreferencePolicy::Respect,
            min_values_policy: MinValuesPolicy::Strict,
        }
    }
}

/// A pod that fits on capacity that already exists or is already launching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nominate {
    /// The pod.
    pub pod: PodRef,
    /// The node (or in-flight NodeClaim) name.
    pub node: String,
}

/// One instance-type option of a launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceOption {
    /// Instance type name.
    pub name: String,
    /// Price of its cheapest offering the claim's requirements allow.
    pub price: UsdPerHour,
}

/// A NodeClaim to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Owning NodePool.
    pub nodepool: String,
    /// NodePool ∩ pods ∩ topology decisions, with `node.kubernetes.io/instance-type In
    /// [options]` and capacity type and zone narrowed to what the options offer.
    pub requirements: Requirements,
    /// Options, cheapest first, each able to hold every pod of the claim (after DaemonSet
    /// overhead); truncated to [`Options::max_instance_types`].
    pub instance_types: Vec<InstanceOption>,
    /// Pods the claim is for, in placement order.
    pub pods: Vec<PodRef>,
    /// Sum of the pods' requests plus the DaemonSet overhead on the cheapest option.
    pub requests: Resources,
    /// Price of the cheapest option: what the plan expects to pay per hour.
    pub price: UsdPerHour,
}

/// Why a pod cannot use a NodePool (or any capacity), as a person wants to read it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Reason {
    /// The pod does not tolerate a taint of the NodePool.
    #[error("{0}")]
    Taint(UntoleratedTaint),
    /// The pod's node requirements conflict with the NodePool's.
    #[error("incompatible requirements, {0}")]
    Requirements(Incompatible),
    /// No instance type of the NodePool satisfies the pod's requirements.
    #[error("no instance type satisfies requirements {0}")]
    NoCompatibleInstanceType(String),
    /// The pod needs more of one resource than any compatible instance type has.
    #[error("no instance type has {amount} {resource}")]
    NoInstanceTypeHas {
        /// Resource name.
        resource: String,
        /// Requested amount (pod plus DaemonSet overhead), as Kubernetes prints it.
        amount: String,
    },
    /// Each resource fits some type, but no type holds all of them.
    #[error("no instance type has {0} at once")]
    NoInstanceTypeHolds(String),
    /// Every instance type that would hold the pod exceeds the NodePool's remaining limit.
    #[error("limit on {resource} would be exceeded ({remaining} remaining)")]
    Limit {
        /// Resource name (`nodes` for the node count).
        resource: String,
        /// What is left of the limit.
        remaining: String,
    },
    /// A topology constraint cannot be met.
    #[error("{0}")]
    Topology(String),
    /// A host port is already bound on the node.
    #[error("host port {0} is already in use")]
    HostPort(HostPort),
    /// The claim's options cannot keep a `minValues`.
    #[error("{0}")]
    MinValues(MinValuesError),
    /// The NodePool's NodeClass has no catalog in the snapshot.
    #[error("no instance types for node class {0:?}")]
    NoCatalog(String),
    /// The snapshot has no NodePool at all.
    #[error("no nodepool")]
    NoNodePool,
}

/// The reasons one NodePool cannot take a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolReasons {
    /// NodePool name.
    pub nodepool: String,
    /// Every independent reason found (taints, requirements, resources are checked separately,
    /// so a person sees all that must change).
    pub reasons: Vec<Reason>,
}

/// A pod this plan cannot place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    /// The pod.
    pub pod: PodRef,
    /// Why, per NodePool in the order they were tried.
    pub by_nodepool: Vec<PoolReasons>,
}

impl fmt::Display for Unschedulable {
    /// `incompatible with nodepool "spot": did not tolerate intent=workload-split:NoSchedule;
    /// incompatible with nodepool "default": no instance type has 96 cpu`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for p in &self.by_nodepool {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "incompatible with nodepool {:?}: ", p.nodepool)?;
            let parts: Vec<String> = p.reasons.iter().map(ToString::to_string).collect();
            f.write_str(&parts.join("; "))?;
        }
        Ok(())
    }
}

/// Something a person may want to know about a plan; the shell turns these into Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A preference was dropped so the pod could be placed (or tried further).
    PreferenceRelaxed {
        /// The pod.
        pod: PodRef,
        /// What was dropped.
        relaxed: String,
    },
    /// A launch keeps fewer distinct values than a `minValues` asks (BestEffort policy).
    MinValuesRelaxed {
        /// Index into [`Plan::launches`].
        launch: usize,
        /// The unmet requirement.
        error: MinValuesError,
    },
    /// A topology key has more distinct values than the planner tracks (64); the extra values
    /// are never chosen as domains.
    TooManyDomains {
        /// The topology key.
        key: String,
    },
}

/// The outcome of one provisioning decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Pods that fit on existing nodes or in-flight claims.
    pub nominations: Vec<Nominate>,
    /// NodeClaims to create.
    pub launches: Vec<Launch>,
    /// Pods that cannot be placed, with reasons.
    pub unschedulable: Vec<Unschedulable>,
    /// Diagnostics.
    pub events: Vec<Event>,
}

impl Plan {
    /// The hourly price of all launches (their cheapest options).
    pub fn cost(&self) -> UsdPerHour {
        self.launches
            .iter()
            .fold(UsdPerHour::default(), |acc, l| acc.saturating_add(l.price))
    }

    /// Number of pods placed (nominated or on a launch).
    pub fn placed(&self) -> usize {
        self.nominations.len() + self.launches.iter().map(|l| l.pods.len()).sum::<usize>()
    }
}

pub use anticipation::plan_anticipating;

/// Plans capacity for the snapshot's pending pods: see the [module documentation](self).
pub fn plan(snapshot: &Snapshot, options: &Options) -> Plan {
    scheduler::Scheduler::new(snapshot, options).run()
}

#[cfg(test)]
mod tests;
