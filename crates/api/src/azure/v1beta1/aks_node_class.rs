//! AKSNodeClass: the Azure provider's NodeClass (image family, OS disk, kubelet and sysctls,
//! LocalDNS). Upstream: azure `pkg/apis/v1beta1/aksnodeclass.go`, CRD
//! `karpenter.azure.com_aksnodeclasses.yaml` (main @352646f5).

use crate::condition::Condition;
use k8s_openapi::api::core::v1::NodeSelectorRequirement;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Desired state of an AKSNodeClass.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "karpenter.azure.com",
    version = "v1beta1",
    kind = "AKSNodeClass",
    plural = "aksnodeclasses",
    singular = "aksnodeclass",
    shortname = "aksnc",
    shortname = "aksncs",
    category = "karpenter",
    category = "nap",
    status = "AKSNodeClassStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "AKSNodeClass is the Schema for the AKSNodeClass API",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "ImageFamily",
        type_ = "string",
        json_path = ".spec.imageFamily",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "has(self.fipsMode) && self.fipsMode == 'FIPS' ? (has(self.imageFamily) && self.imageFamily != 'Ubuntu2404') : true", "message": "FIPS is not yet supported for Ubuntu2404" },
    { "rule": "has(self.fipsMode) && self.fipsMode == 'FIPS' ? (has(self.imageFamily) && (self.imageFamily != 'Ubuntu2204' || (has(self.security) && has(self.security.trustedLaunch) && ((has(self.security.trustedLaunch.vtpm) && self.security.trustedLaunch.vtpm) || (has(self.security.trustedLaunch.secureBoot) && self.security.trustedLaunch.secureBoot))))) : true", "message": "TrustedLaunch is required for FIPS support with Ubuntu2204" },
    { "rule": "has(self.fipsMode) && self.fipsMode == 'FIPS' && has(self.security) && has(self.security.trustedLaunch) && ((has(self.security.trustedLaunch.vtpm) && self.security.trustedLaunch.vtpm) || (has(self.security.trustedLaunch.secureBoot) && self.security.trustedLaunch.secureBoot)) ? (!has(self.imageFamily) || self.imageFamily == 'Ubuntu' || self.imageFamily == 'Ubuntu2204') : true", "message": "TrustedLaunch with FIPSMode FIPS is only supported for Ubuntu and Ubuntu2204" },
    { "rule": "!has(self.linuxOSConfig) || !has(self.linuxOSConfig.swapFileSize) || (has(self.kubelet) && has(self.kubelet.failSwapOn) && self.kubelet.failSwapOn == false)", "message": "kubelet.failSwapOn must be set to false when linuxOSConfig.swapFileSize is specified" }
]))]
pub struct AKSNodeClassSpec {
    /// Subnet for node NICs; defaults to the cluster's.
    #[serde(
        default,
        rename = "vnetSubnetID",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(
        pattern = r"(?i)^\/subscriptions\/[^\/]+\/resourceGroups\/[a-zA-Z0-9_\-().]{0,89}[a-zA-Z0-9_\-()]\/providers\/Microsoft\.Network\/virtualNetworks\/[^\/]+\/subnets\/[^\/]+$"
    ))]
    pub vnet_subnet_id: Option<String>,
    /// OS disk size in GB; it bounds ephemeral storage.
    #[serde(default = "default_os_disk_size_gb", rename = "osDiskSizeGB")]
    #[schemars(range(min = 30, max = 2048))]
    pub os_disk_size_gb: i32,
    /// Node image family (`Ubuntu`, `Ubuntu2204`, `Ubuntu2404`, `AzureLinux`).
    #[serde(default = "default_image_family")]
    #[schemars(extend("enum" = ["Ubuntu", "Ubuntu2204", "Ubuntu2404", "AzureLinux"]))]
    pub image_family: String,
    /// `FIPS` or `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["FIPS", "Disabled"]))]
    pub fips_mode: Option<String>,
    /// Maximum pods per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 250))]
    pub max_pods: Option<i32>,
    /// Azure tags on the VM and its resources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": "self.all(k, size(k) <= 512)", "message": "tags keys must be less than 512 characters" },
        { "rule": "self.all(k, !k.matches('[<>%&?]'))", "message": "tags keys must not contain '<', '>', '%', '&', or '?'" },
        { "rule": "self.all(k, !k.contains('\\\\'))", "message": "tags keys must not contain '\\'" },
        { "rule": "self.all(k, size(self[k]) <= 256)", "message": "tags values must be less than 256 characters" }
    ]))]
    pub tags: BTreeMap<String, String>,
    /// Kubelet settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<AksKubeletConfiguration>,
    /// Linux OS settings (sysctls, THP, swap).
    #[serde(
        default,
        rename = "linuxOSConfig",
        skip_serializing_if = "Option::is_none"
    )]
    pub linux_os_config: Option<LinuxOsConfig>,
    /// GPU driver installation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Gpu>,
    /// Artifact streaming for image pulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_streaming: Option<ArtifactStreaming>,
    /// Security features (encryption at host, trusted launch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    /// Node-local DNS proxy.
    #[serde(default, rename = "localDNS", skip_serializing_if = "Option::is_none")]
    pub local_dns: Option<LocalDns>,
}

