//! Activation: KEDA's own 0 ↔ 1 (and idle ↔ min) decision, made every `pollingInterval`.
//!
//! Mirrors KEDA `pkg/scaling/executor/scale_scaledobjects.go` (`RequestScale`), the pause
//! handling of `controllers/keda/scaledobject_controller.go`, and keda.md §3.1, §6.1:
//!
//! - active ⇔ some trigger's value is strictly above its activation threshold (decided by the
//!   caller per trigger, see [`crate::decision`]), or `force-activation`;
//! - active and at 0 (or below min in idle mode): scale to `max(min, 1)` and stamp
//!   `lastActiveTime`; active and above 0: stamp `lastActiveTime` (unless a trigger errored);
//! - inactive: an error with a non-zero fallback, or with no fallback, changes nothing; above
//!   idle (or above 0 with min 0): scale to idle (else min) once `cooldownPeriod` has passed since
//!   `lastActiveTime` (or `initialCooldownPeriod` since creation when never active), else hold
//!   in cooldown; idle unset and below min: scale to min;
//! - `autoscaling.keda.sh/paused: "true"` freezes replicas, `paused-replicas: N` holds N; both
//!   remove the HPA while paused. `paused-scale-in` / `paused-scale-out` block the matching
//!   KEDA step only.
//!
//! The machine is explicit: [`State`] and a pure [`step`]; effects are commands for the shell.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::TimeMs;

/// `autoscaling.keda.sh/paused`.
pub const ANNOTATION_PAUSED: &str = "autoscaling.keda.sh/paused";
/// `autoscaling.keda.sh/paused-replicas`.
pub const ANNOTATION_PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";
/// `autoscaling.keda.sh/paused-scale-in`.
pub const ANNOTATION_PAUSED_SCALE_IN: &str = "autoscaling.keda.sh/paused-scale-in";
/// `autoscaling.keda.sh/paused-scale-out`.
pub const ANNOTATION_PAUSED_SCALE_OUT: &str = "autoscaling.keda.sh/paused-scale-out";
/// `autoscaling.keda.sh/force-activation`.
pub const ANNOTATION_FORCE_ACTIVATION: &str = "autoscaling.keda.sh/force-activation";

/// Why the annotations cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ActivationError {
    /// `paused-replicas` is not a non-negative int32 (upstream: a reconcile error).
    #[error("annotation {ANNOTATION_PAUSED_REPLICAS} is {value:?}; expected a replica count")]
    PausedReplicas {
        /// The value as written.
        value: String,
    },
}

/// Pause requested by annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pause {
    /// Not paused.
    #[default]
    None,
    /// `paused: "true"`: stop scaling, keep whatever replicas the target has.
    Frozen,
    /// `paused-replicas: N`: scale the target to N and hold it there.
    Replicas(u32),
}

/// The annotations the pod layer honours, parsed once by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Annotations {
    /// Pause state; `paused-replicas` wins over `paused`, as upstream.
    pub pause: Pause,
    /// `paused-scale-in`: no scale to idle/zero (and HPA scale-down disabled).
    pub paused_scale_in: bool,
    /// `paused-scale-out`: no activation from zero (and HPA scale-up disabled).
    pub paused_scale_out: bool,
    /// `force-activation`: treat the object as active.
    pub force_activation: bool,
}

/// Go's `strconv.ParseBool` read the way KEDA reads annotations: anything that is not a Go
/// "false" spelling counts as true (keda.md §3.1 QUIRK: `yes` pauses).
fn keda_bool(value: &str) -> bool {
    !matches!(value, "0" | "f" | "F" | "false" | "FALSE" | "False")
}

