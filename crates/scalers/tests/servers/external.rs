//! external and external-push against an in-test gRPC scaler speaking
//! `externalscaler.ExternalScaler`.

use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tandem_scalers::external::proto::external_scaler_server::{
    ExternalScaler, ExternalScalerServer,
};
use tandem_scalers::external::proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};

const TOKEN: &str = "canary-grpc-token";

struct TestScaler {
    depth: Arc<AtomicI64>,
    pushes: broadcast::Sender<bool>,
}

fn check(r: &ScaledObjectRef) -> Result<(), Status> {
    if r.name != "orders" || r.namespace != "shop" {
        return Err(Status::invalid_argument("wrong object"));
    }
    // The token reaches the scaler through `tokenFromEnv`, resolved from the target's env.
    match r.scaler_metadata.get("token") {
        Some(t) if t == TOKEN => Ok(()),
        Some(t) => Err(Status::unauthenticated(format!("bad token {t}"))),
        None => Err(Status::unauthenticated("no token")),
    }
}

#[tonic::async_trait]
impl ExternalScaler for TestScaler {
    async fn is_active(
        &self,
        r: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        check(r.get_ref())?;
        Ok(Response::new(IsActiveResponse {
            result: self.depth.load(Ordering::SeqCst) > 0,
        }))
    }

    type StreamIsActiveStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<IsActiveResponse, Status>> + Send>>;

    async fn stream_is_active(
        &self,
        r: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        check(r.get_ref())?;
        let rx = self.pushes.subscribe();
        let s = tokio_stream::wrappers::BroadcastStream::new(rx)
            .filter_map(|v| async move { v.ok().map(|result| Ok(IsActiveResponse { result })) });
        Ok(Response::new(Box::pin(s)))
    }

    async fn get_metric_spec(
        &self,
        r: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        check(r.get_ref())?;
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: "backlog".into(),
                target_size: 10,
                target_size_float: 0.0,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        r: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let req = r.into_inner();
        check(
            req.scaled_object_ref
                .as_ref()
                .ok_or_else(|| Status::invalid_argument("no ref"))?,
        )?;
        if req.metric_name != "backlog" {
            return Err(Status::not_found(format!("metric {}", req.metric_name)));
        }
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: "backlog".into(),
                metric_value: self.depth.load(Ordering::SeqCst),
                metric_value_float: 0.0,
            }],
        }))
    }
}

use futures::StreamExt as _;

#[tokio::test]
async fn external_grpc_value_activation_push_auth_and_down() {
    let depth = Arc::new(AtomicI64::new(37));
    let (pushes, _) = broadcast::channel(16);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ExternalScalerServer::new(TestScaler {
                depth: depth.clone(),
                pushes: pushes.clone(),
            }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let t = |kind: &str, token: &str| {
        let mut env = BTreeMap::new();
        env.insert("SCALER_TOKEN".to_owned(), Secret::from(token));
        params(
            kind,
            &[
                ("scalerAddress", addr.to_string().as_str()),
                ("tokenFromEnv", "SCALER_TOKEN"),
                ("queue", "jobs"),
            ],
            &[],
        )
        .with_env(env)
    };
    let s = build(t("external", TOKEN)).await;
    let specs = s.metric_specs().await.expect("spec");
    assert_eq!(
        specs,
        vec![tandem_scalers::MetricSpec::External {
            name: "s0-backlog".into(),
            target: tandem_scalers::Target::AverageValue(10.0)
        }]
    );
    assert_eq!(value(&*s).await, (37.0, true));
    depth.store(0, Ordering::SeqCst);
    assert_eq!(value(&*s).await, (0.0, false));
    assert!(s.watch().is_none(), "plain external has no push");

    // external-push: a `true` on StreamIsActive wakes at once; `false` does not.
    let p = build(t("external-push", TOKEN)).await;
    let mut w = p.watch().expect("push watch");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pushes.receiver_count() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watch never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = pushes.send(false);
    let _ = pushes.send(true);
    let took = next_wake(&mut w, Duration::from_secs(5)).await;
    eprintln!("  external-push wake {took:?}");

    // Wrong credential.
    let e = measure(&*build(t("external", "canary-wrong-token")).await)
        .await
        .unwrap_err();
    assert_clean(
        &e,
        "Unauthorized",
        "external trigger 0",
        &["canary-wrong-token", TOKEN],
    );

    // Down.
    server.abort();
    let down = params(
        "external",
        &[(
            "scalerAddress",
            format!("127.0.0.1:{}", closed_port()).as_str(),
        )],
        &[],
    );
    let e = measure(&*build(down).await).await.unwrap_err();
    assert_clean(&e, "SourceUnreachable", "external trigger 0", &[]);
}
