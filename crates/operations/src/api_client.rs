//! The Kubernetes client's own discipline: a client-side rate limit (queries per second with a
//! burst, as client-go's token bucket) and the figures to see it, under client-go's metric names
//! so the dashboards people have for controller-runtime operators work unchanged:
//!
//! - `rest_client_requests_total{method, code}`: every request Tandem sent to the API server, by
//!   HTTP method and response code (`<error>` when no response came back). A watch counts once,
//!   when it is opened.
//! - `rest_client_rate_limiter_duration_seconds`: how long requests waited for the limiter. All
//!   in the lowest bucket means the limit never throttled.
//!
//! Why a limit at all: a controller that lists or patches in a loop by mistake should slow down
//! itself, not the API server everyone shares. Why not KEDA's 20 QPS: KEDA's users hit it from a
//! few hundred ScaledObjects (a status PATCH waits seconds); Tandem writes only what changed, and
//! takes Karpenter's defaults (200 QPS, burst 300) for both layers together.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::fence::{Fence, Fenced};

/// Karpenter's `KUBE_CLIENT_QPS` default.
pub const DEFAULT_QPS: f64 = 200.0;
/// Karpenter's `KUBE_CLIENT_BURST` default.
pub const DEFAULT_BURST: u32 = 300;

/// Labels of `rest_client_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    code: String,
}

/// The client's metrics; clones share the same series.
#[derive(Debug, Clone)]
pub struct ApiClientMetrics {
    requests: Family<RequestLabels, Counter>,
    rate_limited: Histogram,
}

impl ApiClientMetrics {
    /// Registers the series in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        registry.register(
            "rest_client_requests",
            "Number of HTTP requests sent to the API server, by method and response code",
            metrics.requests.clone(),
        );
        registry.register(
            "rest_client_rate_limiter_duration_seconds",
            "Time requests waited for the client-side rate limiter",
            metrics.rate_limited.clone(),
        );
        metrics
    }

    /// Series that nothing exports (tests, tools).
    pub fn unregistered() -> Self {
        ApiClientMetrics {
            requests: Family::default(),
            rate_limited: Histogram::new(exponential_buckets(0.001, 4.0, 9)),
        }
    }

    /// Requests sent so far with this method and code.
    pub fn requests(&self, method: &str, code: &str) -> u64 {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                code: code.to_owned(),
            })
            .get()
    }
}

/// Queries per second and burst of the client-side limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second; 0 or less turns the limit off.
    pub qps: f64,
    /// Requests that may go at once after a quiet period.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            qps: DEFAULT_QPS,
            burst: DEFAULT_BURST,
        }
    }
}

/// A token bucket: `burst` tokens, refilled at `qps`. A request takes a token, or reserves
/// the next one and waits for it (the bucket goes negative), so waiting requests keep their
/// order and the rate holds over any window.
#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        Bucket {
            limit,
            state: Mutex::new((f64::from(limit.burst.max(1)), Instant::now())),
        }
    }

    /// Takes a token at `now` and says how long to wait before using it.
    fn reserve(&self, now: Instant) -> Duration {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = *state;
        let refilled = (tokens
            + now.saturating_duration_since(last).as_secs_f64() * self.limit.qps)
            .min(f64::from(self.limit.burst.max(1)));
        let left = refilled - 1.0;
        *state = (left, now.max(last));
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / self.limit.qps)
        }
    }
}

/// The tower layer that puts the limit and the metrics in front of a client's HTTP service:
/// `kube::client::ClientBuilder::try_from(config)?.with_layer(&ApiClientLayer::new(..)).build()`.
#[derive(Debug, Clone)]
pub struct ApiClientLayer {
    bucket: Option<Arc<Bucket>>,
    metrics: ApiClientMetrics,
    fence: Option<Arc<Fence>>,
}

impl ApiClientLayer {
    /// A layer with this limit (none when `qps <= 0`) reporting into `metrics`.
    pub fn new(limit: RateLimit, metrics: ApiClientMetrics) -> Self {
        ApiClientLayer {
            bucket: (limit.qps > 0.0).then(|| Arc::new(Bucket::new(limit))),
            metrics,
            fence: None,
        }
    }

    /// Refuses writes (anything but GET, HEAD and OPTIONS, except to the election's Lease)
    /// once `fence` says this replica's leadership lapsed; they fail with [`Fenced`] without
    /// being sent and count as code `<fenced>`.
    #[must_use]
    pub fn with_fence(mut self, fence: Arc<Fence>) -> Self {
        self.fence = Some(fence);
        self
    }

    fn fenced<B>(&self, request: &Request<B>) -> bool {
        let Some(fence) = &self.fence else {
            return false;
        };
        let reads = matches!(
            *request.method(),
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        let lease = fence.is_election_lease(request.uri().path());
        !reads && !lease && !fence.allows_writes(Instant::now())
    }
}

impl<S> tower::Layer<S> for ApiClientLayer {
    type Service = ApiClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiClientService {
            inner,
            layer: self.clone(),
            wait: None,
            reserved: false,
        }
    }
}

/// The service [`ApiClientLayer`] builds. The wait happens in `poll_ready`, so it holds back
/// the client's request queue as one limiter for every caller of the client, as client-go's.
pub struct ApiClientService<S> {
    inner: S,
    layer: ApiClientLayer,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    reserved: bool,
}

