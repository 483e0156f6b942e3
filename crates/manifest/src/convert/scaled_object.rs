//! `keda.sh/v1alpha1` ScaledObject → podscaler's [`ScaledObjectConfig`], plus what the pod layer's
//! shell needs beside it: the target, the polling interval and each trigger's type, metadata and
//! HPA metric name (podscaler's [`naming`], so names match upstream's `s<i>-…`).
//!
//! Trigger targets and activation thresholds use each scaler's metadata keys and defaults
//! (KEDA `pkg/scalers/<type>_scaler.go`): `aws-sqs-queue` queueLength 5, `rabbitmq` value 20
//! (or the deprecated queueLength), `prometheus` threshold, `redis` listLength 5, `kafka`
//! lagThreshold 10, `postgresql` targetQueryValue, `metrics-api` targetValue, `cron` a target of
//! 1 with `desiredReplicas` as its value inside the window, `cpu`/`memory` as Resource metrics.

use std::collections::BTreeMap;

use serde_json::Value;
use tandem_api::keda::v1alpha1::{self as keda, ScaledObject as ApiScaledObject};
use tandem_podscaler::TimeMs;
use tandem_podscaler::activation::{ActivationConfig, Annotations};
use tandem_podscaler::decision::{ScaledObjectConfig, TriggerConfig, TriggerKind};
use tandem_podscaler::fallback::{FallbackBehavior, FallbackConfig, TargetType};
use tandem_podscaler::hpa::{Behavior, Policy, PolicyKind, ScalingRules, SelectPolicy};
use tandem_podscaler::modifiers::ScalingModifiers;
use tandem_podscaler::naming::{self, MetricName};

use super::{FieldError, namespace_of};
use crate::typed::parse_as;

/// One trigger as the shell sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// `type`.
    pub kind: String,
    /// `name`.
    pub name: Option<String>,
    /// `metadata` as written.
    pub metadata: BTreeMap<String, String>,
    /// The HPA metric name.
    pub metric_name: String,
}

/// A ScaledObject ready for the pod layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledObject {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `scaleTargetRef.kind` (default Deployment).
    pub target_kind: String,
    /// `scaleTargetRef.name`.
    pub target_name: String,
    /// `pollingInterval` in seconds (default 30).
    pub polling_interval_secs: u32,
    /// The pure pod layer's input.
    pub config: ScaledObjectConfig,
    /// Triggers in spec order, same order as `config.triggers`.
    pub triggers: Vec<Trigger>,
}

