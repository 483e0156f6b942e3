//! How many pods a ScaledObject may bring back soon: the pod layer's half of the coordination
//! with consolidation (the node layer's half is `nodescaler::disruption::coordination`).
//!
//! After a scale-down, KEDA and the HPA reverse it at once when the load returns (scale-up
//! has no stabilization by default), and a load that just fell is the load most likely to
//! return: seed 002's bursts fall and rise within minutes. So for a window after a scale-down
//! (the longer of `cooldownPeriod` and the HPA's scale-down stabilization window, the timers
//! the user already tuned to their load's rhythm, capped by a ceiling) the pods between the
//! recent peak and the current count are "comebacks", and the node layer keeps room for them.

use crate::TimeMs;
use crate::decision::ScaledObjectConfig;
use crate::hpa::DEFAULT_DOWNSCALE_STABILIZATION_SECS;

/// One change of the target's replica count: `replicas` from `at` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaChange {
    /// When the count changed.
    pub at: TimeMs,
    /// The count from then on.
    pub replicas: u32,
}

/// The window after a scale-down in which its pods count as comebacks, in seconds.
pub fn window_secs(config: &ScaledObjectConfig, ceiling_secs: u32) -> u32 {
    let stabilization = config
        .behavior
        .as_ref()
        .and_then(|b| b.scale_down.as_ref())
        .and_then(|r| r.stabilization_window_secs)
        .unwrap_or(DEFAULT_DOWNSCALE_STABILIZATION_SECS);
    config
        .activation
        .cooldown_secs
        .max(stabilization)
        .min(ceiling_secs)
}

/// `(count, until)`: how many pods above `current` the target ran within the last `window_secs`
/// and until when that stays true (the end of the last moment at the peak, plus the window);
/// `None` when the target has not shrunk recently. `history` is in time order; entries older
/// than the window (except the one in effect at its start) do not matter and may be pruned.
pub fn comebacks(
    history: &[ReplicaChange],
    current: u32,
    window_secs: u32,
    now: TimeMs,
) -> Option<(u32, TimeMs)> {
    let since = now.minus_secs(i64::from(window_secs));
    let mut peak: Option<(u32, TimeMs)> = None;
    for (i, c) in history.iter().enumerate() {
        // Each change is in effect until the next one (or now).
        let end = history.get(i + 1).map_or(now, |n| n.at);
        if end < since || c.replicas <= current {
            continue;
        }
        match peak {
            Some((p, _)) if p > c.replicas => {}
            _ => peak = Some((c.replicas, end)),
        }
    }
    let (replicas, last_at_peak) = peak?;
    let until = last_at_peak.plus_secs(i64::from(window_secs));
    (until > now).then_some((replicas - current, until))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(secs: i64, replicas: u32) -> ReplicaChange {
        ReplicaChange {
            at: TimeMs(secs * 1000),
            replicas,
        }
    }

    #[test]
    fn a_recent_scale_down_leaves_the_difference_as_comebacks() {
        let h = [change(0, 1), change(10, 8), change(100, 2)];
        // At 130 s, 6 pods above the current 2 ran until 100 s; held until 100 + 60.
        assert_eq!(
            comebacks(&h, 2, 60, TimeMs(130_000)),
            Some((6, TimeMs(160_000)))
        );
        // Past the window: nothing.
        assert_eq!(comebacks(&h, 2, 60, TimeMs(161_000)), None);
    }

    #[test]
    fn growing_or_steady_targets_have_none() {
        let h = [change(0, 1), change(10, 8)];
        assert_eq!(comebacks(&h, 8, 300, TimeMs(20_000)), None);
        assert_eq!(comebacks(&[], 3, 300, TimeMs(20_000)), None);
    }

    #[test]
    fn the_highest_recent_peak_counts_and_its_latest_moment_sets_the_end() {
        let h = [change(0, 9), change(50, 4), change(60, 9), change(70, 0)];
        assert_eq!(
            comebacks(&h, 0, 100, TimeMs(80_000)),
            Some((9, TimeMs(170_000)))
        );
    }

    #[test]
    fn the_window_is_the_longer_timer_under_the_ceiling() {
        let mut config = ScaledObjectConfig {
            activation: crate::activation::ActivationConfig::default(),
            triggers: Vec::new(),
            fallback: None,
            behavior: None,
            modifiers: None,
            annotations: crate::activation::Annotations::default(),
            created_at: TimeMs(0),
        };
        config.activation.cooldown_secs = 60;
        assert_eq!(window_secs(&config, 600), 300, "HPA default 300 s");
        config.activation.cooldown_secs = 900;
        assert_eq!(window_secs(&config, 600), 600, "capped");
    }
}
