//! One entry point for a ScaledObject: observation in, desired replicas, the arithmetic behind
//! them and the effects out.
//!
//! ```text
//!   Observation ──► health (fallback) ──► value per trigger ──► composite (scalingModifiers)
//!                                              │                     │
//!                                              ▼                     ▼
//!                               activation::step (0 ↔ 1)      hpa::reconcile (1 ↔ N)
//!                                              └──────► Decision ◄───┘
//! ```
//!
//! Order within a tick follows upstream's split of work: KEDA's poll (activation) runs first;
//! if it writes `/scale` this tick, the HPA sees the new count on its next sync and does not run
//! now. While paused the HPA does not exist. Values served to the HPA are clamped to ≥ 0 and
//! truncated to milli-units as KEDA does (keda.md §3.2), except the composite metric, which may
//! be negative.

use std::collections::BTreeMap;

use crate::TimeMs;
use crate::activation::{
    self, ActivationConfig, ActivationInput, Annotations, Condition, ConditionReason,
    ConditionStatus, ConditionType, Effect, EventReason,
};
use crate::fallback::{self, FallbackBehavior, FallbackConfig, Health, TargetType};
use crate::hpa::{self, Behavior, HpaInput, HpaOutcome, HpaSpec, MetricInput, MetricTarget};
use crate::modifiers::{COMPOSITE_METRIC_NAME, EvalError, ScalingModifiers};

/// How a trigger reaches the HPA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TriggerKind {
    /// An External metric served by the pod layer.
    External {
        /// The metric target (`queueLength`, `threshold`, `value` …).
        target: f64,
        /// `metricType` (AverageValue unless the trigger says Value).
        target_type: TargetType,
        /// The activation threshold (`activationQueueLength` …, default 0).
        activation_threshold: f64,
    },
    /// A cpu/memory trigger: a Resource metric the HPA reads itself. Never drives activation
    /// unless every trigger is one; never falls back.
    Resource {
        /// Target: utilization percent, or average value in milli-units.
        target: i64,
    },
}

/// One `spec.triggers[]` entry reduced to what decisions need.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerConfig {
    /// The HPA metric name: `s<i>-…` from [`crate::naming::metric_name`], or `cpu`/`memory`.
    pub metric_name: String,
    /// `name`, which makes the trigger addressable from a `scalingModifiers` formula.
    pub name: Option<String>,
    /// Kind and targets.
    pub kind: TriggerKind,
}

/// The ScaledObject, with defaults applied and annotations parsed by the shell.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledObjectConfig {
    /// Replica bounds and timers.
    pub activation: ActivationConfig,
    /// Triggers in spec order.
    pub triggers: Vec<TriggerConfig>,
    /// `spec.fallback`.
    pub fallback: Option<FallbackConfig>,
    /// `advanced.horizontalPodAutoscalerConfig.behavior`.
    pub behavior: Option<Behavior>,
    /// `advanced.scalingModifiers`.
    pub modifiers: Option<ScalingModifiers>,
    /// Pause and force-activation annotations.
    pub annotations: Annotations,
    /// `metadata.creationTimestamp`.
    pub created_at: TimeMs,
}

/// One trigger's reading this poll.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TriggerObservation {
    /// The scaler's raw value; `None` when the fetch failed.
    pub value: Option<f64>,
    /// The scaler's own activity verdict where it has one (cron window, external `IsActive`,
    /// RabbitMQ rate modes); `None` means "value above the activation threshold".
    pub is_active: Option<bool>,
}

impl TriggerObservation {
    /// A successful reading judged by the threshold.
    #[must_use]
    pub fn value(v: f64) -> Self {
        Self {
            value: Some(v),
            is_active: None,
        }
    }

    /// A failed fetch.
    #[must_use]
    pub fn failed() -> Self {
        Self {
            value: None,
            is_active: None,
        }
    }
}

/// What the shell observed this tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The target's `/scale` `spec.replicas`.
    pub current_replicas: u32,
    /// The target's `/scale` `status.replicas`.
    pub status_replicas: u32,
    /// Running and Ready pods of the target.
    pub ready_pods: u32,
    /// Readings in trigger order; a missing entry counts as a failed fetch.
    pub triggers: Vec<TriggerObservation>,
}

