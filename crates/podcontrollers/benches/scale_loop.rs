//! The pod-layer scale loop with 1,000 and 10,000 ScaledObjects on in-process sources at
//! KEDA's default 30 s `pollingInterval`: how late each poll starts (the figure KEDA exports as
//! `keda_internal_scale_loop_latency_seconds`; its performance tests want p95 < 75 ms at 1,000
//! objects) and the CPU the process used. Figures are printed, never asserted.
//!
//! What runs is the worker's loop without the API server: one tokio task per ScaledObject
//! on a 2-thread runtime (as `tandem run`), sleeping until its planned poll and recording how
//! late it woke, exactly as `worker::run` does; each poll serializes the typed ScaledObject
//! and converts it (`tandem_manifest::convert`), measures its trigger through a
//! `Box<dyn Scaler>` under the worker's timeout, calls `podscaler::decide`, stores the value
//! the external metrics API serves (`MetricValues`) and computes KEDA's effects
//! (`worker::keda_effects`), whose `/scale` writes are counted, not sent.
//!
//! Not included: the Kubernetes calls of a live poll (reading `/scale`, applying the HPA,
//! the status patch, Events) and the watch that feeds the workers; those need a cluster and
//! are bounded by the API server, not by this loop. The source is in memory (a value per
//! object that changes every poll), so no network time is counted either.
//!
//! All objects start together (as after `tandem run` starts with them already in the
//! cluster), so every 30 s all of them are due at once: the worst case for lag.
//! `TANDEM_BENCH_CYCLES` sets how many polling intervals each size runs (default 3).
#![allow(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tandem_api::keda::v1alpha1::ScaledObject;
use tandem_podcontrollers::worker::keda_effects;
use tandem_podcontrollers::{MetricKey, MetricValues};
use tandem_podscaler::TimeMs;
use tandem_podscaler::activation::Effect;
use tandem_podscaler::decision::{Observation, PodLayerState, TriggerObservation, decide};
use tandem_scalers::{
    Measurement, MetricSpec, MetricValue, Scaler, ScalerError, Target, TriggerId,
};

const POLLING: Duration = Duration::from_secs(30);
/// The worker's bound on one measurement (`controller::MEASURE_TIMEOUT`).
const MEASURE_TIMEOUT: Duration = Duration::from_secs(30);

/// An in-process source: a lag that moves every poll, so decisions change.
struct MemoryScaler {
    id: TriggerId,
    metric: String,
    polls: AtomicU64,
    seed: u64,
}

#[async_trait::async_trait]
impl Scaler for MemoryScaler {
    fn id(&self) -> &TriggerId {
        &self.id
    }

    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec::External {
            name: self.metric.clone(),
            target: Target::AverageValue(10.0),
        }])
    }

    async fn measure(&self, _: &str, _: jiff::Timestamp) -> Result<Measurement, ScalerError> {
        let n = self.polls.fetch_add(1, Ordering::Relaxed);
        let value = ((self.seed.wrapping_mul(31).wrapping_add(n * 17)) % 120) as f64;
        Ok(Measurement {
            values: vec![MetricValue {
                name: self.metric.clone(),
                value,
            }],
            active: value > 0.0,
        })
    }
}

fn scaled_object(i: usize) -> ScaledObject {
    let doc = json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": format!("so-{i}"), "namespace": "bench", "uid": format!("uid-{i}"),
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "scaleTargetRef": {"name": format!("consumer-{i}")},
            "pollingInterval": POLLING.as_secs(),
            "minReplicaCount": 0,
            "maxReplicaCount": 20,
            "triggers": [{"type": "kafka", "metadata": {
                "bootstrapServers": "kafka.bench:9092",
                "consumerGroup": format!("group-{i}"),
                "topic": format!("topic-{i}"),
                "lagThreshold": "10"
            }}]
        }
    });
    match serde_json::from_value(doc) {
        Ok(so) => so,
        Err(e) => panic!("bench ScaledObject does not parse: {e}"),
    }
}

#[derive(Default)]
struct Totals {
    lags: Mutex<Vec<Duration>>,
    polls: AtomicU64,
    scale_writes: AtomicU64,
    errors: AtomicU64,
}

