//! The cloud seam of the node layer: what the NodeClaim lifecycle asks of a cloud, and the
//! providers that answer.
//!
//! This crate owns the [`CloudProvider`] contract (create, delete, get, list, instance types,
//! drift), its typed [`Error`], a recording [`fake`] for controller tests and the [`kwok`]
//! provider, whose "instances" are Node objects in a real API server and which plays kubelet
//! for them. It must never decide *what* to launch: the node layer's core chose the instance
//! types; a provider only picks the cheapest available offering among them, as upstream's
//! providers do, and reports what it got.
//!
//! ```text
//!   controllers (lifecycle) ──create(&NodeClaim)──► CloudProvider ──► Instance { providerID,
//!            │                 delete(providerID)      │  fake: memory, records every call
//!            │                 get / list              │  kwok: Node objects + a kubelet task
//!            ▼                                         ▼
//!   NodeClaim status (Launched, providerID …)    API server (kwok instances survive restarts)
//! ```
//!
//! Upstream contract: Karpenter core `pkg/cloudprovider/types.go`. Methods return boxed futures
//! so the trait stays object safe (`Arc<dyn CloudProvider>`) without a macro crate.

pub mod error;
pub mod eventbridge;
pub mod fake;
pub mod interruption;
pub mod kwok;
mod requirements;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use tandem_api::karpenter::NodeClaim;
use tandem_model::catalog::Catalog;
use tandem_model::resources::Resources;

pub use error::{Error, OfferingRef};
pub use requirements::{claim_requests, claim_requirements, instance_labels};

/// A launched machine, as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Provider ID (`kwok://<name>`); the Node carries the same value in `spec.providerID`.
    pub provider_id: String,
    /// Name of the NodeClaim it was launched for (upstream tags instances with it), so garbage
    /// collection can find instances whose claim is gone.
    pub nodeclaim: String,
    /// Instance type name.
    pub instance_type: String,
    /// Zone of the offering used.
    pub zone: String,
    /// Capacity type of the offering used (`spot`, `on-demand`).
    pub capacity_type: String,
    /// Resources of the machine.
    pub capacity: Resources,
    /// Resources left for pods after overhead.
    pub allocatable: Resources,
    /// Labels the instance resolves (instance type, zone, capacity type, arch, os, provider
    /// labels); merged into the NodeClaim's labels at launch, user labels winning.
    pub labels: BTreeMap<String, String>,
    /// When the cloud created it; garbage collection waits a grace period from here.
    pub created: Timestamp,
}

/// Why a NodeClaim no longer matches what its NodePool or NodeClass would launch today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftReason(pub String);

/// The cloud, as the node layer sees it. Every method documents its contract; the lifecycle
/// controller relies on exactly these guarantees.
pub trait CloudProvider: Send + Sync {
    /// A short provider name for metrics labels (`kwok`, `fake`, `aws`).
    fn name(&self) -> &'static str;

    /// Launches an instance for `claim`, choosing among the instance types and offerings its
    /// requirements allow (cheapest available first).
    ///
    /// Idempotent by NodeClaim name: calling it again for a claim that already has an instance
    /// returns that instance instead of launching a second one, so a controller that crashed
    /// between the call and its status write can simply call again.
    /// [`Error::InsufficientCapacity`] names every offering that was tried and refused.
    fn create<'a>(&'a self, claim: &'a NodeClaim) -> BoxFuture<'a, Result<Instance, Error>>;

    /// Terminates the instance. An instance that is already gone is success, so the call can be
    /// repeated until [`CloudProvider::get`] reports [`Error::NodeClaimNotFound`].
    fn delete<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// The instance behind `provider_id`, or [`Error::NodeClaimNotFound`] once it is gone (or
    /// terminating).
    fn get<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<Instance, Error>>;

    /// Every live instance this provider launched, for garbage collection.
    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, Error>>;

    /// The instance types (with offerings and prices) a NodeClass named `node_class` may
    /// launch; the state crate puts them into every snapshot.
    fn instance_types<'a>(
        &'a self,
        node_class: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Catalog>, Error>>;

    /// Whether the claim's instance no longer matches its NodeClass; `None` when it does.
    fn is_drifted<'a>(
        &'a self,
        claim: &'a NodeClaim,
    ) -> BoxFuture<'a, Result<Option<DriftReason>, Error>>;

    /// Interruption notices received since the last call and not yet acknowledged. A provider
    /// without an interruption source has none (the default).
    fn interruptions(&self) -> BoxFuture<'_, Result<Vec<interruption::Notice>, Error>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Marks a notice handled so it is not delivered again; acknowledging twice is success.
    fn acknowledge<'a>(
        &'a self,
        _notice: &'a interruption::Notice,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// The provider ID the kwok provider gives the Node named `name`.
pub fn kwok_provider_id(name: &str) -> String {
    format!("{}{name}", kwok::PROVIDER_ID_PREFIX)
}
