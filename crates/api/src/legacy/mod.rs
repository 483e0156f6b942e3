//! Deprecated, read-only kinds: `karpenter.sh/v1alpha5` Provisioner and
//! `karpenter.k8s.aws/v1alpha1` AWSNodeTemplate (Karpenter ≤ v0.31).
//!
//! Tandem never reconciles these. They exist so `tandem migrate` can read old manifests
//! (seed 001) and convert them to NodePool/EC2NodeClass; their CRDs are generated marked
//! `deprecated` only so such manifests can be applied to a test cluster for migration.

pub mod v1alpha1_aws_node_template;
pub mod v1alpha5_provisioner;

pub use v1alpha1_aws_node_template::{AWSNodeTemplate, AWSNodeTemplateSpec, AWSNodeTemplateStatus};
pub use v1alpha5_provisioner::{Provisioner, ProvisionerSpec, ProvisionerStatus};
