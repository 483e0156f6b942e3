//! A minimal `external.metrics.k8s.io/v1beta1` backend that runs inside the test process and is
//! reached by the real HPA controller through the real aggregation layer.
//!
//! ```text
//! kcm HPA ─► kube-apiserver /apis/external.metrics.k8s.io/v1beta1/namespaces/ns/m
//!              │ APIService v1beta1.external.metrics.k8s.io
//!              │   service tandem-testkit/external-metrics, port <backend port>, caBundle = CA
//!              │ Service type ExternalName, externalName 127.0.0.1
//!              ▼ https://127.0.0.1:<port>, SNI external-metrics.tandem-testkit.svc,
//!                client cert front-proxy-client
//! this server (rustls, verifies the client cert against the front-proxy CA)
//! ```

use crate::controlplane::FIELD_MANAGER;
use crate::error::{Error, Result};
use crate::pki::Pki;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::{
    APIService, APIServiceSpec, ServiceReference,
};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Namespace of the backend's Service.
pub const NAMESPACE: &str = "tandem-testkit";
/// Name of the backend's Service (`type: ExternalName`, `externalName: 127.0.0.1`).
pub const SERVICE: &str = "external-metrics";
/// Name of the APIService.
pub const API_SERVICE: &str = "v1beta1.external.metrics.k8s.io";
const GROUP: &str = "external.metrics.k8s.io";
const GROUP_VERSION: &str = "external.metrics.k8s.io/v1beta1";

type Key = (String, String);

#[derive(Debug, Default)]
struct State {
    /// (namespace, metric) → quantity string.
    values: Mutex<BTreeMap<Key, String>>,
    /// (namespace, metric) → number of reads.
    reads: Mutex<BTreeMap<Key, u64>>,
}

