//! `rabbitmq`: queue depth (or publish rate) over AMQP or the management HTTP API. Upstream:
//! keda `pkg/scalers/rabbitmq_scaler.go`; keda.md §7.
//!
//! ```text
//!  protocol amqp  ── lapin: passive queue.declare ──► ready messages (exact, at once)
//!  protocol http  ── GET /api/queues/<vhost>/<queue> ──► messages, rates (lag 1–5 s)
//!  protocol auto  ── from the host's scheme
//! ```
//!
//! Push: RabbitMQ has no notification a client can subscribe to without consuming, so
//! [`Scaler::watch`] probes the depth every second over the same protocol (a passive
//! declare costs the broker next to nothing) and wakes the pod layer when it grows.

use crate::error::ErrorContext;
use crate::http::{self, TlsSettings};
use crate::params::{AE, M, MA, MAE};
use crate::push::{self, WakeStream};
use crate::{
    Measurement, MetricSpec, MetricValue, ParamError, Scaler, ScalerError, Secret, Target,
    TriggerId, TriggerParams, external_name,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The default target when no mode, value or queueLength is given (upstream).
pub const DEFAULT_VALUE: f64 = 20.0;

/// How the queue is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AMQP 0-9-1 (lapin).
    Amqp,
    /// The management HTTP API.
    Http,
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Messages in the queue.
    QueueLength,
    /// Publish rate (messages/s); HTTP only.
    MessageRate,
}

/// How several queues matched by a regex are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Sum.
    Sum,
    /// Mean.
    Avg,
    /// Largest.
    Max,
}

/// Parsed `rabbitmq` trigger.
#[derive(Debug, Clone)]
pub struct RabbitMqConfig {
    /// The broker URL with credentials and vhost applied (secret: may hold a password).
    pub url: Secret<String>,
    /// Printable address (no userinfo).
    pub address: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Mode.
    pub mode: Mode,
    /// Target.
    pub value: f64,
    /// Active above this.
    pub activation_value: f64,
    /// Queue name, or a regex with `useRegex`.
    pub queue_name: String,
    /// The vhost (decoded; `/` by default).
    pub vhost: String,
    /// `queueName` is a regex (HTTP only).
    pub use_regex: bool,
    /// Regex aggregation.
    pub operation: Operation,
    /// Regex page size.
    pub page_size: u64,
    /// Count only ready messages (HTTP only).
    pub exclude_unacknowledged: bool,
    /// HTTP timeout.
    pub timeout: Duration,
    /// TLS for https.
    pub tls: TlsSettings,
}

impl RabbitMqConfig {
    /// Parses and validates the trigger's parameters.
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let host = p.required("host", MAE)?;
        let mut url = url::Url::parse(host.expose()).map_err(|_| {
            p.invalid(
                "host",
                "not a URL such as amqp://host:5672/vhost or http://host:15672/vhost",
            )
        })?;
        let scheme_protocol = match url.scheme() {
            "amqp" | "amqps" => Protocol::Amqp,
            "http" | "https" => Protocol::Http,
            _ => return Err(p.invalid("host", "scheme must be amqp, amqps, http or https")),
        };
        if url.scheme() == "amqps" {
            return Err(p.invalid(
                "host",
                "amqps is not supported by tandem yet; use amqp or the http protocol",
            ));
        }
        let protocol = match p.choice("protocol", MA, &["auto", "http", "amqp"], "auto")? {
            "http" => Protocol::Http,
            "amqp" => Protocol::Amqp,
            _ => scheme_protocol,
        };
        if protocol != scheme_protocol {
            return Err(p.invalid("protocol", "does not match the scheme of host"));
        }