/// Everything the pod layer remembers between ticks for one ScaledObject.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodLayerState {
    /// Activation machine.
    pub activation: activation::State,
    /// HPA recommendations and scale events.
    pub hpa: hpa::History,
    /// `status.health`.
    pub health: Health,
    /// Whether fallback was engaged last tick, for the Fallback events.
    pub fallback_active: bool,
}

/// Where a served value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueSource {
    /// The scaler.
    Scaler,
    /// Fallback replaced a failing scaler.
    Fallback,
    /// The `scalingModifiers` formula.
    Formula,
    /// Nothing: the fetch failed and no fallback applies.
    Failed,
}

/// One row of "why": a metric, its value and target, and the replicas it implies.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerArithmetic {
    /// HPA metric name.
    pub metric_name: String,
    /// Value served to the HPA (`None` when failed).
    pub value: Option<f64>,
    /// Where the value came from.
    pub source: ValueSource,
    /// The target.
    pub target: f64,
    /// The target type (`None` for resource metrics).
    pub target_type: Option<TargetType>,
    /// Whether this metric counts as active.
    pub active: bool,
    /// Replicas the HPA formula gives for this metric alone.
    pub replicas: Option<u32>,
    /// The HPA's usage ratio for this metric.
    pub usage_ratio: Option<f64>,
}

/// The result of one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Replicas the target should have after this tick's effects.
    pub desired_replicas: u32,
    /// Whether the ScaledObject is active (the `Active` condition).
    pub active: bool,
    /// Per-trigger arithmetic, in trigger order (with scalingModifiers: the inputs).
    pub triggers: Vec<TriggerArithmetic>,
    /// The composite metric, when scalingModifiers is set.
    pub composite: Option<TriggerArithmetic>,
    /// The HPA's sync, when it ran this tick.
    pub hpa: Option<HpaOutcome>,
    /// Whether fallback is engaged for any metric.
    pub fallback_active: bool,
    /// The full condition set the status should show (write with server-side apply).
    pub conditions: Vec<Condition>,
    /// Commands for the shell, in order.
    pub effects: Vec<Effect>,
}

/// Per-trigger value after fallback, before the HPA.
struct Resolved {
    raw: Option<f64>,
    served: Option<f64>,
    source: ValueSource,
    active: bool,
    engaged: bool,
}

/// KEDA never serves NaN, infinities or negatives to the HPA: they become 0.
fn clamp_served(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 { v } else { 0.0 }
}

/// Milli-units as `resource.NewMilliQuantity(int64(v*1000))`: truncated, saturating.
fn to_milli(v: f64) -> i64 {
    let m = (v * 1000.0).trunc();
    if m.is_nan() {
        0
    } else {
        m.clamp(i64::MIN as f64, i64::MAX as f64) as i64
    }
}

fn hpa_target(target: f64, target_type: TargetType) -> MetricTarget {
    let target_milli = to_milli(target).max(1);
    match target_type {
        TargetType::AverageValue => MetricTarget::ExternalAverageValue { target_milli },
        TargetType::Value => MetricTarget::ExternalValue { target_milli },
    }
}

fn condition(kind: ConditionType, status: ConditionStatus, reason: ConditionReason) -> Condition {
    Condition {
        kind,
        status,
        reason,
    }
}

