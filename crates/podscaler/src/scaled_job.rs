//! ScaledJob: how many Jobs to create this poll.
//!
//! Mirrors KEDA `pkg/scaling/scaledjob/metrics.go` (aggregation over triggers) and
//! `pkg/scaling/executor/scale_jobs.go` (the strategies), as written up in keda.md §6.5. Inputs
//! are what the shell counted: per-trigger queue lengths and targets, unfinished and pending Jobs.

/// `scalingStrategy.multipleScalersCalculation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MultipleScalersCalculation {
    /// `max` (default): the active trigger with the longest queue.
    #[default]
    Max,
    /// `min`: upstream's scan, where a zero-length pick is displaced by any later trigger.
    Min,
    /// `avg`: mean over active triggers.
    Avg,
    /// `sum`: sum over active triggers.
    Sum,
}

/// `scalingStrategy.strategy` with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ScalingStrategy {
    /// `default`: subtract running Jobs from the target count.
    #[default]
    Default,
    /// `custom`: subtract a fixed deduction and a share of running Jobs.
    Custom {
        /// `customScalingQueueLengthDeduction`.
        deduction: i64,
        /// `customScalingRunningJobPercentage` as a fraction (0.5 = 50%).
        running_job_percentage: f64,
    },
    /// `accurate`: account for pending Jobs, for queues whose length excludes locked messages.
    Accurate,
    /// `eager`: fill up to max whenever there is work.
    Eager,
}

/// The ScaledJob fields the decision reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaledJobConfig {
    /// `minReplicaCount` (default 0).
    pub min_replicas: Option<u32>,
    /// `maxReplicaCount` (default 100).
    pub max_replicas: Option<u32>,
    /// The scaling strategy.
    pub strategy: ScalingStrategy,
    /// How several triggers combine.
    pub calculation: MultipleScalersCalculation,
}

/// One trigger's reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobTrigger {
    /// `qᵢ`: the queue length (sum of values for the trigger's first metric).
    pub queue_length: f64,
    /// `tᵢ`: mean of its `AverageValue` targets (0 if none).
    pub target_average: f64,
    /// Whether the trigger is active.
    pub active: bool,
}

/// What the cluster holds for this ScaledJob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobCounts {
    /// `R`: unfinished Jobs (no Complete/Failed condition).
    pub running: u32,
    /// `P`: pending Jobs (no pod Running/Succeeded, or pendingPodConditions unmet).
    pub pending: u32,
}

/// The numbers behind the decision, so a CLI can explain it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobPlan {
    /// Some trigger is active, or `min > 0`.
    pub active: bool,
    /// `M′`: the effective max.
    pub effective_max_replicas: i64,
    /// `q` after aggregation.
    pub queue_length: f64,
    /// `maxScale = ⌈min(s, M′)⌉`.
    pub max_scale: i64,
    /// `scaleTo` (⌈q⌉, or `M′` for eager, or the min top-up).
    pub scale_to: i64,
    /// `effMax` after the strategy, floored at 0.
    pub effective_max: i64,
    /// Jobs to create now.
    pub create: u32,
}

/// `M′` and `m₀` from min and max (keda.md §6.5).
fn bounds(config: &ScaledJobConfig) -> (i64, i64) {
    let min = i64::from(config.min_replicas.unwrap_or(0));
    match config.max_replicas {
        None => (100, min.min(100)),
        Some(max) => {
            let max = i64::from(max);
            let m_prime = if config.min_replicas.is_some() && min <= max {
                max - min
            } else {
                max
            };
            (m_prime, min.min(max))
        }
    }
}

/// Aggregates active triggers into `(q, s)`.
fn aggregate(
    triggers: &[JobTrigger],
    calculation: MultipleScalersCalculation,
    m_prime: f64,
) -> (f64, f64) {
    let scale = |t: &JobTrigger| {
        if t.target_average == 0.0 {
            0.0
        } else {
            (t.queue_length / t.target_average).min(m_prime)
        }
    };
    let active: Vec<(f64, f64)> = triggers
        .iter()
        .filter(|t| t.active)
        .map(|t| (t.queue_length, scale(t)))
        .collect();
    if active.is_empty() {
        return (0.0, 0.0);
    }
    match calculation {
        MultipleScalersCalculation::Max => active
            .iter()
            .copied()
            .fold(None, |best: Option<(f64, f64)>, cur| match best {
                Some(b) if b.0 >= cur.0 => Some(b),
                _ => Some(cur),
            })
            .unwrap_or((0.0, 0.0)),
        MultipleScalersCalculation::Min => active
            .iter()
            .copied()
            .fold(None, |pick: Option<(f64, f64)>, cur| match pick {
                Some(p) if p.0 != 0.0 && p.0 <= cur.0 => Some(p),
                _ => Some(cur),
            })
            .unwrap_or((0.0, 0.0)),
        MultipleScalersCalculation::Avg => {
            let n = active.len() as f64;
            let (q, s) = active
                .iter()
                .fold((0.0, 0.0), |acc, cur| (acc.0 + cur.0, acc.1 + cur.1));
            (q / n, s / n)
        }
        MultipleScalersCalculation::Sum => active
            .iter()
            .fold((0.0, 0.0), |acc, cur| (acc.0 + cur.0, acc.1 + cur.1)),
    }
}

