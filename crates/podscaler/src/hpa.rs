//! The HPA controller's algorithm for 1 ↔ N, as the Kubernetes controller computes it.
//!
//! KEDA never sets replicas between 1 and N itself: it serves metric values to the HPA it owns and
//! the HPA controller decides. To predict (and in the simulator, replace) that controller, this
//! module reproduces its arithmetic:
//!
//! - per metric proposal, tolerance and the "invalid metrics block scale-down" rule:
//!   `pkg/controller/podautoscaler/replica_calculator.go` (`GetExternalMetricReplicas`,
//!   `GetExternalPerPodMetricReplicas`, `getUsageRatioReplicaCount`, `tolerances.isWithin`) and
//!   `horizontal.go` (`computeReplicasForMetrics`);
//! - the out-of-range shortcuts and "disabled at zero": `horizontal.go` (`reconcileAutoscaler`);
//! - without `behavior`: `horizontal.go` (`normalizeDesiredReplicas`, `stabilizeRecommendation`,
//!   `convertDesiredReplicasWithRules`, `calculateScaleUpLimit`);
//! - with `behavior`: `horizontal.go` (`normalizeDesiredReplicasWithBehaviors`,
//!   `stabilizeRecommendationWithBehaviors`, `convertDesiredReplicasWithBehaviorRate`,
//!   `calculateScaleUpLimitWithScalingRules`, `calculateScaleDownLimitWithBehaviors`,
//!   `getReplicasChangePerPeriod`, `storeScaleEvent`), defaults from
//!   `pkg/apis/autoscaling/v2/defaults.go` (`GenerateHPAScaleUpRules`, `GenerateHPAScaleDownRules`).
//!
//! The controller keeps its recommendation and scale-event history in memory; here it is the
//! [`History`] value, passed in and returned, so the same inputs always give the same outputs.
//! Where upstream recycles one outdated slot, we drop every sample too old to matter; the
//! answers are the same.

use crate::TimeMs;

/// The controller's default tolerance (`--horizontal-pod-autoscaler-tolerance`): a usage ratio
/// within ±10% of 1 changes nothing, so metric noise does not make replicas flap.
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// The controller's default scale-down stabilization window
/// (`--horizontal-pod-autoscaler-downscale-stabilization`, 5 minutes), used when no behavior is
/// set or the behavior leaves the scale-down window unset.
pub const DEFAULT_DOWNSCALE_STABILIZATION_SECS: u32 = 300;

/// Legacy (no behavior) scale-up limit: at most double per sync (`scaleUpLimitFactor`) ...
const LEGACY_SCALE_UP_FACTOR: f64 = 2.0;
/// ... but always allow at least 4 replicas (`scaleUpLimitMinimum`).
const LEGACY_SCALE_UP_MINIMUM: f64 = 4.0;

/// What a metric's target means, which decides the formula the controller applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricTarget {
    /// External metric, `Value` target (milli-units): the total is compared with the target
    /// and the ratio scales the ready pods, `ceil(ready × total / target)`.
    ExternalValue {
        /// Target total in milli-units (what `Quantity::MilliValue` gives upstream).
        target_milli: i64,
    },
    /// External metric, `AverageValue` target (milli-units): `ceil(total / target)`, the
    /// queue-length-per-replica arithmetic KEDA's queue scalers rely on.
    ExternalAverageValue {
        /// Target per replica in milli-units.
        target_milli: i64,
    },
    /// Resource metric (cpu/memory triggers): average usage over ready pods against a target
    /// (utilization percent, or milli-units for `AverageValue`). Simplified: the unready and
    /// missing-pod adjustments of `GetResourceReplicas` are left to the caller's reading.
    Resource {
        /// Target average (percent of request, or milli-units).
        target: i64,
    },
}

/// One metric of the HPA with the reading the controller would fetch this sync.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInput {
    /// Metric name (`s0-rabbitmq-orders`, `composite-metric`, `cpu`), echoed in outputs.
    pub name: String,
    /// What the target means.
    pub target: MetricTarget,
    /// The fetched value: total in milli-units for external metrics, average for resource
    /// metrics; `None` when the fetch failed (the HPA's `FailedGetExternalMetric`).
    pub reading: Option<i64>,
}

/// Scale direction of a policy or window, as in `behavior.scaleUp` / `behavior.scaleDown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    /// `type: Pods`: an absolute number of pods per period.
    Pods,
    /// `type: Percent`: a percentage of the replicas at the start of the period.
    Percent,
}

/// One `HPAScalingPolicy`: how much change a period allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// Pods, or percent, per period.
    pub value: u32,
    /// Length of the period the change is counted over.
    pub period_secs: u32,
}

/// `selectPolicy`: which policy wins when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SelectPolicy {
    /// The policy allowing the largest change (upstream default).
    #[default]
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction (KEDA's paused-scale-in/out use this).
    Disabled,
}