/// One tick for one ScaledObject.
///
/// Pure and deterministic: the same arguments always give the same state and decision.
#[must_use]
pub fn decide(
    config: &ScaledObjectConfig,
    observation: &Observation,
    state: &PodLayerState,
    now: TimeMs,
) -> (PodLayerState, Decision) {
    let current = observation.current_replicas;
    let mut health = state.health.clone();

    // Fallback needs a valid block; with scalingModifiers, an integer target (QUIRK).
    let fallback_cfg = config.fallback.filter(|_| {
        config
            .modifiers
            .as_ref()
            .is_none_or(|m| m.target_is_integer)
    });
    let fallback_count = fallback_cfg.map(|f| fallback::fallback_replicas(&f, current));

    // 1. Health and per-trigger values.
    let resolved: Vec<Resolved> = config
        .triggers
        .iter()
        .enumerate()
        .map(|(i, trigger)| {
            let obs = observation
                .triggers
                .get(i)
                .copied()
                .unwrap_or_else(TriggerObservation::failed);
            match trigger.kind {
                TriggerKind::Resource { .. } => Resolved {
                    raw: obs.value,
                    served: obs.value.map(clamp_served),
                    source: if obs.value.is_some() {
                        ValueSource::Scaler
                    } else {
                        ValueSource::Failed
                    },
                    active: false,
                    engaged: false,
                },
                TriggerKind::External {
                    target,
                    target_type,
                    activation_threshold,
                } => {
                    health.record(&trigger.metric_name, obs.value.is_some());
                    if let Some(v) = obs.value {
                        return Resolved {
                            raw: Some(v),
                            served: Some(clamp_served(v)),
                            source: ValueSource::Scaler,
                            active: obs.is_active.unwrap_or(v > activation_threshold),
                            engaged: false,
                        };
                    }
                    let engaged =
                        fallback_cfg.is_some_and(|f| health.is_engaged(&trigger.metric_name, &f));
                    let by_formula = fallback_cfg
                        .is_some_and(|f| f.behavior == FallbackBehavior::ScalingModifiers);
                    let fb = (engaged && !by_formula && config.modifiers.is_none())
                        .then(|| {
                            fallback::fallback_value(
                                target,
                                target_type,
                                fallback_count.unwrap_or(0),
                                observation.ready_pods,
                            )
                            .ok()
                        })
                        .flatten();
                    Resolved {
                        raw: None,
                        served: fb,
                        source: if fb.is_some() {
                            ValueSource::Fallback
                        } else {
                            ValueSource::Failed
                        },
                        active: fb.is_some(),
                        engaged,
                    }
                }
            }
        })
        .collect();
    let any_error = resolved
        .iter()
        .any(|r| r.source == ValueSource::Failed && !r.engaged);
    let fallback_active = fallback_cfg.is_some_and(|f| health.any_engaged(&f));

    // 2. The composite metric, when the formula replaces the external metrics.
    let composite = config.modifiers.as_ref().map(|m| {
        composite_value(
            config,
            m,
            &resolved,
            fallback_cfg,
            fallback_count,
            observation,
        )
    });

    // 3. Activity.
    let all_resource = config
        .triggers
        .iter()
        .all(|t| matches!(t.kind, TriggerKind::Resource { .. }));
    let any_failed = resolved.iter().any(|r| r.source == ValueSource::Failed);
    let active = match (&composite, &config.modifiers) {
        (Some((v, source)), Some(m)) => {
            !any_error
                && v.is_some_and(|v| v > m.activation_target || *source == ValueSource::Fallback)
        }
        _ => resolved.iter().any(|r| r.active) || (all_resource && !any_failed),
    };
    let active_triggers: Vec<String> = match &config.modifiers {
        Some(_) if active => vec![COMPOSITE_METRIC_NAME.to_owned()],
        Some(_) => Vec::new(),
        None => config
            .triggers
            .iter()
            .zip(&resolved)
            .filter(|(_, r)| r.active)
            .map(|(t, _)| t.metric_name.clone())
            .collect(),
    };

    // 4. KEDA's poll.
    let input = ActivationInput {
        config: config.activation,
        current_replicas: current,
        active,
        active_triggers,
        trigger_error: any_error,
        fallback_replicas: config.fallback.map(|f| f.replicas),
        annotations: config.annotations,
        created_at: config.created_at,
    };
    let (activation_state, mut effects) = activation::step(state.activation, &input, now);
    let keda_set = effects.iter().rev().find_map(|e| match e {
        Effect::SetReplicas { n } => Some(*n),
        _ => None,
    });

    // 5. The HPA's sync.
    let metrics = hpa_metrics(config, &resolved, composite.as_ref());
    let spec = hpa_spec(config);
    let hpa_input = HpaInput {
        current_replicas: current,
        status_replicas: observation.status_replicas,
        ready_pods: observation.ready_pods,
        metrics: &metrics,
    };
    let (history, hpa_outcome, proposals) = if activation_state.is_paused() || keda_set.is_some() {
        (state.hpa.clone(), None, hpa::propose(&spec, &hpa_input))
    } else {
        let (history, outcome) = hpa::reconcile(&spec, &hpa_input, state.hpa.clone(), now);
        if outcome.rescale {
            effects.push(Effect::SetReplicas { n: outcome.desired });
        }
        let proposals = outcome.proposals.clone();
        (history, Some(outcome), proposals)
    };
    let desired_replicas = effects
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::SetReplicas { n } => Some(*n),
            _ => None,
        })
        .unwrap_or(current);

    // 6. Fallback transitions and the full condition set.
    if fallback_active != state.fallback_active {
        let (status, reason, event) = if fallback_active {
            (
                ConditionStatus::True,
                ConditionReason::FallbackExists,
                EventReason::ScaledObjectFallbackActivated,
            )
        } else {
            (
                ConditionStatus::False,
                ConditionReason::NoFallbackFound,
                EventReason::ScaledObjectFallbackDeactivated,
            )
        };
        effects.push(Effect::SetCondition(condition(
            ConditionType::Fallback,
            status,
            reason,
        )));
        effects.push(Effect::Event {
            reason: event,
            from: current,
            to: desired_replicas,
            triggered_by: Vec::new(),
        });
    }
    let conditions = conditions(
        config,
        &activation_state,
        active,
        any_error,
        fallback_active,
    );

    // 7. The "why" rows.
    let proposal_for = |name: &str| proposals.iter().find(|p| p.name == name);
    let triggers = config
        .triggers
        .iter()
        .zip(&resolved)
        .map(|(t, r)| {
            let (target, target_type) = match t.kind {
                TriggerKind::External {
                    target,
                    target_type,
                    ..
                } => (target, Some(target_type)),
                TriggerKind::Resource { target } => (target as f64, None),
            };
            let p = if config.modifiers.is_some() && target_type.is_some() {
                None
            } else {
                proposal_for(&t.metric_name)
            };
            TriggerArithmetic {
                metric_name: t.metric_name.clone(),
                value: r.served,
                source: r.source,
                target,
                target_type,
                active: r.active,
                replicas: p.and_then(|p| p.replicas),
                usage_ratio: p.and_then(|p| p.usage_ratio),
            }
        })
        .collect();
    let composite = composite
        .zip(config.modifiers.as_ref())
        .map(|((v, source), m)| {
            let p = proposal_for(COMPOSITE_METRIC_NAME);
            TriggerArithmetic {
                metric_name: COMPOSITE_METRIC_NAME.to_owned(),
                value: v,
                source,
                target: m.target,
                target_type: Some(m.metric_type),
                active,
                replicas: p.and_then(|p| p.replicas),
                usage_ratio: p.and_then(|p| p.usage_ratio),
            }
        });

    let next = PodLayerState {
        activation: activation_state,
        hpa: history,
        health,
        fallback_active,
    };
    let decision = Decision {
        desired_replicas,
        active,
        triggers,
        composite,
        hpa: hpa_outcome,
        fallback_active,
        conditions,
        effects,
    };
    (next, decision)
}

