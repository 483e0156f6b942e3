//! The node layer's controllers: they execute what `nodescaler` decides and drive NodeClaims
//! through their life.
//!
//! This crate owns the async drivers (a provisioner loop, a NodeClaim lifecycle loop, a Node
//! termination loop, a disruption loop and a garbage collector over the state crate's published
//! [`ClusterState`](tandem_state::ClusterState)), the Event recorder and the writes to the API
//! server. It must never decide what to launch or where a pod goes (that is
//! `nodescaler::plan`), which node to disrupt (that is `nodescaler::disruption::decide`) nor
//! which pod to evict (that is [`termination::step`]), and holds no
//! cluster state of its own beyond timers: each loop reads the latest immutable state, calls a
//! pure function and executes the result.
//!
//! ```text
//!   tandem_state::watch ──► Arc<ClusterState> ─┬─► provisioner: Batcher (1 s idle / 10 s max)
//!                                              │     └─► nodescaler::plan ─► create NodeClaims
//!                                              │         (each answer back into the index at
//!                                              │         once, tandem_state::created),
//!                                              │         Events Nominated / FailedScheduling,
//!                                              │         NodePool status.resources / nodes
//!                                              ├─► lifecycle: per claim step(Input, now)
//!                                              │     └─► finalizer, CloudProvider::create,
//!                                              │         status (SSA, manager `tandem`),
//!                                              │         Node sync (+ termination finalizer),
//!                                              │         deletion: Node first, then instance
//!                                              └─► termination: per deleting Node step(Facts, now)
//!                                                    └─► delete its claim, disrupted taint,
//!                                                        evictions (Eviction API, PDB 429 →
//!                                                        FailedDraining, retried), forced
//!                                                        deletes at terminationGracePeriod,
//!                                                        VolumeAttachments gone,
//!                                                        CloudProvider::delete, finalizer off
//!   disruption: every 10 s decide(snapshot, now) ─► DisruptionBlocked / Unconsolidatable;
//!     one command at a time: wait 15 s, validate, taint karpenter.sh/disrupted, launch
//!     replacements, wait Initialized, delete candidate claims (DisruptionTerminating),
//!     karpenter_nodeclaims_disrupted_total ([`disruption`])
//!   CloudProvider::list ── every gc.interval ──► gc::decide ─► terminate instances no claim
//!                                                  owns; delete claims whose instance is gone
//! ```
//!
//! `kubectl delete node` and `kubectl delete nodeclaim` both drain: a deleted claim deletes its
//! Node; a deleted Node deletes its claim; the Node's finalizer holds it until drained and the
//! instance is gone, then the claim's finalizer comes off.
//!
//! Disruption runs emptiness, drift, expiration and consolidation live; e2e tests cover
//! emptiness (`tests/emptiness.rs`), drift with a one-node budget (`tests/drift.rs`) and
//! multi-node consolidation around a do-not-disrupt pod (`tests/consolidation.rs`) and a
//! replacement that never initializes (`tests/disruption_timeout.rs`), expiration
//! (`tests/expiration.rs`) and a single-node replace by a cheaper on-demand node
//! (`tests/replace.rs`).
//! Not here: leader election (the `tandem` binary's), the NodeClaim `Disrupted` condition,
//! nominating the moved pods, and running several disruption commands at once.

pub mod batcher;
pub mod create_once;
pub mod disruption;
mod driver;
pub mod events;
pub mod gc;
pub mod interruption;
pub mod lifecycle;
pub mod metrics;
pub mod nominations;
pub mod provisioner;
pub mod termination;
mod terminator;

pub use driver::{Controllers, LaunchOptions, Options};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "tandem";