        let queue_length = p.f64_opt("queueLength", M)?;
        let mode_raw = p.lookup("mode", M).map(|v| v.expose().to_owned());
        let value = p.f64_opt("value", M)?;
        if queue_length.is_some() && (mode_raw.is_some() || value.is_some()) {
            return Err(p.conflict(
                "queueLength",
                if mode_raw.is_some() { "mode" } else { "value" },
            ));
        }
        let mode = match mode_raw.as_deref() {
            None | Some("QueueLength") => Mode::QueueLength,
            Some("MessageRate") => Mode::MessageRate,
            Some(
                m @ ("DeliverGetRate"
                | "PublishedToDeliveredRatio"
                | "ExpectedQueueConsumptionTime"),
            ) => {
                return Err(p.invalid("mode", format!("{m} is not supported by tandem yet")));
            }
            Some(m) => {
                return Err(p.invalid("mode", format!("{m:?} is not QueueLength or MessageRate")));
            }
        };
        let value = match (mode_raw.is_some(), value, queue_length) {
            (_, Some(v), _) | (false, None, Some(v)) => v,
            (false, None, None) => DEFAULT_VALUE,
            (true, None, _) => {
                return Err(ParamError::Missing {
                    trigger: p.id.clone(),
                    param: "value".into(),
                });
            }
        };
        if mode == Mode::MessageRate && protocol != Protocol::Http {
            return Err(p.invalid("mode", "MessageRate needs the http protocol"));
        }
        let use_regex = p.bool_or("useRegex", M, false)?;
        let exclude_unacknowledged = p.bool_or("excludeUnacknowledged", M, false)?;
        if protocol == Protocol::Amqp {
            if use_regex {
                return Err(p.invalid("useRegex", "needs the http protocol"));
            }
            if exclude_unacknowledged {
                return Err(p.invalid("excludeUnacknowledged", "needs the http protocol"));
            }
            if p.lookup("timeout", M).is_some() {
                return Err(p.invalid("timeout", "is only for the http protocol"));
            }
        }

        // Credentials from the authentication replace any in the URL (both or neither).
        match (p.text("username", AE), p.secret("password", AE)) {
            (Some(u), Some(pw)) => {
                url.set_username(&u)
                    .map_err(|()| p.invalid("host", "cannot carry credentials"))?;
                url.set_password(Some(pw.expose()))
                    .map_err(|()| p.invalid("host", "cannot carry credentials"))?;
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(p.invalid("password", "username is set but password is not"));
            }
            (None, Some(_)) => {
                return Err(p.invalid("username", "password is set but username is not"));
            }
        }
        let vhost = match p.text("vhostName", MA) {
            Some(v) => v,
            None => {
                let path = url.path().trim_start_matches('/');
                let last = path.rsplit('/').next().unwrap_or_default();
                if last.is_empty() {
                    "/".to_owned()
                } else {
                    url::form_urlencoded::parse(format!("v={last}").as_bytes())
                        .next()
                        .map_or_else(|| last.to_owned(), |(_, v)| v.into_owned())
                }
            }
        };
        let operation = match p.choice("operation", M, &["sum", "avg", "max"], "sum")? {
            "avg" => Operation::Avg,
            "max" => Operation::Max,
            _ => Operation::Sum,
        };
        let page_size = p.u64_opt("pageSize", M)?.unwrap_or(100);
        if page_size == 0 {
            return Err(p.invalid("pageSize", "must be at least 1"));
        }
        let mut address = url.clone();
        let _ = address.set_username("");
        let _ = address.set_password(None);
        Ok(RabbitMqConfig {
            url: Secret::new(url.to_string()),
            address: address.to_string(),
            protocol,
            mode,
            value,
            activation_value: p.f64_or("activationValue", M, 0.0)?,
            queue_name: p.required_text("queueName", M)?,
            vhost,
            use_regex,
            operation,
            page_size,
            exclude_unacknowledged,
            timeout: p
                .duration_opt("timeout", M)?
                .unwrap_or(http::DEFAULT_TIMEOUT),
            tls: TlsSettings {
                unsafe_ssl: p.bool_or("unsafeSsl", M, false)?,
                ..Default::default()
            },
        })
    }
}

