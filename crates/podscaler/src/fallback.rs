//! Fallback: what replicas to ask for when a trigger keeps failing.
//!
//! Mirrors KEDA `pkg/fallback/fallback.go` (keda.md §6.3): failures are counted per metric name
//! in `status.health`; fallback engages when a metric's consecutive failures are strictly above
//! `failureThreshold`; the replica count then comes from `fallback.behavior`, and it reaches the
//! HPA as a synthetic metric value that makes the HPA's own formula land on that count.
//!
//! One deliberate difference: upstream counts a failure on every poll *and* on every HPA metric
//! request, so failures pile up faster than one per `pollingInterval` (a quirk users trip on,
//! kedacore/keda#6053). Here the caller records one outcome per observation.

use std::collections::BTreeMap;

use thiserror::Error;

/// `fallback.behavior`: how the fallback replica count is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FallbackBehavior {
    /// `static` (the CRD default): exactly `fallback.replicas`.
    #[default]
    Static,
    /// `currentReplicas`: keep what the target has now.
    CurrentReplicas,
    /// `currentReplicasIfHigher`: `max(current, fallback.replicas)`.
    CurrentReplicasIfHigher,
    /// `currentReplicasIfLower`: `min(current, fallback.replicas)`.
    CurrentReplicasIfLower,
    /// `scalingModifiers`: failing triggers reach the formula as missing values instead.
    ScalingModifiers,
}

/// The `spec.fallback` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FallbackConfig {
    /// `failureThreshold`: failures tolerated before fallback engages (strictly more engage).
    pub failure_threshold: u32,
    /// `replicas`.
    pub replicas: u32,
    /// `behavior`.
    pub behavior: FallbackBehavior,
}

/// `status.health[metric].status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HealthStatus {
    /// The last fetch succeeded.
    #[default]
    Happy,
    /// The last fetch failed.
    Failing,
}

impl HealthStatus {
    /// The upstream status string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Happy => "Happy",
            Self::Failing => "Failing",
        }
    }
}

/// One `status.health` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HealthEntry {
    /// `numberOfFailures`: consecutive failures, reset on success.
    pub failures: u32,
    /// `status`.
    pub status: HealthStatus,
}

/// `status.health`: per metric name, ordered so status writes are byte-stable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    /// Entries by metric name.
    pub entries: BTreeMap<String, HealthEntry>,
}

impl Health {
    /// Records one fetch outcome for `metric`: success resets the count, failure adds one.
    pub fn record(&mut self, metric: &str, ok: bool) {
        let entry = if let Some(entry) = self.entries.get_mut(metric) {
            entry
        } else {
            self.entries.entry(metric.to_owned()).or_default()
        };
        if ok {
            *entry = HealthEntry {
                failures: 0,
                status: HealthStatus::Happy,
            };
        } else {
            entry.failures = entry.failures.saturating_add(1);
            entry.status = HealthStatus::Failing;
        }
    }

    /// The entry for `metric`, Happy with no failures when never recorded.
    #[must_use]
    pub fn entry(&self, metric: &str) -> HealthEntry {
        self.entries.get(metric).copied().unwrap_or_default()
    }

    /// True when fallback is engaged for `metric` under `config`.
    #[must_use]
    pub fn is_engaged(&self, metric: &str, config: &FallbackConfig) -> bool {
        engaged(self.entry(metric), config)
    }

    /// True when any metric is engaged: the `Fallback` condition's status.
    #[must_use]
    pub fn any_engaged(&self, config: &FallbackConfig) -> bool {
        self.entries.values().any(|e| engaged(*e, config))
    }
}

/// Strictly more failures than the threshold, and only while Failing.
fn engaged(entry: HealthEntry, config: &FallbackConfig) -> bool {
    entry.status == HealthStatus::Failing && entry.failures > config.failure_threshold
}

/// Replicas the fallback asks for given the target's current `spec.replicas`.
#[must_use]
pub fn fallback_replicas(config: &FallbackConfig, current: u32) -> u32 {
    match config.behavior {
        FallbackBehavior::Static | FallbackBehavior::ScalingModifiers => config.replicas,
        FallbackBehavior::CurrentReplicas => current,
        FallbackBehavior::CurrentReplicasIfHigher => current.max(config.replicas),
        FallbackBehavior::CurrentReplicasIfLower => current.min(config.replicas),
    }
}

