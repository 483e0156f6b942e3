//! What both layers need to run as a service in a cluster, and nothing about autoscaling:
//! leader election on a `coordination.k8s.io/v1` Lease, and the `/healthz`, `/readyz` and
//! `/metrics` endpoints.
//!
//! ```text
//!   tandem run ─► leader::Elector ── Role (watch) ──► start the layers once Leader,
//!              │                                      exit when leadership is lost
//!              └► endpoints::serve(addr) ── /healthz  alive
//!                                         ── /readyz   the caller's readiness check
//!                                         ── /metrics  OpenMetrics text of one Registry
//! ```
//!
//! The election decision is a pure function of the observed Lease, our identity and the time
//! ([`leader::decide`]); the [`leader::Elector`] only reads and writes the Lease, with
//! optimistic concurrency on `resourceVersion`, so two replicas racing for an expired lease
//! cannot both win.

pub mod api_client;
pub mod endpoints;
pub mod fence;
pub mod leader;

pub use prometheus_client;
