//! The scenario file: what to simulate, in YAML.
//!
//! ```yaml
//! name: SQS burst on spot
//! seed: 7                      # master seed (default 0); --seed overrides
//! duration: 2h                 # 90s, 5m, 1h30m, or seconds
//! sampleEvery: 10s             # timeline resolution (default: ~720 samples)
//! catalog: {provider: aws, region: us-east-1}     # aws | azure | kwok
//! manifests:                   # paths are relative to this file; files or directories
//!   - path: ../seeds/002_85c0937ec41394ee
//!   - inline: |
//!       apiVersion: apps/v1
//!       kind: Deployment
//!       ...
//! workload:
//!   sources:                   # what each trigger reads
//!     - scaledObject: processing/sqs-consumer-scaler
//!       trigger: 0             # index or name (default 0)
//!       queue:
//!         arrivals: {bursts: {every: 30m, duration: 5m, value: 40}}   # per second
//!         perPodRate: 2        # messages one Running pod processes per second
//!     - scaledObject: krci/portal
//!       metric: {steps: [{at: 0s, value: 5}, {at: 40m, value: 0}]}
//!   scale:                     # manual `kubectl scale`
//!     - {at: 1m, target: default/inflate, replicas: 5}
//! cloud:                       # all optional; defaults from seed 002's latency table
//!   provisioning: {min: 30s, max: 60s}
//!   join: {min: 10s, max: 20s}
//!   imagePull: {min: 5s, max: 30s}
//!   spotInterruptionsPerHour: 0.1
//!   insufficientCapacity:
//!     probability: 0.05
//!     offerings: [{instanceType: c5.large, zone: us-east-1a, capacityType: spot}]
//! overrides:                   # what-ifs without editing the manifests
//!   nodepools:
//!     node-spot: {consolidateAfter: 5m}
//! ```
//!
//! Patterns: `{constant: v}`, `{steps: [{at, value}]}`, `{bursts: {every, duration, value, base,
//! start, count}}`, `{sine: {mean, amplitude, period, phase}}`, `{csv: path}` (one value per
//! second). Cron triggers need no source: their windows come from the trigger itself.
//!
//! This module only parses; the shell resolves paths, references and manifests, and reports
//! problems as `file:line: Scenario name: field: message`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::pattern::{Millis, Pattern};

/// Which provider's catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// AWS (us-east-1 offerings are embedded).
    Aws,
    /// Azure (eastus).
    Azure,
    /// KWOK's simulated catalog.
    Kwok,
}

/// `catalog:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSpec {
    /// Provider.
    pub provider: Provider,
    /// Region (aws: us-east-1; azure: eastus).
    #[serde(default)]
    pub region: Option<String>,
}

/// One entry of `manifests:`: a path or inline YAML.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRef {
    /// File or directory, relative to the scenario file.
    #[serde(default)]
    pub path: Option<String>,
    /// YAML text (one or more documents).
    #[serde(default)]
    pub inline: Option<String>,
}

/// A queue source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueueSpec {
    /// Arrivals per second.
    pub arrivals: Pattern,
    /// Messages one Running pod of the target processes per second.
    pub per_pod_rate: f64,
    /// Messages waiting at the start.
    #[serde(default)]
    pub initial: f64,
}

/// A trigger index or name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TriggerRef {
    /// `spec.triggers[i]`.
    Index(usize),
    /// The trigger whose `name` this is.
    Name(String),
}

/// One entry of `workload.sources`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceSpec {
    /// Name in the report (default: the trigger's metric name).
    #[serde(default)]
    pub name: Option<String>,
    /// `namespace/name` (or `name` in `default`) of the ScaledObject.
    pub scaled_object: String,
    /// Which trigger (default 0).
    #[serde(default)]
    pub trigger: Option<TriggerRef>,
    /// A queue.
    #[serde(default)]
    pub queue: Option<QueueSpec>,
    /// A metric.
    #[serde(default)]
    pub metric: Option<Pattern>,
}

/// One manual scale.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSpec {
    /// When.
    pub at: Millis,
    /// `namespace/name` (or `name` in `default`) of a Deployment/StatefulSet.
    pub target: String,
    /// Replicas.
    pub replicas: u32,
}

/// `workload:`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Trigger sources.
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    /// Manual scales.
    #[serde(default)]
    pub scale: Vec<ScaleSpec>,
}

/// A delay range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    /// Shortest.
    pub min: Millis,
    /// Longest.
    pub max: Millis,
}

/// An offering that has no capacity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OfferingSpec {
    /// Instance type.
    #[serde(default)]
    pub instance_type: Option<String>,
    /// Zone.
    #[serde(default)]
    pub zone: Option<String>,
    /// `spot`, `on-demand` or `reserved`.
    #[serde(default)]
    pub capacity_type: Option<String>,
}

