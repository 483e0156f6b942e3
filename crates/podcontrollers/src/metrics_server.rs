//! The `external.metrics.k8s.io/v1beta1` API the HPA reads, served from the controller's latest
//! values: a request never reaches an event source.
//!
//! ```text
//!   HPA ─► kube-apiserver (aggregator, APIService v1beta1.external.metrics.k8s.io)
//!            │ TLS, client cert front-proxy-client (verified against `TlsConfig::client_ca_der`)
//!            ▼
//!   GET /apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>
//!       ?labelSelector=scaledobject.keda.sh/name=<so>
//!            │ MetricValues (written by the ScaledObject workers every pollingInterval)
//!            ▼
//!   ExternalMetricValueList { items: [ { metricName, value: "<milli>m" } ] }
//! ```
//!
//! Like KEDA's adapter, a query without the `scaledobject.keda.sh/name` label is refused
//! ("scaledObject name is not specified"), and a metric with no current value (its trigger
//! failed and no fallback applies) is an error, so the HPA reports `FailedGetExternalMetric`.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

use crate::error::Error;

/// The label every External metric of a ScaledObject is selected by.
pub const SCALED_OBJECT_LABEL: &str = "scaledobject.keda.sh/name";
const GROUP: &str = "external.metrics.k8s.io";
const GROUP_VERSION: &str = "external.metrics.k8s.io/v1beta1";

/// Which value: a metric of one ScaledObject.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricKey {
    /// Namespace of the ScaledObject.
    pub namespace: String,
    /// Name of the ScaledObject.
    pub scaled_object: String,
    /// The metric name as on the HPA (`s0-rabbitmq-orders`).
    pub metric: String,
}

impl MetricKey {
    /// A key.
    #[must_use]
    pub fn new(namespace: &str, scaled_object: &str, metric: &str) -> Self {
        MetricKey {
            namespace: namespace.to_owned(),
            scaled_object: scaled_object.to_owned(),
            metric: metric.to_owned(),
        }
    }
}

/// The latest value of every served metric, in milli-units. Cheap to clone (shared); the
/// controller writes, the server reads.
#[derive(Debug, Clone, Default)]
pub struct MetricValues {
    inner: Arc<RwLock<BTreeMap<MetricKey, i64>>>,
}

impl MetricValues {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a value in milli-units.
    pub fn set(&self, key: MetricKey, milli: i64) {
        let mut values = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        values.insert(key, milli);
    }

    /// Removes a value: reads then fail.
    pub fn remove(&self, key: &MetricKey) {
        let mut values = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        values.remove(key);
    }

    /// Removes every value of one ScaledObject.
    pub fn remove_object(&self, namespace: &str, scaled_object: &str) {
        let mut values = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        values.retain(|k, _| !(k.namespace == namespace && k.scaled_object == scaled_object));
    }

    /// The value in milli-units. Metric names compare case-insensitively, as upstream's
    /// adapter does.
    #[must_use]
    pub fn get(&self, key: &MetricKey) -> Option<i64> {
        let values = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        values.get(key).copied().or_else(|| {
            values
                .iter()
                .find(|(k, _)| {
                    k.namespace == key.namespace
                        && k.scaled_object == key.scaled_object
                        && k.metric.eq_ignore_ascii_case(&key.metric)
                })
                .map(|(_, v)| *v)
        })
    }

    fn names(&self) -> BTreeSet<String> {
        let values = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        values.keys().map(|k| k.metric.clone()).collect()
    }
}

/// The server's TLS material, DER.
#[derive(Clone)]
pub struct TlsConfig {
    /// Serving certificate chain, leaf first (valid for the APIService's Service name,
    /// `<service>.<namespace>.svc`).
    pub cert_chain_der: Vec<Vec<u8>>,
    /// The serving key, PKCS#8.
    pub key_pkcs8_der: Vec<u8>,
    /// CA certificates the aggregator's client certificate must chain to (the cluster's
    /// front-proxy / requestheader CA).
    pub client_ca_der: Vec<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert_chain_der", &self.cert_chain_der.len())
            .field("client_ca_der", &self.client_ca_der.len())
            .finish_non_exhaustive()
    }
}

fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in &tls.client_ca_der {
        roots
            .add(CertificateDer::from(ca.clone()))
            .map_err(|source| Error::Tls { source })?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|source| Error::ClientVerifier { source })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::Tls { source })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            tls.cert_chain_der
                .iter()
                .map(|c| CertificateDer::from(c.clone()))
                .collect(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(tls.key_pkcs8_der.clone())),
        )
        .map_err(|source| Error::Tls { source })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A running metrics server; dropping it stops it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on (with the port the OS chose for port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves the external metrics API from `values` on the current tokio
/// runtime until the returned handle is dropped. Connections whose client certificate does
/// not chain to `tls.client_ca_der` are refused during the handshake.
///
/// # Errors
/// [`Error::Bind`] when the address cannot be bound, [`Error::Tls`] /
/// [`Error::ClientVerifier`] when the TLS material is unusable.
pub async fn serve_external_metrics(
    addr: SocketAddr,
    tls: TlsConfig,
    values: MetricValues,
) -> Result<MetricsServer, Error> {
    let config = server_config(&tls)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let task = tokio::spawn(accept_loop(listener, config, values));
    Ok(MetricsServer { addr, task })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    values: MetricValues,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, values) = (acceptor.clone(), values.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
            else {
                tracing::debug!("external metrics: TLS handshake refused or timed out");
                return;
            };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = respond(&values, req.method(), req.uri());
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// A response: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    status: StatusCode,
    body: serde_json::Value,
}

fn respond(
    values: &MetricValues,
    method: &hyper::Method,
    uri: &hyper::Uri,
) -> Response<Full<Bytes>> {
    let reply = route(values, method, uri.path(), uri.query().unwrap_or_default());
    let mut response = Response::new(Full::new(Bytes::from(reply.body.to_string())));
    *response.status_mut() = reply.status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn failure(status: StatusCode, reason: &str, message: &str) -> Reply {
    Reply {
        status,
        body: json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": reason, "message": message,
            "code": status.as_u16(),
        }),
    }
}

fn ok(body: serde_json::Value) -> Reply {
    Reply {
        status: StatusCode::OK,
        body,
    }
}

/// The whole API, as a pure function of the values and the request line.
fn route(values: &MetricValues, method: &hyper::Method, path: &str, query: &str) -> Reply {
    if method != hyper::Method::GET {
        return failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "only GET is served",
        );
    }
    let path = path.trim_end_matches('/');
    let group = json!({
        "name": GROUP,
        "versions": [{"groupVersion": GROUP_VERSION, "version": "v1beta1"}],
        "preferredVersion": {"groupVersion": GROUP_VERSION, "version": "v1beta1"},
    });
    match path {
        "/apis" => ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})),
        "/apis/external.metrics.k8s.io" => {
            let mut body = group;
            body["kind"] = json!("APIGroup");
            body["apiVersion"] = json!("v1");
            ok(body)
        }
        "/apis/external.metrics.k8s.io/v1beta1" => {
            let resources: Vec<_> = values
                .names()
                .iter()
                .map(|name| {
                    json!({"name": name, "singularName": "", "namespaced": true,
                           "kind": "ExternalMetricValueList", "verbs": ["get"]})
                })
                .collect();
            ok(json!({"kind": "APIResourceList", "apiVersion": "v1",
                      "groupVersion": GROUP_VERSION, "resources": resources}))
        }
        _ => metric_value(values, path, query),
    }
}

fn metric_value(values: &MetricValues, path: &str, query: &str) -> Reply {
    let rest = path.strip_prefix("/apis/external.metrics.k8s.io/v1beta1/namespaces/");
    let Some((namespace, metric)) = rest.and_then(|r| r.split_once('/')) else {
        return failure(StatusCode::NOT_FOUND, "NotFound", "no such path");
    };
    if metric.contains('/') || namespace.is_empty() || metric.is_empty() {
        return failure(StatusCode::NOT_FOUND, "NotFound", "no such path");
    }
    let selector = query_param(query, "labelSelector").unwrap_or_default();
    let Some(scaled_object) = selector_value(&selector, SCALED_OBJECT_LABEL) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "scaledObject name is not specified",
        );
    };
    let key = MetricKey::new(namespace, &scaled_object, metric);
    let Some(milli) = values.get(&key) else {
        return failure(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "no value for metric {metric} of ScaledObject {namespace}/{scaled_object}: \
                 its trigger is failing or has not been polled yet"
            ),
        );
    };
    let timestamp = serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ))
    .unwrap_or(serde_json::Value::Null);
    ok(json!({
        "kind": "ExternalMetricValueList",
        "apiVersion": GROUP_VERSION,
        "metadata": {},
        "items": [{
            "metricName": metric,
            "metricLabels": {},
            "timestamp": timestamp,
            "value": milli_quantity(milli),
        }],
    }))
}

