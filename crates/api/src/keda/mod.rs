//! KEDA's API group, `keda.sh`.

pub mod v1alpha1;

/// The kinds of the version Tandem serves, so callers need not name the version.
pub use v1alpha1::{ClusterTriggerAuthentication, ScaledJob, ScaledObject, TriggerAuthentication};
