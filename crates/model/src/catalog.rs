//! Instance types, their offerings and prices, and the catalogs Tandem ships.
//!
//! An [`InstanceType`] carries the [`Requirements`] a node of that type satisfies (the labels
//! upstream providers compute), its capacity, its overhead and therefore its allocatable
//! resources, and a list of [`Offering`]s (zone × capacity type, with a price). The provisioning
//! core intersects pod and NodePool requirements with `requirements()` and picks offerings by
//! price.
//!
//! Catalogs:
//!
//! - [`Catalog::aws_us_east_1`]: the moto DescribeInstanceTypes dump and Karpenter's static
//!   us-east-1 on-demand prices (`data/aws/`, see `data/README.md`). Labels follow
//!   `computeRequirements` in `aws/karpenter-provider-aws` `pkg/providers/instancetype/types.go`;
//!   absent optional labels are `DoesNotExist`, as upstream. Not in the data, so not labelled:
//!   `instance-encryption-in-transit-supported` and `nitro-sandbox`. `instance-local-nvme` is set
//!   for SSD instance storage (the data has no NVMe flag). Types without a price, or not offered in
//!   the region, have no offerings.
//! - [`Catalog::azure_eastus`]: Karpenter-Azure's SKU list with cluster-autoscaler's specs and the
//!   static eastus prices (`data/azure/`). SKUs without specs, SKUs AKS or Karpenter-Azure
//!   restrict, and SKUs without a (non-zero) price get no instance type or no offerings. No zone
//!   data exists, so every priced SKU is offered in zones `eastus-1`…`eastus-3`, Azure's zone
//!   label form.
//! - [`Catalog::kwok`]: the 144 synthetic types of Karpenter's KWOK provider (reference §9.1).
//! - [`Catalog::benchmark`]: the 400 `fake-it-N` types of Karpenter's scheduling benchmark
//!   (DESIGN.md §5).
//!
//! # Spot-price model
//!
//! No data source has real spot prices (moto returns a constant, Karpenter-Azure seeds spot with
//! the on-demand price). Until a provider supplies them, AWS and Azure spot offerings are priced
//! deterministically as
//!
//! ```text
//!   spot = on-demand × (300 + h(family) mod 81 + h(family "/" zone) mod 21) / 1000
//! ```
//!
//! where `h` is 64-bit FNV-1a and `family` is the AWS instance family (`m5`) or the Azure series
//! (`Ds_v5`). The discount is therefore 60–70% (spot = 0.30–0.40 × on-demand), fixed per family
//! with a small per-zone spread so zone choice matters, and identical on every run. KWOK and the
//! benchmark keep their upstream rules (0.7 × on-demand; same price as on-demand).
//!
//! Prices are exact: [`UsdPerHour`] counts pico-dollars in an `i64`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::allocatable::{self, BasisPoints, Overhead};
use crate::labels::{self, LabelSet, Provider};
use crate::requirements::{Requirement, Requirements};
use crate::resources::{self, Bytes, MilliCpu, Resources};

/// The embedded AWS instance-type table (`data/aws/instance-types.csv`).
pub const AWS_INSTANCE_TYPES_CSV: &str = include_str!("../../../data/aws/instance-types.csv");
/// The embedded AWS us-east-1 on-demand prices.
pub const AWS_PRICES_US_EAST_1_CSV: &str =
    include_str!("../../../data/aws/on-demand-prices-us-east-1.csv");
/// The embedded Azure SKU table (`data/azure/skus.csv`).
pub const AZURE_SKUS_CSV: &str = include_str!("../../../data/azure/skus.csv");
/// The embedded Azure eastus pay-as-you-go prices.
pub const AZURE_PRICES_EASTUS_CSV: &str = include_str!("../../../data/azure/prices-eastus.csv");

const PICOS_PER_USD: i64 = 1_000_000_000_000;

/// A price in US dollars per instance-hour, held exactly as pico-dollars so that sums and
/// comparisons of prices are associative and deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UsdPerHour(i64);

impl UsdPerHour {
    /// A price from pico-dollars per hour.
    pub const fn from_picos(picos: i64) -> Self {
        UsdPerHour(picos)
    }

    /// The price in pico-dollars per hour.
    pub const fn as_picos(self) -> i64 {
        self.0
    }

    /// The price as a float, for reports and charts only.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / PICOS_PER_USD as f64
    }

    /// `self × num / den`, rounded half up to the pico-dollar; how discounts are applied.
    pub fn scale(self, num: i64, den: i64) -> Self {
        if den == 0 {
            return self;
        }
        let prod = i128::from(self.0) * i128::from(num);
        let den = i128::from(den);
        let q = (2 * prod + den) / (2 * den);
        UsdPerHour(i64::try_from(q).unwrap_or(i64::MAX))
    }

    /// The sum, saturating.
    pub fn saturating_add(self, other: UsdPerHour) -> Self {
        UsdPerHour(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for UsdPerHour {
    /// Plain decimal dollars without trailing zeros (`0.096`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / PICOS_PER_USD as u64;
        let frac = abs % PICOS_PER_USD as u64;
        if frac == 0 {
            return write!(f, "{sign}{whole}");
        }
        let digits = format!("{frac:012}");
        write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// Why a price string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid price {text:?}: expected a plain decimal number with at most 12 decimals")]
pub struct PriceError {
    /// The text as written.
    pub text: String,
}

impl FromStr for UsdPerHour {
    type Err = PriceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_fixed(s, 12)
            .map(UsdPerHour)
            .ok_or_else(|| PriceError { text: s.to_owned() })
    }
}

/// Parses a plain decimal (`12`, `0.5`, `-1.25`) into an integer scaled by 10^`decimals`,
/// rounding half up beyond that precision; `None` on anything else or on overflow.
fn parse_fixed(s: &str, decimals: u32) -> Option<i64> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: i64 = 0;
    for b in int.bytes() {
        value = value.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    let mut frac_bytes = frac.bytes();
    for _ in 0..decimals {
        let d = frac_bytes.next().map_or(0, |b| i64::from(b - b'0'));
        value = value.checked_mul(10)?.checked_add(d)?;
    }
    if frac_bytes.next().is_some_and(|b| b >= b'5') {
        value = value.checked_add(1)?;
    }
    Some(if negative { -value } else { value })
}

/// How a node is bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CapacityType {
    /// Pay-as-you-go.
    OnDemand,
    /// Interruptible, discounted.
    Spot,
    /// Pre-purchased capacity reservation.
    Reserved,
}

impl CapacityType {
    /// The `karpenter.sh/capacity-type` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityType::OnDemand => "on-demand",
            CapacityType::Spot => "spot",
            CapacityType::Reserved => "reserved",
        }
    }
}

