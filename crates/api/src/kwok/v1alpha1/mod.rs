//! `karpenter.kwok.sh/v1alpha1`: KWOKNodeClass.

mod kwok_node_class;

pub use kwok_node_class::*;
