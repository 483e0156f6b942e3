//! The pod layer, live: what KEDA's operator and metrics adapter do, on a real cluster.
//!
//! This crate owns the pod layer's I/O: it watches ScaledObjects, builds their scalers
//! (`tandem_scalers`), polls them every `pollingInterval`, asks `tandem_podscaler::decision`
//! what to do and executes it: KEDA's own `/scale` writes (0 ↔ 1, pause), the owned HPA
//! `keda-hpa-<name>`, status and Events. It serves the values it measured to the real HPA
//! controller through the `external.metrics.k8s.io` API ([`serve_external_metrics`]). It must
//! never decide replica counts itself (that is `tandem-podscaler`, pure) nor query an event
//! source when the HPA asks for a value (the HPA reads the latest polled value).
//!
//! ```text
//!   ScaledObject watch ─► controller (one worker per object)
//!                           │ convert (tandem-manifest) ─► scalers (tandem-scalers)
//!                           │ ─► podscaler::decide ─► /scale, HPA, status, Events
//!                           ▼
//!                        MetricValues ◄── serve_external_metrics ◄── aggregator ◄── HPA
//!
//!   ScaledJob watch ─► scaled_job (one worker per object)
//!                        │ jobs::validate ─► scalers (same builder) ─► own Jobs and pods
//!                        │ ─► podscaler::scaled_job::plan ─► create / clean up Jobs, status, Events
//! ```
//!
//! Entry points: [`PodLayer::spawn`] and [`serve_external_metrics`], sharing one
//! [`MetricValues`]. Pure pieces with their own tests: [`hpa`] (the HPA object),
//! [`status`] (conditions and status fields), [`controller::target_conflicts`] and
//! [`worker::keda_effects`].
//!
//! A source that can report growth (`Scaler::watch`) wakes its ScaledObject's worker at once
//! ([`Options::push`], DESIGN §3.6); scale-in always waits for `pollingInterval`.
//!
//! ScaledJobs ([`scaled_job`], pure helpers in [`jobs`]) create `batch/v1` Jobs from
//! `jobTargetRef`, at most `maxReplicaCount` running, and delete finished Jobs past the
//! history limits and (unless `rollout.strategy: gradual`) running Jobs of an older
//! generation. Their triggers are polled only (no push wake-ups, as upstream).
//!
//! Not here yet: `useCachedMetrics` (every value is cached: the HPA always reads the last
//! poll), ScaledJob metrics, leader election (`tandem run` does it), resolving `valueFrom` env
//! of the target, and watching Secrets (a scaler is
//! rebuilt, re-reading its Secrets, after it fails). `ready_pods` for fallback with `Value`
//! targets is the target's `/scale` `status.replicas`, not a count of Ready pods.

pub mod controller;
mod error;
pub mod events;
pub mod hpa;
pub mod jobs;
pub mod metrics;
pub mod metrics_server;
pub mod replicas;
pub mod scaled_job;
pub mod status;
pub mod target;
pub mod triggers;
pub mod worker;

pub use controller::{FIELD_MANAGER, FINALIZER, Options, PodLayer};
pub use error::Error;
pub use metrics_server::{
    MetricKey, MetricValues, MetricsServer, TlsConfig, serve_external_metrics,
};