/// Upstream default OS disk size.
fn default_os_disk_size_gb() -> i32 {
    128
}

/// Upstream default image family.
fn default_image_family() -> String {
    "Ubuntu".to_owned()
}

/// Kubelet settings of an AKS node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.imageGCHighThresholdPercent) && has(self.imageGCLowThresholdPercent) ?  self.imageGCHighThresholdPercent > self.imageGCLowThresholdPercent  : true",
    "message": "imageGCHighThresholdPercent must be greater than imageGCLowThresholdPercent"
}]))]
pub struct AksKubeletConfiguration {
    /// `none` or `static`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "none", "enum" = ["none", "static"]))]
    pub cpu_manager_policy: Option<String>,
    /// Enforce CPU limits with CFS quota.
    #[serde(
        default,
        rename = "cpuCFSQuota",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("default" = true))]
    pub cpu_cfs_quota: Option<bool>,
    /// CFS quota period.
    #[serde(
        default,
        rename = "cpuCFSQuotaPeriod",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("default" = "100ms"))]
    pub cpu_cfs_quota_period: Option<String>,
    /// Image GC high threshold.
    #[serde(
        default,
        rename = "imageGCHighThresholdPercent",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 100))]
    pub image_gc_high_threshold_percent: Option<i32>,
    /// Image GC low threshold.
    #[serde(
        default,
        rename = "imageGCLowThresholdPercent",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 100))]
    pub image_gc_low_threshold_percent: Option<i32>,
    /// Topology manager policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "none", "enum" = ["restricted", "best-effort", "none", "single-numa-node"]))]
    pub topology_manager_policy: Option<String>,
    /// Sysctls pods may set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_unsafe_sysctls: Option<Vec<String>>,
    /// Maximum size of a container log file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\d+(E|P|T|G|M|K|Ei|Pi|Ti|Gi|Mi|Ki)$"))]
    #[schemars(extend("default" = "50Mi"))]
    pub container_log_max_size: Option<String>,
    /// Log files kept per container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2))]
    #[schemars(extend("default" = 5))]
    pub container_log_max_files: Option<i32>,
    /// PID limit per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_pids_limit: Option<i64>,
    /// Fail to start when swap is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_swap_on: Option<bool>,
}

/// Linux OS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinuxOsConfig {
    /// Swap file size, e.g. `1500M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\d+(E|P|T|G|M|K|Ei|Pi|Ti|Gi|Mi|Ki)$"))]
    pub swap_file_size: Option<String>,
    /// Kernel sysctls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<Sysctls>,
    /// Transparent huge pages mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["always", "madvise", "never"]))]
    pub transparent_huge_page_enabled: Option<String>,
    /// Transparent huge pages defrag mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["always", "defer", "defer+madvise", "madvise", "never"]))]
    pub transparent_huge_page_defrag: Option<String>,
}