impl Annotations {
    /// Parses the object's annotations.
    ///
    /// # Errors
    /// [`ActivationError::PausedReplicas`] for a `paused-replicas` that is not an int32 ≥ 0.
    pub fn from_map(annotations: &BTreeMap<String, String>) -> Result<Self, ActivationError> {
        let flag = |key: &str| annotations.get(key).is_some_and(|v| keda_bool(v));
        let pause = if let Some(v) = annotations.get(ANNOTATION_PAUSED_REPLICAS) {
            let n = v
                .trim()
                .parse::<i32>()
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ActivationError::PausedReplicas { value: v.clone() })?;
            Pause::Replicas(n)
        } else if flag(ANNOTATION_PAUSED) {
            Pause::Frozen
        } else {
            Pause::None
        };
        Ok(Self {
            pause,
            paused_scale_in: flag(ANNOTATION_PAUSED_SCALE_IN),
            paused_scale_out: flag(ANNOTATION_PAUSED_SCALE_OUT),
            force_activation: flag(ANNOTATION_FORCE_ACTIVATION),
        })
    }
}

/// The ScaledObject fields activation reads, with KEDA's defaults applied by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActivationConfig {
    /// `minReplicaCount` (default 0).
    pub min_replicas: u32,
    /// `maxReplicaCount` (default 100).
    pub max_replicas: u32,
    /// `idleReplicaCount` (unset: idle mode off).
    pub idle_replicas: Option<u32>,
    /// `cooldownPeriod` in seconds (default 300).
    pub cooldown_secs: u32,
    /// `initialCooldownPeriod` in seconds (default 0), used until the first activation.
    pub initial_cooldown_secs: u32,
}

impl Default for ActivationConfig {
    /// KEDA's code defaults (keda.md §2.1).
    fn default() -> Self {
        Self {
            min_replicas: 0,
            max_replicas: 100,
            idle_replicas: None,
            cooldown_secs: 300,
            initial_cooldown_secs: 0,
        }
    }
}

/// What one poll observed, already reduced to what activation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationInput {
    /// The ScaledObject's replica bounds and timers.
    pub config: ActivationConfig,
    /// The target's `spec.replicas`.
    pub current_replicas: u32,
    /// Some trigger is active (or the composite metric is).
    pub active: bool,
    /// Metric names of the active triggers, for the activation event's "triggered by".
    pub active_triggers: Vec<String>,
    /// Some trigger failed this poll.
    pub trigger_error: bool,
    /// `fallback.replicas` when fallback is configured.
    pub fallback_replicas: Option<u32>,
    /// Parsed annotations.
    pub annotations: Annotations,
    /// The ScaledObject's `creationTimestamp`, for `initialCooldownPeriod`.
    pub created_at: TimeMs,
}

/// Where the ScaledObject is in KEDA's activation cycle. `last_active` mirrors
/// `status.lastActiveTime` and travels through every state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not evaluated yet (conditions Unknown, as KEDA writes them on first reconcile).
    Unknown {
        /// `status.lastActiveTime`, if the object already had one.
        last_active: Option<TimeMs>,
    },
    /// Some trigger is active; the HPA owns 1..N.
    Active {
        /// `status.lastActiveTime`.
        last_active: Option<TimeMs>,
    },
    /// No trigger is active but the cooldown has not passed; replicas are held.
    CoolingDown {
        /// `status.lastActiveTime`.
        last_active: Option<TimeMs>,
        /// When scale-in becomes allowed (strictly after this instant).
        until: TimeMs,
    },
    /// No trigger is active and the target is at idle, min or zero.
    Inactive {
        /// `status.lastActiveTime`.
        last_active: Option<TimeMs>,
    },
    /// Paused by annotation; the loop and the HPA stand still.
    Paused {
        /// `status.lastActiveTime`.
        last_active: Option<TimeMs>,
        /// The held count for `paused-replicas`, `None` for `paused`.
        hold: Option<u32>,
    },
}

impl Default for State {
    fn default() -> Self {
        Self::Unknown { last_active: None }
    }
}

impl State {
    /// `status.lastActiveTime` in this state.
    #[must_use]
    pub fn last_active(self) -> Option<TimeMs> {
        match self {
            Self::Unknown { last_active }
            | Self::Active { last_active }
            | Self::CoolingDown { last_active, .. }
            | Self::Inactive { last_active }
            | Self::Paused { last_active, .. } => last_active,
        }
    }

