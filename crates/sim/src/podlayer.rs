//! The pod layer as the controllers run it, over `podscaler::decision::decide`.
//!
//! Two cadences, as upstream: KEDA polls each ScaledObject every `pollingInterval` (activation,
//! 0 ↔ 1), and the HPA syncs every 15 s reading the external metric, which KEDA's metrics server
//! computes fresh on each request (1 ↔ N). podscaler's `decide` runs both steps in one tick, so:
//! - at a poll, `decide` gets fresh values and judges activity itself;
//! - at an HPA sync between polls, `decide` gets fresh values but the activity verdict of the
//!   last poll (`TriggerObservation::is_active`), so activation moves only at polls; the
//!   remaining difference is that `lastActiveTime` may advance at a sync, delaying a
//!   scale-to-zero by at most one polling interval;
//! - at 0 replicas the HPA does nothing upstream (scaling is disabled at 0), so HPA syncs are
//!   skipped there and only polls can activate.

use tandem_podscaler::TimeMs;
use tandem_podscaler::decision::{
    Observation, PodLayerState, ScaledObjectConfig, TriggerKind, TriggerObservation, decide,
};

/// Which cadence a tick belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// KEDA's poll.
    Poll,
    /// The HPA controller's sync.
    HpaSync,
}

/// One ScaledObject's pod-layer memory.
#[derive(Debug, Clone, Default)]
pub struct ScalerState {
    /// podscaler's state.
    pub state: PodLayerState,
    /// Activity per trigger at the last poll.
    pub last_active: Vec<Option<bool>>,
}

/// What one tick decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickOutcome {
    /// The replicas the pod layer (or the HPA) writes to `/scale`, when they change.
    pub set: Option<u32>,
    /// Where the target is heading when above its pods (`podscaler::forecast`).
    pub heading_to: Option<u32>,
}

/// One tick; returns the desired replicas when the pod layer writes `/scale`.
///
/// `values[i]` is trigger `i`'s reading (`None`: the fetch failed), `own_active[i]` a scaler's
/// own activity verdict where it has one (cron).
pub fn tick(
    scaler: &mut ScalerState,
    config: &ScaledObjectConfig,
    tick: Tick,
    values: &[Option<f64>],
    own_active: &[Option<bool>],
    replicas: (u32, u32, u32),
    now: TimeMs,
) -> TickOutcome {
    let (current, status, ready) = replicas;
    if tick == Tick::HpaSync && current == 0 {
        return TickOutcome {
            set: None,
            heading_to: None,
        };
    }
    let verdicts: Vec<Option<bool>> = config
        .triggers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = values.get(i).copied().flatten();
            let own = own_active.get(i).copied().flatten();
            match (own, t.kind, v) {
                (Some(a), _, _) => Some(a),
                (
                    None,
                    TriggerKind::External {
                        activation_threshold,
                        ..
                    },
                    Some(v),
                ) => Some(v > activation_threshold),
                _ => None,
            }
        })
        .collect();
    let triggers = values
        .iter()
        .enumerate()
        .map(|(i, v)| TriggerObservation {
            value: *v,
            is_active: match tick {
                Tick::Poll => own_active.get(i).copied().flatten(),
                Tick::HpaSync => scaler.last_active.get(i).copied().flatten(),
            },
        })
        .collect();
    let observation = Observation {
        current_replicas: current,
        status_replicas: status,
        ready_pods: ready,
        triggers,
    };
    let (next, decision) = decide(config, &observation, &scaler.state, now);
    scaler.state = next;
    if tick == Tick::Poll {
        scaler.last_active = verdicts;
    }
    TickOutcome {
        set: (decision.desired_replicas != current).then_some(decision.desired_replicas),
        heading_to: tandem_podscaler::forecast::heading_to(config, &decision, status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_podscaler::activation::ActivationConfig;
    use tandem_podscaler::decision::TriggerConfig;
    use tandem_podscaler::fallback::TargetType;

    fn config() -> ScaledObjectConfig {
        ScaledObjectConfig {
            activation: ActivationConfig {
                min_replicas: 0,
                max_replicas: 50,
                cooldown_secs: 60,
                ..ActivationConfig::default()
            },
            triggers: vec![TriggerConfig {
                metric_name: "s0-aws-sqs-orders".into(),
                name: None,
                kind: TriggerKind::External {
                    target: 5.0,
                    target_type: TargetType::AverageValue,
                    activation_threshold: 0.0,
                },
            }],
            fallback: None,
            behavior: None,
            modifiers: None,
            annotations: Default::default(),
            created_at: TimeMs(0),
        }
    }

    #[test]
    fn only_a_poll_activates_from_zero_and_the_hpa_scales_out() {
        let cfg = config();
        let mut s = ScalerState::default();
        assert_eq!(
            tick(
                &mut s,
                &cfg,
                Tick::HpaSync,
                &[Some(100.0)],
                &[None],
                (0, 0, 0),
                TimeMs(0)
            )
            .set,
            None
        );
        let activated = tick(
            &mut s,
            &cfg,
            Tick::Poll,
            &[Some(100.0)],
            &[None],
            (0, 0, 0),
            TimeMs(15_000),
        );
        assert_eq!(activated.set, Some(1));
        // 100 messages at 5 per pod: the HPA is heading for 20, and the forecast says so.
        assert_eq!(activated.heading_to, Some(20));
        let n = tick(
            &mut s,
            &cfg,
            Tick::HpaSync,
            &[Some(100.0)],
            &[None],
            (1, 1, 1),
            TimeMs(30_000),
        )
        .set;
        assert!(n.is_some_and(|n| n > 1), "{n:?}");
    }
}
