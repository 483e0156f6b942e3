//! Karpenter core's API group, `karpenter.sh`.

pub mod v1;

/// The kinds of the version Tandem serves, so callers need not name the version.
pub use v1::{NodeClaim, NodePool};
