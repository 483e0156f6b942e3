//! Node capacity and overhead: what an instance type offers and how much of it pods can use.
//!
//! ```text
//!   allocatable = capacity − kube-reserved − system-reserved − eviction threshold
//! ```
//!
//! The AWS formulas follow `aws/karpenter-provider-aws` `pkg/providers/instancetype/types.go`
//! (reference §8.2), in integer arithmetic:
//!
//! - max pods (ENI-limited, AL2/AL2023/Bottlerocket) = usable ENIs × (IPv4 per ENI − 1) + 2, and
//!   0 when no ENI is usable;
//! - kube-reserved memory = 11 MiB × max pods + 255 MiB; kube-reserved ephemeral storage = 1 GiB;
//! - kube-reserved CPU = 6% of the first core + 1% of the second + 0.5% of cores 3–4 + 0.25% of
//!   the rest, each tier truncated to whole millicores as upstream's `int64(float)` does;
//! - eviction threshold: memory 100 MiB, ephemeral storage 10% of the root volume, rounded up;
//! - memory capacity = EC2 MiB (− 64 MiB on arm64) − ⌈MiB × VM overhead⌉, overhead 7.5% by default.
//!
//! The Azure formulas follow `Azure/karpenter-provider-azure`
//! `pkg/providers/instancetype/instancetype.go`: bracketed kube-reserved CPU and memory, a
//! 750 MiB eviction threshold, memory capacity truncated to whole GiB minus the VM overhead.
//! KWOK uses its fixed 100m / 10 MiB kube-reserved.

use crate::resources::{Bytes, MilliCpu, Resources};

/// A fraction in basis points (1/10 000), so overhead percentages stay exact integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BasisPoints(pub u32);

impl BasisPoints {
    /// Karpenter's default `VM_MEMORY_OVERHEAD_PERCENT` (0.075), used by AWS and Azure.
    pub const DEFAULT_VM_MEMORY_OVERHEAD: BasisPoints = BasisPoints(750);

    /// ⌈amount × self⌉ for a non-negative amount.
    pub fn of_ceil(self, amount: i64) -> i64 {
        let prod = i128::from(amount) * i128::from(self.0);
        let q = prod / 10_000 + i128::from(prod % 10_000 > 0);
        i64::try_from(q).unwrap_or(i64::MAX)
    }
}

/// The resources an instance type holds back from pods.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overhead {
    /// Reserved for the kubelet and container runtime.
    pub kube_reserved: Resources,
    /// Reserved for the operating system (none by default).
    pub system_reserved: Resources,
    /// Kept free so the kubelet can evict before the node runs out.
    pub eviction_threshold: Resources,
}

impl Overhead {
    /// The sum of all three parts.
    pub fn total(&self) -> Resources {
        self.kube_reserved
            .saturating_add(&self.system_reserved)
            .saturating_add(&self.eviction_threshold)
    }

    /// `capacity − kube-reserved − system-reserved − eviction threshold`, per resource.
    pub fn allocatable(&self, capacity: &Resources) -> Resources {
        capacity.saturating_sub(&self.total())
    }
}

/// AWS formulas (reference §8.2).
pub mod aws {
    use super::*;

    /// Pods the VPC CNI can address: `usable ENIs × (IPv4 per ENI − 1) + 2`, where usable ENIs
    /// are the default card's ENIs minus `reserved_enis`; 0 when none is usable.
    pub fn eni_limited_pods(
        default_card_max_enis: u32,
        ipv4_per_eni: u32,
        reserved_enis: u32,
    ) -> i64 {
        let usable = i64::from(default_card_max_enis.saturating_sub(reserved_enis));
        if usable == 0 {
            return 0;
        }
        usable * (i64::from(ipv4_per_eni) - 1).max(0) + 2
    }

    /// kube-reserved CPU for `cpu` of capacity (tiers of 6%, 1%, 0.5%, 0.25%).
    pub fn kube_reserved_cpu(cpu: MilliCpu) -> MilliCpu {
        // (start, end, basis points)
        const TIERS: [(i64, i64, i64); 4] = [
            (0, 1000, 600),
            (1000, 2000, 100),
            (2000, 4000, 50),
            (4000, 1 << 31, 25),
        ];
        let mut total = 0;
        for (start, end, bp) in TIERS {
            if cpu.0 >= start {
                let span = cpu.0.min(end) - start;
                total += span * bp / 10_000;
            }
        }
        MilliCpu(total)
    }

