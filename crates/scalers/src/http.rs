//! HTTP clients for the scalers that speak HTTP (prometheus, metrics-api, the RabbitMQ
//! management API): TLS from the trigger's `ca`/`cert`/`key`/`unsafeSsl`, and upstream's
//! `authModes` (`bearer`, `basic`, `tls`, `custom`, `apiKey`).
//!
//! TLS is rustls with the ring provider, configured here and handed to reqwest whole, so no
//! scaler depends on a process-wide default provider and none pulls in a second crypto stack.

use crate::params::{A, M, MA, ParamError, TriggerParams};
use crate::secret::Secret;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;

/// KEDA's `KEDA_HTTP_DEFAULT_TIMEOUT` (keda.md §9.1).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);

/// TLS settings of one trigger.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Extra CA (PEM) trusted besides the public roots.
    pub ca: Option<Secret<String>>,
    /// Client certificate chain (PEM).
    pub cert: Option<Secret<String>>,
    /// Client key (PEM).
    pub key: Option<Secret<String>>,
    /// Skip server verification (`unsafeSsl: true`).
    pub unsafe_ssl: bool,
}

/// One way to present credentials on a request.
#[derive(Debug, Clone)]
pub enum HttpAuth {
    /// `Authorization: Bearer <token>`.
    Bearer(Secret<String>),
    /// HTTP basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret<String>,
    },
    /// `<header>: <value>`.
    Custom {
        /// Header name.
        header: String,
        /// Header value.
        value: Secret<String>,
    },
    /// An API key in a header or the query string.
    ApiKey {
        /// The key.
        key: Secret<String>,
        /// Header name or query parameter name.
        name: String,
        /// `true`: query parameter; `false`: header.
        in_query: bool,
    },
}

/// Parsed `authModes` plus TLS settings.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Credentials to add to each request.
    pub auth: Vec<HttpAuth>,
    /// TLS.
    pub tls: TlsSettings,
}