/// `HPAScalingRules` as written by the user; unset fields take upstream's defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScalingRules {
    /// `stabilizationWindowSeconds`.
    pub stabilization_window_secs: Option<u32>,
    /// `selectPolicy`.
    pub select_policy: Option<SelectPolicy>,
    /// `policies`; `None` takes the default list, `Some(empty)` is kept as written.
    pub policies: Option<Vec<Policy>>,
    /// `tolerance` (the HPAConfigurableTolerance field); `None` is the controller's 0.1.
    pub tolerance: Option<f64>,
}

/// `spec.behavior` of the HPA (copied verbatim from the ScaledObject by KEDA).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Behavior {
    /// `scaleUp`; `None` takes every default.
    pub scale_up: Option<ScalingRules>,
    /// `scaleDown`; `None` takes every default.
    pub scale_down: Option<ScalingRules>,
}

/// Scaling rules with every default applied, which is what the controller actually runs.
#[derive(Debug, Clone, PartialEq)]
struct ResolvedRules {
    window_secs: u32,
    select: SelectPolicy,
    policies: Vec<Policy>,
}

impl Behavior {
    /// Scale-up rules after `GenerateHPAScaleUpRules`: 0 s window, Max, and the larger of
    /// 4 pods or 100% per 15 s.
    fn resolved_up(&self) -> ResolvedRules {
        let rules = self.scale_up.clone().unwrap_or_default();
        ResolvedRules {
            window_secs: rules.stabilization_window_secs.unwrap_or(0),
            select: rules.select_policy.unwrap_or_default(),
            policies: rules.policies.unwrap_or_else(|| {
                vec![
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_secs: 15,
                    },
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_secs: 15,
                    },
                ]
            }),
        }
    }

    /// Scale-down rules after `GenerateHPAScaleDownRules` and `maybeInitScaleDownStabilizationWindow`:
    /// the controller's window (300 s), Max, 100% per 15 s.
    fn resolved_down(&self, default_window_secs: u32) -> ResolvedRules {
        let rules = self.scale_down.clone().unwrap_or_default();
        ResolvedRules {
            window_secs: rules
                .stabilization_window_secs
                .unwrap_or(default_window_secs),
            select: rules.select_policy.unwrap_or_default(),
            policies: rules.policies.unwrap_or_else(|| {
                vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_secs: 15,
                }]
            }),
        }
    }
}

/// The parts of the HPA spec and controller flags the algorithm reads.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaSpec {
    /// `minReplicas` (KEDA writes `max(minReplicaCount, 1)`).
    pub min_replicas: u32,
    /// `maxReplicas`.
    pub max_replicas: u32,
    /// `behavior`; `None` runs the legacy path, which differs from the defaulted behavior.
    pub behavior: Option<Behavior>,
    /// The controller's scale-down stabilization flag, in seconds.
    pub downscale_stabilization_secs: u32,
    /// The controller's tolerance flag.
    pub tolerance: f64,
}

impl HpaSpec {
    /// A spec with the controller's default flags, the common case.
    #[must_use]
    pub fn new(min_replicas: u32, max_replicas: u32, behavior: Option<Behavior>) -> Self {
        Self {
            min_replicas,
            max_replicas,
            behavior,
            downscale_stabilization_secs: DEFAULT_DOWNSCALE_STABILIZATION_SECS,
            tolerance: DEFAULT_TOLERANCE,
        }
    }
}

/// What the controller observes about the target this sync.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaInput<'a> {
    /// `/scale` `spec.replicas`.
    pub current_replicas: u32,
    /// `/scale` `status.replicas` (used by `AverageValue` targets for the ratio).
    pub status_replicas: u32,
    /// Ready pods matching the selector (used by `Value` and resource targets).
    pub ready_pods: u32,
    /// Every metric of the HPA, in spec order.
    pub metrics: &'a [MetricInput],
}

/// A past unstabilized recommendation, kept for the stabilization windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Recommendation {
    /// When it was made.
    pub at: TimeMs,
    /// The replica count the metrics asked for.
    pub replicas: u32,
}

/// A past rescale, kept so policies can count the change within their period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScaleEvent {
    /// When the rescale happened.
    pub at: TimeMs,
    /// How many replicas it added (scale-up list) or removed (scale-down list).
    pub change: u32,
}

/// The controller's per-HPA memory, as a value: the shell stores it, the next sync passes it in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History {
    /// Unstabilized recommendations, oldest first.
    pub recommendations: Vec<Recommendation>,
    /// Scale-up events, oldest first (only recorded when a behavior is set, as upstream).
    pub scale_up_events: Vec<ScaleEvent>,
    /// Scale-down events, oldest first.
    pub scale_down_events: Vec<ScaleEvent>,
}

/// Why a metric's proposal is what it is, for the "why" output.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricProposal {
    /// Metric name.
    pub name: String,
    /// The usage ratio the controller computed (`None` when the fetch failed).
    pub usage_ratio: Option<f64>,
    /// True when the ratio was within tolerance, so the proposal is the current count.
    pub within_tolerance: bool,
    /// Replicas this metric alone asks for (`None` when the fetch failed).
    pub replicas: Option<u32>,
}

