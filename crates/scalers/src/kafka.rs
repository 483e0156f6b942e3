//! `kafka`: a consumer group's lag on a topic (or on every topic the group has committed
//! offsets for). Upstream: keda `pkg/scalers/kafka_scaler.go`, docs "Apache Kafka" scaler.
//!
//! The client is librdkafka through `rdkafka`, linked against the system library (Debian's
//! `librdkafka-dev`), so no C build runs in CI. One `BaseConsumer` per trigger, created on
//! first use; it never joins the group: it only reads the group's committed offsets
//! (OffsetFetch), the partitions' watermarks (ListOffsets) and the topics (Metadata). Its
//! calls block, so they run on tokio's blocking pool.
//!
//! Lag per partition, as upstream computes it:
//! - committed offset `c`: `high watermark − c`;
//! - no committed offset, `offsetResetPolicy: latest`: 1 (a consumer stays for the partition),
//!   or 0 with `scaleToZeroOnInvalidOffset`;
//! - no committed offset, `offsetResetPolicy: earliest`: the messages a new consumer would
//!   read, `high − low watermark`, or 0 with `scaleToZeroOnInvalidOffset`. Upstream uses the
//!   high watermark alone, which counts messages retention already deleted; the two agree
//!   while nothing was deleted.
//!
//! The metric is the total lag, capped at `partitions × lagThreshold` unless
//! `allowIdleConsumers` (a consumer per partition at most: more would sit idle), or at
//! `partitions with lag × lagThreshold` with `limitToPartitionsWithLag`. Upstream caps only
//! when `lag / lagThreshold` (integer division) exceeds the partitions, which lets the value
//! reach `(partitions + 1) × lagThreshold − 1`; Tandem caps at the bound itself, so the HPA
//! never asks for more consumers than partitions. Activity is the total lag, persistent lag
//! included, strictly above `activationLagThreshold`.
//!
//! Security: `sasl` (`none`, `plaintext`, `scram_sha256`, `scram_sha512`) with `username`
//! and `password`, and `tls` (`enable`/`disable`) with `ca`, `cert`, `key`, `keyPassword` from
//! the TriggerAuthentication (`sasl`/`tls` may also be in the metadata), `unsafeSsl` from the
//! metadata. `oauthbearer`, `gssapi` and AWS MSK IAM are refused by name.

use crate::error::ErrorContext;
use crate::params::{A, ME, Source};
use crate::{
    Measurement, MetricSpec, MetricValue, ParamError, Scaler, ScalerError, Secret, Target,
    TriggerId, TriggerParams, external_name,
};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Budget of one broker request (metadata, offsets, watermarks of one partition).
const TIMEOUT: Duration = Duration::from_secs(5);
/// Authentication first, then metadata: where upstream reads `sasl` and `tls`.
const AM: &[Source] = &[Source::Auth, Source::Metadata];
/// Upstream's defaults (`kafka_scaler.go`).
const DEFAULT_LAG_THRESHOLD: u64 = 10;

/// What a consumer without a committed offset would read first (`offsetResetPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetResetPolicy {
    /// New messages only: an uncommitted partition counts 1 (or 0).
    Latest,
    /// Everything retained: an uncommitted partition counts all it holds (or 0).
    Earliest,
}

/// The SASL mechanism (`sasl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sasl {
    /// No SASL.
    None,
    /// `plaintext`: SASL/PLAIN.
    Plain(Credentials),
    /// `scram_sha256`: SASL/SCRAM-SHA-256.
    ScramSha256(Credentials),
    /// `scram_sha512`: SASL/SCRAM-SHA-512.
    ScramSha512(Credentials),
}

/// `username` and `password` from the TriggerAuthentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name (not secret, but it comes from the authentication).
    pub username: String,
    /// Password.
    pub password: Secret<String>,
}

/// `tls: enable` and its material, PEM text from the TriggerAuthentication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    /// `ca`: the CA to verify the brokers with (system roots when absent).
    pub ca: Option<Secret<String>>,
    /// `cert` and `key`: a client certificate.
    pub client: Option<(Secret<String>, Secret<String>)>,
    /// `keyPassword`: the client key's password.
    pub key_password: Option<Secret<String>>,
    /// `unsafeSsl`: skip verifying the brokers' certificates.
    pub insecure: bool,
}