/// One reading: queue depth and publish rate.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    messages: f64,
    publish_rate: f64,
}

struct Inner {
    config: RabbitMqConfig,
    errors: ErrorContext,
    http: Option<reqwest::Client>,
    amqp: Mutex<Option<(lapin::Connection, lapin::Channel)>>,
}

/// The `rabbitmq` trigger.
pub struct RabbitMqScaler {
    id: TriggerId,
    name: String,
    target: Target,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RabbitMqScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqScaler")
            .field("id", &self.id)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl RabbitMqScaler {
    /// Parses the trigger; the AMQP connection is opened on first use.
    pub fn new(p: &TriggerParams) -> Result<Self, ParamError> {
        let config = RabbitMqConfig::parse(p)?;
        let http = match config.protocol {
            Protocol::Http => Some(http::client(p, &config.tls, config.timeout)?),
            Protocol::Amqp => None,
        };
        let mut secrets = p.secrets();
        secrets.push(config.url.clone());
        if let Ok(u) = url::Url::parse(config.url.expose())
            && let Some(pw) = u.password()
        {
            secrets.push(Secret::from(pw));
            // Servers echo the percent-decoded form too.
            if let Ok(d) = percent_decode(pw) {
                secrets.push(Secret::new(d));
            }
        }
        Ok(RabbitMqScaler {
            id: p.id.clone(),
            name: external_name(p)?,
            target: Target::of(p, config.value)?,
            inner: Arc::new(Inner {
                errors: ErrorContext::new(p.id.clone(), &config.address, secrets),
                config,
                http,
                amqp: Mutex::new(None),
            }),
        })
    }
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes)
}

impl Inner {
    async fn read(&self) -> Result<Reading, ScalerError> {
        match self.config.protocol {
            Protocol::Amqp => self.read_amqp().await,
            Protocol::Http => self.read_http().await,
        }
    }