/// The HPA's `ScalingActive` condition reason: whether metrics could be used at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalingActive {
    /// `ValidMetricFound`: a recommendation was computed.
    ValidMetricFound,
    /// `ScalingDisabled`: the target is at zero replicas, so the HPA stands aside (KEDA's 0).
    ScalingDisabled,
    /// `FailedGetExternalMetric`: every metric failed, or some failed and the rest would
    /// scale down; nothing changes.
    FailedGetExternalMetric,
}

impl ScalingActive {
    /// The upstream reason string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidMetricFound => "ValidMetricFound",
            Self::ScalingDisabled => "ScalingDisabled",
            Self::FailedGetExternalMetric => "FailedGetExternalMetric",
        }
    }
}

/// The HPA's `ScalingLimited` / `AbleToScale` reasons that explain a clamp or a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The metrics' recommendation was used unchanged.
    DesiredWithinRange,
    /// A scale-up window held replicas below the recommendation.
    ScaleUpStabilized,
    /// A scale-down window held replicas above the recommendation.
    ScaleDownStabilized,
    /// A scale-up policy (or the legacy doubling rule) capped the increase.
    ScaleUpLimit,
    /// A scale-down policy capped the decrease.
    ScaleDownLimit,
    /// `maxReplicas` capped the result.
    TooManyReplicas,
    /// `minReplicas` raised the result.
    TooFewReplicas,
}

impl Limit {
    /// The upstream reason string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DesiredWithinRange => "DesiredWithinRange",
            Self::ScaleUpStabilized => "ScaleUpStabilized",
            Self::ScaleDownStabilized => "ScaleDownStabilized",
            Self::ScaleUpLimit => "ScaleUpLimit",
            Self::ScaleDownLimit => "ScaleDownLimit",
            Self::TooManyReplicas => "TooManyReplicas",
            Self::TooFewReplicas => "TooFewReplicas",
        }
    }
}

/// Everything one sync decided, with the intermediate numbers a person needs to trust it.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaOutcome {
    /// Replicas the controller would set (equal to current when nothing changes).
    pub desired: u32,
    /// True when the controller would write `/scale`.
    pub rescale: bool,
    /// Max over metric proposals, before stabilization and limits.
    pub metric_desired: Option<u32>,
    /// The stabilized recommendation, before rate limits and bounds.
    pub stabilized: Option<u32>,
    /// Per metric arithmetic, in spec order.
    pub proposals: Vec<MetricProposal>,
    /// Whether metrics were usable.
    pub scaling_active: ScalingActive,
    /// What clamped or held the result.
    pub limit: Limit,
}

/// One HPA sync: metrics → proposal → stabilization → rate limits → bounds.
///
/// `history` is consumed and the updated one returned, so a caller cannot accidentally reuse
/// a stale window.
#[must_use]
pub fn reconcile(
    spec: &HpaSpec,
    input: &HpaInput<'_>,
    mut history: History,
    now: TimeMs,
) -> (History, HpaOutcome) {
    let current = input.current_replicas;
    let min = spec.min_replicas;
    let max = spec.max_replicas;
    let proposals = propose(spec, input);
    let mut outcome = HpaOutcome {
        desired: current,
        rescale: false,
        metric_desired: None,
        stabilized: None,
        proposals,
        scaling_active: ScalingActive::ValidMetricFound,
        limit: Limit::DesiredWithinRange,
    };

    // reconcileAutoscaler: a target at zero disables the HPA (KEDA owns 0 ↔ 1).
    if current == 0 && min != 0 {
        outcome.desired = 0;
        outcome.scaling_active = ScalingActive::ScalingDisabled;
        return (history, outcome);
    }
    let desired = if current > max {
        outcome.limit = Limit::TooManyReplicas;
        max
    } else if current < min {
        outcome.limit = Limit::TooFewReplicas;
        min
    } else {
        let Some(metric_desired) = combine(&outcome.proposals, current) else {
            outcome.scaling_active = ScalingActive::FailedGetExternalMetric;
            return (history, outcome);
        };
        outcome.metric_desired = Some(metric_desired);
        let (stabilized, desired, limit) = match &spec.behavior {
            None => normalize_legacy(spec, &mut history, current, metric_desired, now),
            Some(behavior) => {
                normalize_with_behavior(spec, behavior, &mut history, current, metric_desired, now)
            }
        };
        outcome.stabilized = Some(stabilized);
        outcome.limit = limit;
        desired
    };
    outcome.desired = desired;
    outcome.rescale = desired != current;
    if outcome.rescale {
        store_scale_event(spec, &mut history, current, desired, now);
    }
    (history, outcome)
}

