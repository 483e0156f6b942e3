//! Compact resource vectors for bin-packing: CPU in millicores, memory and storage in bytes,
//! a pod count and a small sorted map of extended resources.
//!
//! The scheduler compares CPU by `MilliValue()` and everything else by `Value()`, so a
//! [`Resources`] stores exactly those integers; converting from [`Quantity`] happens once, at the
//! edge, and the hot loops only add and compare `i64`s. All arithmetic saturates.

use std::collections::BTreeMap;
use std::fmt;

use crate::quantity::{Format, Quantity};

/// Resource name of CPU in Kubernetes resource lists.
pub const CPU: &str = "cpu";
/// Resource name of memory in Kubernetes resource lists.
pub const MEMORY: &str = "memory";
/// Resource name of the pod count in Kubernetes resource lists.
pub const PODS: &str = "pods";
/// Resource name of node-local scratch storage in Kubernetes resource lists.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// Resource name NVIDIA's device plugin advertises GPUs under.
pub const NVIDIA_GPU: &str = "nvidia.com/gpu";
/// Resource name AMD's device plugin advertises GPUs under.
pub const AMD_GPU: &str = "amd.com/gpu";

/// CPU in thousandths of a core; a unit newtype so CPU is never added to bytes by mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MilliCpu(pub i64);

impl MilliCpu {
    /// Whole cores, the unit catalogs use.
    pub fn from_cores(cores: i64) -> Self {
        MilliCpu(cores.saturating_mul(1000))
    }

    /// The value as a quantity, printed the way Kubernetes prints CPU (`1500m`, `2`).
    pub fn to_quantity(self) -> Quantity {
        Quantity::from_milli(self.0)
    }
}

impl fmt::Display for MilliCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_quantity().fmt(f)
    }
}

/// A byte count (memory, storage); a unit newtype so bytes are never added to CPU by mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub i64);

impl Bytes {
    /// `n` mebibytes, the unit EC2 and Karpenter's overhead formulas use.
    pub fn from_mib(n: i64) -> Self {
        Bytes(n.saturating_mul(1 << 20))
    }

    /// `n` gibibytes.
    pub fn from_gib(n: i64) -> Self {
        Bytes(n.saturating_mul(1 << 30))
    }

    /// The value as a quantity, printed the way Kubernetes prints memory (`1536Mi`).
    pub fn to_quantity(self) -> Quantity {
        Quantity::from_value(self.0, Format::BinarySi)
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_quantity().fmt(f)
    }
}

/// A resource vector: what a pod requests or what a node offers.
///
/// Extended resources (`nvidia.com/gpu`, `vpc.amazonaws.com/pod-eni` …) live in a sorted map so
/// iteration order, and therefore any output built from it, is deterministic. A resource that is
/// absent counts as zero.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Resources {
    /// CPU in millicores.
    pub cpu: MilliCpu,
    /// Memory in bytes.
    pub memory: Bytes,
    /// Number of pods.
    pub pods: i64,
    /// Node-local scratch storage in bytes.
    pub ephemeral_storage: Bytes,
    /// Any other resource, by name, in whole units.
    pub extended: BTreeMap<String, i64>,
}

/// The first resource of a request that does not fit into what is available; returned so that
/// "does not fit" messages can name the resource and both amounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// Resource name as Kubernetes spells it (`cpu`, `memory`, `nvidia.com/gpu` …).
    pub resource: String,
    /// Amount requested, in the resource's unit (millicores for CPU, bytes, counts).
    pub requested: i64,
    /// Amount available, in the same unit.
    pub available: i64,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: i64| match self.resource.as_str() {
            CPU => MilliCpu(v).to_string(),
            MEMORY | EPHEMERAL_STORAGE => Bytes(v).to_string(),
            _ => v.to_string(),
        };
        write!(
            f,
            "insufficient {}: requested {}, available {}",
            self.resource,
            show(self.requested),
            show(self.available)
        )
    }
}

impl Resources {
    /// The empty vector.
    pub fn new() -> Self {
        Self::default()
    }