/// Parsed `kafka` trigger.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrapServers`, comma-separated `host:port`.
    pub bootstrap_servers: String,
    /// `consumerGroup`.
    pub consumer_group: String,
    /// `topic`; `None`: every topic the group has committed offsets for.
    pub topic: Option<String>,
    /// `lagThreshold`: target lag per replica (> 0).
    pub lag_threshold: u64,
    /// `activationLagThreshold`: active strictly above this.
    pub activation_lag_threshold: u64,
    /// `offsetResetPolicy`.
    pub offset_reset_policy: OffsetResetPolicy,
    /// `allowIdleConsumers`: no cap at one consumer per partition.
    pub allow_idle_consumers: bool,
    /// `excludePersistentLag`: a partition whose committed offset did not move since the
    /// last measurement does not count towards the metric (it still counts for activity).
    pub exclude_persistent_lag: bool,
    /// `scaleToZeroOnInvalidOffset`: a partition without a committed offset counts 0.
    pub scale_to_zero_on_invalid_offset: bool,
    /// `limitToPartitionsWithLag`: cap at the partitions that have lag.
    pub limit_to_partitions_with_lag: bool,
    /// `partitionLimitation`: only these partitions of `topic`.
    pub partition_limitation: Option<BTreeSet<i32>>,
    /// `sasl` and its credentials.
    pub sasl: Sasl,
    /// `tls: enable`.
    pub tls: Option<Tls>,
}

impl KafkaConfig {
    /// Parses and validates the trigger's metadata and authentication.
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let bootstrap_servers = p.required_text("bootstrapServers", ME)?;
        for server in bootstrap_servers.split(',').map(str::trim) {
            let ok = server
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(p.invalid(
                    "bootstrapServers",
                    format!("{server:?} is not host:port (e.g. kafka.svc:9092)"),
                ));
            }
        }
        let consumer_group = p.required_text("consumerGroup", ME)?;
        let topic = p.text("topic", ME);
        let lag_threshold = match p.u64_opt("lagThreshold", crate::params::M)? {
            Some(0) => return Err(p.invalid("lagThreshold", "must be greater than 0")),
            Some(n) => n,
            None => DEFAULT_LAG_THRESHOLD,
        };
        let activation_lag_threshold = p
            .u64_opt("activationLagThreshold", crate::params::M)?
            .unwrap_or(0);
        let offset_reset_policy = match p.choice(
            "offsetResetPolicy",
            crate::params::M,
            &["latest", "earliest"],
            "latest",
        )? {
            "earliest" => OffsetResetPolicy::Earliest,
            _ => OffsetResetPolicy::Latest,
        };
        let m = crate::params::M;
        let allow_idle_consumers = p.bool_or("allowIdleConsumers", m, false)?;
        let limit_to_partitions_with_lag = p.bool_or("limitToPartitionsWithLag", m, false)?;
        if allow_idle_consumers && limit_to_partitions_with_lag {
            return Err(p.conflict("allowIdleConsumers", "limitToPartitionsWithLag"));
        }
        let partition_limitation = match p.text("partitionLimitation", m) {
            None => None,
            Some(_) if topic.is_none() => {
                return Err(p.invalid(
                    "partitionLimitation",
                    "applies to one topic: set topic as well",
                ));
            }
            Some(list) => Some(parse_partitions(&list).ok_or_else(|| {
                p.invalid(
                    "partitionLimitation",
                    format!(
                        "{list:?} is not a list of partition ids and ranges such as 1,2,10-20,31"
                    ),
                )
            })?),
        };
        Ok(KafkaConfig {
            bootstrap_servers,
            consumer_group,
            topic,
            lag_threshold,
            activation_lag_threshold,
            offset_reset_policy,
            allow_idle_consumers,
            exclude_persistent_lag: p.bool_or("excludePersistentLag", m, false)?,
            scale_to_zero_on_invalid_offset: p.bool_or("scaleToZeroOnInvalidOffset", m, false)?,
            limit_to_partitions_with_lag,
            partition_limitation,
            sasl: parse_sasl(p)?,
            tls: parse_tls(p)?,
        })
    }

    /// librdkafka's settings for this trigger's client (secrets included: never log them).
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("group.id", &self.consumer_group)
            .set("client.id", "tandem")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("socket.timeout.ms", TIMEOUT.as_millis().to_string())
            .set("reconnect.backoff.max.ms", "2000")
            .set("log_level", "3");
        let creds = match &self.sasl {
            Sasl::None => None,
            Sasl::Plain(c) => Some(("PLAIN", c)),
            Sasl::ScramSha256(c) => Some(("SCRAM-SHA-256", c)),
            Sasl::ScramSha512(c) => Some(("SCRAM-SHA-512", c)),
        };
        let protocol = match (creds.is_some(), self.tls.is_some()) {
            (false, false) => "plaintext",
            (false, true) => "ssl",
            (true, false) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some((mechanism, creds)) = creds {
            c.set("sasl.mechanisms", mechanism)
                .set("sasl.username", &creds.username)
                .set("sasl.password", creds.password.expose());
        }
        if let Some(tls) = &self.tls {
            if let Some(ca) = &tls.ca {
                c.set("ssl.ca.pem", ca.expose());
            }
            if let Some((cert, key)) = &tls.client {
                c.set("ssl.certificate.pem", cert.expose())
                    .set("ssl.key.pem", key.expose());
            }
            if let Some(pw) = &tls.key_password {
                c.set("ssl.key.password", pw.expose());
            }
            if tls.insecure {
                c.set("enable.ssl.certificate.verification", "false")
                    .set("ssl.endpoint.identification.algorithm", "none");
            }
        }
        c
    }
}