    async fn read_amqp(&self) -> Result<Reading, ScalerError> {
        let mut guard = self.amqp.lock().await;
        if guard
            .as_ref()
            .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
        {
            *guard = None;
            let mut url = url::Url::parse(self.config.url.expose())
                .map_err(|_| self.errors.unreachable("invalid URL"))?;
            url.set_path(&format!(
                "/{}",
                url::form_urlencoded::byte_serialize(self.config.vhost.as_bytes())
                    .collect::<String>()
            ));
            let conn = tokio::time::timeout(
                Duration::from_secs(10),
                lapin::Connection::connect(url.as_str(), lapin::ConnectionProperties::default()),
            )
            .await
            .map_err(|_| self.errors.unreachable("connect timed out"))?
            .map_err(|e| self.amqp_error(&e))?;
            let ch = conn
                .create_channel()
                .await
                .map_err(|e| self.amqp_error(&e))?;
            *guard = Some((conn, ch));
        }
        let Some((_, ch)) = guard.as_ref() else {
            return Err(self.errors.unreachable("no channel"));
        };
        let declared = ch
            .queue_declare(
                self.config.queue_name.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await;
        match declared {
            Ok(q) => Ok(Reading {
                messages: f64::from(q.message_count()),
                publish_rate: 0.0,
            }),
            Err(e) => {
                // A failed passive declare closes the channel; start afresh next time.
                *guard = None;
                Err(self.amqp_error(&e))
            }
        }
    }

    fn amqp_error(&self, e: &lapin::Error) -> ScalerError {
        let text = http::error_chain(e);
        if text.contains("ACCESS_REFUSED")
            || text.contains("403")
            || text.to_lowercase().contains("auth")
        {
            self.errors.unauthorized(text)
        } else if text.contains("NOT_FOUND") || text.contains("404") {
            self.errors.not_found(format!(
                "queue {:?} in vhost {:?}",
                self.config.queue_name, self.config.vhost
            ))
        } else if text.contains("NOT_ALLOWED") || text.contains("530") {
            self.errors
                .unauthorized(format!("vhost {:?}: {text}", self.config.vhost))
        } else if text.to_lowercase().contains("connection refused")
            || text.to_lowercase().contains("io error")
        {
            self.errors.unreachable(text)
        } else {
            self.errors.query(text)
        }
    }

    async fn read_http(&self) -> Result<Reading, ScalerError> {
        let Some(client) = &self.http else {
            return Err(self.errors.unreachable("no HTTP client"));
        };
        let base = url::Url::parse(self.config.url.expose())
            .map_err(|_| self.errors.unreachable("invalid URL"))?;
        let (user, pass) = (
            base.username().to_owned(),
            base.password().map(percent_decode),
        );
        let mut api = base.clone();
        let _ = api.set_username("");
        let _ = api.set_password(None);
        // Any path before the last segment (the vhost) is a prefix of the management API.
        let prefix = {
            let path = base.path().trim_end_matches('/');
            path.rsplit_once('/').map_or("", |(pre, _)| pre).to_owned()
        };
        let vhost: String = url::form_urlencoded::byte_serialize(self.config.vhost.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        let with_auth = |r: reqwest::RequestBuilder| match &pass {
            Some(Ok(pw)) => r.basic_auth(&user, Some(pw)),
            _ if !user.is_empty() => r.basic_auth(&user, None::<&str>),
            _ => r,
        };
        let field = if self.config.exclude_unacknowledged {
            "messages_ready"
        } else {
            "messages"
        };
        let read_one = |q: &serde_json::Value| Reading {
            messages: q[field].as_f64().unwrap_or(0.0),
            publish_rate: q["message_stats"]["publish_details"]["rate"]
                .as_f64()
                .unwrap_or(0.0),
        };
        if !self.config.use_regex {
            let queue: String =
                url::form_urlencoded::byte_serialize(self.config.queue_name.as_bytes())
                    .collect::<String>()
                    .replace('+', "%20");
            api.set_path(&format!("{prefix}/api/queues/{vhost}/{queue}"));
            let resp = with_auth(client.get(api.as_str()))
                .send()
                .await
                .map_err(|e| http::transport_error(&self.errors, e))?;
            let resp = http::check_status(
                &self.errors,
                resp,
                &format!(
                    "queue {:?} in vhost {:?}",
                    self.config.queue_name, self.config.vhost
                ),
            )
            .await?;
            let q: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| self.errors.bad_response(e.without_url()))?;
            return Ok(read_one(&q));
        }
        api.set_path(&format!("{prefix}/api/queues/{vhost}"));
        let mut readings = Vec::new();
        // Bounded: at most 100 pages.
        for page in 1..=100u64 {
            let resp = with_auth(client.get(api.as_str()).query(&[
                ("page", page.to_string()),
                ("page_size", self.config.page_size.to_string()),
                ("use_regex", "true".to_owned()),
                ("pagination", "true".to_owned()),
                ("name", self.config.queue_name.clone()),
            ]))
            .send()
            .await
            .map_err(|e| http::transport_error(&self.errors, e))?;
            let resp = http::check_status(
                &self.errors,
                resp,
                &format!("vhost {:?}", self.config.vhost),
            )
            .await?;
            let body: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| self.errors.bad_response(e.without_url()))?;
            readings.extend(body["items"].as_array().into_iter().flatten().map(read_one));
            if body["page_count"].as_u64().unwrap_or(1) <= page {
                break;
            }
        }
        let n = readings.len().max(1) as f64;
        let agg = |f: fn(&Reading) -> f64| match self.config.operation {
            Operation::Sum => readings.iter().map(f).sum(),
            Operation::Avg => readings.iter().map(f).sum::<f64>() / n,
            Operation::Max => readings.iter().map(f).fold(0.0, f64::max),
        };
        Ok(Reading {
            messages: agg(|r| r.messages),
            publish_rate: agg(|r| r.publish_rate),
        })
    }
}