impl fmt::Display for CapacityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One way to buy an instance type: a zone, a capacity type and a price.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Offering {
    /// `topology.kubernetes.io/zone` value.
    pub zone: String,
    /// Provider zone id (`topology.k8s.aws/zone-id`), where the provider has one.
    pub zone_id: Option<String>,
    /// Capacity type.
    pub capacity_type: CapacityType,
    /// Price per hour.
    pub price: UsdPerHour,
    /// False when the provider reports no capacity (for example after an ICE).
    pub available: bool,
}

impl Offering {
    /// True when a node from this offering satisfies `requirements` on zone, zone id and
    /// capacity type (an unconstrained key allows anything).
    pub fn matches(&self, requirements: &Requirements) -> bool {
        requirements.allows(labels::ZONE, &self.zone)
            && requirements.allows(labels::CAPACITY_TYPE, self.capacity_type.as_str())
            && self
                .zone_id
                .as_deref()
                .is_none_or(|id| requirements.allows(labels::AWS_ZONE_ID, id))
    }
}

/// An instance type (VM size) with everything the scheduler needs to place pods on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceType {
    name: String,
    requirements: Requirements,
    offerings: Vec<Offering>,
    capacity: Resources,
    overhead: Overhead,
    allocatable: Resources,
}

impl InstanceType {
    /// Assembles an instance type; `allocatable` is computed from capacity and overhead, and
    /// offerings are sorted by (price, zone, capacity type) so "first" means "cheapest".
    pub fn new(
        name: &str,
        requirements: Requirements,
        mut offerings: Vec<Offering>,
        capacity: Resources,
        overhead: Overhead,
    ) -> Self {
        offerings.sort_by(|a, b| {
            (a.price, &a.zone, a.capacity_type).cmp(&(b.price, &b.zone, b.capacity_type))
        });
        let allocatable = overhead.allocatable(&capacity);
        InstanceType {
            name: name.to_owned(),
            requirements,
            offerings,
            capacity,
            overhead,
            allocatable,
        }
    }

    /// The type's name (`m5.large`, `Standard_D4s_v5`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The requirements a node of this type satisfies.
    pub fn requirements(&self) -> &Requirements {
        &self.requirements
    }

    /// Offerings, cheapest first.
    pub fn offerings(&self) -> &[Offering] {
        &self.offerings
    }

    /// Raw capacity.
    pub fn capacity(&self) -> &Resources {
        &self.capacity
    }

    /// Reserved resources.
    pub fn overhead(&self) -> &Overhead {
        &self.overhead
    }

    /// What pods can use: capacity minus overhead.
    pub fn allocatable(&self) -> &Resources {
        &self.allocatable
    }

    /// The cheapest available offering that satisfies `requirements`.
    pub fn cheapest_offering(&self, requirements: &Requirements) -> Option<&Offering> {
        self.offerings
            .iter()
            .find(|o| o.available && o.matches(requirements))
    }
}

/// Why a CSV catalog could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CatalogError {
    /// The file has no header row.
    #[error("{file}: no header row")]
    NoHeader {
        /// File name.
        file: String,
    },
    /// A column the loader needs is missing from the header.
    #[error("{file}: missing column {column:?}")]
    MissingColumn {
        /// File name.
        file: String,
        /// Column name.
        column: String,
    },
    /// A row has a different number of fields than the header.
    #[error("{file} line {line}: expected {expected} fields, found {found}")]
    FieldCount {
        /// File name.
        file: String,
        /// 1-based line number.
        line: usize,
        /// Header field count.
        expected: usize,
        /// Row field count.
        found: usize,
    },
    /// A field does not parse.
    #[error("{file} line {line}: column {column:?} has invalid value {value:?}")]
    InvalidValue {
        /// File name.
        file: String,
        /// 1-based line number.
        line: usize,
        /// Column name.
        column: String,
        /// The text found.
        value: String,
    },
}

/// A parsed CSV text: header plus rows, split on commas (the data holds no quoted fields).
struct Table<'a> {
    file: &'a str,
    columns: BTreeMap<&'a str, usize>,
    rows: Vec<(usize, Vec<&'a str>)>,
}

/// One row with access by column name.
struct Row<'t, 'a> {
    table: &'t Table<'a>,
    line: usize,
    fields: &'t [&'a str],
}

impl<'a> Table<'a> {
    fn parse(file: &'a str, text: &'a str) -> Result<Self, CatalogError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or_else(|| CatalogError::NoHeader {
            file: file.to_owned(),
        })?;
        let columns: BTreeMap<&str, usize> = header
            .split(',')
            .enumerate()
            .map(|(i, c)| (c.trim(), i))
            .collect();
        let width = header.split(',').count();
        let mut rows = Vec::new();
        for (index, line) in lines {
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != width {
                return Err(CatalogError::FieldCount {
                    file: file.to_owned(),
                    line: index + 1,
                    expected: width,
                    found: fields.len(),
                });
            }
            rows.push((index + 1, fields));
        }
        Ok(Table {
            file,
            columns,
            rows,
        })
    }

    fn require(&self, names: &[&str]) -> Result<(), CatalogError> {
        match names.iter().find(|n| !self.columns.contains_key(*n)) {
            Some(missing) => Err(CatalogError::MissingColumn {
                file: self.file.to_owned(),
                column: (*missing).to_owned(),
            }),
            None => Ok(()),
        }
    }

    fn rows(&self) -> impl Iterator<Item = Row<'_, 'a>> {
        self.rows.iter().map(move |(line, fields)| Row {
            table: self,
            line: *line,
            fields,
        })
    }
}

