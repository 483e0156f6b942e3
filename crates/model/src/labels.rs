//! Well-known node labels, their aliases, and the restricted-label rules.
//!
//! Sources (reference §2.5 and §8.1): core `pkg/apis/v1/labels.go`, AWS
//! `pkg/apis/v1/labels.go`, Azure `pkg/apis/v1beta1/labels.go` and the KWOK provider. A
//! well-known label is one that instance types and offerings define, so a pod or NodePool may
//! narrow it even when a NodePool does not mention it; any other key must be defined explicitly.
//! Upstream grows one global set in each provider's `init()`; here each provider's set is an
//! explicit value ([`LabelSet`]) that callers pass in.

use std::collections::BTreeSet;

use thiserror::Error;

/// Zone of a node (`topology.kubernetes.io/zone`).
pub const ZONE: &str = "topology.kubernetes.io/zone";
/// Region of a node.
pub const REGION: &str = "topology.kubernetes.io/region";
/// Instance type (VM size) of a node.
pub const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
/// CPU architecture of a node (`amd64`, `arm64`).
pub const ARCH: &str = "kubernetes.io/arch";
/// Operating system of a node (`linux`, `windows`).
pub const OS: &str = "kubernetes.io/os";
/// Windows build of a node, when it runs Windows.
pub const WINDOWS_BUILD: &str = "node.kubernetes.io/windows-build";
/// Host name; restricted because it differs for every node.
pub const HOSTNAME: &str = "kubernetes.io/hostname";
/// NodePool that owns a node.
pub const NODEPOOL: &str = "karpenter.sh/nodepool";
/// Capacity type of a node (`on-demand`, `spot`, `reserved`).
pub const CAPACITY_TYPE: &str = "karpenter.sh/capacity-type";

/// AWS zone id (`use1-az1`), stable across accounts unlike zone names.
pub const AWS_ZONE_ID: &str = "topology.k8s.aws/zone-id";
/// AWS instance category: letters before the generation (`m`, `c`, `inf`).
pub const AWS_INSTANCE_CATEGORY: &str = "karpenter.k8s.aws/instance-category";
/// AWS instance family: the part before the dot (`m5`).
pub const AWS_INSTANCE_FAMILY: &str = "karpenter.k8s.aws/instance-family";
/// AWS instance generation digit(s).
pub const AWS_INSTANCE_GENERATION: &str = "karpenter.k8s.aws/instance-generation";
/// AWS instance size: the part after the dot (`large`).
pub const AWS_INSTANCE_SIZE: &str = "karpenter.k8s.aws/instance-size";
/// AWS default vCPU count.
pub const AWS_INSTANCE_CPU: &str = "karpenter.k8s.aws/instance-cpu";
/// AWS processor manufacturer, lower-kebab (`intel`, `amd`, `aws`).
pub const AWS_INSTANCE_CPU_MANUFACTURER: &str = "karpenter.k8s.aws/instance-cpu-manufacturer";
/// AWS sustained clock speed in MHz.
pub const AWS_INSTANCE_CPU_SUSTAINED_CLOCK_SPEED_MHZ: &str =
    "karpenter.k8s.aws/instance-cpu-sustained-clock-speed-mhz";
/// AWS memory in MiB.
pub const AWS_INSTANCE_MEMORY: &str = "karpenter.k8s.aws/instance-memory";
/// AWS EBS bandwidth in Mbit/s (EBS-optimised types only).
pub const AWS_INSTANCE_EBS_BANDWIDTH: &str = "karpenter.k8s.aws/instance-ebs-bandwidth";
/// AWS network bandwidth in Mbit/s from Karpenter's table.
pub const AWS_INSTANCE_NETWORK_BANDWIDTH: &str = "karpenter.k8s.aws/instance-network-bandwidth";
/// AWS local NVMe instance store in GB.
pub const AWS_INSTANCE_LOCAL_NVME: &str = "karpenter.k8s.aws/instance-local-nvme";
/// AWS GPU model, lower-kebab.
pub const AWS_INSTANCE_GPU_NAME: &str = "karpenter.k8s.aws/instance-gpu-name";
/// AWS GPU manufacturer, lower-kebab.
pub const AWS_INSTANCE_GPU_MANUFACTURER: &str = "karpenter.k8s.aws/instance-gpu-manufacturer";
/// AWS GPU count.
pub const AWS_INSTANCE_GPU_COUNT: &str = "karpenter.k8s.aws/instance-gpu-count";
/// AWS memory per GPU in MiB.
pub const AWS_INSTANCE_GPU_MEMORY: &str = "karpenter.k8s.aws/instance-gpu-memory";
/// AWS accelerator (Inferentia/Trainium) model.
pub const AWS_INSTANCE_ACCELERATOR_NAME: &str = "karpenter.k8s.aws/instance-accelerator-name";
/// AWS accelerator manufacturer.
pub const AWS_INSTANCE_ACCELERATOR_MANUFACTURER: &str =
    "karpenter.k8s.aws/instance-accelerator-manufacturer";