/// One worker: the shape of `worker::run` with an in-memory source and no API calls.
async fn worker(i: usize, values: MetricValues, totals: Arc<Totals>, stop: tokio::time::Instant) {
    let so = scaled_object(i);
    let scaler: Box<dyn Scaler> = Box::new(MemoryScaler {
        id: TriggerId {
            kind: "kafka".into(),
            index: 0,
            name: None,
        },
        metric: format!("s0-kafka-topic-{i}"),
        polls: AtomicU64::new(0),
        seed: i as u64,
    });
    let mut state = PodLayerState::default();
    let mut replicas = 0u32;
    loop {
        // tick
        let Ok(json) = serde_json::to_value(&so) else {
            totals.errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok(converted) = tandem_manifest::convert::scaled_object::convert(&json) else {
            totals.errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let now = jiff::Timestamp::now();
        let mut observations = Vec::with_capacity(converted.config.triggers.len());
        for t in &converted.config.triggers {
            match tokio::time::timeout(MEASURE_TIMEOUT, scaler.measure(&t.metric_name, now)).await {
                Ok(Ok(m)) => observations.push(TriggerObservation {
                    value: m.values.first().map(|v| v.value),
                    is_active: Some(m.active),
                }),
                _ => {
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                    observations.push(TriggerObservation::failed());
                }
            }
        }
        let observation = Observation {
            current_replicas: replicas,
            status_replicas: replicas,
            ready_pods: replicas,
            triggers: observations,
        };
        let (next, decision) = decide(
            &converted.config,
            &observation,
            &state,
            TimeMs(now.as_millisecond()),
        );
        state = next;
        for t in &decision.triggers {
            let key = MetricKey::new(&converted.namespace, &converted.name, &t.metric_name);
            match t.value {
                Some(v) => values.set(key, (v * 1000.0) as i64),
                None => values.remove(&key),
            }
        }
        for effect in keda_effects(&decision) {
            if let Effect::SetReplicas { n } = effect {
                replicas = n; // the no-op `/scale` write
                totals.scale_writes.fetch_add(1, Ordering::Relaxed);
            }
        }
        // The real HPA acts on the served value; play its rescale so the next decision starts
        // from the replicas it would have set.
        if let Some(h) = &decision.hpa
            && h.rescale
            && replicas > 0
        {
            replicas = h.desired;
        }
        totals.polls.fetch_add(1, Ordering::Relaxed);

        // wait, as worker::run: sleep until planned, record how late the wake-up was
        let planned = tokio::time::Instant::now() + POLLING;
        if planned > stop {
            return;
        }
        tokio::time::sleep_until(planned).await;
        let late = tokio::time::Instant::now().saturating_duration_since(planned);
        if let Ok(mut l) = totals.lags.lock() {
            l.push(late);
        }
    }
}

/// User + system CPU of the whole process (all threads), from `/proc/self/stat` in clock
/// ticks of 10 ms (Linux's USER_HZ is 100): what getrusage(RUSAGE_SELF) reports, without the
/// unsafe FFI call the workspace forbids.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state field.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn run(objects: usize, cycles: u32) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let totals = Arc::new(Totals::default());
    let values = MetricValues::new();
    let cpu0 = cpu_seconds();
    let wall0 = std::time::Instant::now();
    rt.block_on(async {
        // Stop after `cycles` full intervals (the first poll is at start, not counted as lag).
        let stop = tokio::time::Instant::now() + POLLING * cycles + Duration::from_secs(1);
        let handles: Vec<_> = (0..objects)
            .map(|i| tokio::spawn(worker(i, values.clone(), totals.clone(), stop)))
            .collect();
        for h in handles {
            let _ = h.await;
        }
    });
    let wall = wall0.elapsed();
    let cpu = cpu_seconds() - cpu0;
    let mut lags = totals.lags.lock().map(|l| l.clone()).unwrap_or_default();
    lags.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{objects:>6} ScaledObjects, {cycles} × {}s: {} polls ({} lag samples), {} /scale writes, {} errors",
        POLLING.as_secs(),
        totals.polls.load(Ordering::Relaxed),
        lags.len(),
        totals.scale_writes.load(Ordering::Relaxed),
        totals.errors.load(Ordering::Relaxed),
    );
    println!(
        "        scale-loop lag p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&lags, 50.0)),
        ms(percentile(&lags, 95.0)),
        ms(percentile(&lags, 99.0)),
        ms(lags.last().copied().unwrap_or_default()),
    );
    println!(
        "        CPU {cpu:.2} s over {:.1} s wall ({:.1} % of one core), {:.1} µs CPU per poll",
        wall.as_secs_f64(),
        100.0 * cpu / wall.as_secs_f64(),
        1e6 * cpu / totals.polls.load(Ordering::Relaxed).max(1) as f64,
    );
}

fn main() {
    let cycles: u32 = std::env::var("TANDEM_BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for objects in [1_000, 10_000] {
        run(objects, cycles);
    }
}