/// The running backend. Values are set per (namespace, metric), so parallel tests in their
/// own namespaces do not interfere; the label selector of a request is ignored.
#[derive(Debug)]
pub struct ExternalMetrics {
    state: Arc<State>,
    port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ExternalMetrics {
    /// Serves on a free 127.0.0.1 port with a certificate for
    /// `external-metrics.tandem-testkit.svc`, registers Service + APIService through `client`
    /// and waits (bounded by `timeout`) until the APIService is Available.
    pub async fn start(client: &Client, pki: &Pki, timeout: Duration) -> Result<Self> {
        let server = Self::serve(pki)?;
        server.register(client, pki, timeout).await?;
        Ok(server)
    }

    /// Only serves (no registration). The server runs on its own thread and runtime, so it
    /// outlives the runtime of whichever test started it.
    pub fn serve(pki: &Pki) -> Result<Self> {
        let tls = tls_config(pki)?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| Error::io("bind", "127.0.0.1", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("configure", "the metrics listener", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("read the address of", "the metrics listener", e))?
            .port();
        let state = Arc::new(State::default());
        let (shutdown, stop) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("build a runtime for", "the metrics server", e))?;
        let thread_state = state.clone();
        std::thread::Builder::new()
            .name("tandem-testkit-external-metrics".into())
            .spawn(move || runtime.block_on(accept_loop(listener, tls, thread_state, stop)))
            .map_err(|e| Error::io("start a thread for", "the metrics server", e))?;
        Ok(ExternalMetrics {
            state,
            port,
            shutdown: Some(shutdown),
        })
    }

    /// The 127.0.0.1 port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets the value of `metric` in `namespace`, as a Kubernetes quantity (`"50"`, `"2500m"`).
    pub fn set(&self, namespace: &str, metric: &str, quantity: &str) {
        if let Ok(mut values) = self.state.values.lock() {
            values.insert((namespace.into(), metric.into()), quantity.into());
        }
    }

    /// Removes the value: reads then get 404, which the HPA reports as a failed metric.
    pub fn unset(&self, namespace: &str, metric: &str) {
        if let Ok(mut values) = self.state.values.lock() {
            values.remove(&(namespace.to_owned(), metric.to_owned()));
        }
    }

    /// How often `metric` in `namespace` has been read (proves the HPA reached this server).
    pub fn reads(&self, namespace: &str, metric: &str) -> u64 {
        self.state
            .reads
            .lock()
            .ok()
            .and_then(|r| r.get(&(namespace.to_owned(), metric.to_owned())).copied())
            .unwrap_or(0)
    }

    async fn register(&self, client: &Client, pki: &Pki, timeout: Duration) -> Result<()> {
        register(client, pki, self.port, timeout).await
    }
}

/// Registers a backend listening on `127.0.0.1:<port>` as `v1beta1.external.metrics.k8s.io`:
/// Service [`NAMESPACE`]/[`SERVICE`] of type ExternalName → 127.0.0.1 and an APIService whose
/// caBundle is the cluster CA, then waits (bounded by `timeout`) until it is Available.
///
/// The backend must serve a certificate from [`Pki::issue_serving`] for
/// [`serving_names`] and verify client certificates against [`Pki::front_proxy_ca_der`].
/// This is how a test puts the product's own metrics server behind the aggregation layer
/// instead of [`ExternalMetrics`]; one control plane has one such registration at a time.
pub async fn register(client: &Client, pki: &Pki, port: u16, timeout: Duration) -> Result<()> {
    crate::manifest::ensure_namespace(client, NAMESPACE).await?;
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let service = Service {
        metadata: ObjectMeta {
            name: Some(SERVICE.into()),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some("127.0.0.1".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .patch(SERVICE, &apply, &Patch::Apply(&service))
        .await
        .map_err(|e| Error::kube(format!("apply Service {NAMESPACE}/{SERVICE}"), e))?;
    let api_service = APIService {
        metadata: ObjectMeta {
            name: Some(API_SERVICE.into()),
            ..Default::default()
        },
        spec: Some(APIServiceSpec {
            group: Some(GROUP.into()),
            version: Some("v1beta1".into()),
            group_priority_minimum: 100,
            version_priority: 100,
            ca_bundle: Some(ByteString(pki.ca_pem().as_bytes().to_vec())),
            insecure_skip_tls_verify: None,
            service: Some(ServiceReference {
                namespace: Some(NAMESPACE.into()),
                name: Some(SERVICE.into()),
                port: Some(i32::from(port)),
            }),
        }),
        status: None,
    };
    let api: Api<APIService> = Api::all(client.clone());
    api.patch(API_SERVICE, &apply, &Patch::Apply(&api_service))
        .await
        .map_err(|e| Error::kube(format!("apply APIService {API_SERVICE}"), e))?;
    crate::wait::wait_for_object(&api, API_SERVICE, timeout, |svc: Option<&APIService>| {
        svc.and_then(|s| s.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
            })
    })
    .await?;
    Ok(())
}

impl Drop for ExternalMetrics {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The names a backend's serving certificate must carry for [`register`].
pub fn serving_names() -> [String; 2] {
    [format!("{SERVICE}.{NAMESPACE}.svc"), "127.0.0.1".to_owned()]
}

/// GETs `path` from an external metrics API server at `addr` over TLS, as the holder of
/// `client` (the aggregator's `pki.front_proxy_client`, another certificate, or none), the way
/// the aggregation layer reaches a backend: server name [`serving_names`], the cluster CA as
/// the root. Returns the raw HTTP response, or the connection's error text (a refused client
/// certificate fails in the handshake or reads as an empty response). For tests that call a
/// backend directly instead of through the API server.
pub async fn get_as(
    pki: &Pki,
    addr: std::net::SocketAddr,
    client: Option<&crate::pki::CertFiles>,
    path: &str,
) -> std::result::Result<String, String> {
    use rustls::pki_types::ServerName;
    use rustls::pki_types::pem::PemObject as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca_der().to_vec()))
        .map_err(|e| e.to_string())?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match client {
        Some(files) => {
            let cert = CertificateDer::from_pem_file(&files.cert).map_err(|e| e.to_string())?;
            let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(vec![cert], key)
                .map_err(|e| e.to_string())?
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let [name, _] = serving_names();
    let name = ServerName::try_from(name).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    tls.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn tls_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>> {
    let what = "the external-metrics server";
    let tls_err = |e: rustls::Error| Error::Tls {
        what,
        source: Box::new(e),
    };
    let [svc, ip] = serving_names();
    let backend = pki.issue_serving(&[&svc, &ip])?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.front_proxy_ca_der().to_vec()))
        .map_err(tls_err)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| Error::Tls {
        what,
        source: Box::new(e),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(backend.cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(backend.key_der)),
        )
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn accept_loop(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            // A peer without a front-proxy client cert fails here and is dropped.
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
            else {
                return;
            };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = respond(&state, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": reason, "message": message, "code": code.as_u16(),
        }),
    )
}

fn respond(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "only GET is served",
        );
    }
    let path = req.uri().path().trim_end_matches('/');
    let group = json!({
        "name": GROUP,
        "versions": [{"groupVersion": GROUP_VERSION, "version": "v1beta1"}],
        "preferredVersion": {"groupVersion": GROUP_VERSION, "version": "v1beta1"},
    });
    match path {
        "/apis" => json_response(
            StatusCode::OK,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}),
        ),
        "/apis/external.metrics.k8s.io" => {
            let mut body = group;
            body["kind"] = json!("APIGroup");
            body["apiVersion"] = json!("v1");
            json_response(StatusCode::OK, &body)
        }
        "/apis/external.metrics.k8s.io/v1beta1" => {
            let names: std::collections::BTreeSet<String> = state
                .values
                .lock()
                .map(|v| v.keys().map(|(_, m)| m.clone()).collect())
                .unwrap_or_default();
            let resources: Vec<_> = names
                .iter()
                .map(|name| {
                    json!({"name": name, "singularName": "", "namespaced": true,
                           "kind": "ExternalMetricValueList", "verbs": ["get"]})
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"kind": "APIResourceList", "apiVersion": "v1",
                        "groupVersion": GROUP_VERSION, "resources": resources}),
            )
        }
        _ => metric_value(state, path),
    }
}

fn metric_value(state: &State, path: &str) -> Response<Full<Bytes>> {
    let rest = path.strip_prefix("/apis/external.metrics.k8s.io/v1beta1/namespaces/");
    let Some((namespace, metric)) = rest.and_then(|r| r.split_once('/')) else {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such path");
    };
    if metric.contains('/') || namespace.is_empty() || metric.is_empty() {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such path");
    }
    let key = (namespace.to_owned(), metric.to_owned());
    if let Ok(mut reads) = state.reads.lock() {
        *reads.entry(key.clone()).or_default() += 1;
    }
    let value = state.values.lock().ok().and_then(|v| v.get(&key).cloned());
    let Some(value) = value else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no value set for metric {metric} in namespace {namespace}"),
        );
    };
    let timestamp = serde_json::to_value(Time(k8s_openapi::jiff::Timestamp::now()))
        .unwrap_or(serde_json::Value::Null);
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "ExternalMetricValueList",
            "apiVersion": GROUP_VERSION,
            "metadata": {},
            "items": [{
                "metricName": metric,
                "metricLabels": {},
                "timestamp": timestamp,
                "value": value,
            }],
        }),
    )
}