impl<S> std::fmt::Debug for ApiClientService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClientService")
            .field("layer", &self.layer)
            .field("reserved", &self.reserved)
            .finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// The error of a request through the layer: the inner service's, or [`Fenced`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B, R> tower::Service<Request<B>> for ApiClientService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + 'static,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<R>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.reserved {
            if let Some(bucket) = &self.layer.bucket {
                let wait = bucket.reserve(Instant::now());
                self.layer.metrics.rate_limited.observe(wait.as_secs_f64());
                if !wait.is_zero() {
                    self.wait = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
            self.reserved = true;
        }
        if let Some(wait) = &mut self.wait {
            match wait.as_mut().poll(cx) {
                Poll::Ready(()) => self.wait = None,
                Poll::Pending => return Poll::Pending,
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.reserved = false;
        let method = request.method().as_str().to_owned();
        let requests = self.layer.metrics.requests.clone();
        if self.layer.fenced(&request) {
            requests
                .get_or_create(&RequestLabels {
                    method,
                    code: "<fenced>".to_owned(),
                })
                .inc();
            return Box::pin(async { Err(Box::new(Fenced) as BoxError) });
        }
        let sent = self.inner.call(request);
        Box::pin(async move {
            let result = sent.await.map_err(Into::into);
            let code = match &result {
                Ok(response) => response.status().as_str().to_owned(),
                Err(_) => "<error>".to_owned(),
            };
            requests
                .get_or_create(&RequestLabels { method, code })
                .inc();
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_and_the_rest_at_the_rate() {
        let start = Instant::now();
        let bucket = Bucket::new(RateLimit {
            qps: 10.0,
            burst: 3,
        });
        let waits: Vec<Duration> = (0..5).map(|_| bucket.reserve(start)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        // The 4th and 5th wait for the 1st and 2nd token refilled at 10/s.
        assert_eq!(waits[3], Duration::from_millis(100));
        assert_eq!(waits[4], Duration::from_millis(200));
        // After a quiet period the bucket is back to its burst, not beyond.
        let later = start + Duration::from_secs(5);
        let waits: Vec<Duration> = (0..4).map(|_| bucket.reserve(later)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        assert_eq!(waits[3], Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn the_service_waits_for_the_limit_and_counts_by_method_and_code() {
        use tower::{Layer as _, Service as _, ServiceExt as _};
        let metrics = ApiClientMetrics::unregistered();
        let layer = ApiClientLayer::new(RateLimit { qps: 2.0, burst: 1 }, metrics.clone());
        let inner = tower::service_fn(|req: Request<()>| async move {
            let status = if req.method() == http::Method::GET {
                200
            } else {
                404
            };
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .status(status)
                    .body(())
                    .expect("response"),
            )
        });
        let mut service = layer.layer(inner);
        let start = Instant::now();
        for method in [http::Method::GET, http::Method::GET, http::Method::PATCH] {
            let request = Request::builder().method(method).body(()).expect("request");
            service
                .ready()
                .await
                .expect("ready")
                .call(request)
                .await
                .expect("response");
        }
        // One at once, then two at 2/s.
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(metrics.requests("GET", "200"), 2);
        assert_eq!(metrics.requests("PATCH", "404"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lapsed_fence_refuses_writes_but_not_reads_or_the_election_lease() {
        use std::sync::atomic::{AtomicU32, Ordering};
        use tower::{Layer as _, Service as _, ServiceExt as _};
        let metrics = ApiClientMetrics::unregistered();
        let fence = Arc::new(Fence::new("a", "tandem"));
        let layer = ApiClientLayer::new(RateLimit { qps: 0.0, burst: 0 }, metrics.clone())
            .with_fence(fence.clone());
        let sent = Arc::new(AtomicU32::new(0));
        let counter = sent.clone();
        let inner = tower::service_fn(move |_req: Request<()>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok::<_, std::convert::Infallible>(
                    Response::builder().status(200).body(()).expect("response"),
                )
            }
        });
        let mut service = layer.layer(inner);
        let mut send = async |method: http::Method, path: &str| {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .expect("request");
            service.ready().await.expect("ready").call(request).await
        };
        let pod = "/api/v1/namespaces/a/pods/b";
        let lease = "/apis/coordination.k8s.io/v1/namespaces/a/leases/tandem";
        // Never led: writes go.
        assert!(send(http::Method::PATCH, pod).await.is_ok());
        fence.renewed(Instant::now(), Duration::from_secs(10));
        assert!(send(http::Method::POST, pod).await.is_ok());
        tokio::time::advance(Duration::from_secs(11)).await;
        let refused = send(http::Method::DELETE, pod).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("leadership lapsed")),
            "{:?}",
            refused.map(|_| ())
        );
        assert!(send(http::Method::GET, pod).await.is_ok());
        assert!(send(http::Method::PUT, lease).await.is_ok());
        // Another Lease (a kwok kubelet's node Lease) is a write like any other.
        let node_lease = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1";
        assert!(send(http::Method::PATCH, node_lease).await.is_err());
        assert_eq!(
            sent.load(Ordering::SeqCst),
            4,
            "the refused write was not sent"
        );
        assert_eq!(metrics.requests("DELETE", "<fenced>"), 1);
        assert_eq!(metrics.requests("PATCH", "<fenced>"), 1);
    }

    #[test]
    fn no_limit_when_qps_is_zero() {
        let layer = ApiClientLayer::new(
            RateLimit { qps: 0.0, burst: 0 },
            ApiClientMetrics::unregistered(),
        );
        assert!(layer.bucket.is_none());
    }
}