/// AWS accelerator count.
pub const AWS_INSTANCE_ACCELERATOR_COUNT: &str = "karpenter.k8s.aws/instance-accelerator-count";
/// AWS hypervisor (`nitro`, `xen`, empty for bare metal).
pub const AWS_INSTANCE_HYPERVISOR: &str = "karpenter.k8s.aws/instance-hypervisor";
/// AWS encryption-in-transit support.
pub const AWS_INSTANCE_ENCRYPTION_IN_TRANSIT: &str =
    "karpenter.k8s.aws/instance-encryption-in-transit-supported";
/// AWS Nitro Enclaves support.
pub const AWS_NITRO_SANDBOX: &str = "karpenter.k8s.aws/nitro-sandbox";
/// AWS flex capability (`-flex` families).
pub const AWS_INSTANCE_CAPABILITY_FLEX: &str = "karpenter.k8s.aws/instance-capability-flex";
/// AWS tenancy (`default`, `dedicated`).
pub const AWS_INSTANCE_TENANCY: &str = "karpenter.k8s.aws/instance-tenancy";
/// AWS capacity reservation id.
pub const AWS_CAPACITY_RESERVATION_ID: &str = "karpenter.k8s.aws/capacity-reservation-id";
/// AWS capacity reservation type.
pub const AWS_CAPACITY_RESERVATION_TYPE: &str = "karpenter.k8s.aws/capacity-reservation-type";
/// AWS capacity reservation interruptibility.
pub const AWS_CAPACITY_RESERVATION_INTERRUPTIBLE: &str =
    "karpenter.k8s.aws/capacity-reservation-interruptible";
/// AWS placement group id.
pub const AWS_PLACEMENT_GROUP_ID: &str = "karpenter.k8s.aws/placement-group-id";
/// AWS placement group partition.
pub const AWS_PLACEMENT_GROUP_PARTITION: &str = "karpenter.k8s.aws/placement-group-partition";

/// Azure SKU name (`Standard_D4s_v5`).
pub const AZURE_SKU_NAME: &str = "karpenter.azure.com/sku-name";
/// Azure SKU family letter (`D`).
pub const AZURE_SKU_FAMILY: &str = "karpenter.azure.com/sku-family";
/// Azure SKU series (`Ds_v5`).
pub const AZURE_SKU_SERIES: &str = "karpenter.azure.com/sku-series";
/// Azure SKU version digit, `1` when the name has none.
pub const AZURE_SKU_VERSION: &str = "karpenter.azure.com/sku-version";
/// Azure vCPU count.
pub const AZURE_SKU_CPU: &str = "karpenter.azure.com/sku-cpu";
/// Azure memory in MiB.
pub const AZURE_SKU_MEMORY: &str = "karpenter.azure.com/sku-memory";
/// Azure GPU model.
pub const AZURE_SKU_GPU_NAME: &str = "karpenter.azure.com/sku-gpu-name";
/// Azure GPU manufacturer (`nvidia`, `amd`).
pub const AZURE_SKU_GPU_MANUFACTURER: &str = "karpenter.azure.com/sku-gpu-manufacturer";
/// Azure GPU count.
pub const AZURE_SKU_GPU_COUNT: &str = "karpenter.azure.com/sku-gpu-count";
/// Azure accelerated networking support.
pub const AZURE_SKU_NETWORKING_ACCELERATED: &str = "karpenter.azure.com/sku-networking-accelerated";
/// Azure premium storage support.
pub const AZURE_SKU_STORAGE_PREMIUM_CAPABLE: &str =
    "karpenter.azure.com/sku-storage-premium-capable";