    /// True while paused, so the caller skips the HPA.
    #[must_use]
    pub fn is_paused(self) -> bool {
        matches!(self, Self::Paused { .. })
    }

    /// The `Active` condition this state shows; `None` keeps whatever is there (paused).
    fn active_condition(self) -> Option<Condition> {
        let (status, reason) = match self {
            Self::Unknown { .. } => (ConditionStatus::Unknown, ConditionReason::UnknownState),
            Self::Active { .. } => (ConditionStatus::True, ConditionReason::ScalerActive),
            Self::CoolingDown { .. } => (ConditionStatus::False, ConditionReason::ScalerCooldown),
            Self::Inactive { .. } => (ConditionStatus::False, ConditionReason::ScalerNotActive),
            Self::Paused { .. } => return None,
        };
        Some(Condition {
            kind: ConditionType::Active,
            status,
            reason,
        })
    }
}

/// ScaledObject condition types (keda.md §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConditionType {
    /// `Ready`.
    Ready,
    /// `Active`.
    Active,
    /// `Fallback`.
    Fallback,
    /// `Paused`.
    Paused,
}

impl ConditionType {
    /// The upstream type string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Active => "Active",
            Self::Fallback => "Fallback",
            Self::Paused => "Paused",
        }
    }
}

/// Condition status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl ConditionStatus {
    /// The API string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// Upstream condition reasons the pod layer sets (keda.md §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConditionReason {
    /// Ready=True.
    ScaledObjectReady,
    /// Ready=Unknown: some triggers active, some failing.
    PartialTriggerError,
    /// Ready=False: no trigger active, some failing, no fallback.
    TriggerError,
    /// Active=Unknown.
    UnknownState,
    /// Active=True.
    ScalerActive,
    /// Active=False.
    ScalerNotActive,
    /// Active=False, within the cooldown.
    ScalerCooldown,
    /// Fallback=True.
    FallbackExists,
    /// Fallback=False.
    NoFallbackFound,
    /// Paused=True.
    ScaledObjectPaused,
    /// Paused=False.
    ScaledObjectUnpaused,
}

impl ConditionReason {
    /// The upstream reason string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScaledObjectReady => "ScaledObjectReady",
            Self::PartialTriggerError => "PartialTriggerError",
            Self::TriggerError => "TriggerError",
            Self::UnknownState => "UnknownState",
            Self::ScalerActive => "ScalerActive",
            Self::ScalerNotActive => "ScalerNotActive",
            Self::ScalerCooldown => "ScalerCooldown",
            Self::FallbackExists => "FallbackExists",
            Self::NoFallbackFound => "NoFallbackFound",
            Self::ScaledObjectPaused => "ScaledObjectPaused",
            Self::ScaledObjectUnpaused => "ScaledObjectUnpaused",
        }
    }
}

/// One condition as the shell should write it (the message is rendered by the shell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Condition {
    /// Type.
    pub kind: ConditionType,
    /// Status.
    pub status: ConditionStatus,
    /// Reason.
    pub reason: ConditionReason,
}

/// Upstream Event reasons the pod layer emits (keda.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventReason {
    /// Scaled from 0/idle to the active count.
    KedaScaleTargetActivated,
    /// Scaled to idle/min/0 after the cooldown.
    KedaScaleTargetDeactivated,
    /// Pause annotation set.
    ScaledObjectPaused,
    /// Pause annotation removed.
    ScaledObjectUnpaused,
    /// Fallback engaged.
    ScaledObjectFallbackActivated,
    /// Fallback released.
    ScaledObjectFallbackDeactivated,
}

impl EventReason {
    /// The upstream reason string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KedaScaleTargetActivated => "KEDAScaleTargetActivated",
            Self::KedaScaleTargetDeactivated => "KEDAScaleTargetDeactivated",
            Self::ScaledObjectPaused => "ScaledObjectPaused",
            Self::ScaledObjectUnpaused => "ScaledObjectUnpaused",
            Self::ScaledObjectFallbackActivated => "ScaledObjectFallbackActivated",
            Self::ScaledObjectFallbackDeactivated => "ScaledObjectFallbackDeactivated",
        }
    }
}

