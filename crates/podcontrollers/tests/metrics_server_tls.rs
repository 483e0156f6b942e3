//! The metrics server speaks only to the aggregator: a client certificate from the
//! front-proxy CA is served, one from another CA or none at all is refused in the handshake.
//! No cluster needed: the PKI is generated the way the control plane's is.

use tandem_podcontrollers::{
    MetricKey, MetricValues, MetricsServer, TlsConfig, serve_external_metrics,
};
use tandem_testkit::Pki;

async fn server(pki: &Pki, values: MetricValues) -> MetricsServer {
    let [svc, ip] = tandem_testkit::external_metrics_serving_names();
    let cert = pki.issue_serving(&[&svc, &ip]).expect("serving cert");
    serve_external_metrics(
        "127.0.0.1:0".parse().expect("addr"),
        TlsConfig {
            cert_chain_der: vec![cert.cert_der],
            key_pkcs8_der: cert.key_der,
            client_ca_der: vec![pki.front_proxy_ca_der().to_vec()],
        },
        values,
    )
    .await
    .unwrap_or_else(|e| panic!("serve: {e}"))
}

#[tokio::test]
async fn only_the_front_proxy_client_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::generate(dir.path(), "198.18.0.1").expect("pki");
    let values = MetricValues::new();
    values.set(
        MetricKey::new("shop", "orders", "s0-rabbitmq-orders"),
        42_000,
    );
    let server = server(&pki, values).await;
    let addr = server.local_addr();
    let path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-rabbitmq-orders\
                ?labelSelector=scaledobject.keda.sh%2Fname%3Dorders";

    let ok = tandem_testkit::external_metrics_get(&pki, addr, Some(&pki.front_proxy_client), path)
        .await
        .expect("the aggregator is served");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains(r#""value":"42""#), "{ok}");

    // A client certificate from the cluster CA is not the aggregator.
    let wrong_ca = tandem_testkit::external_metrics_get(&pki, addr, Some(&pki.admin), path).await;
    assert!(
        wrong_ca.as_ref().is_err() || wrong_ca.as_ref().is_ok_and(|r| r.is_empty()),
        "{wrong_ca:?}"
    );
    let anonymous = tandem_testkit::external_metrics_get(&pki, addr, None, path).await;
    assert!(
        anonymous.as_ref().is_err() || anonymous.as_ref().is_ok_and(|r| r.is_empty()),
        "{anonymous:?}"
    );
}