    /// kube-reserved memory: `11 MiB × pods + 255 MiB`.
    pub fn kube_reserved_memory(max_pods: i64) -> Bytes {
        Bytes::from_mib(max_pods.saturating_mul(11).saturating_add(255))
    }

    /// Memory capacity: EC2 MiB, minus 64 MiB on arm64 (Graviton CMA), minus ⌈MiB × overhead⌉.
    pub fn memory_capacity(memory_mib: i64, arm64: bool, vm_overhead: BasisPoints) -> Bytes {
        let mib = if arm64 { memory_mib - 64 } else { memory_mib };
        Bytes::from_mib(mib - vm_overhead.of_ceil(mib))
    }

    /// Eviction threshold: 100 MiB of memory and ⌈10%⌉ of the root volume.
    pub fn eviction_threshold(ephemeral_storage: Bytes) -> Resources {
        Resources {
            memory: Bytes::from_mib(100),
            ephemeral_storage: Bytes(BasisPoints(1000).of_ceil(ephemeral_storage.0)),
            ..Resources::default()
        }
    }

    /// The full AWS overhead for a type with `cpu` cores of capacity, `max_pods` from
    /// [`eni_limited_pods`] and the given root volume.
    pub fn overhead(cpu: MilliCpu, max_pods: i64, ephemeral_storage: Bytes) -> Overhead {
        Overhead {
            kube_reserved: Resources {
                cpu: kube_reserved_cpu(cpu),
                memory: kube_reserved_memory(max_pods),
                ephemeral_storage: Bytes::from_gib(1),
                ..Resources::default()
            },
            system_reserved: Resources::default(),
            eviction_threshold: eviction_threshold(ephemeral_storage),
        }
    }

    /// Default root volume (EBS gp3) when the node class sets none: 20 GiB.
    pub const DEFAULT_EPHEMERAL_STORAGE: Bytes = Bytes(20 << 30);
}

/// Azure formulas (`KubeReservedResources`, `EvictionThreshold`).
pub mod azure {
    use super::*;

    /// Karpenter-Azure's default max pods (Azure CNI overlay).
    pub const DEFAULT_MAX_PODS: i64 = 250;
    /// Default OS disk size: 128 GB (decimal, as `osDiskSizeGB`).
    pub const DEFAULT_EPHEMERAL_STORAGE: Bytes = Bytes(128_000_000_000);

    /// Applies progressive brackets `(upper bound, basis points)` to `amount` (same unit).
    fn brackets(amount: i64, table: &[(i64, i64)]) -> i64 {
        let mut lower = 0;
        let mut tax = 0;
        for &(upper, bp) in table {
            if amount <= lower {
                break;
            }
            let top = amount.min(upper);
            tax += (top - lower) * bp;
            lower = upper;
        }
        tax
    }

    /// kube-reserved CPU: 6% of the first core, 4% of the second, 2% of cores 3–4, 1% above.
    pub fn kube_reserved_cpu(vcpus: i64) -> MilliCpu {
        let table = [(1, 600), (2, 400), (4, 200), (i64::MAX, 100)];
        // vCPU × bp / 10 000 cores = vCPU × bp / 10 millicores.
        MilliCpu(brackets(vcpus, &table) / 10)
    }

    /// kube-reserved memory: 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% up
    /// to 128 GiB, 2% above; truncated to whole MiB as upstream does.
    pub fn kube_reserved_memory(memory_gib: i64) -> Bytes {
        let table = [
            (4, 2500),
            (8, 2000),
            (16, 1000),
            (128, 600),
            (i64::MAX, 200),
        ];
        // GiB × bp / 10 000 × 1024 MiB.
        Bytes::from_mib(brackets(memory_gib, &table) * 1024 / 10_000)
    }

    /// Memory capacity: whole GiB minus ⌈bytes × overhead⌉.
    pub fn memory_capacity(memory_gib: i64, vm_overhead: BasisPoints) -> Bytes {
        let bytes = Bytes::from_gib(memory_gib).0;
        Bytes(bytes - vm_overhead.of_ceil(bytes))
    }

    /// The full Azure overhead; eviction threshold is 750 MiB of memory.
    pub fn overhead(vcpus: i64, memory_gib: i64) -> Overhead {
        Overhead {
            kube_reserved: Resources {
                cpu: kube_reserved_cpu(vcpus),
                memory: kube_reserved_memory(memory_gib),
                ..Resources::default()
            },
            system_reserved: Resources::default(),
            eviction_threshold: Resources {
                memory: Bytes::from_mib(750),
                ..Resources::default()
            },
        }
    }
}

/// KWOK's fixed overhead (reference §9.1).
pub mod kwok {
    use super::*;

