//! `prometheus`: one instant query; its single sample is the value. Upstream: keda
//! `pkg/scalers/prometheus_scaler.go`; keda.md §7.
//!
//! The query is evaluated at the `now` passed in (`time=` parameter), so a caller replaying
//! a moment gets that moment's answer. An empty result or NaN/±Inf is 0 when
//! `ignoreNullValues` is true (the default), an error otherwise; more than one series is
//! always an error, since it means the query does not say which number to scale on.

use crate::error::ErrorContext;
use crate::http::{self, HttpSettings};
use crate::params::{M, MA};
use crate::{
    Measurement, MetricSpec, ParamError, Scaler, ScalerError, Target, TriggerId, TriggerParams,
    external_name, plain_measurement,
};
use std::collections::BTreeMap;

/// Parsed `prometheus` trigger.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    /// Base URL of the server.
    pub server_address: url::Url,
    /// PromQL.
    pub query: String,
    /// Target per replica.
    pub threshold: f64,
    /// Active above this.
    pub activation_threshold: f64,
    /// Empty/NaN results count as 0 instead of failing.
    pub ignore_null_values: bool,
    /// Extra headers on every request.
    pub custom_headers: BTreeMap<String, String>,
    /// Extra query-string parameters.
    pub query_parameters: BTreeMap<String, String>,
    /// Thanos/Cortex tenant namespace (`&namespace=`).
    pub namespace: Option<String>,
    /// Auth and TLS.
    pub http: HttpSettings,
    /// Per-request timeout.
    pub timeout: std::time::Duration,
}

impl PrometheusConfig {
    /// Parses and validates the trigger's parameters.
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let raw = p.required_text("serverAddress", M)?;
        let server_address = url::Url::parse(&raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| p.invalid("serverAddress", format!("{raw:?} is not an http(s) URL")))?;
        if p.lookup("awsRegion", MA).is_some() {
            return Err(p.invalid(
                "awsRegion",
                "Amazon Managed Prometheus (SigV4) is not supported by tandem yet",
            ));
        }
        let threshold = match p.f64_opt("threshold", M)? {
            Some(t) => t,
            None if p.uses_scaling_modifiers => 0.0,
            None => {
                return Err(ParamError::Missing {
                    trigger: p.id.clone(),
                    param: "threshold".into(),
                });
            }
        };
        Ok(PrometheusConfig {
            server_address,
            query: p.required_text("query", M)?,
            threshold,
            activation_threshold: p.f64_or("activationThreshold", M, 0.0)?,
            ignore_null_values: p.bool_or("ignoreNullValues", M, true)?,
            custom_headers: p.map("customHeaders", M)?,
            query_parameters: p.map("queryParameters", M)?,
            namespace: p.text("namespace", M),
            http: HttpSettings::parse(p)?,
            timeout: p
                .duration_opt("timeout", M)?
                .unwrap_or(http::DEFAULT_TIMEOUT),
        })
    }
}

/// The `prometheus` trigger.
#[derive(Debug)]
pub struct PrometheusScaler {
    id: TriggerId,
    name: String,
    target: Target,
    config: PrometheusConfig,
    client: reqwest::Client,
    errors: ErrorContext,
}

impl PrometheusScaler {
    /// Parses the trigger and builds its HTTP client; no request yet.
    pub fn new(p: &TriggerParams) -> Result<Self, ParamError> {
        let config = PrometheusConfig::parse(p)?;
        let client = http::client(p, &config.http.tls, config.timeout)?;
        let mut secrets = p.secrets();
        secrets.extend(config.http.secrets());
        Ok(PrometheusScaler {
            id: p.id.clone(),
            name: external_name(p)?,
            target: Target::of(p, config.threshold)?,
            errors: ErrorContext::new(p.id.clone(), config.server_address.as_str(), secrets),
            config,
            client,
        })
    }

    /// The query's value at `now`.
    pub async fn query(&self, now: jiff::Timestamp) -> Result<f64, ScalerError> {
        let c = &self.config;
        let mut url = c.server_address.clone();
        url.set_path(&format!(
            "{}/api/v1/query",
            url.path().trim_end_matches('/')
        ));
        let time = now.to_string();
        let mut req = self
            .client
            .get(url)
            .query(&[("query", c.query.as_str()), ("time", time.as_str())]);
        if let Some(ns) = &c.namespace {
            req = req.query(&[("namespace", ns)]);
        }
        for (k, v) in &c.query_parameters {
            req = req.query(&[(k, v)]);
        }
        for (k, v) in &c.custom_headers {
            req = req.header(k, v);
        }
        let resp = c
            .http
            .apply(req)
            .send()
            .await
            .map_err(|e| http::transport_error(&self.errors, e))?;
        let resp = http::check_status(&self.errors, resp, "query API").await?;
        let body: serde_json::Value = resp.json().await.map_err(|e| {
            self.errors
                .bad_response(format!("not JSON: {}", e.without_url()))
        })?;
        self.read_value(&body)
    }