/// The composite value and where it came from (keda.md §6.3, §6.4).
fn composite_value(
    config: &ScaledObjectConfig,
    modifiers: &ScalingModifiers,
    resolved: &[Resolved],
    fallback_cfg: Option<FallbackConfig>,
    fallback_count: Option<u32>,
    observation: &Observation,
) -> (Option<f64>, ValueSource) {
    let by_formula = fallback_cfg.is_some_and(|f| f.behavior == FallbackBehavior::ScalingModifiers);
    let engaged = resolved.iter().any(|r| r.engaged);
    let failed = resolved.iter().zip(&config.triggers).any(|(r, t)| {
        r.raw.is_none() && !r.engaged && matches!(t.kind, TriggerKind::External { .. })
    });
    let fallback_value = || {
        fallback::fallback_value(
            modifiers.target,
            modifiers.metric_type,
            fallback_count.unwrap_or(0),
            observation.ready_pods,
        )
        .ok()
    };
    if failed {
        return (None, ValueSource::Failed);
    }
    if engaged && !by_formula {
        let v = fallback_value();
        let source = if v.is_some() {
            ValueSource::Fallback
        } else {
            ValueSource::Failed
        };
        return (v, source);
    }
    let env: BTreeMap<String, f64> = config
        .triggers
        .iter()
        .zip(resolved)
        .filter_map(|(t, r)| Some((t.name.clone()?, r.raw?)))
        .collect();
    match modifiers.formula.eval(&env) {
        Ok(v) => (Some(v), ValueSource::Formula),
        Err(EvalError::NilResult | EvalError::MissingValue { .. }) if engaged && by_formula => {
            let r = f64::from(fallback_cfg.map_or(0, |f| f.replicas));
            (Some(r * modifiers.target), ValueSource::Fallback)
        }
        Err(_) => (None, ValueSource::Failed),
    }
}

