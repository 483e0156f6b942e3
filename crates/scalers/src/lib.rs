//! KEDA's triggers behind one trait, the TriggerAuthentication resolution that feeds them,
//! and push wake-ups for sources that can notify.
//!
//! This crate owns the I/O of the pod layer's inputs: it talks to Prometheus, SQS, RabbitMQ,
//! Redis, PostgreSQL, Kafka, HTTP endpoints and external gRPC scalers. It must never decide replica
//! counts (that is `tandem-podscaler`, pure) and never print a secret: values from
//! authentication live in [`Secret`], and foreign error texts are scrubbed before they are
//! kept.
//!
//! ```text
//!  ScaledObject trigger ─┐
//!  TriggerAuthentication ├─► auth::resolve (pure) ─► TriggerParams ─► build() ─► Box<dyn Scaler>
//!  Secrets / ConfigMaps ─┘                              (parse, pure)         │
//!                                                                              ├─ metric_specs()  → HPA metrics
//!     pod layer ◄── measure(now) ── values + active ◄─────────────────────────┤
//!     pod layer ◄── watch() ── rate-limited Wake ◄── source notifications ◄───┘
//! ```
//!
//! Parameter names, sources and defaults are upstream's (keda.md §7, keda
//! `pkg/scalers/*_scaler.go`); metric names come from [`tandem_podscaler::naming`] so the HPA
//! and `status.health` agree with upstream.
//!
//! Not implemented yet, each refused with an error naming the parameter rather than ignored:
//! Kafka `oauthbearer`/`gssapi` SASL, redis cluster/sentinel, `amqps`, TLS to external scalers, PostgreSQL `sslmode`
//! require/verify-*, Amazon Managed Prometheus (SigV4), metrics-api `xml` and endpoint
//! aggregation, OAuth auth modes, and the Vault / cloud secret-manager / filePath /
//! bound-token authentication sources.

pub mod auth;
pub mod aws_sqs;
pub mod cron;
mod error;
pub mod external;
pub mod http;
pub mod kafka;
pub mod metrics_api;
pub mod params;
pub mod postgresql;
pub mod prometheus;
pub mod push;
pub mod rabbitmq;
pub mod redis;
pub mod resource;
mod secret;

pub use error::{ErrorContext, ScalerError};
pub use params::{MetricType, ParamError, TriggerId, TriggerParams};
pub use push::{Wake, WakeStream};
pub use secret::{Secret, printable_url, scrub};

use tandem_podscaler::naming;

/// A trigger: what it asks of the HPA, what it measures now, and how to stop it.
///
/// Upstream's `Scaler` interface (keda `pkg/scalers/scaler.go`): `GetMetricSpecForScaling`,
/// `GetMetricsAndActivity`, `Close`; plus [`Scaler::watch`] for push.
#[async_trait::async_trait]
pub trait Scaler: Send + Sync {
    /// Which trigger this is.
    fn id(&self) -> &TriggerId;

    /// The metrics this trigger puts on the HPA. Async because the external scaler asks its
    /// server (`GetMetricSpec`).
    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError>;

    /// The current value(s) of `metric_name` (a name from [`Scaler::metric_specs`]) and
    /// whether the trigger is active, measured at `now` (cron reads the time from here,
    /// never from a clock).
    async fn measure(
        &self,
        metric_name: &str,
        now: jiff::Timestamp,
    ) -> Result<Measurement, ScalerError>;

    /// Whether the trigger is active, measured on its first metric.
    async fn is_active(&self, now: jiff::Timestamp) -> Result<bool, ScalerError> {
        let specs = self.metric_specs().await?;
        let Some(first) = specs.first() else {
            return Ok(false);
        };
        Ok(self.measure(first.name(), now).await?.active)
    }

    /// Wake-ups from a source that can notify, already rate-limited; `None` for poll-only
    /// triggers. Each call opens a new subscription.
    fn watch(&self) -> Option<WakeStream> {
        None
    }

    /// Releases connections. The scaler must not be used afterwards.
    async fn close(&self) {}
}

