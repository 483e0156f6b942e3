//! `redis` (list length) and `redis-streams` (pending entries, XLEN or consumer-group lag).
//! Upstream: keda `pkg/scalers/redis_scaler.go`, `redis_streams_scaler.go`; keda.md §7.
//! The cluster and sentinel variants are not implemented yet.
//!
//! Push:
//! - lists: keyspace notifications (`__keyspace@<db>__:<list>`), which need the server's
//!   `notify-keyspace-events` to include `K` and `l` (or `A`); Tandem never changes server
//!   configuration, so without it the watch stays silent and polling still works.
//! - streams: a blocking `XREAD` from `$` on a connection of its own; it reads without a
//!   group, so it consumes nothing and moves no consumer group.

use crate::error::ErrorContext;
use crate::params::{A, M, MAE};
use crate::push::{self, Wake, WakeStream};
use crate::{
    Measurement, MetricSpec, ParamError, Scaler, ScalerError, Secret, Target, TriggerId,
    TriggerParams, external_name, plain_measurement,
};
use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Time allowed for connecting and for one command.
const TIMEOUT: Duration = Duration::from_secs(5);

/// TLS material beyond the system roots.
#[derive(Debug, Clone)]
pub struct RedisTls {
    /// Extra CA (PEM).
    pub ca: Option<Secret<String>>,
    /// Client certificate and key (PEM).
    pub client: Option<(Secret<String>, Secret<String>)>,
}

/// How to reach one Redis server.
#[derive(Debug, Clone)]
pub struct Connection {
    /// `redis://` or `rediss://` URL with credentials and database (secret).
    pub url: Secret<String>,
    /// Printable address.
    pub address: String,
    /// Database index.
    pub db: i64,
    /// Extra CA / client certificate for TLS.
    pub tls: Option<RedisTls>,
}

impl Connection {
    /// Reads `address` or `host`+`port`, `username`, `password`, `databaseIndex`,
    /// `enableTLS` / `tls`, `unsafeSsl`, `ca`, `cert`, `key`.
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let address = match p.text("address", MAE) {
            Some(a) => a,
            None => {
                let host = p.text("host", MAE).ok_or_else(|| ParamError::Missing {
                    trigger: p.id.clone(),
                    param: "address".into(),
                })?;
                let port = p.required_text("port", MAE)?;
                format!("{host}:{port}")
            }
        };
        let (host, port) = address
            .rsplit_once(':')
            .and_then(|(h, port)| port.parse::<u16>().ok().map(|port| (h.to_owned(), port)))
            .ok_or_else(|| p.invalid("address", format!("{address:?} is not host:port")))?;
        let db = i64::try_from(p.u64_opt("databaseIndex", M)?.unwrap_or(0))
            .map_err(|_| p.invalid("databaseIndex", "too large"))?;
        let tls_on = p.bool_or("enableTLS", M, false)?
            || p.choice("tls", A, &["enable", "disable"], "disable")? == "enable";
        let unsafe_ssl = p.bool_or("unsafeSsl", M, false)?;
        let scheme = if tls_on { "rediss" } else { "redis" };
        let mut url = url::Url::parse(&format!("{scheme}://{host}:{port}/{db}"))
            .map_err(|_| p.invalid("address", format!("{address:?} is not host:port")))?;
        let username = p.text("username", MAE);
        if let Some(u) = &username {
            url.set_username(u)
                .map_err(|()| p.invalid("username", "cannot be used in a URL"))?;
        }
        if let Some(pw) = p.secret("password", MAE) {
            if username.is_none() {
                // Redis' legacy AUTH <password>: the URL needs a user part, "default".
                let _ = url.set_username("default");
            }
            url.set_password(Some(pw.expose()))
                .map_err(|()| p.invalid("password", "cannot be used in a URL"))?;
        }
        if tls_on && unsafe_ssl {
            url.set_fragment(Some("insecure"));
        }
        let ca = p.secret("ca", A);
        let cert = p.secret("cert", A).or_else(|| p.secret("Cert", A));
        let key = p.secret("key", A);
        let client = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(p.invalid("cert", "cert and key must be given together")),
        };
        let tls = (tls_on && (ca.is_some() || client.is_some())).then_some(RedisTls { ca, client });
        Ok(Connection {
            url: Secret::new(url.to_string()),
            address: format!("{scheme}://{host}:{port}/{db}"),
            db,
            tls,
        })
    }

    fn client(&self, errors: &ErrorContext) -> Result<redis::Client, ScalerError> {
        let r = match &self.tls {
            None => redis::Client::open(self.url.expose().as_str()),
            Some(RedisTls { ca, client }) => redis::Client::build_with_tls(
                self.url.expose().as_str(),
                redis::TlsCertificates {
                    client_tls: client.as_ref().map(|(c, k)| redis::ClientTlsConfig {
                        client_cert: c.expose().as_bytes().to_vec(),
                        client_key: k.expose().as_bytes().to_vec(),
                    }),
                    root_cert: ca.as_ref().map(|c| c.expose().as_bytes().to_vec()),
                },
            ),
        };
        r.map_err(|e| errors.unreachable(format!("invalid connection settings: {}", e.kind_name())))
    }
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

