//! `karpenter.k8s.aws/v1alpha1` AWSNodeTemplate, the predecessor of EC2NodeClass (read only).
//!
//! Upstream: aws `pkg/apis/crds/karpenter.k8s.aws_awsnodetemplates.yaml` as last shipped.
//! Selectors were flat tag maps (`subnetSelector: {key: value}`), not term lists.

use crate::quantity::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Desired state of an AWSNodeTemplate.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "karpenter.k8s.aws",
    version = "v1alpha1",
    kind = "AWSNodeTemplate",
    plural = "awsnodetemplates",
    singular = "awsnodetemplate",
    category = "karpenter",
    status = "AWSNodeTemplateStatus",
    derive = "PartialEq",
    derive = "Default",
    deprecated = "karpenter.k8s.aws/v1alpha1 AWSNodeTemplate is read only in Tandem; convert it with `tandem migrate` to a karpenter.k8s.aws/v1 EC2NodeClass",
    doc = "AWSNodeTemplate is the Schema for the AWSNodeTemplate API (deprecated; read only)"
)]
#[serde(rename_all = "camelCase")]
pub struct AWSNodeTemplateSpec {
    /// AMI family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_family: Option<String>,
    /// AMI selector as tags (with `aws::ids`/`aws::name` pseudo keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_selector: Option<BTreeMap<String, String>>,
    /// Subnet selector as tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_selector: Option<BTreeMap<String, String>>,
    /// Security group selector as tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_selector: Option<BTreeMap<String, String>>,
    /// Instance profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile: Option<String>,
    /// Existing launch template (unsupported in v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_template: Option<String>,
    /// User data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// CreateFleet context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Detailed monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detailed_monitoring: Option<bool>,
    /// Block devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_device_mappings: Option<Vec<LegacyBlockDeviceMapping>>,
    /// IMDS options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_options: Option<LegacyMetadataOptions>,
    /// Embedded apiVersion (pre-v0.20 inline provider compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Embedded kind (pre-v0.20 inline provider compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A legacy block device mapping.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyBlockDeviceMapping {
    /// Device name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// EBS volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs: Option<LegacyBlockDevice>,
}

/// A legacy EBS volume; `volumeSize` was a quantity then.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // Same fields as EC2NodeClass's BlockDevice.
pub struct LegacyBlockDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_on_termination: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
    #[serde(default, rename = "kmsKeyID", skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(
        default,
        rename = "snapshotID",
        skip_serializing_if = "Option::is_none"
    )]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
}

/// Legacy IMDS options.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // Same fields as EC2NodeClass's MetadataOptions, without defaults.
pub struct LegacyMetadataOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_endpoint: Option<String>,
    #[serde(
        default,
        rename = "httpProtocolIPv6",
        skip_serializing_if = "Option::is_none"
    )]
    pub http_protocol_ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_put_response_hop_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_tokens: Option<String>,
}

/// Observed state of an AWSNodeTemplate.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AWSNodeTemplateStatus {
    /// Resolved subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<crate::aws::v1::ResolvedSubnet>,
    /// Resolved security groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<crate::aws::v1::ResolvedSecurityGroup>,
    /// Resolved AMIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amis: Vec<crate::aws::v1::ResolvedAmi>,
}
