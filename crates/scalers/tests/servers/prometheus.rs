//! Prometheus 2.x scraping an in-test exporter.

use super::*;
use tandem_testkit::services::{HttpFixture, Prometheus};

#[tokio::test]
async fn prometheus_query_value_activation_auth_and_down() {
    let exporter = started(HttpFixture::start().await);
    exporter.set(
        "/metrics",
        "text/plain; version=0.0.4",
        "# TYPE tandem_queue_depth gauge\ntandem_queue_depth{queue=\"jobs\"} 42\n",
    );
    let mut prom = started(Prometheus::start(&[exporter.addr()]).await);
    started(
        prom.wait_for_sample("tandem_queue_depth", Duration::from_secs(30))
            .await,
    );

    let trigger = |activation: &str| {
        params(
            "prometheus",
            &[
                ("serverAddress", prom.url().as_str()),
                ("query", "sum(tandem_queue_depth)"),
                ("threshold", "10"),
                ("activationThreshold", activation),
            ],
            &[],
        )
    };
    // Value, and activation strictly above the threshold.
    let s = build(trigger("41")).await;
    assert_eq!(value(&*s).await, (42.0, true));
    let s = build(trigger("42")).await;
    assert_eq!(value(&*s).await, (42.0, false));

    // An empty result is 0 by default (ignoreNullValues), an error when asked.
    let q = |ignore: &str| {
        params(
            "prometheus",
            &[
                ("serverAddress", prom.url().as_str()),
                ("query", "absent_metric_xyz"),
                ("threshold", "1"),
                ("ignoreNullValues", ignore),
            ],
            &[],
        )
    };
    assert_eq!(value(&*build(q("true")).await).await, (0.0, false));
    let e = measure(&*build(q("false")).await).await.unwrap_err();
    assert_clean(&e, "BadResponse", "prometheus trigger 0", &[]);

    // Wrong credential: Prometheus behind a bearer-token proxy (the fixture plays it).
    let proxy = started(HttpFixture::start().await);
    proxy.require_bearer("right-token");
    proxy.set("/api/v1/query", "application/json", r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"5"]}]}}"#);
    let with_token = |t: &str| {
        params(
            "prometheus",
            &[
                ("serverAddress", proxy.url("").as_str()),
                ("query", "x"),
                ("threshold", "1"),
                ("authModes", "bearer"),
            ],
            &[("bearerToken", t)],
        )
    };
    assert_eq!(
        value(&*build(with_token("right-token")).await).await,
        (5.0, true)
    );
    let e = measure(&*build(with_token("canary-wrong-token")).await)
        .await
        .unwrap_err();
    assert_clean(
        &e,
        "Unauthorized",
        "prometheus trigger 0",
        &["canary-wrong-token", "right-token"],
    );

    // Down.
    let down = params(
        "prometheus",
        &[
            (
                "serverAddress",
                format!("http://127.0.0.1:{}", closed_port()).as_str(),
            ),
            ("query", "x"),
            ("threshold", "1"),
        ],
        &[],
    );
    let e = measure(&*build(down).await).await.unwrap_err();
    assert_clean(&e, "SourceUnreachable", "prometheus trigger 0", &[]);
}