impl<'a> Row<'_, 'a> {
    fn get(&self, column: &str) -> &'a str {
        self.table
            .columns
            .get(column)
            .and_then(|&i| self.fields.get(i))
            .copied()
            .unwrap_or("")
    }

    fn invalid(&self, column: &str) -> CatalogError {
        CatalogError::InvalidValue {
            file: self.table.file.to_owned(),
            line: self.line,
            column: column.to_owned(),
            value: self.get(column).to_owned(),
        }
    }

    fn int(&self, column: &str) -> Result<i64, CatalogError> {
        self.get(column).parse().map_err(|_| self.invalid(column))
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, CatalogError> {
        if self.get(column).is_empty() {
            Ok(None)
        } else {
            self.int(column).map(Some)
        }
    }

    fn fixed(&self, column: &str, decimals: u32) -> Result<i64, CatalogError> {
        parse_fixed(self.get(column), decimals).ok_or_else(|| self.invalid(column))
    }

    fn list(&self, column: &str) -> Vec<&'a str> {
        self.get(column)
            .split(';')
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Parses a `name,price` file into a map, skipping zero prices (treated as unknown).
fn parse_prices(file: &str, text: &str) -> Result<BTreeMap<String, UsdPerHour>, CatalogError> {
    let table = Table::parse(file, text)?;
    let (name_col, price_col) = match table.columns.iter().find(|(_, i)| **i == 1) {
        Some((price, _)) => (
            table
                .columns
                .iter()
                .find(|(_, i)| **i == 0)
                .map_or("", |(n, _)| *n),
            *price,
        ),
        None => {
            return Err(CatalogError::MissingColumn {
                file: file.to_owned(),
                column: "usd_per_hour".to_owned(),
            });
        }
    };
    let mut out = BTreeMap::new();
    for row in table.rows() {
        let price = UsdPerHour(row.fixed(price_col, 12)?);
        if price.0 > 0 {
            out.insert(row.get(name_col).to_owned(), price);
        }
    }
    Ok(out)
}

/// 64-bit FNV-1a, a fixed hash so the spot model is identical on every platform and run.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The modelled spot price (see the module documentation): 0.30–0.40 × on-demand, fixed per
/// family with a small per-zone spread.
pub fn modelled_spot_price(on_demand: UsdPerHour, family: &str, zone: &str) -> UsdPerHour {
    let per_family = fnv1a(family) % 81;
    let per_zone = fnv1a(&format!("{family}/{zone}")) % 21;
    let per_mille = 300 + per_family + per_zone;
    on_demand.scale(i64::try_from(per_mille).unwrap_or(400), 1000)
}

/// Karpenter's `lowerKabobCase`: lower case, spaces to dashes.
fn lower_kebab(s: &str) -> String {
    s.to_lowercase().replace(' ', "-")
}

/// A sorted list of instance types plus the label vocabulary they are described in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    types: Vec<InstanceType>,
    well_known: LabelSet,
}

/// Options of the AWS loader, defaulted as Karpenter does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOptions {
    /// `VM_MEMORY_OVERHEAD_PERCENT` (7.5%).
    pub vm_memory_overhead: BasisPoints,
    /// ENIs held back from pods (`RESERVED_ENIS`, 0).
    pub reserved_enis: u32,
    /// Root volume size used for ephemeral storage (20 GiB).
    pub ephemeral_storage: Bytes,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            vm_memory_overhead: BasisPoints::DEFAULT_VM_MEMORY_OVERHEAD,
            reserved_enis: 0,
            ephemeral_storage: allocatable::aws::DEFAULT_EPHEMERAL_STORAGE,
        }
    }
}

/// Options of the Azure loader, defaulted as Karpenter-Azure does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureOptions {
    /// `VM_MEMORY_OVERHEAD_PERCENT` (7.5%).
    pub vm_memory_overhead: BasisPoints,
    /// Max pods per node (250).
    pub max_pods: i64,
    /// OS disk size used for ephemeral storage (128 GB).
    pub ephemeral_storage: Bytes,
    /// Zone numbers every SKU is assumed to be offered in (1–3).
    pub zones: Vec<u8>,
}

impl Default for AzureOptions {
    fn default() -> Self {
        AzureOptions {
            vm_memory_overhead: BasisPoints::DEFAULT_VM_MEMORY_OVERHEAD,
            max_pods: allocatable::azure::DEFAULT_MAX_PODS,
            ephemeral_storage: allocatable::azure::DEFAULT_EPHEMERAL_STORAGE,
            zones: vec![1, 2, 3],
        }
    }
}

const AWS_COLUMNS: &[&str] = &[
    "name",
    "family",
    "category",
    "generation",
    "size",
    "vcpu",
    "memory_mib",
    "arch",
    "architectures",
    "cpu_manufacturer",
    "sustained_clock_ghz",
    "gpu_count",
    "gpu_manufacturer",
    "gpu_name",
    "gpu_memory_mib",
    "neuron_name",
    "neuron_device_count",
    "neuron_core_count",
    "default_card_max_enis",
    "ipv4_per_eni",
    "efa_max_interfaces",
    "karpenter_bandwidth_mbps",
    "ebs_max_bandwidth_mbps",
    "local_storage_gb",
    "local_storage_type",
    "hypervisor",
    "supported_usage_classes",
    "zones_us_east_1",
    "zone_ids_us_east_1",
];

const AZURE_COLUMNS: &[&str] = &[
    "name",
    "sku_family",
    "sku_series",
    "sku_version",
    "vcpu",
    "memory_mib",
    "arch",
    "gpu_count",
    "gpu_manufacturer",
    "gpu_name",
    "restricted",
    "spec_source",
];

impl Catalog {
    /// A catalog from instance types (sorted here by name) and their label vocabulary.
    pub fn new(mut types: Vec<InstanceType>, well_known: LabelSet) -> Self {
        types.sort_by(|a, b| a.name.cmp(&b.name));
        Catalog { types, well_known }
    }

    /// Instance types in name order.
    pub fn types(&self) -> &[InstanceType] {
        &self.types
    }

