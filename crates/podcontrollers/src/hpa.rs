//! The HPA a ScaledObject owns, built as a pure function of the object (keda.md §3.2; upstream
//! `controllers/keda/hpa.go`).
//!
//! - name `keda-hpa-<so>` unless `advanced.horizontalPodAutoscalerConfig.name`;
//! - `minReplicas = max(minReplicaCount, 1)`, `maxReplicas = maxReplicaCount` (default 100);
//! - one External metric per trigger, named `s<i>-…`, selected by
//!   `scaledobject.keda.sh/name=<so>`; cpu/memory triggers become Resource metrics; with
//!   scalingModifiers the External metrics are replaced by one `composite-metric`; metrics
//!   sorted by type (External before Resource), stably;
//! - `behavior` copied from `advanced.horizontalPodAutoscalerConfig.behavior`, with
//!   `selectPolicy: Disabled` on the side a `paused-scale-in` / `paused-scale-out` annotation
//!   blocks;
//! - labels `app.kubernetes.io/{name,part-of,managed-by}` plus the ScaledObject's labels, a
//!   controller owner reference to the ScaledObject.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, ExternalMetricSource, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::ObjectMeta;
use tandem_api::keda::v1alpha1::ScaledObject;
use tandem_manifest::convert::ScaledObject as Converted;
use tandem_podscaler::decision::TriggerKind;
use tandem_podscaler::fallback::TargetType;
use tandem_podscaler::modifiers::COMPOSITE_METRIC_NAME;

use crate::metrics_server::SCALED_OBJECT_LABEL;

/// `app.kubernetes.io/managed-by` as upstream writes it, so existing selectors keep working.
pub const MANAGED_BY: &str = "keda-operator";

/// The HPA name: `advanced.horizontalPodAutoscalerConfig.name` or `keda-hpa-<name>`.
#[must_use]
pub fn hpa_name(so: &ScaledObject) -> String {
    so.spec
        .advanced
        .as_ref()
        .and_then(|a| a.horizontal_pod_autoscaler_config.as_ref())
        .and_then(|h| h.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            format!(
                "keda-hpa-{}",
                so.metadata.name.as_deref().unwrap_or_default()
            )
        })
}

/// A target as upstream formats it: whole numbers as integers, others with milli precision.
fn target_quantity(v: f64) -> Quantity {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        Quantity(format!("{}", v as i64))
    } else {
        Quantity(format!("{v:.3}"))
    }
}

fn external(name: &str, so_name: &str, target: f64, target_type: TargetType) -> MetricSpec {
    let quantity = target_quantity(target);
    let target = match target_type {
        TargetType::AverageValue => MetricTarget {
            type_: "AverageValue".into(),
            average_value: Some(quantity),
            ..MetricTarget::default()
        },
        TargetType::Value => MetricTarget {
            type_: "Value".into(),
            value: Some(quantity),
            ..MetricTarget::default()
        },
    };
    MetricSpec {
        type_: "External".into(),
        external: Some(ExternalMetricSource {
            metric: MetricIdentifier {
                name: name.to_owned(),
                selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        SCALED_OBJECT_LABEL.to_owned(),
                        so_name.to_owned(),
                    )])),
                    ..LabelSelector::default()
                }),
            },
            target,
        }),
        ..MetricSpec::default()
    }
}