/// Per-metric proposals (`computeStatusFor*Metric` → `replica_calculator.go`) without touching
/// any history, so a caller can explain what each metric implies even on a tick where the HPA
/// does not run.
#[must_use]
pub fn propose(spec: &HpaSpec, input: &HpaInput<'_>) -> Vec<MetricProposal> {
    let (up_tol, down_tol) = tolerances(spec);
    input
        .metrics
        .iter()
        .map(|metric| {
            let Some(reading) = metric.reading else {
                return MetricProposal {
                    name: metric.name.clone(),
                    usage_ratio: None,
                    within_tolerance: false,
                    replicas: None,
                };
            };
            let within = |ratio: f64| (1.0 - down_tol) <= ratio && ratio <= (1.0 + up_tol);
            let (ratio, within_tolerance, replicas) = match metric.target {
                MetricTarget::ExternalValue { target_milli } => {
                    let ratio = reading as f64 / target_milli as f64;
                    usage_ratio_replicas(input, ratio, within)
                }
                MetricTarget::Resource { target } => {
                    let ratio = reading as f64 / target as f64;
                    usage_ratio_replicas(input, ratio, within)
                }
                MetricTarget::ExternalAverageValue { target_milli } => {
                    let status = input.status_replicas;
                    let ratio = reading as f64 / (target_milli as f64 * f64::from(status));
                    if within(ratio) {
                        (ratio, true, status)
                    } else {
                        (
                            ratio,
                            false,
                            ceil_replicas(reading as f64 / target_milli as f64),
                        )
                    }
                }
            };
            MetricProposal {
                name: metric.name.clone(),
                usage_ratio: Some(ratio),
                within_tolerance,
                replicas: Some(replicas),
            }
        })
        .collect()
}

/// `getUsageRatioReplicaCount`: tolerance against the current count, then the ratio scales the
/// ready pods; from zero replicas the ratio itself is the count.
fn usage_ratio_replicas(
    input: &HpaInput<'_>,
    ratio: f64,
    within: impl Fn(f64) -> bool,
) -> (f64, bool, u32) {
    if input.current_replicas == 0 {
        return (ratio, false, ceil_replicas(ratio));
    }
    if within(ratio) {
        return (ratio, true, input.current_replicas);
    }
    (
        ratio,
        false,
        ceil_replicas(ratio * f64::from(input.ready_pods)),
    )
}

/// Scale-up and scale-down tolerances: the behavior's per-direction fields, else the flag.
fn tolerances(spec: &HpaSpec) -> (f64, f64) {
    let pick = |rules: Option<&ScalingRules>| {
        rules
            .and_then(|r| r.tolerance)
            .filter(|t| t.is_finite() && *t >= 0.0)
            .unwrap_or(spec.tolerance)
    };
    let behavior = spec.behavior.as_ref();
    (
        pick(behavior.and_then(|b| b.scale_up.as_ref())),
        pick(behavior.and_then(|b| b.scale_down.as_ref())),
    )
}

/// `computeReplicasForMetrics`: the max over valid proposals, unless every metric failed or
/// some failed and the others would scale down (then nothing may change).
fn combine(proposals: &[MetricProposal], current: u32) -> Option<u32> {
    let invalid = proposals.iter().filter(|p| p.replicas.is_none()).count();
    let best = proposals
        .iter()
        .filter_map(|p| p.replicas)
        .max()
        .unwrap_or(0);
    if invalid >= proposals.len() || (invalid > 0 && best < current) {
        return None;
    }
    Some(best)
}

/// Legacy path: scale-down window over all recommendations, then the doubling rule and bounds.
fn normalize_legacy(
    spec: &HpaSpec,
    history: &mut History,
    current: u32,
    desired: u32,
    now: TimeMs,
) -> (u32, u32, Limit) {
    let cutoff = now.minus_secs(i64::from(spec.downscale_stabilization_secs));
    // Upstream keeps samples stamped exactly at the cut-off in this path.
    history.recommendations.retain(|r| r.at >= cutoff);
    let stabilized = history
        .recommendations
        .iter()
        .map(|r| r.replicas)
        .fold(desired, u32::max);
    history.recommendations.push(Recommendation {
        at: now,
        replicas: desired,
    });
    let stab_limit = if stabilized == desired {
        Limit::DesiredWithinRange
    } else {
        Limit::ScaleDownStabilized
    };

    let scale_up_limit = (LEGACY_SCALE_UP_FACTOR * f64::from(current)).max(LEGACY_SCALE_UP_MINIMUM);
    let scale_up_limit = ceil_replicas(scale_up_limit);
    let (max_allowed, max_reason) = if spec.max_replicas > scale_up_limit {
        (scale_up_limit, Limit::ScaleUpLimit)
    } else {
        (spec.max_replicas, Limit::TooManyReplicas)
    };
    if stabilized < spec.min_replicas {
        (stabilized, spec.min_replicas, Limit::TooFewReplicas)
    } else if stabilized > max_allowed {
        (stabilized, max_allowed, max_reason)
    } else {
        (stabilized, stabilized, stab_limit)
    }
}