    fn read_value(&self, body: &serde_json::Value) -> Result<f64, ScalerError> {
        let bad = |d: &str| self.errors.bad_response(d);
        if body["status"] != "success" {
            return Err(self
                .errors
                .query(body["error"].as_str().unwrap_or("status is not success")));
        }
        let data = &body["data"];
        let sample = match data["resultType"].as_str() {
            Some("vector") => {
                let result = data["result"]
                    .as_array()
                    .ok_or_else(|| bad("vector without result"))?;
                match result.as_slice() {
                    [] => None,
                    [one] => Some(&one["value"][1]),
                    more => {
                        return Err(bad(&format!(
                            "query returned {} series; it must return one",
                            more.len()
                        )));
                    }
                }
            }
            Some("scalar") => Some(&data["result"][1]),
            other => {
                return Err(bad(&format!(
                    "result type {other:?}; expected vector or scalar"
                )));
            }
        };
        let value = match sample {
            None => None,
            Some(v) => {
                let text = v
                    .as_str()
                    .ok_or_else(|| bad("sample value is not a string"))?;
                let x: f64 = text
                    .parse()
                    .map_err(|_| bad(&format!("sample {text:?} is not a number")))?;
                x.is_finite().then_some(x)
            }
        };
        match value {
            Some(x) => Ok(x),
            None if self.config.ignore_null_values => Ok(0.0),
            None => Err(bad("empty result or NaN, and ignoreNullValues is false")),
        }
    }
}

#[async_trait::async_trait]
impl Scaler for PrometheusScaler {
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
        now: jiff::Timestamp,
    ) -> Result<Measurement, ScalerError> {
        let v = self.query(now).await?;
        Ok(plain_measurement(
            &self.name,
            v,
            self.config.activation_threshold,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> TriggerParams {
        let md = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TriggerParams::new("prometheus", 0, &md)
    }

    #[test]
    fn defaults_follow_upstream() {
        let c = PrometheusConfig::parse(&params(&[
            ("serverAddress", "http://prom:9090"),
            ("query", "sum(x)"),
            ("threshold", "10"),
        ]))
        .unwrap();
        assert_eq!(c.activation_threshold, 0.0);
        assert!(c.ignore_null_values);
        assert_eq!(c.timeout, std::time::Duration::from_secs(3));
    }

    #[test]
    fn validation_names_the_parameter() {
        let e = PrometheusConfig::parse(&params(&[
            ("serverAddress", "prom:9090"),
            ("query", "x"),
            ("threshold", "1"),
        ]))
        .unwrap_err();
        assert!(
            e.to_string().contains("invalid parameter serverAddress"),
            "{e}"
        );
        let e = PrometheusConfig::parse(&params(&[("serverAddress", "http://p"), ("query", "x")]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "prometheus trigger 0: missing required parameter threshold"
        );
        let e = PrometheusConfig::parse(&params(&[
            ("serverAddress", "http://p"),
            ("query", "x"),
            ("threshold", "1"),
            ("authModes", "bearer"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("bearerToken"), "{e}");
    }

    #[test]
    fn results_are_read_like_upstream() {
        let s = PrometheusScaler::new(&params(&[
            ("serverAddress", "http://p"),
            ("query", "x"),
            ("threshold", "1"),
        ]))
        .unwrap();
        let v = |j: serde_json::Value| s.read_value(&j);
        let vec = |vals: &[&str]| {
            serde_json::json!({"status":"success","data":{"resultType":"vector","result":
            vals.iter().map(|x| serde_json::json!({"metric":{},"value":[1, x]})).collect::<Vec<_>>()}})
        };
        assert_eq!(v(vec(&["42"])).unwrap(), 42.0);
        assert_eq!(v(vec(&[])).unwrap(), 0.0);
        assert_eq!(v(vec(&["NaN"])).unwrap(), 0.0);
        assert!(
            v(vec(&["1", "2"]))
                .unwrap_err()
                .to_string()
                .contains("2 series")
        );
        assert_eq!(v(serde_json::json!({"status":"success","data":{"resultType":"scalar","result":[1,"7"]}})).unwrap(), 7.0);
    }
}