/// `1,2,10-20,31` → the set; `None` for anything else (empty items, reversed ranges).
fn parse_partitions(list: &str) -> Option<BTreeSet<i32>> {
    let mut out = BTreeSet::new();
    for item in list.split(',').map(str::trim) {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.trim().parse::<i32>().ok()?, b.trim().parse::<i32>().ok()?);
                if a < 0 || b < a {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                let n = item.parse::<i32>().ok()?;
                if n < 0 {
                    return None;
                }
                out.insert(n);
            }
        }
    }
    Some(out)
}

fn parse_sasl(p: &TriggerParams) -> Result<Sasl, ParamError> {
    let mode = p.choice(
        "sasl",
        AM,
        &[
            "none",
            "plaintext",
            "scram_sha256",
            "scram_sha512",
            "oauthbearer",
            "gssapi",
        ],
        "none",
    )?;
    let creds = || -> Result<Credentials, ParamError> {
        Ok(Credentials {
            username: p.required_text("username", A)?,
            password: p.secret("password", A).ok_or_else(|| ParamError::Missing {
                trigger: p.id.clone(),
                param: "password".into(),
            })?,
        })
    };
    match mode {
        "none" => Ok(Sasl::None),
        "plaintext" => Ok(Sasl::Plain(creds()?)),
        "scram_sha256" => Ok(Sasl::ScramSha256(creds()?)),
        "scram_sha512" => Ok(Sasl::ScramSha512(creds()?)),
        other => Err(p.invalid(
            "sasl",
            format!(
                "{other} is not supported by tandem yet; use none, plaintext, scram_sha256 or \
                 scram_sha512"
            ),
        )),
    }
}

fn parse_tls(p: &TriggerParams) -> Result<Option<Tls>, ParamError> {
    let on = p.choice("tls", AM, &["enable", "disable"], "disable")? == "enable";
    let cert = p.secret("cert", A);
    let key = p.secret("key", A);
    if !on {
        for k in ["ca", "cert", "key"] {
            if p.lookup(k, A).is_some() {
                return Err(p.invalid(
                    k,
                    "is set but tls is not enable: set tls: enable in the TriggerAuthentication",
                ));
            }
        }
        return Ok(None);
    }
    let client = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ParamError::Missing {
                trigger: p.id.clone(),
                param: "key".into(),
            });
        }
        (None, Some(_)) => {
            return Err(ParamError::Missing {
                trigger: p.id.clone(),
                param: "cert".into(),
            });
        }
    };
    Ok(Some(Tls {
        ca: p.secret("ca", A),
        client,
        key_password: p.secret("keyPassword", A),
        insecure: p.bool_or("unsafeSsl", crate::params::M, false)?,
    }))
}

