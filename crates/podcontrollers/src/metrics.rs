//! The pod layer's Prometheus metrics under KEDA's operator names (`keda_…`), so dashboards
//! and alerts written for KEDA keep working. Clone-cheap handles: unregistered (the default)
//! they count into nothing visible.
//!
//! Label set L of the per-trigger metrics, as upstream: `namespace`, `metric`, `scaledObject`
//! (the ScaledObject's or the ScaledJob's name), `scaler` (the trigger's name, else its type),
//! `triggerIndex`, `type` (`scaledobject` or `scaledjob`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

type FloatGauge = Gauge<f64, AtomicU64>;
/// Labels as `(name, value)` pairs: KEDA's names are camelCase (`scaledObject`).
pub type Labels = Vec<(String, String)>;

/// Per-trigger label sets by (kind, namespace, name).
type Seen = BTreeMap<(Resource, String, String), BTreeSet<Labels>>;

/// Which kind of object a trigger belongs to: upstream's `type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// A ScaledObject (`type="scaledobject"`).
    ScaledObject,
    /// A ScaledJob (`type="scaledjob"`).
    ScaledJob,
}

impl Resource {
    fn type_label(self) -> &'static str {
        match self {
            Resource::ScaledObject => "scaledobject",
            Resource::ScaledJob => "scaledjob",
        }
    }
}

/// One trigger of one ScaledObject or ScaledJob, for the per-trigger metrics.
#[derive(Debug, Clone, Copy)]
pub struct TriggerRef<'a> {
    /// ScaledObject or ScaledJob.
    pub kind: Resource,
    /// Namespace of the object.
    pub namespace: &'a str,
    /// The object's name (upstream's `scaledObject` label holds a ScaledJob's name too).
    pub scaled_object: &'a str,
    /// The trigger's metric name (`s0-rabbitmq-orders`).
    pub metric: &'a str,
    /// The trigger's `name`, else its `type`.
    pub scaler: &'a str,
    /// Position in `spec.triggers`.
    pub index: usize,
}

impl TriggerRef<'_> {
    fn labels(&self) -> Labels {
        vec![
            ("namespace".into(), self.namespace.into()),
            ("metric".into(), self.metric.into()),
            ("scaledObject".into(), self.scaled_object.into()),
            ("scaler".into(), self.scaler.into()),
            ("triggerIndex".into(), self.index.to_string()),
            ("type".into(), self.kind.type_label().into()),
        ]
    }
}

fn object(namespace: &str, scaled_object: &str) -> Labels {
    vec![
        ("namespace".into(), namespace.into()),
        ("scaledObject".into(), scaled_object.into()),
    ]
}

fn job(namespace: &str, scaled_job: &str) -> Labels {
    vec![
        ("namespace".into(), namespace.into()),
        ("scaledJob".into(), scaled_job.into()),
    ]
}

/// The metrics; see the module documentation for the labels.
#[derive(Debug, Clone, Default)]
pub struct PodLayerMetrics {
    value: Family<Labels, FloatGauge>,
    latency: Family<Labels, FloatGauge>,
    active: Family<Labels, Gauge>,
    errors: Family<Labels, Counter>,
    object_errors: Family<Labels, Counter>,
    job_errors: Family<Labels, Counter>,
    paused: Family<Labels, Gauge>,
    loop_latency: Family<Labels, FloatGauge>,
    /// Per-trigger label sets created, by (namespace, ScaledObject), so a deleted object's
    /// series can be removed (a Family cannot be filtered).
    seen: Arc<Mutex<Seen>>,
}

impl PodLayerMetrics {
    /// Registers every metric under KEDA's name (counters get `_total` from the encoder).
    pub fn register(registry: &mut Registry) -> Self {
        let m = PodLayerMetrics::default();
        registry.register(
            "keda_scaler_metrics_value",
            "The last metric value a trigger measured",
            m.value.clone(),
        );
        registry.register(
            "keda_scaler_metrics_latency_seconds",
            "The time the last measurement of a trigger took",
            m.latency.clone(),
        );
        registry.register(
            "keda_scaler_active",
            "1 when the trigger is active, else 0",
            m.active.clone(),
        );
        registry.register(
            "keda_scaler_detail_errors",
            "Errors of a trigger's measurements",
            m.errors.clone(),
        );
        registry.register(
            "keda_scaled_object_errors",
            "Errors of a ScaledObject's measurements",
            m.object_errors.clone(),
        );
        registry.register(
            "keda_scaled_job_errors",
            "Errors of a ScaledJob's measurements",
            m.job_errors.clone(),
        );
        registry.register(
            "keda_scaled_object_paused",
            "1 when the ScaledObject is paused, else 0",
            m.paused.clone(),
        );
        registry.register(
            "keda_internal_scale_loop_latency_seconds",
            "How late the last scale loop tick ran against its schedule",
            m.loop_latency.clone(),
        );
        m
    }

    /// A successful measurement.
    pub fn measured(&self, t: TriggerRef<'_>, value: f64, active: bool, seconds: f64) {
        let l = self.note(t);
        self.value.get_or_create(&l).set(value);
        self.latency.get_or_create(&l).set(seconds);
        self.active.get_or_create(&l).set(i64::from(active));
    }