/// A command for the shell. Effects are data: the shell executes them in order, and the next
/// observation shows the result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Write the target's `/scale` `spec.replicas`.
    SetReplicas {
        /// The new count.
        n: u32,
    },
    /// A condition changed; write it.
    SetCondition(Condition),
    /// Emit a Normal Event on the ScaledObject.
    Event {
        /// Reason.
        reason: EventReason,
        /// Replicas before (for scale events; equal to `to` otherwise).
        from: u32,
        /// Replicas after.
        to: u32,
        /// Metric names that caused it (activation), else empty.
        triggered_by: Vec<String>,
    },
    /// Write `status.lastActiveTime`.
    SetLastActiveTime {
        /// The new value.
        at: TimeMs,
    },
    /// Delete the HPA while paused.
    RemoveHpa,
    /// Recreate the HPA after a pause.
    RestoreHpa,
}

fn event(reason: EventReason, from: u32, to: u32, triggered_by: Vec<String>) -> Effect {
    Effect::Event {
        reason,
        from,
        to,
        triggered_by,
    }
}

fn paused_condition(paused: bool) -> Effect {
    Effect::SetCondition(Condition {
        kind: ConditionType::Paused,
        status: if paused {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        reason: if paused {
            ConditionReason::ScaledObjectPaused
        } else {
            ConditionReason::ScaledObjectUnpaused
        },
    })
}

/// One poll of the activation machine.
///
/// Pure: the same `(state, input, now)` always gives the same `(state, effects)`. Condition
/// effects appear only when the condition changes.
#[must_use]
pub fn step(state: State, input: &ActivationInput, now: TimeMs) -> (State, Vec<Effect>) {
    let mut effects = Vec::new();
    let last_active = state.last_active();
    let current = input.current_replicas;
    let ann = input.annotations;

    // Pause first: nothing else runs while paused.
    let hold = match ann.pause {
        Pause::None => None,
        Pause::Frozen => Some(None),
        Pause::Replicas(n) => Some(Some(n)),
    };
    if let Some(hold) = hold {
        if !state.is_paused() {
            effects.push(Effect::RemoveHpa);
            effects.push(paused_condition(true));
            effects.push(event(
                EventReason::ScaledObjectPaused,
                current,
                current,
                Vec::new(),
            ));
        }
        if let Some(n) = hold
            && n != current
        {
            effects.push(Effect::SetReplicas { n });
        }
        return (State::Paused { last_active, hold }, effects);
    }
    if state.is_paused() {
        effects.push(paused_condition(false));
        effects.push(event(
            EventReason::ScaledObjectUnpaused,
            current,
            current,
            Vec::new(),
        ));
        effects.push(Effect::RestoreHpa);
    }

    let cfg = input.config;
    let (min, max) = (cfg.min_replicas, cfg.max_replicas);
    let idle = cfg.idle_replicas;
    let active = input.active || ann.force_activation;
    let next = if active {
        let below = current == 0 || (idle.is_some() && current < min);
        if below && !ann.paused_scale_out {
            let to = min.max(1).min(max.max(1));
            effects.push(Effect::SetReplicas { n: to });
            let triggered_by = if input.active {
                input.active_triggers.clone()
            } else {
                Vec::new()
            };
            effects.push(event(
                EventReason::KedaScaleTargetActivated,
                current,
                to,
                triggered_by,
            ));
            effects.push(Effect::SetLastActiveTime { at: now });
            State::Active {
                last_active: Some(now),
            }
        } else if current > 0 && !input.trigger_error {
            effects.push(Effect::SetLastActiveTime { at: now });
            State::Active {
                last_active: Some(now),
            }
        } else {
            State::Active { last_active }
        }
    } else if input.trigger_error && input.fallback_replicas.is_none_or(|r| r != 0) {
        // Errors hold everything: fallback (or Ready=False TriggerError) takes over.
        match state {
            State::Unknown { .. } | State::Paused { .. } => State::Inactive { last_active },
            other => other,
        }
    } else {
        let above = idle.is_some_and(|i| current > i) || (current > 0 && min == 0);
        if above && !ann.paused_scale_in {
            let deadline = match last_active {
                Some(at) => at.plus_secs(i64::from(cfg.cooldown_secs)),
                None => input
                    .created_at
                    .plus_secs(i64::from(cfg.initial_cooldown_secs)),
            };
            if now > deadline {
                let to = idle.unwrap_or(min);
                effects.push(Effect::SetReplicas { n: to });
                effects.push(event(
                    EventReason::KedaScaleTargetDeactivated,
                    current,
                    to,
                    Vec::new(),
                ));
                State::Inactive { last_active }
            } else {
                State::CoolingDown {
                    last_active,
                    until: deadline,
                }
            }
        } else {
            if idle.is_none() && current < min {
                effects.push(Effect::SetReplicas { n: min });
            }
            State::Inactive { last_active }
        }
    };

    if let Some(cond) = next.active_condition()
        && state.active_condition() != Some(cond)
    {
        effects.push(Effect::SetCondition(cond));
    }
    (next, effects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: TimeMs = TimeMs(1_700_000_000_000);

    fn input(current: u32, active: bool) -> ActivationInput {
        ActivationInput {
            config: ActivationConfig {
                cooldown_secs: 60,
                max_replicas: 50,
                ..ActivationConfig::default()
            },
            current_replicas: current,
            active,
            active_triggers: if active {
                vec!["s0-aws-sqs-orders".into()]
            } else {
                Vec::new()
            },
            trigger_error: false,
            fallback_replicas: None,
            annotations: Annotations::default(),
            created_at: T0.minus_secs(3600),
        }
    }

    fn replicas(effects: &[Effect]) -> Option<u32> {
        effects.iter().find_map(|e| match e {
            Effect::SetReplicas { n } => Some(*n),
            _ => None,
        })
    }

    #[test]
    fn activates_from_zero_to_max_of_min_and_one() {
        let (state, effects) = step(State::default(), &input(0, true), T0);
        assert_eq!(
            state,
            State::Active {
                last_active: Some(T0)
            }
        );
        assert_eq!(replicas(&effects), Some(1));
        assert!(effects.contains(&Effect::Event {
            reason: EventReason::KedaScaleTargetActivated,
            from: 0,
            to: 1,
            triggered_by: vec!["s0-aws-sqs-orders".into()],
        }));
        assert!(effects.contains(&Effect::SetCondition(Condition {
            kind: ConditionType::Active,
            status: ConditionStatus::True,
            reason: ConditionReason::ScalerActive,
        })));
        let mut i = input(0, true);
        i.config.min_replicas = 3;
        assert_eq!(replicas(&step(State::default(), &i, T0).1), Some(3));
    }

    #[test]
    fn seed_002_cooldown_60s_then_back_to_zero() {
        // Active at T0 with replicas running; the queue drains at T0 + 15 s.
        let (s, _) = step(State::default(), &input(20, true), T0);
        let (s, e) = step(s, &input(20, false), T0.plus_secs(15));
        assert_eq!(
            s,
            State::CoolingDown {
                last_active: Some(T0),
                until: T0.plus_secs(60)
            }
        );
        assert_eq!(replicas(&e), None);
        assert!(e.contains(&Effect::SetCondition(Condition {
            kind: ConditionType::Active,
            status: ConditionStatus::False,
            reason: ConditionReason::ScalerCooldown,
        })));
        // Exactly at the deadline is still cooling down (strictly after, as upstream).
        let (s, e) = step(s, &input(20, false), T0.plus_secs(60));
        assert!(matches!(s, State::CoolingDown { .. }));
        assert_eq!(replicas(&e), None);
        let (s, e) = step(s, &input(20, false), T0.plus_secs(75));
        assert_eq!(
            s,
            State::Inactive {
                last_active: Some(T0)
            }
        );
        assert_eq!(replicas(&e), Some(0));
        assert!(e.iter().any(|e| matches!(
            e,
            Effect::Event {
                reason: EventReason::KedaScaleTargetDeactivated,
                from: 20,
                to: 0,
                ..
            }
        )));
    }

    #[test]
    fn activity_during_cooldown_restarts_it() {
        let (s, _) = step(State::default(), &input(5, true), T0);
        let (s, _) = step(s, &input(5, false), T0.plus_secs(30));
        let (s, e) = step(s, &input(5, true), T0.plus_secs(45));
        assert_eq!(
            s,
            State::Active {
                last_active: Some(T0.plus_secs(45))
            }
        );
        assert!(e.contains(&Effect::SetLastActiveTime {
            at: T0.plus_secs(45)
        }));
        let (s, _) = step(s, &input(5, false), T0.plus_secs(100));
        assert!(matches!(s, State::CoolingDown { .. }));
    }

    #[test]
    fn idle_mode_goes_to_idle_and_activates_to_min() {
        let mut i = input(3, false);
        i.config.min_replicas = 3;
        i.config.idle_replicas = Some(0);
        let s = State::Active {
            last_active: Some(T0),
        };
        let (s, e) = step(s, &i, T0.plus_secs(61));
        assert_eq!(replicas(&e), Some(0));
        i.current_replicas = 0;
        i.active = true;
        let (_, e) = step(s, &i, T0.plus_secs(90));
        assert_eq!(replicas(&e), Some(3));
    }

    #[test]
    fn min_above_zero_is_never_scaled_in_by_keda() {
        let mut i = input(4, false);
        i.config.min_replicas = 2;
        let (s, e) = step(
            State::Active {
                last_active: Some(T0),
            },
            &i,
            T0.plus_secs(999),
        );
        assert_eq!(
            s,
            State::Inactive {
                last_active: Some(T0)
            }
        );
        assert_eq!(replicas(&e), None);
        // Below min with no idle: KEDA lifts it to min.
        i.current_replicas = 0;
        assert_eq!(replicas(&step(s, &i, T0.plus_secs(1000)).1), Some(2));
    }

    #[test]
    fn never_active_uses_initial_cooldown_from_creation() {
        let mut i = input(2, false);
        i.created_at = T0;
        i.config.initial_cooldown_secs = 120;
        let (s, e) = step(State::default(), &i, T0.plus_secs(100));
        assert!(matches!(s, State::CoolingDown { until, .. } if until == T0.plus_secs(120)));
        assert_eq!(replicas(&e), None);
        assert_eq!(replicas(&step(s, &i, T0.plus_secs(121)).1), Some(0));
    }

    #[test]
    fn errors_hold_replicas_unless_fallback_is_zero() {
        let mut i = input(4, false);
        i.trigger_error = true;
        let s = State::Active {
            last_active: Some(T0),
        };
        let (s2, e) = step(s, &i, T0.plus_secs(999));
        assert_eq!((s2, replicas(&e)), (s, None));
        i.fallback_replicas = Some(3);
        assert_eq!(replicas(&step(s, &i, T0.plus_secs(999)).1), None);
        i.fallback_replicas = Some(0);
        assert_eq!(replicas(&step(s, &i, T0.plus_secs(999)).1), Some(0));
        // Active with an error: no lastActiveTime stamp.
        let mut i = input(4, true);
        i.trigger_error = true;
        let (s, e) = step(
            State::Active {
                last_active: Some(T0),
            },
            &i,
            T0.plus_secs(5),
        );
        assert_eq!(s.last_active(), Some(T0));
        assert!(
            !e.iter()
                .any(|e| matches!(e, Effect::SetLastActiveTime { .. }))
        );
    }

    #[test]
    fn pause_freezes_or_holds_and_unpause_restores_the_hpa() {
        let mut i = input(7, true);
        i.annotations.pause = Pause::Frozen;
        let (s, e) = step(
            State::Active {
                last_active: Some(T0),
            },
            &i,
            T0,
        );
        assert_eq!(
            s,
            State::Paused {
                last_active: Some(T0),
                hold: None
            }
        );
        assert_eq!(replicas(&e), None);
        assert!(e.contains(&Effect::RemoveHpa));
        // Still paused: nothing more to do.
        assert_eq!(step(s, &i, T0.plus_secs(30)).1, Vec::new());
        i.annotations.pause = Pause::Replicas(2);
        let (s, e) = step(s, &i, T0.plus_secs(60));
        assert_eq!(replicas(&e), Some(2));
        assert!(!e.contains(&Effect::RemoveHpa));
        i.annotations.pause = Pause::None;
        i.current_replicas = 2;
        let (s, e) = step(s, &i, T0.plus_secs(90));
        assert!(e.contains(&Effect::RestoreHpa));
        assert!(matches!(s, State::Active { .. }));
    }

    #[test]
    fn scale_in_and_out_pauses_block_only_their_direction() {
        let mut i = input(0, true);
        i.annotations.paused_scale_out = true;
        assert_eq!(replicas(&step(State::default(), &i, T0).1), None);
        let mut i = input(3, false);
        i.annotations.paused_scale_in = true;
        let s = State::Active {
            last_active: Some(T0),
        };
        assert_eq!(replicas(&step(s, &i, T0.plus_secs(999)).1), None);
    }

    #[test]
    fn force_activation_activates_without_triggers() {
        let mut i = input(0, false);
        i.annotations.force_activation = true;
        let (s, e) = step(State::default(), &i, T0);
        assert!(matches!(s, State::Active { .. }));
        assert_eq!(replicas(&e), Some(1));
    }

    #[test]
    fn annotations_parse_like_keda() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        let a = Annotations::from_map(&m(&[(ANNOTATION_PAUSED, "yes")])).unwrap();
        assert_eq!(a.pause, Pause::Frozen, "a non-bool value counts as true");
        let a = Annotations::from_map(&m(&[(ANNOTATION_PAUSED, "false")])).unwrap();
        assert_eq!(a.pause, Pause::None);
        let a = Annotations::from_map(&m(&[
            (ANNOTATION_PAUSED, "false"),
            (ANNOTATION_PAUSED_REPLICAS, "4"),
        ]))
        .unwrap();
        assert_eq!(a.pause, Pause::Replicas(4));
        assert!(Annotations::from_map(&m(&[(ANNOTATION_PAUSED_REPLICAS, "x")])).is_err());
        let a = Annotations::from_map(&m(&[(ANNOTATION_FORCE_ACTIVATION, "true")])).unwrap();
        assert!(a.force_activation);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn set_replicas_respect_bounds_and_steps_are_deterministic(
            min in 0u32..5,
            span in 1u32..20,
            idle in proptest::option::of(0u32..1),
            cooldown in 0u32..120,
            polls in proptest::collection::vec((0u32..30, any::<bool>(), any::<bool>(), 1i64..90), 1..20),
        ) {
            let config = ActivationConfig {
                min_replicas: if idle.is_some() { min.max(1) } else { min },
                max_replicas: min.max(1) + span,
                idle_replicas: idle,
                cooldown_secs: cooldown,
                initial_cooldown_secs: 0,
            };
            let mut state = State::default();
            let mut now = T0;
            for (current, active, error) in polls.iter().map(|p| (p.0, p.1, p.2)) {
                let i = ActivationInput {
                    config,
                    current_replicas: current,
                    active,
                    active_triggers: Vec::new(),
                    trigger_error: error,
                    fallback_replicas: None,
                    annotations: Annotations::default(),
                    created_at: T0,
                };
                let (s1, e1) = step(state, &i, now);
                let (s2, e2) = step(state, &i, now);
                prop_assert_eq!(s1, s2);
                prop_assert_eq!(&e1, &e2);
                if let Some(n) = replicas(&e1) {
                    let ok = n == 0 && config.min_replicas == 0
                        || Some(n) == config.idle_replicas
                        || (n >= config.min_replicas && n <= config.max_replicas);
                    prop_assert!(ok, "{n} outside bounds {config:?}");
                }
                state = s1;
                now = now.plus_secs(polls.len() as i64);
            }
        }
    }
}