fn ceil_i64(x: f64) -> i64 {
    if x.is_nan() {
        0
    } else {
        x.ceil().clamp(i64::MIN as f64, i64::MAX as f64) as i64
    }
}

/// Jobs to create this poll for one ScaledJob.
#[must_use]
pub fn plan(config: &ScaledJobConfig, triggers: &[JobTrigger], counts: JobCounts) -> JobPlan {
    let (m_prime, min) = bounds(config);
    let (q, s) = aggregate(triggers, config.calculation, m_prime as f64);
    let active = triggers.iter().any(|t| t.active) || min > 0;
    let max_scale = ceil_i64(s.min(m_prime as f64));
    let mut scale_to = ceil_i64(q);
    let running = i64::from(counts.running);
    let pending = i64::from(counts.pending);
    let running_over_min = running - min;

    let effective_max = if running < min {
        scale_to = min - running;
        min - running
    } else {
        match config.strategy {
            ScalingStrategy::Default => max_scale - running_over_min,
            ScalingStrategy::Custom {
                deduction,
                running_job_percentage,
            } => {
                let share = (running_over_min as f64 * running_job_percentage).trunc() as i64;
                (max_scale - deduction - share).min(m_prime)
            }
            ScalingStrategy::Accurate => {
                if max_scale + running_over_min - pending > m_prime {
                    m_prime - running_over_min
                } else {
                    max_scale - pending
                }
            }
            ScalingStrategy::Eager => {
                scale_to = m_prime;
                (m_prime - running_over_min - pending).min(max_scale)
            }
        }
    }
    .max(0);

    let create = if active && effective_max > 0 {
        u32::try_from(scale_to.min(effective_max).max(0)).unwrap_or(u32::MAX)
    } else {
        0
    };
    JobPlan {
        active,
        effective_max_replicas: m_prime,
        queue_length: q,
        max_scale,
        scale_to,
        effective_max,
        create,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(strategy: ScalingStrategy, max: u32) -> ScaledJobConfig {
        ScaledJobConfig {
            min_replicas: None,
            max_replicas: Some(max),
            strategy,
            calculation: MultipleScalersCalculation::Max,
        }
    }

    fn queue(q: f64, target: f64) -> JobTrigger {
        JobTrigger {
            queue_length: q,
            target_average: target,
            active: q > 0.0,
        }
    }

    fn counts(running: u32, pending: u32) -> JobCounts {
        JobCounts { running, pending }
    }

    #[test]
    fn strategies_table() {
        // Queue 10, one message per Job, max 10; (strategy, running, pending, expected).
        let custom = ScalingStrategy::Custom {
            deduction: 1,
            running_job_percentage: 0.5,
        };
        let cases = [
            (ScalingStrategy::Default, 0, 0, 10),
            (ScalingStrategy::Default, 3, 0, 7),
            (custom, 4, 0, 7),                    // 10 − 1 − ⌊4 × 0.5⌋
            (ScalingStrategy::Accurate, 3, 2, 7), // 10 + 3 − 2 > 10 → 10 − 3
            (ScalingStrategy::Accurate, 0, 2, 8), // 10 + 0 − 2 ≤ 10 → 10 − 2
            (ScalingStrategy::Eager, 3, 2, 5),    // min(10 − 3 − 2, 10), scaleTo = 10
        ];
        for (strategy, running, pending, want) in cases {
            let p = plan(
                &config(strategy, 10),
                &[queue(10.0, 1.0)],
                counts(running, pending),
            );
            assert_eq!(p.create, want, "{strategy:?} R={running} P={pending}");
        }
    }

    #[test]
    fn eager_fills_to_max_while_default_follows_the_queue() {
        // Upstream docs: max 10, queue 3, 3 running Jobs already.
        let d = plan(
            &config(ScalingStrategy::Default, 10),
            &[queue(3.0, 1.0)],
            counts(3, 0),
        );
        assert_eq!(d.create, 0);
        let e = plan(
            &config(ScalingStrategy::Eager, 10),
            &[queue(3.0, 1.0)],
            counts(3, 0),
        );
        assert_eq!((e.scale_to, e.create), (10, 3));
    }

    #[test]
    fn queue_length_per_job_and_max_cap() {
        // 250 messages, 5 per Job, max 50 → 50 Jobs.
        let p = plan(
            &config(ScalingStrategy::Default, 50),
            &[queue(250.0, 5.0)],
            counts(0, 0),
        );
        assert_eq!((p.max_scale, p.scale_to, p.create), (50, 250, 50));
        // Twice the backlog still caps at 50.
        let p = plan(
            &config(ScalingStrategy::Default, 50),
            &[queue(500.0, 5.0)],
            counts(0, 0),
        );
        assert_eq!(p.create, 50);
        // Queue 7, 5 per Job: ⌈1.4⌉ = 2 Jobs.
        let p = plan(
            &config(ScalingStrategy::Default, 50),
            &[queue(7.0, 5.0)],
            counts(0, 0),
        );
        assert_eq!(p.create, 2);
    }

    #[test]
    fn min_replicas_top_up_and_effective_max() {
        let cfg = ScaledJobConfig {
            min_replicas: Some(2),
            max_replicas: Some(10),
            strategy: ScalingStrategy::Default,
            calculation: MultipleScalersCalculation::Max,
        };
        let p = plan(&cfg, &[queue(0.0, 1.0)], counts(0, 0));
        assert_eq!((p.active, p.create), (true, 2));
        assert_eq!(p.effective_max_replicas, 8);
        let cfg = ScaledJobConfig {
            min_replicas: Some(20),
            ..cfg
        };
        assert_eq!(bounds(&cfg), (10, 10));
        assert_eq!(
            bounds(&ScaledJobConfig {
                max_replicas: None,
                ..cfg
            }),
            (100, 20)
        );
    }

    #[test]
    fn multiple_scalers_calculation() {
        let triggers = [queue(4.0, 1.0), queue(10.0, 2.0), queue(0.0, 1.0)];
        let q = |calc| {
            let cfg = ScaledJobConfig {
                calculation: calc,
                ..config(ScalingStrategy::Default, 100)
            };
            let p = plan(&cfg, &triggers, counts(0, 0));
            (p.queue_length, p.max_scale)
        };
        assert_eq!(q(MultipleScalersCalculation::Max), (10.0, 5));
        assert_eq!(q(MultipleScalersCalculation::Min), (4.0, 4));
        assert_eq!(q(MultipleScalersCalculation::Avg), (7.0, 5)); // s = (4 + 5) / 2
        assert_eq!(q(MultipleScalersCalculation::Sum), (14.0, 9));
        // QUIRK: a zero-length pick is displaced even by a longer queue.
        let zero_first = [
            JobTrigger {
                queue_length: 0.0,
                target_average: 1.0,
                active: true,
            },
            queue(6.0, 1.0),
        ];
        let cfg = ScaledJobConfig {
            calculation: MultipleScalersCalculation::Min,
            ..config(ScalingStrategy::Default, 100)
        };
        assert_eq!(plan(&cfg, &zero_first, counts(0, 0)).queue_length, 6.0);
    }

    #[test]
    fn inactive_creates_nothing() {
        let p = plan(
            &config(ScalingStrategy::Eager, 10),
            &[queue(0.0, 1.0)],
            counts(0, 0),
        );
        assert_eq!((p.active, p.create), (false, 0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn running_plus_created_never_exceeds_max(
            q in 0f64..10_000.0,
            target in 0f64..50.0,
            max in 1u32..200,
            running in 0u32..250,
            pending in 0u32..50,
            strategy in prop_oneof![
                Just(ScalingStrategy::Default),
                Just(ScalingStrategy::Accurate),
                Just(ScalingStrategy::Eager),
                (0i64..5, 0f64..1.0).prop_map(|(d, p)| ScalingStrategy::Custom {
                    deduction: d,
                    running_job_percentage: p,
                }),
            ],
        ) {
            let pending = pending.min(running);
            let cfg = config(strategy, max);
            let p = plan(&cfg, &[queue(q, target)], counts(running, pending));
            prop_assert_eq!(p, plan(&cfg, &[queue(q, target)], counts(running, pending)));
            if matches!(strategy, ScalingStrategy::Custom { .. }) {
                // Custom may overshoot by design (its deduction is the user's to choose), but
                // one poll never asks for more than the effective max.
                prop_assert!(i64::from(p.create) <= p.effective_max_replicas);
            } else if running <= max {
                prop_assert!(u64::from(running) + u64::from(p.create) <= u64::from(max),
                    "{running} + {} > {max}", p.create);
            } else {
                prop_assert_eq!(p.create, 0);
            }
        }
    }
}
