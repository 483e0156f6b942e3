//! The pod-layer loop: `decide` for 10,000 ScaledObjects with synthetic observations.
//!
//! DESIGN.md §5 targets 10,000 ScaledObjects with lag p95 < 75 ms on < 1 core; this measures
//! the pure part of that loop. Figures are printed, never asserted. Inputs come from a fixed-seed
//! generator, so every run decides the same things.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use tandem_podscaler::TimeMs;
use tandem_podscaler::activation::{ActivationConfig, Annotations};
use tandem_podscaler::decision::{
    Observation, PodLayerState, ScaledObjectConfig, TriggerConfig, TriggerKind, TriggerObservation,
    decide,
};
use tandem_podscaler::fallback::{FallbackBehavior, FallbackConfig, TargetType};
use tandem_podscaler::hpa::Behavior;
use tandem_podscaler::modifiers::ScalingModifiers;

const OBJECTS: usize = 10_000;
const TICKS: usize = 20;

/// A small fixed-seed generator (SplitMix64) so inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn config(i: usize, rng: &mut Rng) -> ScaledObjectConfig {
    let triggers = (0..=rng.below(2) as usize)
        .map(|t| TriggerConfig {
            metric_name: format!("s{t}-rabbitmq-q{i}"),
            name: Some(format!("t{t}")),
            kind: TriggerKind::External {
                target: (1 + rng.below(20)) as f64,
                target_type: if rng.below(4) == 0 {
                    TargetType::Value
                } else {
                    TargetType::AverageValue
                },
                activation_threshold: 0.0,
            },
        })
        .collect();
    let modifiers = i.is_multiple_of(10).then(|| {
        ScalingModifiers::new(
            "max(t0, t1 ?? 0) * 1.5",
            "10",
            None,
            TargetType::AverageValue,
        )
        .ok()
    });
    ScaledObjectConfig {
        activation: ActivationConfig {
            min_replicas: (i % 3) as u32,
            max_replicas: 50 + (i % 50) as u32,
            idle_replicas: None,
            cooldown_secs: 60,
            initial_cooldown_secs: 0,
        },
        triggers,
        fallback: i.is_multiple_of(4).then_some(FallbackConfig {
            failure_threshold: 3,
            replicas: 5,
            behavior: FallbackBehavior::Static,
        }),
        behavior: i.is_multiple_of(2).then(Behavior::default),
        modifiers: modifiers.flatten(),
        annotations: Annotations::default(),
        created_at: TimeMs(0),
    }
}

#[allow(clippy::disallowed_methods)] // a bench reads the wall clock; decisions never do
fn main() {
    let mut rng = Rng(0x007A_4DE3);
    let configs: Vec<ScaledObjectConfig> = (0..OBJECTS).map(|i| config(i, &mut rng)).collect();
    let mut states = vec![PodLayerState::default(); OBJECTS];
    let mut replicas = vec![0u32; OBJECTS];
    let mut per_tick = Vec::with_capacity(TICKS);
    let mut changes = 0usize;
    for tick in 0..TICKS {
        // Observations are built outside the timed section.
        let observations: Vec<Observation> = configs
            .iter()
            .zip(&replicas)
            .map(|(c, &r)| Observation {
                current_replicas: r,
                status_replicas: r,
                ready_pods: r,
                triggers: c
                    .triggers
                    .iter()
                    .map(|_| {
                        if rng.below(50) == 0 {
                            TriggerObservation::failed()
                        } else {
                            TriggerObservation::value(rng.below(1_000) as f64)
                        }
                    })
                    .collect(),
            })
            .collect();
        let now = TimeMs(1_700_000_000_000 + 15_000 * tick as i64);
        let start = Instant::now();
        for i in 0..OBJECTS {
            let (state, decision) = decide(&configs[i], &observations[i], &states[i], now);
            if decision.desired_replicas != replicas[i] {
                changes += 1;
            }
            replicas[i] = decision.desired_replicas;
            states[i] = black_box(state);
        }
        per_tick.push(start.elapsed());
    }
    per_tick.sort();
    let total: f64 = per_tick.iter().map(|d| d.as_secs_f64()).sum();
    let ns = total * 1e9 / (OBJECTS * TICKS) as f64;
    let median = per_tick[TICKS / 2].as_secs_f64() * 1e3;
    let worst = per_tick[TICKS - 1].as_secs_f64() * 1e3;
    println!(
        "decide: {OBJECTS} ScaledObjects x {TICKS} ticks: {ns:.0} ns per decision; \
         per tick median {median:.2} ms, max {worst:.2} ms; {changes} replica changes"
    );
}
