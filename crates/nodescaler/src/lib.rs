//! Pure node-layer decisions of Tandem: what Karpenter's provisioner decides, as a function.
//!
//! This crate owns provisioning — the scheduling simulation that decides which pending pods fit
//! on capacity that exists or is launching, which NodeClaims to create for the rest (NodePool,
//! requirements, instance-type options by price) and why the remainder cannot be placed — and
//! the LP lower bound that measures how well it packs. It must never read a clock, sleep, await,
//! log, touch the network or depend on a Kubernetes client: the input is an immutable
//! [`Snapshot`], the output is a [`Plan`] value, and the
//! same input always gives the same plan, byte for byte. Events and diagnostics are data in the
//! plan; the shell publishes them.
//!
//! ```text
//!   state crate ──► Snapshot { pods, nodes, in-flight claims, NodePools, DaemonSets,
//!                              catalogs per NodeClass }            (tandem-model types)
//!                        │
//!                        ▼
//!   provisioning::plan(&Snapshot, &Options) ──► Plan { nominations, launches,
//!                        │                             unschedulable (+ reasons), events }
//!                        ▼                                  │
//!   lower_bound::cost_ratio(&Plan, &Snapshot) ◄─────────────┘   (LP relaxation, good_lp)
//!                                                                │
//!   controllers (executor) ◄─────── Launch / Nominate commands ──┘
//! ```
//!
//! Every collection whose order can reach output is ordered (`BTreeMap`, sorted `Vec`; the crate
//! `clippy.toml` bans hash collections, clocks and thread RNGs), and every sort has a total
//! tie-break (CPU, memory, creation order, uid for pods; price then name for instance types).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod disruption;
pub mod headroom;
pub mod lower_bound;
pub mod provisioning;
pub mod selector;
pub mod snapshot;

pub use provisioning::{Options, Plan, plan};
pub use snapshot::Snapshot;
