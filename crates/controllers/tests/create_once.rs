//! On the real control plane: a NodeClaim create whose answer is lost is not created twice.
//!
//! A tower layer between the client and kube-apiserver sends the first NodeClaim POSTs on and
//! then throws their answers away (as a kube-apiserver killed after etcd committed would), or
//! fails them before they leave (as a refused connection would). `create_claim` must end with
//! exactly one claim either way, and a claim the API server rejects must come back `Refused`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Method, Request, Response};
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::NodeClaim;
use tandem_controllers::create_once::{CreateError, create_claim};
use tandem_testkit::ControlPlane;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What happens to the next `n` NodeClaim POSTs.
#[derive(Clone, Copy)]
enum Loss {
    /// Sent on, answer dropped: the claim is stored, the caller hears an error.
    Answer,
    /// Never sent: nothing is stored.
    Request,
}

#[derive(Clone)]
struct Lossy {
    loss: Loss,
    left: Arc<AtomicUsize>,
}

impl<S> tower::Layer<S> for Lossy {
    type Service = LossyService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        LossyService {
            inner,
            lossy: self.clone(),
        }
    }
}

#[derive(Clone)]
struct LossyService<S> {
    inner: S,
    lossy: Lossy,
}

impl<S, B, R> tower::Service<Request<B>> for LossyService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<R>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let hit = request.method() == Method::POST
            && request.uri().path().ends_with("/nodeclaims")
            && self
                .lossy
                .left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if hit && matches!(self.lossy.loss, Loss::Request) {
            return Box::pin(async { Err("connection refused (test)".into()) });
        }
        let sent = self.inner.call(request);
        Box::pin(async move {
            let response = sent.await.map_err(Into::into)?;
            if hit {
                return Err("connection reset before the answer (test)".into());
            }
            Ok(response)
        })
    }
}

fn lossy_client(cp: &ControlPlane, loss: Loss, n: usize) -> Client {
    let layer = Lossy {
        loss,
        left: Arc::new(AtomicUsize::new(n)),
    };
    kube::client::ClientBuilder::try_from(cp.config().clone())
        .expect("client builder")
        .with_layer(&layer)
        .build()
}

fn claim(base: &str) -> NodeClaim {
    serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"generateName": base, "labels": {"test": base.trim_end_matches('-')}},
        "spec": {"requirements": [],
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "none"}},
    }))
    .expect("nodeclaim")
}

async fn claims(client: &Client, base: &str) -> Vec<String> {
    Api::<NodeClaim>::all(client.clone())
        .list(&ListParams::default().labels(&format!("test={}", base.trim_end_matches('-'))))
        .await
        .expect("list nodeclaims")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_or_a_lost_request_still_makes_exactly_one_claim() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let plain = cp.client().expect("client");
    for (base, loss, n) in [
        ("answer-lost-once-", Loss::Answer, 1),
        ("answer-lost-thrice-", Loss::Answer, 3),
        ("request-lost-", Loss::Request, 2),
    ] {
        let client = lossy_client(cp, loss, n);
        let created = create_claim(&Api::all(client), claim(base))
            .await
            .unwrap_or_else(|e| panic!("{base}: {e}"));
        let name = created.metadata.name.clone().expect("name");
        assert!(name.starts_with(base), "{name}");
        assert!(
            created.metadata.uid.is_some(),
            "{base}: not the stored claim"
        );
        assert_eq!(claims(&plain, base).await, vec![name], "{base}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_the_api_server_rejects_is_refused_and_not_retried() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client = cp.client().expect("client");
    let mut bad = claim("rejected-");
    bad.spec.node_class_ref.kind = String::new();
    match create_claim(&Api::all(client.clone()), bad).await {
        Err(CreateError::Refused(kube::Error::Api(s))) => assert_eq!(s.code, 422, "{s:?}"),
        other => panic!("want Refused(422), got {other:?}"),
    }
    assert!(claims(&client, "rejected-").await.is_empty());
}
