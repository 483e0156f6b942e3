//! The Azure provider's API group, `karpenter.azure.com`.

pub mod v1beta1;

/// The kinds of the version Tandem serves, so callers need not name the version.
pub use v1beta1::AKSNodeClass;
