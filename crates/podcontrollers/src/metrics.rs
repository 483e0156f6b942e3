//! The pod layer's Prometheus metrics under KEDA's operator names (`keda_…`), so dashboards
//! and alerts written for KEDA keep working. Clone-cheap handles: unregistered (the default)
//! they count into nothing visible.
//!
//! Label set L of the per-trigger metrics, as upstream: `namespace`, `metric`, `scaledObject`,
//! `scaler` (the trigger's name, else its type), `triggerIndex`, `type` (`scaledobject`).

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

/// Per-trigger label sets by (namespace, ScaledObject).
type Seen = BTreeMap<(String, String), BTreeSet<Labels>>;

/// One trigger of one ScaledObject, for the per-trigger metrics.
#[derive(Debug, Clone, Copy)]
pub struct TriggerRef<'a> {
    /// Namespace of the ScaledObject.
    pub namespace: &'a str,
    /// ScaledObject name.
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
            ("type".into(), "scaledobject".into()),
        ]
    }
}

fn object(namespace: &str, scaled_object: &str) -> Labels {
    vec![
        ("namespace".into(), namespace.into()),
        ("scaledObject".into(), scaled_object.into()),
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
        self.object_errors
            .get_or_create(&object(t.namespace, t.scaled_object))
            .inc();
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
            .entry((t.namespace.to_owned(), t.scaled_object.to_owned()))
            .or_default()
            .insert(l.clone());
        l
    }

    /// Drops a deleted object's series.
    pub fn forget(&self, namespace: &str, scaled_object: &str) {
        let key = (namespace.to_owned(), scaled_object.to_owned());
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
        m.forget("shop", "orders");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(!out.contains("orders"), "{out}");
    }
}
