//! PostgreSQL with password authentication.

use super::*;
use tandem_testkit::services::Postgres;

const PASSWORD: &str = "canary-pg-secret";

#[tokio::test]
async fn postgresql_query_value_activation_auth_and_down() {
    let pg = started(Postgres::start(PASSWORD).await);
    started(pg.psql("postgres", "CREATE DATABASE app").await);
    started(pg.psql("app", "CREATE TABLE jobs(id serial primary key, state text); INSERT INTO jobs(state) SELECT 'pending' FROM generate_series(1, 6)").await);

    let query = "SELECT count(*) FROM jobs WHERE state = 'pending'";
    let by_parts = |activation: &str, pw: &str| {
        params(
            "postgresql",
            &[
                ("query", query),
                ("targetQueryValue", "2"),
                ("activationTargetQueryValue", activation),
            ],
            &[
                ("host", "127.0.0.1"),
                ("port", pg.port().to_string().as_str()),
                ("userName", "postgres"),
                ("dbName", "app"),
                ("sslmode", "disable"),
                ("password", pw),
            ],
        )
    };
    assert_eq!(
        value(&*build(by_parts("0", PASSWORD)).await).await,
        (6.0, true)
    );
    assert_eq!(
        value(&*build(by_parts("6", PASSWORD)).await).await,
        (6.0, false)
    );
    // The connection string form.
    let by_url = params(
        "postgresql",
        &[("query", "SELECT 2.5::numeric"), ("targetQueryValue", "1")],
        &[("connection", pg.url("app").as_str())],
    );
    assert_eq!(value(&*build(by_url).await).await, (2.5, true));

    let e = measure(&*build(by_parts("0", "canary-wrong-pw")).await)
        .await
        .unwrap_err();
    assert_clean(
        &e,
        "Unauthorized",
        "postgresql trigger 0",
        &["canary-wrong-pw", PASSWORD],
    );

    let down = params(
        "postgresql",
        &[("query", query), ("targetQueryValue", "2")],
        &[(
            "connection",
            format!(
                "postgres://postgres:{PASSWORD}@127.0.0.1:{}/app",
                closed_port()
            )
            .as_str(),
        )],
    );
    assert_clean(
        &measure(&*build(down).await).await.unwrap_err(),
        "SourceUnreachable",
        "postgresql trigger 0",
        &[PASSWORD],
    );
}
