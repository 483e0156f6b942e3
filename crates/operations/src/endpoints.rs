//! The probe and metrics endpoints: `/healthz` (the process serves), `/readyz` (the caller's
//! readiness check passes) and `/metrics` (OpenMetrics text of a registry).
//!
//! Upstream runs probes on :8081 and metrics on :8080; [`serve`] takes any set of routes on one
//! address so the binary can bind both ports, or one, as it is told.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// A readiness check: `Ok` when ready, otherwise why not.
pub type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Which endpoints one listener answers.
#[derive(Clone, Default)]
pub struct Routes {
    /// Serve `/healthz` and `/readyz` (with this check).
    pub probes: Option<Check>,
    /// Serve `/metrics` from this registry. Behind a mutex because collectors register lazily.
    pub metrics: Option<Arc<Mutex<Registry>>>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("probes", &self.probes.is_some())
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

/// Binds `addr` and returns the bound address (useful with port 0) and the serving task.
pub async fn serve(
    addr: SocketAddr,
    routes: Routes,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let routes = Arc::new(routes);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let routes = routes.clone();
                    async move { Ok::<_, Infallible>(answer(&routes, req.uri().path())) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((bound, task))
}

fn answer(routes: &Routes, path: &str) -> Response<Full<Bytes>> {
    match (path, &routes.probes, &routes.metrics) {
        ("/healthz" | "/livez", Some(_), _) => text(StatusCode::OK, "ok".into(), PLAIN),
        ("/readyz", Some(check), _) => match check() {
            Ok(()) => text(StatusCode::OK, "ok".into(), PLAIN),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why, PLAIN),
        },
        ("/metrics", _, Some(registry)) => {
            let mut out = String::new();
            let encoded = match registry.lock() {
                Ok(r) => prometheus_client::encoding::text::encode(&mut out, &r),
                Err(poisoned) => {
                    prometheus_client::encoding::text::encode(&mut out, &poisoned.into_inner())
                }
            };
            match encoded {
                Ok(()) => text(StatusCode::OK, out, OPENMETRICS),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), PLAIN),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found".into(), PLAIN),
    }
}

const PLAIN: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::gauge::Gauge;

    fn body(r: Response<Full<Bytes>>) -> (StatusCode, String) {
        let status = r.status();
        let bytes = futures_lite_collect(r.into_body());
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn futures_lite_collect(b: Full<Bytes>) -> Bytes {
        use http_body_util::BodyExt as _;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async { b.collect().await.map(|c| c.to_bytes()).unwrap_or_default() })
    }

    #[test]
    fn readyz_reports_the_checks_reason() {
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ready.clone();
        let routes = Routes {
            probes: Some(Arc::new(move || {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("cluster state not synced".into())
                }
            })),
            metrics: None,
        };
        assert_eq!(
            body(answer(&routes, "/readyz")),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster state not synced".into()
            )
        );
        ready.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(body(answer(&routes, "/readyz")).0, StatusCode::OK);
        assert_eq!(body(answer(&routes, "/healthz")).0, StatusCode::OK);
        assert_eq!(body(answer(&routes, "/metrics")).0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn metrics_are_encoded_from_the_registry() {
        let mut registry = Registry::default();
        let g: Gauge = Gauge::default();
        g.set(3);
        registry.register("karpenter_cluster_state_node_count", "Nodes", g);
        let routes = Routes {
            probes: None,
            metrics: Some(Arc::new(Mutex::new(registry))),
        };
        let (status, text) = body(answer(&routes, "/metrics"));
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains("karpenter_cluster_state_node_count 3"),
            "{text}"
        );
        assert_eq!(body(answer(&routes, "/healthz")).0, StatusCode::NOT_FOUND);
    }
}