    /// The instance type called `name`.
    pub fn get(&self, name: &str) -> Option<&InstanceType> {
        self.types
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.types[i])
    }

    /// Number of instance types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True when the catalog has no types.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Labels these types define; pass to `compatible_allowing` as the undefined-allowed set.
    pub fn well_known_labels(&self) -> &LabelSet {
        &self.well_known
    }

    /// AWS us-east-1 from the embedded data with default options.
    pub fn aws_us_east_1() -> Result<Catalog, CatalogError> {
        Self::aws_from_csv(
            AWS_INSTANCE_TYPES_CSV,
            AWS_PRICES_US_EAST_1_CSV,
            "us-east-1",
            &AwsOptions::default(),
        )
    }

    /// AWS from CSV text (formats in `data/README.md`). Zones come from the `zones_us_east_1`
    /// columns, so only `us-east-1` has offerings; other regions yield types without offerings.
    pub fn aws_from_csv(
        types_csv: &str,
        prices_csv: &str,
        region: &str,
        options: &AwsOptions,
    ) -> Result<Catalog, CatalogError> {
        let prices = parse_prices("aws prices", prices_csv)?;
        let table = Table::parse("aws/instance-types.csv", types_csv)?;
        table.require(AWS_COLUMNS)?;
        let mut types = Vec::with_capacity(table.rows.len());
        for row in table.rows() {
            types.push(aws_instance_type(&row, &prices, region, options)?);
        }
        Ok(Catalog::new(types, LabelSet::for_provider(Provider::Aws)))
    }

    /// Azure eastus from the embedded data with default options.
    pub fn azure_eastus() -> Result<Catalog, CatalogError> {
        Self::azure_from_csv(
            AZURE_SKUS_CSV,
            AZURE_PRICES_EASTUS_CSV,
            "eastus",
            &AzureOptions::default(),
        )
    }

    /// Azure from CSV text; skips SKUs without specs or with a restriction.
    pub fn azure_from_csv(
        skus_csv: &str,
        prices_csv: &str,
        region: &str,
        options: &AzureOptions,
    ) -> Result<Catalog, CatalogError> {
        let prices = parse_prices("azure prices", prices_csv)?;
        let table = Table::parse("azure/skus.csv", skus_csv)?;
        table.require(AZURE_COLUMNS)?;
        let mut types = Vec::new();
        for row in table.rows() {
            if row.get("spec_source").is_empty() || !row.get("restricted").is_empty() {
                continue;
            }
            types.push(azure_instance_type(&row, &prices, region, options)?);
        }
        Ok(Catalog::new(types, LabelSet::for_provider(Provider::Azure)))
    }

    /// Karpenter's KWOK catalog: families `c`/`s`/`m` (2/4/8 GiB per vCPU) × 12 sizes × amd64,
    /// arm64 × linux, windows; four zones × spot, on-demand; on-demand
    /// 0.025 $/vCPU·h + 0.001 $/GB·h, spot 0.7 × on-demand.
    pub fn kwok() -> Catalog {
        const CPUS: [i64; 12] = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256];
        const FAMILIES: [(&str, i64); 3] = [("c", 2), ("s", 4), ("m", 8)];
        const ZONES: [&str; 4] = ["test-zone-a", "test-zone-b", "test-zone-c", "test-zone-d"];
        let mut types = Vec::new();
        for (family, gib_per_cpu) in FAMILIES {
            for cpu in CPUS {
                for arch in ["amd64", "arm64"] {
                    for os in ["linux", "windows"] {
                        let name = format!("{family}-{cpu}x-{arch}-{os}");
                        let gib = cpu * gib_per_cpu;
                        let memory = Bytes::from_gib(gib);
                        // 0.025 $ per vCPU; 0.001 $ per 10^9 bytes = 1 pico-dollar per byte.
                        let on_demand = UsdPerHour(cpu * 25_000_000_000 + memory.0);
                        let spot = on_demand.scale(7, 10);
                        let mut offerings = Vec::new();
                        for zone in ZONES {
                            for (capacity_type, price) in [
                                (CapacityType::Spot, spot),
                                (CapacityType::OnDemand, on_demand),
                            ] {
                                offerings.push(Offering {
                                    zone: zone.to_owned(),
                                    zone_id: None,
                                    capacity_type,
                                    price,
                                    available: true,
                                });
                            }
                        }
                        let mut reqs = base_requirements(&name, arch, &[os], &offerings);
                        reqs.add(Requirement::in_values(
                            labels::KWOK_INSTANCE_SIZE,
                            [cpu.to_string()],
                        ));
                        reqs.add(Requirement::in_values(
                            labels::KWOK_INSTANCE_FAMILY,
                            [family],
                        ));
                        reqs.add(Requirement::in_values(
                            labels::KWOK_INSTANCE_CPU,
                            [cpu.to_string()],
                        ));
                        reqs.add(Requirement::in_values(
                            labels::KWOK_INSTANCE_MEMORY,
                            [memory.to_string()],
                        ));
                        let capacity = Resources {
                            cpu: MilliCpu::from_cores(cpu),
                            memory,
                            pods: (16 * cpu).min(1024),
                            ephemeral_storage: Bytes::from_gib(20),
                            ..Resources::default()
                        };
                        types.push(InstanceType::new(
                            &name,
                            reqs,
                            offerings,
                            capacity,
                            allocatable::kwok::overhead(),
                        ));
                    }
                }
            }
        }
        Catalog::new(types, LabelSet::for_provider(Provider::Kwok))
    }

    /// Karpenter's scheduling-benchmark catalog (`fake.InstanceTypes(400)`): type `fake-it-i`
    /// has i+1 vCPU, 2(i+1) GiB, 10(i+1) pods, amd64, OS linux/windows/darwin, price
    /// 0.1 × vCPU + 0.1 × GB for every offering (spot in test-zone-1/2, on-demand in
    /// test-zone-1/2/3), and the fake provider's `size`/`special`/`integer` labels and
    /// 100m / 10 MiB kube-reserved.
    pub fn benchmark() -> Catalog {
        Self::benchmark_sized(400)
    }

    /// The benchmark catalog with `count` types instead of 400.
    pub fn benchmark_sized(count: usize) -> Catalog {
        let mut types = Vec::with_capacity(count);
        for i in 0..count {
            let n = i64::try_from(i + 1).unwrap_or(i64::MAX);
            let name = format!("fake-it-{i}");
            let memory = Bytes::from_gib(2 * n);
            // 0.1 $ per vCPU; 0.1 $ per 10^9 bytes = 100 pico-dollars per byte.
            let price = UsdPerHour(n * 100_000_000_000 + memory.0 * 100);
            let offerings = [
                (CapacityType::Spot, "test-zone-1"),
                (CapacityType::Spot, "test-zone-2"),
                (CapacityType::OnDemand, "test-zone-1"),
                (CapacityType::OnDemand, "test-zone-2"),
                (CapacityType::OnDemand, "test-zone-3"),
            ]
            .into_iter()
            .map(|(capacity_type, zone)| Offering {
                zone: zone.to_owned(),
                zone_id: None,
                capacity_type,
                price,
                available: true,
            })
            .collect::<Vec<_>>();
            let mut reqs =
                base_requirements(&name, "amd64", &["darwin", "linux", "windows"], &offerings);
            let large = n > 4 && 2 * n > 8;
            reqs.add(Requirement::in_values(
                "size",
                [if large { "large" } else { "small" }],
            ));
            reqs.add(if large {
                Requirement::in_values("special", ["optional"])
            } else {
                Requirement::does_not_exist("special")
            });
            reqs.add(Requirement::in_values("integer", [n.to_string()]));
            let capacity = Resources {
                cpu: MilliCpu::from_cores(n),
                memory,
                pods: 10 * n,
                ..Resources::default()
            };
            types.push(InstanceType::new(
                &name,
                reqs,
                offerings,
                capacity,
                allocatable::kwok::overhead(),
            ));
        }
        Catalog::new(types, LabelSet::core())
    }
}