#[async_trait::async_trait]
impl Scaler for RabbitMqScaler {
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
        let r = self.inner.read().await?;
        let av = self.inner.config.activation_value;
        let (value, active) = match self.inner.config.mode {
            Mode::QueueLength => (r.messages, r.messages > av),
            // Upstream: active when the rate or the backlog is above the activation value.
            Mode::MessageRate => (r.publish_rate, r.publish_rate > av || r.messages > av),
        };
        Ok(Measurement {
            values: vec![MetricValue {
                name: self.name.clone(),
                value,
            }],
            active,
        })
    }

    fn watch(&self) -> Option<WakeStream> {
        let inner = self.inner.clone();
        let probe: push::Probe = Arc::new(move || {
            let inner = inner.clone();
            Box::pin(async move { inner.read().await.ok().map(|r| r.messages) })
        });
        Some(push::rate_limited(
            push::poll_changes(
                Duration::from_secs(1),
                self.inner.config.activation_value,
                probe,
            ),
            push::DEFAULT_MIN_WAKE_INTERVAL,
        ))
    }

    async fn close(&self) {
        if let Some((conn, _)) = self.inner.amqp.lock().await.take() {
            let _ = conn.close(200, "closing".into()).await;
        }
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
        TriggerParams::new("rabbitmq", 0, &md)
    }

    #[test]
    fn defaults_to_queue_length_twenty_and_protocol_from_scheme() {
        let c = RabbitMqConfig::parse(&params(&[
            ("host", "amqp://u:p@h:5672/vh"),
            ("queueName", "q"),
        ]))
        .unwrap();
        assert_eq!(
            (c.mode, c.value, c.protocol),
            (Mode::QueueLength, 20.0, Protocol::Amqp)
        );
        assert_eq!(c.vhost, "vh");
        assert_eq!(c.address, "amqp://h:5672/vh");
        let c = RabbitMqConfig::parse(&params(&[
            ("host", "http://h:15672"),
            ("queueName", "q"),
            ("vhostName", "v2"),
        ]))
        .unwrap();
        assert_eq!((c.protocol, c.vhost.as_str()), (Protocol::Http, "v2"));
        let c = RabbitMqConfig::parse(&params(&[
            ("host", "http://h:15672/%2F"),
            ("queueName", "q"),
        ]))
        .unwrap();
        assert_eq!(c.vhost, "/");
    }

    #[test]
    fn upstream_validation_rules() {
        let e = |pairs: &[(&str, &str)]| {
            RabbitMqConfig::parse(&params(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(
            e(&[
                ("host", "amqp://h"),
                ("queueName", "q"),
                ("queueLength", "5"),
                ("mode", "QueueLength")
            ])
            .contains("queueLength and mode cannot be combined")
        );
        assert!(
            e(&[
                ("host", "amqp://h"),
                ("queueName", "q"),
                ("mode", "MessageRate"),
                ("value", "5")
            ])
            .contains("MessageRate needs the http protocol")
        );
        assert!(
            e(&[
                ("host", "amqp://h"),
                ("queueName", "q"),
                ("mode", "QueueLength")
            ])
            .contains("missing required parameter value")
        );
        assert!(
            e(&[
                ("host", "amqp://h"),
                ("queueName", "q"),
                ("useRegex", "true")
            ])
            .contains("useRegex")
        );
        assert!(e(&[("queueName", "q")]).contains("missing required parameter host"));
    }

    #[test]
    fn credentials_from_auth_never_show_in_debug() {
        let mut auth = crate::auth::ResolvedAuth::default();
        auth.params.insert("username".into(), Secret::from("app"));
        auth.params
            .insert("password".into(), Secret::from("canary-pw-77"));
        let p = params(&[("host", "http://h:15672/vh"), ("queueName", "q")]).with_auth(auth);
        let s = RabbitMqScaler::new(&p).unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("canary-pw-77"), "{dbg}");
    }
}