/// One server as reached with one set of credentials and TLS material: its client and the
/// multiplexed connection every scaler with the same settings sends its commands on.
///
/// KEDA opens a connection per scaler; at 10,000 ScaledObjects a third of them on one Redis
/// that is 3,333 connections (Redis' default `maxclients` is 10,000), each with its driver
/// task and buffers in Tandem. A multiplexed connection pipelines concurrent commands, and
/// the scalers' commands (LLEN, XLEN, XPENDING, XINFO) are O(1) or small, so one connection
/// per distinct server and credentials serves them all.
struct Shared {
    client: redis::Client,
    /// The live connection and its generation: a failed command drops the connection only if
    /// it is still the one the command ran on, not a fresh one another scaler just opened.
    conn: Mutex<Option<(u64, redis::aio::MultiplexedConnection)>>,
    /// Keyspace notifications for the list scalers' push, once one asks.
    hub: std::sync::Mutex<Option<Arc<PushHub>>>,
}

impl Shared {
    /// The server's push hub, started on first use. `None` outside a tokio runtime (no push;
    /// polling still works).
    fn hub(&self) -> Option<Arc<PushHub>> {
        let mut slot = lock(&self.hub);
        if let Some(hub) = slot.as_ref() {
            return Some(hub.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (alive, stopped) = tokio::sync::watch::channel(());
        let hub = Arc::new(PushHub {
            state: std::sync::Mutex::new(HubState::default()),
            _alive: alive,
        });
        runtime.spawn(read_keyspace(
            self.client.clone(),
            Arc::downgrade(&hub),
            stopped,
        ));
        *slot = Some(hub.clone());
        Some(hub)
    }
}

/// The keyspace subscriptions of every list scaler of one server on one pub/sub connection
/// (one per scaler would be 3,333 connections at #15's 10,000 ScaledObjects, as many as the
/// command connections this module already shares).
struct PushHub {
    state: std::sync::Mutex<HubState>,
    /// Dropped with the hub (with the last scaler of the server): stops its reader.
    _alive: tokio::sync::watch::Sender<()>,
}

/// Watchers and the connection's subscribe side, under one lock so a watcher that registers
/// while the reader reconnects is either in the reader's resubscription or subscribes itself.
#[derive(Default)]
struct HubState {
    /// Channel → wake senders of the scalers watching it.
    watchers: std::collections::HashMap<String, Vec<tokio::sync::mpsc::Sender<()>>>,
    /// The live connection's subscribe side; `None` while (re)connecting.
    sink: Option<redis::aio::PubSubSink>,
}

impl PushHub {
    /// Registers a watcher of `channel`: wakes arrive on the returned receiver (one held at a
    /// time; more while it is full are the same wake).
    fn watch(
        &self,
        channel: &str,
    ) -> (
        tokio::sync::mpsc::Receiver<()>,
        Option<redis::aio::PubSubSink>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut state = lock(&self.state);
        // A scaler is rebuilt after each failed fetch, dropping its watch: the watchers gone
        // are pruned here too, not only when their channel has a message.
        let watchers = state.watchers.entry(channel.to_owned()).or_default();
        watchers.retain(|s| !s.is_closed());
        watchers.push(tx);
        (rx, state.sink.clone())
    }
}

/// Reads the hub's pub/sub connection, waking the watchers of each message's channel;
/// reconnects (every 2 s) and subscribes every watched channel again when the connection is
/// lost; ends when the hub is dropped.
async fn read_keyspace(
    client: redis::Client,
    hub: std::sync::Weak<PushHub>,
    mut stopped: tokio::sync::watch::Receiver<()>,
) {
    loop {
        let connected = tokio::select! {
            _ = stopped.changed() => return,
            c = tokio::time::timeout(TIMEOUT, client.get_async_pubsub()) => c,
        };
        if let Ok(Ok(pubsub)) = connected {
            let (mut sink, mut messages) = pubsub.split();
            let channels: Vec<String> = {
                let Some(hub) = hub.upgrade() else { return };
                let mut state = lock(&hub.state);
                state.sink = Some(sink.clone());
                state.watchers.keys().cloned().collect()
            };
            if channels.is_empty() || sink.subscribe(&channels).await.is_ok() {
                loop {
                    let message = tokio::select! {
                        _ = stopped.changed() => return,
                        m = messages.next() => m,
                    };
                    let Some(message) = message else { break };
                    let Some(hub) = hub.upgrade() else { return };
                    let mut state = lock(&hub.state);
                    if let Some(senders) = state.watchers.get_mut(message.get_channel_name()) {
                        senders.retain(|s| !s.is_closed());
                        for s in senders.iter() {
                            let _ = s.try_send(());
                        }
                    }
                }
            }
            if let Some(hub) = hub.upgrade() {
                lock(&hub.state).sink = None;
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// A lock of this module's state, taken over a panic elsewhere: every guarded value stays
/// consistent at each step (a map entry or an `Option` replaced whole).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shared connections by their settings (URL with credentials, CA, client certificate and
/// key). Weak: the connection closes when the last scaler using it is dropped.
type Pool = std::collections::HashMap<String, std::sync::Weak<Shared>>;

fn pool() -> &'static std::sync::Mutex<Pool> {
    static POOL: std::sync::OnceLock<std::sync::Mutex<Pool>> = std::sync::OnceLock::new();
    POOL.get_or_init(Default::default)
}

/// The shared connection for `c`, created when no live scaler holds one.
fn shared(c: &Connection, errors: &ErrorContext) -> Result<Arc<Shared>, ScalerError> {
    let tls = c.tls.as_ref().map(|t| {
        (
            t.ca.as_ref().map(|v| v.expose().clone()),
            t.client
                .as_ref()
                .map(|(cert, key)| (cert.expose().clone(), key.expose().clone())),
        )
    });
    let key = format!("{}\n{tls:?}", c.url.expose());
    let mut pool = lock(pool());
    if let Some(live) = pool.get(&key).and_then(std::sync::Weak::upgrade) {
        return Ok(live);
    }
    pool.retain(|_, w| w.strong_count() > 0);
    let created = Arc::new(Shared {
        client: c.client(errors)?,
        conn: Mutex::new(None),
        hub: std::sync::Mutex::new(None),
    });
    pool.insert(key, Arc::downgrade(&created));
    Ok(created)
}

struct Inner {
    shared: Arc<Shared>,
    errors: ErrorContext,
    db: i64,
}

impl Inner {
    fn new(p: &TriggerParams, c: &Connection) -> Result<Self, ScalerError> {
        let mut secrets = p.secrets();
        secrets.push(c.url.clone());
        let errors = ErrorContext::new(p.id.clone(), &c.address, secrets);
        Ok(Inner {
            shared: shared(c, &errors)?,
            errors,
            db: c.db,
        })
    }

    fn map(&self, e: &redis::RedisError) -> ScalerError {
        let text = crate::http::error_chain(e);
        let upper = text.to_uppercase();
        if e.kind() == redis::ErrorKind::AuthenticationFailed
            || upper.contains("WRONGPASS")
            || upper.contains("NOAUTH")
            || upper.contains("NOPERM")
        {
            self.errors.unauthorized(text)
        } else if e.is_io_error()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_connection_dropped()
        {
            self.errors.unreachable(text)
        } else {
            self.errors.query(text)
        }
    }

    async fn connection(&self) -> Result<(u64, redis::aio::MultiplexedConnection), ScalerError> {
        let mut guard = self.shared.conn.lock().await;
        if let Some((generation, c)) = guard.as_ref() {
            return Ok((*generation, c.clone()));
        }
        let c = tokio::time::timeout(
            TIMEOUT,
            self.shared.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| self.errors.unreachable("connect timed out"))?
        .map_err(|e| self.map(&e))?;
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *guard = Some((generation, c.clone()));
        Ok((generation, c))
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ScalerError> {
        let (generation, mut c) = self.connection().await?;
        let r = tokio::time::timeout(TIMEOUT, cmd.query_async::<T>(&mut c))
            .await
            .map_err(|_| self.errors.unreachable("command timed out"))?;
        r.map_err(|e| {
            if e.is_io_error() || e.is_connection_dropped() {
                // Reconnect on the next call, unless another scaler already has.
                if let Ok(mut g) = self.shared.conn.try_lock()
                    && g.as_ref()
                        .is_some_and(|(current, _)| *current == generation)
                {
                    *g = None;
                }
            }
            self.map(&e)
        })
    }
}

/// Parsed `redis` (list) trigger.
#[derive(Debug, Clone)]
pub struct RedisListConfig {
    /// Connection.
    pub connection: Connection,
    /// The list.
    pub list_name: String,
    /// Target per replica.
    pub list_length: f64,
    /// Active above this.
    pub activation_list_length: f64,
}

impl RedisListConfig {
    /// Parses and validates.
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let list_length = p.f64_or("listLength", M, 5.0)?;
        if list_length <= 0.0 {
            return Err(p.invalid("listLength", "must be greater than 0"));
        }
        Ok(RedisListConfig {
            connection: Connection::parse(p)?,
            list_name: p.required_text("listName", M)?,
            list_length,
            activation_list_length: p.f64_or("activationListLength", M, 0.0)?,
        })
    }
}

/// The `redis` trigger: the length of a list.
pub struct RedisListScaler {
    id: TriggerId,
    name: String,
    target: Target,
    config: RedisListConfig,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisListScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisListScaler")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisListScaler {
    /// Parses the trigger; connects on first use.
    pub fn new(p: &TriggerParams) -> Result<Self, ScalerError> {
        let config = RedisListConfig::parse(p)?;
        Ok(RedisListScaler {
            id: p.id.clone(),
            name: external_name(p)?,
            target: Target::of(p, config.list_length)?,
            inner: Arc::new(Inner::new(p, &config.connection)?),
            config,
        })
    }
}

#[async_trait::async_trait]
impl Scaler for RedisListScaler {
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
        let len: i64 = self
            .inner
            .query(redis::cmd("LLEN").arg(&self.config.list_name))
            .await?;
        #[allow(clippy::cast_precision_loss)]
        let v = len as f64;
        Ok(plain_measurement(
            &self.name,
            v,
            self.config.activation_list_length,
        ))
    }

    fn watch(&self) -> Option<WakeStream> {
        let hub = self.inner.shared.hub()?;
        let channel = format!("__keyspace@{}__:{}", self.inner.db, self.config.list_name);
        let (rx, sink) = hub.watch(&channel);
        // Subscribed now if the hub is connected; otherwise its reader subscribes every
        // watched channel once it is. The stream keeps the hub (and its reader) alive.
        let subscribed = async move {
            if let Some(mut sink) = sink {
                let _ = sink.subscribe(&channel).await;
            }
        };
        let events = futures::stream::once(subscribed)
            .filter_map(|()| async { None })
            .chain(futures::stream::unfold(
                (rx, hub),
                |(mut rx, hub)| async move {
                    rx.recv().await.map(|()| {
                        (
                            Wake {
                                reason: "keyspace-event",
                            },
                            (rx, hub),
                        )
                    })
                },
            ));
        Some(push::rate_limited(
            events.boxed(),
            push::DEFAULT_MIN_WAKE_INTERVAL,
        ))
    }
}

/// What a `redis-streams` trigger measures.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamMode {
    /// XPENDING of the group; target `pendingEntriesCount`.
    PendingEntries {
        /// Group.
        group: String,
    },
    /// XLEN; target `streamLength`.
    StreamLength,
    /// The group's `lag` (XINFO GROUPS, Redis ≥ 7); target `lagCount`.
    Lag {
        /// Group.
        group: String,
    },
}

/// Parsed `redis-streams` trigger.
#[derive(Debug, Clone)]
pub struct RedisStreamConfig {
    /// Connection.
    pub connection: Connection,
    /// Stream key.
    pub stream: String,
    /// Mode.
    pub mode: StreamMode,
    /// Target.
    pub target: f64,
    /// Active above this (`activationLagCount`).
    pub activation: f64,
}

impl RedisStreamConfig {
    /// Parses and validates: group + lagCount → lag, group → pending entries, none → XLEN.
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let group = p.text("consumerGroup", M);
        let lag = p.f64_opt("lagCount", M)?;
        let (mode, target) = match (group, lag) {
            (Some(group), Some(lag)) => (StreamMode::Lag { group }, lag),
            (Some(group), None) => (
                StreamMode::PendingEntries { group },
                p.f64_or("pendingEntriesCount", M, 5.0)?,
            ),
            (None, _) => (StreamMode::StreamLength, p.f64_or("streamLength", M, 5.0)?),
        };
        if target <= 0.0 {
            return Err(p.invalid("pendingEntriesCount", "the target must be greater than 0"));
        }
        Ok(RedisStreamConfig {
            connection: Connection::parse(p)?,
            stream: p.required_text("stream", M)?,
            mode,
            target,
            activation: p.f64_or("activationLagCount", M, 0.0)?,
        })
    }
}

/// The `redis-streams` trigger.
pub struct RedisStreamScaler {
    id: TriggerId,
    name: String,
    target: Target,
    config: RedisStreamConfig,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStreamScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamScaler")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisStreamScaler {
    /// Parses the trigger; connects on first use.
    pub fn new(p: &TriggerParams) -> Result<Self, ScalerError> {
        let config = RedisStreamConfig::parse(p)?;
        Ok(RedisStreamScaler {
            id: p.id.clone(),
            name: external_name(p)?,
            target: Target::of(p, config.target)?,
            inner: Arc::new(Inner::new(p, &config.connection)?),
            config,
        })
    }

    async fn value(&self) -> Result<f64, ScalerError> {
        let s = &self.config.stream;
        let n: i64 = match &self.config.mode {
            StreamMode::StreamLength => self.inner.query(redis::cmd("XLEN").arg(s)).await?,
            StreamMode::PendingEntries { group } => {
                let summary: redis::Value = self
                    .inner
                    .query(redis::cmd("XPENDING").arg(s).arg(group))
                    .await?;
                match summary {
                    redis::Value::Array(items) => match items.first() {
                        Some(redis::Value::Int(n)) => *n,
                        _ => 0,
                    },
                    _ => {
                        return Err(self
                            .inner
                            .errors
                            .bad_response("XPENDING summary is not an array"));
                    }
                }
            }
            StreamMode::Lag { group } => {
                let groups: Vec<std::collections::HashMap<String, redis::Value>> = self
                    .inner
                    .query(redis::cmd("XINFO").arg("GROUPS").arg(s))
                    .await?;
                let g = groups
                    .iter()
                    .find(|g| matches!(g.get("name"), Some(redis::Value::BulkString(b)) if b == group.as_bytes()))
                    .ok_or_else(|| self.inner.errors.not_found(format!("consumer group {group:?} on stream {s:?}")))?;
                match g.get("lag") {
                    Some(redis::Value::Int(n)) => *n,
                    // nil lag: Redis cannot tell (entries deleted); upstream treats it as 0.
                    _ => 0,
                }
            }
        };
        #[allow(clippy::cast_precision_loss)]
        Ok(n as f64)
    }
}

#[async_trait::async_trait]
impl Scaler for RedisStreamScaler {
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
        let v = self.value().await?;
        Ok(plain_measurement(&self.name, v, self.config.activation))
    }

    fn watch(&self) -> Option<WakeStream> {
        let inner = self.inner.clone();
        let stream = self.config.stream.clone();
        let events = futures::stream::unfold(
            (
                inner,
                stream,
                None::<redis::aio::MultiplexedConnection>,
                "$".to_owned(),
            ),
            |(inner, stream, mut conn, mut last)| async move {
                loop {
                    if conn.is_none() {
                        // XREAD BLOCK outlives the default 500 ms response timeout.
                        let cfg = redis::AsyncConnectionConfig::new()
                            .set_response_timeout(Some(Duration::from_secs(15)));
                        match inner
                            .shared
                            .client
                            .get_multiplexed_async_connection_with_config(&cfg)
                            .await
                        {
                            Ok(c) => conn = Some(c),
                            Err(_) => {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                                continue;
                            }
                        }
                    }
                    let Some(c) = conn.as_mut() else { continue };
                    // Block up to 10 s (below the connection's response timeout), then loop.
                    let reply: Result<Option<redis::streams::StreamReadReply>, _> =
                        redis::cmd("XREAD")
                            .arg("BLOCK")
                            .arg(10_000)
                            .arg("COUNT")
                            .arg(1)
                            .arg("STREAMS")
                            .arg(&stream)
                            .arg(&last)
                            .query_async(c)
                            .await;
                    match reply {
                        Ok(Some(r)) => {
                            if let Some(id) = r.keys.first().and_then(|k| k.ids.last()) {
                                last = id.id.clone();
                            }
                            return Some((
                                Wake {
                                    reason: "stream-entry",
                                },
                                (inner, stream, conn, last),
                            ));
                        }
                        Ok(None) => {}
                        Err(_) => {
                            conn = None;
                            tokio::time::sleep(Duration::from_secs(2)).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kind: &str, pairs: &[(&str, &str)]) -> TriggerParams {
        let md = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TriggerParams::new(kind, 0, &md)
    }

    #[test]
    fn list_defaults_and_address_from_host_and_port() {
        let c = RedisListConfig::parse(&params(
            "redis",
            &[("host", "r"), ("port", "6379"), ("listName", "jobs")],
        ))
        .unwrap();
        assert_eq!((c.list_length, c.activation_list_length), (5.0, 0.0));
        assert_eq!(c.connection.address, "redis://r:6379/0");
        let e = RedisListConfig::parse(&params("redis", &[("listName", "jobs")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "redis trigger 0: missing required parameter address"
        );
    }

    #[test]
    fn stream_modes_follow_upstream() {
        let mode = |pairs: &[(&str, &str)]| {
            let mut all = vec![("address", "r:1"), ("stream", "s")];
            all.extend_from_slice(pairs);
            let c = RedisStreamConfig::parse(&params("redis-streams", &all)).unwrap();
            (c.mode, c.target)
        };
        assert_eq!(mode(&[]), (StreamMode::StreamLength, 5.0));
        assert_eq!(
            mode(&[("consumerGroup", "g")]),
            (StreamMode::PendingEntries { group: "g".into() }, 5.0)
        );
        assert_eq!(
            mode(&[("consumerGroup", "g"), ("lagCount", "7")]),
            (StreamMode::Lag { group: "g".into() }, 7.0)
        );
    }

    #[test]
    fn password_is_never_in_debug() {
        let mut auth = crate::auth::ResolvedAuth::default();
        auth.params
            .insert("password".into(), Secret::from("canary-redis-pw"));
        let c = RedisListConfig::parse(
            &params("redis", &[("address", "r:1"), ("listName", "l")]).with_auth(auth),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("canary-redis-pw"));
    }
}
