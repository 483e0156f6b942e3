//! `external` and `external-push`: an out-of-process scaler behind KEDA's gRPC contract
//! (`proto/externalscaler.proto`, service `externalscaler.ExternalScaler`). Upstream: keda
//! `pkg/scalers/external_scaler.go`; keda.md §7.
//!
//! ```text
//!  metric_specs() ── GetMetricSpec(ScaledObjectRef) ──► s<i>-<metricName>, target
//!  measure()      ── GetMetrics(ref, metricName without s<i>-) + IsActive(ref)
//!  watch()        ── StreamIsActive(ref): each `true` wakes the pod layer (external-push;
//!                    reconnects after 2 s, doubling to 60 s; `false` is ignored, as upstream)
//! ```
//!
//! All trigger metadata is sent as `scalerMetadata`, with `<key>FromEnv` entries resolved to
//! `<key>` from the target's env. TLS to the scaler is not supported yet.

use crate::error::ErrorContext;
use crate::params::{A, M};
use crate::push::{self, Wake, WakeStream};
use crate::{
    Measurement, MetricSpec, MetricValue, ParamError, Scaler, ScalerError, Target, TriggerId,
    TriggerParams,
};
use futures::StreamExt as _;
use std::collections::HashMap;
use std::time::Duration;
use tandem_podscaler::naming;

/// The generated gRPC types, client and server (the server is what test scalers implement).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("externalscaler");
}

use proto::external_scaler_client::ExternalScalerClient;

/// Time allowed for one call.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Upstream's reconnect backoff for `StreamIsActive`.
const BACKOFF_START: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Parsed `external` / `external-push` trigger.
#[derive(Debug, Clone)]
pub struct ExternalConfig {
    /// `host:port` of the scaler.
    pub scaler_address: String,
    /// `external-push`.
    pub push: bool,
}

impl ExternalConfig {
    /// Parses and validates.
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let scaler_address = p.required_text("scalerAddress", M)?;
        if p.bool_or("enableTLS", M, false)?
            || p.lookup("caCert", A).is_some()
            || p.lookup("tlsClientCert", A).is_some()
        {
            return Err(p.invalid(
                "enableTLS",
                "TLS to external scalers is not supported by tandem yet",
            ));
        }
        if p.metric_type == crate::MetricType::Utilization {
            return Err(p.invalid("metricType", "external scalers cannot use Utilization"));
        }
        let _ = p.bool_or("unsafeSsl", M, false)?;
        Ok(ExternalConfig {
            scaler_address,
            push: p.id.kind == "external-push",
        })
    }
}

/// The `external` / `external-push` trigger.
#[derive(Debug)]
pub struct ExternalScaler {
    id: TriggerId,
    config: ExternalConfig,
    metric_type: crate::MetricType,
    object_ref: proto::ScaledObjectRef,
    client: ExternalScalerClient<tonic::transport::Channel>,
    errors: ErrorContext,
}

