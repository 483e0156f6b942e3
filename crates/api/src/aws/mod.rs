//! The AWS provider's API group, `karpenter.k8s.aws`.

pub mod v1;

/// The kinds of the version Tandem serves, so callers need not name the version.
pub use v1::EC2NodeClass;