/// Azure maximum ephemeral OS disk size.
pub const AZURE_SKU_STORAGE_EPHEMERALOS_MAXSIZE: &str =
    "karpenter.azure.com/sku-storage-ephemeralos-maxsize";
/// Azure ultra SSD support.
pub const AZURE_SKU_STORAGE_ULTRA_SSD: &str = "karpenter.azure.com/sku-storage-ultra-ssd";
/// Azure Hyper-V generation; restricted upstream.
pub const AZURE_SKU_HYPERV_GENERATION: &str = "karpenter.azure.com/sku-hyperv-generation";
/// Azure zonal or regional placement.
pub const AZURE_PLACEMENT_SCOPE: &str = "karpenter.azure.com/placement-scope";
/// AKS mirror of the vCPU count.
pub const AKS_SKU_CPU: &str = "kubernetes.azure.com/sku-cpu";
/// AKS mirror of the memory in MiB.
pub const AKS_SKU_MEMORY: &str = "kubernetes.azure.com/sku-memory";

/// KWOK instance size.
pub const KWOK_INSTANCE_SIZE: &str = "karpenter.kwok.sh/instance-size";
/// KWOK instance family (`c`, `s`, `m`).
pub const KWOK_INSTANCE_FAMILY: &str = "karpenter.kwok.sh/instance-family";
/// KWOK vCPU count.
pub const KWOK_INSTANCE_CPU: &str = "karpenter.kwok.sh/instance-cpu";
/// KWOK memory (`2Gi`).
pub const KWOK_INSTANCE_MEMORY: &str = "karpenter.kwok.sh/instance-memory";

/// Labels every provider defines (core `WellKnownLabels`), sorted.
pub const WELL_KNOWN_CORE: &[&str] = &[
    CAPACITY_TYPE,
    NODEPOOL,
    ARCH,
    OS,
    INSTANCE_TYPE,
    WINDOWS_BUILD,
    REGION,
    ZONE,
];

/// Labels the AWS provider adds to the core set.
pub const WELL_KNOWN_AWS: &[&str] = &[
    AWS_CAPACITY_RESERVATION_ID,
    AWS_CAPACITY_RESERVATION_TYPE,
    AWS_CAPACITY_RESERVATION_INTERRUPTIBLE,
    AWS_INSTANCE_HYPERVISOR,
    AWS_INSTANCE_ENCRYPTION_IN_TRANSIT,
    AWS_NITRO_SANDBOX,
    AWS_INSTANCE_CATEGORY,
    AWS_INSTANCE_CAPABILITY_FLEX,
    AWS_INSTANCE_FAMILY,
    AWS_INSTANCE_GENERATION,
    AWS_INSTANCE_SIZE,
    AWS_INSTANCE_LOCAL_NVME,
    AWS_INSTANCE_CPU,
    AWS_INSTANCE_CPU_MANUFACTURER,
    AWS_INSTANCE_CPU_SUSTAINED_CLOCK_SPEED_MHZ,
    AWS_INSTANCE_MEMORY,
    AWS_INSTANCE_EBS_BANDWIDTH,
    AWS_INSTANCE_NETWORK_BANDWIDTH,
    AWS_INSTANCE_GPU_NAME,
    AWS_INSTANCE_GPU_MANUFACTURER,
    AWS_INSTANCE_GPU_COUNT,
    AWS_INSTANCE_GPU_MEMORY,
    AWS_INSTANCE_ACCELERATOR_NAME,
    AWS_INSTANCE_ACCELERATOR_MANUFACTURER,
    AWS_INSTANCE_ACCELERATOR_COUNT,
    AWS_ZONE_ID,
    AWS_INSTANCE_TENANCY,
    AWS_PLACEMENT_GROUP_ID,
    AWS_PLACEMENT_GROUP_PARTITION,
];