/// Kernel sysctls AKS lets a node class set, each within AKS's supported range.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "has(self.netCoreRmemDefault) && has(self.netCoreRmemMax) ? self.netCoreRmemDefault <= self.netCoreRmemMax : true", "message": "netCoreRmemDefault must be <= netCoreRmemMax" },
    { "rule": "has(self.netCoreWmemDefault) && has(self.netCoreWmemMax) ? self.netCoreWmemDefault <= self.netCoreWmemMax : true", "message": "netCoreWmemDefault must be <= netCoreWmemMax" },
    { "rule": "has(self.netIPv4NeighDefaultGcThresh1) && has(self.netIPv4NeighDefaultGcThresh2) ? self.netIPv4NeighDefaultGcThresh1 <= self.netIPv4NeighDefaultGcThresh2 : true", "message": "netIPv4NeighDefaultGcThresh1 must be <= netIPv4NeighDefaultGcThresh2" },
    { "rule": "has(self.netIPv4NeighDefaultGcThresh2) && has(self.netIPv4NeighDefaultGcThresh3) ? self.netIPv4NeighDefaultGcThresh2 <= self.netIPv4NeighDefaultGcThresh3 : true", "message": "netIPv4NeighDefaultGcThresh2 must be <= netIPv4NeighDefaultGcThresh3" },
    { "rule": "!has(self.netIPv4IPLocalPortRange) || (int(self.netIPv4IPLocalPortRange.split(' ')[0]) >= 1024 && int(self.netIPv4IPLocalPortRange.split(' ')[0]) <= 60999)", "message": "netIPv4IPLocalPortRange first port must be in [1024, 60999]" },
    { "rule": "!has(self.netIPv4IPLocalPortRange) || (int(self.netIPv4IPLocalPortRange.split(' ')[1]) >= 32768 && int(self.netIPv4IPLocalPortRange.split(' ')[1]) <= 65535)", "message": "netIPv4IPLocalPortRange last port must be in [32768, 65535]" },
    { "rule": "!has(self.netIPv4IPLocalPortRange) || int(self.netIPv4IPLocalPortRange.split(' ')[0]) <= int(self.netIPv4IPLocalPortRange.split(' ')[1])", "message": "netIPv4IPLocalPortRange first port must be <= last port" }
]))]
#[allow(missing_docs)] // Each field is the sysctl of the same name; ranges are in the schema.
pub struct Sysctls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 65536, max = 6553500))]
    pub fs_aio_max_nr: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 8192, max = 12000500))]
    pub fs_file_max: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 781250, max = 2097152))]
    pub fs_inotify_max_user_watches: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 8192, max = 20000500))]
    pub fs_nr_open: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 20, max = 513785))]
    pub kernel_threads_max: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1000, max = 3240000))]
    pub net_core_netdev_max_backlog: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 20480, max = 4194304))]
    pub net_core_optmem_max: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 212992, max = 134217728))]
    pub net_core_rmem_default: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 212992, max = 134217728))]
    pub net_core_rmem_max: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 4096, max = 3240000))]
    pub net_core_somaxconn: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 212992, max = 134217728))]
    pub net_core_wmem_default: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 212992, max = 134217728))]
    pub net_core_wmem_max: Option<i32>,
    #[serde(
        default,
        rename = "netIPv4IPLocalPortRange",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^\d+ \d+$"))]
    pub net_ipv4_ip_local_port_range: Option<String>,
    #[serde(
        default,
        rename = "netIPv4NeighDefaultGcThresh1",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 128, max = 80000))]
    pub net_ipv4_neigh_default_gc_thresh1: Option<i32>,
    #[serde(
        default,
        rename = "netIPv4NeighDefaultGcThresh2",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 512, max = 90000))]
    pub net_ipv4_neigh_default_gc_thresh2: Option<i32>,
    #[serde(
        default,
        rename = "netIPv4NeighDefaultGcThresh3",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1024, max = 100000))]
    pub net_ipv4_neigh_default_gc_thresh3: Option<i32>,
    #[serde(
        default,
        rename = "netIPv4TCPFinTimeout",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 5, max = 120))]
    pub net_ipv4_tcp_fin_timeout: Option<i32>,
    #[serde(
        default,
        rename = "netIPv4TCPKeepaliveIntvl",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 10, max = 90))]
    pub net_ipv4_tcp_keepalive_intvl: Option<i32>,
    #[serde(
        default,
        rename = "netIPv4TCPKeepaliveProbes",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 15))]
    pub net_ipv4_tcp_keepalive_probes: Option<i32>,
    #[serde(
        default,
        rename = "netIPv4TCPKeepaliveTime",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 30, max = 432000))]
    pub net_ipv4_tcp_keepalive_time: Option<i32>,
    #[serde(
        default,
        rename = "netIPv4TCPMaxSynBacklog",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 128, max = 3240000))]
    pub net_ipv4_tcp_max_syn_backlog: Option<i32>,
    #[serde(
        default,
        rename = "netIPv4TCPMaxTwBuckets",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 8000, max = 1440000))]
    pub net_ipv4_tcp_max_tw_buckets: Option<i32>,
    #[serde(
        default,
        rename = "netIPv4TCPTwReuse",
        skip_serializing_if = "Option::is_none"
    )]
    pub net_ipv4_tcp_tw_reuse: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 65536, max = 524288))]
    pub net_netfilter_nf_conntrack_buckets: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 131072, max = 2097152))]
    pub net_netfilter_nf_conntrack_max: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 65530, max = 262144))]
    pub vm_max_map_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub vm_swappiness: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub vm_vfs_cache_pressure: Option<i32>,
}

/// GPU driver handling.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Gpu {
    /// `Driver` (install) or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Driver", "enum" = ["Driver", "None"]))]
    pub mode: Option<String>,
}