    /// A vector with only CPU and memory set, the common shape of a container request.
    pub fn cpu_memory(cpu: MilliCpu, memory: Bytes) -> Self {
        Resources {
            cpu,
            memory,
            ..Self::default()
        }
    }

    /// Sets one resource from its Kubernetes name and quantity (CPU by `as_milli`, everything
    /// else by `as_value`), replacing any previous amount.
    pub fn set(&mut self, name: &str, quantity: &Quantity) {
        match name {
            CPU => self.cpu = MilliCpu(quantity.as_milli()),
            MEMORY => self.memory = Bytes(quantity.as_value()),
            PODS => self.pods = quantity.as_value(),
            EPHEMERAL_STORAGE => self.ephemeral_storage = Bytes(quantity.as_value()),
            other => {
                self.extended.insert(other.to_owned(), quantity.as_value());
            }
        }
    }

    /// Builds a vector from a Kubernetes resource list.
    pub fn from_quantities<'a>(list: impl IntoIterator<Item = (&'a str, &'a Quantity)>) -> Self {
        let mut out = Self::default();
        for (name, quantity) in list {
            out.set(name, quantity);
        }
        out
    }

    /// Renders the vector back to a Kubernetes resource list, omitting zero entries.
    pub fn to_quantities(&self) -> BTreeMap<String, Quantity> {
        let mut out = BTreeMap::new();
        let mut put = |name: &str, q: Quantity| {
            if !q.is_zero() {
                out.insert(name.to_owned(), q);
            }
        };
        put(CPU, self.cpu.to_quantity());
        put(MEMORY, self.memory.to_quantity());
        put(PODS, Quantity::from_value(self.pods, Format::DecimalSi));
        put(EPHEMERAL_STORAGE, self.ephemeral_storage.to_quantity());
        for (name, v) in &self.extended {
            put(name, Quantity::from_value(*v, Format::DecimalSi));
        }
        out
    }

    /// The amount of one extended resource (zero when absent).
    pub fn extended(&self, name: &str) -> i64 {
        self.extended.get(name).copied().unwrap_or(0)
    }

    /// True when every entry is zero.
    pub fn is_zero(&self) -> bool {
        self.cpu.0 == 0
            && self.memory.0 == 0
            && self.pods == 0
            && self.ephemeral_storage.0 == 0
            && self.extended.values().all(|v| *v == 0)
    }

    /// Component-wise sum, saturating.
    pub fn saturating_add(&self, other: &Resources) -> Resources {
        self.combine(other, i64::saturating_add)
    }

    /// Component-wise difference, saturating (may go negative: an over-committed node).
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        self.combine(other, i64::saturating_sub)
    }

    /// Component-wise maximum; the scheduler's rule for init containers.
    pub fn max(&self, other: &Resources) -> Resources {
        self.combine(other, i64::max)
    }

    /// Adds `other` into `self` in place, saturating; the accumulation step of bin-packing.
    pub fn add_assign(&mut self, other: &Resources) {
        self.cpu.0 = self.cpu.0.saturating_add(other.cpu.0);
        self.memory.0 = self.memory.0.saturating_add(other.memory.0);
        self.pods = self.pods.saturating_add(other.pods);
        self.ephemeral_storage.0 = self
            .ephemeral_storage
            .0
            .saturating_add(other.ephemeral_storage.0);
        for (name, v) in &other.extended {
            let slot = self.extended.entry(name.clone()).or_insert(0);
            *slot = slot.saturating_add(*v);
        }
    }

    /// Subtracts `other` from `self` in place, saturating.
    pub fn sub_assign(&mut self, other: &Resources) {
        *self = self.saturating_sub(other);
    }

    fn combine(&self, other: &Resources, op: fn(i64, i64) -> i64) -> Resources {
        let mut extended = self.extended.clone();
        for (name, v) in &other.extended {
            let slot = extended.entry(name.clone()).or_insert(0);
            *slot = op(*slot, *v);
        }
        for (name, v) in extended.iter_mut() {
            if !other.extended.contains_key(name) {
                *v = op(*v, 0);
            }
        }
        Resources {
            cpu: MilliCpu(op(self.cpu.0, other.cpu.0)),
            memory: Bytes(op(self.memory.0, other.memory.0)),
            pods: op(self.pods, other.pods),
            ephemeral_storage: Bytes(op(self.ephemeral_storage.0, other.ephemeral_storage.0)),
            extended,
        }
    }

    /// True when this request fits into `available` in every resource.
    pub fn fits(&self, available: &Resources) -> bool {
        self.shortfall(available).is_none()
    }

    /// The first resource (in the order cpu, memory, pods, ephemeral-storage, then extended names
    /// sorted) where this request exceeds `available`, or `None` when it fits.
    pub fn shortfall(&self, available: &Resources) -> Option<Shortfall> {
        let check = |name: &str, requested: i64, available: i64| {
            (requested > available).then(|| Shortfall {
                resource: name.to_owned(),
                requested,
                available,
            })
        };
        check(CPU, self.cpu.0, available.cpu.0)
            .or_else(|| check(MEMORY, self.memory.0, available.memory.0))
            .or_else(|| check(PODS, self.pods, available.pods))
            .or_else(|| {
                check(
                    EPHEMERAL_STORAGE,
                    self.ephemeral_storage.0,
                    available.ephemeral_storage.0,
                )
            })
            .or_else(|| {
                self.extended
                    .iter()
                    .find_map(|(name, v)| check(name, *v, available.extended(name)))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap()
    }

    #[test]
    fn set_uses_milli_for_cpu_and_value_for_the_rest() {
        let r = Resources::from_quantities([
            ("cpu", &q("250m")),
            ("memory", &q("1.5Gi")),
            ("pods", &q("110")),
            ("ephemeral-storage", &q("20Gi")),
            ("nvidia.com/gpu", &q("1")),
        ]);
        assert_eq!(r.cpu, MilliCpu(250));
        assert_eq!(r.memory, Bytes(1_610_612_736));
        assert_eq!(r.pods, 110);
        assert_eq!(r.ephemeral_storage, Bytes::from_gib(20));
        assert_eq!(r.extended(NVIDIA_GPU), 1);
        let back = r.to_quantities();
        assert_eq!(back["cpu"].to_string(), "250m");
        assert_eq!(back["memory"].to_string(), "1536Mi");
        assert_eq!(back["nvidia.com/gpu"].to_string(), "1");
    }

    #[test]
    fn fits_checks_every_resource_and_names_the_first_shortfall() {
        let node = Resources {
            cpu: MilliCpu(1930),
            memory: Bytes::from_mib(6903),
            pods: 29,
            ..Resources::default()
        };
        let small = Resources::cpu_memory(MilliCpu(1000), Bytes::from_mib(1024));
        assert!(small.fits(&node));
        let big = Resources::cpu_memory(MilliCpu(2000), Bytes::from_mib(1024));
        let short = big.shortfall(&node).unwrap();
        assert_eq!(short.resource, "cpu");
        assert_eq!(
            short.to_string(),
            "insufficient cpu: requested 2, available 1930m"
        );
        let mut gpu = small.clone();
        gpu.extended.insert(NVIDIA_GPU.into(), 1);
        assert_eq!(
            gpu.shortfall(&node).unwrap().to_string(),
            "insufficient nvidia.com/gpu: requested 1, available 0"
        );
    }

    #[test]
    fn arithmetic_saturates_and_keeps_extended_names() {
        let mut a = Resources::cpu_memory(MilliCpu(i64::MAX), Bytes(1));
        a.extended.insert("x".into(), 2);
        let b = Resources::cpu_memory(MilliCpu(1), Bytes(2));
        let sum = a.saturating_add(&b);
        assert_eq!(sum.cpu, MilliCpu(i64::MAX));
        assert_eq!(sum.memory, Bytes(3));
        assert_eq!(sum.extended("x"), 2);
        let diff = b.saturating_sub(&a);
        assert_eq!(diff.extended("x"), -2);
        let mut acc = Resources::new();
        acc.add_assign(&a);
        acc.sub_assign(&a);
        assert!(acc.is_zero());
        assert_eq!(a.max(&b).memory, Bytes(2));
    }
}