/// Labels the Azure provider adds to the core set (`AzureWellKnownLabels`; the AKS-domain
/// mode/priority/cluster keys are left to the Azure provider crate).
pub const WELL_KNOWN_AZURE: &[&str] = &[
    AZURE_SKU_NAME,
    AZURE_SKU_FAMILY,
    AZURE_SKU_SERIES,
    AZURE_SKU_VERSION,
    AZURE_SKU_CPU,
    AZURE_SKU_MEMORY,
    AKS_SKU_CPU,
    AKS_SKU_MEMORY,
    AZURE_SKU_NETWORKING_ACCELERATED,
    AZURE_SKU_STORAGE_PREMIUM_CAPABLE,
    AZURE_SKU_STORAGE_EPHEMERALOS_MAXSIZE,
    AZURE_SKU_STORAGE_ULTRA_SSD,
    AZURE_SKU_GPU_NAME,
    AZURE_SKU_GPU_MANUFACTURER,
    AZURE_SKU_GPU_COUNT,
    AZURE_PLACEMENT_SCOPE,
];

/// Labels the KWOK provider adds to the core set.
pub const WELL_KNOWN_KWOK: &[&str] = &[
    KWOK_INSTANCE_SIZE,
    KWOK_INSTANCE_FAMILY,
    KWOK_INSTANCE_CPU,
    KWOK_INSTANCE_MEMORY,
];

/// Deprecated label keys and the well-known key each is rewritten to (core `NormalizedLabels`),
/// so that old pod specs keep matching new nodes.
pub const ALIASES: &[(&str, &str)] = &[
    ("beta.kubernetes.io/arch", ARCH),
    ("beta.kubernetes.io/instance-type", INSTANCE_TYPE),
    ("beta.kubernetes.io/os", OS),
    ("failure-domain.beta.kubernetes.io/region", REGION),
    ("failure-domain.beta.kubernetes.io/zone", ZONE),
];

/// The well-known key for `key`: the alias target when `key` is deprecated, else `key` itself.
pub fn normalize_key(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, target)| target)
}

/// The cloud provider whose label vocabulary applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    /// Amazon EC2 (`karpenter.k8s.aws`).
    Aws,
    /// Azure (`karpenter.azure.com`).
    Azure,
    /// The simulated KWOK provider (`karpenter.kwok.sh`).
    Kwok,
}

impl Provider {
    fn extra_labels(self) -> &'static [&'static str] {
        match self {
            Provider::Aws => WELL_KNOWN_AWS,
            Provider::Azure => WELL_KNOWN_AZURE,
            Provider::Kwok => WELL_KNOWN_KWOK,
        }
    }

    fn restricted_domains(self) -> &'static [&'static str] {
        match self {
            Provider::Aws => &["karpenter.sh", "karpenter.k8s.aws"],
            Provider::Azure => &["karpenter.sh", "karpenter.azure.com"],
            Provider::Kwok => &["karpenter.sh", "karpenter.kwok.sh"],
        }
    }

    fn restricted_labels(self) -> &'static [&'static str] {
        match self {
            Provider::Azure => &[HOSTNAME, AZURE_SKU_HYPERV_GENERATION],
            Provider::Aws | Provider::Kwok => &[HOSTNAME],
        }
    }
}

/// A sorted set of label keys, used as "labels that may be undefined" in compatibility checks.
///
/// Sorted so that anything iterating it (the typo hint) is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSet {
    keys: BTreeSet<String>,
}

impl LabelSet {
    /// The empty set: every label must be defined.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The core well-known labels only.
    pub fn core() -> Self {
        Self::from_keys(WELL_KNOWN_CORE.iter().copied())
    }

    /// The core labels plus one provider's.
    pub fn for_provider(provider: Provider) -> Self {
        Self::from_keys(
            WELL_KNOWN_CORE
                .iter()
                .chain(provider.extra_labels())
                .copied(),
        )
    }

    /// Every well-known label of every provider; the dictionary for typo hints.
    pub fn all() -> Self {
        Self::from_keys(
            WELL_KNOWN_CORE
                .iter()
                .chain(WELL_KNOWN_AWS)
                .chain(WELL_KNOWN_AZURE)
                .chain(WELL_KNOWN_KWOK)
                .copied(),
        )
    }

    /// A set of arbitrary keys (for example, a KWOK catalog's offering labels).
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        LabelSet {
            keys: keys.into_iter().map(str::to_owned).collect(),
        }
    }

    /// Adds one key.
    pub fn insert(&mut self, key: &str) {
        self.keys.insert(key.to_owned());
    }

    /// True when `key` is in the set.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// The keys in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(String::as_str)
    }
}