/// The HPA's metrics, sorted by type as upstream does.
fn metrics(so: &ScaledObject, converted: &Converted) -> Vec<MetricSpec> {
    let so_name = so.metadata.name.as_deref().unwrap_or_default();
    let config = &converted.config;
    let mut out = Vec::new();
    if let Some(m) = &config.modifiers {
        out.push(external(
            COMPOSITE_METRIC_NAME,
            so_name,
            m.target,
            m.metric_type,
        ));
    }
    for (i, t) in config.triggers.iter().enumerate() {
        match t.kind {
            TriggerKind::External {
                target,
                target_type,
                ..
            } => {
                if config.modifiers.is_none() {
                    out.push(external(&t.metric_name, so_name, target, target_type));
                }
            }
            TriggerKind::Resource { target } => {
                let metric_type = so
                    .spec
                    .triggers
                    .get(i)
                    .and_then(|t| t.metric_type.as_deref());
                let target = if metric_type == Some("AverageValue") {
                    MetricTarget {
                        type_: "AverageValue".into(),
                        average_value: so
                            .spec
                            .triggers
                            .get(i)
                            .and_then(|t| t.metadata.get("value"))
                            .map(|v| Quantity(v.trim().to_owned())),
                        ..MetricTarget::default()
                    }
                } else {
                    MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: i32::try_from(target).ok(),
                        ..MetricTarget::default()
                    }
                };
                out.push(MetricSpec {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricSource {
                        name: t.metric_name.clone(),
                        target,
                    }),
                    ..MetricSpec::default()
                });
            }
        }
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

fn disable(rules: &mut Option<HPAScalingRules>) {
    rules
        .get_or_insert_with(HPAScalingRules::default)
        .select_policy = Some("Disabled".into());
}

/// The HPA the ScaledObject should own. `target_api_version` is the resolved
/// `group/version` of the scale target.
#[must_use]
pub fn desired_hpa(
    so: &ScaledObject,
    converted: &Converted,
    target_api_version: &str,
    target_kind: &str,
) -> HorizontalPodAutoscaler {
    let name = hpa_name(so);
    let so_name = so.metadata.name.clone().unwrap_or_default();
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), label_value(&name)),
        ("app.kubernetes.io/part-of".to_owned(), so_name.clone()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        ),
        (SCALED_OBJECT_LABEL.to_owned(), so_name.clone()),
    ]);
    if let Some(so_labels) = &so.metadata.labels {
        labels.extend(so_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut behavior = so
        .spec
        .advanced
        .as_ref()
        .and_then(|a| a.horizontal_pod_autoscaler_config.as_ref())
        .and_then(|h| h.behavior.clone());
    let ann = converted.config.annotations;
    if ann.paused_scale_in || ann.paused_scale_out {
        let b = behavior.get_or_insert_with(Default::default);
        if ann.paused_scale_in {
            disable(&mut b.scale_down);
        }
        if ann.paused_scale_out {
            disable(&mut b.scale_up);
        }
    }
    let activation = converted.config.activation;
    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: so.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                api_version: "keda.sh/v1alpha1".into(),
                kind: "ScaledObject".into(),
                name: so_name,
                uid: so.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some(target_api_version.to_owned()),
                kind: target_kind.to_owned(),
                name: so.spec.scale_target_ref.name.clone(),
            },
            min_replicas: Some(i32::try_from(activation.min_replicas.max(1)).unwrap_or(i32::MAX)),
            max_replicas: i32::try_from(activation.max_replicas).unwrap_or(i32::MAX),
            metrics: Some(metrics(so, converted)),
            behavior,
        },
        status: None,
    }
}