impl HttpSettings {
    /// Reads `authModes` (M, A) and the parameters each mode needs (A), plus `ca`, `cert`,
    /// `key` (A) and `unsafeSsl` (M). Upstream: keda `pkg/scalers/authentication`.
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let modes: Vec<String> = p
            .text("authModes", MA)
            .or_else(|| p.text("authMode", MA))
            .map(|s| {
                s.split(',')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut out = HttpSettings {
            tls: TlsSettings {
                ca: p.secret("ca", A),
                cert: None,
                key: None,
                unsafe_ssl: p.bool_or("unsafeSsl", M, false)?,
            },
            ..Default::default()
        };
        let has = |m: &str| modes.iter().any(|x| x.eq_ignore_ascii_case(m));
        if has("bearer") && has("basic") {
            return Err(p.conflict("authModes bearer", "authModes basic"));
        }
        for m in &modes {
            match m.to_ascii_lowercase().as_str() {
                "bearer" => {
                    let token = p
                        .secret("bearerToken", A)
                        .or_else(|| p.secret("token", A))
                        .ok_or_else(|| {
                            p.invalid(
                                "bearerToken",
                                "authModes bearer needs bearerToken in the authentication",
                            )
                        })?;
                    out.auth.push(HttpAuth::Bearer(token));
                }
                "basic" => {
                    let username = p.required_text("username", A)?;
                    let password = p.secret("password", A).unwrap_or_default();
                    out.auth.push(HttpAuth::Basic { username, password });
                }
                "custom" => {
                    let header = p.required_text("customAuthHeader", A)?;
                    let value = p.required("customAuthValue", A)?.into_secret();
                    out.auth.push(HttpAuth::Custom { header, value });
                }
                "apikey" => {
                    let key = p.required("apiKey", A)?.into_secret();
                    let in_query =
                        p.choice("method", MA, &["header", "query"], "header")? == "query";
                    let name = p.text("keyParamName", MA).unwrap_or_else(|| {
                        if in_query { "api_key" } else { "X-API-KEY" }.to_owned()
                    });
                    out.auth.push(HttpAuth::ApiKey {
                        key,
                        name,
                        in_query,
                    });
                }
                "tls" => {
                    out.tls.cert = Some(p.required("cert", A)?.into_secret());
                    out.tls.key = Some(p.required("key", A)?.into_secret());
                }
                "oauth" => {
                    return Err(p.invalid("authModes", "oauth is not supported by tandem yet"));
                }
                other => {
                    return Err(p.invalid(
                        "authModes",
                        format!("{other:?} is not one of bearer, basic, tls, custom, apiKey"),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Adds the credentials to a request.
    pub fn apply(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for a in &self.auth {
            req = match a {
                HttpAuth::Bearer(t) => req.bearer_auth(t.expose()),
                HttpAuth::Basic { username, password } => {
                    req.basic_auth(username, Some(password.expose()))
                }
                HttpAuth::Custom { header, value } => req.header(header.as_str(), value.expose()),
                HttpAuth::ApiKey {
                    key,
                    name,
                    in_query: true,
                } => req.query(&[(name.as_str(), key.expose().as_str())]),
                HttpAuth::ApiKey {
                    key,
                    name,
                    in_query: false,
                } => req.header(name.as_str(), key.expose()),
            };
        }
        req
    }

    /// Every secret in here, for scrubbing.
    pub fn secrets(&self) -> Vec<Secret<String>> {
        let mut out: Vec<Secret<String>> = self
            .auth
            .iter()
            .map(|a| match a {
                HttpAuth::Bearer(s) => s.clone(),
                HttpAuth::Basic { password, .. } => password.clone(),
                HttpAuth::Custom { value, .. } => value.clone(),
                HttpAuth::ApiKey { key, .. } => key.clone(),
            })
            .collect();
        out.extend(self.tls.key.iter().cloned());
        out
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client config for `tls`; errors name the parameter at fault.
pub fn rustls_config(
    p: &TriggerParams,
    tls: &TlsSettings,
) -> Result<rustls::ClientConfig, ParamError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| p.invalid("unsafeSsl", format!("no TLS versions available: {e}")))?;
    let builder = if tls.unsafe_ssl {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = &tls.ca {
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(ca.expose().as_bytes()) {
                let cert = cert.map_err(|_| p.invalid("ca", "not a PEM certificate"))?;
                roots
                    .add(cert)
                    .map_err(|_| p.invalid("ca", "not a usable CA certificate"))?;
                n += 1;
            }
            if n == 0 {
                return Err(p.invalid("ca", "no PEM certificate found"));
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.expose().as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| p.invalid("cert", "not a PEM certificate"))?;
            let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
                .map_err(|_| p.invalid("key", "not a PEM private key"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|_| p.invalid("cert", "certificate and key do not match"))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(_), None) => Err(p.invalid("key", "cert is set but key is not")),
        (None, Some(_)) => Err(p.invalid("cert", "key is set but cert is not")),
    }
}

/// How many distinct shared clients [`client`] keeps at most; past it, clients are built per
/// trigger again (a bound on what an unusual spread of timeouts could pin).
const SHARED_CLIENTS: usize = 64;

/// Clients of triggers that bring no TLS material of their own, by `(unsafeSsl, timeout)`.
type SharedClients = std::collections::HashMap<(bool, Duration), reqwest::Client>;

/// A reqwest client with our TLS and a total timeout per request.
///
/// Triggers without a `ca`, `cert` or `key` share one client per `(unsafeSsl, timeout)`: a
/// reqwest client is a connection pool plus a TLS configuration, and thousands of triggers
/// polling the same Prometheus each holding their own would keep thousands of idle
/// connections and configurations (the 10,000-ScaledObject bench of #15). A trigger with its
/// own TLS material gets a client of its own, so no trigger ever presents another's
/// certificate.
pub fn client(
    p: &TriggerParams,
    tls: &TlsSettings,
    timeout: Duration,
) -> Result<reqwest::Client, ParamError> {
    static SHARED: std::sync::LazyLock<std::sync::Mutex<SharedClients>> =
        std::sync::LazyLock::new(Default::default);
    let shareable = tls.ca.is_none() && tls.cert.is_none() && tls.key.is_none();
    if !shareable {
        return build_client(p, tls, timeout);
    }
    let key = (tls.unsafe_ssl, timeout);
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(client) = shared.get(&key) {
        return Ok(client.clone());
    }
    let client = build_client(p, tls, timeout)?;
    if shared.len() < SHARED_CLIENTS {
        shared.insert(key, client.clone());
    }
    Ok(client)
}

fn build_client(
    p: &TriggerParams,
    tls: &TlsSettings,
    timeout: Duration,
) -> Result<reqwest::Client, ParamError> {
    let config = rustls_config(p, tls)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| {
            p.invalid(
                "unsafeSsl",
                format!("cannot build the HTTP client: {}", e.without_url()),
            )
        })
}

/// `unsafeSsl: true`: accepts any server certificate but still checks the handshake
/// signatures, so the connection is encrypted, just not authenticated.
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Maps a reqwest transport error to a scaler error; the URL is dropped (it can carry an API
/// key in its query).
pub fn transport_error(ctx: &crate::error::ErrorContext, e: reqwest::Error) -> crate::ScalerError {
    let e = e.without_url();
    if e.is_timeout() {
        ctx.unreachable("timed out")
    } else if e.is_connect() {
        ctx.unreachable(format!("connection failed: {}", error_chain(&e)))
    } else if connection_lost(&e) {
        // A source that goes down while a pooled connection is open resets it mid-request:
        // that is the source being away, not a bad query.
        ctx.unreachable(format!("connection lost: {}", error_chain(&e)))
    } else {
        ctx.query(error_chain(&e))
    }
}

/// Whether an I/O error in `e`'s causes says the peer closed or reset the connection.
fn connection_lost(e: &dyn std::error::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let mut cur = e.source();
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            )
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// `e: cause: cause`, for foreign errors whose Display prints only the top.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Checks an HTTP status: 401/403 are credentials, 404 a missing object, others a failed
/// query. The body is cut to 200 characters.
pub async fn check_status(
    ctx: &crate::error::ErrorContext,
    resp: reqwest::Response,
    what: &str,
) -> Result<reqwest::Response, crate::ScalerError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body: String = resp
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    Err(match status.as_u16() {
        401 | 403 => ctx.unauthorized(format!("HTTP {status}")),
        404 => ctx.not_found(what),
        _ => ctx.query(format!("HTTP {status}: {}", body.trim())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A keep-alive HTTP server answering `ok` to every request; counts its connections.
    async fn server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await
                        && n > 0
                    {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, connections)
    }

    fn params() -> TriggerParams {
        TriggerParams::new("metrics-api", 0, &std::collections::BTreeMap::new())
    }

    async fn get(client: &reqwest::Client, url: &str) {
        let body = client.get(url).send().await.expect("get").text().await;
        assert_eq!(body.expect("body"), "ok");
    }

    #[tokio::test]
    async fn a_connection_reset_mid_request_is_an_unreachable_source() {
        // A server that reads the request, then resets the connection, as a source does
        // when it is stopped while a pooled connection is open.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.set_zero_linger();
                drop(stream);
            }
        });
        let client =
            client(&params(), &TlsSettings::default(), Duration::from_secs(5)).expect("client");
        let e = client.get(&url).send().await.expect_err("reset");
        let ctx = crate::error::ErrorContext::new(params().id, &url, vec![]);
        let err = transport_error(&ctx, e);
        assert!(
            matches!(err, crate::ScalerError::Unreachable { .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn triggers_without_tls_material_share_one_connection_pool() {
        let (url, connections) = server().await;
        let timeout = Duration::from_millis(2_345);
        let tls = TlsSettings::default();
        for _ in 0..3 {
            get(&client(&params(), &tls, timeout).expect("client"), &url).await;
        }
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "one kept-alive connection"
        );

        // Another timeout or unsafeSsl is another client, so another connection.
        get(
            &client(&params(), &tls, Duration::from_millis(2_346)).expect("client"),
            &url,
        )
        .await;
        let unsafe_ssl = TlsSettings {
            unsafe_ssl: true,
            ..TlsSettings::default()
        };
        get(
            &client(&params(), &unsafe_ssl, timeout).expect("client"),
            &url,
        )
        .await;
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_trigger_with_its_own_certificate_authority_gets_its_own_client() {
        let (url, connections) = server().await;
        let timeout = Duration::from_millis(2_347);
        get(
            &client(&params(), &TlsSettings::default(), timeout).expect("client"),
            &url,
        )
        .await;
        let dir = tempfile::tempdir().expect("dir");
        let pki = tandem_testkit::Pki::generate(dir.path(), "10.0.0.1").expect("pki");
        let own = TlsSettings {
            ca: Some(Secret::new(pki.ca_pem().to_owned())),
            ..TlsSettings::default()
        };
        get(&client(&params(), &own, timeout).expect("client"), &url).await;
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }
}
