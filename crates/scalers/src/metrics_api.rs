//! `metrics-api`: GET a URL and read one number at `valueLocation`. Upstream: keda
//! `pkg/scalers/metrics_api_scaler.go`; keda.md §7.
//!
//! `valueLocation` is a GJSON-style dotted path for json and yaml (`components.worker.tasks`,
//! `items.0.depth`, `items.#` for a length, `\.` for a literal dot), and a series name
//! (optionally with its labels, as printed) for the Prometheus text format.

use crate::error::ErrorContext;
use crate::http::{self, HttpSettings};
use crate::params::M;
use crate::{
    Measurement, MetricSpec, ParamError, Scaler, ScalerError, Target, TriggerId, TriggerParams,
    external_name, plain_measurement,
};

/// Response formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (default).
    Json,
    /// YAML.
    Yaml,
    /// Prometheus text exposition.
    Prometheus,
}

/// Parsed `metrics-api` trigger.
#[derive(Debug, Clone)]
pub struct MetricsApiConfig {
    /// Where to GET.
    pub url: url::Url,
    /// Where the number is.
    pub value_location: String,
    /// Target per replica.
    pub target_value: f64,
    /// Active above this.
    pub activation_target_value: f64,
    /// Body format.
    pub format: Format,
    /// Auth and TLS.
    pub http: HttpSettings,
    /// Per-request timeout.
    pub timeout: std::time::Duration,
}

impl MetricsApiConfig {
    /// Parses and validates the trigger's parameters.
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let raw = p.required_text("url", M)?;
        let url = url::Url::parse(&raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| p.invalid("url", "not an http(s) URL"))?;
        let format = match p.choice("format", M, &["json", "yaml", "prometheus", "xml"], "json")? {
            "yaml" => Format::Yaml,
            "prometheus" => Format::Prometheus,
            "xml" => {
                return Err(p.invalid(
                    "format",
                    "xml is not supported by tandem yet; use json, yaml or prometheus",
                ));
            }
            _ => Format::Json,
        };
        if p.bool_or("aggregateFromKubeServiceEndpoints", M, false)? {
            return Err(p.invalid(
                "aggregateFromKubeServiceEndpoints",
                "not supported by tandem yet",
            ));
        }
        let target_value = match p.f64_opt("targetValue", M)? {
            Some(t) => t,
            None if p.uses_scaling_modifiers => 0.0,
            None => {
                return Err(ParamError::Missing {
                    trigger: p.id.clone(),
                    param: "targetValue".into(),
                });
            }
        };
        Ok(MetricsApiConfig {
            url,
            value_location: p.required_text("valueLocation", M)?,
            target_value,
            activation_target_value: p.f64_or("activationTargetValue", M, 0.0)?,
            format,
            http: HttpSettings::parse(p)?,
            timeout: p
                .duration_opt("timeout", M)?
                .unwrap_or(http::DEFAULT_TIMEOUT),
        })
    }
}

/// Reads the number at `location` in `body`.
pub fn extract(body: &str, format: Format, location: &str) -> Result<f64, String> {
    match format {
        Format::Json => {
            let v: serde_json::Value =
                serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
            number_at(&v, location)
        }
        Format::Yaml => {
            let v: serde_json::Value =
                serde_yaml_ng::from_str(body).map_err(|e| format!("not YAML: {e}"))?;
            number_at(&v, location)
        }
        Format::Prometheus => body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let rest = l.strip_prefix(location)?;
                let rest = rest.strip_prefix([' ', '\t'])?;
                rest.split_whitespace().next()
            })
            .ok_or_else(|| format!("no series {location:?} in the response"))
            .and_then(|v| {
                v.parse::<f64>()
                    .map_err(|_| format!("value {v:?} is not a number"))
            }),
    }
}

fn path_segments(path: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        let ch = match c {
            '\\' => chars.next(),
            '.' => {
                out.push(String::new());
                None
            }
            c => Some(c),
        };
        if let (Some(ch), Some(last)) = (ch, out.last_mut()) {
            last.push(ch);
        }
    }
    out
}

