//! Pure pod-layer decisions: what KEDA and the HPA controller would decide, as functions.
//!
//! This crate owns the arithmetic and the state machines of the pod layer: activation (0 ↔ 1,
//! cooldown, idle replicas, pause annotations), the HPA controller's algorithm (1 ↔ N, tolerance,
//! stabilization windows, scaling policies), fallback on failing triggers, `scalingModifiers`
//! formulas, ScaledJob scaling strategies and external metric naming. It must never read a clock,
//! await, touch the network or depend on a Kubernetes client: the shell builds the compact input
//! types defined here from the ScaledObject and the cluster, calls [`decision::decide`] and
//! executes the returned effects. Time is the [`TimeMs`] parameter, every map is a `BTreeMap`,
//! so the controllers, the simulator and the benchmarks get the same answer from the same input.
//!
//! ```text
//!   Observation (trigger values, replicas, pods)
//!        │
//!        ▼
//!   fallback ──► values per trigger ──► modifiers (composite metric, optional)
//!        │                                  │
//!        ▼                                  ▼
//!   activation (0 ↔ 1, pause, cooldown)   hpa (1 ↔ N: ratio, tolerance, behavior)
//!        └──────────────► decision::decide ◄───┘ ──► Decision { desired, why, effects }
//!
//!   scaled_job (Job counts per strategy)      naming (s<index>-<trigger name>)
//! ```
//!
//! Upstream behaviour is mirrored deliberately, quirks included where users depend on them; each
//! module names the upstream file its rules come from (KEDA `pkg/scaling/...`, Kubernetes
//! `pkg/controller/podautoscaler/...`). The code is our own.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod activation;
pub mod comeback;
pub mod decision;
pub mod fallback;
pub mod forecast;
pub mod hpa;
pub mod modifiers;
pub mod naming;
pub mod scaled_job;
mod time;

pub use time::TimeMs;