    /// kube-reserved 100m CPU and 10 MiB memory; nothing else.
    pub fn overhead() -> Overhead {
        Overhead {
            kube_reserved: Resources::cpu_memory(MilliCpu(100), Bytes::from_mib(10)),
            ..Overhead::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eni_limited_pods_worked_examples() {
        // m5.large: 3 ENIs × (10 − 1) + 2.
        assert_eq!(aws::eni_limited_pods(3, 10, 0), 29);
        // t3.medium: 3 ENIs × (6 − 1) + 2.
        assert_eq!(aws::eni_limited_pods(3, 6, 0), 17);
        // m5.24xlarge: 15 × 49 + 2.
        assert_eq!(aws::eni_limited_pods(15, 50, 0), 737);
        assert_eq!(aws::eni_limited_pods(3, 10, 1), 20);
        assert_eq!(aws::eni_limited_pods(1, 10, 1), 0);
    }

    #[test]
    fn kube_reserved_cpu_tiers_match_reference() {
        let at = |cores| aws::kube_reserved_cpu(MilliCpu::from_cores(cores));
        assert_eq!(at(1), MilliCpu(60));
        assert_eq!(at(2), MilliCpu(70));
        assert_eq!(at(4), MilliCpu(80));
        assert_eq!(at(8), MilliCpu(90));
        assert_eq!(at(96), MilliCpu(310));
        // 5 cores: 0.25% of 1000m is 2.5m, truncated.
        assert_eq!(at(5), MilliCpu(82));
    }

    #[test]
    fn m5_large_allocatable() {
        let pods = aws::eni_limited_pods(3, 10, 0);
        let capacity = Resources {
            cpu: MilliCpu::from_cores(2),
            memory: aws::memory_capacity(8192, false, BasisPoints::DEFAULT_VM_MEMORY_OVERHEAD),
            pods,
            ephemeral_storage: aws::DEFAULT_EPHEMERAL_STORAGE,
            ..Resources::default()
        };
        // 8192 − ⌈614.4⌉ = 7577 MiB.
        assert_eq!(capacity.memory, Bytes::from_mib(7577));
        let alloc =
            aws::overhead(capacity.cpu, pods, capacity.ephemeral_storage).allocatable(&capacity);
        assert_eq!(alloc.cpu, MilliCpu(1930));
        // 7577 − (11 × 29 + 255 = 574) − 100 = 6903 MiB.
        assert_eq!(alloc.memory, Bytes::from_mib(6903));
        assert_eq!(alloc.pods, 29);
        // 20 GiB − 1 GiB − ⌈2 GiB⌉.
        assert_eq!(
            alloc.ephemeral_storage,
            Bytes(20 * (1 << 30) - (1 << 30) - 2_147_483_648)
        );
    }

    #[test]
    fn arm64_loses_64_mib_before_overhead() {
        // 4096 − 64 = 4032; ⌈4032 × 0.075⌉ = ⌈302.4⌉ = 303.
        assert_eq!(
            aws::memory_capacity(4096, true, BasisPoints::DEFAULT_VM_MEMORY_OVERHEAD),
            Bytes::from_mib(3729)
        );
        assert_eq!(
            aws::memory_capacity(4096, true, BasisPoints(0)),
            Bytes::from_mib(4032)
        );
    }

    #[test]
    fn azure_brackets() {
        assert_eq!(azure::kube_reserved_cpu(1), MilliCpu(60));
        assert_eq!(azure::kube_reserved_cpu(2), MilliCpu(100));
        assert_eq!(azure::kube_reserved_cpu(4), MilliCpu(140));
        assert_eq!(azure::kube_reserved_cpu(8), MilliCpu(180));
        // 16 GiB: 4×25% + 4×20% + 8×10% = 2.6 GiB = 2662.4 MiB → 2662.
        assert_eq!(azure::kube_reserved_memory(16), Bytes::from_mib(2662));
        assert_eq!(azure::kube_reserved_memory(4), Bytes::from_mib(1024));
        let cap = azure::memory_capacity(16, BasisPoints::DEFAULT_VM_MEMORY_OVERHEAD);
        assert_eq!(cap, Bytes(17_179_869_184 - 1_288_490_189));
        assert_eq!(
            azure::overhead(4, 16).eviction_threshold.memory,
            Bytes::from_mib(750)
        );
    }

    #[test]
    fn kwok_overhead_is_fixed() {
        let o = kwok::overhead();
        assert_eq!(
            o.total(),
            Resources::cpu_memory(MilliCpu(100), Bytes::from_mib(10))
        );
    }
}