/// Why a fallback value could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FallbackError {
    /// A `Value` target divides by ready pods, and there are none.
    #[error("cannot compute a fallback value for a Value target with no ready pods")]
    NoReadyPods,
}

/// The metric's target type, which decides how the fallback count is encoded as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetType {
    /// `AverageValue`: the HPA divides by the target, so `T × r` yields `r`.
    AverageValue,
    /// `Value`: the HPA multiplies the ratio by ready pods, so `T × r / p` yields `r`.
    Value,
}

/// The value served to the HPA so that its formula gives `replicas`: `T·r` for AverageValue,
/// `T·r/p` for Value (truncated to milli-units as upstream).
///
/// # Errors
/// [`FallbackError::NoReadyPods`] for a Value target with `ready_pods == 0` (upstream then
/// returns the trigger's error to the HPA).
pub fn fallback_value(
    target: f64,
    target_type: TargetType,
    replicas: u32,
    ready_pods: u32,
) -> Result<f64, FallbackError> {
    let raw = match target_type {
        TargetType::AverageValue => target * f64::from(replicas),
        TargetType::Value => {
            if ready_pods == 0 {
                return Err(FallbackError::NoReadyPods);
            }
            target * f64::from(replicas) / f64::from(ready_pods)
        }
    };
    Ok((raw * 1000.0).trunc() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(behavior: FallbackBehavior) -> FallbackConfig {
        FallbackConfig {
            failure_threshold: 3,
            replicas: 6,
            behavior,
        }
    }

    #[test]
    fn engages_only_strictly_above_the_threshold_and_resets_on_success() {
        let cfg = config(FallbackBehavior::Static);
        let mut health = Health::default();
        for _ in 0..3 {
            health.record("s0-m", false);
        }
        assert!(!health.is_engaged("s0-m", &cfg));
        health.record("s0-m", false);
        assert!(health.is_engaged("s0-m", &cfg));
        assert_eq!(health.entry("s0-m").status, HealthStatus::Failing);
        health.record("s0-m", true);
        assert!(!health.any_engaged(&cfg));
        assert_eq!(health.entry("s0-m"), HealthEntry::default());
    }

    #[test]
    fn behaviors_table() {
        // (behavior, current, expected) with fallback.replicas = 6
        let cases = [
            (FallbackBehavior::Static, 2, 6),
            (FallbackBehavior::Static, 9, 6),
            (FallbackBehavior::CurrentReplicas, 2, 2),
            (FallbackBehavior::CurrentReplicasIfHigher, 2, 6),
            (FallbackBehavior::CurrentReplicasIfHigher, 9, 9),
            (FallbackBehavior::CurrentReplicasIfLower, 2, 2),
            (FallbackBehavior::CurrentReplicasIfLower, 9, 6),
        ];
        for (behavior, current, want) in cases {
            assert_eq!(
                fallback_replicas(&config(behavior), current),
                want,
                "{behavior:?}"
            );
        }
    }

    #[test]
    fn values_encode_the_count_for_the_hpa_formula() {
        assert_eq!(
            fallback_value(5.0, TargetType::AverageValue, 6, 0),
            Ok(30.0)
        );
        assert_eq!(fallback_value(10.0, TargetType::Value, 6, 4), Ok(15.0));
        assert_eq!(fallback_value(1.0, TargetType::Value, 1, 3), Ok(0.333));
        assert_eq!(
            fallback_value(10.0, TargetType::Value, 6, 0),
            Err(FallbackError::NoReadyPods)
        );
    }

    #[test]
    fn zero_threshold_engages_on_first_failure() {
        let cfg = FallbackConfig {
            failure_threshold: 0,
            ..config(FallbackBehavior::Static)
        };
        let mut health = Health::default();
        health.record("m", false);
        assert!(health.is_engaged("m", &cfg));
    }
}
