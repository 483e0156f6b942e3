//! `karpenter.azure.com/v1beta1`: AKSNodeClass (the storage version; v1alpha2 is not served
//! by Tandem).

mod aks_node_class;

pub use aks_node_class::*;
