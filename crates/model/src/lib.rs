//! Pure domain types shared by both layers of Tandem.
//!
//! This crate owns the vocabulary the decision code speaks: Kubernetes quantities with exact
//! arithmetic, the node-requirements algebra, taints and tolerations, pod resource requests and
//! instance types with their offerings. It must never read a clock, touch the network, await, or
//! depend on a Kubernetes client: everything here is a plain value, so the controllers, the
//! simulator and the benchmarks all compute the same answers from the same inputs.
//!
//! ```text
//!   quantity ──► resources ──► pod (effective requests, host ports)
//!                    │
//!                    ▼
//!   labels ──► requirements ──► catalog (instance types, offerings, prices)
//!                                  ▲
//!   taints                allocatable (capacity − overhead)
//! ```
//!
//! Every collection whose order can reach output is a `BTreeMap`, `BTreeSet` or sorted `Vec`
//! (`clippy.toml` bans `HashMap`/`HashSet`), prices are integers (pico-dollars), and the catalogs
//! are parsed from CSV text embedded at build time, so the same inputs always give the same
//! bytes out.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod allocatable;
pub mod catalog;
pub mod labels;
pub mod pod;
pub mod quantity;
pub mod requirements;
pub mod resources;
pub mod taints;
