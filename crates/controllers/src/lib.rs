//! The node layer's controllers: they execute what `nodescaler` decides and drive NodeClaims
//! through their life.
//!
//! This crate owns the async drivers (a provisioner loop and a NodeClaim lifecycle loop over
//! the state crate's published [`ClusterState`](tandem_state::ClusterState)), the Event recorder and the writes to the API
//! server. It must never decide what to launch or where a pod goes (that is
//! `nodescaler::plan`) and holds no cluster state of its own beyond timers: each loop reads the
//! latest immutable state, calls a pure function and executes the result.
//!
//! ```text
//!   tandem_state::watch ──► Arc<ClusterState> ─┬─► provisioner: Batcher (1 s idle / 10 s max)
//!                                              │     └─► nodescaler::plan ─► create NodeClaims,
//!                                              │         Events Nominated / FailedScheduling,
//!                                              │         NodePool status.resources / nodes
//!                                              └─► lifecycle: per claim step(Input, now)
//!                                                    └─► finalizer, CloudProvider::create,
//!                                                        status (SSA, manager `tandem`),
//!                                                        Node sync, deletion
//! ```
//!
//! Not here yet: Node termination (drain through the Eviction API with PDBs), garbage
//! collection of instances without a claim, leader election and metrics. Until termination
//! exists, registration does not put the `karpenter.sh/termination` finalizer on Nodes, so a
//! deleted Node simply goes away.

pub mod batcher;
mod driver;
pub mod events;
pub mod lifecycle;
pub mod metrics;
pub mod provisioner;

pub use driver::{Controllers, Options};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "tandem";