fn nonneg(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// Converts a ScaledObject document.
///
/// # Errors
/// [`FieldError`] when the document does not parse, a trigger has no naming rule or target, or
/// the formula is invalid.
pub fn convert(v: &Value) -> Result<ScaledObject, FieldError> {
    let so: ApiScaledObject = parse_as(v)?;
    let spec = &so.spec;
    let activation = ActivationConfig {
        min_replicas: nonneg(spec.min_replica_count_or_default()),
        max_replicas: nonneg(spec.max_replica_count_or_default()),
        idle_replicas: spec.idle_replica_count.map(nonneg),
        cooldown_secs: nonneg(spec.cooldown_period_or_default()),
        initial_cooldown_secs: nonneg(spec.initial_cooldown_period_or_default()),
    };
    let mut triggers = Vec::new();
    let mut configs = Vec::new();
    for (i, t) in spec.triggers.iter().enumerate() {
        let (trigger, config) = trigger(i, t)?;
        triggers.push(trigger);
        configs.push(config);
    }
    let annotations = so
        .metadata
        .annotations
        .as_ref()
        .map(Annotations::from_map)
        .transpose()
        .map_err(|e| FieldError::new("metadata.annotations", e.to_string()))?
        .unwrap_or_default();
    let advanced = spec.advanced.as_ref();
    let behavior = advanced
        .and_then(|a| a.horizontal_pod_autoscaler_config.as_ref())
        .and_then(|h| h.behavior.as_ref())
        .map(behavior);
    let modifiers = match advanced.and_then(|a| a.scaling_modifiers.as_ref()) {
        Some(m) if m.formula.is_some() => {
            let metric_type = match m.metric_type.as_deref() {
                Some("Value") => TargetType::Value,
                _ => TargetType::AverageValue,
            };
            Some(
                ScalingModifiers::new(
                    m.formula.as_deref().unwrap_or_default(),
                    m.target.as_deref().unwrap_or_default(),
                    m.activation_target.as_deref(),
                    metric_type,
                )
                .map_err(|e| FieldError::new("spec.advanced.scalingModifiers", e.to_string()))?,
            )
        }
        _ => None,
    };
    let fallback = spec.fallback.as_ref().map(|f| FallbackConfig {
        failure_threshold: nonneg(f.failure_threshold),
        replicas: nonneg(f.replicas),
        behavior: match f.behavior {
            keda::FallbackBehavior::Static => FallbackBehavior::Static,
            keda::FallbackBehavior::CurrentReplicas => FallbackBehavior::CurrentReplicas,
            keda::FallbackBehavior::CurrentReplicasIfHigher => {
                FallbackBehavior::CurrentReplicasIfHigher
            }
            keda::FallbackBehavior::CurrentReplicasIfLower => {
                FallbackBehavior::CurrentReplicasIfLower
            }
            keda::FallbackBehavior::ScalingModifiers => FallbackBehavior::ScalingModifiers,
        },
    });
    Ok(ScaledObject {
        namespace: namespace_of(so.metadata.namespace.as_ref()),
        name: so.metadata.name.clone().unwrap_or_default(),
        target_kind: spec.scale_target_ref.kind_or_default().to_owned(),
        target_name: spec.scale_target_ref.name.clone(),
        polling_interval_secs: nonneg(spec.polling_interval_or_default()).max(1),
        config: ScaledObjectConfig {
            activation,
            triggers: configs,
            fallback,
            behavior,
            modifiers,
            annotations,
            created_at: TimeMs(0),
        },
        triggers,
    })
}

/// The metadata key holding the target and the activation threshold, with the target's
/// default, per trigger type.
fn target_keys(
    kind: &str,
    md: &BTreeMap<String, String>,
) -> Option<(&'static str, &'static str, Option<f64>)> {
    Some(match kind {
        "aws-sqs-queue" => ("queueLength", "activationQueueLength", Some(5.0)),
        "rabbitmq" if md.contains_key("value") => ("value", "activationValue", Some(20.0)),
        "rabbitmq" => ("queueLength", "activationValue", Some(20.0)),
        "prometheus" => ("threshold", "activationThreshold", None),
        "redis" | "redis-cluster" | "redis-sentinel" => {
            ("listLength", "activationListLength", Some(5.0))
        }
        "kafka" => ("lagThreshold", "activationLagThreshold", Some(10.0)),
        "postgresql" => ("targetQueryValue", "activationTargetQueryValue", None),
        "metrics-api" => ("targetValue", "activationTargetValue", None),
        _ => return None,
    })
}

fn trigger(i: usize, t: &keda::ScaleTrigger) -> Result<(Trigger, TriggerConfig), FieldError> {
    let path = format!("spec.triggers[{i}]");
    let md = &t.metadata;
    let name = naming::metric_name(i, &t.type_, md)
        .map_err(|e| FieldError::new(format!("{path}.type"), e.to_string()))?;
    let number = |key: &str| -> Result<Option<f64>, FieldError> {
        match md.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s.parse::<f64>().map(Some).map_err(|_| {
                FieldError::new(
                    format!("{path}.metadata.{key}"),
                    format!("{s:?} is not a number"),
                )
            }),
        }
    };
    let target_type = match t.metric_type.as_deref() {
        Some("Value") => TargetType::Value,
        _ => TargetType::AverageValue,
    };
    let kind = match (&name, t.type_.as_str()) {
        (MetricName::Resource(_), _) => {
            let value = number("value")?.ok_or_else(|| {
                FieldError::new(
                    format!("{path}.metadata.value"),
                    "a cpu/memory trigger needs a value",
                )
            })?;
            TriggerKind::Resource {
                target: value as i64,
            }
        }
        (_, "cron") => TriggerKind::External {
            target: 1.0,
            target_type: TargetType::AverageValue,
            activation_threshold: 0.0,
        },
        (_, kind) => {
            let (target_key, activation_key, default) = target_keys(kind, md).ok_or_else(|| {
                FieldError::new(
                    format!("{path}.type"),
                    format!("trigger type {kind:?} is not simulated yet"),
                )
            })?;
            let target = number(target_key)?.or(default).ok_or_else(|| {
                FieldError::new(
                    format!("{path}.metadata.{target_key}"),
                    format!("a {kind} trigger needs {target_key}"),
                )
            })?;
            TriggerKind::External {
                target,
                target_type,
                activation_threshold: number(activation_key)?.unwrap_or(0.0),
            }
        }
    };
    let metric_name = name.as_str().to_owned();
    Ok((
        Trigger {
            kind: t.type_.clone(),
            name: t.name.clone(),
            metadata: md.clone(),
            metric_name: metric_name.clone(),
        },
        TriggerConfig {
            metric_name,
            name: t.name.clone(),
            kind,
        },
    ))
}