/// One partition's offsets as read from the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Topic.
    pub topic: String,
    /// Partition id.
    pub partition: i32,
    /// The group's committed offset; `None` when the group never committed one.
    pub committed: Option<i64>,
    /// Low watermark (first retained offset).
    pub low: i64,
    /// High watermark (next offset to be written).
    pub high: i64,
}

/// What [`total_lag`] computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagTotals {
    /// The metric: lag without persistent lag, capped.
    pub metric: f64,
    /// Lag including persistent lag (decides activity).
    pub with_persistent: u64,
    /// Partitions considered.
    pub partitions: u64,
    /// Partitions whose (non-persistent) lag is above 0.
    pub partitions_with_lag: u64,
}

/// The lag of `offsets` under `config`, pure. `previous` holds each partition's committed
/// offset from the last measurement (for `excludePersistentLag`) and is updated.
pub fn total_lag(
    config: &KafkaConfig,
    offsets: &[PartitionOffsets],
    previous: &mut BTreeMap<(String, i32), i64>,
) -> LagTotals {
    let (mut lag, mut with_persistent, mut with_lag) = (0u64, 0u64, 0u64);
    for p in offsets {
        let available = u64::try_from(p.high.saturating_sub(p.low)).unwrap_or(0);
        let (l, lp) = match p.committed {
            None if config.scale_to_zero_on_invalid_offset => (0, 0),
            None => match config.offset_reset_policy {
                OffsetResetPolicy::Latest => (1, 1),
                OffsetResetPolicy::Earliest => (available, available),
            },
            Some(c) => {
                let l = u64::try_from(p.high.saturating_sub(c)).unwrap_or(0);
                let key = (p.topic.clone(), p.partition);
                let stuck = config.exclude_persistent_lag && previous.get(&key) == Some(&c);
                if config.exclude_persistent_lag {
                    previous.insert(key, c);
                }
                if stuck { (0, l) } else { (l, l) }
            }
        };
        lag = lag.saturating_add(l);
        with_persistent = with_persistent.saturating_add(lp);
        if l > 0 {
            with_lag += 1;
        }
    }
    let partitions = offsets.len() as u64;
    let bound = if config.limit_to_partitions_with_lag {
        Some(with_lag)
    } else if config.allow_idle_consumers {
        None
    } else {
        Some(partitions)
    };
    let capped = match bound {
        Some(b) => lag.min(b.saturating_mul(config.lag_threshold)),
        None => lag,
    };
    LagTotals {
        metric: capped as f64,
        with_persistent,
        partitions,
        partitions_with_lag: with_lag,
    }
}

/// Records the last error librdkafka reported (authentication failures arrive only here).
#[derive(Default)]
struct Context {
    last_error: Mutex<Option<(Option<RDKafkaErrorCode>, String)>>,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some((error.rdkafka_error_code(), reason.to_owned()));
        }
    }
}

impl ConsumerContext for Context {}

type Client = BaseConsumer<Context>;

/// The `kafka` trigger.
pub struct KafkaScaler {
    id: TriggerId,
    name: String,
    target: Target,
    config: KafkaConfig,
    errors: ErrorContext,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
    previous: Arc<Mutex<BTreeMap<(String, i32), i64>>>,
}

