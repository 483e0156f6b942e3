//! aws-sqs-queue against moto's server, with IAM authentication on.

use super::*;
use tandem_testkit::services::Moto;

#[tokio::test]
async fn sqs_value_activation_push_auth_and_down() {
    let mut moto = started(Moto::start().await);
    let url = started(
        moto.boto3("print(sqs.create_queue(QueueName='jobs')['QueueUrl'])")
            .await,
    )
    .trim()
    .to_owned();
    started(
        moto.boto3(&format!(
            "[sqs.send_message(QueueUrl='{url}', MessageBody=str(i)) for i in range(3)]"
        ))
        .await,
    );
    let (id, secret) = (
        moto.access_key_id().to_owned(),
        moto.secret_access_key().to_owned(),
    );
    let endpoint = moto.endpoint();
    let t = |activation: &str, key: &str| {
        params(
            "aws-sqs-queue",
            &[
                ("queueURL", url.as_str()),
                ("awsRegion", "us-east-1"),
                ("awsEndpoint", endpoint.as_str()),
                ("queueLength", "2"),
                ("activationQueueLength", activation),
            ],
            &[("awsAccessKeyID", id.as_str()), ("awsSecretAccessKey", key)],
        )
    };
    let s = build(t("0", &secret)).await;
    assert_eq!(value(&*s).await, (3.0, true));
    assert_eq!(value(&*build(t("3", &secret)).await).await, (3.0, false));

    // Push: long poll on an empty queue wakes when a message arrives.
    let empty = started(
        moto.boto3("print(sqs.create_queue(QueueName='idle')['QueueUrl'])")
            .await,
    )
    .trim()
    .to_owned();
    let idle = build(params(
        "aws-sqs-queue",
        &[
            ("queueURL", empty.as_str()),
            ("awsRegion", "us-east-1"),
            ("awsEndpoint", endpoint.as_str()),
        ],
        &[
            ("awsAccessKeyID", id.as_str()),
            ("awsSecretAccessKey", secret.as_str()),
        ],
    ))
    .await;
    let mut w = idle.watch().expect("sqs watch");
    let code = format!(
        "import time\ntime.sleep(2)\nsqs.send_message(QueueUrl='{empty}', MessageBody='x')"
    );
    let (took, sent) = tokio::join!(
        next_wake(&mut w, Duration::from_secs(25)),
        moto.boto3(&code)
    );
    started(sent);
    eprintln!("  sqs push wake {took:?} after the watch started (message sent at ~2 s)");

    // Wrong credential.
    let e = measure(&*build(t("0", "canary-wrong-secret")).await)
        .await
        .unwrap_err();
    assert_clean(
        &e,
        "Unauthorized",
        "aws-sqs-queue trigger 0",
        &["canary-wrong-secret", &secret],
    );

    // Down.
    moto.stop();
    let e = measure(&*build(t("0", &secret)).await).await.unwrap_err();
    assert_clean(
        &e,
        "SourceUnreachable",
        "aws-sqs-queue trigger 0",
        &[&secret],
    );
}