fn rules(r: &k8s_openapi::api::autoscaling::v2::HPAScalingRules) -> ScalingRules {
    ScalingRules {
        stabilization_window_secs: r.stabilization_window_seconds.map(nonneg),
        select_policy: r.select_policy.as_deref().map(|s| match s {
            "Min" => SelectPolicy::Min,
            "Disabled" => SelectPolicy::Disabled,
            _ => SelectPolicy::Max,
        }),
        policies: r.policies.as_ref().map(|ps| {
            ps.iter()
                .map(|p| Policy {
                    kind: if p.type_ == "Percent" {
                        PolicyKind::Percent
                    } else {
                        PolicyKind::Pods
                    },
                    value: nonneg(p.value),
                    period_secs: nonneg(p.period_seconds),
                })
                .collect()
        }),
        tolerance: r
            .tolerance
            .as_ref()
            .and_then(|q| q.0.parse::<tandem_model::quantity::Quantity>().ok())
            .map(|q| q.as_milli() as f64 / 1000.0),
    }
}

fn behavior(b: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior) -> Behavior {
    Behavior {
        scale_up: b.scale_up.as_ref().map(rules),
        scale_down: b.scale_down.as_ref().map(rules),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::test_support::{doc, seed};

    #[test]
    fn seed_002_sqs_scaler_reads_timers_and_queue_length() {
        let files = seed("002_85c0937ec41394ee");
        let so = convert(&files[2].documents[0].value).unwrap();
        assert_eq!(
            (so.namespace.as_str(), so.target_name.as_str()),
            ("processing", "sqs-consumer")
        );
        assert_eq!(so.target_kind, "Deployment");
        assert_eq!(so.polling_interval_secs, 15);
        let a = so.config.activation;
        assert_eq!(
            (a.min_replicas, a.max_replicas, a.cooldown_secs),
            (0, 50, 60)
        );
        assert_eq!(so.triggers[0].metric_name, "s0-aws-sqs-orders");
        assert_eq!(
            so.config.triggers[0].kind,
            TriggerKind::External {
                target: 5.0,
                target_type: TargetType::AverageValue,
                activation_threshold: 0.0
            }
        );
    }

    #[test]
    fn seed_003_rabbitmq_defaults_max_and_reads_value() {
        let files = seed("003_76bb3cb27d73d62f");
        let so = convert(&files[2].documents[0].value).unwrap();
        assert_eq!(so.polling_interval_secs, 60);
        assert_eq!(so.config.activation.min_replicas, 1);
        assert_eq!(so.config.activation.max_replicas, 100);
        assert_eq!(so.triggers[0].metric_name, "s0-rabbitmq-orders");
        assert!(
            matches!(so.config.triggers[0].kind, TriggerKind::External { target, .. } if target == 10.0)
        );
    }

    #[test]
    fn behavior_and_prometheus_threshold_are_converted() {
        let v = doc(r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: tenant, namespace: krci}
spec:
  scaleTargetRef: {name: portal}
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 60
          policies: [{type: Percent, value: 50, periodSeconds: 30}]
  triggers:
  - type: prometheus
    metadata: {serverAddress: "http://prom:9090", query: "sum(x)", threshold: "2.5", activationThreshold: "1"}
"#);
        let so = convert(&v).unwrap();
        assert_eq!(so.triggers[0].metric_name, "s0-prometheus");
        let down = so.config.behavior.unwrap().scale_down.unwrap();
        assert_eq!(down.stabilization_window_secs, Some(60));
        assert_eq!(down.policies.unwrap()[0].kind, PolicyKind::Percent);
        assert!(
            matches!(so.config.triggers[0].kind, TriggerKind::External { target, activation_threshold, .. } if target == 2.5 && activation_threshold == 1.0)
        );
    }

    #[test]
    fn an_unsimulated_trigger_type_is_an_error_at_its_type() {
        let v = doc(r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: x}
spec:
  scaleTargetRef: {name: target}
  triggers:
  - type: external
    metadata: {scalerAddress: "a:1"}
"#);
        let e = convert(&v).unwrap_err();
        assert_eq!(e.field, "spec.triggers[0].type");
    }
}

/// Milliseconds since the Unix epoch of `2026-01-05T00:00:00Z` (a Monday): where simulated time
/// starts when a cron trigger needs a calendar.
pub const SIMULATION_EPOCH_MS: i64 = 1_767_571_200_000;

/// A `cron` trigger's windows `[start, end)` in ms relative to `epoch_ms`, within
/// `[0, duration_ms)`, and its `desiredReplicas` (default 1), as KEDA's cron scaler reads them
/// (`start`/`end` five-field expressions in `timezone`).
///
/// # Errors
/// [`FieldError`] at the metadata key that cannot be read.
pub fn cron_windows(
    index: usize,
    trigger: &Trigger,
    epoch_ms: i64,
    duration_ms: i64,
) -> Result<(Vec<(i64, i64)>, f64), FieldError> {
    let path = format!("spec.triggers[{index}].metadata");
    let get = |k: &str| {
        trigger
            .metadata
            .get(k)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                FieldError::new(format!("{path}.{k}"), format!("a cron trigger needs {k}"))
            })
    };
    let tz = jiff::tz::TimeZone::get(get("timezone")?)
        .map_err(|e| FieldError::new(format!("{path}.timezone"), e.to_string()))?;
    let start = crate::cron::parse(get("start")?)
        .map_err(|e| FieldError::new(format!("{path}.start"), e.to_string()))?;
    let end = crate::cron::parse(get("end")?)
        .map_err(|e| FieldError::new(format!("{path}.end"), e.to_string()))?;
    let desired = match trigger.metadata.get("desiredReplicas") {
        Some(s) => s.trim().parse::<f64>().map_err(|_| {
            FieldError::new(
                format!("{path}.desiredReplicas"),
                format!("{s:?} is not a number"),
            )
        })?,
        None => 1.0,
    };
    // croner matches wall-clock (civil) time; the time zone maps it to instants. croner reads
    // jiff 0.2's civil type, the rest of Tandem uses jiff 1, so parts cross between them.
    let err = |e: &dyn std::fmt::Display| FieldError::new(path.clone(), e.to_string());
    let to_civil = |ms: i64| -> Result<jiff_croner::civil::DateTime, FieldError> {
        let d = jiff::Timestamp::from_millisecond(ms)
            .map_err(|e| err(&e))?
            .to_zoned_datetime(tz.clone())
            .datetime();
        jiff_croner::civil::DateTime::new(
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            0,
        )
        .map_err(|e| err(&e))
    };
    let to_ms = |c: &jiff_croner::civil::DateTime| -> Result<i64, FieldError> {
        let d = jiff::civil::DateTime::new(
            c.year(),
            c.month(),
            c.day(),
            c.hour(),
            c.minute(),
            c.second(),
            0,
        )
        .map_err(|e| err(&e))?;
        Ok(d.to_zoned_datetime(tz.clone())
            .map_err(|e| err(&e))?
            .timestamp()
            .as_millisecond())
    };
    let horizon = epoch_ms + duration_ms;
    let mut windows = Vec::new();
    // Start a week early so a window already open at the epoch is found.
    let mut cursor = to_civil(epoch_ms - 7 * 86_400_000)?;
    for _ in 0..100_000 {
        let Ok(s) = start.find_next_occurrence(&cursor, false) else {
            break;
        };
        let s_ms = to_ms(&s)?;
        if s_ms >= horizon {
            break;
        }
        let Ok(e) = end.find_next_occurrence(&s, false) else {
            break;
        };
        let e_ms = to_ms(&e)?;
        if e_ms > epoch_ms {
            windows.push((s_ms.max(epoch_ms) - epoch_ms, e_ms.min(horizon) - epoch_ms));
        }
        cursor = s;
    }
    Ok((windows, desired))
}

#[cfg(test)]
mod cron_tests {
    use super::*;

    #[test]
    fn cron_windows_open_at_start_and_close_at_end_each_day() {
        let t = Trigger {
            kind: "cron".into(),
            name: None,
            metadata: [
                ("timezone", "UTC"),
                ("start", "0 8 * * *"),
                ("end", "0 18 * * *"),
                ("desiredReplicas", "4"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            metric_name: "s0-cron-UTC-08xxx-018xxx".into(),
        };
        let (w, desired) = cron_windows(0, &t, SIMULATION_EPOCH_MS, 2 * 86_400_000).unwrap();
        assert_eq!(desired, 4.0);
        let h = 3_600_000;
        assert_eq!(w, vec![(8 * h, 18 * h), (32 * h, 42 * h)]);
    }
}