impl std::fmt::Debug for KafkaScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaScaler")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaScaler {
    /// Parses the trigger; the client is created on first use.
    pub fn new(p: &TriggerParams) -> Result<Self, ParamError> {
        let config = KafkaConfig::parse(p)?;
        // Only what is secret is scrubbed from librdkafka's texts: scrubbing every
        // authentication value would blank words like "plaintext" (the `sasl` value).
        let secrets = ["password", "key", "keyPassword"]
            .iter()
            .filter_map(|k| p.secret(k, A))
            .collect();
        Ok(KafkaScaler {
            id: p.id.clone(),
            name: external_name(p)?,
            target: Target::of(p, config.lag_threshold as f64)?,
            errors: ErrorContext::new(p.id.clone(), &config.bootstrap_servers, secrets),
            config,
            client: tokio::sync::Mutex::new(None),
            previous: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    async fn client(&self) -> Result<Arc<Client>, ScalerError> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let client: Client = self
            .config
            .client_config()
            .create_with_context(Context::default())
            .map_err(|e| {
                self.errors
                    .unsupported(format!("this client configuration ({e})"))
            })?;
        let client = Arc::new(client);
        *guard = Some(client.clone());
        Ok(client)
    }

    /// Reads every considered partition's offsets (blocking; runs on the blocking pool).
    async fn offsets(&self) -> Result<Vec<PartitionOffsets>, ScalerError> {
        let client = self.client().await?;
        let topic = self.config.topic.clone();
        let limit = self.config.partition_limitation.clone();
        let errors = self.errors.clone();
        tokio::task::spawn_blocking(move || read_offsets(&client, topic, limit, &errors))
            .await
            .map_err(|e| self.errors.query(format!("the offset reader stopped: {e}")))?
    }
}

/// Turns a librdkafka failure into a scaler error, preferring what the error callback saw
/// (an authentication failure surfaces there, the request itself only times out).
fn map_error(client: &Client, errors: &ErrorContext, what: &str, e: &KafkaError) -> ScalerError {
    // Let queued error events reach the context.
    if let Some(Err(polled)) = client.poll(Duration::ZERO)
        && let Ok(mut last) = client.context().last_error.lock()
    {
        *last = Some((polled.rdkafka_error_code(), polled.to_string()));
    }
    let last = client
        .context()
        .last_error
        .lock()
        .ok()
        .and_then(|mut l| l.take());
    if let Some((code, reason)) = &last
        && matches!(
            code,
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
        )
    {
        return errors.unauthorized(format!("{what}: {reason}"));
    }
    let detail = match &last {
        Some((_, reason)) => format!("{what}: {e} ({reason})"),
        None => format!("{what}: {e}"),
    };
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::Authentication,
        ) => errors.unauthorized(detail),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::NetworkException,
        ) => errors.unreachable(detail),
        _ => errors.query(detail),
    }
}

fn read_offsets(
    client: &Client,
    topic: Option<String>,
    limit: Option<BTreeSet<i32>>,
    errors: &ErrorContext,
) -> Result<Vec<PartitionOffsets>, ScalerError> {
    // Serve librdkafka's queued events (errors, logs): nothing else polls this client.
    let _ = client.poll(Duration::ZERO);
    let metadata = client
        .fetch_metadata(topic.as_deref(), TIMEOUT)
        .map_err(|e| map_error(client, errors, "reading the topics", &e))?;
    let mut partitions: Vec<(String, i32)> = Vec::new();
    for t in metadata.topics() {
        if topic.is_none() && t.name().starts_with("__") {
            continue; // internal topics (__consumer_offsets, …)
        }
        if let Some(err) = t.error() {
            let code = RDKafkaErrorCode::from(err);
            if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                return Err(errors.not_found(format!("topic {:?}", t.name())));
            }
            return Err(errors.query(format!("topic {:?}: {code}", t.name())));
        }
        for p in t.partitions() {
            if limit.as_ref().is_none_or(|l| l.contains(&p.id())) {
                partitions.push((t.name().to_owned(), p.id()));
            }
        }
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p) in &partitions {
        tpl.add_partition(t, *p);
    }
    let committed = client
        .committed_offsets(tpl, TIMEOUT)
        .map_err(|e| map_error(client, errors, "reading the group's offsets", &e))?;
    let mut by_partition: BTreeMap<(String, i32), Option<i64>> = BTreeMap::new();
    for e in committed.elements() {
        let offset = match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(o),
            _ => None,
        };
        by_partition.insert((e.topic().to_owned(), e.partition()), offset);
    }
    // Without a topic: only the topics the group has committed offsets in.
    let consumed: BTreeSet<&str> = by_partition
        .iter()
        .filter(|(_, o)| o.is_some())
        .map(|((t, _), _)| t.as_str())
        .collect();
    let mut out = Vec::new();
    for (t, p) in &partitions {
        if topic.is_none() && !consumed.contains(t.as_str()) {
            continue;
        }
        let (low, high) = client
            .fetch_watermarks(t, *p, TIMEOUT)
            .map_err(|e| map_error(client, errors, "reading the partitions' offsets", &e))?;
        out.push(PartitionOffsets {
            topic: t.clone(),
            partition: *p,
            committed: by_partition.get(&(t.clone(), *p)).copied().flatten(),
            low,
            high,
        });
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Scaler for KafkaScaler {
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
        let offsets = self.offsets().await?;
        let totals = {
            let mut previous = self
                .previous
                .lock()
                .map_err(|_| self.errors.query("the previous offsets are unreadable"))?;
            total_lag(&self.config, &offsets, &mut previous)
        };
        Ok(Measurement {
            values: vec![MetricValue {
                name: self.name.clone(),
                value: totals.metric,
            }],
            active: totals.with_persistent > self.config.activation_lag_threshold,
        })
    }

    async fn close(&self) {
        release(self.client.lock().await.take());
    }
}