    /// A failed measurement.
    pub fn failed(&self, t: TriggerRef<'_>) {
        let l = self.note(t);
        self.errors.get_or_create(&l).inc();
        match t.kind {
            Resource::ScaledObject => self
                .object_errors
                .get_or_create(&object(t.namespace, t.scaled_object))
                .inc(),
            Resource::ScaledJob => self
                .job_errors
                .get_or_create(&job(t.namespace, t.scaled_object))
                .inc(),
        };
    }

    /// Whether the object is paused, each tick.
    pub fn paused(&self, namespace: &str, scaled_object: &str, paused: bool) {
        self.paused
            .get_or_create(&object(namespace, scaled_object))
            .set(i64::from(paused));
    }

    /// How late a tick ran.
    pub fn loop_latency(&self, namespace: &str, scaled_object: &str, seconds: f64) {
        self.loop_latency
            .get_or_create(&vec![
                ("namespace".into(), namespace.into()),
                ("type".into(), "scaledobject".into()),
                ("resource".into(), scaled_object.into()),
            ])
            .set(seconds);
    }

    fn note(&self, t: TriggerRef<'_>) -> Labels {
        let l = t.labels();
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((t.kind, t.namespace.to_owned(), t.scaled_object.to_owned()))
            .or_default()
            .insert(l.clone());
        l
    }

    fn forget_triggers(&self, kind: Resource, namespace: &str, name: &str) {
        let key = (kind, namespace.to_owned(), name.to_owned());
        let triggers = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key)
            .unwrap_or_default();
        for l in &triggers {
            self.value.remove(l);
            self.latency.remove(l);
            self.active.remove(l);
            self.errors.remove(l);
        }
    }

    /// Drops a deleted ScaledJob's series.
    pub fn forget_job(&self, namespace: &str, scaled_job: &str) {
        self.forget_triggers(Resource::ScaledJob, namespace, scaled_job);
        self.job_errors.remove(&job(namespace, scaled_job));
    }

    /// Drops a deleted ScaledObject's series.
    pub fn forget(&self, namespace: &str, scaled_object: &str) {
        self.forget_triggers(Resource::ScaledObject, namespace, scaled_object);
        let o = object(namespace, scaled_object);
        self.object_errors.remove(&o);
        self.paused.remove(&o);
        self.loop_latency.remove(&vec![
            ("namespace".into(), namespace.into()),
            ("type".into(), "scaledobject".into()),
            ("resource".into(), scaled_object.into()),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_use_kedas_names_and_labels_and_go_with_their_object() {
        let mut registry = Registry::default();
        let m = PodLayerMetrics::register(&mut registry);
        let t = TriggerRef {
            kind: Resource::ScaledObject,
            namespace: "shop",
            scaled_object: "orders",
            metric: "s0-rabbitmq-orders",
            scaler: "rabbitmq",
            index: 0,
        };
        m.measured(t, 42.0, true, 0.01);
        m.failed(t);
        m.paused("shop", "orders", false);
        m.loop_latency("shop", "orders", 0.002);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("keda_scaler_metrics_value{namespace=\"shop\",metric=\"s0-rabbitmq-orders\",scaledObject=\"orders\",scaler=\"rabbitmq\",triggerIndex=\"0\",type=\"scaledobject\"} 42.0"), "{out}");
        assert!(out.contains("keda_scaler_active{namespace=\"shop\",metric=\"s0-rabbitmq-orders\",scaledObject=\"orders\",scaler=\"rabbitmq\",triggerIndex=\"0\",type=\"scaledobject\"} 1"), "{out}");
        assert!(out.contains("keda_scaler_detail_errors_total{"), "{out}");
        assert!(
            out.contains(
                "keda_scaled_object_errors_total{namespace=\"shop\",scaledObject=\"orders\"} 1"
            ),
            "{out}"
        );
        assert!(
            out.contains("keda_scaled_object_paused{namespace=\"shop\",scaledObject=\"orders\"} 0"),
            "{out}"
        );
        assert!(out.contains("keda_internal_scale_loop_latency_seconds{namespace=\"shop\",type=\"scaledobject\",resource=\"orders\"}"), "{out}");
        // A ScaledJob of the same name is another series, with its own error counter.
        let j = TriggerRef {
            kind: Resource::ScaledJob,
            ..t
        };
        m.measured(j, 7.0, true, 0.01);
        m.failed(j);
        m.forget("shop", "orders");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("keda_scaler_metrics_value{namespace=\"shop\",metric=\"s0-rabbitmq-orders\",scaledObject=\"orders\",scaler=\"rabbitmq\",triggerIndex=\"0\",type=\"scaledjob\"} 7.0"), "{out}");
        assert!(
            out.contains("keda_scaled_job_errors_total{namespace=\"shop\",scaledJob=\"orders\"} 1"),
            "{out}"
        );
        assert!(!out.contains("type=\"scaledobject\""), "{out}");
        m.forget_job("shop", "orders");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(!out.contains("orders"), "{out}");
    }
}