/// A label a user may not set in a NodePool or require in a template.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestrictedLabel {
    /// The key is in a domain the provisioner owns (`karpenter.sh`, a provider's group).
    #[error(
        "label {key:?} is not allowed because domain {domain:?} is reserved for the provisioner; \
         use a well-known label or a custom label outside that domain"
    )]
    RestrictedDomain {
        /// The offending key.
        key: String,
        /// The reserved domain it falls under.
        domain: String,
    },
    /// The key itself is reserved (`kubernetes.io/hostname`).
    #[error("label {key:?} is not allowed because it would interfere with provisioning")]
    RestrictedKey {
        /// The offending key.
        key: String,
    },
}

/// The domain of a label key: the part before `/`, or empty when there is none.
pub fn label_domain(key: &str) -> &str {
    key.split_once('/').map_or("", |(domain, _)| domain)
}

/// Checks core `IsRestrictedLabel`: well-known keys are always allowed; otherwise a key in a
/// restricted domain (or a sub-domain of one) or a restricted key is refused.
pub fn check_restricted(key: &str, provider: Provider) -> Result<(), RestrictedLabel> {
    if WELL_KNOWN_CORE.contains(&key) || provider.extra_labels().contains(&key) {
        return Ok(());
    }
    let domain = label_domain(key);
    for restricted in provider.restricted_domains() {
        let sub = domain
            .strip_suffix(restricted)
            .is_some_and(|head| head.ends_with('.'));
        if domain == *restricted || sub {
            return Err(RestrictedLabel::RestrictedDomain {
                key: key.to_owned(),
                domain: (*restricted).to_owned(),
            });
        }
    }
    if provider.restricted_labels().contains(&key) {
        return Err(RestrictedLabel::RestrictedKey {
            key: key.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_normalize_to_stable_keys() {
        assert_eq!(
            normalize_key("failure-domain.beta.kubernetes.io/zone"),
            ZONE
        );
        assert_eq!(normalize_key("beta.kubernetes.io/arch"), ARCH);
        assert_eq!(normalize_key("example.com/team"), "example.com/team");
    }

    #[test]
    fn restricted_domains_and_keys_are_refused() {
        assert!(check_restricted(CAPACITY_TYPE, Provider::Aws).is_ok());
        assert!(check_restricted(AWS_INSTANCE_FAMILY, Provider::Aws).is_ok());
        assert!(check_restricted("example.com/team", Provider::Aws).is_ok());
        let err = check_restricted("karpenter.sh/custom", Provider::Aws).unwrap_err();
        assert_eq!(
            err,
            RestrictedLabel::RestrictedDomain {
                key: "karpenter.sh/custom".into(),
                domain: "karpenter.sh".into()
            }
        );
        assert!(check_restricted("sub.karpenter.sh/x", Provider::Kwok).is_err());
        assert!(check_restricted("notkarpenter.sh/x", Provider::Kwok).is_ok());
        assert!(check_restricted("karpenter.k8s.aws/custom", Provider::Aws).is_err());
        assert!(check_restricted("karpenter.k8s.aws/custom", Provider::Azure).is_ok());
        assert!(check_restricted(AWS_INSTANCE_FAMILY, Provider::Azure).is_ok());
        assert!(check_restricted(AZURE_SKU_HYPERV_GENERATION, Provider::Azure).is_err());
        assert_eq!(
            check_restricted(HOSTNAME, Provider::Aws),
            Err(RestrictedLabel::RestrictedKey {
                key: HOSTNAME.into()
            })
        );
    }

    #[test]
    fn label_sets_are_sorted_unions() {
        let aws = LabelSet::for_provider(Provider::Aws);
        assert!(aws.contains(ZONE) && aws.contains(AWS_INSTANCE_GPU_COUNT));
        assert!(!aws.contains(AZURE_SKU_NAME));
        let all = LabelSet::all();
        let keys: Vec<_> = all.iter().collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        assert_eq!(
            keys.len(),
            WELL_KNOWN_CORE.len()
                + WELL_KNOWN_AWS.len()
                + WELL_KNOWN_AZURE.len()
                + WELL_KNOWN_KWOK.len()
        );
    }
}