fn number_at(root: &serde_json::Value, path: &str) -> Result<f64, String> {
    let mut cur = root;
    for seg in path_segments(path) {
        cur = match cur {
            serde_json::Value::Object(m) => m
                .get(&seg)
                .ok_or_else(|| format!("no {seg:?} at {path:?}"))?,
            // GJSON's `#`: the length of the array.
            #[allow(clippy::cast_precision_loss)]
            serde_json::Value::Array(a) if seg == "#" => return Ok(a.len() as f64),
            serde_json::Value::Array(a) => seg
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get(i))
                .ok_or_else(|| format!("no element {seg:?} at {path:?}"))?,
            _ => return Err(format!("nothing at {path:?}")),
        };
    }
    match cur {
        serde_json::Value::Number(n) => n.as_f64().ok_or_else(|| "number out of range".to_owned()),
        serde_json::Value::String(s) => {
            parse_quantity(s).ok_or_else(|| format!("{s:?} at {path:?} is not a number"))
        }
        other => Err(format!("{path:?} holds {other}, not a number")),
    }
}

/// A number or a Kubernetes quantity (`1.5k`, `200m`, `2Ki`), as upstream accepts strings.
fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        return Some(v);
    }
    let units: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    units.iter().find_map(|(suf, mul)| {
        s.strip_suffix(suf)
            .and_then(|n| n.parse::<f64>().ok())
            .map(|n| n * mul)
    })
}

/// The `metrics-api` trigger.
#[derive(Debug)]
pub struct MetricsApiScaler {
    id: TriggerId,
    name: String,
    target: Target,
    config: MetricsApiConfig,
    client: reqwest::Client,
    errors: ErrorContext,
}

impl MetricsApiScaler {
    /// Parses the trigger and builds its HTTP client.
    pub fn new(p: &TriggerParams) -> Result<Self, ParamError> {
        let config = MetricsApiConfig::parse(p)?;
        let client = http::client(p, &config.http.tls, config.timeout)?;
        let mut secrets = p.secrets();
        secrets.extend(config.http.secrets());
        Ok(MetricsApiScaler {
            id: p.id.clone(),
            name: external_name(p)?,
            target: Target::of(p, config.target_value)?,
            errors: ErrorContext::new(p.id.clone(), config.url.as_str(), secrets),
            config,
            client,
        })
    }
}

#[async_trait::async_trait]
impl Scaler for MetricsApiScaler {
    fn id(&self) -> &TriggerId {
        &self.id
    }

    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec::External {
            name: self.name.clone(),
            target: self.target,
        }])
    }

    async fn measure(
        &self,
        _metric: &str,
        _now: jiff::Timestamp,
    ) -> Result<Measurement, ScalerError> {
        let req = self
            .config
            .http
            .apply(self.client.get(self.config.url.clone()));
        let resp = req
            .send()
            .await
            .map_err(|e| http::transport_error(&self.errors, e))?;
        let resp = http::check_status(&self.errors, resp, "metrics endpoint").await?;
        let body = resp
            .text()
            .await
            .map_err(|e| self.errors.bad_response(e.without_url()))?;
        let v = extract(&body, self.config.format, &self.config.value_location)
            .map_err(|e| self.errors.bad_response(e))?;
        Ok(plain_measurement(
            &self.name,
            v,
            self.config.activation_target_value,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gjson_style_paths() {
        let body =
            r#"{"components":{"worker":{"tasks":12,"q.len":"3"}},"items":[{"d":1},{"d":"1.5k"}]}"#;
        assert_eq!(
            extract(body, Format::Json, "components.worker.tasks").unwrap(),
            12.0
        );
        assert_eq!(
            extract(body, Format::Json, r"components.worker.q\.len").unwrap(),
            3.0
        );
        assert_eq!(extract(body, Format::Json, "items.1.d").unwrap(), 1500.0);
        assert_eq!(extract(body, Format::Json, "items.#").unwrap(), 2.0);
        assert!(extract(body, Format::Json, "components.nope").is_err());
    }

    #[test]
    fn yaml_and_prometheus_formats() {
        assert_eq!(
            extract("queue:\n  depth: 7\n", Format::Yaml, "queue.depth").unwrap(),
            7.0
        );
        let prom = "# TYPE q gauge\nq_depth{queue=\"a\"} 4\nq_depth 9\n";
        assert_eq!(extract(prom, Format::Prometheus, "q_depth").unwrap(), 9.0);
        assert_eq!(
            extract(prom, Format::Prometheus, "q_depth{queue=\"a\"}").unwrap(),
            4.0
        );
    }

    #[test]
    fn target_value_is_required() {
        let md = [("url", "http://x/m"), ("valueLocation", "a")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let e = MetricsApiConfig::parse(&TriggerParams::new("metrics-api", 3, &md)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "metrics-api trigger 3: missing required parameter targetValue"
        );
    }
}
