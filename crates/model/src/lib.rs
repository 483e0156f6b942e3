//! Pure domain types shared by both layers of Tandem.
//!
//! This crate owns the vocabulary the decision code speaks: Kubernetes quantities with exact
//! arithmetic, the node-requirements algebra, taints and tolerations, pod resource requests and
//! instance types with their offerings. It must never read a clock, touch the network, await, or
//! depend on a Kubernetes client: everything here is a plain value, so the controllers, the
//! simulator and the benchmarks all compute the same answers from the same inputs.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