/// Behavior path: both windows bound the recommendation, then policies limit the rate.
fn normalize_with_behavior(
    spec: &HpaSpec,
    behavior: &Behavior,
    history: &mut History,
    current: u32,
    desired: u32,
    now: TimeMs,
) -> (u32, u32, Limit) {
    let up = behavior.resolved_up();
    let down = behavior.resolved_down(spec.downscale_stabilization_secs);
    let up_cutoff = now.minus_secs(i64::from(up.window_secs));
    let down_cutoff = now.minus_secs(i64::from(down.window_secs));

    // Scale-up is held to the lowest recent recommendation, scale-down to the highest.
    let mut up_rec = desired;
    let mut down_rec = desired;
    for r in &history.recommendations {
        if r.at > up_cutoff {
            up_rec = up_rec.min(r.replicas);
        }
        if r.at > down_cutoff {
            down_rec = down_rec.max(r.replicas);
        }
    }
    let stabilized = current.max(up_rec).min(down_rec);
    history
        .recommendations
        .retain(|r| !(r.at < up_cutoff && r.at < down_cutoff));
    history.recommendations.push(Recommendation {
        at: now,
        replicas: desired,
    });
    let stab_limit = if stabilized == desired {
        Limit::DesiredWithinRange
    } else if desired >= current {
        Limit::ScaleUpStabilized
    } else {
        Limit::ScaleDownStabilized
    };

    let (min, max) = (i64::from(spec.min_replicas), i64::from(spec.max_replicas));
    let cur = i64::from(current);
    let want = i64::from(stabilized);
    let added = |period: u32| changes_in_period(&history.scale_up_events, period, now);
    let removed = |period: u32| changes_in_period(&history.scale_down_events, period, now);
    let (result, limit) = if want > cur {
        let scale_up_limit = match up.select {
            SelectPolicy::Disabled => cur,
            select => {
                let proposals = up.policies.iter().map(|p| {
                    let start = cur - added(p.period_secs) + removed(p.period_secs);
                    match p.kind {
                        PolicyKind::Pods => start + i64::from(p.value),
                        // Rounded up, or a small target could never grow.
                        PolicyKind::Percent => {
                            (start as f64 * (1.0 + f64::from(p.value) / 100.0)).ceil() as i64
                        }
                    }
                });
                if select == SelectPolicy::Min {
                    proposals.min().unwrap_or(i64::from(i32::MAX))
                } else {
                    proposals.max().unwrap_or(i64::from(i32::MIN))
                }
            }
        }
        .max(cur);
        let (max_allowed, reason) = if max > scale_up_limit {
            (scale_up_limit, Limit::ScaleUpLimit)
        } else {
            (max, Limit::TooManyReplicas)
        };
        if want > max_allowed {
            (max_allowed, reason)
        } else {
            (want, stab_limit)
        }
    } else if want < cur {
        let scale_down_limit = match down.select {
            SelectPolicy::Disabled => cur,
            select => {
                let proposals = down.policies.iter().map(|p| {
                    let start = cur - added(p.period_secs) + removed(p.period_secs);
                    match p.kind {
                        PolicyKind::Pods => start - i64::from(p.value),
                        // Truncated toward zero, as Go's int32() conversion does.
                        PolicyKind::Percent => {
                            (start as f64 * (1.0 - f64::from(p.value) / 100.0)).trunc() as i64
                        }
                    }
                });
                if select == SelectPolicy::Min {
                    proposals.max().unwrap_or(i64::from(i32::MIN))
                } else {
                    proposals.min().unwrap_or(i64::from(i32::MAX))
                }
            }
        }
        .min(cur);
        let (min_allowed, reason) = if min < scale_down_limit {
            (scale_down_limit, Limit::ScaleDownLimit)
        } else {
            (min, Limit::TooFewReplicas)
        };
        if want < min_allowed {
            (min_allowed, reason)
        } else {
            (want, stab_limit)
        }
    } else {
        (want, stab_limit)
    };
    (stabilized, to_replicas(result), limit)
}

/// `getReplicasChangePerPeriod`: the change recorded strictly after `now − period`.
fn changes_in_period(events: &[ScaleEvent], period_secs: u32, now: TimeMs) -> i64 {
    let cutoff = now.minus_secs(i64::from(period_secs));
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| i64::from(e.change))
        .sum()
}

/// `storeScaleEvent`: only with a behavior; events older than the longest policy period of
/// their direction can no longer count and are dropped.
fn store_scale_event(spec: &HpaSpec, history: &mut History, from: u32, to: u32, now: TimeMs) {
    let Some(behavior) = &spec.behavior else {
        return;
    };
    let (events, rules) = if to > from {
        (&mut history.scale_up_events, behavior.resolved_up())
    } else {
        (
            &mut history.scale_down_events,
            behavior.resolved_down(spec.downscale_stabilization_secs),
        )
    };
    let longest = rules
        .policies
        .iter()
        .map(|p| p.period_secs)
        .max()
        .unwrap_or(0);
    let cutoff = now.minus_secs(i64::from(longest));
    events.retain(|e| e.at >= cutoff);
    events.push(ScaleEvent {
        at: now,
        change: to.abs_diff(from),
    });
}

/// `int32(math.Ceil(x))` without Go's undefined overflow: NaN and negatives give 0, huge values
/// saturate.
pub(crate) fn ceil_replicas(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        return 0;
    }
    let c = x.ceil();
    if c >= f64::from(i32::MAX) {
        i32::MAX.unsigned_abs()
    } else {
        c as u32
    }
}