/// The HPA KEDA generates: `min = max(minReplicaCount, 1)`, pause-in/out as Disabled policies.
fn hpa_spec(config: &ScaledObjectConfig) -> HpaSpec {
    let ann = config.annotations;
    let mut behavior = config.behavior.clone();
    if ann.paused_scale_in || ann.paused_scale_out {
        let b = behavior.get_or_insert_with(Behavior::default);
        let disable = |rules: &mut Option<hpa::ScalingRules>| {
            rules.get_or_insert_with(Default::default).select_policy =
                Some(hpa::SelectPolicy::Disabled);
        };
        if ann.paused_scale_in {
            disable(&mut b.scale_down);
        }
        if ann.paused_scale_out {
            disable(&mut b.scale_up);
        }
    }
    HpaSpec::new(
        config.activation.min_replicas.max(1),
        config.activation.max_replicas,
        behavior,
    )
}

/// The HPA's metrics: one per trigger, or the composite plus resource metrics.
fn hpa_metrics(
    config: &ScaledObjectConfig,
    resolved: &[Resolved],
    composite: Option<&(Option<f64>, ValueSource)>,
) -> Vec<MetricInput> {
    let mut metrics = Vec::with_capacity(config.triggers.len());
    if let (Some(m), Some((v, _))) = (&config.modifiers, composite) {
        metrics.push(MetricInput {
            name: COMPOSITE_METRIC_NAME.to_owned(),
            target: hpa_target(m.target, m.metric_type),
            reading: v.map(to_milli),
        });
    }
    for (t, r) in config.triggers.iter().zip(resolved) {
        match t.kind {
            TriggerKind::External {
                target,
                target_type,
                ..
            } => {
                if config.modifiers.is_none() {
                    metrics.push(MetricInput {
                        name: t.metric_name.clone(),
                        target: hpa_target(target, target_type),
                        reading: r.served.map(to_milli),
                    });
                }
            }
            TriggerKind::Resource { target } => metrics.push(MetricInput {
                name: t.metric_name.clone(),
                target: MetricTarget::Resource {
                    target: target.max(1),
                },
                reading: r.served.map(|v| v as i64),
            }),
        }
    }
    metrics
}

