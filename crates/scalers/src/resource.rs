//! `cpu` and `memory`: no external value. They become Resource (or ContainerResource) metrics
//! on the HPA, which reads them from metrics-server; Tandem only reports the spec and counts
//! them as always active (keda.md §7, keda `pkg/scalers/cpu_memory_scaler.go`).

use crate::params::M;
use crate::{
    Measurement, MetricSpec, MetricType, ParamError, ResourceTarget, Scaler, ScalerError,
    TriggerId, TriggerParams,
};

/// The `cpu` / `memory` trigger.
#[derive(Debug)]
pub struct ResourceScaler {
    id: TriggerId,
    spec: MetricSpec,
}

impl ResourceScaler {
    /// Parses `value` (required), `containerName`, and the trigger's `metricType`
    /// (`Utilization` or `AverageValue`); `metadata.type` is refused as upstream does.
    pub fn new(p: &TriggerParams) -> Result<Self, ParamError> {
        if p.lookup("type", M).is_some() {
            return Err(p.invalid(
                "type",
                "metadata.type is removed; set the trigger's metricType instead",
            ));
        }
        let raw = p.required_text("value", M)?;
        let target = match p.metric_type {
            MetricType::Utilization => ResourceTarget::Utilization(
                raw.parse::<i32>().ok().filter(|v| *v > 0).ok_or_else(|| {
                    p.invalid(
                        "value",
                        format!("{raw:?} is not a positive integer percentage"),
                    )
                })?,
            ),
            MetricType::AverageValue => {
                if !is_quantity(&raw) {
                    return Err(p.invalid(
                        "value",
                        format!("{raw:?} is not a quantity such as 500m or 256Mi"),
                    ));
                }
                ResourceTarget::AverageValue(raw)
            }
            MetricType::Value => {
                return Err(p.invalid(
                    "metricType",
                    "cpu and memory take Utilization or AverageValue",
                ));
            }
        };
        Ok(ResourceScaler {
            id: p.id.clone(),
            spec: MetricSpec::Resource {
                resource: p.id.kind.clone(),
                container: p.text("containerName", M),
                target,
            },
        })
    }
}

/// A Kubernetes quantity: a decimal number with an optional SI or binary suffix.
fn is_quantity(s: &str) -> bool {
    let suffixes = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    suffixes.iter().any(|suf| {
        s.strip_suffix(suf)
            .is_some_and(|num| !num.is_empty() && num.parse::<f64>().is_ok_and(|v| v >= 0.0))
    })
}

#[async_trait::async_trait]
impl Scaler for ResourceScaler {
    fn id(&self) -> &TriggerId {
        &self.id
    }

    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![self.spec.clone()])
    }

    /// No value (the HPA reads metrics-server); always active, as upstream.
    async fn measure(
        &self,
        _metric: &str,
        _now: jiff::Timestamp,
    ) -> Result<Measurement, ScalerError> {
        Ok(Measurement {
            values: Vec::new(),
            active: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaler(
        kind: &str,
        mt: MetricType,
        pairs: &[(&str, &str)],
    ) -> Result<ResourceScaler, ParamError> {
        let md = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ResourceScaler::new(&TriggerParams::new(kind, 1, &md).with_metric_type(mt))
    }

    #[tokio::test]
    async fn cpu_utilization_becomes_a_resource_metric_with_no_external_value() {
        let s = scaler(
            "cpu",
            MetricType::Utilization,
            &[("value", "60"), ("containerName", "app")],
        )
        .unwrap();
        assert_eq!(
            s.metric_specs().await.unwrap(),
            vec![MetricSpec::Resource {
                resource: "cpu".into(),
                container: Some("app".into()),
                target: ResourceTarget::Utilization(60),
            }]
        );
        let m = s.measure("cpu", jiff::Timestamp::UNIX_EPOCH).await.unwrap();
        assert!(m.values.is_empty() && m.active);
    }

    #[test]
    fn memory_average_value_takes_a_quantity() {
        assert!(scaler("memory", MetricType::AverageValue, &[("value", "256Mi")]).is_ok());
        let e = scaler("memory", MetricType::AverageValue, &[("value", "lots")]).unwrap_err();
        assert!(e.to_string().contains("invalid parameter value"), "{e}");
        let e = scaler(
            "cpu",
            MetricType::Utilization,
            &[("value", "50"), ("type", "Utilization")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid parameter type"), "{e}");
    }
}