/// A label value: at most 63 characters, trailing non-alphanumerics trimmed (upstream).
fn label_value(s: &str) -> String {
    let cut: String = s.chars().take(63).collect();
    cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn so(json: &str) -> (ScaledObject, Converted) {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let so: ScaledObject = serde_json::from_value(v.clone()).unwrap();
        let c = tandem_manifest::convert::scaled_object::convert(&v).unwrap();
        (so, c)
    }

    #[test]
    fn seed_003_gets_an_external_metric_with_the_selector_and_min_one() {
        let (so, c) = so(SEED_003);
        let hpa = desired_hpa(&so, &c, "apps/v1", "Deployment");
        assert_eq!(
            hpa.metadata.name.as_deref(),
            Some("keda-hpa-virtual-worker-rabbitmq-scaledobject")
        );
        let spec = hpa.spec;
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(1), 100));
        let m = &spec.metrics.unwrap()[0];
        let ext = m.external.as_ref().unwrap();
        assert_eq!(ext.metric.name, "s0-rabbitmq-orders");
        assert_eq!(
            ext.metric
                .selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()[SCALED_OBJECT_LABEL],
            "virtual-worker-rabbitmq-scaledobject"
        );
        assert_eq!(ext.target.type_, "AverageValue");
        assert_eq!(ext.target.average_value, Some(Quantity("10".into())));
        let owner = &hpa.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("ScaledObject", Some(true))
        );
    }

    #[test]
    fn resource_metrics_sort_after_external_and_name_and_behavior_are_taken_from_advanced() {
        let (so, c) = so(r#"{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject",
          "metadata":{"name":"w","namespace":"n","annotations":{"autoscaling.keda.sh/paused-scale-in":"true"}},
          "spec":{"scaleTargetRef":{"name":"t"},"minReplicaCount":0,"maxReplicaCount":7,
            "advanced":{"horizontalPodAutoscalerConfig":{"name":"custom",
               "behavior":{"scaleUp":{"stabilizationWindowSeconds":5}}}},
            "triggers":[
              {"type":"cpu","metricType":"Utilization","metadata":{"value":"60"}},
              {"type":"prometheus","metricType":"Value","metadata":{"serverAddress":"http://p","query":"q","threshold":"2.5"}}]}}"#);
        let hpa = desired_hpa(&so, &c, "apps/v1", "Deployment");
        assert_eq!(hpa.metadata.name.as_deref(), Some("custom"));
        let spec = hpa.spec;
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(1), 7));
        let metrics = spec.metrics.unwrap();
        assert_eq!(metrics[0].type_, "External");
        assert_eq!(
            metrics[0].external.as_ref().unwrap().target.value,
            Some(Quantity("2.500".into()))
        );
        assert_eq!(metrics[1].type_, "Resource");
        assert_eq!(
            metrics[1]
                .resource
                .as_ref()
                .unwrap()
                .target
                .average_utilization,
            Some(60)
        );
        let behavior = spec.behavior.unwrap();
        assert_eq!(
            behavior.scale_up.unwrap().stabilization_window_seconds,
            Some(5)
        );
        assert_eq!(
            behavior.scale_down.unwrap().select_policy.as_deref(),
            Some("Disabled")
        );
    }

    #[test]
    fn scaling_modifiers_replace_external_metrics_with_the_composite_one() {
        let (so, c) = so(r#"{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject",
          "metadata":{"name":"w","namespace":"n"},
          "spec":{"scaleTargetRef":{"name":"t"},
            "advanced":{"scalingModifiers":{"formula":"a + b","target":"5"}},
            "triggers":[
              {"type":"prometheus","name":"a","metadata":{"serverAddress":"http://p","query":"q1","threshold":"1"}},
              {"type":"prometheus","name":"b","metadata":{"serverAddress":"http://p","query":"q2","threshold":"1"}}]}}"#);
        let metrics = desired_hpa(&so, &c, "apps/v1", "Deployment")
            .spec
            .metrics
            .unwrap();
        assert_eq!(metrics.len(), 1);
        let ext = metrics[0].external.as_ref().unwrap();
        assert_eq!(ext.metric.name, COMPOSITE_METRIC_NAME);
        assert_eq!(ext.target.average_value, Some(Quantity("5".into())));
    }

    #[test]
    fn label_values_are_cut_to_63_and_trimmed() {
        let long = format!("{}-x", "a".repeat(62));
        assert_eq!(label_value(&long), "a".repeat(62));
    }

    const SEED_003: &str = r#"{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject",
      "metadata":{"name":"virtual-worker-rabbitmq-scaledobject","namespace":"pets","uid":"u1"},
      "spec":{"scaleTargetRef":{"name":"virtual-worker"},"minReplicaCount":1,"pollingInterval":60,
        "triggers":[{"type":"rabbitmq","metadata":{"protocol":"http","queueName":"orders","mode":"QueueLength","value":"10"},
          "authenticationRef":{"name":"trigger-auth-rabbitmq-conn"}}]}}"#;
}