impl ExternalScaler {
    /// Parses the trigger; the channel connects lazily.
    pub fn new(p: &TriggerParams) -> Result<Self, ParamError> {
        let config = ExternalConfig::parse(p)?;
        let uri = if config.scaler_address.contains("://") {
            config.scaler_address.clone()
        } else {
            format!("http://{}", config.scaler_address)
        };
        let endpoint = tonic::transport::Endpoint::from_shared(uri.clone())
            .map_err(|_| {
                p.invalid(
                    "scalerAddress",
                    format!("{:?} is not host:port", config.scaler_address),
                )
            })?
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT);
        let mut metadata: HashMap<String, String> = HashMap::new();
        for (k, v) in p.metadata() {
            match k.strip_suffix("FromEnv") {
                Some(base) if !base.is_empty() => {
                    if let Some(val) = p.lookup(base, &[crate::params::Source::Env]) {
                        metadata.insert(base.to_owned(), val.expose().to_owned());
                    }
                }
                _ => {
                    metadata.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(ExternalScaler {
            id: p.id.clone(),
            metric_type: p.metric_type,
            object_ref: proto::ScaledObjectRef {
                name: p.owner.name.clone(),
                namespace: p.owner.namespace.clone(),
                scaler_metadata: metadata,
            },
            client: ExternalScalerClient::new(endpoint.connect_lazy()),
            errors: ErrorContext::new(p.id.clone(), &uri, p.secrets()),
            config,
        })
    }

    fn map(&self, s: &tonic::Status) -> ScalerError {
        use tonic::Code;
        let text = format!("{:?}: {}", s.code(), s.message());
        match s.code() {
            Code::Unauthenticated | Code::PermissionDenied => self.errors.unauthorized(text),
            Code::Unavailable | Code::DeadlineExceeded => self.errors.unreachable(text),
            Code::NotFound => self.errors.not_found(s.message()),
            _ => self.errors.query(text),
        }
    }

    fn prefix(&self) -> String {
        naming::with_index(self.id.index, "")
    }
}

fn pick(int: i64, float: f64) -> f64 {
    // Upstream: the float field wins when it is set (> 0).
    #[allow(clippy::cast_precision_loss)]
    if float > 0.0 { float } else { int as f64 }
}

#[async_trait::async_trait]
impl Scaler for ExternalScaler {
    fn id(&self) -> &TriggerId {
        &self.id
    }

    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        let resp = self
            .client
            .clone()
            .get_metric_spec(self.object_ref.clone())
            .await
            .map_err(|s| self.map(&s))?
            .into_inner();
        let prefix = self.prefix();
        Ok(resp
            .metric_specs
            .into_iter()
            .map(|m| MetricSpec::External {
                name: format!("{prefix}{}", m.metric_name),
                target: match self.metric_type {
                    crate::MetricType::Value => {
                        Target::Value(pick(m.target_size, m.target_size_float))
                    }
                    _ => Target::AverageValue(pick(m.target_size, m.target_size_float)),
                },
            })
            .collect())
    }

    async fn measure(
        &self,
        metric_name: &str,
        _now: jiff::Timestamp,
    ) -> Result<Measurement, ScalerError> {
        let prefix = self.prefix();
        let bare = metric_name.strip_prefix(&prefix).unwrap_or(metric_name);
        let mut client = self.client.clone();
        let values = client
            .get_metrics(proto::GetMetricsRequest {
                scaled_object_ref: Some(self.object_ref.clone()),
                metric_name: bare.to_owned(),
            })
            .await
            .map_err(|s| self.map(&s))?
            .into_inner();
        let active = client
            .is_active(self.object_ref.clone())
            .await
            .map_err(|s| self.map(&s))?
            .into_inner()
            .result;
        Ok(Measurement {
            values: values
                .metric_values
                .into_iter()
                .map(|v| MetricValue {
                    name: format!("{prefix}{}", v.metric_name),
                    value: pick(v.metric_value, v.metric_value_float),
                })
                .collect(),
            active,
        })
    }

    fn watch(&self) -> Option<WakeStream> {
        if !self.config.push {
            return None;
        }
        let client = self.client.clone();
        let object_ref = self.object_ref.clone();
        let events = futures::stream::unfold(
            (
                client,
                object_ref,
                None::<tonic::Streaming<proto::IsActiveResponse>>,
                BACKOFF_START,
            ),
            |(mut client, object_ref, mut stream, mut backoff)| async move {
                loop {
                    if let Some(s) = stream.as_mut() {
                        match s.next().await {
                            Some(Ok(r)) => {
                                backoff = BACKOFF_START;
                                if r.result {
                                    return Some((
                                        Wake {
                                            reason: "external-push",
                                        },
                                        (client, object_ref, stream, backoff),
                                    ));
                                }
                                continue;
                            }
                            Some(Err(_)) | None => stream = None,
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    // No timeout on the stream itself: it is meant to stay open.
                    let mut req = tonic::Request::new(object_ref.clone());
                    req.set_timeout(Duration::from_secs(24 * 3600));
                    match client.stream_is_active(req).await {
                        Ok(s) => stream = Some(s.into_inner()),
                        Err(_) => {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                }
            },
        );
        Some(push::rate_limited(
            events.boxed(),
            push::DEFAULT_MIN_WAKE_INTERVAL,
        ))
    }
}
