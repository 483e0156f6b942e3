//! The Kubernetes API Tandem serves and reads: KEDA's and Karpenter's custom resources,
//! field for field, so their YAML applies unchanged.
//!
//! This crate owns the Rust types of every kind (spec and status), their upstream defaults,
//! the OpenAPI schemas with upstream CEL rules and printer columns, and the generated CRDs
//! (`crds::all`, written to `config/crds/` by `tandem crds`). It must never decide anything,
//! talk to a cluster or read a clock: decisions live in the pure crates, I/O in the shell.
//!
//! ```text
//!   YAML / API server ──serde──► tandem_api types ──► state (snapshots) ──► decisions
//!                                      │
//!                       schemars + kube derive ──► crds::all() ──► config/crds/*.yaml
//! ```
//!
//! | module | group/version | kinds |
//! |---|---|---|
//! | [`keda::v1alpha1`] | `keda.sh/v1alpha1` | ScaledObject, ScaledJob, TriggerAuthentication, ClusterTriggerAuthentication |
//! | [`karpenter::v1`] | `karpenter.sh/v1` | NodePool, NodeClaim |
//! | [`aws::v1`] | `karpenter.k8s.aws/v1` | EC2NodeClass |
//! | [`azure::v1beta1`] | `karpenter.azure.com/v1beta1` | AKSNodeClass |
//! | [`kwok::v1alpha1`] | `karpenter.kwok.sh/v1alpha1` | KWOKNodeClass |
//! | [`legacy`] | `karpenter.sh/v1alpha5`, `karpenter.k8s.aws/v1alpha1` | Provisioner, AWSNodeTemplate (deprecated, read only: input to `tandem migrate`) |
//!
//! Shared value types: [`condition::Condition`] (the `metav1.Condition` shape),
//! [`duration`] (Go duration strings and `Never`), [`quantity::Quantity`] (string or number).

// kube's `printcolumn(...)` repeats `type_`/`priority` keys by design; the lint misreads them.
#![allow(clippy::duplicated_attributes)]

pub mod aws;
pub mod azure;
pub mod condition;
pub mod crds;
pub mod duration;
pub mod karpenter;
pub mod keda;
pub mod kwok;
pub mod legacy;
pub mod quantity;
mod schema;
