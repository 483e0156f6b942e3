//! metrics-api against an in-test HTTP endpoint.

use super::*;
use tandem_testkit::services::HttpFixture;

#[tokio::test]
async fn metrics_api_json_yaml_prometheus_auth_and_down() {
    let api = started(HttpFixture::start().await);
    api.set(
        "/stats",
        "application/json",
        r#"{"components":{"worker":{"tasks":12}}}"#,
    );
    api.set(
        "/stats.yaml",
        "application/yaml",
        "components:\n  worker:\n    tasks: 3\n",
    );
    api.set("/metrics", "text/plain", "# TYPE q gauge\nqueue_depth 9\n");
    let t = |path: &str, format: &str, loc: &str, activation: &str| {
        params(
            "metrics-api",
            &[
                ("url", api.url(path).as_str()),
                ("format", format),
                ("valueLocation", loc),
                ("targetValue", "5"),
                ("activationTargetValue", activation),
            ],
            &[],
        )
    };
    assert_eq!(
        value(&*build(t("/stats", "json", "components.worker.tasks", "0")).await).await,
        (12.0, true)
    );
    assert_eq!(
        value(&*build(t("/stats", "json", "components.worker.tasks", "12")).await).await,
        (12.0, false)
    );
    assert_eq!(
        value(&*build(t("/stats.yaml", "yaml", "components.worker.tasks", "0")).await).await,
        (3.0, true)
    );
    assert_eq!(
        value(&*build(t("/metrics", "prometheus", "queue_depth", "0")).await).await,
        (9.0, true)
    );

    api.require_bearer("good");
    let auth = |tok: &str| {
        params(
            "metrics-api",
            &[
                ("url", api.url("/stats").as_str()),
                ("valueLocation", "components.worker.tasks"),
                ("targetValue", "5"),
                ("authModes", "bearer"),
            ],
            &[("bearerToken", tok)],
        )
    };
    assert_eq!(value(&*build(auth("good")).await).await, (12.0, true));
    let e = measure(&*build(auth("canary-bad-token")).await)
        .await
        .unwrap_err();
    assert_clean(
        &e,
        "Unauthorized",
        "metrics-api trigger 0",
        &["canary-bad-token"],
    );

    let down = params(
        "metrics-api",
        &[
            (
                "url",
                format!("http://127.0.0.1:{}/x", closed_port()).as_str(),
            ),
            ("valueLocation", "a"),
            ("targetValue", "1"),
        ],
        &[],
    );
    assert_clean(
        &measure(&*build(down).await).await.unwrap_err(),
        "SourceUnreachable",
        "metrics-api trigger 0",
        &[],
    );
}