/// One metric on the HPA.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricSpec {
    /// An External metric served by Tandem.
    External {
        /// Full name, `s<index>-…`.
        name: String,
        /// The target.
        target: Target,
    },
    /// A Resource (or ContainerResource) metric the HPA reads from metrics-server; Tandem
    /// serves no value for it (cpu/memory triggers).
    Resource {
        /// `cpu` or `memory`.
        resource: String,
        /// `containerName`: a ContainerResource metric.
        container: Option<String>,
        /// The target.
        target: ResourceTarget,
    },
}

impl MetricSpec {
    /// The metric name (`cpu`/`memory` for resource metrics).
    pub fn name(&self) -> &str {
        match self {
            MetricSpec::External { name, .. } => name,
            MetricSpec::Resource { resource, .. } => resource,
        }
    }
}

/// An External metric target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// desired = ceil(value / target).
    AverageValue(f64),
    /// desired = ceil(current × value / target).
    Value(f64),
}

impl Target {
    /// The target for `metric_type`; `Utilization` is refused (upstream: external metrics
    /// cannot be Utilization).
    pub fn of(p: &TriggerParams, value: f64) -> Result<Target, ParamError> {
        match p.metric_type {
            MetricType::AverageValue => Ok(Target::AverageValue(value)),
            MetricType::Value => Ok(Target::Value(value)),
            MetricType::Utilization => Err(p.invalid(
                "metricType",
                "Utilization is only for cpu and memory; use AverageValue or Value",
            )),
        }
    }
}

/// A Resource metric target.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceTarget {
    /// Percent of the pods' requests.
    Utilization(i32),
    /// Absolute per-pod average, a Kubernetes quantity (`500m`, `256Mi`).
    AverageValue(String),
}

/// What one measurement found.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Values for the HPA (empty for cpu/memory).
    pub values: Vec<MetricValue>,
    /// Whether the trigger is active (0 ↔ 1).
    pub active: bool,
}

/// One value of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    /// Full metric name.
    pub name: String,
    /// The raw value (KEDA never divides by replicas; keda.md §6.2).
    pub value: f64,
}

/// The `s<i>-…` name of a trigger whose name follows from its metadata.
pub(crate) fn external_name(p: &TriggerParams) -> Result<String, ParamError> {
    match naming::metric_name(p.id.index, &p.id.kind, p.metadata()) {
        Ok(n) => Ok(n.as_str().to_owned()),
        Err(naming::NamingError::MissingMetadata { key, .. }) => Err(ParamError::Missing {
            trigger: p.id.clone(),
            param: key.to_owned(),
        }),
        Err(e) => Err(p.invalid("type", e.to_string())),
    }
}

/// Upstream's activity rule for plain triggers: strictly above the activation threshold.
pub(crate) fn plain_measurement(name: &str, value: f64, activation: f64) -> Measurement {
    Measurement {
        values: vec![MetricValue {
            name: name.to_owned(),
            value,
        }],
        active: value > activation,
    }
}

/// Builds the scaler for a trigger. Parsing is done first and is pure; connections are
/// opened lazily by the scalers where their clients allow it.
pub async fn build(params: TriggerParams) -> Result<Box<dyn Scaler>, ScalerError> {
    Ok(match params.id.kind.as_str() {
        "prometheus" => Box::new(prometheus::PrometheusScaler::new(&params)?),
        "aws-sqs-queue" => Box::new(aws_sqs::SqsScaler::new(&params).await?),
        "rabbitmq" => Box::new(rabbitmq::RabbitMqScaler::new(&params)?),
        "redis" => Box::new(redis::RedisListScaler::new(&params)?),
        "redis-streams" => Box::new(redis::RedisStreamScaler::new(&params)?),
        "postgresql" => Box::new(postgresql::PostgresScaler::new(&params)?),
        "kafka" => Box::new(kafka::KafkaScaler::new(&params)?),
        "cron" => Box::new(cron::CronScaler::new(&params)?),
        "cpu" | "memory" => Box::new(resource::ResourceScaler::new(&params)?),
        "metrics-api" => Box::new(metrics_api::MetricsApiScaler::new(&params)?),
        "external" | "external-push" => Box::new(external::ExternalScaler::new(&params)?),
        other => {
            return Err(ScalerError::Unsupported {
                trigger: params.id.clone(),
                what: format!("trigger type {other:?}"),
            });
        }
    })
}