/// `cloud.insufficientCapacity`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceSpec {
    /// Chance per launch attempt.
    #[serde(default)]
    pub probability: f64,
    /// Offerings that always fail.
    #[serde(default)]
    pub offerings: Vec<OfferingSpec>,
}

/// `cloud:`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloudSpec {
    /// NodeClaim → instance running.
    #[serde(default)]
    pub provisioning: Option<RangeSpec>,
    /// Instance running → node Ready.
    #[serde(default)]
    pub join: Option<RangeSpec>,
    /// First image pull on a node.
    #[serde(default)]
    pub image_pull: Option<RangeSpec>,
    /// Spot interruptions per spot instance-hour.
    #[serde(default)]
    pub spot_interruptions_per_hour: Option<f64>,
    /// Warning before reclaim.
    #[serde(default)]
    pub interruption_notice: Option<Millis>,
    /// Insufficient capacity.
    #[serde(default)]
    pub insufficient_capacity: Option<IceSpec>,
}

/// A NodePool what-if.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolOverride {
    /// Replaces `spec.disruption.consolidateAfter` (`Never` or a duration).
    #[serde(default)]
    pub consolidate_after: Option<String>,
    /// Replaces the `tandem.dev/headroom` annotation (e.g. `pods=5,cpu=1,memory=2Gi`; `""`
    /// removes it): warm capacity, a Tandem feature `--compare` leaves out of the upstream run.
    #[serde(default)]
    pub headroom: Option<String>,
}

/// `overrides:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// By NodePool name.
    #[serde(default)]
    pub nodepools: BTreeMap<String, PoolOverride>,
}

/// A scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// Title of the report (default: the file name).
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Master seed (default 0).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Simulated time.
    pub duration: Millis,
    /// Timeline resolution.
    #[serde(default)]
    pub sample_every: Option<Millis>,
    /// Catalog.
    pub catalog: CatalogSpec,
    /// Manifests.
    pub manifests: Vec<ManifestRef>,
    /// Sources and manual scales.
    #[serde(default)]
    pub workload: WorkloadSpec,
    /// Cloud behaviour.
    #[serde(default)]
    pub cloud: CloudSpec,
    /// What-ifs.
    #[serde(default)]
    pub overrides: Overrides,
}

/// Why a scenario file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ScenarioError {
    /// Dotted field path (`workload.sources[0].queue.perPodRate`), empty for the document.
    pub path: String,
    /// 1-based line, when the parser knows it.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Parses scenario text.
///
/// # Errors
/// [`ScenarioError`] with the field path and line of the first problem.
pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Scenario>(de).map_err(|e| {
        let path = e
            .path()
            .iter()
            .map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => format!("[{index}]"),
                serde_path_to_error::Segment::Map { key } => format!(".{key}"),
                serde_path_to_error::Segment::Enum { variant } => format!(".{variant}"),
                serde_path_to_error::Segment::Unknown => String::new(),
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_owned();
        let inner = e.into_inner();
        let text = inner.to_string();
        let text = text.split(" at line ").next().unwrap_or_default();
        let prefix = format!("{path}: ");
        ScenarioError {
            line: inner.location().map(|l| l.line()),
            message: text.strip_prefix(&prefix).unwrap_or(text).to_owned(),
            path,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_scenario_parses() {
        let s = parse(
            r#"
name: burst
seed: 3
duration: 1h
catalog: {provider: aws, region: us-east-1}
manifests: [{path: ../seeds/002}, {inline: "kind: X"}]
workload:
  sources:
    - scaledObject: processing/sqs-consumer-scaler
      queue: {arrivals: {bursts: {every: 30m, duration: 5m, value: 40}}, perPodRate: 2}
  scale: [{at: 1m, target: inflate, replicas: 5}]
cloud: {spotInterruptionsPerHour: 0.5, insufficientCapacity: {offerings: [{instanceType: c5.large}]}}
overrides: {nodepools: {node-spot: {consolidateAfter: 5m}}}
"#,
        )
        .unwrap();
        assert_eq!(s.duration, Millis(3_600_000));
        assert_eq!(s.catalog.provider, Provider::Aws);
        assert_eq!(
            s.workload.sources[0].queue.as_ref().unwrap().per_pod_rate,
            2.0
        );
        assert_eq!(
            s.overrides.nodepools["node-spot"]
                .consolidate_after
                .as_deref(),
            Some("5m")
        );
    }

    #[test]
    fn errors_name_the_field_and_line() {
        let e = parse("duration: 1h\ncatalog: {provider: aws}\nmanifests: []\nworkload:\n  sources:\n    - scaledObject: x\n      queue: {arrivals: {constant: 1}, perPodRat: 2}\n").unwrap_err();
        assert_eq!(e.path, "workload.sources[0].queue.perPodRat");
        assert_eq!(e.line, Some(7));
        let e = parse("duration: soon\ncatalog: {provider: aws}\nmanifests: []\n").unwrap_err();
        assert_eq!(e.path, "duration");
        assert!(e.message.contains("not a duration"), "{}", e.message);
    }
}
