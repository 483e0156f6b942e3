//! `karpenter.k8s.aws/v1`: EC2NodeClass.

mod ec2_node_class;

pub use ec2_node_class::*;