fn to_replicas(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: TimeMs = TimeMs(1_000_000_000);

    fn avg(name: &str, target: i64, total: i64) -> MetricInput {
        MetricInput {
            name: name.into(),
            target: MetricTarget::ExternalAverageValue {
                target_milli: target * 1000,
            },
            reading: Some(total * 1000),
        }
    }

    fn value(name: &str, target: i64, total: i64) -> MetricInput {
        MetricInput {
            name: name.into(),
            target: MetricTarget::ExternalValue {
                target_milli: target * 1000,
            },
            reading: Some(total * 1000),
        }
    }

    fn input(current: u32, metrics: &[MetricInput]) -> HpaInput<'_> {
        HpaInput {
            current_replicas: current,
            status_replicas: current,
            ready_pods: current,
            metrics,
        }
    }

    fn run(spec: &HpaSpec, current: u32, metrics: &[MetricInput]) -> HpaOutcome {
        reconcile(spec, &input(current, metrics), History::default(), T0).1
    }

    #[test]
    fn seed_002_queue_of_250_at_5_per_pod_asks_50_capped_by_max_50() {
        // 250 messages, queueLength 5 → 50 replicas; maxReplicaCount 50.
        let spec = HpaSpec::new(1, 50, Some(Behavior::default()));
        let metrics = [avg("s0-aws-sqs-orders", 5, 250)];
        // From 1 replica the default scale-up policy allows max(1 + 4, 2 × 1) = 5 per 15 s ...
        let out = run(&spec, 1, &metrics);
        assert_eq!(out.metric_desired, Some(50));
        assert_eq!((out.desired, out.limit), (5, Limit::ScaleUpLimit));
        // ... and from 40 the proposal is 50 exactly, within max.
        let out = run(&spec, 40, &metrics);
        assert_eq!((out.desired, out.limit), (50, Limit::DesiredWithinRange));
        // Twice the backlog still stops at maxReplicaCount.
        let out = run(&spec, 40, &[avg("s0-aws-sqs-orders", 5, 500)]);
        assert_eq!((out.desired, out.limit), (50, Limit::TooManyReplicas));
    }

    #[test]
    fn seed_003_hundred_messages_at_value_10_ask_for_10_replicas() {
        let spec = HpaSpec::new(1, 100, None);
        let out = run(&spec, 5, &[avg("s0-rabbitmq-orders", 10, 100)]);
        assert_eq!(out.metric_desired, Some(10));
        assert_eq!(out.desired, 10);
    }

    #[test]
    fn tolerance_table() {
        let spec = HpaSpec::new(1, 100, None);
        // (current, target, total, expected proposal)
        let cases = [
            (10, 10, 100, 10), // ratio 1.0
            (10, 10, 110, 10), // ratio 1.1: on the edge, within
            (10, 10, 111, 12), // ratio 1.11: outside → ceil(111/10)
            (10, 10, 90, 10),  // ratio 0.9: within
            (10, 10, 89, 9),   // ratio 0.89: outside → ceil(8.9)
            (1, 10, 0, 0),     // nothing queued: proposal 0 (min clamps later)
        ];
        for (current, target, total, want) in cases {
            let out = run(&spec, current, &[avg("m", target, total)]);
            assert_eq!(
                out.proposals[0].replicas,
                Some(want),
                "{current} {target} {total}"
            );
        }
    }

    #[test]
    fn value_targets_scale_ready_pods_by_the_ratio() {
        let spec = HpaSpec::new(1, 100, None);
        // ratio 2 × 3 ready pods = 6 even though 4 replicas are requested.
        let metrics = [value("m", 10, 20)];
        let i = HpaInput {
            current_replicas: 4,
            status_replicas: 4,
            ready_pods: 3,
            metrics: &metrics,
        };
        let out = reconcile(&spec, &i, History::default(), T0).1;
        assert_eq!(out.proposals[0].replicas, Some(6));
        // Within tolerance: the current count, not the ready pods.
        let out = run(&spec, 4, &[value("m", 100, 105)]);
        assert_eq!(out.proposals[0].replicas, Some(4));
        assert!(out.proposals[0].within_tolerance);
    }

    #[test]
    fn per_direction_tolerance_from_behavior() {
        let behavior = Behavior {
            scale_up: Some(ScalingRules {
                tolerance: Some(0.5),
                ..ScalingRules::default()
            }),
            scale_down: None,
        };
        let spec = HpaSpec::new(1, 100, Some(behavior));
        let out = run(&spec, 10, &[avg("m", 10, 140)]);
        assert_eq!(out.proposals[0].replicas, Some(10));
        let out = run(&spec, 10, &[avg("m", 10, 80)]);
        assert_eq!(out.proposals[0].replicas, Some(8));
    }

    #[test]
    fn max_over_metrics_wins() {
        let spec = HpaSpec::new(1, 100, None);
        let out = run(&spec, 4, &[avg("a", 10, 30), avg("b", 5, 35)]);
        assert_eq!(out.metric_desired, Some(7));
        assert_eq!(out.desired, 7);
    }

    #[test]
    fn failed_metric_blocks_scale_down_but_not_scale_up() {
        let spec = HpaSpec::new(1, 100, None);
        let failed = MetricInput {
            name: "broken".into(),
            target: MetricTarget::ExternalAverageValue { target_milli: 1000 },
            reading: None,
        };
        let out = run(&spec, 8, &[avg("ok", 10, 20), failed.clone()]);
        assert_eq!(out.scaling_active, ScalingActive::FailedGetExternalMetric);
        assert_eq!((out.desired, out.rescale), (8, false));
        let out = run(&spec, 3, &[avg("ok", 10, 60), failed.clone()]);
        assert_eq!(out.desired, 6);
        let out = run(&spec, 2, &[failed]);
        assert_eq!(out.scaling_active, ScalingActive::FailedGetExternalMetric);
    }

    #[test]
    fn zero_replicas_disable_the_hpa_and_out_of_range_snaps_to_bounds() {
        let spec = HpaSpec::new(2, 10, None);
        let out = run(&spec, 0, &[avg("m", 1, 100)]);
        assert_eq!(
            (out.desired, out.scaling_active),
            (0, ScalingActive::ScalingDisabled)
        );
        let out = run(&spec, 12, &[avg("m", 1, 100)]);
        assert_eq!((out.desired, out.limit), (10, Limit::TooManyReplicas));
        let out = run(&spec, 1, &[avg("m", 1, 100)]);
        assert_eq!((out.desired, out.limit), (2, Limit::TooFewReplicas));
    }

    #[test]
    fn legacy_scale_up_is_at_most_double_or_four() {
        let spec = HpaSpec::new(1, 100, None);
        assert_eq!(run(&spec, 1, &[avg("m", 1, 100)]).desired, 4);
        assert_eq!(run(&spec, 10, &[avg("m", 1, 100)]).desired, 20);
    }

    #[test]
    fn stabilization_window_picks_the_max_of_recent_recommendations() {
        let spec = HpaSpec::new(1, 100, None);
        let mut history = History::default();
        // Recommendations 10, 7, 4 at 0 s, 60 s, 120 s while at 10 replicas.
        for (secs, total) in [(0, 100), (60, 70), (120, 40)] {
            let metrics = [avg("m", 10, total)];
            let (h, out) = reconcile(&spec, &input(10, &metrics), history, T0.plus_secs(secs));
            history = h;
            assert_eq!(out.desired, 10, "held at the window max at {secs}s");
        }
        // At 301 s the first sample (10) has left the window; 7 is the max left.
        let metrics = [avg("m", 10, 40)];
        let (h, out) = reconcile(&spec, &input(10, &metrics), history, T0.plus_secs(301));
        assert_eq!((out.desired, out.limit), (7, Limit::ScaleDownStabilized));
        assert_eq!((out.metric_desired, out.stabilized), (Some(4), Some(7)));
        // Past 420 s only 4s remain.
        let (_, out) = reconcile(&spec, &input(7, &metrics), h, T0.plus_secs(421));
        assert_eq!(out.desired, 4);
    }

    #[test]
    fn behavior_scale_up_window_takes_the_min_of_recent_recommendations() {
        let behavior = Behavior {
            scale_up: Some(ScalingRules {
                stabilization_window_secs: Some(60),
                ..ScalingRules::default()
            }),
            scale_down: None,
        };
        let spec = HpaSpec::new(1, 100, Some(behavior));
        let m1 = [avg("m", 10, 30)];
        let (h, out) = reconcile(&spec, &input(2, &m1), History::default(), T0);
        assert_eq!(out.desired, 3);
        let m2 = [avg("m", 10, 90)];
        let (_, out) = reconcile(&spec, &input(3, &m2), h.clone(), T0.plus_secs(30));
        assert_eq!((out.desired, out.limit), (3, Limit::ScaleUpStabilized));
        // Past the window 9 stands; the default policies then allow max(3 + 4, 2 × 3) = 7.
        let (_, out) = reconcile(&spec, &input(3, &m2), h, T0.plus_secs(61));
        assert_eq!(out.stabilized, Some(9));
        assert_eq!((out.desired, out.limit), (7, Limit::ScaleUpLimit));
    }

    fn rules(select: SelectPolicy, policies: Vec<Policy>) -> ScalingRules {
        ScalingRules {
            stabilization_window_secs: Some(0),
            select_policy: Some(select),
            policies: Some(policies),
            tolerance: None,
        }
    }

    #[test]
    fn percent_vs_pods_policies_with_select_policy() {
        let pods = Policy {
            kind: PolicyKind::Pods,
            value: 4,
            period_secs: 60,
        };
        let percent = Policy {
            kind: PolicyKind::Percent,
            value: 50,
            period_secs: 60,
        };
        // (select, current, want up to 100 → expected)
        let cases = [
            (SelectPolicy::Max, 10, 15), // max(10+4, ceil(10×1.5)=15)
            (SelectPolicy::Min, 10, 14), // min(14, 15)
            (SelectPolicy::Max, 4, 8),   // max(8, 6)
            (SelectPolicy::Min, 4, 6),   // min(8, 6)
            (SelectPolicy::Disabled, 4, 4),
        ];
        for (select, current, want) in cases {
            let behavior = Behavior {
                scale_up: Some(rules(select, vec![pods, percent])),
                scale_down: None,
            };
            let spec = HpaSpec::new(1, 100, Some(behavior));
            let out = run(&spec, current, &[avg("m", 1, 100)]);
            assert_eq!(out.desired, want, "{select:?} from {current}");
        }
        // Scale down from 10 towards 1: Max = most change = min(10−4, trunc(10×0.5)) = 5.
        let down_cases = [
            (SelectPolicy::Max, 5),
            (SelectPolicy::Min, 6),
            (SelectPolicy::Disabled, 10),
        ];
        for (select, want) in down_cases {
            let behavior = Behavior {
                scale_up: None,
                scale_down: Some(rules(select, vec![pods, percent])),
            };
            let spec = HpaSpec::new(1, 100, Some(behavior));
            let out = run(&spec, 10, &[avg("m", 1, 1)]);
            assert_eq!(out.desired, want, "{select:?}");
        }
    }

    #[test]
    fn policies_count_changes_already_made_in_the_period() {
        let behavior = Behavior {
            scale_up: Some(rules(
                SelectPolicy::Max,
                vec![Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_secs: 60,
                }],
            )),
            scale_down: None,
        };
        let spec = HpaSpec::new(1, 100, Some(behavior));
        let m = [avg("m", 1, 100)];
        let (h, out) = reconcile(&spec, &input(2, &m), History::default(), T0);
        assert_eq!(out.desired, 6);
        assert_eq!(h.scale_up_events.len(), 1);
        // 30 s later the 4 pods already added use up the period's budget.
        let (h2, out) = reconcile(&spec, &input(6, &m), h.clone(), T0.plus_secs(30));
        assert_eq!((out.desired, out.limit), (6, Limit::ScaleUpLimit));
        // After the period the budget is back.
        let (_, out) = reconcile(&spec, &input(6, &m), h2, T0.plus_secs(61));
        assert_eq!(out.desired, 10);
    }

    #[test]
    fn default_behavior_scale_down_waits_300s_then_drops_all_at_once() {
        let spec = HpaSpec::new(1, 100, Some(Behavior::default()));
        let high = [avg("m", 1, 20)];
        let (h, _) = reconcile(&spec, &input(20, &high), History::default(), T0);
        let low = [avg("m", 1, 2)];
        let (h, out) = reconcile(&spec, &input(20, &low), h, T0.plus_secs(299));
        assert_eq!((out.desired, out.limit), (20, Limit::ScaleDownStabilized));
        let (_, out) = reconcile(&spec, &input(20, &low), h, T0.plus_secs(300));
        assert_eq!(out.desired, 2);
    }

    fn arb_rules() -> impl Strategy<Value = Option<ScalingRules>> {
        let policy =
            (any::<bool>(), 0u32..300, 1u32..120).prop_map(|(pods, value, period)| Policy {
                kind: if pods {
                    PolicyKind::Pods
                } else {
                    PolicyKind::Percent
                },
                value,
                period_secs: period,
            });
        let select = prop_oneof![
            Just(SelectPolicy::Max),
            Just(SelectPolicy::Min),
            Just(SelectPolicy::Disabled)
        ];
        proptest::option::of(
            (
                proptest::option::of(0u32..600),
                proptest::option::of(select),
                proptest::option::of(proptest::collection::vec(policy, 0..3)),
            )
                .prop_map(|(w, s, p)| ScalingRules {
                    stabilization_window_secs: w,
                    select_policy: s,
                    policies: p,
                    tolerance: None,
                }),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn desired_stays_within_bounds_over_a_run(
            min in 1u32..5,
            span in 0u32..50,
            with_behavior in any::<bool>(),
            up in arb_rules(),
            down in arb_rules(),
            start in 1u32..60,
            steps in proptest::collection::vec((0i64..2_000_000, 1i64..100_000, 0i64..90), 1..12),
        ) {
            let max = min + span;
            let behavior = with_behavior.then_some(Behavior { scale_up: up, scale_down: down });
            let spec = HpaSpec::new(min, max, behavior);
            let mut history = History::default();
            let mut current = start;
            let mut now = T0;
            for (total, target, dt) in steps {
                let metrics = [MetricInput {
                    name: "m".into(),
                    target: MetricTarget::ExternalAverageValue { target_milli: target },
                    reading: Some(total),
                }];
                let (h, out) = reconcile(&spec, &input(current, &metrics), history.clone(), now);
                let (h2, out2) = reconcile(&spec, &input(current, &metrics), history, now);
                prop_assert_eq!(&h, &h2);
                prop_assert_eq!(&out, &out2);
                prop_assert!(out.desired >= min && out.desired <= max,
                    "{} not in [{min}, {max}] from {current}", out.desired);
                history = h;
                current = out.desired;
                now = now.plus_secs(dt);
            }
        }
    }
}