/// The four conditions as they should read after this tick.
fn conditions(
    config: &ScaledObjectConfig,
    state: &activation::State,
    active: bool,
    any_error: bool,
    fallback_active: bool,
) -> Vec<Condition> {
    let ready = if any_error && active {
        condition(
            ConditionType::Ready,
            ConditionStatus::Unknown,
            ConditionReason::PartialTriggerError,
        )
    } else if any_error && config.fallback.is_none() {
        condition(
            ConditionType::Ready,
            ConditionStatus::False,
            ConditionReason::TriggerError,
        )
    } else {
        condition(
            ConditionType::Ready,
            ConditionStatus::True,
            ConditionReason::ScaledObjectReady,
        )
    };
    let active_cond = match state {
        activation::State::CoolingDown { .. } => condition(
            ConditionType::Active,
            ConditionStatus::False,
            ConditionReason::ScalerCooldown,
        ),
        _ if active => condition(
            ConditionType::Active,
            ConditionStatus::True,
            ConditionReason::ScalerActive,
        ),
        _ => condition(
            ConditionType::Active,
            ConditionStatus::False,
            ConditionReason::ScalerNotActive,
        ),
    };
    let fallback = if fallback_active {
        condition(
            ConditionType::Fallback,
            ConditionStatus::True,
            ConditionReason::FallbackExists,
        )
    } else {
        condition(
            ConditionType::Fallback,
            ConditionStatus::False,
            ConditionReason::NoFallbackFound,
        )
    };
    let paused = if state.is_paused() {
        condition(
            ConditionType::Paused,
            ConditionStatus::True,
            ConditionReason::ScaledObjectPaused,
        )
    } else {
        condition(
            ConditionType::Paused,
            ConditionStatus::False,
            ConditionReason::ScaledObjectUnpaused,
        )
    };
    vec![ready, active_cond, fallback, paused]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Pause;
    use proptest::prelude::*;

    const T0: TimeMs = TimeMs(1_700_000_000_000);

    fn external(name: &str, target: f64) -> TriggerConfig {
        TriggerConfig {
            metric_name: name.into(),
            name: None,
            kind: TriggerKind::External {
                target,
                target_type: TargetType::AverageValue,
                activation_threshold: 0.0,
            },
        }
    }

    /// Seed 002: min 0, max 50, cooldown 60, SQS queueLength 5.
    fn seed_002() -> ScaledObjectConfig {
        ScaledObjectConfig {
            activation: ActivationConfig {
                min_replicas: 0,
                max_replicas: 50,
                cooldown_secs: 60,
                ..ActivationConfig::default()
            },
            triggers: vec![external("s0-aws-sqs-orders", 5.0)],
            fallback: None,
            behavior: None,
            modifiers: None,
            annotations: Annotations::default(),
            created_at: T0.minus_secs(3600),
        }
    }

    fn obs(current: u32, values: &[Option<f64>]) -> Observation {
        Observation {
            current_replicas: current,
            status_replicas: current,
            ready_pods: current,
            triggers: values
                .iter()
                .map(|v| v.map_or_else(TriggerObservation::failed, TriggerObservation::value))
                .collect(),
        }
    }

    /// Runs ticks every `every` seconds, feeding each decision's replicas into the next tick.
    fn run(
        config: &ScaledObjectConfig,
        start: u32,
        values: &[Option<f64>],
        ticks: usize,
        every: i64,
    ) -> (PodLayerState, Vec<u32>) {
        let mut state = PodLayerState::default();
        let mut current = start;
        let mut seen = Vec::new();
        for k in 0..ticks {
            let (s, d) = decide(
                config,
                &obs(current, values),
                &state,
                T0.plus_secs(every * k as i64),
            );
            state = s;
            current = d.desired_replicas;
            seen.push(current);
        }
        (state, seen)
    }

    #[test]
    fn seed_002_250_messages_reach_50_replicas_and_no_more() {
        let config = seed_002();
        let (_, seen) = run(&config, 0, &[Some(250.0)], 8, 15);
        // KEDA activates 0 → 1, then the HPA without behavior at most doubles (min 4).
        assert_eq!(seen, vec![1, 4, 8, 16, 32, 50, 50, 50]);
        let (_, d) = decide(
            &config,
            &obs(50, &[Some(250.0)]),
            &PodLayerState::default(),
            T0,
        );
        assert_eq!(d.triggers[0].replicas, Some(50));
        assert_eq!(d.triggers[0].value, Some(250.0));
        assert!(d.active);
    }

    #[test]
    fn seed_002_drains_to_zero_after_the_60s_cooldown() {
        let config = seed_002();
        // 40 messages settle at 8 replicas; the last active poll is at 60 s.
        let (state, seen) = run(&config, 0, &[Some(40.0)], 5, 15);
        assert_eq!(seen, vec![1, 4, 8, 8, 8]);
        let t = T0.plus_secs(60);
        let (state, d) = decide(&config, &obs(8, &[Some(0.0)]), &state, t.plus_secs(15));
        assert!(!d.active);
        // The HPA keeps ≥ 1 and the 300 s window holds the count; KEDA waits for the cooldown.
        assert_eq!(d.desired_replicas, 8);
        let (_, d) = decide(&config, &obs(8, &[Some(0.0)]), &state, t.plus_secs(61));
        assert_eq!(d.desired_replicas, 0);
        assert!(d.effects.iter().any(|e| matches!(
            e,
            Effect::Event {
                reason: EventReason::KedaScaleTargetDeactivated,
                ..
            }
        )));
    }

    #[test]
    fn seed_003_100_messages_at_value_10_give_10_replicas() {
        let mut config = seed_002();
        config.activation.min_replicas = 1;
        config.activation.max_replicas = 100;
        config.triggers = vec![external("s0-rabbitmq-orders", 10.0)];
        let (_, seen) = run(&config, 1, &[Some(100.0)], 4, 15);
        assert_eq!(seen, vec![4, 8, 10, 10]);
        let (_, d) = decide(
            &config,
            &obs(10, &[Some(100.0)]),
            &PodLayerState::default(),
            T0,
        );
        assert_eq!(d.triggers[0].replicas, Some(10));
        assert_eq!(d.triggers[0].usage_ratio, Some(1.0));
    }

    #[test]
    fn max_over_triggers_and_why_rows() {
        let mut config = seed_002();
        config.triggers.push(external("s1-redis-jobs", 2.0));
        let (_, d) = decide(
            &config,
            &obs(5, &[Some(20.0), Some(20.0)]),
            &PodLayerState::default(),
            T0,
        );
        let rows: Vec<_> = d
            .triggers
            .iter()
            .map(|t| (t.metric_name.as_str(), t.replicas))
            .collect();
        assert_eq!(
            rows,
            [("s0-aws-sqs-orders", Some(4)), ("s1-redis-jobs", Some(10))]
        );
        assert_eq!(d.desired_replicas, 10);
    }

    #[test]
    fn fallback_engages_after_threshold_and_serves_the_fallback_count() {
        let mut config = seed_002();
        config.fallback = Some(FallbackConfig {
            failure_threshold: 2,
            replicas: 6,
            behavior: FallbackBehavior::Static,
        });
        let mut state = PodLayerState::default();
        let mut current = 3;
        // failureThreshold 2: the third consecutive failure engages.
        for k in 0..2 {
            let (s, d) = decide(
                &config,
                &obs(current, &[None]),
                &state,
                T0.plus_secs(15 * k),
            );
            assert!(!d.fallback_active, "tick {k}");
            assert_eq!(d.desired_replicas, current);
            state = s;
        }
        let (s, d) = decide(&config, &obs(current, &[None]), &state, T0.plus_secs(30));
        assert!(d.fallback_active);
        assert_eq!(d.triggers[0].source, ValueSource::Fallback);
        assert_eq!(d.triggers[0].value, Some(30.0));
        assert_eq!(d.desired_replicas, 6);
        assert!(d.effects.contains(&Effect::SetCondition(condition(
            ConditionType::Fallback,
            ConditionStatus::True,
            ConditionReason::FallbackExists
        ))));
        current = d.desired_replicas;
        let (_, d) = decide(&config, &obs(current, &[Some(10.0)]), &s, T0.plus_secs(60));
        assert!(!d.fallback_active);
        assert!(d.effects.iter().any(|e| matches!(
            e,
            Effect::Event {
                reason: EventReason::ScaledObjectFallbackDeactivated,
                ..
            }
        )));
    }

    #[test]
    fn errors_without_fallback_hold_replicas_and_set_trigger_error() {
        let config = seed_002();
        let (_, d) = decide(&config, &obs(4, &[None]), &PodLayerState::default(), T0);
        assert_eq!(d.desired_replicas, 4);
        assert_eq!(
            d.conditions[0],
            condition(
                ConditionType::Ready,
                ConditionStatus::False,
                ConditionReason::TriggerError
            )
        );
    }

    fn with_modifiers(formula: &str, target: &str) -> ScaledObjectConfig {
        let mut config = seed_002();
        config.triggers = vec![
            TriggerConfig {
                name: Some("queue".into()),
                ..external("s0-rabbitmq-orders", 10.0)
            },
            TriggerConfig {
                name: Some("lag".into()),
                ..external("s1-kafka-events", 10.0)
            },
        ];
        config.modifiers = Some(
            ScalingModifiers::new(formula, target, Some("5"), TargetType::AverageValue).unwrap(),
        );
        config
    }

    #[test]
    fn scaling_modifiers_replace_external_metrics_with_the_composite() {
        let config = with_modifiers("(queue + lag) / 2", "10");
        let (_, d) = decide(
            &config,
            &obs(2, &[Some(60.0), Some(20.0)]),
            &PodLayerState::default(),
            T0,
        );
        let c = d.composite.unwrap();
        assert_eq!(
            (c.value, c.source, c.replicas),
            (Some(40.0), ValueSource::Formula, Some(4))
        );
        assert_eq!(d.desired_replicas, 4);
        assert_eq!(d.triggers[0].replicas, None);
        // Activation compares the composite with activationTarget (5), strictly.
        let (_, d) = decide(
            &config,
            &obs(0, &[Some(5.0), Some(5.0)]),
            &PodLayerState::default(),
            T0,
        );
        assert!(!d.active);
        assert_eq!(d.desired_replicas, 0);
    }

    #[test]
    fn scaling_modifiers_fallback_behavior_feeds_missing_triggers_as_nil() {
        let mut config = with_modifiers("queue ?? lag", "10");
        config.fallback = Some(FallbackConfig {
            failure_threshold: 0,
            replicas: 3,
            behavior: FallbackBehavior::ScalingModifiers,
        });
        let (_, d) = decide(
            &config,
            &obs(4, &[None, Some(70.0)]),
            &PodLayerState::default(),
            T0,
        );
        assert_eq!(d.composite.as_ref().and_then(|c| c.value), Some(70.0));
        assert_eq!(d.desired_replicas, 7);
        // Nothing left for the formula: fallback.replicas × target.
        let (_, d) = decide(
            &config,
            &obs(4, &[None, None]),
            &PodLayerState::default(),
            T0,
        );
        let c = d.composite.unwrap();
        assert_eq!((c.value, c.source), (Some(30.0), ValueSource::Fallback));
        assert_eq!(d.desired_replicas, 3);
    }

    #[test]
    fn paused_replicas_hold_the_count_and_skip_the_hpa() {
        let mut config = seed_002();
        config.annotations.pause = Pause::Replicas(2);
        let (s, d) = decide(
            &config,
            &obs(9, &[Some(250.0)]),
            &PodLayerState::default(),
            T0,
        );
        assert_eq!(d.desired_replicas, 2);
        assert!(d.hpa.is_none());
        assert!(d.effects.contains(&Effect::RemoveHpa));
        assert_eq!(d.conditions[3].status, ConditionStatus::True);
        let (_, d) = decide(&config, &obs(2, &[Some(250.0)]), &s, T0.plus_secs(15));
        assert_eq!(d.desired_replicas, 2);
        assert!(d.effects.is_empty());
    }

    #[test]
    fn paused_scale_in_disables_hpa_scale_down() {
        let mut config = seed_002();
        config.annotations.paused_scale_in = true;
        let (_, d) = decide(
            &config,
            &obs(10, &[Some(5.0)]),
            &PodLayerState::default(),
            T0,
        );
        assert_eq!(d.desired_replicas, 10);
    }

    #[test]
    fn cpu_only_objects_are_always_active() {
        let mut config = seed_002();
        config.activation.min_replicas = 1;
        config.triggers = vec![TriggerConfig {
            metric_name: "cpu".into(),
            name: None,
            kind: TriggerKind::Resource { target: 50 },
        }];
        let (_, d) = decide(
            &config,
            &obs(4, &[Some(100.0)]),
            &PodLayerState::default(),
            T0,
        );
        assert!(d.active);
        assert_eq!(d.desired_replicas, 8);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn replicas_stay_within_bounds_and_decisions_are_deterministic(
            min in 0u32..4,
            span in 1u32..40,
            idle in any::<bool>(),
            with_fallback in any::<bool>(),
            ticks in proptest::collection::vec(
                (proptest::option::of(0f64..2_000.0), proptest::option::of(0f64..500.0), 1i64..120),
                1..16,
            ),
        ) {
            let mut config = seed_002();
            config.activation.min_replicas = if idle { min.max(1) } else { min };
            config.activation.max_replicas = min.max(1) + span;
            config.activation.idle_replicas = idle.then_some(0);
            config.triggers.push(external("s1-redis-jobs", 3.0));
            config.fallback = with_fallback.then_some(FallbackConfig {
                failure_threshold: 1,
                replicas: min + 1,
                behavior: FallbackBehavior::CurrentReplicasIfHigher,
            });
            let mut state = PodLayerState::default();
            let mut current = 0;
            let mut now = T0;
            for (a, b, dt) in ticks {
                let o = obs(current, &[a, b]);
                let (s1, d1) = decide(&config, &o, &state, now);
                let (s2, d2) = decide(&config, &o, &state, now);
                prop_assert_eq!(&s1, &s2);
                prop_assert_eq!(&d1, &d2);
                let n = d1.desired_replicas;
                let cfg = config.activation;
                let in_range = n >= cfg.min_replicas && n <= cfg.max_replicas;
                let at_rest = n == 0 && (cfg.min_replicas == 0 || cfg.idle_replicas == Some(0));
                let untouched = n == current && !d1.effects.iter().any(|e| matches!(e, Effect::SetReplicas { .. }));
                prop_assert!(in_range || at_rest || untouched, "{n} from {current} with {cfg:?}");
                state = s1;
                current = n;
                now = now.plus_secs(dt);
            }
        }
    }
}