/// A milli value as a Kubernetes quantity: `"12"` for whole numbers, else `"12500m"`.
#[must_use]
pub fn milli_quantity(milli: i64) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// The decoded value of `key` in a query string.
fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value required for `key` by an equality requirement (`k=v`, `k==v`, `k in (v)`) in a
/// label selector.
fn selector_value(selector: &str, key: &str) -> Option<String> {
    let mut depth = 0usize;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);
    parts.into_iter().find_map(|req| {
        let req = req.trim();
        if let Some((k, v)) = req
            .split_once("==")
            .or_else(|| req.split_once('=').filter(|(k, _)| !k.ends_with('!')))
        {
            return (k.trim() == key).then(|| v.trim().to_owned());
        }
        let (k, rest) = req.split_once(" in ")?;
        let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
        let mut vals = inner.split(',').map(str::trim);
        let first = vals.next()?;
        (k.trim() == key && vals.next().is_none()).then(|| first.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(values: &MetricValues, path: &str, query: &str) -> Reply {
        route(values, &hyper::Method::GET, path, query)
    }

    #[test]
    fn a_value_is_served_as_a_milli_quantity_for_its_scaled_object_only() {
        let values = MetricValues::new();
        values.set(
            MetricKey::new("shop", "orders", "s0-rabbitmq-orders"),
            12_500,
        );
        let path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-rabbitmq-orders";
        let r = get(
            &values,
            path,
            "labelSelector=scaledobject.keda.sh%2Fname%3Dorders",
        );
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["items"][0]["value"], "12500m");
        assert_eq!(r.body["items"][0]["metricName"], "s0-rabbitmq-orders");
        let other = get(
            &values,
            path,
            "labelSelector=scaledobject.keda.sh%2Fname%3Dother",
        );
        assert_eq!(other.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_query_without_the_scaled_object_label_is_refused_like_upstream() {
        let values = MetricValues::new();
        let path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-x";
        let r = get(&values, path, "");
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["message"], "scaledObject name is not specified");
    }

    #[test]
    fn discovery_lists_the_group_and_the_served_metric_names() {
        let values = MetricValues::new();
        values.set(MetricKey::new("a", "b", "s0-m"), 1000);
        let r = get(&values, "/apis/external.metrics.k8s.io/v1beta1", "");
        assert_eq!(r.body["kind"], "APIResourceList");
        assert_eq!(r.body["resources"][0]["name"], "s0-m");
        let g = get(&values, "/apis/external.metrics.k8s.io/", "");
        assert_eq!(g.body["preferredVersion"]["version"], "v1beta1");
    }

    #[test]
    fn removing_an_object_removes_all_its_values() {
        let values = MetricValues::new();
        values.set(MetricKey::new("a", "b", "s0-m"), 1);
        values.set(MetricKey::new("a", "b", "s1-m"), 2);
        values.set(MetricKey::new("a", "c", "s0-m"), 3);
        values.remove_object("a", "b");
        assert_eq!(values.get(&MetricKey::new("a", "b", "s1-m")), None);
        assert_eq!(values.get(&MetricKey::new("a", "c", "S0-M")), Some(3));
    }

    #[test]
    fn selectors_in_their_usual_spellings_are_read() {
        let k = SCALED_OBJECT_LABEL;
        assert_eq!(
            selector_value("scaledobject.keda.sh/name=x", k).as_deref(),
            Some("x")
        );
        assert_eq!(
            selector_value("a=b,scaledobject.keda.sh/name==y", k).as_deref(),
            Some("y")
        );
        assert_eq!(
            selector_value("scaledobject.keda.sh/name in (z)", k).as_deref(),
            Some("z")
        );
        assert_eq!(selector_value("scaledobject.keda.sh/name!=x", k), None);
        assert_eq!(selector_value("", k), None);
    }

    #[test]
    fn quantities_and_percent_encoding() {
        assert_eq!(milli_quantity(10_000), "10");
        assert_eq!(milli_quantity(1), "1m");
        assert_eq!(percent_decode("a%2Fb%3Dc+d%zz%"), "a/b=c d%zz%");
    }
}