/// Artifact streaming switch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactStreaming {
    /// Stream images instead of pulling them whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Security features.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Security {
    /// Encrypt temp disks and caches on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_at_host: Option<bool>,
    /// Trusted launch (secure boot, vTPM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_launch: Option<TrustedLaunch>,
}

/// Trusted launch settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustedLaunch {
    /// UEFI secure boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<bool>,
    /// Virtual TPM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtpm: Option<bool>,
}

/// CEL shared by both LocalDNS override lists.
fn dns_list_rules() -> serde_json::Value {
    serde_json::json!([{ "rule": "['.', 'cluster.local'].all(z, self.exists(x, x.zone == z))", "message": "must contain required zones '.' and 'cluster.local'" }])
}

/// Node-local DNS proxy settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalDns {
    /// `Preferred`, `Required` or `Disabled`.
    #[schemars(extend("enum" = ["Preferred", "Required", "Disabled"]))]
    pub mode: String,
    /// Overrides for pods on the VNet DNS policy.
    #[serde(rename = "vnetDNSOverrides")]
    #[schemars(length(max = 100))]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["zone"],
        "x-kubernetes-validations" = [
            { "rule": "['.', 'cluster.local'].all(z, self.exists(x, x.zone == z))", "message": "must contain required zones '.' and 'cluster.local'" },
            { "rule": "!self.exists(x, x.zone == '.' && x.forwardDestination == 'ClusterCoreDNS')", "message": "root zone '.' cannot be forwarded to ClusterCoreDNS from vnetDNSOverrides" },
            { "rule": "!self.exists(x, x.zone != '.' && !x.zone.endsWith('cluster.local') && x.forwardDestination == 'ClusterCoreDNS')", "message": "external domains cannot be forwarded to ClusterCoreDNS from vnetDNSOverrides" }
        ]
    ))]
    pub vnet_dns_overrides: Vec<DnsOverride>,
    /// Overrides for pods on the cluster DNS policy.
    #[serde(rename = "kubeDNSOverrides")]
    #[schemars(length(max = 100))]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["zone"],
        "x-kubernetes-validations" = dns_list_rules()
    ))]
    pub kube_dns_overrides: Vec<DnsOverride>,
}

/// One LocalDNS zone override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "!(self.zone.endsWith('cluster.local') && self.forwardDestination == 'VnetDNS')", "message": "'cluster.local' cannot be forwarded to VnetDNS" },
    { "rule": "!(self.serveStale == 'Verify' && self.protocol == 'ForceTCP')", "message": "serveStale Verify cannot be used with protocol ForceTCP" }
]))]
pub struct DnsOverride {
    /// DNS zone (`.` for the root).
    #[schemars(length(min = 1, max = 254))]
    #[schemars(regex(
        pattern = r"^(\.|[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?)$"
    ))]
    pub zone: String,
    /// `Error` or `Log`.
    #[schemars(extend("enum" = ["Error", "Log"]))]
    pub query_logging: String,
    /// `PreferUDP` or `ForceTCP`.
    #[schemars(extend("enum" = ["PreferUDP", "ForceTCP"]))]
    pub protocol: String,
    /// `ClusterCoreDNS` or `VnetDNS`.
    #[schemars(extend("enum" = ["ClusterCoreDNS", "VnetDNS"]))]
    pub forward_destination: String,
    /// `Sequential`, `RoundRobin` or `Random`.
    #[schemars(extend("enum" = ["Sequential", "RoundRobin", "Random"]))]
    pub forward_policy: String,
    /// Maximum concurrent queries.
    #[schemars(range(min = 0))]
    pub max_concurrent: i32,
    /// Cache TTL.
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    pub cache_duration: String,
    /// How long stale entries may be served.
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    pub serve_stale_duration: String,
    /// `Verify`, `Immediate` or `Disable`.
    #[schemars(extend("enum" = ["Verify", "Immediate", "Disable"]))]
    pub serve_stale: String,
}

/// Observed state of an AKSNodeClass.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AKSNodeClassStatus {
    /// Resolved node images with the requirements under which each applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<NodeImage>,
    /// Kubernetes version nodes are created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Whether LocalDNS is in effect.
    #[serde(
        default,
        rename = "localDNSState",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("enum" = ["Enabled", "Disabled"]))]
    pub local_dns_state: Option<String>,
    /// Ready, ImagesReady, KubernetesVersionReady, SubnetsReady, ValidationSucceeded …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A resolved node image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeImage {
    /// Image resource id.
    pub id: String,
    /// Requirements under which the image is used.
    pub requirements: Vec<NodeSelectorRequirement>,
}