impl Drop for KafkaScaler {
    fn drop(&mut self) {
        release(self.client.get_mut().take());
    }
}

/// Destroys a client off the async threads: librdkafka's destroy joins its threads and
/// closes the broker connections, which blocks.
fn release(client: Option<Arc<Client>>) {
    let Some(client) = client else { return };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn_blocking(move || drop(client));
        }
        Err(_) => drop(client),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)], auth: &[(&str, &str)]) -> TriggerParams {
        let md = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut a = crate::auth::ResolvedAuth::default();
        for (k, v) in auth {
            a.params.insert((*k).to_owned(), Secret::from(*v));
        }
        TriggerParams::new("kafka", 0, &md).with_auth(a)
    }

    const BASE: &[(&str, &str)] = &[
        ("bootstrapServers", "kafka-0.kafka:9092,kafka-1.kafka:9092"),
        ("consumerGroup", "orders"),
        ("topic", "events"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        v.extend_from_slice(extra);
        v
    }

    fn err(pairs: &[(&str, &str)], auth: &[(&str, &str)]) -> String {
        match KafkaConfig::parse(&params(pairs, auth)) {
            Ok(c) => panic!("parsed: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_upstreams() {
        let c = KafkaConfig::parse(&params(BASE, &[])).unwrap();
        assert_eq!(c.lag_threshold, 10);
        assert_eq!(c.activation_lag_threshold, 0);
        assert_eq!(c.offset_reset_policy, OffsetResetPolicy::Latest);
        assert!(!c.allow_idle_consumers && !c.exclude_persistent_lag);
        assert!(!c.scale_to_zero_on_invalid_offset && !c.limit_to_partitions_with_lag);
        assert_eq!(c.partition_limitation, None);
        assert_eq!(c.sasl, Sasl::None);
        assert_eq!(c.tls, None);
        let s = KafkaScaler::new(&params(BASE, &[])).unwrap();
        assert_eq!(s.name, "s0-kafka-events");
        assert_eq!(s.target, Target::AverageValue(10.0));
        let no_topic = KafkaScaler::new(&params(&BASE[..2], &[])).unwrap();
        assert_eq!(no_topic.name, "s0-kafka-orders-topics");
    }

    #[test]
    fn each_invalid_parameter_is_named_with_what_is_wrong() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("consumerGroup", "g")],
                "kafka trigger 0: missing required parameter bootstrapServers",
            ),
            (
                &[("bootstrapServers", "k:9092")],
                "kafka trigger 0: missing required parameter consumerGroup",
            ),
            (
                &[("bootstrapServers", "kafka"), ("consumerGroup", "g")],
                "kafka trigger 0: invalid parameter bootstrapServers: \"kafka\" is not host:port (e.g. kafka.svc:9092)",
            ),
            (
                &with(&[("lagThreshold", "0")]),
                "kafka trigger 0: invalid parameter lagThreshold: must be greater than 0",
            ),
            (
                &with(&[("lagThreshold", "ten")]),
                "kafka trigger 0: invalid parameter lagThreshold: \"ten\" is not a non-negative integer",
            ),
            (
                &with(&[("activationLagThreshold", "-1")]),
                "kafka trigger 0: invalid parameter activationLagThreshold: \"-1\" is not a non-negative integer",
            ),
            (
                &with(&[("offsetResetPolicy", "newest")]),
                "kafka trigger 0: invalid parameter offsetResetPolicy: \"newest\" is not one of latest, earliest",
            ),
            (
                &with(&[("allowIdleConsumers", "yes")]),
                "kafka trigger 0: invalid parameter allowIdleConsumers: \"yes\" is not true or false",
            ),
            (
                &with(&[
                    ("allowIdleConsumers", "true"),
                    ("limitToPartitionsWithLag", "true"),
                ]),
                "kafka trigger 0: parameters allowIdleConsumers and limitToPartitionsWithLag cannot be combined",
            ),
            (
                &with(&[("partitionLimitation", "1,5-3")]),
                "kafka trigger 0: invalid parameter partitionLimitation: \"1,5-3\" is not a list of partition ids and ranges such as 1,2,10-20,31",
            ),
            (
                &[
                    ("bootstrapServers", "k:9092"),
                    ("consumerGroup", "g"),
                    ("partitionLimitation", "1"),
                ],
                "kafka trigger 0: invalid parameter partitionLimitation: applies to one topic: set topic as well",
            ),
            (
                &with(&[("sasl", "kerberos")]),
                "kafka trigger 0: invalid parameter sasl: \"kerberos\" is not one of none, plaintext, scram_sha256, scram_sha512, oauthbearer, gssapi",
            ),
            (
                &with(&[("tls", "on")]),
                "kafka trigger 0: invalid parameter tls: \"on\" is not one of enable, disable",
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(err(pairs, &[]), *want);
        }
    }

    #[test]
    fn sasl_and_tls_come_from_the_authentication_and_unsupported_ones_are_refused() {
        let c = KafkaConfig::parse(&params(
            BASE,
            &[
                ("sasl", "plaintext"),
                ("username", "tandem"),
                ("password", "canary-kafka"),
                ("tls", "enable"),
                ("ca", "-----BEGIN CERTIFICATE-----"),
            ],
        ))
        .unwrap();
        assert!(matches!(&c.sasl, Sasl::Plain(cr) if cr.username == "tandem"));
        assert!(
            c.tls
                .as_ref()
                .is_some_and(|t| t.ca.is_some() && !t.insecure)
        );
        assert!(!format!("{c:?}").contains("canary-kafka"));
        let cfg = c.client_config();
        assert_eq!(cfg.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(cfg.get("sasl.mechanisms"), Some("PLAIN"));

        let c = KafkaConfig::parse(&params(
            BASE,
            &[
                ("sasl", "scram_sha512"),
                ("username", "u"),
                ("password", "p"),
            ],
        ))
        .unwrap();
        assert_eq!(
            c.client_config().get("security.protocol"),
            Some("sasl_plaintext")
        );
        assert_eq!(
            c.client_config().get("sasl.mechanisms"),
            Some("SCRAM-SHA-512")
        );

        assert_eq!(
            err(BASE, &[("sasl", "plaintext"), ("username", "u")]),
            "kafka trigger 0: missing required parameter password"
        );
        assert_eq!(
            err(BASE, &[("sasl", "gssapi")]),
            "kafka trigger 0: invalid parameter sasl: gssapi is not supported by tandem yet; use none, plaintext, scram_sha256 or scram_sha512"
        );
        assert_eq!(
            err(BASE, &[("sasl", "oauthbearer")]),
            "kafka trigger 0: invalid parameter sasl: oauthbearer is not supported by tandem yet; use none, plaintext, scram_sha256 or scram_sha512"
        );
        // A value from the authentication is never quoted.
        assert_eq!(
            err(BASE, &[("tls", "canary-tls")]),
            "kafka trigger 0: invalid parameter tls: (value hidden) is not one of enable, disable"
        );
        assert_eq!(
            err(BASE, &[("tls", "enable"), ("cert", "c")]),
            "kafka trigger 0: missing required parameter key"
        );
        assert_eq!(
            err(BASE, &[("ca", "c")]),
            "kafka trigger 0: invalid parameter ca: is set but tls is not enable: set tls: enable in the TriggerAuthentication"
        );
        // Metadata may carry sasl/tls too (upstream reads both).
        let c = KafkaConfig::parse(&params(
            &with(&[("tls", "enable"), ("unsafeSsl", "true")]),
            &[],
        ))
        .unwrap();
        assert_eq!(c.client_config().get("security.protocol"), Some("ssl"));
        assert_eq!(
            c.client_config().get("enable.ssl.certificate.verification"),
            Some("false")
        );
    }

    #[test]
    fn partition_lists_and_ranges() {
        assert_eq!(
            parse_partitions("1, 2,10-12,31"),
            Some([1, 2, 10, 11, 12, 31].into_iter().collect())
        );
        assert_eq!(parse_partitions(""), None);
        assert_eq!(parse_partitions("1,,2"), None);
        assert_eq!(parse_partitions("-1"), None);
        assert_eq!(parse_partitions("3-1"), None);
    }

    fn part(partition: i32, committed: Option<i64>, low: i64, high: i64) -> PartitionOffsets {
        PartitionOffsets {
            topic: "events".into(),
            partition,
            committed,
            low,
            high,
        }
    }

    fn config(extra: &[(&'static str, &'static str)]) -> KafkaConfig {
        KafkaConfig::parse(&params(&with(extra), &[])).unwrap()
    }

    #[test]
    fn lag_is_high_watermark_minus_committed_capped_at_a_consumer_per_partition() {
        let offsets = [
            part(0, Some(5), 0, 20),
            part(1, Some(20), 0, 20),
            part(2, Some(0), 0, 4),
        ];
        let t = total_lag(&config(&[]), &offsets, &mut BTreeMap::new());
        assert_eq!((t.metric, t.with_persistent), (19.0, 19));
        assert_eq!((t.partitions, t.partitions_with_lag), (3, 2));
        // 3 partitions × lagThreshold 5 = 15.
        let c = config(&[("lagThreshold", "5")]);
        assert_eq!(total_lag(&c, &offsets, &mut BTreeMap::new()).metric, 15.0);
        let c = config(&[("lagThreshold", "5"), ("allowIdleConsumers", "true")]);
        assert_eq!(total_lag(&c, &offsets, &mut BTreeMap::new()).metric, 19.0);
        // Two partitions have lag: 2 × 5.
        let c = config(&[("lagThreshold", "5"), ("limitToPartitionsWithLag", "true")]);
        assert_eq!(total_lag(&c, &offsets, &mut BTreeMap::new()).metric, 10.0);
    }

    #[test]
    fn a_partition_without_a_committed_offset_follows_offset_reset_policy() {
        let offsets = [part(0, None, 3, 10), part(1, Some(8), 0, 10)];
        let lag = |extra: &[(&'static str, &'static str)]| {
            total_lag(&config(extra), &offsets, &mut BTreeMap::new()).metric
        };
        assert_eq!(lag(&[]), 1.0 + 2.0);
        assert_eq!(lag(&[("scaleToZeroOnInvalidOffset", "true")]), 2.0);
        assert_eq!(lag(&[("offsetResetPolicy", "earliest")]), 7.0 + 2.0);
        assert_eq!(
            lag(&[
                ("offsetResetPolicy", "earliest"),
                ("scaleToZeroOnInvalidOffset", "true")
            ]),
            2.0
        );
    }

    #[test]
    fn persistent_lag_is_left_out_of_the_metric_but_keeps_the_trigger_active() {
        let c = config(&[("excludePersistentLag", "true")]);
        let mut previous = BTreeMap::new();
        let first = [part(0, Some(5), 0, 10), part(1, Some(1), 0, 4)];
        assert_eq!(total_lag(&c, &first, &mut previous).metric, 8.0);
        // Partition 0 did not move; partition 1 did.
        let second = [part(0, Some(5), 0, 12), part(1, Some(2), 0, 6)];
        let t = total_lag(&c, &second, &mut previous);
        assert_eq!((t.metric, t.with_persistent), (4.0, 11));
    }
}