/// The requirements every provider sets: type, arch, OS, and zone / capacity type from the
/// available offerings.
fn base_requirements(name: &str, arch: &str, os: &[&str], offerings: &[Offering]) -> Requirements {
    let available = || offerings.iter().filter(|o| o.available);
    let zones: BTreeSet<&str> = available().map(|o| o.zone.as_str()).collect();
    let capacity_types: BTreeSet<&str> = available().map(|o| o.capacity_type.as_str()).collect();
    [
        Requirement::in_values(labels::INSTANCE_TYPE, [name]),
        Requirement::in_values(labels::ARCH, [arch]),
        Requirement::in_values(labels::OS, os.iter().copied()),
        Requirement::in_values(labels::ZONE, zones),
        Requirement::in_values(labels::CAPACITY_TYPE, capacity_types),
    ]
    .into_iter()
    .collect()
}

/// `key In [value]` when `value` is given, else `key DoesNotExist` (upstream's pattern of
/// starting every optional label as DoesNotExist and inserting known values).
fn optional(key: &str, value: Option<String>) -> Requirement {
    match value {
        Some(v) => Requirement::in_values(key, [v]),
        None => Requirement::does_not_exist(key),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn aws_instance_type(
    row: &Row<'_, '_>,
    prices: &BTreeMap<String, UsdPerHour>,
    region: &str,
    options: &AwsOptions,
) -> Result<InstanceType, CatalogError> {
    let name = row.get("name");
    let family = row.get("family");
    let vcpu = row.int("vcpu")?;
    let memory_mib = row.int("memory_mib")?;
    let arch = row.get("arch");
    let gpu_count = row.int("gpu_count")?;
    let neuron_devices = row.int("neuron_device_count")?;
    let pods = allocatable::aws::eni_limited_pods(
        u32::try_from(row.int("default_card_max_enis")?)
            .map_err(|_| row.invalid("default_card_max_enis"))?,
        u32::try_from(row.int("ipv4_per_eni")?).map_err(|_| row.invalid("ipv4_per_eni"))?,
        options.reserved_enis,
    );

    // Offerings: zones × supported capacity types, priced when an on-demand price is known.
    let usage = row.list("supported_usage_classes");
    let zones = if region == "us-east-1" {
        row.list("zones_us_east_1")
    } else {
        Vec::new()
    };
    let zone_ids = row.list("zone_ids_us_east_1");
    let mut offerings = Vec::new();
    if let Some(&on_demand) = prices.get(name) {
        for (i, zone) in zones.iter().enumerate() {
            let zone_id = zone_ids.get(i).map(|s| (*s).to_owned());
            if usage.contains(&"on-demand") {
                offerings.push(Offering {
                    zone: (*zone).to_owned(),
                    zone_id: zone_id.clone(),
                    capacity_type: CapacityType::OnDemand,
                    price: on_demand,
                    available: true,
                });
            }
            if usage.contains(&"spot") {
                offerings.push(Offering {
                    zone: (*zone).to_owned(),
                    zone_id,
                    capacity_type: CapacityType::Spot,
                    price: modelled_spot_price(on_demand, family, zone),
                    available: true,
                });
            }
        }
    }

    let mut reqs = base_requirements(name, arch, &["linux"], &offerings);
    let zone_ids: BTreeSet<&str> = offerings
        .iter()
        .filter_map(|o| o.zone_id.as_deref())
        .collect();
    if !zone_ids.is_empty() {
        reqs.add(Requirement::in_values(labels::AWS_ZONE_ID, zone_ids));
    }
    let bare = |s: &str| non_empty(s);
    let gpu = !row.get("gpu_name").is_empty();
    let neuron = neuron_devices > 0;
    let ssd_gb = row.int("local_storage_gb")?;
    let clock_mhz = if row.get("sustained_clock_ghz").is_empty() {
        None
    } else {
        Some(row.fixed("sustained_clock_ghz", 3)?.to_string())
    };
    let more = [
        Requirement::in_values(labels::REGION, [region]),
        Requirement::does_not_exist(labels::WINDOWS_BUILD),
        Requirement::in_values(labels::AWS_INSTANCE_CPU, [vcpu.to_string()]),
        Requirement::in_values(labels::AWS_INSTANCE_MEMORY, [memory_mib.to_string()]),
        optional(labels::AWS_INSTANCE_CATEGORY, bare(row.get("category"))),
        optional(labels::AWS_INSTANCE_GENERATION, bare(row.get("generation"))),
        optional(labels::AWS_INSTANCE_FAMILY, bare(family)),
        optional(labels::AWS_INSTANCE_SIZE, bare(row.get("size"))),
        optional(
            labels::AWS_INSTANCE_CPU_MANUFACTURER,
            bare(row.get("cpu_manufacturer")).map(|m| lower_kebab(&m)),
        ),
        optional(
            labels::AWS_INSTANCE_CPU_SUSTAINED_CLOCK_SPEED_MHZ,
            clock_mhz,
        ),
        optional(
            labels::AWS_INSTANCE_EBS_BANDWIDTH,
            bare(row.get("ebs_max_bandwidth_mbps")),
        ),
        optional(
            labels::AWS_INSTANCE_NETWORK_BANDWIDTH,
            bare(row.get("karpenter_bandwidth_mbps")),
        ),
        optional(
            labels::AWS_INSTANCE_LOCAL_NVME,
            (ssd_gb > 0 && row.get("local_storage_type") == "ssd").then(|| ssd_gb.to_string()),
        ),
        Requirement::in_values(
            labels::AWS_INSTANCE_CAPABILITY_FLEX,
            [if family.contains("-flex") {
                "true"
            } else {
                "false"
            }],
        ),
        optional(
            labels::AWS_INSTANCE_GPU_NAME,
            gpu.then(|| lower_kebab(row.get("gpu_name"))),
        ),
        optional(
            labels::AWS_INSTANCE_GPU_MANUFACTURER,
            gpu.then(|| lower_kebab(row.get("gpu_manufacturer"))),
        ),
        optional(
            labels::AWS_INSTANCE_GPU_COUNT,
            gpu.then(|| gpu_count.to_string()),
        ),
        optional(
            labels::AWS_INSTANCE_GPU_MEMORY,
            gpu.then(|| row.get("gpu_memory_mib").to_owned()),
        ),
        optional(
            labels::AWS_INSTANCE_ACCELERATOR_NAME,
            neuron.then(|| lower_kebab(row.get("neuron_name"))),
        ),
        optional(
            labels::AWS_INSTANCE_ACCELERATOR_MANUFACTURER,
            neuron.then(|| "aws".to_owned()),
        ),
        optional(
            labels::AWS_INSTANCE_ACCELERATOR_COUNT,
            neuron.then(|| neuron_devices.to_string()),
        ),
        Requirement::in_values(labels::AWS_INSTANCE_HYPERVISOR, [row.get("hypervisor")]),
        Requirement::in_values(labels::AWS_INSTANCE_TENANCY, ["default", "dedicated"]),
        Requirement::does_not_exist(labels::AWS_CAPACITY_RESERVATION_ID),
        Requirement::does_not_exist(labels::AWS_CAPACITY_RESERVATION_TYPE),
        Requirement::does_not_exist(labels::AWS_CAPACITY_RESERVATION_INTERRUPTIBLE),
    ];
    for r in more {
        reqs.add(r);
    }

    let arm64 = row.list("architectures").first() == Some(&"arm64");
    let mut capacity = Resources {
        cpu: MilliCpu::from_cores(vcpu),
        memory: allocatable::aws::memory_capacity(memory_mib, arm64, options.vm_memory_overhead),
        pods,
        ephemeral_storage: options.ephemeral_storage,
        ..Resources::default()
    };
    let mut extended = |name: &str, v: i64| {
        if v > 0 {
            capacity.extended.insert(name.to_owned(), v);
        }
    };
    match row.get("gpu_manufacturer") {
        "NVIDIA" => extended(resources::NVIDIA_GPU, gpu_count),
        "AMD" => extended(resources::AMD_GPU, gpu_count),
        _ => {}
    }
    extended("aws.amazon.com/neuron", neuron_devices);
    extended("aws.amazon.com/neuroncore", row.int("neuron_core_count")?);
    extended("vpc.amazonaws.com/efa", row.int("efa_max_interfaces")?);
    let overhead = allocatable::aws::overhead(capacity.cpu, pods, capacity.ephemeral_storage);
    // GPU memory is optional in the data; validate it parses when a GPU is labelled.
    if gpu {
        row.opt_int("gpu_memory_mib")?;
    }
    Ok(InstanceType::new(name, reqs, offerings, capacity, overhead))
}

fn azure_instance_type(
    row: &Row<'_, '_>,
    prices: &BTreeMap<String, UsdPerHour>,
    region: &str,
    options: &AzureOptions,
) -> Result<InstanceType, CatalogError> {
    let name = row.get("name");
    let vcpu = row.int("vcpu")?;
    let memory_mib = row.int("memory_mib")?;
    let gpu_count = row.int("gpu_count")?;
    let series = row.get("sku_series");
    let mut offerings = Vec::new();
    if let Some(&on_demand) = prices.get(name) {
        for z in &options.zones {
            let zone = format!("{region}-{z}");
            let spot = modelled_spot_price(
                on_demand,
                if series.is_empty() { name } else { series },
                &zone,
            );
            for (capacity_type, price) in [
                (CapacityType::OnDemand, on_demand),
                (CapacityType::Spot, spot),
            ] {
                offerings.push(Offering {
                    zone: zone.clone(),
                    zone_id: None,
                    capacity_type,
                    price,
                    available: true,
                });
            }
        }
    }
    let mut reqs = base_requirements(name, row.get("arch"), &["linux"], &offerings);
    let manufacturer = non_empty(row.get("gpu_manufacturer"));
    let more = [
        Requirement::in_values(labels::REGION, [region]),
        Requirement::in_values(labels::AZURE_SKU_NAME, [name]),
        optional(labels::AZURE_SKU_FAMILY, non_empty(row.get("sku_family"))),
        optional(labels::AZURE_SKU_SERIES, non_empty(series)),
        optional(labels::AZURE_SKU_VERSION, non_empty(row.get("sku_version"))),
        Requirement::in_values(labels::AZURE_SKU_CPU, [vcpu.to_string()]),
        Requirement::in_values(labels::AZURE_SKU_MEMORY, [memory_mib.to_string()]),
        Requirement::in_values(labels::AKS_SKU_CPU, [vcpu.to_string()]),
        Requirement::in_values(labels::AKS_SKU_MEMORY, [memory_mib.to_string()]),
        Requirement::in_values(
            labels::AZURE_SKU_GPU_COUNT,
            [if manufacturer.is_some() { gpu_count } else { 0 }.to_string()],
        ),
        optional(labels::AZURE_SKU_GPU_MANUFACTURER, manufacturer.clone()),
        optional(
            labels::AZURE_SKU_GPU_NAME,
            manufacturer
                .as_ref()
                .and_then(|_| non_empty(row.get("gpu_name"))),
        ),
    ];
    for r in more {
        reqs.add(r);
    }
    let memory_gib = memory_mib / 1024;
    let mut capacity = Resources {
        cpu: MilliCpu::from_cores(vcpu),
        memory: allocatable::azure::memory_capacity(memory_gib, options.vm_memory_overhead),
        pods: options.max_pods,
        ephemeral_storage: options.ephemeral_storage,
        ..Resources::default()
    };
    if gpu_count > 0 {
        match manufacturer.as_deref() {
            Some("nvidia") => {
                capacity
                    .extended
                    .insert(resources::NVIDIA_GPU.to_owned(), gpu_count);
            }
            Some("amd") => {
                capacity
                    .extended
                    .insert(resources::AMD_GPU.to_owned(), gpu_count);
            }
            _ => {}
        }
    }
    let overhead = allocatable::azure::overhead(vcpu, memory_gib);
    Ok(InstanceType::new(name, reqs, offerings, capacity, overhead))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requirements::Operator;

    fn aws() -> Catalog {
        Catalog::aws_us_east_1().unwrap()
    }

    fn label<'a>(it: &'a InstanceType, key: &str) -> Vec<&'a str> {
        let r = it
            .requirements()
            .get(key)
            .unwrap_or_else(|| panic!("{} has no {key}", it.name()));
        assert_eq!(r.operator(), Operator::In, "{} {key}", it.name());
        r.values().iter().map(String::as_str).collect()
    }

    #[test]
    fn prices_are_exact_decimals() {
        let p: UsdPerHour = "0.096000".parse().unwrap();
        assert_eq!(p.as_picos(), 96_000_000_000);
        assert_eq!(p.to_string(), "0.096");
        assert_eq!("12".parse::<UsdPerHour>().unwrap().to_string(), "12");
        assert_eq!(UsdPerHour::from_picos(1).to_string(), "0.000000000001");
        assert_eq!(
            "0.0000000000015".parse::<UsdPerHour>().unwrap().as_picos(),
            2
        );
        assert!("1,5".parse::<UsdPerHour>().is_err());
        assert!("".parse::<UsdPerHour>().is_err());
        assert!(".".parse::<UsdPerHour>().is_err());
        assert_eq!(p.scale(7, 10).to_string(), "0.0672");
    }

    #[test]
    fn aws_counts_match_the_data_readme() {
        let c = aws();
        assert_eq!(c.len(), 1395);
        let arm = c
            .types()
            .iter()
            .filter(|t| label(t, labels::ARCH) == ["arm64"])
            .count();
        assert_eq!(arm, 426);
        // 1375 types are offered in us-east-1; 35 of those have no price.
        let offered = c
            .types()
            .iter()
            .filter(|t| !t.offerings().is_empty())
            .count();
        assert_eq!(offered, 1340);
        let gpus = c
            .types()
            .iter()
            .filter(|t| t.capacity().extended(resources::NVIDIA_GPU) > 0)
            .count();
        assert!(gpus > 40, "{gpus}");
    }

    #[test]
    fn m5_large_known_row() {
        let c = aws();
        let m5 = c.get("m5.large").unwrap();
        assert_eq!(m5.capacity().cpu, MilliCpu(2000));
        assert_eq!(m5.capacity().pods, 29);
        assert_eq!(m5.capacity().memory, Bytes::from_mib(7577));
        assert_eq!(m5.allocatable().cpu, MilliCpu(1930));
        assert_eq!(m5.allocatable().memory, Bytes::from_mib(6903));
        assert_eq!(label(m5, labels::AWS_INSTANCE_MEMORY), ["8192"]);
        assert_eq!(label(m5, labels::AWS_INSTANCE_CPU), ["2"]);
        assert_eq!(label(m5, labels::AWS_INSTANCE_CATEGORY), ["m"]);
        assert_eq!(label(m5, labels::AWS_INSTANCE_FAMILY), ["m5"]);
        assert_eq!(label(m5, labels::AWS_INSTANCE_GENERATION), ["5"]);
        assert_eq!(label(m5, labels::AWS_INSTANCE_SIZE), ["large"]);
        assert_eq!(label(m5, labels::AWS_INSTANCE_HYPERVISOR), ["nitro"]);
        assert_eq!(label(m5, labels::AWS_INSTANCE_CPU_MANUFACTURER), ["intel"]);
        assert_eq!(label(m5, labels::ARCH), ["amd64"]);
        assert_eq!(label(m5, labels::OS), ["linux"]);
        assert_eq!(label(m5, labels::REGION), ["us-east-1"]);
        assert_eq!(label(m5, labels::CAPACITY_TYPE), ["on-demand", "spot"]);
        assert_eq!(label(m5, labels::AWS_INSTANCE_CAPABILITY_FLEX), ["false"]);
        assert!(label(m5, labels::ZONE).contains(&"us-east-1a"));
        assert_eq!(
            m5.requirements()
                .get(labels::AWS_INSTANCE_GPU_COUNT)
                .map(|r| r.operator()),
            Some(Operator::DoesNotExist)
        );
        let od = m5
            .offerings()
            .iter()
            .find(|o| o.capacity_type == CapacityType::OnDemand)
            .unwrap();
        assert_eq!(od.price.to_string(), "0.096");
        for o in m5
            .offerings()
            .iter()
            .filter(|o| o.capacity_type == CapacityType::Spot)
        {
            assert!(o.price >= od.price.scale(3, 10) && o.price <= od.price.scale(4, 10));
        }
    }

    #[test]
    fn t3_medium_and_gpu_rows() {
        let c = aws();
        let t3 = c.get("t3.medium").unwrap();
        assert_eq!(t3.capacity().pods, 17);
        assert_eq!(t3.capacity().cpu, MilliCpu(2000));
        let p = c.get("p5.48xlarge").unwrap();
        assert_eq!(p.capacity().pods, 100);
        assert_eq!(label(p, labels::AWS_INSTANCE_GPU_NAME), ["h100"]);
        assert_eq!(label(p, labels::AWS_INSTANCE_GPU_MANUFACTURER), ["nvidia"]);
        assert_eq!(label(p, labels::AWS_INSTANCE_GPU_COUNT), ["8"]);
        assert_eq!(p.capacity().extended(resources::NVIDIA_GPU), 8);
        let graviton = c.get("m7g.large").unwrap();
        assert_eq!(label(graviton, labels::ARCH), ["arm64"]);
        // 8192 − 64 = 8128; ⌈8128 × 0.075⌉ = 610.
        assert_eq!(graviton.capacity().memory, Bytes::from_mib(8128 - 610));
    }

    #[test]
    fn instance_requirements_intersect_pod_requirements() {
        let c = aws();
        let m5 = c.get("m5.large").unwrap();
        let pod: Requirements = [
            Requirement::in_values(labels::ARCH, ["amd64"]),
            Requirement::at_least(labels::AWS_INSTANCE_CPU, 2),
            Requirement::in_values(labels::CAPACITY_TYPE, ["spot"]),
        ]
        .into_iter()
        .collect();
        assert!(
            m5.requirements()
                .compatible_allowing(&pod, c.well_known_labels())
                .is_ok()
        );
        let spot = m5.cheapest_offering(&pod).unwrap();
        assert_eq!(spot.capacity_type, CapacityType::Spot);
        let gpu_pod: Requirements = [Requirement::at_least(labels::AWS_INSTANCE_GPU_COUNT, 1)]
            .into_iter()
            .collect();
        assert!(!m5.requirements().intersects(&gpu_pod));
    }

    #[test]
    fn azure_known_row_and_counts() {
        let c = Catalog::azure_eastus().unwrap();
        // 1370 SKUs have specs; 7 are restricted (5 by AKS, 2 by Karpenter-Azure), some of which
        // may lack specs anyway.
        assert!(c.len() <= 1370 && c.len() >= 1363, "{}", c.len());
        let d = c.get("Standard_D4s_v5").unwrap();
        assert_eq!(d.capacity().cpu, MilliCpu(4000));
        assert_eq!(label(d, labels::AZURE_SKU_FAMILY), ["D"]);
        assert_eq!(label(d, labels::AZURE_SKU_VERSION), ["5"]);
        assert_eq!(label(d, labels::AZURE_SKU_MEMORY), ["16384"]);
        assert_eq!(label(d, labels::AZURE_SKU_GPU_COUNT), ["0"]);
        assert_eq!(label(d, labels::ZONE), ["eastus-1", "eastus-2", "eastus-3"]);
        assert_eq!(d.allocatable().cpu, MilliCpu(4000 - 140));
        assert_eq!(d.offerings().len(), 6);
        assert!(c.get("Standard_A1_v2").is_none(), "restricted by AKS");
    }

    #[test]
    fn kwok_catalog_matches_upstream() {
        let c = Catalog::kwok();
        assert_eq!(c.len(), 144);
        let t = c.get("c-1x-amd64-linux").unwrap();
        assert_eq!(t.offerings().len(), 8);
        let od = t
            .offerings()
            .iter()
            .find(|o| o.capacity_type == CapacityType::OnDemand)
            .unwrap();
        let spot = t
            .offerings()
            .iter()
            .find(|o| o.capacity_type == CapacityType::Spot)
            .unwrap();
        assert_eq!(od.price.to_string(), "0.027147483648");
        assert_eq!(spot.price.as_picos(), 19_003_238_554);
        assert_eq!(label(t, labels::KWOK_INSTANCE_MEMORY), ["2Gi"]);
        assert_eq!(t.capacity().pods, 16);
        assert_eq!(c.get("m-256x-arm64-windows").unwrap().capacity().pods, 1024);
        assert_eq!(t.allocatable().cpu, MilliCpu(900));
    }

    #[test]
    fn benchmark_catalog_matches_design() {
        let c = Catalog::benchmark();
        assert_eq!(c.len(), 400);
        let first = c.get("fake-it-0").unwrap();
        assert_eq!(first.capacity().cpu, MilliCpu(1000));
        assert_eq!(first.capacity().memory, Bytes::from_gib(2));
        assert_eq!(first.capacity().pods, 10);
        // 0.1 × 1 + 0.1 × 2.147483648
        assert_eq!(first.offerings()[0].price.to_string(), "0.3147483648");
        let last = c.get("fake-it-399").unwrap();
        assert_eq!(last.capacity().cpu, MilliCpu(400_000));
        assert_eq!(last.capacity().pods, 4000);
        assert_eq!(last.offerings().len(), 5);
    }

    #[test]
    fn loaders_report_bad_rows() {
        let err = Catalog::aws_from_csv(
            "name,family\nm5.large,m5\n",
            "a,b\n",
            "us-east-1",
            &AwsOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, CatalogError::MissingColumn { .. }), "{err}");
        let header = AZURE_SKUS_CSV.lines().next().unwrap();
        let bad = format!(
            "{header}\nStandard_X,X,f,X,X_v1,1,four,,1024,amd64,0,,,true,2025-01-01,,cluster-autoscaler\n"
        );
        let err = Catalog::azure_from_csv(
            &bad,
            "sku,usd_per_hour\n",
            "eastus",
            &AzureOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "azure/skus.csv line 2: column \"vcpu\" has invalid value \"four\""
        );
        let err = Catalog::azure_from_csv(
            &format!("{header}\na,b\n"),
            "sku,usd_per_hour\n",
            "eastus",
            &AzureOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            CatalogError::FieldCount {
                line: 2,
                found: 2,
                ..
            }
        ));
    }

    #[test]
    fn spot_model_is_deterministic_and_bounded() {
        let od = UsdPerHour::from_picos(1_000_000_000_000);
        let a = modelled_spot_price(od, "m5", "us-east-1a");
        assert_eq!(a, modelled_spot_price(od, "m5", "us-east-1a"));
        for family in ["m5", "c7g", "Ds_v5", "x"] {
            for zone in ["a", "b", "c"] {
                let p = modelled_spot_price(od, family, zone);
                assert!(
                    p >= od.scale(3, 10) && p <= od.scale(4, 10),
                    "{family} {zone} {p}"
                );
            }
        }
    }
}
